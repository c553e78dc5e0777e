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
  gboolean hint;         /* the guest's block hint is known (and the policy uses it) */
  guint64 unpluggable;   /* hint: plugged bytes the guest could give back now */
} MtLayoutIn;

/* Held back from the hint, as a share of it, and at least one block
 * and at least MT_LAYOUT_HINT_MARGIN_MIN: see mt_layout_hint_floor(). */
#define MT_LAYOUT_HINT_MARGIN_DIV 8
#define MT_LAYOUT_HINT_MARGIN_MIN (64 * MT_MIB)

typedef struct {
  gboolean set_vmem;
  guint64 vmem_requested;
  gboolean set_balloon;
  guint64 balloon;
  guint64 size;          /* balloon + virtio-mem once applied */
  gboolean hint_limited; /* the block hint kept vmem_requested above what the
                                  target alone would ask (the balloon takes the rest) */
} MtLayout;

/* What the guest's block hint says must stay plugged (a multiple of the
 * block), 0 when there is no hint to follow: mechanism auto, hint known,
 * no plug or unplug in flight (while one is, the hint counts blocks on
 * their way).  allowed/margin (either may be NULL) get what may be
 * unplugged and what was held back of the hint. */
guint64 mt_layout_hint_floor (const MtLayoutIn *in, guint64 *allowed, guint64 *margin);

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
