#!/usr/bin/python3
"""e2e (TAP): memtided and the guest agents, on real guests.

memtided starts first, then two TCG guests boot with memtide-agent:
  psi   512 MiB boot + 1 GiB virtio-mem (none plugged), 150 MiB of page
        cache on its cache disk; after PSI_AFTER s a workload burst
        allocates 300 MiB in a guest memtided has shrunk to its need
  quiet 512 MiB, balloon only; its /init kills the agent AGENT_STOP s
        after boot and starts it again AGENT_RESTART s after boot; at
        RAMP_AFTER s its workload allocates 240 MiB within 2 s
Both guests print the agent's RSS and CPU time every AGENT_STAT s.
Checks:
  1. each guest's hello reaches memtided within 2 s of the guest's ready
     line, and its reports come every second;
  2. the burst raises PSI in the psi guest: the agent's pressure report
     reaches memtided, which plans at once and grows the guest (figure:
     host receipt of the pressure report -> grow applied), with no OOM;
  3. killing the agent makes memtided fall back to balloon statistics
     within the fresh limit (3 s); restarting it resumes the reports;
  3b. the quiet guest's fast allocation: the agent's memory watch sends
     a "memory" report at once, whose used memory rises fast enough for
     MemAvailable to be gone within 3 s; memtided plans at once ("used
     memory rises at") and grows the guest, no OOM kill;
  4. no protocol violation and no disbelieved report from honest agents;
  5. figures: report latency (guest clock -> memtided, above the fastest
     report), agent RSS and CPU inside the guest.
Environment: MEMTIDE_DAEMON, MEMTIDE_WORKLOAD, MEMTIDE_AGENT (all required).
"""

import re
import statistics
import time

import e2elib
from e2elib import Daemon, bail, finish, note, tap

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

DAEMON = e2elib.require_env_file("MEMTIDE_DAEMON", "the built memtided")
WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = e2elib.require_env_file("MEMTIDE_AGENT", "the built memtide-agent")

MIN = 256                     # MiB, policy min
PSI_AFTER = 40                # s after boot the burst starts
AGENT_STOP = 20               # s after boot the quiet guest's agent is killed
AGENT_RESTART = 35            # ... and started again
AGENT_STAT = 5                # s between agent footprint lines
RAMP_AFTER = 70               # s after boot the quiet guest allocates fast
FRESH = 3.0                   # s: the host's fresh limit for agent reports

# Without cold-cache reclaim: the burst must land in a guest full of the
# page cache it read at boot, so that it stalls and fires its PSI
# trigger (what this test is about). With it, memtided frees that cache
# first and grows the guest as the burst rises, often before any stall
# (test-bench-real checks the reclaim).
VM_POLICY = f"""min = {MIN}M
max = 100%
headroom = 64M
reclaim-cold-cache = false
"""
HOST_POLICY = """tick-interval = 1s
stuck-timeout = 30s
min-change = 16M
"""
OOM = re.compile(r"Out of memory|oom-kill|Killed process")
STAT_RE = re.compile(r"^MEMTIDE-AGENT-STAT pid=(\d+) rss_kb=(\d+) pss_kb=(\d+) "
                     r"cpu_ticks=(\d+) uptime=([\d.]+)", re.M)
REPORT_RE = r"VM {}: agent report seq (\d+) \((\w+)\) mono_us (\d+)"
# memtided's action line: "resize: [(emergency) ]NAME: [emergency ]grow A -> B ..."
GROW_RE = r"resize: .*{}: .*\bgrow \d"


def wait(daemon, pattern, timeout, since=0):
    hit = daemon.wait(pattern, timeout, since)
    return hit[0] if hit else None


def agent_footprint(guest):
    """(max RSS KiB, max PSS KiB, CPU % over the run) from the console."""
    stats = [tuple(float(x) for x in m.groups()) for m in STAT_RE.finditer(guest.console())]
    if len(stats) < 2:
        return None
    rss = max(s[1] for s in stats)
    pss = max(s[2] for s in stats)
    # Per process: the restarted agent starts its CPU count again.
    busy = span = 0.0
    for a, b in zip(stats, stats[1:]):
        if a[0] == b[0] and b[3] >= a[3]:
            busy += (b[3] - a[3]) / 100.0
            span += b[4] - a[4]
    return rss, pss, (100.0 * busy / span if span else float("nan")), len(stats)


def report_latency(daemon, name):
    """Latency of each report above the fastest report near it: (host time
    the line was logged) - (guest clock when the agent built it), minus
    the smallest such difference within 10 s (the guest clock drifts
    against the host's under TCG).  The fastest report bounds the
    transport; this is what a report waits beyond it (agent loop, QEMU,
    memtided's main loop)."""
    pts = [(t, t - int(m.group(3)) / 1e6, m.group(2))
           for t, m in daemon.findall(REPORT_RE.format(re.escape(name)))]
    if len(pts) < 5:
        return None
    extra = [(off - min(o for u, o, _ in pts if abs(u - t) <= 10), reason)
             for t, off, reason in pts]
    ext = sorted(e for e, _ in extra)
    psi = [e for e, reason in extra if reason == "psi"]
    return (statistics.median(ext), ext[int(len(ext) * 0.95)], ext[-1], len(ext),
            max(psi) if psi else None, len(psi))


with Testbed(workload=WORKLOAD, agent=AGENT) as tb:
    # The daemon first: it must see the guests boot.
    daemon = Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY).start()
    if not daemon.wait(r"memtided running", 20):
        bail(f"memtided did not start:\n{daemon.tail()}")
    stat = f"memtide.agent_stat={AGENT_STAT}"
    try:
        psi, quiet = tb.up([
            GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB,
                      workload=f"cache:150M,sleep:{PSI_AFTER}s,burst:300M/20s,sleep:10m",
                      # The PSI trigger path is this guest's subject: without
                      # the memory watch, whose report would make memtided
                      # grow it before it stalls (3b tests that path).
                      extra_cmdline=f"{stat} memtide.workload_reserve=16M "
                                    "memtide.agent_opts=--memory-watch=0"),
            GuestSpec(memory_kib=512 * MiB, cache_disk_kib=0,
                      workload=f"sleep:{RAMP_AFTER}s,ramp:0M-240M/2s,hold:15s,free,sleep:10m",
                      extra_cmdline=f"{stat} memtide.agent_stop_after={AGENT_STOP} "
                                    f"memtide.agent_restart_after={AGENT_RESTART}"),
        ])
    except Exception as e:
        daemon.stop()
        bail(f"testbed did not come up: {e}\n{daemon.tail()}")
    guests = [psi, quiet]
    try:
        # 1. hello and reports.
        for g in guests:
            t_hello = wait(daemon, rf"VM {re.escape(g.name)}: agent connected", 20)
            if t_hello is None:
                tap(False, f"{g.name}: memtided gets the agent's hello", daemon.tail())
                continue
            after_ready = t_hello - g.t_ready
            up = daemon.find(rf"VM {re.escape(g.name)}: agent connected: .* guest up ([\d.]+) s")
            note(f"FIGURE {g.name}: hello at host {t_hello - g.t_define:.1f} s after the domain "
                 f"was defined, {after_ready:+.1f} s from the ready line seen on the console, "
                 f"guest up {up[1].group(1) if up else '?'} s when the agent built it")
            tap(after_ready <= 2.0,
                f"{g.name}: memtided has the agent's hello within 2 s of the ready line "
                f"({after_ready:+.1f} s)")
        for g in guests:
            # A guest busy booting or ballooning (TCG, a loaded host) may
            # hold its agent back for a few seconds: wait, do not sample.
            deadline = time.monotonic() + 20
            while True:
                n = len(daemon.findall(REPORT_RE.format(re.escape(g.name))))
                if n >= 4 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            tap(n >= 4, f"{g.name}: reports keep coming ({n} so far)")

        # 3. (runs while the psi guest waits) the quiet guest loses its agent.
        mark = quiet.console_mark()
        log_mark = daemon.mark()
        quiet.wait_console(r"^MEMTIDE-AGENT-STOPPED", AGENT_STOP + 30, mark)
        t_silent = wait(daemon, rf"VM {re.escape(quiet.name)}: agent silent: "
                                r"using balloon statistics", 15, log_mark)
        if t_silent is not None:
            last = [t for t, _ in daemon.findall(REPORT_RE.format(re.escape(quiet.name)))
                    if t < t_silent]
            gap = t_silent - last[-1] if last else float("nan")
            note(f"FIGURE agent killed: memtided on balloon statistics {gap:.1f} s after the "
                 f"last report (fresh limit {FRESH:.0f} s, checked every second)")
        tap(t_silent is not None and gap <= FRESH + 1.5,
            "agent killed: memtided falls back to balloon statistics within the fresh limit",
            None if t_silent else daemon.tail())
        log_mark = daemon.mark()
        started = quiet.wait_console(r"^MEMTIDE-AGENT-STARTED pid=\d* uptime=([\d.]+)",
                                     AGENT_RESTART - AGENT_STOP + 30, mark)
        hit = daemon.wait(rf"VM {re.escape(quiet.name)}: the guest agent restarted", 15, log_mark)
        if hit:
            # Guest clock: the marker is printed 0.2 s after the start.
            first = daemon.find(REPORT_RE.format(re.escape(quiet.name)), log_mark)
            if first:
                t0 = float(started.group(1)) - 0.2
                note(f"FIGURE agent restarted: its hello built {int(first[1].group(3)) / 1e6 - t0:.2f} s "
                     f"after the start (guest clock), then used by memtided")
        tap(hit is not None, "agent restarted: memtided takes its reports again",
            None if hit else daemon.tail())
        restarted = daemon.find(rf"VM {re.escape(quiet.name)}: the guest agent restarted")
        tap(restarted is not None, "memtided knows it is a new agent process in the same boot")

        # 2. the burst.
        mark = psi.console_mark()
        psi.wait_console(r"step 3/4 burst", PSI_AFTER + 60)
        t_burst = time.monotonic()
        note(f"burst started; psi guest size before: {psi.balloon_stats().get('actual', 0) // 1024} "
             f"MiB balloon, {(psi.vmem().current_kib if psi.vmem() else 0) // 1024} MiB virtio-mem")
        t_trig = wait(daemon, rf"VM {re.escape(psi.name)}: agent pressure trigger", 30)
        t_grow = wait(daemon, GROW_RE.format(re.escape(psi.name)), 30)
        tap(t_trig is not None, "the burst fires the guest's PSI trigger: memtided gets the "
            "pressure report", None if t_trig else daemon.tail())
        tap(t_grow is not None, "memtided grows the psi guest during the burst",
            None if t_grow else daemon.tail())
        if t_trig is not None and t_grow is not None:
            planned = daemon.find(rf"VM {re.escape(psi.name)}: (pressure|PSI trigger|OOM).*: planning now")
            if planned is None:
                # The burst's first periodic reports may have shown used
                # memory rising fast enough to run out: memtided then
                # planned at once for that, and a trigger within the next
                # second is not planned for again (one event plan per VM
                # per second), which it says.
                gap = daemon.find(rf"VM {re.escape(psi.name)}: PSI trigger.*; planned for it less than 1 s ago")
                runout = [t for t, _ in daemon.findall(rf"VM {re.escape(psi.name)}: used memory rises at .*: planning now")
                          if t_trig - 1.5 <= t <= t_trig]
                if gap is not None and runout:
                    planned = gap
                    note(f"the trigger came {t_trig - runout[-1]:.2f} s after a run-out plan for the same burst")
            # A tick that read the report before the trigger's may have
            # grown the guest a moment before it: the first grow since
            # the burst began counts, before or after the trigger.
            grows = [t for t, _ in daemon.findall(GROW_RE.format(re.escape(psi.name)))
                     if t >= min(t_burst, t_trig) - 2]
            first = grows[0] if grows else None
            if first is not None:
                note(f"FIGURE pressure report received -> grow applied: {first - t_trig:.2f} s "
                     f"(burst start seen on the console -> pressure report: {t_trig - t_burst:.1f} s; "
                     f"first grow after the burst began: {t_grow - t_burst:.1f} s)")
            for t, m in daemon.findall(rf"VM {re.escape(psi.name)}: (.*: planning now|agent pressure trigger.*)"):
                if t >= t_trig - 1 and t <= t_trig + 10:
                    note(f"  +{t - t_trig:5.2f} s {m.group(1)}")
            for t, m in daemon.findall(rf"resize: .*{re.escape(psi.name)}: (.*?) \[(.*?)\]"):
                if t >= t_trig - 1 and t <= t_trig + 10:
                    note(f"  +{t - t_trig:5.2f} s {m.group(1)} [{m.group(2)}]")
            tap(planned is not None, "the pressure report made memtided plan at once",
                None if planned else "\n".join(l for _, l in daemon.lines[-60:]
                                               if psi.name in l)[-3000:])
            tap(first is not None and first - t_trig <= 3.0,
                f"the guest is grown within 3 s of the pressure report "
                f"({(first - t_trig) if first is not None else float('nan'):.2f} s)")
        psi.wait_console(r"step 3/4 burst|step 4/4", 5, mark)
        time.sleep(3)
        oom = [l for l in psi.console().splitlines() if OOM.search(l)]
        tap(not oom, "no OOM kill in the psi guest", "\n".join(oom[:5]))

        # 3b. the quiet guest allocates 240 MiB within 2 s.
        log_mark = daemon.mark()
        quiet.wait_console(r"step 2/5 ramp", RAMP_AFTER + 60)
        t_ramp = time.monotonic()
        hit = daemon.wait(rf"VM {re.escape(quiet.name)}: (used memory rises at .*): planning now",
                          10, log_mark)
        t_out = hit[0] if hit else None
        tap(hit is not None, "the fast allocation makes memtided plan at once: "
            + (hit[1].group(1) if hit else "no 'used memory rises' line"),
            None if hit else "\n".join(l for _, l in daemon.lines[-60:] if quiet.name in l)[-3000:])
        memory = daemon.find(REPORT_RE.format(re.escape(quiet.name)).replace(r"(\w+)", "(memory)"),
                             log_mark)
        tap(memory is not None, "... from a report the agent's memory watch sent at once "
            "(reason memory)", None if memory else daemon.tail())
        grows = [t for t, _ in daemon.findall(GROW_RE.format(re.escape(quiet.name)))
                 if t_out is not None and t >= t_out - 0.5]
        if t_out is not None and grows:
            note(f"FIGURE ramp seen on the console -> plan: {t_out - t_ramp:+.2f} s; "
                 f"plan -> grow applied: {grows[0] - t_out:.2f} s")
        tap(bool(grows) and grows[0] - t_out <= 3.0,
            "memtided grows the quiet guest within 3 s of that plan",
            None if grows else daemon.tail())
        quiet.wait_console(r"step 3/5 hold", 30)
        time.sleep(5)
        oom = [l for l in quiet.console().splitlines() if OOM.search(l)]
        tap(not oom, "no OOM kill in the quiet guest", "\n".join(oom[:5]))

        # 4. honest agents never trip the checks.
        viol = daemon.findall(r"agent protocol violation")
        tap(not viol, f"no protocol violation ({len(viol)})",
            "\n".join(m.string for _, m in viol[:5]))
        disb = daemon.findall(r"agent report not used")
        tap(not disb, f"no report disbelieved ({len(disb)})",
            "\n".join(m.string for _, m in disb[:5]))

        # 5. figures.
        for g in guests:
            lat = report_latency(daemon, g.name)
            if lat:
                note(f"FIGURE {g.name}: report latency above the fastest report over {lat[3]} "
                     f"reports: median {lat[0] * 1000:.0f} ms, p95 {lat[1] * 1000:.0f} ms, "
                     f"max {lat[2] * 1000:.0f} ms"
                     + (f"; the {lat[5]} pressure (psi) reports: max {lat[4] * 1000:.0f} ms"
                        if lat[4] is not None else ""))
            stats = STAT_RE.findall(g.console())
            if stats:
                note(f"{g.name}: first and last agent stat lines: {stats[0]} {stats[-1]}")
            fp = agent_footprint(g)
            if fp:
                note(f"FIGURE {g.name}: memtide-agent in the guest: RSS up to {fp[0]:.0f} KiB "
                     f"(PSS {fp[1]:.0f} KiB), CPU {fp[2]:.2f}% of one vCPU "
                     f"({fp[3]} samples, TCG)")
            tap(fp is not None, f"{g.name}: the agent's footprint is reported")
    finally:
        rc = daemon.stop()
    tap(rc == 0, f"memtided exits 0 on SIGTERM (got {rc})", None if rc == 0 else daemon.tail())

finish()
