#!/usr/bin/python3
"""integration (TAP): memtided and its policy files, on libvirt's test driver.

- A bad policy file at start-up: memtided refuses to start (exit 1) and the
  error names the file, the line and the key.
- --check-config says the same without starting.
- SIGHUP with a broken admin file: the old policy stays in force, the log
  says why, the daemon keeps running.
- SIGHUP after the file is fixed: the new policy is in force.
- SIGTERM: clean exit 0.
Environment: MEMTIDE_DAEMON (the built memtided).
"""

import os
import re
import signal
import subprocess
import tempfile

from daemonlib import WAIT, running, finish, require_daemon, tap

DAEMON = require_daemon()

tmp = tempfile.mkdtemp(prefix="memtide-reload-")
base = os.path.join(tmp, "default.conf")
pdir = os.path.join(tmp, "policies.d")
os.mkdir(pdir)
admin = os.path.join(pdir, "50-admin.conf")
with open(base, "w") as f:
    f.write("[host]\ntick-interval = 200ms\n[vm *]\nmin = 128M\n")
args = [DAEMON, "--connect", "test:///default", "--config", base,
        "--policies-dir", pdir, "--state-dir", os.path.join(tmp, "state")]
env = dict(os.environ, G_DEBUG="fatal-criticals")

# 1. refuse to start on a bad file
with open(admin, "w") as f:
    f.write("[vm web-*]\n# a comment\nmin = lots\n")
r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=WAIT)
tap(r.returncode == 1, f"bad policy at start-up: exit 1 (got {r.returncode})", r.stderr)
tap("50-admin.conf:3" in r.stderr and "min" in r.stderr and "lots" in r.stderr,
    "start-up error names file:line, key and value", r.stderr)

r = subprocess.run(args + ["--check-config"], capture_output=True, text=True, env=env,
                   timeout=WAIT)
tap(r.returncode == 1 and "50-admin.conf:3" in r.stderr + r.stdout,
    "--check-config reports the same problem and exits 1", r.stdout + r.stderr)

# 2. a good file: start
with open(admin, "w") as f:
    f.write("[vm web-*]\nmin = 256M\n")
r = subprocess.run(args + ["--check-config"], capture_output=True, text=True, env=env,
                   timeout=WAIT)
tap(r.returncode == 0, "--check-config accepts a valid policy", r.stdout + r.stderr)

# --verbose: each tick's plan is logged, to see it keep working.
d = running(args + ["--verbose"], env)
try:
    tap(d.wait(re.escape("memtided running on test:///default"), WAIT),
        "memtided starts with a valid policy", d.text())

    # 3. SIGHUP with a broken file: keep the old policy
    with open(admin, "w") as f:
        f.write("[vm web-*]\nmin = 256M\nmaxx = 1G\n")
    m = d.mark()
    d.signal(signal.SIGHUP)
    ok = d.wait(re.escape("Reload failed, keeping the policy in force"), WAIT, since=m)
    tap(ok, "SIGHUP with a broken file: old policy kept, and the log says so", d.text(m))
    why = d.text(m)
    tap("50-admin.conf:3" in why and "maxx" in why, "the reload error names file:line and key", why)
    m = d.mark()
    tap(d.wait(r"\bplan: ", WAIT, since=m) and d.wait(r"\bplan: ", WAIT, since=d.mark()),
        "memtided keeps running after a failed reload: it plans its next ticks", d.text(m))

    # 4. SIGHUP after the fix
    with open(admin, "w") as f:
        f.write("[vm web-*]\nmin = 256M\nmax = 1G\n")
    m = d.mark()
    d.signal(signal.SIGHUP)
    tap(d.wait(re.escape("Policy reloaded: 2 files, 2 VM groups"), WAIT, since=m),
        "SIGHUP after the fix: the new policy is in force", d.text(m))
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: memtided exits 0 (got {rc})", d.tail(20))
finish()
