/* planner-private.h: what planner.c and planner-vm.c share while one
 * plan is computed.  Not for the daemon: use planner.h. */
#pragma once

#include "planner.h"
#include "planner-layout.h"

typedef struct {
  const MtHostPolicy *hp;
  gint64     now;
  gint64     tick;             /* hp->tick_interval, or the default */
  gint64     stuck_timeout;    /* hp->stuck_timeout, or the default */
  GPtrArray *strings;          /* formatted sizes, freed with the context */
} MtPlanCtx;

/* bytes as "612 MiB"; the string lives as long as the context. */
const char *mt_plan_sz (MtPlanCtx *ctx, guint64 bytes);

/* One VM while the plan is computed.  Sizes are totals. */
typedef struct {
  const MtPlanVm *in;
  const char *name;
  MtVmControl next;

  gboolean fixed;              /* held at its size; reason says why */
  MtDecisionKind fixed_kind;   /* SKIP or STUCK */
  GString *note;               /* events of this tick: stuck cleared, stall, ... */
  GString *fixed_reason;

  guint64 cur;
  guint64 committed;           /* cur, or a pending grow's target */

  MtLayoutIn lay;
  guint64 granule, offset;     /* lattice of reachable sizes */
  gboolean stall_now;          /* virtio-mem unplug just found stalled: cancel it */

  /* Feedback. */
  gboolean pressured, oom, avail_low, swap_high, faults_high, emergency;
  guint64 active;              /* working set in size terms */
  guint64 idle;
  guint64 headroom;
  guint64 need;

  /* Bounds and the split. */
  guint64 pmin;                /* the policy's min, before the domain's limits */
  guint64 lo, hi;
  guint64 want;
  guint64 floor;
  guint64 tier1_lo;            /* keeps the working set: idle goes first */
  guint64 target;
} MtVmEval;

void mt_plan_eval_vm (MtPlanCtx *ctx, const MtPlanVm *in, guint index, MtVmEval *ev);
void mt_plan_eval_clear (MtVmEval *ev);
