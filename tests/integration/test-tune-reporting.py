#!/usr/bin/python3
"""integration (TAP): memtided tunes a guest's page reporting through its
agent (docs/planner.md, "Page reporting tunables"): the real memtided on
the fake driver, two VMs whose agent channels are served by a scripted
agent (fakeagent.py) reporting the patched kernel's tunables.  With
page-reporting = fast-when-idle the idle guest gets the fast values, one
request, logged with its reason; once it is under pressure, its own
values back; a refusal is logged and backed off.  The VM with the
default (keep) is never asked."""

import os

import mtlib
from fakeagent import FakeAgent
from fakelib import fake_memtided
from mtlib import Bus, finish, tap, wait_for

mtlib.binaries()
bus = Bus()
workdir = mtlib.tmpdir()
fast_path = os.path.join(workdir, "fast.agent")
keep_path = os.path.join(workdir, "keep.agent")
fast = FakeAgent(fast_path)
keep = FakeAgent(keep_path)
mtlib.mttap.at_exit(fast.stop)
mtlib.mttap.at_exit(keep.stop)

# Sizes fixed (min = max): only the reporting tunables are at stake.
daemon = fake_memtided(bus, vms="[vm *]\nmin = 100%\n"
                       "[vm fast]\npage-reporting = fast-when-idle\n")
ctl = daemon.fake
ctl.ok(f"add fast size=1G used=300M agent={fast_path}")
ctl.ok(f"add keep size=1G used=300M agent={keep_path}")


def tunes(agent):
    return agent.requests_of("tune_reporting")


# ---- idle: the fast values, once ---------------------------------------------
first = wait_for(lambda: tunes(fast), 60)
tap(first, "the idle guest is asked for the fast page reporting values", fast.requests)
if first:
    r = first[0]
    tap(r.get("v") == 1 and r.get("delay_ms") == 100 and r.get("budget_divisor") == 1,
        "... delay 100 ms and budget divisor 1 (the defaults), in one request", r)
tap(daemon.wait_log("fast: tune page reporting: delay 2000 -> 100 ms, budget divisor 16 -> 1: "
                    "idle for "),
    "the request is logged in one line with its reason (idle for N s)")
tap(daemon.wait_log("fast: page reporting tuned: the guest reads back delay 100 ms, "
                    "budget divisor 1"),
    "the guest's answer is logged with what it read back")
# Once the guest reports the new values nothing more is asked: a few
# more ticks with the fast values reported add no request.
tap(wait_for(lambda: fast.delay_ms == 100, 10), "the fake guest now has them")
daemon.wait_ticks(10)
tap(len(tunes(fast)) == 1, "nothing more is asked while the guest has what it should",
    tunes(fast))

# ---- pressure: its own values back --------------------------------------------
fast.set(psi=5.0)
back = wait_for(lambda: len(tunes(fast)) >= 2, 60)
tap(back, "a guest under pressure is asked for its own values back", tunes(fast))
if back:
    r = tunes(fast)[1]
    tap(r.get("delay_ms") == 2000 and r.get("budget_divisor") == 16,
        "... the 2000 ms and 16 it had before", r)
tap(daemon.wait_log("fast: tune page reporting: delay 100 -> 2000 ms, budget divisor 1 -> 16: "
                    "no longer idle"),
    "logged with its reason (no longer idle)")

# ---- a refusal: logged, backed off ------------------------------------------------
fast.set(psi=0.0, tune_answer="failed")
refused = wait_for(lambda: len(tunes(fast)) >= 3, 60)
tap(refused, "idle again: asked again", tunes(fast))
tap(daemon.wait_log("fast: the agent did not tune page reporting: failed (fake agent: failed); "
                    "next try in 30 s"),
    "a refusal is logged with the agent's error and the back-off")

# ---- keep: never --------------------------------------------------------------------
tap(keep.connections >= 1 and not tunes(keep),
    "the VM with page-reporting = keep (the default), connected all along, was never asked",
    (keep.connections, keep.requests))
tap(daemon.alive(), "memtided is still running")
finish()
