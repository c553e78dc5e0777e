/* dbus.c: the bus connection, the name org.memtide.Manager1 and the
 * D-Bus layer's lifetime: it sets up the other dbus*.c files and
 * registers their observers; none of them calls back into it. */
#define G_LOG_DOMAIN "memtided-dbus"

#include "dbus-private.h"

void
mt_dbus_use_address (const char *address)
{
  g_setenv ("DBUS_SYSTEM_BUS_ADDRESS", address, TRUE);
}

GDBusConnection *
mt_dbus_connect (const char *bus, const char *address, GError **error)
{
  GBusType type;
  GDBusConnection *connection;

  if (address || g_strcmp0 (bus, "system") == 0) {
    type = G_BUS_TYPE_SYSTEM;
  } else if (g_strcmp0 (bus, "session") == 0) {
    type = G_BUS_TYPE_SESSION;
  } else {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "unknown bus '%s': expected system, session or none", bus);
    return NULL;
  }
  /* With an address, mt_dbus_use_address() made it the system bus, so
   * this is the same shared connection polkit will use. */
  connection = g_bus_get_sync (type, NULL, error);
  if (!connection) {
    g_prefix_error (error, "cannot connect to the %s bus%s%s: ", address ? "given" : bus,
                    address ? " " : "", address ? address : "");
    return NULL;
  }
  return connection;
}

static void
on_closed (GDBusConnection *connection, gboolean remote_peer_vanished, GError *error,
           gpointer user_data)
{
  MtDbus *self = user_data;

  g_warning ("Lost the D-Bus connection%s%s: memtided can no longer be steered; exiting",
             error ? ": " : "", error ? error->message : "");
  if (self->on_lost)
    self->on_lost (self->on_lost_data);
}

/* Synchronous, before the daemon acts: a second memtided must stop here,
 * before it resizes anything. */
static gboolean
own_name (MtDbus *self, GError **error)
{
  g_autoptr (GVariant) reply = NULL;
  guint32 result;

  reply = g_dbus_connection_call_sync (
    self->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
    "RequestName", g_variant_new ("(su)", MT_DBUS_NAME, 0x4 /* DO_NOT_QUEUE */),
    G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, error);
  if (!reply) {
    g_prefix_error (error,
                    "cannot own the name %s (is the bus policy file "
                    "org.memtide.Manager1.conf installed?): ",
                    MT_DBUS_NAME);
    return FALSE;
  }
  g_variant_get (reply, "(u)", &result);
  if (result != 1 /* PRIMARY_OWNER */ && result != 4 /* ALREADY_OWNER */) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                 "another process owns %s: is memtided already running? "
                 "(two would fight over the same VMs)",
                 MT_DBUS_NAME);
    return FALSE;
  }
  return TRUE;
}

MtDbus *
mt_dbus_new (MtDaemon *daemon, GDBusConnection *connection, const MtDbusOptions *options,
             GError **error)
{
  g_autoptr (MtDbus) self = g_new0 (MtDbus, 1);

  self->daemon = daemon;
  self->connection = g_object_ref (connection);
  self->on_lost = options->on_lost;
  self->on_lost_data = options->on_lost_data;
  self->cancellable = g_cancellable_new ();
  (void) MT_DBUS_ERROR; /* registers the error names before the first call */

  /* We decide what a lost bus means, not GDBus (which would SIGTERM us). */
  g_dbus_connection_set_exit_on_close (connection, FALSE);
  self->closed_id = g_signal_connect (connection, "closed", G_CALLBACK (on_closed), self);

  mt_dbus_holders_init (self);
  mt_dbus_publish_init (self);
  if (!g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self->manager), connection,
                                         MT_DBUS_PATH, error))
    return NULL;
  mt_dbus_requests_connect_manager (self);
  g_dbus_object_manager_server_set_connection (self->object_manager, connection);
  /* In this order: the requests observer connects the methods of the
   * objects that the publish observer makes. */
  mt_daemon_add_observer (daemon, &mt_dbus_publish_observer, self);
  mt_daemon_add_observer (daemon, &mt_dbus_requests_observer, self);
  if (!own_name (self, error))
    return NULL;
  g_message ("D-Bus API on %s as %s", g_dbus_connection_get_unique_name (connection), MT_DBUS_NAME);
  return g_steal_pointer (&self);
}

void
mt_dbus_free (MtDbus *self)
{
  if (!self)
    return;
  if (self->daemon) {
    mt_daemon_remove_observer (self->daemon, &mt_dbus_requests_observer, self);
    mt_daemon_remove_observer (self->daemon, &mt_dbus_publish_observer, self);
  }
  if (self->cancellable)
    g_cancellable_cancel (self->cancellable);
  mt_dbus_holders_free (self);
  if (self->manager)
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (self->manager));
  mt_dbus_publish_free (self);
  if (self->connection) {
    g_clear_signal_handler (&self->closed_id, self->connection);
    g_dbus_connection_flush_sync (self->connection, NULL, NULL);
  }
  g_clear_object (&self->connection);
  g_clear_object (&self->cancellable);
  g_free (self);
}
