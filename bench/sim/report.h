/* report.h: one run's figures, the markdown tables, the time series and
 * the gnuplot plot of a scenario. */
#pragma once

#include <stdio.h>
#include "sim.h"

typedef struct {
  const SimPolicy *policy;
  double vm_gib_min;        /* VMs' host memory integrated, GiB*min */
  double committed_gib_min; /* VMs' sizes integrated */
  double floor_gib_min;     /* the no-stall floor integrated (the same for every policy) */
  double peak_gib;          /* VMs' host memory at its peak */
  double peak_committed_gib;
  double stall_s;
  guint oom_kills;
  guint host_oom_kills;
  double host_swap_gib_min;
  guint episodes;              /* demand rises that found the VM short */
  double grant_p50, grant_p95; /* s, NAN without episodes */
  guint open_episodes;         /* still short at the end */
  guint killed_episodes;       /* ended by an OOM kill */
  guint actions;
  double peak_host_swap_mib;
  /* The stall budget's view: the most one VM stalled within any
   * SIM_STALL_WINDOW seconds, which VM and when that window ended. */
  double worst_window_s;
  char worst_vm[32];
  double worst_at;
  char *series; /* path of the time series (TSV), NULL when none */
} SimResult;

/* The stall budget the tables and the density search hold every VM to,
 * the same as memtide's default policy (docs/policy.md, stall-budget and
 * stall-window): at most 1% of the time stalled (PSI some) within any
 * 10 minutes. */
#define SIM_STALL_BUDGET 0.01
#define SIM_STALL_WINDOW 600.0

/* Runs policy p (arg: its option, e.g. memtide's policy directory) on
 * sc from start to end; writes the time series to `series` unless it
 * is NULL. */
gboolean sim_run (const SimScenario *sc, const SimPolicy *p, const char *arg, gboolean fpr,
                  const char *series, SimResult *r, GError **error);

void sim_result_from_world (SimResult *r, const SimPolicy *p, const SimWorld *w);
void sim_result_clear (SimResult *r);

/* Time series: one row per second. */
FILE *sim_series_open (const char *path, const SimWorld *w, GError **error);
void sim_series_row (FILE *f, const SimWorld *w);

/* Markdown table of one scenario's results, and the target check. */
void sim_report_table (GString *md, const SimScenario *sc, const SimResult *res, guint n);
/* gnuplot script next to the series; renders PNG when gnuplot exists.
 * FALSE (with a message in *why) when no PNG was made. */
gboolean sim_report_plot (const char *dir, const SimScenario *sc, const SimResult *res, guint n,
                          char **why);
