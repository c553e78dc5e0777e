/* memtide-agent: split the host's byte stream into request lines, at most
 * AGENT_LINE_MAX bytes each (newline included).  A longer line is
 * reported once and skipped up to its newline. */
#pragma once

#include "util.h"

#include <stdbool.h>
#include <stddef.h>

enum li_result { LI_NONE, LI_LINE, LI_TOO_LONG };

struct linein {
  char buf[2 * AGENT_LINE_MAX];
  size_t pos, len; /* unconsumed bytes are [pos, len) */
  bool discarding; /* inside an overlong line */
};

void linein_reset (struct linein *li);
/* Where to read into, and how much fits (compacts first). */
char *linein_space (struct linein *li, size_t *avail);
void linein_commit (struct linein *li, size_t n);
/* Next complete line (without its newline; *line is not NUL-terminated). */
enum li_result linein_next (struct linein *li, const char **line, size_t *len);
/* A complete line or an overlong one is waiting. */
bool linein_pending (const struct linein *li);
