/* memtide-agent: the one place that knows where the system files are. */
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static char root[PATH_MAX / 2];

int
paths_set_root (const char *r)
{
  size_t n;

  if (!r || !*r) {
    root[0] = '\0';
    return 0;
  }
  n = strlen (r);
  while (n > 0 && r[n - 1] == '/')
    n--;
  if (n >= sizeof root)
    return -ENAMETOOLONG;
  memcpy (root, r, n);
  root[n] = '\0';
  return 0;
}

bool
paths_real (void)
{
  return root[0] == '\0';
}

int
rpath (char *buf, size_t size, const char *fmt, ...)
{
  va_list ap;
  size_t n = strlen (root);
  int m;

  if (n >= size)
    return -ENAMETOOLONG;
  memcpy (buf, root, n + 1);
  va_start (ap, fmt);
  m = vsnprintf (buf + n, size - n, fmt, ap);
  va_end (ap);
  if (m < 0 || (size_t) m >= size - n)
    return -ENAMETOOLONG;
  return 0;
}
