/* planner.h: the decision function.  Pure: no I/O, no clock reads, no
 * globals, no randomness; the daemon and bench/sim run the same code.
 *
 * API in a few lines:
 *   MtPlanVm in[n];
 *   for each VM: mt_plan_vm_init (&in[i], name, info, policy, model, hp, now);
 *   g_autoptr(MtPlan) plan = mt_plan_compute (&host_sample, in, n, hp, now);
 *   for each plan->actions[k] in order (shrinks and cancels before grows;
 *   a VM has at most one action, or a cancel and then a grow):
 *     if (a->set_vmem) backend set_vmem (a->vmem_requested);   first
 *     if (a->set_balloon) backend set_balloon (a->balloon);
 *     log a->reason (one line);
 *   for each VM i with plan->decisions[i].reclaim > 0: ask its agent to
 *     reclaim that much page cache (cold: see docs/planner.md);
 *   for each VM i with plan->decisions[i].tune_delay_ms > 0: ask its agent
 *     to set its page reporting tunables (tune_reporting, paced by the
 *     caller; mt_vm_decision_format_tune() says why);
 *   for each VM i: model[i]->control = plan->decisions[i].next;
 *     (`in` points to the model's control state: the plan is computed
 *     before any of them is overwritten, and `in` is not read after);
 *     keep decisions[i] (plain data); mt_vm_decision_format_reason()
 *     says what it does and why, when someone asks (D-Bus Explain).
 * A caller that runs the resize calls asynchronously sets
 * control.call_since to when it issued a VM's call, and back to
 * MT_TIME_NEVER when the call returned: meanwhile the VM gets no action,
 * and it is stuck once the call was in flight for stuck-timeout.
 * In dry-run (hp->dry_run) apply nothing but still copy `next` back: the
 * planner then does not record its actions as issued, so VMs that never
 * received them are not marked stuck.
 *
 * To make room for a VM about to start (D-Bus Reserve), pass a host
 * policy whose reserve includes the reservation.
 */
#pragma once

#include <glib.h>
#include "sample.h"
#include "policy.h"
#include "domain.h"
#include "model.h"

/* Tuning constants.  They are not policy: they shape the control loop,
 * and docs/planner.md explains each. */
#define MT_PLAN_BALLOON_FLOOR_MIN (128 * MT_MIB) /* never balloon a guest below this */
#define MT_PLAN_BALLOON_FLOOR_DIV 16             /* nor below 1/16 of its boot memory */
#define MT_PLAN_REACH_TOLERANCE   (2 * MT_MIB)   /* "at its target" */
#define MT_PLAN_AVAIL_LOW_MIN     (32 * MT_MIB)  /* guest MemAvailable below this ... */
#define MT_PLAN_AVAIL_LOW_DIV     50             /* ... or 2% of MemTotal: emergency */
#define MT_PLAN_SWAPIN_HIGH       (1.0 * MT_MIB) /* bytes/s swapped in: raise headroom */
#define MT_PLAN_FAULTS_HIGH       50.0           /* major faults/s: refaulting, not shrunk */
#define MT_PLAN_FAULTS_LOW \
  10.0                                                /* major faults/s: pressure is memory-bound;
                                                      above it and 2x the average: raise */
#define MT_PLAN_RAISE_STEP_MIN  (32 * MT_MIB)         /* smallest headroom raise */
#define MT_PLAN_CALM_HOLD       (30 * G_USEC_PER_SEC) /* calm this long before lowering */
#define MT_PLAN_DECAY_PER_S     0.02                  /* headroom lowered 2%/s while calm */
#define MT_PLAN_FLOOR_HALF_LIFE 600.0                 /* s: pressure's level is forgotten */
#define MT_PLAN_PSI_SETTLE \
  (10 * G_USEC_PER_SEC) /* PSI avg10's window: pressure
                                                      alone raises again after this ... */
#define MT_PLAN_PSI_WORSE \
  1.5                                                 /* ... or at once above 1.5x what the
                                                      last raise answered */
#define MT_PLAN_BURST_HALF_LIFE 30.0                  /* s: a recent rise is held as headroom */
#define MT_PLAN_RISE_LEAD       (2 * G_USEC_PER_SEC)  /* need leads a rising working set by this */
#define MT_PLAN_COLD_INTERVAL   (10 * G_USEC_PER_SEC) /* between cold page cache requests */
#define MT_PLAN_COLD_READ \
  (64 * MT_MIB)                                         /* a cache that rose this much is being
                                                      read: not cold ... */
#define MT_PLAN_COLD_SETTLE       (10 * G_USEC_PER_SEC) /* ... for this long */
#define MT_PLAN_COLD_KEEP         (32 * MT_MIB)         /* inactive page cache always left */
#define MT_PLAN_COLD_SHARE        0.5                   /* of the cold cache per request */
#define MT_PLAN_COLD_MIN          (16 * MT_MIB)         /* smaller requests are not worth one */
#define MT_PLAN_SETTLE_TICKS      2                     /* ticks after acting before a shrink */
#define MT_PLAN_SHRINK_HOLD_TICKS 2                     /* ticks a shrink must be wanted first */
#define MT_PLAN_STALE_TICKS       5                     /* guest stats older than this: unknown */
#define MT_PLAN_RETRY_MAX         (30 * 60 * G_USEC_PER_SEC) /* stuck back-off cap */
#define MT_PLAN_DEFAULT_TICK      (1 * G_USEC_PER_SEC)       /* if the policy says <= 0 */
#define MT_PLAN_DEFAULT_STUCK     (30 * G_USEC_PER_SEC)      /* if the policy says <= 0 */
#define MT_PLAN_IDLE_HOLD         (10 * G_USEC_PER_SEC)      /* idle this long: fast reporting */
#define MT_PLAN_IDLE_PSI          0.1                        /* PSI some avg10 % at most, idle */
#define MT_PLAN_IDLE_RISE         (16 * MT_MIB) /* used memory rose at most this in 5 s */
#define MT_PLAN_FREEING           (64 * MT_MIB) /* used memory falls this fast (per s): freeing */
#define MT_PLAN_RISE_SLOT         ((gint64) 30 * 60 * G_USEC_PER_SEC) /* rises are kept two of these */
#define MT_PLAN_DEFAULT_STALL_WINDOW \
  ((gint64) 10 * 60 * G_USEC_PER_SEC) /* if the policy says <= 0 */

/* One VM as the planner sees it. */
typedef struct {
  const char *name;         /* for reasons; NULL = "vm<index>" */
  guint64 base_memory;      /* MtDomainInfo: boot memory (balloon range) */
  guint64 vmem_size;        /* virtio-mem device size, 0 = none */
  guint64 vmem_block;       /* virtio-mem block size */
  const MtVmPolicy *policy; /* resolved for this VM; NULL = leave alone */
  MtVmDerived obs;          /* mt_vm_model_derive() */
  /* The previous decision's `next` (the model's control state), borrowed:
   * the planner copies it into the decision's `next` and never writes
   * through it.  NULL = a VM never planned.  A copy here was the third
   * copy of it per VM per plan (10,000 VMs: 2.7-3.0 MiB more at a tick's
   * peak). */
  const MtVmControl *control;
} MtPlanVm;

/* The sentence for why a VM is stuck (`c->stuck_kind`), in buf; "" when
 * it is not stuck.  Returns buf. */
#define MT_STUCK_REASON_LEN 160
const char *mt_vm_control_stuck_reason (const MtVmControl *c, char buf[MT_STUCK_REASON_LEN]);

/* The share of time the guest stalled (PSI some), 0..1, averaged over
 * `window` (the policy's stall-window) as of `now`; NAN when its agent
 * never reported a PSI total.  planner-budget.c. */
double mt_vm_control_stall (const MtVmControl *c, gint64 window, gint64 now);
/* The largest sudden rise of the working set that found the guest
 * short within the last hour (MT_PLAN_RISE_SLOT twice), bytes. */
guint64 mt_vm_control_rise_floor (const MtVmControl *c);

/* Fills `in` from the daemon's state; `name`, `policy` and `model`
 * (whose control state `in` points to) are borrowed and must outlive the
 * plan computation. */
void mt_plan_vm_init (MtPlanVm *in, const char *name, const MtDomainInfo *info,
                      const MtVmPolicy *policy, const MtVmModel *model, const MtHostPolicy *hp,
                      gint64 now);

typedef enum {
  MT_ACTION_SHRINK,
  MT_ACTION_GROW,
  MT_ACTION_CANCEL, /* size unchanged: stop a stalled virtio-mem unplug */
} MtActionKind;

const char *mt_action_kind_to_string (MtActionKind k);

typedef struct {
  guint vm; /* index into the input array */
  MtActionKind kind;
  gboolean emergency; /* grow that skipped hysteresis */
  guint64 from;       /* total size now (balloon + virtio-mem) */
  guint64 to;         /* total size once applied */
  gboolean set_vmem;
  guint64 vmem_requested; /* multiple of vmem_block, <= vmem_size */
  gboolean set_balloon;
  guint64 balloon; /* <= base_memory */
  char *reason;    /* "<vm>: <decision reason>", one line */
} MtAction;

/* Why a decision asks to tune the guest's page reporting
 * (MtVmDecision.tune_why). */
typedef enum {
  MT_TUNE_NONE,    /* leave the tunables as they are */
  MT_TUNE_FAST,    /* policy page-reporting = fast */
  MT_TUNE_IDLE,    /* fast-when-idle, and the guest is idle */
  MT_TUNE_FREED,   /* fast-when-idle, and the guest is freeing memory now */
  MT_TUNE_BUSY,    /* fast-when-idle, and the guest is no longer idle: restore */
  MT_TUNE_RESTORE, /* policy keep (reloaded): restore what memtided changed */
} MtTuneWhy;

typedef enum {
  MT_DECISION_HOLD, /* at its target, or the change is below min_change */
  MT_DECISION_SHRINK,
  MT_DECISION_GROW,
  MT_DECISION_WAIT,  /* wants to move; waits (delay, rate, host free) */
  MT_DECISION_SKIP,  /* left alone: no data, observe-only, no config */
  MT_DECISION_STUCK, /* did not follow its last target; fixed for now */
} MtDecisionKind;

const char *mt_decision_kind_to_string (MtDecisionKind k);

/* Why a decision is what it is, as numbers.  The planner formats no
 * text for VMs nobody asks about: mt_vm_decision_format_reason() builds
 * the one-line reason from this when it is read.  Private to the
 * planner; plain data, copied with the decision. */
typedef struct {
  guint8 head;     /* which sentence starts the reason */
  guint8 limit;    /* what cut an action's step short */
  guint32 flags;   /* parts of the explanation, events of this tick */
  guint64 size[6]; /* the head's sizes */
  gint64 us[2];    /* the head's durations */
  guint64 swapped, oom_kills, available, swap_in_rate, short_by, rise;
  double psi, psi_target, fault_rate;
  guint32 shares;
  float stall; /* percent, NAN = unknown (in the room shares leaves) */
  guint64 note_size[3];
  gint64 note_us;
  guint64 hint[4]; /* block hint: unpluggable, margin, allowed, kept plugged */
} MtVmReason;

/* Per VM, in input order.  Sizes are totals (balloon + virtio-mem). */
typedef struct {
  MtDecisionKind kind;
  gboolean managed;       /* FALSE: fixed at its current size in the budget */
  gboolean emergency;     /* pressure above target, OOM kill, or no available memory */
  gboolean starving;      /* OOM kill or no available memory: the worst emergencies */
  gboolean grace;         /* in its start grace: the split does not shrink it */
  gboolean refaulting;    /* reads back memory it lost (swap-in, major faults):
                                  its floor is its size, as in an emergency */
  guint64 current;        /* MT_UNKNOWN when the hypervisor told nothing */
  guint64 min, max;       /* policy bounds within what the domain can do */
  guint64 working_set;    /* guest used memory + kernel overhead, MT_UNKNOWN */
  guint64 idle;           /* guest free memory, MT_UNKNOWN */
  guint64 headroom;       /* learned headroom */
  guint64 need;           /* working_set + headroom */
  guint64 want;           /* need within [min, max] */
  guint64 floor;          /* the fair split's guarantee: min, or current in an emergency */
  guint64 keep;           /* working set within [floor, want]: a short host takes
                                  idle memory above it from every VM before any below */
  guint64 committed;      /* counted in the budget: current, or a pending grow */
  guint64 target;         /* where it should end up; current when !managed */
  guint64 step;           /* size after this tick's action; current if none */
  gint action;            /* index into plan->actions, -1 = none */
  MtTuneWhy tune_why;     /* MT_TUNE_NONE when tune_delay_ms is 0 (beside action: no padding) */
  guint64 reclaim;        /* bytes of cold page cache to ask the guest's agent to
                                  reclaim now (memory.reclaim, never drop_caches); 0 = none */
  guint32 tune_delay_ms;  /* page reporting tunables the guest should have and has not */
  guint32 tune_divisor;   /* (tune_reporting), 0 = leave them */
  gint64 tune_idle_us;    /* MT_TUNE_IDLE: idle for this long */
  double tune_freed_rate; /* MT_TUNE_FREED: bytes/s used memory fell at */
  MtVmControl next;       /* control state to keep for the next plan */
  MtVmReason why;         /* for mt_vm_decision_format_reason() */
} MtVmDecision;

/* The stall the plan measured, percent of the policy's stall-window
 * (NAN = unknown, no PSI total from an agent), and whether it was above
 * the policy's stall-budget, so that the VM was not shrunk.  The rise
 * floor is mt_vm_control_rise_floor (&d->next). */
double mt_vm_decision_stall (const MtVmDecision *d);
gboolean mt_vm_decision_over_budget (const MtVmDecision *d);

/* The decision's one-line reason ("hold at 1.0 GiB: idle 400 MiB,
 * working set ...").  Free with g_free(). */
char *mt_vm_decision_format_reason (const MtVmDecision *d);
/* Why it asks for tune_delay_ms/tune_divisor ("idle for 12 s: PSI at most
 * 0.1%, used memory not rising; policy fast-when-idle"), "" with none.
 * Free with g_free(). */
char *mt_vm_decision_format_tune (const MtVmDecision *d);

typedef struct {
  gint64 now;
  guint64 budget;      /* bytes all VMs may hold, MT_UNKNOWN = unknown */
  guint64 committed;   /* what the VMs hold or were promised (pending grows) */
  guint64 demand;      /* sum of wants, fixed VMs at their committed size */
  guint64 free_now;    /* what this tick's grows may take, MT_UNKNOWN = unknown */
  gboolean host_short; /* demand > budget: the fair split decided targets */
  guint64 short_by;
  MtAction *actions; /* shrinks and cancels first, then grows */
  guint n_actions;
  MtVmDecision *decisions; /* one per input VM, same order */
  guint n_decisions;
  char *reason; /* host summary, one line */
} MtPlan;

void mt_plan_free (MtPlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtPlan, mt_plan_free)

/* host may be NULL (nothing known about the host): then no VM grows,
 * not even in an emergency, unless the policy sets a budget (grows stay
 * within it), and there is no fair split.  Never fails; bad inputs
 * become SKIP decisions. */
MtPlan *mt_plan_compute (const MtHostSample *host, const MtPlanVm *vms, guint n_vms,
                         const MtHostPolicy *hp, gint64 now);
