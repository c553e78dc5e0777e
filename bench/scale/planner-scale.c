/* planner-scale.c: what one planning tick costs at 100 to 10,000 VMs.
 *
 * Runs the daemon's per-tick work on synthetic VMs (memtide-core, the
 * code memtided links): push one sample per VM into its model ring,
 * mt_plan_vm_init() (which derives the model), mt_plan_compute(), copy
 * each decision's `next` back, and apply the actions to the synthetic
 * VMs so the next tick differs.  Reports the median, p95 and minimum wall
 * time and the CPU time of the plan alone (mt_plan_compute) and of the
 * whole tick, over many ticks after a warm-up that fills the rings.
 *
 *   memtide-planner-scale [--vms 100,1000,10000] [--runs N] [--warmup N]
 *                         [--results DIR] [--smoke]
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <glib/gstdio.h>
#include "model.h"
#include "planner.h"

typedef struct {
  char name[24];
  MtDomainInfo info;
  MtVmPolicy policy;
  MtVmModel *model;
  guint64 balloon, plugged, requested;
  double used_mib; /* guest working set now */
  double psi;
  guint64 swap_in, faults;
} Vm;

typedef struct {
  guint n;
  Vm *vm;
  MtHostPolicy hp;
  GRand *rand;
  gint64 now;
} World;

static double
now_s (clockid_t clock)
{
  struct timespec ts;

  clock_gettime (clock, &ts);
  return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
world_init (World *w, guint n, guint32 seed)
{
  w->n = n;
  w->vm = g_new0 (Vm, n);
  w->rand = g_rand_new_with_seed (seed);
  w->now = 1000 * G_USEC_PER_SEC;
  mt_host_policy_init_defaults (&w->hp);
  for (guint i = 0; i < n; i++) {
    Vm *v = &w->vm[i];
    /* 1 to 16 GiB; every third VM has a virtio-mem device. */
    guint64 max = (1 + g_rand_int_range (w->rand, 0, 16)) * MT_GIB;
    gboolean vmem = i % 3 == 0 && max >= 2 * MT_GIB;

    g_snprintf (v->name, sizeof v->name, "vm-%05u", i);
    v->info = (MtDomainInfo){
      .name = v->name,
      .base_memory = vmem ? MT_GIB : max,
      .vmem_size = vmem ? max - MT_GIB : 0,
      .vmem_block = vmem ? 2 * MT_MIB : 0,
    };
    mt_vm_policy_init_defaults (&v->policy);
    v->model = mt_vm_model_new ();
    v->balloon = v->info.base_memory;
    v->plugged = v->requested = v->info.vmem_size;
    v->used_mib = g_rand_double_range (w->rand, 0.15, 0.7) * (double) max / MT_MIB;
  }
}

static void
world_clear (World *w)
{
  for (guint i = 0; i < w->n; i++)
    mt_vm_model_free (w->vm[i].model);
  g_free (w->vm);
  g_rand_free (w->rand);
}

/* One collect: every VM reports, its working set drifts, a few are
 * under pressure. */
static void
collect (World *w, MtHostSample *host)
{
  guint64 rss = 0;

  for (guint i = 0; i < w->n; i++) {
    Vm *v = &w->vm[i];
    guint64 size = v->balloon + v->plugged, used;
    MtVmSample s;

    v->used_mib = MAX (64.0, v->used_mib * (1.0 + g_rand_double_range (w->rand, -0.02, 0.02)));
    used = MIN ((guint64) (v->used_mib * MT_MIB), size - size / 32);
    v->psi = g_rand_int_range (w->rand, 0, 50) == 0 ? g_rand_double_range (w->rand, 1, 20) : 0;
    v->faults += g_rand_int_range (w->rand, 0, 100);
    mt_vm_sample_init (&s, w->now);
    s.balloon_actual = v->balloon;
    s.vmem_plugged = v->plugged;
    s.vmem_requested = v->requested;
    s.rss = used + size / 64;
    s.guest_total = size - size / 64;
    s.guest_available = s.guest_total - used;
    s.guest_free = s.guest_available / 2;
    s.guest_cache = s.guest_available / 2;
    s.swap_in = v->swap_in;
    s.swap_out = 0;
    s.major_faults = v->faults;
    s.oom_kills = 0;
    s.psi_some_avg10 = v->psi;
    s.psi_full_avg10 = v->psi / 2;
    s.from_agent = i % 2 == 0;
    mt_vm_model_push (v->model, &s);
    rss += s.rss;
  }
  mt_host_sample_init (host, w->now);
  /* A host that is a little short: the fair split runs too. */
  host->mem_total = rss + rss / 8;
  host->mem_available = rss / 16;
}

typedef struct {
  GArray *plan_wall, *tick_wall; /* double ms */
  double plan_cpu, tick_cpu;     /* s, summed */
  guint actions;
} Times;

static void
one_tick (World *w, Times *t, gboolean record)
{
  MtHostSample host;
  g_autofree MtPlanVm *in = g_new0 (MtPlanVm, w->n);
  MtPlan *plan;
  double t0, t1, t2, t3, c0, c1, c2, c3;

  t0 = now_s (CLOCK_MONOTONIC);
  c0 = now_s (CLOCK_PROCESS_CPUTIME_ID);
  collect (w, &host);
  for (guint i = 0; i < w->n; i++)
    mt_plan_vm_init (&in[i], w->vm[i].name, &w->vm[i].info, &w->vm[i].policy, w->vm[i].model,
                     &w->hp, w->now);
  t1 = now_s (CLOCK_MONOTONIC);
  c1 = now_s (CLOCK_PROCESS_CPUTIME_ID);
  plan = mt_plan_compute (&host, in, w->n, &w->hp, w->now);
  t2 = now_s (CLOCK_MONOTONIC);
  c2 = now_s (CLOCK_PROCESS_CPUTIME_ID);
  for (guint k = 0; k < plan->n_actions; k++) {
    const MtAction *a = &plan->actions[k];
    Vm *v = &w->vm[a->vm];

    if (a->set_vmem)
      v->requested = v->plugged = a->vmem_requested;
    if (a->set_balloon)
      v->balloon = a->balloon;
  }
  for (guint i = 0; i < w->n; i++)
    w->vm[i].model->control = plan->decisions[i].next;
  g_assert (plan->n_decisions == w->n);
  t->actions += plan->n_actions;
  mt_plan_free (plan);
  t3 = now_s (CLOCK_MONOTONIC);
  c3 = now_s (CLOCK_PROCESS_CPUTIME_ID);
  w->now += G_USEC_PER_SEC;
  if (!record)
    return;
  {
    double pw = (t2 - t1) * 1e3, tw = ((t3 - t0) - 0) * 1e3;

    g_array_append_val (t->plan_wall, pw);
    g_array_append_val (t->tick_wall, tw);
    t->plan_cpu += c2 - c1;
    t->tick_cpu += (c3 - c0);
  }
  (void) c1;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
pct (GArray *a, double p)
{
  guint k = (guint) ceil (p / 100.0 * a->len);

  return g_array_index (a, double, CLAMP (k, 1u, a->len) - 1);
}

int
main (int argc, char **argv)
{
  g_autofree char *vms_opt = NULL;
  g_autofree char *results = NULL;
  gint runs = 0, warmup = -1;
  gboolean smoke = FALSE;
  const GOptionEntry entries[] = {
    { "vms", 0, 0, G_OPTION_ARG_STRING, &vms_opt, "VM counts (default 100,1000,10000)", "N,..." },
    { "runs", 0, 0, G_OPTION_ARG_INT, &runs,
      "Timed ticks per count (default: 2000 at 100 VMs ... 100 at 10,000)", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "Untimed ticks first (default 70: the rings fill)",
      "N" },
    { "results", 'o', 0, G_OPTION_ARG_FILENAME, &results,
      "Write scale/planner.md and planner.csv here", "DIR" },
    { "smoke", 0, 0, G_OPTION_ARG_NONE, &smoke, "100 VMs, a few ticks: for the test suite", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- planner cost per tick");
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) md = g_string_new (NULL);
  g_autoptr (GString) csv =
    g_string_new ("vms,runs,plan_median_ms,plan_p95_ms,plan_min_ms,plan_cpu_ms,"
                  "tick_median_ms,tick_p95_ms,tick_cpu_ms,actions_per_tick\n");
  g_auto (GStrv) counts = NULL;

  setlocale (LC_ALL, "C");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("memtide-planner-scale: %s\n", error->message);
    return 2;
  }
  counts = g_strsplit (vms_opt ? vms_opt : (smoke ? "100" : "100,1000,10000"), ",", -1);
  g_string_append (md, "| VMs | ticks | plan median ms | plan p95 ms | plan min ms | plan CPU ms | "
                       "tick median ms | tick p95 ms | tick CPU ms | actions/tick |\n"
                       "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (char **c = counts; *c; c++) {
    guint n = (guint) g_ascii_strtoull (*c, NULL, 10);
    guint r = runs > 0 ? (guint) runs : smoke ? 20 : n <= 100 ? 2000 : n <= 1000 ? 500 : 100;
    guint wu = warmup >= 0 ? (guint) warmup : smoke ? 5 : 70;
    World w;
    Times t = { g_array_new (FALSE, FALSE, sizeof (double)),
                g_array_new (FALSE, FALSE, sizeof (double)), 0, 0, 0 };

    if (n == 0 || n > 1000000) {
      g_printerr ("memtide-planner-scale: bad VM count '%s'\n", *c);
      return 2;
    }
    world_init (&w, n, 42);
    for (guint k = 0; k < wu; k++)
      one_tick (&w, &t, FALSE);
    t.actions = 0;
    for (guint k = 0; k < r; k++)
      one_tick (&w, &t, TRUE);
    g_array_sort (t.plan_wall, cmp_double);
    g_array_sort (t.tick_wall, cmp_double);
    g_string_append_printf (
      md, "| %u | %u | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f |\n", n, r,
      pct (t.plan_wall, 50), pct (t.plan_wall, 95), pct (t.plan_wall, 0), t.plan_cpu / r * 1e3,
      pct (t.tick_wall, 50), pct (t.tick_wall, 95), t.tick_cpu / r * 1e3, (double) t.actions / r);
    g_string_append_printf (csv, "%u,%u,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.2f\n", n, r,
                            pct (t.plan_wall, 50), pct (t.plan_wall, 95), pct (t.plan_wall, 0),
                            t.plan_cpu / r * 1e3, pct (t.tick_wall, 50), pct (t.tick_wall, 95),
                            t.tick_cpu / r * 1e3, (double) t.actions / r);
    if (!(pct (t.plan_wall, 50) > 0) || !isfinite (pct (t.tick_wall, 95))) {
      g_printerr ("memtide-planner-scale: %u VMs: no sane timing\n", n);
      return 1;
    }
    g_array_unref (t.plan_wall);
    g_array_unref (t.tick_wall);
    world_clear (&w);
  }
  fputs (md->str, stdout);
  if (results != NULL) {
    g_autofree char *dir = g_build_filename (results, "scale", NULL);
    g_autofree char *mdp = g_build_filename (dir, "planner.md", NULL);
    g_autofree char *csvp = g_build_filename (dir, "planner.csv", NULL);

    if (g_mkdir_with_parents (dir, 0755) < 0 || !g_file_set_contents (mdp, md->str, -1, &error)
        || !g_file_set_contents (csvp, csv->str, -1, &error)) {
      g_printerr ("memtide-planner-scale: cannot write under %s: %s\n", dir,
                  error ? error->message : g_strerror (errno));
      return 1;
    }
  }
  return 0;
}
