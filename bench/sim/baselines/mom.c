/* mom.c: oVirt MOM with its shipped balloon policy, implemented from the
 * published sources:
 *   - oVirt/mom doc/balloon.rules (the Auto-Balloon policy): constants
 *     pressure_threshold 0.20, pressure_critical 0.05,
 *     min_guest_free_percent 0.20, max_balloon_change_percent 0.05,
 *     min_balloon_change_percent 0.0025; shrink_guest / grow_guest as
 *     written there (the version whose balloon_min is
 *     max (guest.balloon_min, used + free% * cur));
 *   - oVirt/mom doc/mom-balloon.conf: policy-engine-interval 10 s,
 *     host- and guest-monitor-interval 5 s, sample-history-length 10
 *     (StatAvg is the mean of the last 10 samples);
 *   - mom/Collectors/HostMemory.py: mem_available = MemTotal,
 *     mem_free = MemFree + Buffers + Cached;
 *   - guest stats from libvirt balloon stats: balloon_cur = actual,
 *     mem_unused = "unused" (MemFree), balloon_max = the domain's
 *     maximum; balloon_min = the guaranteed memory from oVirt metadata,
 *     0 on a plain libvirt host (as here).
 */
#include "sim.h"

#define POLICY_INTERVAL  10.0
#define MONITOR_INTERVAL 5.0
#define HISTORY          10

#define PRESSURE_THRESHOLD     0.20
#define PRESSURE_CRITICAL      0.05
#define MIN_GUEST_FREE_PERCENT 0.20
#define MAX_BALLOON_CHANGE     0.05
#define MIN_BALLOON_CHANGE     0.0025

typedef struct {
  double v[HISTORY];
  guint len, head;
} Avg;

typedef struct {
  Avg host_free;
  Avg cur[SIM_MAX_VMS], unused[SIM_MAX_VMS];
  double next_monitor, next_policy;
} Mom;

static void
avg_push (Avg *a, double x)
{
  a->v[a->head] = x;
  a->head = (a->head + 1) % HISTORY;
  if (a->len < HISTORY)
    a->len++;
}

static double
avg_get (const Avg *a)
{
  double s = 0;

  for (guint i = 0; i < a->len; i++)
    s += a->v[i];
  return a->len ? s / a->len : 0;
}

static gpointer
mom_init (SimWorld *w, const char *arg, GError **error)
{
  Mom *m = g_new0 (Mom, 1);

  /* MOM's first policy run comes after its first collections. */
  m->next_policy = POLICY_INTERVAL;
  return m;
}

static gboolean
change_big_enough (double cur, double new_val)
{
  return ABS (new_val - cur) > MIN_BALLOON_CHANGE * cur;
}

static void
set_target (SimWorld *w, guint i, double target)
{
  w->m.actions++;
  sim_set_balloon (w, i, target);
}

static void
mom_step (gpointer self, SimWorld *w)
{
  Mom *m = self;
  SimHostView h;
  double host_free_percent, guest_free_percent;

  if (w->now + 1e-9 >= m->next_monitor) {
    m->next_monitor += MONITOR_INTERVAL;
    sim_host_view (w, &h);
    avg_push (&m->host_free, h.mem_free);
    for (guint i = 0; i < w->n; i++)
      if (w->vm[i].running && w->vm[i].stats.time >= 0) {
        avg_push (&m->cur[i], sim_vm_size (&w->vm[i]));
        avg_push (&m->unused[i], w->vm[i].stats.unused);
      }
  }
  if (w->now + 1e-9 < m->next_policy)
    return;
  m->next_policy += POLICY_INTERVAL;

  host_free_percent = avg_get (&m->host_free) / w->sc->host_total;
  if (host_free_percent <= PRESSURE_CRITICAL)
    /* Critical: force guests to swap by making free memory negative. */
    guest_free_percent = -0.05 + host_free_percent;
  else
    guest_free_percent = MIN_GUEST_FREE_PERCENT * (host_free_percent / PRESSURE_THRESHOLD);

  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];
    double cur, used, balloon_min, balloon_max = sim_vm_max (v), size;

    if (!v->running || m->cur[i].len == 0)
      continue;
    cur = sim_vm_size (v);
    used = avg_get (&m->cur[i]) - avg_get (&m->unused[i]);
    if (host_free_percent < PRESSURE_THRESHOLD) {
      /* shrink_guest */
      balloon_min = MAX (0.0, used + guest_free_percent * cur);
      size = cur * (1 - MAX_BALLOON_CHANGE);
      if (size < balloon_min)
        size = balloon_min;
      if (size <= cur && change_big_enough (cur, size))
        set_target (w, i, size);
    } else if (cur < balloon_max) {
      /* grow_guest */
      balloon_min = MAX (0.0, used + MIN_GUEST_FREE_PERCENT * cur);
      size = cur * (1 + MAX_BALLOON_CHANGE);
      if (size < balloon_min)
        size = balloon_min;
      if (size > balloon_max)
        size = balloon_max;
      if (change_big_enough (cur, size))
        set_target (w, i, size);
    }
  }
}

const SimPolicy sim_policy_mom = {
  .name = "mom",
  .label = "oVirt MOM",
  .source = "oVirt/mom doc/balloon.rules + doc/mom-balloon.conf defaults",
  .init = mom_init,
  .step = mom_step,
  .report = NULL,
  .free = g_free,
};
