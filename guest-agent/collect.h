/* memtide-agent: read the guest's memory state (meminfo, vmstat, PSI,
 * memory blocks, free page reporting) into a plain struct.  The parsers
 * are pure functions so the tests feed them text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  MI_TOTAL,
  MI_FREE,
  MI_AVAILABLE,
  MI_BUFFERS,
  MI_CACHED,
  MI_SHMEM,
  MI_ANON,
  MI_SRECLAIMABLE,
  MI_INACTIVE_FILE,
  MI_SWAP_TOTAL,
  MI_SWAP_FREE,
  MI_N
};
enum { VS_PGMAJFAULT, VS_PSWPIN, VS_PSWPOUT, VS_OOM_KILL, VS_N };
/* Files of the memtide guest kernel patches in /sys/kernel/mm/page_reporting/,
 * see docs/agent-protocol.md: byte counts, pass counts, then the tunables. */
enum {
  PR_REPORTED,
  PR_REPORTED_TOTAL,
  PR_REUSED_TOTAL,
  PR_PASSES,
  PR_BUDGET_EXHAUSTED,
  PR_DELAY_MS,
  PR_BUDGET_DIVISOR,
  PR_N
};

/* The lines of memoryN/usage (memtide kernel patches), in pages. */
enum { BU_FREE, BU_MOVABLE, BU_UNMOVABLE, BU_PINNED, BU_OFFLINE, BU_N };
/* Kinds block usage is summed by; a virtio-mem block also counts in its zone. */
enum { UK_KERNEL, UK_MOVABLE, UK_VMEM, UK_N };

struct usage_sum {
  uint64_t blocks;
  uint64_t pages[BU_N];
};

struct psi_line {
  bool have;
  char avg10[8]; /* kernel text, validated: "0.00".."100.00" */
  char avg60[8];
  uint64_t total_us;
};

struct psi_values {
  struct psi_line some, full;
};

struct block_counts {
  uint64_t block_size;
  uint32_t online_movable, online_kernel, offline, going_offline;
};

struct sample {
  uint64_t mi[MI_N]; /* bytes */
  uint32_t mi_have;  /* bit per MI_* */
  uint64_t vs[VS_N]; /* raw kernel counters */
  uint32_t vs_have;
  bool have_psi;
  struct psi_values psi;
  bool have_blocks;
  struct block_counts blocks;
  bool have_pr_order;
  uint32_t pr_order;
  uint64_t pr[PR_N]; /* as the kernel prints them: bytes, counts, ms */
  uint32_t pr_have;
  bool have_usage; /* every online block's usage read at least once */
  struct usage_sum usage[UK_N];
};

enum block_kind { BK_ONLINE_MOVABLE, BK_ONLINE_KERNEL, BK_OFFLINE, BK_GOING_OFFLINE, BK_UNKNOWN };

uint32_t meminfo_parse (const char *text, uint64_t out[MI_N]);
uint32_t vmstat_parse (const char *text, uint64_t out[VS_N]);
bool psi_parse (const char *text, struct psi_values *out);
/* zones: first line of memoryN/valid_zones, or NULL when absent. */
enum block_kind block_classify (const char *state, const char *zones);
/* memoryN/usage: true when all five lines are there. */
bool usage_parse (const char *text, uint64_t out[BU_N]);
/* One line of /proc/iomem: true and the range when it is a virtio-mem
 * memory range ("System RAM (virtio_mem)", at any nesting depth). */
bool iomem_vmem_line (const char *line, uint64_t *start, uint64_t *end);

/* One online memory block whose usage is summed. */
struct usage_block {
  uint64_t index;
  bool movable, vmem, have;
  uint64_t pages[BU_N];
};

struct collector {
  int meminfo_fd, vmstat_fd, psi_fd, pr_order_fd;
  int pr_fd[PR_N];
  int mem_dirfd; /* /sys/devices/system/memory */
  uint64_t block_size;
  /* Scanning every block is the costly part of a report: it is cached
   * and redone when dirty (a memory uevent) or older than max_age. */
  struct block_counts blocks;
  bool blocks_valid, blocks_dirty, zones_missing;
  uint64_t blocks_at_us, blocks_max_age_us;
  /* Online blocks sorted by index (from the same scan), their last usage. */
  struct usage_block *ub;
  size_t n_ub, ub_next;
  bool usage_supported; /* the kernel has memoryN/usage */
  bool vmem_known;      /* /proc/iomem showed its addresses */
};

/* Opens what exists; never fails.  Sets UA_* bits in *unavail. */
void collector_open (struct collector *c, uint32_t *unavail);
void collector_close (struct collector *c);
void collector_read (struct collector *c, struct sample *s, uint32_t *unavail, uint64_t now_us);
/* Just MemFree in bytes (0 when unknown): for measuring drop_caches. */
uint64_t collector_mem_free (struct collector *c);
/* Just MemTotal and MemAvailable in bytes: false when either is unknown
 * (the memory watch). */
bool collector_mem_available (struct collector *c, uint64_t *total, uint64_t *available);
