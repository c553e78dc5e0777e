/* dbus.h: memtided's D-Bus API (org.memtide.Manager1, described in
 * org.memtide.Manager1.xml): publishes the daemon's state as properties
 * and signals, and turns method calls into daemon requests after polkit
 * said yes.  main.c creates it after mt_daemon_new() and before
 * mt_daemon_start(), so every VM the daemon discovers gets its object. */
#pragma once

#include <gio/gio.h>

#include "daemon.h"

#define MT_DBUS_NAME "org.memtide.Manager1"
#define MT_DBUS_PATH "/org/memtide/Manager1"

/* Errors a caller sees, as org.memtide.Error.* names. */
#define MT_DBUS_ERROR (mt_dbus_error_quark ())
GQuark mt_dbus_error_quark (void);

typedef enum {
  MT_DBUS_ERROR_NO_SUCH_VM,       /* org.memtide.Error.NoSuchVM */
  MT_DBUS_ERROR_INVALID_ARGUMENT, /* org.memtide.Error.InvalidArgument */
  MT_DBUS_ERROR_NOT_AUTHORIZED,   /* org.memtide.Error.NotAuthorized */
  MT_DBUS_ERROR_CANNOT_RESERVE,   /* org.memtide.Error.CannotReserve */
  MT_DBUS_ERROR_NO_SUCH_COOKIE,   /* org.memtide.Error.NoSuchCookie */
  MT_DBUS_ERROR_FAILED,           /* org.memtide.Error.Failed */
} MtDbusError;

typedef struct _MtDbus MtDbus;

/* Called once when the bus connection closes: memtided cannot be steered
 * any more and should exit with a failure so its supervisor restarts it. */
typedef void (*MtDbusLostFunc) (gpointer user_data);

typedef struct {
  MtDbusLostFunc on_lost;
  gpointer on_lost_data;
} MtDbusOptions;

/* bus: "system" or "session"; address: a bus address that replaces the
 * system bus (tests), or NULL.  Call mt_dbus_use_address() first when an
 * address is given. */
GDBusConnection *mt_dbus_connect (const char *bus, const char *address, GError **error);

/* Tests run memtided on a private bus: make that bus "the system bus" for
 * the whole process, so that polkit (which always asks the system bus) is
 * asked there too.  Must run before anything connects to a bus. */
void mt_dbus_use_address (const char *address);

/* Exports /org/memtide/Manager1 with its ObjectManager, becomes the
 * daemon's observer, then takes the name org.memtide.Manager1; fails when
 * another process owns it (a second memtided). */
MtDbus *mt_dbus_new (MtDaemon *daemon, GDBusConnection *connection, const MtDbusOptions *options,
                     GError **error);
/* Stops watching lease holders (their leases stay the daemon's),
 * unexports everything, stops observing.  Call before mt_daemon_free(). */
void mt_dbus_free (MtDbus *dbus);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtDbus, mt_dbus_free)
