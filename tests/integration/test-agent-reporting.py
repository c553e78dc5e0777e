#!/usr/bin/python3
"""integration (TAP): a guest agent on a patched guest kernel, played by
this test on the agent channel of a fake-driver domain: its free page
reporting counters, tunables and block usage reach the VM's D-Bus
properties, Manager1's sums, the metrics, `memtidectl status`, `show` and
`explain`; the claim is cut by the QEMU RSS the fake driver shows; a VM
without them shows nothing of it; a report with a tunable out of range
closes the link, naming the field."""

import http.client
import json
import os
import re
import socket
import threading
import time

import mtlib
from fakelib import fake_memtided
from mtlib import MANAGER, MiB, PATH, VM, Bus, Client, ctl, eq, finish, tap, wait_for

mtlib.binaries()

BOOT_ID = "5e2b7d0c-8a4f-4a5e-9c3b-1f6e2d7a9b01"
BLOCK = 128 * MiB


def usage(blocks, free, movable, unmovable, pinned, offline):
    return {"blocks": blocks, "free": free, "movable": movable, "unmovable": unmovable,
            "pinned": pinned, "offline": offline}


KERNEL = usage(8, 300 * MiB, 200 * MiB, 400 * MiB, MiB, 0)
MOVABLE = usage(4, 350 * MiB, 100 * MiB, 0, 0, 0)


class FakeAgent:
    """Listens on the domain's agent channel as QEMU would, and writes a
    report every 100 ms once memtided connects; report() gives the
    page_reporting members of the next ones."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.seq = 0
        self.passes = 10
        self.extra_pr = {}
        self.closed_by_host = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        mtlib.mttap.at_exit(self.close)

    def line(self, hello):
        with self.lock:
            self.seq += 1
            self.passes += 1
            r = {"v": 1, "type": "report", "seq": self.seq,
                 "reason": "connect" if hello else "tick",
                 "mono_us": int(time.monotonic() * 1e6), "dropped": 0}
            if hello:
                r.update({"hello": True, "agent": "fake agent", "boot_id": BOOT_ID,
                          "page_size": 4096, "interval_ms": 1000, "psi_mode": "none",
                          "reclaim_methods": [], "root": True, "unavailable": []})
            r["mem"] = {"total": 1400 * MiB, "free": 650 * MiB, "available": 700 * MiB}
            r["memory_blocks"] = {"block_size": BLOCK, "online_movable": 4, "online_kernel": 8,
                                  "offline": 0, "going_offline": 0}
            pr = {"order": 9, "reported_bytes": 600 * MiB,
                  "reported_total_bytes": 4096 * MiB + self.seq * MiB,
                  "reused_total_bytes": 1024 * MiB, "passes": self.passes,
                  "budget_exhausted": 3, "delay_ms": 2000, "budget_divisor": 16}
            pr.update(self.extra_pr)
            r["page_reporting"] = pr
            r["block_usage"] = {"kernel": KERNEL, "movable": MOVABLE, "virtio_mem": MOVABLE}
        return (json.dumps(r, separators=(",", ":")) + "\n").encode()

    def run(self):
        self.server.settimeout(0.2)
        conn = None
        while not self.stop and conn is None:
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
        if conn is None:
            return
        conn.settimeout(0.1)
        hello = True
        while not self.stop:
            try:
                conn.sendall(self.line(hello))
                hello = False
                # Requests (reclaim, ...) are read and left unanswered.
                if conn.recv(4096) == b"":
                    break
            except socket.timeout:
                pass
            except OSError:
                break
            time.sleep(0.1)
        self.closed_by_host.set()
        conn.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.server.close()


bus = Bus()
workdir = mtlib.tmpdir()
daemon = fake_memtided(bus, vms="[vm pat]\nmin = 100%\nmax = 100%\nreclaim-cold-cache = false\n",
                       extra=["--metrics-port", "0"])
fake = daemon.fake
c = Client(bus)
agent = FakeAgent(os.path.join(workdir, "pat.agent"))

fake.ok(f"add pat size=1G vmem=512M block=128M plugged=512M rss=1200M agent={agent.path}")
fake.ok("add plain size=1G used=600M")


def props(name):
    try:
        return c.props(c.vm_path(name), VM)
    except mtlib.GLib.Error:
        return {}


got = wait_for(lambda: props("pat").get("ReportingBudgetDivisor") == 16, 20)
tap(got, "the agent's report reaches the VM's properties", props("pat"))
p = props("pat")
eq(p.get("ReportedFree"), 600 * MiB, "ReportedFree: the guest's claim")
# 1.5 GiB guest, QEMU RSS 1200 MiB: up to 336 MiB + 256 MiB + 24 MiB is
# believed, so the whole 600 MiB claim.
eq(p.get("RssSaved"), 600 * MiB, "RssSaved: the claim, within size - RSS + tolerance")
tap(p.get("ReportedTotal", 0) > 4096 * MiB, "ReportedTotal: the counter", p.get("ReportedTotal"))
eq(p.get("ReusedTotal"), 1024 * MiB, "ReusedTotal")
tap(p.get("ReportingPasses", 0) > 10, "ReportingPasses", p.get("ReportingPasses"))
eq(p.get("ReportingBudgetExhausted"), 3, "ReportingBudgetExhausted")
eq(p.get("ReportingDelay"), 2000, "ReportingDelay in ms")
kinds = {k[0]: k[1:] for k in p.get("BlockUsage", [])}
eq(kinds.get("kernel"), (8, 300 * MiB, 200 * MiB, 400 * MiB, MiB, 0), "BlockUsage: kernel")
eq(kinds.get("movable"), (4, 350 * MiB, 100 * MiB, 0, 0, 0), "BlockUsage: movable")
eq(kinds.get("virtio-mem"), (4, 350 * MiB, 100 * MiB, 0, 0, 0), "BlockUsage: virtio-mem")
eq(p.get("Unpluggable"), 450 * MiB, "Unpluggable: virtio-mem free + movable, within Plugged")

plain = props("plain")
eq((plain.get("ReportedFree"), plain.get("RssSaved"), plain.get("ReportingDelay"),
    plain.get("BlockUsage")), (0, 0, 0, []), "a VM without an agent: none of it")

m = c.props(PATH, MANAGER)
eq(m.get("ReportedFree"), 600 * MiB, "Manager1.ReportedFree sums the claims")
eq(m.get("RssSaved"), 600 * MiB, "Manager1.RssSaved")
eq(m.get("ReusedTotal"), 1024 * MiB, "Manager1.ReusedTotal")
tap(m.get("ReportedTotal", 0) > 4096 * MiB, "Manager1.ReportedTotal", m.get("ReportedTotal"))

# QEMU holds more than the claim allows: 1400 MiB of 1536 leaves 136 MiB
# + 280 MiB of tolerance believed.
fake.ok("set pat rss=1400M")
tap(wait_for(lambda: props("pat").get("RssSaved") == 416 * MiB, 10),
    "RssSaved is cut when QEMU's RSS rises", props("pat"))
eq(props("pat").get("ReportedFree"), 600 * MiB, "... while ReportedFree stays the claim")

# ---- metrics ------------------------------------------------------------------
hit = re.search(r"Metrics on http://localhost:(\d+)/metrics", daemon.log())
tap(hit, "memtided serves metrics", daemon.log()[-2000:])
if hit:
    conn = http.client.HTTPConnection("127.0.0.1", int(hit.group(1)), timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    lab = re.compile(r'\{domain="pat",uuid="[0-9a-f-]+"')

    def metric(name, extra=""):
        m = re.search(name + lab.pattern + extra + r"\} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    eq(metric("memtide_vm_reported_free_bytes"), 600.0 * MiB, "metric: reported free")
    eq(metric("memtide_vm_rss_saved_bytes"), 416.0 * MiB, "metric: RSS saved")
    tap((metric("memtide_vm_reported_bytes_total") or 0) > 4096 * MiB,
        "metric: reported bytes counter, _total")
    eq(metric("memtide_vm_reused_bytes_total"), 1024.0 * MiB, "metric: reused bytes counter")
    eq(metric("memtide_vm_reporting_budget_exhausted_total"), 3.0, "metric: budget exhausted")
    eq(metric("memtide_vm_reporting_delay_seconds"), 2.0, "metric: delay in seconds")
    eq(metric("memtide_vm_reporting_budget_divisor"), 16.0, "metric: budget divisor")
    eq(metric("memtide_vm_block_usage_bytes", r',kind="virtio-mem",use="free"'), 350.0 * MiB,
       "metric: block usage by kind and use")
    eq(metric("memtide_vm_block_usage_blocks", r',kind="kernel"'), 8.0, "metric: blocks by kind")
    tap("# TYPE memtide_vm_reported_bytes counter" in text, "the counter is typed as one")
    tap(re.search(r"^memtide_guest_rss_saved_bytes 436207616$", text, re.M),
        "metric: RSS saved host-wide")
    tap('memtide_vm_reported_free_bytes{domain="plain"' not in text,
        "nothing for the VM without the patched kernel")

# ---- memtidectl ----------------------------------------------------------------
code, out, err = ctl(bus, "status")
tap(code == 0 and re.search(r"^Reporting: 416 MiB saved on the host .* 1\.0 GiB reused", out,
                            re.M), "memtidectl status: a reporting line", out + err)
code, out, err = ctl(bus, "show", "pat")
tap(code == 0 and "delay 2000 ms, budget divisor 16" in out and
    re.search(r"usage virtio-mem +4 blocks: free 350 MiB, movable 100 MiB", out),
    "memtidectl show: tunables and block usage", out + err)
code, out, err = ctl(bus, "explain", "pat")
tap(code == 0 and "Free page reporting (guest kernel):" in out and
    re.search(r"reported now +600 MiB, of which memtided believes 416 MiB", out) and
    re.search(r"delay +2000 ms", out) and
    re.search(r"kernel +8 blocks: free 300 MiB, movable 200 MiB, unmovable 400 MiB, "
              r"pinned 1\.0 MiB", out) and
    re.search(r"unpluggable +450 MiB", out), "memtidectl explain: reporting and block usage",
    out + err)
code, out, err = ctl(bus, "explain", "plain")
tap(code == 0 and "Free page reporting" not in out and "Memory blocks" not in out,
    "memtidectl explain: nothing of it for a stock guest", out + err)

# ---- a guest that lies ------------------------------------------------------------
with agent.lock:
    agent.extra_pr = {"budget_divisor": 2000}
tap(daemon.wait_log("agent protocol violation (bad_field page_reporting.budget_divisor", 10),
    "a tunable out of range closes the link, naming the field", daemon.log()[-3000:])
tap(agent.closed_by_host.wait(10), "the link is closed")
tap(wait_for(lambda: props("pat").get("ReportedFree") == 0, 15),
    "its figures are dropped once its last good report is stale", props("pat"))
finish()
