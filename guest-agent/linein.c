/* memtide-agent: request line framing. */
#include "linein.h"

#include <string.h>

void
linein_reset (struct linein *li)
{
  li->pos = li->len = 0;
  li->discarding = false;
}

char *
linein_space (struct linein *li, size_t *avail)
{
  if (li->pos > 0) {
    memmove (li->buf, li->buf + li->pos, li->len - li->pos);
    li->len -= li->pos;
    li->pos = 0;
  }
  *avail = sizeof li->buf - li->len;
  return li->buf + li->len;
}

void
linein_commit (struct linein *li, size_t n)
{
  li->len += n;
}

enum li_result
linein_next (struct linein *li, const char **line, size_t *len)
{
  for (;;) {
    char *start = li->buf + li->pos;
    size_t have = li->len - li->pos;
    char *nl = memchr (start, '\n', have);

    if (nl) {
      size_t n = (size_t) (nl - start);
      li->pos += n + 1;
      if (li->discarding) {
        li->discarding = false;
        continue;
      }
      if (n + 1 > AGENT_LINE_MAX)
        return LI_TOO_LONG;
      *line = start;
      *len = n;
      return LI_LINE;
    }
    if (have >= AGENT_LINE_MAX) {
      /* No newline within the limit: drop what is buffered and the rest
       * of the line as it arrives. */
      li->pos = li->len;
      if (li->discarding)
        return LI_NONE;
      li->discarding = true;
      return LI_TOO_LONG;
    }
    return LI_NONE;
  }
}

bool
linein_pending (const struct linein *li)
{
  size_t have = li->len - li->pos;
  return memchr (li->buf + li->pos, '\n', have) != NULL || have >= AGENT_LINE_MAX;
}
