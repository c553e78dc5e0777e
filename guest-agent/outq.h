/* memtide-agent: what waits to be written to the host.
 *
 * The host may be slow or not read at all; the agent must never block on
 * it.  Replies and hello reports are kept in order (bounded: the agent
 * stops reading requests while there is no room for a reply).  Periodic
 * reports are not queued: a newer one replaces the one still waiting,
 * and the replaced one is counted in "dropped". */
#pragma once

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTQ_CAP (16 * AGENT_LINE_MAX)

struct outq {
  char buf[OUTQ_CAP];
  size_t head, tail;           /* bytes [head, tail) not yet written */
  char report[AGENT_LINE_MAX]; /* the latest periodic report, if any */
  size_t report_len;
  uint64_t dropped;
};

void outq_init (struct outq *q);
/* Forget everything (the host end went away); counts a waiting report. */
void outq_reset (struct outq *q);
bool outq_empty (const struct outq *q);
/* Room for n more lines in the ordered part. */
bool outq_has_room (const struct outq *q, unsigned n);
/* Ordered line; false (and nothing queued) when there is no room. */
bool outq_put_line (struct outq *q, const char *line, size_t len);
/* Replaceable periodic report. */
void outq_put_report (struct outq *q, const char *line, size_t len);
/* For a sink that takes whole lines (xenstore): the next line, newline
 * included (the waiting report once the ordered part is empty), without
 * removing it; false when there is none.  outq_pop_line() removes it. */
bool outq_peek_line (struct outq *q, const char **line, size_t *len);
void outq_pop_line (struct outq *q, size_t len);
/* Writes what the fd takes without blocking.  0, or -errno on a real
 * error (EAGAIN is not one). */
int outq_flush (struct outq *q, int fd);
