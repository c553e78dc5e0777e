/* xen-agent-bridge.h: the guest agent protocol over xenstore, turned into
 * the byte stream an MtAgentLink reads on KVM.
 *
 * On Xen the agent writes one protocol line per value to its domain's
 * data/memtide/hello, report and reply keys, and watches
 * data/memtide/request (docs/agent-protocol.md, "Xen: over xenstore").
 * The Xen driver watches those keys and feeds each value here; the bridge
 * listens on a unix socket (MtDomainInfo.agent_socket) where the domain's
 * MtAgentLink connects as it connects to QEMU's chardev socket on KVM, so
 * every guard of the link (validation, the 4 KiB bound, the rate limit,
 * back-off, counted violations) applies unchanged.  Lines the link writes
 * (requests) go to write_request, which writes data/memtide/request.
 *
 *   b = mt_xen_agent_bridge_new ("vm1", path, write_request, xs, &error);
 *   on a watch event for .../data/memtide/report:
 *     mt_xen_agent_bridge_feed (b, MT_XEN_AGENT_REPORT, value, len);
 *   mt_xen_agent_bridge_free (b);
 *
 * No libxen here: pure GIO on the default main context (feed and free
 * from the thread that runs it), so it builds and is tested anywhere.
 *
 * What reaches the link:
 * - one client at a time (mode 0600 socket; others are closed at once);
 * - while connected, each fed value as one line (a newline inside a value
 *   becomes a NUL, so it stays one line, which the link refuses); a value
 *   identical to the last one of its key is skipped (a watch may fire
 *   twice for one write);
 * - while nobody is connected, only the newest value per key is kept; on
 *   accept the bridge sends the kept hello (and the report after it) only
 *   if no client was sent them yet: the link keeps its seq baseline
 *   across reconnects, so an old hello would count as an agent restart.
 *   The link's own hello request (forwarded to the guest) brings a fresh
 *   hello on every connect.  Kept replies are never replayed: the link
 *   failed their requests when it disconnected;
 * - a value longer than MT_XEN_AGENT_VALUE_MAX is cut to that many bytes
 *   and still sent, so the line is over the link's bound and the link
 *   counts the violation; the bridge never holds more per key;
 * - a bounded output queue: a client that lets it overflow is dropped (the
 *   link reconnects).
 */
#pragma once

#include <gio/gio.h>

/* The link's line bound, newline included: a value may have one byte less. */
#define MT_XEN_AGENT_VALUE_MAX 4096

typedef enum {
  MT_XEN_AGENT_HELLO,
  MT_XEN_AGENT_REPORT,
  MT_XEN_AGENT_REPLY,
} MtXenAgentKey;

/* The key's name under data/memtide/ ("hello", "report", "reply"). */
const char *mt_xen_agent_key_name (MtXenAgentKey key);

typedef struct _MtXenAgentBridge MtXenAgentBridge;

/* Writes one request line (no newline) to data/memtide/request.  Called
 * from the main loop; it must not free the bridge. */
typedef gboolean (*MtXenAgentWriteFunc) (const char *line, gsize len, gpointer user_data,
                                         GError **error);

/* Listens on `socket_path` (mode 0600; a stale socket there is replaced,
 * any other file is an error).  `name` is for logs.  NULL with `error`
 * when the socket cannot be made. */
MtXenAgentBridge *mt_xen_agent_bridge_new (const char *name, const char *socket_path,
                                           MtXenAgentWriteFunc write_request, gpointer user_data,
                                           GError **error);

/* A watched key changed: its value now.  len may exceed
 * MT_XEN_AGENT_VALUE_MAX (forwarded cut, so the link counts the
 * violation).  value NULL: the key was removed (nothing is sent, the
 * kept value is forgotten). */
void mt_xen_agent_bridge_feed (MtXenAgentBridge *b, MtXenAgentKey key, const char *value,
                               gsize len);

/* Closes the client and the socket and unlinks it. */
void mt_xen_agent_bridge_free (MtXenAgentBridge *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtXenAgentBridge, mt_xen_agent_bridge_free)

typedef struct {
  guint64 accepts;        /* clients taken */
  guint64 refused;        /* clients closed because one was connected */
  guint64 fed;            /* values fed */
  guint64 same;           /* values skipped: identical to the last of their key */
  guint64 forwarded;      /* lines queued to a client (replays included) */
  guint64 overlong;       /* values over MT_XEN_AGENT_VALUE_MAX - 1 bytes */
  guint64 overflows;      /* clients dropped: output queue full */
  guint64 requests;       /* lines passed to write_request */
  guint64 request_errors; /* write_request failed, or a request line was too long */
  gboolean connected;     /* a client is there */
  gsize queued;           /* bytes waiting for the client now */
} MtXenAgentBridgeStats;

void mt_xen_agent_bridge_get_stats (MtXenAgentBridge *b, MtXenAgentBridgeStats *out);
