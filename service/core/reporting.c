/* reporting.c: see reporting.h. */
#define G_LOG_DOMAIN "memtide-reporting"

#include "reporting.h"

guint64
mt_sample_vmem_unpluggable (const MtVmSample *s)
{
  guint64 sum;

  g_return_val_if_fail (s != NULL, MT_UNKNOWN);
  if (s->usage_vmem.free == MT_UNKNOWN || s->usage_vmem.movable == MT_UNKNOWN
      || s->vmem_plugged == MT_UNKNOWN)
    return MT_UNKNOWN;
  sum = s->usage_vmem.free > G_MAXUINT64 - s->usage_vmem.movable
          ? G_MAXUINT64
          : s->usage_vmem.free + s->usage_vmem.movable;
  return MIN (sum, s->vmem_plugged);
}
