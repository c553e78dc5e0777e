/* memtide-agent: small helpers shared by every module. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_max_level = LOG_NOTICE;
static bool log_journal;

uint64_t
mono_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

ssize_t
pread_all (int fd, char *buf, size_t size)
{
  size_t len = 0;

  if (size == 0)
    return -EINVAL;
  while (len < size - 1) {
    ssize_t n = pread (fd, buf + len, size - 1 - len, (off_t) len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      buf[len] = '\0';
      return -errno;
    }
    if (n == 0)
      break;
    len += (size_t) n;
  }
  buf[len] = '\0';
  return (ssize_t) len;
}

ssize_t
read_path (const char *path, char *buf, size_t size)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  ssize_t r;

  if (fd < 0) {
    if (size > 0)
      buf[0] = '\0';
    return -errno;
  }
  r = pread_all (fd, buf, size);
  close (fd);
  return r;
}

int
write_all (int fd, const char *data, size_t len)
{
  while (len > 0) {
    ssize_t n = write (fd, data, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    data += n;
    len -= (size_t) n;
  }
  return 0;
}

bool
parse_u64 (const char *s, const char **end, uint64_t *out)
{
  uint64_t v = 0;

  if (!isdigit ((unsigned char) *s))
    return false;
  while (isdigit ((unsigned char) *s)) {
    unsigned d = (unsigned) (*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
    s++;
  }
  *out = v;
  if (end)
    *end = s;
  return true;
}

char *
strip (char *s)
{
  size_t n;

  while (isspace ((unsigned char) *s))
    s++;
  n = strlen (s);
  while (n > 0 && isspace ((unsigned char) s[n - 1]))
    s[--n] = '\0';
  return s;
}

int
fd_set_flags (int fd, bool nonblock)
{
  int fl = fcntl (fd, F_GETFD);

  if (fl < 0 || fcntl (fd, F_SETFD, fl | FD_CLOEXEC) < 0)
    return -errno;
  if (!nonblock)
    return 0;
  fl = fcntl (fd, F_GETFL);
  if (fl < 0 || fcntl (fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  return 0;
}

void
log_init (int max_level)
{
  log_max_level = max_level;
  log_journal = getenv ("JOURNAL_STREAM") != NULL;
}

void
agent_log (int level, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  int saved = errno;
  const char *tag = "";

  if (level > log_max_level)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (log_journal) {
    dprintf (STDERR_FILENO, "<%d>%s\n", level, msg);
  } else {
    if (level <= LOG_ERR)
      tag = "error: ";
    else if (level == LOG_WARNING)
      tag = "warning: ";
    else if (level == LOG_DEBUG)
      tag = "debug: ";
    dprintf (STDERR_FILENO, "memtide-agent: %s%s\n", tag, msg);
  }
  errno = saved;
}

void
log_warn_changed (char *last, size_t size, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, size < sizeof msg ? size : sizeof msg, fmt, ap);
  va_end (ap);
  if (strcmp (msg, last) != 0) {
    log_warn ("%s", msg);
    snprintf (last, size, "%s", msg);
  }
}

const char *
errno_name (int e)
{
  static char other[16];

  switch (e) {
  case EAGAIN:
    return "EAGAIN";
  case EBUSY:
    return "EBUSY";
  case EINVAL:
    return "EINVAL";
  case EPERM:
    return "EPERM";
  case EACCES:
    return "EACCES";
  case ENOENT:
    return "ENOENT";
  case EIO:
    return "EIO";
  case ENOMEM:
    return "ENOMEM";
  case EINTR:
    return "EINTR";
  case ENODEV:
    return "ENODEV";
  case EROFS:
    return "EROFS";
  default:
    snprintf (other, sizeof other, "E%d", e);
    return other;
  }
}
