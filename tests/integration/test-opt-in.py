#!/usr/bin/python3
"""integration (TAP): an opt-in domain (Xen's dom0; the fake driver's
opt-in= key) on the real memtided: observed only while no [vm NAME]
group names it written out ([vm *] matching it does not count), and the
log and Explain say why; a reload that adds the group makes memtided
manage it, never below 512 MiB (the floor) even with min = 0; a reload
that removes the group makes it observed again."""

import os
import re
import signal

import mtlib
from fakelib import fake_memtided
from mtlib import MiB, eq, finish, tap, wait_for

mtlib.binaries()
bus = mtlib.Bus()
daemon = fake_memtided(bus, vms="[vm *]\nmin = 0\n")
fake = daemon.fake
c = mtlib.Client(bus)
named = os.path.join(daemon.policies_dir, "50-dom0.conf")
OBSERVED = "dom0 is observed only: no [vm Domain-0] group names it"
MANAGED = "dom0 is managed: [vm Domain-0] names it; never below 512 MiB"


def explain():
    return c.m("Explain", "Domain-0", sig="s", reply="(s)")[0]


def reload():
    mark = daemon.log().count("Policy reloaded")
    daemon.proc.send_signal(signal.SIGHUP)
    return wait_for(lambda: daemon.log().count("Policy reloaded") > mark, mtlib.WAIT)


fake.ok("add Domain-0 size=1G used=200M opt-in=dom0")
fake.ok("add web size=1G used=200M")
tap(daemon.wait_log(f"VM Domain-0: managing (") and OBSERVED in daemon.log(),
    "the managing line of an opt-in domain says it is observed only, and why", daemon.log())
tap(wait_for(lambda: fake.show("web")["balloon"] < 1024 * MiB, 15),
    "an ordinary domain beside it is shrunk", fake.show("web"))
tap(daemon.wait_ticks(5) and fake.show("Domain-0")["calls"] == 0,
    "no resize call for the opt-in domain while [vm *] alone matches it", fake.show("Domain-0"))
text = explain()
tap(f"Opt-in: {OBSERVED}" in text, "Explain says it is observed only and why", text)

with open(named, "w") as f:
    f.write("[vm Domain-0]\nmin = 0\n")
tap(reload(), "SIGHUP with a [vm Domain-0] group: reloaded")
tap(daemon.wait_log(f"VM Domain-0: {MANAGED} (the policy's min was lower)"),
    "the log says it is managed now, and that the floor raised its min", daemon.log()[-3000:])
tap(wait_for(lambda: fake.show("Domain-0")["balloon"] == 512 * MiB, 30),
    "it is shrunk toward its need (200M used), to the 512 MiB floor", fake.show("Domain-0"))
tap(daemon.wait_ticks(5) and fake.show("Domain-0")["balloon"] == 512 * MiB,
    "... and stays there: never below the floor", fake.show("Domain-0"))
tap(f"Opt-in: {MANAGED}" in explain(), "Explain says it is managed and names the floor")
shrinks = re.findall(r"resize: Domain-0: shrink .*-> (\d+) MiB", daemon.log())
tap(shrinks and all(int(s) >= 512 for s in shrinks),
    "every shrink logged goes to 512 MiB or more", shrinks)

os.unlink(named)
tap(reload(), "SIGHUP without the group: reloaded")
tap(daemon.wait_log(f"VM Domain-0: {OBSERVED}"), "the log says it is observed only again")
calls = fake.show("Domain-0")["calls"]
fake.ok("set Domain-0 used=900M")
tap(daemon.wait_ticks(5) and fake.show("Domain-0")["calls"] == calls,
    "observed again: no resize call, even when its guest needs more", fake.show("Domain-0"))
eq(daemon.stop(), 0, "memtided exits 0")
finish()
