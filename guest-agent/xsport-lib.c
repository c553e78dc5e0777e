/* memtide-agent: xsport's calls on libxenstore (only built with it). */
#include "xsport.h"

#include <stdio.h>
#include <stdlib.h>
#include <xenstore.h>

static void *
lib_open (void)
{
  /* xenstored's socket where there is one (dom0), else /dev/xen/xenbus. */
  return xs_open (0);
}

static void
lib_close (void *h)
{
  xs_close (h);
}

static int
lib_fileno (void *h)
{
  return xs_fileno (h);
}

static bool
lib_watch (void *h, const char *path, const char *token)
{
  return xs_watch (h, path, token);
}

static bool
lib_next_event (void *h, char *path, size_t size)
{
  char **ev = xs_check_watch (h);

  if (!ev)
    return false;
  snprintf (path, size, "%s", ev[XS_WATCH_PATH]);
  free (ev);
  return true;
}

static void *
lib_read (void *h, const char *path, unsigned *len)
{
  return xs_read (h, XBT_NULL, path, len);
}

static bool
lib_write (void *h, const char *path, const char *data, unsigned len)
{
  return xs_write (h, XBT_NULL, path, data, len);
}

static const struct xs_backend lib_backend = {
  .open = lib_open,
  .close = lib_close,
  .fileno = lib_fileno,
  .watch = lib_watch,
  .next_event = lib_next_event,
  .read = lib_read,
  .write = lib_write,
};

const struct xs_backend *xs_backend = &lib_backend;
