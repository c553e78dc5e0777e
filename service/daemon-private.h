/* daemon-private.h: the daemon's state, shared by its parts:
 *   daemon.c          VM table, the tick (collect, plan, act), state; it
 *                     consults the admin control (core/control.c) at plan
 *                     time, and never calls daemon-control.c or
 *                     daemon-status.c (they call it)
 *   daemon-control.c  admin requests: checked against the VM table,
 *                     recorded in the control, a plan scheduled
 *   daemon-act.c      the act step: resize calls off the main loop
 *   daemon-status.c   read-only snapshots for D-Bus and the CLI
 * daemon-agent.c, the guest agent links, does not include this: it gets
 * pointers into a VM and hooks (daemon-agent.h).  Nothing outside
 * service/daemon*.c includes this.
 */
#pragma once

#include "daemon.h"
#include "daemon-agent.h"
#include "daemon-tune.h"
#include "backend.h"
#include "config.h"
#include "host.h"
#include "host-psi.h"
#include "model.h"
#include "planner.h"
#include "state.h"

typedef struct _MtResizer MtResizer;

/* A plan's decision for one VM, kept for status and Explain, without its
 * `next`: after the plan that is model->control, and a second copy was
 * 320 bytes per VM (3 MiB at 10,000 VMs).  mt_daemon_vm_decision() puts
 * the whole MtVmDecision back together. */
typedef struct {
  guint8 head[G_STRUCT_OFFSET (MtVmDecision, next)]; /* kind .. action */
  MtVmReason why;
} MtDaemonDecision;

typedef struct {
  MtDomainInfo *info; /* &info_data */
  MtVmPolicy policy;  /* policy files + domain metadata */
  char *policy_error; /* bad domain metadata: file policy applies */
  char *opt_in_note;  /* an opt-in domain (info->opt_in): managed or observed
                         only, and why; NULL for the others */
  MtVmModel *model;   /* &model_data */

  /* Guest agent link (daemon-agent.h); NULL without one. */
  MtDaemonAgent *agent;
  MtDaemonTune tune; /* page reporting requests (daemon-tune.h) */

  /* The last plan's view of this VM, for status and Explain. */
  gboolean has_decision;
  MtDaemonDecision decision; /* read with mt_daemon_vm_decision() */
  MtVmPolicy effective;      /* the policy the last plan used (its input) */
  char *last_action;         /* one line, NULL = none yet */
  gint64 last_action_time;

  /* Kept in the VM's own allocation: each tick reads the info and the
   * model of every VM, and at 10,000 VMs three allocations per VM meant
   * three cache and TLB misses per VM where one page now serves. */
  MtDomainInfo info_data;
  MtVmModel model_data;
} MtDaemonVm;

struct _MtDaemon {
  char *backend_name; /* --backend, NULL = auto */
  char *uri;          /* --connect; once started, the URI in use (for messages) */
  char *config_file;
  char *policies_dir;
  char *state_dir;
  char *proc_root;
  char *cgroup_dir;
  gboolean dry_run_option;

  MtConfig *config;
  MtHostPolicy host_policy; /* the config's, with --dry-run applied */
  MtBackend *backend;
  MtResizer *resizer; /* the backend's resize calls, off the main loop (daemon-act.c) */
  MtHostReader *host_reader;
  MtHostPsiTrigger *host_psi; /* NULL: the tick's reading only */
  MtHostModel host_model;
  MtState *state;
  GHashTable *vms;  /* uuid -> MtDaemonVm */
  GPtrArray *order; /* the VMs sorted by name; NULL = to sort again */

  guint tick_source;
  gboolean connected;
  gboolean trim_after_tick; /* domains were announced: give back their garbage */
  gint64 state_saved_at;
  gint64 state_interval;      /* µs between saves */
  gint64 state_failing_since; /* saves fail since then, MT_TIME_NEVER = they do not */
  guint64 n_ticks;
  gint64 last_plan_time;

  /* The last plan's host view (daemon-status.c). */
  gboolean has_host;
  MtHostSample last_host;
  /* The last tick could not read the host (since then), MT_TIME_NEVER =
   * it could: extra plans then get no host reading either. */
  gint64 host_unreadable_since;
  guint64 budget;
  guint64 committed;
  gboolean host_short;
  char *plan_reason;

  /* Admin control: mode, limits, pins, reservations (core/control.c). */
  MtControl *control;
  /* What requests changed, told to observers from an idle
   * (mt_daemon_changed). */
  guint changed_idle;
  const char *changed_plan; /* plan first, for this reason; NULL = no plan */
  GHashTable *changed_vms;  /* uuids whose pins or limits changed */

  /* mt_daemon_plan_now */
  gint64 agent_plan_at; /* last extra plan (an agent event, a reservation) */
  gint64 tick_at;       /* when the last tick began: the next is due a tick later */

  GArray *observers; /* of MtDaemonObserverEntry */
};

typedef struct {
  const MtDaemonObserver *observer;
  gpointer data;
} MtDaemonObserverEntry;

/* Call `member` of every observer that has it. */
#define MT_DAEMON_NOTIFY(d, member, ...)                                   \
  G_STMT_START                                                             \
  {                                                                        \
    for (guint _i = 0; (d)->observers && _i < (d)->observers->len; _i++) { \
      const MtDaemonObserverEntry *_e =                                    \
        &g_array_index ((d)->observers, MtDaemonObserverEntry, _i);        \
      if (_e->observer->member)                                            \
        _e->observer->member ((d), ##__VA_ARGS__, _e->data);               \
    }                                                                      \
  }                                                                        \
  G_STMT_END

/* daemon.c */
/* The VM's last decision, whole (has_decision must be TRUE). */
void mt_daemon_vm_decision (const MtDaemonVm *vm, MtVmDecision *out);
MtDaemonVm *mt_daemon_lookup_vm (MtDaemon *d, const char *uuid_or_name, const char **uuid);
/* The same, with MT_DAEMON_ERROR_NO_SUCH_VM when there is none. */
MtDaemonVm *mt_daemon_find_vm (MtDaemon *d, const char *uuid_or_name, const char **uuid,
                               GError **error);
/* Plan and act now (an agent event, a reservation); rate-limited to one
 * extra plan per 200 ms so a flood of events cannot spin the loop.
 * Logs what it did in one line beginning with `why` ("planning now",
 * or why not: the rate limit and when the next tick plans, paused, not
 * connected); callers do not log it. */
void mt_daemon_plan_now (MtDaemon *d, const char *why);
void mt_daemon_save_vm_state (MtDaemon *d, const char *uuid, MtDaemonVm *vm);
/* A request changed what observers see (the control, the policy): tell
 * them from an idle, after a plan (mt_daemon_plan_now(why)) when change
 * is MT_CONTROL_PLAN.  uuid: the VM whose pins or limits changed, or
 * NULL.  why must be a static string.  Never calls an observer itself. */
void mt_daemon_changed (MtDaemon *d, MtControlChange change, const char *uuid, const char *why);
/* Boot memory + virtio-mem: the most a VM can have. */
guint64 mt_daemon_vm_domain_max (const MtDaemonVm *vm);
/* What a reservation can never take from a VM (its min, or its size when
 * unmanaged or stuck). */
guint64 mt_daemon_vm_floor (const MtDaemonVm *vm);
/* "web1 (at 2.0 GiB, keeps 1.0 GiB), ...": the VMs that hold the most
 * memory a reservation cannot take, for error messages. */
char *mt_daemon_describe_blockers (MtDaemon *d);

/* daemon-act.c */
enum {
  MT_ACT_NONE,     /* no action for the VM in this plan */
  MT_ACT_ISSUED,   /* its call is in flight */
  MT_ACT_DEFERRED, /* planned, not issued (its call or too many in flight) */
};
void mt_daemon_act_start (MtDaemon *d);
/* Waits for calls running now; drops outcomes not delivered. */
void mt_daemon_act_stop (MtDaemon *d);
/* A VM entered the table: a call for it may still be in flight. */
void mt_daemon_act_vm_added (MtDaemon *d, const char *uuid, MtDaemonVm *vm);
/* Issue the plan's resizes (or log them, in dry-run); per VM in @order,
 * MT_ACT_*, or NULL when nothing was issued or deferred.  g_free it. */
guint8 *mt_daemon_act (MtDaemon *d, const MtPlan *plan, GPtrArray *order, gboolean dry_run);
/* After the VM's control state took the plan's: mark its call in
 * flight, or take back what the planner recorded for a deferred one. */
void mt_daemon_act_after_plan (MtDaemon *d, MtDaemonVm *vm, guint8 issued,
                               const MtVmControl *before, gint64 now);
