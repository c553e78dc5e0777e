/* planner-tune.c: the guest's free page reporting tunables (the memtide
 * kernel patches' delay_ms and budget_divisor), as the policy's
 * page-reporting asks.
 *
 * The planner says what the guest should have, when it differs from
 * what the agent last reported; the daemon sends it (one request at a
 * time, paced, backed off after failures).  Fast reporting pays off
 * when a guest frees memory it will not take back soon, which is what
 * an idle guest does; a busy guest would take the pages back and pay
 * for each reported page it reuses (the host faults it in again).
 *
 * Idle: the agent reports fresh numbers, PSI some avg10 at most
 * MT_PLAN_IDLE_PSI, the working set rose at most MT_PLAN_IDLE_RISE
 * within the model's growth span (5 s), no OOM kill, and all that for
 * MT_PLAN_IDLE_HOLD.  A falling working set is idle: that is the guest
 * freeing what fast reporting returns.  A guest whose used memory falls
 * by MT_PLAN_FREEING a second or more, calm otherwise, counts as idle at
 * once: waiting MT_PLAN_IDLE_HOLD would let the stock values report
 * most of what it just freed (about 8 s for 1 GiB in bench/kernel), and
 * the memory freed as a job ends is what fast return is for.
 */
#define G_LOG_DOMAIN "memtide-planner"

#include <math.h>
#include "planner-private.h"

static gboolean
idle_now (const MtVmDerived *o)
{
  return o->source == MT_DATA_AGENT && o->fresh && isfinite (o->psi_some)
         && o->psi_some <= MT_PLAN_IDLE_PSI && o->used_growth <= MT_PLAN_IDLE_RISE
         && o->oom_kills_new == 0;
}

/* What to go back to: the guest's own values, or the stock ones when
 * memtided has none kept and the guest has the fast values (set by an
 * earlier memtided, whose record went with it).  FALSE: leave them. */
static gboolean
restore_to (const MtVmControl *c, guint32 fast_d, guint32 fast_b, guint64 rep_d, guint64 rep_b,
            gboolean stock_ok, guint32 *d, guint32 *b)
{
  if (c->tune_saved_delay_ms != 0) {
    *d = c->tune_saved_delay_ms;
    *b = c->tune_saved_divisor;
    return TRUE;
  }
  if (stock_ok && rep_d == fast_d && rep_b == fast_b) {
    *d = MT_REPORTING_DELAY_MS_STOCK;
    *b = MT_REPORTING_DIVISOR_STOCK;
    return TRUE;
  }
  return FALSE;
}

void
mt_plan_tune (MtPlanCtx *ctx, MtVmEval *ev, MtVmDecision *d)
{
  const MtVmDerived *o = &ev->in->obs;
  const MtVmPolicy *p = ev->in->policy;
  MtVmControl *c = ev->next;
  guint64 rep_d = o->reporting_delay_ms, rep_b = o->reporting_divisor;
  guint32 fast_d, fast_b, want_d = 0, want_b = 0;
  MtTuneWhy why = MT_TUNE_NONE;
  gboolean idle, freed = FALSE;

  d->tune_delay_ms = d->tune_divisor = 0;
  d->tune_why = MT_TUNE_NONE;
  d->tune_idle_us = 0;
  d->tune_freed_rate = 0;
  if (p == NULL)
    return;
  if (!idle_now (o))
    c->idle_since = MT_TIME_NEVER;
  else if (c->idle_since == MT_TIME_NEVER)
    c->idle_since = o->observed;
  idle =
    c->idle_since != MT_TIME_NEVER && mt_elapsed (o->observed, c->idle_since) >= MT_PLAN_IDLE_HOLD;
  if (!idle && c->idle_since != MT_TIME_NEVER && isfinite (o->used_rate)
      && o->used_rate <= -(double) MT_PLAN_FREEING) {
    /* Idle from now on, as long as it stays calm and does not rise. */
    c->idle_since = o->observed - MT_PLAN_IDLE_HOLD;
    idle = freed = TRUE;
  }
  /* Only a guest that reports its tunables has them (a patched kernel). */
  if (rep_d == MT_UNKNOWN || rep_b == MT_UNKNOWN || !o->fresh)
    return;

  fast_d = (guint32) CLAMP (p->page_reporting_fast_delay / 1000, MT_REPORTING_DELAY_MS_MIN,
                            MT_REPORTING_DELAY_MS_MAX);
  fast_b = (guint32) CLAMP (p->page_reporting_fast_divisor, MT_REPORTING_DIVISOR_MIN,
                            MT_REPORTING_DIVISOR_MAX);
  switch (p->page_reporting) {
  case MT_PAGE_REPORTING_FAST:
    want_d = fast_d;
    want_b = fast_b;
    why = MT_TUNE_FAST;
    break;
  case MT_PAGE_REPORTING_FAST_WHEN_IDLE:
    if (idle) {
      want_d = fast_d;
      want_b = fast_b;
      why = freed ? MT_TUNE_FREED : MT_TUNE_IDLE;
    } else if (restore_to (c, fast_d, fast_b, rep_d, rep_b, TRUE, &want_d, &want_b))
      why = MT_TUNE_BUSY;
    break;
  case MT_PAGE_REPORTING_KEEP:
  default:
    /* Never touches a guest memtided did not change. */
    if (restore_to (c, fast_d, fast_b, rep_d, rep_b, FALSE, &want_d, &want_b))
      why = MT_TUNE_RESTORE;
    break;
  }
  if (why == MT_TUNE_NONE)
    return;
  if (want_d == rep_d && want_b == rep_b) {
    /* Back where the guest was: nothing kept any more. */
    if (why == MT_TUNE_BUSY || why == MT_TUNE_RESTORE)
      c->tune_saved_delay_ms = c->tune_saved_divisor = 0;
    return;
  }
  /* The guest's own values, before the first change. */
  if ((why == MT_TUNE_FAST || why == MT_TUNE_IDLE || why == MT_TUNE_FREED)
      && c->tune_saved_delay_ms == 0) {
    c->tune_saved_delay_ms = (guint32) rep_d;
    c->tune_saved_divisor = (guint32) rep_b;
  }
  d->tune_delay_ms = want_d;
  d->tune_divisor = want_b;
  d->tune_why = why;
  d->tune_idle_us = why == MT_TUNE_IDLE ? mt_elapsed (o->observed, c->idle_since) : 0;
  d->tune_freed_rate = why == MT_TUNE_FREED ? -o->used_rate : 0;
  (void) ctx;
}

char *
mt_vm_decision_format_tune (const MtVmDecision *d)
{
  g_return_val_if_fail (d != NULL, NULL);

  switch (d->tune_why) {
  case MT_TUNE_FAST:
    return g_strdup ("policy page-reporting = fast");
  case MT_TUNE_IDLE:
    return g_strdup_printf ("idle for %.0f s (PSI some at most %.1f%%, used memory not rising by "
                            "%" G_GUINT64_FORMAT " MiB in 5 s); policy page-reporting = "
                            "fast-when-idle",
                            (double) d->tune_idle_us / G_USEC_PER_SEC, MT_PLAN_IDLE_PSI,
                            MT_PLAN_IDLE_RISE / MT_MIB);
  case MT_TUNE_FREED:
    return g_strdup_printf ("the guest frees memory (used memory falls by %.0f MiB/s, PSI some at "
                            "most %.1f%%); policy page-reporting = fast-when-idle",
                            d->tune_freed_rate / MT_MIB, MT_PLAN_IDLE_PSI);
  case MT_TUNE_BUSY:
    return g_strdup ("no longer idle: back to the guest's own values; policy page-reporting = "
                     "fast-when-idle");
  case MT_TUNE_RESTORE:
    return g_strdup ("policy page-reporting = keep: back to the guest's own values");
  case MT_TUNE_NONE:
  default:
    return g_strdup ("");
  }
}
