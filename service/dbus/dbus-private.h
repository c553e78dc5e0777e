/* dbus-private.h: the D-Bus layer's state, shared by its parts, each
 * depending only on those below it (and on the daemon's API):
 *   dbus.c           connection, name, lifetime; registers the two
 *                    observers below
 *   dbus-requests.c  method calls -> polkit -> daemon requests; connects
 *                    each VM object's methods (an observer of vm_added)
 *   dbus-auth.c      the asynchronous polkit check
 *   dbus-holders.c   watches the bus names that hold leases; when one
 *                    leaves, asks the daemon to end its leases
 *   dbus-publish.c   daemon state -> objects, properties and signals (the
 *                    daemon's observer; it only reads the daemon)
 *   dbus-errors.c    the org.memtide.Error names
 * Nothing outside service/dbus*.c includes this. */
#pragma once

#include "dbus.h"
#include "memtide-dbus-generated.h"

/* One exported VM. */
typedef struct {
  char *uuid;
  char *path;
  MtDbusObjectSkeleton *object;
  MtDbusVM1 *iface;
} MtDbusVm;

struct _MtDbus {
  MtDaemon *daemon;
  GDBusConnection *connection;
  gulong closed_id;
  MtDbusLostFunc on_lost;
  gpointer on_lost_data;

  MtDbusManager1 *manager;
  GDBusObjectManagerServer *object_manager;
  GHashTable *vms; /* uuid -> MtDbusVm */

  GHashTable *holders; /* unique bus name -> watch */

  GCancellable *cancellable; /* pending polkit checks */
};

/* dbus-errors.c */
/* Maps an MtDaemonError (or any other error) to an org.memtide.Error. */
void mt_dbus_return_error (GDBusMethodInvocation *invocation, const GError *error);

/* dbus-publish.c: creates and removes the objects, sets their properties
 * from the daemon's status and emits the signals, all from the daemon's
 * observer calls. */
extern const MtDaemonObserver mt_dbus_publish_observer;
void mt_dbus_publish_init (MtDbus *self);
void mt_dbus_publish_free (MtDbus *self);
MtDbusVm *mt_dbus_vm_lookup (MtDbus *self, const char *uuid);
MtDbusVm *mt_dbus_vm_by_path (MtDbus *self, const char *path);
const char *mt_dbus_vm_path (MtDbus *self, const char *uuid);
/* A VM status as a{sv} keyed by VM1 property names, plus ObjectPath. */
GVariant *mt_dbus_vm_status_to_variant (MtDbus *self, const MtVmStatus *st);

/* dbus-requests.c: its observer connects each new VM object's methods;
 * add it after mt_dbus_publish_observer (observers run in that order). */
extern const MtDaemonObserver mt_dbus_requests_observer;
void mt_dbus_requests_connect_manager (MtDbus *self);

/* dbus-auth.c: calls func(self, invocation) when the caller may do
 * action_id, else returns NotAuthorized.  details: polkit details for
 * rules (NULL-terminated key, value pairs), may be NULL. */
typedef void (*MtDbusAuthorizedFunc) (MtDbus *self, GDBusMethodInvocation *invocation);
void mt_dbus_authorize (MtDbus *self, GDBusMethodInvocation *invocation, const char *action_id,
                        const char *const *details, MtDbusAuthorizedFunc func);

/* dbus-holders.c */
void mt_dbus_holders_init (MtDbus *self);
void mt_dbus_holders_free (MtDbus *self);
/* The lease just taken by `name` ends when `name` leaves the bus (if it
 * left already, at once). */
void mt_dbus_holders_watch (MtDbus *self, const char *name);
