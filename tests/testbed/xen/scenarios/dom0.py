"""dom0 as an opt-in domain (xenbed.py run --scenario ...dom0.py):
memtided --backend xen in dom0 (dom0_mem=1024M,max:1024M), policy
[vm *] min = 128M.  Without a [vm Domain-0] group dom0 is observed
only: the "managing" line and `memtidectl explain Domain-0` say so, and
memtided resizes nothing while memtide-agent runs in dom0 over xenstore.
A policy file with [vm Domain-0] and min = 512M, then SIGHUP: memtided
manages dom0, connects its agent (/local/domain/0/data/memtide) and
shrinks it toward its need, never below the 512 MiB floor (every
resize line, memory/target and xl list polled throughout).  memtided
restarted after the shrink still sees dom0's 1 GiB maximum (the
memory/static-max it wrote).  Removing the file and SIGHUP makes it
observed again.  FIGURE lines are dom0 uptime
seconds from memtided's stamped log; no timed assertions.  0 when every
step was seen."""

import re
import time

import memtidebed
from xenbed import XenbedError

FLOOR_MIB = 512
OBSERVED = "dom0 is observed only: no [vm Domain-0] group names it"
MANAGED = "dom0 is managed: [vm Domain-0] names it; never below 512 MiB"


def scenario(bed):
    figures = {}
    print("dom0 in xenstore before memtided:",
          {k: bed.xs_read(f"/local/domain/0/{k}") for k in
           ("name", "memory/static-max", "memory/target")})
    print(bed.sh("xl list"))
    bed.start_memtided("xen", vm_policy="min = 128M\nmax = 100%\n",
                       host_policy="tick-interval = 1s\n")
    managed = bed.wait(lambda: bed.log_find(r"VM Domain-0: managing \((.*)"), 60,
                       "Domain-0 announced")
    print("managing line:", managed[0][1].group(0))
    if OBSERVED not in managed[0][1].group(0):
        raise XenbedError("the managing line does not say dom0 is observed only")
    static_max = bed.xs_read("/local/domain/0/memory/static-max")
    print("dom0's memory/static-max after memtided saw it:", static_max)
    if static_max is None or not static_max.isdigit() or int(static_max) < 1024 * 1024:
        raise XenbedError(f"dom0's memory/static-max is {static_max}, not its 1 GiB maxmem")
    rc, out = bed.memtidectl("explain", "Domain-0")
    print(f"memtidectl explain Domain-0 (rc={rc}):\n{out}")
    if rc != 0 or f"Opt-in: {OBSERVED}" not in out:
        raise XenbedError("Explain does not say dom0 is observed only")

    # dom0's own agent, over xenstore (relative keys: /local/domain/0/data/memtide).
    bed.sh("(memtide-agent --transport xenstore >/var/log/agent0.log 2>&1 &) "
           "</dev/null >/dev/null 2>&1")
    bed.wait(lambda: bed.xs_read("/local/domain/0/data/memtide/report"), 60,
             "dom0's agent report in /local/domain/0/data/memtide/report")
    mark = bed.log_mark()
    t0 = bed.dom0_uptime()
    bed.wait(lambda: bed.dom0_uptime() - t0 >= 6, 30, "6 s of observing")
    early = bed.log_find(r"resize: Domain-0", mark)
    size_observed = bed.size_mib("Domain-0")
    print(f"observed for 6 s: {len(early)} resize lines, xl list Domain-0 {size_observed} MiB")
    if early:
        raise XenbedError(f"memtided resized dom0 while observing it: {early[0][1].string}")

    mark = bed.log_mark()
    t_hup = bed.dom0_uptime()
    bed.write_file(f"{memtidebed.POLICIES}/50-dom0.conf", "[vm Domain-0]\nmin = 512M\n")
    bed.sh(f"kill -HUP {bed.memtided_pid()}")
    switched = bed.wait(lambda: bed.log_find(rf"VM Domain-0: {re.escape(MANAGED)}", mark), 30,
                        "the log line: dom0 managed")
    print(switched[0][1].string)
    agent = bed.wait(lambda: bed.log_find(r"VM Domain-0: agent connected", mark), 60,
                     "dom0's agent connected")
    shrink = bed.wait(lambda: bed.log_find(r"resize: Domain-0: shrink", mark), 60,
                      "a shrink of dom0")
    print(shrink[0][1].string)
    figures["hup-to-managed-s"] = switched[0][0] - t_hup
    figures["hup-to-agent-connected-s"] = agent[0][0] - t_hup
    figures["hup-to-first-shrink-s"] = shrink[0][0] - t_hup

    # Until no resize for 10 s (at most 90 s): the lowest xl list and
    # memory/target seen on the way.
    lowest, lowest_target, last_resize = size_observed, None, bed.dom0_uptime()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        size = bed.size_mib("Domain-0")
        target = bed.xs_mem("Domain-0").get("target")
        lowest = min(lowest, size)
        if target is not None:
            lowest_target = target if lowest_target is None else min(lowest_target, target)
        hits = bed.log_find(r"resize: Domain-0", mark)
        if hits:
            last_resize = max(last_resize, hits[-1][0])
        if bed.dom0_uptime() - last_resize >= 10:
            break
        time.sleep(1)
    final = bed.size_mib("Domain-0")
    resizes = [m.string for _, m in bed.log_find(r"resize: Domain-0: .*", mark)]
    to = [int(x) for x in (re.search(r"-> (\d+) MiB", r).group(1) for r in resizes)]
    print("resizes of dom0:")
    for r in resizes:
        print("  " + r)
    rc, out = bed.memtidectl("explain", "Domain-0")
    print(f"memtidectl explain Domain-0 (rc={rc}):\n{out}")
    print(bed.sh("xl list"))
    figures["dom0-start-mib"] = size_observed
    figures["dom0-lowest-mib"] = lowest
    figures["dom0-final-mib"] = final
    figures["dom0-lowest-target-mib"] = (lowest_target or 0) / 1024
    if f"Opt-in: {MANAGED}" not in out:
        raise XenbedError("Explain does not say dom0 is managed")
    if min(to) < FLOOR_MIB or lowest < FLOOR_MIB or (lowest_target or 0) < FLOOR_MIB * 1024:
        raise XenbedError(f"dom0 went below {FLOOR_MIB} MiB: resizes to {to}, "
                          f"xl list {lowest} MiB, memory/target {lowest_target} KiB")
    if final >= size_observed:
        raise XenbedError(f"dom0 was not shrunk: {size_observed} -> {final} MiB")

    # A restart after the shrink: dom0's maxmem is now ~513 MiB, but its
    # largest size stays 1 GiB (memory/static-max).
    if bed.stop_memtided() != 0:
        raise XenbedError("memtided did not exit 0")
    mark = bed.log_mark()
    bed.start_memtided("xen", vm_policy="min = 128M\nmax = 100%\n",
                       host_policy="tick-interval = 1s\n")
    again = bed.wait(lambda: bed.log_find(r"VM Domain-0: managing \(boot memory (\d+) MiB.*", mark),
                     60, "Domain-0 announced after the restart")
    print("after a restart:", again[0][1].group(0))
    if int(again[0][1].group(1)) != 1024 or MANAGED not in again[0][1].group(0):
        raise XenbedError("after a restart dom0 is not managed with its 1024 MiB maximum")

    mark = bed.log_mark()
    bed.sh(f"rm {memtidebed.POLICIES}/50-dom0.conf; kill -HUP {bed.memtided_pid()}")
    bed.wait(lambda: bed.log_find(rf"VM Domain-0: {re.escape(OBSERVED)}", mark), 30,
             "the log line: dom0 observed again")
    rc, out = bed.memtidectl("explain", "Domain-0")
    if f"Opt-in: {OBSERVED}" not in out:
        raise XenbedError("after the group was removed, Explain does not say observed only")
    status = bed.stop_memtided()
    print("agent in dom0:", bed.sh("tail -5 /var/log/agent0.log"))
    for k, v in figures.items():
        print(f"FIGURE {k} {v:.2f}")
    return 0 if status == 0 else 1
