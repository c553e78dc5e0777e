/* reporting.h: what the memtide guest kernel patches' reports mean for
 * the host (helper B's file; this one function is the planner's part of
 * the contract until B's version lands).
 */
#pragma once

#include <glib.h>
#include "sample.h"

/* Bytes of the VM's plugged virtio-mem memory the guest could give back
 * now, by its per-block hint: usage_vmem.free + usage_vmem.movable,
 * bounded by vmem_plugged.  MT_UNKNOWN without a hint (a stock kernel,
 * or no agent). */
guint64 mt_sample_vmem_unpluggable (const MtVmSample *s);
