#!/usr/bin/python3
"""integration (TAP): a state directory that cannot be written.

memtided on libvirt's test driver saves its state every second here
(--state-interval 1).  While the saves fail it keeps ticking, says so
once (not once per save), and once the state can be written again it
saves it and says so:
  A. the state directory's path is a regular file (every save fails:
     the directory cannot be made); then the file is removed;
  B. as root: the state directory is a 64 KiB tmpfs, filled up (ENOSPC),
     then remounted read-only (EROFS: still the same trouble, nothing
     more said), then writable and emptied.  Without root (or without
     mount) B is reported as skipped, with why.
Environment: MEMTIDE_DAEMON, MEMTIDE_SRCDIR.
"""

import functools
import os
import shutil
import subprocess

import daemonlib
from daemonlib import WAIT, running, finish, require_daemon

DAEMON = require_daemon()
SRC = daemonlib.require_srcdir()
tap = functools.partial(daemonlib.tap, limit=40)

tmp, conf = daemonlib.scratch("memtide-state-")
proc_root = os.path.join(SRC, "tests", "unit", "data", "host", "proc")
env = dict(os.environ, G_DEBUG="fatal-criticals")
SAVE_FAILED = r"WARNING.*Cannot save state"


def start(state_dir):
    return running([DAEMON, "--connect", "test:///default", "--config", conf,
                    "--policies-dir", os.path.join(tmp, "none"), "--state-dir", state_dir,
                    "--state-interval", "1", "--proc-root", proc_root,
                    "--cgroup", os.path.join(tmp, "no-cgroup"), "--bus", "none", "-v"], env)


def ticks(d):
    return len(d.findall(r"tick \d+ took"))


def wait_ticks(d, n):
    """n more ticks (the state is due every 5 ticks)."""
    until = ticks(d) + n
    return d.wait(rf"tick {until} took", WAIT)


def saved(state_dir):
    path = os.path.join(state_dir, "state.ini")
    try:
        with open(path) as f:
            return "headroom=" in f.read()
    except OSError:
        return False


# ---- A. the state directory's path is a file ------------------------------------
blocker = os.path.join(tmp, "state-a")
with open(blocker, "w") as f:
    f.write("not a directory\n")
d = start(blocker)
try:
    tap(d.wait(r"tick 2 took", WAIT), "memtided starts with its state directory a file",
        d.tail())
    tap(not d.find(r"moved it to"), "nothing is moved aside: the state could not be read, "
        "it is not corrupt", d.tail())
    # 4 s: four saves due, each failing.
    tap(wait_ticks(d, 20), "it keeps ticking while the state cannot be saved", d.tail())
    warned = d.findall(SAVE_FAILED)
    tap(len(warned) == 1, f"one warning, not one per save ({len(warned)})",
        "\n".join(m.string for _, m in warned))
    tap(len(d.findall(r"State still not saved")) >= 2, "the saves after it are logged at "
        "debug level", d.tail())
    tap(d.alive(), "it is still running")
    os.unlink(blocker)
    tap(d.wait(r"State saved again to .*state-a/state\.ini \(it could not be saved for \d+ s\)",
               WAIT), "once the path is free it saves and says so", d.tail())
    tap(saved(blocker), "the state file is there, with the VM's learned values")
finally:
    rc = d.stop()
tap(rc == 0, f"SIGTERM: exit 0 (got {rc})", d.tail(20))

# ---- B. a full, then read-only file system ---------------------------------------
mnt = os.path.join(tmp, "state-b")
os.mkdir(mnt)
why = None
if os.geteuid() != 0:
    why = "needs root to mount a tmpfs"
else:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        why = f"cannot mount a tmpfs: {r.stderr.strip()}"
if why and os.environ.get("CI"):
    # CI runs as root: a part that cannot run there is a failure, not a skip.
    tap(False, f"ENOSPC and EROFS on a tmpfs: cannot run: {why}")
elif why:
    tap(True, f"ENOSPC and EROFS on a tmpfs # SKIP {why}")
else:
    filler = os.path.join(mnt, "filler")
    try:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        os.close(fd)
        d = start(mnt)
        try:
            tap(wait_ticks(d, 20), "memtided ticks with a full state file system", d.tail())
            warned = d.findall(SAVE_FAILED)
            tap(len(warned) == 1 and "No space left on device" in warned[0][1].string,
                f"one warning, saying the file system is full ({len(warned)})",
                "\n".join(m.string for _, m in warned) or d.tail())
            subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
            mark = d.mark()
            tap(d.wait(r"State still not saved: .*Read-only file system", WAIT, mark),
                "read-only: the saves still fail (at debug level)", d.tail())
            tap(wait_ticks(d, 10), "it keeps ticking")
            warned = d.findall(SAVE_FAILED)
            tap(len(warned) == 1, f"still one warning ({len(warned)})",
                "\n".join(m.string for _, m in warned))
            subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
            os.unlink(filler)
            tap(d.wait(r"State saved again to .*state-b/state\.ini", WAIT, mark),
                "writable with room again: it saves and says so", d.tail())
            tap(saved(mnt), "the state file is there")
        finally:
            rc = d.stop()
        tap(rc == 0, f"SIGTERM: exit 0 (got {rc})", d.tail(20))
    finally:
        subprocess.run(["umount", mnt])
shutil.rmtree(tmp, ignore_errors=True)
finish()
