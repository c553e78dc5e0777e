#!/usr/bin/python3
"""integration (TAP): an event plan's log line says what happened.

memtided plans at once when a guest agent reports an emergency, at most
one extra plan per 200 ms for all VMs.  It used to log "planning now"
for a report whose plan the rate limit had dropped.  Here two fake-driver
VMs, "a" and "b", have agents played by this test, which send each an
OOM-kill report back to back (each is an event for its VM) until one of a
pair was planned and the other was not: the first is logged "planning
now", the other "not planning now" with the rate limit and when the
next tick plans.  Then, paused, a report is logged "not planning:
paused".  No order between the two VMs is assumed."""

import json
import os
import re
import socket
import threading
import time

import mtlib
from fakelib import fake_memtided
from mtlib import MiB, Bus, Client, Polkit, finish, tap, wait_for

mtlib.binaries()


class Agent:
    """A guest agent on a VM's channel: a hello, a report every 300 ms
    (so the link stays fresh), and one more whenever push() is called;
    every report carries the OOM kill count the test sets."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.seq = 0
        self.oom = 0
        self.conn = None
        self.stopped = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(0.2)
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _line(self, hello=False, reason="tick"):
        self.seq += 1
        r = {"v": 1, "type": "report", "seq": self.seq, "reason": reason,
             "mono_us": int(time.monotonic() * 1e6), "dropped": 0}
        if hello:
            r.update({"hello": True, "agent": "plan-now test agent", "kernel": "6.1.0",
                      "boot_id": "0d4c5a8e-3f1b-4b7a-9c2e-5a6b7c8d9e0f", "page_size": 4096,
                      "interval_ms": 300, "psi_mode": "none", "reclaim_methods": [],
                      "root": True, "unavailable": ["memory.reclaim", "drop_caches"]})
        r["mem"] = {"total": 1024 * MiB, "free": 600 * MiB, "available": 600 * MiB,
                    "cached": 0, "shmem": 0, "anon": 400 * MiB, "slab_reclaimable": 0,
                    "inactive_file": 0, "swap_total": 0, "swap_free": 0}
        r["vmstat"] = {"pgmajfault": 0, "pswpin_bytes": 0, "pswpout_bytes": 0,
                       "oom_kill": self.oom}
        return (json.dumps(r, separators=(",", ":")) + "\n").encode()

    def _send(self, **kw):
        with self.lock:
            if self.conn is not None:
                self.conn.sendall(self._line(**kw))

    def push(self):
        """One more OOM kill, reported now (from the caller's thread)."""
        with self.lock:
            self.oom += 1
        self._send(reason="memory")

    def _run(self):
        while not self.stopped and self.conn is None:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with self.lock:
                self.conn = conn
        if self.conn is None:
            return
        self._send(hello=True, reason="connect")
        self.connected.set()
        while not self.stopped:
            time.sleep(0.3)
            try:
                self._send()
            except OSError:
                return

    def stop(self):
        self.stopped = True
        self.thread.join(5)
        with self.lock:
            if self.conn is not None:
                self.conn.close()
        self.sock.close()


bus = Bus()
polkit = Polkit(bus)
workdir = mtlib.tmpdir()
agents = {name: Agent(os.path.join(workdir, f"{name}.agent")) for name in ("a", "b")}
for agent in agents.values():
    mtlib.mttap.at_exit(agent.stop)
# Sizes fixed (min = max): the agents' MemTotal stays the VMs' size.
daemon = fake_memtided(bus, vms="[vm *]\nmin = 100%\n")
for name, agent in agents.items():
    daemon.fake.ok(f"add {name} size=1G used=400M agent={agent.path}")
tap(all(a.connected.wait(30) for a in agents.values()), "both agents are connected")
tap(wait_for(lambda: all(f"VM {n}: first agent report" in daemon.log() for n in agents), 30),
    "memtided has both agents' reports", daemon.log()[-2000:])
daemon.wait_ticks(2)   # each VM has a tick sample: its events can plan

OOM = r"OOM kill in the guest \(1 new\)"
PLANNED = re.compile(r"VM (\w): " + OOM + r": planning now$", re.M)
LIMITED = re.compile(r"VM (\w): " + OOM + r": not planning now: the last extra plan was "
                     r"(\d+) ms ago \(at most one per 200 ms\); the next tick plans in (\d+) ms$",
                     re.M)


def outcomes(text):
    return [m.group(1) for m in PLANNED.finditer(text)], [m for m in LIMITED.finditer(text)]


both = None
deadline = time.monotonic() + 60
while both is None and time.monotonic() < deadline:
    start = len(daemon.log())
    for agent in agents.values():
        agent.push()
    # Both reports are answered by a line each (a VM plans at most once a
    # second for its own events: the next pair comes after that).
    wait_for(lambda: sum(len(x) for x in outcomes(daemon.log()[start:])) >= 2, 10)
    planned, limited = outcomes(daemon.log()[start:])
    if len(planned) == 1 and len(limited) == 1:
        both = (planned, limited)
    time.sleep(1.1)
tap(both, "a pair of events, one planned at once and the other not (the 200 ms limit)",
    "\n".join(line for line in daemon.log().splitlines() if "OOM kill" in line)[-3000:])
if both:
    planned, limited = both
    tap(planned[0] != limited[0].group(1), "one line for each VM's event",
        f"planned {planned}, limited {limited[0].group(0)}")
    tap(int(limited[0].group(2)) < 200 and int(limited[0].group(3)) <= 200,
        "the limited one says how long ago the last extra plan was and when the next tick "
        "plans", limited[0].group(0))
# ---- paused ------------------------------------------------------------------
polkit.set_allowed(["org.memtide.set-mode"])
c = Client(bus)
c.m("SetMode", "paused", sig="s")
tap(wait_for(lambda: c.prop(mtlib.PATH, mtlib.MANAGER, "Mode") == "paused", 10), "paused")
mark = len(daemon.log())
agents["a"].push()
line = wait_for(lambda: re.search(r"VM a: " + OOM + r": (.*)$", daemon.log()[mark:], re.M), 10)
tap(line and line.group(1) == "not planning: paused, observing only",
    "paused: the event is logged as not planned", line.group(0) if line else daemon.log()[-2000:])
finish()
