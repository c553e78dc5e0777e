/* squeezed.h: what the XAPI squeezed baseline exposes to its tests
 * (bench/sim/test-squeezed.c): its constants, the per-VM limits it
 * derives, and its state between steps. */
#pragma once

#include "sim.h"

/* Host free memory squeezed keeps out of every domain's reach: Xen's
 * low_mem_virq_limit (64 MiB) + 8 MiB for domain creation
 * (squeeze_xen.ml target_host_free_mem_kib).  1 + 8 = 9 MiB before
 * xen-api commit 4275f76a6c (CA-423173, January 2026). */
#define SIM_SQUEEZED_HOST_TARGET (64.0 + 8.0) /* MiB */
/* A balloon driver that has not moved toward its target for longer than
 * this is inactive for the rest of the balance (squeeze.ml
 * assume_balloon_driver_stuck_after). */
#define SIM_SQUEEZED_STUCK_AFTER 5.0 /* s */
/* "Has hit its target": within one page (squeeze_xen.ml inaccuracy_kib = 4). */
#define SIM_SQUEEZED_INACCURACY (4.0 / 1024.0) /* MiB */

/* dynamic-min and dynamic-max of a VM as this baseline maps them. */
double sim_squeezed_dynamic_min (const SimVm *v);
double sim_squeezed_dynamic_max (const SimVm *v);
/* Host free memory as squeezed sees it on Xen: what no domain owns. */
double sim_squeezed_host_free (const SimWorld *w);

/* The baseline's state (self is what sim_policy_squeezed.init returned). */
gboolean sim_squeezed_balancing (gconstpointer self);
/* Declared inactive in the balance under way. */
gboolean sim_squeezed_stuck (gconstpointer self, guint vm);
/* The balloon target squeezed last set (memory/target). */
double sim_squeezed_target (gconstpointer self, guint vm);
