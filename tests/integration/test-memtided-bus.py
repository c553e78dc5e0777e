#!/usr/bin/python3
"""integration (TAP): memtided's bus options and lifetime: --bus values,
one memtided per bus name (a second one exits before it acts), running
on without the API when there is no system bus (only when --bus was not
given), exiting with a failure when the bus goes away, and a clean exit
on SIGTERM."""

import os
import subprocess

import mtlib
from logproc import LogProcess
from mtlib import NAME, WAIT, Bus, Client, Memtided, eq, finish, tap, wait_for

mtlib.binaries()


def start(args, env):
    """memtided with its output kept line by line, stopped at exit."""
    p = LogProcess([mtlib.MEMTIDED] + args, env=dict(os.environ, G_DEBUG="fatal-criticals", **env))
    p.start()
    mtlib._procs.append(p.proc)
    return p


def run(args, env=None, timeout=WAIT):
    p = subprocess.run([mtlib.MEMTIDED] + args, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, G_DEBUG="fatal-criticals", **(env or {})))
    return p.returncode, p.stdout + p.stderr


code, out = run(["--bus", "carrier-pigeon"])
tap(code == 2 and "system, session or none" in out, "--bus with an unknown value: exit 2",
    (code, out))

bus = Bus()
first = Memtided(bus)
second = Memtided(bus, wait=False)
ok = wait_for(lambda: not second.alive(), WAIT)
eq(second.proc.returncode if ok else None, 1, "a second memtided on the same bus exits 1")
tap("another process owns org.memtide.Manager1" in second.log() and
    "memtided running" not in second.log(),
    "... saying why, before it manages any VM", second.log())
tap(first.alive() and Client(bus).has_owner(NAME), "the first one keeps the name")

nobus = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/system_bus_socket"}
lone = Memtided(None, wait=False)
lone.stop()
# Without --bus: warn and keep managing VMs (it plans, tick after tick).
p = start(lone.args[1:], nobus)
ticks = p.wait(r"memtided running", WAIT) and wait_for(
    lambda: len(p.findall(r"\bplan: ")) >= 3 or not p.alive(), WAIT)
tap(ticks and p.alive(), "no system bus and no --bus: memtided keeps running (3 ticks planned)",
    p.text())
eq(p.stop(), 0, "... and exits 0 on SIGTERM")
out = p.text()
tap("running without the D-Bus API" in out and "memtided running" in out,
    "... having warned that memtidectl cannot reach it", out)

code, out = run(lone.args[1:] + ["--bus", "system"], env=nobus)
tap(code == 1 and "cannot connect to the system bus" in out,
    "no system bus with --bus system: exit 1", (code, out))
p = start(lone.args[1:] + ["--bus", "none"], nobus)
running = p.wait(r"memtided running", WAIT)
eq(p.stop(), 0, "--bus none: runs, exits 0 on SIGTERM")
out = p.text()
tap(running and "D-Bus" not in out, "--bus none: no D-Bus, no warning", out)

bus2 = Bus()
victim = Memtided(bus2)
bus2.stop()
ok = wait_for(lambda: not victim.alive(), WAIT)
eq(victim.proc.returncode if ok else None, 1, "the bus went away: memtided exits 1")
tap("Lost the D-Bus connection" in victim.log(), "... and says why", victim.log()[-2000:])

eq(first.stop(), 0, "SIGTERM: exit 0")
finish()
