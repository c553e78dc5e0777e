/* triggers.c: event triggers on guest agent reports (triggers.h). */
#include <math.h>

#include "triggers.h"

static void
pair_reset (MtTriggerPair *p)
{
  p->value[0] = p->value[1] = MT_UNKNOWN;
  p->mono_us[0] = p->mono_us[1] = 0;
}

static void
pair_push (MtTriggerPair *p, guint64 value, guint64 mono_us)
{
  p->value[0] = p->value[1];
  p->mono_us[0] = p->mono_us[1];
  p->value[1] = value;
  p->mono_us[1] = mono_us;
}

/* The newer of the two at least MT_TRIGGER_MIN_SPAN before mono_us: its
 * index, -1 when neither.  (A subtraction, not mono_us[k] + span: a
 * hostile clock near 2^64 must not wrap.) */
static gint
pair_base (const MtTriggerPair *p, guint64 mono_us)
{
  for (gint k = 1; k >= 0; k--)
    if (p->value[k] != MT_UNKNOWN && mono_us >= p->mono_us[k]
        && mono_us - p->mono_us[k] >= MT_TRIGGER_MIN_SPAN)
      return k;
  return -1;
}

void
mt_triggers_reset (MtTriggers *t)
{
  t->last_psi = NAN;
  t->last_oom = MT_UNKNOWN;
  pair_reset (&t->stall);
  pair_reset (&t->used);
}

void
mt_triggers_init (MtTriggers *t)
{
  t->last_event_plan = MT_TIME_NEVER;
  t->last_runout = NAN;
  t->followed_up = FALSE;
  mt_triggers_reset (t);
}

/* MemTotal - MemAvailable, MT_UNKNOWN when not both or nonsense. */
static guint64
report_used (const MtTriggerReport *r)
{
  if (r->mem_total == MT_UNKNOWN || r->mem_available == MT_UNKNOWN
      || r->mem_available > r->mem_total)
    return MT_UNKNOWN;
  return r->mem_total - r->mem_available;
}

/* Share of time stalled since the report at least MT_TRIGGER_MIN_SPAN
 * back, from the kernel's stall counter: what the guest's trigger
 * measured.  NAN when unknown or the counter went back. */
static double
stall_share (const MtTriggers *t, const MtTriggerReport *r)
{
  gint k = pair_base (&t->stall, r->mono_us);

  if (r->psi_some_total_us == MT_UNKNOWN || k < 0 || r->psi_some_total_us < t->stall.value[k])
    return NAN;
  return MIN (100.0, 100.0 * (double) (r->psi_some_total_us - t->stall.value[k])
                       / (double) (r->mono_us - t->stall.mono_us[k]));
}

/* Used memory rising fast enough for MemAvailable to be gone within
 * MT_TRIGGER_RUNOUT_HORIZON: a working set rising into the headroom.
 * PSI shows it only once the guest stalls, the next tick up to a second
 * later.  The rate (bytes/s), NAN when not. */
static double
running_out (const MtTriggers *t, const MtTriggerReport *r, guint64 used, const MtTriggerVm *vm,
             gint64 now)
{
  const MtVmControl *c = vm->control;
  gint k = pair_base (&t->used, r->mono_us);
  double span, rate;

  if (used == MT_UNKNOWN || k < 0)
    return NAN;
  if (vm->has_vmem && c != NULL && c->last_action != MT_TIME_NEVER && c->last_target < c->last_from
      && (c->pending || mt_elapsed (now, c->last_action) < MT_TRIGGER_RUNOUT_AFTER_SHRINK))
    return NAN;
  if (r->mono_us - t->used.mono_us[k] > MT_TRIGGER_RUNOUT_MAX_SPAN || used <= t->used.value[k])
    return NAN;
  span = (double) (r->mono_us - t->used.mono_us[k]) / G_USEC_PER_SEC;
  rate = (double) (used - t->used.value[k]) / span;
  if (rate < MT_TRIGGER_RUNOUT_RATE || (double) r->mem_available > rate * MT_TRIGGER_RUNOUT_HORIZON)
    return NAN;
  return rate;
}

/* The one plan within the gap MT_TRIGGER_RUNOUT_FASTER allows. */
static gboolean
sped_up (const MtTriggers *t, const MtTrigger *out, gint64 now)
{
  return out->kind == MT_TRIGGER_RUNOUT && !t->followed_up && isfinite (t->last_runout)
         && out->runout_rate >= MT_TRIGGER_RUNOUT_FASTER * t->last_runout
         && mt_elapsed (now, t->last_event_plan) >= MT_TRIGGER_MIN_SPAN;
}

void
mt_triggers_check (MtTriggers *t, const MtTriggerReport *r, const MtTriggerVm *vm, gint64 now,
                   MtTrigger *out)
{
  double psi = isfinite (r->psi_some_avg10) ? r->psi_some_avg10 : NAN;
  double target = vm->pressure_target;
  guint64 used = report_used (r);

  *out = (MtTrigger){
    .kind = MT_TRIGGER_NONE,
    .target = target,
    .psi = psi,
    .stall = stall_share (t, r),
    .psi_now = NAN,
    .runout_rate = NAN,
    .available = MT_UNKNOWN,
    .last_runout = NAN,
  };
  /* avg10 is recomputed every 2 s and averages 10 s, so right after the
   * trigger it may not show the stall yet: the plan it asks for sees the
   * recent stall share when that is higher. */
  if (r->psi_trigger)
    out->psi_now =
      isfinite (out->stall) && (!isfinite (psi) || out->stall > psi) ? out->stall : psi;
  if (isfinite (out->psi_now) && out->psi_now > target)
    out->kind = MT_TRIGGER_PSI;
  else if (isfinite (psi) && psi > target && (!isfinite (t->last_psi) || psi > t->last_psi))
    out->kind = MT_TRIGGER_PRESSURE;
  if (r->oom_kill != MT_UNKNOWN && t->last_oom != MT_UNKNOWN && r->oom_kill > t->last_oom) {
    out->kind = MT_TRIGGER_OOM;
    out->oom_new = r->oom_kill - t->last_oom;
  }
  if (out->kind == MT_TRIGGER_NONE) {
    out->runout_rate = running_out (t, r, used, vm, now);
    if (isfinite (out->runout_rate)) {
      out->kind = MT_TRIGGER_RUNOUT;
      out->available = r->mem_available;
    }
  }

  t->last_psi = psi;
  if (r->oom_kill != MT_UNKNOWN)
    t->last_oom = r->oom_kill;
  if (r->psi_some_total_us != MT_UNKNOWN)
    pair_push (&t->stall, r->psi_some_total_us, r->mono_us);
  if (used != MT_UNKNOWN)
    pair_push (&t->used, used, r->mono_us);

  if (out->kind == MT_TRIGGER_NONE || !vm->can_plan)
    return;
  if (mt_elapsed (now, t->last_event_plan) < MT_TRIGGER_EVENT_PLAN_GAP) {
    if (!sped_up (t, out, now)) {
      out->limited = TRUE;
      return;
    }
    out->faster = TRUE;
    out->last_runout = t->last_runout;
  }
  t->followed_up = out->faster;
  t->last_event_plan = now;
  t->last_runout = out->runout_rate;
  out->plan = TRUE;
}

char *
mt_trigger_describe (const MtTrigger *t)
{
  switch (t->kind) {
  case MT_TRIGGER_NONE:
    break;
  case MT_TRIGGER_PSI:
    return g_strdup_printf ("PSI trigger in the guest: pressure %.2f%% > target %.2f%%", t->psi_now,
                            t->target);
  case MT_TRIGGER_PRESSURE:
    return g_strdup_printf ("pressure %.2f%% > target %.2f%%", t->psi, t->target);
  case MT_TRIGGER_OOM:
    return g_strdup_printf ("OOM kill in the guest (%" G_GUINT64_FORMAT " new)", t->oom_new);
  case MT_TRIGGER_RUNOUT:
    if (t->faster)
      return g_strdup_printf ("used memory rises at %.0f MiB/s, %.1f times the %.0f MiB/s the last "
                              "plan answered: %.0f MiB available, gone in %.1f s",
                              t->runout_rate / MT_MIB, t->runout_rate / t->last_runout,
                              t->last_runout / MT_MIB, (double) t->available / MT_MIB,
                              (double) t->available / t->runout_rate);
    return g_strdup_printf ("used memory rises at %.0f MiB/s: %.0f MiB available, gone in %.1f s",
                            t->runout_rate / MT_MIB, (double) t->available / MT_MIB,
                            (double) t->available / t->runout_rate);
  }
  return NULL;
}
