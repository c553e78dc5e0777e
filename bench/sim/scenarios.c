/* scenarios.c: the built-in workloads (fixed seeds) and the CSV trace
 * reader.  A workload is a working set and a page cache per second per
 * VM; docs/benchmarks.md describes each scenario. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gio/gio.h>
#include "sim.h"

void
sim_load_init (SimLoad *l, guint n)
{
  l->n = MAX (n, 2u);
  l->ws = g_new0 (float, l->n);
  l->cache = g_new0 (float, l->n);
}

void
sim_load_clear (SimLoad *l)
{
  g_clear_pointer (&l->ws, g_free);
  g_clear_pointer (&l->cache, g_free);
  l->n = 0;
}

static double
interp (const float *v, guint n, double t)
{
  guint i;
  double f;

  if (n == 0 || !(t > 0))
    return n ? v[0] : 0.0;
  if (t >= n - 1)
    return v[n - 1];
  i = (guint) t;
  f = t - i;
  return v[i] + f * (v[i + 1] - v[i]);
}

double
sim_load_ws (const SimLoad *l, double t)
{
  return interp (l->ws, l->n, t);
}

double
sim_load_cache (const SimLoad *l, double t)
{
  return interp (l->cache, l->n, t);
}

void
sim_scenario_clear (SimScenario *sc)
{
  for (guint i = 0; i < sc->n_vms; i++)
    sim_load_clear (&sc->vms[i].load);
  sc->n_vms = 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static double
gauss (GRand *r)
{
  double u = g_rand_double_range (r, 1e-12, 1.0), v = g_rand_double (r);

  return sqrt (-2.0 * log (u)) * cos (2.0 * G_PI * v);
}

static SimVmSpec *
add_vm (SimScenario *sc, const char *prefix, double max_mib, double vmem_mib, gboolean agent,
        gboolean balloon_only)
{
  SimVmSpec *s = &sc->vms[sc->n_vms];

  g_assert (sc->n_vms < SIM_MAX_VMS);
  *s = (SimVmSpec){
    .boot = max_mib - vmem_mib,
    .vmem_size = vmem_mib,
    .vmem_block = 2.0,
    .swap = 1024.0,
    .hot_cache = 0.25,
    .agent = agent,
  };
  /* The published baselines drive the balloon only: they get the same
   * guest with all its memory as boot memory. */
  if (balloon_only) {
    s->boot = max_mib;
    s->vmem_size = 0;
  }
  g_snprintf (s->name, sizeof s->name, "%s-%u", prefix, sc->n_vms);
  sim_load_init (&s->load, (guint) sc->duration + 2);
  sc->n_vms++;
  return s;
}

/* Mean-reverting noise around 0, MiB. */
typedef struct {
  double x, sigma, pull;
} Walk;

static double
walk (Walk *w, GRand *r)
{
  w->x += w->sigma * gauss (r) - w->pull * w->x;
  return w->x;
}

/* ---- scenarios ---------------------------------------------------------------- */

/* Idle servers: a small steady working set with cron spikes, and a page
 * cache that only grows (logs, package updates): the hoarding case. */
static void
build_idle (SimScenario *sc, GRand *r, guint n_vms, gboolean bo)
{
  for (guint k = 0; k < n_vms; k++) {
    SimVmSpec *s = add_vm (sc, "idle", 4096, 0, k % 10 < 6, bo);
    double base = g_rand_double_range (r, 350, 700);
    double grow = g_rand_double_range (r, 0.6, 1.2);
    double next_cron = g_rand_double_range (r, 60, 900);
    Walk n = { 0, 4, 0.05 };

    for (guint t = 0; t < s->load.n; t++) {
      double ws = base + walk (&n, r);

      if (t >= next_cron && t < next_cron + 20)
        ws += 250;
      if (t >= next_cron + 20)
        next_cron += g_rand_double_range (r, 600, 1200);
      s->load.ws[t] = MAX (100, ws);
      s->load.cache[t] = MIN (2048, 100 + grow * t);
    }
    s->hot_cache = 0.1;
  }
  sc->host_total = 32 * 1024;
}

/* Web servers over one compressed day: the working set follows traffic,
 * with flash crowds on top. */
static void
build_web (SimScenario *sc, GRand *r, guint n_vms, gboolean bo)
{
  for (guint k = 0; k < n_vms; k++) {
    SimVmSpec *s = add_vm (sc, "web", 6144, 0, TRUE, bo);
    double base = g_rand_double_range (r, 600, 1000);
    double amp = g_rand_double_range (r, 1800, 2800);
    double phase = g_rand_double_range (r, -0.05, 0.05);
    double spike = 0, next_spike = g_rand_double_range (r, 120, 900);
    Walk n = { 0, 10, 0.05 };

    for (guint t = 0; t < s->load.n; t++) {
      double day = (double) t / sc->duration + phase;
      double traffic = 0.5 - 0.5 * cos (2 * G_PI * day);

      if (t >= next_spike) {
        spike = g_rand_double_range (r, 400, 900);
        next_spike = t + g_rand_double_range (r, 300, 900);
      }
      spike *= 0.98;
      s->load.ws[t] = MAX (200, base + amp * traffic + spike + walk (&n, r));
      s->load.cache[t] = 800;
    }
    s->hot_cache = 0.3;
  }
  sc->host_total = 40 * 1024;
}

/* Batch workers: mostly idle, then a job allocates gigabytes within
 * seconds, runs minutes and frees it all.  Demand-to-grant matters. */
static void
build_batch (SimScenario *sc, GRand *r, guint n_vms, gboolean bo)
{
  for (guint k = 0; k < n_vms; k++) {
    SimVmSpec *s = add_vm (sc, "batch", 8192, k % 6 < 2 ? 6144 : 0, TRUE, bo);
    double idle = g_rand_double_range (r, 300, 500);
    double t0 = g_rand_double_range (r, 30, 400), peak = 0, len = 0;

    if (s->vmem_size > 0)
      s->vmem_unmovable = 256;
    for (guint t = 0; t < s->load.n; t++) {
      double ws = idle;

      if (t >= t0 + len + 2) {
        t0 = t + g_rand_double_range (r, 60, 420);
        peak = g_rand_double_range (r, 2500, 6000);
        len = g_rand_double_range (r, 60, 300);
      }
      if (peak > 0 && t >= t0 && t < t0 + 10)
        ws = idle + peak * (t - t0) / 10.0;
      else if (peak > 0 && t >= t0 + 10 && t < t0 + len)
        ws = idle + peak;
      s->load.ws[t] = ws;
      s->load.cache[t] = 300;
    }
    s->hot_cache = 0.2;
  }
  sc->host_total = 36 * 1024;
}

/* File servers: a small working set and a large file set read into the
 * page cache, a third of it hot. */
static void
build_fileserver (SimScenario *sc, GRand *r, guint n_vms, gboolean bo)
{
  for (guint k = 0; k < n_vms; k++) {
    SimVmSpec *s = add_vm (sc, "files", 8192, 0, k % 4 != 3, bo);
    double set = g_rand_double_range (r, 4000, 6000);
    double rate = g_rand_double_range (r, 20, 40);
    Walk n = { 0, 6, 0.05 };

    for (guint t = 0; t < s->load.n; t++) {
      s->load.ws[t] = MAX (300, 700 + walk (&n, r));
      s->load.cache[t] = MIN (set, 200 + rate * t);
    }
    s->hot_cache = 0.35;
  }
  sc->host_total = 32 * 1024;
}

/* Databases: a buffer pool allocated at start and kept; half the VMs
 * have virtio-mem, with pinned memory that cannot be unplugged. */
static void
build_database (SimScenario *sc, GRand *r, guint n_vms, gboolean bo)
{
  for (guint k = 0; k < n_vms; k++) {
    SimVmSpec *s = add_vm (sc, "db", 12288, k % 2 == 0 ? 8192 : 0, TRUE, bo);
    double pool = g_rand_double_range (r, 6000, 8000);
    Walk n = { 0, 20, 0.02 };

    if (s->vmem_size > 0)
      s->vmem_unmovable = 2048;
    for (guint t = 0; t < s->load.n; t++) {
      double ramp = MIN (1.0, t / 60.0);

      s->load.ws[t] = 500 + ramp * pool + walk (&n, r);
      s->load.cache[t] = 1024;
    }
    s->hot_cache = 0.5;
  }
  sc->host_total = 40 * 1024;
}

/* A boot storm: four VMs run, twelve more start within 20 s; booting
 * touches far more memory than the booted guest keeps. */
static void
build_bootstorm (SimScenario *sc, GRand *r, guint n_vms, gboolean bo)
{
  for (guint k = 0; k < n_vms; k++) {
    SimVmSpec *s = add_vm (sc, "boot", 2048, 0, k % 2 == 0, bo);
    gboolean running = k % 16 < 4;
    double start = running ? 0 : 120 + g_rand_double_range (r, 0, 20);
    double peak = g_rand_double_range (r, 700, 950);
    double idle = g_rand_double_range (r, 300, 450);
    Walk n = { 0, 3, 0.05 };

    s->start = start;
    for (guint t = 0; t < s->load.n; t++) {
      double ws;

      if (running)
        ws = idle;
      else if (t < 10)
        ws = peak * t / 10.0;
      else if (t < 50)
        ws = peak;
      else if (t < 80)
        ws = peak + (idle - peak) * (t - 50) / 30.0;
      else
        ws = idle;
      s->load.ws[t] = MAX (64, ws + walk (&n, r));
      s->load.cache[t] = MIN (600, 150 + 0.5 * t);
    }
    s->hot_cache = 0.2;
  }
  sc->host_total = 24 * 1024;
}

typedef struct {
  const char *name;
  const char *title;
  double duration;
  guint n_vms; /* the scenario's own mix */
  void (*build) (SimScenario *sc, GRand *r, guint n, gboolean balloon_only);
} ScenarioDef;

static const ScenarioDef scenarios[] = {
  { "idle", "10 idle servers, page cache hoarding", 1800, 10, build_idle },
  { "web", "8 web servers over a compressed day, flash crowds", 3600, 8, build_web },
  { "batch", "6 batch workers, jobs allocate GiBs in seconds", 3600, 6, build_batch },
  { "fileserver", "4 file servers, large hot page cache", 1800, 4, build_fileserver },
  { "database", "4 databases, steady buffer pools, pinned virtio-mem", 1800, 4, build_database },
  { "bootstorm", "4 running + 12 booting VMs", 900, 16, build_bootstorm },
};

const char *const *
sim_scenario_names (void)
{
  static const char *names[G_N_ELEMENTS (scenarios) + 1];

  for (guint i = 0; i < G_N_ELEMENTS (scenarios); i++)
    names[i] = scenarios[i].name;
  return names;
}

guint
sim_scenario_default_vms (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (scenarios); i++)
    if (g_str_equal (scenarios[i].name, name))
      return scenarios[i].n_vms;
  return 0;
}

gboolean
sim_scenario_build (SimScenario *sc, const char *name, guint64 seed, double duration, guint n_vms,
                    gboolean balloon_only)
{
  for (guint i = 0; i < G_N_ELEMENTS (scenarios); i++) {
    const ScenarioDef *d = &scenarios[i];
    GRand *r;

    if (!g_str_equal (d->name, name))
      continue;
    memset (sc, 0, sizeof *sc);
    g_strlcpy (sc->name, d->name, sizeof sc->name);
    g_strlcpy (sc->title, d->title, sizeof sc->title);
    sc->duration = duration > 0 ? duration : d->duration;
    sc->seed = seed;
    sc->host_base = 2048;
    sc->host_swap = 8192;
    /* The workload depends on the seed and the scenario only, never on
       * the policy, so every policy faces the same guests.  Each VM draws
       * its numbers after the ones before it, so VM k is the same in a
       * mix of any size: a density run adds VMs to the same host. */
    r = g_rand_new_with_seed ((guint32) (seed * 1000003u + i));
    d->build (sc, r, n_vms > 0 ? MIN (n_vms, (guint) SIM_MAX_VMS) : d->n_vms, balloon_only);
    g_rand_free (r);
    return TRUE;
  }
  return FALSE;
}

/* ---- CSV traces ----------------------------------------------------------------- */

typedef struct {
  char name[32];
  double max;
  GArray *t, *ws, *cache; /* double */
} TraceVm;

static gboolean
parse_num (const char *s, double *out)
{
  char *end;

  errno = 0;
  *out = g_ascii_strtod (s, &end);
  while (*end == ' ' || *end == '\t' || *end == '\r')
    end++;
  return errno == 0 && end != s && *end == '\0' && isfinite (*out) && *out >= 0;
}

gboolean
sim_scenario_from_trace (SimScenario *sc, const char *path, double host_mib, gboolean balloon_only,
                         GError **error)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (GPtrArray) vms = g_ptr_array_new ();
  gboolean header = FALSE, ok = FALSE, has_max = FALSE;
  double end = 0, sum_max = 0;
  guint lineno = 0;

  if (!g_file_get_contents (path, &text, NULL, error))
    return FALSE;
  memset (sc, 0, sizeof *sc);
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto (GStrv) f = NULL;
    double t, ws, cache, max = 0;
    TraceVm *vm = NULL;

    lineno++;
    g_strstrip (*l);
    if (**l == '\0' || **l == '#')
      continue;
    f = g_strsplit (*l, ",", -1);
    if (!header) {
      if (g_strv_length (f) < 4 || !g_str_equal (g_strstrip (f[0]), "time_s")
          || !g_str_equal (g_strstrip (f[1]), "vm")
          || !g_str_equal (g_strstrip (f[2]), "working_set_mib")
          || !g_str_equal (g_strstrip (f[3]), "cache_mib")) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "%s:%u: the header must be time_s,vm,working_set_mib,cache_mib[,max_mib]",
                     path, lineno);
        goto out;
      }
      has_max = g_strv_length (f) >= 5 && g_str_equal (g_strstrip (f[4]), "max_mib");
      header = TRUE;
      continue;
    }
    for (char **c = f; *c; c++)
      g_strstrip (*c);
    if (g_strv_length (f) < 4 || !parse_num (f[0], &t) || f[1][0] == '\0' || !parse_num (f[2], &ws)
        || !parse_num (f[3], &cache)
        || (has_max && g_strv_length (f) >= 5 && f[4][0] != '\0' && !parse_num (f[4], &max))) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: expected time_s,vm,working_set_mib,cache_mib%s with numbers >= 0", path,
                   lineno, has_max ? ",max_mib" : "");
      goto out;
    }
    for (guint i = 0; i < vms->len; i++)
      if (g_str_equal (((TraceVm *) vms->pdata[i])->name, f[1]))
        vm = vms->pdata[i];
    if (vm == NULL) {
      if (vms->len >= SIM_MAX_VMS) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: more than %d VMs", path,
                     lineno, SIM_MAX_VMS);
        goto out;
      }
      vm = g_new0 (TraceVm, 1);
      g_strlcpy (vm->name, f[1], sizeof vm->name);
      vm->t = g_array_new (FALSE, FALSE, sizeof (double));
      vm->ws = g_array_new (FALSE, FALSE, sizeof (double));
      vm->cache = g_array_new (FALSE, FALSE, sizeof (double));
      g_ptr_array_add (vms, vm);
    }
    if (vm->t->len > 0 && t <= g_array_index (vm->t, double, vm->t->len - 1)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s:%u: times of VM %s must increase", path, lineno, vm->name);
      goto out;
    }
    g_array_append_val (vm->t, t);
    g_array_append_val (vm->ws, ws);
    g_array_append_val (vm->cache, cache);
    vm->max = MAX (vm->max, max);
    end = MAX (end, t);
  }
  if (vms->len == 0 || end < 2) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s: no VM rows, or less than 2 s of trace", path);
    goto out;
  }

  g_strlcpy (sc->name, "trace", sizeof sc->name);
  {
    g_autofree char *base = g_path_get_basename (path);

    g_snprintf (sc->title, sizeof sc->title, "replay of %s", base);
  }
  sc->duration = floor (end);
  sc->host_base = 2048;
  sc->host_swap = 8192;
  for (guint i = 0; i < vms->len; i++) {
    TraceVm *tv = vms->pdata[i];
    double peak = 0, max;
    SimVmSpec *s;
    guint k = 0;

    for (guint j = 0; j < tv->t->len; j++)
      peak = MAX (peak, g_array_index (tv->ws, double, j) + g_array_index (tv->cache, double, j));
    /* Without max_mib: the peak with a quarter on top, in whole 512 MiB. */
    max = tv->max > 0 ? tv->max : ceil (peak * 1.25 / 512.0) * 512.0;
    max = MAX (max, 512.0);
    s = add_vm (sc, "t", max, 0, TRUE, balloon_only);
    g_strlcpy (s->name, tv->name, sizeof s->name);
    for (guint sec = 0; sec < s->load.n; sec++) {
      while (k + 1 < tv->t->len && g_array_index (tv->t, double, k + 1) <= sec)
        k++;
      if (k + 1 < tv->t->len && g_array_index (tv->t, double, k) <= sec) {
        double t0 = g_array_index (tv->t, double, k), t1 = g_array_index (tv->t, double, k + 1);
        double f = (sec - t0) / (t1 - t0);

        s->load.ws[sec] =
          g_array_index (tv->ws, double, k)
          + f * (g_array_index (tv->ws, double, k + 1) - g_array_index (tv->ws, double, k));
        s->load.cache[sec] =
          g_array_index (tv->cache, double, k)
          + f * (g_array_index (tv->cache, double, k + 1) - g_array_index (tv->cache, double, k));
      } else {
        guint j = sec < g_array_index (tv->t, double, 0) ? 0 : k;

        s->load.ws[sec] = g_array_index (tv->ws, double, j);
        s->load.cache[sec] = g_array_index (tv->cache, double, j);
      }
      s->load.ws[sec] = MIN (s->load.ws[sec], max);
    }
    sum_max += max;
  }
  sc->host_total =
    host_mib > 0 ? host_mib : ceil (sum_max * 0.75 / 1024.0) * 1024.0 + sc->host_base;
  ok = TRUE;

out:
  for (guint i = 0; i < vms->len; i++) {
    TraceVm *tv = vms->pdata[i];

    g_array_unref (tv->t);
    g_array_unref (tv->ws);
    g_array_unref (tv->cache);
    g_free (tv);
  }
  if (!ok)
    sim_scenario_clear (sc);
  return ok;
}
