"""Shared pieces of the e2e tests: TAP output (tests/lib/mttap.py, with
every check's detail printed, so the log keeps the measured figures),
prerequisite checks, and the real memtided against the testbed's guests
(tests/testbed/memtided.py).

A missing prerequisite is a "Bail out!" that names what to install,
never a skip.  The helpers below wait on conditions with deadlines.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "testbed"))
sys.path.insert(0, os.path.join(_HERE, "..", "lib"))

import mttap  # noqa: E402
from mttap import bail, finish, note, require_env_file, tap  # noqa: E402,F401
from memtided import Memtided as Daemon  # noqa: E402,F401  (re-exported)

mttap.details_always = True
mttap.report_wall_time = True


def import_testbed():
    try:
        import testbed
        testbed.check_prerequisites()
    except Exception as e:  # prerequisite errors name the package
        bail(f"prerequisite missing: {e}")
    return testbed


# The e2e tests run TCG guests on a 2-core machine that may be busy: they
# wait for a condition with a generous deadline (polling, so a quiet
# machine does not wait longer) and assert outcomes, never the order in
# which two racing events arrive; how fast things went is a FIGURE.

def wait_until(pred, timeout, step=0.5):
    """pred() until it is truthy (returned) or timeout s pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v or None
        time.sleep(step)


def wait_console(guest, pattern, timeout, since=0):
    """guest.wait_console(), or None (noted) when no such line comes in
    time or the guest stops."""
    try:
        return guest.wait_console(pattern, timeout, since)
    except Exception as e:  # TestbedError: the console tail says why
        note(str(e))
        return None


def wait_meminfo(guest, pred, timeout, what):
    """guest.wait_meminfo(), or None (noted)."""
    try:
        return guest.wait_meminfo(pred, timeout=timeout, what=what)
    except Exception as e:  # TestbedError
        note(str(e))
        return None


def log_after(daemon, pattern, t_from, since=0):
    """(time, match) of the daemon's log lines matching pattern logged at
    or after monotonic time t_from."""
    return [(t, m) for t, m in daemon.findall(pattern, since) if t >= t_from]


def wait_log_after(daemon, pattern, t_from, timeout, since=0):
    """The first line matching pattern logged at or after t_from, waited
    for up to timeout s; None if none came."""
    hits = wait_until(lambda: log_after(daemon, pattern, t_from, since), timeout, 0.05)
    return hits[0] if hits else None
