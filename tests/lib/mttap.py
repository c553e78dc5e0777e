"""TAP output for memtide's Python test scripts (integration, daemon and
e2e suites): one `ok N - what` line per check, `1..N` at the end, and a
"Bail out!" naming what is missing instead of a skip.

Suites differ only in what they print around a check, set through the
hooks below: a detail after every check or only after failures, context
(daemon logs) printed once when something failed, work to do before the
plan line (e.g. checking that daemons exit cleanly), cleanup at a bail.
"""

import os
import sys
import time

T_START = time.monotonic()

# Print a check's detail after passing checks too (e2e tests record
# their measured figures this way); otherwise only after failures.
details_always = False
# Print the wall time with the plan.
report_wall_time = False

_results = []
_on_failure = []     # callables printing context, run once on failure
_before_finish = []  # callables run before the plan line (may add checks)
_at_exit = []        # cleanup at finish() and bail()


def note(msg):
    for line in str(msg).splitlines() or [""]:
        print(f"# {line}", flush=True)


def tap(ok, desc, detail=None, limit=None):
    """Record one check; detail (text) is printed as # lines, at most
    limit lines."""
    ok = bool(ok)
    _results.append(ok)
    print(f"{'ok' if ok else 'not ok'} {len(_results)} - {desc}", flush=True)
    if detail is not None and (details_always or not ok):
        lines = str(detail).splitlines()
        note("\n".join(lines[:limit] if limit else lines))
    return ok


def eq(got, want, desc):
    return tap(got == want, desc, f"got  {got!r}\nwant {want!r}")


def on_failure(fn):
    _on_failure.append(fn)


def before_finish(fn):
    _before_finish.append(fn)


def at_exit(fn):
    _at_exit.append(fn)


def print_context():
    for fn in _on_failure:
        try:
            fn()
        except Exception as e:  # context is best effort
            note(f"(cannot print context: {e})")
    _on_failure.clear()


def _run_exit_hooks():
    while _at_exit:
        fn = _at_exit.pop()
        try:
            fn()
        except Exception as e:  # cleanup goes on
            note(f"(cleanup failed: {e})")


def bail(msg):
    # One TAP line: the rest of a many-line reason as diagnostics.
    first, _, rest = str(msg).partition("\n")
    print(f"Bail out! {first}", flush=True)
    for line in rest.splitlines():
        print(f"# {line}", flush=True)
    print_context()
    _run_exit_hooks()
    sys.exit(1)


def finish():
    """The plan line; exit 0 only when at least one check ran and all
    passed."""
    for fn in _before_finish:
        fn()
    print(f"1..{len(_results)}", flush=True)
    if report_wall_time:
        note(f"wall time {time.monotonic() - T_START:.1f} s")
    failed = not _results or not all(_results)
    if failed:
        print_context()
    _run_exit_hooks()
    sys.exit(1 if failed else 0)


def require_env_file(var, what, executable=False):
    """The path in $var (meson sets it), or a bail naming what it should
    be."""
    path = os.environ.get(var)
    ok = path and (os.access(path, os.X_OK) if executable else os.path.isfile(path))
    if not ok:
        bail(f"{var}={path!r} is not {what} (meson sets it; by hand: "
             f"ninja -C BUILD and export {var})")
    return path


def all_passed():
    """True while no check has failed."""
    return all(_results)
