/* test-text.c: mt_text_escape_line, what a caller's reason becomes in a
 * log line. */
#include "text.h"

static void
check (const char *in, const char *want)
{
  g_autofree char *got = mt_text_escape_line (in);

  g_assert_cmpstr (got, ==, want);
  g_assert_true (g_utf8_validate (got, -1, NULL));
}

static void
test_escape (void)
{
  check ("", "");
  check ("backup of db", "backup of db");
  check ("für Ω – 😀", "für Ω – 😀");
  check ("a\nmemtided-Message: resize: FORGED", "a\\nmemtided-Message: resize: FORGED");
  check ("\t\r\\", "\\t\\r\\\\");
  check ("\x1b[31mred\x7f", "\\x1b[31mred\\x7f");
  /* C1 NEL, line and paragraph separators, a bidi override, zero width. */
  check ("a\xc2\x85"
         "b\xe2\x80\xa8"
         "c\xe2\x80\xa9"
         "d\xe2\x80\xae"
         "e\xe2\x80\x8b"
         "f",
         "a\\u0085b\\u2028c\\u2029d\\u202ee\\u200bf");
  /* A format character outside the BMP (U+E0001, LANGUAGE TAG). */
  check ("x\xf3\xa0\x80\x81y", "x\\U000e0001y");
  /* Bytes that are not UTF-8, one by one; the text after them stays. */
  check ("caf\xe9 ok", "caf\\xe9 ok");
  check ("\xff\xfe", "\\xff\\xfe");
  check ("\xe2\x80", "\\xe2\\x80");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/text/escape-line", test_escape);
  return g_test_run ();
}
