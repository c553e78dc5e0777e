/* agent-link.h: the host end of one guest's memtide-agent channel.
 *
 * API in a few lines:
 *   MtAgentLink *l = mt_agent_link_new ("vm1", socket_path, NULL, &callbacks, data, free_data);
 *   (connects from the default main context, reconnects with back-off)
 *   each tick:  mt_agent_link_set_host (l, max_memory, current, now);
 *               r = mt_agent_link_latest (l, now);       fresh believed report or NULL
 *   before a shrink: mt_agent_link_reclaim (l, bytes, allow_drop_caches, timeout_ms, cb, ...);
 *   status:     mt_agent_link_get_stats (l, now, &stats);
 *   mt_agent_link_free (l);
 *
 * Everything is non-blocking on the default GMainContext: one bounded
 * read (at most 8 KiB) per dispatch, a bounded output queue, a token
 * bucket on lines.  A protocol violation closes the link, is counted and
 * kept (last reason), and the link stays closed for a back-off period.
 * The protocol checks themselves are in agent-session.h / agent-parse.h;
 * docs/agent-link.md describes the whole host side.
 */
#pragma once

#include <gio/gio.h>
#include "agent-session.h"

typedef struct _MtAgentLink MtAgentLink;

typedef enum {
  MT_AGENT_LINK_WAITING,   /* not connected; the next attempt is at retry_at */
  MT_AGENT_LINK_HANDSHAKE, /* connected, no hello report yet on this connection */
  MT_AGENT_LINK_ACTIVE,    /* hello seen, reports fresh: the agent is there */
  MT_AGENT_LINK_SILENT,    /* connected, but no report within the fresh limit */
} MtAgentLinkState;

const char *mt_agent_link_state_to_string (MtAgentLinkState state);

/* The link's time: the monotonic clock and GLib timeouts unless a test
 * brings its own, so that it can run minutes of back-off in no time.
 * timeout_source () returns a new, unattached source that fires
 * `interval` µs after now () and again every `interval` µs while its
 * callback returns G_SOURCE_CONTINUE (as g_timeout_source_new). */
typedef struct {
  gint64 (*now) (gpointer data);
  GSource *(*timeout_source) (gint64 interval, gpointer data);
  gpointer data;
} MtAgentLinkClock;

typedef struct {
  MtAgentSessionConfig session;
  gint64 reconnect_min;          /* µs, first retry after a failed or lost connection (1 s) */
  gint64 reconnect_max;          /* µs, doubling up to this (30 s) */
  gint64 violation_min;          /* µs closed after a violation (10 s) */
  gint64 violation_max;          /* µs, doubling per consecutive violation up to this (5 min) */
  gint64 clean_time;             /* µs a connection is open, hello to now, without a violation
                            * before it ends a violation streak (60 s) */
  gint64 silent_reconnect;       /* µs without any valid report before reconnecting (60 s) */
  gint64 watchdog;               /* µs between state checks (1 s) */
  guint max_pending;             /* requests waiting for a reply (4) */
  gint64 reply_grace;            /* µs a reply may come after the request's own timeout (5 s) */
  const MtAgentLinkClock *clock; /* NULL: the real one; must outlive the link */
} MtAgentLinkConfig;

void mt_agent_link_config_init (MtAgentLinkConfig *cfg);

typedef struct {
  /* Every valid report (ev->report, ev->believed, ev->first_hello, ...). */
  void (*report) (MtAgentLink *link, const MtAgentEvent *ev, gpointer user_data);
  /* `why` is one line for the log. */
  void (*state_changed) (MtAgentLink *link, MtAgentLinkState old_state, MtAgentLinkState new_state,
                         const char *why, gpointer user_data);
  /* The link was closed for `backoff` µs. */
  void (*violation) (MtAgentLink *link, const MtAgentProblem *problem, gint64 backoff,
                     gpointer user_data);
  /* Optional, asked before each read is checked: the VM's maximum memory
   * and the most it may have now (see mt_agent_session_set_host), so a
   * guest that grows between two ticks is not taken for a liar. */
  void (*host_view) (MtAgentLink *link, guint64 *max_memory, guint64 *current, gpointer user_data);
} MtAgentLinkCallbacks;

/* `name` is for logs.  cfg NULL = defaults.  `callbacks` must outlive the
 * link; `destroy` frees user_data with the link.  The first connect is
 * attempted from the main loop, not inside this call. */
MtAgentLink *mt_agent_link_new (const char *name, const char *socket_path,
                                const MtAgentLinkConfig *cfg, const MtAgentLinkCallbacks *callbacks,
                                gpointer user_data, GDestroyNotify destroy);
/* Safe from inside a callback (freed once the callback returns).  Requests
 * still waiting get no callback. */
void mt_agent_link_free (MtAgentLink *link);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtAgentLink, mt_agent_link_free)

gpointer mt_agent_link_get_user_data (MtAgentLink *link);
const char *mt_agent_link_get_name (MtAgentLink *link);
MtAgentLinkState mt_agent_link_get_state (MtAgentLink *link);

/* See mt_agent_session_set_host. */
void mt_agent_link_set_host (MtAgentLink *link, guint64 max_memory, guint64 current, gint64 now);

/* The newest believed report while it is fresh, else NULL.  Valid until
 * control returns to the main loop. */
const MtAgentReport *mt_agent_link_latest (MtAgentLink *link, gint64 now);
/* The agent is there: connected, hello seen, reports fresh. */
gboolean mt_agent_link_alive (MtAgentLink *link, gint64 now);
/* The last hello (agent, kernel, reclaim methods), NULL before any. */
const MtAgentReport *mt_agent_link_hello (MtAgentLink *link);

typedef struct {
  MtAgentLinkState state;
  gboolean connected; /* the socket is up */
  gboolean alive;     /* mt_agent_link_alive () */
  guint64 connects;   /* successful connects */
  guint64 connect_failures;
  guint64 disconnects;         /* closed by the peer or an I/O error */
  gint64 retry_at;             /* WAITING: monotonic µs of the next attempt */
  guint64 requests;            /* sent */
  guint64 requests_failed;     /* refused by the agent, timed out or lost with the link */
  guint64 unmatched_replies;   /* replies to ids we are not waiting for */
  MtAgentSessionStats session; /* lines, reports, violations, last violation, ... */
} MtAgentLinkStats;

void mt_agent_link_get_stats (MtAgentLink *link, gint64 now, MtAgentLinkStats *out);

/* `reply` is NULL when `error` is set: G_IO_ERROR_TIMED_OUT (no reply in
 * time), G_IO_ERROR_CONNECTION_CLOSED (the link went away first).  A
 * reply with ok == FALSE is the agent refusing (reply->error says why). */
typedef void (*MtAgentReplyFunc) (MtAgentLink *link, const MtAgentReply *reply, const GError *error,
                                  gpointer user_data);

/* Ask the guest to reclaim `bytes` (1 .. 2^40) of memory, mostly page
 * cache (docs/agent-protocol.md, "reclaim"), within timeout_ms (1 ..
 * 60000).  Returns the request id, or 0 with `error` when the agent is
 * not there (G_IO_ERROR_NOT_CONNECTED), has no reclaim method
 * (G_IO_ERROR_NOT_SUPPORTED), too many requests wait (G_IO_ERROR_BUSY),
 * or an argument is out of range (G_IO_ERROR_INVALID_ARGUMENT).  The
 * callback runs exactly once unless the link is freed first; `destroy`
 * frees user_data in every case. */
guint32 mt_agent_link_reclaim (MtAgentLink *link, guint64 bytes, gboolean allow_drop_caches,
                               guint timeout_ms, MtAgentReplyFunc callback, gpointer user_data,
                               GDestroyNotify destroy, GError **error);

/* Ask the guest to set its free page reporting tunables (the memtide
 * kernel patches; docs/agent-protocol.md, "tune_reporting"): delay_ms
 * 10 .. 60000 and budget_divisor 1 .. 1024, 0 = leave that one (not
 * both 0).  The reply has what the guest reads back (reply->delay_ms,
 * reply->budget_divisor).  Returns the request id, or 0 with `error` as
 * for mt_agent_link_reclaim() (no reclaim method is needed).  The
 * answer is waited for timeout_ms (1 .. 60000) plus the link's grace. */
guint32 mt_agent_link_tune_reporting (MtAgentLink *link, guint delay_ms, guint budget_divisor,
                                      guint timeout_ms, MtAgentReplyFunc callback,
                                      gpointer user_data, GDestroyNotify destroy, GError **error);
