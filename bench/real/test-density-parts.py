#!/usr/bin/python3
"""Unit test of density-bench's parts that need no guests:
- mom_rules.py, the benchmark's re-implementation of oVirt MOM's default
  balloon rules: the shrink and grow targets at normal and critical host
  pressure, the 5% step, the floors, the minimum change, the averaging
  over the last 10 samples, and which side of the 20% threshold a policy
  run takes;
- service_level.py: what breaks the service level, and the count held;
- hostmem.py: a small held allocation is resident, locked, first in line
  for the OOM killer, and ends when asked."""

import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))

import hostmem  # noqa: E402
import mom_rules as mr  # noqa: E402
import service_level as sl  # noqa: E402
import mttap  # noqa: E402
from mttap import eq, tap  # noqa: E402

MiB = 1024  # KiB


def close(got, want, desc, tol=1):
    return tap(got is not None and abs(got - want) <= tol, desc, f"got {got!r}, want {want!r}")


# -- host free share: MemFree + Buffers + Cached over MemTotal
mi = mr.parse_meminfo("MemTotal:       24000000 kB\nMemFree:         1000000 kB\n"
                      "MemAvailable:    3000000 kB\nBuffers:           50000 kB\n"
                      "Cached:           950000 kB\nHugePages_Total:       0\n")
eq(mr.host_free_kib(mi), 2000000, "host free = MemFree + Buffers + Cached (MemAvailable not used)")
eq(mi["HugePages_Total"], 0, "meminfo lines without a unit parse too")

# -- shrinking, normal pressure: host free 15% -> the guest keeps 15% free
cur, used = 1536 * MiB, 400 * MiB
close(mr.shrink_target(0.15, cur, used), cur * 0.95,
      "shrink: 5% of the current size per policy run while above the floor")
eq(mr.shrink_target(0.15, 700 * MiB, 600 * MiB), None,
   "shrink: a floor (used + 15% of 700 MiB = 705 MiB) above the current size sets nothing")
close(mr.shrink_target(0.15, 800 * MiB, 650 * MiB), 650 * MiB + 0.15 * 800 * MiB,
      "shrink: the step stops at used + the scaled free share (770 MiB, not 760)")
close(mr.shrink_target(0.10, 1000 * MiB, 300 * MiB), 950 * MiB,
      "shrink at 10% host free: still 5% per run")
close(mr.shrink_target(0.10, 400 * MiB, 350 * MiB), 350 * MiB + 0.10 * 400 * MiB,
      "shrink at 10% host free: floor used + 10% (the 20% share scaled by 10%/20%)")
close(mr.shrink_target(0.15, 1000 * MiB, 300 * MiB, balloon_min=990 * MiB), 990 * MiB,
      "shrink: never below balloon_min (memtune min_guarantee)")

# -- critical pressure (<= 5% host free): the floor goes below used
close(mr.guest_free_percent(0.04), -0.01, "critical: guest free share = host free - 5%", tol=1e-9)
close(mr.guest_free_percent(0.05), 0.0, "critical starts at 5% inclusive", tol=1e-9)
close(mr.shrink_target(0.03, 500 * MiB, 495 * MiB), 495 * MiB - 0.02 * 500 * MiB,
      "critical: the target goes below what the guest uses (it is made to swap)")

# -- minimum change: 0.25% of the current size
eq(mr.shrink_target(0.15, 1000 * MiB, 1000 * MiB - 0.15 * 1000 * MiB - 2 * MiB), None,
   "shrink: a change of 2 MiB of 1000 MiB (0.2%) is not worth a balloon operation")

# -- growing (host free >= 20%)
close(mr.grow_target(1000 * MiB, 300 * MiB, 1536 * MiB), 1050 * MiB, "grow: 5% per policy run")
close(mr.grow_target(1000 * MiB, 900 * MiB, 1536 * MiB), 900 * MiB + 200 * MiB,
      "grow: at least to used + 20% of the current size")
close(mr.grow_target(1500 * MiB, 300 * MiB, 1536 * MiB), 1536 * MiB, "grow: never above the maximum")
eq(mr.grow_target(1536 * MiB, 300 * MiB, 1536 * MiB), None, "grow: a guest at its maximum is left alone")

# -- StatAvg: the last 10 samples
a = mr.StatAvg()
for v in range(1, 21):
    a.push(v)
eq((len(a), a.mean()), (10, 15.5), "StatAvg averages the last 10 samples only")

# -- a policy run: shrink or grow by the averaged host free share
rules = mr.MomRules()
eq(rules.policy(), (None, {}), "no policy run before the first host sample")
total = 10000 * MiB


def host(free_kib):
    return {"MemTotal": total, "MemFree": free_kib, "Buffers": 0, "Cached": 0}


for _ in range(5):
    rules.host_sample(host(1000 * MiB))    # 10%
for _ in range(5):
    rules.host_sample(host(3000 * MiB))    # 30%
rules.guest_sample("g", mr.GuestSample(balloon_cur=1000 * MiB, balloon_max=1536 * MiB,
                                       mem_unused=700 * MiB))
hfp, out = rules.policy()
close(hfp, 0.20, "host free is the mean of the last 10 samples (10% and 30% -> 20%)", tol=1e-9)
close(out["g"][0], 1050 * MiB, "at exactly 20% the guests grow (the threshold is strict)")
rules.host_sample(host(0))                 # mean now 17%
hfp, out = rules.policy()
close(out["g"][0], 950 * MiB, "below 20% the guests shrink")
for _ in range(10):
    rules.guest_sample("g", mr.GuestSample(balloon_cur=1000 * MiB, balloon_max=1536 * MiB,
                                           mem_unused=100 * MiB))
hfp, out = rules.policy()
eq(out, {}, "a guest using 900 of 1000 MiB is not shrunk at 17% host free (floor 1070 MiB)")
rules.forget("g")
eq(rules.policy()[1], {}, "a forgotten guest gets no target")

# -- service level
ok_host = sl.HostState(avail_kib=2 * 1024 * MiB, floor_kib=512 * MiB)
eq(sl.breaks(ok_host, [sl.VmState("a", stall=0.99, budget=1.0), sl.VmState("b", stall=None, budget=1.0),
                       sl.VmState("c", stall=5.0, budget=0.0)]), [],
   "within budget, unknown stall and no budget (0%) hold the service level")
got = sl.breaks(ok_host, [sl.VmState("a", stall=1.01, budget=1.0)])
eq([vm for _, vm in got], ["a"], "a VM over its stall budget breaks it, naming the VM")
got = sl.breaks(ok_host, [sl.VmState("a", oom_kills=1), sl.VmState("b", active=False)])
eq([vm for _, vm in got], ["a", "b"], "a guest OOM kill and a stopped guest break it")
for desc, host in (("the host's OOM killer", sl.HostState(avail_kib=2 * 1024 * MiB, floor_kib=0, oom_kills=1)),
                   ("the hold's process gone", sl.HostState(avail_kib=2 * 1024 * MiB, floor_kib=0,
                                                            hold_alive=False)),
                   ("host swap", sl.HostState(avail_kib=2 * 1024 * MiB, floor_kib=0, swapped_pages=1)),
                   ("host MemAvailable below the floor", sl.HostState(avail_kib=511 * MiB, floor_kib=512 * MiB))):
    got = sl.breaks(host, [])
    tap(len(got) == 1 and got[0][1] is None, f"{desc} breaks it (the host's fault)", repr(got))
eq(sl.breaks(sl.HostState(avail_kib=100 * MiB, floor_kib=512 * MiB, low_samples=sl.LOW_SAMPLES - 1), []),
   [], "MemAvailable below the floor for less than LOW_SAMPLES seconds does not break it")
eq((sl.held(5, True), sl.held(5, False), sl.held(0, True)), (4, 5, 0),
   "held: the guests started, less the one that broke the service level")

# -- the held allocation
eq(hostmem.hold_target(10000 * MiB, 3000 * MiB, 4000 * MiB, 1000 * MiB), 10000 * MiB,
   "hold target: MemAvailable + the guests' RSS = what is left them: no change")
eq(hostmem.hold_target(10000 * MiB, 2000 * MiB, 4000 * MiB, 1000 * MiB), 9000 * MiB,
   "hold target: another process took 1 GiB: the hold gives it back")
eq(hostmem.hold_target(10000 * MiB, 1000 * MiB, 4000 * MiB, 3000 * MiB), 10000 * MiB,
   "hold target: the guests took 2 GiB: the hold stays")
eq(hostmem.hold_target(100 * MiB, 0, 4000 * MiB, 0), 0, "hold target: never negative")
before = mr.parse_meminfo(open("/proc/meminfo").read())["MemAvailable"]
if before < 1024 * MiB:
    mttap.bail(f"the host has {before // MiB} MiB available: too little to test a 64 MiB hold")
hold = hostmem.HostHold(64 * MiB).start(timeout=60)
status = open(f"/proc/{hold.proc.pid}/status").read()
rss = int(status.split("VmRSS:")[1].split()[0])
tap(rss >= 64 * MiB, "the hold's pages are resident (touched)", f"VmRSS {rss} KiB")
if os.geteuid() == 0:
    tap(hold.locked and int(status.split("VmLck:")[1].split()[0]) >= 64 * MiB,
        "as root, the hold is locked (mlockall)", status)
else:
    mttap.note("not root: the hold may not be locked; not checked")
eq(open(f"/proc/{hold.proc.pid}/oom_score_adj").read().strip(), "1000",
   "the hold is the host OOM killer's first choice")
tap(hold.resize(192 * MiB) and hold.kib == 192 * MiB, "the hold grows on request", f"{hold.kib} KiB")
status = open(f"/proc/{hold.proc.pid}/status").read()
lck = int(status.split("VmLck:")[1].split()[0])
if os.geteuid() == 0:
    tap(lck >= 192 * MiB, "memory mapped later is locked too (mlockall MCL_FUTURE)", f"VmLck {lck} KiB")
tap(hold.resize(0) and hold.kib == 0, "the hold shrinks on request, to nothing", f"{hold.kib} KiB")
tap(hold.alive(), "the hold runs until asked to stop")
eq(hold.stop(), 0, "the hold ends when its stdin closes")
tap(not hold.alive(), "and is gone")

mttap.finish()
