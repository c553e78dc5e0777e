/* dbus-publish.c: the daemon's state on the bus: Manager1's properties,
 * one VM1 object per VM (through the ObjectManager), and signals.  All of
 * it happens in the daemon's observer calls, which only read the daemon;
 * the daemon reports after every plan and after requests (from an idle,
 * so a signal never comes before the reply of the request that caused
 * it).  The generated skeletons compare each value and emit
 * PropertiesChanged only for those that changed. */
#define G_LOG_DOMAIN "memtided-dbus"

#include "build-config.h"

#include <math.h>

#include "dbus-private.h"
#include "reporting.h"
#include "sample.h"

/* Unknown sizes are 0 on the bus, unknown pressure -1 (the XML says so). */
static guint64
size_or_zero (guint64 bytes)
{
  return bytes == MT_UNKNOWN ? 0 : bytes;
}

static double
pressure_or_minus_one (double pressure)
{
  return isnan (pressure) ? -1.0 : pressure;
}

static void publish_host (MtDbus *self);

static void
dbus_vm_free (MtDbusVm *vm)
{
  g_free (vm->uuid);
  g_free (vm->path);
  g_clear_object (&vm->iface);
  g_clear_object (&vm->object);
  g_free (vm);
}

void
mt_dbus_publish_init (MtDbus *self)
{
  self->vms = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) dbus_vm_free);
  self->manager = mt_dbus_manager1_skeleton_new ();
  self->object_manager = g_dbus_object_manager_server_new (MT_DBUS_PATH);
  mt_dbus_manager1_set_version (self->manager, PACKAGE_VERSION);
  publish_host (self);
}

void
mt_dbus_publish_free (MtDbus *self)
{
  GHashTableIter iter;
  gpointer value;

  if (self->vms && self->object_manager) {
    g_hash_table_iter_init (&iter, self->vms);
    while (g_hash_table_iter_next (&iter, NULL, &value))
      g_dbus_object_manager_server_unexport (self->object_manager, ((MtDbusVm *) value)->path);
  }
  if (self->object_manager)
    g_dbus_object_manager_server_set_connection (self->object_manager, NULL);
  g_clear_pointer (&self->vms, g_hash_table_unref);
  g_clear_object (&self->object_manager);
  g_clear_object (&self->manager);
}

/* a(utsbs) for Manager1.Reservations: (cookie, bytes, reason, done,
 * holder), oldest first. */
static GVariant *
reservations_variant (MtDbus *self)
{
  g_autoptr (GPtrArray) list = mt_daemon_list_leases (self->daemon, MT_LEASE_RESERVATION, NULL);
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(utsbs)"));
  for (guint i = 0; i < list->len; i++) {
    const MtLease *l = list->pdata[i];
    g_variant_builder_add (&b, "(utsbs)", l->cookie, l->bytes, l->reason, l->done, l->holder);
  }
  return g_variant_builder_end (&b);
}

/* a(utss) for a VM's Pins: (cookie, size, reason, holder), oldest first. */
static GVariant *
pins_variant (MtDbus *self, const char *uuid)
{
  g_autoptr (GPtrArray) list = mt_daemon_list_leases (self->daemon, MT_LEASE_PIN, uuid);
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(utss)"));
  for (guint i = 0; i < list->len; i++) {
    const MtLease *l = list->pdata[i];
    g_variant_builder_add (&b, "(utss)", l->cookie, l->bytes, l->reason, l->holder);
  }
  return g_variant_builder_end (&b);
}

static void
publish_host (MtDbus *self)
{
  MtHostStatus host;
  MtDbusManager1 *m = self->manager;
  g_autoptr (GVariant) reservations = NULL;

  mt_daemon_get_host_status (self->daemon, &host);
  mt_dbus_manager1_set_mode (m, mt_mode_to_string (host.mode));
  mt_dbus_manager1_set_policy_files (m, mt_daemon_get_policy_files (self->daemon));
  mt_dbus_manager1_set_connected (m, host.connected);
  mt_dbus_manager1_set_total (m, size_or_zero (host.total));
  mt_dbus_manager1_set_available (m, size_or_zero (host.available));
  mt_dbus_manager1_set_reserve (m, size_or_zero (host.reserve));
  mt_dbus_manager1_set_budget (m, size_or_zero (host.budget));
  mt_dbus_manager1_set_guest_total (m, size_or_zero (host.guest_total));
  mt_dbus_manager1_set_guest_free (m, size_or_zero (host.guest_free));
  mt_dbus_manager1_set_reported_free (m, size_or_zero (host.reported_free));
  mt_dbus_manager1_set_reported_total (m, size_or_zero (host.reported_total));
  mt_dbus_manager1_set_reused_total (m, size_or_zero (host.reused_total));
  mt_dbus_manager1_set_rss_saved (m, size_or_zero (host.rss_saved));
  mt_dbus_manager1_set_unpluggable (m, size_or_zero (host.unpluggable));
  mt_dbus_manager1_set_nvms (m, host.n_vms);
  reservations = g_variant_ref_sink (reservations_variant (self));
  mt_dbus_manager1_set_reservations (m, reservations);
}

/* a(stttttt) for a VM's BlockUsage: the kinds the guest has blocks of. */
static GVariant *
block_usage_variant (const MtVmStatus *st)
{
  MtBlockKind kinds[MT_BLOCK_KINDS];
  GVariantBuilder b;

  mt_block_kinds (&st->usage_kernel, &st->usage_movable, &st->usage_vmem, kinds);
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(stttttt)"));
  for (guint i = 0; i < MT_BLOCK_KINDS; i++) {
    const MtBlockUsage *u = kinds[i].usage;
    if (!mt_block_kind_shown (&kinds[i]))
      continue;
    g_variant_builder_add (&b, "(stttttt)", kinds[i].name, u->blocks, size_or_zero (u->free),
                           size_or_zero (u->movable), size_or_zero (u->unmovable),
                           size_or_zero (u->pinned), size_or_zero (u->offline));
  }
  return g_variant_builder_end (&b);
}

/* a(st) for a VM's AgentViolations: (kind, count) per kind seen. */
static GVariant *
agent_violations_variant (const MtVmStatus *st)
{
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(st)"));
  for (guint c = MT_AGENT_OK + 1; c < MT_AGENT_ERR_COUNT; c++)
    if (st->agent_violations[c] > 0)
      g_variant_builder_add (&b, "(st)", mt_agent_error_code_to_string (c),
                             st->agent_violations[c]);
  return g_variant_builder_end (&b);
}

/* Tunables are small (<= 60000); unknown is 0 on the bus. */
static guint
uint_or_zero (guint64 v)
{
  return v == MT_UNKNOWN || v > G_MAXUINT ? 0 : (guint) v;
}

static void
set_vm_properties (MtDbus *self, MtDbusVM1 *v, const MtVmStatus *st)
{
  g_autoptr (GVariant) pins = g_variant_ref_sink (pins_variant (self, st->uuid));
  g_autoptr (GVariant) usage = g_variant_ref_sink (block_usage_variant (st));
  g_autoptr (GVariant) violations = g_variant_ref_sink (agent_violations_variant (st));

  mt_dbus_vm1_set_name (v, st->name);
  mt_dbus_vm1_set_uuid (v, st->uuid);
  mt_dbus_vm1_set_current (v, size_or_zero (st->current));
  mt_dbus_vm1_set_target (v, size_or_zero (st->target));
  mt_dbus_vm1_set_need (v, size_or_zero (st->need));
  mt_dbus_vm1_set_min (v, size_or_zero (st->min));
  mt_dbus_vm1_set_max (v, size_or_zero (st->max));
  mt_dbus_vm1_set_plugged (v, size_or_zero (st->vmem_plugged));
  mt_dbus_vm1_set_balloon (v, size_or_zero (st->balloon));
  mt_dbus_vm1_set_guest_available (v, size_or_zero (st->guest_available));
  mt_dbus_vm1_set_pressure (v, pressure_or_minus_one (st->pressure));
  mt_dbus_vm1_set_stall (v, pressure_or_minus_one (100.0 * st->stall));
  mt_dbus_vm1_set_stall_budget (v, 100.0 * st->stall_budget);
  mt_dbus_vm1_set_stall_window (v, (guint) MIN (st->stall_window / G_USEC_PER_SEC, G_MAXUINT));
  mt_dbus_vm1_set_over_stall_budget (v, st->over_budget);
  mt_dbus_vm1_set_rise_floor (v, st->rise_floor);
  mt_dbus_vm1_set_data_source (v, st->source);
  mt_dbus_vm1_set_mechanism (v, st->mechanism);
  mt_dbus_vm1_set_decision (v, st->decision);
  mt_dbus_vm1_set_reason (v, st->reason);
  mt_dbus_vm1_set_agent_connected (v, st->agent_connected);
  mt_dbus_vm1_set_stuck (v, st->stuck);
  mt_dbus_vm1_set_stuck_reason (v, st->stuck_reason);
  mt_dbus_vm1_set_last_action (v, st->last_action);
  mt_dbus_vm1_set_has_limits (v, st->has_limits);
  mt_dbus_vm1_set_pinned (v, st->pinned);
  mt_dbus_vm1_set_pins (v, pins);
  mt_dbus_vm1_set_reported_free (v, size_or_zero (st->reported_free));
  mt_dbus_vm1_set_rss_saved (v, size_or_zero (st->rss_saved));
  mt_dbus_vm1_set_reported_total (v, size_or_zero (st->reported_total));
  mt_dbus_vm1_set_reused_total (v, size_or_zero (st->reused_total));
  mt_dbus_vm1_set_reporting_passes (v, size_or_zero (st->reporting_passes));
  mt_dbus_vm1_set_reporting_budget_exhausted (v, size_or_zero (st->reporting_budget_exhausted));
  mt_dbus_vm1_set_reporting_delay (v, uint_or_zero (st->reporting_delay_ms));
  mt_dbus_vm1_set_reporting_budget_divisor (v, uint_or_zero (st->reporting_budget_divisor));
  mt_dbus_vm1_set_block_usage (v, usage);
  mt_dbus_vm1_set_unpluggable (v, size_or_zero (st->unpluggable));
  mt_dbus_vm1_set_agent_violations (v, violations);
  mt_dbus_vm1_set_agent_last_violation (v, st->agent_last_violation);
}

GVariant *
mt_dbus_vm_status_to_variant (MtDbus *self, const MtVmStatus *st)
{
  g_autoptr (MtDbusVM1) v = mt_dbus_vm1_skeleton_new ();
  GVariantBuilder b;
  const char *path = mt_dbus_vm_path (self, st->uuid);
  g_autoptr (GVariant) props = NULL;
  GVariantIter iter;
  const char *key;
  GVariant *value;

  /* The skeleton turns the status into the exact property values the VM's
   * object has, so ListVMs and the objects cannot disagree. */
  set_vm_properties (self, v, st);
  props = g_dbus_interface_skeleton_get_properties (G_DBUS_INTERFACE_SKELETON (v));
  g_variant_builder_init (&b, G_VARIANT_TYPE_VARDICT);
  g_variant_iter_init (&iter, props);
  while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
    g_variant_builder_add (&b, "{sv}", key, value);
    g_variant_unref (value);
  }
  if (path)
    g_variant_builder_add (&b, "{sv}", "ObjectPath", g_variant_new_object_path (path));
  return g_variant_builder_end (&b);
}

MtDbusVm *
mt_dbus_vm_lookup (MtDbus *self, const char *uuid)
{
  return g_hash_table_lookup (self->vms, uuid);
}

MtDbusVm *
mt_dbus_vm_by_path (MtDbus *self, const char *path)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    if (g_strcmp0 (((MtDbusVm *) value)->path, path) == 0)
      return value;
  }
  return NULL;
}

const char *
mt_dbus_vm_path (MtDbus *self, const char *uuid)
{
  MtDbusVm *vm = g_hash_table_lookup (self->vms, uuid);

  return vm ? vm->path : NULL;
}

/* Refreshes a VM's properties from the daemon (and its Pins). */
static void
publish_vm (MtDbus *self, const char *uuid)
{
  MtDbusVm *vm = g_hash_table_lookup (self->vms, uuid);
  g_autoptr (MtVmStatus) st = NULL;

  if (!vm)
    return;
  st = mt_daemon_get_vm_status (self->daemon, uuid, NULL);
  if (st)
    set_vm_properties (self, vm->iface, st);
}

static void
publish_all_vms (MtDbus *self)
{
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, self->vms);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    publish_vm (self, key);
}

/* ---- the daemon's observer ------------------------------------------------ */

static void
on_vm_added (MtDaemon *d, const char *uuid, gpointer user_data)
{
  MtDbus *self = user_data;
  g_autofree char *escaped = g_dbus_escape_object_path (uuid);
  MtDbusVm *vm;

  if (g_hash_table_contains (self->vms, uuid))
    return;
  vm = g_new0 (MtDbusVm, 1);
  vm->uuid = g_strdup (uuid);
  vm->path = g_strdup_printf (MT_DBUS_PATH "/vm/%s", escaped);
  vm->object = mt_dbus_object_skeleton_new (vm->path);
  vm->iface = mt_dbus_vm1_skeleton_new ();
  mt_dbus_object_skeleton_set_vm1 (vm->object, vm->iface);
  g_hash_table_insert (self->vms, vm->uuid, vm);
  publish_vm (self, uuid);
  /* Its methods are connected by the requests observer, which runs next,
   * before any call can be dispatched to it. */
  g_dbus_object_manager_server_export (self->object_manager, G_DBUS_OBJECT_SKELETON (vm->object));
  g_debug ("exported %s as %s", uuid, vm->path);
  publish_host (self);
}

static void
on_vm_removed (MtDaemon *d, const char *uuid, gpointer user_data)
{
  MtDbus *self = user_data;
  MtDbusVm *vm = g_hash_table_lookup (self->vms, uuid);

  if (!vm)
    return;
  g_dbus_object_manager_server_unexport (self->object_manager, vm->path);
  g_hash_table_remove (self->vms, uuid);
  publish_host (self);
}

static void
on_vm_updated (MtDaemon *d, const char *uuid, gpointer user_data)
{
  publish_vm (user_data, uuid);
}

static void
on_host_updated (MtDaemon *d, gpointer user_data)
{
  MtDbus *self = user_data;

  publish_host (self);
  /* While paused (or disconnected) no plan runs and no vm_updated comes,
   * but sizes still move: keep the VMs' properties current anyway. */
  if (mt_daemon_get_mode (d) == MT_MODE_PAUSED || !mt_dbus_manager1_get_connected (self->manager))
    publish_all_vms (self);
}

static void
on_action_applied (MtDaemon *d, const char *uuid, const char *mechanism, guint64 from, guint64 to,
                   const char *reason, gpointer user_data)
{
  MtDbus *self = user_data;
  MtDbusVm *vm = g_hash_table_lookup (self->vms, uuid);

  if (!vm)
    return;
  mt_dbus_manager1_emit_action_applied (self->manager, vm->path, mt_dbus_vm1_get_name (vm->iface),
                                        mechanism, size_or_zero (from), size_or_zero (to), reason);
}

static void
on_vm_stuck (MtDaemon *d, const char *uuid, const char *reason, gpointer user_data)
{
  MtDbus *self = user_data;
  MtDbusVm *vm = g_hash_table_lookup (self->vms, uuid);

  if (!vm)
    return;
  mt_dbus_manager1_emit_vmstuck (self->manager, vm->path, mt_dbus_vm1_get_name (vm->iface), reason);
}

/* Never inside the Reserve call: the daemon reports after a plan, and
 * plans for a request from an idle, after the reply went out. */
static void
on_reservation_done (MtDaemon *d, guint cookie, gboolean ok, const char *message,
                     gpointer user_data)
{
  MtDbus *self = user_data;

  mt_dbus_manager1_emit_reservation_done (self->manager, cookie, ok, message);
}

const MtDaemonObserver mt_dbus_publish_observer = {
  .vm_added = on_vm_added,
  .vm_removed = on_vm_removed,
  .vm_updated = on_vm_updated,
  .host_updated = on_host_updated,
  .action_applied = on_action_applied,
  .vm_stuck = on_vm_stuck,
  .reservation_done = on_reservation_done,
};
