/* daemon.h: memtided's core: owns the policy, the backend, the model of
 * every VM and the tick that plans and acts.  main.c only parses options
 * and runs the loop; the D-Bus layer reads and steers through this. */
#pragma once

#include <glib.h>

#include "agent-parse.h"
#include "control.h"
#include "sample.h"

typedef struct {
  const char *backend;      /* hypervisor driver: "auto" (or NULL), "libvirt", "fake" */
  const char *uri;          /* the driver's URI (--connect), NULL = its default */
  const char *config_file;  /* base policy file */
  const char *policies_dir; /* admin policy files, read in sorted order */
  const char *state_dir;    /* persisted state */
  const char *proc_root;    /* host /proc (tests point it elsewhere) */
  const char *cgroup_dir;   /* VM cgroup, NULL = find libvirt's */
  gboolean dry_run;         /* decide and log, apply nothing */
  gint64 state_interval;    /* µs between state saves, 0 = 30 s (tests set less) */
} MtDaemonOptions;

typedef struct _MtDaemon MtDaemon;

/* Loads the policy (fails on any error in it) and the state; does not
 * connect yet. */
MtDaemon *mt_daemon_new (const MtDaemonOptions *options, GError **error);
void mt_daemon_free (MtDaemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtDaemon, mt_daemon_free)

/* Connects to the hypervisor, discovers domains, starts ticking. */
gboolean mt_daemon_start (MtDaemon *daemon, GError **error);
/* Saves state; leaves every VM at the size it has. */
void mt_daemon_stop (MtDaemon *daemon);

/* SIGHUP, ReloadPolicies: re-read the policy files; on error keep the old
 * policy, log why and set error (which may be NULL).  Returns whether the
 * new policy is in force. */
gboolean mt_daemon_reload (MtDaemon *daemon, GError **error);

/* --check-config */
gboolean mt_daemon_check_config (const MtDaemonOptions *options, GError **error);

/* ---- steering (daemon-control.c) ---------------------------------------- */

/* Each request is checked against the running VMs, recorded in the
 * daemon's MtControl (control.h), which every plan consults, and then
 * observers are told, and a plan runs when the request waits for one:
 * always from an idle, never inside the call, so that the caller's reply
 * goes out before any signal the change causes. */

#define MT_DAEMON_ERROR (mt_daemon_error_quark ())
GQuark mt_daemon_error_quark (void);

typedef enum {
  MT_DAEMON_ERROR_NO_SUCH_VM,
  MT_DAEMON_ERROR_INVALID_ARGUMENT,
  MT_DAEMON_ERROR_NO_SUCH_COOKIE,
  MT_DAEMON_ERROR_CANNOT_RESERVE, /* message names what blocked it */
} MtDaemonError;

MtMode mt_daemon_get_mode (MtDaemon *daemon);
/* Overrides the policy file's dry-run until the next SetMode or restart. */
void mt_daemon_set_mode (MtDaemon *daemon, MtMode mode);

/* Admin bounds for one VM (by UUID or name), persisted in the state
 * directory.  They replace the policy's min and max for that VM (still
 * within what the domain can do: boot memory + virtio-mem size).
 * min = max = 0 clears them; min > max is refused. */
gboolean mt_daemon_set_limits (MtDaemon *daemon, const char *vm, guint64 min, guint64 max,
                               GError **error);

/* Pins and reservations are leases held by `holder` (the D-Bus layer
 * passes the caller's unique bus name, and ends the holder's leases with
 * mt_daemon_end_holder_leases() when it leaves the bus).  Their reason
 * is at most MT_LEASE_REASON_MAX bytes of UTF-8 (INVALID_ARGUMENT
 * otherwise) and is kept, logged and published escaped to one line. */

/* Hold a VM at `size` until unpinned, the holder's leases end, or the VM
 * stops.  Plans soon.  Returns a cookie > 0, or 0 with error. */
guint mt_daemon_pin (MtDaemon *daemon, const char *vm, guint64 size, const char *reason,
                     const char *holder, GError **error);
gboolean mt_daemon_unpin (MtDaemon *daemon, guint cookie, GError **error);

/* Make `bytes` free on the host for a VM about to start by shrinking the
 * others within their policy.  Fails at once when the VMs' minimums leave
 * no room (the error names the VMs that block it); otherwise the daemon
 * works toward it and reports through observer->reservation_done within
 * `timeout` µs, never before this call returned.  The memory stays set
 * aside until released. */
guint mt_daemon_reserve (MtDaemon *daemon, guint64 bytes, const char *reason, gint64 timeout,
                         const char *holder, GError **error);
gboolean mt_daemon_release (MtDaemon *daemon, guint cookie, GError **error);

/* Ends every pin and reservation of a holder that is gone.  Returns the
 * leases it ended (element type MtLease, oldest first; maybe empty). */
GPtrArray *mt_daemon_end_holder_leases (MtDaemon *daemon, const char *holder);
/* A copy of one lease, NULL when there is none with that cookie. */
MtLease *mt_daemon_get_lease (MtDaemon *daemon, guint cookie);
/* Copies of the leases of one kind (of one VM when uuid is not NULL),
 * oldest first; element type MtLease. */
GPtrArray *mt_daemon_list_leases (MtDaemon *daemon, MtLeaseKind kind, const char *uuid);

/* ---- status (daemon-status.c) ---------------------------------------------- */

typedef struct {
  char *uuid;
  char *name;
  guint64 current;         /* balloon + virtio-mem, MT_UNKNOWN = not known yet */
  guint64 target;          /* where the planner wants it, MT_UNKNOWN = no plan yet */
  guint64 need;            /* working set + headroom, MT_UNKNOWN */
  guint64 min, max;        /* effective bounds (policy, limits, pin) */
  guint64 vmem_plugged;    /* bytes through virtio-mem */
  guint64 balloon;         /* bytes of boot memory the balloon leaves */
  guint64 guest_available; /* MT_UNKNOWN */
  double pressure;         /* PSI some avg10 percent, NAN = unknown */
  double pressure_target;  /* the policy's, percent */
  /* The stall budget (docs/policy.md stall-budget, stall-window): the
   * share of the time the guest stalled (PSI some, from its agent)
   * averaged over the window, 0..1, NAN = unknown; the policy's budget
   * as a share (0 = none); whether the last plan found it over; the
   * rise it is grown ahead of. */
  double stall;
  double stall_budget;
  gint64 stall_window; /* µs */
  gboolean over_budget;
  guint64 rise_floor;    /* bytes, 0 = none */
  const char *source;    /* "agent", "balloon", "none" */
  const char *mechanism; /* policy mechanism */
  const char *decision;  /* hold, shrink, grow, wait, skip, stuck */
  gboolean agent_connected;
  gboolean stuck;
  char *stuck_reason; /* "" when not stuck */
  char *reason;       /* the last decision in one line, "" = none */
  char *last_action;  /* "" = none */
  gboolean pinned;
  gboolean has_limits;
  /* Free page reporting and block usage (patched guest kernels, through
   * the agent; service/core/reporting.h): MT_UNKNOWN / unknown usage
   * when not reported. */
  guint64 reported_free;  /* the guest's claim */
  guint64 rss_saved;      /* the claim cut by QEMU's RSS */
  guint64 reported_total; /* since the guest booted */
  guint64 reused_total;
  guint64 reporting_passes;
  guint64 reporting_budget_exhausted;
  guint64 reporting_delay_ms;
  guint64 reporting_budget_divisor;
  MtBlockUsage usage_kernel, usage_movable, usage_vmem;
  guint64 unpluggable; /* virtio-mem memory an unplug could take */
  /* Its guest agent link's protocol violations since memtided attached
   * the link (docs/agent-link.md), by kind (MtAgentErrorCode,
   * mt_agent_error_code_to_string; [MT_AGENT_OK] is 0).  has_agent_link
   * FALSE: no link (no agent channel, or observed only), all 0. */
  gboolean has_agent_link;
  guint64 agent_violations[MT_AGENT_ERR_COUNT];
  char *agent_last_violation; /* "KIND FIELD: message", "" = none */
} MtVmStatus;

void mt_vm_status_free (MtVmStatus *status);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtVmStatus, mt_vm_status_free)

typedef struct {
  guint64 total;          /* host MemTotal */
  guint64 available;      /* host MemAvailable */
  guint64 reserve;        /* policy reserve + reservations */
  guint64 budget;         /* what the VMs may hold, MT_UNKNOWN */
  guint64 guest_total;    /* sum of VM sizes */
  guint64 guest_free;     /* sum of guest free memory (idle) */
  guint64 reported_free;  /* guest memory returned by free page reporting (claims) */
  guint64 reported_total; /* reported since each running guest's boot */
  guint64 reused_total;   /* of it, taken back by the guests */
  guint64 rss_saved;      /* the claims cut by QEMU's RSS (reporting.h) */
  guint64 unpluggable;    /* movable virtio-mem memory that could be unplugged */
  MtMode mode;
  guint n_vms;
  gboolean connected;
} MtHostStatus;

/* Element type MtVmStatus, sorted by name. */
GPtrArray *mt_daemon_list_vms (MtDaemon *daemon);
MtVmStatus *mt_daemon_get_vm_status (MtDaemon *daemon, const char *vm, GError **error);
/* The last plan's size and target of the VM with this UUID, without a
 * status snapshot: observers may call it for every VM after every plan.
 * FALSE when there is no such VM or no plan for it yet. */
gboolean mt_daemon_get_vm_target (MtDaemon *daemon, const char *uuid, guint64 *current,
                                  guint64 *target);
void mt_daemon_get_host_status (MtDaemon *daemon, MtHostStatus *out);
const char *const *mt_daemon_get_policy_files (MtDaemon *daemon);
/* The last decision for a VM and its inputs, in words, several lines. */
char *mt_daemon_explain (MtDaemon *daemon, const char *vm, GError **error);

/* ---- events ----------------------------------------------------------------- */

/* Observers may read the daemon's status.  No request (steering, reload)
 * calls them before it returns: what a request changes is told from an
 * idle, after a plan when the request asked for one. */
typedef struct {
  void (*vm_added) (MtDaemon *d, const char *uuid, gpointer user_data);
  void (*vm_removed) (MtDaemon *d, const char *uuid, gpointer user_data);
  /* After every plan, for each VM (cheap: the D-Bus layer diffs), and
   * when a VM's pins or limits changed. */
  void (*vm_updated) (MtDaemon *d, const char *uuid, gpointer user_data);
  /* After every tick and plan, and when the mode, the policy files, the
   * reservations or the connection changed. */
  void (*host_updated) (MtDaemon *d, gpointer user_data);
  void (*action_applied) (MtDaemon *d, const char *uuid, const char *mechanism, guint64 from,
                          guint64 to, const char *reason, gpointer user_data);
  void (*vm_stuck) (MtDaemon *d, const char *uuid, const char *reason, gpointer user_data);
  /* After a plan: the room is there (ok), or was not made in time (the
   * reservation has ended). */
  void (*reservation_done) (MtDaemon *d, guint cookie, gboolean ok, const char *message,
                            gpointer user_data);
  /* The guest answered a page cache reclaim request, or it failed.
   * why: "shrink" (before a shrink) or "cold" (cold page cache);
   * outcome: "done", "refused" (the agent said no) or "failed" (no
   * answer: timeout, link lost); reclaimed is 0 unless done. */
  void (*guest_reclaimed) (MtDaemon *d, const char *uuid, const char *why, const char *outcome,
                           guint64 asked, guint64 reclaimed, gpointer user_data);
} MtDaemonObserver;

/* Several observers may watch (D-Bus, metrics); each is called in the
 * order added.  The observer struct must outlive its registration. */
void mt_daemon_add_observer (MtDaemon *daemon, const MtDaemonObserver *observer,
                             gpointer user_data);
void mt_daemon_remove_observer (MtDaemon *daemon, const MtDaemonObserver *observer,
                                gpointer user_data);
