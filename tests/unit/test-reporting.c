/* test-reporting.c: free page reporting claims against QEMU's RSS, the
 * virtio-mem usage hint, and the sums over VMs (service/core/reporting.c). */
#include "reporting.h"

static MtVmSample
sample (guint64 balloon, guint64 plugged, guint64 rss, guint64 claim)
{
  MtVmSample s;

  mt_vm_sample_init (&s, 0);
  s.balloon_actual = balloon;
  s.vmem_plugged = plugged;
  s.rss = rss;
  s.reported_free = claim;
  return s;
}

static void
test_rss_saved (void)
{
  MtVmSample s;
  guint64 tol = mt_reporting_rss_tolerance (2 * MT_GIB);

  g_assert_cmpuint (tol, ==, 256 * MT_MIB + 32 * MT_MIB);

  /* An honest guest: 2 GiB, 600 MiB reported, QEMU holds 1.5 GiB (the
   * rest plus its own memory). */
  s = sample (MT_GIB, MT_GIB, 1536 * MT_MIB, 600 * MT_MIB);
  g_assert_cmpuint (mt_sample_size_now (&s), ==, 2 * MT_GIB);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, 600 * MT_MIB);

  /* A liar: claims 1.8 GiB while QEMU holds 1.9 GiB: believed only
   * size - rss + tolerance. */
  s = sample (MT_GIB, MT_GIB, 1946 * MT_MIB, 1843 * MT_MIB);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, 102 * MT_MIB + tol);

  /* RSS above the size (QEMU's overhead on a guest that uses it all):
   * only the tolerance is left. */
  s = sample (MT_GIB, 0, MT_GIB + 300 * MT_MIB, 500 * MT_MIB);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, mt_reporting_rss_tolerance (MT_GIB));

  /* Nothing to check against, or nothing claimed: unknown. */
  s = sample (MT_GIB, 0, MT_UNKNOWN, 100 * MT_MIB);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, MT_UNKNOWN);
  s = sample (MT_UNKNOWN, 0, 100 * MT_MIB, 100 * MT_MIB);
  g_assert_cmpuint (mt_sample_size_now (&s), ==, MT_UNKNOWN);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, MT_UNKNOWN);
  s = sample (MT_GIB, 0, 100 * MT_MIB, MT_UNKNOWN);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, MT_UNKNOWN);

  /* An unknown plugged size counts as none; a claim of 0 is 0. */
  s = sample (MT_GIB, MT_UNKNOWN, 100 * MT_MIB, 0);
  g_assert_cmpuint (mt_sample_size_now (&s), ==, MT_GIB);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, 0);

  /* Saturation, not wrap-around. */
  s = sample (G_MAXUINT64 - 1, G_MAXUINT64 - 1, 0, G_MAXINT64);
  g_assert_cmpuint (mt_sample_rss_saved (&s), ==, G_MAXINT64);
}

static void
test_vmem_unpluggable (void)
{
  MtVmSample s = sample (MT_GIB, 512 * MT_MIB, 0, MT_UNKNOWN);

  /* No hint: unknown, whatever else is known. */
  s.movable = 512 * MT_MIB;
  g_assert_cmpuint (mt_sample_vmem_unpluggable (&s), ==, MT_UNKNOWN);

  s.usage_vmem = (MtBlockUsage){ 4, 200 * MT_MIB, 100 * MT_MIB, 150 * MT_MIB, 50 * MT_MIB, 0 };
  g_assert_cmpuint (mt_sample_vmem_unpluggable (&s), ==, 300 * MT_MIB);

  /* Bounded by what is plugged (a guest may claim more). */
  s.usage_vmem.free = 500 * MT_MIB;
  g_assert_cmpuint (mt_sample_vmem_unpluggable (&s), ==, 512 * MT_MIB);

  /* No virtio-mem blocks: 0 (known); no device: plugged 0. */
  s.usage_vmem = (MtBlockUsage){ 0, 0, 0, 0, 0, 0 };
  g_assert_cmpuint (mt_sample_vmem_unpluggable (&s), ==, 0);
  s.usage_vmem = (MtBlockUsage){ 2, 100 * MT_MIB, 0, 0, 0, 0 };
  s.vmem_plugged = 0;
  g_assert_cmpuint (mt_sample_vmem_unpluggable (&s), ==, 0);

  s.vmem_plugged = MT_UNKNOWN;
  g_assert_cmpuint (mt_sample_vmem_unpluggable (&s), ==, MT_UNKNOWN);
  s.vmem_plugged = 512 * MT_MIB;
  s.usage_vmem = MT_BLOCK_USAGE_UNKNOWN;
  g_assert_cmpuint (mt_sample_vmem_unpluggable (&s), ==, MT_UNKNOWN);
}

static void
test_totals (void)
{
  MtReportingTotals t;
  MtVmSample a = sample (MT_GIB, 0, 400 * MT_MIB, 600 * MT_MIB);
  MtVmSample b = sample (MT_GIB, 0, 900 * MT_MIB, 900 * MT_MIB); /* overstates */
  MtVmSample c = sample (MT_GIB, 0, 500 * MT_MIB, MT_UNKNOWN);   /* stock kernel */

  mt_reporting_totals_init (&t);
  g_assert_cmpuint (t.reported_free, ==, MT_UNKNOWN);
  mt_reporting_totals_add (&t, &c);
  g_assert_cmpuint (t.reported_free, ==, MT_UNKNOWN);
  g_assert_cmpuint (t.rss_saved, ==, MT_UNKNOWN);

  a.reported_total = 5 * MT_GIB;
  a.reused_total = 2 * MT_GIB;
  b.reported_total = MT_GIB;
  mt_reporting_totals_add (&t, &a);
  mt_reporting_totals_add (&t, &b);
  g_assert_cmpuint (t.reported_free, ==, 1500 * MT_MIB);
  g_assert_cmpuint (t.reported_total, ==, 6 * MT_GIB);
  g_assert_cmpuint (t.reused_total, ==, 2 * MT_GIB);
  g_assert_cmpuint (t.rss_saved, ==,
                    600 * MT_MIB + 124 * MT_MIB + mt_reporting_rss_tolerance (MT_GIB));

  /* Huge claims saturate below "unknown". */
  a.reported_total = G_MAXUINT64 - 5;
  mt_reporting_totals_add (&t, &a);
  g_assert_cmpuint (t.reported_total, ==, MT_UNKNOWN - 1);
}

/* The kinds shown on D-Bus and in Explain: reported and with blocks. */
static void
test_block_kinds (void)
{
  MtBlockUsage kernel = { 8, MT_GIB, 0, 0, 0, 0 };
  MtBlockUsage movable = { 0, 0, 0, 0, 0, 0 };
  MtBlockUsage vmem = MT_BLOCK_USAGE_UNKNOWN;
  MtBlockKind k[MT_BLOCK_KINDS];

  mt_block_kinds (&kernel, &movable, &vmem, k);
  g_assert_cmpstr (k[0].name, ==, "kernel");
  g_assert_true (k[0].usage == &kernel);
  g_assert_cmpstr (k[1].name, ==, "movable");
  g_assert_cmpstr (k[2].name, ==, "virtio-mem");
  g_assert_true (mt_block_kind_shown (&k[0]));
  g_assert_false (mt_block_kind_shown (&k[1])); /* no ZONE_MOVABLE blocks */
  g_assert_false (mt_block_kind_shown (&k[2])); /* not reported */
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/reporting/rss-saved", test_rss_saved);
  g_test_add_func ("/reporting/vmem-unpluggable", test_vmem_unpluggable);
  g_test_add_func ("/reporting/totals", test_totals);
  g_test_add_func ("/reporting/block-kinds", test_block_kinds);
  return g_test_run ();
}
