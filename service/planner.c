/* planner.c: one plan for the whole host.
 *
 * Per VM (planner-vm.c): follow-up on the last action, headroom feedback,
 * need and bounds.  Here: the budget, the fair split when the host is
 * short, this tick's step for each VM (hysteresis, shrink delays and
 * rate limit, grows only from memory free now) and the actions with
 * their reasons.
 */
#define G_LOG_DOMAIN "memtide-planner"

#include <math.h>
#include <stdarg.h>
#include "host.h"
#include "planner-fair.h"
#include "planner-private.h"

typedef struct {
  MtPlanCtx ctx;
  MtPlan *plan;
  MtVmEval *ev;
  guint n;
  GArray *actions;             /* MtAction */
  guint64 free_left;           /* for this tick's grows, MT_UNKNOWN = unknown */
} Planner;

const char *
mt_action_kind_to_string (MtActionKind k)
{
  switch (k)
    {
    case MT_ACTION_SHRINK:
      return "shrink";
    case MT_ACTION_GROW:
      return "grow";
    case MT_ACTION_CANCEL:
      return "cancel";
    default:
      return "invalid";
    }
}

const char *
mt_decision_kind_to_string (MtDecisionKind k)
{
  static const char *const names[] = {
    [MT_DECISION_HOLD] = "hold",
    [MT_DECISION_SHRINK] = "shrink",
    [MT_DECISION_GROW] = "grow",
    [MT_DECISION_WAIT] = "wait",
    [MT_DECISION_SKIP] = "skip",
    [MT_DECISION_STUCK] = "stuck",
  };

  if ((guint) k >= G_N_ELEMENTS (names))
    return "invalid";
  return names[k];
}

const char *
mt_plan_sz (MtPlanCtx *ctx, guint64 bytes)
{
  char *s = mt_format_bytes (bytes);

  g_ptr_array_add (ctx->strings, s);
  return s;
}

void
mt_plan_free (MtPlan *plan)
{
  if (plan == NULL)
    return;
  for (guint i = 0; i < plan->n_actions; i++)
    g_free (plan->actions[i].reason);
  for (guint i = 0; i < plan->n_decisions; i++)
    g_free (plan->decisions[i].reason);
  g_free (plan->actions);
  g_free (plan->decisions);
  g_free (plan->reason);
  g_free (plan);
}

static double
secs (gint64 us)
{
  return (double) us / G_USEC_PER_SEC;
}

/* ---- explanations ------------------------------------------------------- */

/* Why this VM wants what it wants: "idle 400 MiB, working set 480 MiB +
 * headroom 128 MiB, ...".  Shared by action and decision reasons. */
static char *
explain (Planner *pl, const MtVmEval *ev)
{
  MtPlanCtx *ctx = &pl->ctx;
  const MtVmDerived *o = &ev->in->obs;
  const MtVmPolicy *p = ev->in->policy;
  GString *s = g_string_new (NULL);

  if (ev->idle != MT_UNKNOWN)
    g_string_append_printf (s, "idle %s, ", mt_plan_sz (ctx, ev->idle));
  g_string_append_printf (s, "working set %s + headroom %s",
                          mt_plan_sz (ctx, ev->active), mt_plan_sz (ctx, ev->headroom));
  if (ev->oom)
    g_string_append_printf (s, ", %" G_GUINT64_FORMAT " OOM kill(s)", o->oom_kills_new);
  if (ev->avail_low)
    g_string_append_printf (s, ", available only %s", mt_plan_sz (ctx, o->available));
  if (ev->pressured)
    g_string_append_printf (s, ", pressure %.1f%% > target %.1f%%", o->psi_some, p->pressure_target);
  if (ev->swap_high)
    g_string_append_printf (s, ", swap-in %s/s", mt_plan_sz (ctx, mt_sat_from_double (o->swap_in_rate)));
  if (ev->faults_high)
    g_string_append_printf (s, ", %.0f major faults/s", o->major_fault_rate);
  if (ev->need > ev->hi && ev->want == ev->hi)
    g_string_append_printf (s, ", capped at max %s", mt_plan_sz (ctx, ev->hi));
  if (ev->need < ev->lo)
    g_string_append_printf (s, ev->lo > ev->pmin ? ", kept at %s (the least the domain can reach)"
                                                 : ", kept at min %s", mt_plan_sz (ctx, ev->lo));
  if (pl->plan->host_short)
    {
      g_string_append_printf (s, ", host short by %s", mt_plan_sz (ctx, pl->plan->short_by));
      if (ev->target < ev->want)
        g_string_append_printf (s, ", fair share %s (shares %u)",
                                mt_plan_sz (ctx, ev->target), MAX (p->shares, 1u));
    }
  if (ev->note->len > 0)
    g_string_append_printf (s, "; %s", ev->note->str);
  return g_string_free (s, FALSE);
}

G_GNUC_PRINTF (4, 5) static void
decide (Planner *pl, guint i, MtDecisionKind kind, const char *fmt, ...)
{
  MtVmDecision *d = &pl->plan->decisions[i];
  g_autofree char *head = NULL;
  g_autofree char *why = NULL;
  va_list ap;

  va_start (ap, fmt);
  head = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  why = explain (pl, &pl->ev[i]);
  d->kind = kind;
  g_free (d->reason);
  d->reason = g_strdup_printf ("%s: %s", head, why);
}

/* ---- budget and the fair split ----------------------------------------- */

static void
budget (Planner *pl, const MtHostSample *host)
{
  MtPlan *plan = pl->plan;
  const MtHostPolicy *hp = pl->ctx.hp;
  guint64 rss = 0, free_phys = MT_UNKNOWN;
  g_autofree char *why = NULL;

  plan->committed = 0;
  plan->demand = 0;
  for (guint i = 0; i < pl->n; i++)
    {
      const MtVmEval *ev = &pl->ev[i];
      guint64 r = ev->in->obs.rss;

      plan->committed = mt_sat_add (plan->committed, ev->committed);
      /* QEMU's own memory is in its RSS but is no guest memory. */
      if (r != MT_UNKNOWN)
        rss = mt_sat_add (rss, MIN (r, ev->committed));
      plan->demand = mt_sat_add (plan->demand, ev->fixed ? ev->committed : ev->want);
    }

  if (hp->budget > 0 || (host != NULL && host->mem_available != MT_UNKNOWN))
    plan->budget = mt_host_budget (host, hp, rss, &why);
  else
    plan->budget = MT_UNKNOWN;

  if (host != NULL && host->mem_available != MT_UNKNOWN)
    free_phys = mt_sat_sub (host->mem_available, hp->reserve);
  if (host != NULL && host->cgroup_limit != MT_UNKNOWN && host->cgroup_usage != MT_UNKNOWN)
    free_phys = MIN (free_phys, mt_sat_sub (host->cgroup_limit, host->cgroup_usage));
  /* Free now is what no VM holds or was promised, and physically free. */
  plan->free_now = free_phys;
  if (plan->budget != MT_UNKNOWN)
    plan->free_now = MIN (free_phys, mt_sat_sub (plan->budget, plan->committed));
  pl->free_left = plan->free_now;

  plan->host_short = plan->budget != MT_UNKNOWN && plan->demand > plan->budget;
  plan->short_by = plan->host_short ? plan->demand - plan->budget : 0;

  plan->reason = g_strdup_printf (
      "%s; VMs hold %s, want %s, free now %s%s%s", why ? why : "budget unknown",
      mt_plan_sz (&pl->ctx, plan->committed), mt_plan_sz (&pl->ctx, plan->demand),
      mt_plan_sz (&pl->ctx, plan->free_now),
      plan->host_short ? ": short by " : "",
      plan->host_short ? mt_plan_sz (&pl->ctx, plan->short_by) : "");
}

/* Idle memory is taxed first: tier 1 keeps every working set and splits
 * only the headroom; only when even the working sets do not fit does
 * tier 2 cut into them, down to each VM's floor. */
static void
split (Planner *pl)
{
  MtPlan *plan = pl->plan;
  g_autofree MtFairEntry *e = g_new0 (MtFairEntry, MAX (pl->n, 1));
  g_autofree guint *idx = g_new0 (guint, MAX (pl->n, 1));
  guint64 fixed = 0, avail;
  guint m = 0;

  for (guint i = 0; i < pl->n; i++)
    {
      MtVmEval *ev = &pl->ev[i];

      if (ev->fixed)
        {
          fixed = mt_sat_add (fixed, ev->committed);
          ev->target = ev->cur;
          continue;
        }
      ev->target = ev->want;
      e[m] = (MtFairEntry) { ev->tier1_lo, ev->want, ev->in->policy->shares, 0 };
      idx[m++] = i;
    }
  if (!plan->host_short)
    return;

  avail = mt_sat_sub (plan->budget, fixed);
  if (!mt_fair_split (e, m, avail))
    {
      for (guint k = 0; k < m; k++)
        e[k] = (MtFairEntry) { pl->ev[idx[k]].floor, pl->ev[idx[k]].tier1_lo,
                               pl->ev[idx[k]].in->policy->shares, 0 };
      mt_fair_split (e, m, avail);
    }
  for (guint k = 0; k < m; k++)
    {
      MtVmEval *ev = &pl->ev[idx[k]];

      /* Rounding down onto the lattice keeps the sum within budget; lo
       * bounds are on the lattice, so the result stays >= floor. */
      ev->target = MAX (mt_layout_snap_down (e[k].alloc, ev->granule, ev->offset), ev->floor);
    }
}

/* ---- actions ------------------------------------------------------------ */

static char *
mechanism_note (Planner *pl, const MtVmEval *ev, const MtLayout *l)
{
  MtPlanCtx *ctx = &pl->ctx;
  GString *s = g_string_new (" [");

  if (l->set_vmem)
    g_string_append_printf (s, "virtio-mem %s -> %s", mt_plan_sz (ctx, ev->lay.requested),
                            mt_plan_sz (ctx, l->vmem_requested));
  if (l->set_vmem && l->set_balloon)
    g_string_append (s, ", ");
  if (l->set_balloon)
    g_string_append_printf (s, "balloon %s -> %s", mt_plan_sz (ctx, ev->lay.balloon),
                            mt_plan_sz (ctx, l->balloon));
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static void
add_action (Planner *pl, guint i, MtActionKind kind, const MtLayout *l,
            gboolean emergency, const char *limit)
{
  MtVmEval *ev = &pl->ev[i];
  MtVmDecision *d = &pl->plan->decisions[i];
  MtPlanCtx *ctx = &pl->ctx;
  g_autofree char *mech = mechanism_note (pl, ev, l);
  MtAction a = {
    .vm = i,
    .kind = kind,
    .emergency = emergency,
    .from = ev->cur,
    .to = l->size,
    .set_vmem = l->set_vmem,
    .vmem_requested = l->vmem_requested,
    .set_balloon = l->set_balloon,
    .balloon = l->balloon,
  };

  if (kind == MT_ACTION_CANCEL)
    decide (pl, i, MT_DECISION_HOLD, "cancel the stalled virtio-mem unplug at %s%s",
            mt_plan_sz (ctx, ev->cur), mech);
  else
    decide (pl, i, kind == MT_ACTION_GROW ? MT_DECISION_GROW : MT_DECISION_SHRINK,
            "%s%s %s -> %s%s%s%s%s", emergency ? "emergency " : "",
            kind == MT_ACTION_GROW ? "grow" : "shrink",
            mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, l->size),
            l->size != ev->target ? " (toward " : "",
            l->size != ev->target ? mt_plan_sz (ctx, ev->target) : "",
            l->size != ev->target ? (limit ? limit : ")") : "",
            mech);
  a.reason = g_strdup_printf ("%s: %s", ev->name, d->reason);
  d->action = (gint) pl->actions->len;
  d->step = l->size;
  g_array_append_val (pl->actions, a);

  if (pl->ctx.hp->dry_run)
    return;
  ev->next.last_action = ctx->now;
  if (kind == MT_ACTION_CANCEL)
    {
      ev->next.pending = FALSE;
      return;
    }
  ev->next.pending = TRUE;
  ev->next.last_from = ev->cur;
  ev->next.last_target = l->size;
  ev->next.best_distance = ev->cur > l->size ? ev->cur - l->size : l->size - ev->cur;
  ev->next.progress_time = ctx->now;
}

/* Shrinks free memory only later (the guest must give it back), so they
 * go first and are paced; their memory is for the next tick's grows. */
static void
plan_shrink (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtPlanCtx *ctx = &pl->ctx;
  const MtHostPolicy *hp = ctx->hp;
  gint64 settle = MT_PLAN_SETTLE_TICKS * ctx->tick;
  gint64 hold = MT_PLAN_SHRINK_HOLD_TICKS * ctx->tick;
  gint64 wanted, since_act;
  guint64 step = ev->target, allowed;
  char limit[96] = ")";
  MtLayout l;

  if (ev->next.shrink_since == MT_TIME_NEVER)
    ev->next.shrink_since = ctx->now;
  wanted = mt_elapsed (ctx->now, ev->next.shrink_since);
  since_act = mt_elapsed (ctx->now, ev->next.last_action);

  /* One shrink at a time: asking for more while the guest still works
   * on the last one would hide that it does not follow (stuck).  Asking
   * for less is always fine. */
  if (ev->next.pending && ev->next.last_target < ev->cur)
    {
      if (ev->target <= ev->next.last_target)
        {
          decide (pl, i, MT_DECISION_WAIT, "wait at %s: the guest is still shrinking to %s (asked %.0f s ago)",
                  mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, ev->next.last_target),
                  secs (mt_elapsed (ctx->now, ev->next.last_action)));
          return;
        }
      mt_layout_plan (&ev->lay, ev->target, &l);
      if (l.size < ev->cur && ev->cur - l.size >= hp->min_change && l.size != ev->next.last_target)
        {
          add_action (pl, i, MT_ACTION_SHRINK, &l, FALSE, ")");
          return;
        }
    }
  /* A dip must last before memory is taken, unless others need it now. */
  if (!pl->plan->host_short && wanted < hold)
    {
      decide (pl, i, MT_DECISION_WAIT, "wait at %s: shrink to %s once wanted for %.0f s (%.0f s so far)",
              mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, ev->target), secs (hold), secs (wanted));
      return;
    }
  if (since_act < settle)
    {
      decide (pl, i, MT_DECISION_WAIT, "wait at %s: shrink to %s after the last action settles (%.0f s ago)",
              mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, ev->target), secs (since_act));
      return;
    }
  if (hp->max_shrink_rate > 0)
    {
      gint64 cap = MAX (2 * settle, (gint64) MIN ((double) G_MAXINT64 / 2,
                        (double) hp->min_change * G_USEC_PER_SEC / (double) hp->max_shrink_rate));

      allowed = mt_sat_from_double ((double) hp->max_shrink_rate * secs (MIN (since_act, cap)));
      if (mt_sat_sub (ev->cur, allowed) > step)
        {
          step = mt_layout_snap_up (ev->cur - allowed, ev->granule, ev->offset);
          g_snprintf (limit, sizeof limit, ", rate limit %s/s)",
                      mt_plan_sz (ctx, hp->max_shrink_rate));
        }
    }
  mt_layout_plan (&ev->lay, step, &l);
  if (l.size >= ev->cur || ev->cur - l.size < hp->min_change)
    {
      decide (pl, i, MT_DECISION_WAIT, "wait at %s: shrink to %s is paced at %s/s",
              mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, ev->target),
              mt_plan_sz (ctx, hp->max_shrink_rate));
      return;
    }
  add_action (pl, i, MT_ACTION_SHRINK, &l, FALSE, limit);
}

/* Grows take only memory free right now; what others are still giving
 * back is for a later tick.  Emergencies go first and skip hysteresis. */
static void
plan_grow (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtPlanCtx *ctx = &pl->ctx;
  /* A pending grow's memory is already counted as taken. */
  guint64 base = MAX (ev->cur, ev->committed);
  guint64 extra = mt_sat_sub (ev->target, base), grant, goal;
  char limit[96] = ")";
  MtLayout l = { 0 };

  if (pl->free_left == MT_UNKNOWN)
    grant = ev->emergency ? extra : 0;
  else
    grant = MIN (extra, pl->free_left);
  if (grant < extra)
    g_snprintf (limit, sizeof limit, ", host free %s)",
                pl->free_left == MT_UNKNOWN ? "unknown" : mt_plan_sz (ctx, pl->free_left));
  goal = mt_layout_snap_down (MIN (base + grant, ev->target), ev->granule, ev->offset);
  if (goal > ev->cur)
    mt_layout_plan (&ev->lay, goal, &l);
  if (goal <= ev->cur || l.size <= ev->cur || l.size > goal
      || (!ev->emergency && l.size - ev->cur < ctx->hp->min_change))
    {
      decide (pl, i, MT_DECISION_WAIT, "wait at %s: grow to %s when the host has memory free (free now %s)",
              mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, ev->target),
              pl->free_left == MT_UNKNOWN ? "unknown" : mt_plan_sz (ctx, pl->free_left));
      return;
    }
  if (ev->next.pending && l.size == ev->next.last_target)
    {
      decide (pl, i, MT_DECISION_WAIT, "wait at %s: the guest is still growing to %s (asked %.0f s ago)",
              mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, l.size),
              secs (mt_elapsed (ctx->now, ev->next.last_action)));
      return;
    }
  if (pl->free_left != MT_UNKNOWN)
    pl->free_left -= mt_sat_sub (l.size, base);
  add_action (pl, i, MT_ACTION_GROW, &l, ev->emergency, limit);
}

/* Hysteresis first; returns TRUE when the VM wants to grow. */
static gboolean
plan_step (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtPlanCtx *ctx = &pl->ctx;
  guint64 min_change = ctx->hp->min_change;

  if (ev->target < ev->cur && ev->cur - ev->target >= min_change)
    {
      plan_shrink (pl, i);
      return FALSE;
    }
  ev->next.shrink_since = MT_TIME_NEVER;
  if (ev->target > ev->cur && (ev->emergency || ev->target - ev->cur >= min_change))
    return TRUE;
  if (ev->target == ev->cur)
    decide (pl, i, MT_DECISION_HOLD, "hold at %s", mt_plan_sz (ctx, ev->cur));
  else
    decide (pl, i, MT_DECISION_HOLD, "hold at %s: target %s is within %s (hysteresis)",
            mt_plan_sz (ctx, ev->cur), mt_plan_sz (ctx, ev->target), mt_plan_sz (ctx, min_change));
  return FALSE;
}

static void
fill_decision (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtVmDecision *d = &pl->plan->decisions[i];

  d->managed = !ev->fixed;
  d->emergency = ev->emergency;
  d->current = ev->cur;
  d->working_set = ev->active;
  d->idle = ev->idle;
  d->headroom = ev->headroom;
  d->need = ev->need;
  d->next = ev->next;
  d->committed = ev->committed;
  if (ev->fixed)
    {
      d->min = d->max = d->want = d->floor = d->keep = d->target = ev->cur;
      return;
    }
  d->min = ev->lo;
  d->max = ev->hi;
  d->want = ev->want;
  d->floor = ev->floor;
  d->keep = ev->tier1_lo;
  d->target = ev->target;
}

MtPlan *
mt_plan_compute (const MtHostSample *host, const MtPlanVm *vms, guint n_vms,
                 const MtHostPolicy *hp, gint64 now)
{
  g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GArray) actions = g_array_new (FALSE, TRUE, sizeof (MtAction));
  g_autofree MtVmEval *ev = NULL;
  g_autofree guint *grows = NULL;
  guint n_grows = 0;
  MtPlan *plan;
  Planner pl;

  g_return_val_if_fail (hp != NULL, NULL);
  g_return_val_if_fail (n_vms == 0 || vms != NULL, NULL);

  plan = g_new0 (MtPlan, 1);
  plan->now = now;
  plan->n_decisions = n_vms;
  plan->decisions = g_new0 (MtVmDecision, MAX (n_vms, 1));
  ev = g_new0 (MtVmEval, MAX (n_vms, 1));
  grows = g_new0 (guint, MAX (n_vms, 1));
  pl = (Planner) {
    .ctx = {
      .hp = hp,
      .now = now,
      .tick = hp->tick_interval > 0 ? hp->tick_interval : MT_PLAN_DEFAULT_TICK,
      .stuck_timeout = hp->stuck_timeout > 0 ? hp->stuck_timeout : MT_PLAN_DEFAULT_STUCK,
      .strings = strings,
    },
    .plan = plan,
    .ev = ev,
    .n = n_vms,
    .actions = actions,
  };

  for (guint i = 0; i < n_vms; i++)
    {
      mt_plan_eval_vm (&pl.ctx, &vms[i], i, &ev[i]);
      plan->decisions[i].action = -1;
    }
  budget (&pl, host);
  split (&pl);

  for (guint i = 0; i < n_vms; i++)
    {
      MtVmDecision *d = &plan->decisions[i];

      fill_decision (&pl, i);
      d->step = ev[i].cur;
      if (ev[i].fixed)
        {
          d->kind = ev[i].fixed_kind;
          d->reason = ev[i].note->len > 0
                      ? g_strdup_printf ("%s; %s", ev[i].fixed_reason->str, ev[i].note->str)
                      : g_strdup (ev[i].fixed_reason->str);
          continue;
        }
      if (plan_step (&pl, i))
        grows[n_grows++] = i;
      /* A stalled unplug stays requested until we take it back; any
       * resize above already did (the layout keeps what is plugged). */
      if (ev[i].lay.mech == MT_MECH_AUTO && ev[i].next.vmem_stalled
          && ev[i].lay.requested < ev[i].lay.plugged && d->action < 0)
        {
          MtLayout l = {
            .set_vmem = TRUE,
            .vmem_requested = MIN (mt_layout_snap_up (ev[i].lay.plugged, ev[i].lay.vmem_block, 0),
                                   ev[i].lay.vmem_max),
            .balloon = ev[i].lay.balloon,
            .size = ev[i].cur,
          };
          add_action (&pl, i, MT_ACTION_CANCEL, &l, FALSE, NULL);
          ev[i].lay.requested = l.vmem_requested;
        }
    }

  for (guint pass = 0; pass < 2; pass++)
    for (guint k = 0; k < n_grows; k++)
      if (pl.ev[grows[k]].emergency == (pass == 0))
        plan_grow (&pl, grows[k]);

  for (guint i = 0; i < n_vms; i++)
    {
      plan->decisions[i].next = ev[i].next;
      mt_plan_eval_clear (&ev[i]);
    }
  plan->n_actions = actions->len;
  plan->actions = (MtAction *) g_array_free (g_steal_pointer (&actions), FALSE);
  return plan;
}
