/* world.c: the modelled guests and host, one SIM_DT step at a time.
 *
 * Every constant below is a modelling choice, documented with its reason
 * in docs/benchmarks.md ("The guest model").  They are the same for every
 * policy: only the requests differ between runs.
 */
#include <math.h>
#include "sim.h"

/* Balloon: QEMU tells the driver, which moves pages in batches. */
#define BALLOON_LATENCY      0.2    /* s from request to first pages */
#define BALLOON_DEFLATE_RATE 1024.0 /* MiB/s given back to the guest */
#define BALLOON_INFLATE_RATE 512.0  /* MiB/s taken from it */
/* virtio-mem: the guest driver onlines/offlines 2 MiB blocks. */
#define VMEM_LATENCY     0.2
#define VMEM_PLUG_RATE   2048.0
#define VMEM_UNPLUG_RATE 512.0 /* offlining migrates pages: slower */
/* Guest kernel. */
#define KERNEL_FIXED     32.0  /* MiB left out of MemTotal, plus size/64 */
#define MIN_CACHE        16.0  /* MiB of file pages a guest always keeps */
#define CACHE_FILL_RATE  200.0 /* MiB/s the workload reads into the cache */
#define SWAPIN_RATE      0.5   /* fraction of swapped memory back per s once room */
#define THRASH_RATE      0.2   /* fraction of swapped memory re-faulted per s */
#define REFAULT_RATE     0.5   /* fraction of missing hot cache re-read per s */
#define COLD_REREAD_TAU  600.0 /* s: evicted cold cache comes back as it is re-read */
#define FAULT_BYTES      32.0  /* KiB per major fault (readahead) */
#define OOM_RESTART      30.0  /* s a killed service takes to come back */
#define OOM_KEEP         0.5   /* of its working set it uses meanwhile */
#define FPR_UNREPORTABLE 0.10  /* free memory not in whole 2 MiB blocks */
/* memtide-agent's default PSI trigger "some 150000 1000000": 150 ms of
 * stall within 1 s fires a report at once, at most once per window. */
#define PSI_TRIGGER_STALL  0.15 /* s */
#define PSI_TRIGGER_WINDOW 1.0  /* s */
#define REPORT_PERIOD      1.0  /* s between agent reports */
/* The agent's memory watch (guest-agent/agent.c running_out): every
 * 200 ms, used memory (MemTotal - MemAvailable) risen at >= 32 MiB/s
 * since the last report, with MemAvailable gone within 3 s at that rate,
 * sends a report at once, at most one a second. */
#define MEMORY_WATCH_STEPS 2
#define RUNOUT_RATE        32.0 /* MiB/s */
#define RUNOUT_HORIZON     3.0  /* s */
#define RUNOUT_MIN_SPAN    0.2  /* s */
#define RUNOUT_GAP         1.0  /* s */

double
sim_vm_size (const SimVm *v)
{
  return v->running ? v->balloon + v->plugged : 0.0;
}

double
sim_vm_max (const SimVm *v)
{
  return v->spec->boot + v->spec->vmem_size;
}

static double
kernel_overhead (double size)
{
  return size / 64.0 + KERNEL_FIXED;
}

void
sim_world_init (SimWorld *w, const SimScenario *sc, gboolean fpr)
{
  *w = (SimWorld){
    .sc = sc,
    .n = sc->n_vms,
    .stats_period = 2.0,
    .fpr = fpr,
    .fpr_delay = 2.0,
    .log_stall = g_getenv ("SIM_LOG_STALL") != NULL,
    .trace = g_getenv ("SIM_TRACE"),
  };
  w->m.grant_s = g_array_new (FALSE, FALSE, sizeof (double));
  for (guint i = 0; i < w->n; i++) {
    SimVm *v = &w->vm[i];

    v->spec = &sc->vms[i];
    v->balloon = v->balloon_target = v->spec->boot;
    v->plugged = v->requested = v->spec->vmem_size;
    v->balloon_cmd_at = v->vmem_cmd_at = 0;
    v->oom_until = -1;
    v->last_trigger = v->last_memory_report = -1e9;
    v->stats.time = v->report.time = -1e9;
    v->stall_ep_since = -1;
    v->n_stall_at = (guint) ceil (sc->duration) + 2;
    v->stall_at = g_new0 (float, v->n_stall_at);
  }
}

void
sim_world_clear (SimWorld *w)
{
  g_clear_pointer (&w->m.grant_s, g_array_unref);
  for (guint i = 0; i < w->n; i++)
    g_clear_pointer (&w->vm[i].stall_at, g_free);
}

double
sim_vm_worst_window (const SimVm *v, double window, double *at)
{
  guint w = (guint) MAX (1.0, round (window)), last = 0;
  double worst = 0;

  if (at != NULL)
    *at = 0;
  /* stall_at only rises: the last second it was written is where it
   * stopped. */
  for (guint t = 1; t < v->n_stall_at; t++)
    if (v->stall_at[t] >= v->stall_at[last])
      last = t;
  for (guint t = 1; t <= last; t++) {
    double s = v->stall_at[t] - (t >= w ? v->stall_at[t - w] : 0.0f);

    if (s > worst) {
      worst = s;
      if (at != NULL)
        *at = t;
    }
  }
  return worst;
}

/* A driver already moving toward an old target the same way just goes
 * on toward the new one: Linux's virtio_balloon and virtio_mem re-read
 * the target after every batch (update_balloon_size_func,
 * virtio_mem_run_wq), so only a start (or a turn) pays the latency. */
static gboolean
moving_toward (double now, double cmd_at, double cur, double old_target, double new_target)
{
  return now >= cmd_at && cur != old_target && (old_target > cur) == (new_target > cur);
}

void
sim_set_balloon (SimWorld *w, guint i, double mib)
{
  SimVm *v = &w->vm[i];
  double target = CLAMP (mib, 0.0, v->spec->boot);

  if (!moving_toward (w->now, v->balloon_cmd_at, v->balloon, v->balloon_target, target))
    v->balloon_cmd_at = w->now + BALLOON_LATENCY;
  v->balloon_target = target;
}

void
sim_set_vmem (SimWorld *w, guint i, double mib)
{
  SimVm *v = &w->vm[i];
  double blk = v->spec->vmem_block > 0 ? v->spec->vmem_block : 2.0;

  double target = CLAMP (floor (mib / blk + 1e-9) * blk, 0.0, v->spec->vmem_size);

  if (!moving_toward (w->now, v->vmem_cmd_at, v->plugged, v->requested, target))
    v->vmem_cmd_at = w->now + VMEM_LATENCY;
  v->requested = target;
}

void
sim_host_view (const SimWorld *w, SimHostView *out)
{
  double rss = 0;

  for (guint i = 0; i < w->n; i++)
    rss += w->vm[i].running ? w->vm[i].rss : 0.0;
  out->host_total = w->sc->host_total;
  out->used = w->sc->host_base + rss;
  out->mem_available = MAX (0.0, w->sc->host_total - out->used);
  out->mem_free = out->mem_available;
}

/* ---- one guest ------------------------------------------------------------ */

static void
move_hypervisor (SimWorld *w, SimVm *v)
{
  const SimVmSpec *s = v->spec;

  if (w->now >= v->balloon_cmd_at && v->balloon != v->balloon_target) {
    if (v->balloon < v->balloon_target)
      v->balloon = MIN (v->balloon_target, v->balloon + BALLOON_DEFLATE_RATE * SIM_DT);
    else
      v->balloon = MAX (v->balloon_target, v->balloon - BALLOON_INFLATE_RATE * SIM_DT);
  }
  if (s->vmem_size > 0 && w->now >= v->vmem_cmd_at && v->plugged != v->requested) {
    if (v->plugged < v->requested)
      v->plugged = MIN (v->requested, v->plugged + VMEM_PLUG_RATE * SIM_DT);
    else {
      /* Offlining must migrate what is in use into the memory that
           * stays, and cannot move pinned/unmovable pages at all: below
           * that the unplug stalls (plugged stays above requested). */
      double blk = s->vmem_block > 0 ? s->vmem_block : 2.0;
      double keep = v->anon + kernel_overhead (v->balloon + v->plugged) + 64.0 - v->balloon;
      double limit = MAX (v->requested, MIN (v->plugged, MAX (s->vmem_unmovable, keep)));

      limit = ceil (limit / blk - 1e-9) * blk;
      v->plugged = MAX (MIN (limit, v->plugged), v->plugged - VMEM_UNPLUG_RATE * SIM_DT);
      v->plugged = MAX (v->plugged, v->requested);
    }
  }
}

static void
oom_kill (SimWorld *w, SimVm *v)
{
  v->oom_kills++;
  w->m.oom_kills++;
  if (g_getenv ("SIM_LOG_ACTIONS") != NULL)
    g_printerr ("t=%.1f %s: OOM kill (size %.0f MiB, want %.0f MiB, swapped %.0f MiB)\n", w->now,
                v->spec->name, sim_vm_size (v), v->want, v->swapped);
  v->oom_until = w->now + OOM_RESTART;
  /* A kill is no grant: the episode ends without a time. */
  if (v->short_now && v->short_from_rise)
    w->m.killed_episodes++;
  v->short_from_rise = FALSE;
  /* The killed process's memory, swapped or not, is gone. */
  v->swapped = 0;
  v->anon = MIN (v->anon, v->want * OOM_KEEP);
}

/* SIM_LOG_STALL: one line per stall episode (stall without a 1 s
 * break), split by cause, with the smallest size and largest working
 * set seen: where a policy's stall comes from. */
static void
log_stall (SimWorld *w, SimVm *v, double s_swap, double s_cache, double s_host, double size)
{
  double total = s_swap + s_cache + s_host, scale = total > 1.0 ? 1.0 / total : 1.0;

  if (total > 0) {
    if (v->stall_ep_since < 0) {
      v->stall_ep_since = w->now;
      v->stall_ep_swap = v->stall_ep_cache = v->stall_ep_host = 0;
      v->stall_ep_min_size = size;
      v->stall_ep_max_want = v->want;
    }
    v->stall_ep_swap += s_swap * scale * SIM_DT;
    v->stall_ep_cache += s_cache * scale * SIM_DT;
    v->stall_ep_host += s_host * scale * SIM_DT;
    v->stall_ep_min_size = MIN (v->stall_ep_min_size, size);
    v->stall_ep_max_want = MAX (v->stall_ep_max_want, v->want);
    v->stall_window_end = w->now;
    return;
  }
  if (v->stall_ep_since >= 0 && w->now - v->stall_window_end >= 1.0) {
    g_printerr (
      "t=%.1f %s: stalled %.2f s from t=%.1f to %.1f (swap %.2f, hot cache %.2f, host %.2f); "
      "size down to %.0f MiB, working set up to %.0f MiB\n",
      w->now, v->spec->name, v->stall_ep_swap + v->stall_ep_cache + v->stall_ep_host,
      v->stall_ep_since, v->stall_window_end, v->stall_ep_swap, v->stall_ep_cache, v->stall_ep_host,
      v->stall_ep_min_size, v->stall_ep_max_want);
    v->stall_ep_since = -1;
  }
}

/* SIM_TRACE=vm[,vm...][:from[:to]]: one line per step per named VM,
 * what it has and what it does with it, to see how a stall comes about. */
static void
trace_guest (SimWorld *w, SimVm *v, double size, double total, double hot, double stall)
{
  g_auto (GStrv) parts = g_strsplit (w->trace, ":", 3);
  g_auto (GStrv) names = g_strsplit (parts[0], ",", -1);
  double from = parts[1] ? g_ascii_strtod (parts[1], NULL) : 0;
  double to = parts[1] && parts[2] ? g_ascii_strtod (parts[2], NULL) : 1e12;

  if (w->now < from - 1e-9 || w->now > to + 1e-9
      || !(g_strv_contains ((const char *const *) names, v->spec->name)
           || g_strv_contains ((const char *const *) names, "all")))
    return;
  g_printerr (
    "T %.1f %s size %.0f (balloon %.0f -> %.0f, plugged %.0f -> %.0f) total %.0f ws %.0f anon %.0f "
    "swapped %.0f cache %.0f hot %.0f free %.0f stall %.2f psi10 %.1f stats@%.1f report@%.1f\n",
    w->now, v->spec->name, size, v->balloon, v->balloon_target, v->plugged, v->requested, total,
    v->want, v->anon, v->swapped, v->cache, hot, MAX (0.0, total - v->anon - v->cache), stall,
    v->psi10, v->stats.time, v->report.time);
}

static void
step_guest (SimWorld *w, SimVm *v, double host_stall)
{
  const SimVmSpec *s = v->spec;
  double t = w->now - s->start;
  double size = sim_vm_size (v);
  double total = MAX (0.0, size - kernel_overhead (size));
  double fit = MAX (0.0, total - MIN_CACHE);
  double cache_want = sim_load_cache (&s->load, t);
  double hot = s->hot_cache * cache_want, stall = 0, refault = 0, thrash, free_mem, target;
  double prev_want = v->want, have, s_swap = 0, s_cache = 0;

  v->want = sim_load_ws (&s->load, t);
  if (w->now < v->oom_until)
    v->want *= OOM_KEEP;

  /* The working set is anon + swapped; allocations land resident,
   * frees come out of swap first. */
  have = v->anon + v->swapped;
  if (v->want < have) {
    double d = have - v->want, sw = MIN (v->swapped, d);

    v->swapped -= sw;
    v->anon -= d - sw;
  } else
    v->anon += v->want - have;

  /* The page cache gives way first, then the working set goes to swap. */
  if (v->anon > fit) {
    double out = v->anon - fit;

    v->anon = fit;
    v->swapped += out;
    v->swap_out += out;
  } else if (v->swapped > 0) {
    double back = MIN (v->swapped, MIN (fit - v->anon, (SWAPIN_RATE * v->swapped + 32.0) * SIM_DT));

    v->anon += back;
    v->swapped -= back;
    v->swap_in += back;
    v->faults += back * 1024.0 / 4.0;
  }
  if (v->swapped > s->swap + 0.5)
    oom_kill (w, v);

  /* The cache gives way cold pages first.  Evicted cold pages come back
   * only as the workload re-reads them (rarely: COLD_REREAD_TAU); new
   * reads (a rising cache_want) and the hot part refill at once. */
  {
    double room = MAX (0.0, total - v->anon), cold_want = cache_want - hot;
    double evicted = MAX (0.0, v->cache - room);

    v->cold_lost += MIN (evicted, MAX (0.0, v->cache - hot));
    v->cold_lost -= v->cold_lost * (1.0 - exp (-SIM_DT / COLD_REREAD_TAU));
    v->cold_lost = CLAMP (v->cold_lost, 0.0, MAX (0.0, cold_want));
    v->cache = MIN (v->cache, room);
    cache_want = hot + MAX (0.0, cold_want - v->cold_lost);
    if (v->cache < cache_want)
      v->cache = MIN (MIN (cache_want, room), v->cache + CACHE_FILL_RATE * SIM_DT);
  }

  /* Stall: re-faulting swapped working set, re-reading evicted hot cache,
   * and the host swapping guest memory. */
  thrash = THRASH_RATE * v->swapped * SIM_DT;
  v->swap_in += thrash;
  v->swap_out += thrash;
  v->faults += thrash * 1024.0 / 4.0;
  if (v->swapped > 0 && v->want > 0)
    stall += s_swap = MIN (1.0, 0.1 + 4.0 * v->swapped / v->want);
  if (hot > 1.0 && v->cache < hot) {
    stall += s_cache = 0.4 * (hot - v->cache) / hot;
    refault = REFAULT_RATE * (hot - v->cache) * SIM_DT;
    v->faults += refault * 1024.0 / FAULT_BYTES;
  }
  stall += host_stall;
  v->psi_now = MIN (1.0, stall);
  if (w->trace != NULL)
    trace_guest (w, v, size, total, hot, stall);
  v->psi10 += (100.0 * v->psi_now - v->psi10) * (1.0 - exp (-SIM_DT / 10.0));
  v->psi_full10 += (50.0 * v->psi_now - v->psi_full10) * (1.0 - exp (-SIM_DT / 10.0));
  v->stall_s += v->psi_now * SIM_DT;
  w->m.stall_s += v->psi_now * SIM_DT;
  if (w->log_stall)
    log_stall (w, v, s_swap, s_cache, host_stall, size);

  /* Host memory: what the guest touched; free page reporting returns
   * free 2 MiB blocks after a delay, the balloon and unplug return
   * everything they take at once. */
  free_mem = MAX (0.0, total - v->anon - v->cache);
  target =
    kernel_overhead (size) + v->anon + v->cache + (w->fpr ? FPR_UNREPORTABLE * free_mem : free_mem);
  if (target >= v->rss)
    v->rss = w->fpr ? target : MAX (v->rss, kernel_overhead (size) + v->anon + v->cache);
  else if (w->fpr)
    v->rss += (target - v->rss) * (1.0 - exp (-SIM_DT / w->fpr_delay));
  v->rss = MIN (v->rss, size);

  /* Demand to grant: an episode starts when a rising working set no
   * longer fits, and ends when the guest has room for it again. */
  {
    gboolean is_short = v->want > fit + 1.0;

    if (is_short && !v->short_now) {
      v->short_now = TRUE;
      v->short_since = w->now;
      v->short_from_rise = v->want > prev_want + 1e-6;
    } else if (!is_short && v->short_now) {
      double d = w->now - v->short_since;

      v->short_now = FALSE;
      if (v->short_from_rise)
        g_array_append_val (w->m.grant_s, d);
      if (v->short_from_rise && d > 1.5 && g_getenv ("SIM_LOG_ACTIONS") != NULL)
        g_printerr ("t=%.1f %s: short for %.1f s since t=%.1f\n", w->now, v->spec->name, d,
                    v->short_since);
    }
  }
}

/* MiB of page cache the workload re-reads often now (Active(file)). */
static double
hot_cache (const SimWorld *w, const SimVm *v)
{
  return MIN (v->cache,
              v->spec->hot_cache * sim_load_cache (&v->spec->load, w->now - v->spec->start));
}

void
sim_reclaim (SimWorld *w, guint i, double mib)
{
  SimVm *v = &w->vm[i];
  double drop = CLAMP (mib, 0.0, v->cache);

  v->cold_lost += MIN (drop, v->cache - hot_cache (w, v));
  v->cache -= drop;
}

/* What the guest's /proc/meminfo says: MemTotal and MemAvailable (free
 * memory and most of the page cache). */
static void
guest_meminfo (const SimVm *v, double *total, double *available)
{
  double size = sim_vm_size (v);

  *total = MAX (0.0, size - kernel_overhead (size));
  *available = MAX (0.0, *total - v->anon - v->cache) + 0.9 * v->cache;
}

typedef enum {
  SNAP_TICK,   /* balloon stats and the agent's report when due */
  SNAP_PSI,    /* the agent's PSI trigger fired: a report now */
  SNAP_MEMORY, /* the agent's memory watch: a report now */
} SnapKind;

static void
snapshot (SimWorld *w, SimVm *v, SnapKind kind)
{
  double total, available, free_mem;

  guest_meminfo (v, &total, &available);
  free_mem = MAX (0.0, total - v->anon - v->cache);

  if (w->now >= v->next_stats) {
    v->stats = (SimStats){
      .time = w->now,
      .total = total,
      .usable = available,
      .unused = free_mem,
      .caches = v->cache,
      .swap_in = v->swap_in,
      .swap_out = v->swap_out,
      .major_faults = v->faults,
    };
    v->next_stats = w->now + w->stats_period;
  }
  if (v->spec->agent && (w->now >= v->next_report || kind != SNAP_TICK)) {
    v->report = (SimReport){
      .time = w->now,
      .total = total,
      .available = available,
      .free = free_mem,
      .cache = v->cache,
      .swap_in = v->swap_in,
      .swap_out = v->swap_out,
      .major_faults = v->faults,
      .swap_used = v->swapped,
      .inactive_file = v->cache - hot_cache (w, v),
      .psi_some10 = v->psi10,
      .psi_full10 = v->psi_full10,
      .stall_total = v->stall_s,
      .oom_kills = v->oom_kills,
      .trigger = kind == SNAP_PSI,
    };
    /* The memory watch's reports come between the periodic ones,
       * which keep their times. */
    if (kind != SNAP_MEMORY)
      v->next_report = w->now + REPORT_PERIOD;
    v->new_report = TRUE;
  }
}

/* ---- host -------------------------------------------------------------- */

static void
host_oom (SimWorld *w)
{
  SimVm *big = NULL;

  for (guint i = 0; i < w->n; i++)
    if (w->vm[i].running && (big == NULL || w->vm[i].rss > big->rss))
      big = &w->vm[i];
  if (big == NULL)
    return;
  /* The host kills the largest QEMU: the guest starts again from nothing. */
  w->m.host_oom_kills++;
  big->anon = big->swapped = big->cache = 0;
  big->rss = kernel_overhead (sim_vm_size (big));
  big->oom_until = w->now + 2 * OOM_RESTART;
}

/* The least host memory a VM can have this second without stalling:
 * the size that holds its working set and hot page cache (at least
 * MIN_CACHE) besides the guest kernel, all of it touched.  From the
 * workload, not from the guest: the same for every policy. */
static double
spec_floor (const SimVmSpec *s, double now)
{
  double t = now - s->start;
  double need =
    sim_load_ws (&s->load, t) + MAX (s->hot_cache * sim_load_cache (&s->load, t), MIN_CACHE);

  return MIN ((need + KERNEL_FIXED) / (1.0 - 1.0 / 64.0), s->boot + s->vmem_size);
}

static double
no_stall_floor (const SimVm *v, double now)
{
  return spec_floor (v->spec, now);
}

double
sim_scenario_floor_peak (const SimScenario *sc)
{
  double peak = 0;

  for (double t = 0; t <= sc->duration; t += 1.0) {
    double sum = 0;

    for (guint i = 0; i < sc->n_vms; i++)
      if (t >= sc->vms[i].start)
        sum += spec_floor (&sc->vms[i], t);
    peak = MAX (peak, sum);
  }
  return peak;
}

/* The memory watch: is the guest's MemAvailable running out since its
 * last report? */
static gboolean
running_out (const SimWorld *w, const SimVm *v)
{
  double total, avail;
  double used, was = v->report.total - v->report.available;
  double span = w->now - v->report.time, rate;

  guest_meminfo (v, &total, &avail);
  used = total - avail;
  if (span < RUNOUT_MIN_SPAN - 1e-9 || w->now - v->last_memory_report < RUNOUT_GAP - 1e-9
      || used <= was)
    return FALSE;
  rate = (used - was) / span;
  return rate >= RUNOUT_RATE && avail <= rate * RUNOUT_HORIZON;
}

void
sim_world_step (SimWorld *w)
{
  SimHostView h;
  double host_stall = 0, rss = 0, committed = 0, floor = 0;
  guint step = (guint) llround (w->now / SIM_DT);

  sim_host_view (w, &h);
  w->host_swap_used = MAX (0.0, h.used - h.host_total);
  if (w->host_swap_used > w->sc->host_swap) {
    host_oom (w);
    sim_host_view (w, &h);
    w->host_swap_used = MAX (0.0, h.used - h.host_total);
  }
  if (w->host_swap_used > 0 && h.used > w->sc->host_base)
    host_stall = MIN (1.0, 4.0 * w->host_swap_used / (h.used - w->sc->host_base));

  for (guint i = 0; i < w->n; i++) {
    SimVm *v = &w->vm[i];

    v->new_report = FALSE;
    if (!v->running && w->now >= v->spec->start) {
      v->running = TRUE;
      v->rss = kernel_overhead (sim_vm_size (v));
      v->next_stats = v->next_report = w->now;
    }
    if (!v->running)
      continue;
    move_hypervisor (w, v);
    step_guest (w, v, host_stall);
    /* At the end of each whole second: the stall up to it. */
    if ((step + 1) % (guint) llround (1.0 / SIM_DT) == 0
        && (step + 1) / (guint) llround (1.0 / SIM_DT) < v->n_stall_at)
      v->stall_at[(step + 1) / (guint) llround (1.0 / SIM_DT)] = (float) v->stall_s;
    snapshot (w, v, SNAP_TICK);
    rss += v->rss;
    committed += sim_vm_size (v);
    floor += no_stall_floor (v, w->now);
  }
  /* The agent pushes a report at once when its PSI trigger fires. */
  for (guint i = 0; i < w->n; i++) {
    SimVm *v = &w->vm[i];
    double stalled = 0;

    if (!v->running)
      continue;
    v->stall_window[step % G_N_ELEMENTS (v->stall_window)] = v->psi_now * SIM_DT;
    for (guint k = 0; k < G_N_ELEMENTS (v->stall_window); k++)
      stalled += v->stall_window[k];
    if (v->spec->agent && stalled >= PSI_TRIGGER_STALL
        && w->now - v->last_trigger >= PSI_TRIGGER_WINDOW) {
      v->last_trigger = w->now;
      snapshot (w, v, SNAP_PSI);
    } else if (v->spec->agent && step % MEMORY_WATCH_STEPS == 0 && running_out (w, v)) {
      v->last_memory_report = w->now;
      snapshot (w, v, SNAP_MEMORY);
    }
  }

  w->m.vm_rss_mib_s += rss * SIM_DT;
  w->m.committed_mib_s += committed * SIM_DT;
  w->m.floor_mib_s += floor * SIM_DT;
  w->m.peak_rss = MAX (w->m.peak_rss, rss);
  w->m.peak_committed = MAX (w->m.peak_committed, committed);
  w->m.host_swap_mib_s += w->host_swap_used * SIM_DT;
  w->m.peak_host_swap = MAX (w->m.peak_host_swap, w->host_swap_used);
  w->now += SIM_DT;
}
