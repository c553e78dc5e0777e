/* test-triggers.c: the event triggers on guest agent reports (triggers.c):
 * each trigger, its thresholds on both sides, the stall share's base
 * report, the virtio-mem after-shrink exception, the rate limit and the
 * one plan within it for a run-out that sped up, a reboot, and hostile
 * numbers. */
#include <math.h>
#include "triggers.h"

#define MS(x) ((guint64) (x) *1000)
#define S(x)  ((guint64) (x) *G_USEC_PER_SEC)
/* Host time: anything, as long as it moves like the guest's here. */
#define HOST(mono) ((gint64) (mono) + S (1000))

typedef struct {
  MtTriggers t;
  MtVmControl c;
  MtTriggerVm vm;
} Fixture;

static void
fixture_init (Fixture *f)
{
  mt_triggers_init (&f->t);
  mt_vm_control_init (&f->c);
  f->vm = (MtTriggerVm){
    .pressure_target = 1.0,
    .has_vmem = FALSE,
    .control = &f->c,
    .can_plan = TRUE,
  };
}

/* A calm guest: 1 GiB, 512 MiB available, no pressure, no OOM kill. */
static MtTriggerReport
calm (guint64 mono_us)
{
  return (MtTriggerReport){
    .mono_us = mono_us,
    .psi_trigger = FALSE,
    .psi_some_avg10 = 0.0,
    .psi_some_total_us = 0,
    .mem_total = MT_GIB,
    .mem_available = 512 * MT_MIB,
    .oom_kill = 0,
  };
}

static MtTrigger
check_at (Fixture *f, const MtTriggerReport *r, gint64 now)
{
  MtTrigger out;

  mt_triggers_check (&f->t, r, &f->vm, now, &out);
  /* Invariants of every answer. */
  g_assert_true (!out.plan || out.kind != MT_TRIGGER_NONE);
  g_assert_true (!(out.plan && out.limited));
  g_assert_true (out.kind == MT_TRIGGER_RUNOUT || isnan (out.runout_rate));
  return out;
}

static MtTrigger
check (Fixture *f, const MtTriggerReport *r)
{
  return check_at (f, r, HOST (r->mono_us));
}

static void
assert_why (const MtTrigger *t, const char *expected)
{
  g_autofree char *why = mt_trigger_describe (t);

  g_assert_cmpstr (why, ==, expected);
}

static void
test_calm (void)
{
  Fixture f;

  fixture_init (&f);
  for (guint i = 0; i < 10; i++) {
    MtTriggerReport r = calm (S (i));
    MtTrigger t = check (&f, &r);

    g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
    g_assert_false (t.plan);
    g_assert_false (t.limited);
    g_assert_true (isnan (t.psi_now));
    g_assert_null (mt_trigger_describe (&t));
    if (i > 0)
      g_assert_cmpfloat (t.stall, ==, 0.0);
  }
}

/* avg10 above the target and above the previous report's. */
static void
test_pressure (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  fixture_init (&f);
  /* At the target is not above it. */
  r = calm (S (1));
  r.psi_some_avg10 = 1.0;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);

  /* Just above and rising: plans, in today's words. */
  r = calm (S (3));
  r.psi_some_avg10 = 1.01;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  g_assert_true (t.plan);
  g_assert_cmpfloat (t.psi, ==, 1.01);
  g_assert_cmpfloat (t.target, ==, 1.0);
  g_assert_true (isnan (t.psi_now)); /* a periodic report: the sample keeps avg10 */
  assert_why (&t, "pressure 1.01% > target 1.00%");

  /* The same again, or lower but above the target: not rising. */
  r = calm (S (5));
  r.psi_some_avg10 = 1.01;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
  r = calm (S (7));
  r.psi_some_avg10 = 1.005;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);

  /* Rising again. */
  r = calm (S (9));
  r.psi_some_avg10 = 3.1;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  g_assert_true (t.plan);
  assert_why (&t, "pressure 3.10% > target 1.00%");

  /* The first report with PSI above the target counts as rising; one
   * without PSI forgets the level. */
  fixture_init (&f);
  r = calm (S (1));
  r.psi_some_avg10 = 5.0;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_PRESSURE);
  r = calm (S (3));
  r.psi_some_avg10 = NAN;
  r.psi_some_total_us = MT_UNKNOWN;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (5));
  r.psi_some_avg10 = 2.0;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_PRESSURE);

  /* Another target. */
  fixture_init (&f);
  f.vm.pressure_target = 10.0;
  r = calm (S (1));
  r.psi_some_avg10 = 9.99;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (3));
  r.psi_some_avg10 = 10.5;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  assert_why (&t, "pressure 10.50% > target 10.00%");
}

/* The guest's PSI trigger: pressure now = the larger of avg10 and the
 * stall share since the report before. */
static void
test_psi_trigger (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  fixture_init (&f);
  r = calm (S (10));
  r.psi_some_total_us = S (2);
  check (&f, &r);
  /* 300 ms stalled in the second since: 30%, avg10 still 0. */
  r = calm (S (11));
  r.psi_trigger = TRUE;
  r.psi_some_total_us = S (2) + MS (300);
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PSI);
  g_assert_true (t.plan);
  g_assert_cmpfloat_with_epsilon (t.stall, 30.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (t.psi_now, 30.0, 1e-9);
  g_assert_cmpfloat (t.psi, ==, 0.0);
  assert_why (&t, "PSI trigger in the guest: pressure 30.00% > target 1.00%");

  /* avg10 higher than the stall share: avg10 is the pressure now. */
  r = calm (S (13));
  r.psi_trigger = TRUE;
  r.psi_some_avg10 = 7.5;
  r.psi_some_total_us = S (2) + MS (320); /* 1% over 2 s */
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PSI);
  g_assert_cmpfloat_with_epsilon (t.stall, 1.0, 1e-9);
  g_assert_cmpfloat (t.psi_now, ==, 7.5);
  g_assert_true (t.plan); /* 2 s after the last event plan */

  /* Exactly at the target, both ways: no plan. */
  fixture_init (&f);
  r = calm (S (10));
  check (&f, &r);
  r = calm (S (11));
  r.psi_trigger = TRUE;
  r.psi_some_total_us = MS (10); /* 1.00% */
  t = check (&f, &r);
  g_assert_cmpfloat_with_epsilon (t.psi_now, 1.0, 1e-12);
  g_assert_true (t.psi_now <= 1.0);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
  /* Just above. */
  r = calm (S (12));
  r.psi_trigger = TRUE;
  r.psi_some_total_us = MS (10) + 10001; /* 1.0001% */
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PSI);

  /* A trigger report without history: avg10 alone decides. */
  fixture_init (&f);
  r = calm (S (10));
  r.psi_trigger = TRUE;
  r.psi_some_avg10 = 0.5;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
  g_assert_true (isnan (t.stall));
  g_assert_cmpfloat (t.psi_now, ==, 0.5);
  fixture_init (&f);
  r.psi_some_avg10 = 4.0;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PSI);
  assert_why (&t, "PSI trigger in the guest: pressure 4.00% > target 1.00%");

  /* A trigger report without PSI at all. */
  fixture_init (&f);
  r = calm (S (10));
  r.psi_trigger = TRUE;
  r.psi_some_avg10 = NAN;
  r.psi_some_total_us = MT_UNKNOWN;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
  g_assert_true (isnan (t.psi_now));
}

/* A trigger report 100 ms after a periodic one measures its stall share
 * from the report before that, the newer one at least 200 ms back. */
static void
test_stall_base (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  fixture_init (&f);
  r = calm (S (10));
  r.psi_some_total_us = MS (100);
  check (&f, &r);
  r = calm (S (11));
  r.psi_some_total_us = MS (200);
  check (&f, &r);
  /* 100 ms later: from S(10), 240 ms stalled over 1.1 s. */
  r = calm (S (11) + MS (100));
  r.psi_trigger = TRUE;
  r.psi_some_total_us = MS (340);
  t = check (&f, &r);
  g_assert_cmpfloat_with_epsilon (t.stall, 100.0 * 0.240 / 1.1, 1e-9);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PSI);

  /* One µs short of 200 ms after S(11) + 100 ms: still from S(11) (the
   * newer of the two before, S(11) + 100 ms, is too close). */
  r = calm (S (11) + MS (300) - 1);
  r.psi_some_total_us = MS (400);
  t = check (&f, &r);
  g_assert_cmpfloat_with_epsilon (t.stall, 100.0 * 0.200 / (0.300 - 1e-6), 1e-6);

  /* Exactly 200 ms after the newer report: from that one. */
  fixture_init (&f);
  r = calm (S (10));
  r.psi_some_total_us = 0;
  check (&f, &r);
  r = calm (S (11));
  r.psi_some_total_us = MS (10);
  check (&f, &r);
  r = calm (S (11) + MS (200));
  r.psi_some_total_us = MS (110);
  t = check (&f, &r);
  g_assert_cmpfloat_with_epsilon (t.stall, 50.0, 1e-9);

  /* Two reports within 200 ms with no older one: no share. */
  fixture_init (&f);
  r = calm (S (10));
  check (&f, &r);
  r = calm (S (10) + MS (150));
  r.psi_trigger = TRUE;
  r.psi_some_total_us = MS (150);
  t = check (&f, &r);
  g_assert_true (isnan (t.stall));
  g_assert_cmpfloat (t.psi_now, ==, 0.0);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);

  /* More stall than time (a guest with many CPUs, or a liar): 100%. */
  fixture_init (&f);
  r = calm (S (10));
  check (&f, &r);
  r = calm (S (11));
  r.psi_some_total_us = S (5);
  t = check (&f, &r);
  g_assert_cmpfloat (t.stall, ==, 100.0);
}

static void
test_oom (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  fixture_init (&f);
  /* The first report is the baseline, whatever it says. */
  r = calm (S (1));
  r.oom_kill = 5;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (3));
  r.oom_kill = 5;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (5));
  r.oom_kill = 7;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_OOM);
  g_assert_cmpuint (t.oom_new, ==, 2);
  g_assert_true (t.plan);
  assert_why (&t, "OOM kill in the guest (2 new)");

  /* An OOM kill wins over pressure, and over a PSI trigger (whose
   * pressure still goes to the plan's sample). */
  r = calm (S (7));
  r.oom_kill = 8;
  r.psi_some_avg10 = 20.0;
  r.psi_trigger = TRUE;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_OOM);
  g_assert_cmpuint (t.oom_new, ==, 1);
  g_assert_cmpfloat (t.psi_now, ==, 20.0);
  assert_why (&t, "OOM kill in the guest (1 new)");

  /* A report without the counter keeps the baseline. */
  r = calm (S (9));
  r.oom_kill = MT_UNKNOWN;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (11));
  r.oom_kill = 9;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_OOM);
  g_assert_cmpuint (t.oom_new, ==, 1);
}

/* Used memory (MemTotal - MemAvailable) rising at >= 32 MiB/s with
 * MemAvailable gone within 3 s at that rate. */
static void
test_runout (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 600 * MT_MIB;
  check (&f, &r);
  /* 100 MiB/s, 500 MiB left: gone in 5 s, not within 3. */
  r = calm (S (11));
  r.mem_available = 500 * MT_MIB;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  /* 300 MiB/s, 200 MiB left. */
  r = calm (S (12));
  r.mem_available = 200 * MT_MIB;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_true (t.plan);
  g_assert_cmpfloat (t.runout_rate, ==, 300.0 * MT_MIB);
  g_assert_cmpuint (t.available, ==, 200 * MT_MIB);
  assert_why (&t, "used memory rises at 300 MiB/s: 200 MiB available, gone in 0.7 s");

  /* The thresholds, both sides: exactly 32 MiB/s with exactly 3 s left. */
  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 128 * MT_MIB;
  check (&f, &r);
  r = calm (S (11));
  r.mem_available = 96 * MT_MIB; /* 32 MiB/s, 3.0 s left */
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_cmpfloat (t.runout_rate, ==, (double) MT_TRIGGER_RUNOUT_RATE);
  assert_why (&t, "used memory rises at 32 MiB/s: 96 MiB available, gone in 3.0 s");

  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 128 * MT_MIB;
  check (&f, &r);
  r = calm (S (11));
  r.mem_available = 96 * MT_MIB + 1; /* one byte more than 3 s */
  r.mem_total = MT_GIB + 1;          /* the same rise */
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);

  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 128 * MT_MIB;
  check (&f, &r);
  r = calm (S (11));
  r.mem_available = 96 * MT_MIB + 1; /* one byte/s short of 32 MiB/s */
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);

  /* A balloon shrink lowers MemTotal and MemAvailable together: no rise. */
  fixture_init (&f);
  r = calm (S (10));
  check (&f, &r);
  r = calm (S (11));
  r.mem_total -= 400 * MT_MIB;
  r.mem_available -= 400 * MT_MIB;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);

  /* Measured over at most 5 s. */
  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 600 * MT_MIB;
  check (&f, &r);
  r = calm (S (15));
  r.mem_available = 200 * MT_MIB; /* 80 MiB/s over exactly 5 s */
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_cmpfloat (t.runout_rate, ==, 80.0 * MT_MIB);
  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 600 * MT_MIB;
  check (&f, &r);
  r = calm (S (15) + 1);
  r.mem_available = 200 * MT_MIB;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);

  /* Over at least 200 ms: a report 100 ms after the last measures from
   * the one before. */
  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 600 * MT_MIB;
  check (&f, &r);
  r = calm (S (11));
  r.mem_available = 560 * MT_MIB;
  check (&f, &r);
  r = calm (S (11) + MS (100));
  r.mem_available = 150 * MT_MIB; /* 450 MiB over 1.1 s; from S(11) 4100 MiB/s */
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_cmpfloat_with_epsilon (t.runout_rate, 450.0 * MT_MIB / 1.1, 1.0);

  /* A pressure trigger wins, and the rate is then not measured. */
  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 600 * MT_MIB;
  check (&f, &r);
  r = calm (S (11));
  r.mem_available = 100 * MT_MIB;
  r.psi_some_avg10 = 5.0;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  g_assert_true (isnan (t.runout_rate));
}

/* A VM with virtio-mem: while a shrink is under way and 3 s after it,
 * used memory climbs (offlined blocks leave MemAvailable before
 * MemTotal) and says nothing. */
static void
test_after_shrink (void)
{
  struct {
    gboolean vmem, pending, grow;
    gint64 since_action; /* µs from the action to the second report */
    gboolean fires;
  } cases[] = {
    { TRUE, FALSE, FALSE, S (1), FALSE },
    { TRUE, FALSE, FALSE, S (3) - 1, FALSE },
    { TRUE, FALSE, FALSE, S (3), TRUE },
    { TRUE, TRUE, FALSE, S (60), FALSE }, /* still under way */
    { TRUE, FALSE, TRUE, S (1), TRUE },   /* a grow */
    { FALSE, FALSE, FALSE, S (1), TRUE }, /* the balloon: MemTotal falls with it */
    { FALSE, TRUE, FALSE, S (1), TRUE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    Fixture f;
    MtTriggerReport r;
    MtTrigger t;

    fixture_init (&f);
    f.vm.has_vmem = cases[i].vmem;
    f.c.pending = cases[i].pending;
    f.c.last_from = 2 * MT_GIB;
    f.c.last_target = cases[i].grow ? 3 * MT_GIB : MT_GIB;
    f.c.last_action = HOST (S (11)) - cases[i].since_action;
    r = calm (S (10));
    r.mem_available = 600 * MT_MIB;
    check (&f, &r);
    r = calm (S (11));
    r.mem_available = 200 * MT_MIB;
    t = check (&f, &r);
    g_test_message ("case %u", i);
    g_assert_cmpint (t.kind, ==, cases[i].fires ? MT_TRIGGER_RUNOUT : MT_TRIGGER_NONE);
  }

  /* Without a control state (none passed) there is no exception. */
  {
    Fixture f;
    MtTriggerReport r;

    fixture_init (&f);
    f.vm.has_vmem = TRUE;
    f.vm.control = NULL;
    r = calm (S (10));
    r.mem_available = 600 * MT_MIB;
    check (&f, &r);
    r = calm (S (11));
    r.mem_available = 200 * MT_MIB;
    g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_RUNOUT);
  }
}

/* At most one event plan per VM per MT_TRIGGER_EVENT_PLAN_GAP. */
static void
test_rate_limit (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  fixture_init (&f);
  r = calm (S (10));
  r.psi_some_avg10 = 2.0;
  t = check_at (&f, &r, S (100));
  g_assert_true (t.plan);
  r = calm (S (10) + MS (500));
  r.psi_some_avg10 = 3.0;
  t = check_at (&f, &r, S (100) + MS (500));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  g_assert_false (t.plan);
  g_assert_true (t.limited);
  /* One µs short of the gap, then exactly the gap (from the plan, not
   * from the limited report). */
  r = calm (S (11) - 1);
  r.psi_some_avg10 = 4.0;
  t = check_at (&f, &r, S (100) + MT_TRIGGER_EVENT_PLAN_GAP - 1);
  g_assert_true (t.limited);
  r = calm (S (11));
  r.psi_some_avg10 = 5.0;
  t = check_at (&f, &r, S (100) + MT_TRIGGER_EVENT_PLAN_GAP);
  g_assert_true (t.plan);
  g_assert_false (t.limited);

  /* The host clock going back: limited, never a wrap. */
  r = calm (S (12));
  r.psi_some_avg10 = 6.0;
  t = check_at (&f, &r, S (50));
  g_assert_true (t.limited);

  /* Nothing to plan from yet: no plan, not limited, and the gap is not
   * used up; the history still moves on. */
  fixture_init (&f);
  f.vm.can_plan = FALSE;
  r = calm (S (10));
  r.psi_some_avg10 = 2.0;
  t = check_at (&f, &r, S (100));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  g_assert_false (t.plan);
  g_assert_false (t.limited);
  f.vm.can_plan = TRUE;
  r = calm (S (10) + MS (100));
  r.psi_some_avg10 = 2.0; /* not rising: the report before was recorded */
  g_assert_cmpint (check_at (&f, &r, S (100) + MS (100)).kind, ==, MT_TRIGGER_NONE);
  r.mono_us += MS (100);
  r.psi_some_avg10 = 2.5;
  t = check_at (&f, &r, S (100) + MS (200));
  g_assert_true (t.plan);
}

/* A guest of `total` bytes with `avail` of them available, at guest
 * time `mono`. */
static MtTriggerReport
running (guint64 mono, guint64 total, guint64 avail)
{
  MtTriggerReport r = calm (mono);

  r.mem_total = total;
  r.mem_available = avail;
  return r;
}

/* Within the gap, one more plan for a run-out rising at least twice as
 * fast as the one the last event plan answered, and only one. */
static void
test_runout_faster (void)
{
  const guint64 g4 = 4 * MT_GIB;
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  /* 1000 MiB/s with 1000 MiB left: planned.  Then 2000 MiB/s (measured
   * from that report): planned again, and said so. */
  fixture_init (&f);
  r = running (S (10), g4, 2000 * MT_MIB);
  check (&f, &r);
  r = running (S (11), g4, 1000 * MT_MIB);
  t = check (&f, &r);
  g_assert_true (t.plan);
  g_assert_false (t.faster);
  g_assert_true (isnan (t.last_runout));
  r = running (S (11) + MS (500), g4, 0);
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_true (t.plan);
  g_assert_true (t.faster);
  g_assert_false (t.limited);
  g_assert_cmpfloat (t.runout_rate, ==, 2000.0 * MT_MIB);
  g_assert_cmpfloat (t.last_runout, ==, 1000.0 * MT_MIB);
  assert_why (&t, "used memory rises at 2000 MiB/s, 2.0 times the 1000 MiB/s the last plan "
                  "answered: 0 MiB available, gone in 0.0 s");
  /* Only once within the gap, however fast it rises then. */
  r = running (S (11) + MS (800), g4 + MT_GIB, 0);
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_true (t.limited);
  /* The gap counts from the latest plan; after it an ordinary plan,
   * which may be followed up again. */
  r = running (S (12) + MS (500), g4 + 2 * MT_GIB, 0);
  t = check (&f, &r);
  g_assert_true (t.plan);
  g_assert_false (t.faster);
  r = running (S (12) + MS (800), g4 + 3 * MT_GIB, 0);
  t = check (&f, &r);
  g_assert_true (t.plan);
  g_assert_true (t.faster);

  /* Two bytes/s short of twice: limited. */
  fixture_init (&f);
  r = running (S (10), g4, 2000 * MT_MIB);
  check (&f, &r);
  r = running (S (11), g4, 1000 * MT_MIB);
  g_assert_true (check (&f, &r).plan);
  r = running (S (11) + MS (500), g4, 1);
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_true (t.limited);
  g_assert_false (t.faster);

  /* Twice as fast, but less than MT_TRIGGER_MIN_SPAN of host time after
   * the plan: limited. */
  fixture_init (&f);
  r = running (S (10), g4, 2000 * MT_MIB);
  check (&f, &r);
  r = running (S (11), g4, 1000 * MT_MIB);
  g_assert_true (check (&f, &r).plan);
  r = running (S (11) + MS (500), g4, 0);
  t = check_at (&f, &r, HOST (S (11)) + MT_TRIGGER_MIN_SPAN - 1);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_true (t.limited);

  /* The last event plan answered pressure, not a run-out: nothing to
   * compare with, limited. */
  fixture_init (&f);
  r = running (S (10), g4, 2000 * MT_MIB);
  check (&f, &r);
  r = running (S (11), g4, 2000 * MT_MIB);
  r.psi_some_avg10 = 2.0;
  g_assert_true (check (&f, &r).plan);
  r = running (S (11) + MS (500), g4, 0);
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_true (t.limited);
}

/* A reboot forgets the guest's counters and levels, not the rate limit. */
static void
test_reboot (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  fixture_init (&f);
  r = calm (S (100));
  r.oom_kill = 10;
  r.psi_some_avg10 = 20.0;
  r.psi_some_total_us = S (30);
  r.mem_available = 800 * MT_MIB;
  t = check_at (&f, &r, S (1000));
  g_assert_true (t.plan);

  mt_triggers_reset (&f.t);
  /* The new boot's clock and counters start again: a first report is
   * only a baseline, even with more kills than before the reboot. */
  r = calm (S (3));
  r.oom_kill = 12;
  r.psi_some_avg10 = 0.0;
  r.psi_some_total_us = MS (1);
  t = check_at (&f, &r, S (1010));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
  g_assert_true (isnan (t.stall));
  r = calm (S (4));
  r.oom_kill = 13;
  t = check_at (&f, &r, S (1011));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_OOM);
  g_assert_cmpuint (t.oom_new, ==, 1);

  /* Pressure below the level before the reboot counts as rising. */
  fixture_init (&f);
  r = calm (S (100));
  r.psi_some_avg10 = 20.0;
  check_at (&f, &r, S (1000));
  mt_triggers_reset (&f.t);
  r = calm (S (3));
  r.psi_some_avg10 = 5.0;
  t = check_at (&f, &r, S (1000) + MS (500));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  g_assert_true (t.limited); /* the rate limit stays */

  /* Used memory measured across the reboot would be nonsense: none. */
  fixture_init (&f);
  r = calm (S (100));
  r.mem_available = 900 * MT_MIB;
  check_at (&f, &r, S (1000));
  mt_triggers_reset (&f.t);
  r = calm (S (101));
  r.mem_available = 10 * MT_MIB;
  g_assert_cmpint (check_at (&f, &r, S (1001)).kind, ==, MT_TRIGGER_NONE);
}

static void
test_hostile (void)
{
  Fixture f;
  MtTriggerReport r;
  MtTrigger t;

  /* Every number unknown. */
  fixture_init (&f);
  for (guint i = 0; i < 4; i++) {
    r = (MtTriggerReport){
      .mono_us = S (i),
      .psi_trigger = TRUE,
      .psi_some_avg10 = NAN,
      .psi_some_total_us = MT_UNKNOWN,
      .mem_total = MT_UNKNOWN,
      .mem_available = MT_UNKNOWN,
      .oom_kill = MT_UNKNOWN,
    };
    t = check (&f, &r);
    g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
    g_assert_true (isnan (t.psi) && isnan (t.stall) && isnan (t.psi_now));
  }

  /* The stall counter going back: no share, and the trigger falls back
   * to avg10. */
  fixture_init (&f);
  r = calm (S (10));
  r.psi_some_total_us = S (5);
  check (&f, &r);
  r = calm (S (11));
  r.psi_trigger = TRUE;
  r.psi_some_total_us = S (1);
  t = check (&f, &r);
  g_assert_true (isnan (t.stall));
  g_assert_cmpfloat (t.psi_now, ==, 0.0);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);

  /* The OOM counter going back: no trigger, the lower value is the new
   * baseline. */
  fixture_init (&f);
  r = calm (S (10));
  r.oom_kill = 50;
  check (&f, &r);
  r = calm (S (11));
  r.oom_kill = 3;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (12));
  r.oom_kill = 4;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_OOM);
  g_assert_cmpuint (t.oom_new, ==, 1);

  /* MemAvailable above MemTotal: used memory unknown, not recorded. */
  fixture_init (&f);
  r = calm (S (10));
  r.mem_available = 600 * MT_MIB;
  check (&f, &r);
  r = calm (S (11));
  r.mem_available = 2 * MT_GIB;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (11) + MS (50));
  r.mem_available = MT_GIB + 1;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  r = calm (S (11) + MS (100));
  r.mem_available = 100 * MT_MIB; /* measured from S(10) */
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_cmpfloat_with_epsilon (t.runout_rate, 500.0 * MT_MIB / 1.1, 1.0);

  /* The guest clock going back (within a boot the session refuses
   * that; here nothing may wrap): no base. */
  fixture_init (&f);
  r = calm (G_MAXUINT64 - 10);
  r.psi_some_total_us = G_MAXUINT64 - 20;
  r.mem_available = 900 * MT_MIB;
  check (&f, &r);
  r = calm (S (1));
  r.psi_trigger = TRUE;
  r.psi_some_total_us = G_MAXUINT64 - 10;
  r.mem_available = 1;
  t = check (&f, &r);
  g_assert_true (isnan (t.stall));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
  /* And forward from near the end of the range. */
  fixture_init (&f);
  r = calm (G_MAXUINT64 - S (2));
  check (&f, &r);
  r = calm (G_MAXUINT64 - S (1));
  r.mem_available = 0;
  t = check_at (&f, &r, S (100));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_cmpfloat (t.runout_rate, ==, 512.0 * MT_MIB);

  /* Huge sizes and counters: finite answers, sentences that fit. */
  fixture_init (&f);
  r = calm (S (10));
  r.mem_total = G_MAXUINT64 - 1;
  r.mem_available = G_MAXUINT64 - 1;
  r.oom_kill = 0;
  check (&f, &r);
  r = calm (S (10) + MS (200));
  r.mem_total = G_MAXUINT64 - 1;
  r.mem_available = 0;
  r.oom_kill = 0;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_RUNOUT);
  g_assert_true (isfinite (t.runout_rate) && t.runout_rate > 0);
  {
    g_autofree char *why = mt_trigger_describe (&t);

    g_assert_true (g_str_has_prefix (why, "used memory rises at "));
    g_assert_true (g_str_has_suffix (why, " MiB available, gone in 0.0 s"));
  }
  r = calm (S (10) + MS (400));
  r.oom_kill = G_MAXUINT64 - 1;
  t = check_at (&f, &r, HOST (S (20)));
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_OOM);
  g_assert_cmpuint (t.oom_new, ==, G_MAXUINT64 - 1);
  assert_why (&t, "OOM kill in the guest (18446744073709551614 new)");

  /* avg10 that is not a number, or infinite: no pressure. */
  fixture_init (&f);
  r = calm (S (10));
  r.psi_some_avg10 = INFINITY;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_NONE);
  g_assert_true (isnan (t.psi));
  r = calm (S (11));
  r.psi_trigger = TRUE;
  r.psi_some_avg10 = NAN;
  g_assert_cmpint (check (&f, &r).kind, ==, MT_TRIGGER_NONE);
  /* Far above anything real: still one sentence. */
  r = calm (S (12));
  r.psi_some_avg10 = 1e300;
  t = check (&f, &r);
  g_assert_cmpint (t.kind, ==, MT_TRIGGER_PRESSURE);
  {
    g_autofree char *why = mt_trigger_describe (&t);

    g_assert_true (g_str_has_prefix (why, "pressure 1000000"));
    g_assert_true (g_str_has_suffix (why, "% > target 1.00%"));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/triggers/calm", test_calm);
  g_test_add_func ("/triggers/pressure", test_pressure);
  g_test_add_func ("/triggers/psi-trigger", test_psi_trigger);
  g_test_add_func ("/triggers/stall-base", test_stall_base);
  g_test_add_func ("/triggers/oom", test_oom);
  g_test_add_func ("/triggers/runout", test_runout);
  g_test_add_func ("/triggers/after-shrink", test_after_shrink);
  g_test_add_func ("/triggers/rate-limit", test_rate_limit);
  g_test_add_func ("/triggers/runout-faster", test_runout_faster);
  g_test_add_func ("/triggers/reboot", test_reboot);
  g_test_add_func ("/triggers/hostile", test_hostile);
  return g_test_run ();
}
