/* planner-private.h: what planner.c and planner-vm.c share while one
 * plan is computed.  Not for the daemon: use planner.h. */
#pragma once

#include <stdarg.h>
#include "planner.h"
#include "planner-layout.h"

/* ---- text ---------------------------------------------------------------
 * Reasons are formatted into a fixed buffer by a printf that handles the
 * few conversions they use without the C library's. */

/* One line being built; a line longer than the buffer is cut. */
#define MT_TEXT_MAX 1024
typedef struct {
  gsize len;
  char buf[MT_TEXT_MAX];
} MtText;

static inline void
mt_text_init (MtText *t)
{
  t->len = 0;
  t->buf[0] = '\0';
}

void mt_text_append (MtText *t, const char *s);
void mt_text_vprintf (MtText *t, const char *fmt, va_list ap) G_GNUC_PRINTF (2, 0);
void mt_text_printf (MtText *t, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* bytes as "612 MiB" in buf, for a printf argument. */
static inline const char *
mt_plan_sz (char buf[MT_FORMAT_BYTES_LEN], guint64 bytes)
{
  mt_format_bytes_buf (buf, bytes);
  return buf;
}

/* MtVmReason.head: the sentence a reason starts with. */
enum {
  MT_WHY_HOLD,            /* "hold at <current>" */
  MT_WHY_HOLD_HYSTERESIS, /* size[0] = min-change */
  MT_WHY_WAIT_SHRINKING,  /* size[0] = last target, us[0] = since asked */
  MT_WHY_WAIT_DIP,        /* us[0] = hold, us[1] = wanted so far */
  MT_WHY_WAIT_SETTLE,     /* us[0] = since the last action */
  MT_WHY_WAIT_PACED,      /* size[0] = max shrink rate */
  MT_WHY_WAIT_FREE,       /* size[0] = free now (MT_UNKNOWN = unknown) */
  MT_WHY_WAIT_GROWING,    /* size[0] = last target, us[0] = since asked */
  MT_WHY_WAIT_HOST,       /* host free memory unknown, no policy budget */
  MT_WHY_WAIT_UNPLUG,     /* size[0] = plugged, size[1] = requested */
  MT_WHY_WAIT_BEHIND,     /* size[0] = the guest's MemTotal */
  MT_WHY_CANCEL,          /* mechanism in size[2..5] */
  MT_WHY_RESIZE,          /* size[0] = to, size[1] = the limit's value */
  /* Fixed at its size: no explanation follows. */
  MT_WHY_FIXED_FIRST,
  MT_WHY_NO_SIZE = MT_WHY_FIXED_FIRST,
  MT_WHY_NO_POLICY,
  MT_WHY_NO_VMEM,
  MT_WHY_NO_SAMPLES,
  MT_WHY_STALE, /* us[0] = age */
  MT_WHY_NO_STATS,
  MT_WHY_OBSERVED,
  MT_WHY_STUCK,     /* us[0] = stuck for, us[1] = retry in */
  MT_WHY_IN_FLIGHT, /* size[0] = the call's target, us[0] = in flight for */
};

/* MtVmReason.limit: what cut an action's step short. */
enum {
  MT_WHY_LIMIT_NONE,
  MT_WHY_LIMIT_RATE, /* size[1] = max shrink rate */
  MT_WHY_LIMIT_FREE, /* size[1] = free now */
};

/* MtVmReason.flags */
enum {
  MT_WHY_IDLE = 1 << 0,
  MT_WHY_SWAPPED = 1 << 1,
  MT_WHY_OOM = 1 << 2,
  MT_WHY_AVAIL_LOW = 1 << 3,
  MT_WHY_PRESSURED = 1 << 4,
  MT_WHY_SWAP_HIGH = 1 << 5,
  MT_WHY_FAULTS_HIGH = 1 << 6,
  MT_WHY_CAPPED = 1 << 7,
  MT_WHY_KEPT_MIN = 1 << 8,
  MT_WHY_KEPT_DOMAIN = 1 << 9,
  MT_WHY_SHORT = 1 << 10,
  MT_WHY_FAIR = 1 << 11,
  MT_WHY_EMERGENCY = 1 << 12, /* action head */
  MT_WHY_GROW = 1 << 13,
  MT_WHY_SET_VMEM = 1 << 14,    /* size[2] -> size[3] */
  MT_WHY_SET_BALLOON = 1 << 15, /* size[4] -> size[5] */
  /* Notes: events of this tick, in this order. */
  MT_WHY_NOTE_REACHED = 1 << 16, /* note_size[0] */
  MT_WHY_NOTE_MOVES = 1 << 17,   /* note_size[0] */
  MT_WHY_NOTE_VMEM_RETRY = 1 << 18,
  MT_WHY_NOTE_STALL = 1 << 19,    /* note_size[1], [2], note_us */
  MT_WHY_NOTE_RETRYING = 1 << 20, /* note_us */
  MT_WHY_NOTES = 0x1f << 16,
  MT_WHY_RISING = 1 << 21,      /* rise */
  MT_WHY_BURST = 1 << 22,       /* the headroom is held for a recent rise */
  MT_WHY_HINT_LIMIT = 1 << 23,  /* the block hint limited this action's unplug: hint[] */
  MT_WHY_HINT_KEPT = 1 << 24,   /* kept at the least reachable, the hint's part of it: hint[] */
  MT_WHY_OVER_BUDGET = 1 << 25, /* stalled more than its budget: stall, stall_budget */
  MT_WHY_RISE_FLOOR = 1 << 26,  /* the headroom is its largest rise of the last hour */
};

typedef struct {
  const MtHostPolicy *hp;
  gint64 now;
  gint64 tick;          /* hp->tick_interval, or the default */
  gint64 stuck_timeout; /* hp->stuck_timeout, or the default */
  gboolean host_out;    /* MemAvailable below the reserve: no start grace */
} MtPlanCtx;

/* One VM while the plan is computed.  Sizes are totals.  One per VM per
 * plan (10,000 of them at once): the flags are kept together, without
 * padding between them.  Not as bytes: with guint8 flags half the runs
 * of memtide-planner-scale at 10,000 VMs took 4.8-5.7 ms a plan instead
 * of 3.2-3.7 (the other half as fast as ever). */
typedef struct {
  const MtPlanVm *in;
  const char *name;  /* NULL: "vm<index>" */
  MtVmControl *next; /* the decision's: control state for the next plan */
  MtVmReason *why;   /* the decision's: the fixed head, this tick's notes */
  guint index;
  MtDecisionKind fixed_kind; /* SKIP, STUCK, or WAIT (a call in flight); why.head says why */

  gboolean fixed;     /* held at its size; reason says why */
  gboolean stall_now; /* virtio-mem unplug just found stalled: cancel it */
  /* Feedback. */
  gboolean pressured, oom, avail_low, swap_high, faults_high, emergency;
  gboolean refaulting;   /* swap-in or major faults: not shrunk this tick */
  gboolean grace;        /* start grace period */
  gboolean over_budget;  /* above the policy's stall-budget: never shrunk (planner-budget.c) */
  gboolean rise_applied; /* the headroom is the rise floor */

  guint64 cur;
  guint64 committed; /* cur, or a pending grow's target */

  MtLayoutIn lay;
  guint64 granule, offset; /* lattice of reachable sizes */

  guint64 reserve; /* what the guest kernel keeps of the size */
  guint64 burst;   /* headroom held for a recent rise (0: the learned one rules) */
  guint64 active;  /* working set in size terms, swapped part included */
  guint64 swapped; /* of it, guest swap being read back */
  guint64 idle;
  guint64 headroom;
  guint64 rise; /* lead on a rising working set */
  guint64 need; /* active + headroom + rise */

  /* Stall budget (planner-budget.c). */
  double stall;       /* percent of stall-window stalled, NAN = unknown (no agent) */
  guint64 rise_floor; /* the largest rise that found it short, last hour */

  /* Bounds and the split. */
  guint64 pmin; /* the policy's min, before the domain's limits */
  guint64 lo, hi;
  guint64 want;
  guint64 floor;
  guint64 tier1_lo; /* keeps the working set: idle goes first */
  guint64 tier0_lo; /* keeps the need without the burst headroom */
  guint64 target;
} MtVmEval;

/* Fills ev, and d->next and d->why, which ev points to. */
void mt_plan_eval_vm (MtPlanCtx *ctx, const MtPlanVm *in, guint index, MtVmEval *ev,
                      MtVmDecision *d);
/* planner-budget.c: the measured stall and whether the VM is over its
 * budget (ev->stall, ev->over_budget), for every VM with a policy. */
void mt_plan_stall (MtPlanCtx *ctx, MtVmEval *ev);
/* A sudden rise of `rise` bytes found the guest short: remember it. */
void mt_plan_rise_learn (MtPlanCtx *ctx, MtVmEval *ev, guint64 rise);
/* The headroom is at least the rise floor (at most cap). */
void mt_plan_rise_apply (MtPlanCtx *ctx, MtVmEval *ev, guint64 cap);
/* planner-vm.c: takes a VM within its budget back to its need without
 * the rise floor (the host has no room for it). */
void mt_plan_rise_strip (MtVmEval *ev);
/* planner-tune.c: d->tune_* (page reporting tunables), for every VM. */
void mt_plan_tune (MtPlanCtx *ctx, MtVmEval *ev, MtVmDecision *d);
