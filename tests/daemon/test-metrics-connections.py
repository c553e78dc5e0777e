#!/usr/bin/python3
"""integration (TAP): the metrics endpoint holds at most 32 connections,
closes idle ones, survives running out of descriptors, and keeps serving.

A local client holding ~1,025 connections once used up every descriptor
of memtided, and after it let go /metrics never answered again although
the socket still listened (libsoup's listener gives up on the first
failed accept).  Here memtided runs on libvirt's test driver with
--metrics-port 0 and:
  1. 200 idle connections: it holds at most 32 (its descriptors say so),
     says once that it refuses the rest, answers again once they are gone;
  2. an idle connection is closed by memtided after 10 s;
  3. its descriptor limit lowered (prlimit) below what 100 connections
     need, so accept() really fails with EMFILE: it says so once, keeps
     ticking, and once the client lets go, /metrics answers again.
Environment: MEMTIDE_DAEMON, MEMTIDE_SRCDIR.
"""

import errno
import functools
import http.client
import os
import resource
import socket
import time

import daemonlib
from daemonlib import WAIT, running, finish, require_daemon

DAEMON = require_daemon()
SRC = daemonlib.require_srcdir()
tap = functools.partial(daemonlib.tap, limit=40)

MAX_CONNECTIONS = 32   # MT_METRICS_MAX_CONNECTIONS, service/metrics-listener.h
IDLE_TIMEOUT = 10      # s, MT_METRICS_IDLE_TIMEOUT

tmp, conf = daemonlib.scratch("memtide-metrics-conn-")
proc_root = os.path.join(SRC, "tests", "unit", "data", "host", "proc")
args = [DAEMON, "--connect", "test:///default", "--config", conf,
        "--policies-dir", os.path.join(tmp, "none"), "--state-dir", os.path.join(tmp, "st"),
        "--proc-root", proc_root, "--cgroup", os.path.join(tmp, "no-cgroup"), "--bus", "none",
        "--metrics-port", "0", "-v"]
d = running(args, dict(os.environ, G_DEBUG="fatal-criticals"))
port = 0


def wait_until(pred, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.05)


def fds():
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def scrape(timeout=2.0):
    """The status of GET /metrics, or the error it ended with."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/metrics")
        resp = c.getresponse()
        body = resp.read().decode()
        return resp.status if body.endswith("# EOF\n") else f"{resp.status}, cut short"
    except (OSError, http.client.HTTPException) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        c.close()


def open_connections(n):
    """n connections to the endpoint that send nothing; non-blocking, so
    that a full listen backlog does not stall the test."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(err, os.strerror(err))
        socks.append(s)
    return socks


def release(socks):
    for s in socks:
        s.close()


def ticks():
    return len(d.findall(r"tick \d+ took"))


try:
    hit = d.wait(r"Metrics on http://localhost:(\d+)/metrics", WAIT)
    tap(hit is not None, "memtided logs where its metrics are", d.text())
    port = int(hit[1].group(1)) if hit else 0
    tap(d.wait(r"tick 3 took", WAIT), "memtided ticks", d.tail())
    tap(scrape() == 200, "GET /metrics answers")
    base = fds()

    # ---- 1. more connections than the cap ------------------------------------
    held = open_connections(200)
    refused = d.wait(r"Metrics: \d+ connections open, the most allowed", WAIT)
    tap(refused, "memtided says it refuses connections beyond the most allowed", d.tail())
    n = fds()
    tap(n <= base + MAX_CONNECTIONS + 2,
        f"it holds at most {MAX_CONNECTIONS} of the 200 ({n} descriptors, {base} before)")
    release(held)
    tap(wait_until(lambda: scrape() == 200), "GET /metrics answers once they are gone",
        d.tail())
    tap(len(d.findall(r"connections open, the most allowed")) == 1,
        "said once", "\n".join(m.string for _, m in d.findall(r"the most allowed")))
    tap(d.wait(r"Metrics: accepting connections again", WAIT),
        "and that it accepts connections again", d.tail())

    # ---- 2. an idle connection is closed ---------------------------------------
    idle = socket.create_connection(("127.0.0.1", port), timeout=3 * IDLE_TIMEOUT)
    t0 = time.monotonic()
    try:
        got = idle.recv(1)
    except OSError as e:
        got = e
    waited = time.monotonic() - t0
    tap(got == b"", f"an idle connection is closed by memtided (after {waited:.1f} s)",
        repr(got))
    idle.close()

    # ---- 3. out of descriptors ---------------------------------------------------
    base = fds()
    soft, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (base + 8, hard))
    mark = d.mark()
    held = open_connections(100)
    emfile = d.wait(r"Metrics: cannot accept connections: .*Too many open files", WAIT, mark)
    tap(emfile, "memtided says accept() fails for want of descriptors", d.tail())
    before = ticks()
    tap(wait_until(lambda: ticks() >= before + 10), "it keeps ticking meanwhile", d.tail())
    tap(d.alive(), "it is still running")
    release(held)
    ok = wait_until(lambda: scrape() == 200)
    tap(ok, f"GET /metrics answers again once the client let go ({scrape()})", d.tail())
    tap(len(d.findall(r"Metrics: cannot accept connections", mark)) == 1, "said once",
        "\n".join(m.string for _, m in d.findall(r"cannot accept connections", mark)))
    tap(d.find(r"Metrics: accepting connections again", mark), "and that it accepts again",
        d.tail())
    resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: exit 0 (got {rc})", d.tail(20))
finish()
