/* dbus-leases.c: pins and reservations are leases: each is tied to the
 * bus connection that asked for it and ends when that connection closes
 * (a crashed or killed client cannot leave memory set aside forever). */
#define G_LOG_DOMAIN "memtided-dbus"

#include "dbus-private.h"

static void
lease_free (MtLease *lease)
{
  if (lease->watch_id)
    g_bus_unwatch_name (lease->watch_id);
  g_free (lease->holder);
  g_free (lease->uuid);
  g_free (lease->reason);
  g_free (lease);
}

void
mt_dbus_leases_init (MtDbus *self)
{
  self->leases = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) lease_free);
}

void
mt_dbus_leases_free (MtDbus *self)
{
  g_clear_pointer (&self->leases, g_hash_table_unref);
}

static const char *
kind_name (MtLeaseKind kind)
{
  return kind == MT_LEASE_PIN ? "pin" : "reservation";
}

/* Publishes what changed: the host's Reservations, or the VM's Pins. */
static void
publish (MtDbus *self, MtLeaseKind kind, const char *uuid)
{
  if (kind == MT_LEASE_PIN)
    mt_dbus_publish_vm (self, uuid);
  else
    mt_dbus_publish_host (self);
}

typedef struct {
  MtDbus *self;
  guint cookie;
} WatchData;

static void
on_holder_vanished (GDBusConnection *connection, const char *name, gpointer user_data)
{
  /* Copied out: ending the lease unwatches the name, which frees user_data. */
  MtDbus *self = ((WatchData *) user_data)->self;
  guint cookie = ((WatchData *) user_data)->cookie;
  MtLease *lease = mt_dbus_lease_lookup (self, cookie);
  g_autoptr (GError) error = NULL;

  if (!lease)
    return;
  g_message ("%s left the bus: ending its %s %u", name, kind_name (lease->kind), cookie);
  if (!mt_dbus_lease_end (self, cookie, &error))
    g_debug ("lease %u: %s", cookie, error->message);
}

void
mt_dbus_lease_add (MtDbus *self, MtLeaseKind kind, guint cookie, const char *holder,
                   const char *uuid, guint64 bytes, const char *reason)
{
  MtLease *lease = g_new0 (MtLease, 1);
  WatchData *watch;

  lease->kind = kind;
  lease->cookie = cookie;
  lease->holder = g_strdup (holder);
  lease->uuid = g_strdup (uuid);
  lease->bytes = bytes;
  lease->reason = g_strdup (reason && *reason ? reason : "no reason given");
  if (kind == MT_LEASE_RESERVATION && self->early_done)
    lease->done = g_hash_table_remove (self->early_done, GUINT_TO_POINTER (cookie));
  g_hash_table_replace (self->leases, GUINT_TO_POINTER (cookie), lease);
  watch = g_new0 (WatchData, 1);
  watch->self = self;
  watch->cookie = cookie;
  /* If the holder is already gone, this reports it vanished at once. */
  lease->watch_id =
    g_bus_watch_name_on_connection (self->connection, holder, G_BUS_NAME_WATCHER_FLAGS_NONE, NULL,
                                    on_holder_vanished, watch, g_free);
  publish (self, kind, uuid);
}

MtLease *
mt_dbus_lease_lookup (MtDbus *self, guint cookie)
{
  return g_hash_table_lookup (self->leases, GUINT_TO_POINTER (cookie));
}

gboolean
mt_dbus_lease_end (MtDbus *self, guint cookie, GError **error)
{
  MtLease *lease = mt_dbus_lease_lookup (self, cookie);
  MtLeaseKind kind;
  g_autofree char *uuid = NULL;
  gboolean ok;

  if (!lease) {
    g_set_error (error, MT_DBUS_ERROR, MT_DBUS_ERROR_NO_SUCH_COOKIE,
                 "no pin or reservation %u (already released, failed, its VM stopped, "
                 "or its holder left the bus)",
                 cookie);
    return FALSE;
  }
  kind = lease->kind;
  uuid = g_strdup (lease->uuid);
  if (kind == MT_LEASE_PIN)
    ok = mt_daemon_unpin (self->daemon, cookie, error);
  else
    ok = mt_daemon_release (self->daemon, cookie, error);
  /* Either way the daemon no longer has it. */
  g_hash_table_remove (self->leases, GUINT_TO_POINTER (cookie));
  publish (self, kind, uuid);
  return ok;
}

void
mt_dbus_lease_forget (MtDbus *self, guint cookie)
{
  MtLease *lease = mt_dbus_lease_lookup (self, cookie);
  MtLeaseKind kind;
  g_autofree char *uuid = NULL;

  if (!lease)
    return;
  kind = lease->kind;
  uuid = g_strdup (lease->uuid);
  g_hash_table_remove (self->leases, GUINT_TO_POINTER (cookie));
  publish (self, kind, uuid);
}

void
mt_dbus_leases_vm_removed (MtDbus *self, const char *uuid)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->leases);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    MtLease *lease = value;
    if (lease->kind == MT_LEASE_PIN && g_strcmp0 (lease->uuid, uuid) == 0)
      g_hash_table_iter_remove (&iter);
  }
}

void
mt_dbus_lease_set_done (MtDbus *self, guint cookie)
{
  MtLease *lease = mt_dbus_lease_lookup (self, cookie);

  if (lease)
    lease->done = TRUE;
}

static int
compare_cookies (gconstpointer a, gconstpointer b)
{
  guint ca = (*(MtLease *const *) a)->cookie;
  guint cb = (*(MtLease *const *) b)->cookie;
  return ca < cb ? -1 : ca > cb;
}

/* Leases of one kind (and VM), oldest first. */
static GPtrArray *
sorted_leases (MtDbus *self, MtLeaseKind kind, const char *uuid)
{
  GPtrArray *list = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  if (!self->leases)
    return list;
  g_hash_table_iter_init (&iter, self->leases);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    MtLease *lease = value;
    if (lease->kind == kind && (!uuid || g_strcmp0 (lease->uuid, uuid) == 0))
      g_ptr_array_add (list, lease);
  }
  g_ptr_array_sort (list, compare_cookies);
  return list;
}

GVariant *
mt_dbus_leases_reservations (MtDbus *self)
{
  g_autoptr (GPtrArray) list = sorted_leases (self, MT_LEASE_RESERVATION, NULL);
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(utsbs)"));
  for (guint i = 0; i < list->len; i++) {
    const MtLease *l = list->pdata[i];
    g_variant_builder_add (&b, "(utsbs)", l->cookie, l->bytes, l->reason, l->done, l->holder);
  }
  return g_variant_builder_end (&b);
}

GVariant *
mt_dbus_leases_pins (MtDbus *self, const char *uuid)
{
  g_autoptr (GPtrArray) list = sorted_leases (self, MT_LEASE_PIN, uuid);
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(utss)"));
  for (guint i = 0; i < list->len; i++) {
    const MtLease *l = list->pdata[i];
    g_variant_builder_add (&b, "(utss)", l->cookie, l->bytes, l->reason, l->holder);
  }
  return g_variant_builder_end (&b);
}
