#!/usr/bin/python3
"""e2e (TAP): the testbed boots real guests under libvirt, and what the
host changes (balloon, virtio-mem) is what the guest sees.

Boots two TCG guests: g0 with 512 MiB boot memory and a 1 GiB virtio-mem
device (2 MiB blocks, 256 MiB plugged), running a small workload; g1
balloon-only. Then:
  - both have the default 1 GiB swap disk on (swapon in the guest, the
    host side with cache='none'),
  - libvirt's balloon stats are there,
  - a balloon change (setMemoryFlags) moves g1's MemTotal by the same amount,
  - virtio-mem requested 256 -> 512 -> 0 MiB (updateDeviceFlags) moves
    g0's MemTotal and the live XML's <current> accordingly,
  - after teardown no domain, QEMU process, socket or file of the run is
    left.
Needs root, libvirt + QEMU, the Debian cloud kernel and busybox-static;
a missing prerequisite fails the test with what to install. Environment:
MEMTIDE_WORKLOAD (required), MEMTIDE_AGENT (optional).
"""

import os
import re
import time

import e2elib
from e2elib import bail, finish, tap
from mttap import T_START

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = os.environ.get("MEMTIDE_AGENT") or None
if AGENT and not os.path.isfile(AGENT):
    bail(f"MEMTIDE_AGENT={AGENT!r} does not exist")

# MemTotal moves by exactly the balloon / plugged delta on this kernel;
# the slack only absorbs a page or two of accounting noise.
SLACK_KIB = 2 * MiB
BOOT = 512 * MiB


def near(seen, want):
    return abs(seen - want) <= SLACK_KIB


def mib(kib):
    return f"{kib / MiB:.1f} MiB"


def proc_cmdlines_with(text):
    """PIDs whose command line mentions text (QEMU gets -name guest=NAME)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def read_agent_line(path, timeout):
    """First line the guest agent sends on the channel socket, or (None,
    why)."""
    import socket
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            # The agent starts each connection with an empty line (ending
            # any partial line from before): skip blank lines.
            while not buf.strip(b"\n") or b"\n" not in buf.lstrip(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, f"no line within {timeout}s (got {buf[:200]!r})"
                s.settimeout(left)
                chunk = s.recv(4096)
                if not chunk:
                    return None, "socket closed"
                buf += chunk
    except OSError as e:
        return None, f"{path}: {e}"
    return buf.lstrip(b"\n").split(b"\n", 1)[0].decode("utf-8", "replace"), None


def main():
    specs = [GuestSpec(memory_kib=BOOT, vmem_size_kib=1 * GiB,
                       vmem_block_kib=2 * MiB, vmem_requested_kib=256 * MiB,
                       workload="anon:64M,cache:32M"),
             GuestSpec(memory_kib=BOOT)]
    print("TAP version 13")
    tb = Testbed(workload=WORKLOAD, agent=AGENT)
    prefix = tb.prefix
    print(f"# run {prefix}; workload {WORKLOAD}; agent {AGENT or 'none'}")
    leftovers = {}
    with tb:
        # A bad schedule is refused on the host before anything boots.
        try:
            tb.up([GuestSpec(workload="ramp:0M-400M,hold:30s")])
            tap(False, "bad workload schedule is refused before boot")
        except testbed.TestbedError as e:
            tap("step 1 'ramp:0M-400M'" in str(e) and not tb.guests,
                "bad workload schedule is refused before boot, naming the step",
                f"error: {e}")

        t0 = time.monotonic()
        g0, g1 = tb.up(specs, timeout=150)
        tap(True, f"2 guests boot to the ready marker in {time.monotonic() - t0:.1f}s",
            "\n".join(f"{g.name}: define->ready {g.boot_seconds:.1f}s; "
                      f"{g.ready_line}" for g in (g0, g1)))
        print(f"# BOOT-TIME g0={g0.boot_seconds:.2f}s g1={g1.boot_seconds:.2f}s")
        tap("vmem=1" in g0.ready_line and "balloon=1" in g0.ready_line
            and "agent-port=1" in g0.ready_line and "vmem=0" in g1.ready_line
            and "balloon=1" in g1.ready_line,
            "guests see their balloon, virtio-mem and agent port devices",
            f"g0: {g0.ready_line}\ng1: {g1.ready_line}")
        # Default swap: 1 GiB minus the 4 KiB mkswap header, on a disk QEMU
        # opens with O_DIRECT (swapped pages must not land in host page cache).
        swap_kib = [int(m.group(1)) if m else 0 for m in
                    (re.search(r" swap=(\d+)", g.ready_line) for g in (g0, g1))]
        caches = []
        for g in (g0, g1):
            for disk in g.live_xml().iter("disk"):
                if disk.findtext("serial") == testbed.SWAP_DISK_SERIAL:
                    caches.append(disk.find("driver").get("cache"))
        tap(all(GiB - 8 <= k <= GiB for k in swap_kib) and caches == ["none", "none"],
            "guests have their 1 GiB swap on, the swap disk with cache='none'",
            f"SwapTotal kB {swap_kib}, swap disk cache modes {caches}")

        # Run files, for the leftover checks after teardown.
        leftovers = {
            "rundir": tb.rundir,
            "consoles": [g.console_path for g in (g0, g1)],
            "sockets": [g.channel_path() for g in (g0, g1)],
            "qemu_pids": [g.qemu_pid() for g in (g0, g1)],
        }
        tap(all(s and os.path.exists(s) for s in leftovers["sockets"])
            and all(leftovers["qemu_pids"]),
            "agent channel sockets exist and QEMU runs",
            f"sockets {leftovers['sockets']}, qemu pids {leftovers['qemu_pids']}")

        # Balloon stats arrive every stats period (2 s) once the driver runs.
        deadline = time.monotonic() + 30
        st = {}
        while time.monotonic() < deadline:
            st = g1.balloon_stats()
            if "available" in st and "unused" in st:
                break
            time.sleep(0.5)
        tap(st.get("actual") == BOOT and "available" in st and "usable" in st
            and "rss" in st,
            "libvirt balloon stats: actual = boot memory, guest stats present",
            f"g1 memoryStats: {st}")

        # --- balloon on g1
        base1 = g1.wait_meminfo(lambda m: True, 30, since=0).total_kib
        target = BOOT - 128 * MiB
        t = time.monotonic()
        g1.set_balloon(target)
        try:
            m = g1.wait_meminfo(lambda m: near(m.total_kib, base1 - 128 * MiB),
                                60, what="MemTotal - 128 MiB")
            ok = True
        except testbed.TestbedError as e:
            m, ok = g1.meminfo(), False
            print(f"# {e}")
        actual = g1.balloon_stats().get("actual")
        tap(ok and actual == target,
            f"balloon 512 -> 384 MiB: g1 MemTotal drops by 128 MiB "
            f"({time.monotonic() - t:.1f}s)",
            f"expected MemTotal {mib(base1 - 128 * MiB)} (was {mib(base1)}), "
            f"seen {mib(m.total_kib) if m else None}; balloon actual "
            f"{actual} KiB, want {target}; live currentMemory "
            f"{g1.current_memory_kib()} KiB")
        t = time.monotonic()
        g1.set_balloon(BOOT)
        try:
            m = g1.wait_meminfo(lambda m: near(m.total_kib, base1), 60,
                                what="MemTotal back to boot")
            ok = True
        except testbed.TestbedError as e:
            m, ok = g1.meminfo(), False
            print(f"# {e}")
        tap(ok, f"balloon back to 512 MiB: g1 MemTotal returns "
            f"({time.monotonic() - t:.1f}s)",
            f"expected {mib(base1)}, seen {mib(m.total_kib) if m else None}")

        # --- virtio-mem on g0 (256 MiB plugged at boot)
        v = g0.wait_vmem_current(256 * MiB, 60)
        m0 = g0.wait_meminfo(lambda m: True, 30, since=0)
        tap(v.size_kib == GiB and v.block_kib == 2 * MiB
            and v.requested_kib == 256 * MiB,
            "g0 live XML: virtio-mem size 1 GiB, block 2 MiB, 256 MiB plugged",
            f"{v}; MemTotal {mib(m0.total_kib)}; currentMemory "
            f"{g0.current_memory_kib()} KiB")
        base0 = m0.total_kib - 256 * MiB  # MemTotal without virtio-mem
        for want in (512 * MiB, 0):
            t = time.monotonic()
            g0.set_vmem_requested(want)
            err = None
            try:
                v = g0.wait_vmem_current(want, 90)
                m = g0.wait_meminfo(lambda m: near(m.total_kib, base0 + want),
                                    60, what=f"MemTotal = base + {mib(want)}")
            except testbed.TestbedError as e:
                err, v, m = str(e), g0.vmem(), g0.meminfo()
            tap(err is None,
                f"virtio-mem requested -> {mib(want)}: <current> follows and "
                f"g0 MemTotal = {mib(base0)} + {mib(want)} "
                f"({time.monotonic() - t:.1f}s)",
                f"seen {v}; MemTotal {mib(m.total_kib) if m else None}"
                + (f"\n{err}" if err else ""))

        # --- workload runs in g0
        try:
            g0.wait_console(r"^memtide-workload: t=\S+ anon=64M cache=3[12]M "
                            r"step=done", 60)
            ok, detail = True, None
        except testbed.TestbedError as e:
            ok, detail = False, str(e)
        tap(ok, "g0 workload holds anon=64M and 32M of page cache", detail)
        if AGENT:
            # The channel is wired end to end: a line from the guest's agent
            # arrives on the host socket libvirt created.
            line, err = read_agent_line(leftovers["sockets"][1], 20)
            tap(line is not None and line.lstrip().startswith("{"),
                "agent channel: a report from g1's memtide-agent arrives on "
                "the host socket",
                f"first line: {line[:300]!r}" if line else
                f"{err}; g1 console tail:\n{g1.console_tail(10)}")
        else:
            print("# MEMTIDE_AGENT unset: no agent in the guests, agent "
                  "channel not exercised")

    # --- after teardown: nothing of the run is left
    conn = testbed.connect()
    doms = [d.name() for d in conn.listAllDomains(0)
            if d.name().startswith(prefix)]
    tap(not doms, "no domain of the run is left", f"left: {doms}" if doms else None)
    pids = proc_cmdlines_with(f"guest={prefix}")
    alive = [p for p in leftovers.get("qemu_pids", []) if p and os.path.exists(f"/proc/{p}")]
    tap(not pids and not alive, "no QEMU process of the run is left",
        f"left: {pids} {alive}" if pids or alive else None)
    left = [p for p in leftovers.get("sockets", []) + leftovers.get("consoles", [])
            + [leftovers.get("rundir")] if p and os.path.exists(p)]
    tap(not left, "no socket, console log or run directory is left",
        f"left: {left}" if left else None)
    print(f"# E2E-WALL-TIME {time.monotonic() - T_START:.1f}s")


if __name__ == "__main__":
    try:
        main()
    except testbed.TestbedError as e:
        bail(str(e).replace("\n", " | "))
    finish()
