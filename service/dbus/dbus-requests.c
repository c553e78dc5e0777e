/* dbus-requests.c: method calls.  Reads answer at once; every write asks
 * polkit (dbus-auth.c) and continues in a function that re-reads its
 * arguments from the invocation, makes one daemon request and replies.
 * Nothing here sets a property or emits a signal: the daemon tells its
 * observers (dbus-publish.c) what a request changed, after the reply. */
#define G_LOG_DOMAIN "memtided-dbus"

#include "dbus-private.h"
#include "config.h"

#define ACTION_RELOAD     "org.memtide.reload"
#define ACTION_SET_MODE   "org.memtide.set-mode"
#define ACTION_RESERVE    "org.memtide.reserve"
#define ACTION_SET_LIMITS "org.memtide.set-limits"
#define ACTION_PIN        "org.memtide.pin"

#define RESERVE_TIMEOUT_MAX 3600 /* seconds */

/* ---- Manager1: reads ------------------------------------------------------ */

static gboolean
handle_list_vms (MtDbusManager1 *object, GDBusMethodInvocation *invocation, gpointer user_data)
{
  MtDbus *self = user_data;
  g_autoptr (GPtrArray) vms = mt_daemon_list_vms (self->daemon);
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; i < vms->len; i++)
    g_variant_builder_add_value (&b, mt_dbus_vm_status_to_variant (self, vms->pdata[i]));
  mt_dbus_manager1_complete_list_vms (object, invocation, g_variant_builder_end (&b));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_get_vm (MtDbusManager1 *object, GDBusMethodInvocation *invocation, const char *vm,
               gpointer user_data)
{
  MtDbus *self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (MtVmStatus) st = mt_daemon_get_vm_status (self->daemon, vm, &error);
  const char *path = st ? mt_dbus_vm_path (self, st->uuid) : NULL;

  if (!st) {
    mt_dbus_return_error (invocation, error);
  } else if (!path) {
    g_dbus_method_invocation_return_error (invocation, MT_DBUS_ERROR, MT_DBUS_ERROR_NO_SUCH_VM,
                                           "VM '%s' has no object yet", vm);
  } else {
    mt_dbus_manager1_complete_get_vm (object, invocation, path);
  }
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_explain (MtDbusManager1 *object, GDBusMethodInvocation *invocation, const char *vm,
                gpointer user_data)
{
  MtDbus *self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *text = mt_daemon_explain (self->daemon, vm, &error);

  if (!text)
    mt_dbus_return_error (invocation, error);
  else
    mt_dbus_manager1_complete_explain (object, invocation, text);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- Manager1: writes ----------------------------------------------------- */

static void
do_reload (MtDbus *self, GDBusMethodInvocation *invocation)
{
  g_autoptr (GError) error = NULL;

  g_message ("Policy reload asked by %s", g_dbus_method_invocation_get_sender (invocation));
  if (mt_daemon_reload (self->daemon, &error)) {
    mt_dbus_manager1_complete_reload_policies (self->manager, invocation);
    return;
  }
  g_dbus_method_invocation_return_error (invocation, MT_DBUS_ERROR, MT_DBUS_ERROR_FAILED,
                                         "the policy files have errors, the policy in force "
                                         "stays (memtided --check-config lists them):\n%s",
                                         error->message);
}

static gboolean
handle_reload_policies (MtDbusManager1 *object, GDBusMethodInvocation *invocation,
                        gpointer user_data)
{
  mt_dbus_authorize (user_data, invocation, ACTION_RELOAD, NULL, do_reload);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
do_set_mode (MtDbus *self, GDBusMethodInvocation *invocation)
{
  const char *text = NULL;
  MtMode mode;

  g_variant_get (g_dbus_method_invocation_get_parameters (invocation), "(&s)", &text);
  if (!mt_mode_from_string (text, &mode)) {
    g_dbus_method_invocation_return_error (
      invocation, MT_DBUS_ERROR, MT_DBUS_ERROR_INVALID_ARGUMENT,
      "unknown mode '%s': expected active, dry-run or paused", text);
    return;
  }
  g_message ("Mode %s asked by %s", text, g_dbus_method_invocation_get_sender (invocation));
  mt_daemon_set_mode (self->daemon, mode);
  mt_dbus_manager1_complete_set_mode (self->manager, invocation);
}

static gboolean
handle_set_mode (MtDbusManager1 *object, GDBusMethodInvocation *invocation, const char *mode,
                 gpointer user_data)
{
  mt_dbus_authorize (user_data, invocation, ACTION_SET_MODE, NULL, do_set_mode);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
do_reserve (MtDbus *self, GDBusMethodInvocation *invocation)
{
  g_autoptr (GError) error = NULL;
  guint64 bytes;
  const char *reason;
  guint32 timeout;
  guint cookie;

  g_variant_get (g_dbus_method_invocation_get_parameters (invocation), "(t&su)", &bytes, &reason,
                 &timeout);
  if (timeout < 1 || timeout > RESERVE_TIMEOUT_MAX) {
    g_dbus_method_invocation_return_error (
      invocation, MT_DBUS_ERROR, MT_DBUS_ERROR_INVALID_ARGUMENT,
      "timeout %u s is out of range: expected 1 to %u s", timeout, RESERVE_TIMEOUT_MAX);
    return;
  }
  cookie = mt_daemon_reserve (self->daemon, bytes, reason, (gint64) timeout * G_USEC_PER_SEC,
                              g_dbus_method_invocation_get_sender (invocation), &error);
  if (!cookie) {
    mt_dbus_return_error (invocation, error);
    return;
  }
  mt_dbus_holders_watch (self, g_dbus_method_invocation_get_sender (invocation));
  mt_dbus_manager1_complete_reserve (self->manager, invocation, cookie);
}

static gboolean
handle_reserve (MtDbusManager1 *object, GDBusMethodInvocation *invocation, guint64 bytes,
                const char *reason, guint timeout, gpointer user_data)
{
  mt_dbus_authorize (user_data, invocation, ACTION_RESERVE, NULL, do_reserve);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* The VM an invocation is for; NULL (and the caller got NoSuchVM) when it
 * stopped while polkit was asked. */
static MtDbusVm *
invocation_vm (MtDbus *self, GDBusMethodInvocation *invocation)
{
  MtDbusVm *vm = mt_dbus_vm_by_path (self, g_dbus_method_invocation_get_object_path (invocation));

  if (!vm)
    g_dbus_method_invocation_return_error (invocation, MT_DBUS_ERROR, MT_DBUS_ERROR_NO_SUCH_VM,
                                           "the VM of %s is no longer running",
                                           g_dbus_method_invocation_get_object_path (invocation));
  return vm;
}

/* polkit details, so that rules can allow writes per VM:
 * action.lookup("vm") and action.lookup("uuid"). */
static void
authorize_vm (MtDbus *self, GDBusMethodInvocation *invocation, const char *action_id,
              MtDbusAuthorizedFunc func)
{
  MtDbusVm *vm = invocation_vm (self, invocation);
  const char *details[5];

  if (!vm)
    return;
  details[0] = "vm";
  details[1] = mt_dbus_vm1_get_name (vm->iface);
  details[2] = "uuid";
  details[3] = vm->uuid;
  details[4] = NULL;
  mt_dbus_authorize (self, invocation, action_id, details, func);
}

/* Ends the lease named by the invocation's only argument, a cookie: a
 * pin for Unpin, else a reservation. */
static void
do_end_lease (MtDbus *self, GDBusMethodInvocation *invocation)
{
  g_autoptr (GError) error = NULL;
  guint32 cookie;
  gboolean ok;

  g_variant_get (g_dbus_method_invocation_get_parameters (invocation), "(u)", &cookie);
  if (g_str_equal (g_dbus_method_invocation_get_method_name (invocation), "Unpin"))
    ok = mt_daemon_unpin (self->daemon, cookie, &error);
  else
    ok = mt_daemon_release (self->daemon, cookie, &error);
  if (!ok) {
    mt_dbus_return_error (invocation, error);
    return;
  }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

/* The holder of a lease may end it; anyone else needs action_id.  An
 * unknown cookie, or one of another kind or VM, is NoSuchCookie. */
static void
end_lease (MtDbus *self, GDBusMethodInvocation *invocation, guint cookie, MtLeaseKind kind,
           const char *uuid, const char *action_id)
{
  g_autoptr (MtLease) lease = mt_daemon_get_lease (self->daemon, cookie);

  if (!lease || lease->kind != kind || (uuid && g_strcmp0 (lease->uuid, uuid) != 0)) {
    if (kind == MT_LEASE_PIN)
      g_dbus_method_invocation_return_error (invocation, MT_DBUS_ERROR,
                                             MT_DBUS_ERROR_NO_SUCH_COOKIE,
                                             "no pin %u on this VM (already ended, the VM "
                                             "restarted, or its holder left the bus)",
                                             cookie);
    else
      g_dbus_method_invocation_return_error (invocation, MT_DBUS_ERROR,
                                             MT_DBUS_ERROR_NO_SUCH_COOKIE,
                                             "no reservation %u (already released, failed, or "
                                             "its holder left the bus)",
                                             cookie);
    return;
  }
  if (g_strcmp0 (lease->holder, g_dbus_method_invocation_get_sender (invocation)) == 0)
    do_end_lease (self, invocation);
  else if (kind == MT_LEASE_PIN)
    authorize_vm (self, invocation, action_id, do_end_lease);
  else
    mt_dbus_authorize (self, invocation, action_id, NULL, do_end_lease);
}

static gboolean
handle_release_reservation (MtDbusManager1 *object, GDBusMethodInvocation *invocation, guint cookie,
                            gpointer user_data)
{
  end_lease (user_data, invocation, cookie, MT_LEASE_RESERVATION, NULL, ACTION_RESERVE);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

void
mt_dbus_requests_connect_manager (MtDbus *self)
{
  g_signal_connect (self->manager, "handle-list-vms", G_CALLBACK (handle_list_vms), self);
  g_signal_connect (self->manager, "handle-get-vm", G_CALLBACK (handle_get_vm), self);
  g_signal_connect (self->manager, "handle-explain", G_CALLBACK (handle_explain), self);
  g_signal_connect (self->manager, "handle-reload-policies", G_CALLBACK (handle_reload_policies),
                    self);
  g_signal_connect (self->manager, "handle-set-mode", G_CALLBACK (handle_set_mode), self);
  g_signal_connect (self->manager, "handle-reserve", G_CALLBACK (handle_reserve), self);
  g_signal_connect (self->manager, "handle-release-reservation",
                    G_CALLBACK (handle_release_reservation), self);
}

/* ---- VM1 -------------------------------------------------------------------- */

static void
do_set_limits (MtDbus *self, GDBusMethodInvocation *invocation)
{
  g_autoptr (GError) error = NULL;
  MtDbusVm *vm = invocation_vm (self, invocation);
  guint64 min, max;

  if (!vm)
    return;
  g_variant_get (g_dbus_method_invocation_get_parameters (invocation), "(tt)", &min, &max);
  if (!mt_daemon_set_limits (self->daemon, vm->uuid, min, max, &error)) {
    mt_dbus_return_error (invocation, error);
    return;
  }
  mt_dbus_vm1_complete_set_limits (vm->iface, invocation);
}

static gboolean
handle_set_limits (MtDbusVM1 *object, GDBusMethodInvocation *invocation, guint64 min, guint64 max,
                   gpointer user_data)
{
  authorize_vm (user_data, invocation, ACTION_SET_LIMITS, do_set_limits);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
do_pin (MtDbus *self, GDBusMethodInvocation *invocation)
{
  g_autoptr (GError) error = NULL;
  MtDbusVm *vm = invocation_vm (self, invocation);
  guint64 size;
  const char *reason;
  guint cookie;

  if (!vm)
    return;
  g_variant_get (g_dbus_method_invocation_get_parameters (invocation), "(t&s)", &size, &reason);
  cookie = mt_daemon_pin (self->daemon, vm->uuid, size, reason,
                          g_dbus_method_invocation_get_sender (invocation), &error);
  if (!cookie) {
    mt_dbus_return_error (invocation, error);
    return;
  }
  mt_dbus_holders_watch (self, g_dbus_method_invocation_get_sender (invocation));
  mt_dbus_vm1_complete_pin (vm->iface, invocation, cookie);
}

static gboolean
handle_pin (MtDbusVM1 *object, GDBusMethodInvocation *invocation, guint64 size, const char *reason,
            gpointer user_data)
{
  authorize_vm (user_data, invocation, ACTION_PIN, do_pin);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_unpin (MtDbusVM1 *object, GDBusMethodInvocation *invocation, guint cookie,
              gpointer user_data)
{
  MtDbus *self = user_data;
  MtDbusVm *vm = invocation_vm (self, invocation);

  if (vm)
    end_lease (self, invocation, cookie, MT_LEASE_PIN, vm->uuid, ACTION_PIN);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* dbus-publish.c made the VM's object in its own vm_added, just before. */
static void
on_vm_added (MtDaemon *d, const char *uuid, gpointer user_data)
{
  MtDbus *self = user_data;
  MtDbusVm *vm = mt_dbus_vm_lookup (self, uuid);

  if (!vm || g_signal_handler_find (vm->iface, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, self))
    return;
  g_signal_connect (vm->iface, "handle-set-limits", G_CALLBACK (handle_set_limits), self);
  g_signal_connect (vm->iface, "handle-pin", G_CALLBACK (handle_pin), self);
  g_signal_connect (vm->iface, "handle-unpin", G_CALLBACK (handle_unpin), self);
}

const MtDaemonObserver mt_dbus_requests_observer = {
  .vm_added = on_vm_added,
};
