#!/usr/bin/python3
"""e2e (TAP): the patched guest kernel (kernel-patches/) in the testbed.

Four TCG guests boot side by side from the same initramfs, agent and
workload program; three run the patched kernel (kernel-patches/build, or
$MEMTIDE_PATCHED_KERNEL), one Debian's stock cloud kernel. Each prints
the patched kernel's counters and memory block usage on its console
every second or two (memtide.mm_stat, see tests/testbed/init.sh):
  rep    patched, 1 GiB: the workload allocates and touches 512 MiB, then
         frees it. reported_bytes must rise by most of it, and by what
         the host sees leave QEMU's RSS, within 10%;
  stock  the same on the stock kernel: it has none of the files (the
         contrast), and its RSS drop is a FIGURE;
  slab   patched, 512 MiB + 256 MiB of virtio-mem onlined to the kernel
         zone (memhp_default_state=online_kernel): the workload fills
         slab (empty tmpfs files); a virtio-mem block that was mostly
         free shows the unmovable pages in its usage;
  pin    patched, 512 MiB + 512 MiB of virtio-mem in ZONE_MOVABLE: the
         workload's anonymous memory lands in ZONE_MOVABLE; then it
         pins 128 MiB as io_uring registered buffers; no
         ZONE_MOVABLE block shows a pinned page while the pins last (the
         kernel migrates pages out of ZONE_MOVABLE before a long-term
         pin), and the kernel-zone blocks show them.
Checks wait for outcomes with deadlines; how long things took and the
measured values are FIGURE lines. Environment: MEMTIDE_WORKLOAD
(required), MEMTIDE_AGENT (optional: run it in every guest),
MEMTIDE_PATCHED_KERNEL (optional).
"""

import os
import re
import threading
import time

import e2elib
from e2elib import bail, finish, note, tap, wait_console

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = os.environ.get("MEMTIDE_AGENT") or None
if AGENT and not os.path.isfile(AGENT):
    bail(f"MEMTIDE_AGENT={AGENT!r} does not exist")

PAGE = 4096
MB = 1 << 20                 # bytes (the testbed's MiB is in KiB)
FREED = 512                   # MiB the rep guests allocate and free
# Long enough for the host to see both counters settle before the free.
HOLD = 60
REP_SCHED = f"sleep:5s,anon:{FREED}M,sleep:{HOLD}s,free"
SLAB = 96                     # MiB of slab the slab guest makes
SLAB_SCHED = f"sleep:15s,slab:{SLAB}M"
PIN = 128                     # MiB the pin guest pins
# First the same amount of plain anonymous memory, to show where the
# guest puts it (ZONE_MOVABLE, its first choice for user pages), freed
# before the pin step allocates and pins its own.
PIN_SCHED = f"sleep:15s,anon:{PIN}M,sleep:10s,free,pin:{PIN}M"
AGREE = 0.10                  # RSS drop and reported rise agree within this
SETTLED_SPAN = 4 * MB           # bytes: a value moved less over SETTLED_N samples
SETTLED_N = 4


def mib(b):
    return f"{b / (1 << 20):.0f} MiB"


def qemu_rss(guest):
    """VmRSS of the guest's QEMU process in bytes, or None."""
    pid = guest.qemu_pid()
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, TypeError):
        pass
    return None


def settled(vals):
    """The last value if the last SETTLED_N values moved less than
    SETTLED_SPAN, else None."""
    tail = vals[-SETTLED_N:]
    if len(tail) < SETTLED_N or None in tail or max(tail) - min(tail) >= SETTLED_SPAN:
        return None
    return tail[-1]


def step_pos(guest, text, timeout):
    """Console offset of the workload's 'step I/N TEXT begins', or None."""
    m = wait_console(guest, rf"^memtide-workload: step \d+/\d+ {re.escape(text)} begins", timeout)
    return m.start() if m else None


def settle(guest, since, timeout, counters, until=None, want=None):
    """Samples QEMU's RSS and (counters) the latest reported_bytes after
    console offset since, once a second, until both have settled (and
    want(rss, reported) holds). Returns (rss, reported, seconds) or an error
    text. until: console offset-returning callable; settling must happen
    before that step begins."""
    t0 = time.monotonic()
    rss, rep = [], []
    while time.monotonic() - t0 < timeout:
        rss.append(qemu_rss(guest))
        if counters:
            lines = guest.reporting(since)
            rep.append(lines[-1].reported if lines else None)
        r = settled(rss)
        c = settled(rep) if counters else 0
        if r is not None and c is not None and (want is None or want(r, c)):
            if until is not None and until() is not None:
                return "the next workload step began before the values settled"
            return r, c, time.monotonic() - t0
        if not guest.dom.isActive():
            return f"{guest.name} stopped"
        time.sleep(1.0)
    return (f"not settled within {timeout} s: RSS {[mib(x) if x else x for x in rss[-5:]]}, "
            f"reported_bytes {[mib(x) if x is not None else x for x in rep[-5:]]}")


def measure_free(guest, counters, out):
    """What the rep (or stock) guest's free does: QEMU RSS and
    reported_bytes settled before and after. Fills out."""
    try:
        pos = step_pos(guest, f"sleep:{HOLD}s", 300)
        if pos is None:
            out["error"] = "the workload did not reach its hold step"
            return
        console_free = re.compile(r"^memtide-workload: step \d+/\d+ free begins", re.M)

        def free_begun():
            m = console_free.search(guest.console(), pos)
            return m.start() if m else None
        before = settle(guest, pos, HOLD - 10, counters, until=free_begun)
        if isinstance(before, str):
            out["error"] = f"before the free: {before}"
            return
        out["before"] = before
        fpos = step_pos(guest, "free", HOLD + 60)
        if fpos is None:
            out["error"] = "the workload did not free"
            return
        t_free = time.monotonic()
        # At least half the freed memory reported (patched) or gone from
        # QEMU's RSS (stock), then settled: not a pause before reporting.
        if counters:
            def want(r, c):
                return c - before[1] >= FREED * MB // 2
        else:
            def want(r, c):
                return before[0] - r >= FREED * MB // 2
        after = settle(guest, fpos, 120, counters, want=want)
        if isinstance(after, str):
            out["error"] = f"after the free: {after}"
            return
        out["after"] = after
        out["seconds"] = time.monotonic() - t_free
    except Exception as e:  # a thread must report, not die silently
        out["error"] = f"{type(e).__name__}: {e}"


def last_blocks_before(guest, pos):
    lines = [b for b in guest.blocks() if b.pos < pos]
    return lines[-1] if lines else None


def wait_blocks_after(guest, pos, n, timeout):
    """The first n MEMTIDE-BLOCKS lines after console offset pos."""
    got = e2elib.wait_until(lambda: len(guest.blocks(pos)) >= n and guest.blocks(pos), timeout)
    return (got or [])[:n]


def fmt_block(n, b):
    return (f"memory{n} {b.zone} {'vmem' if b.vmem else 'boot'}: free {b.free} movable "
            f"{b.movable} unmovable {b.unmovable} pinned {b.pinned} offline {b.offline}")


def check_boot(tb, guests, stock):
    for g in guests:
        ready = g.ready_line or ""
        want_k = tb.patched_kver if g.spec.kernel == "patched" else tb.kver
        want_d = "builtin" if g.spec.kernel == "patched" else "modules"
        tap(f"kernel={want_k} " in ready and f"drivers={want_d} " in ready
            and "balloon=1" in ready and "agent-port=1" in ready
            and "cache=/mnt/cache" in ready and " swap=0 " not in ready,
            f"{g.name} ({g.spec.kernel}) boots kernel {want_k} with {want_d} drivers, "
            "balloon, agent port, cache disk (ext4) and swap",
            f"{ready}; boot {g.boot_seconds:.1f} s")
        if AGENT:
            tap("agent=1" in ready, f"{g.name}: the agent started", ready)
    m = wait_console(stock, r"^MEMTIDE-MMSTAT unavailable.*$", 30)
    tap(m and not stock.reporting(), "the stock kernel has no page reporting counters "
        "and no memory block usage (the contrast)", m.group(0) if m else None)
    for g in guests:
        if g.spec.kernel != "patched":
            continue
        r = e2elib.wait_until(lambda g=g: g.reporting(), 30)
        b = e2elib.wait_until(lambda g=g: g.blocks(), 30)
        tap(r and b and r[0].delay_ms == 2000 and r[0].divisor == 16 and b[0].blocks
            and all(u.pages == 32768 for u in b[0].blocks.values()),
            f"{g.name}: the patched kernel's counters (default tunables delay_ms 2000, "
            "budget_divisor 16) and each online block's usage (adding up to its 32768 "
            "pages) are there",
            (f"{r[0]}\n" if r else "no MEMTIDE-REPORTING line\n")
            + ("\n".join(fmt_block(n, u) for n, u in sorted(b[0].blocks.items()))
               if b else "no MEMTIDE-BLOCKS line"))


def check_free(rep, stock, res_rep, res_stock):
    if "error" in res_rep:
        tap(False, "rep: reported_bytes and QEMU RSS settle before and after the free",
            f"{res_rep['error']}\nconsole tail:\n{rep.console_tail(12)}")
    else:
        (rss0, r0, _), (rss1, r1, _) = res_rep["before"], res_rep["after"]
        d_rep, d_rss = r1 - r0, rss0 - rss1
        note(f"FIGURE rep: QEMU RSS {mib(rss0)} -> {mib(rss1)} (-{mib(d_rss)}), reported_bytes "
             f"{mib(r0)} -> {mib(r1)} (+{mib(d_rep)}), settled {res_rep['seconds']:.1f} s "
             f"after the free began on the console; {FREED} MiB freed")
        last = rep.reporting()[-1]
        note(f"FIGURE rep: reported_total_bytes {mib(last.total)}, reused_total_bytes "
             f"{mib(last.reused)}, passes {last.passes}, budget_exhausted {last.exhausted}")
        tap(d_rep >= FREED * MB * 3 // 4,
            f"rep: reported_bytes rises by most of the {FREED} MiB freed",
            f"+{mib(d_rep)}")
        tap(d_rep > 0 and abs(d_rss - d_rep) <= AGREE * d_rep,
            f"rep: the drop of QEMU's RSS agrees with reported_bytes' rise within "
            f"{AGREE:.0%}", f"RSS -{mib(d_rss)}, reported +{mib(d_rep)}, difference "
            f"{(d_rss - d_rep) / d_rep:+.1%}" if d_rep > 0 else "no rise")
    if "error" in res_stock:
        tap(False, "stock: QEMU RSS settles before and after the free",
            f"{res_stock['error']}\nconsole tail:\n{stock.console_tail(12)}")
    else:
        (rss0, _, _), (rss1, _, _) = res_stock["before"], res_stock["after"]
        note(f"FIGURE stock: QEMU RSS {mib(rss0)} -> {mib(rss1)} (-{mib(rss0 - rss1)}), "
             f"settled {res_stock['seconds']:.1f} s after the free; no counters to compare")
        tap(rss0 - rss1 >= FREED * MB // 2,
            "stock: free page reporting returns the freed memory too (RSS drop)",
            f"-{mib(rss0 - rss1)}")


def check_slab(slab):
    start = step_pos(slab, f"slab:{SLAB}M", 240)
    done = wait_console(slab, r"^memtide-workload: slab: Slab grew by (\d+)M.*$", 240)
    if start is None or done is None:
        tap(False, "slab: the workload fills slab", slab.console_tail(12))
        return
    grown = int(done.group(1))
    tap(grown >= SLAB * 3 // 4, f"slab: the workload's slab grew by {grown} MiB",
        done.group(0))
    before = last_blocks_before(slab, start)
    after = wait_blocks_after(slab, done.end(), 1, 60)
    if not before or not after:
        tap(False, "slab: block usage before and after the slab step", slab.console_tail(12))
        return
    after = after[0]
    vmem = {n: u for n, u in after.blocks.items() if u.vmem}
    tap(vmem and all(u.zone == "Normal" for u in vmem.values()),
        "slab: the virtio-mem blocks are online in the kernel zone (Normal)",
        "\n".join(fmt_block(n, u) for n, u in sorted(after.blocks.items())))
    rises = {n: u.unmovable - before.blocks[n].unmovable
             for n, u in vmem.items() if n in before.blocks}
    # A block mostly free before the slab step, filled with unmovable pages after.
    hits = [n for n, d in rises.items()
            if before.blocks[n].free >= 0.8 * before.blocks[n].pages and d >= 4096]
    for n in sorted(vmem):
        b0 = before.blocks.get(n)
        note(f"FIGURE slab: before {fmt_block(n, b0) if b0 else f'memory{n} not online'}")
        note(f"FIGURE slab: after  {fmt_block(n, vmem[n])}")
    total = sum(rises.values())
    tap(hits, "slab: a virtio-mem block that was mostly free shows the slab as unmovable "
        "pages (+4096 or more)",
        f"blocks: {sorted(hits)}; unmovable rise per block {rises}")
    tap(total * PAGE >= grown * MB // 2,
        "slab: the virtio-mem blocks' unmovable pages rose by at least half the slab made",
        f"+{total} pages = {mib(total * PAGE)} of {grown} MiB of slab")


def check_pin(pin):
    hold = step_pos(pin, "sleep:10s", 240)
    held = wait_blocks_after(pin, hold, 1, 60) if hold is not None else []
    in_movable = sum(u.movable for u in held[0].blocks.values()
                     if u.zone == "Movable") if held else 0
    tap(in_movable * PAGE >= PIN * MB * 3 // 4,
        f"pin: before pinning, {PIN} MiB of plain anonymous memory lands in ZONE_MOVABLE",
        f"movable pages in ZONE_MOVABLE blocks: {in_movable} ({PIN} MiB = {PIN * 256} pages)")
    start = step_pos(pin, f"pin:{PIN}M", 240)
    done = wait_console(pin, rf"^memtide-workload: (pin: {PIN}M pinned|ERROR pin).*$", 240)
    tap(start is not None and done and "ERROR" not in done.group(0),
        f"pin: the workload pins {PIN} MiB as io_uring registered buffers",
        done.group(0) if done else pin.console_tail(12))
    if not done or "ERROR" in done.group(0):
        return
    dumps = wait_blocks_after(pin, done.end(), 3, 60)
    if len(dumps) < 3:
        tap(False, "pin: three block usage dumps while the pins last", pin.console_tail(12))
        return
    movable = {n for n, u in dumps[0].blocks.items() if u.zone == "Movable"}
    tap(movable and all(u.vmem for n, u in dumps[0].blocks.items() if n in movable),
        f"pin: {len(movable)} virtio-mem blocks are online in ZONE_MOVABLE",
        "\n".join(fmt_block(n, u) for n, u in sorted(dumps[0].blocks.items())))
    bad = [(d.uptime, n, u.pinned) for d in dumps for n, u in d.blocks.items()
           if u.zone == "Movable" and u.pinned]
    tap(movable and not bad, "pin: no ZONE_MOVABLE block shows a pinned page while "
        "the pins last (3 dumps)", f"pinned in ZONE_MOVABLE: {bad}" if bad else None)
    kern = [sum(u.pinned for u in d.blocks.values() if u.kernel_zone) for d in dumps]
    tap(min(kern) * PAGE >= PIN * MB // 2,
        "pin: kernel-zone blocks show the pinned pages",
        f"pinned pages in kernel zones per dump: {kern} ({PIN} MiB = "
        f"{PIN * 256} pages)")
    mov1 = sum(u.movable for n, u in dumps[-1].blocks.items() if n in movable)
    note(f"FIGURE pin: ZONE_MOVABLE movable pages {in_movable} while {PIN} MiB of anonymous "
         f"memory was held, {mov1} while {PIN} MiB are pinned; kernel-zone pinned pages "
         f"{kern[-1]}")
    for n, u in sorted(dumps[-1].blocks.items()):
        note(f"FIGURE pin: {fmt_block(n, u)}")


def main():
    opts = "memtide.mm_stat={}"
    specs = [
        GuestSpec(kernel="patched", memory_kib=GiB, workload=REP_SCHED,
                  extra_cmdline=opts.format(1)),
        GuestSpec(kernel="stock", memory_kib=GiB, workload=REP_SCHED,
                  extra_cmdline=opts.format(1)),
        GuestSpec(kernel="patched", memory_kib=512 * MiB, vmem_size_kib=GiB,
                  vmem_requested_kib=256 * MiB, workload=SLAB_SCHED,
                  extra_cmdline=opts.format(2) + " memhp_default_state=online_kernel"),
        GuestSpec(kernel="patched", memory_kib=512 * MiB, vmem_size_kib=GiB,
                  vmem_requested_kib=512 * MiB, workload=PIN_SCHED,
                  extra_cmdline=opts.format(2)),
    ]
    with Testbed(workload=WORKLOAD, agent=AGENT) as tb:
        t0 = time.monotonic()
        rep, stock, slab, pin = tb.up(specs, timeout=240)
        note("FIGURE boot (define -> ready, 4 guests side by side): "
             + ", ".join(f"{g.spec.kernel} {g.boot_seconds:.1f} s" for g in (rep, stock, slab, pin)))
        res_rep, res_stock = {}, {}
        threads = [threading.Thread(target=measure_free, args=(rep, True, res_rep)),
                   threading.Thread(target=measure_free, args=(stock, False, res_stock))]
        for t in threads:
            t.start()
        check_boot(tb, (rep, stock, slab, pin), stock)
        check_slab(slab)
        check_pin(pin)
        for t in threads:
            t.join()
        check_free(rep, stock, res_rep, res_stock)
        for g in (rep, stock, slab, pin):
            bad = re.findall(r"^MEMTIDE-(?:GUEST-ERROR|WORKLOAD-EXIT|AGENT-EXIT).*$",
                             g.console(), re.M)
            tap(not bad, f"{g.name}: no guest error, the workload and agent still run",
                "\n".join(bad) if bad else None)
        note(f"FIGURE guests up for {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except testbed.TestbedError as e:
        bail(str(e).replace("\n", " | "))
    finish()
