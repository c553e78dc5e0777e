/* agent-session.h: the protocol state of one guest agent link, without
 * I/O: bytes in, events out.  agent-link.c owns the socket and feeds
 * this; tests and the fuzzer feed it directly.  Pure: the caller passes
 * `now` (monotonic µs).
 *
 *   MtAgentSession *s = mt_agent_session_new (&cfg);
 *   mt_agent_session_connected (s, now);            each new connection
 *   buf = mt_agent_session_buffer (s, &space);      read at most `space` bytes
 *   mt_agent_session_commit (s, n);
 *   while (mt_agent_session_next (s, now, &ev))     one event per line
 *     switch (ev.kind) ... VIOLATION: close the connection
 *
 * What it enforces (docs/agent-link.md): lines of at most 4096 bytes, a
 * token bucket on lines, nothing believed before the first hello report
 * of a connection, every line valid (agent-parse.h) once the hello came,
 * counters and the guest clock never going back within one boot,
 * MemTotal within what the hypervisor gives the VM, and a bound on agent
 * restarts and guest reboots (each one resets baselines and is logged,
 * so a guest could otherwise send them as fast as the rate limit lets).  The input buffer is
 * fixed (2 lines), so a guest can never make it grow.
 */
#pragma once

#include <glib.h>
#include "agent-parse.h"

typedef struct {
  double rate;            /* lines per second the bucket refills */
  double burst;           /* bucket size, lines */
  gint64 fresh_min;       /* µs a report stays fresh, at least */
  guint fresh_intervals;  /* ... and at least this many report intervals */
  gint64 disbelief_limit; /* µs reports may contradict the host before it is a violation */
  gint64 host_window;     /* µs of hypervisor sizes kept for the MemTotal bound */
  guint max_restarts;     /* agent restarts + guest reboots allowed within restart_window
                             (at most MT_AGENT_SESSION_RESTARTS_MAX) ... */
  gint64 restart_window;  /* ... µs; one more is a violation */
} MtAgentSessionConfig;

#define MT_AGENT_SESSION_RESTARTS_MAX 64

/* 20 lines/s, burst 50; fresh for 3 s or 3 intervals; disbelief 10 s;
 * host window 10 s; 10 restarts or reboots a minute. */
void mt_agent_session_config_init (MtAgentSessionConfig *cfg);

typedef enum {
  MT_AGENT_EVENT_REPORT,    /* a valid report (see .believed, .hello) */
  MT_AGENT_EVENT_REPLY,     /* a valid reply to one of our requests */
  MT_AGENT_EVENT_VIOLATION, /* close the link: .problem says why */
} MtAgentEventKind;

typedef struct {
  MtAgentEventKind kind;
  const MtAgentReport *report; /* REPORT: valid until the next call */
  MtAgentReply reply;          /* REPLY */
  MtAgentProblem problem;      /* VIOLATION; for a REPORT not believed, why */
  gboolean believed;           /* REPORT: consistent with the hypervisor's view */
  gboolean first_hello;        /* REPORT: the first hello of this connection */
  gboolean restarted;          /* REPORT: a new agent process (seq went back at a hello) */
  gboolean rebooted;           /* REPORT: boot_id changed */
} MtAgentEvent;

typedef struct {
  guint64 lines; /* every line received, empty ones too */
  guint64 bytes;
  guint64 reports; /* valid reports (believed or not) */
  guint64 replies;
  guint64 discarded;   /* lines before the first hello of a connection */
  guint64 stale;       /* reports older (by seq) than one already seen */
  guint64 disbelieved; /* valid reports that contradicted the hypervisor */
  guint64 violations;
  guint64 violations_by_code[MT_AGENT_ERR_COUNT]; /* by MtAgentErrorCode ([MT_AGENT_OK] 0) */
  MtAgentProblem last_violation;                  /* code MT_AGENT_OK = none yet */
  gint64 last_violation_time;                     /* MT_TIME_NEVER = none */
  gint64 last_report_time;                        /* valid report received, MT_TIME_NEVER = none */
  guint64 agent_restarts;
  guint64 guest_reboots;
} MtAgentSessionStats;

typedef struct _MtAgentSession MtAgentSession;

MtAgentSession *mt_agent_session_new (const MtAgentSessionConfig *cfg);
void mt_agent_session_free (MtAgentSession *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtAgentSession, mt_agent_session_free)

/* A new connection: buffered bytes are dropped, lines are discarded
 * until a hello report, the bucket is full.  Counter baselines and the
 * boot id are kept: a counter must not go back across a reconnect either. */
void mt_agent_session_connected (MtAgentSession *s, gint64 now);

/* Where the next read may put up to *space bytes (never 0 while the
 * session is open; 0 after a violation until the next connect). */
char *mt_agent_session_buffer (MtAgentSession *s, gsize *space);
void mt_agent_session_commit (MtAgentSession *s, gsize n);

/* Next event from the buffered bytes; FALSE when no complete line is
 * left or after a violation (the session then ignores input until
 * mt_agent_session_connected). */
gboolean mt_agent_session_next (MtAgentSession *s, gint64 now, MtAgentEvent *ev);

/* A violation found by the caller (a reply that does not match its
 * request): counted and kept like the session's own; input is ignored
 * until the next connect. */
void mt_agent_session_violation (MtAgentSession *s, const MtAgentProblem *problem, gint64 now);

/* What the hypervisor says: the domain's maximum memory (boot +
 * virtio-mem size) and the most the guest may have now (its current
 * size, or a larger size it was just asked to grow to; MT_UNKNOWN if not
 * known).  MemTotal must stay within the largest such size of the last
 * host_window plus a little slack.  Call it as often as it changes (the
 * window keeps one maximum per second). */
void mt_agent_session_set_host (MtAgentSession *s, guint64 max_memory, guint64 current, gint64 now);

/* The newest believed report if it is fresh at `now`, else NULL. */
const MtAgentReport *mt_agent_session_latest (const MtAgentSession *s, gint64 now);
/* A hello came on this connection and a valid report within the fresh limit. */
gboolean mt_agent_session_alive (const MtAgentSession *s, gint64 now);
/* µs a report stays fresh: max (fresh_min, fresh_intervals x interval). */
gint64 mt_agent_session_fresh_limit (const MtAgentSession *s);
/* The last hello report (agent version, methods, ...), NULL before one. */
const MtAgentReport *mt_agent_session_hello (const MtAgentSession *s);
gboolean mt_agent_session_has_hello (const MtAgentSession *s);
void mt_agent_session_get_stats (const MtAgentSession *s, MtAgentSessionStats *out);
