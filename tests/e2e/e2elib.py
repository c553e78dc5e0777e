"""Shared pieces of the e2e tests: TAP output (tests/lib/mttap.py, with
every check's detail printed, so the log keeps the measured figures),
prerequisite checks, and the real memtided against the testbed's guests
(tests/testbed/memtided.py).

A missing prerequisite is a "Bail out!" that names what to install,
never a skip.
"""

import os
import sys

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
