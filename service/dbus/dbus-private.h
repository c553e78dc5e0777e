/* dbus-private.h: the D-Bus layer's state, shared by its parts:
 *   dbus.c           connection, name, error names, lifetime
 *   dbus-publish.c   daemon state -> objects, properties and signals
 *   dbus-requests.c  method calls -> polkit -> daemon requests
 *   dbus-auth.c      the asynchronous polkit check
 *   dbus-leases.c    pins and reservations held by bus clients
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

typedef enum {
  MT_LEASE_PIN,
  MT_LEASE_RESERVATION,
} MtLeaseKind;

/* A pin or reservation a bus client holds: it ends when the client
 * releases it or leaves the bus. */
typedef struct {
  MtLeaseKind kind;
  guint cookie; /* the daemon's */
  char *holder; /* unique bus name of the caller */
  guint watch_id;
  char *uuid;    /* pins: the VM */
  guint64 bytes; /* pin size or reservation size */
  char *reason;
  gboolean done; /* reservations: the room is there */
} MtLease;

struct _MtDbus {
  MtDaemon *daemon;
  GDBusConnection *connection;
  gulong closed_id;
  MtDbusLostFunc on_lost;
  gpointer on_lost_data;

  MtDbusManager1 *manager;
  GDBusObjectManagerServer *object_manager;
  GHashTable *vms;    /* uuid -> MtDbusVm */
  GHashTable *leases; /* cookie -> MtLease */

  GCancellable *cancellable; /* pending polkit checks */

  /* ReservationDone can happen inside Reserve() (the daemon plans at
   * once); the signal waits for an idle so the reply goes first, and the
   * done mark for the lease that Reserve() is about to add. */
  GPtrArray *done_queue; /* of GVariant (ubs) */
  guint done_idle;
  GHashTable *early_done; /* cookies */
};

/* dbus.c */
/* Maps an MtDaemonError (or any other error) to an org.memtide.Error. */
void mt_dbus_return_error (GDBusMethodInvocation *invocation, const GError *error);

/* dbus-publish.c */
extern const MtDaemonObserver mt_dbus_observer;
void mt_dbus_publish_init (MtDbus *self);
void mt_dbus_publish_free (MtDbus *self);
void mt_dbus_publish_host (MtDbus *self);
/* Refreshes a VM's properties from the daemon (and its Pins). */
void mt_dbus_publish_vm (MtDbus *self, const char *uuid);
MtDbusVm *mt_dbus_vm_by_path (MtDbus *self, const char *path);
const char *mt_dbus_vm_path (MtDbus *self, const char *uuid);
/* A VM status as a{sv} keyed by VM1 property names, plus ObjectPath. */
GVariant *mt_dbus_vm_status_to_variant (MtDbus *self, const MtVmStatus *st);

/* dbus-requests.c */
void mt_dbus_requests_connect_manager (MtDbus *self);
void mt_dbus_requests_connect_vm (MtDbus *self, MtDbusVm *vm);

/* dbus-auth.c: calls func(self, invocation) when the caller may do
 * action_id, else returns NotAuthorized.  details: polkit details for
 * rules (NULL-terminated key, value pairs), may be NULL. */
typedef void (*MtDbusAuthorizedFunc) (MtDbus *self, GDBusMethodInvocation *invocation);
void mt_dbus_authorize (MtDbus *self, GDBusMethodInvocation *invocation, const char *action_id,
                        const char *const *details, MtDbusAuthorizedFunc func);

/* dbus-leases.c */
void mt_dbus_leases_init (MtDbus *self);
void mt_dbus_leases_free (MtDbus *self);
void mt_dbus_lease_add (MtDbus *self, MtLeaseKind kind, guint cookie, const char *holder,
                        const char *uuid, guint64 bytes, const char *reason);
MtLease *mt_dbus_lease_lookup (MtDbus *self, guint cookie);
/* Ends a lease in the daemon too (release/unpin); FALSE with error when
 * the daemon no longer has it. */
gboolean mt_dbus_lease_end (MtDbus *self, guint cookie, GError **error);
/* The daemon ended it already (failed reservation, VM gone): forget it. */
void mt_dbus_lease_forget (MtDbus *self, guint cookie);
void mt_dbus_leases_vm_removed (MtDbus *self, const char *uuid);
void mt_dbus_lease_set_done (MtDbus *self, guint cookie);
/* a(utsbs) for Manager1.Reservations, a(utss) for a VM's Pins. */
GVariant *mt_dbus_leases_reservations (MtDbus *self);
GVariant *mt_dbus_leases_pins (MtDbus *self, const char *uuid);
