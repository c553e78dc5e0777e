/* test-host.c: host reader against fake /proc and cgroup trees, and the
 * budget arithmetic. */
#include <math.h>
#include "host.h"

static char *
data_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "data", "host", name, NULL);
}

static void
test_meminfo_psi_cgroup_v1 (void)
{
  g_autofree char *proc = data_path ("proc");
  g_autofree char *cg = data_path ("cgroup-v1");
  g_autoptr (MtHostReader) r = mt_host_reader_new (proc, cg, NULL);
  g_autoptr (GError) error = NULL;
  MtHostSample s;

  g_assert_nonnull (mt_host_reader_get_cgroup_dir (r));
  g_assert_true (g_str_has_suffix (mt_host_reader_get_cgroup_dir (r), "memory/machine"));
  g_assert_true (mt_host_reader_read (r, 42, &s, &error));
  g_assert_no_error (error);
  g_assert_cmpint (s.time, ==, 42);
  g_assert_cmpuint (s.mem_total, ==, G_GUINT64_CONSTANT (24589344) * 1024);
  g_assert_cmpuint (s.mem_available, ==, G_GUINT64_CONSTANT (23000000) * 1024);
  g_assert_cmpfloat_with_epsilon (s.psi_some_avg10, 1.5, 1e-9);
  g_assert_cmpfloat_with_epsilon (s.psi_full_avg10, 0.25, 1e-9);
  g_assert_cmpuint (s.cgroup_limit, ==, 8 * MT_GIB);
  g_assert_cmpuint (s.cgroup_usage, ==, MT_GIB);
}

static void
test_cgroup_v2_unlimited (void)
{
  g_autofree char *proc = data_path ("proc-nopsi");
  g_autofree char *cg = data_path ("cgroup-v2");
  g_autoptr (MtHostReader) r = mt_host_reader_new (proc, cg, NULL);
  g_autoptr (GError) error = NULL;
  MtHostSample s;

  g_assert_true (mt_host_reader_read (r, 1, &s, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (s.mem_total, ==, MT_GIB);
  g_assert_cmpuint (s.mem_available, ==, 512 * MT_MIB);
  /* No /proc/pressure: PSI unknown, not zero. */
  g_assert_true (isnan (s.psi_some_avg10));
  g_assert_true (isnan (s.psi_full_avg10));
  /* "max" is no limit. */
  g_assert_cmpuint (s.cgroup_limit, ==, MT_UNKNOWN);
  g_assert_cmpuint (s.cgroup_usage, ==, 4096);
}

static void
test_no_cgroup (void)
{
  g_autofree char *proc = data_path ("proc");
  g_autofree char *cg = data_path ("cgroup-none");
  g_autoptr (MtHostReader) r = mt_host_reader_new (proc, cg, NULL);
  MtHostSample s;

  g_assert_null (mt_host_reader_get_cgroup_dir (r));
  g_assert_true (mt_host_reader_read (r, 1, &s, NULL));
  g_assert_cmpuint (s.cgroup_limit, ==, MT_UNKNOWN);
}

static void
test_bad_meminfo (void)
{
  g_autofree char *proc = data_path ("proc-bad");
  g_autofree char *cg = data_path ("cgroup-none");
  g_autoptr (MtHostReader) r = mt_host_reader_new (proc, cg, NULL);
  g_autoptr (GError) error = NULL;
  MtHostSample s;

  g_assert_false (mt_host_reader_read (r, 1, &s, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_nonnull (strstr (error->message, "MemTotal"));
  g_assert_nonnull (strstr (error->message, "meminfo"));
}

static void
test_missing_proc (void)
{
  g_autoptr (MtHostReader) r =
    mt_host_reader_new ("/nonexistent-memtide", "/nonexistent-memtide", NULL);
  g_autoptr (GError) error = NULL;
  MtHostSample s;

  g_assert_false (mt_host_reader_read (r, 1, &s, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
}

static void
test_budget (void)
{
  MtHostSample h;
  MtHostPolicy p = { 0 };
  g_autofree char *why1 = NULL;
  g_autofree char *why2 = NULL;
  g_autofree char *why3 = NULL;

  mt_host_sample_init (&h, 0);
  h.mem_total = 24 * MT_GIB;
  h.mem_available = 10 * MT_GIB;
  p.reserve = MT_GIB;

  /* Host-derived: available + what the VMs hold - reserve. */
  g_assert_cmpuint (mt_host_budget (&h, &p, 3 * MT_GIB, &why1), ==, 12 * MT_GIB);
  g_assert_nonnull (strstr (why1, "host available"));

  /* A tighter cgroup limit wins. */
  h.cgroup_limit = 4 * MT_GIB;
  g_assert_cmpuint (mt_host_budget (&h, &p, 3 * MT_GIB, &why2), ==, 3 * MT_GIB);
  g_assert_nonnull (strstr (why2, "cgroup"));

  /* An explicit budget wins over both. */
  p.budget = 2 * MT_GIB;
  g_assert_cmpuint (mt_host_budget (&h, &p, 3 * MT_GIB, &why3), ==, 2 * MT_GIB);
  g_assert_nonnull (strstr (why3, "policy"));

  /* Saturates instead of wrapping. */
  p.budget = 0;
  h.cgroup_limit = MT_UNKNOWN;
  h.mem_available = 0;
  p.reserve = 5 * MT_GIB;
  g_assert_cmpuint (mt_host_budget (&h, &p, MT_GIB, NULL), ==, 0);
  h.mem_available = G_MAXUINT64 - 1;
  p.reserve = 0;
  g_assert_cmpuint (mt_host_budget (&h, &p, 10, NULL), ==, G_MAXUINT64);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/host/meminfo-psi-cgroup-v1", test_meminfo_psi_cgroup_v1);
  g_test_add_func ("/host/cgroup-v2-unlimited", test_cgroup_v2_unlimited);
  g_test_add_func ("/host/no-cgroup", test_no_cgroup);
  g_test_add_func ("/host/bad-meminfo", test_bad_meminfo);
  g_test_add_func ("/host/missing-proc", test_missing_proc);
  g_test_add_func ("/host/budget", test_budget);
  return g_test_run ();
}
