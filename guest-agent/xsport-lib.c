/* memtide-agent: xsport's calls on libxenstore (only built with it).
 *
 * The static libxenstore.a (Debian's libxen-dev, Xen 4.17) is built
 * without threads, and then a watch is unsafe on a connection that makes
 * other calls: each call reads exactly one message as its reply, and when
 * that is a watch event the call fails (EINVAL) and the library closes
 * the connection; its xs_fileno() pipe only signals events some call has
 * already read.  Seen in a PV domU: half the xs_watch() calls failed so
 * (the initial event overtook the reply), and every write after a
 * successful one failed with EBADF.  So the watch has a connection of
 * its own that makes no other call after xs_watch() (retried on a fresh
 * connection while the initial event overtakes the reply), and fired
 * watches are looked for with xs_check_watch(), a non-blocking read,
 * every XS_CHECK_MS (fileno() says -1).  Reads and writes use the other
 * connection, which never has a watch. */
#include "xsport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <xenstore.h>

/* The initial event overtook the reply this many times in a row: give
 * up until the next attempt (the next interval). */
#define WATCH_TRIES 8

struct lib_handle {
  struct xs_handle *rw;    /* reads and writes, no watch */
  struct xs_handle *watch; /* the watch only */
};

static void *
lib_open (void)
{
  struct lib_handle *h = calloc (1, sizeof *h);
  int e;

  if (!h)
    return NULL;
  /* xenstored's socket where there is one (dom0), else /dev/xen/xenbus. */
  h->rw = xs_open (0);
  if (!h->rw) {
    e = errno;
    free (h);
    errno = e;
    return NULL;
  }
  return h;
}

static void
lib_close (void *p)
{
  struct lib_handle *h = p;

  xs_close (h->watch);
  xs_close (h->rw);
  free (h);
}

static int
lib_fileno (void *p)
{
  return -1;
}

static bool
lib_watch (void *p, const char *path, const char *token)
{
  struct lib_handle *h = p;
  int e = EINVAL;

  for (int i = 0; i < WATCH_TRIES && e == EINVAL; i++) {
    xs_close (h->watch);
    h->watch = xs_open (0);
    if (!h->watch)
      return false;
    if (xs_watch (h->watch, path, token))
      return true;
    e = errno;
  }
  xs_close (h->watch);
  h->watch = NULL;
  errno = e;
  return false;
}

static bool
lib_next_event (void *p, char *path, size_t size)
{
  struct lib_handle *h = p;
  char **ev;

  if (!h->watch) {
    errno = ENOTCONN;
    return false;
  }
  ev = xs_check_watch (h->watch);
  if (!ev)
    return false;
  snprintf (path, size, "%s", ev[XS_WATCH_PATH]);
  free (ev);
  return true;
}

static void *
lib_read (void *p, const char *path, unsigned *len)
{
  return xs_read (((struct lib_handle *) p)->rw, XBT_NULL, path, len);
}

static bool
lib_write (void *p, const char *path, const char *data, unsigned len)
{
  return xs_write (((struct lib_handle *) p)->rw, XBT_NULL, path, data, len);
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
