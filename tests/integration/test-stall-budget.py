#!/usr/bin/python3
"""integration (TAP): the stall budget (docs/policy.md stall-budget and
stall-window, docs/planner.md "Stall budget") on the real memtided with
the fake driver.  Three idle VMs of 2 GiB using 300 MiB: "stalled",
whose agent (fakeagent.py) reports a PSI some total that grows by
150 ms every 200 ms while its avg10 says 0 (no emergency); "calm",
whose agent reports no stall; "blind", without an agent.  With
stall-window = 1m the stalled VM is over the default 1% budget within
seconds: it is held at its size while the calm VM is shrunk, and the
budget with the measured stall beside it is published on D-Bus
(VM1.Stall, StallBudget, StallWindow, OverStallBudget), in the metrics
(memtide_vm_stall_ratio, memtide_vm_stall_budget_ratio,
memtide_vm_over_stall_budget) and by `memtidectl explain` and `show`.
"""

import http.client
import os
import re

import mtlib
from fakeagent import FakeAgent
from fakelib import fake_memtided
from mtlib import VM, MiB, Bus, Client, ctl, eq, finish, tap, wait_for

mtlib.binaries()
bus = Bus()
workdir = mtlib.tmpdir()
stalled = FakeAgent(os.path.join(workdir, "stalled.agent"))
calm = FakeAgent(os.path.join(workdir, "calm.agent"))
mtlib.mttap.at_exit(stalled.stop)
mtlib.mttap.at_exit(calm.stop)
stalled.set(stall_per_report_us=150000)

daemon = fake_memtided(bus, vms="[vm *]\nstall-window = 1m\nreclaim-cold-cache = false\n",
                       extra=["--metrics-port", "0"])
fake = daemon.fake
c = Client(bus)
fake.ok(f"add stalled size=2G used=300M agent={stalled.path}")
fake.ok(f"add calm size=2G used=300M agent={calm.path}")
fake.ok("add blind size=2G used=300M")


def props(name):
    try:
        return c.props(c.vm_path(name), VM)
    except mtlib.GLib.Error:
        return {}


# ---- over its budget: held, while the calm VM shrinks ------------------------------
over = wait_for(lambda: props("stalled").get("OverStallBudget"), 60)
tap(over, "the stalling VM is found over its stall budget", props("stalled"))
held = props("stalled").get("Current")
shrunk = wait_for(lambda: 0 < props("calm").get("Current", 0) < 2048 * MiB, 60)
tap(shrunk, "the calm VM beside it, as idle, is shrunk", props("calm"))
daemon.wait_ticks(5)
p = props("stalled")
eq(p.get("Current"), held, "the VM over its budget keeps its size (never shrunk)")
tap(p.get("OverStallBudget") and "not shrunk" in p.get("Reason", ""),
    "its decision says why", p.get("Reason"))

# ---- D-Bus ------------------------------------------------------------------------
tap(p.get("Stall", -1) > 1.0, "VM1.Stall: the measured stall, percent, above the budget",
    p.get("Stall"))
eq(p.get("StallBudget"), 1.0, "VM1.StallBudget: the default 1%")
eq(p.get("StallWindow"), 60, "VM1.StallWindow: the policy's 1m, in seconds")
q = props("calm")
eq((q.get("Stall"), q.get("OverStallBudget")), (0.0, False), "the calm VM: 0%, not over")
b = props("blind")
eq((b.get("Stall"), b.get("StallBudget"), b.get("OverStallBudget")), (-1.0, 1.0, False),
   "without an agent the stall is unknown (-1)")

# ---- metrics ------------------------------------------------------------------------
hit = re.search(r"Metrics on http://localhost:(\d+)/metrics", daemon.log())
tap(hit, "memtided serves metrics", daemon.log()[-2000:])
if hit:
    conn = http.client.HTTPConnection("127.0.0.1", int(hit.group(1)), timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()

    def metric(name, vm):
        m = re.search(name + r'\{domain="' + vm + r'",uuid="[0-9a-f-]+"\} (\S+)$', text, re.M)
        return float(m.group(1)) if m else None

    tap((metric("memtide_vm_stall_ratio", "stalled") or 0) > 0.01,
        "memtide_vm_stall_ratio: the stalled VM above 0.01",
        metric("memtide_vm_stall_ratio", "stalled"))
    eq(metric("memtide_vm_stall_budget_ratio", "stalled"), 0.01,
       "memtide_vm_stall_budget_ratio beside it")
    eq(metric("memtide_vm_over_stall_budget", "stalled"), 1.0, "memtide_vm_over_stall_budget")
    eq((metric("memtide_vm_stall_ratio", "calm"), metric("memtide_vm_over_stall_budget", "calm")),
       (0.0, 0.0), "the calm VM: 0, not over")
    tap(metric("memtide_vm_stall_ratio", "blind") is None
        and metric("memtide_vm_stall_budget_ratio", "blind") == 0.01,
        "the VM without an agent: no stall series, its budget still")
    tap("# UNIT memtide_vm_stall_ratio ratio" in text, "the stall is typed as a ratio")

# ---- memtidectl ----------------------------------------------------------------------
code, out, err = ctl(bus, "explain", "stalled")
tap(code == 0 and "Stall budget:" in out
    and re.search(r"stalled +\d+\.\d\d% of the time over the last 1m \(PSI some\)", out)
    and re.search(r"budget +1\.00%: over it, so it is not shrunk", out),
    "memtidectl explain: the measured stall beside the budget", out + err)
code, out, err = ctl(bus, "explain", "blind")
tap(code == 0 and re.search(r"stalled +unknown \(no PSI total from a guest agent\)", out),
    "memtidectl explain: unknown without an agent", out + err)
code, out, err = ctl(bus, "show", "stalled")
tap(code == 0 and re.search(r"stall +\d+\.\d\d% over 1 min \(budget 1\.00%, over it: not shrunk\)",
                            out), "memtidectl show: the stall line", out + err)
tap(daemon.alive(), "memtided is still running")
finish()
