/* sim.h: the trace-driven host simulator that runs memtide's real planner
 * (and published baselines) against modelled guests.
 *
 * The world advances in steps of SIM_DT seconds.  Each step every guest
 * follows its workload (working set, page cache), the balloon and
 * virtio-mem move toward what was asked with their latency and speed,
 * free page reporting hands free memory back after a delay, and a guest
 * short of its working set swaps, stalls and finally OOM-kills.  The
 * policy under test sees only what a real one would: balloon stats every
 * stats period, agent reports (with PSI) every second, the host's
 * /proc/meminfo; and acts only through set_balloon / set_vmem.
 *
 * Inside the model sizes are double MiB: the dynamics are continuous
 * rates, and bytes (guint64) appear only at the sample boundary where the
 * planner's MtVmSample is filled (sim_mib_to_bytes).
 */
#pragma once

#include <glib.h>

#define SIM_DT      0.1 /* s per step */
#define SIM_MAX_VMS 256

static inline guint64
sim_mib_to_bytes (double mib)
{
  if (!(mib > 0.0))
    return 0;
  return (guint64) (mib * 1048576.0);
}

static inline double
sim_bytes_to_mib (guint64 b)
{
  return (double) b / 1048576.0;
}

/* ---- workloads ------------------------------------------------------------ */

/* What one VM's software wants, one point per second (interpolated). */
typedef struct {
  guint n;      /* points: t = 0 .. n-1 s */
  float *ws;    /* working set MiB: anonymous + unreclaimable */
  float *cache; /* page cache MiB it would use if it had room */
} SimLoad;

void sim_load_init (SimLoad *l, guint n);
void sim_load_clear (SimLoad *l);
double sim_load_ws (const SimLoad *l, double t);
double sim_load_cache (const SimLoad *l, double t);

/* One VM of a scenario: its configuration and its workload. */
typedef struct {
  char name[32];
  double boot;           /* MiB boot memory (the balloon's range) */
  double vmem_size;      /* MiB virtio-mem device, 0 = none */
  double vmem_block;     /* MiB virtio-mem block (2) */
  double vmem_unmovable; /* MiB of plugged memory the guest can never
                                 offline (pinned / unmovable pages) */
  double swap;           /* MiB guest swap */
  double hot_cache;      /* fraction of the cache re-read often: losing it stalls */
  double start;          /* s: powered on then (boot storms); 0 = running */
  gboolean agent;        /* memtide-agent reports PSI every second */
  SimLoad load;
} SimVmSpec;

typedef struct {
  char name[32];
  char title[96];
  double duration; /* s */
  guint64 seed;
  double host_total; /* MiB physical */
  double host_base;  /* MiB the host itself uses (kernel, services) */
  double host_swap;  /* MiB host swap */
  guint n_vms;
  SimVmSpec vms[SIM_MAX_VMS];
} SimScenario;

const char *const *sim_scenario_names (void);
/* The number of VMs in a built-in scenario's own mix, 0 if unknown. */
guint sim_scenario_default_vms (const char *name);
/* Fills *sc for a built-in scenario; FALSE if unknown.  duration <= 0
 * keeps the scenario's own; n_vms 0 the scenario's own mix, else that
 * many VMs of the same kinds in the same order (the first n_vms VMs of
 * a larger mix are the same VMs), on the same host. */
gboolean sim_scenario_build (SimScenario *sc, const char *name, guint64 seed, double duration,
                             guint n_vms, gboolean balloon_only);
/* Reads a CSV trace (docs/benchmarks.md): time_s,vm,working_set_mib,
 * cache_mib[,max_mib].  host_mib 0 = 3/4 of the VMs' maximum. */
gboolean sim_scenario_from_trace (SimScenario *sc, const char *path, double host_mib,
                                  gboolean balloon_only, GError **error);
void sim_scenario_clear (SimScenario *sc);
/* The no-stall floor of all the scenario's VMs together at its highest
 * (each second; docs/benchmarks.md "What the figures mean"), MiB: above
 * what the host has for VMs, no policy can hold them without stalling. */
double sim_scenario_floor_peak (const SimScenario *sc);

/* ---- the world ---------------------------------------------------------- */

/* virtio-balloon stats as libvirt returns them (refreshed every stats period). */
typedef struct {
  double time;
  double total;             /* "available": guest MemTotal */
  double usable;            /* MemAvailable */
  double unused;            /* MemFree */
  double caches;            /* disk_caches */
  double swap_in, swap_out; /* MiB cumulative */
  double major_faults;      /* cumulative */
} SimStats;

/* memtide-agent report (every second). */
typedef struct {
  double time;
  double total, available, free, cache;
  double swap_in, swap_out, major_faults;
  double swap_used;     /* MiB swapped out now (SwapTotal - SwapFree) */
  double inactive_file; /* MiB of the cache not re-read lately (Inactive(file)) */
  double psi_some10, psi_full10;
  double stall_total; /* s stalled since boot (PSI some total) */
  guint oom_kills;
  gboolean trigger; /* sent at once: the guest's PSI trigger fired */
} SimReport;

typedef struct {
  const SimVmSpec *spec;
  gboolean running;

  /* Hypervisor. */
  double balloon; /* MiB boot memory the balloon leaves the guest */
  double balloon_target;
  double balloon_cmd_at;     /* s: the driver starts moving then */
  double plugged, requested; /* virtio-mem */
  double vmem_cmd_at;
  double rss; /* host memory this VM's guest memory occupies */

  /* Guest. */
  double anon;    /* resident working set */
  double swapped; /* working set pushed to swap */
  double cache;
  double cold_lost; /* cold cache evicted and not re-read since */
  double want;      /* working set the software wants now */
  double oom_until; /* s: a killed service restarts then */
  double psi_now;   /* instantaneous stall fraction 0..1 */
  double psi10;     /* avg10, percent */
  double psi_full10;
  double swap_in, swap_out, faults; /* cumulative */
  guint oom_kills;

  SimStats stats;
  SimReport report;
  double next_stats, next_report;

  gboolean new_report;       /* this step: the agent sent a report */
  double stall_window[10];   /* stall per step over the last second */
  double last_trigger;       /* s: the PSI trigger fires once per window */
  double last_memory_report; /* s: the agent's memory watch sent a report */

  /* Metrics. */
  double stall_s;
  gboolean short_now; /* working set above what the guest has */
  double short_since;
  gboolean short_from_rise;

  /* SIM_LOG_STALL: where the current stall episode's stall comes from. */
  double stall_ep_since; /* s, < 0 = not stalling */
  double stall_ep_swap, stall_ep_cache, stall_ep_host;
  double stall_ep_min_size, stall_ep_max_want;
  double stall_window_end; /* s: last step that stalled */

  /* stall_s at each whole second of the run (stall_at[t]), for the
   * worst window of the stall budget (sim_vm_worst_window). */
  float *stall_at;
  guint n_stall_at;
} SimVm;

typedef struct _SimWorld SimWorld;
typedef struct _SimPolicy SimPolicy;

typedef struct {
  double host_total;
  double mem_available; /* MemTotal - used, as /proc/meminfo */
  double mem_free;      /* MemFree + Buffers + Cached (MOM's mem_free) */
  double used;          /* host_base + VM RSS (Proxmox's memused) */
} SimHostView;

typedef struct {
  double vm_rss_mib_s;    /* integral of the VMs' host memory, MiB*s */
  double committed_mib_s; /* integral of the VMs' sizes */
  double floor_mib_s;     /* integral of the no-stall floor (no_stall_floor()) */
  double peak_rss;        /* MiB, VMs' host memory at its highest */
  double peak_committed;
  double peak_host_swap; /* MiB of guest memory the host swapped, at its highest */
  double stall_s;        /* sum over VMs of guest stall time (PSI some) */
  guint oom_kills;       /* guest OOM kills */
  guint host_oom_kills;
  double host_swap_mib_s;
  guint actions;         /* resize requests sent to the hypervisor */
  GArray *grant_s;       /* double: demand rise to grant, per episode */
  guint killed_episodes; /* ended by an OOM kill, not by a grant */
} SimMetrics;

struct _SimWorld {
  const SimScenario *sc;
  double now;
  guint n;
  SimVm vm[SIM_MAX_VMS];
  double host_swap_used;
  double stats_period; /* s between balloon stats refreshes */
  gboolean fpr;        /* free page reporting on */
  double fpr_delay;    /* s */
  gboolean log_stall;  /* SIM_LOG_STALL: print each stall episode's causes */
  const char *trace;   /* SIM_TRACE=vm[,vm...][:from[:to]]: per-step guest state */
  SimMetrics m;
};

/* ---- policies ------------------------------------------------------------ */

struct _SimPolicy {
  const char *name;   /* command-line name */
  const char *label;  /* table label */
  const char *source; /* where the algorithm comes from */
  gpointer (*init) (SimWorld *w, const char *arg, GError **error);
  /* Called every step; the policy keeps its own period. */
  void (*step) (gpointer self, SimWorld *w);
  /* An agent report just arrived (may be NULL). */
  void (*report) (gpointer self, SimWorld *w, guint vm);
  void (*free) (gpointer self);
};

extern const SimPolicy sim_policy_memtide;
extern const SimPolicy sim_policy_memtide_stats;
extern const SimPolicy sim_policy_static;
extern const SimPolicy sim_policy_mom;
extern const SimPolicy sim_policy_squeezed;
extern const SimPolicy sim_policy_proxmox;

const SimPolicy *const *sim_policies (void);
const SimPolicy *sim_policy_find (const char *name);

/* ---- world API for policies ------------------------------------------------ */

void sim_world_init (SimWorld *w, const SimScenario *sc, gboolean fpr);
void sim_world_clear (SimWorld *w);
/* One SIM_DT step of every guest and the host. */
void sim_world_step (SimWorld *w);

double sim_vm_size (const SimVm *v); /* balloon + plugged, MiB */
/* The most a VM stalled within any `window` seconds of the run so far
 * (a window may start before the run), s; *at (may be NULL) gets the
 * second that window ended. */
double sim_vm_worst_window (const SimVm *v, double window, double *at);
double sim_vm_max (const SimVm *v); /* boot + device */
void sim_host_view (const SimWorld *w, SimHostView *out);

/* Requests; the guest follows with latency.  The policy counts its
 * actions (w->m.actions): one per resize decision sent. */
void sim_set_balloon (SimWorld *w, guint vm, double mib);
void sim_set_vmem (SimWorld *w, guint vm, double mib);
/* The agent's memory.reclaim: the guest drops up to `mib` of page cache
 * at once, cold (inactive) pages first. */
void sim_reclaim (SimWorld *w, guint vm, double mib);
