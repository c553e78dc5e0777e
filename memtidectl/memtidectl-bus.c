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

GVariant *
mtctl_call (MtCtl *ctl, const char *path, const char *iface, const char *method, GVariant *params,
            const char *reply_type, gboolean write, GError **error)
{
  GDBusCallFlags flags = G_DBUS_CALL_FLAGS_NO_AUTO_START;
  int timeout = -1;

  /* A polkit prompt waits for a person: no timeout then. */
  if (write && ctl->ask_password) {
    flags |= G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION;
    timeout = G_MAXINT;
  }
  return g_dbus_connection_call_sync (ctl->bus, MTCTL_BUS_NAME, path, iface, method, params,
                                      reply_type ? G_VARIANT_TYPE (reply_type) : NULL, flags,
                                      timeout, NULL, error);
}

GVariant *
mtctl_get_all (MtCtl *ctl, const char *path, const char *iface, GError **error)
{
  g_autoptr (GVariant) reply = mtctl_call (ctl, path, "org.freedesktop.DBus.Properties", "GetAll",
                                           g_variant_new ("(s)", iface), "(a{sv})", FALSE, error);
  GVariant *props = NULL;

  if (!reply)
    return NULL;
  g_variant_get (reply, "(@a{sv})", &props);
  return props;
}

char *
mtctl_vm_path (MtCtl *ctl, const char *vm, GError **error)
{
  g_autoptr (GVariant) reply = mtctl_call (ctl, MTCTL_PATH, MTCTL_MANAGER, "GetVM",
                                           g_variant_new ("(s)", vm), "(o)", FALSE, error);
  char *path = NULL;

  if (!reply)
    return NULL;
  g_variant_get (reply, "(o)", &path);
  return path;
}

GVariant *
mtctl_list_vms (MtCtl *ctl, GError **error)
{
  g_autoptr (GVariant) reply =
    mtctl_call (ctl, MTCTL_PATH, MTCTL_MANAGER, "ListVMs", NULL, "(aa{sv})", FALSE, error);
  GVariant *vms = NULL;

  if (!reply)
    return NULL;
  g_variant_get (reply, "(@aa{sv})", &vms);
  return vms;
}
