#!/usr/bin/python3
"""integration (TAP): guests whose agents misbehave within the line rate
limit, played by this test on the agent channels of fake-driver domains,
against the real memtided:

- "storm" says it rebooted (a new boot id in every hello) 19 times a
  second: more than 10 agent restarts and guest reboots within a minute
  is a violation ("restarts"), counted, and the link is closed;
- "flip" sends 19 reports a second whose MemTotal is alternately above
  and within what the hypervisor gives the VM, each "not used" streak a
  log line: the lines memtided logs about one guest's agent are bounded
  (20 at once, then 10 a minute) with a summary of what it suppressed;
- "garbage" sends a malformed line after its hello ("malformed");
- "calm", a well-behaved agent beside them, keeps its link.

Each VM's violations, by kind, are published: in the metrics
(memtide_vm_agent_violations_total), on D-Bus (VM1.AgentViolations,
AgentLastViolation) and by `memtidectl explain` and `show`.
"""

import http.client
import json
import os
import re
import socket
import threading
import time

import mtlib
from fakeagent import FakeAgent
from fakelib import fake_memtided
from mtlib import VM, MiB, Bus, Client, ctl, eq, finish, tap, wait_for

mtlib.binaries()

RATE = 19  # lines a second: under the link's 20
# What memtided's agent log limit allows (service/daemon-agent.c).
LOG_BURST = 20
LOG_PER_MINUTE = 10


class HostileAgent:
    """Listens on a domain's agent channel as QEMU would; once memtided
    connects, writes what line(i) gives, RATE lines a second, until
    `count` lines were written or the host closed the channel."""

    def __init__(self, path, line, count):
        self.path = path
        self.line = line
        self.count = count
        self.sent = 0
        self.started = None
        self.closed_by_host = threading.Event()
        self.done = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        mtlib.mttap.at_exit(self.close)

    def run(self):
        self.server.settimeout(0.2)
        conn = None
        while not self.stopping and conn is None:
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
        if conn is None:
            return
        self.started = time.monotonic()
        try:
            while not self.stopping and self.sent < self.count:
                line = self.line(self.sent)
                if not isinstance(line, str):
                    line = json.dumps(line, separators=(",", ":"))
                conn.sendall((line + "\n").encode())
                self.sent += 1
                # Paced, not synchronising: the rate is what is tested.
                time.sleep(1.0 / RATE)
        except OSError:
            self.closed_by_host.set()
        self.done.set()
        conn.close()

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.server.close()


def report(seq, total, hello=False, boot=0):
    r = {"v": 1, "type": "report", "seq": seq, "reason": "connect" if hello else "tick",
         "mono_us": 1000 * (seq + 1), "dropped": 0,
         "mem": {"total": total, "free": 300 * MiB, "available": 400 * MiB}}
    if hello:
        r.update({"hello": True, "agent": "hostile", "boot_id": f"{boot:08x}-0000-4000-8000-"
                  "000000000000", "page_size": 4096, "interval_ms": 1000, "psi_mode": "none",
                  "reclaim_methods": [], "root": True, "unavailable": []})
    return r


def storm_line(i):
    # seq 1 in every hello: a reboot each time, and its counters start again.
    return report(1, 900 * MiB, hello=True, boot=i)


def flip_line(i):
    # 1 GiB VM (and 512 MiB of virtio-mem not plugged): 1400 MiB is more
    # than it has, 900 MiB is within.
    if i == 0:
        return report(1, 900 * MiB, hello=True)
    return report(i + 1, 1400 * MiB if i % 2 else 900 * MiB)


def garbage_line(i):
    return report(1, 900 * MiB, hello=True) if i == 0 else '{"v":1,}'


bus = Bus()
workdir = mtlib.tmpdir()
# Sizes held (flip at its boot memory, its virtio-mem not plugged): a
# resize would make the agents' fixed MemTotal a lie, or the truth.
daemon = fake_memtided(bus, vms="[vm calm]\nmin = 100%\nmax = 100%\n"
                       "[vm storm]\nmin = 100%\nmax = 100%\n"
                       "[vm flip]\nmin = 1G\nmax = 1G\n"
                       "[vm garbage]\nmin = 100%\nmax = 100%\n",
                       extra=["--metrics-port", "0"])
fake = daemon.fake
storm = HostileAgent(os.path.join(workdir, "storm.agent"), storm_line, 200)
flip = HostileAgent(os.path.join(workdir, "flip.agent"), flip_line, 10 * RATE)
garbage = HostileAgent(os.path.join(workdir, "garbage.agent"), garbage_line, 2)
calm = FakeAgent(os.path.join(workdir, "calm.agent"))
mtlib.mttap.at_exit(calm.stop)

fake.ok(f"add calm size=1G used=300M agent={calm.path}")
fake.ok(f"add storm size=1G used=300M agent={storm.path}")
fake.ok(f"add flip size=1G vmem=512M block=128M plugged=0 used=300M agent={flip.path}")
fake.ok(f"add garbage size=1G used=300M agent={garbage.path}")

# ---- reboots 19 times a second --------------------------------------------------
storm.done.wait(mtlib.WAIT)
tap(storm.closed_by_host.is_set(), "memtided closed the storm's channel",
    f"{storm.sent} hellos sent")
tap(daemon.wait_log("VM storm: agent protocol violation (restarts: 11 agent restarts and guest "
                    "reboots within 60 s (at most 10)), link closed for 10 s (1 so far)", 10),
    "11 reboots within a minute are a violation, counted", daemon.log()[-3000:])
# What the agent got written before it saw the close depends on how fast
# memtided read; what memtided took does not.
tap(storm.sent < storm.count, f"the storm is cut short ({storm.sent} hellos sent)")
rebooted = daemon.log().count("VM storm: the guest rebooted")
tap(rebooted == 10, f"{rebooted} 'the guest rebooted' lines: the 11th reboot closed the link")

# ---- not used, used, not used, ... 19 times a second ------------------------------
tap(flip.done.wait(mtlib.WAIT), "the flip agent sent its reports", f"{flip.sent} sent")
elapsed = time.monotonic() - flip.started
tap(not flip.closed_by_host.is_set() and "VM flip: agent protocol violation" not in daemon.log(),
    "reports not used, one in two, are no violation", daemon.log()[-2000:])
# The link has read them all once memtided ticked twice more.
daemon.wait_ticks(2)
# Debug lines (every report, with --verbose) are asked for; the others
# are what a guest must not be able to multiply.
lines = [ln for ln in daemon.log().splitlines() if "VM flip: " in ln and "-DEBUG: " not in ln]
not_used = [ln for ln in lines if "agent report not used" in ln]
# Every token allows one line and at most one summary before it.
bound = 2 * (LOG_BURST + LOG_PER_MINUTE * elapsed / 60) + 1
mtlib.note(f"flip: {flip.sent} reports in {elapsed:.1f} s; memtided logged {len(lines)} lines "
           f"about it ({len(not_used)} 'not used'), bound {bound:.0f}")
tap(len(lines) <= bound,
    f"{len(lines)} log lines about flip's agent in {elapsed:.1f} s, at most {bound:.0f}",
    "\n".join(lines[-40:]))
tap(len(not_used) >= LOG_BURST - 2, "the first ones are logged", "\n".join(lines[:30]))
tap(re.search(
    r"VM flip: \d+ log lines about its agent suppressed in the last \d+ s \(at most 20 at "
    r"once, then 10 a minute\)", daemon.log()), "what was suppressed is said",
    "\n".join(lines[-10:]))

# ---- the calm guest beside them ----------------------------------------------------
tap("VM calm: agent protocol violation" not in daemon.log() and calm.connections == 1,
    "the calm guest keeps its link", f"{calm.connections} connections")

# ---- violations published, per VM and kind ---------------------------------------
tap(daemon.wait_log("VM garbage: agent protocol violation (malformed", 10),
    "the malformed line is a violation", daemon.log()[-2000:])
c = Client(bus)


def props(name):
    try:
        return c.props(c.vm_path(name), VM)
    except mtlib.GLib.Error:
        return {}


# Published after the next plan.
tap(wait_for(lambda: props("garbage").get("AgentViolations") == [("malformed", 1)], 10),
    "D-Bus: garbage's AgentViolations", props("garbage").get("AgentViolations"))
eq(props("storm").get("AgentViolations"), [("restarts", 1)], "D-Bus: storm's AgentViolations")
tap(props("storm").get("AgentLastViolation", "").startswith(
    "restarts: 11 agent restarts and guest reboots within 60 s"),
    "D-Bus: storm's AgentLastViolation", props("storm").get("AgentLastViolation"))
tap(props("garbage").get("AgentLastViolation", "").startswith("malformed: "),
    "D-Bus: garbage's AgentLastViolation", props("garbage").get("AgentLastViolation"))
eq((props("calm").get("AgentViolations"), props("calm").get("AgentLastViolation")), ([], ""),
   "D-Bus: none for the calm guest")

hit = re.search(r"Metrics on http://localhost:(\d+)/metrics", daemon.log())
tap(hit, "memtided serves metrics", daemon.log()[-2000:])
if hit:
    conn = http.client.HTTPConnection("127.0.0.1", int(hit.group(1)), timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    series = {(m.group(1), m.group(2)): float(m.group(3)) for m in re.finditer(
        r'^memtide_vm_agent_violations_total\{domain="(\w+)",uuid="[0-9a-f-]+",kind="(\w+)"\} '
        r"(\S+)$", text, re.M)}
    tap("# TYPE memtide_vm_agent_violations counter" in text, "metrics: the counter is typed")
    eq(series.get(("storm", "restarts")), 1.0, "metrics: storm, restarts")
    eq(series.get(("garbage", "malformed")), 1.0, "metrics: garbage, malformed")
    eq(series.get(("storm", "rate")), 0.0, "metrics: storm, rate (0, there from the start)")
    eq(sorted(k for (vm, k), v in series.items() if vm == "calm"),
       sorted(["malformed", "too_deep", "line_too_long", "bad_version", "bad_field",
               "inconsistent", "regressed", "rate", "restarts"]),
       "metrics: every kind for the calm guest")
    eq(sum(v for (vm, _), v in series.items() if vm in ("calm", "flip")), 0.0,
       "metrics: none for calm and flip")

code, out, err = ctl(bus, "explain", "storm")
tap(code == 0 and "Agent protocol violations: 1 since memtided attached its link" in out and
    re.search(r"^  restarts +1$", out, re.M) and
    re.search(r"^  last +restarts: 11 agent restarts and guest reboots within 60 s \(at most "
              r"10\) \(\d+ s ago\)$", out, re.M),
    "memtidectl explain: the violations by kind and the last one", out + err)
code, out, err = ctl(bus, "explain", "calm")
tap(code == 0 and "Agent protocol violations" not in out, "memtidectl explain: none for calm",
    out + err)
code, out, err = ctl(bus, "show", "garbage")
tap(code == 0 and re.search(r"^  agent violations +malformed 1$", out, re.M) and
    re.search(r"^  last violation +malformed: ", out, re.M),
    "memtidectl show: the violations by kind", out + err)
finish()
