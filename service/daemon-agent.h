/* daemon-agent.h: what daemon-agent.c offers besides the four hooks
 * declared in daemon-private.h (attach, detach, overlay, connected).
 * Only service/daemon*.c include this. */
#pragma once

#include "daemon-private.h"
#include "agent-link.h"

/* Link statistics for status and D-Bus: FALSE (and *out untouched) when
 * the VM has no agent channel. */
gboolean mt_daemon_agent_get_stats (MtDaemonVm *vm, MtAgentLinkStats *out);

/* Free-page figures from the VM's fresh agent report (MT_UNKNOWN when
 * unknown): free memory the guest handed back through free page
 * reporting (patched guest kernels only) and memory in ZONE_MOVABLE. */
void mt_daemon_agent_free_pages (MtDaemonVm *vm, guint64 *reported_free, guint64 *movable);

/* Call before shrinking `vm` from `from` to `to` bytes (total size):
 * when the guest's free memory does not cover the shrink, asks its agent
 * to reclaim page cache first (memory.reclaim; drop_caches only if the
 * VM's policy allows it), so the balloon or unplug finds free pages.
 * Does not wait for the answer (it is logged); returns TRUE when a
 * request was sent. */
gboolean mt_daemon_agent_before_shrink (MtDaemon *d, MtDaemonVm *vm, guint64 from, guint64 to);

/* The plan's decision for `vm` has `reclaim` > 0: asks its agent to
 * reclaim that much cold page cache (memory.reclaim only), logging the
 * request with its reason in one line and the guest's answer when it
 * comes.  Returns TRUE when a request was sent. */
gboolean mt_daemon_agent_reclaim_cold (MtDaemon *d, MtDaemonVm *vm, const MtVmDecision *dec);
