/* config-scan.c: line-level scan of a policy file (see config-scan.h).
 *
 * The rules mirror g_key_file_parse_line() in GLib 2.74: leading
 * whitespace is skipped, '#' starts a comment line, "[name]" may be
 * followed by blanks only, a key ends at the first '=' and loses its
 * trailing whitespace, one trailing '\r' is dropped.  On top of that it
 * refuses NUL bytes, invalid UTF-8, a byte order mark, localized keys,
 * and repeated groups or keys.
 */
#define G_LOG_DOMAIN "memtide-config"

#include <string.h>
#include "config.h"
#include "config-scan.h"

static void
scan_key_clear (MtScanKey *key)
{
  g_free (key->name);
}

void
mt_scan_group_free (MtScanGroup *group)
{
  if (group == NULL)
    return;
  g_free (group->name);
  g_array_unref (group->keys);
  g_free (group);
}

static gboolean
has_control_char (const char *s)
{
  for (; *s; s++)
    if (g_ascii_iscntrl (*s))
      return TRUE;
  return FALSE;
}

typedef struct {
  const char *path;
  guint line;
  guint groups_before;     /* in the files read before this one */
  GPtrArray *groups;       /* MtScanGroup */
  GHashTable *group_lines; /* name -> first line */
  GHashTable *key_lines;   /* key -> line, in the current group */
} Scan;

static gboolean scan_fail (Scan *scan, GError **error, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

static gboolean
scan_fail (Scan *scan, GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_SYNTAX, "%s:%u: %s", scan->path, scan->line,
               msg);
  return FALSE;
}

static gboolean
scan_group (Scan *scan, const char *s, GError **error)
{
  const char *close = strchr (s, ']');
  const char *after;
  g_autofree char *name = NULL;
  gpointer first;
  MtScanGroup *group;

  if (close == NULL)
    return scan_fail (scan, error,
                      "group header “%s” has no closing ]; "
                      "expected [host] or [vm GLOB]",
                      s);
  for (after = close + 1; *after == ' ' || *after == '\t'; after++)
    ;
  if (*after != '\0')
    return scan_fail (scan, error,
                      "“%s” has text after the group header; "
                      "expected the [group] alone on its line",
                      s);

  name = g_strndup (s + 1, close - s - 1);
  /* Checked before anything is kept for it: past the limit nothing more
   * is held. */
  if (scan->groups_before + scan->groups->len >= MT_CONFIG_MAX_GROUPS) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE,
                 "%s:%u: [%s]: more than %u groups in the policy files (%u in the files read "
                 "before this one), the most memtided reads; use globs for classes of VMs, or "
                 "the domains' metadata for per-VM settings",
                 scan->path, scan->line, name, MT_CONFIG_MAX_GROUPS, scan->groups_before);
    return FALSE;
  }
  if (*name == '\0')
    return scan_fail (scan, error, "empty group name []; expected [host] or [vm GLOB]");
  if (strchr (name, '[') != NULL || has_control_char (name))
    return scan_fail (scan, error,
                      "invalid group name “%s”; group names cannot "
                      "contain [, ] or control characters",
                      name);

  if (g_hash_table_lookup_extended (scan->group_lines, name, NULL, &first)) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_DUPLICATE_GROUP,
                 "%s:%u: group [%s] appears a second time in this file "
                 "(first on line %u); merge the two into one group",
                 scan->path, scan->line, name, GPOINTER_TO_UINT (first));
    return FALSE;
  }
  g_hash_table_insert (scan->group_lines, g_strdup (name), GUINT_TO_POINTER (scan->line));
  g_hash_table_remove_all (scan->key_lines);

  group = g_new0 (MtScanGroup, 1);
  group->name = g_steal_pointer (&name);
  group->line = scan->line;
  group->keys = g_array_new (FALSE, FALSE, sizeof (MtScanKey));
  g_array_set_clear_func (group->keys, (GDestroyNotify) scan_key_clear);
  g_ptr_array_add (scan->groups, group);
  return TRUE;
}

static gboolean
scan_key (Scan *scan, const char *s, const char *eq, GError **error)
{
  g_autofree char *name = g_strchomp (g_strndup (s, eq - s));
  MtScanGroup *group;
  gpointer first;
  MtScanKey key;

  if (strpbrk (name, "[]") != NULL)
    return scan_fail (scan, error,
                      "invalid key name “%s”; key names cannot contain "
                      "[ or ] (localized keys are not supported)",
                      name);
  if (scan->groups->len == 0)
    return scan_fail (scan, error,
                      "key “%s” comes before any group; put it under "
                      "[host] or a [vm GLOB] group",
                      name);

  group = g_ptr_array_index (scan->groups, scan->groups->len - 1);
  if (g_hash_table_lookup_extended (scan->key_lines, name, NULL, &first)) {
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_DUPLICATE_KEY,
                 "%s:%u: [%s] %s: key set a second time in this group "
                 "(first on line %u); remove one of them",
                 scan->path, scan->line, group->name, name, GPOINTER_TO_UINT (first));
    return FALSE;
  }
  g_hash_table_insert (scan->key_lines, g_strdup (name), GUINT_TO_POINTER (scan->line));

  key.name = g_steal_pointer (&name);
  key.line = scan->line;
  g_array_append_val (group->keys, key);
  return TRUE;
}

static gboolean
scan_line (Scan *scan, const char *p, gsize len, GError **error)
{
  g_autofree char *line = NULL;
  const char *s, *eq;

  if (len > 0 && p[len - 1] == '\r')
    len--;
  if (memchr (p, '\0', len) != NULL)
    return scan_fail (scan, error, "line contains a NUL byte; policy files must be text");
  if (scan->line == 1 && len >= 3 && memcmp (p, "\357\273\277", 3) == 0)
    return scan_fail (scan, error,
                      "file starts with a UTF-8 byte order mark, which "
                      "GKeyFile refuses; save the file without it");
  if (!g_utf8_validate_len (p, len, NULL))
    return scan_fail (scan, error, "line is not valid UTF-8; policy files must be UTF-8 text");

  line = g_strndup (p, len);
  for (s = line; g_ascii_isspace (*s); s++)
    ;
  if (*s == '\0' || *s == '#')
    return TRUE;
  if (*s == '[')
    return scan_group (scan, s, error);
  eq = strchr (s, '=');
  if (eq != NULL && eq != s)
    return scan_key (scan, s, eq, error);
  return scan_fail (scan, error,
                    "“%s” is not a [group] header, a key = value line "
                    "or a # comment",
                    s);
}

GPtrArray *
mt_scan_key_file (const char *path, const char *data, gsize length, guint groups_before,
                  GError **error)
{
  g_autoptr (GPtrArray) groups =
    g_ptr_array_new_with_free_func ((GDestroyNotify) mt_scan_group_free);
  g_autoptr (GHashTable) group_lines =
    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GHashTable) key_lines = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  Scan scan = { path, 0, groups_before, groups, group_lines, key_lines };
  const char *p = data, *end = data + length;

  while (p < end) {
    const char *nl = memchr (p, '\n', end - p);
    const char *line_end = nl ? nl : end;

    scan.line++;
    if (!scan_line (&scan, p, line_end - p, error))
      return NULL;
    p = nl ? nl + 1 : end;
  }
  return g_steal_pointer (&groups);
}
