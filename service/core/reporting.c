/* reporting.c: free page reporting claims cross-checked against the
 * host's view, and block usage hints made into sizes (reporting.h). */
#define G_LOG_DOMAIN "memtide-reporting"

#include "reporting.h"

#include "model.h"

guint64
mt_reporting_rss_tolerance (guint64 size)
{
  return mt_sat_add (MT_REPORTING_RSS_SLACK_MIN, size / MT_REPORTING_RSS_SLACK_DIV);
}

guint64
mt_sample_size_now (const MtVmSample *s)
{
  if (s->balloon_actual == MT_UNKNOWN)
    return MT_UNKNOWN;
  /* A saturated size is huge, not unknown. */
  return MIN (mt_sat_add (s->balloon_actual, s->vmem_plugged != MT_UNKNOWN ? s->vmem_plugged : 0),
              MT_UNKNOWN - 1);
}

guint64
mt_sample_rss_saved (const MtVmSample *s)
{
  guint64 size = mt_sample_size_now (s), bound;

  if (s->reported_free == MT_UNKNOWN || s->rss == MT_UNKNOWN || size == MT_UNKNOWN)
    return MT_UNKNOWN;
  bound = mt_sat_add (mt_sat_sub (size, s->rss), mt_reporting_rss_tolerance (size));
  return MIN (s->reported_free, bound);
}

guint64
mt_sample_vmem_unpluggable (const MtVmSample *s)
{
  const MtBlockUsage *u = &s->usage_vmem;

  if (u->blocks == MT_UNKNOWN || u->free == MT_UNKNOWN || u->movable == MT_UNKNOWN
      || s->vmem_plugged == MT_UNKNOWN)
    return MT_UNKNOWN;
  return MIN (mt_sat_add (u->free, u->movable), s->vmem_plugged);
}

void
mt_block_kinds (const MtBlockUsage *kernel, const MtBlockUsage *movable, const MtBlockUsage *vmem,
                MtBlockKind out[MT_BLOCK_KINDS])
{
  out[0] = (MtBlockKind){ "kernel", kernel };
  out[1] = (MtBlockKind){ "movable", movable };
  out[2] = (MtBlockKind){ "virtio-mem", vmem };
}

gboolean
mt_block_kind_shown (const MtBlockKind *k)
{
  return k->usage->blocks != MT_UNKNOWN && k->usage->blocks > 0;
}

void
mt_reporting_totals_init (MtReportingTotals *t)
{
  *t = (MtReportingTotals){ MT_UNKNOWN, MT_UNKNOWN, MT_UNKNOWN, MT_UNKNOWN };
}

static void
add (guint64 *sum, guint64 v)
{
  if (v == MT_UNKNOWN)
    return;
  *sum = *sum == MT_UNKNOWN ? v : mt_sat_add (*sum, v);
  /* Saturated sums stay below MT_UNKNOWN: large, not unknown. */
  if (*sum == MT_UNKNOWN)
    *sum = MT_UNKNOWN - 1;
}

void
mt_reporting_totals_add (MtReportingTotals *t, const MtVmSample *s)
{
  add (&t->reported_free, s->reported_free);
  add (&t->reported_total, s->reported_total);
  add (&t->reused_total, s->reused_total);
  add (&t->rss_saved, mt_sample_rss_saved (s));
}
