/* planner-layout.c: balloon vs virtio-mem for one resize.
 *
 * virtio-mem moves whole blocks and really changes the guest's memory
 * map; the balloon moves pages but the guest keeps paying for the struct
 * pages and the balloon cannot go above boot memory.  So: the balloon for
 * small steps while it holds less than a block, whole blocks through
 * virtio-mem beyond that, and never unplug below what is plugged once an
 * unplug has stalled (the rest goes to the balloon).  With the memtide
 * guest kernel's per-block hint, never ask virtio-mem for more than the
 * guest says it can give back: the balloon takes the rest at once
 * instead of after a stall.
 */
#define G_LOG_DOMAIN "memtide-planner"

#include "model.h"
#include "planner-layout.h"

guint64
mt_layout_snap_down (guint64 x, guint64 granule, guint64 offset)
{
  if (granule <= 1 || x <= offset)
    return granule <= 1 ? x : offset;
  return offset + (x - offset) / granule * granule;
}

guint64
mt_layout_snap_up (guint64 x, guint64 granule, guint64 offset)
{
  guint64 down = mt_layout_snap_down (x, granule, offset);

  if (down >= x)
    return down;
  /* Saturating: the caller clamps to the range, which is on the lattice. */
  return mt_sat_add (down, granule);
}

static guint64
clamp64 (guint64 v, guint64 lo, guint64 hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/* The hint is a snapshot counted without locks at the agent's last
 * report: pages it counted free may be taken by the time the guest's
 * virtio-mem driver gets to them, the sum over blocks does not say
 * whether an unmovable page sits in a block it counts, and offlining
 * needs free memory elsewhere to migrate the movable pages into.  A
 * stall costs stuck-timeout before the balloon takes over; holding back
 * too much costs only that the balloon takes that part at once.  A small
 * hint is the least reliable: what is left free after a first unplug
 * sits in the subblocks the unmovable pages kept (bench/kernel/vmem-bench:
 * hints of 26 and 56 MiB after a 736 MiB unplug stalled), hence
 * MT_LAYOUT_HINT_MARGIN_MIN. */
guint64
mt_layout_hint_floor (const MtLayoutIn *in, guint64 *allowed_out, guint64 *margin_out)
{
  guint64 unpluggable, margin, allowed;

  if (allowed_out != NULL)
    *allowed_out = 0;
  if (margin_out != NULL)
    *margin_out = 0;
  if (!in->hint || in->mech != MT_MECH_AUTO || in->vmem_block == 0 || in->requested != in->plugged
      || in->plugged == 0)
    return 0;
  unpluggable = MIN (in->unpluggable, in->plugged);
  margin =
    MAX (MAX (in->vmem_block, MT_LAYOUT_HINT_MARGIN_MIN), unpluggable / MT_LAYOUT_HINT_MARGIN_DIV);
  allowed = mt_layout_snap_down (mt_sat_sub (unpluggable, margin), in->vmem_block, 0);
  if (allowed_out != NULL)
    *allowed_out = allowed;
  if (margin_out != NULL)
    *margin_out = margin;
  return MIN (mt_layout_snap_up (in->plugged - allowed, in->vmem_block, 0), in->vmem_max);
}

/* Lowest virtio-mem request allowed: once an unplug stalled, what the
 * guest could not give back stays plugged; what its block hint says it
 * cannot give back stays plugged too. */
static guint64
stalled_floor (const MtLayoutIn *in)
{
  if (!in->vmem_stalled)
    return 0;
  return MIN (mt_layout_snap_up (in->plugged, in->vmem_block, 0), in->vmem_max);
}

static guint64
vmem_floor (const MtLayoutIn *in)
{
  return MAX (stalled_floor (in), mt_layout_hint_floor (in, NULL, NULL));
}

void
mt_layout_range (const MtLayoutIn *in, guint64 *lo, guint64 *hi, guint64 *granule, guint64 *offset)
{
  guint64 l, h, g = 1, o = 0;

  switch (in->mech) {
  case MT_MECH_AUTO:
    l = mt_sat_add (in->balloon_floor, vmem_floor (in));
    h = mt_sat_add (in->base_memory, in->vmem_max);
    break;
  case MT_MECH_VIRTIO_MEM:
    l = in->balloon;
    h = mt_sat_add (in->balloon, in->vmem_max);
    g = in->vmem_block;
    o = in->balloon;
    break;
  case MT_MECH_BALLOON:
    l = mt_sat_add (in->balloon_floor, in->plugged);
    h = mt_sat_add (in->base_memory, in->plugged);
    break;
  case MT_MECH_NONE:
  default:
    l = h = mt_sat_add (in->balloon, in->plugged);
    break;
  }
  if (l > h)
    l = h;
  *lo = l;
  *hi = h;
  *granule = g;
  *offset = o;
}

static void
plan_auto (const MtLayoutIn *in, guint64 target, guint64 current, MtLayout *out)
{
  guint64 rfloor = vmem_floor (in);
  guint64 r, b;

  /* Small step: the balloon alone, while it holds less than a block. */
  if (!in->vmem_stalled && in->requested == in->plugged
      && target >= mt_sat_add (in->plugged, in->balloon_floor)
      && target - in->plugged <= in->base_memory
      && in->base_memory - (target - in->plugged) < in->vmem_block) {
    r = in->plugged;
    b = target - in->plugged;
  } else {
    guint64 want_r = mt_layout_snap_up (mt_sat_sub (target, in->base_memory), in->vmem_block, 0);

    r = clamp64 (want_r, rfloor, in->vmem_max);
    out->hint_limited = target < current && r > clamp64 (want_r, stalled_floor (in), in->vmem_max);
    b = clamp64 (mt_sat_sub (target, r), in->balloon_floor, in->base_memory);
    /* A tiny boot memory with a huge block can overshoot a grow: take
       * one block less and let the balloon make up what it can. */
    if (target > current && mt_sat_add (r, b) > target
        && r >= mt_sat_add (rfloor, in->vmem_block)) {
      r -= in->vmem_block;
      b = clamp64 (mt_sat_sub (target, r), in->balloon_floor, in->base_memory);
    }
  }
  /* Also when an unplug or plug is still in flight: the request we set
   * is then what the size adds up to. */
  out->set_vmem = r != in->requested || in->requested != in->plugged;
  out->vmem_requested = r;
  /* Always set: it also stops a balloon change still in flight. */
  out->set_balloon = TRUE;
  out->balloon = b;
}

void
mt_layout_plan (const MtLayoutIn *in, guint64 target, MtLayout *out)
{
  guint64 current = mt_sat_add (in->balloon, in->plugged);

  *out = (MtLayout){ 0 };
  switch (in->mech) {
  case MT_MECH_AUTO:
    plan_auto (in, target, current, out);
    break;
  case MT_MECH_VIRTIO_MEM:
    out->set_vmem = TRUE;
    out->vmem_requested = clamp64 (
      mt_layout_snap_down (mt_sat_sub (target, in->balloon), in->vmem_block, 0), 0, in->vmem_max);
    break;
  case MT_MECH_BALLOON:
    out->set_balloon = TRUE;
    out->balloon = clamp64 (mt_sat_sub (target, in->plugged), in->balloon_floor, in->base_memory);
    break;
  case MT_MECH_NONE:
  default:
    break;
  }
  out->size = mt_sat_add (out->set_balloon ? out->balloon : in->balloon,
                          out->set_vmem ? out->vmem_requested : in->plugged);
}
