/* daemon-private.h: the daemon's state, shared by its parts:
 *   daemon.c          VM table, the tick (collect, plan, act), state
 *   daemon-act.c      the act step: resize calls off the main loop
 *   daemon-control.c  admin steering: mode, limits, pins, reservations
 *   daemon-agent.c    guest agent links feeding the model
 *   daemon-status.c   read-only snapshots for D-Bus and the CLI
 * Nothing outside service/daemon*.c includes this.
 */
#pragma once

#include "daemon.h"
#include "backend.h"
#include "config.h"
#include "host.h"
#include "model.h"
#include "planner.h"
#include "state.h"

typedef struct _MtAgentLink MtAgentLink;
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
  MtVmModel *model;   /* &model_data */

  /* Guest agent (daemon-agent.c); NULL without a channel. */
  MtAgentLink *agent;

  /* SetLimits (daemon-control.c), persisted in the state file. */
  gboolean has_limits;
  guint64 limit_min;
  guint64 limit_max;

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
  MtHostModel host_model;
  MtState *state;
  GHashTable *vms;  /* uuid -> MtDaemonVm */
  GPtrArray *order; /* the VMs sorted by name; NULL = to sort again */

  guint tick_source;
  gboolean connected;
  gboolean trim_after_tick; /* domains were announced: give back their garbage */
  gint64 state_saved_at;
  guint64 n_ticks;
  gint64 last_plan_time;

  /* The last plan's host view (daemon-status.c). */
  gboolean has_host;
  MtHostSample last_host;
  guint64 budget;
  guint64 committed;
  gboolean host_short;
  char *plan_reason;

  /* daemon-control.c */
  MtMode mode_override; /* MT_MODE_ACTIVE = follow the policy file */
  gboolean has_mode_override;
  GHashTable *pins;         /* cookie -> MtPin */
  GHashTable *reservations; /* cookie -> MtReservation */
  guint next_cookie;

  /* daemon-agent.c */
  gint64 agent_plan_at; /* last plan an agent event asked for */

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
 * extra plan per 200 ms so a flood of events cannot spin the loop. */
void mt_daemon_plan_now (MtDaemon *d, const char *why);
void mt_daemon_save_vm_state (MtDaemon *d, const char *uuid, MtDaemonVm *vm);

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

/* daemon-control.c */
void mt_daemon_control_init (MtDaemon *d);
void mt_daemon_control_free (MtDaemon *d);
/* The VM's policy with admin limits and pins applied. */
void mt_daemon_control_vm_policy (MtDaemon *d, const char *uuid, MtDaemonVm *vm, MtVmPolicy *out);
/* The host policy with mode and reservations applied. */
void mt_daemon_control_host_policy (MtDaemon *d, MtHostPolicy *out);
/* After each plan: reservations that are done or failed. */
void mt_daemon_control_after_plan (MtDaemon *d, const MtPlan *plan);
void mt_daemon_control_vm_removed (MtDaemon *d, const char *uuid);
gboolean mt_daemon_vm_is_pinned (MtDaemon *d, const char *uuid);

/* daemon-agent.c */
void mt_daemon_agent_attach (MtDaemon *d, const char *uuid, MtDaemonVm *vm);
void mt_daemon_agent_detach (MtDaemon *d, MtDaemonVm *vm);
/* Put the guest's own numbers (fresh agent report) into a backend sample. */
void mt_daemon_agent_overlay (MtDaemon *d, MtDaemonVm *vm, MtVmSample *s, gint64 now);
gboolean mt_daemon_agent_connected (MtDaemonVm *vm);
