#!/usr/bin/python3
"""integration (TAP): memtided's operator lines reach journald with their
fields: the real memtided (fake driver) with stderr on a journal.

GLib sends a process's log to journald when its stderr is a socket
connected to /run/systemd/journal/stdout, and sends each entry to
/run/systemd/journal/socket.  This test makes both in a mount namespace
of its own (unshare(1), a tmpfs on /run/systemd: the host's /run is not
touched) and reads the entries memtided sends in journald's native
protocol, as journald would: a resize (MESSAGE_ID, MEMTIDE_VM, the sizes
in bytes, the mechanism, the reason), a VM that became stuck, a reload
with a bad policy file, and bad policy files at start-up.  The unit test test-log-event checks every
kind's fields and the plain text through a GLogWriterFunc.
Needs root (a mount namespace); without it, a "Bail out!".
Environment: MEMTIDED (meson).
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading

if os.environ.get("MEMTIDE_JOURNAL_NS") != "1":
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("Bail out! needs root and unshare(1) (util-linux) for a mount namespace",
              flush=True)
        sys.exit(1)
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private",
                           sys.executable, os.path.abspath(__file__)],
               dict(os.environ, MEMTIDE_JOURNAL_NS="1"))

import mtlib  # noqa: E402
from fakelib import FakeControl  # noqa: E402
from mtlib import WAIT, bail, eq, finish, note, tap, wait_for  # noqa: E402

mtlib.binaries()

RESIZE = "e0306dca9c444aafa451764a410b7da2"
STUCK = "b127c68f777646a1ad7309d9b68c7010"
POLICY_ERROR = "cf0ec7e6175a4fcbab1d23cd8946ef64"

r = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], capture_output=True,
                   text=True)
if r.returncode != 0:
    bail(f"cannot mount a tmpfs on /run/systemd in the namespace: {r.stderr.strip()}")
os.makedirs("/run/systemd/journal")


def parse_native(data):
    """journald's native protocol: KEY=VALUE lines, or KEY, a 64-bit
    little-endian length, the value and a newline."""
    entry, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            entry[k.decode()] = v.decode()
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            entry[line.decode()] = data[nl + 9:nl + 9 + n].decode()
            i = nl + 9 + n + 1
    return entry


entries = []
lock = threading.Lock()
journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
journal.bind("/run/systemd/journal/socket")
journal.settimeout(0.2)
stdout_server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stdout_server.bind("/run/systemd/journal/stdout")
stdout_server.listen(1)
stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stream.connect("/run/systemd/journal/stdout")
stream_peer, _ = stdout_server.accept()
plain = []   # what reached the stream: text not sent as an entry
running = True


def read_journal():
    while running:
        try:
            data = journal.recv(1 << 20)
        except socket.timeout:
            continue
        with lock:
            entries.append(parse_native(data))


def read_stream():
    stream_peer.settimeout(0.2)
    while running:
        try:
            data = stream_peer.recv(65536)
        except socket.timeout:
            continue
        if not data:
            return
        plain.append(data.decode(errors="replace"))


threads = [threading.Thread(target=read_journal, daemon=True),
           threading.Thread(target=read_stream, daemon=True)]
for t in threads:
    t.start()

work = mtlib.tmpdir()
config = mtlib.write_config(work, host="stuck-timeout = 2s\n")
policies = os.path.join(work, "policies.d")
ctl = os.path.join(work, "fake.sock")
daemon = subprocess.Popen(
    [mtlib.MEMTIDED, "--backend", "fake", "--connect", ctl, "--config", config,
     "--policies-dir", policies, "--state-dir", os.path.join(work, "state"),
     "--proc-root", mtlib.PROC, "--cgroup", work, "--bus", "none"],
    stdin=subprocess.DEVNULL, stdout=stream.fileno(), stderr=stream.fileno(),
    env=dict(os.environ, G_DEBUG="fatal-criticals"))
mtlib._procs.append(daemon)


def show_entries():
    with lock:
        note("---- journal entries ----")
        for e in entries:
            note(" ".join(f"{k}={v!r}" for k, v in sorted(e.items()) if not k.startswith("CODE_")))
    note("---- plain stream ----\n" + "".join(plain))


mtlib.mttap.on_failure(show_entries)


def find(pred):
    with lock:
        return next((e for e in entries if pred(e)), None)


def wait_entry(pred, timeout=WAIT):
    return wait_for(lambda: find(pred), timeout)


started = wait_entry(lambda e: e.get("MESSAGE", "").startswith("memtided running on "))
tap(started, "memtided's lines go to the journal when its stderr is the journal")
tap(started and "MESSAGE_ID" not in started and started.get("PRIORITY") == "5",
    "... an ordinary line has no MESSAGE_ID, priority 5 (notice)", started)
fake = FakeControl(ctl)

# ---- a resize -----------------------------------------------------------------------------------
fake.ok("add web size=2G used=300M")
resize = wait_entry(lambda e: e.get("MESSAGE_ID") == RESIZE)
tap(resize, "an idle guest is shrunk: a resize entry with its MESSAGE_ID")
if resize:
    eq(resize.get("MEMTIDE_VM"), "web", "MEMTIDE_VM: the domain's name")
    eq(resize.get("MEMTIDE_SIZE_FROM"), str(2 << 30), "MEMTIDE_SIZE_FROM: its size, in bytes")
    tap(int(resize.get("MEMTIDE_SIZE_TO", "0")) < 2 << 30 and
        resize["MEMTIDE_SIZE_TO"].isdigit(), "MEMTIDE_SIZE_TO: smaller, in bytes", resize)
    eq(resize.get("MEMTIDE_MECHANISM"), "balloon", "MEMTIDE_MECHANISM")
    reason = resize.get("MEMTIDE_REASON", "")
    tap(resize.get("MESSAGE") == f"resize: web: {reason}" and reason.startswith("shrink "),
        "MESSAGE is the usual line, MEMTIDE_REASON its reason without the VM's name",
        resize)
    eq((resize.get("PRIORITY"), resize.get("GLIB_DOMAIN")), ("5", "memtided"),
       "priority 5, GLib's domain")

# ---- a VM that does not follow --------------------------------------------------------------------
fake.ok("add stubborn size=2G")
fake.ok("refuse stubborn")
fake.ok("set stubborn used=300M")
stuck = wait_entry(lambda e: e.get("MESSAGE_ID") == STUCK, 30)
tap(stuck and stuck.get("MEMTIDE_VM") == "stubborn" and stuck.get("PRIORITY") == "4"
    and "did not move toward" in stuck.get("MEMTIDE_REASON", "")
    and stuck.get("MESSAGE") == f"stubborn: stuck: {stuck.get('MEMTIDE_REASON')}"
    and stuck.get("MEMTIDE_SIZE_FROM", "").isdigit()
    and stuck.get("MEMTIDE_SIZE_TO", "").isdigit(),
    "a guest that does not follow: a stuck entry (warning) with the VM, sizes and reason",
    stuck)

# ---- a policy error on reload --------------------------------------------------------------------
with open(os.path.join(policies, "50-bad.conf"), "w") as f:
    f.write("[host]\nreserve = lots\n")
daemon.send_signal(signal.SIGHUP)
bad = wait_entry(lambda e: e.get("MESSAGE_ID") == POLICY_ERROR)
tap(bad and "50-bad.conf:2" in bad.get("MEMTIDE_REASON", "") and "MEMTIDE_VM" not in bad
    and bad.get("MESSAGE", "").startswith("Reload failed, keeping the policy in force:\n"),
    "a bad policy file on SIGHUP: a policy error entry, every problem in MEMTIDE_REASON", bad)

daemon.send_signal(signal.SIGTERM)
try:
    rc = daemon.wait(15)
except subprocess.TimeoutExpired:
    daemon.kill()
    rc = daemon.wait()
eq(rc, 0, "SIGTERM: exit 0")

# ---- a policy error at start-up ---------------------------------------------------------------
with open(os.path.join(policies, "60-worse.conf"), "w") as f:
    f.write("[vm web]\nmin = 4G\nmax = 1G\n")
stream2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stream2.connect("/run/systemd/journal/stdout")
stream2_peer, _ = stdout_server.accept()
start = subprocess.run(
    [mtlib.MEMTIDED, "--backend", "fake", "--connect", ctl + "2", "--config", config,
     "--policies-dir", policies, "--state-dir", os.path.join(work, "state"),
     "--proc-root", mtlib.PROC, "--cgroup", work, "--bus", "none"],
    stdin=subprocess.DEVNULL, stdout=stream2.fileno(), stderr=stream2.fileno(), timeout=WAIT,
    env=dict(os.environ, G_DEBUG="fatal-criticals"))
eq(start.returncode, 1, "bad policy files at start-up: exit 1")
refused = wait_entry(lambda e: e.get("MESSAGE_ID") == POLICY_ERROR and
                     e.get("MESSAGE", "").startswith("memtided: refusing to start"))
tap(refused and "50-bad.conf:2" in refused.get("MEMTIDE_REASON", "")
    and "60-worse.conf" in refused.get("MEMTIDE_REASON", ""),
    "... a policy error entry, every problem in MEMTIDE_REASON", refused)
stream2.close()
stream2_peer.close()
running = False
for t in threads:
    t.join(2)
fake.close()
finish()
