/* test-squeezed.c: the simulator's XAPI squeezed baseline on small
 * hand-made hosts, against the properties of squeezed's algorithm
 * (docs/benchmarks.md, "Baselines"): one gamma for every domain, targets
 * within [dynamic-min, dynamic-max], memory freed before any is given,
 * a domain that does not move declared stuck after 5 s and left out, and
 * the host free target kept. */
#include <math.h>
#include <string.h>
#include "sim.h"
#include "baselines/squeezed.h"

#define HOST_BASE 2048.0 /* MiB the host keeps for itself */
#define KIB       (1.0 / 1024.0)

typedef struct {
  SimScenario sc;
  SimWorld w;
  gpointer q;
  gint frozen; /* a VM whose balloon driver ignores every target, or -1 */
} Host;

/* VMs of the given sizes (MiB, all boot memory as for every baseline),
 * each with a steady 256 MiB working set; `avail` MiB for the VMs. */
static void
host_init (Host *h, double avail, const double *size, const double *start, guint n)
{
  memset (h, 0, sizeof *h);
  g_strlcpy (h->sc.name, "hand-made", sizeof h->sc.name);
  h->sc.duration = 120;
  h->sc.host_base = HOST_BASE;
  h->sc.host_total = HOST_BASE + avail;
  h->sc.host_swap = 4096;
  for (guint i = 0; i < n; i++) {
    SimVmSpec *s = &h->sc.vms[i];

    *s = (SimVmSpec){ .boot = size[i], .swap = 1024, .hot_cache = 0.25 };
    s->start = start != NULL ? start[i] : 0;
    g_snprintf (s->name, sizeof s->name, "vm-%u", i);
    sim_load_init (&s->load, (guint) h->sc.duration + 2);
    for (guint t = 0; t < s->load.n; t++)
      s->load.ws[t] = 256;
  }
  h->sc.n_vms = n;
  sim_world_init (&h->w, &h->sc, TRUE);
  h->q = sim_policy_squeezed.init (&h->w, NULL, NULL);
  g_assert_nonnull (h->q);
  h->frozen = -1;
}

static void
host_clear (Host *h)
{
  sim_policy_squeezed.free (h->q);
  sim_world_clear (&h->w);
  sim_scenario_clear (&h->sc);
}

static void
host_step (Host *h)
{
  sim_world_step (&h->w);
  sim_policy_squeezed.step (h->q, &h->w);
  if (h->frozen >= 0)
    h->w.vm[h->frozen].balloon_cmd_at = G_MAXDOUBLE;
}

static double
dmin (const Host *h, guint i)
{
  return sim_squeezed_dynamic_min (&h->w.vm[i]);
}

static double
dmax (const Host *h, guint i)
{
  return sim_squeezed_dynamic_max (&h->w.vm[i]);
}

static double
size (const Host *h, guint i)
{
  return sim_vm_size (&h->w.vm[i]);
}

static double
target (const Host *h, guint i)
{
  return sim_squeezed_target (h->q, i);
}

/* (target - dynamic-min) / (dynamic-max - dynamic-min) */
static double
gamma_of (const Host *h, guint i)
{
  return (target (h, i) - dmin (h, i)) / (dmax (h, i) - dmin (h, i));
}

static void
assert_targets_in_range (const Host *h)
{
  for (guint i = 0; i < h->w.n; i++) {
    if (!h->w.vm[i].running)
      continue;
    g_assert_cmpfloat (target (h, i), >=, dmin (h, i));
    g_assert_cmpfloat (target (h, i), <=, dmax (h, i));
  }
}

/* Each target is dynamic-min plus gamma's share truncated to whole KiB. */
static void
assert_same_gamma (const Host *h, guint a, guint b)
{
  double eps = KIB / MIN (dmax (h, a) - dmin (h, a), dmax (h, b) - dmin (h, b));

  g_assert_cmpfloat (fabs (gamma_of (h, a) - gamma_of (h, b)), <=, eps);
}

static void
assert_at_target (const Host *h, guint i)
{
  g_assert_cmpfloat (fabs (size (h, i) - target (h, i)), <=, SIM_SQUEEZED_INACCURACY);
}

/* Settled: at most a few KiB of rounding above the host target, never below. */
static void
assert_free_at_host_target (const Host *h)
{
  double free_mib = sim_squeezed_host_free (&h->w);

  g_assert_cmpfloat (free_mib, >=, SIM_SQUEEZED_HOST_TARGET - 1e-9);
  g_assert_cmpfloat (free_mib, <=, SIM_SQUEEZED_HOST_TARGET + h->w.n * 9 * KIB + 1e-9);
}

/* Three VMs of different sizes on a host that cannot hold them all:
 * every one is squeezed to the same fraction of its range. */
static void
test_equal_gamma (void)
{
  static const double sizes[] = { 2048, 4096, 8192 };
  Host h;

  host_init (&h, 9000, sizes, NULL, G_N_ELEMENTS (sizes));
  while (h.w.now < 60) {
    host_step (&h);
    assert_targets_in_range (&h);
    /* The balance thread sleeps before its first check. */
    if (h.w.now < 10 - 1e-6)
      g_assert_cmpuint (h.w.m.actions, ==, 0);
  }
  g_assert_false (sim_squeezed_balancing (h.q));
  g_assert_cmpuint (h.w.m.actions, >=, 3);
  for (guint i = 0; i < h.w.n; i++) {
    assert_at_target (&h, i);
    g_assert_cmpfloat (target (&h, i), <, dmax (&h, i));
    g_assert_cmpfloat (target (&h, i), >, dmin (&h, i));
  }
  assert_same_gamma (&h, 0, 1);
  assert_same_gamma (&h, 1, 2);
  assert_free_at_host_target (&h);
  host_clear (&h);
}

/* One VM small, one large, same limits: the large one gives memory first,
 * the small one is raised only once that is done, and the host's free
 * memory never drops below the target on the way (it would if both
 * moved at once: a balloon deflates twice as fast as it inflates). */
static void
test_free_before_give (void)
{
  static const double sizes[] = { 4096, 4096 };
  double raised_at = -1, lowest_free = G_MAXDOUBLE;
  Host h;

  host_init (&h, 6000, sizes, NULL, G_N_ELEMENTS (sizes));
  h.w.vm[0].balloon = h.w.vm[0].balloon_target = 1024;
  while (h.w.now < 60) {
    host_step (&h);
    assert_targets_in_range (&h);
    lowest_free = MIN (lowest_free, sim_squeezed_host_free (&h.w));
    if (raised_at < 0 && target (&h, 0) > 1024) {
      raised_at = h.w.now;
      g_assert_cmpfloat (target (&h, 1), <, 4096);
      assert_at_target (&h, 1);
    }
  }
  g_assert_cmpfloat (raised_at, >, 0);
  g_assert_cmpfloat (lowest_free, >=, SIM_SQUEEZED_HOST_TARGET - 1e-9);
  g_assert_false (sim_squeezed_balancing (h.q));
  assert_at_target (&h, 0);
  assert_at_target (&h, 1);
  g_assert_cmpfloat (fabs (target (&h, 0) - target (&h, 1)), <=, KIB);
  assert_free_at_host_target (&h);
  host_clear (&h);
}

/* A third VM starts on a full host; one of the running two has a balloon
 * driver that never moves.  It is declared stuck once it has not moved
 * for more than 5 s (squeezed looks once a second), then left out: the
 * other two share what is left with its memory counted as fixed. */
static void
test_stuck (void)
{
  static const double sizes[] = { 4096, 4096, 4096 };
  static const double starts[] = { 0, 0, 2 };
  const double avail = 9000;
  double asked_at = -1, stuck_at = -1, first_target = 0, stuck_target = 0;
  double gamma, want;
  Host h;

  host_init (&h, avail, sizes, starts, G_N_ELEMENTS (sizes));
  h.frozen = 1;
  while (h.w.now < 60) {
    host_step (&h);
    assert_targets_in_range (&h);
    if (asked_at < 0 && target (&h, 1) < 4096) {
      asked_at = h.w.now;
      first_target = target (&h, 0);
    }
    g_assert_false (sim_squeezed_stuck (h.q, 0));
    g_assert_false (sim_squeezed_stuck (h.q, 2));
    if (stuck_at < 0 && sim_squeezed_stuck (h.q, 1)) {
      stuck_at = h.w.now;
      stuck_target = target (&h, 1);
    }
    if (stuck_at >= 0 && !sim_squeezed_balancing (h.q))
      break;
    if (stuck_at >= 0) {
      /* Out of the split for the rest of this balance. */
      g_assert_true (sim_squeezed_stuck (h.q, 1));
      g_assert_cmpfloat (target (&h, 1), ==, stuck_target);
    }
  }
  /* The start squeezed at once, not at the 10 s balance check. */
  g_assert_cmpfloat (asked_at, >=, 2);
  g_assert_cmpfloat (asked_at, <, 3);
  g_assert_cmpfloat (stuck_at, >, asked_at + SIM_SQUEEZED_STUCK_AFTER);
  g_assert_cmpfloat (stuck_at, <=, asked_at + SIM_SQUEEZED_STUCK_AFTER + 1 + SIM_DT + 1e-6);
  g_assert_false (sim_squeezed_balancing (h.q));
  g_assert_cmpfloat (size (&h, 1), ==, 4096);
  assert_at_target (&h, 0);
  assert_at_target (&h, 2);
  assert_same_gamma (&h, 0, 2);
  /* Squeezed harder than while the stuck VM was counted on. */
  g_assert_cmpfloat (target (&h, 0), <, first_target);
  /* Exactly the proportional split of what the stuck VM leaves. */
  gamma = (avail - 4096 - dmin (&h, 0) - dmin (&h, 2) - 4 * SIM_SQUEEZED_INACCURACY
           - SIM_SQUEEZED_HOST_TARGET)
          / (dmax (&h, 0) - dmin (&h, 0) + dmax (&h, 2) - dmin (&h, 2));
  want = dmin (&h, 0) + gamma * (dmax (&h, 0) - dmin (&h, 0));
  g_assert_cmpfloat (fabs (target (&h, 0) - want), <=, KIB);
  assert_free_at_host_target (&h);
  host_clear (&h);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sim/squeezed/equal-gamma", test_equal_gamma);
  g_test_add_func ("/sim/squeezed/free-before-give", test_free_before_give);
  g_test_add_func ("/sim/squeezed/stuck", test_stuck);
  return g_test_run ();
}
