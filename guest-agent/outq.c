/* memtide-agent: output queue with drop/merge of periodic reports. */
#include "outq.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void
outq_init (struct outq *q)
{
  q->head = q->tail = q->report_len = 0;
  q->dropped = 0;
}

void
outq_reset (struct outq *q)
{
  if (q->report_len)
    q->dropped++;
  q->head = q->tail = q->report_len = 0;
}

bool
outq_empty (const struct outq *q)
{
  return q->head == q->tail && q->report_len == 0;
}

bool
outq_has_room (const struct outq *q, unsigned n)
{
  return OUTQ_CAP - (q->tail - q->head) >= (size_t) n * AGENT_LINE_MAX;
}

static bool
append (struct outq *q, const char *line, size_t len)
{
  if (OUTQ_CAP - (q->tail - q->head) < len)
    return false;
  if (OUTQ_CAP - q->tail < len) {
    memmove (q->buf, q->buf + q->head, q->tail - q->head);
    q->tail -= q->head;
    q->head = 0;
  }
  memcpy (q->buf + q->tail, line, len);
  q->tail += len;
  return true;
}

bool
outq_put_line (struct outq *q, const char *line, size_t len)
{
  return len <= AGENT_LINE_MAX && append (q, line, len);
}

void
outq_put_report (struct outq *q, const char *line, size_t len)
{
  if (len > AGENT_LINE_MAX)
    return;
  if (q->report_len)
    q->dropped++;
  memcpy (q->report, line, len);
  q->report_len = len;
}

int
outq_flush (struct outq *q, int fd)
{
  for (;;) {
    ssize_t n;
    if (q->head == q->tail) {
      q->head = q->tail = 0;
      if (!q->report_len)
        return 0;
      /* A report is only moved once the ordered part is empty, so a
       * line is never interleaved with another. */
      append (q, q->report, q->report_len);
      q->report_len = 0;
    }
    n = write (fd, q->buf + q->head, q->tail - q->head);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      return -errno;
    }
    if (n == 0)
      return 0;
    q->head += (size_t) n;
  }
}

bool
outq_peek_line (struct outq *q, const char **line, size_t *len)
{
  const char *nl;

  if (q->head == q->tail) {
    q->head = q->tail = 0;
    if (!q->report_len)
      return false;
    append (q, q->report, q->report_len);
    q->report_len = 0;
  }
  nl = memchr (q->buf + q->head, '\n', q->tail - q->head);
  *line = q->buf + q->head;
  *len = nl ? (size_t) (nl - *line) + 1 : q->tail - q->head;
  return true;
}

void
outq_pop_line (struct outq *q, size_t len)
{
  q->head += len <= q->tail - q->head ? len : q->tail - q->head;
}
