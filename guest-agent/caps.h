/* memtide-agent: the things the agent may be unable to read or do.  Each
 * has a stable protocol name, listed in "unavailable" in hello reports
 * (docs/agent-protocol.md) and said once on stderr. */
#pragma once

#include <stdint.h>

enum unavail {
  UA_MEMINFO,                 /* /proc/meminfo */
  UA_VMSTAT,                  /* /proc/vmstat */
  UA_PSI,                     /* /proc/pressure/memory */
  UA_PSI_TRIGGER,             /* PSI poll trigger: pressure is polled instead */
  UA_MEMORY_BLOCKS,           /* /sys/devices/system/memory */
  UA_MEMORY_ZONES,            /* memoryN/valid_zones (no CONFIG_MEMORY_HOTREMOVE) */
  UA_PAGE_REPORTING,          /* /sys/module/page_reporting/parameters/page_reporting_order */
  UA_PAGE_REPORTING_COUNTERS, /* /sys/kernel/mm/page_reporting/ (memtide kernel patches) */
  UA_BLOCK_USAGE,             /* memoryN/usage (memtide kernel patches) */
  UA_VIRTIO_MEM_RANGES,       /* /proc/iomem's virtio-mem addresses (root only) */
  UA_MEMORY_RECLAIM,          /* cgroup v2 memory.reclaim */
  UA_DROP_CACHES,             /* /proc/sys/vm/drop_caches */
  UA_MLOCK,                   /* could not lock the agent in memory */
  UA_N
};

const char *unavail_name (enum unavail u);

static inline void
unavail_set (uint32_t *mask, enum unavail u, int on)
{
  if (on)
    *mask |= 1u << u;
  else
    *mask &= ~(1u << u);
}
