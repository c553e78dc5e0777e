/* notify.h: what memtided tells its service manager (systemd's
 * sd_notify protocol, a datagram to $NOTIFY_SOCKET): READY=1 once it
 * serves, a one-line STATUS=, WATCHDOG=1 from the main loop, and
 * RELOADING=1 ... READY=1 around a policy reload.  Without
 * $NOTIFY_SOCKET (not started by systemd) every call does nothing. */
#pragma once

#include <glib.h>

#include "daemon.h"

typedef struct _MtNotify MtNotify;

/* Watches the daemon for STATUS= and, when the service manager asked
 * for it ($WATCHDOG_USEC, for this process), sends WATCHDOG=1 from the
 * default main context every half of that. */
MtNotify *mt_notify_new (MtDaemon *daemon);
void mt_notify_free (MtNotify *notify);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtNotify, mt_notify_free)

/* The daemon serves: it owns its bus name (when it has one) and has
 * planned once.  Also ends a reload. */
void mt_notify_ready (MtNotify *notify);
/* A reload begins (SIGHUP); mt_notify_ready() ends it. */
void mt_notify_reloading (MtNotify *notify);
/* The daemon shuts down. */
void mt_notify_stopping (MtNotify *notify);
