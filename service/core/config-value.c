/* config-value.c: parse and format policy values.
 *
 * Numbers are parsed by hand, not with strtod/strtoull: those accept
 * signs, hex, exponents, "inf" and locale decimal commas, and lose
 * precision, while "1.5G" must be exactly 1610612736 and a typo must be
 * an error, not a silently different size.
 */
#define G_LOG_DOMAIN "memtide-config"

#include <string.h>
#include "config.h"
#include "config-value.h"
#include "sample.h" /* MT_UNKNOWN */

#define EXPECT_SIZE \
  "a number and a binary unit B, K, KiB, M, MiB, G, GiB, T or TiB, e.g. 512M or 1.5GiB"
#define EXPECT_SIZE_OR_PERCENT EXPECT_SIZE ", or a percentage such as 50%"
#define EXPECT_PERCENT         "a percentage from 0% to 100%, e.g. 10% or 2.5%"
#define EXPECT_DURATION        "a number and a unit us, ms, s, m or h, e.g. 500ms, 2s or 1m"

typedef struct {
  const char *unit;
  guint64 mult;
} Unit;

static const Unit size_units[] = {
  { "B", 1 },
  { "K", G_GUINT64_CONSTANT (1) << 10 },
  { "KiB", G_GUINT64_CONSTANT (1) << 10 },
  { "M", G_GUINT64_CONSTANT (1) << 20 },
  { "MiB", G_GUINT64_CONSTANT (1) << 20 },
  { "G", G_GUINT64_CONSTANT (1) << 30 },
  { "GiB", G_GUINT64_CONSTANT (1) << 30 },
  { "T", G_GUINT64_CONSTANT (1) << 40 },
  { "TiB", G_GUINT64_CONSTANT (1) << 40 },
};

static const Unit duration_units[] = {
  { "us", 1 },
  { "\302\265s", 1 }, /* µs */
  { "ms", 1000 },
  { "s", G_USEC_PER_SEC },
  { "m", 60 * G_USEC_PER_SEC },
  { "min", 60 * G_USEC_PER_SEC },
  { "h", 3600 * (guint64) G_USEC_PER_SEC },
};

/* "DIGITS[.DIGITS][blanks]UNIT", unit possibly empty. */
typedef struct {
  const char *whole;
  gsize n_whole;
  const char *frac;
  gsize n_frac;
  const char *unit;
} Decimal;

static gboolean
split_decimal (const char *text, Decimal *d)
{
  const char *p = text;

  d->whole = p;
  while (g_ascii_isdigit (*p))
    p++;
  d->n_whole = p - d->whole;
  if (d->n_whole == 0)
    return FALSE;

  d->frac = p;
  d->n_frac = 0;
  if (*p == '.') {
    d->frac = ++p;
    while (g_ascii_isdigit (*p))
      p++;
    d->n_frac = p - d->frac;
    if (d->n_frac == 0)
      return FALSE;
  }

  while (*p == ' ' || *p == '\t')
    p++;
  d->unit = p;
  return TRUE;
}

static gboolean
decimal_is_zero (const Decimal *d)
{
  for (gsize i = 0; i < d->n_whole; i++)
    if (d->whole[i] != '0')
      return FALSE;
  for (gsize i = 0; i < d->n_frac; i++)
    if (d->frac[i] != '0')
      return FALSE;
  return TRUE;
}

/* floor (d * mult), FALSE when above limit.  The fraction is folded in
 * from its last digit (Horner): flooring at every step still gives the
 * exact floor of the whole sum, and no step exceeds 10 * mult. */
static gboolean
decimal_scale (const Decimal *d, guint64 mult, guint64 limit, guint64 *out)
{
  guint64 whole = 0;
  guint64 frac = 0;

  for (gsize i = 0; i < d->n_whole; i++) {
    guint digit = d->whole[i] - '0';
    if (whole > (G_MAXUINT64 - digit) / 10)
      return FALSE;
    whole = whole * 10 + digit;
  }
  for (gsize i = d->n_frac; i > 0; i--)
    frac = ((guint64) (d->frac[i - 1] - '0') * mult + frac) / 10;

  if (whole > (limit - frac) / mult)
    return FALSE;
  *out = whole * mult + frac;
  return TRUE;
}

static double
decimal_to_double (const Decimal *d)
{
  g_autofree char *s = g_strndup (d->whole, (d->frac + d->n_frac) - d->whole);
  return g_ascii_strtod (s, NULL);
}

static const Unit *
find_unit (const Unit *units, gsize n, const char *unit)
{
  for (gsize i = 0; i < n; i++)
    if (strcmp (units[i].unit, unit) == 0)
      return &units[i];
  return NULL;
}

static gboolean
parse_size (const char *text, guint64 *out, const char *expected, GError **error)
{
  Decimal d;
  const Unit *unit;

  if (*text == '\0') {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE, "empty value; expected %s",
                 expected);
    return FALSE;
  }
  if (text[0] == '-') {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE,
                 "“%s” is negative; expected %s", text, expected);
    return FALSE;
  }
  if (!split_decimal (text, &d)) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE,
                 "“%s” is not a size; expected %s", text, expected);
    return FALSE;
  }
  if (*d.unit == '\0') {
    if (decimal_is_zero (&d)) {
      *out = 0;
      return TRUE;
    }
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE,
                 "“%s” has no unit; expected %s (only 0 may go without a unit)", text, expected);
    return FALSE;
  }

  unit = find_unit (size_units, G_N_ELEMENTS (size_units), d.unit);
  if (unit == NULL) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE,
                 "“%s” has an unknown unit “%s”; expected %s "
                 "(units are binary and case-sensitive: M or MiB, never MB)",
                 text, d.unit, expected);
    return FALSE;
  }
  /* 2^64 - 1 is MT_UNKNOWN everywhere inside memtided: not a size. */
  if (!decimal_scale (&d, unit->mult, MT_UNKNOWN - 1, out)) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_SIZE,
                 "“%s” is too large; expected a size below 2^64 − 1 bytes (16 EiB)", text);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_percent (const char *text, double *out, const char *expected, MtConfigError not_a_percent,
               GError **error)
{
  Decimal d;
  gboolean negative = (text[0] == '-');
  double v;

  if (!split_decimal (negative ? text + 1 : text, &d) || strcmp (d.unit, "%") != 0) {
    g_set_error (error, MT_CONFIG_ERROR, not_a_percent, "“%s” is not a percentage; expected %s",
                 text, expected);
    return FALSE;
  }
  v = decimal_to_double (&d);
  if (negative && v != 0)
    v = -v;
  if (v < 0 || v > 100) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE,
                 "“%s” is out of range; expected 0%% to 100%%", text);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

gboolean
mt_parse_size (const char *text, guint64 *out, GError **error)
{
  return parse_size (text, out, EXPECT_SIZE, error);
}

gboolean
mt_parse_size_or_percent (const char *text, MtSize *out, GError **error)
{
  MtSize size = { 0 };

  if (strchr (text, '%') != NULL) {
    if (!parse_percent (text, &size.percent, EXPECT_SIZE_OR_PERCENT, MT_CONFIG_ERROR_INVALID_SIZE,
                        error))
      return FALSE;
    size.is_percent = TRUE;
  } else if (!parse_size (text, &size.bytes, EXPECT_SIZE_OR_PERCENT, error))
    return FALSE;

  *out = size;
  return TRUE;
}

gboolean
mt_parse_percent (const char *text, double *out, GError **error)
{
  return parse_percent (text, out, EXPECT_PERCENT, MT_CONFIG_ERROR_INVALID_PERCENT, error);
}

gboolean
mt_parse_duration (const char *text, gint64 *out, GError **error)
{
  Decimal d;
  const Unit *unit;
  guint64 usec;

  if (text[0] == '-') {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_DURATION,
                 "“%s” is negative; expected %s", text, EXPECT_DURATION);
    return FALSE;
  }
  if (!split_decimal (text, &d)) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_DURATION,
                 "“%s” is not a duration; expected %s", text, EXPECT_DURATION);
    return FALSE;
  }
  if (*d.unit == '\0') {
    if (decimal_is_zero (&d)) {
      *out = 0;
      return TRUE;
    }
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_DURATION,
                 "“%s” has no unit; expected %s (only 0 may go without a unit)", text,
                 EXPECT_DURATION);
    return FALSE;
  }

  unit = find_unit (duration_units, G_N_ELEMENTS (duration_units), d.unit);
  if (unit == NULL) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_DURATION,
                 "“%s” has an unknown unit “%s”; expected %s", text, d.unit, EXPECT_DURATION);
    return FALSE;
  }
  if (!decimal_scale (&d, unit->mult, G_MAXINT64, &usec)) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_DURATION,
                 "“%s” is too long; expected %s", text, EXPECT_DURATION);
    return FALSE;
  }
  *out = (gint64) usec;
  return TRUE;
}

gboolean
mt_parse_boolean (const char *text, gboolean *out, GError **error)
{
  static const char *const yes[] = { "true", "yes", "on", "1" };
  static const char *const no[] = { "false", "no", "off", "0" };

  for (guint i = 0; i < G_N_ELEMENTS (yes); i++) {
    if (g_ascii_strcasecmp (text, yes[i]) == 0) {
      *out = TRUE;
      return TRUE;
    }
    if (g_ascii_strcasecmp (text, no[i]) == 0) {
      *out = FALSE;
      return TRUE;
    }
  }
  g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_BOOLEAN,
               "“%s” is not a boolean; expected true or false "
               "(yes/no, on/off and 1/0 work too)",
               text);
  return FALSE;
}

gboolean
mt_parse_uint (const char *text, guint64 lo, guint64 hi, guint64 *out, GError **error)
{
  guint64 v = 0;
  gboolean overflow = FALSE;
  const char *p;

  for (p = text; g_ascii_isdigit (*p); p++) {
    guint digit = *p - '0';
    if (v > (G_MAXUINT64 - digit) / 10)
      overflow = TRUE;
    else
      v = v * 10 + digit;
  }
  if (p == text || *p != '\0') {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_NUMBER,
                 "“%s” is not a whole number; expected a number from %" G_GUINT64_FORMAT
                 " to %" G_GUINT64_FORMAT,
                 text, lo, hi);
    return FALSE;
  }
  if (overflow || v < lo || v > hi) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE,
                 "“%s” is out of range; expected a number from %" G_GUINT64_FORMAT
                 " to %" G_GUINT64_FORMAT,
                 text, lo, hi);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

gboolean
mt_parse_mechanism (const char *text, MtMechanism *out, GError **error)
{
  static const char *const names[] = { "auto", "virtio-mem", "balloon", "none" };
  const char *hint;

  if (mt_mechanism_from_string (text, out))
    return TRUE;

  hint = mt_suggest (text, names, G_N_ELEMENTS (names));
  g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_MECHANISM,
               "“%s” is not a mechanism; expected auto, virtio-mem, balloon or none%s%s%s", text,
               hint ? " (did you mean “" : "", hint ? hint : "", hint ? "”?)" : "");
  return FALSE;
}

gboolean
mt_parse_page_reporting (const char *text, MtPageReporting *out, GError **error)
{
  static const char *const names[] = { "keep", "fast", "fast-when-idle" };
  const char *hint;

  if (mt_page_reporting_from_string (text, out))
    return TRUE;

  hint = mt_suggest (text, names, G_N_ELEMENTS (names));
  g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_INVALID_CHOICE,
               "“%s” is not a page reporting mode; expected keep, fast or fast-when-idle%s%s%s",
               text, hint ? " (did you mean “" : "", hint ? hint : "", hint ? "”?)" : "");
  return FALSE;
}

char *
mt_format_size (guint64 bytes)
{
  static const Unit units[] = {
    { "T", G_GUINT64_CONSTANT (1) << 40 },
    { "G", G_GUINT64_CONSTANT (1) << 30 },
    { "M", G_GUINT64_CONSTANT (1) << 20 },
    { "K", G_GUINT64_CONSTANT (1) << 10 },
  };

  if (bytes == 0)
    return g_strdup ("0");
  for (gsize i = 0; i < G_N_ELEMENTS (units); i++)
    if (bytes % units[i].mult == 0)
      return g_strdup_printf ("%" G_GUINT64_FORMAT "%s", bytes / units[i].mult, units[i].unit);
  return g_strdup_printf ("%" G_GUINT64_FORMAT "B", bytes);
}

char *
mt_format_percent (double percent)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  return g_strconcat (g_ascii_formatd (buf, sizeof buf, "%.15g", percent), "%", NULL);
}

char *
mt_format_duration (gint64 usec)
{
  static const Unit units[] = {
    { "h", 3600 * (guint64) G_USEC_PER_SEC },
    { "m", 60 * G_USEC_PER_SEC },
    { "s", G_USEC_PER_SEC },
    { "ms", 1000 },
  };

  if (usec == 0)
    return g_strdup ("0");
  for (gsize i = 0; i < G_N_ELEMENTS (units); i++)
    if ((guint64) usec % units[i].mult == 0)
      return g_strdup_printf ("%" G_GUINT64_FORMAT "%s", (guint64) usec / units[i].mult,
                              units[i].unit);
  return g_strdup_printf ("%" G_GINT64_FORMAT "us", usec);
}

/* Optimal string alignment distance (Levenshtein plus adjacent
 * transpositions, the commonest typo), ignoring ASCII case. */
static gsize
edit_distance (const char *a, const char *b)
{
  gsize la = strlen (a), lb = strlen (b);
  g_autofree gsize *d = g_new (gsize, (la + 1) * (lb + 1));
#define D(i, j) d[(i) * (lb + 1) + (j)]

  for (gsize i = 0; i <= la; i++)
    D (i, 0) = i;
  for (gsize j = 0; j <= lb; j++)
    D (0, j) = j;
  for (gsize i = 1; i <= la; i++)
    for (gsize j = 1; j <= lb; j++) {
      gsize cost = g_ascii_tolower (a[i - 1]) != g_ascii_tolower (b[j - 1]);
      gsize best = MIN (D (i - 1, j) + 1, D (i, j - 1) + 1);
      best = MIN (best, D (i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && g_ascii_tolower (a[i - 1]) == g_ascii_tolower (b[j - 2])
          && g_ascii_tolower (a[i - 2]) == g_ascii_tolower (b[j - 1]))
        best = MIN (best, D (i - 2, j - 2) + 1);
      D (i, j) = best;
    }
  return D (la, lb);
#undef D
}

const char *
mt_suggest (const char *word, const char *const *candidates, gsize n_candidates)
{
  const char *best = NULL;
  gsize best_distance = G_MAXSIZE;

  /* Anything longer is not a typo of a short policy word, and the
   * distance matrix must stay small for hostile input. */
  if (word == NULL || strlen (word) > 64)
    return NULL;

  for (gsize i = 0; i < n_candidates; i++) {
    gsize dist = edit_distance (word, candidates[i]);
    /* Two edits is a typo; more than a third of the word is another word. */
    if (dist <= 2 && dist * 3 <= strlen (candidates[i]) + 1 && dist < best_distance) {
      best = candidates[i];
      best_distance = dist;
    }
  }
  return best;
}
