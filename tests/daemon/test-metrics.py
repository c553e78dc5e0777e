#!/usr/bin/python3
"""integration (TAP): memtided --metrics-port serves OpenMetrics text on
loopback only, with host and per-VM figures from the daemon.

Runs memtided on libvirt's test driver (one running domain, "test") with
a fake /proc (tests/unit/data/host/proc), so the host figures are known.
Environment: MEMTIDE_DAEMON, MEMTIDE_SRCDIR.
"""

import functools
import http.client
import os
import re
import subprocess

import daemonlib
from daemonlib import WAIT, running, finish, require_daemon

DAEMON = require_daemon()
SRC = daemonlib.require_srcdir()
tap = functools.partial(daemonlib.tap, limit=40)

tmp, conf = daemonlib.scratch("memtide-metrics-")
proc_root = os.path.join(SRC, "tests", "unit", "data", "host", "proc")
base = [DAEMON, "--connect", "test:///default", "--config", conf,
        "--policies-dir", os.path.join(tmp, "none"), "--state-dir", os.path.join(tmp, "st"),
        "--proc-root", proc_root, "--cgroup", os.path.join(tmp, "no-cgroup"), "--bus", "none"]
env = dict(os.environ, G_DEBUG="fatal-criticals")

r = subprocess.run(base + ["--metrics-port", "70000"], capture_output=True, text=True,
                   env=env, timeout=WAIT)
tap(r.returncode == 2 and "70000" in r.stderr, "a port above 65535 is refused (exit 2)",
    r.stderr)

d = running(base + ["--metrics-port", "0", "-v"], env)


def get(path, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    c.request(method, path)
    resp = c.getresponse()
    return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()


try:
    hit = d.wait(r"Metrics on http://localhost:(\d+)/metrics", WAIT)
    tap(hit is not None, "memtided logs where its metrics are", d.text())
    port = int(hit[1].group(1)) if hit else 0
    # The figures below are there once it has ticked.
    tap(d.wait(r"tick 2 took", WAIT), "memtided ticks", d.text())

    status, ctype, body = get("/metrics")
    tap(status == 200 and ctype.startswith("application/openmetrics-text"),
        f"GET /metrics: 200, OpenMetrics content type ({status}, {ctype})")
    tap(body.endswith("# EOF\n"), "the exposition ends with # EOF", body[-200:])
    tap(f"memtide_host_total_bytes {24589344 * 1024}\n" in body,
        "host MemTotal comes from the host's /proc/meminfo", body[:800])
    tap("memtide_host_reserve_bytes 1073741824\n" in body, "reserve is the policy's 1 GiB")
    tap(re.search(r'^memtide_vm_stuck\{vm="test",uuid="[0-9a-f-]{36}"\} 0$', body, re.M),
        "per-VM series carry the domain name and UUID", body)
    tap("memtide_vms_stuck 0\n" in body, "stuck count is 0")
    tap('memtide_grow_reaction_seconds_bucket{le="+Inf"} 0\n' in body and
        "memtide_grow_reaction_seconds_count 0\n" in body,
        "the reaction-time histogram is there (empty: the test driver VM never grows)")
    reclaims = re.findall(r'^memtide_guest_reclaims_total\{why="(\w+)",outcome="(\w+)"\} 0$', body, re.M)
    tap(sorted(reclaims) == sorted((w, o) for w in ("shrink", "cold")
                                   for o in ("done", "refused", "failed")),
        f"guest reclaim counters by why and outcome, 0 without agents ({reclaims})")
    tap('memtide_guest_reclaimed_bytes_total{why="cold"} 0\n' in body
        and "# UNIT memtide_guest_reclaimed_bytes bytes\n" in body,
        "reclaimed bytes counter, in bytes")
    types = re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M)
    tap(len(types) == len({n for n, _ in types}) and len(types) >= 15,
        f"every metric family is declared once ({len(types)} families)")

    status, _, _ = get("/other")
    tap(status == 404, f"other paths: 404 ({status})")
    status, _, _ = get("/metrics", "POST")
    tap(status == 405, f"POST: 405 ({status})")

    # Loopback only: every listening socket on that port is 127.0.0.1 or ::1.
    listen = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as f:
            for row in f.readlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                addr, p = local.split(":")
                if int(p, 16) == port and state == "0A":
                    listen.append(addr)
    loopback = {"0100007F", "00000000000000000000000001000000"}
    tap(listen and all(a in loopback for a in listen),
        f"listens on loopback only ({listen})")
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: exit 0 (got {rc})", d.tail(20))
finish()
