/* dbus-holders.c: pins and reservations are leases: each ends when the
 * bus connection that asked for it closes (a crashed or killed client
 * cannot leave memory set aside forever).  The leases and their holders
 * are the daemon's; this only watches the holders' names, one watch per
 * name, and when one leaves asks the daemon to end all its leases. */
#define G_LOG_DOMAIN "memtided-dbus"

#include "dbus-private.h"

typedef struct {
  MtDbus *self;
  char *name;
  guint watch_id;
} Holder;

static void
holder_free (Holder *holder)
{
  if (holder->watch_id)
    g_bus_unwatch_name (holder->watch_id);
  g_free (holder->name);
  g_free (holder);
}

void
mt_dbus_holders_init (MtDbus *self)
{
  self->holders =
    g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) holder_free);
}

void
mt_dbus_holders_free (MtDbus *self)
{
  g_clear_pointer (&self->holders, g_hash_table_unref);
}

static const char *
kind_name (MtLeaseKind kind)
{
  return kind == MT_LEASE_PIN ? "pin" : "reservation";
}

static void
on_holder_vanished (GDBusConnection *connection, const char *name, gpointer user_data)
{
  Holder *holder = user_data;
  MtDbus *self = holder->self;
  g_autofree char *gone = g_strdup (holder->name);
  g_autoptr (GPtrArray) ended = mt_daemon_end_holder_leases (self->daemon, gone);

  for (guint i = 0; i < ended->len; i++) {
    const MtLease *lease = ended->pdata[i];
    g_message ("%s left the bus: ending its %s %u", gone, kind_name (lease->kind), lease->cookie);
  }
  /* Unique names are never reused: this watch has done its work.  Frees
   * holder (GDBus holds its own reference while calling us). */
  g_hash_table_remove (self->holders, gone);
}

void
mt_dbus_holders_watch (MtDbus *self, const char *name)
{
  Holder *holder;

  if (!name || g_hash_table_contains (self->holders, name))
    return;
  holder = g_new0 (Holder, 1);
  holder->self = self;
  holder->name = g_strdup (name);
  g_hash_table_insert (self->holders, holder->name, holder);
  /* If the holder is already gone, this reports it vanished at once. */
  holder->watch_id = g_bus_watch_name_on_connection (
    self->connection, name, G_BUS_NAME_WATCHER_FLAGS_NONE, NULL, on_holder_vanished, holder, NULL);
}
