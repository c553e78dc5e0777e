/* proxmox.c: Proxmox VE auto-ballooning, implemented from the published
 * source pve-manager PVE/AutoBalloon.pm (compute_alg1) and
 * PVE/Service/pvestatd.pm (auto_balloning):
 *   - every status update (10 s): goal = MemTotal * 80% - memused, where
 *     memused = MemTotal - MemAvailable of the host;
 *   - maxchange = 100 MiB per VM per round;
 *   - grow when goal > 10 MiB, first the VMs under pressure (free memory
 *     at most 25% of their balloon minimum), all VMs if that made no
 *     progress; shrink when goal < -10 MiB, first the VMs with enough free
 *     memory; desired = balloon_min + alloc * shares / total shares,
 *     capped to [balloon_min, maxmem], redistributed until no progress;
 *   - per VM: balloon = current size, balloon_min = the VM's "balloon"
 *     setting (here 25% of its memory, memtide's default min), shares 1000,
 *     freemem = the guest's free memory from the balloon stats.
 */
#include <math.h>
#include "sim.h"

#define INTERVAL  10.0
#define TARGET    0.80
#define MAXCHANGE (100.0 * 1048576.0)
#define BAL_MIN   0.25
#define SHARES    1000.0

typedef struct {
  double next;
} Proxmox;

typedef struct {
  double balloon, balloon_min, maxmem, freemem, shares;
} PveVm;

/* change_func: spread `bytes` over idlist; returns what is left. */
static double
change_func (const PveVm *d, double *res, gboolean *has_res, const guint *idlist, guint n,
             double bytes)
{
  double rest = bytes;
  gboolean repeat = TRUE, done[SIM_MAX_VMS] = { FALSE };
  double progress = 1;

  while (rest != 0 && repeat && progress != 0) {
    double shares_total = 0, alloc_old = 0, alloc_new, changes = 0;

    repeat = FALSE;
    progress = 0;
    for (guint k = 0; k < n; k++) {
      guint id = idlist[k];
      double balloon = has_res[id] ? res[id] : d[id].balloon;

      if (done[id])
        continue;
      alloc_old += balloon - d[id].balloon_min;
      shares_total += d[id].shares;
    }
    alloc_new = alloc_old + rest;
    for (guint k = 0; k < n; k++) {
      guint id = idlist[k];
      double desired, nw, balloon, diff;

      if (done[id])
        continue;
      desired = d[id].balloon_min + floor ((alloc_new / shares_total) * d[id].shares);
      if (desired > d[id].maxmem) {
        desired = d[id].maxmem;
        repeat = TRUE;
      } else if (desired < d[id].balloon_min) {
        desired = d[id].balloon_min;
        repeat = TRUE;
      }
      if (bytes > 0 && desired - d[id].balloon > 0) {
        nw = d[id].balloon + MAXCHANGE;
        balloon = nw > desired ? desired : nw;
      } else if (desired - d[id].balloon < 0) {
        nw = d[id].balloon - MAXCHANGE;
        balloon = nw > desired ? nw : desired;
      } else {
        done[id] = TRUE;
        continue;
      }
      diff = balloon - d[id].balloon;
      if (diff != 0) {
        double oldballoon = has_res[id] ? res[id] : d[id].balloon;
        double change;

        res[id] = balloon;
        has_res[id] = TRUE;
        change = balloon - oldballoon;
        if (change != 0) {
          changes += change;
          progress += fabs (diff);
          repeat = TRUE;
        }
      }
    }
    rest -= changes;
  }
  return rest;
}

static gpointer
proxmox_init (SimWorld *w, const char *arg, GError **error)
{
  Proxmox *p = g_new0 (Proxmox, 1);

  p->next = INTERVAL;
  return p;
}

static void
proxmox_step (gpointer self, SimWorld *w)
{
  Proxmox *p = self;
  PveVm d[SIM_MAX_VMS] = { { 0 } };
  double res[SIM_MAX_VMS] = { 0 };
  gboolean has_res[SIM_MAX_VMS] = { FALSE };
  guint all[SIM_MAX_VMS] = { 0 }, pressured[SIM_MAX_VMS] = { 0 }, roomy[SIM_MAX_VMS] = { 0 };
  guint n_all = 0, n_p = 0, n_r = 0;
  SimHostView h;
  double goal, mib = 1048576.0;

  if (w->now + 1e-9 < p->next)
    return;
  p->next += INTERVAL;
  sim_host_view (w, &h);
  goal = floor ((h.host_total * TARGET - (h.host_total - h.mem_available)) * mib);

  for (guint i = 0; i < w->n; i++) {
    const SimVm *v = &w->vm[i];

    if (!v->running || v->stats.time < 0)
      continue;
    d[i] = (PveVm){
      .balloon = sim_vm_size (v) * mib,
      .balloon_min = BAL_MIN * sim_vm_max (v) * mib,
      .maxmem = sim_vm_max (v) * mib,
      .freemem = v->stats.unused * mib,
      .shares = SHARES,
    };
    all[n_all++] = i;
    if (d[i].freemem > 0 && d[i].freemem > d[i].balloon_min * 0.25
        && d[i].balloon >= d[i].balloon_min)
      roomy[n_r++] = i;
    else
      pressured[n_p++] = i;
  }

  if (goal > 10 * mib) {
    double rest = change_func (d, res, has_res, pressured, n_p, goal);

    if (rest >= goal)
      change_func (d, res, has_res, all, n_all, rest);
  } else if (goal < -10 * mib) {
    double rest = change_func (d, res, has_res, roomy, n_r, goal);

    if (rest <= goal)
      change_func (d, res, has_res, all, n_all, rest);
  }

  for (guint k = 0; k < n_all; k++) {
    guint i = all[k];

    if (!has_res[i] || floor (res[i]) == floor (d[i].balloon))
      continue;
    w->m.actions++;
    sim_set_balloon (w, i, floor (res[i]) / mib);
  }
}

const SimPolicy sim_policy_proxmox = {
  .name = "proxmox",
  .label = "Proxmox autoballoon",
  .source = "pve-manager PVE/AutoBalloon.pm compute_alg1 + pvestatd auto_balloning (80% target, "
            "100 MiB/VM/10 s)",
  .init = proxmox_init,
  .step = proxmox_step,
  .report = NULL,
  .free = g_free,
};
