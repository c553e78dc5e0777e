/* planner-budget.c: the stall budget (policy stall-budget over
 * stall-window) and the rise floor.
 *
 * The measure is the guest's own: its PSI "some" total, the time at
 * least one of its tasks waited for memory, which its agent reports.
 * What it stalled is summed with exponential decay, the window as time
 * constant (as the kernel averages PSI, over minutes instead of
 * seconds), and divided by the window: a constant stall share reads as
 * itself, a burst of 6 s as 1% of a 10 min window that fades over the
 * next minutes.  Before a whole window has passed the time not yet seen
 * counts as not stalled, as it does for a window that reaches back
 * before a VM started.
 *
 * A VM over its budget is never shrunk, and it keeps room for the
 * largest sudden rise of its working set that found it short within the
 * last hour (the rise floor): it is grown ahead of the next one.  A VM
 * within its budget keeps that room too, but as the first memory a
 * short host takes back (like the headroom held for a recent rise).
 */
#define G_LOG_DOMAIN "memtide-planner"

#include <math.h>
#include "planner-private.h"

/* An agent reports every second (memtide-agent's default interval). */
#define STALL_SLACK ((guint64) G_USEC_PER_SEC)

double
mt_vm_control_stall (const MtVmControl *c, gint64 window, gint64 now)
{
  g_return_val_if_fail (c != NULL, NAN);

  if (c->stall_time == MT_TIME_NEVER || window <= 0)
    return NAN;
  /* Nothing counted since stall_time: what was counted fades.  At most
   * all the time (the slack below could read a little above it). */
  return CLAMP ((double) c->stall_avg
                  * exp (-(double) mt_elapsed (now, c->stall_time) / (double) window)
                  / (double) window,
                0.0, 1.0);
}

/* Brings the decayed sum up to the latest sample's PSI total. */
static void
stall_update (MtVmControl *c, const MtVmDerived *o, gint64 window)
{
  guint64 total = o->psi_some_total;
  gint64 t = o->time;

  if (total == MT_UNKNOWN || t == MT_TIME_NEVER) {
    /* No agent now: the next report starts from its own total. */
    c->stall_total = MT_UNKNOWN;
    return;
  }
  if (c->stall_time != MT_TIME_NEVER && t <= c->stall_time)
    return; /* this sample was counted (a plan between ticks) */
  if (c->stall_total != MT_UNKNOWN && c->stall_time != MT_TIME_NEVER && total >= c->stall_total) {
    gint64 dt = mt_elapsed (t, c->stall_time);
    /* "some" is a share of wall time: a guest cannot stall longer than
     * the time that passed, whatever its counter says.  Plus one report
     * period: the sample carries the agent's latest report, and a tick
     * that saw none new is followed by one that sees two. */
    double stalled =
      MIN ((double) (total - c->stall_total), (double) mt_sat_add ((guint64) dt, STALL_SLACK));

    c->stall_avg = (float) ((double) c->stall_avg * exp (-(double) dt / (double) window) + stalled);
  } else if (c->stall_time != MT_TIME_NEVER) {
    /* A new guest counter (reboot, new agent): decay what was counted. */
    c->stall_avg = (float) ((double) c->stall_avg
                            * exp (-(double) mt_elapsed (t, c->stall_time) / (double) window));
  }
  c->stall_total = total;
  c->stall_time = t;
}

void
mt_plan_stall (MtPlanCtx *ctx, MtVmEval *ev)
{
  const MtVmDerived *o = &ev->in->obs;
  const MtVmPolicy *p = ev->in->policy;
  MtVmControl *c = ev->next;
  gint64 window = p->stall_window > 0 ? p->stall_window : MT_PLAN_DEFAULT_STALL_WINDOW;

  stall_update (c, o, window);
  ev->stall =
    o->psi_some_total == MT_UNKNOWN ? NAN : 100.0 * mt_vm_control_stall (c, window, o->time);
  ev->over_budget = p->stall_budget > 0 && isfinite (ev->stall) && ev->stall > p->stall_budget;
  /* Kept in the reason's numbers, which the decision carries anyway. */
  ev->why->stall = (float) ev->stall;
  if (ev->over_budget)
    ev->why->flags |= MT_WHY_OVER_BUDGET;
}

double
mt_vm_decision_stall (const MtVmDecision *d)
{
  g_return_val_if_fail (d != NULL, NAN);
  return (double) d->why.stall;
}

gboolean
mt_vm_decision_over_budget (const MtVmDecision *d)
{
  g_return_val_if_fail (d != NULL, FALSE);
  return (d->why.flags & MT_WHY_OVER_BUDGET) != 0;
}

/* ---- rise floor ---------------------------------------------------------- */

static void
rise_age (MtVmControl *c, gint64 now)
{
  gint64 age;

  if (c->rise_epoch == MT_TIME_NEVER) {
    c->rise_epoch = now;
    return;
  }
  age = mt_elapsed (now, c->rise_epoch);
  if (age >= 2 * MT_PLAN_RISE_SLOT) {
    c->rise_mib[0] = c->rise_mib[1] = 0;
    c->rise_epoch = now;
  } else if (age >= MT_PLAN_RISE_SLOT) {
    c->rise_mib[1] = c->rise_mib[0];
    c->rise_mib[0] = 0;
    c->rise_epoch += MT_PLAN_RISE_SLOT;
  }
}

guint64
mt_vm_control_rise_floor (const MtVmControl *c)
{
  g_return_val_if_fail (c != NULL, 0);
  return (guint64) MAX (c->rise_mib[0], c->rise_mib[1]) * MT_MIB;
}

void
mt_plan_rise_learn (MtPlanCtx *ctx, MtVmEval *ev, guint64 rise)
{
  MtVmControl *c = ev->next;

  rise_age (c, ctx->now);
  c->rise_mib[0] = MAX (c->rise_mib[0], (guint16) MIN ((rise + MT_MIB - 1) / MT_MIB, G_MAXUINT16));
}

void
mt_plan_rise_apply (MtPlanCtx *ctx, MtVmEval *ev, guint64 cap)
{
  MtVmControl *c = ev->next;
  guint64 floor;

  rise_age (c, ctx->now);
  floor = MIN (mt_vm_control_rise_floor (c), cap);
  ev->rise_floor = floor;
  if (floor <= ev->headroom)
    return;
  /* Over its budget the room is the VM's own: kept while the host has
   * any headroom to give (tier 1 of the split).  Within it, a guess
   * the short host takes first (tier 0). */
  ev->burst = ev->over_budget ? 0 : floor;
  ev->headroom = floor;
  ev->rise_applied = TRUE;
}
