/* config-value.h: the syntax of one policy value (size, percentage,
 * duration, ...), shared by the policy files and domain metadata.
 *
 * Each parser takes text already stripped of surrounding whitespace and
 * on failure sets an MT_CONFIG_ERROR whose message quotes the text and
 * says what was expected; callers prefix where the text came from.
 */
#pragma once

#include <glib.h>
#include "policy.h"

/* Whole bytes: "0", "512M", "1.5GiB", "12 M"; a bare number other than
 * 0 is refused because its unit would be a guess. */
gboolean mt_parse_size (const char *text, guint64 *out, GError **error);

/* A size, or a percentage ("50%") of a reference the key defines. */
gboolean mt_parse_size_or_percent (const char *text, MtSize *out, GError **error);

/* "0%".."100%", decimals allowed; the % sign is required. */
gboolean mt_parse_percent (const char *text, double *out, GError **error);

/* Microseconds: "500ms", "2s", "1m", "1.5h", "0". */
gboolean mt_parse_duration (const char *text, gint64 *out, GError **error);

/* true/false, yes/no, on/off, 1/0. */
gboolean mt_parse_boolean (const char *text, gboolean *out, GError **error);

/* Decimal integer in [lo, hi]. */
gboolean mt_parse_uint (const char *text, guint64 lo, guint64 hi, guint64 *out, GError **error);

gboolean mt_parse_mechanism (const char *text, MtMechanism *out, GError **error);
gboolean mt_parse_page_reporting (const char *text, MtPageReporting *out, GError **error);

/* Shortest text that parses back to the same value: "1G", "1536M", "7B". */
char *mt_format_size (guint64 bytes);
char *mt_format_percent (double percent);
char *mt_format_duration (gint64 usec);

/* The candidate closest to word (typos, case), or NULL when none is close
 * enough to be worth a "did you mean". */
const char *mt_suggest (const char *word, const char *const *candidates, gsize n_candidates);
