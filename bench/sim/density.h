/* density.h: how many VMs of a scenario's mix one host holds with a
 * policy before the service level breaks (docs/benchmarks.md,
 * "Density"). */
#pragma once

#include "report.h"

typedef struct {
  const SimPolicy *policy;
  guint held;      /* the most VMs that kept the service level, 0 = not even one */
  guint broke_at;  /* the count that broke it (held + 1), 0 when max_vms held */
  char broke[200]; /* what broke there */
  SimResult at;    /* the figures of the run at `held` VMs (when held > 0) */
  guint runs;
  double seconds; /* wall time of the search */
} SimDensity;

/* Whether a run breaks the service level (a guest or host OOM kill, the
 * host swapping, a VM over its stall budget); if so, what, in why. */
gboolean sim_result_breaks (const SimResult *r, char *why, gsize len);

/* Adds VMs of scenario `name`'s mix (1, 2, 3, ...) to its host until a
 * run breaks the service level or max_vms held.  arg: the policy's
 * option (memtide's policy directory). */
gboolean sim_density_find (const char *name, const SimPolicy *p, const char *arg, guint64 seed,
                           double duration, gboolean fpr, guint max_vms, SimDensity *out,
                           GError **error);
void sim_density_clear (SimDensity *d);

/* The most VMs of the mix whose no-stall floor (each VM every second at
 * the size that holds its working set, hot page cache and guest kernel)
 * fits the host at its peak: what a policy that knew the future and
 * resized in no time could hold, at most max_vms. */
guint sim_density_floor_bound (const char *name, guint64 seed, double duration, guint max_vms);

/* One scenario's table. */
void sim_report_density (GString *md, const char *name, double duration, guint64 seed,
                         const SimDensity *d, guint n);
/* The summary over scenarios (rows) and policies (columns) with the
 * targets; d holds n_scen x n_pol results, scenario-major. */
void sim_report_density_summary (GString *md, char **scenarios, guint n_scen, const SimDensity *d,
                                 guint n_pol, const guint *bound);
