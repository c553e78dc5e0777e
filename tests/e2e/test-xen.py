#!/usr/bin/python3
"""e2e-xen (TAP): memtided with its Xen driver, in dom0 of a real Xen.

One boot of the Xen testbed (tests/testbed/xen, docs/testbed-xen.md):
Debian's Xen 4.17 under QEMU TCG, PV dom0 running memtided
(--backend xen) on a private bus, five PV domUs with memtide-agent
(over xenstore) and memtide-workload:
  xidle      512 MiB boot, static-max 768 MiB, idle
  xramp      256 MiB, static-max 768 MiB; RAMP_AFTER s after boot its
             workload ramps to RAMP_TO MiB with no allocation floor: if it
             is not grown in time its kernel OOM-kills the workload
  xstuck     256 MiB, static-max 768 MiB, a guest that ignores its
             target: every 50 ms it writes its boot target back to its
             balloon's target_kb (sysfs), so memory/target moves it for at
             most that long; its workload ramps to 300 MiB (with a floor,
             no OOM) STUCK_AFTER s after boot
  xliar-cap  256 MiB, static-max 512 MiB, policy max 384 MiB, and
  xliar-max  256 MiB, static-max 448 MiB, policy max 100%: their agents
             read a fake /proc/meminfo that always says the guest is full
Checks (outcomes, with generous deadlines; times are FIGURE lines):
  1. memtided finds the five domUs and gets each agent's reports;
  2. the idle domU is shrunk toward its need (figure: time to reach it);
  3. the ramping domU is grown before it runs out: it reaches its
     working set, no OOM kill (figure: ramp start -> first grow applied);
  4. xstuck is marked stuck, never passes its boot memory, and another
     domU is grown after it was marked (figure: its timeline);
  5. the liars are grown to their caps and never past them: no target
     memtided asks, no memory/target in xenstore and no tot_pages above
     the policy max (xliar-cap) or static-max (xliar-max);
  6. restarting xenconsoled (a xenstore client) and then memtided (same
     state directory) causes no resize storm: at most one resize of each
     domU in the 8 decisions on it that follow (a restarted memtided may
     finish a move the first one planned, and learned headroom keeps
     decaying: one resize; a storm is more), memtided exits 0 and saves
     its state, the restarted one restores it;
  7. dom0 is only observed until a [vm Domain-0] group names it; then,
     after SIGHUP, its agent (run in dom0 over xenstore) connects and
     memtided shrinks it, never below 512 MiB although the group says
     min = 128M; its memory/static-max is its maxmem, which the driver
     wrote when it first saw dom0.
Environment: MEMTIDE_BUILD_ROOT (the meson build directory: memtided,
memtidectl, memtide-agent, memtide-workload), MEMTIDE_XENBED_WORKDIR.
Needs root, the Xen testbed's Debian packages (installed here when
missing) and the e2e lock held by the caller (flock /tmp/memtide-e2e.lock).
"""

import atexit
import os
import re
import sys
import time
import traceback

import e2elib
from e2elib import bail, finish, note, tap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "testbed", "xen"))
import xenbed  # noqa: E402
import memtidebed  # noqa: E402

BUILD = os.environ.get("MEMTIDE_BUILD_ROOT")
if not BUILD or not os.path.isdir(BUILD):
    bail("MEMTIDE_BUILD_ROOT is not a build directory (run through meson test)")
WORKDIR = os.environ.get("MEMTIDE_XENBED_WORKDIR") or os.path.join(BUILD, "testbed-cache", "xen")

MIN = 128                     # MiB, policy min
HEADROOM = 64                 # MiB
RAMP_AFTER = 100              # s after xramp's boot its ramp starts
RAMP_TO = 400                 # MiB it holds
STUCK_AFTER = 40              # s after xstuck's boot its workload ramps
STUCK_TO = 300
STUCK_TIMEOUT = 10            # s, the host policy's stuck-timeout
CAP = 384                     # MiB, xliar-cap's policy max
LIAR_MAX_STATIC = 448         # MiB, xliar-max's static-max
SLACK = 8                     # MiB: xl list rounds, the balloon stops a little off
OOM = re.compile(r"Out of memory|oom-kill|Killed process")

HOST_POLICY = f"""tick-interval = 1s
stuck-timeout = {STUCK_TIMEOUT}s
min-change = 16M
reserve = 256M
"""
VM_POLICY = f"""min = {MIN}M
max = 100%
headroom = {HEADROOM}M
headroom-min = {HEADROOM}M
reclaim-cold-cache = false
"""
DOM0_MIB = 1024               # dom0_mem=1024M,max:1024M
DOM0_FLOOR = 512              # MiB, never below for an opt-in domain
DOM0_OBSERVED = "dom0 is observed only: no [vm Domain-0] group names it"
DOM0_MANAGED = f"dom0 is managed: [vm Domain-0] names it; never below {DOM0_FLOOR} MiB"
POLICIES = {"10-liar-cap.conf": f"[vm xliar-cap]\nmax = {CAP}M\n"}

DOMUS = {
    "xidle": dict(memory_mib=512, maxmem_mib=768),
    "xramp": dict(memory_mib=256, maxmem_mib=768, reserve="0M",
                  workload=f"sleep:{RAMP_AFTER}s,ramp:0M-{RAMP_TO}M/60s,hold:30m"),
    "xstuck": dict(memory_mib=256, maxmem_mib=768, reserve="24M", pin_target=True,
                   workload=f"sleep:{STUCK_AFTER}s,ramp:0M-{STUCK_TO}M/20s,hold:30m"),
    "xliar-cap": dict(memory_mib=256, maxmem_mib=512, liar=True),
    "xliar-max": dict(memory_mib=256, maxmem_mib=LIAR_MAX_STATIC, liar=True),
}

UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "TiB": 2**20}
SZ = r"([\d.]+) (B|KiB|MiB|GiB|TiB)"


def mib(num, unit):
    return float(num) * UNITS[unit]


def resize_re(name, kind="grow|shrink"):
    """memtided's action line: 'resize: NAME: grow A -> B (...) [balloon P -> Q]: why'."""
    return (rf"resize: (?:\(emergency\) )?{re.escape(name)}: (?:emergency )?({kind}) "
            rf"{SZ} -> {SZ}")


def decided_re(name):
    """Its decision on a VM each tick (--verbose): 'NAME: hold|grow|...: why'."""
    return rf"(?:^|\s){re.escape(name)}: (hold|grow|shrink|wait|stuck|skip): "


def targets(bed, name, since=0):
    """[(dom0 uptime, kind, MiB asked)] of memtided's resizes of name."""
    return [(t, m.group(1), mib(m.group(4), m.group(5)))
            for t, m in bed.log_find(resize_re(name), since)]


class Sizes:
    """xl list samples on dom0's clock: {name: [(dom0 uptime, MiB)]}."""

    def __init__(self, bed):
        self.bed = bed
        self.samples = {}

    def poll(self):
        out = self.bed.sh("cut -d' ' -f1 /proc/uptime; xl list")
        lines = out.splitlines()
        t = float(lines[0])
        now = {}
        for line in lines[2:]:
            f = line.split()
            if len(f) >= 3 and f[1].isdigit():
                now[f[0]] = int(f[2])
                self.samples.setdefault(f[0], []).append((t, int(f[2])))
        return now

    def most(self, name):
        return max((s for _, s in self.samples.get(name, [])), default=None)

    def first_at_most(self, name, limit, after):
        for t, s in self.samples.get(name, []):
            if t >= after and s <= limit:
                return t
        return None


def settled(bed, name, since):
    kinds = [m.group(1) for _, m in bed.log_find(decided_re(name), since, refresh=False)[-2:]]
    return kinds == ["hold", "hold"]


def storm(bed, names, since):
    """'' when no domU was resized more than once since the mark (a
    storm is a run of resizes, or one undone by the next), else what was."""
    bad = []
    for n in names:
        acts = targets(bed, n, since)
        if len(acts) > 1:
            bad.append(f"{n}: {len(acts)} resizes: "
                       + ", ".join(f"{k} to {s:.0f} MiB" for _, k, s in acts[:6]))
    return "\n".join(bad)


def decisions(bed, name, since):
    return [m for _, m in bed.log_find(decided_re(name), since, refresh=False)
            if m.group(1) != "skip"]


try:
    xenbed.ensure_packages(install=os.geteuid() == 0)
    memtidebed.build_paths(BUILD)
except xenbed.initramfs.PrerequisiteError as e:
    bail(f"prerequisite missing: {e}")
if os.geteuid() != 0:
    bail("must run as root (QEMU, the packages)")

t_test = time.monotonic()
bed = memtidebed.MemtideXen(BUILD, WORKDIR, memory_mib=4096)
e2elib.mttap.at_exit(lambda: bed.stop(failed=not e2elib.mttap.all_passed()))
# An unexpected exception must not leave QEMU running either.
atexit.register(lambda: bed.stop(failed=True))
try:
    bed.start()
except Exception as e:  # XenbedError, PrerequisiteError: the console tail says why
    bail(f"the Xen testbed did not come up: {e}")
note(f"FIGURE Xen + dom0 up in {bed.t_ready:.1f} s")
sizes = Sizes(bed)

try:
    # A memtided built without the driver refuses the name (exit 2).
    answer = bed.sh("memtided --backend xen --version 2>&1; echo rc=$?")
    has_xen = "rc=0" in answer
    tap(has_xen, "memtided has the Xen driver (--backend xen)",
        None if has_xen else f"memtided refuses --backend xen ({answer.strip()}): build the "
        "tree with the Xen driver (meson option xen, libxen-dev)")

    t0 = time.monotonic()
    for name, spec in DOMUS.items():
        bed.create(name, **spec)
    ready = {}
    for name in DOMUS:
        try:
            ready[name] = bed.wait_domu_ready(name, 300)
        except xenbed.XenbedError as e:
            note(f"{name}: {e}\n" + "\n".join(bed.console(name).splitlines()[-20:]))
    tap(len(ready) == len(DOMUS), f"the {len(DOMUS)} domUs booted with the agent",
        f"{time.monotonic() - t0:.1f} s; " + ", ".join(
            f"{n}: {m[1].group(0)[:90]}" for n, m in ready.items()))
    if len(ready) != len(DOMUS):
        bail("domUs did not boot")
    sizes.poll()

    run = bed.start_memtided("xen", VM_POLICY, HOST_POLICY, policies=POLICIES)
    t_start = bed.log_find(rf"MEMTIDED-START run={run}")[0][0]
    up = bed.try_wait(lambda: bed.log_find(r"memtided running"), 300, "memtided running")
    tap(up, "memtided runs in dom0 with --backend xen",
        None if up else bed.log_tail())
    if not up:
        bail("memtided did not start: " + bed.log_tail(10))

    # 1. the domains and their agents
    # The first believed report is logged; the liars' reports are
    # believable too (their MemTotal is true).
    def seen_all():
        return all(bed.log_find(rf"VM {re.escape(n)}: first agent report", refresh=False)
                   for n in DOMUS) or None
    agents = bed.try_wait(lambda: (bed.read_log(), seen_all())[1], 300, "agent reports")
    rc, listing = bed.memtidectl("status")
    tap(rc == 0 and all(n in listing for n in DOMUS), "memtidectl status shows the five domUs",
        listing)
    tap(agents, "each domU's agent reports reach memtided over xenstore",
        None if agents else "\n".join(
            f"{n}: " + " | ".join(m.string for _, m in bed.log_find(
                rf"VM {re.escape(n)}: (first agent|agent|the guest agent)", refresh=False)[-3:])
            for n in DOMUS))

    # 2. idle shrink; 3. ramp; 4. stuck; 5. liars: all run at once, polled
    # here every second until each has its outcome or its deadline.
    ramp_start = stuck_mark = None
    idle_done = liars_done = None
    deadline = time.monotonic() + 1200
    polls = 0
    while time.monotonic() < deadline:
        # xl list is the heaviest poll for dom0: every third round.
        if polls % 3 == 0:
            now = sizes.poll()
        polls += 1
        bed.read_log()
        for n in ("xramp", "xstuck"):
            bed.console(n)
        if ramp_start is None:
            hit = bed.console_find("xramp", r"step 2/3 ramp")
            if hit:
                ramp_start = bed.dom0_time("xramp", hit[0][0])
        if stuck_mark is None:
            hit = bed.log_find(r"xstuck: stuck: ", refresh=False)
            if hit:
                stuck_mark = hit[0][0]
        if idle_done is None and now.get("xidle", 999) <= 256 and settled(bed, "xidle", 0):
            idle_done = True
        if liars_done is None and now.get("xliar-cap", 0) >= CAP - SLACK \
                and now.get("xliar-max", 0) >= LIAR_MAX_STATIC - SLACK:
            liars_done = True
        held = bed.console_find("xramp", rf"anon={RAMP_TO}M .*step=hold")
        others_after = stuck_mark is not None and any(
            t > stuck_mark for n in DOMUS if n != "xstuck"
            for t, k, _ in targets(bed, n) if k == "grow")
        if idle_done and liars_done and held and others_after:
            break
        if not bed.memtided_pid():
            break
        # Each poll is a few commands in dom0, which shares 2 TCG CPUs
        # with five domUs: not faster.
        time.sleep(2)

    # 2.
    shrinks = targets(bed, "xidle")
    final = shrinks[-1][2] if shrinks else None
    t_need = sizes.first_at_most("xidle", (final or 0) + SLACK, t_start) if final else None
    tap(final is not None and final <= 256 and now.get("xidle", 999) <= 256,
        f"idle domU shrunk from 512 MiB toward its need (policy min {MIN} MiB)",
        f"memtided's last target {final} MiB, xl list {now.get('xidle')} MiB, "
        f"{len(shrinks)} resizes")
    if t_need is not None:
        note(f"FIGURE idle domU reached its need ({final:.0f} MiB) {t_need - t_start:.1f} s "
             f"after memtided started")

    # 3.
    grows = [t for t, k, _ in targets(bed, "xramp") if k == "grow"]
    tap(ramp_start is not None, "xramp's workload began its ramp",
        "\n".join(bed.console("xramp").splitlines()[-10:]))
    after = [t for t in grows if ramp_start is not None and t >= ramp_start - 1]
    tap(after, "xramp is grown while its workload ramps", bed.log_tail(20) if not after else
        f"{len(after)} grows")
    if after:
        note(f"FIGURE ramp start to first grow applied: {max(after[0] - ramp_start, 0):.1f} s")
    bed.console("xramp")  # the ramp may have ended since the last poll
    held = bed.console_find("xramp", rf"anon={RAMP_TO}M .*step=hold")
    tap(held, f"xramp reached its {RAMP_TO} MiB working set",
        "\n".join(bed.console("xramp").splitlines()[-10:]))
    oom = [l for l in bed.console("xramp").splitlines() if OOM.search(l)]
    tap(not oom, "no OOM kill in xramp", "\n".join(oom[:5]))

    # 4.
    st_targets = targets(bed, "xstuck")
    above = [(t, s) for t, k, s in st_targets if k == "grow" and s > 256 + SLACK]
    tap(stuck_mark is not None, "xstuck (it rewrites its own balloon target) is marked stuck",
        "\n".join(f"{t} {m.string}" for t, m in bed.log_find(r"xstuck", refresh=False)[-15:]))
    # The balloon may move for up to 50 ms after each memory/target write
    # before the guest puts its own target back.
    tap((sizes.most("xstuck") or 0) <= 256 + 64,
        f"xstuck stayed near its 256 MiB boot memory (largest {sizes.most('xstuck')} MiB, "
        f"targets asked {[round(s) for _, _, s in st_targets][:6]} MiB)")
    others = [(n, t) for n in DOMUS if n != "xstuck"
              for t, k, _ in targets(bed, n) if k == "grow" and stuck_mark and t > stuck_mark]
    tap(others, "another domU is grown after xstuck was marked stuck",
        f"{len(others)} grows: " + ", ".join(f"{n} at {t:.1f}" for n, t in others[:5]))
    hit = bed.console_find("xstuck", r"step 2/3 ramp")
    st_ramp = bed.dom0_time("xstuck", hit[0][0]) if hit else None
    marks = bed.log_find(r"WARNING.*xstuck: stuck: |xstuck: no longer stuck", refresh=False)
    note("xstuck's stuck marks (s after memtided started): " + "; ".join(
        f"{t - t_start:.1f} {'stuck' if 'stuck: ' in m.group(0) else 'no longer stuck'}"
        for t, m in marks[:12]))
    if stuck_mark is not None:
        note("FIGURE stuck timeline (s after memtided started): "
             + (f"ramp start {st_ramp - t_start:.1f}, " if st_ramp else "")
             + (f"first target above boot memory {above[0][0] - t_start:.1f} "
                f"({above[0][1]:.0f} MiB), " if above else "")
             + f"marked stuck {stuck_mark - t_start:.1f}"
             + (f", first grow of another domU after it {others[0][1] - t_start:.1f}"
                if others else ""))

    # 5.
    for name, cap in (("xliar-cap", CAP), ("xliar-max", LIAR_MAX_STATIC)):
        asked = [s for _, _, s in targets(bed, name)]
        mem = bed.xs_mem(name)
        most = sizes.most(name)
        over = [s for s in asked if s > cap + 0.5]
        tap(asked and not over and mem.get("target", 0) <= cap * 1024
            and (most or 0) <= cap + 1 and mem.get("static-max", 0) >= mem.get("target", 0),
            f"{name}: never above its cap of {cap} MiB "
            f"({'policy max' if name == 'xliar-cap' else 'static-max'})",
            f"targets asked {asked[:3]}...{asked[-3:]} MiB, xenstore {mem}, largest tot_pages "
            f"{most} MiB")
        tap((most or 0) >= cap - SLACK, f"{name}: grown to its cap ({most} MiB)")

    # 6. restarts
    bed.destroy("xstuck")
    names = [n for n in DOMUS if n != "xstuck"]
    mark = bed.log_mark()
    ok = bed.try_wait(lambda: (bed.read_log(), all(settled(bed, n, mark) for n in names))[1],
                      300, "every domU settled")
    tap(ok, "memtided settles: it holds every domU (two holds in a row)",
        None if ok else "\n".join(m.string for n in names
                                  for _, m in bed.log_find(decided_re(n), mark)[-1:]))
    # xenconsoled: stop and start it as dom0's /init does.
    bed.sh("kill $(cat /run/xenconsoled.pid); i=0; while kill -0 $(cat /run/xenconsoled.pid) "
           "2>/dev/null; do i=$((i+1)); [ $i -le 100 ] || exit 1; usleep 100000; done; "
           "xenconsoled --pid-file=/run/xenconsoled.pid --log=guest "
           "--log-dir=/var/log/xen/console")
    mark = bed.log_mark()
    seen = bed.try_wait(lambda: (bed.read_log(),
                                 all(len(decisions(bed, n, mark)) >= 8 for n in names))[1],
                        300, "8 decisions on each domU after the xenconsoled restart")
    acts = bed.log_find(r"resize: ", mark)
    bad = storm(bed, names, mark)
    tap(seen and not bad and bed.memtided_pid(),
        f"xenconsoled restarted: memtided keeps running, no resize storm in the next 8 "
        f"decisions on each domU (at most one resize each; {len(acts)} in all)",
        bad or "\n".join(m.string for _, m in acts[:5]))
    console_ok = bed.try_wait(lambda: re.search(r"MEMTIDE-DOMU-MEMINFO",
                                                 bed.console("xidle")[-2000:]), 120,
                              "xidle's console after the restart")
    tap(console_ok, "the domU consoles are logged again after the xenconsoled restart")

    status = bed.stop_memtided()
    tap(status == 0, f"memtided exits 0 on SIGTERM (got {status})")
    saved = bed.run(f"[ -f {memtidebed.STATE}/state.ini ]")[0] == 0
    tap(saved, "memtided saved its state on exit")
    mark = bed.log_mark()
    bed.start_memtided("xen", VM_POLICY, HOST_POLICY, policies=POLICIES)
    seen = bed.try_wait(lambda: (bed.read_log(),
                                 all(len(decisions(bed, n, mark)) >= 8 for n in names))[1],
                        300, "8 decisions on each domU after the memtided restart")
    acts = bed.log_find(r"resize: .*: (shrink|grow) \d", mark)
    restored = bed.log_find(r"restored learned", mark)
    bad = storm(bed, names, mark)
    # One resize is memtided finishing a move (a shrink the first one
    # had planned) or following the learned headroom down; a storm is more.
    tap(seen and not bad, f"restarted memtided: no resize storm in its first 8 decisions on "
        f"each domU (at most one resize each; {len(acts)} in all)",
        bad or "\n".join(m.string for _, m in acts[:5]))
    tap(len(restored) >= len(names), f"restarted memtided restored the learned state of the "
        f"{len(names)} domUs ({len(restored)})")
    note("resize lines per domU over the whole run: " + ", ".join(
        f"{n} {len(targets(bed, n))}" for n in DOMUS))

    # 7. dom0 is observed only until a group names it
    # (scenarios/dom0.py has the longer version).
    dom0_max = bed.xs_read("/local/domain/0/memory/static-max")
    tap(dom0_max == str(DOM0_MIB * 1024),
        f"dom0's memory/static-max is its maxmem, written when memtided saw it ({dom0_max} KiB)")
    early = bed.log_find(r"resize: Domain-0", refresh=False)
    tap(not early and bed.log_find(rf"VM Domain-0: managing .*{re.escape(DOM0_OBSERVED)}",
                                   refresh=False),
        "dom0 observed only without [vm Domain-0]: announced so, never resized",
        "\n".join(m.string for _, m in early[:3]))
    bed.sh("(memtide-agent --transport xenstore >/var/log/agent0.log 2>&1 &) "
           "</dev/null >/dev/null 2>&1")
    mark = bed.log_mark()
    bed.write_file(f"{memtidebed.POLICIES}/50-dom0.conf", f"[vm Domain-0]\nmin = {MIN}M\n")
    bed.sh(f"kill -HUP {bed.memtided_pid()}")
    shrunk = bed.try_wait(lambda: bed.log_find(r"resize: Domain-0: shrink", mark), 300,
                          "a shrink of dom0")
    managed = bed.log_find(rf"VM Domain-0: {re.escape(DOM0_MANAGED)}", mark, refresh=False)
    agent = bed.log_find(r"VM Domain-0: agent connected", mark, refresh=False)
    tap(managed and agent and shrunk, "[vm Domain-0] and SIGHUP: dom0 managed, its agent "
        "connected over xenstore, and shrunk", bed.log_tail(20))
    bed.try_wait(lambda: (bed.read_log(), settled(bed, "Domain-0", mark))[1], 120,
                 "dom0 settled")
    to = [int(m.group(1)) for _, m in bed.log_find(r"resize: Domain-0: .* -> (\d+) MiB", mark)]
    size = bed.size_mib("Domain-0")
    target = bed.xs_mem("Domain-0").get("target", 0)
    tap(to and min(to) >= DOM0_FLOOR and size >= DOM0_FLOOR and target >= DOM0_FLOOR * 1024,
        f"dom0 never below {DOM0_FLOOR} MiB although its group says min = {MIN}M "
        f"(resized to {to} MiB, now {size} MiB, memory/target {target} KiB)")
except xenbed.XenbedError as e:
    tap(False, f"the testbed failed: {e}")
except Exception:  # a bug here: fail with the trace, still clean up
    tap(False, "test-xen raised", traceback.format_exc())
note(f"FIGURE e2e-xen wall time {time.monotonic() - t_test:.1f} s")
if e2elib.mttap.all_passed():
    bed.ok = True
finish()
