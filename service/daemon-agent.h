/* daemon-agent.h: the daemon's use of guest agent links (daemon-agent.c).
 *
 * One MtDaemonAgent per VM that has an agent channel and is managed
 * (mechanism not none), NULL for the others; every call below takes
 * NULL.  It sees its VM only through the pointers it is handed
 * (MtDaemonAgentVm) and reaches the daemon only through the hooks
 * (MtDaemonAgentHooks): it knows nothing of MtDaemon.
 *
 *   each time the VM appears, its domain or its policy may have changed
 *   (the daemon does it every tick):
 *     mt_daemon_agent_sync (&vm->agent, &(MtDaemonAgentVm){ ... }, &hooks, d);
 *   each tick, before the sample goes into the model:
 *     mt_daemon_agent_overlay (vm->agent, sample, now);
 *   when the VM goes:  g_clear_pointer (&vm->agent, mt_daemon_agent_free);
 */
#pragma once

#include "agent-link.h"
#include "planner.h"

typedef struct _MtDaemonAgent MtDaemonAgent;

/* The VM as the agent code sees it: pointers into the daemon's VM that
 * stay valid, at the same address, until its MtDaemonAgent is freed.
 * It reads info and policy; it pushes the samples of event plans into
 * model and reads its control state. */
typedef struct {
  const MtDomainInfo *info;
  const MtVmPolicy *policy;
  MtVmModel *model;
} MtDaemonAgentVm;

/* What the agent code asks of the daemon; `data` is the one given to
 * mt_daemon_agent_sync.  `uuid` is the VM's (info->uuid). */
typedef struct {
  /* A report calls for a plan now (triggers.h); `why` is one line
   * naming the VM ("VM web1: pressure 3.10% > target 1.00%").  The
   * daemon logs whether it planned. */
  void (*plan_now) (const char *uuid, const char *why, gpointer data);
  /* A reclaim request ended.  why: "shrink" (before a shrink) or "cold"
   * (cold page cache); outcome: "done", "refused" (the agent said no)
   * or "failed" (no answer: timeout, link lost); got is 0 unless done. */
  void (*reclaimed) (const char *uuid, const char *why, const char *outcome, guint64 asked,
                     guint64 got, gpointer data);
} MtDaemonAgentHooks;

/* Gives the VM the link it should have now: one when it has an agent
 * channel and memtided manages it (mechanism not none), none otherwise
 * (logged when a policy reload released it), a new one when the channel
 * changed.  *agent is NULL or this VM's.  `hooks` must outlive it. */
void mt_daemon_agent_sync (MtDaemonAgent **agent, const MtDaemonAgentVm *vm,
                           const MtDaemonAgentHooks *hooks, gpointer data);
/* Safe from the hooks: no callback reaches the VM or the hooks after it. */
void mt_daemon_agent_free (MtDaemonAgent *agent);

/* Gives the link the hypervisor's view of the VM (`s` is the backend's
 * sample of this tick) and puts the guest's own numbers from a fresh
 * agent report into `s`. */
void mt_daemon_agent_overlay (MtDaemonAgent *agent, MtVmSample *s, gint64 now);

/* The agent is there: link ACTIVE, last report fresh. */
gboolean mt_daemon_agent_connected (MtDaemonAgent *agent);

/* Its link's statistics (violations by kind, ...); FALSE for NULL. */
gboolean mt_daemon_agent_get_stats (MtDaemonAgent *agent, MtAgentLinkStats *out);

/* Its link, for requests made elsewhere (daemon-tune.c); NULL for NULL. */
MtAgentLink *mt_daemon_agent_link (MtDaemonAgent *agent);

/* Call before shrinking the VM from `from` to `to` bytes (total size):
 * when the guest's free memory does not cover the shrink, asks its agent
 * to reclaim page cache first (memory.reclaim; drop_caches only if the
 * VM's policy allows it), so the balloon or unplug finds free pages.
 * Does not wait for the answer (it is logged, and reported through the
 * `reclaimed` hook); returns TRUE when a request was sent. */
gboolean mt_daemon_agent_before_shrink (MtDaemonAgent *agent, guint64 from, guint64 to);

/* The plan's decision for the VM has `reclaim` > 0: asks its agent to
 * reclaim that much cold page cache (memory.reclaim only), logging the
 * request with its reason in one line and the guest's answer when it
 * comes.  Returns TRUE when a request was sent. */
gboolean mt_daemon_agent_reclaim_cold (MtDaemonAgent *agent, const MtVmDecision *dec);
