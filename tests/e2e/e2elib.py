"""Shared pieces of the e2e tests: TAP output, prerequisite checks, and
running the real memtided against the testbed's guests.

Every e2e test prints TAP; a missing prerequisite is a "Bail out!" that
names what to install, never a skip.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "testbed"))

T_START = time.monotonic()
_results = []


def tap(ok, desc, detail=None):
    _results.append(bool(ok))
    print(f"{'ok' if ok else 'not ok'} {len(_results)} - {desc}", flush=True)
    if detail:
        for line in str(detail).splitlines():
            print(f"# {line}", flush=True)
    return ok


def note(msg):
    for line in str(msg).splitlines():
        print(f"# {line}", flush=True)


def bail(msg):
    print(f"Bail out! {msg}", flush=True)
    sys.exit(1)


def finish():
    print(f"1..{len(_results)}", flush=True)
    note(f"wall time {time.monotonic() - T_START:.1f} s")
    sys.exit(0 if all(_results) and _results else 1)


def require_env_file(var, what):
    path = os.environ.get(var)
    if not path or not os.path.isfile(path):
        bail(f"{var}={path!r} is not {what} (meson sets it; by hand: "
             f"ninja -C BUILD and export {var})")
    return path


def import_testbed():
    try:
        import testbed
        testbed.check_prerequisites()
    except Exception as e:  # prerequisite errors name the package
        bail(f"prerequisite missing: {e}")
    return testbed


from memtided import Memtided as Daemon  # noqa: E402,F401  (re-exported)
