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
  5. a restarted memtided (same state directory) issues no resize storm:
     no resize in its first 8 decisions on each guest.
Each step waits for a condition with a deadline generous enough for a
busy 2-core host.  Reports (FIGURE): time for the idle 1 GiB guest to
reach its need, and time from the ramp's start to the first grow applied.
Environment: MEMTIDE_DAEMON, MEMTIDE_WORKLOAD (required), MEMTIDE_AGENT.
"""

import os
import re
import signal
import subprocess
import time

import e2elib
from e2elib import Daemon, bail, finish, note, tap, wait_console, wait_meminfo, wait_until

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

DAEMON = e2elib.require_env_file("MEMTIDE_DAEMON", "the built memtided")
WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = os.environ.get("MEMTIDE_AGENT") or None

MIN = 256 * MiB               # policy min (KiB), the need of an idle guest
RAMP_TO = 600                 # MiB the ramp workload holds
RAMP_AFTER = 45               # s after boot the ramp starts
TOLERANCE = 24 * MiB          # KiB: min-change hysteresis + block rounding
SHRINK_WITHIN = 240           # s for an idle guest to reach its need (6 s on a quiet host)

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
    return wait_until(lambda: (lambda s: s if pred(s) else None)(size_kib(guest)), timeout)


def requested(guest):
    """The virtio-mem size asked of the guest (KiB), None without one: a
    virtio-mem resize changes it at once, before the guest has moved (a
    balloon target is not visible; a balloon resize shows in the size)."""
    vmem = guest.vmem()
    return vmem.requested_kib if vmem else None


def booted(guest):
    """The guest's balloon statistics come (period 2 s) and its
    virtio-mem memory is plugged as defined."""
    vmem = guest.vmem()
    return ("last_update" in guest.balloon_stats()
            and (vmem is None or vmem.current_kib == vmem.requested_kib))


# memtided's action line: "resize: NAME: grow|shrink A -> B [virtio-mem X -> Y, balloon P -> Q]: ..."
TARGETS_RE = r"resize: (?:\(emergency\) )?{}: .*?\[(.*?)\]"
# Its decision on a VM, each tick (--verbose): "NAME: hold|grow|...: why"
DECIDED_RE = r"{}: (hold|grow|shrink|wait|stuck|skip): "


def at_target(daemon, guest):
    """The guest is where memtided's last resize of it asked (virtio-mem
    plugged, balloon within 4 MiB), or memtided never resized it."""
    acts = daemon.findall(TARGETS_RE.format(re.escape(guest.name)))
    if not acts:
        return True
    what = acts[-1][1].group(1)
    vm = re.search(r"virtio-mem \d+ MiB -> (\d+) MiB", what)
    bal = re.search(r"balloon \d+ MiB -> (\d+) MiB", what)
    vmem = guest.vmem()
    if vm and (vmem is None or vmem.current_kib != int(vm.group(1)) * MiB):
        return False
    return not bal or abs(guest.balloon_stats().get("actual", 0) - int(bal.group(1)) * MiB) <= 4 * MiB


def settled(daemon, guest):
    """memtided holds the guest (its last two decisions) where its last
    resize asked: it has nothing left to do there."""
    kinds = [m.group(1) for _, m in daemon.findall(DECIDED_RE.format(re.escape(guest.name)))[-2:]]
    return kinds == ["hold", "hold"] and at_target(daemon, guest)


def libvirtd_pid():
    try:
        with open("/run/libvirtd.pid") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def restart_libvirtd():
    """SIGTERM to libvirtd, then a new one once it is gone: an error
    message, or None."""
    pid = libvirtd_pid()
    if pid is None:
        return "no libvirtd pid in /run/libvirtd.pid"
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: libvirtd_pid() is None, 60, 0.1):
        return f"libvirtd {pid} still running 60 s after SIGTERM"
    subprocess.run(["libvirtd", "-d"], check=True)
    if not wait_until(lambda: libvirtd_pid() is not None, 60, 0.1):
        return "the new libvirtd did not start within 60 s"
    return None


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
    ok = wait_until(lambda: all(booted(g) for g in guests), 120)
    tap(ok, "every guest sends balloon statistics and has its virtio-mem memory plugged",
        None if ok else ", ".join(f"{g.name}: {g.balloon_stats()} {g.vmem()}" for g in guests))
    before = sizes(guests)
    asked = {g.name: requested(g) for g in guests}
    note("sizes before: " + ", ".join(f"{n}={fmt(s)}" for n, s in before.items()))

    # 1. dry run: decides, logs, changes nothing.  It runs until it has
    # planned 3 times after deciding the shrink (each time the shrink
    # would have been applied, were it not a dry run).
    with Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY, dry_run=True) as dry:
        hit = dry.wait(rf"dry-run, not applied: {re.escape(idle.name)}: shrink", 120)
        tap(hit is not None, "dry run: memtided logs the shrink it would do, with its reason",
            None if hit else dry.tail())
        mark = dry.mark()
        wait_until(lambda: len(dry.findall(r"\bplan: ", mark)) >= 3, 60, 0.1)
        rc = dry.stop()
    after_dry = sizes(guests)
    asked_dry = {g.name: requested(g) for g in guests}
    unchanged = (asked_dry == asked
                 and all(abs(after_dry[n] - before[n]) <= 4 * MiB for n in before))
    tap(unchanged, "dry run: no virtio-mem request changed and no guest changed size",
        ", ".join(f"{n}: {fmt(before[n])} -> {fmt(after_dry[n])} (asked {asked[n]} -> "
                  f"{asked_dry[n]})" for n in before))
    tap(rc == 0, f"dry run: memtided exits 0 on SIGTERM (got {rc})")

    # 2.-4. the real thing.
    state_dir = os.path.join(tb.rundir, "memtided-state")
    daemon = Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY, state_dir=state_dir).start()
    t_start = time.monotonic()
    # The ramp starts at a fixed time after boot, maybe while the test
    # still waits on the shrinks: look for it from here.
    ramp_console = ramp.console_mark()
    try:
        reached = wait_size(idle, lambda s: s <= MIN + TOLERANCE, SHRINK_WITHIN)
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
        m = wait_meminfo(idle, lambda m: m.total_kib <= MIN + TOLERANCE, 60,
                         "MemTotal at most the policy min")
        tap(m is not None, "idle guest's own MemTotal shrank accordingly",
            f"MemTotal {fmt(m.total_kib) if m else idle.meminfo()}")

        reached = wait_size(balloon, lambda s: s <= MIN + TOLERANCE, SHRINK_WITHIN)
        tap(reached is not None, "balloon-only guest shrunk by the balloon",
            None if reached else f"size now {fmt(size_kib(balloon))}")
        vmem_acts = daemon.findall(rf"resize: (\(emergency\) )?{re.escape(balloon.name)}: \w+ .*virtio-mem")
        bal_acts = daemon.findall(rf"resize: (\(emergency\) )?{re.escape(balloon.name)}: shrink .*balloon")
        tap(bal_acts and not vmem_acts,
            "balloon-only guest: every action went through the balloon",
            f"{len(bal_acts)} balloon actions, {len(vmem_acts)} virtio-mem actions")

        # 3. the ramp
        live = not re.search(r"step=ramp", ramp.console()[ramp_console:])
        hit = wait_console(ramp, r"step=ramp", RAMP_AFTER + 120, ramp_console)
        t_ramp = time.monotonic()
        if hit is None:
            tap(False, "ramp guest's workload started its ramp", ramp.console_tail())
        else:
            # Before the ramp the guest only shrinks: every grow is for it.
            grow_re = rf"resize: (\(emergency\) )?{re.escape(ramp.name)}: (emergency )?grow"
            grow = daemon.wait(grow_re, 120)
            if grow and live:
                # Seen by console polling a moment late: the first grow
                # after the ramp began is what counts.
                grows = [t for t, _ in daemon.findall(grow_re) if t >= t_ramp - 2]
                t_grow = (grows[0] if grows else grow[0]) - t_ramp
                note(f"FIGURE ramp start to first grow applied: {max(t_grow, 0):.1f} s")
            elif grow:
                note("the ramp began while the test waited on the shrinks: no ramp-to-grow figure")
            tap(grow is not None, "ramp guest is grown while its workload ramps",
                None if grow else daemon.tail())
            held = wait_console(ramp, rf"anon={RAMP_TO}M .*step=hold", 180, ramp_console)
            tap(held is not None, f"ramp guest reached its {RAMP_TO} MiB working set",
                None if held else ramp.console_tail())
        oom = [l for l in ramp.console().splitlines() if OOM.search(l)]
        tap(not oom, "no OOM kill on the ramp guest's console", "\n".join(oom[:5]))

        # 4. libvirtd restart under the daemon.
        mark_log = daemon.mark()
        failed = restart_libvirtd()
        if failed:
            tap(False, f"libvirtd restart: {failed}")
        else:
            lost = daemon.wait(r"Lost the connection", 60, since=mark_log)
            back = daemon.wait(r"Connected to qemu:///system", 120, since=mark_log)
            tap(lost is not None and back is not None and daemon.alive(),
                "libvirtd restart: memtided notices, reconnects and keeps running",
                None if back else daemon.tail())
            # Someone deflates the balloon guest behind memtide's back;
            # memtided must act on it again over the new connection.
            tb.reconnect()
            balloon.set_balloon(768 * MiB)
            mark_log = daemon.mark()
            again = daemon.wait(rf"resize: (\(emergency\) )?{re.escape(balloon.name)}: shrink", 120, since=mark_log)
            tap(again is not None, "after the reconnect memtided resizes again",
                None if again else daemon.tail())
        # Before memtided stops, it has settled: it holds every guest
        # where it asked (a restarted memtided finishing a move is not a
        # storm).
        done = wait_until(lambda: all(settled(daemon, g) for g in guests), 180)
        tap(done, "memtided settles: it holds every guest at the size it last asked for",
            None if done else "\n".join(
                m.string for g in guests for pattern in (TARGETS_RE, DECIDED_RE)
                for _, m in daemon.findall(pattern.format(re.escape(g.name)))[-1:]))
    finally:
        rc = daemon.stop()
    tap(rc == 0, f"memtided exits 0 on SIGTERM (got {rc})", None if rc == 0 else daemon.tail())
    tap(os.path.isfile(os.path.join(state_dir, "state.ini")),
        "memtided saved its state on exit")

    # 5. restart: no resize storm.  Its first 8 decisions on each guest
    # (not counting "skip": no data yet) are where a storm would be.
    def decisions(g):
        return [m for _, m in again.findall(DECIDED_RE.format(re.escape(g.name)))
                if m.group(1) != "skip"]

    with Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY, state_dir=state_dir) as again:
        up = again.wait(r"memtided running", 60)
        seen = wait_until(lambda: all(len(decisions(g)) >= 8 for g in guests), 120)
        actions = again.findall(r"resize: .*: (shrink|grow) \d")
        restored = again.findall(rf"VM {re.escape(tb.prefix)}-g\d: restored learned headroom")
    tap(up is not None and seen and not actions,
        f"restarted memtided: no resize in its first 8 decisions on each guest "
        f"({len(actions)} actions)",
        "\n".join(m.string for _, m in actions[:5]) if actions else
        None if seen else "fewer than 8 decisions on some guest")
    tap(len(restored) == 3, f"restarted memtided restored the learned state of the 3 guests "
        f"({len(restored)})")

finish()
