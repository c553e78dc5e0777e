/* test-state.c: state survives a save/load round trip, corrupt files
 * are moved aside, unchanged state is not rewritten, old entries expire. */
#include <glib/gstdio.h>
#include "state.h"

static char *
make_tmpdir (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("memtide-state-XXXXXX", &error);
  g_assert_no_error (error);
  return dir;
}

static void
rm_tree (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d && (name = g_dir_read_name (d))) {
    g_autofree char *p = g_build_filename (dir, name, NULL);
    g_unlink (p);
  }
  g_rmdir (dir);
}

static void
test_round_trip (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *sub = g_build_filename (dir, "nested", NULL);
  MtVmState in = { .headroom = 300 * 1024 * 1024,
                   .reserve = 61 * 1024 * 1024,
                   .last_target = 1ULL << 30,
                   .stuck = TRUE,
                   .stuck_reason = (char *) "unplug of 256 MiB did not complete",
                   .stuck_since = 1700000000,
                   .has_limits = TRUE,
                   .limit_min = 256ULL << 20,
                   .limit_max = 2ULL << 30,
                   .rise_floor = 700ULL << 20,
                   .rise_floor_at = 1700000050,
                   .stall_us = 7300000 };
  MtVmState out;

  {
    g_autoptr (MtState) s = mt_state_load (sub);
    g_autoptr (GError) error = NULL;
    g_assert_false (mt_state_get_vm (s, "uuid-a", &out));
    mt_state_set_vm (s, "uuid-a", &in, 1700000100);
    g_assert_true (mt_state_save (s, &error));
    g_assert_no_error (error);
    g_assert_true (g_file_test (mt_state_get_path (s), G_FILE_TEST_IS_REGULAR));
  }
  {
    g_autoptr (MtState) s = mt_state_load (sub);
    g_assert_true (mt_state_get_vm (s, "uuid-a", &out));
    g_assert_cmpuint (out.headroom, ==, in.headroom);
    g_assert_cmpuint (out.reserve, ==, in.reserve);
    g_assert_cmpuint (out.last_target, ==, in.last_target);
    g_assert_true (out.stuck);
    g_assert_cmpstr (out.stuck_reason, ==, in.stuck_reason);
    g_assert_cmpint (out.stuck_since, ==, in.stuck_since);
    g_assert_cmpint (out.saved_at, ==, 1700000100);
    g_assert_true (out.has_limits);
    g_assert_cmpuint (out.limit_min, ==, in.limit_min);
    g_assert_cmpuint (out.limit_max, ==, in.limit_max);
    g_assert_cmpuint (out.rise_floor, ==, in.rise_floor);
    g_assert_cmpint (out.rise_floor_at, ==, in.rise_floor_at);
    g_assert_cmpuint (out.stall_us, ==, in.stall_us);
    mt_vm_state_clear (&out);
    g_unlink (mt_state_get_path (s));
  }
  g_rmdir (sub);
  rm_tree (dir);
}

static void
test_unchanged_not_rewritten (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr (MtState) s = mt_state_load (dir);
  MtVmState in = { .headroom = 1, .last_target = 2 };
  GStatBuf st1, st2;

  mt_state_set_vm (s, "u", &in, 10);
  g_assert_true (mt_state_save (s, NULL));
  g_assert_cmpint (g_stat (mt_state_get_path (s), &st1), ==, 0);
  g_unlink (mt_state_get_path (s));
  /* Same values: nothing dirty, so the (deleted) file is not rewritten. */
  mt_state_set_vm (s, "u", &in, 20);
  g_assert_true (mt_state_save (s, NULL));
  g_assert_cmpint (g_stat (mt_state_get_path (s), &st2), !=, 0);
  rm_tree (dir);
}

static void
test_corrupt_moved_aside (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "state.ini", NULL);
  g_autofree char *aside = g_build_filename (dir, "state.ini.corrupt", NULL);
  MtVmState out;

  g_assert_true (g_file_set_contents (path, "[unterminated\nfoo", -1, NULL));
  g_test_expect_message ("memtide-state", G_LOG_LEVEL_WARNING, "Cannot read state*");
  {
    g_autoptr (MtState) s = mt_state_load (dir);
    g_test_assert_expected_messages ();
    g_assert_false (mt_state_get_vm (s, "u", &out));
    g_assert_true (g_file_test (aside, G_FILE_TEST_IS_REGULAR));
  }
  rm_tree (dir);
}

static void
test_expire (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr (MtState) s = mt_state_load (dir);
  MtVmState in = { .headroom = 5 };
  MtVmState out;

  mt_state_set_vm (s, "old", &in, 100);
  in.headroom = 6;
  mt_state_set_vm (s, "new", &in, 1000);
  mt_state_expire (s, 1050, 500);
  g_assert_false (mt_state_get_vm (s, "old", &out));
  g_assert_true (mt_state_get_vm (s, "new", &out));
  g_assert_cmpuint (out.headroom, ==, 6);
  rm_tree (dir);
}

static void
test_unwritable_dir (void)
{
  g_autoptr (MtState) s = mt_state_load ("/proc/memtide-cannot-exist");
  g_autoptr (GError) error = NULL;
  MtVmState in = { .headroom = 5 };

  mt_state_set_vm (s, "u", &in, 1);
  g_assert_false (mt_state_save (s, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "/proc/memtide-cannot-exist"));
}

/* The state directory is a file: nothing to read and nothing moved
 * aside (it is not corrupt, only unreadable); saves fail and the state
 * stays dirty, so the first save once the path is free writes it. */
static void
test_dir_is_a_file (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *blocker = g_build_filename (dir, "state", NULL);
  g_autofree char *path = g_build_filename (blocker, "state.ini", NULL);
  g_autoptr (GError) error = NULL;
  MtVmState in = { .headroom = 5 }, out;

  g_assert_true (g_file_set_contents (blocker, "a file\n", -1, NULL));
  g_test_expect_message ("memtide-state", G_LOG_LEVEL_WARNING,
                         "Cannot read state*starting with no learned state");
  {
    g_autoptr (MtState) s = mt_state_load (blocker);

    g_test_assert_expected_messages ();
    g_assert_true (g_file_test (blocker, G_FILE_TEST_IS_REGULAR));
    mt_state_set_vm (s, "u", &in, 1);
    g_assert_false (mt_state_save (s, &error));
    g_assert_nonnull (error);
    g_clear_error (&error);
    g_assert_false (mt_state_save (s, &error));
    g_clear_error (&error);
    g_assert_cmpint (g_unlink (blocker), ==, 0);
    g_assert_true (mt_state_save (s, &error));
    g_assert_no_error (error);
    g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  }
  {
    g_autoptr (MtState) s = mt_state_load (blocker);

    g_assert_true (mt_state_get_vm (s, "u", &out));
    g_assert_cmpuint (out.headroom, ==, 5);
    mt_vm_state_clear (&out);
  }
  rm_tree (blocker);
  rm_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/state/round-trip", test_round_trip);
  g_test_add_func ("/state/unchanged-not-rewritten", test_unchanged_not_rewritten);
  g_test_add_func ("/state/corrupt-moved-aside", test_corrupt_moved_aside);
  g_test_add_func ("/state/expire", test_expire);
  g_test_add_func ("/state/unwritable-dir", test_unwritable_dir);
  g_test_add_func ("/state/dir-is-a-file", test_dir_is_a_file);
  return g_test_run ();
}
