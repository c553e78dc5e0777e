/* density.c: the density search and its tables.  A VM mix is added to
 * its scenario's host one VM at a time, each count a whole run from the
 * start, until the first run in which a VM breaks its stall budget, is
 * OOM-killed (by its guest kernel or the host's), or the host swaps. */
#include <math.h>
#include <stdio.h>
#include "density.h"

/* The host swapped: more than float noise of guest memory swapped out. */
#define HOST_SWAP_MIB 1.0

gboolean
sim_result_breaks (const SimResult *r, char *why, gsize len)
{
  if (r->host_oom_kills > 0)
    g_snprintf (why, len, "the host OOM-killed %u VM(s)", r->host_oom_kills);
  else if (r->oom_kills > 0)
    g_snprintf (why, len, "%u guest OOM kill(s)", r->oom_kills);
  else if (r->peak_host_swap_mib >= HOST_SWAP_MIB)
    g_snprintf (why, len, "the host swapped (up to %.0f MiB of guest memory)",
                r->peak_host_swap_mib);
  else if (r->worst_window_s > SIM_STALL_BUDGET * SIM_STALL_WINDOW)
    g_snprintf (why, len, "%s stalled %.1f s within %.0f s up to t = %.0f s (budget %.1f s)",
                r->worst_vm, r->worst_window_s, SIM_STALL_WINDOW, r->worst_at,
                SIM_STALL_BUDGET * SIM_STALL_WINDOW);
  else
    return FALSE;
  return TRUE;
}

gboolean
sim_density_find (const char *name, const SimPolicy *p, const char *arg, guint64 seed,
                  double duration, gboolean fpr, guint max_vms, SimDensity *out, GError **error)
{
  gint64 t0 = g_get_monotonic_time ();
  /* The baselines drive the balloon only, as in the tables. */
  gboolean balloon_only = !g_str_has_prefix (p->name, "memtide");

  *out = (SimDensity){ .policy = p };
  max_vms = MIN (max_vms, (guint) SIM_MAX_VMS);
  for (guint n = 1; n <= max_vms; n++) {
    SimScenario *sc = g_new0 (SimScenario, 1);
    SimResult r;
    gboolean ok;

    sim_scenario_build (sc, name, seed, duration, n, balloon_only);
    ok = sim_run (sc, p, arg, fpr, NULL, &r, error);
    sim_scenario_clear (sc);
    g_free (sc);
    if (!ok)
      return FALSE;
    out->runs++;
    if (sim_result_breaks (&r, out->broke, sizeof out->broke)) {
      out->broke_at = n;
      sim_result_clear (&r);
      break;
    }
    sim_result_clear (&out->at);
    out->at = r;
    out->held = n;
  }
  out->seconds = (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC;
  return TRUE;
}

guint
sim_density_floor_bound (const char *name, guint64 seed, double duration, guint max_vms)
{
  guint fits = 0;

  for (guint n = 1; n <= MIN (max_vms, (guint) SIM_MAX_VMS); n++) {
    SimScenario *sc = g_new0 (SimScenario, 1);
    gboolean ok;

    sim_scenario_build (sc, name, seed, duration, n, FALSE);
    ok = sim_scenario_floor_peak (sc) <= sc->host_total - sc->host_base;
    sim_scenario_clear (sc);
    g_free (sc);
    if (!ok)
      break;
    fits = n;
  }
  return fits;
}

void
sim_density_clear (SimDensity *d)
{
  sim_result_clear (&d->at);
}

static gboolean
is_baseline (const SimPolicy *p)
{
  return !g_str_has_prefix (p->name, "memtide");
}

static const SimDensity *
best_baseline (const SimDensity *d, guint n)
{
  const SimDensity *best = NULL;

  for (guint k = 0; k < n; k++)
    if (is_baseline (d[k].policy) && (best == NULL || d[k].held > best->held))
      best = &d[k];
  return best;
}

static const SimDensity *
find (const SimDensity *d, guint n, const char *policy)
{
  for (guint k = 0; k < n; k++)
    if (g_str_equal (d[k].policy->name, policy))
      return &d[k];
  return NULL;
}

void
sim_report_density (GString *md, const char *name, double duration, guint64 seed,
                    const SimDensity *d, guint n)
{
  SimScenario sc;
  const SimDensity *stat = find (d, n, "static");

  sim_scenario_build (&sc, name, seed, duration, 1, FALSE);
  g_string_append_printf (md, "### %s: %s\n\n", name, sc.title);
  g_string_append_printf (
    md,
    "Host %.0f GiB (%.0f GiB for the host itself), %.0f s per run, seed %" G_GUINT64_FORMAT
    "; VMs of the scenario's mix added one at a time.  Figures of the run at the count held.\n\n",
    sc.host_total / 1024, sc.host_base / 1024, sc.duration, seed);
  sim_scenario_clear (&sc);
  g_string_append (md, "| policy | VMs held | vs static | broke at | what broke | "
                       "host GiB·min | committed GiB·min | peak GiB | peak committed GiB | "
                       "stall s | worst VM stall in 10 min s |\n");
  g_string_append (md, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
  for (guint k = 0; k < n; k++) {
    const SimDensity *r = &d[k];
    g_autofree char *vs = stat != NULL && stat->held > 0
                            ? g_strdup_printf ("%.2fx", (double) r->held / stat->held)
                            : g_strdup ("–");
    g_autofree char *broke_at = r->broke_at ? g_strdup_printf ("%u", r->broke_at) : g_strdup ("–");

    if (r->held == 0)
      g_string_append_printf (md, "| %s | 0 | %s | %s | %s | – | – | – | – | – | – |\n",
                              r->policy->label, vs, broke_at, r->broke);
    else
      g_string_append_printf (
        md, "| %s | %u | %s | %s | %s | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f |\n",
        r->policy->label, r->held, vs, broke_at,
        r->broke_at ? r->broke : "nothing (the most tried)", r->at.vm_gib_min,
        r->at.committed_gib_min, r->at.peak_gib, r->at.peak_committed_gib, r->at.stall_s,
        r->at.worst_window_s);
  }
  g_string_append (md, "\n");
}

void
sim_report_density_summary (GString *md, char **scenarios, guint n_scen, const SimDensity *d,
                            guint n_pol, const guint *bound)
{
  double sum_ratio = 0, sum_bound = 0;
  guint n_ratio = 0, n_ge = 0, n_mt = 0;

  g_string_append (md, "### Summary: VMs held per scenario\n\n| scenario |");
  for (guint k = 0; k < n_pol; k++)
    g_string_append_printf (md, " %s |", d[k].policy->label);
  g_string_append (
    md, " memtide / best baseline | no-stall floor fits | that / best baseline |\n|---|");
  for (guint k = 0; k <= n_pol + 2; k++)
    g_string_append (md, "---:|");
  g_string_append (md, "\n");
  for (guint s = 0; s < n_scen; s++) {
    const SimDensity *row = &d[s * n_pol];
    const SimDensity *best = best_baseline (row, n_pol);
    const SimDensity *mt = find (row, n_pol, "memtide");

    g_string_append_printf (md, "| %s |", scenarios[s]);
    for (guint k = 0; k < n_pol; k++)
      g_string_append_printf (md, " %u%s |", row[k].held, row[k].broke_at ? "" : "+");
    if (best != NULL && mt != NULL && best->held > 0) {
      double ratio = (double) mt->held / best->held;

      g_string_append_printf (md, " %.2fx (%s) | %u | %.2fx |\n", ratio, best->policy->label,
                              bound[s], (double) bound[s] / best->held);
      sum_ratio += ratio;
      sum_bound += (double) bound[s] / best->held;
      n_ratio++;
      n_ge += mt->held >= best->held;
      n_mt++;
    } else
      g_string_append_printf (md, " – | %u | – |\n", bound[s]);
  }
  g_string_append (
    md, "\n(\"+\": held the most VMs tried.)  \"No-stall floor fits\": the most VMs "
        "whose no-stall floor (each VM every second at the size that holds its "
        "working set, hot page cache and guest kernel) fits the host at its peak, "
        "without any headroom: about the most a policy that knew the future and resized in "
        "no time could hold without stalling.\n\n");
  if (n_ratio > 0)
    g_string_append_printf (
      md,
      "Targets: memtide holds at least as many VMs as the best baseline on %u of %u "
      "scenarios %s; on average %.2fx the best baseline %s (the no-stall floor bound averages "
      "%.2fx).\n\n",
      n_ge, n_mt, n_ge == n_mt ? "**met**" : "**missed**", sum_ratio / n_ratio,
      sum_ratio / n_ratio >= 1.25 ? "**met** (≥ 1.25x)" : "**missed** (< 1.25x)",
      sum_bound / n_ratio);
}
