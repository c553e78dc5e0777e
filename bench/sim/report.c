/* report.c: figures of a run, markdown tables, time series, plots. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gio/gio.h>
#include "report.h"

#define MIB_S_TO_GIB_MIN (1.0 / 1024.0 / 60.0)

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

/* Nearest rank. */
static double
percentile (GArray *sorted, double p)
{
  guint k;

  if (sorted->len == 0)
    return NAN;
  k = (guint) ceil (p / 100.0 * sorted->len);
  k = CLAMP (k, 1u, sorted->len);
  return g_array_index (sorted, double, k - 1);
}

void
sim_result_from_world (SimResult *r, const SimPolicy *p, const SimWorld *w)
{
  g_autoptr (GArray) g = g_array_copy (w->m.grant_s);

  g_array_sort (g, cmp_double);
  *r = (SimResult){
    .policy = p,
    .vm_gib_min = w->m.vm_rss_mib_s * MIB_S_TO_GIB_MIN,
    .committed_gib_min = w->m.committed_mib_s * MIB_S_TO_GIB_MIN,
    .floor_gib_min = w->m.floor_mib_s * MIB_S_TO_GIB_MIN,
    .peak_gib = w->m.peak_rss / 1024.0,
    .peak_committed_gib = w->m.peak_committed / 1024.0,
    .stall_s = w->m.stall_s,
    .oom_kills = w->m.oom_kills,
    .host_oom_kills = w->m.host_oom_kills,
    .host_swap_gib_min = w->m.host_swap_mib_s * MIB_S_TO_GIB_MIN,
    .episodes = g->len,
    .grant_p50 = percentile (g, 50),
    .grant_p95 = percentile (g, 95),
    .actions = w->m.actions,
    .killed_episodes = w->m.killed_episodes,
  };
  r->peak_host_swap_mib = w->m.peak_host_swap;
  for (guint i = 0; i < w->n; i++) {
    double at, s = sim_vm_worst_window (&w->vm[i], SIM_STALL_WINDOW, &at);

    if (w->vm[i].short_now && w->vm[i].short_from_rise)
      r->open_episodes++;
    if (s > r->worst_window_s || r->worst_vm[0] == '\0') {
      r->worst_window_s = s;
      r->worst_at = at;
      g_strlcpy (r->worst_vm, w->vm[i].spec->name, sizeof r->worst_vm);
    }
  }
}

void
sim_result_clear (SimResult *r)
{
  g_clear_pointer (&r->series, g_free);
}

FILE *
sim_series_open (const char *path, const SimWorld *w, GError **error)
{
  FILE *f = fopen (path, "w");

  if (f == NULL) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot write %s: %s", path,
                 g_strerror (errno));
    return NULL;
  }
  fprintf (f, "# t_s\tvm_host_mib\tcommitted_mib\thost_swap_mib");
  for (guint i = 0; i < w->n; i++)
    fprintf (f, "\t%s_size\t%s_rss\t%s_ws", w->vm[i].spec->name, w->vm[i].spec->name,
             w->vm[i].spec->name);
  fprintf (f, "\n");
  return f;
}

void
sim_series_row (FILE *f, const SimWorld *w)
{
  double rss = 0, committed = 0;

  for (guint i = 0; i < w->n; i++) {
    rss += w->vm[i].running ? w->vm[i].rss : 0;
    committed += sim_vm_size (&w->vm[i]);
  }
  fprintf (f, "%.0f\t%.1f\t%.1f\t%.1f", w->now, rss, committed, w->host_swap_used);
  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];

    fprintf (f, "\t%.1f\t%.1f\t%.1f", sim_vm_size (v), v->running ? v->rss : 0.0,
             v->running ? v->want : 0.0);
  }
  fprintf (f, "\n");
}

/* ---- tables ------------------------------------------------------------ */

static gboolean
is_baseline (const SimPolicy *p)
{
  return !g_str_has_prefix (p->name, "memtide");
}

static char *
fmt_s (double v)
{
  if (isnan (v))
    return g_strdup ("–");
  return g_strdup_printf ("%.1f", v);
}

void
sim_report_table (GString *md, const SimScenario *sc, const SimResult *res, guint n)
{
  const SimResult *best = NULL, *stat = NULL, *mt = NULL;
  double sum_max = 0, slowest_base_p95 = NAN;

  for (guint i = 0; i < sc->n_vms; i++)
    sum_max += sc->vms[i].boot + sc->vms[i].vmem_size;
  g_string_append_printf (md, "### %s: %s\n\n", sc->name, sc->title);
  g_string_append_printf (
    md,
    "%u VMs (%.0f GiB configured), host %.0f GiB (%.0f GiB for the host itself), "
    "%.0f s",
    sc->n_vms, sum_max / 1024, sc->host_total / 1024, sc->host_base / 1024, sc->duration);
  if (!g_str_equal (sc->name, "trace"))
    g_string_append_printf (md, ", seed %" G_GUINT64_FORMAT, sc->seed);
  g_string_append (md, ".\n\n");
  g_string_append (md,
                   "| policy | host GiB·min | committed GiB·min | peak GiB | stall s | "
                   "worst VM stall in 10 min s | OOM kills | host swap GiB·min | short episodes | "
                   "grant p50 s | grant p95 s | actions |\n");
  g_string_append (md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (guint k = 0; k < n; k++) {
    const SimResult *r = &res[k];
    g_autofree char *p50 = fmt_s (r->grant_p50);
    g_autofree char *p95 = fmt_s (r->grant_p95);
    g_autofree char *host_oom =
      r->host_oom_kills ? g_strdup_printf (" (+%u host)", r->host_oom_kills) : g_strdup ("");
    g_autoptr (GString) notes = g_string_new (NULL);

    if (r->open_episodes)
      g_string_append_printf (notes, " (+%u open)", r->open_episodes);
    if (r->killed_episodes)
      g_string_append_printf (notes, " (+%u ended by OOM)", r->killed_episodes);

    g_string_append_printf (
      md, "| %s | %.1f | %.1f | %.2f | %.1f | %.1f | %u%s | %.2f | %u%s | %s | %s | %u |\n",
      r->policy->label, r->vm_gib_min, r->committed_gib_min, r->peak_gib, r->stall_s,
      r->worst_window_s, r->oom_kills, host_oom, r->host_swap_gib_min, r->episodes, notes->str, p50,
      p95, r->actions);
    if (is_baseline (r->policy) && (best == NULL || r->vm_gib_min < best->vm_gib_min))
      best = r;
    if (is_baseline (r->policy) && r->episodes > 0
        && (isnan (slowest_base_p95) || r->grant_p95 > slowest_base_p95))
      slowest_base_p95 = r->grant_p95;
    if (g_str_equal (r->policy->name, "static"))
      stat = r;
    if (g_str_equal (r->policy->name, "memtide"))
      mt = r;
  }
  g_string_append (md, "\n");
  /* The cheapest baseline can be cheap because it starves guests: also
   * name the cheapest one that stalled no more than static (+10 s) and
   * killed nothing static did not. */
  if (mt != NULL && stat != NULL) {
    const SimResult *harmless = NULL;

    for (guint k = 0; k < n; k++)
      if (is_baseline (res[k].policy) && res[k].stall_s <= stat->stall_s + 10.0
          && res[k].oom_kills + res[k].host_oom_kills <= stat->oom_kills + stat->host_oom_kills
          && (harmless == NULL || res[k].vm_gib_min < harmless->vm_gib_min))
        harmless = &res[k];
    if (harmless != NULL && harmless != best)
      g_string_append_printf (
        md,
        "Against the cheapest baseline that did not stall or kill more than static "
        "(%s): host GiB·min %.2fx, stall %.1f s vs %.1f s.  ",
        harmless->policy->label, mt->vm_gib_min / MAX (harmless->vm_gib_min, 1e-9), mt->stall_s,
        harmless->stall_s);
  }
  if (mt != NULL && best != NULL) {
    double ratio = mt->vm_gib_min / MAX (best->vm_gib_min, 1e-9);
    gboolean oom_ok = stat == NULL || stat->oom_kills + stat->host_oom_kills > 0
                      || mt->oom_kills + mt->host_oom_kills == 0;
    g_autofree char *slowest = fmt_s (slowest_base_p95);

    g_string_append_printf (
      md,
      "Targets: host GiB·min %.2fx the best baseline (%s) %s; "
      "stall %.1f s vs %.1f s %s; OOM kills %s; ",
      ratio, best->policy->label, ratio <= 0.8 ? "**met** (≤ 0.8x)" : "**missed** (> 0.8x)",
      mt->stall_s, best->stall_s, mt->stall_s <= best->stall_s + 1e-6 ? "**met**" : "**missed**",
      oom_ok ? "**met**" : "**missed** (static has none)");

    if (mt->episodes == 0)
      g_string_append (md, "demand-to-grant: memtide never left a rising working set short.\n\n");
    else
      g_string_append_printf (
        md, "demand-to-grant p95 %.1f s %s (%s%s%s).\n\n", mt->grant_p95,
        mt->grant_p95 < 2.0 ? "**met** (< 2 s)" : "**missed** (≥ 2 s)",
        isnan (slowest_base_p95) ? "no baseline left a rising working set short"
                                 : "slowest baseline p95 ",
        isnan (slowest_base_p95) ? "" : slowest, isnan (slowest_base_p95) ? "" : " s");
    /* The workload's own bound: below it any policy stalls. */
    g_string_append_printf (
      md,
      "No-stall floor (each VM every second at the size that holds its working set, "
      "hot page cache and guest kernel): %.1f GiB·min; memtide %.2fx of it",
      mt->floor_gib_min, mt->vm_gib_min / MAX (mt->floor_gib_min, 1e-9));
    if (0.8 * best->vm_gib_min < mt->floor_gib_min)
      g_string_append_printf (md,
                              "; 0.8x the best baseline is %.1f GiB·min, below the floor: "
                              "reachable only by stalling",
                              0.8 * best->vm_gib_min);
    g_string_append (md, ".\n\n");
  }
}

/* ---- plot -------------------------------------------------------------- */

gboolean
sim_report_plot (const char *dir, const SimScenario *sc, const SimResult *res, guint n, char **why)
{
  g_autofree char *gp = g_build_filename (dir, "plot.gp", NULL);
  g_autofree char *png = g_build_filename (dir, "plot.png", NULL);
  g_autofree char *gnuplot = g_find_program_in_path ("gnuplot");
  g_autoptr (GString) s = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  const SimResult *mt = NULL, *best = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  for (guint k = 0; k < n; k++) {
    if (g_str_equal (res[k].policy->name, "memtide"))
      mt = &res[k];
    if (is_baseline (res[k].policy) && (best == NULL || res[k].vm_gib_min < best->vm_gib_min))
      best = &res[k];
  }
  g_string_append_printf (s, "# %s: regenerate with `gnuplot plot.gp` in this directory\n",
                          sc->name);
  g_string_append (s, "set terminal pngcairo size 1400,1200 noenhanced font ',10'\n"
                      "set output 'plot.png'\nset datafile separator '\\t'\n"
                      "set key outside right top\nset grid\nset xlabel 'time (s)'\n"
                      "set ylabel 'GiB'\n");
  g_string_append_printf (s, "set multiplot layout %d,1 title '%s: %s'\n",
                          (mt ? 1 : 0) + (best ? 1 : 0) + 1, sc->name, sc->title);
  g_string_append_printf (
    s, "set title 'host memory used by the VMs (host total %.0f GiB, VMs may use %.0f GiB)'\n",
    sc->host_total / 1024, (sc->host_total - sc->host_base) / 1024);
  g_string_append (s, "plot ");
  for (guint k = 0; k < n; k++)
    g_string_append_printf (s, "%s'%s.tsv' using 1:($2/1024) with lines lw 2 title '%s'",
                            k ? ", " : "", res[k].policy->name, res[k].policy->label);
  g_string_append_printf (s, ", %.3f with lines dt 2 lc rgb 'black' title 'host total'\n",
                          (sc->host_total - sc->host_base) / 1024);
  for (guint pass = 0; pass < 2; pass++) {
    const SimResult *r = pass == 0 ? mt : best;

    if (r == NULL)
      continue;
    g_string_append_printf (s, "set title '%s: per-VM size (solid) and working set (dotted)'\n",
                            r->policy->label);
    g_string_append (s, "plot ");
    for (guint i = 0; i < sc->n_vms; i++)
      g_string_append_printf (s,
                              "%s'%s.tsv' using 1:($%u/1024) with lines lc %u title '%s', "
                              "'' using 1:($%u/1024) with lines dt 3 lc %u notitle",
                              i ? ", " : "", r->policy->name, 5 + 3 * i, i + 1, sc->vms[i].name,
                              7 + 3 * i, i + 1);
    g_string_append (s, "\n");
  }
  g_string_append (s, "unset multiplot\n");
  if (!g_file_set_contents (gp, s->str, -1, &error)) {
    *why = g_strdup (error->message);
    return FALSE;
  }
  if (gnuplot == NULL) {
    *why = g_strdup ("gnuplot not found (apt-get install gnuplot-nox): wrote plot.gp only");
    return FALSE;
  }
  {
    const char *argv[] = { gnuplot, "plot.gp", NULL };

    if (!g_spawn_sync (dir, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                       &error)
        || !g_spawn_check_wait_status (status, &error)) {
      *why =
        g_strdup_printf ("gnuplot failed: %s%s%s", error->message, err ? ": " : "", err ? err : "");
      return FALSE;
    }
  }
  return g_file_test (png, G_FILE_TEST_EXISTS);
}
