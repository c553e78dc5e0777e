/* memtide-agent: tiny JSON writer. */
#include "jw.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
jw_init (struct jw *w, char *buf, size_t cap)
{
  memset (w, 0, sizeof *w);
  w->buf = buf;
  w->cap = cap;
  w->first[0] = true;
  if (cap > 0)
    buf[0] = '\0';
}

static void
put (struct jw *w, const char *s, size_t n)
{
  if (w->overflow || w->len + n + 1 > w->cap) {
    w->overflow = true;
    return;
  }
  memcpy (w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = '\0';
}

static void
puts_ (struct jw *w, const char *s)
{
  put (w, s, strlen (s));
}

static void
put_escaped (struct jw *w, const char *s)
{
  put (w, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char) *s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char) c;
      put (w, esc, 2);
    } else if (c == '\n') {
      put (w, "\\n", 2);
    } else if (c == '\t') {
      put (w, "\\t", 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf (esc, sizeof esc, "\\u%04x", c);
      put (w, esc, 6);
    } else {
      put (w, (const char *) &c, 1);
    }
  }
  put (w, "\"", 1);
}

static void
member (struct jw *w, const char *key)
{
  if (!w->first[w->depth])
    put (w, ",", 1);
  w->first[w->depth] = false;
  if (key) {
    put_escaped (w, key);
    put (w, ":", 1);
  }
}

static void
open_ (struct jw *w, const char *key, const char *bracket)
{
  if (w->len > 0 || w->depth > 0)
    member (w, key);
  puts_ (w, bracket);
  if (w->depth + 1 >= JW_MAX_DEPTH) {
    w->overflow = true;
    return;
  }
  w->depth++;
  w->first[w->depth] = true;
}

static void
close_ (struct jw *w, const char *bracket)
{
  if (w->depth > 0)
    w->depth--;
  puts_ (w, bracket);
}

void
jw_obj_begin (struct jw *w, const char *key)
{
  open_ (w, key, "{");
}
void
jw_obj_end (struct jw *w)
{
  close_ (w, "}");
}
void
jw_arr_begin (struct jw *w, const char *key)
{
  open_ (w, key, "[");
}
void
jw_arr_end (struct jw *w)
{
  close_ (w, "]");
}

void
jw_u64 (struct jw *w, const char *key, uint64_t v)
{
  char num[24];

  /* Every integer on the wire fits a signed 64-bit integer, so the host
   * can read it with any JSON library. */
  member (w, key);
  snprintf (num, sizeof num, "%" PRIu64, v > INT64_MAX ? (uint64_t) INT64_MAX : v);
  puts_ (w, num);
}

void
jw_bool (struct jw *w, const char *key, bool v)
{
  member (w, key);
  puts_ (w, v ? "true" : "false");
}

void
jw_null (struct jw *w, const char *key)
{
  member (w, key);
  puts_ (w, "null");
}

void
jw_str (struct jw *w, const char *key, const char *v)
{
  member (w, key);
  put_escaped (w, v);
}

void
jw_num_text (struct jw *w, const char *key, const char *text)
{
  member (w, key);
  puts_ (w, text);
}

int
jw_finish (struct jw *w)
{
  put (w, "\n", 1);
  if (w->overflow || w->depth != 0)
    return -1;
  return (int) w->len;
}
