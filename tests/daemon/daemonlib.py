"""Shared pieces of the tests that run memtided itself on libvirt's test
driver: TAP output (tests/lib/mttap.py) and a running memtided whose
output lines tests wait on (tests/lib/logproc.py)."""

import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import mttap  # noqa: E402
from logproc import LogProcess  # noqa: E402
from mttap import finish, tap  # noqa: E402,F401  (re-exported)

# Seconds a test waits for what takes a fraction of a second on a quiet
# machine (a busy one, or ASan, may be 10 times slower; waits poll).
WAIT = 30.0


def require_daemon():
    return mttap.require_env_file("MEMTIDE_DAEMON", "the built memtided", executable=True)


def require_srcdir():
    """The source tree (MEMTIDE_SRCDIR, which meson sets), or bail out."""
    src = os.environ.get("MEMTIDE_SRCDIR")
    if not src:
        print("Bail out! MEMTIDE_SRCDIR is not set (meson sets it)", flush=True)
        sys.exit(1)
    return src


def scratch(prefix):
    """(a new temporary directory, its memtide.conf): a 200 ms tick and a
    1 GiB reserve, what the tests on the fake /proc use."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    conf = os.path.join(tmp, "memtide.conf")
    with open(conf, "w") as f:
        f.write("[host]\ntick-interval = 200ms\nreserve = 1G\n")
    return tmp, conf


def running(args, env):
    """memtided started with args; its stdout+stderr collected line by line."""
    return LogProcess(args, env=env).start()
