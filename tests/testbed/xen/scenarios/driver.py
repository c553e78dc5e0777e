"""The Xen driver with the real agent (xenbed.py run --scenario
...driver.py): memtided --backend xen in dom0 first, then one PV domU
(256 MiB, static-max 512 MiB) with memtide-agent over xenstore and a
small workload.  Shows memtided finding the domU, its agent link coming
up, Explain saying "balloon only", resizes both ways through a policy
file and SIGHUP (memory/target, tot_pages), a size above static-max
capped at static-max, and the domU forgotten when it shuts down.  FIGURE lines are
dom0 uptime seconds from memtided's stamped log and polls of xl/xenstore;
no timed assertions.  0 when every step was seen."""

import re

import memtidebed
from xenbed import XenbedError


def scenario(bed):
    figures = {}
    bed.start_memtided("xen", vm_policy="min = 128M\nmax = 100%\n",
                       host_policy="tick-interval = 1s\n")
    bed.wait(lambda: bed.log_find(r"memtided running on xen \(xen driver\)"), 60,
             "memtided running on the xen driver")

    t_create = bed.dom0_uptime()
    bed.create("d1", 256, 512, workload="anon:32M,hold:10m")
    t_created = bed.dom0_uptime()
    managed = bed.wait(lambda: bed.log_find(r"VM d1: managing \((.*)\)"), 120, "d1 managed")
    t_managed = managed[0][0]
    print("managing line:", managed[0][1].group(0))
    figures["xl-create-s"] = t_created - t_create
    figures["create-start-to-managed-s"] = t_managed - t_create
    figures["create-return-to-managed-s"] = t_managed - t_created
    if "balloon only" not in managed[0][1].group(1):
        raise XenbedError("the managing line does not say balloon only")

    agent = bed.wait(lambda: bed.log_find(r"VM d1: agent connected"), 240, "d1's agent")
    figures["managed-to-agent-connected-s"] = agent[0][0] - t_managed

    rc, out = bed.memtidectl("explain", "d1")
    print(f"memtidectl explain d1 (rc={rc}):\n{out}")
    if rc != 0 or not re.search(r"^Mechanism: balloon only: Xen has no virtio-mem", out, re.M):
        raise XenbedError("Explain does not say 'Mechanism: balloon only'")

    # Resizes through a policy file and SIGHUP (memtidectl set-limits
    # needs polkit, which dom0 has not): grow to 448 MiB, shrink to 200,
    # then ask 600 MiB, above static-max: capped at 512.
    for size, what, expect in ((448, "grow", 448), (200, "shrink", 200), (600, "grow", 512)):
        mark = bed.log_mark()
        t0 = bed.dom0_uptime()
        bed.write_file(f"{memtidebed.POLICIES}/50-d1.conf",
                       f"[vm d1]\nmin = {size}M\nmax = {size}M\n")
        bed.sh(f"kill -HUP {bed.memtided_pid()}")
        hit = bed.wait(lambda: bed.log_find(rf"resize: d1: {what} .*-> {expect} MiB", mark), 60,
                       f"the {what} to {expect} MiB")
        print(hit[0][1].string)
        bed.wait(lambda: bed.xs_mem("d1").get("target") == expect * 1024, 30,
                 f"memory/target {expect * 1024}")
        t_written = bed.dom0_uptime()
        bed.wait(lambda: bed.size_mib("d1") == expect, 60, f"d1 at {expect} MiB in xl list")
        t_reached = bed.dom0_uptime()
        figures[f"{what}-{expect}-hup-to-resize-logged-s"] = hit[0][0] - t0
        figures[f"{what}-{expect}-target-seen-to-size-reached-s"] = t_reached - t_written
        print(f"xenstore after the {what} to {expect} MiB: {bed.xs_mem('d1')}")
        print(bed.sh("xl list"))
    bed.sh(f"rm {memtidebed.POLICIES}/50-d1.conf; kill -HUP {bed.memtided_pid()}")

    t_shut = bed.dom0_uptime()
    bed.sh("xl shutdown d1")
    gone = bed.wait(lambda: bed.log_find(r"VM d1: gone"), 60, "d1 forgotten")
    figures["shutdown-to-forgotten-s"] = gone[0][0] - t_shut
    above = [m.string for _, m in bed.log_find(r"resize: d1: .*-> (\d+) MiB")
             if int(m.group(1)) > 512]
    status = bed.stop_memtided()
    print("memtided log (resizes and domain events):")
    for t, m in bed.log_find(r"VM d1|resize: d1|memtide-xen|lost the connection"):
        if "skip:" not in m.string and "agent report seq" not in m.string:
            print(f"  {t} {m.string}")
    for k, v in figures.items():
        print(f"FIGURE {k} {v:.2f}")
    if above:
        raise XenbedError(f"resizes above static-max: {above}")
    return 0 if status == 0 else 1
