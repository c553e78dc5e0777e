#!/usr/bin/python3
"""e2e (TAP): the real memtided keeps real guests at the size they need.

Boots three TCG guests:
  idle    512 MiB boot + 1 GiB virtio-mem (512 MiB plugged): 1 GiB, idle
  ramp    512 MiB boot + 1 GiB virtio-mem (none plugged), a workload that
          sleeps, then ramps its anonymous memory to 600 MiB and holds it,
          with no allocation floor: if the guest is not grown in time its
          kernel OOM-kills the workload
  balloon 768 MiB, no virtio-mem device: only the balloon can resize it
Then:
  1. memtided --dry-run decides and logs, and no guest changes size;
  2. memtided shrinks the idle guests toward their need (virtio-mem first,
     the balloon below boot memory; the balloon-only guest by balloon);
  3. the ramping guest is grown before it runs out of memory (no OOM kill
     on its console) and reaches its 600 MiB;
  4. libvirtd is restarted under memtided, which reconnects and acts again;
  5. a restarted memtided (same state directory) issues no resize storm.
Reports: time for the idle 1 GiB guest to reach its need, and time from
the ramp's start to the first grow being applied.
Environment: MEMTIDE_DAEMON, MEMTIDE_WORKLOAD (required), MEMTIDE_AGENT.
"""

import os
import re
import signal
import subprocess
import time

import e2elib
from e2elib import Daemon, bail, finish, note, tap

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

DAEMON = e2elib.require_env_file("MEMTIDE_DAEMON", "the built memtided")
WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = os.environ.get("MEMTIDE_AGENT") or None

MIN = 256 * MiB               # policy min (KiB), the need of an idle guest
RAMP_TO = 600                 # MiB the ramp workload holds
RAMP_AFTER = 45               # s after boot the ramp starts
TOLERANCE = 24 * MiB          # KiB: min-change hysteresis + block rounding

VM_POLICY = f"""min = {MIN // MiB}M
max = 100%
headroom = 128M
"""
HOST_POLICY = """tick-interval = 1s
stuck-timeout = 30s
min-change = 16M
"""
OOM = re.compile(r"Out of memory|oom-kill|Killed process")


def size_kib(guest):
    """Balloon actual + virtio-mem plugged, as libvirt reports them."""
    stats = guest.balloon_stats()
    vmem = guest.vmem()
    return stats.get("actual", 0) + (vmem.current_kib if vmem else 0)


def sizes(guests):
    return {g.name: size_kib(g) for g in guests}


def fmt(kib):
    return f"{kib / MiB:.0f} MiB"


def wait_size(guest, pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = size_kib(guest)
        if pred(s):
            return s
        time.sleep(0.5)
    return None


def libvirtd_pid():
    try:
        with open("/run/libvirtd.pid") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def restart_libvirtd():
    pid = libvirtd_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if libvirtd_pid() is None:
            break
        time.sleep(0.1)
    subprocess.run(["libvirtd", "-d"], check=True)
    for _ in range(100):
        if os.path.exists("/run/libvirt/libvirt-sock"):
            break
        time.sleep(0.1)
    return True


with Testbed(workload=WORKLOAD, agent=AGENT) as tb:
    t_boot = time.monotonic()
    try:
        idle, ramp, balloon = tb.up([
            GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB,
                      vmem_requested_kib=512 * MiB),
            GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB,
                      workload=f"sleep:{RAMP_AFTER}s,ramp:0M-{RAMP_TO}M/30s,hold:10m",
                      extra_cmdline="memtide.workload_reserve=0M"),
            GuestSpec(memory_kib=768 * MiB),
        ])
    except Exception as e:
        bail(f"testbed did not come up: {e}")
    guests = [idle, ramp, balloon]
    note(f"guests up in {time.monotonic() - t_boot:.1f} s: "
         + ", ".join(g.name for g in guests))
    time.sleep(3)  # first balloon stats (period 2 s)
    before = sizes(guests)
    note("sizes before: " + ", ".join(f"{n}={fmt(s)}" for n, s in before.items()))

    # 1. dry run: decides, logs, changes nothing.
    with Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY, dry_run=True) as dry:
        hit = dry.wait(rf"dry-run, not applied: {re.escape(idle.name)}: shrink", 20)
        tap(hit is not None, "dry run: memtided logs the shrink it would do, with its reason",
            None if hit else dry.tail())
        time.sleep(3)
        rc = dry.stop()
    after_dry = sizes(guests)
    unchanged = all(abs(after_dry[n] - before[n]) <= 4 * MiB for n in before)
    tap(unchanged, "dry run: no guest changed size",
        ", ".join(f"{n}: {fmt(before[n])} -> {fmt(after_dry[n])}" for n in before))
    tap(rc == 0, f"dry run: memtided exits 0 on SIGTERM (got {rc})")

    # 2.-4. the real thing.
    state_dir = os.path.join(tb.rundir, "memtided-state")
    daemon = Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY, state_dir=state_dir).start()
    t_start = time.monotonic()
    try:
        reached = wait_size(idle, lambda s: s <= MIN + TOLERANCE, 90)
        t_idle = time.monotonic() - t_start
        tap(reached is not None,
            f"idle 1 GiB guest shrunk to its need ({fmt(MIN)} min) in {t_idle:.1f} s",
            None if reached else f"size now {fmt(size_kib(idle))}\n{daemon.tail()}")
        if reached is not None:
            note(f"FIGURE idle 1 GiB guest reached its need in {t_idle:.1f} s")
        vmem = idle.vmem()
        tap(vmem is not None and vmem.current_kib == 0,
            "idle guest: virtio-mem unplugged fully before the balloon went below boot memory",
            f"virtio-mem current {vmem.current_kib if vmem else None} KiB")
        # The guest sees it too.
        m = idle.wait_meminfo(lambda m: m.total_kib <= MIN + TOLERANCE, timeout=20,
                              what="MemTotal at most the policy min")
        tap(m is not None, "idle guest's own MemTotal shrank accordingly",
            f"MemTotal {fmt(m.total_kib) if m else idle.meminfo()}")

        reached = wait_size(balloon, lambda s: s <= MIN + TOLERANCE, 90)
        tap(reached is not None, "balloon-only guest shrunk by the balloon",
            None if reached else f"size now {fmt(size_kib(balloon))}")
        vmem_acts = daemon.findall(rf"resize: (\(emergency\) )?{re.escape(balloon.name)}: \w+ .*virtio-mem")
        bal_acts = daemon.findall(rf"resize: (\(emergency\) )?{re.escape(balloon.name)}: shrink .*balloon")
        tap(bal_acts and not vmem_acts,
            "balloon-only guest: every action went through the balloon",
            f"{len(bal_acts)} balloon actions, {len(vmem_acts)} virtio-mem actions")

        # 3. the ramp
        mark = ramp.console_mark()
        hit = ramp.wait_console(r"step=ramp", timeout=RAMP_AFTER + 60, since=mark)
        t_ramp = time.monotonic()
        if hit is None:
            tap(False, "ramp guest's workload started its ramp", ramp.console_tail())
        else:
            grow = daemon.wait(rf"resize: (\(emergency\) )?{re.escape(ramp.name)}: (emergency )?grow", 60)
            if grow:
                # The ramp may have been seen late (console polling): the
                # first grow after the ramp began is what counts.
                grows = [t for t, _ in daemon.findall(rf"resize: (\(emergency\) )?{re.escape(ramp.name)}: (emergency )?grow")
                         if t >= t_ramp - 2]
                t_grow = (grows[0] if grows else grow[0]) - t_ramp
                note(f"FIGURE ramp start to first grow applied: {max(t_grow, 0):.1f} s")
            tap(grow is not None, "ramp guest is grown while its workload ramps",
                None if grow else daemon.tail())
            held = ramp.wait_console(rf"anon={RAMP_TO}M .*step=hold", timeout=120, since=mark)
            tap(held is not None, f"ramp guest reached its {RAMP_TO} MiB working set",
                None if held else ramp.console_tail())
        oom = [l for l in ramp.console().splitlines() if OOM.search(l)]
        tap(not oom, "no OOM kill on the ramp guest's console", "\n".join(oom[:5]))

        # 4. libvirtd restart under the daemon.
        mark_log = daemon.mark()
        if not restart_libvirtd():
            tap(False, "libvirtd restart: no libvirtd pid in /run/libvirtd.pid")
        else:
            lost = daemon.wait(r"Lost the connection", 20, since=mark_log)
            back = daemon.wait(r"Connected to qemu:///system", 60, since=mark_log)
            tap(lost is not None and back is not None and daemon.alive(),
                "libvirtd restart: memtided notices, reconnects and keeps running",
                None if back else daemon.tail())
            # Someone deflates the balloon guest behind memtide's back;
            # memtided must act on it again over the new connection.
            tb.reconnect()
            balloon.set_balloon(768 * MiB)
            mark_log = daemon.mark()
            again = daemon.wait(rf"resize: (\(emergency\) )?{re.escape(balloon.name)}: shrink", 60, since=mark_log)
            tap(again is not None, "after the reconnect memtided resizes again",
                None if again else daemon.tail())
            wait_size(balloon, lambda s: s <= MIN + TOLERANCE, 60)
    finally:
        rc = daemon.stop()
    tap(rc == 0, f"memtided exits 0 on SIGTERM (got {rc})", None if rc == 0 else daemon.tail())
    tap(os.path.isfile(os.path.join(state_dir, "state.ini")),
        "memtided saved its state on exit")

    # 5. restart: no resize storm.
    time.sleep(2)
    with Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY, state_dir=state_dir) as again:
        up = again.wait(r"memtided running", 20)
        time.sleep(10)
        actions = again.findall(r"resize: .*: (shrink|grow) \d")
        restored = again.findall(rf"VM {re.escape(tb.prefix)}-g\d: restored learned headroom")
    tap(up is not None and not actions,
        f"restarted memtided: no resize in its first 10 s ({len(actions)} actions)",
        "\n".join(m.string for _, m in actions[:5]))
    tap(len(restored) == 3, f"restarted memtided restored the learned state of the 3 guests "
        f"({len(restored)})")

finish()
