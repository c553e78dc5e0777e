/* xen-agent-bridge.h: PLACEHOLDER copied by i15-driver from the issue 15
 * contract (/work/notes/issue15-contract.md, section 2) so that the Xen
 * driver compiles before i15-agent's bridge lands; i15-agent owns this
 * file and its real implementation (xen-agent-bridge.c).
 *
 * The host side of the agent over xenstore: a unix socket per domU that
 * MtAgentLink connects to as it does to QEMU's chardev socket on KVM,
 * fed with the values the guest writes under
 * /local/domain/<domid>/data/memtide/, its requests written back to
 * data/memtide/request.
 */
#pragma once

#include <glib.h>

typedef struct _MtXenAgentBridge MtXenAgentBridge;

typedef enum { MT_XEN_AGENT_HELLO, MT_XEN_AGENT_REPORT, MT_XEN_AGENT_REPLY } MtXenAgentKey;

/* Writes one request line (no newline) to data/memtide/request. */
typedef gboolean (*MtXenAgentWriteFunc) (const char *line, gsize len, gpointer user_data,
                                         GError **error);

MtXenAgentBridge *mt_xen_agent_bridge_new (const char *name, const char *socket_path,
                                           MtXenAgentWriteFunc write_request, gpointer user_data,
                                           GError **error);
/* A watched key changed: its value now (len may exceed 4096: forward it
 * so the link counts the violation, bounded); NULL: the key was removed. */
void mt_xen_agent_bridge_feed (MtXenAgentBridge *b, MtXenAgentKey key, const char *value,
                               gsize len);
/* Closes, unlinks the socket. */
void mt_xen_agent_bridge_free (MtXenAgentBridge *b);
