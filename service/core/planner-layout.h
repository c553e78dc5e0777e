/* planner-layout.h: how a VM's total size is split between the balloon
 * and virtio-mem.  Used by planner.c; public so tests can check it. */
#pragma once

#include <glib.h>
#include "policy.h"

/* What a domain can do and where it is now.  mech is the effective
 * mechanism: MT_MECH_AUTO only with a usable virtio-mem device. */
typedef struct {
  MtMechanism mech;
  guint64 base_memory;
  guint64 vmem_max; /* device size rounded down to whole blocks */
  guint64 vmem_block;
  guint64 balloon_floor;
  guint64 balloon; /* balloon actual now */
  guint64 plugged;
  guint64 requested;
  gboolean vmem_stalled; /* do not unplug below what is plugged */
} MtLayoutIn;

typedef struct {
  gboolean set_vmem;
  guint64 vmem_requested;
  gboolean set_balloon;
  guint64 balloon;
  guint64 size; /* balloon + virtio-mem once applied */
} MtLayout;

/* Smallest and largest total size reachable, and the granule sizes come
 * in (1, or vmem_block for virtio-mem only, offset by the balloon). */
void mt_layout_range (const MtLayoutIn *in, guint64 *lo, guint64 *hi, guint64 *granule,
                      guint64 *offset);

/* Layout for total size `target` (within the range).  A grow never ends
 * above target, a shrink never below it. */
void mt_layout_plan (const MtLayoutIn *in, guint64 target, MtLayout *out);

/* x rounded down / up onto offset + k·granule. */
guint64 mt_layout_snap_down (guint64 x, guint64 granule, guint64 offset);
guint64 mt_layout_snap_up (guint64 x, guint64 granule, guint64 offset);
