/* policy-memtide.c: memtide's planner (service/core/planner.c, linked from
 * memtide-core, not copied) driven the way memtided drives it: every
 * tick one merged sample per VM into its model ring, mt_plan_vm_init(),
 * mt_plan_compute(), the actions applied in order (virtio-mem before the
 * balloon), each decision's `next` copied back.
 *
 * Two variants:
 *  - "memtide": guests with an agent report PSI every second (and at
 *    once when their memory watch sees MemAvailable running out), and a
 *    report that shows rising pressure, the guest's PSI trigger, an OOM
 *    kill or used memory rising fast enough for MemAvailable to be gone
 *    within 3 s plans at once, judged by the daemon's own event triggers
 *    (service/core/triggers.c, linked from memtide-core) and planned the
 *    way service/daemon-agent.c and daemon.c mt_daemon_plan_now do: a
 *    sample from the report on top of the latest one, at most one such
 *    plan per VM per second and one per 200 ms overall;
 *  - "memtide-stats": balloon stats only, no agent, no events: memtided on
 *    guests without the agent.
 */
#include <math.h>
#include "sim.h"
#include "config.h"
#include "model.h"
#include "planner.h"
#include "triggers.h"

typedef struct {
  gboolean agent; /* use agent reports and events */
  MtHostPolicy hp;
  MtVmPolicy vp[SIM_MAX_VMS];
  MtVmModel *model[SIM_MAX_VMS];
  MtDomainInfo info[SIM_MAX_VMS];
  gboolean started[SIM_MAX_VMS];
  double next_tick;
  double tick; /* s */

  /* What the daemon keeps per agent link to judge a report. */
  MtTriggers triggers[SIM_MAX_VMS];
  double plan_now_at;
} Memtide;

/* service/daemon.c PLAN_NOW_MIN_GAP, s. */
#define PLAN_NOW_MIN_GAP 0.2

static gint64
us (double s)
{
  return (gint64) llround (s * G_USEC_PER_SEC);
}

static guint64
b (double mib)
{
  return sim_mib_to_bytes (mib);
}

static gpointer
memtide_init_common (SimWorld *w, const char *arg, gboolean agent, GError **error)
{
  g_autofree Memtide *m = g_new0 (Memtide, 1);
  g_autoptr (MtConfig) config = NULL;

  m->agent = agent;
  mt_host_policy_init_defaults (&m->hp);
  /* A policy directory (e.g. to try a tuning) replaces the built-in
   * defaults, resolved per VM name exactly as the daemon resolves them. */
  if (arg != NULL) {
    config = mt_config_load (NULL, arg, error);
    if (config == NULL)
      return NULL;
    m->hp = *mt_config_get_host (config);
  }
  for (guint i = 0; i < w->n; i++) {
    const SimVmSpec *s = w->vm[i].spec;

    if (config != NULL)
      mt_config_resolve_vm (config, s->name, NULL, &m->vp[i], NULL);
    else
      mt_vm_policy_init_defaults (&m->vp[i]);
    m->model[i] = mt_vm_model_new ();
    m->info[i] = (MtDomainInfo){
      .name = (char *) s->name,
      .base_memory = b (s->boot),
      .vmem_size = b (s->vmem_size),
      .vmem_block = s->vmem_size > 0 ? b (s->vmem_block) : 0,
    };
  }
  m->tick = (double) (m->hp.tick_interval > 0 ? m->hp.tick_interval : MT_PLAN_DEFAULT_TICK)
            / G_USEC_PER_SEC;
  m->next_tick = 0;
  m->plan_now_at = -1e9;
  for (guint i = 0; i < SIM_MAX_VMS; i++)
    mt_triggers_init (&m->triggers[i]);
  return g_steal_pointer (&m);
}

static gpointer
memtide_init (SimWorld *w, const char *arg, GError **error)
{
  return memtide_init_common (w, arg, TRUE, error);
}

static gpointer
memtide_stats_init (SimWorld *w, const char *arg, GError **error)
{
  return memtide_init_common (w, arg, FALSE, error);
}

/* The guest's numbers from an agent report (daemon-agent.c overlay_report). */
static void
from_report (MtVmSample *s, const SimReport *r)
{
  s->guest_total = b (r->total);
  s->guest_available = b (r->available);
  s->guest_free = b (r->free);
  s->guest_cache = b (r->cache);
  s->guest_inactive_file = b (r->inactive_file);
  s->swap_in = b (r->swap_in);
  s->swap_out = b (r->swap_out);
  s->major_faults = (guint64) r->major_faults;
  s->guest_swap_used = b (r->swap_used);
  s->oom_kills = r->oom_kills;
  s->psi_some_avg10 = r->psi_some10;
  s->psi_full_avg10 = r->psi_full10;
  s->psi_some_total = (guint64) us (r->stall_total);
  s->can_reclaim = TRUE;
  s->from_agent = TRUE;
}

/* What the daemon's collect() would push: the hypervisor's view now,
 * the guest's numbers from the latest agent report, else from the
 * latest balloon stats (which libvirt refreshes every stats period). */
static void
sample (Memtide *m, SimWorld *w, guint i, MtVmSample *s)
{
  const SimVm *v = &w->vm[i];

  mt_vm_sample_init (s, us (w->now));
  s->balloon_actual = b (v->balloon);
  s->vmem_plugged = b (v->plugged);
  s->vmem_requested = b (v->requested);
  s->rss = b (v->rss);
  if (m->agent && v->spec->agent && v->report.time >= 0)
    from_report (s, &v->report);
  else if (v->stats.time >= 0) {
    s->guest_total = b (v->stats.total);
    s->guest_available = b (v->stats.usable);
    s->guest_free = b (v->stats.unused);
    s->guest_cache = b (v->stats.caches);
    s->swap_in = b (v->stats.swap_in);
    s->swap_out = b (v->stats.swap_out);
    s->major_faults = (guint64) v->stats.major_faults;
  }
}

static void
plan (Memtide *m, SimWorld *w)
{
  gint64 now = us (w->now);
  MtPlanVm in[SIM_MAX_VMS];
  guint idx[SIM_MAX_VMS], n = 0;
  MtHostSample host;
  SimHostView hv;
  g_autoptr (MtPlan) p = NULL;

  sim_host_view (w, &hv);
  mt_host_sample_init (&host, now);
  host.mem_total = b (hv.host_total);
  host.mem_available = b (hv.mem_available);

  for (guint i = 0; i < w->n; i++) {
    if (!w->vm[i].running)
      continue;
    if (!m->started[i]) {
      /* A domain that just started: a fresh model, as on its event. */
      mt_vm_model_init (m->model[i]);
      m->started[i] = TRUE;
    }
    mt_plan_vm_init (&in[n], m->info[i].name, &m->info[i], &m->vp[i], m->model[i], &m->hp, now);
    idx[n++] = i;
  }
  p = mt_plan_compute (&host, in, n, &m->hp, now);
  for (guint k = 0; k < p->n_actions; k++) {
    const MtAction *a = &p->actions[k];
    guint i = idx[a->vm];

    w->m.actions++;
    if (a->set_vmem)
      sim_set_vmem (w, i, sim_bytes_to_mib (a->vmem_requested));
    if (a->set_balloon)
      sim_set_balloon (w, i, sim_bytes_to_mib (a->balloon));
    if (g_getenv ("SIM_LOG_ACTIONS") != NULL)
      g_printerr ("t=%.1f %s\n", w->now, a->reason);
  }
  for (guint k = 0; k < n; k++) {
    if (p->decisions[k].reclaim > 0) {
      sim_reclaim (w, idx[k], sim_bytes_to_mib (p->decisions[k].reclaim));
      if (g_getenv ("SIM_LOG_ACTIONS") != NULL)
        g_printerr ("t=%.1f %s: reclaim %.0f MiB of cold page cache\n", w->now,
                    w->vm[idx[k]].spec->name, sim_bytes_to_mib (p->decisions[k].reclaim));
    }
    m->model[idx[k]]->control = p->decisions[k].next;
  }
  /* SIM_LOG_DECISIONS=vm[,vm...]|all: every decision's reason, also holds and waits. */
  if (g_getenv ("SIM_LOG_DECISIONS") != NULL) {
    g_auto (GStrv) names = g_strsplit (g_getenv ("SIM_LOG_DECISIONS"), ",", -1);

    for (guint k = 0; k < n; k++)
      if (g_strv_contains ((const char *const *) names, w->vm[idx[k]].spec->name)
          || g_strv_contains ((const char *const *) names, "all")) {
        g_autofree char *why = mt_vm_decision_format_reason (&p->decisions[k]);
        const MtVmDerived *o = &in[k].obs;

        g_printerr ("t=%.1f D %s: %s\n", w->now, w->vm[idx[k]].spec->name, why);
        g_printerr ("t=%.1f O %s: observed %.1f used %.0f rate %.1f growth %.0f psi %.2f trend "
                    "%.3f faults %.1f/%.1f swapin %.1f\n",
                    w->now, w->vm[idx[k]].spec->name, o->observed / 1e6, o->used / 1048576.0,
                    o->used_rate / 1048576.0, o->used_growth / 1048576.0, o->psi_some, o->psi_trend,
                    o->major_fault_rate, o->major_fault_rate_avg, o->swap_in_rate / 1048576.0);
      }
    g_printerr ("t=%.1f H %s\n", w->now, p->reason);
  }
}

static void
collect (Memtide *m, SimWorld *w)
{
  for (guint i = 0; i < w->n; i++) {
    MtVmSample s;

    if (!w->vm[i].running)
      continue;
    if (!m->started[i]) {
      mt_vm_model_init (m->model[i]);
      m->started[i] = TRUE;
    }
    sample (m, w, i, &s);
    mt_vm_model_push (m->model[i], &s);
  }
}

static void
memtide_step (gpointer self, SimWorld *w)
{
  Memtide *m = self;

  if (w->now + 1e-9 < m->next_tick)
    return;
  m->next_tick += m->tick;
  collect (m, w);
  plan (m, w);
}

/* on_report in service/daemon-agent.c: does this report call for a plan
 * now (mt_triggers_check), and if so event_plan and mt_daemon_plan_now. */
static void
memtide_report (gpointer self, SimWorld *w, guint vm)
{
  Memtide *m = self;
  const SimReport *r = &w->vm[vm].report;
  const MtVmSample *last;
  MtTriggerReport report;
  MtTriggerVm tvm;
  MtTrigger t;
  MtVmSample s;

  if (!m->agent || !w->vm[vm].running || !m->started[vm])
    return;
  last = mt_vm_model_latest (m->model[vm]);
  /* In whole bytes and µs, as a real agent reports them. */
  report = (MtTriggerReport){
    .mono_us = (guint64) us (r->time),
    .psi_trigger = r->trigger,
    .psi_some_avg10 = r->psi_some10,
    .psi_some_total_us = (guint64) us (r->stall_total),
    .mem_total = b (r->total),
    .mem_available = b (r->available),
    .oom_kill = r->oom_kills,
  };
  tvm = (MtTriggerVm){
    .pressure_target = m->vp[vm].pressure_target,
    .has_vmem = m->info[vm].vmem_size > 0,
    .control = &m->model[vm]->control,
    .can_plan = last != NULL,
  };
  /* The daemon judges a report when it arrives; here it arrives when the
   * guest made it, at r->time (the world has stepped on by SIM_DT since,
   * for every report alike).  Times are whole µs on the SIM_DT grid, so
   * reports exactly 200 ms, 1 s or 3 s apart compare as the daemon's
   * clocks do, not as sums of 0.1 s in floating point. */
  mt_triggers_check (&m->triggers[vm], &report, &tvm, us (r->time), &t);
  if (!t.plan)
    return;

  /* event_plan */
  s = *last;
  s.time = us (w->now);
  from_report (&s, r);
  if (isfinite (t.psi_now))
    s.psi_some_avg10 = t.psi_now;
  s.runout_rate = (float) t.runout_rate;
  mt_vm_model_push (m->model[vm], &s);

  /* mt_daemon_plan_now */
  if (w->now - m->plan_now_at < PLAN_NOW_MIN_GAP)
    return;
  m->plan_now_at = w->now;
  plan (m, w);
}

static void
memtide_free (gpointer self)
{
  Memtide *m = self;

  for (guint i = 0; i < SIM_MAX_VMS; i++)
    g_clear_pointer (&m->model[i], mt_vm_model_free);
  g_free (m);
}

const SimPolicy sim_policy_memtide = {
  .name = "memtide",
  .label = "memtide",
  .source = "service/core/planner.c via memtide-core (the daemon's code); agent PSI reports, "
            "pressure events plan at once (the daemon's rules)",
  .init = memtide_init,
  .step = memtide_step,
  .report = memtide_report,
  .free = memtide_free,
};

const SimPolicy sim_policy_memtide_stats = {
  .name = "memtide-stats",
  .label = "memtide (stats only)",
  .source = "service/core/planner.c via memtide-core; balloon stats only, no agent",
  .init = memtide_stats_init,
  .step = memtide_step,
  .report = NULL,
  .free = memtide_free,
};
