/* model.h: what memtide knows about each VM between ticks, as plain data.
 *
 * API in a few lines:
 *   MtVmModel *vm = mt_vm_model_new ();          one per running domain
 *   mt_vm_model_push (vm, &sample);              each tick (backend + agent merged)
 *   mt_vm_model_latest (vm)                      the last sample, whole
 *   mt_vm_model_derive (vm, now, max_age, &d);   working set, idle, rates, freshness
 *   vm->control                                  planner state: pass it in, copy
 *                                                MtVmDecision.next back out
 *   MtHostModel: the same ring for host samples.
 *
 * No I/O, no clock reads: callers pass `now`.  Sizes are bytes (guint64),
 * times monotonic µs.  Unknown sizes are MT_UNKNOWN, unknown rates NAN.
 */
#pragma once

#include <glib.h>
#include "sample.h"

/* 16 ticks: the PSI trend uses 8 points, rates the last interval and the
 * window; a longer ring only costs memory (48 bytes per sample per VM). */
#define MT_MODEL_RING_CAPACITY 16

/* "Recent growth" of the working set: over this span.  A few seconds:
 * longer than a grow takes to land, short enough to be this rise. */
#define MT_MODEL_GROWTH_SPAN (5 * G_USEC_PER_SEC)

/* "Never happened" for the gint64 times below; use mt_elapsed(). */
#define MT_TIME_NEVER G_MININT64

/* Saturating arithmetic: guest-reported numbers are untrusted and may be
 * anything, so a wrap-around must never turn into a huge size. */
static inline guint64
mt_sat_add (guint64 a, guint64 b)
{
  return a > G_MAXUINT64 - b ? G_MAXUINT64 : a + b;
}

static inline guint64
mt_sat_sub (guint64 a, guint64 b)
{
  return a > b ? a - b : 0;
}

static inline guint64
mt_sat_mul (guint64 a, guint64 b)
{
  return (b != 0 && a > G_MAXUINT64 / b) ? G_MAXUINT64 : a * b;
}

/* double -> bytes without undefined behaviour: NAN and negatives are 0,
 * anything past the range saturates. */
static inline guint64
mt_sat_from_double (double v)
{
  if (!(v > 0.0))
    return 0;
  if (v >= 18446744073709549568.0) /* largest double below 2^64 */
    return G_MAXUINT64;
  return (guint64) v;
}

/* µs from `since` to `now`; G_MAXINT64 when `since` is MT_TIME_NEVER,
 * 0 when the clock seems to go backwards. */
static inline gint64
mt_elapsed (gint64 now, gint64 since)
{
  if (since == MT_TIME_NEVER)
    return G_MAXINT64;
  if (now <= since)
    return 0;
  if (since < 0 && now > G_MAXINT64 + since)
    return G_MAXINT64;
  return now - since;
}

/* "1.0 GiB", "612 MiB", "12 KiB": short, for one-line reasons; rounded
 * down.  The _buf variant writes into buf (no allocation) and returns
 * the length. */
#define MT_FORMAT_BYTES_LEN 32
char *mt_format_bytes (guint64 bytes);
gsize mt_format_bytes_buf (char buf[MT_FORMAT_BYTES_LEN], guint64 bytes);

/* ---- Rings ------------------------------------------------------------ */

/* One past sample, as much of it as the derived values look back at.
 * A whole MtVmSample is 152 bytes, and at 10,000 VMs a ring of them was
 * 24 MB, two thirds of the daemon's heap; the latest sample is kept
 * whole beside the ring. */
typedef struct {
  gint64 time;
  guint64 used;         /* guest total - available (+ swap in use), MT_UNKNOWN */
  guint64 current;      /* balloon + plugged virtio-mem, MT_UNKNOWN */
  guint64 swap_in;      /* cumulative bytes, MT_UNKNOWN */
  guint64 major_faults; /* cumulative, MT_UNKNOWN */
  float psi_some;       /* the agent's avg10; NAN when none or out of range */
  guint8 flags;         /* MT_VM_RECORD_* */
} MtVmRecord;

/* `used` counts guest swap in use. */
#define MT_VM_RECORD_SWAP_KNOWN (1u << 0)
/* Same guest numbers as the sample before it: a repeated observation. */
#define MT_VM_RECORD_REPEATS (1u << 1)

typedef struct {
  MtVmRecord records[MT_MODEL_RING_CAPACITY];
  guint head; /* slot the next sample goes to */
  guint len;
  MtVmSample latest;      /* the newest sample, whole (len > 0) */
  guint64 prev_oom_kills; /* the sample before it had these, MT_UNKNOWN */
} MtVmRing;

typedef struct {
  MtHostSample samples[MT_MODEL_RING_CAPACITY];
  guint head;
  guint len;
} MtHostRing;

/* ---- Derived values ----------------------------------------------------- */

typedef enum {
  MT_DATA_NONE = 0, /* no usable guest memory numbers */
  MT_DATA_BALLOON,  /* virtio-balloon stats */
  MT_DATA_AGENT,    /* memtide-agent report (has PSI, OOM kills) */
} MtDataSource;

const char *mt_data_source_to_string (MtDataSource s);

typedef struct {
  MtDataSource source; /* of the latest sample, NONE when stale */
  gboolean fresh;      /* latest sample within max_age of now */
  gint64 time;         /* of the latest sample, MT_TIME_NEVER if none */
  gint64 observed;     /* first sample with the latest guest numbers: balloon
                                  stats repeat in every sample until refreshed */

  /* Hypervisor view (latest sample). */
  guint64 balloon_actual;
  guint64 vmem_plugged; /* 0 when unknown and no device */
  guint64 vmem_requested;
  guint64 rss;
  guint64 current;            /* balloon_actual + vmem_plugged, MT_UNKNOWN if unknown */
  guint64 reporting_delay_ms; /* the guest's page reporting tunables (patched */
  guint64 reporting_divisor;  /* kernels, agent only), MT_UNKNOWN */
  guint64 vmem_unpluggable;   /* plugged virtio-mem the guest's block hint says it could
                                  give back (mt_sample_vmem_unpluggable), MT_UNKNOWN */

  /* Guest view. */
  guint64 total;         /* guest MemTotal */
  guint64 available;     /* MemAvailable, else MemFree */
  guint64 used;          /* working set estimate: total - available */
  guint64 idle;          /* free inside the guest (MemFree / unused) */
  guint64 swap_used;     /* guest swap in use (SwapTotal - SwapFree), MT_UNKNOWN */
  guint64 cache;         /* page cache that can be dropped, MT_UNKNOWN */
  guint64 inactive_file; /* of it, Inactive(file) (agent only; capped at cache), MT_UNKNOWN */
  gboolean can_reclaim;  /* the agent reclaims on request (memory.reclaim) */
  gboolean running_out;  /* the newest sample is the one an agent report planned with
                                  because used memory ran MemAvailable out
                                  (MtVmSample.runout_rate) */
  double used_rate;      /* bytes/s "used" (+ swap in use) grew over the last
                                  interval; negative when it fell; NAN = unknown */
  guint64 used_growth;   /* how much "used" (+ swap in use) rose within the last
                                  MT_MODEL_GROWTH_SPAN: now minus the least seen; 0 = none */
  guint64 reserve;       /* current - MemTotal, once the size has been steady long
                                  enough for the guest to report it; MT_UNKNOWN otherwise */

  /* Feedback signals; NAN / MT_UNKNOWN when not observable. */
  double psi_some;         /* latest avg10, percent */
  guint64 psi_some_total;  /* µs stalled since the guest booted (PSI some total), MT_UNKNOWN */
  double psi_trend;        /* slope of psi_some over the window, percent/s */
  double swap_in_rate;     /* bytes/s over the last interval */
  double swap_in_rate_avg; /* bytes/s over the whole window */
  double major_fault_rate; /* faults/s over the last interval */
  double major_fault_rate_avg;
  guint64 oom_kills_new; /* since the previous sample (0 if unknown) */
} MtVmDerived;

/* ---- Planner control state ---------------------------------------------- */

/* Why a VM is marked stuck (MtVmControl.stuck_kind). */
typedef enum {
  MT_STUCK_NONE,
  MT_STUCK_NOT_MOVING, /* did not move toward its target in time */
  MT_STUCK_VMEM,       /* virtio-mem unplug stalled, the policy allows no balloon */
  MT_STUCK_RESTORED,   /* stuck when memtided stopped (the state file) */
  MT_STUCK_CALL,       /* the resize call has not returned: blocked in the hypervisor */
} MtStuckKind;

/* What the planner carries from one tick to the next for one VM.  Plain
 * data, copyable by assignment; the planner reads the old value and
 * returns the new one in MtVmDecision.next. */
typedef struct {
  /* Senpai-like headroom feedback. */
  guint64 headroom;     /* learned headroom bytes, 0 = start from policy */
  gint64 feedback_time; /* sample time the feedback last used */
  gint64 calm_since;    /* pressure ~0 since, MT_TIME_NEVER = not calm */
  gint64 shrink_since;  /* wanted to shrink continuously since */
  gint64 raise_time;    /* plan time of the last headroom raise */
  double raise_psi;     /* PSI some (%) that raise answered, 0 = none or unknown */
  /* (raised_unproven: below, next to `pending`) */
  guint64 burst;          /* largest recent rise of the working set, held as
                                  headroom and decaying (MT_PLAN_BURST_HALF_LIFE) */
  guint64 pressure_floor; /* headroom at which pressure was last seen: calm lowers
                                  the headroom fast down to it, then slowly */
  gint64 pressure_time;   /* sample time of that pressure */
  guint64 reserve;        /* learned size - MemTotal (guest kernel reservations), 0 = not yet */

  /* Start grace: a VM just seen is not cut by the fair split, nor below
   * the largest need it showed, while its working set is still rising. */
  gint64 first_seen;  /* first plan that saw it, MT_TIME_NEVER = none yet */
  guint64 grace_need; /* largest need seen during the grace period */

  /* The last resize issued and whether the VM follows it. */
  gint64 last_action; /* when, MT_TIME_NEVER = never */
  gboolean pending;   /* last_target not reached yet */
  /* Feedback's: raised on pressure alone in this pressure episode.  Two
   * booleans share 8 bytes here, so that call_since fits without growing
   * this struct (264 bytes) or MtPlanVm (512), whose layouts
   * docs/benchmarks.md measured. */
  gboolean raised_unproven;
  gint64 call_since;     /* the resize call issued then has not returned
                            yet (the daemon sets and clears it, the planner
                            reads it); MT_TIME_NEVER = none in flight */
  guint64 last_from;     /* size when issued */
  guint64 last_target;   /* total size asked for */
  guint64 best_distance; /* closest |current - last_target| seen */
  gint64 progress_time;  /* when that distance last shrank */

  /* Stuck: did not move toward its target in time; fixed at its size.
   * Why, as numbers (mt_vm_control_stuck_reason() writes the sentence):
   * a 124-byte string here was three copies per VM per tick. */
  gboolean stuck;
  guint32 stuck_kind;    /* MtStuckKind */
  guint64 stuck_size[3]; /* NOT_MOVING: target, size when asked, size then;
                                  VMEM: plugged, requested */
  gint64 stuck_us;       /* NOT_MOVING: the stuck timeout; VMEM: how long the
                                  unplug had waited */
  gint64 stuck_since;
  gint64 retry_at;   /* unmark and try again then */
  guint stuck_count; /* consecutive marks, for the back-off */

  /* virtio-mem unplug stall: the balloon takes over shrinks for a while. */
  gboolean vmem_stalled;
  gint64 vmem_wait_since;    /* plugged > requested since */
  guint64 vmem_wait_plugged; /* plugged then (or least seen since) */
  gint64 vmem_retry_at;

  /* Cold page cache: the last reclaim request (plan time), MT_TIME_NEVER = none;
   * the page cache's level since it last rose by MT_PLAN_COLD_READ, and when. */
  gint64 reclaim_time;
  guint64 cache_base;
  gint64 cache_rise_time;

  /* Page reporting tuning (planner-tune.c): idle since (sample time),
   * MT_TIME_NEVER = not idle; the guest's own tunables from before memtided
   * first changed them, 0 = none kept. */
  gint64 idle_since;
  guint32 tune_saved_delay_ms;
  guint32 tune_saved_divisor;

  /* Stall budget (planner-budget.c): the time the guest stalled (its
   * PSI some total), summed with decay, the policy's stall-window as
   * time constant (µs); the guest's total and the sample time it was
   * last brought up to.  The largest sudden rise of the working set that
   * stalled the guest, in the current half hour ([0], since rise_epoch)
   * and the one before ([1]): what a VM is grown ahead of.  MiB (rounded
   * up, at most 64 GiB), 0 = none: this state is copied three times per
   * VM per plan. */
  float stall_avg;
  guint16 rise_mib[2];
  guint64 stall_total;
  gint64 stall_time;
  gint64 rise_epoch;
} MtVmControl;

void mt_vm_control_init (MtVmControl *c);

/* ---- Per-VM and host models --------------------------------------------- */

typedef struct {
  MtVmRing ring;
  MtVmControl control;
} MtVmModel;

MtVmModel *mt_vm_model_new (void);
void mt_vm_model_free (MtVmModel *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtVmModel, mt_vm_model_free)

void mt_vm_model_init (MtVmModel *vm);

/* Append; FALSE (and ignored) when older than the latest sample: an
 * out-of-order sample would turn counter deltas negative. */
gboolean mt_vm_model_push (MtVmModel *vm, const MtVmSample *s);
guint mt_vm_model_len (const MtVmModel *vm);
/* The newest sample; NULL before the first. */
const MtVmSample *mt_vm_model_latest (const MtVmModel *vm);
/* Time of the sample `age` pushes ago (0 = newest); MT_TIME_NEVER past
 * the end of the ring. */
gint64 mt_vm_model_time (const MtVmModel *vm, guint age);

/* Data older than max_age µs counts as none (source NONE, fresh FALSE). */
void mt_vm_model_derive (const MtVmModel *vm, gint64 now, gint64 max_age, MtVmDerived *out);

typedef struct {
  MtHostRing ring;
} MtHostModel;

void mt_host_model_init (MtHostModel *host);
gboolean mt_host_model_push (MtHostModel *host, const MtHostSample *s);
guint mt_host_model_len (const MtHostModel *host);
const MtHostSample *mt_host_model_nth (const MtHostModel *host, guint age);
