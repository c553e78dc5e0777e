/* sim-main.c: memtide-sim, run scenarios x policies and write the
 * tables, time series and plots under a results directory.
 *
 *   memtide-sim [--scenario all|NAME,...] [--trace FILE.csv] [--policy all|NAME,...]
 *               [--seed N] [--duration S] [--results DIR] [--smoke] [--check]
 *
 * Exit status: 0 when every run finished (and, with --check, every
 * output exists and every figure is sane), 1 otherwise, 2 on bad options.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <glib/gstdio.h>
#include "density.h"

typedef struct {
  char *results;
  char *scenarios;
  char *policies;
  char *trace;
  char *memtide_policy;
  double host_mib;
  gint64 seed;
  double duration;
  gboolean smoke;
  gboolean check;
  gboolean no_fpr;
  gboolean no_plot;
  gboolean density;
  gint max_vms;
  gint vms;
} Options;

static guint n_failures;

static void
options_clear (Options *o)
{
  g_clear_pointer (&o->results, g_free);
  g_clear_pointer (&o->scenarios, g_free);
  g_clear_pointer (&o->policies, g_free);
  g_clear_pointer (&o->trace, g_free);
  g_clear_pointer (&o->memtide_policy, g_free);
}

static void fail (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

static void
fail (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  fputs ("memtide-sim: check failed: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  n_failures++;
}

/* Sanity of one run's figures: finite, within what the host and VMs
 * can hold, and the time series complete. */
static void
check_result (const SimScenario *sc, const SimResult *r)
{
  double sum_max = 0;
  g_autofree char *text = NULL;
  guint rows = 0;

  for (guint i = 0; i < sc->n_vms; i++)
    sum_max += sc->vms[i].boot + sc->vms[i].vmem_size;
  if (!isfinite (r->vm_gib_min) || r->vm_gib_min <= 0)
    fail ("%s/%s: host GiB*min %.3f is not positive", sc->name, r->policy->name, r->vm_gib_min);
  if (r->vm_gib_min > sum_max / 1024 * sc->duration / 60 * 1.001)
    fail ("%s/%s: host GiB*min %.1f exceeds what the VMs can hold", sc->name, r->policy->name,
          r->vm_gib_min);
  if (r->vm_gib_min > r->committed_gib_min * 1.001)
    fail ("%s/%s: host memory above the VMs' sizes", sc->name, r->policy->name);
  if (!(r->peak_gib > 0) || r->peak_gib > sum_max / 1024 + 1e-6)
    fail ("%s/%s: peak %.2f GiB out of range", sc->name, r->policy->name, r->peak_gib);
  if (!(r->floor_gib_min > 0) || r->floor_gib_min > sum_max / 1024 * sc->duration / 60 * 1.001)
    fail ("%s/%s: no-stall floor %.1f GiB*min out of range", sc->name, r->policy->name,
          r->floor_gib_min);
  /* Below the floor only by stalling (or killing): else the floor or
   * the guest model is wrong. */
  if (r->stall_s <= 1.0 && r->oom_kills + r->host_oom_kills == 0
      && r->vm_gib_min < 0.95 * r->floor_gib_min)
    fail ("%s/%s: host GiB*min %.1f below the no-stall floor %.1f without stalling", sc->name,
          r->policy->name, r->vm_gib_min, r->floor_gib_min);
  if (!isfinite (r->stall_s) || r->stall_s < 0 || r->stall_s > sc->n_vms * sc->duration + 1)
    fail ("%s/%s: stall %.1f s out of range", sc->name, r->policy->name, r->stall_s);
  if (r->episodes > 0 && (!(r->grant_p50 >= 0) || !(r->grant_p95 >= r->grant_p50)))
    fail ("%s/%s: bad grant percentiles", sc->name, r->policy->name);
  if (g_str_equal (r->policy->name, "static") && r->actions != 0)
    fail ("%s/static: resized something", sc->name);
  if (g_str_has_prefix (r->policy->name, "memtide") && r->actions == 0 && sc->duration >= 60)
    fail ("%s/%s: never acted", sc->name, r->policy->name);
  if (!g_file_get_contents (r->series, &text, NULL, NULL))
    fail ("%s/%s: no time series %s", sc->name, r->policy->name, r->series);
  else
    for (const char *c = text; *c; c++)
      rows += *c == '\n';
  if (text && rows < (guint) sc->duration)
    fail ("%s/%s: time series has %u rows for %.0f s", sc->name, r->policy->name, rows,
          sc->duration);
}

static gboolean
run_one (const Options *o, const char *dir, const SimScenario *sc, const SimPolicy *p, SimResult *r,
         GError **error)
{
  g_autofree char *file = g_strdup_printf ("%s.tsv", p->name);
  g_autofree char *path = g_build_filename (dir, file, NULL);

  return sim_run (sc, p, g_str_has_prefix (p->name, "memtide") ? o->memtide_policy : NULL,
                  !o->no_fpr, path, r, error);
}

static gboolean
run_scenario (const Options *o, const char *name, GPtrArray *policies, GString *md, GString *csv,
              GError **error)
{
  SimScenario sc_real, sc_balloon;
  g_autofree char *dir = NULL;
  g_autofree SimResult *res = g_new0 (SimResult, policies->len);
  g_autofree char *why = NULL;
  gboolean ok = FALSE;
  guint n = 0;

  if (o->trace != NULL) {
    if (!sim_scenario_from_trace (&sc_real, o->trace, o->host_mib, FALSE, error)
        || !sim_scenario_from_trace (&sc_balloon, o->trace, o->host_mib, TRUE, error))
      return FALSE;
  } else {
    sim_scenario_build (&sc_real, name, (guint64) o->seed, o->duration, (guint) o->vms, FALSE);
    sim_scenario_build (&sc_balloon, name, (guint64) o->seed, o->duration, (guint) o->vms, TRUE);
  }
  dir = g_build_filename (o->results, "sim", sc_real.name, NULL);
  if (g_mkdir_with_parents (dir, 0755) < 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot create %s: %s", dir,
                 g_strerror (errno));
    goto out;
  }
  for (guint k = 0; k < policies->len; k++) {
    const SimPolicy *p = policies->pdata[k];
    /* The published baselines drive the balloon only: they run the same
       * guests with all their memory as boot memory. */
    const SimScenario *sc = g_str_has_prefix (p->name, "memtide") ? &sc_real : &sc_balloon;
    gint64 t0 = g_get_monotonic_time ();

    if (!run_one (o, dir, sc, p, &res[n], error))
      goto out;
    n++;
    g_printerr ("  %-10s %-22s host %8.1f GiB*min  stall %7.1f s  OOM %u  %.1f s\n", sc_real.name,
                p->label, res[n - 1].vm_gib_min, res[n - 1].stall_s, res[n - 1].oom_kills,
                (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC);
    g_string_append_printf (
      csv, "%s,%s,%.3f,%.3f,%.3f,%.1f,%u,%u,%.3f,%u,%.2f,%.2f,%u\n", sc_real.name, p->name,
      res[n - 1].vm_gib_min, res[n - 1].peak_gib, res[n - 1].committed_gib_min, res[n - 1].stall_s,
      res[n - 1].oom_kills, res[n - 1].host_oom_kills, res[n - 1].host_swap_gib_min,
      res[n - 1].episodes, res[n - 1].grant_p50, res[n - 1].grant_p95, res[n - 1].actions);
    if (o->check)
      check_result (sc, &res[n - 1]);
  }
  sim_report_table (md, &sc_real, res, n);
  if (!o->no_plot) {
    if (sim_report_plot (dir, &sc_real, res, n, &why))
      g_string_append_printf (md, "![%s](%s/plot.png)\n\n", sc_real.name, sc_real.name);
    else {
      g_printerr ("memtide-sim: %s: no plot: %s\n", sc_real.name, why);
      if (o->check && g_find_program_in_path ("gnuplot") != NULL)
        fail ("%s: gnuplot is installed but made no plot: %s", sc_real.name, why);
    }
  }
  ok = TRUE;

out:
  for (guint k = 0; k < n; k++)
    sim_result_clear (&res[k]);
  sim_scenario_clear (&sc_real);
  sim_scenario_clear (&sc_balloon);
  return ok;
}

/* --density: per scenario and policy, the most VMs that keep the
 * service level; results/density/results.md and density.csv. */
static gboolean
run_density (const Options *o, char **scen, GPtrArray *policies, GError **error)
{
  guint n_scen = g_strv_length (scen), n_pol = policies->len;
  g_autofree SimDensity *d = g_new0 (SimDensity, n_scen * n_pol);
  g_autofree guint *bound = g_new0 (guint, MAX (n_scen, 1));
  g_autoptr (GString) md = g_string_new (NULL);
  g_autoptr (GString) csv =
    g_string_new ("scenario,policy,held,broke_at,host_gib_min,committed_gib_min,peak_gib,"
                  "peak_committed_gib,stall_s,worst_window_stall_s,runs,seconds,broke\n");
  g_autofree char *dir = g_build_filename (o->results, "density", NULL);
  g_autofree char *md_path = g_build_filename (dir, "results.md", NULL);
  g_autofree char *csv_path = g_build_filename (dir, "density.csv", NULL);
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = FALSE;
  guint done = 0;

  g_string_append_printf (
    md,
    "## Density: VMs held at an equal service level\n\n"
    "memtide-sim --density, seed %" G_GINT64_FORMAT ", free page reporting %s, %s.  VMs of each "
    "scenario's mix are added to its host until, in a whole run, a VM stalls more than %.0f%% of "
    "any %.0f s (PSI some), a guest or the host OOM-kills, or the host swaps.\n\n",
    o->seed, o->no_fpr ? "off" : "on for every policy",
    o->smoke ? "smoke durations" : "full durations", SIM_STALL_BUDGET * 100, SIM_STALL_WINDOW);
  for (guint s = 0; s < n_scen; s++) {
    for (guint k = 0; k < n_pol; k++) {
      const SimPolicy *p = policies->pdata[k];
      SimDensity *r = &d[s * n_pol + k];

      if (!sim_density_find (
            scen[s], p, g_str_has_prefix (p->name, "memtide") ? o->memtide_policy : NULL,
            (guint64) o->seed, o->duration, !o->no_fpr, (guint) o->max_vms, r, error))
        goto out;
      done = s * n_pol + k + 1;
      g_printerr ("  %-10s %-22s held %3u  %s  (%u runs, %.1f s)\n", scen[s], p->label, r->held,
                  r->broke_at ? r->broke : "the most tried", r->runs, r->seconds);
      g_string_append_printf (csv, "%s,%s,%u,%u,%.3f,%.3f,%.3f,%.3f,%.1f,%.2f,%u,%.2f,\"%s\"\n",
                              scen[s], p->name, r->held, r->broke_at, r->at.vm_gib_min,
                              r->at.committed_gib_min, r->at.peak_gib, r->at.peak_committed_gib,
                              r->at.stall_s, r->at.worst_window_s, r->runs, r->seconds,
                              r->broke_at ? r->broke : "");
      if (o->check && r->broke_at == 0 && r->held != (guint) o->max_vms)
        fail ("%s/%s: held %u without breaking, below the most tried (%d)", scen[s], p->name,
              r->held, o->max_vms);
      if (o->check && g_str_has_prefix (p->name, "memtide") && r->held == 0)
        fail ("%s/%s: held not even one VM", scen[s], p->name);
      if (o->check && r->held > 0) {
        if (r->at.vm_gib_min > r->at.committed_gib_min * 1.001)
          fail ("%s/%s: host memory above the VMs' sizes", scen[s], p->name);
        if (sim_result_breaks (&r->at, (char[8]){ 0 }, 8))
          fail ("%s/%s: the run it held broke the service level", scen[s], p->name);
      }
    }
    sim_report_density (md, scen[s], o->duration, (guint64) o->seed, &d[s * n_pol], n_pol);
  }
  for (guint s = 0; s < n_scen; s++)
    bound[s] =
      sim_density_floor_bound (scen[s], (guint64) o->seed, o->duration, (guint) o->max_vms);
  sim_report_density_summary (md, scen, n_scen, d, n_pol, bound);
  g_string_append_printf (md, "The search took %.0f s on this machine.\n\n",
                          (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC);
  if (g_mkdir_with_parents (dir, 0755) < 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot create %s: %s", dir,
                 g_strerror (errno));
    goto out;
  }
  if (!g_file_set_contents (md_path, md->str, -1, error)
      || !g_file_set_contents (csv_path, csv->str, -1, error))
    goto out;
  fputs (md->str, stdout);
  g_printerr ("memtide-sim: wrote %s and %s\n", md_path, csv_path);
  ok = TRUE;

out:
  for (guint i = 0; i < done; i++)
    sim_density_clear (&d[i]);
  return ok;
}

static GPtrArray *
pick_policies (const char *spec, GError **error)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new ();
  g_auto (GStrv) names = NULL;

  if (spec == NULL || g_str_equal (spec, "all")) {
    for (const SimPolicy *const *p = sim_policies (); *p; p++)
      g_ptr_array_add (out, (gpointer) *p);
    return g_steal_pointer (&out);
  }
  names = g_strsplit (spec, ",", -1);
  for (char **n = names; *n; n++) {
    const SimPolicy *p = sim_policy_find (*n);

    if (p == NULL) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "unknown policy '%s'", *n);
      return NULL;
    }
    g_ptr_array_add (out, (gpointer) p);
  }
  return g_steal_pointer (&out);
}

int
main (int argc, char **argv)
{
  Options o = { .seed = 1, .results = NULL, .max_vms = SIM_MAX_VMS };
  const GOptionEntry entries[] = {
    { "scenario", 's', 0, G_OPTION_ARG_STRING, &o.scenarios,
      "Scenarios to run, comma-separated, or all (default)", "NAMES" },
    { "trace", 't', 0, G_OPTION_ARG_FILENAME, &o.trace,
      "Replay a CSV trace instead (time_s,vm,working_set_mib,cache_mib[,max_mib])", "FILE" },
    { "host-mib", 0, 0, G_OPTION_ARG_DOUBLE, &o.host_mib,
      "Host memory for a trace (default: 3/4 of the VMs' maximum + 2 GiB)", "MIB" },
    { "policy", 'p', 0, G_OPTION_ARG_STRING, &o.policies,
      "Policies, comma-separated, or all (default): static, mom, squeezed, proxmox, "
      "memtide-stats, memtide",
      "NAMES" },
    { "memtide-policy", 0, 0, G_OPTION_ARG_FILENAME, &o.memtide_policy,
      "Directory of memtide policy files to use instead of the built-in defaults", "DIR" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &o.seed, "Workload seed (default 1)", "N" },
    { "duration", 'd', 0, G_OPTION_ARG_DOUBLE, &o.duration,
      "Seconds to simulate (default: each scenario's own)", "S" },
    { "results", 'o', 0, G_OPTION_ARG_FILENAME, &o.results,
      "Results directory (default build/bench-results)", "DIR" },
    { "smoke", 0, 0, G_OPTION_ARG_NONE, &o.smoke,
      "Short runs (120 s per scenario) for the test suite", NULL },
    { "check", 0, 0, G_OPTION_ARG_NONE, &o.check,
      "Check every output exists and every figure is sane; exit 1 if not", NULL },
    { "no-fpr", 0, 0, G_OPTION_ARG_NONE, &o.no_fpr, "Guests without free page reporting", NULL },
    { "no-plot", 0, 0, G_OPTION_ARG_NONE, &o.no_plot, "Write no plot", NULL },
    { "density", 0, 0, G_OPTION_ARG_NONE, &o.density,
      "Instead of the tables: per scenario and policy, the most VMs of the scenario's mix the "
      "host holds before a VM breaks its stall budget, an OOM kill, or host swap",
      NULL },
    { "vms", 0, 0, G_OPTION_ARG_INT, &o.vms,
      "Run the scenarios with this many VMs of their mix instead of their own (1 to " G_STRINGIFY (
        SIM_MAX_VMS) ")",
      "N" },
    { "max-vms", 0, 0, G_OPTION_ARG_INT, &o.max_vms,
      "Density: the most VMs to try (default and at most " G_STRINGIFY (SIM_MAX_VMS) ")", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx =
    g_option_context_new ("- memtide's planner and baselines on simulated guests");
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) policies = NULL;
  g_autoptr (GString) md = g_string_new (NULL);
  g_autoptr (GString) csv = g_string_new ("scenario,policy,host_gib_min,peak_gib,committed_gib_min,"
                                          "stall_s,oom_kills,host_oom_kills,host_swap_gib_min,"
                                          "short_episodes,grant_p50_s,grant_p95_s,actions\n");
  g_auto (GStrv) scen = NULL;
  g_autofree char *md_path = NULL;
  g_autofree char *csv_path = NULL;

  setlocale (LC_ALL, "C");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("memtide-sim: %s\n", error->message);
    return 2;
  }
  if (o.results == NULL)
    o.results = g_strdup ("build/bench-results");
  if (o.smoke && o.duration <= 0)
    o.duration = 120;
  policies = pick_policies (o.policies, &error);
  if (policies == NULL) {
    g_printerr ("memtide-sim: %s\n", error->message);
    return 2;
  }
  if (o.max_vms < 1 || o.max_vms > SIM_MAX_VMS) {
    g_printerr ("memtide-sim: --max-vms must be 1 to %d\n", SIM_MAX_VMS);
    return 2;
  }
  if (o.vms < 0 || o.vms > SIM_MAX_VMS || (o.vms > 0 && (o.trace != NULL || o.density))) {
    g_printerr ("memtide-sim: --vms must be 1 to %d, for the built-in scenarios' tables\n",
                SIM_MAX_VMS);
    return 2;
  }
  if (o.density && o.trace != NULL) {
    g_printerr ("memtide-sim: --density runs the built-in scenarios, not a trace\n");
    return 2;
  }
  if (o.trace != NULL)
    scen = g_strsplit ("trace", ",", -1);
  else if (o.scenarios == NULL || g_str_equal (o.scenarios, "all"))
    scen = g_strdupv ((char **) sim_scenario_names ());
  else
    scen = g_strsplit (o.scenarios, ",", -1);
  if (o.trace == NULL)
    for (char **s = scen; *s; s++)
      if (!g_strv_contains (sim_scenario_names (), *s)) {
        g_printerr ("memtide-sim: unknown scenario '%s' (known: %s)\n", *s,
                    g_strjoinv (", ", (char **) sim_scenario_names ()));
        return 2;
      }

  if (o.density) {
    int rc = 0;

    if (!run_density (&o, scen, policies, &error)) {
      g_printerr ("memtide-sim: %s\n", error->message);
      rc = 1;
    } else if (o.check && n_failures > 0) {
      g_printerr ("memtide-sim: %u check(s) failed\n", n_failures);
      rc = 1;
    }
    options_clear (&o);
    return rc;
  }
  g_string_append_printf (
    md,
    "## Simulator results\n\nmemtide-sim, seed %" G_GINT64_FORMAT
    ", free page reporting %s, %s.  Host figures count the memory the VMs "
    "occupy on the host (their guest memory RSS); committed counts their sizes.\n\n",
    o.seed, o.no_fpr ? "off" : "on for every policy",
    o.smoke ? "smoke durations" : "full durations");
  for (char **s = scen; *s; s++)
    if (!run_scenario (&o, *s, policies, md, csv, &error)) {
      g_printerr ("memtide-sim: %s: %s\n", *s, error->message);
      return 1;
    }
  md_path = g_build_filename (o.results, "sim", "results.md", NULL);
  csv_path = g_build_filename (o.results, "sim", "summary.csv", NULL);
  if (!g_file_set_contents (md_path, md->str, -1, &error)
      || !g_file_set_contents (csv_path, csv->str, -1, &error)) {
    g_printerr ("memtide-sim: %s\n", error->message);
    return 1;
  }
  fputs (md->str, stdout);
  g_printerr ("memtide-sim: wrote %s and %s\n", md_path, csv_path);
  if (o.check && n_failures > 0) {
    g_printerr ("memtide-sim: %u check(s) failed\n", n_failures);
    return 1;
  }
  options_clear (&o);
  return 0;
}
