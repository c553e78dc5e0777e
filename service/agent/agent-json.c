/* agent-json.c: the strict JSON gate in front of json-glib.
 *
 * json-glib 1.6 is a lenient parser: it takes comments, single-quoted
 * strings, hex numbers, leading zeros, text after the top-level value,
 * and wraps integers past 64 bits (-9223372036854775809 parses as
 * INT64_MAX).  A guest must not be able to use any of that, so every
 * line passes this RFC 8259 scanner first.  It is iterative with a fixed
 * stack, so a nesting bomb costs one byte of scanning per bracket. */
#define G_LOG_DOMAIN "memtide-agent-parse"

#include <string.h>

#include "agent-parse.h"

typedef enum {
  ST_VALUE,        /* a value must come */
  ST_VALUE_OR_END, /* just after '[' */
  ST_KEY_OR_END,   /* just after '{' */
  ST_KEY,          /* after ',' in an object */
  ST_COLON,
  ST_AFTER, /* after a value: ',' or a closer */
} ScanState;

typedef struct {
  const guchar *p;
  const guchar *end;
  MtAgentProblem *problem;
} Scanner;

static gboolean
fail (Scanner *s, MtAgentErrorCode code, const char *what)
{
  mt_agent_problem_set (s->problem, code, NULL, "%s", what);
  return FALSE;
}

static void
skip_ws (Scanner *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n'))
    s->p++;
}

static int
hex4 (const guchar *p)
{
  int v = 0;

  for (int i = 0; i < 4; i++) {
    int d = g_ascii_xdigit_value (p[i]);
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

/* At the opening quote. */
static gboolean
scan_string (Scanner *s)
{
  s->p++;
  while (s->p < s->end) {
    guchar c = *s->p;

    if (c == '"') {
      s->p++;
      return TRUE;
    }
    if (c < 0x20)
      return fail (s, MT_AGENT_ERR_MALFORMED, "control character in a string");
    if (c != '\\') {
      s->p++;
      continue;
    }
    if (s->end - s->p < 2)
      break;
    c = s->p[1];
    if (strchr ("\"\\/bfnrt", c) != NULL && c != '\0') {
      s->p += 2;
      continue;
    }
    if (c != 'u')
      return fail (s, MT_AGENT_ERR_MALFORMED, "invalid escape in a string");
    if (s->end - s->p < 6)
      break;
    {
      int u = hex4 (s->p + 2);

      if (u < 0)
        return fail (s, MT_AGENT_ERR_MALFORMED, "invalid \\u escape");
      if (u == 0)
        return fail (s, MT_AGENT_ERR_MALFORMED, "NUL (\\u0000) in a string");
      if (u >= 0xDC00 && u <= 0xDFFF)
        return fail (s, MT_AGENT_ERR_MALFORMED, "lone low surrogate in a string");
      s->p += 6;
      if (u >= 0xD800 && u <= 0xDBFF) {
        int lo;

        if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
          return fail (s, MT_AGENT_ERR_MALFORMED, "lone high surrogate in a string");
        lo = hex4 (s->p + 2);
        if (lo < 0xDC00 || lo > 0xDFFF)
          return fail (s, MT_AGENT_ERR_MALFORMED, "lone high surrogate in a string");
        s->p += 6;
      }
    }
  }
  return fail (s, MT_AGENT_ERR_MALFORMED, "unterminated string");
}

static gboolean
is_digit (const Scanner *s)
{
  return s->p < s->end && g_ascii_isdigit (*s->p);
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; an integer (no fraction,
 * no exponent) must fit in a signed 64-bit integer. */
static gboolean
scan_number (Scanner *s)
{
  const guchar *digits;
  gsize n;
  gboolean integer = TRUE;

  if (*s->p == '-')
    s->p++;
  digits = s->p;
  if (!is_digit (s))
    return fail (s, MT_AGENT_ERR_MALFORMED, "invalid number");
  if (*s->p == '0') {
    s->p++;
    if (is_digit (s))
      return fail (s, MT_AGENT_ERR_MALFORMED, "number with a leading zero");
  } else {
    while (is_digit (s))
      s->p++;
  }
  n = (gsize) (s->p - digits);
  if (s->p < s->end && *s->p == '.') {
    integer = FALSE;
    s->p++;
    if (!is_digit (s))
      return fail (s, MT_AGENT_ERR_MALFORMED, "invalid number");
    while (is_digit (s))
      s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    integer = FALSE;
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (!is_digit (s))
      return fail (s, MT_AGENT_ERR_MALFORMED, "invalid number");
    while (is_digit (s))
      s->p++;
  }
  /* 9223372036854775807 has 19 digits; the same bound for negatives
   * (they are refused later anyway, but must not wrap on the way). */
  if (integer && (n > 19 || (n == 19 && memcmp (digits, "9223372036854775807", 19) > 0)))
    return fail (s, MT_AGENT_ERR_MALFORMED, "integer outside 64 bits");
  return TRUE;
}

static gboolean
scan_literal (Scanner *s)
{
  static const char *const words[] = { "true", "false", "null" };

  for (guint i = 0; i < G_N_ELEMENTS (words); i++) {
    gsize n = strlen (words[i]);
    if ((gsize) (s->end - s->p) >= n && memcmp (s->p, words[i], n) == 0) {
      s->p += n;
      /* "trueX" is not a literal followed by garbage the next state
       * would catch in all cases ("true1"), so check here. */
      if (s->p < s->end && g_ascii_isalnum (*s->p))
        return fail (s, MT_AGENT_ERR_MALFORMED, "invalid literal");
      return TRUE;
    }
  }
  return fail (s, MT_AGENT_ERR_MALFORMED, "unexpected character");
}

gboolean
mt_agent_json_check (const char *line, gsize len, MtAgentProblem *problem)
{
  Scanner s = { (const guchar *) line, (const guchar *) line + len, problem };
  gboolean stack[MT_AGENT_MAX_DEPTH]; /* TRUE = object */
  guint depth = 0;
  ScanState st = ST_VALUE;

  /* Rejects NUL bytes too. */
  if (!g_utf8_validate_len (line, len, NULL))
    return fail (&s, MT_AGENT_ERR_MALFORMED, "not valid UTF-8 (or a NUL byte)");
  skip_ws (&s);
  if (s.p == s.end || *s.p != '{')
    return fail (&s, MT_AGENT_ERR_MALFORMED, "not a JSON object");

  for (;;) {
    guchar c;

    skip_ws (&s);
    if (s.p == s.end) {
      if (depth == 0 && st == ST_AFTER)
        return TRUE;
      return fail (&s, MT_AGENT_ERR_MALFORMED, "truncated JSON");
    }
    c = *s.p;
    if (depth == 0 && st == ST_AFTER)
      return fail (&s, MT_AGENT_ERR_MALFORMED, "bytes after the JSON object");

    switch (st) {
    case ST_VALUE_OR_END:
      if (c == ']') {
        s.p++;
        depth--;
        st = ST_AFTER;
        break;
      }
      G_GNUC_FALLTHROUGH;
    case ST_VALUE:
      if (c == '{' || c == '[') {
        if (depth == MT_AGENT_MAX_DEPTH) {
          mt_agent_problem_set (problem, MT_AGENT_ERR_TOO_DEEP, NULL, "nested deeper than %d",
                                MT_AGENT_MAX_DEPTH);
          return FALSE;
        }
        stack[depth++] = c == '{';
        s.p++;
        st = c == '{' ? ST_KEY_OR_END : ST_VALUE_OR_END;
      } else if (c == '"') {
        if (!scan_string (&s))
          return FALSE;
        st = ST_AFTER;
      } else if (c == '-' || g_ascii_isdigit (c)) {
        if (!scan_number (&s))
          return FALSE;
        st = ST_AFTER;
      } else {
        if (!scan_literal (&s))
          return FALSE;
        st = ST_AFTER;
      }
      break;
    case ST_KEY_OR_END:
      if (c == '}') {
        s.p++;
        depth--;
        st = ST_AFTER;
        break;
      }
      G_GNUC_FALLTHROUGH;
    case ST_KEY:
      if (c != '"')
        return fail (&s, MT_AGENT_ERR_MALFORMED, "expected a member name");
      if (!scan_string (&s))
        return FALSE;
      st = ST_COLON;
      break;
    case ST_COLON:
      if (c != ':')
        return fail (&s, MT_AGENT_ERR_MALFORMED, "expected ':'");
      s.p++;
      st = ST_VALUE;
      break;
    case ST_AFTER:
      if (c == ',') {
        s.p++;
        st = stack[depth - 1] ? ST_KEY : ST_VALUE;
      } else if ((c == '}' && stack[depth - 1]) || (c == ']' && !stack[depth - 1])) {
        s.p++;
        depth--;
      } else {
        return fail (&s, MT_AGENT_ERR_MALFORMED, "expected ',' or the end of a container");
      }
      break;
    }
  }
}
