/* squeezed.c: XAPI's squeezed (Xen), implemented from its published
 * source, xapi-project/xen-api at e2ee48d (2026-08) ocaml/squeezed/:
 * lib/squeeze.ml (the policy and the balance loop), src/squeeze_xen.ml
 * (the host view and the constants), src/memory_server.ml (the balance
 * thread), and doc/content/squeezed/design/index.md.
 *
 *   - Proportional policy: one gamma for all active domains,
 *       target = dynamic_min + gamma * (dynamic_max - dynamic_min),
 *       gamma = clamp ((host free + what every active domain would free
 *       going to dynamic_min - host target) / sum of ranges, 0, 1);
 *   - two phases: while any target frees memory only the freeing targets
 *     are set; the others once nothing is left to free;
 *   - a balance loop: an iteration, then 1 s, until every active domain
 *     hit its target and no target changes; the balance thread sleeps
 *     10 s (balance-check-interval) and balances only when a fresh
 *     iteration would set a new target (is_host_memory_unbalanced);
 *   - stuckness: a domain that asked to move has not moved toward its
 *     target for more than 5 s is inactive for the rest of that balance
 *     (each balance starts a new monitor): left out of the split, its
 *     memory fixed, its target clipped to min (target, actual) within
 *     [dynamic_min, dynamic_max] so it cannot grow into memory given to
 *     others;
 *   - host target 72 MiB (SIM_SQUEEZED_HOST_TARGET), 4 KiB inaccuracy.
 *
 * Mapping to the simulator (KVM), where it has to differ:
 *   - dynamic_min = 25% and dynamic_max = 100% of the VM's memory
 *     (memtide's default min and max); a Xen toolstack sets both per VM;
 *   - host free = host memory - the host's own - the VMs' sizes, as on
 *     Xen where a domain owns every page of its balloon size (on KVM
 *     the host really spends only the guests' RSS);
 *   - a VM start: on Xen xenopsd reserves memory through squeezed before
 *     it builds the domain (reserve_memory_range), so others are squeezed
 *     first and the domain starts at its share.  The simulator starts a
 *     VM at its full size, so here a start begins a balance at once (the
 *     squeeze the reservation would have made) and the new VM is
 *     ballooned down to its share after booting.
 * squeezed has no guest signal at all. */
#include <math.h>
#include <string.h>
#include "squeezed.h"

#define BALANCE_INTERVAL 10.0 /* s, squeezed.conf balance-check-interval */
#define ITERATION        1.0  /* s, change_host_free_memory: io.wait 1. */
#define DYN_MIN          0.25 /* of the VM's memory */
#define TIME_EPS         1e-6 /* s: the world's clock is a sum of 0.1 s steps */

/* Stuckness_monitor's per-domain state. */
typedef struct {
  gboolean seen;
  double last_actual;
  double progress_at;
  gboolean stuck;
  gboolean declared; /* the clipped target was set for this stuck spell */
} Progress;

typedef struct {
  double target[SIM_MAX_VMS]; /* memory/target as squeezed last set it */
  gboolean known[SIM_MAX_VMS];
  Progress mon[SIM_MAX_VMS]; /* the monitor of the balance under way */
  gboolean balancing;
  double next_check, next_iter;
} Squeezed;

/* One Squeezer.one_iteration: the targets it proposes and its verdict. */
typedef struct {
  gboolean active[SIM_MAX_VMS];
  gboolean in_phase[SIM_MAX_VMS]; /* in the phase whose targets are set */
  double target[SIM_MAX_VMS];
  gboolean new_target; /* a target of the phase differs from memory/target */
  gboolean adjust;     /* AdjustTargets, not Success or Failed */
} Iteration;

double
sim_squeezed_dynamic_min (const SimVm *v)
{
  return DYN_MIN * sim_vm_max (v);
}

double
sim_squeezed_dynamic_max (const SimVm *v)
{
  return sim_vm_max (v);
}

double
sim_squeezed_host_free (const SimWorld *w)
{
  double f = w->sc->host_total - w->sc->host_base;

  for (guint i = 0; i < w->n; i++)
    f -= sim_vm_size (&w->vm[i]);
  return f;
}

gboolean
sim_squeezed_balancing (gconstpointer self)
{
  const Squeezed *q = self;

  return q->balancing;
}

gboolean
sim_squeezed_stuck (gconstpointer self, guint vm)
{
  const Squeezed *q = self;

  return q->balancing && q->mon[vm].stuck;
}

double
sim_squeezed_target (gconstpointer self, guint vm)
{
  const Squeezed *q = self;

  return q->target[vm];
}

static gpointer
squeezed_init (SimWorld *w, const char *arg, GError **error)
{
  Squeezed *q = g_new0 (Squeezed, 1);

  /* The balance thread sleeps before its first check. */
  q->next_check = BALANCE_INTERVAL;
  return q;
}

static gboolean
hit (double actual, double target)
{
  return fabs (actual - target) <= SIM_SQUEEZED_INACCURACY;
}

/* New VMs become domains whose memory/target is what they booted with.
 * TRUE when one started while squeezed was running (a reservation). */
static gboolean
track_domains (Squeezed *q, const SimWorld *w)
{
  gboolean started = FALSE;

  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];

    if (!v->running || q->known[i])
      continue;
    q->known[i] = TRUE;
    q->target[i] = sim_vm_size (v);
    if (v->spec->start > 0)
      started = TRUE;
  }
  return started;
}

/* Stuckness_monitor.update: a domain first seen is making progress now. */
static void
monitor_update (Squeezed *q, const SimWorld *w)
{
  for (guint i = 0; i < w->n; i++) {
    Progress *p = &q->mon[i];
    double actual = sim_vm_size (&w->vm[i]), target = q->target[i], delta;
    gboolean request = !hit (actual, target);

    if (!q->known[i])
      continue;
    if (!p->seen)
      *p = (Progress){ .seen = TRUE, .last_actual = actual, .progress_at = w->now };
    delta = actual - p->last_actual;
    p->last_actual = actual;
    if (request && ((delta > 0 && target > actual) || (delta < 0 && target < actual))) {
      p->progress_at = w->now;
      p->stuck = FALSE;
      p->declared = FALSE;
    }
    if (request && w->now - p->progress_at > SIM_SQUEEZED_STUCK_AFTER + TIME_EPS)
      p->stuck = TRUE;
  }
}

/* Squeezer.one_iteration with Proportional.compute_target_adjustments. */
static void
one_iteration (Squeezed *q, const SimWorld *w, Iteration *it)
{
  double max_free = sim_squeezed_host_free (w), total_range = 0, surplus, gamma;
  gboolean freeing[SIM_MAX_VMS], any_freeing = FALSE, reached = TRUE;

  monitor_update (q, w);
  *it = (Iteration){ 0 };
  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    double dmin = sim_squeezed_dynamic_min (v);

    it->active[i] = q->known[i] && !q->mon[i].stuck;
    if (!it->active[i])
      continue;
    /* min_freeable: what going to dynamic_min surely frees. */
    max_free += MAX (0.0, sim_vm_size (v) - dmin - 2 * SIM_SQUEEZED_INACCURACY);
    total_range += MAX (0.0, sim_squeezed_dynamic_max (v) - dmin);
  }
  surplus = MAX (0.0, max_free - SIM_SQUEEZED_HOST_TARGET);
  gamma = total_range > 0 ? CLAMP (surplus / total_range, 0.0, 1.0) : 0.0;
  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    double actual = sim_vm_size (v);
    /* squeezed counts whole KiB and truncates gamma's share. */
    double dmin_kib = floor (sim_squeezed_dynamic_min (v) * 1024.0);
    double range_kib = MAX (0.0, floor (sim_squeezed_dynamic_max (v) * 1024.0) - dmin_kib);

    if (!it->active[i])
      continue;
    it->target[i] = (dmin_kib + floor (gamma * range_kib)) / 1024.0;
    freeing[i] = !hit (actual, it->target[i]) && it->target[i] < actual;
    any_freeing |= freeing[i];
    if (!hit (actual, q->target[i]))
      reached = FALSE;
  }
  for (guint i = 0; i < w->n; i++) {
    if (!it->active[i])
      continue;
    /* Two phases: free first, so free memory never runs out between a
     * domain giving and another taking. */
    it->in_phase[i] = freeing[i] == any_freeing;
    if (it->in_phase[i] && it->target[i] != q->target[i])
      it->new_target = TRUE;
  }
  it->adjust = !reached || it->new_target;
}

static void
set_target (Squeezed *q, SimWorld *w, guint i, double target)
{
  if (target == q->target[i])
    return;
  q->target[i] = target;
  w->m.actions++;
  sim_set_balloon (w, i, target);
}

/* AdjustTargets, and the maxmem rule for a domain just declared
 * inactive: it may still shrink toward its target but not grow. */
static void
apply (Squeezed *q, SimWorld *w, const Iteration *it)
{
  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    Progress *p = &q->mon[i];

    if (it->in_phase[i])
      set_target (q, w, i, it->target[i]);
    else if (q->known[i] && p->stuck && !p->declared) {
      double clip = MIN (q->target[i], sim_vm_size (v));

      p->declared = TRUE;
      set_target (q, w, i,
                  CLAMP (clip, sim_squeezed_dynamic_min (v), sim_squeezed_dynamic_max (v)));
    }
  }
}

static gboolean
all_reached (const Squeezed *q, const SimWorld *w)
{
  for (guint i = 0; i < w->n; i++)
    if (q->known[i] && !hit (sim_vm_size (&w->vm[i]), q->target[i]))
      return FALSE;
  return TRUE;
}

static void
squeezed_step (gpointer self, SimWorld *w)
{
  Squeezed *q = self;
  Iteration it;
  gboolean reservation = track_domains (q, w);

  if (!q->balancing) {
    gboolean start = FALSE;

    if (reservation) {
      /* change_host_free_memory returns at once only when there is
       * already enough free memory and every target is reached. */
      start = sim_squeezed_host_free (w) < SIM_SQUEEZED_HOST_TARGET || !all_reached (q, w);
    } else if (w->now + TIME_EPS >= q->next_check) {
      /* is_host_memory_unbalanced: a fresh iteration sets a new target. */
      memset (q->mon, 0, sizeof q->mon);
      one_iteration (q, w, &it);
      start = it.new_target;
      q->next_check = w->now + BALANCE_INTERVAL;
    }
    if (start) {
      memset (q->mon, 0, sizeof q->mon); /* Squeezer.make */
      q->balancing = TRUE;
      q->next_iter = w->now;
    }
  }
  if (q->balancing && w->now + TIME_EPS >= q->next_iter) {
    one_iteration (q, w, &it);
    if (it.adjust) {
      apply (q, w, &it);
      q->next_iter = w->now + ITERATION;
    } else {
      /* Success, or Failed (a domain stuck, or dynamic_min too high):
       * either way the balance ends and the thread sleeps again. */
      q->balancing = FALSE;
      q->next_check = w->now + BALANCE_INTERVAL;
    }
  }
}

const SimPolicy sim_policy_squeezed = {
  .name = "squeezed",
  .label = "XAPI squeezed",
  .source = "xapi-project/xen-api ocaml/squeezed (lib/squeeze.ml Proportional, two-phase, "
            "5 s stuckness, 10 s balance check; src/squeeze_xen.ml 72 MiB host target)",
  .init = squeezed_init,
  .step = squeezed_step,
  .report = NULL,
  .free = g_free,
};
