#!/usr/bin/python3
"""integration (TAP): memtided arms a PSI trigger on the host's memory
pressure where it can, and falls back to the tick's reading where it
cannot, in one line, without an error.

memtided on libvirt's test driver:
  1. with a fake /proc (a copy of tests/unit/data/host/proc, not procfs):
     one line saying there is no trigger and why, no warning, the fake
     pressure file untouched, ticks go on;
  2. with the real /proc: one line, either the trigger it armed (and it
     holds /proc/pressure/memory open) or why the kernel refused it
     (printed: which one depends on the machine).
Environment: MEMTIDE_DAEMON, MEMTIDE_SRCDIR.
"""

import functools
import os
import re
import shutil

import daemonlib
from daemonlib import WAIT, running, finish, require_daemon

DAEMON = require_daemon()
SRC = daemonlib.require_srcdir()
tap = functools.partial(daemonlib.tap, limit=40)

tmp, conf = daemonlib.scratch("memtide-psi-")
fake_proc = os.path.join(tmp, "proc")
shutil.copytree(os.path.join(SRC, "tests", "unit", "data", "host", "proc"), fake_proc)
pressure = os.path.join(fake_proc, "pressure", "memory")
with open(pressure) as f:
    before = f.read()
env = dict(os.environ, G_DEBUG="fatal-criticals")
LINE = r"Host memory pressure: (.*)$"


def start(proc_root, state):
    return running([DAEMON, "--connect", "test:///default", "--config", conf,
                    "--policies-dir", os.path.join(tmp, "none"),
                    "--state-dir", os.path.join(tmp, state), "--proc-root", proc_root,
                    "--cgroup", os.path.join(tmp, "no-cgroup"), "--bus", "none", "-v"], env)


# ---- 1. a fake /proc ------------------------------------------------------------
d = start(fake_proc, "st1")
try:
    tap(d.wait(r"tick 5 took", WAIT), "memtided ticks", d.tail())
    lines = d.findall(LINE)
    tap(len(lines) == 1 and lines[0][1].group(1)
        == f"no PSI trigger ({pressure} is not on procfs); read every tick",
        "one line: no trigger, and why", "\n".join(m.string for _, m in lines) or d.tail())
    tap(not d.find(r"WARNING|CRITICAL"), "no warning", d.tail())
    with open(pressure) as f:
        tap(f.read() == before, "the fake pressure file is untouched")
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: exit 0 (got {rc})", d.tail(20))

# ---- 2. the real /proc -----------------------------------------------------------
d = start("/proc", "st2")
try:
    tap(d.wait(r"tick 5 took", WAIT), "memtided ticks on the real /proc", d.tail())
    lines = d.findall(LINE)
    tap(len(lines) == 1, "one line about the host's pressure",
        "\n".join(m.string for _, m in lines) or d.tail())
    text = lines[0][1].group(1) if lines else ""
    daemonlib.mttap.note(f"this machine: Host memory pressure: {text}")
    armed = re.match(r"PSI trigger '(some \d+ \d+)' plans at once, and read every tick$", text)
    if armed:
        tap(armed.group(1) in ("some 150000 1000000", "some 300000 2000000"),
            f"armed: '{armed.group(1)}'")
        fds = [os.readlink(f"/proc/{d.proc.pid}/fd/{n}")
               for n in os.listdir(f"/proc/{d.proc.pid}/fd")]
        tap("/proc/pressure/memory" in fds, "memtided holds /proc/pressure/memory open", fds)
    else:
        tap(re.match(r"no PSI trigger \((cannot open /proc/pressure/memory for writing|"
                     r"the kernel refused the trigger '[^']*' on /proc/pressure/memory): .+\); "
                     r"read every tick$", text),
            "not armed here, and the line says why", text)
    tap(not d.find(r"pressure.*(WARNING|CRITICAL)|(WARNING|CRITICAL).*pressure"),
        "no warning about it", d.tail())
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: exit 0 (got {rc})", d.tail(20))
finish()
