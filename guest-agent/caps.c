/* memtide-agent: protocol names of what may be unavailable. */
#include "caps.h"

#include "util.h"

static const char *const names[UA_N] = {
  [UA_MEMINFO] = "meminfo",
  [UA_VMSTAT] = "vmstat",
  [UA_PSI] = "psi",
  [UA_PSI_TRIGGER] = "psi_trigger",
  [UA_MEMORY_BLOCKS] = "memory_blocks",
  [UA_MEMORY_ZONES] = "memory_zones",
  [UA_PAGE_REPORTING] = "page_reporting",
  [UA_PAGE_REPORTING_COUNTERS] = "page_reporting_counters",
  [UA_BLOCK_USAGE] = "block_usage",
  [UA_VIRTIO_MEM_RANGES] = "virtio_mem_ranges",
  [UA_MEMORY_RECLAIM] = "memory.reclaim",
  [UA_DROP_CACHES] = "drop_caches",
  [UA_MLOCK] = "mlock",
};

const char *
unavail_name (enum unavail u)
{
  return (unsigned) u < ARRAY_SIZE (names) ? names[u] : "?";
}
