"""A process whose output (stdout and stderr) tests wait on: every line
is kept with the monotonic time it arrived, and optionally written to a
log file as it arrives."""

import re
import signal as _signal
import subprocess
import threading
import time


class LogProcess:
    def __init__(self, args, env=None, log_path=None):
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.lines = []          # (monotonic time, line)
        self._lock = threading.Lock()
        self.proc = None
        self._log = None
        self._reader = None

    def start(self):
        if self.log_path:
            self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env,
                                     text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append((time.monotonic(), line))
            if self._log:
                self._log.write(line + "\n")
                self._log.flush()

    def mark(self):
        """A position in the output, for find/wait/text(since=...)."""
        with self._lock:
            return len(self.lines)

    def find(self, pattern, since=0):
        """(time, match) of the first line from `since` matching, or None."""
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

    def wait(self, pattern, timeout=30, since=0):
        """find(), retried until it matches, the time runs out (it looks
        at least once) or the process exits (its last lines are still
        searched)."""
        deadline = time.monotonic() + timeout
        while True:
            hit = self.find(pattern, since)
            if hit:
                return hit
            if self.proc.poll() is not None:
                self._reader.join(2)  # let the reader drain
                return self.find(pattern, since)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def text(self, since=0):
        with self._lock:
            return "\n".join(line for _, line in self.lines[since:])

    def tail(self, n=40):
        with self._lock:
            return "\n".join(line for _, line in self.lines[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15, sig=_signal.SIGTERM):
        """sig (SIGTERM), then the exit status; killed after timeout s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader:
            self._reader.join(5)
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
