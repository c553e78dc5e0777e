/* daemon.c: the tick: collect -> model -> plan -> act -> log, plus the
 * VM table kept current by backend events, policy reloads and state. */
#define G_LOG_DOMAIN "memtided"

#include <math.h>
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "daemon-private.h"
#include "daemon-agent.h"
#include "drivers.h"
#include "log-event.h"

/* Learned state is written at most this often (and at stop/removal):
 * headroom decays a little every tick, a write per tick is waste.
 * Tests set it shorter (--state-interval). */
#define STATE_SAVE_INTERVAL (30 * G_USEC_PER_SEC)
/* State of VMs not seen for this long is dropped. */
#define STATE_MAX_AGE (30 * 24 * 3600)
/* Extra plans between ticks (agent events, reservations) at most this often. */
#define PLAN_NOW_MIN_GAP (200 * 1000)

#define NOTIFY          MT_DAEMON_NOTIFY
#define TICK_LOG_DOMAIN "memtide-tick"

static void
daemon_vm_free (MtDaemonVm *vm)
{
  mt_domain_info_clear (&vm->info_data);
  g_free (vm->policy_error);
  g_free (vm->opt_in_note);
  g_free (vm->last_action);
  g_free (vm);
}

static void
apply_config (MtDaemon *d, MtConfig *config)
{
  g_clear_pointer (&d->config, mt_config_unref);
  d->config = mt_config_ref (config);
  d->host_policy = *mt_config_get_host (config);
  if (d->dry_run_option)
    d->host_policy.dry_run = TRUE;
}

gboolean
mt_daemon_check_config (const MtDaemonOptions *options, GError **error)
{
  if (!mt_config_check (options->config_file, options->policies_dir, stderr)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "the policy files have errors (listed above)");
    return FALSE;
  }
  return TRUE;
}

MtDaemon *
mt_daemon_new (const MtDaemonOptions *options, GError **error)
{
  g_autoptr (MtDaemon) d = g_new0 (MtDaemon, 1);
  g_autoptr (MtConfig) config = NULL;

  d->backend_name = g_strdup (options->backend);
  d->uri = g_strdup (options->uri);
  d->config_file = g_strdup (options->config_file);
  d->policies_dir = g_strdup (options->policies_dir);
  d->state_dir = g_strdup (options->state_dir);
  d->proc_root = g_strdup (options->proc_root);
  d->cgroup_dir = g_strdup (options->cgroup_dir);
  d->dry_run_option = options->dry_run;
  d->state_interval = options->state_interval > 0 ? options->state_interval : STATE_SAVE_INTERVAL;
  /* Keys are the VMs' own info.uuid. */
  d->vms = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) daemon_vm_free);
  d->last_plan_time = MT_TIME_NEVER;
  d->agent_plan_at = MT_TIME_NEVER;
  d->host_unreadable_since = MT_TIME_NEVER;
  d->state_failing_since = MT_TIME_NEVER;
  d->budget = MT_UNKNOWN;
  d->observers = g_array_new (FALSE, FALSE, sizeof (MtDaemonObserverEntry));
  d->control = mt_control_new ();
  d->changed_vms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  config = mt_config_load (d->config_file, d->policies_dir, error);
  if (!config) {
    g_prefix_error (error, "refusing to start, the policy files have errors:\n");
    return NULL;
  }
  apply_config (d, config);
  for (const char *const *f = mt_config_get_files (config); *f; f++)
    g_message ("Policy file %s", *f);

  d->host_reader = mt_host_reader_new (d->proc_root, NULL, d->cgroup_dir);
  if (mt_host_reader_get_cgroup_dir (d->host_reader))
    g_message ("VM cgroup %s caps the budget", mt_host_reader_get_cgroup_dir (d->host_reader));
  mt_host_model_init (&d->host_model);
  d->state = mt_state_load (d->state_dir);
  return g_steal_pointer (&d);
}

void
mt_daemon_add_observer (MtDaemon *d, const MtDaemonObserver *observer, gpointer user_data)
{
  MtDaemonObserverEntry e = { observer, user_data };

  g_array_append_val (d->observers, e);
}

void
mt_daemon_remove_observer (MtDaemon *d, const MtDaemonObserver *observer, gpointer user_data)
{
  for (guint i = 0; i < d->observers->len; i++) {
    const MtDaemonObserverEntry *e = &g_array_index (d->observers, MtDaemonObserverEntry, i);
    if (e->observer == observer && e->data == user_data) {
      g_array_remove_index (d->observers, i);
      return;
    }
  }
}

/* ---- guest agents ------------------------------------------------------ */

/* daemon-agent.c sees a VM through these pointers and reaches the daemon
 * only through these hooks. */
static void
agent_plan_now (const char *uuid, const char *why, gpointer data)
{
  mt_daemon_plan_now (data, why);
}

static void
agent_reclaimed (const char *uuid, const char *why, const char *outcome, guint64 asked, guint64 got,
                 gpointer data)
{
  NOTIFY ((MtDaemon *) data, guest_reclaimed, uuid, why, outcome, asked, got);
}

static const MtDaemonAgentHooks agent_hooks = { agent_plan_now, agent_reclaimed };

/* The link the VM should have now (its channel, its policy's mechanism). */
static void
sync_agent (MtDaemon *d, MtDaemonVm *vm)
{
  MtDaemonAgentVm view = { vm->info, &vm->policy, vm->model };

  mt_daemon_agent_sync (&vm->agent, &view, &agent_hooks, d);
}

/* ---- VM table --------------------------------------------------------- */

MtDaemonVm *
mt_daemon_lookup_vm (MtDaemon *d, const char *uuid_or_name, const char **uuid)
{
  GHashTableIter iter;
  gpointer key, value;
  MtDaemonVm *vm = NULL;

  if (uuid_or_name == NULL)
    return NULL;
  if (g_hash_table_lookup_extended (d->vms, uuid_or_name, &key, &value)) {
    vm = value;
  } else {
    g_hash_table_iter_init (&iter, d->vms);
    while (g_hash_table_iter_next (&iter, &key, &value)) {
      if (g_str_equal (((MtDaemonVm *) value)->info->name, uuid_or_name)) {
        vm = value;
        break;
      }
    }
  }
  if (vm && uuid)
    *uuid = key;
  return vm;
}

MtDaemonVm *
mt_daemon_find_vm (MtDaemon *d, const char *uuid_or_name, const char **uuid, GError **error)
{
  MtDaemonVm *vm = mt_daemon_lookup_vm (d, uuid_or_name, uuid);

  if (!vm)
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_NO_SUCH_VM,
                 "no running VM named or with UUID '%s' (memtidectl status lists them)",
                 uuid_or_name ? uuid_or_name : "(null)");
  return vm;
}

/* An opt-in domain (Xen's dom0) is managed only when a group names it
 * written out, and then never below MT_OPT_IN_FLOOR; otherwise it is
 * observed.  A change (a reload adding or removing the group) is logged;
 * the first note goes into the "managing" line. */
static void
resolve_opt_in (MtDaemon *d, MtDaemonVm *vm)
{
  const MtDomainInfo *info = vm->info;
  g_autofree char *old = g_steal_pointer (&vm->opt_in_note);

  if (info->opt_in == NULL)
    return;
  if (!mt_config_names_vm (d->config, info->name)) {
    vm->policy.mechanism = MT_MECH_NONE;
    vm->opt_in_note =
      g_strdup_printf ("%s is observed only: no [vm %s] group names it", info->opt_in, info->name);
  } else {
    gboolean raised =
      mt_vm_policy_apply_floor (&vm->policy, info->base_memory + info->vmem_size, MT_OPT_IN_FLOOR);

    vm->opt_in_note = g_strdup_printf (
      "%s is managed: [vm %s] names it; never below %" G_GUINT64_FORMAT " MiB%s", info->opt_in,
      info->name, MT_OPT_IN_FLOOR / MT_MIB, raised ? " (the policy's min was lower)" : "");
  }
  if (old != NULL && !g_str_equal (old, vm->opt_in_note))
    g_message ("VM %s: %s", info->name, vm->opt_in_note);
}

static void
resolve_policy (MtDaemon *d, MtDaemonVm *vm)
{
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&vm->policy_error, g_free);
  /* The driver read the domain's own settings; bad ones it reports,
   * conflicts with the files show only here. */
  if (vm->info->overrides_error != NULL) {
    mt_config_resolve_vm (d->config, vm->info->name, NULL, &vm->policy, NULL);
    vm->policy_error = g_strdup (vm->info->overrides_error);
  } else if (!mt_config_resolve_vm (d->config, vm->info->name, vm->info->overrides, &vm->policy,
                                    &error)) {
    vm->policy_error = g_strdup (error->message);
  }
  if (vm->policy_error != NULL)
    g_warning ("VM %s: ignoring its memtide metadata, file policy applies: %s", vm->info->name,
               vm->policy_error);
  resolve_opt_in (d, vm);
}

void
mt_daemon_save_vm_state (MtDaemon *d, const char *uuid, MtDaemonVm *vm)
{
  const MtVmControl *c = &vm->model->control;
  gint64 now_mono = g_get_monotonic_time ();
  gint64 now_wall = g_get_real_time () / G_USEC_PER_SEC;
  char reason[MT_STUCK_REASON_LEN];
  guint64 limit_min = 0, limit_max = 0;
  gboolean has_limits = mt_control_get_limits (d->control, uuid, &limit_min, &limit_max);
  gint64 window =
    vm->policy.stall_window > 0 ? vm->policy.stall_window : MT_PLAN_DEFAULT_STALL_WINDOW;
  double stall = mt_vm_control_stall (c, window, now_mono);
  guint64 rise = mt_vm_control_rise_floor (c);
  /* When the rise was learned is not kept: at the latest when its slot
   * began (rise_mib[1] the half hour before). */
  gint64 rise_at =
    (guint64) c->rise_mib[0] * MT_MIB == rise ? c->rise_epoch : c->rise_epoch - MT_PLAN_RISE_SLOT;
  MtVmState s = {
    .headroom = c->headroom,
    .reserve = c->reserve,
    .last_target = c->last_target,
    .stuck = c->stuck,
    .stuck_reason = c->stuck ? (char *) mt_vm_control_stuck_reason (c, reason) : NULL,
    .stuck_since = c->stuck ? now_wall - mt_elapsed (now_mono, c->stuck_since) / G_USEC_PER_SEC : 0,
    .has_limits = has_limits,
    .limit_min = limit_min,
    .limit_max = limit_max,
    .rise_floor = rise,
    .rise_floor_at = rise > 0 ? now_wall - mt_elapsed (now_mono, rise_at) / G_USEC_PER_SEC : 0,
    /* Whole tenths of a second: a sum that only fades would make the
     * file differ at every save. */
    .stall_us = isfinite (stall) ? (guint64) ((stall * (double) window) / (G_USEC_PER_SEC / 10))
                                     * (G_USEC_PER_SEC / 10)
                                 : 0,
  };

  mt_state_set_vm (d->state, uuid, &s, now_wall);
}

/* The stall budget's measure and the rise floor, aged by the time
 * memtided was away: a VM over its budget stays protected, and the rise
 * it is grown ahead of is kept for the rest of its hour. */
static void
restore_budget (MtDaemonVm *vm, const MtVmState *s, gint64 now_mono, gint64 now_wall)
{
  MtVmControl *c = &vm->model->control;
  gint64 window =
    vm->policy.stall_window > 0 ? vm->policy.stall_window : MT_PLAN_DEFAULT_STALL_WINDOW;
  gint64 away = MAX (0, now_wall - s->saved_at) * G_USEC_PER_SEC;
  gint64 age = MAX (0, now_wall - s->rise_floor_at) * G_USEC_PER_SEC;

  if (s->stall_us > 0) {
    c->stall_avg = (float) ((double) s->stall_us * exp (-(double) away / (double) window));
    c->stall_time = now_mono;
    c->stall_total = MT_UNKNOWN; /* the next report's total starts anew */
  }
  if (s->rise_floor > 0 && age < 2 * MT_PLAN_RISE_SLOT) {
    /* In the slot it fell into, counted back from now. */
    c->rise_mib[age < MT_PLAN_RISE_SLOT ? 0 : 1] =
      (guint16) MIN ((s->rise_floor + MT_MIB - 1) / MT_MIB, G_MAXUINT16);
    c->rise_epoch = now_mono - (age < MT_PLAN_RISE_SLOT ? age : age - MT_PLAN_RISE_SLOT);
  }
}

/* After a restart the VM continues where it was: learned headroom and
 * kernel reserve (without it the working set reads low until the size has
 * been steady again, and a restarted memtided shrank a VM only to grow it
 * back seconds later), stuck mark, admin limits.  Its last action counts as just done, so the planner
 * lets it settle before shrinking instead of acting on every VM at once. */
static void
restore_vm_state (MtDaemon *d, const char *uuid, MtDaemonVm *vm)
{
  MtVmState s;
  MtVmControl *c = &vm->model->control;
  gint64 now_mono = g_get_monotonic_time ();
  gint64 now_wall = g_get_real_time () / G_USEC_PER_SEC;

  c->last_action = now_mono;
  if (!mt_state_get_vm (d->state, uuid, &s))
    return;
  c->headroom = s.headroom;
  c->reserve = s.reserve;
  c->last_target = s.last_target;
  if (s.stuck) {
    /* Retried at the first plan (retry_at): the old reason is logged
     * below, not kept. */
    c->stuck = TRUE;
    c->stuck_kind = MT_STUCK_RESTORED;
    c->stuck_since = now_mono - MAX (0, now_wall - s.stuck_since) * G_USEC_PER_SEC;
    c->retry_at = now_mono;
  }
  restore_budget (vm, &s, now_mono, now_wall);
  if (s.has_limits && s.limit_min <= s.limit_max)
    mt_control_set_limits (d->control, uuid, s.limit_min, s.limit_max);
  else if (s.has_limits)
    g_warning ("VM %s: ignoring the saved admin limits, min is above max", vm->info->name);
  g_message (
    "VM %s: restored learned headroom %" G_GUINT64_FORMAT " MiB, kernel reserve %" G_GUINT64_FORMAT
    " MiB, rise floor %" G_GUINT64_FORMAT " MiB, stall %.1f s%s%s%s%s",
    vm->info->name, s.headroom / MT_MIB, s.reserve / MT_MIB, mt_vm_control_rise_floor (c) / MT_MIB,
    (double) c->stall_avg / G_USEC_PER_SEC, s.stuck ? ", stuck mark (" : "",
    s.stuck ? (s.stuck_reason ? s.stuck_reason : "no reason saved") : "", s.stuck ? ")" : "",
    s.has_limits ? ", admin limits" : "");
  mt_vm_state_clear (&s);
}

static void
add_or_update_vm (MtDaemon *d, const char *uuid)
{
  g_autoptr (GError) error = NULL;
  MtDomainInfo *info = d->backend->ops->get_domain (d->backend, uuid, &error);
  MtDaemonVm *vm;

  if (!info) {
    g_warning ("Cannot read domain %s: %s", uuid, error->message);
    return;
  }
  vm = g_hash_table_lookup (d->vms, uuid);
  if (vm) {
    gboolean socket_changed = g_strcmp0 (vm->info->agent_socket, info->agent_socket) != 0;

    /* The UUID string is the table's key: keep it. */
    g_free (info->uuid);
    info->uuid = g_steal_pointer (&vm->info_data.uuid);
    mt_domain_info_clear (&vm->info_data);
    vm->info_data = *info;
    g_free (info);
    info = vm->info;
    g_clear_pointer (&d->order, g_ptr_array_unref); /* its name may differ */
    resolve_policy (d, vm);
    if (socket_changed)
      sync_agent (d, vm);
    g_debug ("VM %s: configuration re-read", info->name);
    return;
  }
  vm = g_new0 (MtDaemonVm, 1);
  vm->info_data = *info;
  g_free (info);
  vm->info = info = &vm->info_data;
  vm->model = &vm->model_data;
  mt_vm_model_init (vm->model);
  mt_daemon_tune_init (&vm->tune);
  resolve_policy (d, vm);
  restore_vm_state (d, uuid, vm);
  mt_daemon_act_vm_added (d, uuid, vm);
  g_hash_table_insert (d->vms, info->uuid, vm);
  g_clear_pointer (&d->order, g_ptr_array_unref);
  g_message ("VM %s: managing (boot memory %" G_GUINT64_FORMAT " MiB, virtio-mem %" G_GUINT64_FORMAT
             " MiB, mechanism %s%s%s, agent channel %s)%s%s",
             info->name, info->base_memory / MT_MIB, info->vmem_size / MT_MIB,
             mt_mechanism_to_string (vm->policy.mechanism), info->mechanism_note ? ": " : "",
             info->mechanism_note ? info->mechanism_note : "",
             info->agent_socket ? info->agent_socket : "none", vm->opt_in_note ? "; " : "",
             vm->opt_in_note ? vm->opt_in_note : "");
  sync_agent (d, vm);
  NOTIFY (d, vm_added, uuid);
}

static void
remove_vm (MtDaemon *d, const char *uuid)
{
  MtDaemonVm *vm = g_hash_table_lookup (d->vms, uuid);
  g_autofree char *key = g_strdup (uuid);

  if (!vm)
    return;
  g_message ("VM %s: gone, no longer managed", vm->info->name);
  mt_daemon_save_vm_state (d, key, vm);
  g_clear_pointer (&vm->agent, mt_daemon_agent_free);
  mt_control_vm_removed (d->control, key);
  g_clear_pointer (&d->order, g_ptr_array_unref);
  g_hash_table_remove (d->vms, key);
  NOTIFY (d, vm_removed, key);
}

static void
on_domain_event (MtBackend *backend, MtDomainEvent event, const char *uuid, gpointer user_data)
{
  MtDaemon *d = user_data;

  switch (event) {
  case MT_DOMAIN_EVENT_ADDED:
  case MT_DOMAIN_EVENT_CHANGED:
    add_or_update_vm (d, uuid);
    break;
  case MT_DOMAIN_EVENT_REMOVED:
    remove_vm (d, uuid);
    break;
  }
}

static void
on_connection (MtBackend *backend, gboolean connected, gpointer user_data)
{
  MtDaemon *d = user_data;

  d->connected = connected;
  d->trim_after_tick = connected; /* the domains are announced next */
  if (connected)
    g_message ("Connected to %s", d->uri);
  else
    g_warning ("Lost the connection to %s; keeping every VM's state and reconnecting", d->uri);
  NOTIFY (d, host_updated);
}

/* ---- the tick ------------------------------------------------------------ */

static int
compare_vm_names (gconstpointer a, gconstpointer b)
{
  const MtDaemonVm *va = *(MtDaemonVm *const *) a;
  const MtDaemonVm *vb = *(MtDaemonVm *const *) b;
  return strcmp (va->info->name, vb->info->name);
}

typedef struct {
  MtDaemon *d;
  gint64 now;
} CollectCtx;

static void
on_sample (const char *uuid, MtVmSample *sample, gpointer user_data)
{
  CollectCtx *ctx = user_data;
  MtDaemonVm *vm = g_hash_table_lookup (ctx->d->vms, uuid);

  if (vm) {
    sync_agent (ctx->d, vm); /* follows policy reloads */
    mt_daemon_agent_overlay (vm->agent, sample, ctx->now);
    mt_vm_model_push (vm->model, sample);
  }
}

/* The host's memory now, kept as the last reading when it could be
 * read. */
static gboolean
read_host (MtDaemon *d, gint64 now, MtHostSample *host)
{
  g_autoptr (GError) error = NULL;
  gboolean ok;

  /* Where the daemon's /proc is not the host (Xen's dom0), the driver
   * says what the host has. */
  if (d->backend->ops->read_host != NULL)
    ok = d->backend->ops->read_host (d->backend, now, host, &error);
  else
    ok = mt_host_reader_read (d->host_reader, now, host, &error);
  if (ok) {
    d->last_host = *host;
    d->has_host = TRUE;
    if (d->host_unreadable_since != MT_TIME_NEVER)
      g_message ("Host memory can be read again (after %.0f s); VMs grow again",
                 mt_elapsed (now, d->host_unreadable_since) / (double) G_USEC_PER_SEC);
    d->host_unreadable_since = MT_TIME_NEVER;
  } else if (d->host_unreadable_since == MT_TIME_NEVER) {
    /* Once: it fails every tick while it lasts (e.g. no descriptor
     * left), and the planner holds the grows (planner.c, plan_grow). */
    g_warning ("Cannot read host memory: %s; %s until it can be read", error->message,
               d->host_policy.budget > 0 ? "VMs grow only within the policy's budget"
                                         : "no VM grows, not even in an emergency,");
    d->host_unreadable_since = now;
  }
  return ok;
}

static void
collect (MtDaemon *d, gint64 now, MtHostSample *host, gboolean *host_ok)
{
  g_autoptr (GError) error = NULL;
  CollectCtx ctx = { d, now };

  *host_ok = read_host (d, now, host);
  if (*host_ok)
    mt_host_model_push (&d->host_model, host);
  if (!d->backend->ops->collect (d->backend, now, on_sample, &ctx, &error))
    g_warning ("Cannot collect VM statistics: %s", error->message);
}

G_STATIC_ASSERT (G_STRUCT_OFFSET (MtVmDecision, why)
                 == G_STRUCT_OFFSET (MtVmDecision, next) + sizeof (MtVmControl));
G_STATIC_ASSERT (sizeof (MtVmDecision) - G_STRUCT_OFFSET (MtVmDecision, why) - sizeof (MtVmReason)
                 < 8); /* nothing after `why` */

void
mt_daemon_vm_decision (const MtDaemonVm *vm, MtVmDecision *out)
{
  memcpy (out, vm->decision.head, sizeof vm->decision.head);
  out->next = vm->model->control;
  out->why = vm->decision.why;
}

static void
record_decision (MtDaemonVm *vm, const MtVmDecision *dec)
{
  /* Plain data: its reason is formatted when someone reads it. */
  memcpy (vm->decision.head, dec, sizeof vm->decision.head);
  vm->decision.why = dec->why;
  vm->has_decision = TRUE;
}

/* A stable order (by name) keeps plans and logs reproducible; it is
 * sorted again only when the VM table changed. */
static GPtrArray *
vm_order (MtDaemon *d)
{
  GHashTableIter iter;
  gpointer value;

  if (d->order)
    return d->order;
  d->order = g_ptr_array_sized_new (g_hash_table_size (d->vms));
  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (d->order, value);
  g_ptr_array_sort (d->order, compare_vm_names);
  return d->order;
}

/* ---- reservations ------------------------------------------------------- */

guint64
mt_daemon_vm_domain_max (const MtDaemonVm *vm)
{
  return mt_sat_add (vm->info->base_memory, vm->info->vmem_size);
}

/* Its min when it is managed; else what the planner counts it at (its
 * size, or for a VM whose size is not known yet, what it holds or could
 * hold). */
guint64
mt_daemon_vm_floor (const MtDaemonVm *vm)
{
  MtVmDecision dec;

  if (!vm->has_decision)
    return mt_daemon_vm_domain_max (vm);
  mt_daemon_vm_decision (vm, &dec);
  if (dec.managed && dec.min != MT_UNKNOWN)
    return dec.min;
  if (dec.committed != MT_UNKNOWN)
    return dec.committed;
  return mt_daemon_vm_domain_max (vm);
}

static int
compare_floor_desc (gconstpointer a, gconstpointer b)
{
  guint64 ma = mt_daemon_vm_floor (*(const MtDaemonVm *const *) a);
  guint64 mb = mt_daemon_vm_floor (*(const MtDaemonVm *const *) b);
  return ma < mb ? 1 : ma > mb ? -1 : 0;
}

char *
mt_daemon_describe_blockers (MtDaemon *d)
{
  g_autoptr (GPtrArray) vms = g_ptr_array_new ();
  g_autoptr (GString) s = g_string_new (NULL);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (vms, value);
  g_ptr_array_sort (vms, compare_floor_desc);
  for (guint i = 0; i < vms->len && i < 5; i++) {
    MtDaemonVm *vm = vms->pdata[i];
    g_autofree char *floor = mt_format_bytes (mt_daemon_vm_floor (vm));
    MtVmDecision dec = { .current = MT_UNKNOWN };
    g_autofree char *cur = NULL;
    char stuck[MT_STUCK_REASON_LEN];

    if (vm->has_decision)
      mt_daemon_vm_decision (vm, &dec);
    cur =
      dec.current != MT_UNKNOWN ? mt_format_bytes (dec.current) : g_strdup ("size not known yet");

    g_string_append_printf (s, "%s%s (at %s, keeps %s%s%s)", i ? ", " : "", vm->info->name, cur,
                            floor, vm->model->control.stuck ? ", stuck: " : "",
                            mt_vm_control_stuck_reason (&vm->model->control, stuck));
  }
  if (vms->len > 5)
    g_string_append_printf (s, " and %u more", vms->len - 5);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

/* The control says which reservations this plan completed or which ran
 * out of time; the daemon logs them and tells observers, naming who
 * blocks a failed one. */
static void
report_reservations (MtDaemon *d, const MtPlan *plan)
{
  g_autoptr (GPtrArray) outcome =
    mt_control_after_plan (d->control, plan->budget, plan->committed, plan->now);

  for (guint i = 0; outcome && i < outcome->len; i++) {
    const MtLease *r = outcome->pdata[i];
    g_autofree char *sbytes = mt_format_bytes (r->bytes);
    g_autofree char *msg = NULL;

    if (r->done) {
      msg = g_strdup_printf ("room for %s is free: %s", sbytes, r->reason);
      g_message ("Reservation %u done: %s", r->cookie, msg);
    } else {
      g_autofree char *who = mt_daemon_describe_blockers (d);
      g_autofree char *over = mt_format_bytes (mt_sat_sub (plan->committed, plan->budget));

      msg = g_strdup_printf ("could not make room for %s in time: the VMs still hold %s "
                             "too much; largest: %s",
                             sbytes, over, who);
      g_warning ("Reservation %u failed: %s", r->cookie, msg);
    }
    NOTIFY (d, reservation_done, r->cookie, r->done, msg);
  }
}

static void
plan_and_act (MtDaemon *d, gint64 now, const MtHostSample *host)
{
  GPtrArray *order = vm_order (d);
  g_autofree MtPlanVm *in = NULL;
  g_autoptr (MtPlan) plan = NULL;
  g_autofree guint8 *issued = NULL;
  gboolean log_decisions = !g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN);
  MtHostPolicy hp;

  mt_control_host_policy (d->control, &d->host_policy, &hp);

  /* Not zeroed: mt_plan_vm_init() fills every field. */
  in = g_new (MtPlanVm, MAX (order->len, 1));
  for (guint i = 0; i < order->len; i++) {
    MtDaemonVm *vm = order->pdata[i];

    mt_control_vm_policy (d->control, vm->info->uuid, &vm->policy, &vm->effective);
    mt_plan_vm_init (&in[i], vm->info->name, vm->info, &vm->effective, vm->model, &hp, now);
  }

  plan = mt_plan_compute (host, in, order->len, &hp, now);
  d->last_plan_time = now;
  d->budget = plan->budget;
  d->committed = plan->committed;
  d->host_short = plan->host_short;
  g_free (d->plan_reason);
  d->plan_reason = g_strdup (plan->reason);
  g_debug ("plan: %s", plan->reason);

  issued = mt_daemon_act (d, plan, order, hp.dry_run);
  /* Cold page cache, after the resizes: not a resize, logged by the
   * agent code with what the guest did. */
  for (guint i = 0; i < order->len && !hp.dry_run; i++)
    if (plan->decisions[i].reclaim > 0)
      mt_daemon_agent_reclaim_cold (((MtDaemonVm *) order->pdata[i])->agent, &plan->decisions[i]);
  /* Page reporting tunables: not a resize either; logged in one line
   * with their reason (daemon-tune.c). */
  for (guint i = 0; i < order->len && !hp.dry_run; i++)
    if (plan->decisions[i].tune_delay_ms > 0)
      mt_daemon_tune_send (d, order->pdata[i], &plan->decisions[i], now);

  for (guint i = 0; i < order->len; i++) {
    MtDaemonVm *vm = order->pdata[i];
    const MtVmDecision *dec = &plan->decisions[i];
    /* `in` points to it: a deferred resize restores from this copy. */
    MtVmControl before = vm->model->control;
    gboolean was_stuck = before.stuck;

    vm->model->control = dec->next;
    if (issued)
      mt_daemon_act_after_plan (d, vm, issued[i], &before, now);
    record_decision (vm, dec);
    if (dec->next.stuck && !was_stuck) {
      char stuck[MT_STUCK_REASON_LEN];

      mt_vm_control_stuck_reason (&dec->next, stuck);
      mt_log_event (
        G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_STUCK,
        &(MtEventFields){ .vm = vm->info->name,
                          .sizes = dec->current != MT_UNKNOWN && dec->target != MT_UNKNOWN,
                          .size_from = dec->current,
                          .size_to = dec->target,
                          .reason = stuck },
        "%s: stuck: %s", vm->info->name, stuck);
      NOTIFY (d, vm_stuck, vm->info->uuid, stuck);
    } else if (!dec->next.stuck && was_stuck) {
      mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, MT_EVENT_UNSTUCK,
                    &(MtEventFields){ .vm = vm->info->name },
                    "%s: no longer stuck, managing it again", vm->info->name);
    }
    if (log_decisions) {
      g_autofree char *why = mt_vm_decision_format_reason (dec);

      g_debug ("%s: %s: %s", vm->info->name, mt_decision_kind_to_string (dec->kind), why);
    }
    NOTIFY (d, vm_updated, vm->info->uuid);
  }
  report_reservations (d, plan);
  NOTIFY (d, host_updated);
}

static void
save_state_if_due (MtDaemon *d, gint64 now)
{
  g_autoptr (GError) error = NULL;
  GHashTableIter iter;
  gpointer key, value;

  if (mt_elapsed (now, d->state_saved_at) < d->state_interval)
    return;
  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, &key, &value))
    mt_daemon_save_vm_state (d, key, value);
  mt_state_expire (d->state, g_get_real_time () / G_USEC_PER_SEC, STATE_MAX_AGE);
  d->state_saved_at = now;
  if (mt_state_save (d->state, &error)) {
    if (d->state_failing_since != MT_TIME_NEVER)
      g_message ("State saved again to %s (it could not be saved for %.0f s)",
                 mt_state_get_path (d->state),
                 mt_elapsed (now, d->state_failing_since) / (double) G_USEC_PER_SEC);
    d->state_failing_since = MT_TIME_NEVER;
    return;
  }
  /* A full or read-only disk fails every save until it is fixed: say it
   * once.  Nothing else depends on the file: the state is in memory,
   * still dirty, and the next save tries again. */
  if (d->state_failing_since == MT_TIME_NEVER) {
    g_warning ("Cannot save state to %s: %s; managing goes on with the state in memory, saved "
               "again as soon as it can be (tried every %.0f s)",
               mt_state_get_path (d->state), error->message,
               d->state_interval / (double) G_USEC_PER_SEC);
    d->state_failing_since = now;
  } else {
    g_debug ("State still not saved: %s", error->message);
  }
}

/* After announcing many domains at once (start-up, reconnect): their
 * XML and metadata were read, parsed and freed between the allocations
 * that stay, leaving free pages all over the heap. */
static void
trim_malloc (void)
{
#ifdef __GLIBC__
  malloc_trim (0);
#endif
}

static void
tick (MtDaemon *d)
{
  gint64 now = g_get_monotonic_time ();
  MtHostSample host;
  gboolean host_ok;

  gint64 t_collected, t_planned;

  d->n_ticks++;
  d->tick_at = now;
  if (!d->connected)
    return;
  collect (d, now, &host, &host_ok);
  t_collected = g_get_monotonic_time ();
  if (mt_daemon_get_mode (d) == MT_MODE_PAUSED) {
    g_debug ("tick %" G_GUINT64_FORMAT ": paused, observing only", d->n_ticks);
    NOTIFY (d, host_updated);
  } else {
    plan_and_act (d, now, host_ok ? &host : NULL);
  }
  t_planned = g_get_monotonic_time ();
  save_state_if_due (d, now);
  if (d->trim_after_tick) {
    trim_malloc ();
    d->trim_after_tick = FALSE;
  }
  /* bench/scale reads this line: the daemon's own cost per tick.  In a
   * log domain of its own, so that G_MESSAGES_DEBUG=memtide-tick shows
   * it without every VM's decision (--verbose shows both).  Not
   * "memtided-tick": GLib matches G_MESSAGES_DEBUG by substring, and
   * "memtided" would match it too. */
  g_log (TICK_LOG_DOMAIN, G_LOG_LEVEL_DEBUG,
         "tick %" G_GUINT64_FORMAT " took %.2f ms: collect %.2f ms, plan+act %.2f ms, "
         "%u VMs",
         d->n_ticks, (g_get_monotonic_time () - now) / 1000.0, (t_collected - now) / 1000.0,
         (t_planned - t_collected) / 1000.0, g_hash_table_size (d->vms));
}

static gint64 tick_interval (MtDaemon *d);

void
mt_daemon_plan_now (MtDaemon *d, const char *why)
{
  gint64 now = g_get_monotonic_time ();
  gint64 since = mt_elapsed (now, d->agent_plan_at);

  if (!d->connected) {
    g_info ("%s: not planning: not connected to %s", why, d->uri);
    return;
  }
  if (mt_daemon_get_mode (d) == MT_MODE_PAUSED) {
    g_info ("%s: not planning: paused, observing only", why);
    return;
  }
  if (since < PLAN_NOW_MIN_GAP) {
    /* Whatever asked (an agent's report pushed into the model, a
     * changed control) is in what the next tick plans with. */
    gint64 next = MAX (0, d->tick_at + tick_interval (d) - now);

    g_info ("%s: not planning now: the last extra plan was %.0f ms ago (at most one per %d ms); "
            "the next tick plans in %.0f ms",
            why, since / 1000.0, PLAN_NOW_MIN_GAP / 1000, next / 1000.0);
    return;
  }
  d->agent_plan_at = now;
  g_info ("%s: planning now", why);
  /* The last tick's reading, unless that tick could not read the host:
   * an older one no longer falls as the VMs take memory. */
  plan_and_act (d, now,
                d->has_host && d->host_unreadable_since == MT_TIME_NEVER ? &d->last_host : NULL);
}

/* ---- host memory pressure ------------------------------------------------ */

/* Tasks on the host stalled on memory: the host may be running short
 * fast (a process taking GiBs in seconds), faster than a tick.  Plan now
 * with the host as it is now, through the same limit as every extra
 * plan. */
static void
on_host_pressure (gboolean fired, gpointer data)
{
  MtDaemon *d = data;
  g_autofree char *why = NULL;
  gint64 now = g_get_monotonic_time ();
  MtHostSample host;

  if (!fired) {
    g_warning ("Host memory pressure: the kernel dropped the PSI trigger; read every tick only");
    return;
  }
  read_host (d, now, &host);
  why = g_strdup_printf ("host: tasks stalled on memory (PSI trigger '%s')",
                         mt_host_psi_trigger_get_spec (d->host_psi));
  mt_daemon_plan_now (d, why);
}

/* One line either way, never an error: without a trigger the tick's
 * reading of PSI is what there is. */
static void
arm_host_psi (MtDaemon *d)
{
  g_autoptr (GError) error = NULL;

  /* Xen: dom0's pressure is not the host's; the driver reads the host. */
  if (d->backend->ops->read_host != NULL)
    return;
  d->host_psi = mt_host_psi_trigger_new (d->proc_root, &error);
  if (d->host_psi == NULL) {
    g_message ("Host memory pressure: no PSI trigger (%s); read every tick", error->message);
    return;
  }
  g_message ("Host memory pressure: PSI trigger '%s' plans at once, and read every tick",
             mt_host_psi_trigger_get_spec (d->host_psi));
  mt_host_psi_trigger_watch (d->host_psi, on_host_pressure, d);
}

/* ---- admin control: what requests change ---------------------------------- */

G_DEFINE_QUARK (memtide - daemon - error - quark, mt_daemon_error)

MtMode
mt_daemon_get_mode (MtDaemon *d)
{
  return mt_control_get_mode (d->control, d->host_policy.dry_run);
}

static gboolean
on_changed (gpointer user_data)
{
  MtDaemon *d = user_data;
  const char *plan = d->changed_plan;
  g_autoptr (GHashTable) vms = g_steal_pointer (&d->changed_vms);
  GHashTableIter iter;
  gpointer key;

  d->changed_idle = 0;
  d->changed_plan = NULL;
  d->changed_vms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (plan)
    mt_daemon_plan_now (d, plan);
  /* Also after a plan: it may not have run (paused, disconnected, or an
   * event plan just before). */
  g_hash_table_iter_init (&iter, vms);
  while (g_hash_table_iter_next (&iter, &key, NULL)) {
    if (g_hash_table_contains (d->vms, key))
      NOTIFY (d, vm_updated, key);
  }
  NOTIFY (d, host_updated);
  return G_SOURCE_REMOVE;
}

void
mt_daemon_changed (MtDaemon *d, MtControlChange change, const char *uuid, const char *why)
{
  if (change == MT_CONTROL_SAME)
    return;
  if (change == MT_CONTROL_PLAN && !d->changed_plan)
    d->changed_plan = why ? why : "admin request";
  if (uuid)
    g_hash_table_add (d->changed_vms, g_strdup (uuid));
  /* Default priority, added before the request's reply is sent: it runs
   * before the daemon serves any request that follows that reply, so a
   * client that reads a property after the reply sees the change. */
  if (!d->changed_idle)
    d->changed_idle = g_idle_add_full (G_PRIORITY_DEFAULT, on_changed, d, NULL);
}

static gboolean
on_tick (gpointer user_data)
{
  tick (user_data);
  return G_SOURCE_CONTINUE;
}

static gint64
tick_interval (MtDaemon *d)
{
  return d->host_policy.tick_interval > 0 ? d->host_policy.tick_interval : MT_PLAN_DEFAULT_TICK;
}

static void
schedule_ticks (MtDaemon *d)
{
  g_clear_handle_id (&d->tick_source, g_source_remove);
  d->tick_source = g_timeout_add (MAX (tick_interval (d) / 1000, 10), on_tick, d);
}

gboolean
mt_daemon_start (MtDaemon *d, GError **error)
{
  g_autofree char *uri = NULL;

  d->backend = mt_drivers_select (d->backend_name, d->uri, &uri, error);
  if (!d->backend)
    return FALSE;
  g_free (d->uri);
  d->uri = uri ? g_steal_pointer (&uri) : g_strdup_printf ("the %s driver", d->backend->ops->name);
  d->backend->domain_cb = on_domain_event;
  d->backend->connection_cb = on_connection;
  d->backend->user_data = d;
  mt_daemon_act_start (d);
  arm_host_psi (d);
  d->state_saved_at = g_get_monotonic_time ();

  if (!d->backend->ops->connect (d->backend, error)) {
    g_prefix_error (error, "cannot connect to %s: ", d->uri);
    return FALSE;
  }
  d->connected = TRUE;
  g_message ("memtided running on %s (%s driver): %u VMs, tick %" G_GINT64_FORMAT " ms%s", d->uri,
             d->backend->ops->name, g_hash_table_size (d->vms), tick_interval (d) / 1000,
             d->host_policy.dry_run ? ", dry run: no resize is applied" : "");
  schedule_ticks (d);
  d->trim_after_tick = TRUE;
  tick (d);
  return TRUE;
}

void
mt_daemon_stop (MtDaemon *d)
{
  g_autoptr (GError) error = NULL;
  GHashTableIter iter;
  gpointer key, value;

  g_clear_handle_id (&d->tick_source, g_source_remove);
  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, &key, &value))
    mt_daemon_save_vm_state (d, key, value);
  if (!mt_state_save (d->state, &error))
    g_warning ("Cannot save state to %s: %s", mt_state_get_path (d->state), error->message);
}

gboolean
mt_daemon_reload (MtDaemon *d, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autoptr (MtConfig) config = mt_config_load (d->config_file, d->policies_dir, &local_error);
  GHashTableIter iter;
  gpointer value;

  if (!config) {
    mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_POLICY_ERROR,
                  &(MtEventFields){ .reason = local_error->message },
                  "Reload failed, keeping the policy in force:\n%s", local_error->message);
    g_propagate_error (error, g_steal_pointer (&local_error));
    return FALSE;
  }
  apply_config (d, config);
  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    resolve_policy (d, value);
  if (d->tick_source)
    schedule_ticks (d);
  g_message ("Policy reloaded: %u files, %u VM groups%s",
             g_strv_length ((char **) mt_config_get_files (config)),
             mt_config_get_n_vm_groups (config), d->host_policy.dry_run ? ", dry run" : "");
  mt_daemon_changed (d, MT_CONTROL_CHANGED, NULL, NULL);
  return TRUE;
}

void
mt_daemon_free (MtDaemon *d)
{
  GHashTableIter iter;
  gpointer value;

  if (!d)
    return;
  g_clear_handle_id (&d->tick_source, g_source_remove);
  if (d->vms) {
    g_hash_table_iter_init (&iter, d->vms);
    while (g_hash_table_iter_next (&iter, NULL, &value))
      g_clear_pointer (&((MtDaemonVm *) value)->agent, mt_daemon_agent_free);
  }
  g_clear_pointer (&d->order, g_ptr_array_unref);
  g_clear_pointer (&d->vms, g_hash_table_unref);
  g_clear_handle_id (&d->changed_idle, g_source_remove);
  g_clear_pointer (&d->changed_vms, g_hash_table_unref);
  g_clear_pointer (&d->control, mt_control_free);
  mt_daemon_act_stop (d);
  g_clear_pointer (&d->backend, mt_backend_free);
  g_clear_pointer (&d->config, mt_config_unref);
  g_clear_pointer (&d->host_reader, mt_host_reader_free);
  g_clear_pointer (&d->host_psi, mt_host_psi_trigger_free);
  g_clear_pointer (&d->state, mt_state_free);
  g_free (d->plan_reason);
  g_clear_pointer (&d->observers, g_array_unref);
  g_free (d->backend_name);
  g_free (d->uri);
  g_free (d->config_file);
  g_free (d->policies_dir);
  g_free (d->state_dir);
  g_free (d->proc_root);
  g_free (d->cgroup_dir);
  g_free (d);
}
