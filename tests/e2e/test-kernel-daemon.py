#!/usr/bin/python3
"""e2e (TAP): memtided with the patched guest kernel (kernel-patches/).

test-kernel.py checks the kernel side through console lines; this test
checks what memtided makes of it. Three TCG guests boot side by side,
each with the agent:
  rep    patched, 512 MiB + 1 GiB virtio-mem (512 MiB plugged, ZONE_MOVABLE),
         held at its size (min = max = 1G, no cold cache reclaim, so
         nothing but free page reporting moves its QEMU RSS); the
         workload allocates and touches 512 MiB, holds it, frees it;
  stock  Debian's stock kernel, 512 MiB, held at its size;
  slab   patched, 512 MiB + 1 GiB virtio-mem (512 MiB plugged, onlined to
         the kernel zone with memhp_default_state=online_kernel); the
         workload fills 96 MiB of slab (unmovable) once the blocks are
         plugged. Held at 1 GiB until the slab is made, then a policy
         reload lowers its min so memtided shrinks it.
memtided runs on a private bus with --metrics-port 0 and
`page-reporting = fast` for every guest. Checks:
  1. memtided tunes rep (delay 100 ms, budget divisor 1) and logs why;
     the guest's console, VM1 ReportingDelay / ReportingBudgetDivisor and
     `memtidectl show` then show those values;
  2. after rep's free, memtided's ReportedFree and RssSaved rise by most of
     it, RssSaved's rise agrees with the drop of rep's QEMU RSS within 10%
     (+ 8 MiB), ReportedTotal >= ReportedFree, and the metrics endpoint
     exports rep's counters under its name;
  3. BlockUsage has rep's kernel, movable and virtio-mem kinds and slab's
     kernel and virtio-mem kinds, each with sane sums; the stock guest
     has no reporting figures, no BlockUsage, no reporting lines in
     `memtidectl show`, and memtided never sends it a tune request;
  4. slab's first shrink after the reload asks virtio-mem only for what
     the block hint allows ("virtio-mem unplugs only ..."), the unplug
     completes and the VM is never marked stuck.
Checks wait for outcomes with deadlines; measured values are FIGURE
lines. Environment: MEMTIDE_DAEMON, MEMTIDECTL, MEMTIDE_WORKLOAD,
MEMTIDE_AGENT (required here: memtided learns everything through the
agent), MEMTIDE_PATCHED_KERNEL (optional).
"""

import os
import re
import signal
import sys
import threading
import time
import urllib.request

import e2elib
import mttap  # noqa: E402  (tests/lib, on the path through e2elib)
from e2elib import Daemon, bail, finish, note, tap, wait_console, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
import mtlib  # noqa: E402
from mtlib import VM, Bus, Client  # noqa: E402

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

DAEMON = e2elib.require_env_file("MEMTIDE_DAEMON", "the built memtided")
mtlib.MEMTIDECTL = e2elib.require_env_file("MEMTIDECTL", "the built memtidectl")
WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = e2elib.require_env_file("MEMTIDE_AGENT", "the built memtide-agent")

MB = 1 << 20                  # bytes (the testbed's MiB is in KiB)
BLOCK = 128 * MB              # the guests' memory block size (x86-64, < 64 GiB)
FREED = 512                   # MiB rep allocates and frees
HOLD = 45                     # s rep holds it: both figures settle before the free
REP_SCHED = f"sleep:10s,anon:{FREED}M,sleep:{HOLD}s,free"
SLAB = 96                     # MiB of slab the slab guest makes
SLAB_SCHED = f"sleep:10s,slab:{SLAB}M"
FAST_DELAY, FAST_DIVISOR = 100, 1     # policy page-reporting = fast (defaults)
AGREE = 0.10
# RssSaved is the guest's claim as of the agent's last report, counted in
# the 2 MiB chunks reporting works in, and QEMU's RSS moves a few MiB of
# its own (its heap, the TCG translation cache): 8 MiB on top of the 10%
# covers both, about 1.5% of the 512 MiB.
SLACK = 8 * MB
SETTLED_SPAN = 4 * MB         # a value moved less than this over SETTLED_N samples
SETTLED_N = 4

HOST_POLICY = """tick-interval = 1s
min-change = 16M
stuck-timeout = 30s
max-shrink-rate = 4G/s
"""
# The slab guest's first shrink must be one step down to its need (no
# rate limit cutting it below what the hint allows).
VM_POLICY = """page-reporting = fast
reclaim-cold-cache = false
"""
HELD = "min = {0}\nmax = {0}\n"
SHRINK = "min = 256M\nmax = 100%\n"

# memtided's log lines (service/daemon-tune.c, service/daemon-act.c)
TUNE_RE = r": {}: tune page reporting: delay (\d+) -> (\d+) ms, budget divisor (\d+) -> (\d+): (.*)$"
TUNED_RE = r": {}: page reporting tuned: the guest reads back delay (\d+) ms, budget divisor (\d+)"
RESIZE_RE = r"resize: (?:\(emergency\) )?{}: (shrink|grow) .*?\[(.*?)\]: (.*)$"
STUCK_RE = r": {}: stuck: (.*)$"
METRICS_RE = r"Metrics on (http://localhost:\d+/metrics)"


def mib(b):
    return f"{b / MB:.0f} MiB"


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def parse_size(text):
    """Bytes of memtided's "512 MiB", "1.0 GiB" (mt_format_bytes)."""
    n, unit = text.split()
    return int(float(n) * UNITS[unit])


def qemu_rss(guest):
    """VmRSS of the guest's QEMU process in bytes, or None."""
    try:
        with open(f"/proc/{guest.qemu_pid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, TypeError):
        pass
    return None


def props(client, guest):
    try:
        return client.props(client.vm_path(guest.name), VM)
    except Exception:  # noqa: BLE001  (not exported yet)
        return {}


def settled(vals):
    tail = vals[-SETTLED_N:]
    if len(tail) < SETTLED_N or None in tail or max(tail) - min(tail) >= SETTLED_SPAN:
        return None
    return tail[-1]


def settle(client, guest, timeout, until=None, want=None):
    """QEMU's RSS and memtided's RssSaved of guest, once a second, until
    both settled (and want(rss, saved) holds): (rss, props, seconds), or
    an error text. until(): True once it is too late (the next step
    began)."""
    t0 = time.monotonic()
    rss, saved, p = [], [], {}
    while time.monotonic() - t0 < timeout:
        rss.append(qemu_rss(guest))
        p = props(client, guest)
        saved.append(p.get("RssSaved"))
        r, s = settled(rss), settled(saved)
        if r is not None and s is not None and (want is None or want(r, s)):
            if until is not None and until():
                return "the next workload step began before the values settled"
            return r, p, time.monotonic() - t0
        if not guest.dom.isActive():
            return f"{guest.name} stopped"
        time.sleep(1.0)
    return (f"not settled within {timeout} s: RSS {[mib(x) if x else x for x in rss[-5:]]}, "
            f"RssSaved {[mib(x) if x is not None else x for x in saved[-5:]]}")


def step_pos(guest, text, timeout):
    m = wait_console(guest, rf"^memtide-workload: step \d+/\d+ {re.escape(text)} begins", timeout)
    return m.start() if m else None


def usage(p):
    """VM1 BlockUsage as {kind: (blocks, free, movable, unmovable, pinned, offline)}."""
    return {k[0]: tuple(k[1:]) for k in p.get("BlockUsage", [])}


def fmt_usage(u):
    return "; ".join(f"{k}: {v[0]} blocks, free {mib(v[1])}, movable {mib(v[2])}, unmovable "
                     f"{mib(v[3])}, pinned {mib(v[4])}, offline {mib(v[5])}"
                     for k, v in sorted(u.items()))


def kinds_of(u):
    """The kinds with blocks (memtided lists a kind the agent left out, for
    no blocks of it, with 0 blocks)."""
    return {k for k, v in u.items() if v[0] > 0}


def sane(u):
    """Each kind's uses add up to at most its blocks (none for 0 blocks)."""
    return u and all(sum(v[1:]) <= v[0] * BLOCK for v in u.values())


def ctl_show(bus, guest):
    code, out, err = mtlib.ctl(bus, "show", guest.name)
    return code, out + err


def write_config(daemon, rep, stock, slab, slab_policy):
    """memtided.py's scoping, then our groups (the last match wins)."""
    with open(daemon.config) as f:
        text = f.read()
    base = text.split("\n# e2e groups\n")[0]
    with open(daemon.config, "w") as f:
        f.write(base + "\n# e2e groups\n"
                f"[vm {rep.name}]\n" + HELD.format("1G") +
                f"[vm {stock.name}]\n" + HELD.format("512M") +
                f"[vm {slab.name}]\n" + slab_policy)


def check_tune(daemon, c, bus, rep, t0):
    name = re.escape(rep.name)
    hit = e2elib.wait_log_after(daemon, TUNE_RE.format(name), t0, 60)
    want = f"delay 2000 -> {FAST_DELAY} ms, budget divisor 16 -> {FAST_DIVISOR}"
    tap(hit and hit[1].group(1, 2, 3, 4) == ("2000", str(FAST_DELAY), "16", str(FAST_DIVISOR))
        and hit[1].group(5) == "policy page-reporting = fast",
        f"rep: memtided logs the tune ({want}) with its reason (policy page-reporting = fast)",
        hit[1].group(0) if hit else daemon.tail(20))
    if hit:
        note(f"FIGURE rep: tune request {hit[0] - t0:.1f} s after memtided started")
    done = e2elib.wait_log_after(daemon, TUNED_RE.format(name), t0, 30)
    tap(done and done[1].group(1, 2) == (str(FAST_DELAY), str(FAST_DIVISOR)),
        "rep: the agent's reply reads back the new values",
        done[1].group(0) if done else daemon.tail(20))
    since = len(rep.console())
    line = wait_until(lambda: [r for r in rep.reporting(since)
                               if (r.delay_ms, r.divisor) == (FAST_DELAY, FAST_DIVISOR)], 30)
    last = rep.reporting()[-1] if rep.reporting() else None
    tap(line, f"rep: the guest kernel's tunables are now delay_ms={FAST_DELAY} "
        f"budget_divisor={FAST_DIVISOR} (console, memtide.mm_stat)", last)
    seen = {}

    def published():
        seen["p"] = props(c, rep)
        return (seen["p"].get("ReportingDelay"), seen["p"].get("ReportingBudgetDivisor")) == \
            (FAST_DELAY, FAST_DIVISOR)
    tap(wait_until(published, 30), "rep: VM1 ReportingDelay and ReportingBudgetDivisor show "
        "them", {k: seen["p"].get(k) for k in ("ReportingDelay", "ReportingBudgetDivisor")})
    code, out = ctl_show(bus, rep)
    tap(code == 0 and re.search(rf"^\s+reporting\s+delay {FAST_DELAY} ms, budget divisor "
                                rf"{FAST_DIVISOR}$", out, re.M),
        "rep: `memtidectl show` shows them", out)


def measure_free(c, rep, out):
    """rep's QEMU RSS and memtided's view of it, settled before and after
    its free (a thread: the hold step runs while the main thread checks
    other things). Fills out."""
    try:
        pos = step_pos(rep, f"sleep:{HOLD}s", 240)
        if pos is None:
            out["error"] = "the workload did not reach its hold step"
            return
        free_rx = re.compile(r"^memtide-workload: step \d+/\d+ free begins", re.M)
        before = settle(c, rep, HOLD - 5, until=lambda: free_rx.search(rep.console(), pos))
        if isinstance(before, str):
            out["error"] = f"before the free: {before}"
            return
        if step_pos(rep, "free", HOLD + 60) is None:
            out["error"] = "the workload did not free"
            return
        t_free = time.monotonic()
        saved0 = before[1]["RssSaved"]
        after = settle(c, rep, 120, want=lambda r, s: s - saved0 >= FREED * MB // 2)
        if isinstance(after, str):
            out["error"] = f"after the free (RssSaved rising by half of it): {after}"
            return
        out["before"], out["after"] = before, after
        out["seconds"] = time.monotonic() - t_free
    except Exception as e:  # noqa: BLE001  (a thread must report, not die silently)
        out["error"] = f"{type(e).__name__}: {e}"


def check_free(daemon, rep, res):
    if "error" in res:
        tap(False, "rep: QEMU RSS and memtided's RssSaved settle before and after the free",
            f"{res['error']}\nconsole tail:\n{rep.console_tail(12)}")
        return
    (rss0, p0, _), (rss1, p1, _) = res["before"], res["after"]
    d_rss, d_saved = rss0 - rss1, p1["RssSaved"] - p0["RssSaved"]
    d_claim = p1["ReportedFree"] - p0["ReportedFree"]
    note(f"FIGURE rep: QEMU RSS {mib(rss0)} -> {mib(rss1)} (-{mib(d_rss)}); memtided's "
         f"RssSaved {mib(p0['RssSaved'])} -> {mib(p1['RssSaved'])} (+{mib(d_saved)}), "
         f"ReportedFree {mib(p0['ReportedFree'])} -> {mib(p1['ReportedFree'])} "
         f"(+{mib(d_claim)}); settled {res['seconds']:.1f} s after the free "
         f"showed on the console; {FREED} MiB freed")
    note(f"FIGURE rep: ReportedTotal {mib(p1['ReportedTotal'])}, ReusedTotal "
         f"{mib(p1['ReusedTotal'])}, ReportingPasses {p1['ReportingPasses']}, "
         f"ReportingBudgetExhausted {p1['ReportingBudgetExhausted']}")
    tap(d_claim >= FREED * MB * 3 // 4 and d_saved >= FREED * MB * 3 // 4,
        f"rep: ReportedFree and RssSaved rise by most of the {FREED} MiB freed",
        f"ReportedFree +{mib(d_claim)}, RssSaved +{mib(d_saved)}")
    tap(abs(d_rss - d_saved) <= AGREE * d_saved + SLACK,
        f"rep: RssSaved's rise agrees with the drop of QEMU's RSS within {AGREE:.0%} "
        f"+ {mib(SLACK)}", f"RSS -{mib(d_rss)}, RssSaved +{mib(d_saved)}, difference "
        f"{(d_rss - d_saved) / max(d_saved, 1):+.1%}")
    tap(p1["ReportedTotal"] >= p1["ReportedFree"] > 0,
        "rep: ReportedTotal >= ReportedFree", (p1["ReportedTotal"], p1["ReportedFree"]))
    hit = daemon.find(METRICS_RE)
    text = ""
    if hit:
        try:
            with urllib.request.urlopen(hit[1].group(1), timeout=10) as r:
                text = r.read().decode()
        except OSError as e:
            text = f"({e})"
    label = rf'domain="{re.escape(rep.name)}",uuid="[^"]+"'
    got = {}
    for metric, extra in (("memtide_vm_reported_free_bytes", ""),
                          ("memtide_vm_rss_saved_bytes", ""),
                          ("memtide_vm_reported_bytes_total", ""),
                          ("memtide_vm_reporting_passes_total", ""),
                          ("memtide_vm_reporting_budget_divisor", ""),
                          ("memtide_vm_block_usage_blocks", ',kind="virtio-mem"')):
        m = re.search(rf"^{metric}\{{{label}{extra}\}} (\S+)$", text, re.M)
        got[metric + extra] = float(m.group(1)) if m else None
    tap(hit and None not in got.values() and got["memtide_vm_reported_free_bytes"] > 0
        and got["memtide_vm_rss_saved_bytes"] > 0
        and got["memtide_vm_reported_bytes_total"] >= got["memtide_vm_reported_free_bytes"]
        and got["memtide_vm_reporting_passes_total"] > 0
        and got["memtide_vm_reporting_budget_divisor"] == FAST_DIVISOR
        and got['memtide_vm_block_usage_blocks,kind="virtio-mem"'] == 4,
        "rep: the metrics endpoint exports its reporting counters, tunables and block "
        "usage under its name", got if hit else "no 'Metrics on' line in memtided's log")


def check_kinds(c, g, kinds, label):
    """g's BlockUsage has exactly these kinds (with blocks), 4 of them
    virtio-mem blocks (its 512 MiB plugged), and sane sums."""
    seen = {}

    def has_kinds():
        seen["u"] = usage(props(c, g))
        return kinds_of(seen["u"]) == kinds and seen["u"]["virtio-mem"][0] * BLOCK == 512 * MB
    ok = wait_until(has_kinds, 30)
    u = seen["u"]
    note(f"FIGURE {label} BlockUsage: {fmt_usage(u)}")
    tap(ok and sane(u), f"{label}: BlockUsage has the kinds {', '.join(sorted(kinds))} "
        "(4 virtio-mem blocks), each kind's free + movable + unmovable + pinned + offline "
        "at most its blocks x 128 MiB", fmt_usage(u))
    return u


def check_usage(c, bus, rep, stock):
    check_kinds(c, rep, {"kernel", "movable", "virtio-mem"}, "rep")
    code, out = ctl_show(bus, rep)
    tap(code == 0 and all(re.search(rf"^\s+{w}\s", out, re.M) for w in
                          ("reported now", "since boot", "usage kernel", "usage movable",
                           "usage virtio-mem")),
        "rep: `memtidectl show` has the reporting and block usage lines", out)
    p = props(c, stock)
    zero = ("ReportedFree", "RssSaved", "ReportedTotal", "ReusedTotal", "ReportingPasses",
            "ReportingDelay", "ReportingBudgetDivisor")
    tap(p.get("AgentConnected") and p.get("DataSource") == "agent"
        and all(p.get(k) == 0 for k in zero) and p.get("BlockUsage") == [],
        "stock: its agent reports, and its reporting properties are zero, BlockUsage empty",
        {k: p.get(k) for k in zero + ("BlockUsage", "AgentConnected", "DataSource")})
    code, out = ctl_show(bus, stock)
    tap(code == 0 and stock.name in out
        and not re.search(r"^\s+(reported now|since boot|reporting|usage \S+)\s", out, re.M),
        "stock: `memtidectl show` prints no reporting lines", out)


def main():
    specs = [
        GuestSpec(kernel="patched", memory_kib=512 * MiB, vmem_size_kib=GiB,
                  vmem_requested_kib=512 * MiB, workload=REP_SCHED,
                  extra_cmdline="memtide.mm_stat=2"),
        GuestSpec(kernel="stock", memory_kib=512 * MiB),
        GuestSpec(kernel="patched", memory_kib=512 * MiB, vmem_size_kib=GiB,
                  vmem_requested_kib=512 * MiB, workload=SLAB_SCHED,
                  extra_cmdline="memhp_default_state=online_kernel"),
    ]
    bus = Bus()
    with Testbed(workload=WORKLOAD, agent=AGENT) as tb:
        t_up = time.monotonic()
        rep, stock, slab = tb.up(specs, timeout=240)
        note("FIGURE boot (define -> ready, 3 guests side by side): "
             + ", ".join(f"{g.spec.kernel} {g.boot_seconds:.1f} s" for g in (rep, stock, slab)))
        daemon = Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY,
                        extra_args=["--bus-address", bus.address, "--metrics-port", "0"])
        write_config(daemon, rep, stock, slab, HELD.format("1G"))
        t0 = time.monotonic()
        daemon.start()
        c = Client(bus)
        try:
            if not wait_until(lambda: c.has_owner(mtlib.NAME) or not daemon.alive(), 30) \
                    or not daemon.alive():
                bail(f"memtided did not come up on the bus:\n{daemon.tail()}")
            res = {}
            measure = threading.Thread(target=measure_free, args=(c, rep, res))
            measure.start()
            check_tune(daemon, c, bus, rep, t0)

            # The slab: made once the virtio-mem blocks are online, then
            # seen by memtided (the agent's block usage); then the reload.
            done = wait_console(slab, r"^memtide-workload: slab: Slab grew by (\d+)M.*$", 180)
            tap(done and int(done.group(1)) >= SLAB * 3 // 4,
                f"slab: the workload made {SLAB} MiB of slab",
                done.group(0) if done else slab.console_tail(12))
            seen = {}

            unmov = []

            # The guest's slab counts keep rising for a few seconds after
            # the step: wait for the hint to settle before the reload.
            def slab_seen():
                seen["u"] = usage(props(c, slab))
                v = seen["u"].get("virtio-mem")
                unmov.append(v[3] if v else None)
                return v and v[3] >= SLAB * MB // 2 and settled(unmov) is not None
            tap(wait_until(slab_seen, 30, step=1.0), "slab: BlockUsage shows the slab as "
                "unmovable memory in the virtio-mem blocks (settled)", fmt_usage(seen["u"]))
            check_kinds(c, slab, {"kernel", "virtio-mem"}, "slab")
            p = props(c, slab)
            note(f"FIGURE slab: Unpluggable {mib(p.get('Unpluggable', 0))}, Plugged "
                 f"{mib(p.get('Plugged', 0))}")
            write_config(daemon, rep, stock, slab, SHRINK)
            mark = daemon.mark()
            t_reload = time.monotonic()
            daemon.signal(signal.SIGHUP)
            tap(daemon.wait(r"Policy reloaded", 30, since=mark),
                "memtided reloads the policy (slab: min 256M)", daemon.tail(10))

            # 4. slab's first shrink after the reload
            hit = e2elib.wait_log_after(daemon, RESIZE_RE.format(re.escape(slab.name)),
                                        t_reload, 60, since=mark)
            line = hit[1].group(0) if hit else daemon.tail(20)
            tap(hit and hit[1].group(1) == "shrink"
                and re.search(r"virtio-mem unplugs only \S+ \S+: the guest's block hint says",
                              hit[1].group(3)),
                "slab: the first shrink asks virtio-mem only for what the block hint "
                "allows (\"virtio-mem unplugs only ...\")", line)
            note(f"FIGURE slab: first shrink: {line}")
            vm = re.search(r"virtio-mem ([\d.]+ \w+) -> ([\d.]+ \w+)",
                           hit[1].group(2)) if hit else None
            if vm:
                want = parse_size(vm.group(2)) // 1024 + MiB   # KiB; rounding of "1.0 GiB"
                got = wait_until(lambda: slab.vmem().current_kib <= want, 120)
                tap(got, f"slab: the unplug completes (virtio-mem {vm.group(1)} -> "
                    f"{vm.group(2)})", slab.vmem())
                if got:
                    note(f"FIGURE slab: unplug seen done {time.monotonic() - hit[0]:.1f} s "
                         "after the action was logged (polled every 0.5 s)")
            else:
                tap(False, "slab: the first shrink unplugs virtio-mem memory", line)

            measure.join()
            check_free(daemon, rep, res)
            check_usage(c, bus, rep, stock)
            stuck = daemon.findall(STUCK_RE.format(re.escape(slab.name)), mark)
            p = props(c, slab)
            tap(not stuck and not p.get("Stuck"), "slab: never marked stuck",
                [m.group(0) for _, m in stuck] or p.get("StuckReason"))

            moved = [m.group(0) for g in (rep, stock)
                     for _, m in daemon.findall(RESIZE_RE.format(re.escape(g.name)))]
            tap(not moved, "rep and stock: memtided never resized them (min = max: nothing "
                "but page reporting moved rep's RSS)", moved)
            tunes = daemon.findall(TUNE_RE.format(re.escape(stock.name)))
            tap(not tunes and not daemon.find(TUNED_RE.format(re.escape(stock.name))),
                "stock: memtided never sent it a tune request (policy page-reporting = fast)",
                [m.group(0) for _, m in tunes])
            for g in (rep, stock, slab):
                bad = re.findall(r"^MEMTIDE-(?:GUEST-ERROR|WORKLOAD-EXIT|AGENT-EXIT).*$|"
                                 r"Out of memory|Killed process", g.console(), re.M)
                tap(not bad, f"{g.name}: no guest error, the workload and agent still run",
                    "\n".join(bad) if bad else None)
            tap(daemon.alive(), "memtided still running")
        finally:
            rc = daemon.stop()
            if not mttap.all_passed():
                note("---- memtided log (tail) ----")
                note(daemon.tail(80))
        tap(rc == 0, f"memtided exits 0 on SIGTERM (got {rc})")
        note(f"FIGURE guests up for {time.monotonic() - t_up:.0f} s")
    bus.stop()


if __name__ == "__main__":
    try:
        main()
    except testbed.TestbedError as e:
        bail(str(e).replace("\n", " | "))
    mtlib._cleanup()
    finish()
