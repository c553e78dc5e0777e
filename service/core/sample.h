/* sample.h: one observation of a VM, as the backend and the agent link
 * deliver it to the model.  Shared contract between backend-*.c,
 * agent-link.c and model.c.
 *
 * Sizes are bytes, times are monotonic microseconds
 * (g_get_monotonic_time).  A field nobody could observe this tick is
 * MT_UNKNOWN (sizes, counters) or NAN (PSI); consumers must check.
 */
#pragma once

#include <glib.h>

#define MT_KIB ((guint64) 1024)
#define MT_MIB (MT_KIB * 1024)
#define MT_GIB (MT_MIB * 1024)

#define MT_UNKNOWN G_MAXUINT64

/* How the online memory blocks of one kind are used, summed over the
 * blocks (the memtide kernel patches' memoryN/usage, a hint: counted
 * without locks).  Bytes; every field MT_UNKNOWN when not reported. */
typedef struct {
  guint64 blocks;
  guint64 free;
  guint64 movable;
  guint64 unmovable;
  guint64 pinned;
  guint64 offline;
} MtBlockUsage;

#define MT_BLOCK_USAGE_UNKNOWN \
  ((MtBlockUsage){ MT_UNKNOWN, MT_UNKNOWN, MT_UNKNOWN, MT_UNKNOWN, MT_UNKNOWN, MT_UNKNOWN })

typedef struct {
  gint64 time; /* monotonic µs when observed */

  /* What the hypervisor says (backend). */
  guint64 balloon_actual; /* bytes of boot memory the balloon leaves the guest */
  guint64 vmem_plugged;   /* virtio-mem bytes plugged (0 without a device) */
  guint64 vmem_requested; /* virtio-mem bytes requested */
  guint64 rss;            /* host RSS of the VM process */

  /* What the guest says (balloon stats, or the agent when from_agent). */
  guint64 guest_total;      /* MemTotal */
  guint64 guest_available;  /* MemAvailable */
  guint64 guest_free;       /* MemFree ("unused" in balloon stats) */
  guint64 guest_cache;      /* page cache that can be dropped */
  guint64 swap_in;          /* cumulative bytes swapped in */
  guint64 swap_out;         /* cumulative bytes swapped out */
  guint64 major_faults;     /* cumulative count */
  guint64 oom_kills;        /* cumulative count (agent only) */
  double psi_some_avg10;    /* percent, 0..100 (agent only) */
  double psi_full_avg10;    /* percent, 0..100 (agent only) */
  guint64 psi_some_total;   /* µs the guest stalled (PSI some total) since it booted
                               (agent only): the stall budget's measure */
  guint64 reported_free;    /* bytes free page reporting handed back (agent, patched kernels) */
  guint64 reported_total;   /* cumulative bytes reported (agent, patched kernels) */
  guint64 reused_total;     /* cumulative reported bytes allocated again */
  guint64 reporting_passes; /* cumulative reporting passes */
  guint64 reporting_budget_exhausted; /* passes that ended on their budget */
  guint64 reporting_delay_ms;         /* the guest's reporting delay now */
  guint64 reporting_budget_divisor;   /* the guest's per-pass budget divisor now */
  MtBlockUsage usage_kernel;          /* blocks online to a kernel zone */
  MtBlockUsage usage_movable;         /* blocks online to ZONE_MOVABLE */
  MtBlockUsage usage_vmem;            /* blocks of virtio-mem memory, either zone */
  guint64 movable;             /* bytes online in ZONE_MOVABLE: could be unplugged (agent only) */
  guint64 guest_swap_used;     /* SwapTotal - SwapFree (agent only) */
  guint64 guest_inactive_file; /* Inactive(file): page cache not used again lately,
                                  what reclaim takes first (agent only) */
  gboolean can_reclaim;        /* the agent has memory.reclaim (proactive reclaim) */
  gboolean from_agent;
  float runout_rate; /* bytes/s used memory (MemTotal - MemAvailable) rose
                                at, measured by the agent report that planned at
                                once because MemAvailable runs out (triggers.c
                                running_out); NAN otherwise */
} MtVmSample;

/* Fill every field with "unknown" and set the time. */
void mt_vm_sample_init (MtVmSample *s, gint64 now);

typedef struct {
  gint64 time;
  guint64 mem_total;     /* /proc/meminfo MemTotal */
  guint64 mem_available; /* /proc/meminfo MemAvailable */
  guint64 cgroup_limit;  /* memory limit of the cgroup the VMs run in, MT_UNKNOWN = none */
  guint64 cgroup_usage;  /* its current usage, MT_UNKNOWN = none */
  double psi_some_avg10; /* host /proc/pressure/memory */
  double psi_full_avg10;
} MtHostSample;

void mt_host_sample_init (MtHostSample *s, gint64 now);
