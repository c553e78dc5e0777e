/* memtidectl-bus.c: talking to memtided, and turning every failure into a
 * message that says what to do and an exit code that says what kind. */
#define G_LOG_DOMAIN "memtidectl"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "memtidectl.h"

int
mtctl_usage_error (const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("memtidectl: %s (try memtidectl --help)\n", msg);
  return MT_EXIT_USAGE;
}

static gboolean
remote_is (const GError *error, const char *name)
{
  g_autofree char *remote = g_dbus_error_get_remote_error (error);
  return g_strcmp0 (remote, name) == 0;
}

int
mtctl_fail (MtCtl *ctl, const GError *error)
{
  g_autoptr (GError) e = g_error_copy (error);
  const char *where = ctl->address ? "the bus at --address" : "the system bus";

  g_dbus_error_strip_remote_error (e);
  if (g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN)
      || g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER)
      || remote_is (error, "org.freedesktop.DBus.Error.ServiceUnknown")) {
    g_printerr ("memtidectl: memtided is not running on %s (start it with: "
                "systemctl start memtided; why it stopped: journalctl -u memtided)\n",
                where);
    return MT_EXIT_UNREACHABLE;
  }
  if (g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY)
      || g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_TIMEOUT)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
    g_printerr ("memtidectl: memtided did not answer (%s); is it hung? "
                "(journalctl -u memtided)\n",
                e->message);
    return MT_EXIT_UNREACHABLE;
  }
  if (g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED)) {
    g_printerr ("memtidectl: the D-Bus policy refused this call: %s (is "
                "org.memtide.Manager1.conf installed in /usr/share/dbus-1/system.d?)\n",
                e->message);
    return MT_EXIT_NOT_AUTHORIZED;
  }
  if (remote_is (error, "org.memtide.Error.NotAuthorized")) {
    g_printerr ("memtidectl: %s\n"
                "  Run it as root, or have an administrator allow that polkit action for you "
                "(see memtidectl(1), AUTHORIZATION).\n",
                e->message);
    return MT_EXIT_NOT_AUTHORIZED;
  }
  if (remote_is (error, "org.memtide.Error.NoSuchVM")) {
    g_printerr (
      "memtidectl: %s%s\n", e->message,
      strstr (e->message, "memtidectl status") ? "" : " (memtidectl status lists the running VMs)");
    return MT_EXIT_NOT_FOUND;
  }
  if (remote_is (error, "org.memtide.Error.NoSuchCookie")) {
    g_printerr ("memtidectl: %s\n", e->message);
    return MT_EXIT_NOT_FOUND;
  }
  if (remote_is (error, "org.memtide.Error.CannotReserve")) {
    g_printerr ("memtidectl: %s\n", e->message);
    return MT_EXIT_NO_ROOM;
  }
  if (remote_is (error, "org.memtide.Error.InvalidArgument")) {
    g_printerr ("memtidectl: %s\n", e->message);
    return MT_EXIT_USAGE;
  }
  if (remote_is (error, "org.freedesktop.DBus.Error.UnknownMethod")
      || remote_is (error, "org.freedesktop.DBus.Error.UnknownObject")
      || remote_is (error, "org.freedesktop.DBus.Error.UnknownInterface")) {
    g_printerr ("memtidectl: memtided does not know this request (%s): is it an older "
                "version than memtidectl?\n",
                e->message);
    return MT_EXIT_FAILED;
  }
  g_printerr ("memtidectl: %s\n", e->message);
  return MT_EXIT_FAILED;
}

gboolean
mtctl_connect (MtCtl *ctl, GError **error)
{
  if (ctl->address) {
    ctl->bus =
      g_dbus_connection_new_for_address_sync (ctl->address,
                                              G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
                                                | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                              NULL, NULL, error);
  } else {
    ctl->bus = g_bus_get_sync (G_BUS_TYPE_SYSTEM, NULL, error);
  }
  if (!ctl->bus) {
    g_prefix_error (error, "cannot reach %s: ", ctl->address ? ctl->address : "the system bus");
    return FALSE;
  }
  g_dbus_connection_set_exit_on_close (ctl->bus, FALSE);
  return TRUE;
}

GDBusCallFlags
mtctl_call_flags (MtCtl *ctl, MtCtlAccess access)
{
  /* memtided is a system service: a client never starts it. */
  GDBusCallFlags flags = G_DBUS_CALL_FLAGS_NO_AUTO_START;

  if (access == MTCTL_WRITE && ctl->ask_password)
    flags |= G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION;
  return flags;
}

int
mtctl_call_timeout (MtCtl *ctl, MtCtlAccess access)
{
  /* A polkit prompt waits for a person: no timeout then. */
  return access == MTCTL_WRITE && ctl->ask_password ? G_MAXINT : -1;
}

/* Without DO_NOT_AUTO_START the proxies call the well-known name even
 * when it has no owner, and the bus's own error (the calls carry
 * NO_AUTO_START) says memtided is not running. */
MtDbusManager1 *
mtctl_manager (MtCtl *ctl, GDBusProxyFlags flags, GError **error)
{
  return mt_dbus_manager1_proxy_new_sync (
    ctl->bus, flags | G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START_AT_CONSTRUCTION, MTCTL_BUS_NAME,
    MTCTL_PATH, NULL, error);
}

MtDbusVM1 *
mtctl_vm (MtCtl *ctl, const char *path, GDBusProxyFlags flags, GError **error)
{
  return mt_dbus_vm1_proxy_new_sync (ctl->bus,
                                     flags | G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START_AT_CONSTRUCTION,
                                     MTCTL_BUS_NAME, path, NULL, error);
}

/* What the bus says when nobody owns the name: mtctl_fail() reads it as
 * "memtided is not running". */
static void
set_not_running (GError **error)
{
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER, "Name \"%s\" does not exist",
               MTCTL_BUS_NAME);
}

GDBusObjectManager *
mtctl_vm_objects (MtCtl *ctl, GError **error)
{
  g_autoptr (GDBusObjectManager) objects = mt_dbus_object_manager_client_new_sync (
    ctl->bus, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START, MTCTL_BUS_NAME, MTCTL_PATH,
    NULL, error);
  g_autofree char *owner = NULL;

  if (!objects)
    return NULL;
  /* With no owner the client is simply empty, which would read as "no
   * VMs"; the failure of GetManagedObjects is an error already. */
  owner = g_dbus_object_manager_client_get_name_owner (G_DBUS_OBJECT_MANAGER_CLIENT (objects));
  if (!owner) {
    set_not_running (error);
    return NULL;
  }
  return g_steal_pointer (&objects);
}

GVariant *
mtctl_properties (gpointer proxy, GError **error)
{
  GDBusProxy *p = G_DBUS_PROXY (proxy);
  GDBusPropertyInfo **props = g_dbus_proxy_get_interface_info (p)->properties;
  g_auto (GVariantBuilder) dict = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  g_autofree char *owner = g_dbus_proxy_get_name_owner (p);
  guint n = 0;

  if (!owner) {
    set_not_running (error);
    return NULL;
  }
  for (guint i = 0; props && props[i]; i++) {
    GVariant *value = g_dbus_proxy_get_cached_property (p, props[i]->name);

    if (value) {
      g_variant_builder_add (&dict, "{sv}", props[i]->name, value);
      g_variant_unref (value);
      n++;
    }
  }
  /* The proxy read them as it was made, and GDBusProxy keeps quiet when
   * that fails: memtided did not answer in time (or the object is gone). */
  if (n == 0) {
    g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY, "no properties came for %s at %s",
                 g_dbus_proxy_get_interface_name (p), g_dbus_proxy_get_object_path (p));
    return NULL;
  }
  return g_variant_ref_sink (g_variant_builder_end (&dict));
}

char *
mtctl_vm_path (MtCtl *ctl, MtDbusManager1 *manager, const char *vm, GError **error)
{
  char *path = NULL;

  if (!mt_dbus_manager1_call_get_vm_sync (manager, vm, mtctl_call_flags (ctl, MTCTL_READ),
                                          mtctl_call_timeout (ctl, MTCTL_READ), &path, NULL, error))
    return NULL;
  return path;
}

GVariant *
mtctl_list_vms (MtCtl *ctl, MtDbusManager1 *manager, GError **error)
{
  GVariant *vms = NULL;

  if (!mt_dbus_manager1_call_list_vms_sync (manager, mtctl_call_flags (ctl, MTCTL_READ),
                                            mtctl_call_timeout (ctl, MTCTL_READ), &vms, NULL,
                                            error))
    return NULL;
  return vms;
}
