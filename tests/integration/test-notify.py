#!/usr/bin/python3
"""integration (TAP): memtided tells systemd what it does (Type=notify):
the real memtided with $NOTIFY_SOCKET pointing at a unix datagram
socket this test binds, as systemd would.

- READY=1 comes once memtided owns org.memtide.Manager1 and has planned
  once, with a STATUS= line (VMs, budget, last action); a memtided that
  cannot own the name sends no READY=1;
- STATUS= follows the last action (the fake driver's idle guest is
  shrunk);
- WATCHDOG=1 arrives, again and again, when $WATCHDOG_USEC is set, and
  not without it, nor when $WATCHDOG_PID names another process;
- SIGHUP: RELOADING=1 with MONOTONIC_USEC=, then READY=1; a bad policy
  file too (the old policy stays, memtided serves on);
- SIGTERM: STOPPING=1.
"""

import os
import re
import signal
import socket
import threading
import time

import mtlib
from fakelib import fake_memtided
from mtlib import NAME, WAIT, Bus, Client, Memtided, eq, finish, tap, wait_for

mtlib.binaries()


class NotifySocket:
    """The service manager's end: every datagram kept, as a list of
    (name, value) in the order sent."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            fields = [tuple(line.split("=", 1)) for line in data.decode().split("\n") if line]
            with self.lock:
                self.messages.append(fields)

    def mark(self):
        with self.lock:
            return len(self.messages)

    def find(self, name, value=None, since=0):
        """The first message from `since` with name (=value), or None."""
        with self.lock:
            for msg in self.messages[since:]:
                if any(k == name and (value is None or v == value) for k, v in msg):
                    return dict(msg)
        return None

    def count(self, name, value=None, since=0):
        with self.lock:
            return sum(1 for msg in self.messages[since:]
                       if any(k == name and (value is None or v == value) for k, v in msg))

    def wait(self, name, value=None, since=0, timeout=WAIT):
        return wait_for(lambda: self.find(name, value, since), timeout)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


bus = Bus()
client = Client(bus)

# ---- start-up ------------------------------------------------------------------------------
ns = NotifySocket(mtlib.tmpdir())
d = Memtided(bus, wait=False, env={"NOTIFY_SOCKET": ns.path})
ready = ns.wait("READY", "1")
owned = client.has_owner(NAME)
log_at_ready = d.log()
tap(ready, "READY=1 arrives", d.log())
tap(owned, "... with org.memtide.Manager1 owned when it does")
tap(re.search(r"\bplan: ", log_at_ready), "... after memtided planned once (its log has a plan)",
    log_at_ready)
status = (ready or {}).get("STATUS", "")
tap(re.fullmatch(r"3 VMs, budget \S+ \S+, VMs hold \S+ \S+; last action: none", status),
    f"READY=1 comes with STATUS=: VMs, budget, last action ({status!r})")
eq(ns.count("READY", "1"), 1, "one READY=1 at start-up")
tap(ns.find("WATCHDOG") is None and wait_for(lambda: d.ticks() >= 3, WAIT)
    and ns.find("WATCHDOG") is None,
    "no $WATCHDOG_USEC: no WATCHDOG=1 (none after 3 ticks)")

# A second memtided on the same bus cannot own the name: it exits 1 and
# never says READY=1.
ns2 = NotifySocket(mtlib.tmpdir())
second = Memtided(bus, wait=False, env={"NOTIFY_SOCKET": ns2.path})
gone = wait_for(lambda: not second.alive(), WAIT)
eq(second.proc.returncode if gone else None, 1, "a memtided that cannot own the name exits 1")
tap(ns2.find("READY") is None, "... without READY=1", ns2.messages)
ns2.close()

# ---- STATUS= follows the last action (the fake driver: guests that move) ---------------------
ns_fake = NotifySocket(mtlib.tmpdir())
fd = fake_memtided(Bus(), env={"NOTIFY_SOCKET": ns_fake.path})
tap(ns_fake.wait("READY", "1"), "on the fake driver: READY=1", fd.log())
m = ns_fake.mark()
fd.fake.ok("add web size=2G used=300M")


def status_naming_web():
    with ns_fake.lock:
        lines = [v for msg in ns_fake.messages[m:] for k, v in msg if k == "STATUS"]
    return next((v for v in lines if "last action: web " in v), None)


# An idle guest is shrunk.
status = wait_for(status_naming_web, WAIT) or ""
tap(re.fullmatch(r"1 VM, budget \S+ \S+, VMs hold \S+ \S+; "
                 r"last action: web shrink \S+ \S+ -> \S+ \S+ \(balloon\)", status),
    f"STATUS= names the last action ({status!r})", ns_fake.messages[m:])
eq(fd.stop(), 0, "SIGTERM: exit 0")
ns_fake.close()

# ---- reload ----------------------------------------------------------------------------------
m = ns.mark()
d.proc.send_signal(signal.SIGHUP)
reloading = ns.wait("RELOADING", "1", since=m)
tap(reloading and re.fullmatch(r"\d+", reloading.get("MONOTONIC_USEC", "")),
    "SIGHUP: RELOADING=1 with MONOTONIC_USEC=", reloading)
if reloading:
    # CLOCK_MONOTONIC, the clock Python's time.monotonic() reads on Linux.
    then = int(reloading["MONOTONIC_USEC"])
    now = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
    tap(0 < then <= now, f"MONOTONIC_USEC is CLOCK_MONOTONIC, not later than now ({then}, {now})")
ok = ns.wait("READY", "1", since=m) and d.wait_log("Policy reloaded")
with ns.lock:
    names = [k for msg in ns.messages[m:] for k, _ in msg]
tap(ok and names.index("RELOADING") < names.index("READY"),
    "... then READY=1 once the policy is read", names)

with open(os.path.join(d.policies_dir, "50-bad.conf"), "w") as f:
    f.write("[host]\nreserve = lots\n")
m = ns.mark()
d.proc.send_signal(signal.SIGHUP)
ok = ns.wait("RELOADING", "1", since=m) and ns.wait("READY", "1", since=m)
tap(ok and d.wait_log("Reload failed, keeping the policy in force"),
    "a bad policy file: RELOADING=1, then READY=1 all the same (the old policy serves)",
    ns.messages[m:])
os.unlink(os.path.join(d.policies_dir, "50-bad.conf"))

m = ns.mark()
eq(d.stop(), 0, "SIGTERM: exit 0")
tap(ns.find("STOPPING", "1", since=m), "... after STOPPING=1", ns.messages[m:])
ns.close()

# ---- the watchdog ----------------------------------------------------------------------------
# 400 ms: WATCHDOG=1 every 200 ms from the main loop.
ns = NotifySocket(mtlib.tmpdir())
d = Memtided(bus, wait=False, env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"})
tap(ns.wait("READY", "1"), "with $WATCHDOG_USEC: READY=1", d.log())
m = ns.mark()
tap(wait_for(lambda: ns.count("WATCHDOG", "1", since=m) >= 3, WAIT),
    "WATCHDOG=1 keeps arriving (3 after READY=1)", ns.messages[-10:])
tap(d.wait_log("Watchdog: WATCHDOG=1 to the service manager every 0.2 s"),
    "memtided logs the watchdog's period", d.log())
eq(d.stop(), 0, "SIGTERM: exit 0")
ns.close()

# $WATCHDOG_PID names another process: not for this memtided, no WATCHDOG=1.
ns = NotifySocket(mtlib.tmpdir())
d = Memtided(bus, wait=False, env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000",
                                   "WATCHDOG_PID": "1"})
tap(ns.wait("READY", "1"), "$WATCHDOG_PID of another process: READY=1", d.log())
tap(wait_for(lambda: d.ticks() >= 5, WAIT) and ns.find("WATCHDOG") is None,
    "... and no WATCHDOG=1 (none in 5 ticks of 200 ms, the period being 200 ms)")
eq(d.stop(), 0, "SIGTERM: exit 0")
ns.close()

finish()
