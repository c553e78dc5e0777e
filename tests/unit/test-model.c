/* test-model.c: ring buffers, derived values and unknown handling. */
#include <math.h>
#include <string.h>
#include "model.h"

#define S(x) ((gint64) (x) *G_USEC_PER_SEC)

static MtVmSample
agent_sample (gint64 t, guint64 total, guint64 avail, guint64 free_)
{
  MtVmSample s;

  mt_vm_sample_init (&s, t);
  s.balloon_actual = total;
  s.vmem_plugged = 0;
  s.vmem_requested = 0;
  s.rss = total / 2;
  s.guest_total = total;
  s.guest_available = avail;
  s.guest_free = free_;
  s.from_agent = TRUE;
  s.psi_some_avg10 = 0.0;
  s.psi_full_avg10 = 0.0;
  return s;
}

static void
test_ring_wraps (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();

  g_assert_cmpuint (mt_vm_model_len (vm), ==, 0);
  g_assert_null (mt_vm_model_latest (vm));
  g_assert_cmpint (mt_vm_model_time (vm, 0), ==, MT_TIME_NEVER);
  for (guint i = 0; i < 100; i++) {
    MtVmSample s = agent_sample (S (i), MT_GIB, MT_GIB / 2, MT_GIB / 4);

    g_assert_true (mt_vm_model_push (vm, &s));
    g_assert_cmpuint (mt_vm_model_len (vm), ==, MIN (i + 1, MT_MODEL_RING_CAPACITY));
    g_assert_cmpint (mt_vm_model_latest (vm)->time, ==, S (i));
    g_assert_cmpint (mt_vm_model_time (vm, 0), ==, S (i));
  }
  /* Oldest kept is 100 - capacity; past the end is NULL. */
  g_assert_cmpint (mt_vm_model_time (vm, MT_MODEL_RING_CAPACITY - 1), ==,
                   S (100 - MT_MODEL_RING_CAPACITY));
  g_assert_cmpint (mt_vm_model_time (vm, 1), ==, S (98));
  g_assert_cmpint (mt_vm_model_time (vm, MT_MODEL_RING_CAPACITY), ==, MT_TIME_NEVER);
}

static void
test_ring_rejects_old (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample a = agent_sample (S (10), MT_GIB, MT_GIB / 2, 0);
  MtVmSample b = agent_sample (S (5), MT_GIB, MT_GIB / 2, 0);
  MtVmSample c = agent_sample (S (10), MT_GIB, MT_GIB / 3, 0);
  MtHostModel host;
  MtHostSample h1, h2;

  g_assert_true (mt_vm_model_push (vm, &a));
  g_assert_false (mt_vm_model_push (vm, &b));
  g_assert_true (mt_vm_model_push (vm, &c));
  g_assert_cmpuint (mt_vm_model_len (vm), ==, 2);

  mt_host_model_init (&host);
  mt_host_sample_init (&h1, S (3));
  mt_host_sample_init (&h2, S (2));
  h1.mem_available = 5 * MT_GIB;
  g_assert_true (mt_host_model_push (&host, &h1));
  g_assert_false (mt_host_model_push (&host, &h2));
  g_assert_cmpuint (mt_host_model_len (&host), ==, 1);
  g_assert_cmpuint (mt_host_model_nth (&host, 0)->mem_available, ==, 5 * MT_GIB);
  g_assert_null (mt_host_model_nth (&host, 1));
  for (guint i = 0; i < 70; i++) {
    mt_host_sample_init (&h1, S (10 + i));
    g_assert_true (mt_host_model_push (&host, &h1));
  }
  g_assert_cmpuint (mt_host_model_len (&host), ==, MT_MODEL_RING_CAPACITY);
  g_assert_cmpint (mt_host_model_nth (&host, 0)->time, ==, S (79));
}

static void
test_derive_empty (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmDerived d;

  mt_vm_model_derive (vm, S (1), S (5), &d);
  g_assert_cmpint (d.source, ==, MT_DATA_NONE);
  g_assert_false (d.fresh);
  g_assert_cmpint (d.time, ==, MT_TIME_NEVER);
  g_assert_cmpuint (d.current, ==, MT_UNKNOWN);
  g_assert_cmpuint (d.used, ==, MT_UNKNOWN);
  g_assert_cmpuint (d.idle, ==, MT_UNKNOWN);
  g_assert_cmpuint (d.vmem_unpluggable, ==, MT_UNKNOWN);
  g_assert_cmpuint (d.reporting_delay_ms, ==, MT_UNKNOWN);
  g_assert_true (isnan (d.psi_some));
  g_assert_true (isnan (d.swap_in_rate));
  g_assert_cmpuint (d.oom_kills_new, ==, 0);
}

static void
test_derive_agent (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample s = agent_sample (S (10), MT_GIB, 600 * MT_MIB, 400 * MT_MIB);
  MtVmDerived d;

  s.vmem_plugged = 512 * MT_MIB;
  s.psi_some_avg10 = 3.5;
  s.usage_vmem = (MtBlockUsage){ 4, 100 * MT_MIB, 50 * MT_MIB, 362 * MT_MIB, 0, 0 };
  s.reporting_delay_ms = 2000;
  s.reporting_budget_divisor = 16;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (11), S (5), &d);
  g_assert_cmpuint (d.reporting_delay_ms, ==, 2000);
  g_assert_cmpuint (d.reporting_divisor, ==, 16);
  /* The block hint: free + movable of the virtio-mem blocks. */
  g_assert_cmpuint (d.vmem_unpluggable, ==, 150 * MT_MIB);
  g_assert_cmpint (d.source, ==, MT_DATA_AGENT);
  g_assert_true (d.fresh);
  g_assert_cmpuint (d.current, ==, MT_GIB + 512 * MT_MIB);
  g_assert_cmpuint (d.used, ==, MT_GIB - 600 * MT_MIB);
  g_assert_cmpuint (d.available, ==, 600 * MT_MIB);
  g_assert_cmpuint (d.idle, ==, 400 * MT_MIB);
  g_assert_cmpfloat (d.psi_some, ==, 3.5);
  /* One sample: no rates, no trend, no OOM delta. */
  g_assert_true (isnan (d.psi_trend));
  g_assert_true (isnan (d.swap_in_rate));
  g_assert_cmpuint (d.oom_kills_new, ==, 0);
}

/* Tunables outside the kernel's ranges are a guest not to steer. */
static void
test_derive_reporting_bounds (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample s = agent_sample (S (10), MT_GIB, 600 * MT_MIB, 400 * MT_MIB);
  MtVmDerived d;

  s.reporting_delay_ms = 9;
  s.reporting_budget_divisor = 16;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (10), S (5), &d);
  g_assert_cmpuint (d.reporting_delay_ms, ==, MT_UNKNOWN);
  g_assert_cmpuint (d.reporting_divisor, ==, MT_UNKNOWN);
  s = agent_sample (S (11), MT_GIB, 600 * MT_MIB, 400 * MT_MIB);
  s.reporting_delay_ms = 60000;
  s.reporting_budget_divisor = 1025;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (11), S (5), &d);
  g_assert_cmpuint (d.reporting_delay_ms, ==, MT_UNKNOWN);
  s = agent_sample (S (12), MT_GIB, 600 * MT_MIB, 400 * MT_MIB);
  s.reporting_delay_ms = 60000;
  s.reporting_budget_divisor = 1;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (12), S (5), &d);
  g_assert_cmpuint (d.reporting_delay_ms, ==, 60000);
  g_assert_cmpuint (d.reporting_divisor, ==, 1);
}

static void
test_derive_balloon_fallbacks (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample s = agent_sample (S (1), MT_GIB, MT_UNKNOWN, 300 * MT_MIB);
  MtVmDerived d;

  /* Balloon stats without "available": unused memory stands in; no PSI
   * from the balloon even if the field holds garbage. */
  s.from_agent = FALSE;
  s.psi_some_avg10 = 50.0;
  s.vmem_plugged = MT_UNKNOWN;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (2), S (5), &d);
  g_assert_cmpint (d.source, ==, MT_DATA_BALLOON);
  g_assert_cmpuint (d.used, ==, MT_GIB - 300 * MT_MIB);
  g_assert_cmpuint (d.current, ==, MT_GIB);
  g_assert_true (isnan (d.psi_some));
}

static void
test_derive_unknown_and_garbage (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample s;
  MtVmDerived d;

  /* Hypervisor data only: size known, guest unknown. */
  mt_vm_sample_init (&s, S (1));
  s.balloon_actual = MT_GIB;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (1), S (5), &d);
  g_assert_cmpint (d.source, ==, MT_DATA_NONE);
  g_assert_true (d.fresh);
  g_assert_cmpuint (d.current, ==, MT_GIB);
  g_assert_cmpuint (d.used, ==, MT_UNKNOWN);

  /* A guest claiming more available than total is not believed. */
  s = agent_sample (S (2), MT_GIB, 2 * MT_GIB, 3 * MT_GIB);
  s.psi_some_avg10 = NAN;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (2), S (5), &d);
  g_assert_cmpint (d.source, ==, MT_DATA_NONE);
  g_assert_cmpuint (d.used, ==, MT_UNKNOWN);
  g_assert_cmpuint (d.idle, ==, MT_UNKNOWN);
  g_assert_true (isnan (d.psi_some));

  /* PSI outside 0..100 is garbage too. */
  s = agent_sample (S (3), MT_GIB, MT_GIB / 2, 0);
  s.psi_some_avg10 = 1e9;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (3), S (5), &d);
  g_assert_cmpint (d.source, ==, MT_DATA_AGENT);
  g_assert_true (isnan (d.psi_some));
}

static void
test_derive_stale (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample s = agent_sample (S (10), MT_GIB, MT_GIB / 2, 0);
  MtVmDerived d;

  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (15), S (5), &d);
  g_assert_true (d.fresh);
  g_assert_cmpint (d.source, ==, MT_DATA_AGENT);
  mt_vm_model_derive (vm, S (15) + 1, S (5), &d);
  g_assert_false (d.fresh);
  g_assert_cmpint (d.source, ==, MT_DATA_NONE);
  /* Still tells what it last saw. */
  g_assert_cmpuint (d.used, ==, MT_GIB / 2);
  g_assert_cmpuint (d.current, ==, MT_GIB);
}

static void
test_derive_rates (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmDerived d;

  for (guint i = 0; i < 10; i++) {
    MtVmSample s = agent_sample (S (2 * i), MT_GIB, MT_GIB / 2, 0);

    /* 1 MiB/s swap-in for 8 samples, then 10 MiB in the last 2 s. */
    s.swap_in = i < 9 ? i * 2 * MT_MIB : 16 * MT_MIB + 10 * MT_MIB;
    s.major_faults = 100 * i;
    s.oom_kills = i < 9 ? 2 : 3;
    s.psi_some_avg10 = (double) i; /* +0.5 %/s */
    g_assert_true (mt_vm_model_push (vm, &s));
  }
  mt_vm_model_derive (vm, S (18), S (5), &d);
  g_assert_cmpfloat_with_epsilon (d.swap_in_rate, 5.0 * MT_MIB, 1.0);
  g_assert_cmpfloat_with_epsilon (d.swap_in_rate_avg, 26.0 * MT_MIB / 18.0, 1.0);
  g_assert_cmpfloat_with_epsilon (d.major_fault_rate, 50.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (d.major_fault_rate_avg, 50.0, 1e-9);
  g_assert_cmpuint (d.oom_kills_new, ==, 1);
  g_assert_cmpfloat_with_epsilon (d.psi_trend, 0.5, 1e-9);
}

static void
test_derive_counter_reset (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample a = agent_sample (S (1), MT_GIB, MT_GIB / 2, 0);
  MtVmSample b = agent_sample (S (2), MT_GIB, MT_GIB / 2, 0);
  MtVmSample c = agent_sample (S (3), MT_GIB, MT_GIB / 2, 0);
  MtVmDerived d;

  /* Guest rebooted between a and b: counters start over. */
  a.swap_in = 100 * MT_MIB;
  a.oom_kills = 7;
  b.swap_in = MT_MIB;
  b.oom_kills = 0;
  c.swap_in = 3 * MT_MIB;
  c.oom_kills = MT_UNKNOWN;
  mt_vm_model_push (vm, &a);
  mt_vm_model_push (vm, &b);
  mt_vm_model_derive (vm, S (2), S (5), &d);
  g_assert_true (isnan (d.swap_in_rate));
  g_assert_true (isnan (d.swap_in_rate_avg));
  g_assert_cmpuint (d.oom_kills_new, ==, 0);

  mt_vm_model_push (vm, &c);
  mt_vm_model_derive (vm, S (3), S (5), &d);
  g_assert_cmpfloat_with_epsilon (d.swap_in_rate, 2.0 * MT_MIB, 1.0);
  /* The window stops at the reset. */
  g_assert_cmpfloat_with_epsilon (d.swap_in_rate_avg, 2.0 * MT_MIB, 1.0);
  g_assert_cmpuint (d.oom_kills_new, ==, 0);
}

/* Swap in use, and how fast "used" (+ swap) grows. */
/* While virtio-mem unplugs, the guest's isolated blocks leave
 * MemAvailable before MemTotal: used must not seem to rise then, and
 * shows again once the unplug has ended. */
static void
test_derive_unplug_holds_used (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample s;
  MtVmDerived d;
  const guint64 total = 1536 * MT_MIB;

  s = agent_sample (S (10), total, 1297 * MT_MIB, 1200 * MT_MIB);
  s.balloon_actual = 512 * MT_MIB;
  s.vmem_plugged = s.vmem_requested = MT_GIB;
  mt_vm_model_push (vm, &s);
  /* memtided asks to unplug 736 MiB; 1.3 s later MemAvailable fell by
   * 228 MiB, MemTotal not yet. */
  s = agent_sample (S (11), total, 1069 * MT_MIB, 1000 * MT_MIB);
  s.balloon_actual = 512 * MT_MIB;
  s.vmem_plugged = MT_GIB;
  s.vmem_requested = 288 * MT_MIB;
  mt_vm_model_push (vm, &s);
  s.time = S (12);
  s.guest_available = 1000 * MT_MIB;
  s.vmem_plugged = 800 * MT_MIB;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (12), S (5), &d);
  g_assert_cmpuint (d.used, ==, total - 1297 * MT_MIB);
  g_assert_cmpuint (d.used_growth, ==, 0);
  g_assert_true (d.used_rate <= 0);

  /* Unplug done: used is what the guest says again (a real rise). */
  s = agent_sample (S (13), 800 * MT_MIB, 400 * MT_MIB, 300 * MT_MIB);
  s.balloon_actual = 512 * MT_MIB;
  s.vmem_plugged = s.vmem_requested = 288 * MT_MIB;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (13), S (5), &d);
  g_assert_cmpuint (d.used, ==, 400 * MT_MIB);
  g_assert_cmpuint (d.used_growth, ==, 400 * MT_MIB - (total - 1297 * MT_MIB));
}

/* The hold is bounded by what the unplug still has to take out: an
 * unplug stalled short of its request (unmovable memory) must not hide
 * a job that allocates GiBs meanwhile (the simulator's batch VMs swapped
 * for seconds while the model read their used memory as flat). */
static void
test_derive_unplug_hold_bounded (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample s;
  MtVmDerived d;
  const guint64 total = 2236 * MT_MIB;
  const guint64 used[] = { 369 * MT_MIB, 738 * MT_MIB, 1200 * MT_MIB, 1666 * MT_MIB };

  for (guint i = 0; i < G_N_ELEMENTS (used); i++) {
    s = agent_sample (S (10 + i), total, total - used[i], total - used[i]);
    s.balloon_actual = 1792 * MT_MIB;
    s.vmem_plugged = 256 * MT_MIB;
    /* From the second sample on, an unplug to 46 MiB that stays
     * stalled at 256 MiB: 210 MiB outstanding. */
    s.vmem_requested = i == 0 ? 256 * MT_MIB : 46 * MT_MIB;
    mt_vm_model_push (vm, &s);
  }
  mt_vm_model_derive (vm, S (13), S (5), &d);
  /* At most the 210 MiB outstanding is held back, not the whole rise. */
  g_assert_cmpuint (d.used, ==, 1666 * MT_MIB - 210 * MT_MIB);
  g_assert_cmpuint (d.used_growth, >=, 1000 * MT_MIB);
  g_assert_true (d.used_rate > 0);
}

static void
test_derive_swap_and_rise (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmSample a = agent_sample (S (10), MT_GIB, MT_GIB / 2, 0);
  MtVmSample b = agent_sample (S (12), MT_GIB, MT_GIB / 2 - 64 * MT_MIB, 0);
  MtVmSample c = agent_sample (S (13), MT_GIB, MT_GIB / 2, 0);
  MtVmDerived d;

  mt_vm_model_push (vm, &a);
  mt_vm_model_derive (vm, S (10), S (5), &d);
  g_assert_cmpuint (d.swap_used, ==, MT_UNKNOWN);
  g_assert_true (isnan (d.used_rate));

  /* 64 MiB more used and 36 MiB more swapped in 2 s: 50 MiB/s. */
  a.guest_swap_used = 0;
  b.guest_swap_used = 36 * MT_MIB;
  mt_vm_model_init (vm);
  mt_vm_model_push (vm, &a);
  mt_vm_model_push (vm, &b);
  mt_vm_model_derive (vm, S (12), S (5), &d);
  g_assert_cmpuint (d.swap_used, ==, 36 * MT_MIB);
  g_assert_cmpfloat_with_epsilon (d.used_rate, 50.0 * MT_MIB, 1.0);

  /* Falling; swap unknown in one of the two: not comparable. */
  mt_vm_model_push (vm, &c);
  mt_vm_model_derive (vm, S (13), S (5), &d);
  g_assert_true (isnan (d.used_rate));
  c.time = S (14);
  c.guest_swap_used = 36 * MT_MIB;
  mt_vm_model_init (vm);
  mt_vm_model_push (vm, &b);
  mt_vm_model_push (vm, &c);
  mt_vm_model_derive (vm, S (14), S (5), &d);
  g_assert_cmpfloat_with_epsilon (d.used_rate, -32.0 * MT_MIB, 1.0);
}

/* Balloon stats are refreshed every 2 s and repeated in the 1 s ticks'
 * samples in between: rates compare observations, so a steady rise of
 * 20 MiB/s reads 20 MiB/s every tick (not 0, then 40). */
static void
test_derive_repeated_stats (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmDerived d;

  for (gint t = 0; t <= 8; t++) {
    gint64 seen = t / 2 * 2; /* stats taken at even seconds */
    MtVmSample s = agent_sample (S (t), 4 * MT_GIB, 3 * MT_GIB - (guint64) seen * 20 * MT_MIB, 0);

    s.from_agent = FALSE;
    s.major_faults = (guint64) seen * 100;
    mt_vm_model_push (vm, &s);
    mt_vm_model_derive (vm, S (t), S (5), &d);
    g_assert_cmpint (d.time, ==, S (t));
    g_assert_cmpint (d.observed, ==, S (seen));
    if (t < 2)
      continue;
    g_assert_cmpfloat_with_epsilon (d.used_rate, 20.0 * MT_MIB, 1.0);
    g_assert_cmpfloat_with_epsilon (d.major_fault_rate, 100.0, 0.01);
  }
}

/* A guest that stayed put for 12 s, then rose 100 MiB between two
 * stats refreshes 2 s apart: the rise took 2 s, not 14 (the unchanged
 * numbers were observed again at every refresh, not only at the first
 * sample that showed them). */
static void
test_derive_rise_after_long_steady (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmDerived d;

  for (gint t = 0; t <= 14; t++) {
    guint64 used = t < 14 ? MT_GIB : MT_GIB + 100 * MT_MIB;
    MtVmSample s = agent_sample (S (t), 4 * MT_GIB, 4 * MT_GIB - used, 0);

    s.from_agent = FALSE;
    s.major_faults = t < 14 ? 1000 : 1200;
    mt_vm_model_push (vm, &s);
  }
  mt_vm_model_derive (vm, S (14), S (5), &d);
  g_assert_cmpint (d.observed, ==, S (14));
  /* Against the repeat at most 3 s back (t = 11): 100 MiB / 3 s. */
  g_assert_cmpfloat_with_epsilon (d.used_rate, 100.0 * MT_MIB / 3, 1.0);
  g_assert_cmpfloat_with_epsilon (d.major_fault_rate, 200.0 / 3, 0.01);
}

/* Growth of "used" within MT_MODEL_GROWTH_SPAN, and the kernel reserve
 * (size - MemTotal) once the size has held still long enough. */
static void
test_derive_growth_and_reserve (void)
{
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();
  MtVmDerived d;
  MtVmSample s;

  /* used: 100 MiB, then 300 MiB at t = 3, falling to 250 MiB after. */
  for (gint t = 0; t <= 12; t++) {
    guint64 used = t < 3 ? 100 * MT_MIB : t < 6 ? 300 * MT_MIB : 250 * MT_MIB;

    /* MemFree moves a little in every real report. */
    s =
      agent_sample (S (t), MT_GIB - 42 * MT_MIB, MT_GIB - 42 * MT_MIB - used, (guint64) t * MT_KIB);
    s.balloon_actual = MT_GIB;
    mt_vm_model_push (vm, &s);
    mt_vm_model_derive (vm, S (t), S (5), &d);
    if (t == 0) {
      g_assert_cmpuint (d.used_growth, ==, 0);
      g_assert_cmpuint (d.reserve, ==, MT_UNKNOWN); /* steady for how long? */
    }
    if (t >= 3 && t <= 5)
      g_assert_cmpuint (d.used_growth, ==, 200 * MT_MIB);
    if (t >= 6 && t <= 7)
      g_assert_cmpuint (d.used_growth, ==, 150 * MT_MIB); /* still above t = 1, 2 */
    if (t >= 8)
      g_assert_cmpuint (d.used_growth, ==, 0);
    if (t >= 3)
      g_assert_cmpuint (d.reserve, ==, 42 * MT_MIB);
  }
  /* Resized: MemTotal lags, the reserve is unknown until the size held
   * for a few seconds. */
  s = agent_sample (S (13), MT_GIB - 42 * MT_MIB, 500 * MT_MIB, 0);
  s.balloon_actual = 2 * MT_GIB;
  mt_vm_model_push (vm, &s);
  mt_vm_model_derive (vm, S (13), S (5), &d);
  g_assert_cmpuint (d.reserve, ==, MT_UNKNOWN);
  for (gint t = 14; t <= 17; t++) {
    s = agent_sample (S (t), 2 * MT_GIB - 58 * MT_MIB, MT_GIB, (guint64) t * MT_KIB);
    s.balloon_actual = 2 * MT_GIB;
    mt_vm_model_push (vm, &s);
  }
  mt_vm_model_derive (vm, S (17), S (5), &d);
  g_assert_cmpuint (d.reserve, ==, 58 * MT_MIB);
}

static void
test_control_init (void)
{
  MtVmControl c;
  g_autoptr (MtVmModel) vm = mt_vm_model_new ();

  memset (&c, 0xaa, sizeof c);
  mt_vm_control_init (&c);
  g_assert_false (c.pending);
  g_assert_false (c.stuck);
  g_assert_false (c.vmem_stalled);
  g_assert_cmpuint (c.headroom, ==, 0);
  g_assert_cmpint (c.last_action, ==, MT_TIME_NEVER);
  g_assert_cmpint (vm->control.retry_at, ==, MT_TIME_NEVER);
  g_assert_cmpuint (c.stuck_kind, ==, MT_STUCK_NONE);
}

static void
test_helpers (void)
{
  struct {
    guint64 b;
    const char *s;
  } sizes[] = {
    { 0, "0 B" },
    { 1023, "1023 B" },
    { MT_KIB, "1.0 KiB" },
    { 612 * MT_MIB, "612 MiB" },
    { MT_GIB, "1.0 GiB" },
    { 3 * MT_GIB / 2, "1.5 GiB" },
    { 12 * MT_GIB, "12 GiB" },
    { MT_UNKNOWN, "unknown" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    g_autofree char *s = mt_format_bytes (sizes[i].b);
    g_assert_cmpstr (s, ==, sizes[i].s);
  }
  g_assert_cmpuint (mt_sat_add (G_MAXUINT64 - 1, 5), ==, G_MAXUINT64);
  g_assert_cmpuint (mt_sat_add (1, 2), ==, 3);
  g_assert_cmpuint (mt_sat_sub (1, 2), ==, 0);
  g_assert_cmpuint (mt_sat_mul (G_MAXUINT64 / 2, 3), ==, G_MAXUINT64);
  g_assert_cmpuint (mt_sat_mul (0, G_MAXUINT64), ==, 0);
  g_assert_cmpint (mt_elapsed (10, MT_TIME_NEVER), ==, G_MAXINT64);
  g_assert_cmpint (mt_elapsed (10, 20), ==, 0);
  g_assert_cmpint (mt_elapsed (G_MAXINT64, -10), ==, G_MAXINT64);
  g_assert_cmpint (mt_elapsed (30, 20), ==, 10);
  g_assert_cmpstr (mt_data_source_to_string (MT_DATA_AGENT), ==, "agent");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/model/ring/wraps", test_ring_wraps);
  g_test_add_func ("/model/ring/rejects-old", test_ring_rejects_old);
  g_test_add_func ("/model/derive/empty", test_derive_empty);
  g_test_add_func ("/model/derive/reporting-bounds", test_derive_reporting_bounds);
  g_test_add_func ("/model/derive/agent", test_derive_agent);
  g_test_add_func ("/model/derive/balloon-fallbacks", test_derive_balloon_fallbacks);
  g_test_add_func ("/model/derive/unknown-and-garbage", test_derive_unknown_and_garbage);
  g_test_add_func ("/model/derive/stale", test_derive_stale);
  g_test_add_func ("/model/derive/rates", test_derive_rates);
  g_test_add_func ("/model/derive/counter-reset", test_derive_counter_reset);
  g_test_add_func ("/model/derive/swap-and-rise", test_derive_swap_and_rise);
  g_test_add_func ("/model/derive/unplug-holds-used", test_derive_unplug_holds_used);
  g_test_add_func ("/model/derive/unplug-hold-bounded", test_derive_unplug_hold_bounded);
  g_test_add_func ("/model/derive/repeated-stats", test_derive_repeated_stats);
  g_test_add_func ("/model/derive/rise-after-long-steady", test_derive_rise_after_long_steady);
  g_test_add_func ("/model/derive/growth-and-reserve", test_derive_growth_and_reserve);
  g_test_add_func ("/model/control-init", test_control_init);
  g_test_add_func ("/model/helpers", test_helpers);
  return g_test_run ();
}
