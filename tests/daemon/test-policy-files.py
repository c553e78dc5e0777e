#!/usr/bin/python3
"""integration (TAP): memtided and policy files that are not what they
seem, on libvirt's test driver.

- A FIFO named *.conf in policies.d: start-up, --check-config and a
  SIGHUP reload each refuse it at once, naming the file; none of them
  waits for a writer (each has a deadline), and after the failed reload
  memtided keeps the policy in force and keeps planning.
- Files over the limits (docs/policy.md, "Limits"): a symlink to
  /dev/zero, a file over 1 MiB, more than 20,000 groups. Start-up and
  --check-config refuse each at once, naming the file and the limit; a
  reload keeps the policy in force, and memtided goes on planning.
Environment: MEMTIDE_DAEMON (the built memtided).
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile

from daemonlib import WAIT, running, finish, require_daemon, tap

DAEMON = require_daemon()

tmp = tempfile.mkdtemp(prefix="memtide-pfiles-")
atexit.register(shutil.rmtree, tmp, True)
base = os.path.join(tmp, "default.conf")
pdir = os.path.join(tmp, "policies.d")
os.mkdir(pdir)
with open(base, "w") as f:
    f.write("[host]\ntick-interval = 200ms\n[vm *]\nmin = 128M\n")
with open(os.path.join(pdir, "10-admin.conf"), "w") as f:
    f.write("[vm web-*]\nmin = 256M\n")
args = [DAEMON, "--connect", "test:///default", "--config", base,
        "--policies-dir", pdir, "--state-dir", os.path.join(tmp, "state")]
env = dict(os.environ, G_DEBUG="fatal-criticals")


def unblock(fifo):
    """Opens the FIFO for writing and closes it: a reader blocked in
    open() (memtided before it refused FIFOs) gets EOF and goes on, so a
    failing check does not leave a hung daemon behind."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # nobody was reading: nothing to unblock


def run_once(extra, what):
    """memtided with args + extra, which must exit by itself within WAIT:
    (exit code, output), or (None, why) when it did not."""
    try:
        r = subprocess.run(args + extra, capture_output=True, text=True, env=env, timeout=WAIT)
    except subprocess.TimeoutExpired as e:
        # What it printed so far (bytes here, even with text=True).
        out = "".join(x.decode(errors="replace") if isinstance(x, bytes) else x
                      for x in (e.stdout, e.stderr) if x)
        return None, f"{what} still running after {WAIT:.0f} s:\n{out}"
    return r.returncode, r.stdout + r.stderr


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


# ---- a FIFO ----------------------------------------------------------------------------
fifo = os.path.join(pdir, "50-fifo.conf")
os.mkfifo(fifo)

rc, out = run_once([], "start-up")
unblock(fifo)
tap(rc == 1, f"FIFO in policies.d at start-up: memtided exits 1 at once (got {rc})", out)
tap(rc is not None and fifo in out and "FIFO" in out and "regular file" in out,
    "the start-up error names the FIFO and says policy files must be regular files", out)

rc, out = run_once(["--check-config"], "--check-config")
unblock(fifo)
tap(rc == 1 and fifo in out and "FIFO" in out,
    f"--check-config with a FIFO: exit 1 at once, naming it (got {rc})", out)

os.unlink(fifo)
d = running(args + ["--verbose"], env)
try:
    tap(d.wait(re.escape("memtided running on test:///default"), WAIT),
        "memtided starts once the FIFO is gone", d.text())
    os.mkfifo(fifo)
    m = d.mark()
    d.signal(signal.SIGHUP)
    ok = d.wait(re.escape("Reload failed, keeping the policy in force"), WAIT, since=m)
    unblock(fifo)
    tap(ok and fifo in d.text(m) and "FIFO" in d.text(m),
        "SIGHUP with a FIFO in policies.d: the reload fails at once, naming it", d.text(m))
    m = d.mark()
    tap(d.wait(r"\bplan: ", WAIT, since=m) and d.wait(r"\bplan: ", WAIT, since=d.mark()),
        "memtided keeps planning after refusing the FIFO", d.text(m))
    os.unlink(fifo)
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: memtided exits 0 (got {rc})", d.tail(20))

# ---- over the limits --------------------------------------------------------------------
over = os.path.join(pdir, "50-over.conf")


def make_zero():
    os.symlink("/dev/zero", over)


def make_big():
    with open(over, "w") as f:
        f.write(("#" * 99 + "\n") * ((1 << 20) // 100) + "#" * ((1 << 20) % 100) + "\n")


def make_groups():
    with open(over, "w") as f:
        for i in range(20000):
            f.write(f"[vm vm-{i:05d}]\nshares = 5\n")


CASES = [  # (what, make the file, what the error must say)
    ("a symlink to /dev/zero", make_zero, ["a character device", "regular file"]),
    ("a file of 1 MiB + 1 byte", make_big, ["1048577 bytes", "at most 1 MiB"]),
    ("20,000 groups beside default.conf's and 10-admin.conf's", make_groups,
     ["more than 20000 groups"]),
]

for what, make, needles in CASES:
    make()
    rc, out = run_once([], "start-up")
    tap(rc == 1 and over in out and all(n in out for n in needles),
        f"{what} at start-up: exit 1 at once, naming the file and why (got {rc})", out)
    rc, out = run_once(["--check-config"], "--check-config")
    tap(rc == 1 and over in out and all(n in out for n in needles),
        f"{what}: --check-config exits 1 at once, naming the file and why (got {rc})", out)
    os.unlink(over)

d = running(args + ["--verbose"], env)
try:
    tap(d.wait(re.escape("memtided running on test:///default"), WAIT),
        "memtided starts without them", d.text())
    for what, make, needles in CASES:
        make()
        m = d.mark()
        d.signal(signal.SIGHUP)
        ok = d.wait(re.escape("Reload failed, keeping the policy in force"), WAIT, since=m)
        tap(ok and over in d.text(m) and all(n in d.text(m) for n in needles),
            f"SIGHUP with {what}: the reload fails, names the file and why, "
            "and the policy in force stays", d.text(m)[-3000:])
        m = d.mark()
        tap(d.wait(r"\bplan: ", WAIT, since=m) and d.wait(r"\bplan: ", WAIT, since=d.mark()),
            f"memtided keeps planning after refusing {what}", d.text(m)[-3000:])
        os.unlink(over)
    tap(True, f"memtided after the refused reloads: VmRSS {status(d.proc.pid, 'VmRSS')}, "
        f"VmHWM {status(d.proc.pid, 'VmHWM')}")
    m = d.mark()
    d.signal(signal.SIGHUP)
    tap(d.wait(re.escape("Policy reloaded: 2 files, 2 VM groups"), WAIT, since=m),
        "SIGHUP once they are gone: the policy reloads", d.text(m))
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: memtided exits 0 (got {rc})", d.tail(20))
finish()
