#!/usr/bin/python3
"""integration (TAP): memtided and policy files that are not what they
seem, on libvirt's test driver.

- A FIFO named *.conf in policies.d: start-up, --check-config and a
  SIGHUP reload each refuse it at once, naming the file; none of them
  waits for a writer (each has a deadline), and after the failed reload
  memtided keeps the policy in force and keeps planning.
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
        return None, f"{what} still running after {WAIT:.0f} s: {e.stdout or ''}{e.stderr or ''}"
    return r.returncode, r.stdout + r.stderr


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
finish()
