/* memtide-agent: setup and the event loop.
 *
 * One thread, one poll(): signals (signalfd), the port (or --output and
 * --input), the PSI trigger and kernel uevents.  Timers are deadlines on
 * CLOCK_MONOTONIC turned into the poll timeout.  Nothing here blocks on
 * the host: writes are non-blocking and what the host does not take
 * waits in the output queue (see outq.h). */
#include "agent.h"

#include "caps.h"
#include "collect.h"
#include "linein.h"
#include "options.h"
#include "outq.h"
#include "paths.h"
#include "port.h"
#include "psi.h"
#include "reclaim.h"
#include "report.h"
#include "request.h"
#include "tune.h"
#include "uevent.h"
#include "util.h"
#include "xsport.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#ifndef AGENT_VERSION
#define AGENT_VERSION "unknown"
#endif

/* With uevents, a safety rescan of memory blocks this often; without
 * them (fake tree, no netlink), every report. */
#define BLOCKS_MAX_AGE_US (30ull * 1000000)
/* --once gives a slow host this long to take the report. */
#define ONCE_TIMEOUT_US (5ull * 1000000)
/* The memory watch (--memory-watch): used memory (MemTotal -
 * MemAvailable: a balloon taking memory lowers both) rising at least
 * this fast since the last report, with MemAvailable gone within
 * RUNOUT_HORIZON_S at that rate, sends a report at once; memtided's own
 * check (service/core/triggers.h, MT_TRIGGER_RUNOUT_*) uses the same
 * figures.  Measured over at least RUNOUT_MIN_SPAN_US, at most one such
 * report per RUNOUT_GAP_US. */
#define RUNOUT_RATE        (32.0 * 1024 * 1024)
#define RUNOUT_HORIZON_S   3.0
#define RUNOUT_MIN_SPAN_US 200000ull
#define RUNOUT_GAP_US      1000000ull

struct agent {
  struct options opt;
  struct collector col;
  struct psi_watch psi;
  struct reclaimer rec;
  struct reclaim_opts rec_opts;
  struct port port;
  struct xsport xs;
  bool said_no_xenstore;
  struct outq out;
  struct linein in;
  struct hello_info hello;
  uint32_t unavail, unavail_said;
  uint32_t interval_ms;
  int sig_fd, uev_fd, out_fd, in_fd;
  bool input_eof, hello_due, quit;
  int exit_code;
  uint64_t seq, next_tick_us;
  /* MemTotal - MemAvailable in the last report sent, and when (0: none). */
  uint64_t report_used, report_used_us;
  uint64_t next_watch_us, memory_report_us;
  /* Bumped on each connect: a reclaim started in an earlier session
   * must not answer the new one (the host there never sent that id). */
  uint64_t session, reclaim_session;
};

static bool
output_mode (const struct agent *a)
{
  return a->opt.output != NULL;
}

/* Reports can go somewhere: --output, xenstore, or a connected port. */
static bool
sink_up (const struct agent *a)
{
  if (output_mode (a))
    return a->out_fd >= 0;
  return a->xs.up || a->port.state == PORT_UP;
}

/* Says once, on stderr, each thing newly found unavailable. */
static void
say_unavailable (struct agent *a)
{
  uint32_t fresh = a->unavail & ~a->unavail_said;
  char list[256] = "";

  if (!fresh)
    return;
  for (int u = 0; u < UA_N; u++) {
    if (fresh & (1u << u)) {
      if (list[0])
        strncat (list, ", ", sizeof list - strlen (list) - 1);
      strncat (list, unavail_name ((enum unavail) u), sizeof list - strlen (list) - 1);
    }
  }
  log_warn ("unavailable in this guest: %s (listed in the hello report)", list);
  a->unavail_said |= fresh;
}

static void
emit_report (struct agent *a, const char *reason, bool has_id, uint64_t id, bool hello)
{
  struct sample s;
  char line[AGENT_LINE_MAX + 1];
  uint64_t now = mono_us ();
  struct report_meta m = {
    .reason = reason,
    .mono_us = now,
    .has_id = has_id,
    .id = id,
    .page_size = a->hello.page_size,
  };
  int len;

  collector_read (&a->col, &s, &a->unavail, now);
  if ((s.mi_have & (1u << MI_AVAILABLE)) && (s.mi_have & (1u << MI_TOTAL))
      && s.mi[MI_AVAILABLE] <= s.mi[MI_TOTAL]) {
    a->report_used = s.mi[MI_TOTAL] - s.mi[MI_AVAILABLE];
    a->report_used_us = now;
  }
  hello = hello || a->hello_due;
  if (hello) {
    a->hello.unavail = a->unavail;
    a->hello.reclaim_methods = reclaim_methods (&a->rec);
    a->hello.interval_ms = a->interval_ms;
    a->hello.psi_mode = psi_mode_name (a->psi.mode);
    snprintf (a->hello.psi_trigger, sizeof a->hello.psi_trigger, "%s",
              a->psi.mode == PSI_MODE_TRIGGER || a->psi.mode == PSI_MODE_POLL ? a->psi.trigger
                                                                              : "");
    m.hello = &a->hello;
  }
  m.seq = ++a->seq;
  m.dropped = a->out.dropped;
  len = report_format (line, sizeof line, &s, &m);
  say_unavailable (a);
  if (len < 0) {
    log_err ("report does not fit in %d bytes: dropped", AGENT_LINE_MAX);
    a->out.dropped++;
    return;
  }
  /* Hello reports and replies keep their order and are never replaced;
   * a pressure or memory report is kept too while there is room. */
  if (hello || has_id
      || ((strcmp (reason, "psi") == 0 || strcmp (reason, "memory") == 0)
          && outq_has_room (&a->out, 3))) {
    if (!outq_put_line (&a->out, line, (size_t) len)) {
      a->out.dropped++;
      return;
    }
    if (hello)
      a->hello_due = false;
  } else {
    outq_put_report (&a->out, line, (size_t) len);
  }
}

static void
queue_line (struct agent *a, const char *line, int len)
{
  if (len < 0 || !outq_put_line (&a->out, line, (size_t) len))
    log_warn ("reply dropped (output queue full)");
}

static void
send_error (struct agent *a, const struct req_error *err)
{
  char line[AGENT_LINE_MAX + 1];

  log_info ("bad request%s%s: %s: %s", err->op[0] ? " " : "", err->op, err->code, err->message);
  queue_line (a, line, reply_error (line, sizeof line, err));
}

static void
handle_line (struct agent *a, const char *line, size_t len)
{
  struct request req;
  struct req_error err;
  char buf[AGENT_LINE_MAX + 1];
  size_t i = 0;

  /* Empty lines separate, they are not requests. */
  while (i < len && isspace ((unsigned char) line[i]))
    i++;
  if (i == len)
    return;
  if (request_parse (line, len, &req, &err) < 0) {
    send_error (a, &err);
    return;
  }
  switch (req.op) {
  case OP_HELLO:
    emit_report (a, "reply", true, req.id, true);
    break;
  case OP_REPORT:
    emit_report (a, "reply", true, req.id, false);
    break;
  case OP_SET_INTERVAL:
    a->interval_ms = req.interval_ms;
    a->next_tick_us = mono_us () + (uint64_t) a->interval_ms * 1000;
    log_info ("report interval set to %u ms by the host", a->interval_ms);
    queue_line (a, buf, reply_set_interval (buf, sizeof buf, req.id, a->interval_ms));
    break;
  case OP_TUNE_REPORTING: {
    struct tune_result res;

    /* err keeps the id and op request_parse put there. */
    if (tune_reporting (&req, &res, &err) < 0) {
      send_error (a, &err);
      break;
    }
    log_info ("page reporting tuned by the host: delay_ms %u, budget_divisor %u (request %llu)",
              res.delay_ms, res.budget_divisor, (unsigned long long) req.id);
    queue_line (a, buf,
                reply_tune_reporting (buf, sizeof buf, req.id, res.delay_ms, res.budget_divisor));
  } break;
  case OP_RECLAIM:
    if (reclaim_start (&a->rec, &req, &err) < 0) {
      send_error (a, &err);
      break;
    }
    a->reclaim_session = a->session;
    log_info ("reclaiming %llu bytes (request %llu)", (unsigned long long) req.bytes,
              (unsigned long long) req.id);
    break;
  }
}

/* Room for the reply to a request, plus the one a running reclaim will
 * need: requests wait in the line buffer until there is. */
static unsigned
reply_room (const struct agent *a)
{
  return a->rec.busy ? 2 : 1;
}

static void
process_input (struct agent *a)
{
  const char *line;
  size_t len;

  while (outq_has_room (&a->out, reply_room (a))) {
    enum li_result r = linein_next (&a->in, &line, &len);
    if (r == LI_NONE)
      return;
    if (r == LI_TOO_LONG) {
      struct req_error err = { 0 };
      req_fail (&err, "line_too_long", NULL, "request longer than %d bytes (newline included)",
                AGENT_LINE_MAX);
      send_error (a, &err);
      continue;
    }
    handle_line (a, line, len);
  }
}

static void
port_went_away (struct agent *a)
{
  port_hangup (&a->port);
  outq_reset (&a->out);
  linein_reset (&a->in);
}

/* xsport closed itself; it is opened again at the next tick (a hello). */
static void
xenstore_went_away (struct agent *a)
{
  log_notice ("xenstore connection lost: opening it again every interval");
  outq_reset (&a->out);
  linein_reset (&a->in);
}

static void
read_input (struct agent *a, int fd)
{
  size_t avail;
  char *p = linein_space (&a->in, &avail);
  ssize_t n;

  if (avail == 0)
    return;
  n = read (fd, p, avail);
  if (n > 0) {
    linein_commit (&a->in, (size_t) n);
    process_input (a);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n < 0)
    log_info ("read: %s", strerror (errno));
  if (output_mode (a))
    a->input_eof = true;
  else
    port_went_away (a); /* EOF on a virtio port: the host end closed */
}

static void
flush_output (struct agent *a)
{
  int fd, e;

  if (outq_empty (&a->out))
    return;
  if (a->xs.up) {
    if (xsport_flush (&a->xs, &a->out) < 0)
      xenstore_went_away (a);
    return;
  }
  fd = output_mode (a) ? a->out_fd : a->port.state == PORT_UP ? a->port.fd : -1;
  if (fd < 0)
    return;
  e = outq_flush (&a->out, fd);
  if (e == 0)
    return;
  if (output_mode (a)) {
    log_err ("writing %s: %s", a->opt.output, strerror (-e));
    a->quit = true;
    a->exit_code = 1;
  } else {
    log_info ("writing to the port: %s", strerror (-e));
    port_went_away (a);
  }
}

/* A new connection to the host: what waits from the last one is stale;
 * the hello goes first. */
static void
start_session (struct agent *a)
{
  outq_reset (&a->out);
  linein_reset (&a->in);
  /* Ends any partial line the host may still hold from before. */
  outq_put_line (&a->out, "\n", 1);
  a->session++;
  emit_report (a, "connect", false, 0, true);
}

/* --transport: xenstore, or (auto) when there is no virtio port to use
 * and the guest is a Xen domU. */
static bool
want_xenstore (struct agent *a)
{
  if (a->opt.transport != TRANSPORT_AUTO)
    return a->opt.transport == TRANSPORT_XENSTORE;
  if (a->opt.port_path || a->port.state != PORT_DOWN || port_named_exists (a->opt.port_name)
      || !port_xen_domu ())
    return false;
  if (!xs_backend && !a->said_no_xenstore) {
    log_warn ("this is a Xen domU without a virtio-serial port, but this memtide-agent was "
              "built without libxenstore: nothing can reach the host");
    a->said_no_xenstore = true;
  }
  return xs_backend != NULL;
}

/* Returns true when the port (or xenstore) just became usable (a hello
 * went out). */
static bool
maintain_port (struct agent *a)
{
  enum port_state before = a->port.state;

  if (a->xs.up)
    return false;
  if (want_xenstore (a)) {
    if (!xsport_open (&a->xs))
      return false;
    start_session (a);
    return true;
  }

  if (before == PORT_DOWN)
    port_open (&a->port);
  else if (before == PORT_HUP)
    port_recheck (&a->port);
  if (a->port.state != PORT_UP || before == PORT_UP)
    return false;
  start_session (a);
  return true;
}

static void
tick (struct agent *a)
{
  if (!output_mode (a) && maintain_port (a))
    return;
  if (sink_up (a))
    emit_report (a, "tick", false, 0, false);
}

static void
step_reclaim (struct agent *a, uint64_t now)
{
  struct reclaim_result res = { 0 };
  struct req_error err = { 0 };
  char line[AGENT_LINE_MAX + 1];
  bool failed;
  uint64_t id = a->rec.id;

  if (!reclaim_step (&a->rec, &a->col, now, &res, &err, &failed))
    return;
  if (a->reclaim_session != a->session)
    return;
  if (failed) {
    err.has_id = true;
    err.id = id;
    snprintf (err.op, sizeof err.op, "reclaim");
    send_error (a, &err);
    return;
  }
  log_info ("reclaim %llu: %s reclaimed %llu of %llu bytes in %llu ms", (unsigned long long) id,
            res.method, (unsigned long long) res.reclaimed, (unsigned long long) res.requested,
            (unsigned long long) res.elapsed_ms);
  if (sink_up (a) && a->reclaim_session == a->session)
    queue_line (a, line, reply_reclaim (line, sizeof line, id, &res));
}

static void
handle_signal (struct agent *a)
{
  struct signalfd_siginfo si;

  while (read (a->sig_fd, &si, sizeof si) == (ssize_t) sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      log_notice ("SIGHUP: looking again for cgroup2, the port and memory blocks");
      reclaim_probe (&a->rec, &a->rec_opts, &a->unavail);
      a->col.blocks_dirty = true;
      if (!output_mode (a))
        maintain_port (a);
    } else {
      a->quit = true;
    }
  }
}

static bool
once_done (const struct agent *a)
{
  bool input_done = !output_mode (a) || a->in_fd < 0 || a->input_eof;
  return input_done && !a->rec.busy && !linein_pending (&a->in) && outq_empty (&a->out);
}

static int
ms_until (uint64_t now, uint64_t when)
{
  uint64_t ms;

  if (when <= now)
    return 0;
  ms = (when - now + 999) / 1000;
  return ms > 60000 ? 60000 : (int) ms;
}

/* The memory watch: is MemAvailable running out since the last report? */
static bool
running_out (struct agent *a, uint64_t now)
{
  uint64_t total, avail;
  double rate;

  if (a->report_used_us == 0 || now < a->report_used_us + RUNOUT_MIN_SPAN_US
      || now < a->memory_report_us + RUNOUT_GAP_US
      || !collector_mem_available (&a->col, &total, &avail) || total - avail <= a->report_used)
    return false;
  rate = (double) (total - avail - a->report_used) * 1e6 / (double) (now - a->report_used_us);
  return rate >= RUNOUT_RATE && (double) avail <= rate * RUNOUT_HORIZON_S;
}

static void
run (struct agent *a)
{
  uint64_t once_deadline = mono_us () + ONCE_TIMEOUT_US;

  for (;;) {
    struct pollfd pfd[7];
    int n = 0, i_port = -1, i_out = -1, i_in = -1, i_psi = -1, i_uev = -1, i_xs = -1, timeout;
    uint64_t now = mono_us ();
    bool want_read;

    if (a->quit)
      return;
    if (!a->opt.once && now >= a->next_tick_us) {
      tick (a);
      a->next_tick_us += (uint64_t) a->interval_ms * 1000;
      if (a->next_tick_us <= now)
        a->next_tick_us = now + (uint64_t) a->interval_ms * 1000;
    }
    if (a->psi.mode == PSI_MODE_POLL && now >= a->psi.next_poll_us && psi_watch_poll (&a->psi, now)
        && sink_up (a))
      emit_report (a, "psi", false, 0, false);
    if (a->opt.memory_watch_ms && !a->opt.once && now >= a->next_watch_us) {
      a->next_watch_us = now + (uint64_t) a->opt.memory_watch_ms * 1000;
      if (sink_up (a) && running_out (a, now)) {
        log_debug ("available memory running out: report at once");
        a->memory_report_us = now;
        emit_report (a, "memory", false, 0, false);
      }
    }
    if (a->rec.busy)
      step_reclaim (a, now);
    /* A request waits in xenstore, not in a socket buffer: read it only
     * when its reply has room, as the port is read. */
    if (a->xs.up && !linein_pending (&a->in) && outq_has_room (&a->out, reply_room (a))
        && !xsport_take_request (&a->xs, &a->in))
      xenstore_went_away (a);
    process_input (a);
    flush_output (a);
    if (a->quit)
      return;
    if (a->opt.once && once_done (a))
      return;
    if (a->opt.once && now >= once_deadline && !a->rec.busy && (!output_mode (a) || a->input_eof)) {
      log_err ("--once: the host did not take the report within %llu s",
               (unsigned long long) (ONCE_TIMEOUT_US / 1000000));
      a->exit_code = 1;
      return;
    }

    want_read = !linein_pending (&a->in) && outq_has_room (&a->out, reply_room (a));
    pfd[n++] = (struct pollfd){ .fd = a->sig_fd, .events = POLLIN };
    if (a->xs.up) {
      i_xs = n;
      pfd[n++] = (struct pollfd){ .fd = xsport_fd (&a->xs), .events = POLLIN };
    } else if (!output_mode (a)) {
      if (a->port.state == PORT_UP) {
        i_port = n;
        pfd[n++] = (struct pollfd){ .fd = a->port.fd,
                                    .events = (short) ((want_read ? POLLIN : 0)
                                                       | (outq_empty (&a->out) ? 0 : POLLOUT)) };
      }
    } else {
      if (!outq_empty (&a->out)) {
        i_out = n;
        pfd[n++] = (struct pollfd){ .fd = a->out_fd, .events = POLLOUT };
      }
      if (a->in_fd >= 0 && !a->input_eof && want_read) {
        i_in = n;
        pfd[n++] = (struct pollfd){ .fd = a->in_fd, .events = POLLIN };
      }
    }
    if (a->psi.trig_fd >= 0) {
      i_psi = n;
      pfd[n++] = (struct pollfd){ .fd = a->psi.trig_fd, .events = POLLPRI };
    }
    if (a->uev_fd >= 0) {
      i_uev = n;
      pfd[n++] = (struct pollfd){ .fd = a->uev_fd, .events = POLLIN };
    }

    if (a->rec.busy)
      timeout = 0;
    else if (a->opt.once)
      timeout = ms_until (now, once_deadline);
    else
      timeout = ms_until (now, a->next_tick_us);
    if (a->psi.mode == PSI_MODE_POLL && !a->opt.once) {
      int t = ms_until (now, a->psi.next_poll_us);
      if (t < timeout)
        timeout = t;
    }
    if (a->opt.memory_watch_ms && !a->opt.once) {
      int t = ms_until (now, a->next_watch_us);
      if (t < timeout)
        timeout = t;
    }

    if (poll (pfd, (nfds_t) n, timeout) < 0) {
      if (errno == EINTR)
        continue;
      log_err ("poll: %s", strerror (errno));
      a->exit_code = 1;
      return;
    }

    if (pfd[0].revents)
      handle_signal (a);
    if (i_xs >= 0 && a->xs.up && pfd[i_xs].revents && !xsport_events (&a->xs))
      xenstore_went_away (a);
    if (i_port >= 0 && a->port.state == PORT_UP) {
      short re = pfd[i_port].revents;
      if (re & POLLNVAL)
        port_close (&a->port);
      else if (re & POLLIN)
        read_input (a, a->port.fd);
      else if (re & (POLLHUP | POLLERR))
        port_went_away (a);
      if ((re & POLLOUT) && a->port.state == PORT_UP)
        flush_output (a);
    }
    if (i_out >= 0 && pfd[i_out].revents)
      flush_output (a);
    if (i_in >= 0 && pfd[i_in].revents)
      read_input (a, a->in_fd);
    if (i_psi >= 0 && pfd[i_psi].revents) {
      if (pfd[i_psi].revents & (POLLERR | POLLNVAL))
        psi_watch_trigger_failed (&a->psi, &a->unavail);
      else if (sink_up (a))
        emit_report (a, "psi", false, 0, false);
    }
    if (i_uev >= 0 && pfd[i_uev].revents) {
      unsigned bits = uevent_drain (a->uev_fd);
      if (bits & UEV_MEMORY)
        a->col.blocks_dirty = true;
      if ((bits & UEV_VPORTS) && !output_mode (a))
        maintain_port (a);
    }
  }
}

static void
read_hello_facts (struct hello_info *h)
{
  char path[PATH_MAX], buf[128];
  char *s;
  size_t n = 0;

  h->agent = "memtide-agent " AGENT_VERSION;
  h->page_size = (uint64_t) sysconf (_SC_PAGESIZE);
  h->is_root = geteuid () == 0;
  h->kernel[0] = h->boot_id[0] = '\0';
  if (rpath (path, sizeof path, "/proc/sys/kernel/osrelease") == 0
      && read_path (path, buf, sizeof buf) >= 0) {
    for (s = strip (buf); *s && n < sizeof h->kernel - 1; s++)
      if (isgraph ((unsigned char) *s))
        h->kernel[n++] = *s;
    h->kernel[n] = '\0';
  }
  if (rpath (path, sizeof path, "/proc/sys/kernel/random/boot_id") == 0
      && read_path (path, buf, sizeof buf) >= 0) {
    s = strip (buf);
    if (strlen (s) == 36 && strspn (s, "0123456789abcdef-") == 36)
      memcpy (h->boot_id, s, 37);
  }
}

static int
setup_signals (struct agent *a)
{
  sigset_t set;

  signal (SIGPIPE, SIG_IGN);
  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGHUP);
  if (sigprocmask (SIG_BLOCK, &set, NULL) < 0)
    return -errno;
  a->sig_fd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  return a->sig_fd < 0 ? -errno : 0;
}

static int
open_output (struct agent *a)
{
  if (strcmp (a->opt.output, "-") == 0) {
    a->out_fd = STDOUT_FILENO;
  } else {
    a->out_fd = open (a->opt.output, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0644);
    if (a->out_fd < 0) {
      log_err ("cannot open --output %s: %s", a->opt.output, strerror (errno));
      return -1;
    }
  }
  if (!a->opt.input)
    return 0;
  if (strcmp (a->opt.input, "-") == 0) {
    a->in_fd = STDIN_FILENO;
  } else {
    a->in_fd = open (a->opt.input, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (a->in_fd < 0) {
      log_err ("cannot open --input %s: %s", a->opt.input, strerror (errno));
      return -1;
    }
  }
  return 0;
}

static void
lock_memory (struct agent *a)
{
  int flags = MCL_CURRENT | MCL_FUTURE;

#ifdef MCL_ONFAULT
  /* Only pages as they are used: RSS stays what it would be. */
  if (mlockall (flags | MCL_ONFAULT) == 0)
    return;
#endif
  if (mlockall (flags) == 0)
    return;
  log_warn ("cannot lock the agent in memory: %s%s", strerror (errno),
            geteuid () != 0 ? " (not root)" : "");
  unavail_set (&a->unavail, UA_MLOCK, 1);
}

static void
cleanup (struct agent *a)
{
  /* A last try for what is queued, without waiting. */
  flush_output (a);
  reclaim_cleanup (&a->rec);
  psi_watch_close (&a->psi);
  collector_close (&a->col);
  port_close (&a->port);
  xsport_close (&a->xs);
  if (a->uev_fd >= 0)
    close (a->uev_fd);
  if (a->sig_fd >= 0)
    close (a->sig_fd);
  if (a->out_fd > STDERR_FILENO)
    close (a->out_fd);
  if (a->in_fd > STDERR_FILENO)
    close (a->in_fd);
}

int
agent_main (int argc, char **argv)
{
  struct agent *a;
  int r;

  a = calloc (1, sizeof *a);
  if (!a) {
    fputs ("memtide-agent: out of memory\n", stderr);
    return 1;
  }
  a->sig_fd = a->uev_fd = a->out_fd = a->in_fd = -1;
  r = options_parse (argc, argv, &a->opt);
  if (r != 0) {
    /* --help and --version: out before a caller's _exit() (tests fork). */
    fflush (stdout);
    free (a);
    return r > 0 ? 0 : 2;
  }
  log_init (a->opt.log_level);
  if (paths_set_root (a->opt.root) < 0) {
    log_err ("--root: path too long");
    free (a);
    return 2;
  }
  if (setup_signals (a) < 0) {
    log_err ("signals: %s", strerror (errno));
    free (a);
    return 1;
  }
  if (geteuid () != 0)
    log_warn ("not running as root: creating the port's device node, PSI triggers, "
              "reclaim, mounting cgroup2 and mlock may fail (each is said when it does)");

  a->interval_ms = a->opt.interval_ms;
  outq_init (&a->out);
  linein_reset (&a->in);
  collector_open (&a->col, &a->unavail);
  if (paths_real ())
    a->uev_fd = uevent_open ();
  a->col.blocks_max_age_us = a->uev_fd >= 0 ? BLOCKS_MAX_AGE_US : 0;
  psi_watch_open (&a->psi, a->opt.psi_full, a->opt.psi_stall_us, a->opt.psi_window_us, &a->unavail);
  a->rec_opts =
    (struct reclaim_opts){ .cgroup_dir = a->opt.cgroup_dir, .allow_mount = a->opt.allow_mount };
  reclaim_probe (&a->rec, &a->rec_opts, &a->unavail);
  read_hello_facts (&a->hello);
  port_init (&a->port, a->opt.port_name, a->opt.port_path);
  xsport_init (&a->xs);
  if (a->opt.mlock)
    lock_memory (a);

  if (output_mode (a)) {
    if (open_output (a) < 0) {
      a->exit_code = 1;
      goto out;
    }
    a->hello_due = true;
    emit_report (a, "connect", false, 0, true);
    a->next_tick_us = mono_us () + (uint64_t) a->interval_ms * 1000;
  } else {
    a->next_tick_us = mono_us ();
    if (a->opt.once && (maintain_port (a), !sink_up (a))) {
      log_err ("--once: %s%s is not connected to the host",
               a->opt.transport == TRANSPORT_XENSTORE ? "xenstore" : "port ",
               a->opt.transport == TRANSPORT_XENSTORE ? ""
               : a->opt.port_path                     ? a->opt.port_path
                                                      : a->opt.port_name);
      a->exit_code = 1;
      goto out;
    }
  }
  log_info ("running: interval %u ms, PSI %s%s%s", a->interval_ms, psi_mode_name (a->psi.mode),
            a->psi.trigger[0] ? " " : "", a->psi.trigger);
  run (a);

out:
  cleanup (a);
  r = a->exit_code;
  free (a);
  return r;
}
