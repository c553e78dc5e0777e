"""When density-bench's service level breaks, and the count it held: pure
functions over one sample of the host and the guests, so the rules are
tested without guests (test-density-parts.py)."""

import dataclasses

# MemAvailable below the floor this many samples (seconds) in a row: the
# host is out of memory. One low second can be another user's process on
# this shared host before the hold gives way to it (hostmem.py).
LOW_SAMPLES = 3


@dataclasses.dataclass
class VmState:
    """One guest in one sample."""
    name: str
    active: bool = True
    oom_kills: int = 0
    stall: float | None = None      # percent of stall-window (memtided's measure); None: unknown
    budget: float | None = None     # percent; None or 0: no budget


@dataclasses.dataclass
class HostState:
    avail_kib: int
    floor_kib: int                  # below this MemAvailable the host is out of memory
    low_samples: int = LOW_SAMPLES  # samples in a row MemAvailable was below floor_kib
    oom_kills: int = 0              # host OOM kills (vmstat oom_kill) since the run began
    swapped_pages: int = 0          # pswpout since the run began
    hold_alive: bool = True         # the held allocation's process still runs


def breaks(host, vms):
    """[(what broke, the VM's name or None for the host)] in this sample:
    empty while the service level holds."""
    out = []
    if host.oom_kills > 0:
        out.append((f"the host's OOM killer fired ({host.oom_kills} kill(s))", None))
    if not host.hold_alive:
        out.append(("the host hold's process died (the host's OOM killer takes it first)", None))
    if host.swapped_pages > 0:
        out.append((f"the host swapped ({host.swapped_pages} pages out)", None))
    if host.avail_kib < host.floor_kib and host.low_samples >= LOW_SAMPLES:
        out.append((f"the host ran out of memory (MemAvailable {host.avail_kib / 1024:.0f} MiB "
                    f"< {host.floor_kib / 1024:.0f} MiB for {host.low_samples} s)", None))
    for v in vms:
        if not v.active:
            out.append((f"{v.name} stopped", v.name))
        if v.oom_kills > 0:
            out.append((f"{v.name}: {v.oom_kills} OOM kill(s) in the guest", v.name))
        if v.budget and v.stall is not None and v.stall > v.budget:
            out.append((f"{v.name} stalled {v.stall:.2f}% of its stall window, over its "
                        f"budget of {v.budget:g}%", v.name))
    return out


def held(started, broke):
    """The count held: the guests started, less the one whose start (or
    whose time running) broke the service level."""
    return max(0, started - 1) if broke else started
