/* squeezed.c: XAPI's squeezed (Xen), implemented from the published
 * source xapi-project/xen-api ocaml/squeezed/lib/squeeze.ml and
 * src/squeezed.ml:
 *   - Proportional policy: every VM gets
 *       target = dynamic_min + gamma * (dynamic_max - dynamic_min)
 *     with one gamma for all, gamma = clamp ((host free + what every VM
 *     would free going to dynamic_min - host target) / sum of ranges, 0, 1);
 *   - two phases: while any VM must give memory back only those targets
 *     are set (freeing phase); the others (allocation phase) only once
 *     nothing is left to free;
 *   - the stuckness monitor: a VM that has not moved toward its target
 *     for 5 s is inactive and left out of the split;
 *   - balance-check-interval 10 s; a balance then iterates once a second
 *     until balanced, or until it cannot do more;
 *   - inaccuracy 4 MiB per domain ("has hit target"); a balance ends
 *     when every active VM hit its target and no target changes
 *     (Success or Failed in one_iteration).
 * Mapping to KVM: dynamic_min = 25% and dynamic_max = 100% of the VM's
 * maximum (memtide's default min and max), the host target is a 1 GiB
 * reserve (memtide's default), and a VM's memory_actual is its size: a
 * Xen domain owns its whole balloon target, so host free = total - host
 * - sum of sizes.  squeezed has no guest signal at all. */
#include <math.h>
#include "sim.h"

#define BALANCE_INTERVAL 10.0
#define ITERATION        1.0
#define STUCK_AFTER      5.0
#define INACCURACY       4.0    /* MiB */
#define HOST_TARGET      1024.0 /* MiB kept free */
#define DYN_MIN          0.25

typedef struct {
  double target[SIM_MAX_VMS];
  double last_actual[SIM_MAX_VMS];
  double progress_at[SIM_MAX_VMS];
  gboolean stuck[SIM_MAX_VMS];
  gboolean known[SIM_MAX_VMS];
  gboolean balancing;
  double next_check, next_iter;
} Squeezed;

static gpointer
squeezed_init (SimWorld *w, const char *arg, GError **error)
{
  Squeezed *q = g_new0 (Squeezed, 1);

  return q;
}

static double
host_free (const SimWorld *w)
{
  double f = w->sc->host_total - w->sc->host_base;

  for (guint i = 0; i < w->n; i++)
    f -= sim_vm_size (&w->vm[i]);
  return f;
}

static gboolean
hit (double actual, double target)
{
  return fabs (actual - target) <= INACCURACY;
}

/* Stuckness_monitor.update */
static void
update_stuck (Squeezed *q, SimWorld *w)
{
  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    double actual = sim_vm_size (v), delta;
    gboolean down, up;

    if (!v->running)
      continue;
    if (!q->known[i]) {
      q->known[i] = TRUE;
      q->target[i] = actual;
      q->last_actual[i] = actual;
      q->progress_at[i] = w->now;
    }
    delta = actual - q->last_actual[i];
    q->last_actual[i] = actual;
    /* direction_of_actual: "Down" means the target is above actual. */
    down = !hit (actual, q->target[i]) && q->target[i] > actual;
    up = !hit (actual, q->target[i]) && q->target[i] < actual;
    if ((delta > 0 && down) || (delta < 0 && up)) {
      q->progress_at[i] = w->now;
      q->stuck[i] = FALSE;
    }
    if ((down || up) && w->now - q->progress_at[i] > STUCK_AFTER)
      q->stuck[i] = TRUE;
  }
}

/* One Squeezer.one_iteration; TRUE when it adjusted targets. */
static gboolean
one_iteration (Squeezed *q, SimWorld *w, gboolean apply)
{
  double free_mem = host_free (w), max_free = free_mem, total_range = 0, gamma, surplus;
  double new_target[SIM_MAX_VMS];
  gboolean active[SIM_MAX_VMS], freeing_any = FALSE, all_hit = TRUE, changes = FALSE;

  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    double dmin = DYN_MIN * sim_vm_max (v), actual = sim_vm_size (v);

    active[i] = v->running && q->known[i] && !q->stuck[i];
    if (!active[i])
      continue;
    max_free += MAX (0.0, actual - dmin - 2 * INACCURACY); /* min_freeable */
    total_range += MAX (0.0, sim_vm_max (v) - dmin);
  }
  surplus = MAX (0.0, max_free - HOST_TARGET);
  gamma = total_range > 0 ? CLAMP (surplus / total_range, 0.0, 1.0) : 0.0;
  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    double dmin = DYN_MIN * sim_vm_max (v);

    if (!active[i])
      continue;
    new_target[i] = floor (dmin + gamma * (sim_vm_max (v) - dmin));
    if (!hit (sim_vm_size (v), new_target[i]) && new_target[i] < sim_vm_size (v))
      freeing_any = TRUE;
    if (!hit (sim_vm_size (v), q->target[i]))
      all_hit = FALSE;
    if (new_target[i] != q->target[i])
      changes = TRUE;
  }
  if (all_hit && !changes)
    return FALSE; /* Success, or Failed: nothing more to do */
  if (!apply)
    return TRUE;
  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    gboolean frees;

    if (!active[i])
      continue;
    frees = !hit (sim_vm_size (v), new_target[i]) && new_target[i] < sim_vm_size (v);
    /* Two phases: free first; allocate only when nothing is freeing. */
    if (freeing_any != frees)
      continue;
    if (new_target[i] != q->target[i]) {
      q->target[i] = new_target[i];
      w->m.actions++;
      sim_set_balloon (w, i, new_target[i]);
    }
  }
  return TRUE;
}

static void
squeezed_step (gpointer self, SimWorld *w)
{
  Squeezed *q = self;

  update_stuck (q, w);
  if (!q->balancing && w->now + 1e-9 >= q->next_check) {
    q->next_check = w->now + BALANCE_INTERVAL;
    /* is_host_memory_unbalanced; balance_memory stops once free memory
       * is within the tolerance of the target, or nothing can move. */
    if (one_iteration (q, w, FALSE)) {
      q->balancing = TRUE;
      q->next_iter = w->now;
    }
  }
  if (q->balancing && w->now + 1e-9 >= q->next_iter) {
    q->next_iter = w->now + ITERATION;
    if (!one_iteration (q, w, TRUE))
      q->balancing = FALSE;
  }
}

const SimPolicy sim_policy_squeezed = {
  .name = "squeezed",
  .label = "XAPI squeezed",
  .source =
    "xapi-project/xen-api ocaml/squeezed/lib/squeeze.ml (Proportional, two-phase, 10 s balance)",
  .init = squeezed_init,
  .step = squeezed_step,
  .report = NULL,
  .free = g_free,
};
