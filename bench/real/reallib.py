"""What bench/real's benchmarks (real-bench, density-bench) share: the
workload mix, the build's binaries, reading a guest's QEMU process and
memtided's per-VM state, OOM kills on a guest console, the private
D-Bus bus memtided's API runs on, and removing what a testbed run left."""

import hashlib
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "testbed"))

import testbed  # noqa: E402

# The workload mix (memtide-workload schedules, docs/testbed.md).
# Schedules begin with >= 20 s of sleep: memtided connects meanwhile and
# the first seconds give every guest's idle floor.
GUESTS = [
    ("web", "sleep:20s,ramp:0M-500M/30s,hold:40s,ramp:500M-100M/20s,sleep:40s,loop"),
    ("cache", "sleep:20s,cache:600M,sleep:60s,anon:200M,hold:20s,free,sleep:40s,loop"),
    ("batch", "sleep:40s,burst:400M/30s,sleep:60s,loop"),
    ("idle", "sleep:20s,anon:100M,cache:200M,sleep:60m"),
]

OOM_RE = re.compile(r"Out of memory|oom-kill|Killed process")
KILL_RE = re.compile(r"Killed process|MEMTIDE-WORKLOAD-EXIT status=\d+ signal=9")


def oom_kills(text):
    """OOM kills on a guest console: its kernel's `Killed process` lines,
    else the workload's exit by SIGKILL."""
    kernel = len([m for m in KILL_RE.finditer(text) if m.group(0).startswith("Killed")])
    return kernel or len(KILL_RE.findall(text))


def default_build():
    for cand in ("build", "build-lead"):
        p = os.path.join(SRC, cand)
        if os.path.isfile(os.path.join(p, "service", "memtided")):
            return p
    return os.path.join(SRC, "build")


def binaries(build):
    """The built programs a benchmark runs, by role; exits naming the one
    missing."""
    bins = {"memtided": os.path.join(build, "service", "memtided"),
            "memtidectl": os.path.join(build, "memtidectl", "memtidectl"),
            "workload": os.path.join(build, "tests", "workload", "memtide-workload"),
            "agent": os.path.join(build, "guest-agent", "memtide-agent")}
    for what, path in bins.items():
        if not os.path.isfile(path):
            sys.exit(f"{path} is missing ({what}): build first (ninja -C {build})")
    return bins


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, TypeError):
        pass
    return None


def qemu_pids():
    out = subprocess.run(["pgrep", "-x", "qemu-system-x86"], capture_output=True,
                         text=True).stdout.split()
    return {int(p) for p in out}


def ctl_status(ctl, address):
    """{name: {D-Bus property: value}} from memtidectl (Current, Need,
    Target in bytes, Pressure and Stall in %, Decision), or {}."""
    try:
        r = subprocess.run([ctl, "--address", address, "--json", "status"],
                           capture_output=True, text=True, timeout=5)
        data = json.loads(r.stdout) if r.returncode == 0 else {}
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return {}
    return {vm.get("Name"): vm for vm in data.get("vms", [])}


class Bus:
    """A private dbus-daemon (tests/testbed/demo-bus.conf) for memtided's
    API, so memtidectl can read the per-VM pressure."""

    def __init__(self):
        conf = os.path.join(SRC, "tests", "testbed", "demo-bus.conf")
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file", conf,
                                      "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.stop()
            raise RuntimeError("dbus-daemon did not start (Debian package dbus)")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def remove_leftovers(tb, log):
    """Removes any domain of this testbed run still there after its
    teardown (only domains carrying this run's ownership record)."""
    try:
        conn = testbed.connect(tb.uri)
        left = testbed.testbed_domains(conn, tb.prefix)
        if left:
            log(f"teardown left {len(left)} domain(s) of {tb.prefix}; removing them")
            testbed.remove_run(conn, tb.prefix)
    except Exception as e:  # noqa: BLE001 - report, never leave silently
        log(f"checking for leftover domains of {tb.prefix} failed: {e}; "
            f"remove them with tests/testbed/testbed.py down --prefix {tb.prefix}")


def reconnect_for_teardown(tb, log):
    """Other jobs on this host restart libvirtd (tests/e2e/test-daemon
    does): the testbed's connection then looks alive but every lookup
    fails, and its teardown would skip our domains. Hands it a fresh
    connection before its with block tears down."""
    try:
        tb.conn = testbed.connect(tb.uri)
    except Exception as e:  # noqa: BLE001 - teardown must go on
        log(f"reconnecting to libvirt for teardown failed: {e}")
