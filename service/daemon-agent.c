/* daemon-agent.c: guest agent links feeding the model.
 *
 * One MtAgentLink per VM with an agent channel.  The VM is seen only
 * through the pointers the daemon hands over (MtDaemonAgentVm), the
 * daemon reached only through its hooks.  Each tick the backend's
 * sample gets the guest's own numbers when the agent's latest report is
 * fresh (else the balloon statistics stay: the fallback).  Between ticks,
 * a report that calls for it (service/core/triggers.h: pressure above
 * the target, an OOM kill, used memory running out) pushes a sample
 * built from it and plans at once. */
#define G_LOG_DOMAIN "memtided"

#include <math.h>

#include "agent-log-limit.h"
#include "log-event.h"
#include "daemon-agent.h"
#include "triggers.h"

/* Smaller reclaims are not worth a request. */
#define RECLAIM_MIN (16 * MT_MIB)
/* Ask for a little more than the shrink needs: the guest allocates meanwhile. */
#define RECLAIM_MARGIN     (16 * MT_MIB)
#define RECLAIM_TIMEOUT_MS 5000
/* Log lines a guest's agent may cause (agent_log): this many at once,
 * then this many a minute.  A guest decides how often it connects,
 * restarts or reports, so without a bound it decides the log's volume. */
#define LOG_BURST      20
#define LOG_PER_MINUTE 10

/* The link's user data: freed with the link (agent_free_data). */
struct _MtDaemonAgent {
  MtAgentLink *link;
  /* The VM (MtDaemonAgentVm); NULL once mt_daemon_agent_free() ran, as
   * the link frees this only after the callback it may be in. */
  const MtDomainInfo *info;
  const MtVmPolicy *policy;
  MtVmModel *model;
  const MtDaemonAgentHooks *hooks;
  gpointer hooks_data;
  char *name;            /* for logs */
  char *socket;          /* the channel of this link */
  MtTriggers triggers;   /* what the believed reports so far say (triggers.h) */
  gboolean reported;     /* first report of this link logged */
  gboolean disbelieving; /* a "not believed" streak was logged */
  MtAgentLogLimit log_limit;
};

static void
agent_free_data (MtDaemonAgent *a)
{
  g_free (a->name);
  g_free (a->socket);
  g_free (a);
}

static gboolean
agent_gone (const MtDaemonAgent *a)
{
  return a->model == NULL;
}

static void
log_suppressed (MtDaemonAgent *a, guint64 suppressed, gint64 since, gint64 now)
{
  g_message ("VM %s: %" G_GUINT64_FORMAT " log lines about its agent suppressed in the last %.0f s "
             "(at most %d at once, then %d a minute)",
             a->name, suppressed, (double) mt_elapsed (now, since) / G_USEC_PER_SEC, LOG_BURST,
             LOG_PER_MINUTE);
}

/* A line the guest's agent caused (not a warning: a violation closes the
 * link for its back-off, which bounds those): within the VM's log limit,
 * unless the level is not logged anyway.  `format` names the VM. */
static void agent_log (MtDaemonAgent *a, GLogLevelFlags level, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

static void
agent_log (MtDaemonAgent *a, GLogLevelFlags level, const char *format, ...)
{
  gint64 now = g_get_monotonic_time (), since;
  guint64 suppressed;
  va_list args;

  if (g_log_writer_default_would_drop (level, G_LOG_DOMAIN))
    return;
  if (!mt_agent_log_limit_take (&a->log_limit, now, &suppressed, &since))
    return;
  if (suppressed > 0)
    log_suppressed (a, suppressed, since, now);
  va_start (args, format);
  g_logv (G_LOG_DOMAIN, level, format, args);
  va_end (args);
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
    s->psi_some_total = r->psi_some.total_us;
  }
  if (r->has_page_reporting) {
    /* Unknown members stay unknown (MT_UNKNOWN both sides). */
    s->reported_free = r->page_reporting.reported_bytes;
    s->reported_total = r->page_reporting.reported_total_bytes;
    s->reused_total = r->page_reporting.reused_total_bytes;
    s->reporting_passes = r->page_reporting.passes;
    s->reporting_budget_exhausted = r->page_reporting.budget_exhausted;
    s->reporting_delay_ms = r->page_reporting.delay_ms;
    s->reporting_budget_divisor = r->page_reporting.budget_divisor;
  }
  if (r->has_block_usage) {
    s->usage_kernel = r->usage_kernel;
    s->usage_movable = r->usage_movable;
    /* Without /proc/iomem's addresses the agent cannot tell which blocks
     * are virtio-mem: "no virtio_mem" then means unknown, not 0 blocks. */
    s->usage_vmem = hello && (hello->unavailable & (1u << MT_AGENT_UNAVAIL_VIRTIO_MEM_RANGES))
                      ? MT_BLOCK_USAGE_UNKNOWN
                      : r->usage_vmem;
  }
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

/* A report that calls for a plan now (triggers.h): a sample from it
 * (hypervisor fields from the latest tick) and a plan. */
static void
event_plan (MtDaemonAgent *a, const MtAgentReport *r, const MtTrigger *t, const char *why,
            gint64 now)
{
  const MtVmSample *last = mt_vm_model_latest (a->model);
  g_autofree char *reason = NULL;
  MtVmSample s;

  s = *last;
  s.time = now;
  overlay_report (&s, r, mt_agent_link_hello (a->link));
  /* A PSI trigger report: the stall share when avg10 lags it. */
  if (isfinite (t->psi_now))
    s.psi_some_avg10 = t->psi_now;
  s.runout_rate = (float) t->runout_rate;
  mt_vm_model_push (a->model, &s);
  /* The daemon logs what becomes of it ("VM web1: WHY: planning now",
   * or why not). */
  reason = g_strdup_printf ("VM %s: %s", a->name, why);
  a->hooks->plan_now (a->info->uuid, reason, a->hooks_data);
}

/* What mt_triggers_check judges of a believed report. */
static void
trigger_report (const MtAgentReport *r, MtTriggerReport *out)
{
  *out = (MtTriggerReport){
    .mono_us = r->mono_us,
    .psi_trigger = r->reason == MT_AGENT_REASON_PSI,
    .psi_some_avg10 = r->has_psi ? r->psi_some.avg10 : NAN,
    .psi_some_total_us = r->has_psi ? r->psi_some.total_us : MT_UNKNOWN,
    .mem_total = r->has_mem ? r->mem.total : MT_UNKNOWN,
    .mem_available = r->has_mem ? r->mem.available : MT_UNKNOWN,
    .oom_kill = r->has_vmstat ? r->vmstat.oom_kill : MT_UNKNOWN,
  };
}

static void
on_report (MtAgentLink *link, const MtAgentEvent *ev, gpointer data)
{
  MtDaemonAgent *a = data;
  const MtAgentReport *r = ev->report;
  g_autofree char *why = NULL;
  MtTriggerReport report;
  MtTriggerVm tvm;
  MtTrigger t;
  gint64 now;

  if (agent_gone (a))
    return;
  if (ev->first_hello) {
    g_autofree char *methods = format_methods (r->reclaim_methods);
    agent_log (
      a, G_LOG_LEVEL_MESSAGE,
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
    agent_log (a, G_LOG_LEVEL_MESSAGE, "VM %s: the guest rebooted (new boot id)", a->name);
    mt_triggers_reset (&a->triggers);
  } else if (ev->restarted) {
    agent_log (a, G_LOG_LEVEL_MESSAGE, "VM %s: the guest agent restarted", a->name);
  }
  if (!ev->believed) {
    if (!a->disbelieving)
      agent_log (a, G_LOG_LEVEL_MESSAGE, "VM %s: agent report not used: %s", a->name,
                 ev->problem.message);
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
    agent_log (a, G_LOG_LEVEL_INFO,
               "VM %s: first agent report: MemTotal %s, MemAvailable %s, PSI some %.2f%%", a->name,
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

  now = g_get_monotonic_time ();
  trigger_report (r, &report);
  tvm = (MtTriggerVm){
    .pressure_target = a->policy->pressure_target,
    .has_vmem = a->info->vmem_size > 0,
    .control = &a->model->control,
    .can_plan = mt_vm_model_latest (a->model) != NULL,
  };
  mt_triggers_check (&a->triggers, &report, &tvm, now, &t);
  if (r->reason == MT_AGENT_REASON_PSI)
    agent_log (a, G_LOG_LEVEL_INFO,
               "VM %s: agent pressure trigger: PSI some avg10 %.2f%%, %.1f%% since the last "
               "report (target %.2f%%)",
               a->name, t.psi, t.stall, t.target);
  if (t.kind == MT_TRIGGER_NONE)
    return;
  why = mt_trigger_describe (&t);
  if (t.limited)
    g_debug ("VM %s: %s; planned for it less than 1 s ago", a->name, why);
  else if (t.plan)
    event_plan (a, r, &t, why, now);
}

static void
on_state_changed (MtAgentLink *link, MtAgentLinkState old_state, MtAgentLinkState new_state,
                  const char *why, gpointer data)
{
  MtDaemonAgent *a = data;
  gboolean was_up = old_state == MT_AGENT_LINK_ACTIVE || old_state == MT_AGENT_LINK_SILENT;

  switch (new_state) {
  case MT_AGENT_LINK_ACTIVE:
    if (old_state == MT_AGENT_LINK_SILENT)
      agent_log (a, G_LOG_LEVEL_MESSAGE, "VM %s: agent reports again", a->name);
    break;
  case MT_AGENT_LINK_SILENT:
    /* KVM: the balloon statistics; Xen has none, and the domain holds. */
    agent_log (a, G_LOG_LEVEL_MESSAGE, "VM %s: agent silent: back to what the hypervisor reports",
               a->name);
    break;
  case MT_AGENT_LINK_WAITING:
    if (old_state == MT_AGENT_LINK_ACTIVE)
      agent_log (a, G_LOG_LEVEL_MESSAGE,
                 "VM %s: agent channel closed (%s): back to what the hypervisor reports", a->name,
                 why);
    else if (was_up)
      agent_log (a, G_LOG_LEVEL_MESSAGE, "VM %s: agent channel closed (%s)", a->name, why);
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
  MtDaemonAgent *a = data;
  MtAgentLinkStats st;

  mt_agent_link_get_stats (link, g_get_monotonic_time (), &st);
  mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_AGENT_VIOLATION,
                &(MtEventFields){ .vm = a->name,
                                  .kind = mt_agent_error_code_to_string (p->code),
                                  .reason = p->message },
                "VM %s: agent protocol violation (%s%s%s: %s), link closed for %" G_GINT64_FORMAT
                " s (%" G_GUINT64_FORMAT " so far)",
                a->name, mt_agent_error_code_to_string (p->code), p->field[0] ? " " : "", p->field,
                p->message, backoff / G_USEC_PER_SEC, st.session.violations);
}

/* The most the guest may have: what the hypervisor shows (virtio-mem
 * counted at its requested size, which the guest plugs on its own) or
 * what memtided last asked for, if larger. */
static guint64
host_size (const MtVmModel *model, const MtVmSample *s)
{
  guint64 size = MT_UNKNOWN, asked = model->control.last_target;

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
max_memory (const MtDomainInfo *info)
{
  return mt_sat_add (info->base_memory, info->vmem_size);
}

static void
on_host_view (MtAgentLink *link, guint64 *max, guint64 *current, gpointer data)
{
  MtDaemonAgent *a = data;

  if (agent_gone (a))
    return;
  *max = max_memory (a->info);
  *current = host_size (a->model, mt_vm_model_latest (a->model));
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
wants_link (const MtDaemonAgentVm *vm)
{
  return vm->info->agent_socket != NULL && vm->policy->mechanism != MT_MECH_NONE;
}

void
mt_daemon_agent_sync (MtDaemonAgent **agent, const MtDaemonAgentVm *vm,
                      const MtDaemonAgentHooks *hooks, gpointer data)
{
  MtDaemonAgent *a = *agent;

  if (a != NULL && g_strcmp0 (a->socket, vm->info->agent_socket) != 0) {
    g_clear_pointer (agent, mt_daemon_agent_free); /* another channel: a new link */
    a = NULL;
  } else if (a != NULL && !wants_link (vm)) {
    /* A policy reload: mechanism none. */
    g_message ("VM %s: observed only now: agent channel released", vm->info->name);
    g_clear_pointer (agent, mt_daemon_agent_free);
    return;
  }
  if (a != NULL || !wants_link (vm))
    return;
  a = g_new0 (MtDaemonAgent, 1);
  a->info = vm->info;
  a->policy = vm->policy;
  a->model = vm->model;
  a->hooks = hooks;
  a->hooks_data = data;
  a->name = g_strdup (vm->info->name);
  a->socket = g_strdup (vm->info->agent_socket);
  mt_triggers_init (&a->triggers);
  mt_agent_log_limit_init (&a->log_limit, LOG_BURST, LOG_PER_MINUTE);
  a->link =
    mt_agent_link_new (a->name, a->socket, NULL, &callbacks, a, (GDestroyNotify) agent_free_data);
  *agent = a;
  g_debug ("VM %s: agent channel %s", a->name, a->socket);
}

void
mt_daemon_agent_free (MtDaemonAgent *a)
{
  if (a == NULL)
    return;
  a->info = NULL;
  a->policy = NULL;
  a->model = NULL;
  mt_agent_link_free (a->link); /* frees `a` too, at once or after its callback */
}

void
mt_daemon_agent_overlay (MtDaemonAgent *a, MtVmSample *s, gint64 now)
{
  const MtAgentReport *r;
  guint64 suppressed;
  gint64 since;

  if (a == NULL)
    return;
  /* The summary of what was suppressed, also when the guest went quiet. */
  if (mt_agent_log_limit_flush (&a->log_limit, now, &suppressed, &since))
    log_suppressed (a, suppressed, since, now);
  mt_agent_link_set_host (a->link, max_memory (a->info), host_size (a->model, s), now);
  r = mt_agent_link_latest (a->link, now);
  if (r)
    overlay_report (s, r, mt_agent_link_hello (a->link));
}

gboolean
mt_daemon_agent_get_stats (MtDaemonAgent *a, MtAgentLinkStats *out)
{
  if (a == NULL)
    return FALSE;
  mt_agent_link_get_stats (a->link, g_get_monotonic_time (), out);
  return TRUE;
}

MtAgentLink *
mt_daemon_agent_link (MtDaemonAgent *a)
{
  return a != NULL ? a->link : NULL;
}

gboolean
mt_daemon_agent_connected (MtDaemonAgent *a)
{
  return a != NULL && mt_agent_link_alive (a->link, g_get_monotonic_time ());
}

/* ---- reclaim before a shrink --------------------------------------------------- */

/* Freed by the link before the link frees `a`: a call never outlives it. */
typedef struct {
  MtDaemonAgent *a;
  const char *why; /* "shrink" or "cold" */
  guint64 bytes;
} ReclaimCall;

static void
on_reclaim_reply (MtAgentLink *link, const MtAgentReply *reply, const GError *error, gpointer data)
{
  ReclaimCall *c = data;
  MtDaemonAgent *a = c->a;
  g_autofree char *asked = mt_format_bytes (c->bytes);
  const char *outcome;
  guint64 got = 0;

  if (agent_gone (a))
    return;
  if (error) {
    g_info ("VM %s: reclaim of %s: %s", a->name, asked, error->message);
    outcome = "failed";
  } else if (!reply->ok) {
    g_info ("VM %s: the agent refused to reclaim %s: %s (%s)", a->name, asked, reply->error,
            reply->message);
    outcome = "refused";
  } else {
    g_autofree char *text = mt_format_bytes (reply->reclaimed);
    g_info ("VM %s: the guest reclaimed %s of %s by %s in %" G_GUINT64_FORMAT " ms%s%s", a->name,
            text, asked, reply->method, reply->elapsed_ms != MT_UNKNOWN ? reply->elapsed_ms : 0,
            reply->stopped_by[0] ? ", stopped by " : "", reply->stopped_by);
    outcome = "done";
    got = reply->reclaimed != MT_UNKNOWN ? reply->reclaimed : 0;
  }
  a->hooks->reclaimed (a->info->uuid, c->why, outcome, c->bytes, got, a->hooks_data);
}

/* Sends the reclaim request; its answer is logged by on_reclaim_reply().
 * FALSE (logged at debug level, naming `what`) when it could not be sent. */
static gboolean
send_reclaim (MtDaemonAgent *a, guint64 bytes, gboolean allow_drop_caches, const char *why,
              const char *what)
{
  g_autoptr (GError) error = NULL;
  ReclaimCall *c = g_new0 (ReclaimCall, 1);

  c->a = a;
  c->why = why;
  c->bytes = bytes;
  if (!mt_agent_link_reclaim (a->link, bytes, allow_drop_caches, RECLAIM_TIMEOUT_MS,
                              on_reclaim_reply, c, g_free, &error)) {
    g_debug ("VM %s: no %s: %s", a->name, what, error->message);
    return FALSE;
  }
  return TRUE;
}

gboolean
mt_daemon_agent_before_shrink (MtDaemonAgent *a, guint64 from, guint64 to)
{
  const MtAgentReport *r;
  guint64 shrink, free_mem, droppable, bytes;

  if (a == NULL || to >= from)
    return FALSE;
  r = mt_agent_link_latest (a->link, g_get_monotonic_time ());
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
  if (!send_reclaim (a, bytes, a->policy->allow_drop_caches, "shrink", "reclaim before the shrink"))
    return FALSE;
  g_info ("VM %s: asked the guest to reclaim %" G_GUINT64_FORMAT " MiB of page cache before "
          "shrinking it",
          a->name, bytes / MT_MIB);
  return TRUE;
}

/* ---- cold page cache (planner.c plan_reclaim) ---------------------------------- */

gboolean
mt_daemon_agent_reclaim_cold (MtDaemonAgent *a, const MtVmDecision *dec)
{
  const MtVmSample *s;
  char asked[MT_FORMAT_BYTES_LEN], inactive[MT_FORMAT_BYTES_LEN], cache[MT_FORMAT_BYTES_LEN];

  /* memory.reclaim only: drop_caches would take the hot cache too. */
  if (a == NULL || dec->reclaim == 0
      || !send_reclaim (a, dec->reclaim, FALSE, "cold", "cold page cache reclaim"))
    return FALSE;
  s = mt_vm_model_latest (a->model);
  mt_format_bytes_buf (asked, dec->reclaim);
  mt_format_bytes_buf (inactive, s ? s->guest_inactive_file : MT_UNKNOWN);
  mt_format_bytes_buf (cache, s ? s->guest_cache : MT_UNKNOWN);
  g_info ("VM %s: asked the guest to reclaim %s of cold page cache: quiet, %s of its %s "
          "page cache inactive",
          a->name, asked, inactive, cache);
  return TRUE;
}
