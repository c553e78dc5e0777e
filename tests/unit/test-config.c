/* test-config.c: policy files, value syntax, domain metadata and the
 * shipped policies.  Test files live in tests/unit/data/config/; cases
 * that need bytes a text file cannot hold are written to a temp dir. */
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include "config.h"
#include "config-keys.h"
#include "config-value.h"

#define KIB (G_GUINT64_CONSTANT (1) << 10)
#define MIB (G_GUINT64_CONSTANT (1) << 20)
#define GIB (G_GUINT64_CONSTANT (1) << 30)
#define TIB (G_GUINT64_CONSTANT (1) << 40)

/* On failure, show the whole message next to what it lacks. */
#define assert_contains(haystack, needle)         \
  G_STMT_START                                    \
  {                                               \
    if (strstr ((haystack), (needle)) == NULL)    \
      g_assert_cmpstr ((haystack), ==, (needle)); \
  }                                               \
  G_STMT_END

static char *
data_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "data", "config", name, NULL);
}

static char *
shipped_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "..", "..", "policies", name, NULL);
}

/* A temporary directory removed (with its files) at the end of the test. */
static char *
make_tmp_dir (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("memtide-test-config-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
rm_tmp_dir (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL) {
    g_autofree char *path = g_build_filename (dir, name, NULL);
    g_assert_no_errno (g_unlink (path));
  }
  g_assert_no_errno (g_rmdir (dir));
}

static char *
write_file (const char *dir, const char *name, const char *data, gssize length)
{
  g_autoptr (GError) error = NULL;
  char *path = g_build_filename (dir, name, NULL);

  g_file_set_contents (path, data, length, &error);
  g_assert_no_error (error);
  return path;
}

static void
assert_vm_equal (const MtVmPolicy *a, const MtVmPolicy *b)
{
  g_assert_cmpint (a->min.is_percent, ==, b->min.is_percent);
  g_assert_cmpuint (a->min.bytes, ==, b->min.bytes);
  g_assert_cmpfloat (a->min.percent, ==, b->min.percent);
  g_assert_cmpint (a->max.is_percent, ==, b->max.is_percent);
  g_assert_cmpuint (a->max.bytes, ==, b->max.bytes);
  g_assert_cmpfloat (a->max.percent, ==, b->max.percent);
  g_assert_cmpuint (a->shares, ==, b->shares);
  g_assert_cmpint (a->headroom.is_percent, ==, b->headroom.is_percent);
  g_assert_cmpuint (a->headroom.bytes, ==, b->headroom.bytes);
  g_assert_cmpfloat (a->headroom.percent, ==, b->headroom.percent);
  g_assert_cmpuint (a->headroom_min, ==, b->headroom_min);
  g_assert_cmpfloat (a->pressure_target, ==, b->pressure_target);
  g_assert_cmpint (a->mechanism, ==, b->mechanism);
  g_assert_cmpint (a->allow_drop_caches, ==, b->allow_drop_caches);
  g_assert_cmpint (a->reclaim_cold_cache, ==, b->reclaim_cold_cache);
  g_assert_cmpint (a->block_hints, ==, b->block_hints);
  g_assert_cmpint (a->page_reporting, ==, b->page_reporting);
  g_assert_cmpint (a->page_reporting_fast_delay, ==, b->page_reporting_fast_delay);
  g_assert_cmpuint (a->page_reporting_fast_divisor, ==, b->page_reporting_fast_divisor);
  g_assert_cmpfloat (a->stall_budget, ==, b->stall_budget);
  g_assert_cmpint (a->stall_window, ==, b->stall_window);
}

static void
assert_host_equal (const MtHostPolicy *a, const MtHostPolicy *b)
{
  g_assert_cmpuint (a->reserve, ==, b->reserve);
  g_assert_cmpuint (a->budget, ==, b->budget);
  g_assert_cmpint (a->tick_interval, ==, b->tick_interval);
  g_assert_cmpint (a->stuck_timeout, ==, b->stuck_timeout);
  g_assert_cmpuint (a->min_change, ==, b->min_change);
  g_assert_cmpuint (a->max_shrink_rate, ==, b->max_shrink_rate);
  g_assert_cmpint (a->dry_run, ==, b->dry_run);
}

/* ---- value syntax -------------------------------------------------- */

static void
test_size_parse (void)
{
  static const struct {
    const char *text;
    guint64 bytes;
  } good[] = {
    { "0", 0 },
    { "0B", 0 },
    { "0.0G", 0 },
    { "000", 0 },
    { "1B", 1 },
    { "1K", KIB },
    { "1KiB", KIB },
    { "512M", 512 * MIB },
    { "512MiB", 512 * MIB },
    { "2G", 2 * GIB },
    { "1.5G", 1536 * MIB },
    { "1.5GiB", 1536 * MIB },
    { "1T", TIB },
    { "12 M", 12 * MIB }, /* a blank before the unit is fine */
    { "12\tGiB", 12 * GIB },
    { "0.1K", 102 }, /* 102.4: fractions round down */
    { "1.5B", 1 },
    { "0.99999999999999999999999B", 0 },
    { "1.0000000000000000000000001T", TIB },
    { "0.5T", TIB / 2 },
    /* 2^64 - 1 stands for "unknown" inside memtided: not a size. */
    { "18446744073709551614B", G_MAXUINT64 - 1 },
    { "16777215T", 16777215 * TIB },
    { "16777215.999999999999T", G_MAXUINT64 - (TIB / 1000000000000) },
  };
  static const char *const bad[] = {
    "",
    "-1G",
    "-0",
    "1",
    "512",
    "12X",
    "12MB",
    "12m",
    "12g",
    "1e3M",
    "0x10M",
    ".5G",
    "1.G",
    "1..5G",
    "G",
    "1 G B",
    "+1G",
    "1G1",
    "one gig",
    "18446744073709551615B",
    "18446744073709551616B",
    "16777216T",
    "99999999999999999999999999T",
    "1G # comment",
    "inf",
    "nan",
  };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr (GError) error = NULL;
    guint64 bytes = 42;

    g_test_message ("size “%s”", good[i].text);
    g_assert_true (mt_parse_size (good[i].text, &bytes, &error));
    g_assert_no_error (error);
    if (i == G_N_ELEMENTS (good) - 1) {
      /* Floor of 16777215.999999999999 TiB: just below 2^64 - 1. */
      g_assert_cmpuint (bytes, <, G_MAXUINT64);
      g_assert_cmpuint (bytes, >, 16777215 * TIB);
    } else
      g_assert_cmpuint (bytes, ==, good[i].bytes);
  }

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    guint64 bytes = 42;

    g_test_message ("size “%s”", bad[i]);
    g_assert_false (mt_parse_size (bad[i], &bytes, &error));
    g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE);
    g_assert_cmpuint (bytes, ==, 42);
    if (*bad[i] != '\0')
      assert_contains (error->message, bad[i]);
    assert_contains (error->message, "expected");
  }
}

static void
test_size_messages (void)
{
  struct {
    const char *text;
    const char *needle;
  } cases[] = {
    { "-1G", "negative" },  { "512", "no unit" },         { "12MB", "unknown unit “MB”" },
    { "12MB", "never MB" }, { "16777216T", "too large" }, { "", "empty value" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    guint64 bytes;

    g_assert_false (mt_parse_size (cases[i].text, &bytes, &error));
    assert_contains (error->message, cases[i].needle);
  }
}

static void
test_size_or_percent (void)
{
  g_autoptr (GError) error = NULL;
  MtSize size;

  g_assert_true (mt_parse_size_or_percent ("50%", &size, &error));
  g_assert_no_error (error);
  g_assert_true (size.is_percent);
  g_assert_cmpfloat (size.percent, ==, 50.0);

  g_assert_true (mt_parse_size_or_percent ("2G", &size, &error));
  g_assert_false (size.is_percent);
  g_assert_cmpuint (size.bytes, ==, 2 * GIB);

  g_assert_false (mt_parse_size_or_percent ("abc", &size, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE);
  assert_contains (error->message, "or a percentage");
  g_clear_error (&error);

  g_assert_false (mt_parse_size_or_percent ("50%%", &size, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE);
  g_clear_error (&error);

  g_assert_false (mt_parse_size_or_percent ("101%", &size, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE);
}

static void
test_percent_parse (void)
{
  static const struct {
    const char *text;
    double percent;
  } good[] = {
    { "0%", 0 },  { "100%", 100 }, { "100.0%", 100 },   { "12.5%", 12.5 },
    { "5 %", 5 }, { "-0%", 0 },    { "0.001%", 0.001 },
  };
  static const struct {
    const char *text;
    MtConfigError code;
  } bad[] = {
    { "10", MT_CONFIG_ERROR_INVALID_PERCENT },
    { "%", MT_CONFIG_ERROR_INVALID_PERCENT },
    { "ten%", MT_CONFIG_ERROR_INVALID_PERCENT },
    { "0.1", MT_CONFIG_ERROR_INVALID_PERCENT },
    { "1e1%", MT_CONFIG_ERROR_INVALID_PERCENT },
    { "", MT_CONFIG_ERROR_INVALID_PERCENT },
    { "100.1%", MT_CONFIG_ERROR_OUT_OF_RANGE },
    { "-5%", MT_CONFIG_ERROR_OUT_OF_RANGE },
    { "1000000000000000000000%", MT_CONFIG_ERROR_OUT_OF_RANGE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr (GError) error = NULL;
    double v = -1;

    g_assert_true (mt_parse_percent (good[i].text, &v, &error));
    g_assert_no_error (error);
    g_assert_cmpfloat_with_epsilon (v, good[i].percent, 1e-12);
  }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    double v = -1;

    g_test_message ("percent “%s”", bad[i].text);
    g_assert_false (mt_parse_percent (bad[i].text, &v, &error));
    g_assert_error (error, MT_CONFIG_ERROR, (gint) bad[i].code);
    g_assert_cmpfloat (v, ==, -1);
  }
}

static void
test_duration_parse (void)
{
  static const struct {
    const char *text;
    gint64 usec;
  } good[] = {
    { "0", 0 },
    { "0s", 0 },
    { "10us", 10 },
    { "10\302\265s", 10 },
    { "500ms", 500000 },
    { "2s", 2 * G_USEC_PER_SEC },
    { "1.5s", 1500000 },
    { "1m", 60 * G_USEC_PER_SEC },
    { "1min", 60 * G_USEC_PER_SEC },
    { "1h", G_GINT64_CONSTANT (3600000000) },
    { "2 s", 2 * G_USEC_PER_SEC },
    { "0.5us", 0 },
    { "9223372036854775807us", G_MAXINT64 },
    { "2562047788h", G_GINT64_CONSTANT (2562047788) * 3600 * G_USEC_PER_SEC },
  };
  static const char *const bad[] = {
    "",
    "2",
    "-1s",
    "2x",
    "2S",
    "2 sec",
    "s",
    "1.s",
    "9223372036854775808us",
    "2562047789h",
    "99999999999999999999999h",
    "1s1",
  };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr (GError) error = NULL;
    gint64 v = -1;

    g_test_message ("duration “%s”", good[i].text);
    g_assert_true (mt_parse_duration (good[i].text, &v, &error));
    g_assert_no_error (error);
    g_assert_cmpint (v, ==, good[i].usec);
  }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    gint64 v = -1;

    g_test_message ("duration “%s”", bad[i]);
    g_assert_false (mt_parse_duration (bad[i], &v, &error));
    g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_DURATION);
    g_assert_cmpint (v, ==, -1);
    assert_contains (error->message, "expected");
  }
}

static void
test_boolean_number_mechanism (void)
{
  static const char *const yes[] = { "true", "True", "yes", "on", "1" };
  static const char *const no[] = { "false", "FALSE", "no", "off", "0" };
  g_autoptr (GError) error = NULL;
  gboolean b;
  guint64 n;
  MtMechanism m;

  for (guint i = 0; i < G_N_ELEMENTS (yes); i++) {
    g_assert_true (mt_parse_boolean (yes[i], &b, NULL));
    g_assert_true (b);
    g_assert_true (mt_parse_boolean (no[i], &b, NULL));
    g_assert_false (b);
  }
  g_assert_false (mt_parse_boolean ("2", &b, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_BOOLEAN);
  g_clear_error (&error);
  g_assert_false (mt_parse_boolean ("", &b, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_BOOLEAN);
  g_clear_error (&error);

  g_assert_true (mt_parse_uint ("1000000", 1, 1000000, &n, NULL));
  g_assert_cmpuint (n, ==, 1000000);
  g_assert_false (mt_parse_uint ("1000001", 1, 1000000, &n, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);
  g_assert_false (mt_parse_uint ("99999999999999999999999", 1, 1000000, &n, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);
  for (guint i = 0; i < 5; i++) {
    static const char *const not_numbers[] = { "", "-1", "1.5", "1e3", "12 " };
    g_assert_false (mt_parse_uint (not_numbers[i], 1, 10, &n, &error));
    g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_NUMBER);
    g_clear_error (&error);
  }

  g_assert_true (mt_parse_mechanism ("virtio-mem", &m, NULL));
  g_assert_cmpint (m, ==, MT_MECH_VIRTIO_MEM);
  g_assert_true (mt_parse_mechanism ("none", &m, NULL));
  g_assert_cmpint (m, ==, MT_MECH_NONE);
  g_assert_false (mt_parse_mechanism ("Balloon", &m, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_MECHANISM);
  assert_contains (error->message, "did you mean “balloon”?");
  g_clear_error (&error);
  g_assert_false (mt_parse_mechanism ("swap", &m, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_MECHANISM);
  g_assert_null (strstr (error->message, "did you mean"));

  for (MtMechanism i = MT_MECH_AUTO; i <= MT_MECH_NONE; i++) {
    g_assert_true (mt_mechanism_from_string (mt_mechanism_to_string (i), &m));
    g_assert_cmpint (m, ==, i);
  }
  g_assert_cmpstr (mt_mechanism_to_string (99), ==, "invalid");
}

static void
test_format (void)
{
  static const struct {
    guint64 bytes;
    const char *text;
  } sizes[] = {
    { 0, "0" },
    { 7, "7B" },
    { KIB, "1K" },
    { 1536 * MIB, "1536M" },
    { GIB, "1G" },
    { 3 * TIB, "3T" },
    { G_MAXUINT64 - 1, "18446744073709551614B" },
  };
  static const struct {
    gint64 usec;
    const char *text;
  } durations[] = {
    { 0, "0" },
    { 7, "7us" },
    { 1500, "1500us" },
    { 500000, "500ms" },
    { 2 * G_USEC_PER_SEC, "2s" },
    { 90 * G_USEC_PER_SEC, "90s" },
    { 120 * G_USEC_PER_SEC, "2m" },
    { G_GINT64_CONSTANT (7200000000), "2h" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    g_autofree char *text = mt_format_size (sizes[i].bytes);
    guint64 back;

    g_assert_cmpstr (text, ==, sizes[i].text);
    g_assert_true (mt_parse_size (text, &back, NULL));
    g_assert_cmpuint (back, ==, sizes[i].bytes);
  }
  for (guint i = 0; i < G_N_ELEMENTS (durations); i++) {
    g_autofree char *text = mt_format_duration (durations[i].usec);
    gint64 back;

    g_assert_cmpstr (text, ==, durations[i].text);
    g_assert_true (mt_parse_duration (text, &back, NULL));
    g_assert_cmpint (back, ==, durations[i].usec);
  }
  {
    g_autofree char *p1 = mt_format_percent (25);
    g_autofree char *p2 = mt_format_percent (12.5);
    g_assert_cmpstr (p1, ==, "25%");
    g_assert_cmpstr (p2, ==, "12.5%");
  }
}

static void
test_suggest (void)
{
  static const char *const words[] = { "min", "max", "headroom", "pressure-target" };
  g_autofree char *long_word = g_strnfill (10000, 'x');

  g_assert_cmpstr (mt_suggest ("mni", words, 4), ==, "min");
  g_assert_cmpstr (mt_suggest ("MAX", words, 4), ==, "max");
  g_assert_cmpstr (mt_suggest ("headrom", words, 4), ==, "headroom");
  g_assert_cmpstr (mt_suggest ("pressure_target", words, 4), ==, "pressure-target");
  g_assert_null (mt_suggest ("shares", words, 4));
  g_assert_null (mt_suggest ("mx", words, 0));
  g_assert_null (mt_suggest ("", words, 4));
  g_assert_null (mt_suggest (long_word, words, 4));
}

/* ---- policy.h helpers ---------------------------------------------- */

/* The floor of an opt-in domain: never below MT_OPT_IN_FLOOR or its
 * policy min, whichever is larger; max gives way to it. */
static void
test_opt_in_floor (void)
{
  static const struct {
    MtSize min, max;
    guint64 domain_max;
    gboolean changed;
    guint64 want_min, want_max; /* resolved bytes after the floor */
  } cases[] = {
    /* The default 25% of 1 GiB is 256 MiB: raised to 512 MiB. */
    { { TRUE, 0, 25 }, { TRUE, 0, 100 }, GIB, TRUE, 512 * MIB, GIB },
    /* A policy min above the floor stays. */
    { { FALSE, 768 * MIB, 0 }, { TRUE, 0, 100 }, GIB, FALSE, 768 * MIB, GIB },
    { { TRUE, 0, 75 }, { TRUE, 0, 100 }, GIB, FALSE, 768 * MIB, GIB },
    /* min = 0 and a max below the floor: both raised. */
    { { FALSE, 0, 0 }, { FALSE, 256 * MIB, 0 }, GIB, TRUE, 512 * MIB, 512 * MIB },
    /* A domain smaller than the floor is never shrunk. */
    { { FALSE, 128 * MIB, 0 }, { TRUE, 0, 100 }, 400 * MIB, TRUE, 400 * MIB, 400 * MIB },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    MtVmPolicy p;
    guint64 min, max;

    g_test_message ("case %u", i);
    mt_vm_policy_init_defaults (&p);
    p.min = cases[i].min;
    p.max = cases[i].max;
    g_assert_cmpint (mt_vm_policy_apply_floor (&p, cases[i].domain_max, MT_OPT_IN_FLOOR), ==,
                     cases[i].changed);
    mt_vm_policy_resolve_bounds (&p, cases[i].domain_max, &min, &max);
    g_assert_cmpuint (min, ==, cases[i].want_min);
    g_assert_cmpuint (max, ==, cases[i].want_max);
  }
  g_assert_cmpuint (MT_OPT_IN_FLOOR, ==, 512 * MIB);
}

static void
test_percent_resolution (void)
{
  MtSize half = { .is_percent = TRUE, .percent = 50 };
  MtSize third = { .is_percent = TRUE, .percent = 100.0 / 3 };
  MtSize all = { .is_percent = TRUE, .percent = 100 };
  MtSize none = { .is_percent = TRUE, .percent = 0 };
  MtSize abs = { .is_percent = FALSE, .bytes = 8 * GIB };
  MtVmPolicy p;
  guint64 min, max;

  g_assert_cmpuint (mt_size_resolve (&half, 4 * GIB), ==, 2 * GIB);
  g_assert_cmpuint (mt_size_resolve (&third, 3 * GIB), <=, GIB);
  g_assert_cmpuint (mt_size_resolve (&third, 3 * GIB), >=, GIB - 1);
  g_assert_cmpuint (mt_size_resolve (&all, 3 * GIB + 5), ==, 3 * GIB + 5);
  g_assert_cmpuint (mt_size_resolve (&all, G_MAXUINT64), ==, G_MAXUINT64);
  g_assert_cmpuint (mt_size_resolve (&half, G_MAXUINT64), <, G_MAXUINT64);
  g_assert_cmpuint (mt_size_resolve (&none, 4 * GIB), ==, 0);
  /* An absolute size is not clamped here: that is the planner's call. */
  g_assert_cmpuint (mt_size_resolve (&abs, 4 * GIB), ==, 8 * GIB);

  mt_vm_policy_init_defaults (&p);
  mt_vm_policy_resolve_bounds (&p, 4 * GIB, &min, &max);
  g_assert_cmpuint (min, ==, GIB);     /* 25% */
  g_assert_cmpuint (max, ==, 4 * GIB); /* 100% */

  /* Mixed units cannot be checked at load time; max wins. */
  p.min = (MtSize){ .is_percent = TRUE, .percent = 60 };
  p.max = (MtSize){ .is_percent = FALSE, .bytes = GIB };
  mt_vm_policy_resolve_bounds (&p, 4 * GIB, &min, &max);
  g_assert_cmpuint (min, ==, GIB);
  g_assert_cmpuint (max, ==, GIB);

  /* max above the domain's size is capped at it. */
  p.min = (MtSize){ .is_percent = FALSE, .bytes = 512 * MIB };
  p.max = abs;
  mt_vm_policy_resolve_bounds (&p, 4 * GIB, &min, &max);
  g_assert_cmpuint (min, ==, 512 * MIB);
  g_assert_cmpuint (max, ==, 4 * GIB);
}

/* ---- loading errors ------------------------------------------------ */

typedef struct {
  const char *file;
  MtConfigError code;
  guint line;
  const char *needles[4];
} ErrorCase;

static const ErrorCase error_cases[] = {
  { "bad-size.conf",
    MT_CONFIG_ERROR_INVALID_SIZE,
    6,
    { "[vm web-*] min:", "“12X”", "unknown unit “X”", "expected" } },
  { "unknown-key.conf",
    MT_CONFIG_ERROR_UNKNOWN_KEY,
    6,
    { "[vm *] mni:", "unknown key", "did you mean “min”?", "expected one of min, max" } },
  { "host-key-in-vm.conf",
    MT_CONFIG_ERROR_UNKNOWN_KEY,
    3,
    { "[vm *] reserve:", "belongs in [host]" } },
  { "unknown-group.conf",
    MT_CONFIG_ERROR_UNKNOWN_GROUP,
    4,
    { "[hots]", "did you mean [host]?", "expected [host] or [vm GLOB]" } },
  { "vm-group-no-space.conf",
    MT_CONFIG_ERROR_UNKNOWN_GROUP,
    1,
    { "[vm-web]", "one space, then a glob" } },
  { "bad-glob-empty.conf", MT_CONFIG_ERROR_BAD_GLOB, 2, { "[vm]", "no glob", "[vm *]" } },
  { "bad-glob-slash.conf",
    MT_CONFIG_ERROR_BAD_GLOB,
    4,
    { "[vm web/01]", "“web/01”", "forbids “/”" } },
  { "min-above-max.conf",
    MT_CONFIG_ERROR_MIN_ABOVE_MAX,
    2,
    { "[vm big-*] min:", "“4G”", "max “2G” (line 3)", "expected min <= max" } },
  { "min-above-max-percent.conf",
    MT_CONFIG_ERROR_MIN_ABOVE_MAX,
    4,
    { "[vm *] min:", "“60%”", "“50%” (line 2)" } },
  { "shares-zero.conf",
    MT_CONFIG_ERROR_OUT_OF_RANGE,
    2,
    { "[vm *] shares:", "“0”", "from 1 to 1000000" } },
  { "shares-huge.conf",
    MT_CONFIG_ERROR_OUT_OF_RANGE,
    2,
    { "[vm *] shares:", "“1000001”", "from 1 to 1000000" } },
  { "shares-not-number.conf",
    MT_CONFIG_ERROR_INVALID_NUMBER,
    2,
    { "[vm *] shares:", "“lots”", "whole number" } },
  { "bad-mechanism.conf",
    MT_CONFIG_ERROR_INVALID_MECHANISM,
    5,
    { "[vm mem-*] mechanism:", "“virtiomem”", "did you mean “virtio-mem”?" } },
  { "bad-duration.conf",
    MT_CONFIG_ERROR_INVALID_DURATION,
    3,
    { "[host] tick-interval:", "“2”", "no unit", "500ms" } },
  { "duration-out-of-range.conf",
    MT_CONFIG_ERROR_OUT_OF_RANGE,
    2,
    { "[host] tick-interval:", "“1h”", "expected 100ms to 10m" } },
  { "stuck-below-tick.conf",
    MT_CONFIG_ERROR_OUT_OF_RANGE,
    3,
    { "[host] stuck-timeout:", "“2s” is shorter than tick-interval “5s”",
      "stuck-below-tick.conf:2 [host]" } },
  { "bad-boolean.conf",
    MT_CONFIG_ERROR_INVALID_BOOLEAN,
    2,
    { "[host] dry-run:", "“maybe”", "true or false" } },
  { "bad-percent.conf",
    MT_CONFIG_ERROR_INVALID_PERCENT,
    2,
    { "[vm *] pressure-target:", "“10”", "e.g. 10%" } },
  { "percent-out-of-range.conf",
    MT_CONFIG_ERROR_OUT_OF_RANGE,
    2,
    { "[vm *] max:", "“150%”", "0% to 100%" } },
  { "bad-rate.conf",
    MT_CONFIG_ERROR_OUT_OF_RANGE,
    2,
    { "[host] max-shrink-rate:", "“0”", "never let a VM shrink" } },
  { "duplicate-key.conf",
    MT_CONFIG_ERROR_DUPLICATE_KEY,
    4,
    { "[vm *] min:", "second time", "first on line 2" } },
  { "duplicate-group.conf",
    MT_CONFIG_ERROR_DUPLICATE_GROUP,
    7,
    { "[vm web-*]", "first on line 1", "merge" } },
  { "syntax.conf",
    MT_CONFIG_ERROR_SYNTAX,
    3,
    { "“this line is neither a group nor a key”", "key = value" } },
  { "key-before-group.conf", MT_CONFIG_ERROR_SYNTAX, 2, { "“reserve”", "before any group" } },
  { "bad-escape.conf",
    MT_CONFIG_ERROR_SYNTAX,
    2,
    { "[vm *] min:", "cannot be interpreted", "two for a literal backslash" } },
  { "localized-key.conf", MT_CONFIG_ERROR_SYNTAX, 2, { "“min[de]”", "localized keys" } },
  { "comment-after-value.conf",
    MT_CONFIG_ERROR_INVALID_SIZE,
    2,
    { "[vm *] min:", "“1G   # one gigabyte”", "line of their own" } },
};

/* The error names the file and line first, as compilers do, so editors
 * can jump to it. */
static void
assert_error_at (const GError *error, MtConfigError code, const char *path, guint line)
{
  g_autofree char *prefix = g_strdup_printf ("%s:%u: ", path, line);

  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_error (error, MT_CONFIG_ERROR, (gint) code);
  if (!g_str_has_prefix (error->message, prefix))
    g_assert_cmpstr (error->message, ==, prefix);
}

static void
error_case_free (gpointer data)
{
  ErrorCase *c = data;

  g_free ((char *) c->file);
  g_free (c);
}

static void
test_error_case (gconstpointer data)
{
  const ErrorCase *c = data;
  g_autofree char *path = data_path (c->file);
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) dir_error = NULL;
  g_autoptr (MtConfig) config = mt_config_load (path, NULL, &error);
  g_autoptr (MtConfig) config2 = NULL;
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *copy = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *defaults = shipped_path ("default.conf");
  g_autofree char *base = g_path_get_basename (c->file);

  g_assert_null (config);
  assert_error_at (error, c->code, path, c->line);
  for (guint i = 0; i < G_N_ELEMENTS (c->needles) && c->needles[i] != NULL; i++)
    assert_contains (error->message, c->needles[i]);
  /* One problem, one line. */
  g_assert_null (strchr (error->message, '\n'));

  /* The same file in a policies.d behind the shipped default.conf fails
   * the same way and is named by its own path. */
  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  copy = write_file (dir, base, contents, -1);
  config2 = mt_config_load (defaults, dir, &dir_error);
  g_assert_null (config2);
  assert_error_at (dir_error, c->code, copy, c->line);
  rm_tmp_dir (dir);
}

static void
test_error_many (void)
{
  g_autofree char *path = data_path ("errors/many-errors.conf");
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = mt_config_load (path, NULL, &error);
  g_auto (GStrv) lines = NULL;

  g_assert_null (config);
  /* The code is the first problem's; the message lists all of them. */
  assert_error_at (error, MT_CONFIG_ERROR_INVALID_SIZE, path, 2);
  lines = g_strsplit (error->message, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 3);
  assert_contains (lines[0], ":2: [vm *] min:");
  assert_contains (lines[1], ":3: [vm *] shares:");
  assert_contains (lines[2], ":4: [vm *] mechanism:");
  assert_contains (lines[2], "did you mean “balloon”?");
}

/* A file of many mistakes: the first 50 are listed, the rest counted,
 * so that one file cannot make a reload log megabytes (a 1 MiB file of
 * unknown keys made 115,910 messages, 30 MB). */
static void
test_error_many_capped (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autoptr (GString) text = g_string_new ("[vm *]\n");
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = NULL;
  g_auto (GStrv) lines = NULL;
  g_autofree char *out = NULL;
  gsize out_len = 0;
  FILE *stream;

  for (guint i = 0; i < 500; i++)
    g_string_append_printf (text, "nokey%u = 1\n", i);
  path = write_file (dir, "many.conf", text->str, -1);

  config = mt_config_load (path, NULL, &error);
  g_assert_null (config);
  assert_error_at (error, MT_CONFIG_ERROR_UNKNOWN_KEY, path, 2);
  lines = g_strsplit (error->message, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 51);
  assert_contains (lines[49], ":51: [vm *] nokey49: unknown key");
  g_assert_cmpstr (lines[50], ==, "… and 450 more problems, not listed");

  stream = open_memstream (&out, &out_len);
  g_assert_false (mt_config_check (path, NULL, stream));
  fclose (stream);
  assert_contains (out, "nokey49: unknown key");
  g_assert_null (strstr (out, "nokey50:"));
  assert_contains (out, "… and 450 more problems, not listed\n");
  assert_contains (out, "500 problems found");
  rm_tmp_dir (dir);
}

#define NUL_DATA "[host]\nreserve = 1G\0 2G\n"

static void
test_error_bytes (void)
{
  static const struct {
    const char *name;
    const char *data;
    gssize length;
    guint line;
    const char *needle;
  } cases[] = {
    { "nul.conf", NUL_DATA, sizeof NUL_DATA - 1, 2, "NUL byte" },
    { "latin1.conf", "[host]\n# caf\351\nreserve = 1G\n", -1, 2, "not valid UTF-8" },
    { "bom.conf", "\357\273\277[host]\nreserve = 1G\n", -1, 1, "byte order mark" },
    { "badgroup.conf", "[host]\n[]\n", -1, 2, "empty group name" },
    { "ctrlgroup.conf", "[vm a\tb]\n", -1, 1, "control characters" },
    { "trailing.conf", "[host] x\n", -1, 1, "text after the group header" },
    { "unclosed.conf", "\n\n[host\n", -1, 3, "no closing ]" },
    { "crlf.conf", "[host]\r\nreserve = 1X\r\n", -1, 2, "“1X”" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *dir = make_tmp_dir ();
    g_autofree char *path = write_file (dir, cases[i].name, cases[i].data, cases[i].length);
    g_autoptr (GError) error = NULL;
    g_autoptr (MtConfig) config = mt_config_load (path, NULL, &error);

    g_test_message ("case %s", cases[i].name);
    g_assert_null (config);
    assert_error_at (
      error, strstr (cases[i].name, "crlf") ? MT_CONFIG_ERROR_INVALID_SIZE : MT_CONFIG_ERROR_SYNTAX,
      path, cases[i].line);
    assert_contains (error->message, cases[i].needle);
    rm_tmp_dir (dir);
  }
}

static void
test_error_read (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *missing = g_build_filename (dir, "missing.conf", NULL);
  g_autofree char *file = write_file (dir, "file.conf", "[host]\n", -1);
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = NULL;

  /* A missing default file: the daemon must not start on nothing. */
  config = mt_config_load (missing, NULL, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_READ);
  g_assert_true (g_str_has_prefix (error->message, missing));
  assert_contains (error->message, "cannot read the policy file");
  g_clear_error (&error);

  /* A directory where a file was expected. */
  config = mt_config_load (dir, NULL, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_READ);
  assert_contains (error->message, dir);
  g_clear_error (&error);

  /* A file where the policy directory was expected. */
  config = mt_config_load (NULL, file, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_READ);
  g_assert_true (g_str_has_prefix (error->message, file));
  assert_contains (error->message, "cannot read the policy directory");
  g_clear_error (&error);

  /* A missing policy directory just means no admin policy. */
  config = mt_config_load (file, missing, &error);
  g_assert_no_error (error);
  g_assert_nonnull (config);
  g_assert_cmpuint (g_strv_length ((char **) mt_config_get_files (config)), ==, 1);

  rm_tmp_dir (dir);
}

/* Anything but a regular file (a symlink to one is fine) is refused
 * before it is read: opening a FIFO waits for a writer, forever, and a
 * device has no end.  Run in a child with a deadline, so that a load
 * that blocks fails the test instead of hanging it. */
static void
test_error_not_regular (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *pdir = NULL;
  g_autofree char *base = NULL;
  g_autofree char *target = NULL;
  g_autofree char *link = NULL;
  g_autofree char *fifo = NULL;
  g_autofree char *subdir = NULL;
  g_autofree char *device = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = NULL;
  g_autofree char *out = NULL;
  gsize out_len = 0;
  FILE *stream;

  if (!g_test_subprocess ()) {
    g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed ();
    return;
  }

  dir = make_tmp_dir ();
  pdir = g_build_filename (dir, "policies.d", NULL);
  g_assert_no_errno (g_mkdir (pdir, 0700));
  base = write_file (dir, "default.conf", "[host]\nreserve = 1G\n", -1);

  /* A symlink to a regular file is how some admins manage their files. */
  target = write_file (dir, "shared.conf", "[vm *]\nshares = 7\n", -1);
  link = g_build_filename (pdir, "10-link.conf", NULL);
  g_assert_no_errno (symlink (target, link));
  config = mt_config_load (base, pdir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length ((char **) mt_config_get_files (config)), ==, 2);
  g_clear_pointer (&config, mt_config_unref);

  /* A FIFO in policies.d: start-up and reload. */
  fifo = g_build_filename (pdir, "50-fifo.conf", NULL);
  g_assert_no_errno (mkfifo (fifo, 0600));
  config = mt_config_load (base, pdir, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_READ);
  g_assert_true (g_str_has_prefix (error->message, fifo));
  assert_contains (error->message, "a FIFO");
  assert_contains (error->message, "regular file");
  g_clear_error (&error);

  /* --check-config: the same message. */
  stream = open_memstream (&out, &out_len);
  g_assert_false (mt_config_check (base, pdir, stream));
  fclose (stream);
  assert_contains (out, fifo);
  assert_contains (out, "a FIFO");
  g_assert_no_errno (g_unlink (fifo));

  /* The base file itself. */
  config = mt_config_load (link, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&config, mt_config_unref);
  g_assert_no_errno (mkfifo (fifo, 0600));
  config = mt_config_load (fifo, NULL, &error);
  g_assert_null (config);
  g_assert_true (g_str_has_prefix (error->message, fifo));
  assert_contains (error->message, "a FIFO");
  g_clear_error (&error);
  g_assert_no_errno (g_unlink (fifo));

  /* A symlink to a device is a device. */
  device = g_build_filename (pdir, "60-null.conf", NULL);
  g_assert_no_errno (symlink ("/dev/null", device));
  config = mt_config_load (base, pdir, &error);
  g_assert_null (config);
  g_assert_true (g_str_has_prefix (error->message, device));
  assert_contains (error->message, "a character device");
  g_clear_error (&error);
  g_assert_no_errno (g_unlink (device));

  /* A directory named *.conf. */
  subdir = g_build_filename (pdir, "70-dir.conf", NULL);
  g_assert_no_errno (g_mkdir (subdir, 0700));
  config = mt_config_load (base, pdir, &error);
  g_assert_null (config);
  g_assert_true (g_str_has_prefix (error->message, subdir));
  assert_contains (error->message, "a directory");
  g_clear_error (&error);
  g_assert_no_errno (g_rmdir (subdir));

  g_assert_no_errno (g_unlink (link));
  rm_tmp_dir (pdir);
  rm_tmp_dir (dir);
}

/* Bytes of comment lines, exactly n of them. */
static char *
filler (gsize n)
{
  char *data = g_malloc (n + 1);

  memset (data, '#', n);
  for (gsize i = 99; i < n; i += 100)
    data[i] = '\n';
  data[n] = '\0';
  return data;
}

/* n groups named PREFIX-NUMBER, each with one key. */
static char *
groups (const char *prefix, guint first, guint n)
{
  GString *s = g_string_new (NULL);

  for (guint i = first; i < first + n; i++)
    g_string_append_printf (s, "[vm %s-%05u]\nshares = 5\n", prefix, i);
  return g_string_free (s, FALSE);
}

/* Policy files have limits, so that no file makes memtided read without
 * end or hold more than a host could need (docs/policy.md, "Limits"):
 * 1 MiB per file, 20,000 groups, 1,000 of them globs. */
static void
test_error_too_large (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *pdir = NULL;
  g_autofree char *base = NULL;
  g_autofree char *big = NULL;
  g_autofree char *text = NULL;
  g_autofree char *path = NULL;
  g_autofree char *path2 = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = NULL;
  g_autoptr (MtConfig) running = NULL;
  MtVmPolicy p;

  if (!g_test_subprocess ()) {
    g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed ();
    return;
  }
#if !defined(__SANITIZE_ADDRESS__)
  {
    /* Without a bound, /proc/self/pagemap below is read until memory
     * runs out: let that fail here, not on the machine. */
    struct rlimit lim = { 4 * GIB, 4 * GIB };
    g_assert_no_errno (setrlimit (RLIMIT_AS, &lim));
  }
#endif

  dir = make_tmp_dir ();
  pdir = g_build_filename (dir, "policies.d", NULL);
  g_assert_no_errno (g_mkdir (pdir, 0700));
  base = write_file (dir, "default.conf", "[host]\nreserve = 1G\n[vm *]\nshares = 9\n", -1);
  running = mt_config_load (base, pdir, &error);
  g_assert_no_error (error);

  /* 1 MiB is allowed, one byte more is not. */
  text = filler (1 << 20);
  big = write_file (pdir, "50-big.conf", text, 1 << 20);
  config = mt_config_load (base, pdir, &error);
  g_assert_no_error (error);
  g_clear_pointer (&config, mt_config_unref);
  g_free (text);
  text = filler ((1 << 20) + 1);
  g_clear_pointer (&big, g_free);
  big = write_file (pdir, "50-big.conf", text, (1 << 20) + 1);
  config = mt_config_load (base, pdir, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE);
  g_assert_true (g_str_has_prefix (error->message, big));
  assert_contains (error->message, "1048577 bytes");
  assert_contains (error->message, "at most 1 MiB");
  g_clear_error (&error);
  g_assert_no_errno (g_unlink (big));

  /* A file that says it is empty and never ends: read no further than
   * the limit. */
  path = g_build_filename (pdir, "50-pagemap.conf", NULL);
  g_assert_no_errno (symlink ("/proc/self/pagemap", path));
  config = mt_config_load (base, pdir, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE);
  g_assert_true (g_str_has_prefix (error->message, path));
  assert_contains (error->message, "at most 1 MiB");
  g_clear_error (&error);
  g_assert_no_errno (g_unlink (path));
  g_clear_pointer (&path, g_free);

  /* 20,000 groups in all (with default.conf's two): enough for one group
   * per VM on a 10,000-VM host, twice over. */
  g_free (text);
  text = groups ("vm", 0, 10000);
  path = write_file (pdir, "60-a.conf", text, -1);
  g_free (text);
  text = groups ("vm", 10000, 9998);
  path2 = write_file (pdir, "70-b.conf", text, -1);
  config = mt_config_load (base, pdir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (mt_config_get_n_vm_groups (config), ==, 19999);
  g_assert_true (mt_config_resolve_vm (config, "vm-19997", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 5);
  g_assert_true (mt_config_resolve_vm (config, "vm-20000", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 9);
  g_clear_pointer (&config, mt_config_unref);
  g_free (text);
  text = groups ("vm", 10000, 9999);
  g_free (path2);
  path2 = write_file (pdir, "70-b.conf", text, -1);
  config = mt_config_load (base, pdir, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE);
  g_assert_true (g_str_has_prefix (error->message, path2));
  assert_contains (error->message, ":19997: ");
  assert_contains (error->message, "more than 20000 groups");
  /* One message, not one per group beyond the limit. */
  g_assert_null (strchr (error->message, '\n'));
  g_clear_error (&error);
  g_assert_no_errno (g_unlink (path));
  g_assert_no_errno (g_unlink (path2));

  /* 1,000 groups with * or ? in all (default.conf has one). */
  g_free (text);
  text = groups ("web-*", 0, 999);
  g_free (path);
  path = write_file (pdir, "60-a.conf", text, -1);
  config = mt_config_load (base, pdir, &error);
  g_assert_no_error (error);
  g_clear_pointer (&config, mt_config_unref);
  g_free (text);
  text = groups ("web-?", 0, 1);
  g_free (path2);
  path2 = write_file (pdir, "70-b.conf", text, -1);
  config = mt_config_load (base, pdir, &error);
  g_assert_null (config);
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE);
  g_assert_true (g_str_has_prefix (error->message, path2));
  assert_contains (error->message, "more than 1000 [vm] groups with * or ?");
  g_clear_error (&error);
  g_assert_no_errno (g_unlink (path));
  g_assert_no_errno (g_unlink (path2));

  /* None of that touched the config in force. */
  g_assert_true (mt_config_resolve_vm (running, "vm-00001", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 9);

  rm_tmp_dir (pdir);
  rm_tmp_dir (dir);
}

/* Groups that name one VM (no * or ?) and globs apply in file order,
 * whichever way memtided finds them. */
static void
test_precedence_names_and_globs (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *a =
    write_file (dir, "10-a.conf", "[vm db]\nshares = 1\n[vm d*]\nshares = 2\nmin = 1G\n", -1);
  g_autofree char *b = write_file (
    dir, "20-b.conf", "[vm db]\nshares = 3\n[vm ??]\nmin = 2G\n[vm dbx]\nmin = 3G\n", -1);
  g_autofree char *c =
    write_file (dir, "30-c.conf", "[vm *]\nheadroom = 1G\n[vm db]\nheadroom = 2G\n", -1);
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = mt_config_load (NULL, dir, &error);
  g_autoptr (GPtrArray) sources = NULL;
  MtVmPolicy p;

  g_assert_no_error (error);
  g_assert_true (mt_config_resolve_vm (config, "db", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 3);
  g_assert_cmpuint (p.min.bytes, ==, 2 * GIB);
  g_assert_cmpuint (p.headroom.bytes, ==, 2 * GIB);
  g_assert_true (mt_config_resolve_vm (config, "dbx", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 2);
  g_assert_cmpuint (p.min.bytes, ==, 3 * GIB);
  g_assert_cmpuint (p.headroom.bytes, ==, GIB);
  g_assert_true (mt_config_resolve_vm (config, "d", NULL, &p, NULL));
  g_assert_cmpuint (p.min.bytes, ==, GIB);

  sources = mt_config_explain_vm (config, "db", NULL, NULL);
  g_assert_true (g_str_has_suffix (
    ((const MtPolicySource *) g_ptr_array_index (sources, 2))->origin, "20-b.conf:2 [vm db]"));
  rm_tmp_dir (dir);
}

static void
test_glob_forms (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *good = write_file (dir, "good.conf",
                                      "[vm build server]\nshares = 11\n"
                                      "[vm db-0?]\nshares = 12\n"
                                      "[vm   spaced-*  ]\nshares = 13\n"
                                      "[vm web-*]\nshares = 14\n",
                                      -1);
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = mt_config_load (good, NULL, &error);
  static const struct {
    const char *name;
    guint shares;
  } matches[] = {
    { "build server", 11 }, { "build", 1000 }, { "db-01", 12 },    { "db-0x", 12 },
    { "db-010", 1000 },     { "db-0", 1000 },  { "spaced-", 13 },  { "spaced-x y", 13 },
    { "web-", 14 },         { "Web-1", 1000 }, { "xweb-1", 1000 },
  };
  static const struct {
    const char *group;
    const char *needle;
  } bad[] = {
    { "[vm \"web-*\"]", "without quotes" },
    { "[vm 'web-*']", "without quotes" },
    { "[vm web-\\*]", "no escapes" },
    { "[vm    ]", "no glob" },
  };

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (matches); i++) {
    MtVmPolicy p;

    g_test_message ("domain “%s”", matches[i].name);
    g_assert_true (mt_config_resolve_vm (config, matches[i].name, NULL, &p, NULL));
    g_assert_cmpuint (p.shares, ==, matches[i].shares);
  }

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *text = g_strdup_printf ("# bad glob\n%s\nmin = 1G\n", bad[i].group);
    g_autofree char *path = write_file (dir, "bad.conf", text, -1);
    g_autoptr (GError) bad_error = NULL;
    g_autoptr (MtConfig) bad_config = mt_config_load (path, NULL, &bad_error);

    g_assert_null (bad_config);
    assert_error_at (bad_error, MT_CONFIG_ERROR_BAD_GLOB, path, 2);
    assert_contains (bad_error->message, bad[i].group);
    assert_contains (bad_error->message, bad[i].needle);
  }
  rm_tmp_dir (dir);
}

/* An opt-in domain (Xen's dom0) is managed only when a group names it
 * written out: a wildcard that matches it does not count. */
static void
test_names_vm (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *wild = write_file (dir, "wild.conf",
                                      "[vm *]\nmin = 1G\n[vm Domain-?]\nshares = 2\n"
                                      "[vm Domain-0*]\nshares = 3\n",
                                      -1);
  g_autofree char *named =
    write_file (dir, "named.conf", "[vm *]\nmin = 1G\n[vm   Domain-0  ]\nmin = 600M\n", -1);
  g_autoptr (MtConfig) wild_config = mt_config_load (wild, NULL, NULL);
  g_autoptr (MtConfig) named_config = mt_config_load (named, NULL, NULL);
  g_autoptr (MtConfig) none = mt_config_load (NULL, NULL, NULL);
  MtVmPolicy p;

  g_assert_nonnull (wild_config);
  g_assert_nonnull (named_config);
  g_assert_true (mt_config_resolve_vm (wild_config, "Domain-0", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 3);                            /* the wildcards match it ... */
  g_assert_false (mt_config_names_vm (wild_config, "Domain-0")); /* ... but do not name it */
  g_assert_true (mt_config_names_vm (named_config, "Domain-0"));
  g_assert_false (mt_config_names_vm (named_config, "domain-0")); /* case-sensitive */
  g_assert_false (mt_config_names_vm (named_config, "Domain-01"));
  g_assert_false (mt_config_names_vm (none, "Domain-0"));
  rm_tmp_dir (dir);
}

/* A failed reload leaves the running config alone: load builds a new
 * object and never touches an old one. */
static void
test_reload_keeps_old (void)
{
  g_autofree char *good = data_path ("precedence/default.conf");
  g_autofree char *bad = data_path ("errors/bad-size.conf");
  g_autoptr (MtConfig) running = mt_config_load (good, NULL, NULL);
  g_autoptr (MtConfig) reloaded = NULL;
  g_autoptr (GError) error = NULL;
  MtVmPolicy before, after;

  g_assert_nonnull (running);
  g_assert_true (mt_config_resolve_vm (running, "web-1", NULL, &before, NULL));
  reloaded = mt_config_load (good, NULL, NULL);
  g_clear_pointer (&reloaded, mt_config_unref);
  reloaded = mt_config_load (bad, NULL, &error);
  g_assert_null (reloaded);
  g_assert_nonnull (error);
  g_assert_true (mt_config_resolve_vm (running, "web-1", NULL, &after, NULL));
  assert_vm_equal (&before, &after);
  g_assert_cmpuint (mt_config_get_host (running)->reserve, ==, 2 * GIB);
}

/* ---- precedence ---------------------------------------------------- */

static void
test_defaults_only (void)
{
  g_autoptr (MtConfig) config = mt_config_load (NULL, NULL, NULL);
  MtVmPolicy vm, def;
  MtHostPolicy host;

  g_assert_nonnull (config);
  g_assert_null (mt_config_get_files (config)[0]);
  g_assert_cmpuint (mt_config_get_n_vm_groups (config), ==, 0);
  mt_host_policy_init_defaults (&host);
  assert_host_equal (mt_config_get_host (config), &host);
  mt_vm_policy_init_defaults (&def);
  g_assert_true (mt_config_resolve_vm (config, "anything", NULL, &vm, NULL));
  assert_vm_equal (&vm, &def);

  /* The defaults are valid values in their own ranges. */
  g_assert_cmpint (host.stuck_timeout, >=, host.tick_interval);
  g_assert_cmpuint (def.shares, >=, MT_SHARES_MIN);
  g_assert_cmpuint (def.shares, <=, MT_SHARES_MAX);
  g_assert_false (def.allow_drop_caches);
  g_assert_true (def.reclaim_cold_cache);
  g_assert_cmpuint (def.headroom_min, ==, 128 * MIB);
  g_assert_true (def.block_hints);
  g_assert_cmpint (def.page_reporting, ==, MT_PAGE_REPORTING_KEEP);
  g_assert_cmpint (def.page_reporting_fast_delay, ==, 100 * 1000);
  g_assert_cmpuint (def.page_reporting_fast_divisor, ==, 1);
  g_assert_cmpfloat (def.stall_budget, ==, 1.0);
  g_assert_cmpint (def.stall_window, ==, 10 * 60 * G_USEC_PER_SEC);
}

static MtConfig *
load_precedence (void)
{
  g_autofree char *def = data_path ("precedence/default.conf");
  g_autofree char *dir = data_path ("precedence/policies.d");
  g_autoptr (GError) error = NULL;
  MtConfig *config = mt_config_load (def, dir, &error);

  g_assert_no_error (error);
  g_assert_nonnull (config);
  return config;
}

static void
test_precedence_files (void)
{
  g_autoptr (MtConfig) config = load_precedence ();
  const char *const *files = mt_config_get_files (config);
  const MtHostPolicy *host = mt_config_get_host (config);

  /* README, .hidden.conf, *.conf~ and *.dpkg-old are ignored (they would
   * not parse), the rest is read in name order after default.conf. */
  g_assert_cmpuint (g_strv_length ((char **) files), ==, 3);
  g_assert_true (g_str_has_suffix (files[0], "precedence/default.conf"));
  g_assert_true (g_str_has_suffix (files[1], "policies.d/10-web.conf"));
  g_assert_true (g_str_has_suffix (files[2], "policies.d/20-override.conf"));
  g_assert_cmpuint (mt_config_get_n_vm_groups (config), ==, 6);

  /* [host] in 10-web.conf overrides default.conf key by key. */
  g_assert_cmpuint (host->reserve, ==, 3 * GIB);
  g_assert_cmpint (host->tick_interval, ==, 2 * G_USEC_PER_SEC);
  g_assert_cmpint (host->stuck_timeout, ==, 30 * G_USEC_PER_SEC);
}

static void
test_precedence_globs (void)
{
  g_autoptr (MtConfig) config = load_precedence ();
  MtVmPolicy p;

  /* web-01 matches [vm *], [vm web-*], [vm web-01], [vm web-0?] in
   * default.conf and 10-web.conf, then [vm *] and [vm web-*] in
   * 20-override.conf. */
  g_assert_true (mt_config_resolve_vm (config, "web-01", NULL, &p, NULL));
  g_assert_false (p.min.is_percent);
  g_assert_cmpuint (p.min.bytes, ==, GIB); /* 20-override [vm web-*] */
  g_assert_true (p.max.is_percent);        /* built-in */
  g_assert_cmpfloat (p.max.percent, ==, 100);
  g_assert_cmpuint (p.shares, ==, 300);               /* [vm web-01] */
  g_assert_cmpuint (p.headroom.bytes, ==, 512 * MIB); /* later [vm web-0?] wins */
  g_assert_cmpfloat (p.pressure_target, ==, 5);       /* 20-override [vm *] */
  g_assert_cmpint (p.mechanism, ==, MT_MECH_BALLOON);

  g_assert_true (mt_config_resolve_vm (config, "web-99", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 200);
  g_assert_cmpuint (p.headroom.bytes, ==, 256 * MIB);
  g_assert_cmpint (p.mechanism, ==, MT_MECH_AUTO);
  g_assert_cmpuint (p.min.bytes, ==, GIB);

  g_assert_true (mt_config_resolve_vm (config, "db-1", NULL, &p, NULL));
  g_assert_true (p.min.is_percent);
  g_assert_cmpfloat (p.min.percent, ==, 10);
  g_assert_cmpuint (p.shares, ==, 100);
  g_assert_true (p.headroom.is_percent);
  g_assert_cmpfloat (p.pressure_target, ==, 5);

  /* Globs match the whole name. */
  g_assert_true (mt_config_resolve_vm (config, "xweb-01", NULL, &p, NULL));
  g_assert_cmpuint (p.shares, ==, 100);
}

static void
test_explain (void)
{
  g_autoptr (MtConfig) config = load_precedence ();
  g_autoptr (GPtrArray) sources = mt_config_explain_vm (config, "web-01", NULL, NULL);
  g_autoptr (GPtrArray) host = mt_config_explain_host (config);
  g_autoptr (GPtrArray) with_meta = NULL;
  g_autoptr (MtVmOverrides) overrides = NULL;
  const MtPolicySource *s;

  g_assert_cmpuint (sources->len, ==, 15);
  s = g_ptr_array_index (sources, 0);
  g_assert_cmpstr (s->key, ==, "min");
  g_assert_cmpstr (s->value, ==, "1G");
  g_assert_true (g_str_has_suffix (s->origin, "policies.d/20-override.conf:6 [vm web-*]"));
  s = g_ptr_array_index (sources, 1);
  g_assert_cmpstr (s->key, ==, "max");
  g_assert_cmpstr (s->value, ==, "100%");
  g_assert_cmpstr (s->origin, ==, "built-in default");
  s = g_ptr_array_index (sources, 2);
  g_assert_cmpstr (s->key, ==, "shares");
  g_assert_cmpstr (s->value, ==, "300");
  g_assert_true (g_str_has_suffix (s->origin, "policies.d/10-web.conf:10 [vm web-01]"));
  s = g_ptr_array_index (sources, 3);
  g_assert_cmpstr (s->key, ==, "headroom");
  g_assert_true (g_str_has_suffix (s->origin, "10-web.conf:15 [vm web-0?]"));
  s = g_ptr_array_index (sources, 4);
  g_assert_cmpstr (s->key, ==, "headroom-min");
  g_assert_cmpstr (s->value, ==, "128M");
  g_assert_cmpstr (s->origin, ==, "built-in default");
  s = g_ptr_array_index (sources, 7);
  g_assert_cmpstr (s->key, ==, "allow-drop-caches");
  g_assert_cmpstr (s->value, ==, "false");
  s = g_ptr_array_index (sources, 8);
  g_assert_cmpstr (s->key, ==, "reclaim-cold-cache");
  g_assert_cmpstr (s->value, ==, "true");
  g_assert_cmpstr (s->origin, ==, "built-in default");
  s = g_ptr_array_index (sources, 9);
  g_assert_cmpstr (s->key, ==, "block-hints");
  g_assert_cmpstr (s->value, ==, "true");
  s = g_ptr_array_index (sources, 10);
  g_assert_cmpstr (s->key, ==, "page-reporting");
  g_assert_cmpstr (s->value, ==, "keep");
  s = g_ptr_array_index (sources, 11);
  g_assert_cmpstr (s->key, ==, "page-reporting-fast-delay");
  g_assert_cmpstr (s->value, ==, "100ms");
  s = g_ptr_array_index (sources, 12);
  g_assert_cmpstr (s->key, ==, "page-reporting-fast-divisor");
  g_assert_cmpstr (s->value, ==, "1");
  g_assert_cmpstr (s->origin, ==, "built-in default");

  g_assert_cmpuint (host->len, ==, 8);
  s = g_ptr_array_index (host, 0);
  g_assert_cmpstr (s->key, ==, "reserve");
  g_assert_cmpstr (s->value, ==, "3G");
  g_assert_true (g_str_has_suffix (s->origin, "10-web.conf:2 [host]"));
  s = g_ptr_array_index (host, 5);
  g_assert_cmpstr (s->key, ==, "max-shrink-rate");
  g_assert_cmpstr (s->value, ==, "256M/s");
  g_assert_cmpstr (s->origin, ==, "built-in default");

  overrides = mt_vm_overrides_from_metadata ("web-01", "<policy><shares>7</shares></policy>", NULL);
  g_assert_cmpuint (mt_vm_overrides_get_n_settings (overrides), ==, 1);
  with_meta = mt_config_explain_vm (config, "web-01", overrides, NULL);
  s = g_ptr_array_index (with_meta, 2);
  g_assert_cmpstr (s->value, ==, "7");
  g_assert_cmpstr (s->origin, ==, "domain metadata");
}

static void
test_check (void)
{
  g_autofree char *def = data_path ("precedence/default.conf");
  g_autofree char *dir = data_path ("precedence/policies.d");
  g_autofree char *bad = data_path ("errors/many-errors.conf");
  FILE *out = tmpfile ();
  char buf[4096];
  size_t n;

  g_assert_nonnull (out);
  g_assert_true (mt_config_check (def, dir, out));
  rewind (out);
  n = fread (buf, 1, sizeof buf - 1, out);
  buf[n] = '\0';
  assert_contains (buf, "policy OK: 3 files, 6 [vm] groups");
  assert_contains (buf, "read ");
  fclose (out);

  out = tmpfile ();
  g_assert_false (mt_config_check (bad, NULL, out));
  rewind (out);
  n = fread (buf, 1, sizeof buf - 1, out);
  buf[n] = '\0';
  assert_contains (buf, "many-errors.conf:2: ");
  assert_contains (buf, "many-errors.conf:3: ");
  assert_contains (buf, "many-errors.conf:4: ");
  assert_contains (buf, "3 problems found");
  fclose (out);
}

/* ---- domain metadata ------------------------------------------------ */

static MtConfig *
load_metadata_base (void)
{
  g_autofree char *path = data_path ("misc/metadata-base.conf");
  MtConfig *config = mt_config_load (path, NULL, NULL);

  g_assert_nonnull (config);
  return config;
}

/* The file policy of metadata-base.conf. */
static void
assert_file_policy (const MtVmPolicy *p)
{
  g_assert_false (p->min.is_percent);
  g_assert_cmpuint (p->min.bytes, ==, GIB);
  g_assert_cmpuint (p->max.bytes, ==, 4 * GIB);
  g_assert_cmpuint (p->shares, ==, 100);
}

/* What a driver and the daemon do with a domain's metadata: the driver
 * parses it into overrides, the daemon resolves them on top of the
 * files, or applies the file policy alone when the driver could not
 * parse them.  Returns whether the metadata applies. */
static gboolean
resolve_metadata (MtConfig *config, const char *name, const char *xml, MtVmPolicy *out,
                  GError **error)
{
  g_autoptr (MtVmOverrides) overrides = mt_vm_overrides_from_metadata (name, xml, error);

  if (overrides == NULL) {
    g_assert_true (mt_config_resolve_vm (config, name, NULL, out, NULL));
    return FALSE;
  }
  return mt_config_resolve_vm (config, name, overrides, out, error);
}

static void
test_metadata_good (void)
{
  static const char *const forms[] = {
    /* What virDomainGetMetadata returns: prefix and xmlns stripped. */
    "<policy><min>512M</min><max>75%</max><shares>2000</shares></policy>",
    /* As stored in the domain XML. */
    "<memtide:policy xmlns:memtide=\"" MT_METADATA_NAMESPACE "\">\n"
    "  <memtide:min>512M</memtide:min>\n"
    "  <memtide:max> 75% </memtide:max>\n"
    "  <memtide:shares>2000</memtide:shares>\n"
    "</memtide:policy>\n",
    /* Default namespace, comments, CDATA, an XML declaration. */
    "<?xml version=\"1.0\"?>\n<!-- hello -->"
    "<policy xmlns=\"" MT_METADATA_NAMESPACE "\"><min><![CDATA[512M]]></min>"
    "<max>75%</max><!-- c --><shares>2000</shares></policy>",
    /* Another tool's annotations are skipped, however deep. */
    "<policy xmlns:x=\"urn:other\"><x:min>9T</x:min><min>512M</min>"
    "<x:deep><x:deeper><min>9T</min></x:deeper></x:deep>"
    "<other xmlns=\"urn:other\"><min>9T</min></other>"
    "<max x:note=\"ok\">75%</max><shares>2000</shares></policy>",
  };

  for (guint i = 0; i < G_N_ELEMENTS (forms); i++) {
    g_autoptr (MtConfig) config = load_metadata_base ();
    g_autoptr (GError) error = NULL;
    MtVmPolicy p;

    g_test_message ("form %u", i);
    g_assert_true (resolve_metadata (config, "vm1", forms[i], &p, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (p.min.bytes, ==, 512 * MIB);
    g_assert_true (p.max.is_percent);
    g_assert_cmpfloat (p.max.percent, ==, 75);
    g_assert_cmpuint (p.shares, ==, 2000);
  }
}

static void
test_metadata_none (void)
{
  g_autoptr (MtConfig) config = load_metadata_base ();
  static const char *const empty[] = { NULL, "", " \n\t", "<policy/>", "<policy></policy>" };

  for (guint i = 0; i < G_N_ELEMENTS (empty); i++) {
    g_autoptr (GError) error = NULL;
    MtVmPolicy p;

    g_assert_true (resolve_metadata (config, "vm1", empty[i], &p, &error));
    g_assert_no_error (error);
    assert_file_policy (&p);
  }
}

static void
test_metadata_all_keys (void)
{
  g_autoptr (MtConfig) config = load_metadata_base ();
  g_autoptr (GError) error = NULL;
  MtVmPolicy p;

  g_assert_true (resolve_metadata (
    config, "vm1",
    "<policy><min>10%</min><max>2G</max><shares>1</shares><headroom>64M</headroom>"
    "<headroom-min>32M</headroom-min>"
    "<pressure-target>0.5%</pressure-target><mechanism>none</mechanism>"
    "<allow-drop-caches>true</allow-drop-caches>"
    "<reclaim-cold-cache>false</reclaim-cold-cache><block-hints>false</block-hints>"
    "<page-reporting>fast-when-idle</page-reporting>"
    "<page-reporting-fast-delay>250ms</page-reporting-fast-delay>"
    "<page-reporting-fast-divisor>4</page-reporting-fast-divisor></policy>",
    &p, &error));
  g_assert_no_error (error);
  g_assert_true (p.min.is_percent);
  g_assert_cmpuint (p.max.bytes, ==, 2 * GIB);
  g_assert_cmpuint (p.shares, ==, 1);
  g_assert_cmpuint (p.headroom.bytes, ==, 64 * MIB);
  g_assert_cmpuint (p.headroom_min, ==, 32 * MIB);
  g_assert_cmpfloat (p.pressure_target, ==, 0.5);
  g_assert_cmpint (p.mechanism, ==, MT_MECH_NONE);
  g_assert_true (p.allow_drop_caches);
  g_assert_false (p.reclaim_cold_cache);
  g_assert_false (p.block_hints);
  g_assert_cmpint (p.page_reporting, ==, MT_PAGE_REPORTING_FAST_WHEN_IDLE);
  g_assert_cmpint (p.page_reporting_fast_delay, ==, 250 * 1000);
  g_assert_cmpuint (p.page_reporting_fast_divisor, ==, 4);
}

/* The page reporting keys take only what the guest kernel accepts. */
static void
test_page_reporting_keys (void)
{
  const MtKey *mode = &mt_vm_keys.keys[MT_VM_KEY_PAGE_REPORTING];
  const MtKey *delay = &mt_vm_keys.keys[MT_VM_KEY_PAGE_REPORTING_FAST_DELAY];
  const MtKey *divisor = &mt_vm_keys.keys[MT_VM_KEY_PAGE_REPORTING_FAST_DIVISOR];
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  MtValue v;

  g_assert_true (mt_key_parse (mode, "fast", &v, NULL));
  g_assert_cmpint (v.page_reporting, ==, MT_PAGE_REPORTING_FAST);
  text = mt_key_format (mode, &v);
  g_assert_cmpstr (text, ==, "fast");
  g_assert_false (mt_key_parse (mode, "fast-when-idel", &v, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_CHOICE);
  g_assert_nonnull (strstr (error->message, "did you mean “fast-when-idle”"));
  g_clear_error (&error);

  g_assert_true (mt_key_parse (delay, "10ms", &v, NULL));
  g_assert_cmpint (v.usec, ==, 10 * 1000);
  g_assert_true (mt_key_parse (delay, "60s", &v, NULL));
  g_assert_false (mt_key_parse (delay, "9ms", &v, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);
  g_assert_false (mt_key_parse (delay, "61s", &v, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);

  g_assert_true (mt_key_parse (divisor, "1024", &v, NULL));
  g_assert_cmpuint (v.number, ==, 1024);
  g_clear_pointer (&text, g_free);
  text = mt_key_format (divisor, &v);
  g_assert_cmpstr (text, ==, "1024");
  g_assert_false (mt_key_parse (divisor, "0", &v, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);
  g_assert_false (mt_key_parse (divisor, "1025", &v, &error));
  g_assert_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);
}

typedef struct {
  const char *xml;
  MtConfigError code;
  const char *needles[3];
} MetadataCase;

static void
test_metadata_bad (void)
{
  g_autofree char *huge = NULL;
  g_autofree char *long_value = NULL;
  const MetadataCase cases[] = {
    { "<policy><min>abc</min></policy>",
      MT_CONFIG_ERROR_INVALID_SIZE,
      { "<min>", "“abc”", "expected" } },
    { "<policy><min>99999999999999999999999999T</min></policy>",
      MT_CONFIG_ERROR_INVALID_SIZE,
      { "<min>", "too large" } },
    { "<policy><shares>18446744073709551616</shares></policy>",
      MT_CONFIG_ERROR_OUT_OF_RANGE,
      { "<shares>", "1 to 1000000" } },
    { "<policy><pressure-target>5</pressure-target></policy>",
      MT_CONFIG_ERROR_INVALID_PERCENT,
      { "<pressure-target>", "“5”" } },
    { "<policy><mechanism>ballon</mechanism></policy>",
      MT_CONFIG_ERROR_INVALID_MECHANISM,
      { "<mechanism>", "did you mean “balloon”?" } },
    { "<policy><allow-drop-caches>sure</allow-drop-caches></policy>",
      MT_CONFIG_ERROR_INVALID_BOOLEAN,
      { "<allow-drop-caches>", "“sure”" } },
    { "<policy><mni>1G</mni></policy>",
      MT_CONFIG_ERROR_METADATA,
      { "unknown element <mni>", "did you mean “min”?", "expected one of min, max" } },
    { "<policy><reserve>1G</reserve></policy>",
      MT_CONFIG_ERROR_METADATA,
      { "<reserve>", "belongs in [host]" } },
    { "<policy><min>1G</min><min>2G</min></policy>",
      MT_CONFIG_ERROR_METADATA,
      { "<min>", "second time" } },
    { "<policy><min><b>1G</b></min></policy>",
      MT_CONFIG_ERROR_METADATA,
      { "<min>", "contains element <b>", "text only" } },
    { "<policy><min unit=\"G\">1</min></policy>",
      MT_CONFIG_ERROR_METADATA,
      { "<min>", "attribute “unit”" } },
    { "<policy>1G</policy>", MT_CONFIG_ERROR_METADATA, { "<policy>", "unexpected text “1G”" } },
    { "<settings><min>1G</min></settings>",
      MT_CONFIG_ERROR_METADATA,
      { "root element is <settings>", MT_METADATA_NAMESPACE } },
    { "<policy xmlns=\"https://memtide.org/xmlns/policy/2\"><min>1G</min></policy>",
      MT_CONFIG_ERROR_METADATA,
      { "in namespace https://memtide.org/xmlns/policy/2" } },
    { "<m:policy><m:min>1G</m:min></m:policy>",
      MT_CONFIG_ERROR_METADATA,
      { "undeclared namespace prefix “m”" } },
    { "<policy><min>1G</policy>", MT_CONFIG_ERROR_METADATA, { "not well-formed XML" } },
    { "<policy><min>&bogus;</min></policy>", MT_CONFIG_ERROR_METADATA, { "not well-formed XML" } },
    { "<policy><min>1G\xff</min></policy>", MT_CONFIG_ERROR_METADATA, { "not well-formed XML" } },
    { "<policy>\n  \xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 "
      "\xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 "
      "\xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9</policy>",
      MT_CONFIG_ERROR_METADATA,
      { "unexpected text “\xc3\xa9t\xc3\xa9" } },
    { "<policy/><policy/>", MT_CONFIG_ERROR_METADATA, { NULL } },
    { "not xml at all", MT_CONFIG_ERROR_METADATA, { "not well-formed XML" } },
    { "<policy><min>2G</min><max>1G</max></policy>",
      MT_CONFIG_ERROR_MIN_ABOVE_MAX,
      { "<min>", "“2G”", "<max> “1G”" } },
    /* min from metadata against max from the file. */
    { "<policy><min>8G</min></policy>",
      MT_CONFIG_ERROR_MIN_ABOVE_MAX,
      { "<min>", "“8G” (from domain metadata)", "metadata-base.conf:4 [vm *]" } },
    { "<policy><max>512M</max></policy>",
      MT_CONFIG_ERROR_MIN_ABOVE_MAX,
      { "<max>", "“512M” (from domain metadata)" } },
    { NULL, MT_CONFIG_ERROR_METADATA, { "longer than 65536 bytes" } },
    { NULL, MT_CONFIG_ERROR_METADATA, { "<min>", "longer than 256 bytes" } },
  };
  guint n = G_N_ELEMENTS (cases);
  MetadataCase *c = g_memdup2 (cases, sizeof cases);

  /* Oversized input: whole document, and one value. */
  {
    GString *s = g_string_new ("<policy>");
    while (s->len <= 65536)
      g_string_append (s, "<!-- padding padding padding -->");
    g_string_append (s, "</policy>");
    huge = g_string_free (s, FALSE);
    c[n - 2].xml = huge;
  }
  {
    g_autofree char *digits = g_strnfill (1000, '1');
    long_value = g_strdup_printf ("<policy><min>%s</min></policy>", digits);
    c[n - 1].xml = long_value;
  }

  for (guint i = 0; i < n; i++) {
    g_autoptr (MtConfig) config = load_metadata_base ();
    g_autoptr (GError) error = NULL;
    MtVmPolicy p;

    g_test_message ("metadata case %u", i);
    g_assert_false (resolve_metadata (config, "web-7", c[i].xml, &p, &error));
    g_assert_nonnull (error);
    g_test_message ("%s", error->message);
    g_assert_error (error, MT_CONFIG_ERROR, (gint) c[i].code);
    g_assert_true (g_str_has_prefix (error->message, "domain “web-7”: metadata "));
    g_assert_true (g_utf8_validate (error->message, -1, NULL));
    for (guint j = 0; j < G_N_ELEMENTS (c[i].needles) && c[i].needles[j]; j++)
      assert_contains (error->message, c[i].needles[j]);
    /* Bad metadata is ignored whole: the file policy applies. */
    assert_file_policy (&p);
  }
  g_free (c);
}

/* Deep nesting of foreign elements costs memory linear in the input and
 * no recursion. */
static void
test_metadata_deep (void)
{
  g_autoptr (MtConfig) config = load_metadata_base ();
  g_autoptr (GString) s = g_string_new ("<policy xmlns:x=\"urn:x\">");
  g_autoptr (GError) error = NULL;
  MtVmPolicy p;

  for (guint i = 0; i < 3000; i++)
    g_string_append (s, "<x:a>");
  for (guint i = 0; i < 3000; i++)
    g_string_append (s, "</x:a>");
  g_string_append (s, "<shares>5</shares></policy>");
  g_assert_cmpuint (s->len, <, 65536);

  g_assert_true (resolve_metadata (config, "vm", s->str, &p, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (p.shares, ==, 5);
}

/* ---- shipped files --------------------------------------------------- */

/* default.conf shows every key once, commented out as "#key = value",
 * with the built-in value: uncommented, it must load to the built-ins
 * and set every key. */
static void
test_shipped_default_in_sync (void)
{
  g_autofree char *path = shipped_path ("default.conf");
  g_autofree char *text = NULL;
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *uncommented_path = NULL;
  g_autoptr (GRegex) re = g_regex_new ("^#([a-z-]+ = )", G_REGEX_MULTILINE, 0, NULL);
  g_autofree char *uncommented = NULL;
  g_autoptr (MtConfig) config = NULL;
  g_autoptr (GPtrArray) host_sources = NULL;
  g_autoptr (GPtrArray) vm_sources = NULL;
  g_autoptr (GError) error = NULL;
  MtVmPolicy vm, vm_def;
  MtHostPolicy host_def;

  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  uncommented = g_regex_replace (re, text, -1, 0, "\\1", 0, &error);
  g_assert_no_error (error);
  uncommented_path = write_file (dir, "default.conf", uncommented, -1);

  config = mt_config_load (uncommented_path, NULL, &error);
  g_assert_no_error (error);
  mt_host_policy_init_defaults (&host_def);
  assert_host_equal (mt_config_get_host (config), &host_def);
  mt_vm_policy_init_defaults (&vm_def);
  g_assert_true (mt_config_resolve_vm (config, "any-vm", NULL, &vm, NULL));
  assert_vm_equal (&vm, &vm_def);

  host_sources = mt_config_explain_host (config);
  vm_sources = mt_config_explain_vm (config, "any-vm", NULL, NULL);
  for (guint i = 0; i < host_sources->len; i++) {
    const MtPolicySource *s = g_ptr_array_index (host_sources, i);
    g_test_message ("[host] %s from %s", s->key, s->origin);
    g_assert_true (g_str_has_prefix (s->origin, uncommented_path));
  }
  for (guint i = 0; i < vm_sources->len; i++) {
    const MtPolicySource *s = g_ptr_array_index (vm_sources, i);
    g_test_message ("[vm *] %s from %s", s->key, s->origin);
    g_assert_true (g_str_has_prefix (s->origin, uncommented_path));
  }

  rm_tmp_dir (dir);
}

static void
test_shipped_default (void)
{
  g_autofree char *path = shipped_path ("default.conf");
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = mt_config_load (path, NULL, &error);
  MtHostPolicy def;

  g_assert_no_error (error);
  mt_host_policy_init_defaults (&def);
  assert_host_equal (mt_config_get_host (config), &def);
}

/* Each example, dropped into policies.d behind default.conf, loads. */
static void
test_shipped_examples (void)
{
  g_autofree char *defaults = shipped_path ("default.conf");
  g_autofree char *examples = shipped_path ("examples");
  g_autoptr (GDir) d = g_dir_open (examples, 0, NULL);
  const char *name;
  guint n = 0;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)) != NULL) {
    g_autofree char *src = g_build_filename (examples, name, NULL);
    g_autofree char *text = NULL;
    g_autofree char *dir = make_tmp_dir ();
    g_autofree char *dst = NULL;
    g_autoptr (GError) error = NULL;
    g_autoptr (MtConfig) config = NULL;

    g_test_message ("example %s", name);
    g_assert_true (g_str_has_suffix (name, ".conf"));
    g_assert_true (g_file_get_contents (src, &text, NULL, NULL));
    dst = write_file (dir, name, text, -1);
    config = mt_config_load (defaults, dir, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (g_strv_length ((char **) mt_config_get_files (config)), ==, 2);
    rm_tmp_dir (dir);
    n++;
  }
  g_assert_cmpuint (n, >=, 3);
}

/* What web-and-databases.conf's comments promise. */
static void
test_shipped_example_semantics (void)
{
  g_autofree char *path = shipped_path ("examples/web-and-databases.conf");
  g_autoptr (GError) error = NULL;
  g_autoptr (MtConfig) config = mt_config_load (path, NULL, &error);
  MtVmPolicy p;

  g_assert_no_error (error);
  g_assert_true (mt_config_resolve_vm (config, "db-reporting", NULL, &p, NULL));
  g_assert_cmpuint (p.min.bytes, ==, 2 * GIB);
  g_assert_cmpuint (p.shares, ==, 1000);
  g_assert_cmpint (p.mechanism, ==, MT_MECH_BALLOON);
  g_assert_cmpfloat (p.pressure_target, ==, 0.5);
  g_assert_true (mt_config_resolve_vm (config, "web-3", NULL, &p, NULL));
  g_assert_cmpuint (p.min.bytes, ==, 512 * MIB);
  g_assert_cmpfloat (p.headroom.percent, ==, 20);
  g_assert_cmpuint (mt_config_get_host (config)->reserve, ==, 2 * GIB);
}

static void
test_refcount (void)
{
  MtConfig *config = mt_config_load (NULL, NULL, NULL);
  MtConfig *ref = mt_config_ref (config);

  g_assert_true (ref == config);
  mt_config_unref (config);
  g_assert_nonnull (mt_config_get_host (ref));
  mt_config_unref (ref);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/config/value/size", test_size_parse);
  g_test_add_func ("/config/value/size-messages", test_size_messages);
  g_test_add_func ("/config/value/size-or-percent", test_size_or_percent);
  g_test_add_func ("/config/value/percent", test_percent_parse);
  g_test_add_func ("/config/value/duration", test_duration_parse);
  g_test_add_func ("/config/value/boolean-number-mechanism", test_boolean_number_mechanism);
  g_test_add_func ("/config/value/format", test_format);
  g_test_add_func ("/config/value/suggest", test_suggest);
  g_test_add_func ("/config/value/page-reporting", test_page_reporting_keys);
  g_test_add_func ("/config/policy/percent-resolution", test_percent_resolution);

  for (guint i = 0; i < G_N_ELEMENTS (error_cases); i++) {
    g_autofree char *test_path = g_strdup_printf ("/config/errors/%s", error_cases[i].file);
    ErrorCase *c = g_memdup2 (&error_cases[i], sizeof error_cases[i]);
    c->file = g_build_filename ("errors", error_cases[i].file, NULL);
    g_test_add_data_func_full (test_path, c, test_error_case, error_case_free);
  }
  g_test_add_func ("/config/errors/many", test_error_many);
  g_test_add_func ("/config/errors/many-capped", test_error_many_capped);
  g_test_add_func ("/config/errors/bytes", test_error_bytes);
  g_test_add_func ("/config/errors/read", test_error_read);
  g_test_add_func ("/config/errors/not-regular", test_error_not_regular);
  g_test_add_func ("/config/errors/too-large", test_error_too_large);
  g_test_add_func ("/config/errors/reload-keeps-old", test_reload_keeps_old);
  g_test_add_func ("/config/globs", test_glob_forms);
  g_test_add_func ("/config/names-vm", test_names_vm);
  g_test_add_func ("/config/policy/opt-in-floor", test_opt_in_floor);

  g_test_add_func ("/config/precedence/defaults-only", test_defaults_only);
  g_test_add_func ("/config/precedence/files", test_precedence_files);
  g_test_add_func ("/config/precedence/globs", test_precedence_globs);
  g_test_add_func ("/config/precedence/names-and-globs", test_precedence_names_and_globs);
  g_test_add_func ("/config/explain", test_explain);
  g_test_add_func ("/config/check", test_check);
  g_test_add_func ("/config/refcount", test_refcount);

  g_test_add_func ("/config/metadata/good", test_metadata_good);
  g_test_add_func ("/config/metadata/none", test_metadata_none);
  g_test_add_func ("/config/metadata/all-keys", test_metadata_all_keys);
  g_test_add_func ("/config/metadata/bad", test_metadata_bad);
  g_test_add_func ("/config/metadata/deep", test_metadata_deep);

  g_test_add_func ("/config/shipped/default", test_shipped_default);
  g_test_add_func ("/config/shipped/default-in-sync", test_shipped_default_in_sync);
  g_test_add_func ("/config/shipped/examples", test_shipped_examples);
  g_test_add_func ("/config/shipped/example-semantics", test_shipped_example_semantics);

  return g_test_run ();
}
