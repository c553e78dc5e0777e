"""The harness's own check (xenbed.py run --scenario ...harness.py): one
PV domU with memtide-agent and a small workload, the private bus,
memtided in dom0 (the Xen driver when this memtided has it, else the
fake driver: the harness works either way), memtidectl, memtided's log,
xenstore, a stop. Prints what it saw; 0 when every piece answered."""

import re


def scenario(bed):
    help_text = bed.sh("memtided --help 2>&1 || true")
    backend = "xen" if re.search(r"\bxen\b", help_text) else "fake"
    print(f"memtided backend: {backend}")

    bed.create("h1", 256, 512, workload="anon:32M,hold:10m")
    ready = bed.wait_domu_ready("h1", 240)
    print("domU ready:", ready[1].group(0))
    print("xl list:", bed.domains())
    print("xenstore memory:", bed.xs_mem("h1"))

    if backend == "xen":
        bed.start_memtided("xen", vm_policy="min = 128M\nmax = 100%\n",
                           host_policy="tick-interval = 1s\n")
    else:
        bed.start_memtided("fake", connect="/run/memtide/fake.sock",
                           host_policy="tick-interval = 1s\n")
    bed.wait(lambda: bed.log_find(r"memtided running"), 60, "memtided running")
    rc, out = bed.memtidectl("status")
    print(f"memtidectl status (rc={rc}):\n{out}")
    # The workload's lines reach the console, stamped.
    wl = bed.wait(lambda: (bed.console("h1"), bed.console_find("h1", r"memtide-workload: t="))[1],
                  60, "a workload progress line")
    t_domu = wl[0][0]
    print(f"workload line at domU uptime {t_domu} = dom0 uptime "
          f"{bed.dom0_time('h1', t_domu)}; dom0 now {bed.dom0_uptime()}; "
          f"clocks: dom0 {bed.dom0_clock}, domU {bed.domu_clock}")
    status = bed.stop_memtided()
    print(f"memtided exit status {status}")
    print("memtided log (tail):\n" + bed.log_tail(30))
    print("domU console (tail):\n" + "\n".join(bed.console("h1").splitlines()[-15:]))
    return 0 if rc == 0 and status == 0 else 1
