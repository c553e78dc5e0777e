#!/usr/bin/python3
"""e2e (TAP): memtided survives the faults a host sees, on real guests.

memtided (--verbose, --metrics-port 0, one state directory for all its
runs) starts first; then five TCG guests boot:
  vmem      512 MiB boot + 1 GiB virtio-mem (512 MiB plugged), agent;
            on_reboot restart, so that a reset boots it again
  balloon   768 MiB, balloon only, agent
  flap      512 MiB, its /init kills the agent with SIGKILL and starts it
            again 20 times (up 6.5 s, down 0.5 s, every 5th time 8 s)
  hostile, hostile2   512 MiB each, no agent: /bin/memtide-hostile
            (tests/testbed/hostile.sh) writes 4 hostile items each down
            the agent's port at full speed and never reads what the host
            sends
Faults, in this order (the guests are reused: the later ones do not
depend on the earlier ones having gone one way or another):
  d. the agent loop (flap) and e. the hostile agents, side by side:
     memtided falls back to the hypervisor's numbers at each long gap
     and uses every new agent process's reports, logs a bounded number
     of lines, counts no violation of the flapping agent; it counts a
     violation of each hostile item (of the kind the item is), and the
     honest guests' reports, the tick and the decisions keep coming,
     memtided's RSS bounded;
  a. memtided killed with SIGKILL in the middle of a virtio-mem unplug
     (vmem), then in the middle of a balloon inflate (balloon), and
     restarted on the same state directory: state restored, at most one
     resize and no grow in the VM's first 8 decisions, not stuck, the
     resize finished (the guest ends where memtided wants it, and
     memtided's metrics and libvirt agree on its size);
  b. libvirtd killed with SIGKILL while memtided resizes, and started
     again: memtided reconnects, keeps every VM and resizes again;
  c. vmem reset (virsh reset) in the middle of an unplug, balloon
     destroyed (virsh destroy) in the middle of an inflate and started
     again: memtided sees the reboot and the VM go and come back,
     re-adopts both with their learned state, leaves neither stuck, and
     keeps managing the other guests meanwhile.
A resize is made to happen by growing a guest behind memtided's back
(virtio-mem plug, balloon deflate) and waiting for memtided to shrink it
again.  Every wait is for a condition with a deadline generous enough
for a busy 2-core host; how long recovery took is a FIGURE line.
Environment: MEMTIDE_DAEMON, MEMTIDE_WORKLOAD, MEMTIDE_AGENT (required).
"""

import os
import re
import shutil
import signal
import statistics
import threading
import time
import urllib.request

import e2elib
from e2elib import (Daemon, bail, finish, log_after, note, tap, wait_console,
                    wait_log_after, wait_until)
import mttap  # noqa: E402  (e2elib puts tests/lib on the path)
from mttap import at_exit  # noqa: E402

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

DAEMON = e2elib.require_env_file("MEMTIDE_DAEMON", "the built memtided")
WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = e2elib.require_env_file("MEMTIDE_AGENT", "the built memtide-agent")

MIN = 256 * MiB               # policy min (KiB), the need of an idle guest
TOLERANCE = 24 * MiB          # KiB: min-change hysteresis + block rounding
# The agent loop: up 6.5 s, down 0.5 s (8 s every 5th time), 20 times.
# A restart every 7 s or more is a flaky agent, not a hostile one: under
# 10 restarts a minute (more is what a hostile guest does, issue 16
# defect 4).
FLAPS, UP_MS, DOWN_MS, LONG_MS, LONG_EVERY = 20, 6500, 500, 8000, 5
# Each hostile item and the violation it must be counted as
# (tests/testbed/hostile.sh), split over two guests: each item takes a
# connection of its own, and each connection a back-off (which doubles
# where the violation streak does not end between them).
HOSTILE_KINDS = {"nul": "line_too_long", "huge": "line_too_long", "json": "malformed",
                 "nulline": "malformed", "deep": "too_deep", "range": "inconsistent",
                 "regress": "regressed", "flood": "rate"}
HOSTILE_ITEMS = (("nul", "json", "deep", "regress"), ("huge", "nulline", "range", "flood"))
RSS_BOUND = 16 * 1024         # KiB memtided's RSS may grow during the hostile items
# Non-debug log lines memtided may write about the flapping guest per
# restart (restarted; silent, reports again; a resize).
LINES_PER_FLAP = 5

# max-shrink-rate 4G/s: a shrink goes to its target in one action, so a
# restarted memtided has nothing left to finish but what the guest does.
VM_POLICY = f"""min = {MIN // MiB}M
max = 100%
headroom = 128M
"""
HOST_POLICY = """tick-interval = 1s
stuck-timeout = 30s
min-change = 16M
max-shrink-rate = 4G/s
"""

SIZE = r"([\d.]+) (B|KiB|MiB|GiB)"
UNITS = {"B": 1 / 1024, "KiB": 1, "MiB": MiB, "GiB": GiB}
# "resize: NAME: shrink A -> B [virtio-mem X -> Y, balloon P -> Q]: why"
RESIZE_RE = r"resize: (?:\(emergency\) )?{}: (?:emergency )?(grow|shrink) .*?\[(.*?)\]"
DECIDED_RE = r"{}: (hold|grow|shrink|wait|stuck|skip): "
REPORT_RE = r"VM {}: agent report seq (\d+) \((\w+)\) mono_us (\d+)"
# The message in it may have parentheses of its own.
VIOLATION_RE = r"VM {}: agent protocol violation \((\w+).*\), link closed for (\d+) s \((\d+) so far\)"
TICK_RE = r"tick \d+ took ([\d.]+) ms"
METRICS_RE = r"Metrics on (http://localhost:\d+/metrics)"
# memtided's debug and info lines (--verbose), and libvirt's debug lines
# ("** (memtided:PID): DEBUG: ...").
NOT_DEBUG = re.compile(r"(DEBUG|INFO): |^\s*$")


def kib(text):
    m = re.fullmatch(SIZE, text)
    return int(float(m.group(1)) * UNITS[m.group(2)])


def targets(what):
    """(virtio-mem target, balloon target) in KiB from a resize line's
    [...] part, None for a mechanism it does not set."""
    vm = re.search(rf"virtio-mem {SIZE} -> {SIZE}", what)
    bal = re.search(rf"balloon {SIZE} -> {SIZE}", what)
    return (kib(f"{vm.group(3)} {vm.group(4)}") if vm else None,
            kib(f"{bal.group(3)} {bal.group(4)}") if bal else None)


def size_kib(guest):
    """Balloon actual + virtio-mem plugged, as libvirt reports them."""
    vmem = guest.vmem()
    return guest.balloon_stats().get("actual", 0) + (vmem.current_kib if vmem else 0)


def fmt(kib_):
    return f"{kib_ / MiB:.0f} MiB"


def metrics(daemon):
    """{(metric, vm name): value} of the per-VM series of memtided's
    metrics endpoint, {} when it does not answer."""
    hit = daemon.find(METRICS_RE)
    if not hit:
        return {}
    try:
        with urllib.request.urlopen(hit[1].group(1), timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(r'(\w+)\{vm="([^"]*)",uuid="[^"]*"\} (\S+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def decisions(daemon, guest, since=0):
    return [(t, m.group(1)) for t, m in daemon.findall(DECIDED_RE.format(re.escape(guest.name)),
                                                       since)]


def settled(daemon, guest, since=0):
    """memtided holds the guest (its last two decisions), the guest is at
    memtided's target (virtio-mem plugged as requested, the size within
    TOLERANCE of the target) and memtided's metrics and libvirt agree on
    its size (4 MiB: a balloon step).  A string saying why not, or ''."""
    kinds = [k for _, k in decisions(daemon, guest, since)[-2:]]
    if kinds != ["hold", "hold"]:
        return f"last decisions {kinds}"
    try:
        vmem = guest.vmem()
        size = size_kib(guest)
    except Exception as e:  # libvirt went away, the guest is gone
        return f"libvirt: {e}"
    if vmem and vmem.current_kib != vmem.requested_kib:
        return f"virtio-mem plugged {fmt(vmem.current_kib)}, requested {fmt(vmem.requested_kib)}"
    m = metrics(daemon)
    seen = m.get(("memtide_vm_size_bytes", guest.name))
    target = m.get(("memtide_vm_target_bytes", guest.name))
    if seen is None or target is None:
        return "no size or target in the metrics"
    if abs(seen / 1024 - size) > 4 * MiB:
        return f"memtided sees {fmt(seen / 1024)}, libvirt {fmt(size)}"
    if abs(target / 1024 - size) > TOLERANCE:
        return f"size {fmt(size)}, memtided's target {fmt(target / 1024)}"
    if m.get(("memtide_vm_stuck", guest.name)):
        return "marked stuck"
    return ""


def wait_settled(daemon, guests, timeout, since=0):
    """Waits until every guest is settled(); {name: why not} of those
    that are not ({} when all are)."""
    left = {}

    def check():
        left.clear()
        for g in guests:
            why = settled(daemon, g, since)
            if why:
                left[g.name] = why
        return not left
    wait_until(check, timeout, 1.0)
    return dict(left)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class RssSampler:
    """memtided's RSS once a second, whichever instance runs now."""

    def __init__(self):
        self.daemon = None
        self.samples = []        # (monotonic time, pid, KiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(1.0):
            d = self.daemon
            if d is not None and d.alive():
                v = rss_kib(d.proc.pid)
                if v is not None:
                    self.samples.append((time.monotonic(), d.proc.pid, v))

    def between(self, t0, t1, pid):
        return [v for t, p, v in self.samples if t0 <= t <= t1 and p == pid]

    def stop(self):
        self._stop.set()


def act_at_mid_shrink(daemon, guest, since, act, timeout):
    """Waits for memtided's next shrink of guest (logged from since) and
    for the guest to be on its way (virtio-mem: requested at the new size
    and plugged above it; balloon: actual below where it was and still
    above the target), then calls act() at once.  Returns (resize line,
    KiB left to go, monotonic time of act) or None when no shrink came,
    or the guest had finished it before it was seen moving."""
    name = re.escape(guest.name)
    hit = wait_until(lambda: [(t, m) for t, m in daemon.findall(RESIZE_RE.format(name), since)
                              if m.group(1) == "shrink"], timeout, 0.02)
    if not hit:
        return None
    line = hit[0][1]
    vm_to, bal_to = targets(line.group(2))
    bal_from = re.search(rf"balloon {SIZE} ->", line.group(2))
    bal_from = kib(f"{bal_from.group(1)} {bal_from.group(2)}") if bal_from else None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        vmem = guest.vmem()
        left = None
        if vm_to is not None and vmem and vmem.requested_kib == vm_to:
            left = vmem.current_kib - vm_to
            if left <= 0:
                return None
        elif vm_to is None and bal_to is not None:
            actual = guest.balloon_stats().get("actual", 0)
            if actual <= bal_to + 2 * MiB:
                return None
            if actual < bal_from - 2 * MiB:
                left = actual - bal_to
        if left is not None:
            t = time.monotonic()
            act()
            return line.string, left, t
        time.sleep(0.01)
    return None


def fault_mid_shrink(daemon, guest, act, what, attempts=3):
    """Grows the guest behind memtided's back and calls act() while
    memtided's shrink of it is under way (act_at_mid_shrink), trying
    again (after memtided settled the guest) when the shrink was over
    before the test saw it move.  Returns what act_at_mid_shrink does."""
    for attempt in range(attempts):
        mark = daemon.mark()
        grow_behind(guest)
        caught = act_at_mid_shrink(daemon, guest, mark, act, 180)
        if caught:
            note(f"{what} with {fmt(caught[1])} to go: {caught[0]}")
            return caught
        note(f"attempt {attempt + 1}: memtided's shrink of {guest.name} was over before the "
             "test saw it under way; again")
        wait_settled(daemon, [guest], 180)
    return None


def grow_behind(guest):
    """Gives the guest memory behind memtided's back: virtio-mem plugged
    to 768 MiB, or the balloon deflated to the boot memory; the guest
    then has idle memory memtided takes back."""
    if guest.spec.vmem_size_kib:
        guest.set_vmem_requested(768 * MiB)
    else:
        guest.set_balloon(guest.spec.memory_kib)


def kill_daemon(daemon):
    daemon.signal(signal.SIGKILL)
    daemon.proc.wait(30)
    return daemon.stop()


def libvirtd_pid():
    try:
        with open("/run/libvirtd.pid") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def flap_agents(daemon, guest):
    """The agent processes whose reports memtided used, in order: each a
    list of (host time, seq, mono_us); a new process starts where seq
    does not rise."""
    procs = []
    last = None
    for t, m in daemon.findall(REPORT_RE.format(re.escape(guest.name))):
        seq = int(m.group(1))
        if last is None or seq <= last:
            procs.append([])
        procs[-1].append((t, seq, int(m.group(3))))
        last = seq
    return procs


def said(daemon, t0, t1, pattern=None, limit=12):
    """What memtided told the operator (not its debug or info lines)
    between monotonic times t0 and t1, lines matching pattern, at most
    limit of them, without GLib's prefix."""
    rx = re.compile(pattern) if pattern else None
    lines = [re.sub(r"^.*?(?:Message|WARNING \*\*): [\d:.]+: ", "", line)
             for t, line in list(daemon.lines)
             if t0 <= t <= t1 and not NOT_DEBUG.search(line) and (rx is None or rx.search(line))]
    more = len(lines) - limit
    return "\n".join(["  " + line for line in lines[:limit]]
                     + ([f"  ... and {more} more"] if more > 0 else []))


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


state_dir = None
rss = RssSampler()
at_exit(rss.stop)
daemons = []


def keep_or_remove(d):
    """A daemon's files (its full log) are kept when a check failed."""
    if mttap.all_passed():
        shutil.rmtree(d.tmp, ignore_errors=True)
    else:
        note(f"memtided's log kept: {d.log_path}")


def start_daemon():
    d = Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY, state_dir=state_dir,
               extra_args=["--metrics-port", "0"])
    daemons.append(d)
    at_exit(lambda: keep_or_remove(d))
    d.start()
    rss.daemon = d
    return d


with Testbed(workload=WORKLOAD, agent=AGENT) as tb:
    state_dir = os.path.join(tb.rundir, "memtided-state")
    t_run = time.monotonic()
    # memtided first, so that it sees the guests boot: libvirtd must run.
    testbed.ensure_daemons()
    daemon = start_daemon()
    if not daemon.wait(r"memtided running", 120):
        daemon.stop()
        note(daemon.tail())
        bail("memtided did not start (its log above)")
    flap_arg = f"{FLAPS},{UP_MS},{DOWN_MS},{LONG_MS},{LONG_EVERY}"
    try:
        vmem, balloon, flap, hostile, hostile2 = tb.up([
            GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB, vmem_requested_kib=512 * MiB,
                      on_reboot="restart"),
            GuestSpec(memory_kib=768 * MiB, cache_disk_kib=0),
            GuestSpec(memory_kib=512 * MiB, cache_disk_kib=0,
                      extra_cmdline=f"memtide.agent_flap={flap_arg}"),
        ] + [GuestSpec(memory_kib=512 * MiB, cache_disk_kib=0, agent=False,
                       extra_cmdline=f"memtide.hostile={','.join(items)}")
             for items in HOSTILE_ITEMS], timeout=300)
    except Exception as e:
        daemon.stop()
        note(f"{e}\n{daemon.tail()}")
        bail("testbed did not come up (why above)")
    guests = [vmem, balloon, flap, hostile, hostile2]
    hostiles = [hostile, hostile2]
    note(f"guests up in {time.monotonic() - t_run:.1f} s: "
         + ", ".join(f"{g.name} ({n})" for g, n in zip(guests, ("vmem", "balloon", "flap",
                                                               "hostile", "hostile2"))))
    try:
        # ---- d. and e.: the agent loop and the hostile agents ---------------
        fn = re.escape(flap.name)
        done = {}

        def all_done():
            for g, pat in [(flap, r"^MEMTIDE-AGENT-FLAP-DONE")] + [
                    (h, r"^MEMTIDE-HOSTILE-DONE") for h in hostiles]:
                if g.name not in done and re.search(pat, g.console(), re.M):
                    done[g.name] = time.monotonic()
            return len(done) == 1 + len(hostiles)
        # 20 cycles take 170 s; 4 items at least 10 + 20 + 40 s of back-off.
        wait_until(all_done, 600, 0.5)
        tap(flap.name in done, f"flap: its /init killed and restarted the agent {FLAPS} times",
            None if flap.name in done else flap.console_tail())
        for h in hostiles:
            tap(h.name in done, f"hostile: {h.name} wrote all its items down the port",
                None if h.name in done else h.console_tail())
        tap(daemon.alive(), "memtided is alive after the agent loop and the hostile items",
            None if daemon.alive() else daemon.tail())

        # d. The agent loop.
        t_flap0 = flap.t_ready
        t_flap1 = done.get(flap.name, time.monotonic())
        # A report from the last agent after the loop.
        n_before = len(flap_agents(daemon, flap))
        back = wait_until(lambda: len(flap_agents(daemon, flap)) == FLAPS + 1
                          and flap_agents(daemon, flap)[-1][-1][0] >= t_flap1, 60)
        procs = flap_agents(daemon, flap)
        tap(len(procs) == FLAPS + 1,
            f"flap: memtided used the reports of every agent process: the first and the "
            f"{FLAPS} restarted ones ({len(procs)})",
            None if len(procs) == FLAPS + 1 else f"{n_before} before the wait\n{daemon.tail()}")
        tap(back, "flap: memtided uses the agent again after the loop",
            None if back else daemon.tail())
        silent = log_after(daemon, rf"VM {fn}: agent silent: back to what the hypervisor reports",
                           t_flap0)
        again = log_after(daemon, rf"VM {fn}: agent reports again", t_flap0)
        longs = FLAPS // LONG_EVERY
        tap(len(silent) >= longs and len(again) >= longs,
            f"flap: memtided fell back to the hypervisor's numbers at each of the {longs} long "
            f"gaps and took the agent again after each ({len(silent)} fallbacks, {len(again)} "
            f"returns)")
        # The fallback: from the last report before it.
        reports = [t for p in procs for t, _, _ in p]
        lat = [t - max([r for r in reports if r < t], default=t) for t, _ in silent]
        if lat:
            note(f"FIGURE flap: agent gone -> memtided on the hypervisor's numbers: "
                 f"{min(lat):.1f}-{max(lat):.1f} s after the last report (fresh limit 3 s)")
        started = [float(m.group(1)) for m in re.finditer(
            r"^MEMTIDE-AGENT-FLAP i=\d+ started uptime=([\d.]+)", flap.console(), re.M)]
        # Guest clock: a new agent's first report (its hello) was built
        # mono_us after boot; the process was started at the uptime printed.
        firsts = [p[0][2] / 1e6 for p in procs[1:]]
        restart = [f - s for s, f in zip(started, firsts) if f >= s]
        if restart:
            note(f"FIGURE flap: agent started -> its first report (guest clock), over "
                 f"{len(restart)} restarts: median {statistics.median(restart):.2f} s, "
                 f"max {max(restart):.2f} s; each used by memtided")
        viol = daemon.findall(rf"VM {fn}: agent protocol violation")
        disb = daemon.findall(rf"VM {fn}: agent report not used")
        tap(not viol and not disb,
            f"flap: no violation and no report disbelieved ({len(viol)}, {len(disb)})",
            "\n".join(m.string for _, m in (viol + disb)[:5]))
        lines = [line for t, line in list(daemon.lines)
                 if t_flap0 <= t <= t_flap1 + 5 and flap.name in line and not NOT_DEBUG.search(line)]
        kinds = {}
        for line in lines:
            k = re.sub(r"^.*?" + fn + r":? ", "", line)
            k = re.sub(r"[\d.]+", "N", k)[:48]
            kinds[k] = kinds.get(k, 0) + 1
        note(f"FIGURE flap: {len(lines)} log lines (not debug) about the guest during its "
             f"{FLAPS} restarts: " + "; ".join(f"{n} x '{k}'" for k, n in
                                                sorted(kinds.items(), key=lambda x: -x[1])[:6]))
        tap(len(lines) <= LINES_PER_FLAP * FLAPS,
            f"flap: log lines bounded ({len(lines)} for {FLAPS} restarts, at most "
            f"{LINES_PER_FLAP} each)")

        # e. The hostile agents.
        w0 = w1 = None
        for h in hostiles:
            hn = re.escape(h.name)
            items = re.findall(r"^MEMTIDE-HOSTILE item=(\w+) expect=(\w+) bytes=(\d+)",
                               h.console(), re.M)
            want = [HOSTILE_KINDS[i] for i in HOSTILE_ITEMS[hostiles.index(h)]]

            def kinds(hn=hn):
                return [m.group(1) for _, m in daemon.findall(VIOLATION_RE.format(hn))]
            # The last item's violation may come a moment after its marker.
            got = wait_until(lambda: set(want) <= set(kinds()), 120)
            hviol = daemon.findall(VIOLATION_RE.format(hn))
            tap([k for _, k, _ in items] == want and got,
                f"hostile: memtided counted a violation of each of {h.name}'s {len(want)} items, "
                f"of its kind ({len(hviol)} violations: {', '.join(kinds())})",
                None if got else "items: " + ", ".join(f"{i} ({k}, {b} bytes)" for i, k, b in items)
                + "\n" + "\n".join(m.string for _, m in hviol))
            counted = [int(m.group(3)) for _, m in hviol]
            tap(counted == list(range(1, len(hviol) + 1)),
                f"hostile: {h.name}'s violations are counted one by one "
                f"({counted[-1] if counted else 0} so far in the last)", f"{counted}")
            if hviol:
                note(f"FIGURE hostile: {h.name}: back-off after each violation: "
                     + ", ".join(f"{m.group(1)} {m.group(2)} s" for _, m in hviol))
                w0 = min(w0 or hviol[0][0], hviol[0][0])
                w1 = max(w1 or hviol[-1][0], hviol[-1][0])
        # The window in which the guests wrote at memtided: from the first
        # violation to the last.
        w0, w1 = (w0, w1) if w0 is not None else (0, 0)
        span = w1 - w0
        note(f"hostile: the items took {span:.0f} s from the first violation to the last")
        ticks = [t for t, _ in log_after(daemon, TICK_RE, w0) if t <= w1]
        took = [float(m.group(1)) for t, m in log_after(daemon, TICK_RE, w0) if t <= w1]
        tap(span > 0 and len(ticks) >= span / 4,
            f"hostile: the tick goes on meanwhile ({len(ticks)} ticks in {span:.0f} s)")
        if took:
            note(f"FIGURE hostile: during the items: tick took up to {max(took):.1f} ms "
                 f"(median {statistics.median(took):.2f} ms), largest gap between ticks "
                 f"{max(gaps(ticks), default=0):.2f} s")
        for g in (vmem, balloon):
            gn = re.escape(g.name)
            reps = [t for t, _ in log_after(daemon, REPORT_RE.format(gn), w0) if t <= w1]
            decs = [t for t, _ in decisions(daemon, g) if w0 <= t <= w1]
            closed = [m.string for t, m in log_after(daemon, rf"VM {gn}: agent (channel closed|"
                                                     rf"silent|protocol violation)", w0) if t <= w1]
            tap(span > 0 and len(reps) >= span / 4 and len(decs) >= span / 4 and not closed,
                f"hostile: {g.name}'s agent reports keep coming and memtided keeps deciding on "
                f"it ({len(reps)} reports, {len(decs)} decisions in {span:.0f} s, its link never "
                "closed or silent)", "\n".join(closed[:5]) or None)
            note(f"FIGURE hostile: {g.name}: largest gap between its reports "
                 f"{max(gaps(reps), default=0):.2f} s, between its decisions "
                 f"{max(gaps(decs), default=0):.2f} s")
        # From the first sample in the window: memtided's own growth as
        # it adds the VMs booting at the same time stays out.
        during = rss.between(w0, w1 + 2, daemon.proc.pid)
        if len(during) >= 2:
            grew = max(during) - during[0]
            note(f"FIGURE hostile: memtided RSS {during[0] / 1024:.1f} MiB at the first "
                 f"violation, up to {max(during) / 1024:.1f} MiB during the items, "
                 f"{during[-1] / 1024:.1f} MiB at its end ({grew:+d} KiB)")
            tap(grew <= RSS_BOUND, f"hostile: memtided's RSS stays bounded ({grew:+d} KiB, "
                f"at most {RSS_BOUND} KiB)")
        else:
            tap(False, "hostile: memtided's RSS was sampled during the items")

        # Every guest where memtided wants it before the faults on it.
        left = wait_settled(daemon, guests, 300)
        tap(not left, "memtided settles every guest before the next faults",
            "\n".join(f"{n}: {w}" for n, w in left.items()))
        state_file = os.path.join(state_dir, "state.ini")
        saved = wait_until(lambda: os.path.isfile(state_file), 60)
        tap(saved, "memtided has saved its state (it saves every 30 s)")

        # ---- a. memtided SIGKILLed in the middle of a resize ------------------
        for g, what in ((vmem, "virtio-mem unplug"), (balloon, "balloon inflate")):
            gn = re.escape(g.name)
            caught = fault_mid_shrink(daemon, g, lambda d=daemon: d.signal(signal.SIGKILL),
                                      f"a: memtided killed in the middle of a {what}")
            if not caught:
                tap(False, f"a: memtided killed in the middle of a {what} of {g.name}: no shrink "
                    "was caught under way in 3 attempts", daemon.tail())
                continue
            rc = kill_daemon(daemon)
            note(f"a: memtided's exit status {rc}")
            t_killed = caught[2]
            daemon = start_daemon()
            up = daemon.wait(r"memtided running", 120)
            restored = daemon.findall(r"VM (\S+): restored learned headroom")
            tap(up and any(m.group(1) == g.name for _, m in restored),
                f"a ({what}): restarted memtided restored {g.name}'s learned state "
                f"({len(restored)} VMs restored)", None if up else daemon.tail())
            first = wait_until(lambda: [(t, k) for t, k in decisions(daemon, g) if k != "skip"][7:8], 120)
            t8 = first[0][0] if first else time.monotonic()
            acts = [m.group(1) for t, m in daemon.findall(RESIZE_RE.format(gn)) if t <= t8]
            calm = first and len(acts) <= 1 and "grow" not in acts
            tap(calm, f"a ({what}): no resize storm: {len(acts)} resize(s) of {g.name} in its "
                f"first 8 decisions ({', '.join(acts) or 'none'})",
                None if calm else "\n".join(
                    line for t, line in list(daemon.lines)
                    if t <= t8 and g.name in line and not re.search(r"agent report seq", line)))
            left = wait_settled(daemon, [g], 180)
            t_done = time.monotonic()
            stuck = daemon.findall(rf"{gn}: stuck: ")
            tap(not left and not stuck,
                f"a ({what}): the resize finished: {g.name} is where memtided wants it, memtided "
                f"and libvirt agree on its size, never marked stuck",
                "\n".join(f"{n}: {w}" for n, w in left.items()) or "\n".join(
                    m.string for _, m in stuck))
            first_kinds = {}
            for _, m in daemon.findall(rf"{gn}: (hold|grow|shrink|wait|stuck): "
                                       rf"(?:\w+ at [\d.]+ \w+(?:: (.*?)(?: \(|: |$))?)?"):
                if sum(first_kinds.values()) < 8:
                    why = "" if m.group(1) == "hold" or not m.group(2) else f" ({m.group(2)})"
                    key = m.group(1) + re.sub(r"[0-9.]+ (B|KiB|MiB|GiB)", "X", why)
                    first_kinds[key] = first_kinds.get(key, 0) + 1
            note(f"a ({what}): the restarted memtided's first 8 decisions on {g.name}: "
                 + "; ".join(f"{n} x {k}" for k, n in first_kinds.items()))
            note(f"a ({what}): what the restarted memtided said of {g.name} until it settled:\n"
                 + said(daemon, 0, t_done, re.escape(g.name)))
            if not left:
                note(f"FIGURE a ({what}): SIGKILL -> memtided running again "
                     f"{up[0] - t_killed:.1f} s (restart included) -> {g.name} settled "
                     f"{t_done - t_killed:.1f} s after the kill, at {fmt(size_kib(g))}")

        # ---- b. libvirtd SIGKILLed while memtided resizes ---------------------
        mark = daemon.mark()
        pid = libvirtd_pid()
        if pid is None:
            tap(False, "b: libvirtd's pid is in /run/libvirtd.pid")
        else:
            for g in (vmem, balloon):
                grow_behind(g)
            busy = daemon.wait(RESIZE_RE.format(f"(?:{re.escape(vmem.name)}|"
                                                f"{re.escape(balloon.name)})"), 180, mark)
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            gone = wait_until(lambda: libvirtd_pid() != pid, 30, 0.1)
            testbed.ensure_daemons()
            t_up = time.monotonic()
            lost = daemon.wait(r"Lost the connection", 120, mark)
            conn = daemon.wait(r"Connected to qemu:///system", 180, mark)
            tap(busy and gone and lost and conn and daemon.alive(),
                "b: libvirtd killed with SIGKILL while memtided resized and started again: "
                "memtided notices, reconnects and keeps running",
                None if conn else daemon.tail())
            if conn:
                note(f"FIGURE b: libvirtd SIGKILL -> memtided reconnected {conn[0] - t_kill:.1f} s "
                     f"(libvirtd started again after {t_up - t_kill:.1f} s)")
            tb.reconnect()
            dropped = daemon.findall(r"VM (\S+): gone, no longer managed", mark)
            m = wait_until(lambda: (lambda m: m if all(("memtide_vm_size_bytes", g.name) in m
                                                       for g in guests) else None)(metrics(daemon)),
                           60)
            tap(not dropped and m, f"b: no VM lost: memtided still manages all {len(guests)} guests",
                "\n".join(x.string for _, x in dropped) or None)
            # memtided acts again over the new connection.
            mark2 = daemon.mark()
            balloon.set_balloon(balloon.spec.memory_kib)
            again = daemon.wait(RESIZE_RE.format(re.escape(balloon.name)), 180, mark2)
            tap(again, "b: memtided resizes again after the reconnect",
                None if again else daemon.tail())
            left = wait_settled(daemon, guests, 300, mark)
            t_done = time.monotonic()
            tap(not left, "b: every guest settles where memtided wants it",
                "\n".join(f"{n}: {w}" for n, w in left.items()))
            note("b: what memtided said from the kill until every guest settled:\n"
                 + said(daemon, t_kill, t_done))
            if not left and conn:
                note(f"FIGURE b: libvirtd SIGKILL -> every guest settled {t_done - t_kill:.1f} s")

        # ---- c. a guest reset, a guest destroyed, mid-resize -----------------
        vn, bn = re.escape(vmem.name), re.escape(balloon.name)
        mark = daemon.mark()
        console = vmem.console_mark()
        caught = fault_mid_shrink(daemon, vmem, lambda: vmem.dom.reset(0),
                                  "c: vmem reset in the middle of a virtio-mem unplug")
        tap(caught, "c: vmem reset in the middle of a virtio-mem unplug",
            None if caught else daemon.tail())
        if caught:
            ready = wait_console(vmem, r"^MEMTIDE-GUEST-READY", 180, console)
            rebooted = daemon.wait(rf"VM {vn}: the guest rebooted", 180, mark)
            tap(ready and rebooted, "c: the reset guest boots again and memtided sees the reboot "
                "(its agent's new boot id)", None if rebooted else daemon.tail())
            if rebooted:
                note(f"FIGURE c: reset -> memtided has the rebooted guest's agent "
                     f"{rebooted[0] - caught[2]:.1f} s")

        mark_b = daemon.mark()
        caught_b = fault_mid_shrink(daemon, balloon, lambda: balloon.dom.destroy(),
                                    "c: balloon destroyed in the middle of a balloon inflate")
        tap(caught_b, "c: balloon destroyed in the middle of a balloon inflate",
            None if caught_b else daemon.tail())
        if caught_b:
            gone = daemon.wait(rf"VM {bn}: gone, no longer managed", 60, mark_b)
            tap(gone, "c: memtided drops the destroyed VM", None if gone else daemon.tail())
            if gone:
                note(f"FIGURE c: destroy -> memtided dropped the VM {gone[0] - caught_b[2]:.1f} s")
            # The others are managed meanwhile: decisions on them go on.
            t0 = time.monotonic()
            wait_until(lambda: all(len([1 for t, _ in decisions(daemon, g) if t > t0]) >= 5
                                   for g in [flap] + hostiles), 60)
            n = {g.name: len([1 for t, _ in decisions(daemon, g) if t > t0])
                 for g in [flap] + hostiles}
            tap(all(v >= 5 for v in n.values()),
                "c: the other guests are still managed (decisions on each) while balloon is gone",
                f"{n}")
            after_gone = [m.string for t, m in daemon.findall(DECIDED_RE.format(bn), mark_b)
                          if gone and t > gone[0]]
            tap(not after_gone, "c: no decision on the destroyed VM once dropped",
                "\n".join(after_gone[:3]))
            console_b = balloon.console_mark()
            t_start = time.monotonic()
            balloon.dom.create()
            ready = wait_console(balloon, r"^MEMTIDE-GUEST-READY", 180, console_b)
            managed = wait_log_after(daemon, rf"VM {bn}: managing", t_start, 120, mark_b)
            restored = log_after(daemon, rf"VM {bn}: restored learned headroom", t_start, mark_b)
            tap(ready and managed and restored,
                "c: started again, the VM is managed again with its learned state",
                None if managed else daemon.tail())
        left = wait_settled(daemon, guests, 300, mark)
        t_all = time.monotonic()
        m = metrics(daemon)
        stuck = {g.name: m.get(("memtide_vm_stuck", g.name)) for g in guests}
        tap(not left, "c: every guest settles where memtided wants it; none is left stuck",
            "\n".join(f"{n}: {w}" for n, w in left.items()) + f"\nstuck: {stuck}")
        marks = daemon.findall(rf"(?:{vn}|{bn}): stuck: ", mark)
        note(f"c: stuck marks meanwhile: {len(marks)}"
             + "".join(f"\n  {m.string}" for _, m in marks[:4]))
        if caught:
            note("c: what memtided said of vmem from the reset until it settled:\n"
                 + said(daemon, caught[2], t_all, vn))
        if caught_b:
            note("c: what memtided said of balloon from the destroy until it settled:\n"
                 + said(daemon, caught_b[2], t_all, bn))
        if not left and caught and caught_b:
            note(f"FIGURE c: reset -> settled {t_all - caught[2]:.1f} s; destroy -> started "
                 f"again and settled {t_all - caught_b[2]:.1f} s (boot included)")
        oom = [f"{g.name}: {line}" for g in guests for line in g.console().splitlines()
               if re.search(r"Out of memory|oom-kill|Killed process", line)]
        tap(not oom, "no OOM kill in any guest", "\n".join(oom[:5]))
    finally:
        rc = daemon.stop()
    tap(rc == 0, f"memtided exits 0 on SIGTERM (got {rc})", None if rc == 0 else daemon.tail())

finish()
