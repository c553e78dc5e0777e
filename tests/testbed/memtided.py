"""Run the real memtided against the host's libvirt for one testbed run:
a policy that manages only that run's guests (every other domain on the
host is observe-only), its log kept in a file and in memory as
(monotonic time, line) pairs that tests, the demo and the benchmarks wait
on. Used by tests/e2e, tests/testbed/demo.py and bench/real."""

import os
import re
import signal
import subprocess
import tempfile
import threading
import time


class Memtided:
    """The real memtided, run on the host's libvirt with a policy that
    manages only one testbed run's guests (every other domain on the host
    is observe-only), logging to a file and to a list of
    (monotonic time, line) that tests wait on."""

    def __init__(self, binary, prefix, vm_policy="", host_policy="",
                 dry_run=False, state_dir=None, extra_args=()):
        self.binary = binary
        self.tmp = tempfile.mkdtemp(prefix="memtide-e2e-")
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        self.config = os.path.join(self.tmp, "memtide.conf")
        with open(self.config, "w") as f:
            f.write("[host]\n" + host_policy + "\n"
                    "# every domain not of this run: observe only\n"
                    "[vm *]\nmechanism = none\n"
                    f"[vm {prefix}-*]\nmechanism = auto\n" + vm_policy + "\n")
        self.args = [binary, "--connect", "qemu:///system",
                     "--config", self.config,
                     "--policies-dir", os.path.join(self.tmp, "policies.d"),
                     "--state-dir", self.state_dir, "--verbose", *extra_args]
        if not any(a in ("--bus", "--bus-address") for a in extra_args):
            # Private to this run: no system bus name to fight over, and
            # no bus policy needed on the host.
            self.args += ["--bus", "none"]
        if dry_run:
            self.args.append("--dry-run")
        self.lines = []
        self._lock = threading.Lock()
        self.proc = None
        self.log_path = os.path.join(self.tmp, "memtided.log")

    def start(self):
        env = dict(os.environ, G_DEBUG="fatal-criticals")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, text=True,
                                     errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append((time.monotonic(), line))
            self._log.write(line + "\n")
            self._log.flush()

    def mark(self):
        with self._lock:
            return len(self.lines)

    def find(self, pattern, since=0):
        rx = re.compile(pattern)
        with self._lock:
            for t, line in self.lines[since:]:
                m = rx.search(line)
                if m:
                    return t, m
        return None

    def findall(self, pattern, since=0):
        rx = re.compile(pattern)
        with self._lock:
            return [(t, m) for t, line in self.lines[since:]
                    for m in [rx.search(line)] if m]

    def wait(self, pattern, timeout, since=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = self.find(pattern, since)
            if hit:
                return hit
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader drain
                return self.find(pattern, since)
            time.sleep(0.1)
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=40):
        with self._lock:
            return "\n".join(line for _, line in self.lines[-n:])

    def stop(self, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
