/* config-scan.h: where things are in a policy file.
 *
 * GKeyFile parses the values but keeps no line numbers, merges a group
 * that appears twice and lets a repeated key silently win, so a light
 * scan of the raw text, following GKeyFile's own line rules, supplies
 * line numbers for messages and rejects what GKeyFile would hide.
 */
#pragma once

#include <glib.h>

typedef struct {
  char *name;
  guint line; /* 1-based */
} MtScanKey;

typedef struct {
  char *name; /* between [ and ] */
  guint line;
  GArray *keys; /* MtScanKey, in file order */
} MtScanGroup;

void mt_scan_group_free (MtScanGroup *group);

/* Groups of a key file, in file order.  NULL with an MT_CONFIG_ERROR
 * (SYNTAX, DUPLICATE_GROUP or DUPLICATE_KEY) at the first problem; its
 * message starts with "path:line: ".  groups_before: how many groups the
 * files read before this one had; the scan stops with TOO_LARGE at the
 * group that takes the total over MT_CONFIG_MAX_GROUPS. */
GPtrArray *mt_scan_key_file (const char *path, const char *data, gsize length, guint groups_before,
                             GError **error);
