/* daemon-agent.c: guest agent links feeding the model.
 *
 * One MtAgentLink per VM with an agent channel.  Each tick the backend's
 * sample gets the guest's own numbers when the agent's latest report is
 * fresh (else the balloon statistics stay: the fallback).  Between ticks,
 * a report of rising pressure or a new OOM kill pushes a sample built
 * from it and plans at once. */
#define G_LOG_DOMAIN "memtided"

#include <math.h>

#include "daemon-agent.h"

/* Event plans for one VM at most this often (mt_daemon_plan_now also
 * limits all extra plans to one per 200 ms). */
#define EVENT_PLAN_GAP (1 * G_USEC_PER_SEC)
/* Smaller reclaims are not worth a request. */
#define RECLAIM_MIN (16 * MT_MIB)
/* Ask for a little more than the shrink needs: the guest allocates meanwhile. */
#define RECLAIM_MARGIN     (16 * MT_MIB)
#define RECLAIM_TIMEOUT_MS 5000
/* The stall share is measured over at least this much guest time. */
#define STALL_MIN_SPAN (200 * 1000)
/* Used memory (MemTotal - MemAvailable: a shrink lowers both, and must
 * not look like a rise) rising at least this fast (bytes/s), with
 * MemAvailable gone within RUNOUT_HORIZON at that rate, plans at once:
 * the guest evicts its hot page cache and then swaps before the next
 * tick would grow it. */
#define RUNOUT_RATE    (32 * MT_MIB)
#define RUNOUT_HORIZON 3.0
/* Reports further apart than this say nothing about the rate now. */
#define RUNOUT_MAX_SPAN (5 * G_USEC_PER_SEC)
/* While a shrink of a VM with virtio-mem is under way and this long
 * after it, used memory is no sign of a rise: virtio-mem isolates the
 * pages of the blocks it offlines (MemAvailable falls) before MemTotal
 * drops, so "used" climbs by up to the blocks in flight (seen on real
 * guests: 100+ MiB at 200 MiB/s, every shrink grown straight back).
 * The balloon takes pages out of MemTotal as it takes them. */
#define RUNOUT_AFTER_SHRINK (3 * G_USEC_PER_SEC)

/* A value of the previous two believed reports and their guest clocks
 * ([1] the newer): an event report may follow a periodic one within
 * STALL_MIN_SPAN, and then a rate is measured from the one before. */
typedef struct {
  guint64 value[2]; /* MT_UNKNOWN = none */
  guint64 mono_us[2];
} ReportPair;

static void
pair_reset (ReportPair *p)
{
  p->value[0] = p->value[1] = MT_UNKNOWN;
}

static void
pair_push (ReportPair *p, guint64 value, guint64 mono_us)
{
  p->value[0] = p->value[1];
  p->mono_us[0] = p->mono_us[1];
  p->value[1] = value;
  p->mono_us[1] = mono_us;
}

/* The newer of the two at least STALL_MIN_SPAN before mono_us: its
 * index, -1 when neither. */
static gint
pair_base (const ReportPair *p, guint64 mono_us)
{
  for (gint k = 1; k >= 0; k--)
    if (p->value[k] != MT_UNKNOWN && mono_us >= p->mono_us[k] + STALL_MIN_SPAN)
      return k;
  return -1;
}

typedef struct {
  MtDaemon *d;
  char *uuid;
  char *name;
  gint64 last_event_plan;
  double last_psi;       /* some avg10 of the previous believed report */
  guint64 last_oom;      /* oom_kill of the previous believed report */
  ReportPair stall;      /* psi.some.total_us: the stall share */
  ReportPair used;       /* MemTotal - MemAvailable: the rate it rises at */
  gboolean reported;     /* first report of this link logged */
  gboolean disbelieving; /* a "not believed" streak was logged */
} AgentVm;

static void
agent_vm_free (AgentVm *a)
{
  g_free (a->uuid);
  g_free (a->name);
  g_free (a);
}

static MtDaemonVm *
agent_vm_lookup (AgentVm *a)
{
  return g_hash_table_lookup (a->d->vms, a->uuid);
}

/* The guest's own numbers over what the backend (balloon stats) said.
 * `hello` is the link's last hello (reclaim methods), NULL before any. */
static void
overlay_report (MtVmSample *s, const MtAgentReport *r, const MtAgentReport *hello)
{
  guint64 v;

  if (r->has_mem) {
    if (r->mem.total != MT_UNKNOWN)
      s->guest_total = r->mem.total;
    if (r->mem.available != MT_UNKNOWN)
      s->guest_available = r->mem.available;
    if (r->mem.free != MT_UNKNOWN)
      s->guest_free = r->mem.free;
    if ((v = mt_agent_report_droppable_cache (r)) != MT_UNKNOWN)
      s->guest_cache = v;
    /* Swapped-out memory is working set the guest will want back. */
    if (r->mem.swap_total != MT_UNKNOWN && r->mem.swap_free != MT_UNKNOWN)
      s->guest_swap_used = mt_sat_sub (r->mem.swap_total, r->mem.swap_free);
    if (r->mem.inactive_file != MT_UNKNOWN)
      s->guest_inactive_file = r->mem.inactive_file;
  }
  if (r->has_vmstat) {
    if (r->vmstat.pswpin_bytes != MT_UNKNOWN)
      s->swap_in = r->vmstat.pswpin_bytes;
    if (r->vmstat.pswpout_bytes != MT_UNKNOWN)
      s->swap_out = r->vmstat.pswpout_bytes;
    if (r->vmstat.pgmajfault != MT_UNKNOWN)
      s->major_faults = r->vmstat.pgmajfault;
    if (r->vmstat.oom_kill != MT_UNKNOWN)
      s->oom_kills = r->vmstat.oom_kill;
  }
  if (r->has_psi) {
    s->psi_some_avg10 = r->psi_some.avg10;
    s->psi_full_avg10 = r->psi_full.avg10;
  }
  if (r->has_page_reporting && r->page_reporting.reported_bytes != MT_UNKNOWN)
    s->reported_free = r->page_reporting.reported_bytes;
  if ((v = mt_agent_report_movable (r)) != MT_UNKNOWN)
    s->movable = v;
  s->can_reclaim = hello != NULL && (hello->reclaim_methods & MT_AGENT_RECLAIM_MEMORY_RECLAIM);
  s->from_agent = TRUE;
}

static char *
format_methods (guint methods)
{
  if (methods == (MT_AGENT_RECLAIM_MEMORY_RECLAIM | MT_AGENT_RECLAIM_DROP_CACHES))
    return g_strdup ("memory.reclaim, drop_caches");
  if (methods & MT_AGENT_RECLAIM_MEMORY_RECLAIM)
    return g_strdup ("memory.reclaim");
  if (methods & MT_AGENT_RECLAIM_DROP_CACHES)
    return g_strdup ("drop_caches");
  return g_strdup ("none");
}

/* Rising pressure, the guest's PSI trigger or an OOM kill: a sample from
 * this report (hypervisor fields from the latest tick) and a plan now. */
static void
event_plan (AgentVm *a, MtDaemonVm *vm, const MtAgentReport *r, double psi_now, double runout_rate,
            const char *why)
{
  gint64 now = g_get_monotonic_time ();
  const MtVmSample *last = mt_vm_model_latest (vm->model);
  g_autofree char *reason = NULL;
  MtVmSample s;

  if (last == NULL)
    return;
  if (mt_elapsed (now, a->last_event_plan) < EVENT_PLAN_GAP) {
    g_debug ("VM %s: %s; planned for it less than 1 s ago", a->name, why);
    return;
  }
  a->last_event_plan = now;
  s = *last;
  s.time = now;
  overlay_report (&s, r, mt_agent_link_hello (vm->agent));
  if (isfinite (psi_now))
    s.psi_some_avg10 = psi_now;
  s.runout_rate = (float) runout_rate;
  mt_vm_model_push (vm->model, &s);
  reason = g_strdup_printf ("agent: VM %s %s", a->name, why);
  g_info ("VM %s: %s: planning now", a->name, why);
  mt_daemon_plan_now (a->d, reason);
}

/* MemTotal - MemAvailable of a report, MT_UNKNOWN when not both. */
static guint64
report_used (const MtAgentReport *r)
{
  if (!r->has_mem || r->mem.available == MT_UNKNOWN || r->mem.total == MT_UNKNOWN
      || r->mem.available > r->mem.total)
    return MT_UNKNOWN;
  return r->mem.total - r->mem.available;
}

/* Used memory rising fast enough for MemAvailable to be gone within
 * RUNOUT_HORIZON (measured from the report at least STALL_MIN_SPAN
 * back): a working set rising into the headroom.  PSI shows it only
 * once the guest stalls, the next tick up to a second later.  The rate
 * goes to *rate_out for the plan's rise lead. */
static char *
running_out (const AgentVm *a, const MtDaemonVm *vm, const MtAgentReport *r, guint64 used,
             double *rate_out)
{
  const MtVmControl *c = &vm->model->control;
  gint k = pair_base (&a->used, r->mono_us);
  double span, rate;

  if (used == MT_UNKNOWN || k < 0)
    return NULL;
  if (vm->info->vmem_size > 0 && c->last_action != MT_TIME_NEVER && c->last_target < c->last_from
      && (c->pending || mt_elapsed (g_get_monotonic_time (), c->last_action) < RUNOUT_AFTER_SHRINK))
    return NULL;
  if (r->mono_us > a->used.mono_us[k] + RUNOUT_MAX_SPAN || used <= a->used.value[k])
    return NULL;
  span = (double) (r->mono_us - a->used.mono_us[k]) / G_USEC_PER_SEC;
  rate = (double) (used - a->used.value[k]) / span;
  if (rate < RUNOUT_RATE || (double) r->mem.available > rate * RUNOUT_HORIZON)
    return NULL;
  *rate_out = rate;
  return g_strdup_printf ("used memory rises at %.0f MiB/s: %.0f MiB available, gone in %.1f s",
                          rate / MT_MIB, (double) r->mem.available / MT_MIB,
                          (double) r->mem.available / rate);
}

static void
on_report (MtAgentLink *link, const MtAgentEvent *ev, gpointer data)
{
  AgentVm *a = data;
  MtDaemonVm *vm = agent_vm_lookup (a);
  const MtAgentReport *r = ev->report;
  double psi, target, stall = NAN, psi_now = NAN, runout_rate = NAN;
  g_autofree char *why = NULL;
  guint64 used;
  gint k;

  if (vm == NULL)
    return;
  if (ev->first_hello) {
    g_autofree char *methods = format_methods (r->reclaim_methods);
    g_message (
      "VM %s: agent connected: %s, kernel %s, guest up %.1f s, report every %" G_GUINT64_FORMAT
      " ms, PSI %s%s%s%s, reclaim %s",
      a->name, r->agent, r->kernel[0] ? r->kernel : "unknown", (double) r->mono_us / G_USEC_PER_SEC,
      r->interval_ms,
      r->psi_mode == MT_AGENT_PSI_MODE_TRIGGER ? "trigger"
      : r->psi_mode == MT_AGENT_PSI_MODE_POLL  ? "poll"
      : r->psi_mode == MT_AGENT_PSI_MODE_OFF   ? "off"
                                               : "none",
      r->psi_trigger[0] ? " '" : "", r->psi_trigger, r->psi_trigger[0] ? "'" : "", methods);
  }
  if (ev->rebooted) {
    g_message ("VM %s: the guest rebooted (new boot id)", a->name);
    a->last_oom = MT_UNKNOWN;
    a->last_psi = NAN;
    pair_reset (&a->stall);
    pair_reset (&a->used);
  } else if (ev->restarted) {
    g_message ("VM %s: the guest agent restarted", a->name);
  }
  if (!ev->believed) {
    if (!a->disbelieving)
      g_message ("VM %s: agent report not used: %s", a->name, ev->problem.message);
    a->disbelieving = TRUE;
    return;
  }
  a->disbelieving = FALSE;
  if (!a->reported) {
    g_autofree char *total = r->has_mem && r->mem.total != MT_UNKNOWN
                               ? mt_format_bytes (r->mem.total)
                               : g_strdup ("unknown");
    g_autofree char *avail = r->has_mem && r->mem.available != MT_UNKNOWN
                               ? mt_format_bytes (r->mem.available)
                               : g_strdup ("unknown");
    g_info ("VM %s: first agent report: MemTotal %s, MemAvailable %s, PSI some %.2f%%", a->name,
            total, avail, r->has_psi ? r->psi_some.avg10 : NAN);
    a->reported = TRUE;
  }
  /* mono_us is the guest's clock when it built the report: tests pair it
   * with the time this line is logged to measure the report latency. */
  g_debug ("VM %s: agent report seq %" G_GUINT64_FORMAT " (%s) mono_us %" G_GUINT64_FORMAT
           ": available %" G_GUINT64_FORMAT " MiB, PSI some %.2f%%",
           a->name, r->seq, mt_agent_reason_to_string (r->reason), r->mono_us,
           r->has_mem && r->mem.available != MT_UNKNOWN ? r->mem.available / MT_MIB : 0,
           r->has_psi ? r->psi_some.avg10 : NAN);

  psi = r->has_psi ? r->psi_some.avg10 : NAN;
  target = vm->policy.pressure_target;
  /* Share of time stalled since the previous report (at least
   * STALL_MIN_SPAN back), from the kernel's stall counter: what the
   * guest's trigger measured. */
  k = pair_base (&a->stall, r->mono_us);
  if (r->has_psi && r->psi_some.total_us != MT_UNKNOWN && k >= 0
      && r->psi_some.total_us >= a->stall.value[k])
    stall = MIN (100.0, 100.0 * (double) (r->psi_some.total_us - a->stall.value[k])
                          / (double) (r->mono_us - a->stall.mono_us[k]));
  if (r->reason == MT_AGENT_REASON_PSI) {
    g_info ("VM %s: agent pressure trigger: PSI some avg10 %.2f%%, %.1f%% since the last "
            "report (target %.2f%%)",
            a->name, psi, stall, target);
    /* avg10 is recomputed every 2 s and averages 10 s, so right after
     * the trigger it may not show the stall yet: the plan it asks for
     * sees the recent stall share when that is higher. */
    psi_now = isfinite (stall) && (!isfinite (psi) || stall > psi) ? stall : psi;
  }
  if (isfinite (psi_now) && psi_now > target)
    why = g_strdup_printf ("PSI trigger in the guest: pressure %.2f%% > target %.2f%%", psi_now,
                           target);
  else if (isfinite (psi) && psi > target && (!isfinite (a->last_psi) || psi > a->last_psi))
    why = g_strdup_printf ("pressure %.2f%% > target %.2f%%", psi, target);
  if (r->has_vmstat && r->vmstat.oom_kill != MT_UNKNOWN && a->last_oom != MT_UNKNOWN
      && r->vmstat.oom_kill > a->last_oom) {
    g_free (why);
    why = g_strdup_printf ("OOM kill in the guest (%" G_GUINT64_FORMAT " new)",
                           r->vmstat.oom_kill - a->last_oom);
  }
  a->last_psi = psi;
  if (r->has_vmstat && r->vmstat.oom_kill != MT_UNKNOWN)
    a->last_oom = r->vmstat.oom_kill;
  if (r->has_psi && r->psi_some.total_us != MT_UNKNOWN)
    pair_push (&a->stall, r->psi_some.total_us, r->mono_us);
  used = report_used (r);
  if (why == NULL)
    why = running_out (a, vm, r, used, &runout_rate);
  if (used != MT_UNKNOWN)
    pair_push (&a->used, used, r->mono_us);
  if (why)
    event_plan (a, vm, r, psi_now, runout_rate, why);
}

static void
on_state_changed (MtAgentLink *link, MtAgentLinkState old_state, MtAgentLinkState new_state,
                  const char *why, gpointer data)
{
  AgentVm *a = data;
  gboolean was_up = old_state == MT_AGENT_LINK_ACTIVE || old_state == MT_AGENT_LINK_SILENT;

  switch (new_state) {
  case MT_AGENT_LINK_ACTIVE:
    if (old_state == MT_AGENT_LINK_SILENT)
      g_message ("VM %s: agent reports again", a->name);
    break;
  case MT_AGENT_LINK_SILENT:
    g_message ("VM %s: agent silent: using balloon statistics", a->name);
    break;
  case MT_AGENT_LINK_WAITING:
    if (old_state == MT_AGENT_LINK_ACTIVE)
      g_message ("VM %s: agent channel closed (%s): using balloon statistics", a->name, why);
    else if (was_up)
      g_message ("VM %s: agent channel closed (%s)", a->name, why);
    else
      g_debug ("VM %s: agent channel: %s", a->name, why);
    a->reported = FALSE;
    break;
  case MT_AGENT_LINK_HANDSHAKE:
    g_debug ("VM %s: agent channel connected, waiting for the hello", a->name);
    break;
  }
}

static void
on_violation (MtAgentLink *link, const MtAgentProblem *p, gint64 backoff, gpointer data)
{
  AgentVm *a = data;
  MtAgentLinkStats st;

  mt_agent_link_get_stats (link, g_get_monotonic_time (), &st);
  g_warning ("VM %s: agent protocol violation (%s%s%s: %s), link closed for %" G_GINT64_FORMAT
             " s (%" G_GUINT64_FORMAT " so far)",
             a->name, mt_agent_error_code_to_string (p->code), p->field[0] ? " " : "", p->field,
             p->message, backoff / G_USEC_PER_SEC, st.session.violations);
}

/* The most the guest may have: what the hypervisor shows (virtio-mem
 * counted at its requested size, which the guest plugs on its own) or
 * what memtided last asked for, if larger. */
static guint64
host_size (MtDaemonVm *vm, const MtVmSample *s)
{
  guint64 size = MT_UNKNOWN, asked = vm->model->control.last_target;

  if (s && s->balloon_actual != MT_UNKNOWN) {
    guint64 vmem = 0;
    if (s->vmem_plugged != MT_UNKNOWN)
      vmem = s->vmem_plugged;
    if (s->vmem_requested != MT_UNKNOWN)
      vmem = MAX (vmem, s->vmem_requested);
    size = mt_sat_add (s->balloon_actual, vmem);
  }
  if (asked != 0 && asked != MT_UNKNOWN && (size == MT_UNKNOWN || asked > size))
    size = asked;
  return size;
}

static guint64
max_memory (MtDaemonVm *vm)
{
  return mt_sat_add (vm->info->base_memory, vm->info->vmem_size);
}

static void
on_host_view (MtAgentLink *link, guint64 *max, guint64 *current, gpointer data)
{
  MtDaemonVm *vm = agent_vm_lookup (data);

  if (vm == NULL)
    return;
  *max = max_memory (vm);
  *current = host_size (vm, mt_vm_model_latest (vm->model));
}

static const MtAgentLinkCallbacks callbacks = {
  .report = on_report,
  .state_changed = on_state_changed,
  .violation = on_violation,
  .host_view = on_host_view,
};

/* A channel takes one client at a time: a VM memtided only observes
 * (mechanism none) is left alone entirely, its channel free for others. */
static gboolean
wants_link (MtDaemonVm *vm)
{
  return vm->info->agent_socket != NULL && vm->policy.mechanism != MT_MECH_NONE;
}

void
mt_daemon_agent_attach (MtDaemon *d, const char *uuid, MtDaemonVm *vm)
{
  AgentVm *a;

  if (vm->agent || !wants_link (vm))
    return;
  a = g_new0 (AgentVm, 1);
  a->d = d;
  a->uuid = g_strdup (uuid);
  a->name = g_strdup (vm->info->name);
  a->last_event_plan = MT_TIME_NEVER;
  a->last_psi = NAN;
  a->last_oom = MT_UNKNOWN;
  pair_reset (&a->stall);
  pair_reset (&a->used);
  vm->agent = mt_agent_link_new (vm->info->name, vm->info->agent_socket, NULL, &callbacks, a,
                                 (GDestroyNotify) agent_vm_free);
  g_debug ("VM %s: agent channel %s", vm->info->name, vm->info->agent_socket);
}

void
mt_daemon_agent_detach (MtDaemon *d, MtDaemonVm *vm)
{
  g_clear_pointer (&vm->agent, mt_agent_link_free);
}

void
mt_daemon_agent_overlay (MtDaemon *d, MtDaemonVm *vm, MtVmSample *s, gint64 now)
{
  const MtAgentReport *r;

  /* Follow policy reloads (mechanism none <-> managed). */
  if (vm->agent && !wants_link (vm)) {
    g_message ("VM %s: observed only now: agent channel released", vm->info->name);
    mt_daemon_agent_detach (d, vm);
  } else if (vm->agent == NULL && wants_link (vm)) {
    mt_daemon_agent_attach (d, vm->info->uuid, vm);
  }
  if (vm->agent == NULL)
    return;
  mt_agent_link_set_host (vm->agent, max_memory (vm), host_size (vm, s), now);
  r = mt_agent_link_latest (vm->agent, now);
  if (r)
    overlay_report (s, r, mt_agent_link_hello (vm->agent));
}

gboolean
mt_daemon_agent_connected (MtDaemonVm *vm)
{
  return vm->agent != NULL && mt_agent_link_alive (vm->agent, g_get_monotonic_time ());
}

gboolean
mt_daemon_agent_get_stats (MtDaemonVm *vm, MtAgentLinkStats *out)
{
  if (vm->agent == NULL)
    return FALSE;
  mt_agent_link_get_stats (vm->agent, g_get_monotonic_time (), out);
  return TRUE;
}

void
mt_daemon_agent_free_pages (MtDaemonVm *vm, guint64 *reported_free, guint64 *movable)
{
  const MtAgentReport *r =
    vm->agent ? mt_agent_link_latest (vm->agent, g_get_monotonic_time ()) : NULL;

  *reported_free = *movable = MT_UNKNOWN;
  if (r == NULL)
    return;
  if (r->has_page_reporting)
    *reported_free = r->page_reporting.reported_bytes;
  *movable = mt_agent_report_movable (r);
}

/* ---- reclaim before a shrink --------------------------------------------------- */

typedef struct {
  MtDaemon *d; /* outlives the link, which drops its calls unanswered */
  char *name;
  char *uuid;
  const char *why; /* "shrink" or "cold" */
  guint64 bytes;
} ReclaimCall;

static void
reclaim_call_free (ReclaimCall *c)
{
  g_free (c->name);
  g_free (c->uuid);
  g_free (c);
}

static void
on_reclaim_reply (MtAgentLink *link, const MtAgentReply *reply, const GError *error, gpointer data)
{
  ReclaimCall *c = data;
  g_autofree char *asked = mt_format_bytes (c->bytes);
  const char *outcome;
  guint64 got = 0;

  if (error) {
    g_info ("VM %s: reclaim of %s: %s", c->name, asked, error->message);
    outcome = "failed";
  } else if (!reply->ok) {
    g_info ("VM %s: the agent refused to reclaim %s: %s (%s)", c->name, asked, reply->error,
            reply->message);
    outcome = "refused";
  } else {
    g_autofree char *text = mt_format_bytes (reply->reclaimed);
    g_info ("VM %s: the guest reclaimed %s of %s by %s in %" G_GUINT64_FORMAT " ms%s%s", c->name,
            text, asked, reply->method, reply->elapsed_ms != MT_UNKNOWN ? reply->elapsed_ms : 0,
            reply->stopped_by[0] ? ", stopped by " : "", reply->stopped_by);
    outcome = "done";
    got = reply->reclaimed != MT_UNKNOWN ? reply->reclaimed : 0;
  }
  MT_DAEMON_NOTIFY (c->d, guest_reclaimed, c->uuid, c->why, outcome, c->bytes, got);
}

/* Sends the reclaim request; its answer is logged by on_reclaim_reply().
 * FALSE (logged at debug level, naming `what`) when it could not be sent. */
static gboolean
send_reclaim (MtDaemon *d, MtDaemonVm *vm, guint64 bytes, gboolean allow_drop_caches,
              const char *why, const char *what)
{
  g_autoptr (GError) error = NULL;
  ReclaimCall *c = g_new0 (ReclaimCall, 1);

  c->d = d;
  c->name = g_strdup (vm->info->name);
  c->uuid = g_strdup (vm->info->uuid);
  c->why = why;
  c->bytes = bytes;
  if (!mt_agent_link_reclaim (vm->agent, bytes, allow_drop_caches, RECLAIM_TIMEOUT_MS,
                              on_reclaim_reply, c, (GDestroyNotify) reclaim_call_free, &error)) {
    g_debug ("VM %s: no %s: %s", vm->info->name, what, error->message);
    return FALSE;
  }
  return TRUE;
}

gboolean
mt_daemon_agent_before_shrink (MtDaemon *d, MtDaemonVm *vm, guint64 from, guint64 to)
{
  const MtAgentReport *r;
  guint64 shrink, free_mem, droppable, bytes;

  if (vm->agent == NULL || to >= from)
    return FALSE;
  r = mt_agent_link_latest (vm->agent, g_get_monotonic_time ());
  if (r == NULL || !r->has_mem || r->mem.free == MT_UNKNOWN)
    return FALSE;
  shrink = from - to;
  free_mem = r->mem.free;
  droppable = mt_agent_report_droppable_cache (r);
  if (droppable == MT_UNKNOWN || free_mem >= mt_sat_add (shrink, RECLAIM_MARGIN))
    return FALSE;
  bytes = MIN (mt_sat_add (shrink - MIN (shrink, free_mem), RECLAIM_MARGIN), droppable);
  if (bytes < RECLAIM_MIN)
    return FALSE;
  if (!send_reclaim (d, vm, bytes, vm->policy.allow_drop_caches, "shrink",
                     "reclaim before the shrink"))
    return FALSE;
  g_info ("VM %s: asked the guest to reclaim %" G_GUINT64_FORMAT " MiB of page cache before "
          "shrinking it",
          vm->info->name, bytes / MT_MIB);
  return TRUE;
}

/* ---- cold page cache (planner.c plan_reclaim) ---------------------------------- */

gboolean
mt_daemon_agent_reclaim_cold (MtDaemon *d, MtDaemonVm *vm, const MtVmDecision *dec)
{
  const MtVmSample *s = mt_vm_model_latest (vm->model);
  char asked[MT_FORMAT_BYTES_LEN], inactive[MT_FORMAT_BYTES_LEN], cache[MT_FORMAT_BYTES_LEN];

  /* memory.reclaim only: drop_caches would take the hot cache too. */
  if (vm->agent == NULL || dec->reclaim == 0
      || !send_reclaim (d, vm, dec->reclaim, FALSE, "cold", "cold page cache reclaim"))
    return FALSE;
  mt_format_bytes_buf (asked, dec->reclaim);
  mt_format_bytes_buf (inactive, s ? s->guest_inactive_file : MT_UNKNOWN);
  mt_format_bytes_buf (cache, s ? s->guest_cache : MT_UNKNOWN);
  g_info ("VM %s: asked the guest to reclaim %s of cold page cache: quiet, %s of its %s "
          "page cache inactive",
          vm->info->name, asked, inactive, cache);
  return TRUE;
}
