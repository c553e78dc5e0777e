/* memtide-agent: the xenstore transport (see xsport.h). */
#include "xsport.h"

#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const key_paths[] = {
  [XS_KEY_HELLO] = XS_DIR "/hello",
  [XS_KEY_REPORT] = XS_DIR "/report",
  [XS_KEY_REPLY] = XS_DIR "/reply",
};

/* Logs a problem when it differs from the last one logged. */
#define problem(x, ...) log_warn_changed ((x)->last_problem, sizeof (x)->last_problem, __VA_ARGS__)

static bool
has (const char *line, size_t len, const char *needle)
{
  return line != NULL && memmem (line, len, needle, strlen (needle)) != NULL;
}

/* The agent's own lines (report.c, request.c): the type is a member of
 * the top object, and strings are escaped, so these cannot appear inside
 * a string. */
enum xs_key
xsport_key_for_line (const char *line, size_t len)
{
  size_t i = 0;

  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n'))
    i++;
  if (i == len)
    return XS_KEY_NONE;
  if (has (line, len, "\"type\":\"reply\""))
    return XS_KEY_REPLY;
  if (has (line, len, "\"hello\":true"))
    return XS_KEY_HELLO;
  return XS_KEY_REPORT;
}

const char *
xsport_key_path (enum xs_key key)
{
  return key >= XS_KEY_HELLO && key <= XS_KEY_REPLY ? key_paths[key] : NULL;
}

void
xsport_init (struct xsport *x)
{
  memset (x, 0, sizeof *x);
}

void
xsport_close (struct xsport *x)
{
  if (x->h && xs_backend)
    xs_backend->close (x->h);
  x->h = NULL;
  x->up = false;
  x->request_due = false;
}

static void
remember_request (struct xsport *x, const char *v, size_t len)
{
  x->have_last_request = len <= sizeof x->last_request;
  if (x->have_last_request) {
    memcpy (x->last_request, v, len);
    x->last_request_len = len;
  }
}

bool
xsport_open (struct xsport *x)
{
  unsigned len = 0;
  char *v;

  if (x->up)
    return true;
  if (!xs_backend) {
    problem (x, "xenstore: this memtide-agent was built without libxenstore");
    return false;
  }
  x->h = xs_backend->open ();
  if (!x->h) {
    problem (x, "xenstore: cannot open it: %s (is xenbus there: /dev/xen/xenbus?)",
             strerror (errno));
    return false;
  }
  if (!xs_backend->watch (x->h, XS_REQUEST, "memtide")) {
    problem (x, "xenstore: cannot watch %s: %s", XS_REQUEST, strerror (errno));
    xsport_close (x);
    return false;
  }
  x->have_last_request = false;
  v = xs_backend->read (x->h, XS_REQUEST, &len);
  if (v) {
    remember_request (x, v, len);
    free (v);
  }
  x->up = true;
  x->last_problem[0] = '\0';
  log_notice ("xenstore: reporting to %s/{hello,report,reply}, requests from %s", XS_DIR,
              XS_REQUEST);
  return true;
}

int
xsport_fd (const struct xsport *x)
{
  return x->up ? xs_backend->fileno (x->h) : -1;
}

bool
xsport_events (struct xsport *x)
{
  char path[256];
  size_t n = strlen (XS_REQUEST);

  if (!x->up)
    return false;
  while (xs_backend->next_event (x->h, path, sizeof path)) {
    size_t len = strlen (path);
    /* Relative as watched; absolute (/local/domain/N/...) if a
     * xenstored reports it so. */
    if (len >= n && strcmp (path + len - n, XS_REQUEST) == 0
        && (len == n || path[len - n - 1] == '/'))
      x->request_due = true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return true;
  problem (x, "xenstore: watch: %s", strerror (errno));
  xsport_close (x);
  return false;
}

bool
xsport_take_request (struct xsport *x, struct linein *li)
{
  unsigned len = 0;
  size_t avail;
  char *v, *p;

  if (!x->up || !x->request_due)
    return x->up;
  x->request_due = false;
  v = xs_backend->read (x->h, XS_REQUEST, &len);
  if (!v) {
    if (errno == ENOENT)
      return true;
    problem (x, "xenstore: read %s: %s", XS_REQUEST, strerror (errno));
    xsport_close (x);
    return false;
  }
  if (x->have_last_request && len == x->last_request_len && memcmp (v, x->last_request, len) == 0) {
    free (v);
    return true;
  }
  remember_request (x, v, len);
  p = linein_space (li, &avail);
  /* A value is at most 4 KiB (xenstore's own bound) and the line
   * buffer holds two lines; anything longer is cut, and the line
   * framing refuses it as too long. */
  if (len >= avail)
    len = (unsigned) (avail - 1);
  for (unsigned i = 0; i < len; i++)
    p[i] = v[i] == '\n' ? '\0' : v[i];
  p[len] = '\n';
  linein_commit (li, len + 1);
  free (v);
  return true;
}

int
xsport_flush (struct xsport *x, struct outq *q)
{
  const char *line;
  size_t len;

  if (!x->up)
    return -ENOTCONN;
  while (outq_peek_line (q, &line, &len)) {
    size_t n = len > 0 && line[len - 1] == '\n' ? len - 1 : len;
    enum xs_key key = xsport_key_for_line (line, n);

    if (key == XS_KEY_NONE) {
      /* Blank: separates lines on a port, means nothing in a value. */
    } else if (n > AGENT_LINE_MAX - 1) {
      x->refused++;
      q->dropped++;
      log_err ("xenstore: a line of %zu bytes is over the %d-byte bound: not written", n,
               AGENT_LINE_MAX - 1);
    } else if (!xs_backend->write (x->h, xsport_key_path (key), line, (unsigned) n)) {
      int e = errno ? errno : EIO;

      problem (x, "xenstore: write %s: %s", xsport_key_path (key), strerror (e));
      xsport_close (x);
      return -e;
    }
    outq_pop_line (q, len);
  }
  return 0;
}
