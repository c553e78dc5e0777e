/* memtide-agent: a tiny JSON writer into a fixed buffer (no allocation).
 * Keys and structure come from the agent itself; string values are
 * escaped.  Overflow is sticky and reported by jw_finish(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JW_MAX_DEPTH 8

struct jw {
  char *buf;
  size_t cap;
  size_t len;
  bool overflow;
  int depth;
  bool first[JW_MAX_DEPTH];
};

void jw_init (struct jw *w, char *buf, size_t cap);
/* key is NULL inside arrays and for the top-level object. */
void jw_obj_begin (struct jw *w, const char *key);
void jw_obj_end (struct jw *w);
void jw_arr_begin (struct jw *w, const char *key);
void jw_arr_end (struct jw *w);
void jw_u64 (struct jw *w, const char *key, uint64_t v);
void jw_bool (struct jw *w, const char *key, bool v);
void jw_null (struct jw *w, const char *key);
void jw_str (struct jw *w, const char *key, const char *v);
/* A number already validated as JSON number text (e.g. PSI "0.12"). */
void jw_num_text (struct jw *w, const char *key, const char *text);
/* Append "\n" and NUL.  Returns the line length (newline included) or -1
 * when the buffer was too small. */
int jw_finish (struct jw *w);
