/* daemon-status.c: read-only views of the daemon for D-Bus and the CLI:
 * per-VM status, host status, and Explain in words. */
#define G_LOG_DOMAIN "memtided"

#include <math.h>
#include <string.h>

#include "daemon-private.h"
#include "config-value.h"
#include "reporting.h"

void
mt_vm_status_free (MtVmStatus *st)
{
  if (!st)
    return;
  g_free (st->uuid);
  g_free (st->name);
  g_free (st->stuck_reason);
  g_free (st->reason);
  g_free (st->last_action);
  g_free (st->agent_last_violation);
  g_free (st);
}

static const MtVmSample *
latest (const MtDaemonVm *vm)
{
  return mt_vm_model_latest (vm->model);
}

/* Virtio-mem memory an unplug could take: by the guest's block usage
 * hint when there is one, else its movable zone (which pinned pages may
 * still block); MT_UNKNOWN when neither is known. */
static guint64
unpluggable (const MtVmSample *s)
{
  guint64 v = mt_sample_vmem_unpluggable (s);

  if (v != MT_UNKNOWN || s->movable == MT_UNKNOWN || s->vmem_plugged == MT_UNKNOWN)
    return v;
  return MIN (s->movable, s->vmem_plugged);
}

static void
vm_reporting (MtVmStatus *st, const MtVmSample *s)
{
  MtVmSample none;

  if (!s) {
    mt_vm_sample_init (&none, 0);
    s = &none;
  }
  st->reported_free = s->reported_free;
  st->rss_saved = mt_sample_rss_saved (s);
  st->reported_total = s->reported_total;
  st->reused_total = s->reused_total;
  st->reporting_passes = s->reporting_passes;
  st->reporting_budget_exhausted = s->reporting_budget_exhausted;
  st->reporting_delay_ms = s->reporting_delay_ms;
  st->reporting_budget_divisor = s->reporting_budget_divisor;
  st->usage_kernel = s->usage_kernel;
  st->usage_movable = s->usage_movable;
  st->usage_vmem = s->usage_vmem;
  st->unpluggable = unpluggable (s);
}

/* "KIND FIELD: message" */
static char *
format_problem (const MtAgentProblem *p)
{
  return g_strdup_printf ("%s%s%s: %s", mt_agent_error_code_to_string (p->code),
                          p->field[0] ? " " : "", p->field, p->message);
}

static void
vm_agent (MtVmStatus *st, const MtDaemonVm *vm)
{
  MtAgentLinkStats ls;

  st->has_agent_link = mt_daemon_agent_get_stats (vm->agent, &ls);
  if (st->has_agent_link && ls.session.last_violation.code != MT_AGENT_OK) {
    memcpy (st->agent_violations, ls.session.violations_by_code, sizeof st->agent_violations);
    st->agent_last_violation = format_problem (&ls.session.last_violation);
  } else {
    st->agent_last_violation = g_strdup ("");
  }
}

static MtVmStatus *
vm_status (MtDaemon *d, const char *uuid, MtDaemonVm *vm)
{
  MtVmStatus *st = g_new0 (MtVmStatus, 1);
  const MtVmSample *s = latest (vm);
  MtVmDerived obs;
  guint64 limit_min, limit_max;

  mt_vm_model_derive (vm->model, g_get_monotonic_time (),
                      MT_PLAN_STALE_TICKS * MAX (d->host_policy.tick_interval, 1), &obs);
  st->uuid = g_strdup (uuid);
  st->name = g_strdup (vm->info->name);
  st->current = obs.current;
  st->vmem_plugged = s && s->vmem_plugged != MT_UNKNOWN ? s->vmem_plugged : 0;
  st->balloon = s ? s->balloon_actual : MT_UNKNOWN;
  st->guest_available = obs.available;
  st->pressure = obs.psi_some;
  st->pressure_target = vm->effective.pressure_target;
  st->stall_window =
    vm->policy.stall_window > 0 ? vm->policy.stall_window : MT_PLAN_DEFAULT_STALL_WINDOW;
  st->stall = mt_vm_control_stall (&vm->model->control, st->stall_window, g_get_monotonic_time ());
  st->stall_budget = vm->policy.stall_budget / 100.0;
  st->rise_floor = mt_vm_control_rise_floor (&vm->model->control);
  st->source = mt_data_source_to_string (obs.source);
  st->mechanism = mt_mechanism_to_string (vm->policy.mechanism);
  st->agent_connected = mt_daemon_agent_connected (vm->agent);
  st->stuck = vm->model->control.stuck;
  {
    char stuck[MT_STUCK_REASON_LEN];

    st->stuck_reason = g_strdup (mt_vm_control_stuck_reason (&vm->model->control, stuck));
  }
  st->last_action = g_strdup (vm->last_action ? vm->last_action : "");
  st->pinned = mt_control_vm_pin (d->control, uuid) != NULL;
  st->has_limits = mt_control_get_limits (d->control, uuid, &limit_min, &limit_max);
  vm_reporting (st, s);
  vm_agent (st, vm);
  if (vm->has_decision) {
    MtVmDecision dec;

    mt_daemon_vm_decision (vm, &dec);
    st->target = dec.target;
    st->need = dec.need;
    st->min = dec.min;
    st->max = dec.max;
    st->decision = mt_decision_kind_to_string (dec.kind);
    st->reason = mt_vm_decision_format_reason (&dec);
    st->over_budget = mt_vm_decision_over_budget (&dec);
  } else {
    st->target = st->need = st->min = st->max = MT_UNKNOWN;
    st->decision = "none";
    st->reason = g_strdup ("");
  }
  return st;
}

static int
compare_status_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 ((*(MtVmStatus *const *) a)->name, (*(MtVmStatus *const *) b)->name);
}

GPtrArray *
mt_daemon_list_vms (MtDaemon *d)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) mt_vm_status_free);
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_ptr_array_add (list, vm_status (d, key, value));
  g_ptr_array_sort (list, compare_status_names);
  return list;
}

MtVmStatus *
mt_daemon_get_vm_status (MtDaemon *d, const char *name, GError **error)
{
  const char *uuid = NULL;
  MtDaemonVm *vm = mt_daemon_find_vm (d, name, &uuid, error);

  return vm ? vm_status (d, uuid, vm) : NULL;
}

gboolean
mt_daemon_get_vm_target (MtDaemon *d, const char *uuid, guint64 *current, guint64 *target)
{
  const MtDaemonVm *vm = g_hash_table_lookup (d->vms, uuid);

  if (!vm || !vm->has_decision)
    return FALSE;
  /* Two fields of the kept decision: no need to put it all together. */
  memcpy (current, vm->decision.head + G_STRUCT_OFFSET (MtVmDecision, current), sizeof *current);
  memcpy (target, vm->decision.head + G_STRUCT_OFFSET (MtVmDecision, target), sizeof *target);
  return TRUE;
}

void
mt_daemon_get_host_status (MtDaemon *d, MtHostStatus *out)
{
  MtHostPolicy hp;
  MtReportingTotals rt;
  GHashTableIter iter;
  gpointer value;

  mt_control_host_policy (d->control, &d->host_policy, &hp);
  mt_reporting_totals_init (&rt);
  *out = (MtHostStatus){
    .total = d->has_host ? d->last_host.mem_total : MT_UNKNOWN,
    .available = d->has_host ? d->last_host.mem_available : MT_UNKNOWN,
    .reserve = hp.reserve,
    .budget = d->budget,
    .mode = mt_daemon_get_mode (d),
    .n_vms = g_hash_table_size (d->vms),
    .connected = d->connected,
  };
  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    const MtVmSample *s = latest (value);
    if (!s)
      continue;
    if (s->balloon_actual != MT_UNKNOWN)
      out->guest_total = mt_sat_add (
        out->guest_total,
        mt_sat_add (s->balloon_actual, s->vmem_plugged != MT_UNKNOWN ? s->vmem_plugged : 0));
    if (s->guest_free != MT_UNKNOWN)
      out->guest_free = mt_sat_add (out->guest_free, s->guest_free);
    mt_reporting_totals_add (&rt, s);
    if (unpluggable (s) != MT_UNKNOWN)
      out->unpluggable = mt_sat_add (out->unpluggable, unpluggable (s));
  }
  out->reported_free = rt.reported_free;
  out->reported_total = rt.reported_total;
  out->reused_total = rt.reused_total;
  out->rss_saved = rt.rss_saved;
}

const char *const *
mt_daemon_get_policy_files (MtDaemon *d)
{
  return mt_config_get_files (d->config);
}

static void
append_size (GString *s, const char *label, guint64 bytes)
{
  g_autofree char *text = bytes == MT_UNKNOWN ? g_strdup ("unknown") : mt_format_bytes (bytes);
  g_string_append_printf (s, "  %-16s %s\n", label, text);
}

/* Free page reporting and the block usage hint, for Explain: what the
 * guest reported, nothing for what it did not (stock kernels). */
static void
append_reporting (GString *s, const MtVmStatus *st)
{
  MtBlockKind kinds[MT_BLOCK_KINDS];
  gboolean any_usage = FALSE;

  if (st->reported_free != MT_UNKNOWN || st->reported_total != MT_UNKNOWN
      || st->reporting_delay_ms != MT_UNKNOWN || st->reporting_budget_divisor != MT_UNKNOWN) {
    g_string_append (s, "Free page reporting (guest kernel):\n");
    if (st->reported_free != MT_UNKNOWN) {
      char claim[MT_FORMAT_BYTES_LEN], saved[MT_FORMAT_BYTES_LEN];

      mt_format_bytes_buf (claim, st->reported_free);
      mt_format_bytes_buf (saved, st->rss_saved);
      g_string_append_printf (s, "  %-16s %s, of which memtided believes %s (QEMU RSS check)\n",
                              "reported now", claim,
                              st->rss_saved == MT_UNKNOWN ? "unknown" : saved);
    }
    if (st->reported_total != MT_UNKNOWN)
      append_size (s, "since boot", st->reported_total);
    if (st->reused_total != MT_UNKNOWN)
      append_size (s, "reused", st->reused_total);
    if (st->reporting_passes != MT_UNKNOWN)
      g_string_append_printf (s, "  %-16s %" G_GUINT64_FORMAT "", "passes", st->reporting_passes);
    if (st->reporting_passes != MT_UNKNOWN && st->reporting_budget_exhausted != MT_UNKNOWN)
      g_string_append_printf (s, " (%" G_GUINT64_FORMAT " ended on their budget)",
                              st->reporting_budget_exhausted);
    if (st->reporting_passes != MT_UNKNOWN)
      g_string_append_c (s, '\n');
    if (st->reporting_delay_ms != MT_UNKNOWN)
      g_string_append_printf (s, "  %-16s %" G_GUINT64_FORMAT " ms\n", "delay",
                              st->reporting_delay_ms);
    if (st->reporting_budget_divisor != MT_UNKNOWN)
      g_string_append_printf (s,
                              "  %-16s %" G_GUINT64_FORMAT " (a pass reports 1/%" G_GUINT64_FORMAT
                              " of each free list)\n",
                              "budget divisor", st->reporting_budget_divisor,
                              st->reporting_budget_divisor);
  }
  mt_block_kinds (&st->usage_kernel, &st->usage_movable, &st->usage_vmem, kinds);
  for (guint i = 0; i < MT_BLOCK_KINDS; i++) {
    const MtBlockUsage *u = kinds[i].usage;
    char f[5][MT_FORMAT_BYTES_LEN];

    if (!mt_block_kind_shown (&kinds[i]))
      continue;
    if (!any_usage)
      g_string_append (s, "Memory blocks (the guest's hint):\n");
    any_usage = TRUE;
    mt_format_bytes_buf (f[0], u->free);
    mt_format_bytes_buf (f[1], u->movable);
    mt_format_bytes_buf (f[2], u->unmovable);
    mt_format_bytes_buf (f[3], u->pinned);
    mt_format_bytes_buf (f[4], u->offline);
    g_string_append_printf (s,
                            "  %-16s %" G_GUINT64_FORMAT " blocks: free %s, movable %s, "
                            "unmovable %s, pinned %s, offline %s\n",
                            kinds[i].name, u->blocks, f[0], f[1], f[2], f[3], f[4]);
  }
  if (any_usage && st->unpluggable != MT_UNKNOWN && st->vmem_plugged > 0)
    append_size (s, "unpluggable", st->unpluggable);
}

/* The stall budget, for Explain: the measured stall beside it. */
static void
append_stall (GString *s, const MtVmStatus *st)
{
  g_autofree char *window = mt_format_duration (st->stall_window);

  g_string_append (s, "Stall budget:\n");
  if (isnan (st->stall))
    g_string_append_printf (s, "  %-16s unknown (no PSI total from a guest agent)\n", "stalled");
  else
    g_string_append_printf (s, "  %-16s %.2f%% of the time over the last %s (PSI some)\n",
                            "stalled", 100.0 * st->stall, window);
  if (st->stall_budget <= 0)
    g_string_append_printf (s, "  %-16s none (stall-budget = 0%%)\n", "budget");
  else
    g_string_append_printf (s, "  %-16s %.2f%%%s\n", "budget", 100.0 * st->stall_budget,
                            st->over_budget ? ": over it, so it is not shrunk" : "");
  if (st->rise_floor > 0) {
    g_autofree char *rise = mt_format_bytes (st->rise_floor);
    g_string_append_printf (s,
                            "  %-16s %s (its largest sudden rise of the last hour that stalled "
                            "it: kept free ahead of the next)\n",
                            "rise floor", rise);
  }
}

/* The agent link's violations by kind, for Explain: nothing when there
 * were none. */
static void
append_agent_violations (GString *s, const MtDaemonVm *vm)
{
  gint64 now = g_get_monotonic_time ();
  MtAgentLinkStats ls;
  g_autofree char *last = NULL;

  if (!mt_daemon_agent_get_stats (vm->agent, &ls) || ls.session.violations == 0)
    return;
  g_string_append_printf (
    s, "Agent protocol violations: %" G_GUINT64_FORMAT " since memtided attached its link\n",
    ls.session.violations);
  for (guint c = MT_AGENT_OK + 1; c < MT_AGENT_ERR_COUNT; c++)
    if (ls.session.violations_by_code[c] > 0)
      g_string_append_printf (s, "  %-16s %" G_GUINT64_FORMAT "\n",
                              mt_agent_error_code_to_string (c), ls.session.violations_by_code[c]);
  last = format_problem (&ls.session.last_violation);
  g_string_append_printf (s, "  %-16s %s (%.0f s ago)\n", "last", last,
                          (double) mt_elapsed (now, ls.session.last_violation_time)
                            / G_USEC_PER_SEC);
  if (ls.state == MT_AGENT_LINK_WAITING && ls.retry_at != MT_TIME_NEVER)
    g_string_append_printf (s, "  %-16s closed, next attempt in %.0f s\n", "link",
                            (double) MAX (ls.retry_at - now, 0) / G_USEC_PER_SEC);
}

char *
mt_daemon_explain (MtDaemon *d, const char *name, GError **error)
{
  const char *uuid = NULL;
  MtDaemonVm *vm = mt_daemon_find_vm (d, name, &uuid, error);
  g_autoptr (GString) s = NULL;
  g_autoptr (GPtrArray) sources = NULL;
  g_autoptr (MtVmStatus) st = NULL;
  MtVmDecision whole;
  const MtVmDecision *dec = &whole;
  guint64 limit_min, limit_max;

  if (!vm)
    return NULL;
  st = vm_status (d, uuid, vm);
  if (vm->has_decision)
    mt_daemon_vm_decision (vm, &whole);
  s = g_string_new (NULL);
  g_string_append_printf (s, "%s (%s)\n", vm->info->name, uuid);
  if (!vm->has_decision) {
    g_string_append (s, "No decision yet: memtided has not planned since this VM appeared.\n");
  } else {
    g_autofree char *why = mt_vm_decision_format_reason (dec);

    g_string_append_printf (s, "Decision: %s%s\n  %s\n", mt_decision_kind_to_string (dec->kind),
                            dec->emergency ? " (emergency)" : "", why);
    g_string_append (s, "Inputs:\n");
    append_size (s, "current", dec->current);
    append_size (s, "working set", dec->working_set);
    append_size (s, "idle", dec->idle);
    append_size (s, "headroom", dec->headroom);
    append_size (s, "need", dec->need);
    append_size (s, "min", dec->min);
    append_size (s, "max", dec->max);
    append_size (s, "target", dec->target);
    g_string_append_printf (s, "  %-16s %s\n", "data from", st->source);
    if (!isnan (st->pressure))
      g_string_append_printf (s, "  %-16s %.2f%% (target %.2f%%)\n", "pressure", st->pressure,
                              vm->effective.pressure_target);
  }
  if (vm->info->mechanism_note)
    g_string_append_printf (s, "Mechanism: %s\n", vm->info->mechanism_note);
  if (vm->opt_in_note)
    g_string_append_printf (s, "Opt-in: %s\n", vm->opt_in_note);
  if (st->stuck)
    g_string_append_printf (s, "Stuck: %s\n", st->stuck_reason);
  if (st->pinned)
    g_string_append (s, "Pinned: held at a fixed size by a lease (memtidectl unpin releases it)\n");
  if (mt_control_get_limits (d->control, uuid, &limit_min, &limit_max)) {
    g_autofree char *lmin = mt_format_bytes (limit_min);
    g_autofree char *lmax = mt_format_bytes (limit_max);
    g_string_append_printf (s, "Admin limits: min %s, max %s (replace the policy's)\n", lmin, lmax);
  }
  append_stall (s, st);
  append_reporting (s, st);
  append_agent_violations (s, vm);
  if (vm->last_action)
    g_string_append_printf (s, "Last action: %s\n", vm->last_action);
  if (vm->policy_error)
    g_string_append_printf (s, "Domain metadata ignored: %s\n", vm->policy_error);
  g_string_append (s, "Policy:\n");
  sources = mt_config_explain_vm (d->config, vm->info->name, vm->info->overrides, NULL);
  for (guint i = 0; sources && i < sources->len; i++) {
    const MtPolicySource *src = sources->pdata[i];
    g_string_append_printf (s, "  %-16s %-10s from %s\n", src->key, src->value, src->origin);
  }
  return g_string_free (g_steal_pointer (&s), FALSE);
}
