/* policies.c: every policy the simulator can run, in table order. */
#include "sim.h"

const SimPolicy *const *
sim_policies (void)
{
  static const SimPolicy *const all[] = {
    &sim_policy_static,
    &sim_policy_mom,
    &sim_policy_squeezed,
    &sim_policy_proxmox,
    &sim_policy_memtide_stats,
    &sim_policy_memtide,
    NULL,
  };

  return all;
}

const SimPolicy *
sim_policy_find (const char *name)
{
  for (const SimPolicy *const *p = sim_policies (); *p; p++)
    if (g_str_equal ((*p)->name, name))
      return *p;
  return NULL;
}
