/* policy.h: what the policy files say, resolved for one VM (MtVmPolicy)
 * and for the host (MtHostPolicy).  Shared contract between config.c
 * (which fills it from GKeyFile and domain metadata) and planner.c
 * (which only reads it).
 */
#pragma once

#include <glib.h>

typedef enum {
  MT_MECH_AUTO = 0,   /* virtio-mem for whole blocks, balloon for the rest */
  MT_MECH_VIRTIO_MEM, /* virtio-mem only */
  MT_MECH_BALLOON,    /* balloon only */
  MT_MECH_NONE,       /* observe, never resize */
} MtMechanism;

/* What memtided does with a guest's free page reporting tunables (the
 * memtide kernel patches' delay_ms and budget_divisor). */
typedef enum {
  MT_PAGE_REPORTING_KEEP = 0,       /* never write them */
  MT_PAGE_REPORTING_FAST,           /* the fast values, always */
  MT_PAGE_REPORTING_FAST_WHEN_IDLE, /* the fast values while the guest is idle */
} MtPageReporting;

/* The guest kernel's ranges and stock values (mm/page_reporting.c with
 * the memtide patches). */
#define MT_REPORTING_DELAY_MS_MIN   10
#define MT_REPORTING_DELAY_MS_MAX   60000
#define MT_REPORTING_DELAY_MS_STOCK 2000
#define MT_REPORTING_DIVISOR_MIN    1
#define MT_REPORTING_DIVISOR_MAX    1024
#define MT_REPORTING_DIVISOR_STOCK  16

const char *mt_page_reporting_to_string (MtPageReporting m);
/* Inverse ("keep", "fast", "fast-when-idle"); FALSE for anything else. */
gboolean mt_page_reporting_from_string (const char *s, MtPageReporting *out);

const char *mt_mechanism_to_string (MtMechanism m);
/* Inverse of mt_mechanism_to_string ("auto", "virtio-mem", "balloon",
 * "none"); FALSE for anything else. */
gboolean mt_mechanism_from_string (const char *s, MtMechanism *out);

/* A size that is either absolute bytes or a percentage of the domain's
 * maximum memory (boot memory + virtio-mem device size). */
typedef struct {
  gboolean is_percent;
  guint64 bytes;  /* when !is_percent */
  double percent; /* when is_percent, 0..100 */
} MtSize;

/* Resolve against the domain's maximum memory.  A percentage rounds
 * down to whole bytes; an absolute size is returned as is (it may exceed
 * domain_max: clamping to what the domain can hold is the planner's job). */
guint64 mt_size_resolve (const MtSize *size, guint64 domain_max);

#define MT_SHARES_MIN 1
#define MT_SHARES_MAX 1000000

typedef struct {
  MtSize min;             /* never smaller than this */
  MtSize max;             /* never larger than this */
  MtSize headroom;        /* initial/minimum headroom above the working set
                                    (percent = of the working set) */
  guint64 headroom_min;   /* the headroom is never below this, bytes */
  double pressure_target; /* PSI some avg10 percent the feedback aims below */
  MtMechanism mechanism;
  gboolean allow_drop_caches;          /* the agent may fall back to drop_caches when
                                    memory.reclaim is unavailable; off by default
                                    because it empties the whole guest page cache */
  gboolean reclaim_cold_cache;         /* ask the agent to reclaim page cache the guest has
                                    not used lately (memory.reclaim) while it is calm */
  gboolean block_hints;                /* ask virtio-mem only for what the guest's per-block
                                    hint says it can give back (auto mechanism) */
  MtPageReporting page_reporting;      /* steer the guest's reporting tunables */
  guint32 shares;                      /* weight in the fair split, 1..1000000 (here, beside
                                    the other 4-byte fields: no padding) */
  gint64 page_reporting_fast_delay;    /* µs, the fast delay_ms (10 ms .. 60 s) */
  guint64 page_reporting_fast_divisor; /* the fast budget_divisor (1 .. 1024) */
  double stall_budget;                 /* percent of the time the guest may stall (PSI some),
                                    measured over stall_window; 0 = no budget */
  gint64 stall_window;                 /* µs: the time constant of that measure */
} MtVmPolicy;

/* min and max in bytes for a domain whose maximum memory is domain_max.
 * max is capped at domain_max; min is capped at max, because min and max
 * may come from different groups or mix percent and absolute sizes, so
 * min > max cannot always be rejected when the files are loaded: the
 * upper bound wins (a guest never gets more than its max). */
void mt_vm_policy_resolve_bounds (const MtVmPolicy *p, guint64 domain_max, guint64 *min_out,
                                  guint64 *max_out);

/* The least an opt-in domain (MtDomainInfo.opt_in: Xen's dom0, where
 * memtided itself and the toolstack run) is ever given, whatever its
 * policy says: a dom0 squeezed below this stops running them. */
#define MT_OPT_IN_FLOOR (G_GUINT64_CONSTANT (512) << 20)

/* Raises @p's min to at least @floor bytes (and max with it when max is
 * lower) for a domain whose maximum memory is domain_max; a domain
 * smaller than @floor is then never shrunk.  Returns whether it changed
 * anything. */
gboolean mt_vm_policy_apply_floor (MtVmPolicy *p, guint64 domain_max, guint64 floor);

typedef struct {
  guint64 reserve;         /* bytes kept free for the host */
  guint64 budget;          /* explicit VM budget in bytes, 0 = derive */
  gint64 tick_interval;    /* µs between planning ticks */
  gint64 stuck_timeout;    /* µs a VM may take to move toward its target */
  guint64 min_change;      /* hysteresis: ignore changes smaller than this */
  guint64 max_shrink_rate; /* bytes per second a VM may be shrunk */
  gboolean dry_run;        /* decide and log, apply nothing */
  gint64 start_grace;      /* µs a new VM is not shrunk below the largest need it
                                    showed (0 = off) */
} MtHostPolicy;

/* Built-in defaults (what an empty policy directory means). */
void mt_vm_policy_init_defaults (MtVmPolicy *p);
void mt_host_policy_init_defaults (MtHostPolicy *p);
