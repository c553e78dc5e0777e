/* policy.c: built-in policy defaults and the small helpers of policy.h.
 *
 * The defaults are what a host with an empty policy directory gets, and
 * policies/default.conf repeats them as comments (a unit test keeps the
 * two in sync), so change both together and docs/policy.md with them.
 */
#define G_LOG_DOMAIN "memtide-policy"

#include <string.h>
#include "policy.h"

static const char *const mechanism_names[] = {
  [MT_MECH_AUTO] = "auto",
  [MT_MECH_VIRTIO_MEM] = "virtio-mem",
  [MT_MECH_BALLOON] = "balloon",
  [MT_MECH_NONE] = "none",
};

static const char *const page_reporting_names[] = {
  [MT_PAGE_REPORTING_KEEP] = "keep",
  [MT_PAGE_REPORTING_FAST] = "fast",
  [MT_PAGE_REPORTING_FAST_WHEN_IDLE] = "fast-when-idle",
};

const char *
mt_page_reporting_to_string (MtPageReporting m)
{
  if ((guint) m >= G_N_ELEMENTS (page_reporting_names))
    return "invalid";
  return page_reporting_names[m];
}

gboolean
mt_page_reporting_from_string (const char *s, MtPageReporting *out)
{
  g_return_val_if_fail (out != NULL, FALSE);

  for (guint i = 0; s != NULL && i < G_N_ELEMENTS (page_reporting_names); i++)
    if (strcmp (s, page_reporting_names[i]) == 0) {
      *out = (MtPageReporting) i;
      return TRUE;
    }
  return FALSE;
}

const char *
mt_mechanism_to_string (MtMechanism m)
{
  if ((guint) m >= G_N_ELEMENTS (mechanism_names))
    return "invalid";
  return mechanism_names[m];
}

gboolean
mt_mechanism_from_string (const char *s, MtMechanism *out)
{
  g_return_val_if_fail (out != NULL, FALSE);

  for (guint i = 0; s != NULL && i < G_N_ELEMENTS (mechanism_names); i++)
    if (strcmp (s, mechanism_names[i]) == 0) {
      *out = (MtMechanism) i;
      return TRUE;
    }
  return FALSE;
}

guint64
mt_size_resolve (const MtSize *size, guint64 domain_max)
{
  g_return_val_if_fail (size != NULL, 0);

  if (!size->is_percent)
    return size->bytes;
  if (size->percent <= 0)
    return 0;
  if (size->percent >= 100)
    return domain_max;

  /* long double keeps 64 bits of mantissa on x86, so a percentage of a
   * multi-TiB domain stays exact to the byte; the cap guards the other
   * platforms against rounding up past domain_max. */
  long double bytes = (long double) domain_max * size->percent / 100.0L;
  if (bytes >= (long double) domain_max)
    return domain_max;
  return (guint64) bytes;
}

void
mt_vm_policy_resolve_bounds (const MtVmPolicy *p, guint64 domain_max, guint64 *min_out,
                             guint64 *max_out)
{
  g_return_if_fail (p != NULL);

  guint64 max = MIN (mt_size_resolve (&p->max, domain_max), domain_max);
  guint64 min = MIN (mt_size_resolve (&p->min, domain_max), max);

  if (min_out != NULL)
    *min_out = min;
  if (max_out != NULL)
    *max_out = max;
}

gboolean
mt_vm_policy_apply_floor (MtVmPolicy *p, guint64 domain_max, guint64 floor)
{
  gboolean changed = FALSE;

  g_return_val_if_fail (p != NULL, FALSE);

  if (mt_size_resolve (&p->min, domain_max) < floor) {
    p->min = (MtSize){ .bytes = floor };
    changed = TRUE;
  }
  /* The floor wins over max: min is capped at max when resolved. */
  if (mt_size_resolve (&p->max, domain_max) < floor) {
    p->max = (MtSize){ .bytes = floor };
    changed = TRUE;
  }
  return changed;
}

void
mt_vm_policy_init_defaults (MtVmPolicy *p)
{
  g_return_if_fail (p != NULL);

  *p = (MtVmPolicy){
    /* A quarter of the domain keeps a squeezed guest bootable and out of
     * the OOM killer; admins with known-small guests lower it per glob. */
    .min = { .is_percent = TRUE, .percent = 25.0 },
    .max = { .is_percent = TRUE, .percent = 100.0 },
    .shares = 1000,
    .headroom = { .is_percent = TRUE, .percent = 10.0 },
    /* 10% of a small guest's working set is a few tens of MiB: less
     * than its hot page cache, so it stalls on every small rise. */
    .headroom_min = 128 * 1024 * 1024,
    /* Senpai-like probing aims at a little pressure, not none: zero
     * pressure means the guest still hoards memory. */
    .pressure_target = 1.0,
    .mechanism = MT_MECH_AUTO,
    .allow_drop_caches = FALSE,
    /* Cold page cache is the largest idle memory a guest holds; free
     * page reporting returns it only once the guest lets go of it. */
    .reclaim_cold_cache = TRUE,
    /* A hint is cheap to follow and a stalled unplug costs stuck-timeout
     * (30 s) before the balloon takes over. */
    .block_hints = TRUE,
    /* The guest's settings are the guest's until the admin says so. */
    .page_reporting = MT_PAGE_REPORTING_KEEP,
    /* 100 ms and the whole free list per pass: an idle guest's freed
     * memory is back on the host within a second or two instead of the
     * stock ~30 s (2 s passes, 1/16 of the free list each). */
    .page_reporting_fast_delay = 100 * 1000,
    .page_reporting_fast_divisor = 1,
    /* 6 s of stall in 10 minutes: a guest that stalls more than that
     * is not shrunk, and is grown ahead of its next rise. */
    .stall_budget = 1.0,
    .stall_window = 10 * 60 * G_USEC_PER_SEC,
  };
}

void
mt_host_policy_init_defaults (MtHostPolicy *p)
{
  g_return_if_fail (p != NULL);

  *p = (MtHostPolicy){
    .reserve = G_GUINT64_CONSTANT (1) << 30, /* 1 GiB */
    .budget = 0,
    .tick_interval = 1 * G_USEC_PER_SEC,
    .stuck_timeout = 30 * G_USEC_PER_SEC,
    .min_change = G_GUINT64_CONSTANT (16) << 20,       /* 16 MiB */
    .max_shrink_rate = G_GUINT64_CONSTANT (256) << 20, /* 256 MiB/s */
    .dry_run = FALSE,
    .start_grace = 0,
  };
}
