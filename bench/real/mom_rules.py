"""A re-implementation of oVirt MOM's default balloon policy (the
"Auto-Balloon" rules MOM ships as doc/balloon.rules, with the intervals
of doc/mom-balloon.conf), as pure functions for bench/real/density-bench.

This is NOT oVirt MOM and shares no code with it: it was written from the
semantics of MOM's rule file, collectors and monitors, read in the
oVirt/mom repository (doc/balloon.rules, doc/mom-balloon.conf,
mom/Collectors/HostMemory.py, mom/Collectors/GuestBalloon.py,
mom/HypervisorInterfaces/libvirtInterface.py, mom/Entity.py), the same
reading bench/sim/baselines/mom.c is built on. What MOM does, as done
here:

- Host free share = (MemFree + Buffers + Cached) / MemTotal, the mean of
  the last 10 host samples (HostMemory's mem_free over mem_available;
  StatAvg over sample-history-length 10, one sample per 5 s
  host-monitor-interval).
- Per guest, from libvirt: balloon_cur = virDomainGetInfo's current
  memory (the newest sample), balloon_max = its maximum, balloon_min =
  <memtune><min_guarantee>, 0 when the domain has none; mem_unused =
  the balloon statistic "unused" (the guest's MemFree: page cache counts
  as used). used = mean(balloon_cur) - mean(mem_unused) over the last 10
  guest samples.
- Every 10 s (policy-engine-interval): if host free < 20% (pressure
  threshold), every guest shrinks: its floor is max(balloon_min, used +
  f * balloon_cur) with f = 20% * host free / 20% (the guest's free
  share scales down with the host's), or, at 5% host free or less
  ("critical"), f = host free - 5% (negative: the guest is made to
  swap); its target is balloon_cur less 5%, but not below that floor,
  and is set only if it is not above balloon_cur. Otherwise every guest
  below its maximum grows: target balloon_cur plus 5%, at least used +
  20% of balloon_cur, at most balloon_max.
- A target is set only if it differs from balloon_cur by more than
  0.25% of balloon_cur.

Where issue 17's summary of MOM ("shrink by at most 5% per tick toward
used + 20% free") differs from the rule file, this follows the rule
file: the free share while shrinking is scaled by the host's free share
and goes negative at critical pressure, as above.

Where this differs from running MOM itself:
- one loop in the benchmark's process takes the host and guest samples
  every 5 s and runs the rules every 10 s, where MOM runs a host monitor,
  a guest monitor per VM and the policy engine as threads on their own
  timers (so MOM's samples and runs drift against each other by up to an
  interval);
- only the benchmark's own guests are managed (MOM manages every domain
  on the host); a guest enters the rules once it has one complete sample,
  as MOM's guest monitor becomes ready with its first complete
  collection;
- the balloon is the only control: no KSM or CPU tuning rules (MOM's
  default policy directory also has KSM and CPU tune rules; the
  benchmark's guests are alike, so KSM could merge their kernels for every
  policy alike, and is left off for all).
"""

import dataclasses

# doc/balloon.rules' constants.
PRESSURE_THRESHOLD = 0.20
PRESSURE_CRITICAL = 0.05
MIN_GUEST_FREE_PERCENT = 0.20
MAX_BALLOON_CHANGE_PERCENT = 0.05
MIN_BALLOON_CHANGE_PERCENT = 0.0025
# doc/mom-balloon.conf.
POLICY_INTERVAL_S = 10.0
MONITOR_INTERVAL_S = 5.0
HISTORY = 10


def host_free_kib(meminfo):
    """MOM's host mem_free: MemFree + Buffers + Cached (KiB), from a
    {field: KiB} dict of /proc/meminfo."""
    return meminfo["MemFree"] + meminfo["Buffers"] + meminfo["Cached"]


def parse_meminfo(text):
    """{field: KiB} from the text of /proc/meminfo."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            try:
                out[key.strip()] = int(parts[0])
            except ValueError:
                pass
    return out


class StatAvg:
    """The mean of the last HISTORY samples, as MOM's StatAvg over its
    monitor's history."""

    def __init__(self, history=HISTORY):
        self.history = history
        self.values = []

    def push(self, v):
        self.values.append(float(v))
        del self.values[:-self.history]

    def mean(self):
        return sum(self.values) / len(self.values) if self.values else 0.0

    def __len__(self):
        return len(self.values)


def change_big_enough(cur, new):
    return abs(new - cur) > MIN_BALLOON_CHANGE_PERCENT * cur


def guest_free_percent(host_free_percent):
    """The free share a shrinking guest keeps, from the host's free
    share (may be negative at critical pressure)."""
    if host_free_percent <= PRESSURE_CRITICAL:
        return -0.05 + host_free_percent
    return MIN_GUEST_FREE_PERCENT * (host_free_percent / PRESSURE_THRESHOLD)


def shrink_target(host_free_percent, cur, used, balloon_min=0.0):
    """The balloon target (KiB) a shrinking policy run sets, or None."""
    floor = max(balloon_min, used + guest_free_percent(host_free_percent) * cur)
    size = cur * (1 - MAX_BALLOON_CHANGE_PERCENT)
    if size < floor:
        size = floor
    if size <= cur and change_big_enough(cur, size):
        return int(size)
    return None


def grow_target(cur, used, balloon_max, balloon_min=0.0):
    """The balloon target (KiB) a growing policy run sets, or None."""
    if cur >= balloon_max:
        return None
    floor = max(balloon_min, used + MIN_GUEST_FREE_PERCENT * cur)
    size = cur * (1 + MAX_BALLOON_CHANGE_PERCENT)
    if size < floor:
        size = floor
    if size > balloon_max:
        size = balloon_max
    if change_big_enough(cur, size):
        return int(size)
    return None


@dataclasses.dataclass
class GuestSample:
    """One guest monitor sample (KiB)."""
    balloon_cur: int
    balloon_max: int
    mem_unused: int
    balloon_min: int = 0


class MomRules:
    """The rules' state: the host's and each guest's last HISTORY
    samples. Feed samples with host_sample() / guest_sample() every
    MONITOR_INTERVAL_S and call policy() every POLICY_INTERVAL_S."""

    def __init__(self):
        self.host_free = StatAvg()
        self.host_total = None
        self.guests = {}   # name -> {"cur": StatAvg, "unused": StatAvg, "last": GuestSample}

    def host_sample(self, meminfo):
        self.host_free.push(host_free_kib(meminfo))
        self.host_total = meminfo["MemTotal"]

    def guest_sample(self, name, s):
        g = self.guests.setdefault(name, {"cur": StatAvg(), "unused": StatAvg(), "last": None})
        g["cur"].push(s.balloon_cur)
        g["unused"].push(s.mem_unused)
        g["last"] = s

    def forget(self, name):
        self.guests.pop(name, None)

    def host_free_percent(self):
        if not self.host_total or not len(self.host_free):
            return None
        return self.host_free.mean() / self.host_total

    def policy(self):
        """One policy run: (host free share, {name: (target KiB, why)})
        for the guests whose balloon target it sets."""
        hfp = self.host_free_percent()
        if hfp is None:
            return None, {}
        out = {}
        for name, g in self.guests.items():
            s = g["last"]
            if s is None:
                continue
            used = g["cur"].mean() - g["unused"].mean()
            if hfp < PRESSURE_THRESHOLD:
                t = shrink_target(hfp, s.balloon_cur, used, s.balloon_min)
                why = (f"host free {hfp:.1%} < {PRESSURE_THRESHOLD:.0%}: shrink "
                       f"(used {used / 1024:.0f} MiB, guest free share "
                       f"{guest_free_percent(hfp):+.1%})")
            else:
                t = grow_target(s.balloon_cur, used, s.balloon_max, s.balloon_min)
                why = (f"host free {hfp:.1%} >= {PRESSURE_THRESHOLD:.0%}: grow "
                       f"(used {used / 1024:.0f} MiB)")
            if t is not None:
                out[name] = (t, why)
        return hfp, out
