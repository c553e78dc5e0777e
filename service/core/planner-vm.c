/* planner-vm.c: one VM's side of a plan: did it follow its last target
 * (stuck handling), what its guest signals say (headroom feedback), and
 * which sizes it may have (bounds).  Everything that needs only this VM.
 */
#define G_LOG_DOMAIN "memtide-planner"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include "planner-private.h"

static guint64
clamp64 (guint64 v, guint64 lo, guint64 hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

static guint64
absdiff (guint64 a, guint64 b)
{
  return a > b ? a - b : b - a;
}

static double
secs (gint64 us)
{
  return (double) us / G_USEC_PER_SEC;
}

static gint64
add_time (gint64 t, gint64 d)
{
  return t > G_MAXINT64 - d ? G_MAXINT64 : t + d;
}

/* A power-of-two stride puts every VM's fields into the same few cache
 * sets: at 256 bytes the plan at 10,000 VMs took 5.1-5.5 ms against
 * 3.4-3.9 for other sizes (docs/benchmarks.md). */
G_STATIC_ASSERT ((sizeof (MtPlanVm) & (sizeof (MtPlanVm) - 1)) != 0);

void
mt_plan_vm_init (MtPlanVm *in, const char *name, const MtDomainInfo *info, const MtVmPolicy *policy,
                 const MtVmModel *model, const MtHostPolicy *hp, gint64 now)
{
  gint64 tick;

  g_return_if_fail (in != NULL);
  g_return_if_fail (info != NULL);
  g_return_if_fail (model != NULL);
  g_return_if_fail (hp != NULL);

  tick = hp->tick_interval > 0 ? hp->tick_interval : MT_PLAN_DEFAULT_TICK;
  *in = (MtPlanVm){
    .name = name,
    .base_memory = info->base_memory,
    .vmem_size = info->vmem_size,
    .vmem_block = info->vmem_block,
    .policy = policy,
    .control = &model->control,
  };
  mt_vm_model_derive (model, now, MT_PLAN_STALE_TICKS * tick, &in->obs);
}

static void
fix (MtVmEval *ev, MtDecisionKind kind, guint head)
{
  ev->fixed = TRUE;
  ev->fixed_kind = kind;
  ev->why->head = (guint8) head;
}

/* ---- stuck handling ----------------------------------------------------- */

static void
mark_stuck (MtPlanCtx *ctx, MtVmEval *ev, MtStuckKind kind, guint64 s0, guint64 s1, guint64 s2,
            gint64 us)
{
  MtVmControl *c = ev->next;
  gint64 backoff = ctx->stuck_timeout;

  c->stuck = TRUE;
  c->stuck_kind = kind;
  c->stuck_size[0] = s0;
  c->stuck_size[1] = s1;
  c->stuck_size[2] = s2;
  c->stuck_us = us;
  c->stuck_since = ctx->now;
  c->stuck_count++;
  /* Exponential back-off: a guest that cannot give memory back now
   * (pinned pages, a hung balloon driver) rarely can a second later. */
  for (guint i = 1; i < c->stuck_count && backoff < MT_PLAN_RETRY_MAX; i++)
    backoff *= 2;
  c->retry_at = add_time (ctx->now, MIN (backoff, MT_PLAN_RETRY_MAX));
}

const char *
mt_vm_control_stuck_reason (const MtVmControl *c, char buf[MT_STUCK_REASON_LEN])
{
  char a[MT_FORMAT_BYTES_LEN], b[MT_FORMAT_BYTES_LEN], n[MT_FORMAT_BYTES_LEN];
  MtText why;

  g_return_val_if_fail (c != NULL && buf != NULL, "");
  buf[0] = '\0';
  if (!c->stuck)
    return buf;
  mt_text_init (&why);
  if (c->stuck_kind == MT_STUCK_VMEM)
    mt_text_printf (
      &why,
      "virtio-mem unplug stalled at %s (requested %s) for %.0f s and the policy allows no balloon",
      mt_plan_sz (a, c->stuck_size[0]), mt_plan_sz (b, c->stuck_size[1]), secs (c->stuck_us));
  else if (c->stuck_kind == MT_STUCK_NOT_MOVING)
    mt_text_printf (&why, "did not move toward %s in %.0f s (asked at %s, now %s)",
                    mt_plan_sz (a, c->stuck_size[0]), secs (c->stuck_us),
                    mt_plan_sz (b, c->stuck_size[1]), mt_plan_sz (n, c->stuck_size[2]));
  else if (c->stuck_kind == MT_STUCK_RESTORED)
    mt_text_append (&why, "stuck when memtided stopped");
  else if (c->stuck_kind == MT_STUCK_CALL)
    mt_text_printf (&why,
                    "its resize call toward %s (asked at %s) has not returned in %.0f s: "
                    "blocked in the hypervisor",
                    mt_plan_sz (a, c->stuck_size[0]), mt_plan_sz (b, c->stuck_size[1]),
                    secs (c->stuck_us));
  else
    mt_text_append (&why, "stuck");
  g_strlcpy (buf, why.buf, MT_STUCK_REASON_LEN);
  return buf;
}

/* Follow up on the last action: reached, moving, or stuck. */
static void
track_progress (MtPlanCtx *ctx, MtVmEval *ev)
{
  MtVmControl *c = ev->next;
  guint64 dist;

  if (!c->pending)
    return;
  dist = absdiff (ev->cur, c->last_target);
  if (dist <= MT_PLAN_REACH_TOLERANCE) {
    c->pending = FALSE;
    c->stuck_count = 0;
    if (c->stuck) {
      ev->why->flags |= MT_WHY_NOTE_REACHED;
      ev->why->note_size[0] = c->last_target;
    }
    c->stuck = FALSE;
    return;
  }
  if (mt_sat_add (dist, MT_PLAN_REACH_TOLERANCE) <= c->best_distance) {
    c->best_distance = dist;
    c->progress_time = ctx->now;
    if (c->stuck) {
      ev->why->flags |= MT_WHY_NOTE_MOVES;
      ev->why->note_size[0] = c->last_target;
    }
    c->stuck = FALSE;
  }
}

/* virtio-mem unplug that does not complete: the guest cannot offline
 * the memory (unmovable or pinned pages).  Only the guest can fix that,
 * so stop asking and shrink through the balloon for a while. */
static void
track_vmem (MtPlanCtx *ctx, MtVmEval *ev)
{
  MtVmControl *c = ev->next;
  const MtLayoutIn *l = &ev->lay;

  if (c->vmem_stalled && ctx->now >= c->vmem_retry_at) {
    c->vmem_stalled = FALSE;
    ev->why->flags |= MT_WHY_NOTE_VMEM_RETRY;
  }
  if (l->plugged <= l->requested) {
    c->vmem_wait_since = MT_TIME_NEVER;
    return;
  }
  if (c->vmem_wait_since == MT_TIME_NEVER || l->plugged < c->vmem_wait_plugged) {
    c->vmem_wait_since = ctx->now;
    c->vmem_wait_plugged = l->plugged;
    return;
  }
  if (!c->vmem_stalled && mt_elapsed (ctx->now, c->vmem_wait_since) >= ctx->stuck_timeout) {
    c->vmem_stalled = TRUE;
    c->vmem_retry_at = add_time (ctx->now, MIN (8 * ctx->stuck_timeout, MT_PLAN_RETRY_MAX));
    ev->stall_now = TRUE;
  }
}

/* An AUTO VM waiting on a virtio-mem unplug is judged by track_vmem():
 * a stall there falls back to the balloon instead of marking it stuck. */
static gboolean
unplug_in_progress (const MtVmEval *ev)
{
  return ev->lay.mech == MT_MECH_AUTO && !ev->next->vmem_stalled
         && ev->next->vmem_wait_since != MT_TIME_NEVER;
}

static void
check_stuck (MtPlanCtx *ctx, MtVmEval *ev)
{
  MtVmControl *c = ev->next;
  const MtLayoutIn *l = &ev->lay;

  if (ev->stall_now && l->mech != MT_MECH_AUTO)
    mark_stuck (ctx, ev, MT_STUCK_VMEM, l->plugged, l->requested, 0,
                mt_elapsed (ctx->now, c->vmem_wait_since));
  else if (ev->stall_now) {
    ev->why->flags |= MT_WHY_NOTE_STALL;
    ev->why->note_size[1] = l->plugged;
    ev->why->note_size[2] = l->requested;
    ev->why->note_us = mt_elapsed (ctx->now, c->vmem_wait_since);
    /* The fallback is a new action: give it its own time. */
    c->pending = FALSE;
  } else if (c->pending && !c->stuck && !unplug_in_progress (ev)
             && mt_elapsed (ctx->now, c->progress_time) >= ctx->stuck_timeout)
    mark_stuck (ctx, ev, MT_STUCK_NOT_MOVING, c->last_target, c->last_from, ev->cur,
                ctx->stuck_timeout);
  else if (c->stuck && ctx->now >= c->retry_at) {
    /* Forget the old target: the next one is planned from scratch. */
    c->stuck = FALSE;
    c->pending = FALSE;
    ev->why->flags |= MT_WHY_NOTE_RETRYING;
    ev->why->note_us = mt_elapsed (ctx->now, c->stuck_since);
  }

  if (c->stuck) {
    fix (ev, MT_DECISION_STUCK, MT_WHY_STUCK);
    ev->why->us[0] = mt_elapsed (ctx->now, c->stuck_since);
    ev->why->us[1] = mt_elapsed (c->retry_at, ctx->now);
  }
}

/* A resize call that has not returned (the daemon runs them off its
 * main loop): nothing to ask until it returns, and no progress to judge
 * in a guest that was not asked yet.  A call blocked for stuck-timeout
 * is stuck, and stays so while it is blocked: a retry would only queue
 * behind it. */
static void
check_call (MtPlanCtx *ctx, MtVmEval *ev)
{
  MtVmControl *c = ev->next;
  gint64 blocked = mt_elapsed (ctx->now, c->call_since);

  if (!c->stuck && blocked >= ctx->stuck_timeout)
    mark_stuck (ctx, ev, MT_STUCK_CALL, c->last_target, c->last_from, ev->cur, blocked);
  if (c->stuck) {
    fix (ev, MT_DECISION_STUCK, MT_WHY_STUCK);
    ev->why->us[0] = mt_elapsed (ctx->now, c->stuck_since);
    ev->why->us[1] = mt_elapsed (MAX (c->retry_at, ctx->now), ctx->now);
    return;
  }
  fix (ev, MT_DECISION_WAIT, MT_WHY_IN_FLIGHT);
  ev->why->size[0] = c->last_target;
  ev->why->us[0] = blocked;
}

/* ---- headroom feedback -------------------------------------------------- */

/* What the guest kernel keeps of the size (MemTotal leaves it out:
 * memmap, kernel image, reservations): tens of MiB, a large share of a
 * small guest.  Learned while the size is steady (the model says when);
 * right after a resize MemTotal lags, so the live difference is capped. */
static guint64
kernel_reserve (MtVmEval *ev)
{
  const MtVmDerived *o = &ev->in->obs;
  MtVmControl *c = ev->next;
  guint64 r = 0;

  if (o->reserve != MT_UNKNOWN)
    c->reserve = MIN (o->reserve, ev->cur / 2);
  if (o->total != MT_UNKNOWN)
    r = MIN (mt_sat_sub (ev->cur, o->total), ev->cur / 16);
  return MAX (r, MIN (c->reserve, ev->cur / 2));
}

/* exp(-dt / half-life · ln 2), for a decay over dt seconds. */
static double
decay (double dt, double half_life)
{
  return dt > 0 ? exp (-dt * G_LN2 / half_life) : 1.0;
}

static void
feedback (MtPlanCtx *ctx, MtVmEval *ev)
{
  const MtPlanVm *in = ev->in;
  const MtVmDerived *o = &in->obs;
  const MtVmPolicy *p = in->policy;
  MtVmControl *c = ev->next;
  guint64 hmin, h, cap, burst, room;
  gboolean rising, raise, calm, in_flight, proven, hard, faults_many, news;
  double factor = 1.0;

  /* Count what the guest kernel keeps, so the headroom is really free
   * inside the guest: need is compared with the size, and a small
   * guest sees tens of MiB less than its size. */
  ev->reserve = kernel_reserve (ev);
  /* The guest cannot use more than the host gives it, whatever it says. */
  ev->active = mt_sat_add (MIN (o->used, ev->cur), ev->reserve);
  /* Swapped-out memory the guest is reading back is working set too:
   * without it a grow gives the guest only what is resident, swap-in
   * raises "used" and the next tick grows again.  Swap nobody reads
   * (cold pages swapped out long ago) is not. */
  ev->swapped = 0;
  if (o->swap_used != MT_UNKNOWN && o->swap_used > 0
      && ((isfinite (o->swap_in_rate) && o->swap_in_rate > 0)
          || (isfinite (o->swap_in_rate_avg) && o->swap_in_rate_avg > 0)))
    ev->swapped = MIN (o->swap_used, mt_sat_add (in->base_memory, in->vmem_size));
  ev->active = mt_sat_add (ev->active, ev->swapped);
  ev->idle = o->idle;

  ev->oom = o->oom_kills_new > 0;
  ev->avail_low = o->available != MT_UNKNOWN && o->total != MT_UNKNOWN
                  && o->available < MAX (MT_PLAN_AVAIL_LOW_MIN, o->total / MT_PLAN_AVAIL_LOW_DIV);
  ev->pressured = isfinite (o->psi_some) && o->psi_some > p->pressure_target;
  ev->swap_high = isfinite (o->swap_in_rate) && o->swap_in_rate > MT_PLAN_SWAPIN_HIGH;
  /* Major faults that rose above what this guest usually has: it reads
   * back page cache (or swap) it lost, typically right after a shrink
   * took a little too much.  A few MiB of hot cache missing stalls the
   * guest a little all the time, well below any pressure target, so
   * the rise itself is the signal, not its size. */
  ev->faults_high =
    isfinite (o->major_fault_rate) && o->major_fault_rate > MT_PLAN_FAULTS_LOW
    && (!isfinite (o->major_fault_rate_avg) || o->major_fault_rate > 2 * o->major_fault_rate_avg);
  ev->emergency = ev->pressured || ev->oom || ev->avail_low;
  faults_many = isfinite (o->major_fault_rate) && o->major_fault_rate > MT_PLAN_FAULTS_HIGH;
  /* Signs that are news the moment they show: PSI avg10 lags, these do not. */
  news = ev->oom || ev->avail_low || ev->swap_high;
  /* The guest reads back what it lost (swap-in, refaulting page cache):
   * the first sign that it is too small.  Not reason enough to grow on
   * its own, but no time to take more. */
  ev->refaulting = ev->swap_high || ev->faults_high || faults_many;
  /* Pressure with the guest reading memory back is pressure more memory
   * relieves.  Pressure without it (a page-cache write stalls in
   * reclaim and writeback however large the guest is) raises the
   * headroom once, not again and again while it lasts. */
  proven = news || ev->faults_high
           || (isfinite (o->major_fault_rate) && o->major_fault_rate > MT_PLAN_FAULTS_LOW)
           || (isfinite (o->swap_in_rate) && o->swap_in_rate > 0);

  hmin = MAX (mt_size_resolve (&p->headroom, MIN (o->used, ev->cur)), p->headroom_min);
  cap = mt_sat_add (in->base_memory, in->vmem_size);
  h = MAX (c->headroom, hmin);
  burst = c->burst;
  /* The room the guest was given for a rise before this sample. */
  room = MAX (h, MAX (burst, mt_vm_control_rise_floor (c)));

  /* Once per sample: a plan triggered by an event between ticks must not
   * react to the same report twice. */
  if (o->observed != c->feedback_time) {
    double dt = c->feedback_time == MT_TIME_NEVER
                  ? 0.0
                  : secs (MIN (mt_elapsed (o->observed, c->feedback_time), 600 * G_USEC_PER_SEC));

    /* A working set that just rose fast may rise as much again: keep
       * that much free for a few minutes.  Free memory costs the host
       * little (free page reporting returns it); a rise the guest has
       * no room for costs it a stall. */
    burst = MAX (mt_sat_from_double ((double) burst * decay (dt, MT_PLAN_BURST_HALF_LIFE)),
                 MIN (o->used_growth, cap));
    c->pressure_floor =
      mt_sat_from_double ((double) c->pressure_floor * decay (dt, MT_PLAN_FLOOR_HALF_LIFE));

    /* PSI avg10 lags: once it falls, the last raise is working. */
    rising = !(isfinite (o->psi_trend) && o->psi_trend < 0);
    raise =
      ev->oom || ev->avail_low || (ev->pressured && rising) || ev->swap_high || ev->faults_high;
    /* Refaults above MT_PLAN_FAULTS_LOW are not calm either: the
       * guest sits at the edge of its hot page cache, and probing
       * lower from there is what stalls it. */
    calm = !raise && !ev->pressured && !ev->refaulting
           && (!isfinite (o->major_fault_rate) || o->major_fault_rate <= MT_PLAN_FAULTS_LOW)
           && (!isfinite (o->psi_some) || o->psi_some <= p->pressure_target / 10);
    /* A sudden rise that outgrew the room the guest had and stalled it
       * is learned: the VM is to be grown ahead of the next one.
       * Stalled: its own PSI says so (the stall budget's measure), or
       * the rise ran MemAvailable out (its agent's report planned at
       * once) and the guest already reads back what it lost (refaults,
       * swap-in): the stall has begun, and a grow in time keeps avg10
       * from ever showing it (in bench/sim's web scenario such first
       * crowds then taught nothing, and later ones found no room).
       * Swap-in or refaults alone do not teach it: without PSI a batch
       * job's GiBs read as such a rise, and holding them for an hour
       * starved the next job.  Nor does a run-out alone: a batch job's
       * ramp then held up to 1.4 GiB more while the job ran (+1.7% host
       * GiB*min in bench/sim's batch scenario). */
    if (((ev->pressured && rising) || (o->running_out && ev->refaulting)) && o->used_growth > room
        && o->used_growth >= MT_PLAN_RAISE_STEP_MIN)
      mt_plan_rise_learn (ctx, ev, MIN (o->used_growth, cap));
    if (ev->oom || ev->avail_low)
      factor = 2.0;
    else if (ev->pressured && rising)
      factor =
        1.0
        + 0.5
            * CLAMP ((o->psi_some - p->pressure_target) / MAX (p->pressure_target, 0.1), 0.5, 1.0);
    else if (raise)
      factor = 1.25;

    /* A raise acts through a grow.  While that grow is on its way, or
       * once this tick already raised, raising again only compounds: the
       * working set term follows the rise anyway, and a VM holding far
       * more than it needs makes the host look short to the others.
       * And PSI avg10 averages 10 s: right after a raise's grow landed
       * it still shows the stall before it, so pressure alone raises
       * again only once avg10 could show whether the last raise helped.
       * Rising refaults, swap-in, low memory and OOM kills are news at
       * once, and so is pressure well above what the last raise
       * answered: a new stall (a file re-read, say), not the old one's
       * echo. */
    hard = news || ev->faults_high
           || (isfinite (o->psi_some) && o->psi_some > MT_PLAN_PSI_WORSE * c->raise_psi);
    in_flight =
      (c->pending && c->last_target > ev->cur)
      || (c->raise_time != MT_TIME_NEVER && mt_elapsed (ctx->now, c->raise_time) < ctx->tick)
      || (!hard && c->raise_time != MT_TIME_NEVER
          && mt_elapsed (ctx->now, c->raise_time) < MT_PLAN_PSI_SETTLE)
      || (!proven && c->raised_unproven);
    if (raise && in_flight)
      c->calm_since = MT_TIME_NEVER;
    else if (raise) {
      /* Pressure while the working set holds still says the
           * headroom is too small (hot page cache it re-reads, say):
           * raise it above what the guest really had free beyond its
           * working set (more than the headroom when its min kept it
           * larger), and remember the level.  Pressure during a rise is
           * the rise's, which the burst and the rise lead answer. */
      gboolean steady = o->used_growth <= MAX (hmin, MT_PLAN_RAISE_STEP_MIN);
      /* Only a strong signal says the guest needs all it holds:
           * marginal refaults are a file read back once. */
      gboolean strong = (ev->pressured && rising) || news || faults_many;
      guint64 had = h;

      if (steady && strong)
        had = MAX (h, mt_sat_sub (mt_sat_sub (ev->cur, ev->active),
                                  ev->idle == MT_UNKNOWN ? ev->cur : ev->idle));
      h =
        MAX (mt_sat_from_double ((double) had * factor), mt_sat_add (had, MT_PLAN_RAISE_STEP_MIN));
      /* Remembered only when more memory relieved it (the guest
           * read memory back): a page-cache write stalls in writeback
           * at any size, and a floor learned from it would hold room
           * the guest only fills with more cache. */
      if (steady && proven) {
        c->pressure_floor = h;
        c->pressure_time = o->observed;
      }
      c->calm_since = MT_TIME_NEVER;
      c->raise_time = ctx->now;
      c->raise_psi = isfinite (o->psi_some) ? o->psi_some : 0.0;
      c->raised_unproven = !proven;
    } else if (calm && c->calm_since == MT_TIME_NEVER) {
      c->calm_since = o->observed;
      c->raised_unproven = FALSE;
    } else if (calm && mt_elapsed (o->observed, c->calm_since) >= MT_PLAN_CALM_HOLD
               && c->feedback_time != MT_TIME_NEVER) {
      /* Probe downward: too little headroom shows up as pressure,
           * which raises it again within one sample.  Fast down to the
           * level pressure was last seen at, slowly below it. */
      double keep = MAX (0.0, 1.0 - MT_PLAN_DECAY_PER_S * MIN (dt, 60.0));
      guint64 lowered = mt_sat_from_double ((double) h * keep);

      h = MAX (hmin, MAX (lowered, MIN (h, c->pressure_floor)));
    } else if (!calm)
      c->calm_since = MT_TIME_NEVER;
    c->feedback_time = o->observed;
  }
  h = MIN (h, cap);
  c->headroom = h;
  c->burst = MIN (burst, cap);
  ev->burst = c->burst > h ? c->burst : 0;
  ev->headroom = MAX (h, c->burst);
  mt_plan_rise_apply (ctx, ev, cap);
  /* A working set on the rise will be larger by the time a grow lands:
   * lead it by what it grows in MT_PLAN_RISE_LEAD.  Not learned, so it
   * is gone as soon as the rise stops. */
  ev->rise = 0;
  if (isfinite (o->used_rate) && o->used_rate > 0)
    ev->rise =
      MIN (mt_sat_from_double (o->used_rate * ((double) MT_PLAN_RISE_LEAD / G_USEC_PER_SEC)), cap);
  ev->need = mt_sat_add (mt_sat_add (ev->active, ev->headroom), ev->rise);
}

static void bounds (MtVmEval *ev);

void
mt_plan_rise_strip (MtVmEval *ev)
{
  if (!ev->rise_applied || ev->over_budget || ev->fixed)
    return;
  ev->rise_applied = FALSE;
  /* What feedback() made of it, which it kept in the control state. */
  ev->burst = ev->next->burst > ev->next->headroom ? ev->next->burst : 0;
  ev->headroom = MAX (ev->next->headroom, ev->next->burst);
  ev->need = mt_sat_add (mt_sat_add (ev->active, ev->headroom), ev->rise);
  bounds (ev);
}

/* ---- bounds ------------------------------------------------------------- */

static void
bounds (MtVmEval *ev)
{
  const MtPlanVm *in = ev->in;
  guint64 dmax = mt_sat_add (in->base_memory, in->vmem_size);
  guint64 pmin, pmax, clo, chi, g, o;

  mt_vm_policy_resolve_bounds (in->policy, dmax, &pmin, &pmax);
  mt_layout_range (&ev->lay, &clo, &chi, &g, &o);
  ev->pmin = pmin;
  ev->granule = g;
  ev->offset = o;
  /* What the domain can do wins over the policy. */
  ev->hi = mt_layout_snap_down (clamp64 (pmax, clo, chi), g, o);
  ev->lo = MIN (mt_layout_snap_up (clamp64 (pmin, clo, chi), g, o), ev->hi);

  ev->want = clamp64 (mt_layout_snap_up (ev->need, g, o), ev->lo, ev->hi);
  ev->floor = ev->lo;
  /* Never take memory from a guest in trouble, nor from one reading
   * back what it lost, unless it is above max. */
  if (ev->emergency || ev->refaulting || ev->over_budget)
    ev->floor = MAX (ev->lo, MIN (mt_layout_snap_down (ev->cur, g, o), ev->hi));
  if (ev->grace) {
    /* Its own need may shrink it, but not below the largest need it
       * showed so far (a booting guest's working set is still rising),
       * and the fair split does not cut it at all. */
    guint64 now_size = MAX (ev->lo, MIN (mt_layout_snap_down (ev->cur, g, o), ev->hi));
    guint64 peak = clamp64 (mt_layout_snap_up (ev->next->grace_need, g, o), ev->lo, ev->hi);

    ev->want = MAX (ev->want, MIN (peak, now_size));
    ev->floor = MAX (ev->floor, MIN (ev->want, now_size));
  }
  ev->want = MAX (ev->want, ev->floor);
  ev->tier1_lo = clamp64 (mt_layout_snap_up (ev->active, g, o), ev->floor, ev->want);
  /* What it needs without the headroom held for a recent rise: that
   * headroom is a guess, and goes first when the host is short. */
  ev->tier0_lo =
    clamp64 (mt_layout_snap_up (mt_sat_sub (ev->need, ev->burst), g, o), ev->tier1_lo, ev->want);
}

/* ---- one VM ------------------------------------------------------------- */

static void
layout_in (MtVmEval *ev, gboolean *vmem_ok)
{
  const MtPlanVm *in = ev->in;
  const MtVmDerived *o = &in->obs;
  gboolean ok =
    in->vmem_block > 0 && in->vmem_size >= in->vmem_block && o->vmem_plugged != MT_UNKNOWN;
  guint64 plugged = o->vmem_plugged == MT_UNKNOWN ? 0 : o->vmem_plugged;

  ev->lay = (MtLayoutIn){
    .mech = in->policy->mechanism,
    .base_memory = in->base_memory,
    .vmem_max = ok ? in->vmem_size / in->vmem_block * in->vmem_block : 0,
    .vmem_block = ok ? in->vmem_block : 0,
    .balloon_floor = MIN (in->base_memory, MAX (MT_PLAN_BALLOON_FLOOR_MIN,
                                                in->base_memory / MT_PLAN_BALLOON_FLOOR_DIV)),
    .balloon = o->balloon_actual,
    .plugged = plugged,
    .requested = o->vmem_requested == MT_UNKNOWN ? plugged : o->vmem_requested,
    .vmem_stalled = ev->next->vmem_stalled,
    /* The hint only steers auto: virtio-mem alone has no balloon to
     * take the rest. */
    .hint = ok && in->policy->block_hints && o->vmem_unpluggable != MT_UNKNOWN,
    .unpluggable = o->vmem_unpluggable == MT_UNKNOWN ? 0 : o->vmem_unpluggable,
  };
  if (ev->lay.mech == MT_MECH_AUTO && !ok)
    ev->lay.mech = MT_MECH_BALLOON;
  *vmem_ok = ok;
}

void
mt_plan_eval_vm (MtPlanCtx *ctx, const MtPlanVm *in, guint index, MtVmEval *ev, MtVmDecision *d)
{
  const MtVmDerived *o = &in->obs;
  gboolean vmem_ok;

  *ev = (MtVmEval){
    .in = in,
    .next = &d->next,
    .why = &d->why,
    .cur = o->current,
    .committed = o->current,
    .active = MT_UNKNOWN,
    .idle = MT_UNKNOWN,
    .headroom = MT_UNKNOWN,
    .need = MT_UNKNOWN,
    .want = MT_UNKNOWN,
    .stall = NAN,
  };
  if (in->control != NULL)
    d->next = *in->control;
  else
    mt_vm_control_init (&d->next);
  memset (&d->why, 0, sizeof d->why);
  d->why.stall = NAN;
  ev->name = in->name;
  ev->index = index;

  if (ev->next->first_seen == MT_TIME_NEVER)
    ev->next->first_seen = ctx->now;

  if (o->current == MT_UNKNOWN) {
    /* Unknown size still occupies the host: count what it could hold. */
    ev->committed = o->rss != MT_UNKNOWN ? o->rss : mt_sat_add (in->base_memory, in->vmem_size);
    fix (ev, MT_DECISION_SKIP, MT_WHY_NO_SIZE);
    return;
  }
  if (in->policy == NULL || in->base_memory == 0) {
    fix (ev, MT_DECISION_SKIP, MT_WHY_NO_POLICY);
    return;
  }
  /* Measured whatever becomes of the VM: stuck or left alone, it still
   * stalls or not. */
  mt_plan_stall (ctx, ev);
  /* A grow asked for but not yet taken is still promised. */
  if (ev->next->pending && ev->next->last_target > ev->cur)
    ev->committed = ev->next->last_target;
  if (ev->next->call_since != MT_TIME_NEVER) {
    check_call (ctx, ev);
    return;
  }

  layout_in (ev, &vmem_ok);
  if (ev->lay.mech == MT_MECH_VIRTIO_MEM && !vmem_ok) {
    fix (ev, MT_DECISION_SKIP, MT_WHY_NO_VMEM);
    return;
  }

  track_progress (ctx, ev);
  if (vmem_ok && (ev->lay.mech == MT_MECH_AUTO || ev->lay.mech == MT_MECH_VIRTIO_MEM))
    track_vmem (ctx, ev);
  ev->lay.vmem_stalled = ev->next->vmem_stalled;
  check_stuck (ctx, ev);
  if (ev->fixed)
    return;

  if (o->source == MT_DATA_NONE) {
    if (o->time == MT_TIME_NEVER)
      fix (ev, MT_DECISION_SKIP, MT_WHY_NO_SAMPLES);
    else if (!o->fresh) {
      fix (ev, MT_DECISION_SKIP, MT_WHY_STALE);
      ev->why->us[0] = mt_elapsed (ctx->now, o->time);
    } else
      fix (ev, MT_DECISION_SKIP, MT_WHY_NO_STATS);
    return;
  }

  feedback (ctx, ev);
  /* Start grace: a VM just started is still touching its memory. */
  ev->grace = !ctx->host_out && ctx->hp->start_grace > 0
              && mt_elapsed (ctx->now, ev->next->first_seen) < ctx->hp->start_grace;
  ev->next->grace_need = ev->grace ? MAX (ev->next->grace_need, ev->need) : 0;
  if (ev->lay.mech == MT_MECH_NONE) {
    fix (ev, MT_DECISION_SKIP, MT_WHY_OBSERVED);
    return;
  }
  bounds (ev);
}
