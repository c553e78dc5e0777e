"""Shared pieces of the tests that run memtided itself on libvirt's test
driver: TAP output, and a running memtided whose output lines tests wait
on."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

_results = []


def tap(ok, desc, detail=None, limit=None):
    _results.append(bool(ok))
    print(f"{'ok' if ok else 'not ok'} {len(_results)} - {desc}", flush=True)
    if detail and not ok:
        for line in str(detail).splitlines()[:limit]:
            print(f"# {line}", flush=True)


def finish():
    print(f"1..{len(_results)}", flush=True)
    sys.exit(0 if all(_results) else 1)


def require_daemon():
    daemon = os.environ.get("MEMTIDE_DAEMON")
    if not daemon or not os.path.isfile(daemon):
        print(f"Bail out! MEMTIDE_DAEMON={daemon!r} is not the built memtided", flush=True)
        sys.exit(1)
    return daemon


class Running:
    """memtided started with args; its stdout+stderr collected line by line."""

    def __init__(self, args, env):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def mark(self):
        with self._lock:
            return len(self.lines)

    def text(self, since=0):
        with self._lock:
            return "\n".join(self.lines[since:])

    def wait(self, pattern, timeout=15, since=0):
        """The first match of pattern in a line from `since` on, or None
        when the time runs out or memtided exits."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines[since:]:
                    m = rx.search(line)
                    if m:
                        return m
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        """SIGTERM, then its exit status (killed after 15 s)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
