/* triggers.h: does a guest agent report call for a plan now, before the
 * next tick?  Pure: no I/O, no clock reads, no logging; the daemon
 * (service/daemon-agent.c) and the simulator (bench/sim) run this code.
 *
 * API in a few lines:
 *   MtTriggers t;  mt_triggers_init (&t);          one per agent link
 *   each report:   MtTriggerReport r = { mono_us, ... };   plain numbers
 *                  mt_triggers_check (&t, &r, &vm, now, &out);
 *                  out.plan: plan now, out.kind says why
 *                  (mt_trigger_describe (&out) in words)
 *   guest reboot:  mt_triggers_reset (&t);
 *
 * Sizes are bytes, the report's clock is the guest's monotonic µs, `now`
 * the host's (g_get_monotonic_time in the daemon).  docs/agent-link.md,
 * "Event triggers", explains each test. */
#pragma once

#include <glib.h>
#include "sample.h"
#include "model.h"

/* Event plans for one VM at most this often (the daemon also limits all
 * extra plans to one per 200 ms). */
#define MT_TRIGGER_EVENT_PLAN_GAP (1 * G_USEC_PER_SEC)
/* But once within the gap, at least MT_TRIGGER_MIN_SPAN after an event
 * plan for used memory running out, a report of it rising this many
 * times as fast plans again: the grow that plan asked for was sized for
 * the slower rate (measured over a span that began before the rise), and
 * the guest runs out before the gap ends.  A flash crowd seen in
 * bench/sim: the first report at 200 MiB/s, the next, 300 ms later, at
 * 800 MiB/s. */
#define MT_TRIGGER_RUNOUT_FASTER 2.0
/* Stall shares and used-memory rates are measured against a report at
 * least this much guest time back. */
#define MT_TRIGGER_MIN_SPAN (200 * 1000)
/* Used memory (MemTotal - MemAvailable: a shrink lowers both, and must
 * not look like a rise) rising at least this fast (bytes/s), with
 * MemAvailable gone within MT_TRIGGER_RUNOUT_HORIZON s at that rate,
 * plans at once: the guest evicts its hot page cache and then swaps
 * before the next tick would grow it. */
#define MT_TRIGGER_RUNOUT_RATE    (32 * MT_MIB)
#define MT_TRIGGER_RUNOUT_HORIZON 3.0
/* Reports further apart than this say nothing about the rate now. */
#define MT_TRIGGER_RUNOUT_MAX_SPAN (5 * G_USEC_PER_SEC)
/* While a shrink of a VM with virtio-mem is under way and this long
 * after it, used memory is no sign of a rise: virtio-mem isolates the
 * pages of the blocks it offlines (MemAvailable falls) before MemTotal
 * drops, so "used" climbs by up to the blocks in flight (seen on real
 * guests: 100+ MiB at 200 MiB/s, every shrink grown straight back).
 * The balloon takes pages out of MemTotal as it takes them. */
#define MT_TRIGGER_RUNOUT_AFTER_SHRINK (3 * G_USEC_PER_SEC)

/* A value of the previous two reports that had it, with their guest
 * clocks ([1] the newer): an event report may follow a periodic one
 * within MT_TRIGGER_MIN_SPAN, and then it is measured from the one
 * before. */
typedef struct {
  guint64 value[2]; /* MT_UNKNOWN = none */
  guint64 mono_us[2];
} MtTriggerPair;

/* What one agent link keeps between reports.  Plain data. */
typedef struct {
  gint64 last_event_plan; /* host µs, MT_TIME_NEVER = none */
  double last_runout;     /* the run-out rate that plan answered (bytes/s), NAN = none */
  gboolean followed_up;   /* that plan was the one MT_TRIGGER_RUNOUT_FASTER allows */
  double last_psi;        /* some avg10 of the previous report, NAN = none */
  guint64 last_oom;       /* oom_kill of the previous report, MT_UNKNOWN = none */
  MtTriggerPair stall;    /* psi some total_us: the stall share */
  MtTriggerPair used;     /* MemTotal - MemAvailable: the rate it rises at */
} MtTriggers;

/* One believed report as plain values (the daemon fills it from an
 * MtAgentReport, the simulator from its own).  Anything the report
 * lacks is MT_UNKNOWN, or NAN for the avg10. */
typedef struct {
  guint64 mono_us;           /* the guest's clock when it built the report */
  gboolean psi_trigger;      /* sent because the guest's PSI trigger fired */
  double psi_some_avg10;     /* percent */
  guint64 psi_some_total_us; /* stalled since boot */
  guint64 mem_total;         /* MemTotal */
  guint64 mem_available;     /* MemAvailable */
  guint64 oom_kill;          /* OOM kills since boot */
} MtTriggerReport;

/* The VM the report comes from. */
typedef struct {
  double pressure_target;     /* percent, its policy's */
  gboolean has_vmem;          /* it has a virtio-mem device */
  const MtVmControl *control; /* the planner's state of it */
  gboolean can_plan;          /* FALSE while there is no sample to plan from:
                                 the report only updates the history */
} MtTriggerVm;

typedef enum {
  MT_TRIGGER_NONE,     /* nothing calls for a plan */
  MT_TRIGGER_PSI,      /* the guest's PSI trigger fired, pressure now above the target */
  MT_TRIGGER_PRESSURE, /* avg10 above the target and above the previous report's */
  MT_TRIGGER_OOM,      /* oom_kill went up (wins over the two above) */
  MT_TRIGGER_RUNOUT,   /* used memory rising: MemAvailable gone within the horizon */
} MtTriggerKind;

typedef struct {
  MtTriggerKind kind;
  gboolean plan;      /* plan now: kind != NONE, can_plan and not rate-limited */
  gboolean limited;   /* kind != NONE, can_plan, but an event plan for this VM was
                       less than MT_TRIGGER_EVENT_PLAN_GAP ago */
  gboolean faster;    /* plan within the gap: used memory rises MT_TRIGGER_RUNOUT_FASTER
                         times as fast as the run-out the last event plan answered */
  double last_runout; /* faster: that plan's rate, bytes/s; else NAN */
  double target;      /* the VM's pressure target, percent */
  double psi;         /* the report's avg10, NAN = none */
  double stall;       /* percent of the time stalled since the report before, NAN = unknown */
  double psi_now;     /* a PSI trigger report: the larger of avg10 and the stall share,
                       for the plan's sample (avg10 lags a fresh stall); else NAN */
  guint64 oom_new;    /* OOM: kills since the previous report */
  double runout_rate; /* RUNOUT: bytes/s used memory rises at, for the plan's
                         sample (MtVmSample.runout_rate); else NAN */
  guint64 available;  /* RUNOUT: the report's MemAvailable */
} MtTrigger;

void mt_triggers_init (MtTriggers *t);
/* The guest rebooted: its counters start again, so the history goes.
 * The rate limit stays. */
void mt_triggers_reset (MtTriggers *t);

/* Judges report `r` of `vm` at host time `now`, fills *out, and records
 * the report (and the plan, when out->plan) in `t`.  Reports must come
 * in the order the guest made them; anything may be hostile: counters
 * that go back, MemAvailable above MemTotal, unknowns, huge values. */
void mt_triggers_check (MtTriggers *t, const MtTriggerReport *r, const MtTriggerVm *vm, gint64 now,
                        MtTrigger *out);

/* Why, in the words memtided logs ("pressure 3.10% > target 1.00%"),
 * NULL for MT_TRIGGER_NONE.  Free with g_free. */
char *mt_trigger_describe (const MtTrigger *t);
