/* text.c: text from outside made fit for one log line (see text.h). */
#define G_LOG_DOMAIN "memtide-text"

#include <string.h>
#include "text.h"

static gboolean
needs_escape (gunichar c)
{
  switch (g_unichar_type (c)) {
  case G_UNICODE_CONTROL:
  case G_UNICODE_FORMAT:
  case G_UNICODE_LINE_SEPARATOR:
  case G_UNICODE_PARAGRAPH_SEPARATOR:
    return TRUE;
  default:
    return c == '\\';
  }
}

char *
mt_text_escape_line (const char *text)
{
  GString *out;
  const char *p;

  g_return_val_if_fail (text != NULL, NULL);

  out = g_string_sized_new (strlen (text));
  for (p = text; *p != '\0';) {
    gunichar c = g_utf8_get_char_validated (p, -1);

    if (c == (gunichar) -1 || c == (gunichar) -2) {
      g_string_append_printf (out, "\\x%02x", (guint) (guchar) *p);
      p++;
      continue;
    }
    if (!needs_escape (c))
      g_string_append_len (out, p, g_utf8_next_char (p) - p);
    else if (c == '\n')
      g_string_append (out, "\\n");
    else if (c == '\r')
      g_string_append (out, "\\r");
    else if (c == '\t')
      g_string_append (out, "\\t");
    else if (c == '\\')
      g_string_append (out, "\\\\");
    else if (c < 0x80)
      g_string_append_printf (out, "\\x%02x", c);
    else if (c <= 0xffff)
      g_string_append_printf (out, "\\u%04x", c);
    else
      g_string_append_printf (out, "\\U%08x", c);
    p = g_utf8_next_char (p);
  }
  return g_string_free (out, FALSE);
}
