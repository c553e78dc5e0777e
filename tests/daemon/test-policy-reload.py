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
import signal
import subprocess
import sys
import tempfile
import threading
import time

DAEMON = os.environ.get("MEMTIDE_DAEMON")
results = []


def tap(ok, desc, detail=None):
    results.append(bool(ok))
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {desc}", flush=True)
    if detail and not ok:
        for line in str(detail).splitlines():
            print(f"# {line}", flush=True)


if not DAEMON or not os.path.isfile(DAEMON):
    print(f"Bail out! MEMTIDE_DAEMON={DAEMON!r} is not the built memtided", flush=True)
    sys.exit(1)

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
r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=30)
tap(r.returncode == 1, f"bad policy at start-up: exit 1 (got {r.returncode})", r.stderr)
tap("50-admin.conf:3" in r.stderr and "min" in r.stderr and "lots" in r.stderr,
    "start-up error names file:line, key and value", r.stderr)

r = subprocess.run(args + ["--check-config"], capture_output=True, text=True, env=env, timeout=30)
tap(r.returncode == 1 and "50-admin.conf:3" in r.stderr + r.stdout,
    "--check-config reports the same problem and exits 1", r.stdout + r.stderr)

# 2. a good file: start
with open(admin, "w") as f:
    f.write("[vm web-*]\nmin = 256M\n")
r = subprocess.run(args + ["--check-config"], capture_output=True, text=True, env=env, timeout=30)
tap(r.returncode == 0, "--check-config accepts a valid policy", r.stdout + r.stderr)

proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, env=env)
lines = []
lock = threading.Lock()


def reader():
    for line in proc.stdout:
        with lock:
            lines.append(line.rstrip("\n"))


threading.Thread(target=reader, daemon=True).start()


def wait_for(text, timeout=15, since=0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            if any(text in line for line in lines[since:]):
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def mark():
    with lock:
        return len(lines)


try:
    tap(wait_for("memtided running on test:///default"), "memtided starts with a valid policy",
        "\n".join(lines))

    # 3. SIGHUP with a broken file: keep the old policy
    with open(admin, "w") as f:
        f.write("[vm web-*]\nmin = 256M\nmaxx = 1G\n")
    m = mark()
    proc.send_signal(signal.SIGHUP)
    ok = wait_for("Reload failed, keeping the policy in force", since=m)
    tap(ok, "SIGHUP with a broken file: old policy kept, and the log says so",
        "\n".join(lines[m:]))
    with lock:
        why = "\n".join(lines[m:])
    tap("50-admin.conf:3" in why and "maxx" in why, "the reload error names file:line and key", why)
    time.sleep(0.5)
    tap(proc.poll() is None, "memtided keeps running after a failed reload")

    # 4. SIGHUP after the fix
    with open(admin, "w") as f:
        f.write("[vm web-*]\nmin = 256M\nmax = 1G\n")
    m = mark()
    proc.send_signal(signal.SIGHUP)
    tap(wait_for("Policy reloaded: 2 files, 2 VM groups", since=m),
        "SIGHUP after the fix: the new policy is in force", "\n".join(lines[m:]))
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
tap(rc == 0, f"SIGTERM: memtided exits 0 (got {rc})", "\n".join(lines[-20:]))

print(f"1..{len(results)}", flush=True)
sys.exit(0 if all(results) else 1)
