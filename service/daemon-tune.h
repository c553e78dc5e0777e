/* daemon-tune.h: the daemon sends the plan's page reporting tunables to
 * a VM's agent (tune_reporting), one request at a time, paced, backed off
 * after failures, each logged in one line with its reason.
 *
 *   when the VM is added:  mt_daemon_tune_init (&vm->tune);
 *   after each plan, not in dry-run, for each VM:
 *     mt_daemon_tune_send (d, vm, &plan->decisions[i], now);
 */
#pragma once

#include "planner.h"

#include "daemon.h"

/* Per VM (MtDaemonVm.tune). */
typedef struct {
  gboolean in_flight; /* a request waits for its reply */
  guint64 seq;        /* of the last request sent (replies to older ones are ignored) */
  gint64 sent_at;     /* when, MT_TIME_NEVER = never */
  gint64 retry_at;    /* after a failure, not before this; MT_TIME_NEVER = any time */
  guint failures;     /* consecutive, for the back-off */
} MtDaemonTune;

/* At least this long between two requests to one guest. */
#define MT_DAEMON_TUNE_INTERVAL (10 * G_USEC_PER_SEC)
/* After a failure: this long, doubling per consecutive failure, at most
 * MT_DAEMON_TUNE_BACKOFF_MAX ("unavailable": the maximum at once). */
#define MT_DAEMON_TUNE_BACKOFF     (30 * G_USEC_PER_SEC)
#define MT_DAEMON_TUNE_BACKOFF_MAX (10 * 60 * G_USEC_PER_SEC)
/* The agent writes two sysfs files: answers in milliseconds. */
#define MT_DAEMON_TUNE_TIMEOUT_MS 5000

void mt_daemon_tune_init (MtDaemonTune *t);

/* Sends dec's tune_delay_ms/tune_divisor (if any) to the VM's agent
 * when no request is in flight, the last one is MT_DAEMON_TUNE_INTERVAL
 * old and no back-off holds; logs it with its reason.  `vm` is an
 * MtDaemonVm (daemon-private.h).  TRUE when a request was sent. */
gboolean mt_daemon_tune_send (MtDaemon *d, gpointer vm, const MtVmDecision *dec, gint64 now);
