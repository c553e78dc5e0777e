/* test-backend-xen.c: what the Xen driver can be checked on without a
 * hypervisor: the probe on fake /sys and /proc trees, xenstore sizes
 * (hostile values included), page and KiB conversions, the domain
 * handle's form, and the order of the two resize steps.  The driver on
 * real Xen is shown by tests/testbed/xen (docs/backend-xen.md).
 */
#include <string.h>
#include <glib/gstdio.h>

#include "backend-xen.h"

typedef struct {
  char *root;
  char *sys;
  char *proc;
} Roots;

static void
roots_setup (Roots *r, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  r->root = g_dir_make_tmp ("memtide-xen-XXXXXX", &error);
  g_assert_no_error (error);
  r->sys = g_build_filename (r->root, "sys", NULL);
  r->proc = g_build_filename (r->root, "proc", NULL);
}

static void
rm_rf (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL) {
    while ((name = g_dir_read_name (dir)) != NULL) {
      g_autofree char *child = g_build_filename (path, name, NULL);
      rm_rf (child);
    }
    g_rmdir (path);
  } else {
    g_unlink (path);
  }
}

static void
roots_teardown (Roots *r, gconstpointer data)
{
  rm_rf (r->root);
  g_free (r->root);
  g_free (r->sys);
  g_free (r->proc);
}

static void
put (const char *root, const char *rel, const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname (path);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
}

static void
test_probe_dom0 (Roots *r, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  put (r->sys, "hypervisor/type", "xen\n");
  put (r->proc, "xen/capabilities", "control_d\n");
  g_assert_cmpint (mt_xen_probe_roots (r->sys, r->proc, &error), ==, MT_PROBE_YES);
  g_assert_no_error (error);
}

static void
test_probe_kvm (Roots *r, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  /* A KVM host has no /sys/hypervisor/type at all. */
  g_assert_cmpint (mt_xen_probe_roots (r->sys, r->proc, &error), ==, MT_PROBE_NO);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "not a Xen host"));
  g_assert_nonnull (strstr (error->message, "missing"));
  g_clear_error (&error);

  put (r->sys, "hypervisor/type", "kvm\n");
  g_assert_cmpint (mt_xen_probe_roots (r->sys, r->proc, &error), ==, MT_PROBE_NO);
  g_assert_nonnull (strstr (error->message, "kvm"));
}

static void
test_probe_domu (Roots *r, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  put (r->sys, "hypervisor/type", "xen\n");
  put (r->proc, "xen/capabilities", "");
  g_assert_cmpint (mt_xen_probe_roots (r->sys, r->proc, &error), ==, MT_PROBE_NO);
  g_assert_nonnull (strstr (error->message, "not dom0"));
  g_clear_error (&error);

  /* A word that only contains control_d is not control_d. */
  put (r->proc, "xen/capabilities", "no_control_d\n");
  g_assert_cmpint (mt_xen_probe_roots (r->sys, r->proc, &error), ==, MT_PROBE_NO);
}

static void
test_probe_no_xenfs (Roots *r, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  /* dom0 before xenfs is mounted on /proc/xen: may come. */
  put (r->sys, "hypervisor/type", "xen\n");
  g_assert_cmpint (mt_xen_probe_roots (r->sys, r->proc, &error), ==, MT_PROBE_LATER);
  g_assert_nonnull (strstr (error->message, "xenfs"));
}

static void
test_probe_uri (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtBackend) b = mt_backend_xen_new ("qemu:///system");

  /* --backend auto --connect qemu:///system must not pick Xen. */
  g_assert_cmpint (b->ops->probe (b, &error), ==, MT_PROBE_NO);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "qemu:///system"));
  g_clear_error (&error);
  g_assert_false (b->ops->connect (b, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
}

static void
test_ops (void)
{
  g_autoptr (MtBackend) b = mt_backend_xen_new (NULL);
  g_autoptr (GError) error = NULL;

  g_assert_cmpstr (b->ops->name, ==, "xen");
  /* The daemon asks Xen for the host, not dom0's /proc. */
  g_assert_nonnull (b->ops->read_host);
  g_assert_false (b->ops->set_vmem (b, "x", MT_MIB, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_clear_error (&error);
  /* Not connected: nothing to read, and it says so. */
  g_assert_null (b->ops->get_domain (b, "00000000-0000-0000-0000-000000000000", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

static void
test_parse_kib (void)
{
  g_autoptr (GError) error = NULL;
  guint64 bytes = 7;

  g_assert_true (mt_xen_parse_kib ("memory/target", "262144", 6, &bytes, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (bytes, ==, 256 * MT_MIB);
  g_assert_true (mt_xen_parse_kib ("memory/videoram", "0", 1, &bytes, &error));
  g_assert_cmpuint (bytes, ==, 0);
  /* Leading zeros are digits. */
  g_assert_true (mt_xen_parse_kib ("m", "0001024", 7, &bytes, &error));
  g_assert_cmpuint (bytes, ==, MT_MIB);
  /* The largest KiB count whose bytes stay below MT_UNKNOWN. */
  g_assert_true (mt_xen_parse_kib ("m", "18014398509481983", 17, &bytes, &error));
  g_assert_cmpuint (bytes, ==, G_GUINT64_CONSTANT (18014398509481983) * MT_KIB);
}

/* Each value must be refused with an error naming the key. */
static void
test_parse_kib_hostile (void)
{
  static const struct {
    const char *value;
    gsize len;
    const char *says;
  } cases[] = {
    { "", 0, "empty" },
    { "abc", 3, "decimal digits only" },
    { "-1", 2, "decimal digits only" },
    { "+5", 2, "decimal digits only" },
    { " 5", 2, "decimal digits only" },
    { "5 ", 2, "decimal digits only" },
    { "5\n", 2, "\\x0a" },
    { "12\0"
      "34",
      5, "\\x00" }, /* a NUL inside: xenstore values are counted */
    { "0x10", 4, "decimal digits only" },
    { "1e9", 3, "decimal digits only" },
    { "18446744073709551616", 20, "more than 64 bits" }, /* 2^64 */
    { "99999999999999999999", 20, "more than 64 bits" },
    { "18014398509481984", 17, "too large to count in bytes" }, /* 2^54 KiB */
    { "18446744073709551615", 20, "too large to count in bytes" },
    { "123456789012345678901", 21, "characters long" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    guint64 bytes = 42;

    g_test_message ("value %u", i);
    g_assert_false (mt_xen_parse_kib ("/local/domain/3/memory/target", cases[i].value, cases[i].len,
                                      &bytes, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "/local/domain/3/memory/target"));
    g_assert_nonnull (strstr (error->message, cases[i].says));
    g_assert_cmpuint (bytes, ==, 42); /* untouched */
  }
}

static void
test_parse_kib_missing (void)
{
  g_autoptr (GError) error = NULL;
  guint64 bytes = 42;

  g_assert_false (mt_xen_parse_kib ("memory/static-max", NULL, 0, &bytes, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "memory/static-max is missing"));
}

static void
test_pages (void)
{
  g_assert_cmpuint (mt_xen_pages_to_bytes (0, 4096), ==, 0);
  g_assert_cmpuint (mt_xen_pages_to_bytes (65536, 4096), ==, 256 * MT_MIB);
  /* Xen's physinfo of the testbed: 3 GiB of 4 KiB pages. */
  g_assert_cmpuint (mt_xen_pages_to_bytes (786432, 4096), ==, 3 * MT_GIB);
  /* Overflow is unknown, never a wrapped size. */
  g_assert_cmpuint (mt_xen_pages_to_bytes (G_MAXUINT64 / 4096 + 1, 4096), ==, MT_UNKNOWN);
  g_assert_cmpuint (mt_xen_pages_to_bytes (G_MAXUINT64, 4096), ==, MT_UNKNOWN);
  g_assert_cmpuint (mt_xen_pages_to_bytes ((MT_UNKNOWN - 1) / 4096, 4096), <, MT_UNKNOWN);
}

static void
test_name (void)
{
  g_autofree char *longest = g_strnfill (MT_XEN_NAME_MAX, 'a');
  g_autofree char *too_long = g_strnfill (MT_XEN_NAME_MAX + 1, 'a');

  g_assert_true (mt_xen_name_ok ("xbd1", 4));
  g_assert_true (mt_xen_name_ok ("web \xc3\xa9t\xc3\xa9", 9)); /* UTF-8 */
  g_assert_true (mt_xen_name_ok (longest, MT_XEN_NAME_MAX));
  g_assert_false (mt_xen_name_ok (too_long, MT_XEN_NAME_MAX + 1));
  g_assert_false (mt_xen_name_ok (NULL, 0));
  g_assert_false (mt_xen_name_ok ("", 0));
  g_assert_false (mt_xen_name_ok ("a\nb", 3));
  g_assert_false (mt_xen_name_ok ("a\033[2Jb", 6)); /* a terminal escape */
  g_assert_false (mt_xen_name_ok ("ab\0cd", 5));    /* NUL inside */
  g_assert_false (mt_xen_name_ok ("\xff\xfe", 2));  /* not UTF-8 */
}

static void
test_uuid (void)
{
  const guint8 handle[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                              0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
  char out[37];

  memset (out, 'x', sizeof out);
  mt_xen_format_uuid (handle, out);
  g_assert_cmpstr (out, ==, "12345678-9abc-def0-0123-456789abcdef");
}

static const char *
step_name (MtXenStep step)
{
  return step == MT_XEN_SET_MAXMEM ? "maxmem" : "target";
}

/* "maxmem 263168, target 262144" */
static char *
ops_string (const MtXenOp ops[2])
{
  return g_strdup_printf ("%s %" G_GUINT64_FORMAT ", %s %" G_GUINT64_FORMAT,
                          step_name (ops[0].step), ops[0].kib, step_name (ops[1].step), ops[1].kib);
}

static void
test_resize_order (void)
{
  g_autoptr (GError) error = NULL;
  MtXenOp ops[2];
  g_autofree char *grow = NULL, *shrink = NULL, *same = NULL, *unlimited = NULL, *video = NULL;

  /* A PV domU at 256 MiB (maxmem 257 MiB), static-max 512 MiB. */
  g_assert_true (mt_xen_resize_ops (384 * MT_MIB, 512 * MT_MIB, 0, 257 * 1024, ops, &error));
  grow = ops_string (ops);
  g_assert_cmpstr (grow, ==, "maxmem 394240, target 393216");

  g_assert_true (mt_xen_resize_ops (192 * MT_MIB, 512 * MT_MIB, 0, 385 * 1024, ops, &error));
  shrink = ops_string (ops);
  g_assert_cmpstr (shrink, ==, "target 196608, maxmem 197632");

  /* The same size again: maxmem is already there. */
  g_assert_true (mt_xen_resize_ops (192 * MT_MIB, 512 * MT_MIB, 0, 193 * 1024, ops, &error));
  same = ops_string (ops);
  g_assert_cmpstr (same, ==, "maxmem 197632, target 196608");

  /* No limit now (dom0 may have none): lowering to a limit. */
  g_assert_true (mt_xen_resize_ops (192 * MT_MIB, 512 * MT_MIB, 0, MT_UNKNOWN, ops, &error));
  unlimited = ops_string (ops);
  g_assert_cmpstr (unlimited, ==, "target 196608, maxmem 197632");

  /* Video memory: the guest's target leaves it out, maxmem counts it. */
  g_assert_true (
    mt_xen_resize_ops (1024 * MT_MIB, 2048 * MT_MIB, 8 * MT_MIB, 513 * 1024, ops, &error));
  video = ops_string (ops);
  g_assert_cmpstr (video, ==, "maxmem 1049600, target 1040384");
  g_assert_no_error (error);
}

static void
test_resize_admin_maxmem (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *s = NULL;
  MtXenOp ops[2];

  /* An admin raised maxmem (xl mem-max 1g) above what we now ask: the
   * target goes first, then maxmem comes down to it. */
  g_assert_true (mt_xen_resize_ops (300 * MT_MIB, 1024 * MT_MIB, 0, 1024 * 1024, ops, &error));
  s = ops_string (ops);
  g_assert_cmpstr (s, ==, "target 307200, maxmem 308224");
}

static void
test_resize_refused (void)
{
  g_autoptr (GError) error = NULL;
  MtXenOp ops[2] = { { MT_XEN_SET_MAXMEM, 1 }, { MT_XEN_SET_MAXMEM, 2 } };

  /* Above static-max, even by a byte. */
  g_assert_false (mt_xen_resize_ops (512 * MT_MIB + 1, 512 * MT_MIB, 0, 257 * 1024, ops, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "static-max of 524288 KiB"));
  g_clear_error (&error);

  /* Nothing left beside the video memory. */
  g_assert_false (
    mt_xen_resize_ops (8 * MT_MIB, 512 * MT_MIB, 8 * MT_MIB, 257 * 1024, ops, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "video memory"));
  g_clear_error (&error);
  g_assert_false (mt_xen_resize_ops (0, 512 * MT_MIB, 0, 257 * 1024, ops, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);

  /* Refused means no steps. */
  g_assert_cmpuint (ops[0].kib, ==, 1);
  g_assert_cmpuint (ops[1].kib, ==, 2);
}

static void
test_resize_rounding (void)
{
  g_autoptr (GError) error = NULL;
  MtXenOp ops[2];

  /* Sizes are bytes; Xen's are KiB: rounded down, never up past a limit. */
  g_assert_true (mt_xen_resize_ops (256 * MT_MIB + 1023, 512 * MT_MIB, 0, 0, ops, &error));
  g_assert_cmpuint (ops[1].kib, ==, 262144);
  g_assert_true (mt_xen_resize_ops (512 * MT_MIB, 512 * MT_MIB, 0, 0, ops, &error));
  g_assert_cmpuint (ops[1].kib, ==, 524288);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/xen/probe/dom0", Roots, NULL, roots_setup, test_probe_dom0, roots_teardown);
  g_test_add ("/xen/probe/kvm", Roots, NULL, roots_setup, test_probe_kvm, roots_teardown);
  g_test_add ("/xen/probe/domu", Roots, NULL, roots_setup, test_probe_domu, roots_teardown);
  g_test_add ("/xen/probe/no-xenfs", Roots, NULL, roots_setup, test_probe_no_xenfs, roots_teardown);
  g_test_add_func ("/xen/probe/uri", test_probe_uri);
  g_test_add_func ("/xen/ops", test_ops);
  g_test_add_func ("/xen/parse/kib", test_parse_kib);
  g_test_add_func ("/xen/parse/hostile", test_parse_kib_hostile);
  g_test_add_func ("/xen/parse/missing", test_parse_kib_missing);
  g_test_add_func ("/xen/pages", test_pages);
  g_test_add_func ("/xen/uuid", test_uuid);
  g_test_add_func ("/xen/name", test_name);
  g_test_add_func ("/xen/resize/order", test_resize_order);
  g_test_add_func ("/xen/resize/admin-maxmem", test_resize_admin_maxmem);
  g_test_add_func ("/xen/resize/refused", test_resize_refused);
  g_test_add_func ("/xen/resize/rounding", test_resize_rounding);
  return g_test_run ();
}
