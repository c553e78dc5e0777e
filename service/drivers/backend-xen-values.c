/* backend-xen-values.c: what the Xen driver reads, checked: the probe's
 * files, xenstore sizes, page counts and domain handles.  Pure (files
 * only, no hypervisor), for the unit tests.
 */
#define G_LOG_DOMAIN "memtide-xen"

#include <gio/gio.h>
#include <string.h>

#include "backend-xen.h"

/* First line of a small file, stripped; NULL when it cannot be read. */
static char *
read_line (const char *path)
{
  g_autofree char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return NULL;
  return g_strdup (g_strstrip (g_strdelimit (text, "\n", '\0')));
}

/* @value as a message may show it: printable ASCII, other bytes (a NUL
 * too: xenstore values are counted, not terminated) as \xNN. */
static char *
shown_value (const char *value, gsize len)
{
  GString *s = g_string_new (NULL);

  for (gsize i = 0; i < len; i++) {
    if (g_ascii_isprint (value[i]) && value[i] != '\\' && value[i] != '"')
      g_string_append_c (s, value[i]);
    else
      g_string_append_printf (s, "\\x%02x", (guint8) value[i]);
  }
  return g_string_free (s, FALSE);
}

MtProbeResult
mt_xen_probe_roots (const char *sys_root, const char *proc_root, GError **error)
{
  g_autofree char *type_path = g_build_filename (sys_root, "hypervisor", "type", NULL);
  g_autofree char *caps_path = g_build_filename (proc_root, "xen", "capabilities", NULL);
  g_autofree char *type = read_line (type_path);
  g_autofree char *caps = NULL;
  g_auto (GStrv) words = NULL;

  if (type == NULL || !g_str_equal (type, "xen")) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "not a Xen host (%s: %s)", type_path,
                 type == NULL ? "missing" : type);
    return MT_PROBE_NO;
  }
  /* Debian's xen init script (and xenbed's dom0) mounts xenfs; until
   * then only the type says Xen. */
  if (!g_file_get_contents (caps_path, &caps, NULL, NULL)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                 "Xen host, but %s is missing (xenfs not mounted on %s/xen yet)", caps_path,
                 proc_root);
    return MT_PROBE_LATER;
  }
  words = g_strsplit_set (caps, " \t\n,", -1);
  if (!g_strv_contains ((const char *const *) words, "control_d")) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 "a Xen guest, not dom0 (%s has no control_d)", caps_path);
    return MT_PROBE_NO;
  }
  return MT_PROBE_YES;
}

gboolean
mt_xen_parse_kib (const char *what, const char *value, gsize len, guint64 *bytes, GError **error)
{
  guint64 kib = 0;

  if (value == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s is missing", what);
    return FALSE;
  }
  if (len == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s is empty, not a size in KiB",
                 what);
    return FALSE;
  }
  if (len > 20) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "%s is %" G_GSIZE_FORMAT " characters long, not a size in KiB", what, len);
    return FALSE;
  }
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isdigit (value[i])) {
      g_autofree char *shown = shown_value (value, len);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s is \"%s\", not a size in KiB (decimal digits only)", what, shown);
      return FALSE;
    }
    if (kib > (G_MAXUINT64 - (guint64) (value[i] - '0')) / 10) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s is %.*s KiB, more than 64 bits hold", what, (int) len, value);
      return FALSE;
    }
    kib = kib * 10 + (guint64) (value[i] - '0');
  }
  /* MT_UNKNOWN stays reserved. */
  if (kib > (MT_UNKNOWN - 1) / MT_KIB) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "%s is %" G_GUINT64_FORMAT " KiB, too large to count in bytes", what, kib);
    return FALSE;
  }
  *bytes = kib * MT_KIB;
  return TRUE;
}

guint64
mt_xen_pages_to_bytes (guint64 pages, guint64 page_size)
{
  if (page_size != 0 && pages > (MT_UNKNOWN - 1) / page_size)
    return MT_UNKNOWN;
  return pages * page_size;
}

void
mt_xen_format_uuid (const guint8 handle[16], char out[37])
{
  static const char hex[] = "0123456789abcdef";
  char *p = out;

  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    *p++ = hex[handle[i] >> 4];
    *p++ = hex[handle[i] & 0xf];
  }
  *p = '\0';
}

gboolean
mt_xen_name_ok (const char *value, gsize len)
{
  if (value == NULL || len == 0 || len > MT_XEN_NAME_MAX || strlen (value) != len
      || !g_utf8_validate (value, len, NULL))
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (g_ascii_iscntrl (value[i]))
      return FALSE;
  return TRUE;
}
