/* daemon-agent.c: guest agent links feeding the model.
 *
 * Until service/agent-link.c lands (issue 4), VMs are observed through
 * balloon statistics only: no link is opened and samples pass through. */
#define G_LOG_DOMAIN "memtided"

#include "daemon-private.h"

void
mt_daemon_agent_attach (MtDaemon *d, const char *uuid, MtDaemonVm *vm)
{
}

void
mt_daemon_agent_detach (MtDaemon *d, MtDaemonVm *vm)
{
}

void
mt_daemon_agent_overlay (MtDaemon *d, MtDaemonVm *vm, MtVmSample *s, gint64 now)
{
}

gboolean
mt_daemon_agent_connected (MtDaemonVm *vm)
{
  return FALSE;
}
