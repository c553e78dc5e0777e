/* reporting.h: what memtided believes of a guest's free page reporting
 * and of its memory block usage hints (memtide kernel patches, through
 * the agent).  Pure: samples in, figures out.
 *
 * A guest can claim any reported_bytes.  Memory it really reported is
 * discarded by QEMU, so the VM's QEMU process cannot hold more than its
 * size less what was reported, plus QEMU's own memory:
 *
 *   rss <= size - reported + overhead, so  reported <= size - rss + overhead
 *
 * "RSS saved" is the claim cut to that bound, with the tolerance
 * mt_reporting_rss_tolerance() standing for QEMU's overhead (its own heap,
 * TCG's translation cache, the guest's page tables in KVM).  Memory the
 * guest never touched is not resident either, so the bound only catches
 * claims that are too large, never ones that are too small. */
#pragma once

#include <glib.h>

#include "sample.h"

/* QEMU's own memory the bound allows: 256 MiB plus 1/64 of the guest's
 * size.  A fixed allowance, not measured per host: QEMU's heap and TCG's
 * translation cache do not grow with the guest, while page tables and
 * dirty bitmaps do (the proportional part).  Too small would cut honest
 * claims; too large only lets a lying guest overstate by that much. */
#define MT_REPORTING_RSS_SLACK_MIN (256 * MT_MIB)
#define MT_REPORTING_RSS_SLACK_DIV 64

guint64 mt_reporting_rss_tolerance (guint64 size);

/* The guest's size in the sample: balloon + plugged virtio-mem;
 * MT_UNKNOWN when the balloon size is. */
guint64 mt_sample_size_now (const MtVmSample *s);

/* The reported_free claim cut to size - rss + tolerance: what memtided
 * believes reporting saves on the host.  MT_UNKNOWN without a claim, an
 * RSS or a size. */
guint64 mt_sample_rss_saved (const MtVmSample *s);

/* Plugged virtio-mem memory the guest could offline now by its block
 * usage hint: usage_vmem free + movable, at most vmem_plugged.
 * MT_UNKNOWN without a hint (stock kernel, no agent, virtio-mem ranges
 * unknown) or without vmem_plugged. */
guint64 mt_sample_vmem_unpluggable (const MtVmSample *s);

/* Sums over VMs; each MT_UNKNOWN until a VM adds a known value to it. */
typedef struct {
  guint64 reported_free;  /* claims now */
  guint64 reported_total; /* reported since each guest's boot */
  guint64 reused_total;   /* of it, taken back by the guests */
  guint64 rss_saved;      /* mt_sample_rss_saved() */
} MtReportingTotals;

/* The block usage kinds, in the order memtided shows them, by the names
 * it shows them under (D-Bus BlockUsage, metrics, Explain). */
typedef struct {
  const char *name;
  const MtBlockUsage *usage;
} MtBlockKind;

#define MT_BLOCK_KINDS 3

void mt_block_kinds (const MtBlockUsage *kernel, const MtBlockUsage *movable,
                     const MtBlockUsage *vmem, MtBlockKind out[MT_BLOCK_KINDS]);

/* Whether a kind is worth showing: the guest reported it and has blocks
 * of it (a guest without ZONE_MOVABLE reports 0 movable blocks). */
gboolean mt_block_kind_shown (const MtBlockKind *k);

void mt_reporting_totals_init (MtReportingTotals *t);
void mt_reporting_totals_add (MtReportingTotals *t, const MtVmSample *s);
