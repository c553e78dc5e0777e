"""The host side of bench/real/density-bench: its memory counters, and a
held allocation that leaves the guests a short host.

HostHold starts a child process (this file, `hold KIB`) that maps KIB of
anonymous memory in 64 MiB chunks, touches every page (MAP_POPULATE),
locks it (mlockall, current and future mappings, so it cannot be swapped
or reclaimed; root has CAP_IPC_LOCK), sets its oom_score_adj to 1000 (if
the host's OOM killer fires anyway, it takes the hold, not another
user's process), and then obeys `size KIB` lines on its stdin, mapping
or unmapping chunks, until its stdin closes: the hold ends with the
benchmark, also when the benchmark dies.

The benchmark resizes the hold so that the host's MemAvailable plus the
guests' QEMU RSS stays at what it leaves the guests (hold_target()):
memory other processes on the host take or give back moves the hold,
not the guests' room. This host is shared; a fixed hold would let
another user's build shrink the guests' host, and the guests press that
user's processes against the OOM killer."""

import ctypes
import mmap
import os
import select
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mom_rules import parse_meminfo  # noqa: E402

CHUNK_KIB = 64 * 1024
MCL_CURRENT = 1
MCL_FUTURE = 2


def meminfo(path="/proc/meminfo"):
    with open(path) as f:
        return parse_meminfo(f.read())


def vmstat(path="/proc/vmstat"):
    """{counter: value} of /proc/vmstat (oom_kill, pswpout, ...)."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(" ")
            try:
                out[k] = int(v)
            except ValueError:
                pass
    return out


def hold_target(held_kib, avail_kib, leave_kib, guests_rss_kib):
    """The hold (KiB) that makes MemAvailable + the guests' RSS equal
    leave_kib: what the guests have of the host stays leave_kib whatever
    else on the host takes or frees memory. Never negative."""
    return max(0, held_kib + avail_kib - (leave_kib - guests_rss_kib))


class HostHold:
    """A child process holding about kib KiB of locked anonymous memory
    (whole chunks of CHUNK_KIB)."""

    def __init__(self, kib):
        self.want = int(kib)
        self.kib = 0
        self.locked = None
        self.proc = None

    def _reply(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if r:
                line = self.proc.stdout.readline()
                if line.startswith("HELD "):
                    parts = line.split()
                    self.kib = int(parts[1])
                    self.locked = parts[2] == "locked=yes"
                    return True
                if not line:
                    return False
            if self.proc.poll() is not None:
                return False
        return False

    def start(self, timeout=120.0):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "hold", str(self.want)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if not self._reply(timeout):
            self.stop()
            raise RuntimeError(f"the host hold of {self.want / 1048576:.1f} GiB did not come up "
                               f"within {timeout:.0f} s (exit {self.proc.returncode})")
        return self

    def resize(self, kib, timeout=30.0):
        """Asks for kib KiB; True once the child holds it (to a chunk)."""
        try:
            self.proc.stdin.write(f"size {int(kib)}\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            return False
        return self._reply(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def _hold(kib):
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    # Locked from here on: every chunk mapped later is locked as mapped.
    locked = libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0
    chunks = []

    def resize(want):
        n = (want + CHUNK_KIB // 2) // CHUNK_KIB
        while len(chunks) > n:
            chunks.pop().close()
        while len(chunks) < n:
            try:
                m = mmap.mmap(-1, CHUNK_KIB * 1024,
                              flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
            except OSError:
                break  # the host has no more: hold what it gave
            if not locked:
                # MAP_POPULATE faulted the pages in already; unlocked they
                # leave RAM only through swap.
                for off in range(0, len(m), mmap.PAGESIZE):
                    m[off] = 1
            chunks.append(m)
        print(f"HELD {len(chunks) * CHUNK_KIB} locked={'yes' if locked else 'no'}", flush=True)

    resize(kib)
    for line in sys.stdin:  # until the benchmark closes the pipe or exits
        cmd = line.split()
        if len(cmd) == 2 and cmd[0] == "size" and cmd[1].isdigit():
            resize(int(cmd[1]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "hold" and sys.argv[2].isdigit():
        sys.exit(_hold(int(sys.argv[2])))
    sys.exit("usage: hostmem.py hold KIB (started by density-bench)")
