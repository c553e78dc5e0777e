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
Checks (outcomes, with deadlines generous enough for a busy 2-core host;
how fast each went is a FIGURE line):
  1. each guest's hello reaches memtided (figure: how soon after the
     guest's ready line), and its reports keep coming;
  2. the burst raises PSI in the psi guest: the agent's pressure report
     reaches memtided, which plans at once and grows the guest (figure:
     host receipt of the pressure report -> grow applied), with no OOM;
  3. killing the agent makes memtided fall back to balloon statistics
     while the agent is down (figure: how long after the last report;
     the fresh limit is 3 s, its value is unit-tested in
     tests/unit/test-agent-link.c); restarting it resumes the reports;
  3b. the quiet guest's fast allocation: memtided grows it during its
     ramp with no OOM kill, and when the ramp is fast enough to run the
     guest out before the next tick, from an event plan on an agent
     report ("used memory rises at ...", not the next tick).  On a busy
     host a TCG guest may allocate so slowly that the ticks' grows "as
     it rises" keep up and no event plan is due (seen beside two busy
     loops: 12-18 MiB/s instead of 120); a FIGURE says which path
     served it.  Which report brought the rise first, the agent's memory
     watch ("memory") or its periodic report ("tick"), is a race and
     only a FIGURE; the memory watch itself is tested in
     guest-agent/tests/test-agent-run.c;
  4. no protocol violation and no disbelieved report from honest agents;
  5. figures: report latency (guest clock -> memtided, above the fastest
     report), agent RSS and CPU inside the guest.
Environment: MEMTIDE_DAEMON, MEMTIDE_WORKLOAD, MEMTIDE_AGENT (all required).
"""

import re
import statistics
import time

import e2elib
from e2elib import (Daemon, bail, finish, log_after, note, tap, wait_console, wait_log_after,
                    wait_until)

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
# Deadlines for outcomes, not timings: how long each took is a FIGURE.
HELLO_WITHIN = 60.0           # s after the ready line (0.0-0.3 s on a quiet host)
PLAN_WITHIN = 60.0            # s after the ramp is seen on the console
CONSOLE_LAG = 10.0            # s a step may show on the console after it began
GROW_WITHIN = 30.0            # s after a plan at once

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
# An event plan (a report made memtided plan at once): "VM NAME: WHY: planning now",
# or, within a second of another one, "VM NAME: WHY; planned for it less than 1 s ago".
EVENT_PLAN_RE = r"VM {}: (.*): planning now"
SUPPRESSED_RE = r"VM {}: (.*); planned for it less than 1 s ago"


def wait(daemon, pattern, timeout, since=0):
    hit = daemon.wait(pattern, timeout, since)
    return hit[0] if hit else None


def trigger_report(daemon, name, why):
    """(reason, seq) of the agent report that made memtided plan for why:
    memtided logs each report, then the plan it makes for it."""
    report = re.compile(REPORT_RE.format(re.escape(name)))
    plan = re.compile(EVENT_PLAN_RE.format(re.escape(name)))
    last = None
    for _, line in list(daemon.lines):
        m = report.search(line)
        if m:
            last = (m.group(2), m.group(1))
        m = plan.search(line)
        if m and m.group(1) == why:
            return last
    return None


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
    if not daemon.wait(r"memtided running", 60):
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
    up_console, up_log = quiet.console_mark(), daemon.mark()
    try:
        # 1. hello and reports.
        for g in guests:
            t_hello = wait(daemon, rf"VM {re.escape(g.name)}: agent connected",
                           max(0.0, g.t_ready + HELLO_WITHIN - time.monotonic()))
            if t_hello is not None:
                up = daemon.find(rf"VM {re.escape(g.name)}: agent connected: .* guest up ([\d.]+) s")
                note(f"FIGURE {g.name}: hello at host {t_hello - g.t_define:.1f} s after the domain "
                     f"was defined, {t_hello - g.t_ready:+.1f} s from the ready line seen on the "
                     f"console, guest up {up[1].group(1) if up else '?'} s when the agent built it")
            tap(t_hello is not None, f"{g.name}: memtided has the agent's hello",
                None if t_hello is not None else daemon.tail())
        for g in guests:
            # A guest busy booting or ballooning (TCG, a loaded host) may
            # hold its agent back for a few seconds: wait, do not sample.
            n = wait_until(lambda: len(daemon.findall(REPORT_RE.format(re.escape(g.name)))) >= 4,
                           60) and len(daemon.findall(REPORT_RE.format(re.escape(g.name))))
            tap(n, f"{g.name}: reports keep coming ({n or 'fewer than 4'} so far)")

        # 3. (runs while the psi guest waits) the quiet guest loses its agent.
        # Looked for since the guests came up: check 1 may have taken a while.
        qn = re.escape(quiet.name)
        wait_console(quiet, r"^MEMTIDE-AGENT-STOPPED", AGENT_STOP + 60, up_console)
        t_silent = wait(daemon, rf"VM {qn}: agent silent: back to what the hypervisor reports", 60, up_log)
        gap = float("nan")
        if t_silent is not None:
            last = [t for t, _ in daemon.findall(REPORT_RE.format(qn)) if t < t_silent]
            gap = t_silent - last[-1] if last else float("nan")
            note(f"FIGURE agent killed: memtided on balloon statistics {gap:.1f} s after the "
                 f"last report (fresh limit {FRESH:.0f} s, checked every second)")
        started = wait_console(quiet, r"^MEMTIDE-AGENT-STARTED pid=\d* uptime=([\d.]+)",
                               AGENT_RESTART + 60, up_console)
        restarted = daemon.wait(rf"VM {qn}: the guest agent restarted", 60, up_log)
        # The agent is down for AGENT_RESTART - AGENT_STOP s (guest clock):
        # the fallback comes while it is (how soon is the FIGURE above).
        tap(t_silent is not None and (restarted is None or t_silent < restarted[0]),
            f"agent killed: memtided falls back to balloon statistics while the agent is down "
            f"({gap:.1f} s after the last report)", None if t_silent else daemon.tail())
        # Its hello: memtided logs the restart, then the report.
        again = restarted and wait_log_after(daemon, REPORT_RE.format(qn), restarted[0], 30)
        if again and started:
            # Guest clock: the marker is printed 0.2 s after the start.
            t0 = float(started.group(1)) - 0.2
            note(f"FIGURE agent restarted: its hello built {int(again[1].group(3)) / 1e6 - t0:.2f} "
                 f"s after the start (guest clock), then used by memtided")
        tap(again, "agent restarted: memtided takes its reports again",
            None if again else daemon.tail())
        tap(restarted is not None, "memtided knows it is a new agent process in the same boot")
        # Everything the quiet guest does from here on (it idles until its
        # ramp) is 3b's; its plans are looked for from this point.
        ramp_mark = daemon.mark()

        # 2. the burst.
        mark = psi.console_mark()
        wait_console(psi, r"step 3/4 burst", PSI_AFTER + 120)
        t_burst = time.monotonic()
        pn = re.escape(psi.name)
        note(f"burst started; psi guest size before: {psi.balloon_stats().get('actual', 0) // 1024} "
             f"MiB balloon, {(psi.vmem().current_kib if psi.vmem() else 0) // 1024} MiB virtio-mem")
        t_trig = wait(daemon, rf"VM {pn}: agent pressure trigger", 60)
        # The psi guest idles before its burst: a grow from CONSOLE_LAG s
        # before the burst showed on the console is for it.
        hit = wait_log_after(daemon, GROW_RE.format(pn), t_burst - CONSOLE_LAG, 60)
        t_grow = hit[0] if hit else None
        if t_trig is None and t_grow is not None:
            # memtided may grow the guest from its periodic reports before
            # the burst stalls it long enough to fire its PSI trigger (seen
            # once on a busy host): the outcome this check is for, but the
            # trigger path goes untested in this run (unit tests
            # test-triggers and test-agent-run cover it).
            note(f"FIGURE the burst fired no PSI trigger: memtided grew the guest "
                 f"{t_grow - t_burst:.1f} s after the burst began, before it stalled enough")
        tap(t_trig is not None or t_grow is not None,
            "the burst fires the guest's PSI trigger (memtided gets the pressure report), or "
            "memtided grows the guest before it stalls enough to fire it",
            None if t_trig or t_grow else daemon.tail())
        tap(t_grow is not None, "memtided grows the psi guest during the burst",
            None if t_grow else daemon.tail())
        if t_trig is not None and t_grow is not None:
            t_from = min(t_burst - CONSOLE_LAG, t_trig - 2)
            planned = log_after(daemon, rf"VM {pn}: (pressure|PSI trigger|OOM).*: planning now",
                                t_from)
            if not planned:
                # The burst's first periodic reports may have shown used
                # memory rising fast enough to run out: memtided then
                # planned at once for that, and a trigger within the next
                # second is not planned for again (one event plan per VM
                # per second), which it says.
                gap = log_after(daemon, rf"VM {pn}: PSI trigger.*; planned for it less than 1 s ago",
                                t_from)
                runout = [t for t, _ in log_after(daemon, EVENT_PLAN_RE.format(pn), t_from)
                          if t_trig - 1.5 <= t <= t_trig]
                if gap and runout:
                    planned = gap
                    note(f"the trigger came {t_trig - runout[-1]:.2f} s after an event plan for "
                         f"the same burst")
            # A tick that read the report before the trigger's may have
            # grown the guest a moment before it: the first grow since
            # the burst began counts, before or after the trigger.
            first = log_after(daemon, GROW_RE.format(pn), t_from)[0][0]
            note(f"FIGURE pressure report received -> grow applied: {first - t_trig:.2f} s "
                 f"(burst start seen on the console -> pressure report: {t_trig - t_burst:.1f} s; "
                 f"first grow after the burst began: {t_grow - t_burst:.1f} s)")
            for t, m in daemon.findall(rf"VM {pn}: (.*: planning now|agent pressure trigger.*)"):
                if t >= t_trig - 1 and t <= t_trig + 10:
                    note(f"  +{t - t_trig:5.2f} s {m.group(1)}")
            for t, m in daemon.findall(rf"resize: .*{pn}: (.*?) \[(.*?)\]"):
                if t >= t_trig - 1 and t <= t_trig + 10:
                    note(f"  +{t - t_trig:5.2f} s {m.group(1)} [{m.group(2)}]")
            tap(planned, "the pressure report made memtided plan at once",
                None if planned else "\n".join(l for _, l in daemon.lines[-60:]
                                               if psi.name in l)[-3000:])
        # 3b. the quiet guest allocates 240 MiB within 2 s.  It idles from
        # its agent's restart to its ramp: its plans are looked for from
        # there, not from when the ramp shows on the console (polled, and
        # a guest busy allocating prints late: memtided has planned 1 s
        # before the line showed).
        ramp_live = not re.search(r"step 2/5 ramp", quiet.console())
        wait_console(quiet, r"step 2/5 ramp", RAMP_AFTER + 120)
        t_ramp = time.monotonic()

        def quiet_plan():
            """(time, why, suppressed) of the event plan for the ramp: a
            run-out plan, or another event plan less than 1 s before the
            run-out was seen (then not planned for again)."""
            plans = daemon.findall(EVENT_PLAN_RE.format(qn), ramp_mark)
            for t, m in plans:
                if m.group(1).startswith("used memory rises at"):
                    return t, m.group(1), None
            for ts, ms in daemon.findall(SUPPRESSED_RE.format(qn), ramp_mark):
                before = [(t, m) for t, m in plans if ts - 1.5 <= t <= ts]
                if ms.group(1).startswith("used memory rises at") and before:
                    return before[-1][0], before[-1][1].group(1), ms.group(1)
            return None

        # The ramp is over when the workload holds all it asked for (or
        # has moved on): an event plan, if one was due, came before.
        hold_re = r"anon=240M cache=\d+M step=hold idx=3 pass=1$|step 4/5"
        seen_held = []

        def ramp_over():
            if not seen_held and re.search(hold_re, quiet.console(), re.M):
                seen_held.append(time.monotonic())
            return seen_held

        wait_until(lambda: quiet_plan() or ramp_over(), t_ramp + PLAN_WITHIN - time.monotonic(),
                   0.05)
        plan = quiet_plan()
        t_plan = plan[0] if plan else None
        if plan:
            trigger = trigger_report(daemon, quiet.name, plan[1])
            note((f"FIGURE ramp seen on the console -> plan at once: {t_plan - t_ramp:+.2f} s, "
                  if ramp_live else "the ramp began before the test looked; plan at once ")
                 + f"from the agent's {trigger[0] if trigger else '?'} report (seq "
                 f"{trigger[1] if trigger else '?'}): {plan[1]}"
                 + (f"; the run-out itself came within its second: {plan[2]}" if plan[2] else ""))
        # The first grow for the ramp: after the event plan if there was
        # one, else since the ramp began (it idled before).
        grow = wait_log_after(daemon, GROW_RE.format(qn),
                              t_plan - 0.5 if plan else t_ramp - CONSOLE_LAG, GROW_WITHIN,
                              ramp_mark)
        held = wait_until(ramp_over, 60, 0.05)
        oom = [l for l in quiet.console().splitlines() if OOM.search(l)]
        if grow:
            note(f"FIGURE {'plan at once' if plan else 'ramp seen on the console'} -> grow "
                 f"applied: {grow[0] - (t_plan if plan else t_ramp):+.2f} s")
        if not plan and held:
            rises = len(log_after(daemon, GROW_RE.format(qn) + r".*as it rises",
                                  t_ramp - CONSOLE_LAG, ramp_mark))
            note(f"FIGURE no event plan was due: the ramp took {held[0] - t_ramp:.1f} s on the "
                 f"console (2 s on a quiet host) and the ticks' grows kept up ({rises} grows "
                 f"'as it rises')")
        tap(grow and held and not oom,
            "the fast allocation: memtided grows the quiet guest during its ramp, which ends "
            "holding all it asked for with no OOM kill "
            + ("(from an event plan on an agent report)" if plan else
               "(from the ticks: no event plan was due)"),
            None if grow and held and not oom else
            "\n".join(oom[:5]) + "\n" + "\n".join(l for _, l in daemon.lines[-80:]
                                                 if quiet.name in l)[-3000:])
        # The psi guest's burst is over (an OOM kill during it is on the
        # console by then).
        over = wait_console(psi, r"step 4/4", 60, mark)
        oom = [l for l in psi.console().splitlines() if OOM.search(l)]
        tap(over and not oom, "no OOM kill in the psi guest, whose burst ran to its end",
            "\n".join(oom[:5]) if oom else None)

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
