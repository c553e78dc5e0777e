/* sample.c: initialisers for the observation structs in sample.h. */
#define G_LOG_DOMAIN "memtide-sample"

#include <math.h>
#include "sample.h"

void
mt_vm_sample_init (MtVmSample *s, gint64 now)
{
  *s = (MtVmSample){
    .time = now,
    .balloon_actual = MT_UNKNOWN,
    .vmem_plugged = MT_UNKNOWN,
    .vmem_requested = MT_UNKNOWN,
    .rss = MT_UNKNOWN,
    .guest_total = MT_UNKNOWN,
    .guest_available = MT_UNKNOWN,
    .guest_free = MT_UNKNOWN,
    .guest_cache = MT_UNKNOWN,
    .swap_in = MT_UNKNOWN,
    .swap_out = MT_UNKNOWN,
    .major_faults = MT_UNKNOWN,
    .oom_kills = MT_UNKNOWN,
    .psi_some_avg10 = NAN,
    .psi_full_avg10 = NAN,
    .psi_some_total = MT_UNKNOWN,
    .reported_free = MT_UNKNOWN,
    .reported_total = MT_UNKNOWN,
    .reused_total = MT_UNKNOWN,
    .reporting_passes = MT_UNKNOWN,
    .reporting_budget_exhausted = MT_UNKNOWN,
    .reporting_delay_ms = MT_UNKNOWN,
    .reporting_budget_divisor = MT_UNKNOWN,
    .usage_kernel = MT_BLOCK_USAGE_UNKNOWN,
    .usage_movable = MT_BLOCK_USAGE_UNKNOWN,
    .usage_vmem = MT_BLOCK_USAGE_UNKNOWN,
    .movable = MT_UNKNOWN,
    .guest_swap_used = MT_UNKNOWN,
    .guest_inactive_file = MT_UNKNOWN,
    .from_agent = FALSE,
    .runout_rate = NAN,
  };
}

void
mt_host_sample_init (MtHostSample *s, gint64 now)
{
  *s = (MtHostSample){
    .time = now,
    .mem_total = MT_UNKNOWN,
    .mem_available = MT_UNKNOWN,
    .cgroup_limit = MT_UNKNOWN,
    .cgroup_usage = MT_UNKNOWN,
    .psi_some_avg10 = NAN,
    .psi_full_avg10 = NAN,
  };
}
