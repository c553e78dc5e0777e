/* xen-agent-bridge-stub.c: STUB, NOT THE BRIDGE.  Written by i15-driver
 * only so that memtided links before i15-agent's xen-agent-bridge.c
 * lands; meson builds it only when that file is absent, and the lead
 * deletes it at the merge.  It creates no socket: every domU is managed
 * without an agent (agent channel "none"), and the driver logs why.
 */
#define G_LOG_DOMAIN "memtide-xen"

#include <gio/gio.h>
#include "xen-agent-bridge.h"

MtXenAgentBridge *
mt_xen_agent_bridge_new (const char *name, const char *socket_path,
                         MtXenAgentWriteFunc write_request, gpointer user_data, GError **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               "this memtided was built without the xenstore agent bridge (stub)");
  return NULL;
}

void
mt_xen_agent_bridge_feed (MtXenAgentBridge *b, MtXenAgentKey key, const char *value, gsize len)
{
}

void
mt_xen_agent_bridge_free (MtXenAgentBridge *b)
{
}
