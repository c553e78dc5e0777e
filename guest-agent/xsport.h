/* memtide-agent: the transport over xenstore, for Xen guests, which have
 * no virtio-serial port (docs/agent-protocol.md, "Xen: over xenstore").
 *
 * The same lines as on a virtio port, one per xenstore value, without
 * the newline, under the guest's own data/memtide/ (relative paths: the
 * guest's xenstore connection resolves them in /local/domain/<domid>):
 * hello reports to "hello", other reports to "report", replies to
 * "reply".  The host writes requests to "request", which is watched; each
 * new value of it is one request line.  A key holds only its newest
 * value: a report the host has not read yet is replaced by a newer one,
 * as on a virtio port.
 *
 * Every xenstore call goes through a struct xs_backend: libxenstore
 * (xsport-lib.c, when the agent is built with it) or a fake in tests. */
#pragma once

#include "linein.h"
#include "outq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XS_DIR     "data/memtide"
#define XS_REQUEST XS_DIR "/request"

enum xs_key { XS_KEY_NONE = -1, XS_KEY_HELLO, XS_KEY_REPORT, XS_KEY_REPLY };

/* The calls the transport makes.  Each returns false/NULL with errno set
 * on failure. */
struct xs_backend {
  void *(*open) (void);
  void (*close) (void *h);
  /* Readable when a watch fired. */
  int (*fileno) (void *h);
  bool (*watch) (void *h, const char *path, const char *token);
  /* The path of one fired watch; false with errno EAGAIN when none is
   * left (any other errno: the connection is gone). */
  bool (*next_event) (void *h, char *path, size_t size);
  /* malloc'd value and its length; NULL with errno ENOENT when the key
   * does not exist. */
  void *(*read) (void *h, const char *path, unsigned *len);
  bool (*write) (void *h, const char *path, const char *data, unsigned len);
};

/* libxenstore when the agent was built with it, else NULL (no xenstore
 * transport).  Tests point it at a fake. */
extern const struct xs_backend *xs_backend;

struct xsport {
  void *h;
  bool up;
  bool request_due; /* the request key fired: read it when there is room */
  /* The last request value taken (or found at open): a value is taken
   * once, however often its watch fires. */
  char last_request[AGENT_LINE_MAX];
  size_t last_request_len;
  bool have_last_request;
  uint64_t refused;       /* lines too long for a value: not written */
  char last_problem[160]; /* to say each problem once */
};

/* Which key a line goes to (NONE: a blank line, not written). */
enum xs_key xsport_key_for_line (const char *line, size_t len);
/* "data/memtide/hello", ... */
const char *xsport_key_path (enum xs_key key);

void xsport_init (struct xsport *x);
/* Opens xenstore (through xs_backend) and watches the request key.  The
 * request found there now is not acted on: it is older than this
 * connection, and the hello the caller sends on open answers a hello
 * request.  Returns x->up. */
bool xsport_open (struct xsport *x);
void xsport_close (struct xsport *x);
/* The fd to poll for POLLIN, -1 when not up. */
int xsport_fd (const struct xsport *x);
/* The fd was readable: take the fired watches.  false: xenstore went
 * away (closed). */
bool xsport_events (struct xsport *x);
/* When a request is due and its value is new, add it to `li` as one line
 * (a newline inside becomes a NUL, so the request is malformed, not
 * two).  Call only when there is room for its reply.  false: xenstore
 * went away (closed). */
bool xsport_take_request (struct xsport *x, struct linein *li);
/* Writes every queued line to its key, in order.  A line longer than
 * AGENT_LINE_MAX - 1 bytes without its newline is refused (logged,
 * counted in x->refused and q->dropped).  0, or -errno when xenstore went
 * away (closed; what was queued is left to the caller). */
int xsport_flush (struct xsport *x, struct outq *q);
