/* model.c: ring buffers of samples and the values derived from them. */
#define G_LOG_DOMAIN "memtide-model"

#include <math.h>
#include "model.h"
#include "policy.h"
#include "reporting.h"

/* PSI trend: enough points to smooth one noisy report, few enough to
 * follow a rise within seconds at a 1 s report period. */
#define TREND_POINTS 8

gsize
mt_format_bytes_buf (char buf[MT_FORMAT_BYTES_LEN], guint64 bytes)
{
  static const char units[][4] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  guint u, ip, tenths = 0;
  gsize len = 0;

  if (bytes == MT_UNKNOWN)
    return (gsize) g_strlcpy (buf, "unknown", MT_FORMAT_BYTES_LEN);
  /* Integers only, no printf: this runs for every size in every reason. */
  u = bytes < 1024 ? 0 : (guint) (63 - __builtin_clzll (bytes)) / 10;
  ip = (guint) (bytes >> (10 * u)); /* 1 .. 1023 (0 .. 1023 for bytes) */
  /* One decimal only where it carries information; always rounded down. */
  if (u > 0 && ip < 10)
    tenths = (guint) (((bytes & ((G_GUINT64_CONSTANT (1) << (10 * u)) - 1)) * 10) >> (10 * u));
  if (ip >= 1000)
    buf[len++] = (char) ('0' + ip / 1000);
  if (ip >= 100)
    buf[len++] = (char) ('0' + ip / 100 % 10);
  if (ip >= 10)
    buf[len++] = (char) ('0' + ip / 10 % 10);
  buf[len++] = (char) ('0' + ip % 10);
  if (u > 0 && ip < 10) {
    buf[len++] = '.';
    buf[len++] = (char) ('0' + tenths);
  }
  buf[len++] = ' ';
  for (const char *p = units[u]; *p; p++)
    buf[len++] = *p;
  buf[len] = '\0';
  return len;
}

char *
mt_format_bytes (guint64 bytes)
{
  char buf[MT_FORMAT_BYTES_LEN];

  mt_format_bytes_buf (buf, bytes);
  return g_strdup (buf);
}

const char *
mt_data_source_to_string (MtDataSource s)
{
  switch (s) {
  case MT_DATA_AGENT:
    return "agent";
  case MT_DATA_BALLOON:
    return "balloon stats";
  case MT_DATA_NONE:
  default:
    return "none";
  }
}

void
mt_vm_control_init (MtVmControl *c)
{
  *c = (MtVmControl){
    .headroom = 0,
    .feedback_time = MT_TIME_NEVER,
    .calm_since = MT_TIME_NEVER,
    .shrink_since = MT_TIME_NEVER,
    .raise_time = MT_TIME_NEVER,
    .pressure_time = MT_TIME_NEVER,
    .first_seen = MT_TIME_NEVER,
    .last_action = MT_TIME_NEVER,
    .call_since = MT_TIME_NEVER,
    .progress_time = MT_TIME_NEVER,
    .stuck_since = MT_TIME_NEVER,
    .retry_at = MT_TIME_NEVER,
    .reclaim_time = MT_TIME_NEVER,
    .cache_rise_time = MT_TIME_NEVER,
    .idle_since = MT_TIME_NEVER,
    .vmem_wait_since = MT_TIME_NEVER,
    .vmem_retry_at = MT_TIME_NEVER,
    .stall_total = MT_UNKNOWN,
    .stall_time = MT_TIME_NEVER,
    .rise_epoch = MT_TIME_NEVER,
  };
}

/* ---- rings -------------------------------------------------------------- */

/* Slot of the sample `age` pushes ago, for a ring whose next write goes
 * to `head`. */
static guint
ring_slot (guint head, guint age)
{
  return (head + MT_MODEL_RING_CAPACITY - 1 - age) % MT_MODEL_RING_CAPACITY;
}

static void
ring_advance (guint *head, guint *len)
{
  *head = (*head + 1) % MT_MODEL_RING_CAPACITY;
  if (*len < MT_MODEL_RING_CAPACITY)
    (*len)++;
}

void
mt_vm_model_init (MtVmModel *vm)
{
  g_return_if_fail (vm != NULL);
  vm->ring.head = 0;
  vm->ring.len = 0;
  vm->ring.prev_oom_kills = MT_UNKNOWN;
  mt_vm_control_init (&vm->control);
}

MtVmModel *
mt_vm_model_new (void)
{
  MtVmModel *vm = g_new0 (MtVmModel, 1);

  mt_vm_model_init (vm);
  return vm;
}

void
mt_vm_model_free (MtVmModel *vm)
{
  g_free (vm);
}

guint
mt_vm_model_len (const MtVmModel *vm)
{
  g_return_val_if_fail (vm != NULL, 0);
  return vm->ring.len;
}

const MtVmSample *
mt_vm_model_latest (const MtVmModel *vm)
{
  g_return_val_if_fail (vm != NULL, NULL);
  return vm->ring.len > 0 ? &vm->ring.latest : NULL;
}

/* age 0 = newest; NULL past the end. */
static const MtVmRecord *
record_nth (const MtVmModel *vm, guint age)
{
  if (age >= vm->ring.len)
    return NULL;
  return &vm->ring.records[ring_slot (vm->ring.head, age)];
}

gint64
mt_vm_model_time (const MtVmModel *vm, guint age)
{
  const MtVmRecord *r;

  g_return_val_if_fail (vm != NULL, MT_TIME_NEVER);
  r = record_nth (vm, age);
  return r != NULL ? r->time : MT_TIME_NEVER;
}

static gboolean
psi_valid (double v)
{
  return isfinite (v) && v >= 0.0 && v <= 100.0;
}

/* The same guest numbers in consecutive samples are one observation:
 * balloon stats are refreshed every few seconds (libvirt's stats
 * period) and repeated in every tick's sample meanwhile.  Timed at its
 * first sample, a rate between observations is right; between samples
 * it would be zero one tick and double the next. */
static gboolean
same_guest_numbers (const MtVmSample *a, const MtVmSample *b)
{
  return a->guest_total == b->guest_total && a->guest_available == b->guest_available
         && a->guest_free == b->guest_free && a->guest_cache == b->guest_cache
         && a->swap_in == b->swap_in && a->swap_out == b->swap_out
         && a->major_faults == b->major_faults && a->guest_swap_used == b->guest_swap_used
         && a->from_agent == b->from_agent;
}

static guint64
sample_current (const MtVmSample *s)
{
  if (s->balloon_actual == MT_UNKNOWN)
    return MT_UNKNOWN;
  return mt_sat_add (s->balloon_actual, s->vmem_plugged == MT_UNKNOWN ? 0 : s->vmem_plugged);
}

/* Guest used memory (+ swap in use when known); MT_UNKNOWN when the
 * guest's numbers are missing or contradict each other. */
static guint64
sample_used (const MtVmSample *s)
{
  guint64 avail = s->guest_available != MT_UNKNOWN ? s->guest_available : s->guest_free;

  if (s->guest_total == MT_UNKNOWN || avail == MT_UNKNOWN || avail > s->guest_total)
    return MT_UNKNOWN;
  if (s->guest_swap_used == MT_UNKNOWN)
    return s->guest_total - avail;
  /* One below "unknown" at most: a lying guest's swap is still a number. */
  return MIN (mt_sat_add (s->guest_total - avail, s->guest_swap_used), MT_UNKNOWN - 1);
}

static void
record_from_sample (MtVmRecord *r, const MtVmSample *s, const MtVmSample *older)
{
  *r = (MtVmRecord){
    .time = s->time,
    .used = sample_used (s),
    .current = sample_current (s),
    .swap_in = s->swap_in,
    .major_faults = s->major_faults,
    .psi_some = s->from_agent && psi_valid (s->psi_some_avg10) ? (float) s->psi_some_avg10 : NAN,
  };
  if (s->guest_swap_used != MT_UNKNOWN)
    r->flags |= MT_VM_RECORD_SWAP_KNOWN;
  if (older != NULL && same_guest_numbers (s, older))
    r->flags |= MT_VM_RECORD_REPEATS;
}

/* Whether two records' `used` can be compared: both known, both with or
 * both without swap. */
static gboolean
used_comparable (const MtVmRecord *a, const MtVmRecord *b)
{
  return a->used != MT_UNKNOWN && b->used != MT_UNKNOWN
         && (a->flags & MT_VM_RECORD_SWAP_KNOWN) == (b->flags & MT_VM_RECORD_SWAP_KNOWN);
}

/* What a virtio-mem unplug under way in s still has to take out:
 * plugged - requested, 0 when none is under way or unknown. */
static guint64
unplug_outstanding (const MtVmSample *s)
{
  if (s->vmem_requested == MT_UNKNOWN || s->vmem_plugged == MT_UNKNOWN
      || s->vmem_requested >= s->vmem_plugged)
    return 0;
  return s->vmem_plugged - s->vmem_requested;
}

/* While virtio-mem unplugs, the guest isolates the blocks it takes out:
 * their free pages leave MemFree and MemAvailable before the memory
 * leaves MemTotal, so "used" seems to rise (seen on real guests:
 * MemAvailable -228 MiB in 1.3 s of a 736 MiB unplug, and a plan that
 * grew the balloon back "as it rises").  So used is held at most at
 * what it was before (held_before: the previous record, itself held),
 * but only by as much as the unplug still has to take out: the guest
 * isolates nothing else, and a rise beyond that is real.  Unbounded,
 * the hold hid every rise for as long as an unplug stayed short of its
 * request, which one blocked by unmovable memory does until the planner
 * cancels it after stuck-timeout: the simulator's batch VMs swapped
 * through jobs that allocate GiBs in seconds. */
static guint64
unplug_hold (guint64 used, guint64 held_before, const MtVmSample *s)
{
  guint64 outstanding = unplug_outstanding (s);
  guint64 lowest = used > outstanding ? used - outstanding : 0;

  if (outstanding == 0 || held_before == MT_UNKNOWN || used == MT_UNKNOWN)
    return used;
  return MAX (MIN (used, held_before), lowest);
}

static void
unplug_cap_used (const MtVmModel *vm, MtVmRecord *r, const MtVmSample *s)
{
  const MtVmRecord *prev = vm->ring.len > 0 ? record_nth (vm, 0) : NULL;

  if (prev != NULL && used_comparable (r, prev))
    r->used = unplug_hold (r->used, prev->used, s);
}

gboolean
mt_vm_model_push (MtVmModel *vm, const MtVmSample *s)
{
  const MtVmSample *last;

  g_return_val_if_fail (vm != NULL, FALSE);
  g_return_val_if_fail (s != NULL, FALSE);

  last = mt_vm_model_latest (vm);
  if (last != NULL && s->time < last->time)
    return FALSE;
  record_from_sample (&vm->ring.records[vm->ring.head], s, last);
  unplug_cap_used (vm, &vm->ring.records[vm->ring.head], s);
  vm->ring.prev_oom_kills = last != NULL ? last->oom_kills : MT_UNKNOWN;
  vm->ring.latest = *s;
  ring_advance (&vm->ring.head, &vm->ring.len);
  return TRUE;
}

void
mt_host_model_init (MtHostModel *host)
{
  g_return_if_fail (host != NULL);
  host->ring.head = 0;
  host->ring.len = 0;
}

guint
mt_host_model_len (const MtHostModel *host)
{
  g_return_val_if_fail (host != NULL, 0);
  return host->ring.len;
}

const MtHostSample *
mt_host_model_nth (const MtHostModel *host, guint age)
{
  g_return_val_if_fail (host != NULL, NULL);
  if (age >= host->ring.len)
    return NULL;
  return &host->ring.samples[ring_slot (host->ring.head, age)];
}

gboolean
mt_host_model_push (MtHostModel *host, const MtHostSample *s)
{
  const MtHostSample *last;

  g_return_val_if_fail (host != NULL, FALSE);
  g_return_val_if_fail (s != NULL, FALSE);

  last = mt_host_model_nth (host, 0);
  if (last != NULL && s->time < last->time)
    return FALSE;
  host->ring.samples[host->ring.head] = *s;
  ring_advance (&host->ring.head, &host->ring.len);
  return TRUE;
}

/* ---- derived values ----------------------------------------------------- */

typedef guint64 (*CounterFunc) (const MtVmRecord *r);

static guint64
get_swap_in (const MtVmRecord *r)
{
  return r->swap_in;
}
static guint64
get_major_faults (const MtVmRecord *r)
{
  return r->major_faults;
}

/* Rate of a cumulative counter between two samples; NAN when either is
 * unknown or the counter went down (guest reboot, agent restart). */
static double
counter_rate (const MtVmRecord *newer, const MtVmRecord *older, CounterFunc get)
{
  guint64 a, b;

  if (newer == NULL || older == NULL || newer->time <= older->time)
    return NAN;
  a = get (newer);
  b = get (older);
  if (a == MT_UNKNOWN || b == MT_UNKNOWN || a < b)
    return NAN;
  return (double) (a - b) * G_USEC_PER_SEC / (double) (newer->time - older->time);
}

/* Over the window: back to the oldest sample the counter is continuous
 * with (a reset in between cuts the window there). */
static double
counter_rate_avg (const MtVmModel *vm, CounterFunc get)
{
  const MtVmRecord *latest = record_nth (vm, 0);
  const MtVmRecord *oldest = NULL;
  guint64 prev;

  if (latest == NULL || get (latest) == MT_UNKNOWN)
    return NAN;
  prev = get (latest);
  for (guint age = 1; age < vm->ring.len; age++) {
    const MtVmRecord *r = record_nth (vm, age);
    guint64 v = get (r);

    if (v == MT_UNKNOWN || v > prev)
      break;
    prev = v;
    oldest = r;
  }
  return counter_rate (latest, oldest, get);
}

/* Least-squares slope of PSI some avg10 over the last few agent reports. */
static double
psi_trend (const MtVmModel *vm)
{
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  gint64 t0 = 0;
  guint n = 0;

  for (guint age = 0; age < vm->ring.len && n < TREND_POINTS; age++) {
    const MtVmRecord *r = record_nth (vm, age);
    double x, y = r->psi_some;

    if (isnan (y))
      continue;
    if (n == 0)
      t0 = r->time;
    x = (double) (r->time - t0) / G_USEC_PER_SEC;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    n++;
  }
  if (n < 2 || n * sxx - sx * sx <= 0.0)
    return NAN;
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

#define USED_RATE_MIN_SPAN (G_USEC_PER_SEC * 9 / 10)
/* The size must be steady this long before a MemTotal says what the
 * guest kernel keeps of it: balloon stats are refreshed every 2 s. */
#define RESERVE_STEADY_SPAN (3 * G_USEC_PER_SEC)

/* Balloon statistics are refreshed every 2 s, agent reports every 1 s:
 * numbers repeated for longer than this were observed again, unchanged,
 * not just repeated by libvirt. */
#define OBSERVATION_SPAN_MAX (3 * G_USEC_PER_SEC)

/* Age of the first sample of the observation the sample at `age` shows
 * (see same_guest_numbers()), but none before `not_before`: an older
 * observation that a newer one compares with was still true then.
 * Dated at its first sample after a guest that stayed put for 15 s, a
 * rise in the last 2 s would read as a rise over 17. */
static guint
observation_start (const MtVmModel *vm, guint age, gint64 not_before)
{
  const MtVmRecord *r = record_nth (vm, age), *older;

  while (r != NULL && (r->flags & MT_VM_RECORD_REPEATS)
         && (older = record_nth (vm, age + 1)) != NULL && older->time >= not_before) {
    r = older;
    age++;
  }
  return age;
}

static double
used_rate (const MtVmRecord *newer, const MtVmRecord *older)
{
  if (newer == NULL || older == NULL || newer->time <= older->time
      || !used_comparable (newer, older))
    return NAN;
  return ((double) newer->used - (double) older->used) * G_USEC_PER_SEC
         / (double) (newer->time - older->time);
}

/* How much "used" rose within MT_MODEL_GROWTH_SPAN before the latest
 * observation: now minus the least seen. */
static guint64
used_growth (const MtVmModel *vm, const MtVmRecord *obs)
{
  guint64 least = obs->used;

  if (obs->used == MT_UNKNOWN)
    return 0;
  for (guint age = 0; age < vm->ring.len; age++) {
    const MtVmRecord *r = record_nth (vm, age);

    if (obs->time - r->time > MT_MODEL_GROWTH_SPAN)
      break;
    if (used_comparable (r, obs))
      least = MIN (least, r->used);
  }
  return obs->used - least;
}

/* size - MemTotal, when the guest saw the size it has now: the size was
 * the same for RESERVE_STEADY_SPAN before the observation first
 * appeared.  Right after a resize MemTotal lags and says nothing. */
static guint64
kernel_reserve (const MtVmModel *vm, const MtVmSample *latest, const MtVmRecord *obs)
{
  guint64 cur = sample_current (latest);

  if (cur == MT_UNKNOWN || latest->guest_total == MT_UNKNOWN || latest->guest_total > cur)
    return MT_UNKNOWN;
  for (guint age = 1; age < vm->ring.len; age++) {
    const MtVmRecord *r = record_nth (vm, age);

    if (r->current != cur)
      return MT_UNKNOWN;
    if (obs->time - r->time >= RESERVE_STEADY_SPAN)
      return cur - latest->guest_total;
  }
  return MT_UNKNOWN;
}

void
mt_vm_model_derive (const MtVmModel *vm, gint64 now, gint64 max_age, MtVmDerived *out)
{
  const MtVmSample *s;
  const MtVmRecord *base, *obs, *obs_prev;
  guint64 avail;

  g_return_if_fail (vm != NULL);
  g_return_if_fail (out != NULL);

  *out = (MtVmDerived){
    .source = MT_DATA_NONE,
    .time = MT_TIME_NEVER,
    .observed = MT_TIME_NEVER,
    .balloon_actual = MT_UNKNOWN,
    .vmem_plugged = MT_UNKNOWN,
    .vmem_requested = MT_UNKNOWN,
    .rss = MT_UNKNOWN,
    .current = MT_UNKNOWN,
    .vmem_unpluggable = MT_UNKNOWN,
    .reporting_delay_ms = MT_UNKNOWN,
    .reporting_divisor = MT_UNKNOWN,
    .total = MT_UNKNOWN,
    .available = MT_UNKNOWN,
    .used = MT_UNKNOWN,
    .idle = MT_UNKNOWN,
    .swap_used = MT_UNKNOWN,
    .cache = MT_UNKNOWN,
    .inactive_file = MT_UNKNOWN,
    .used_rate = NAN,
    .used_growth = 0,
    .reserve = MT_UNKNOWN,
    .psi_some = NAN,
    .psi_some_total = MT_UNKNOWN,
    .psi_trend = NAN,
    .swap_in_rate = NAN,
    .swap_in_rate_avg = NAN,
    .major_fault_rate = NAN,
    .major_fault_rate_avg = NAN,
    .oom_kills_new = 0,
  };

  s = mt_vm_model_latest (vm);
  if (s == NULL)
    return;
  /* Rates compare observations (the first sample of each), not samples:
   * see same_guest_numbers(). */
  {
    guint age = observation_start (vm, 0, MT_TIME_NEVER);

    obs = record_nth (vm, age);
    obs_prev = record_nth (vm, age + 1);
    if (obs_prev != NULL)
      obs_prev = record_nth (vm, observation_start (vm, age + 1, obs->time - OBSERVATION_SPAN_MAX));
  }

  out->time = s->time;
  out->observed = obs->time;
  out->fresh = mt_elapsed (now, s->time) <= max_age;
  out->balloon_actual = s->balloon_actual;
  out->vmem_plugged = s->vmem_plugged;
  out->vmem_requested = s->vmem_requested;
  out->rss = s->rss;
  out->current = sample_current (s);
  out->vmem_unpluggable = mt_sample_vmem_unpluggable (s);
  /* Out of the kernel's range is a guest not to be steered. */
  if (s->reporting_delay_ms >= MT_REPORTING_DELAY_MS_MIN
      && s->reporting_delay_ms <= MT_REPORTING_DELAY_MS_MAX
      && s->reporting_budget_divisor >= MT_REPORTING_DIVISOR_MIN
      && s->reporting_budget_divisor <= MT_REPORTING_DIVISOR_MAX) {
    out->reporting_delay_ms = s->reporting_delay_ms;
    out->reporting_divisor = s->reporting_budget_divisor;
  }

  /* Guest numbers that contradict each other are a lying or confused
   * guest: treat them as unknown rather than guess. */
  out->total = s->guest_total;
  avail = s->guest_available != MT_UNKNOWN ? s->guest_available : s->guest_free;
  if (s->guest_total != MT_UNKNOWN && avail != MT_UNKNOWN && avail <= s->guest_total) {
    out->available = avail;
    out->used = s->guest_total - avail;
    /* Held while virtio-mem unplugs (unplug_hold()). */
    if (obs->time == s->time)
      out->used = unplug_hold (out->used, obs->used, s);
  }
  if (s->guest_free != MT_UNKNOWN && s->guest_total != MT_UNKNOWN
      && s->guest_free <= s->guest_total)
    out->idle = s->guest_free;
  out->swap_used = s->guest_swap_used;
  if (s->guest_cache != MT_UNKNOWN && s->guest_total != MT_UNKNOWN
      && s->guest_cache <= s->guest_total) {
    out->cache = s->guest_cache;
    /* Lazily freed anonymous pages (MADV_FREE) sit on the inactive
       * file list too: Inactive(file) may exceed Cached. */
    if (s->from_agent && s->guest_inactive_file != MT_UNKNOWN)
      out->inactive_file = MIN (s->guest_inactive_file, s->guest_cache);
  }
  out->can_reclaim = s->from_agent && s->can_reclaim;
  /* An agent event can push a sample a fraction of a second after the
   * tick's: over so short a span, jitter in MemAvailable becomes a huge
   * slope (seen on real guests: +800 MiB of "rise" for a 300 MiB burst).
   * Measure the rate over at least USED_RATE_MIN_SPAN. */
  for (guint age = 1; (base = record_nth (vm, age)) != NULL; age++)
    if (obs->time - base->time >= USED_RATE_MIN_SPAN) {
      base = record_nth (vm, observation_start (vm, age, obs->time - OBSERVATION_SPAN_MAX));
      break;
    }
  out->used_rate = used_rate (obs, base);
  /* A report that planned at once because MemAvailable runs out measured
   * the rise of used memory over its own, shorter span: a ramp that
   * began within the last second shows there at its real pace, and the
   * rise lead needs that pace, not its average with the calm second
   * before. */
  out->running_out = s->runout_rate > 0 && obs->time == s->time;
  if (out->running_out)
    out->used_rate = isfinite (out->used_rate) ? MAX (out->used_rate, (double) s->runout_rate)
                                               : (double) s->runout_rate;
  out->used_growth = used_growth (vm, obs);
  out->reserve = kernel_reserve (vm, s, obs);

  if (s->from_agent && psi_valid (s->psi_some_avg10))
    out->psi_some = s->psi_some_avg10;
  if (s->from_agent)
    out->psi_some_total = s->psi_some_total;
  out->psi_trend = psi_trend (vm);
  out->swap_in_rate = counter_rate (obs, obs_prev, get_swap_in);
  out->swap_in_rate_avg = counter_rate_avg (vm, get_swap_in);
  out->major_fault_rate = counter_rate (obs, obs_prev, get_major_faults);
  out->major_fault_rate_avg = counter_rate_avg (vm, get_major_faults);
  if (s->oom_kills != MT_UNKNOWN && vm->ring.prev_oom_kills != MT_UNKNOWN
      && s->oom_kills > vm->ring.prev_oom_kills)
    out->oom_kills_new = s->oom_kills - vm->ring.prev_oom_kills;

  if (out->fresh && out->used != MT_UNKNOWN)
    out->source = s->from_agent ? MT_DATA_AGENT : MT_DATA_BALLOON;
}
