"""The real memtided on the fake driver (docs/driver-fake.md), for the
integration tests that script their domains: sizes that move, guests that
refuse, resize calls that fail or block.  Built on mtlib (bus, daemon,
clients, TAP); only adds to it.
"""

import math
import os
import socket
import time

import mtlib
from mtlib import Memtided, bail, tmpdir


class FakeControl:
    """A client of the fake driver's control socket: one command line,
    one reply line."""

    def __init__(self, path, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    bail(f"cannot connect to the fake driver's control socket {path}: {e}")
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile("rw", encoding="utf-8", newline="\n")

    def command(self, line):
        """The reply, "ok ..." or "error: ..."."""
        self.file.write(line + "\n")
        self.file.flush()
        reply = self.file.readline()
        if not reply.endswith("\n"):
            bail(f"the fake driver closed its control socket (after '{line}')")
        return reply.rstrip("\n")

    def ok(self, line):
        """A command that must be taken; its reply after "ok"."""
        reply = self.command(line)
        if not reply.startswith("ok"):
            bail(f"fake driver refused '{line}': {reply}")
        return reply[2:].strip()

    def show(self, name):
        """show NAME as a dict; sizes and counts as ints."""
        fields = {}
        for word in self.ok(f"show {name}").split():
            key, _, value = word.partition("=")
            fields[key] = int(value) if value.isdigit() else value
        return fields

    def close(self):
        self.file.close()
        self.sock.close()


def fake_memtided(bus, host="", vms="", extra=(), env=None):
    """memtided --backend fake on a private bus, and a client of its
    control socket (.fake).  Memtided passes --connect for the test
    driver first; the fake driver's --connect comes later and wins
    (GOption keeps the last value of an option)."""
    workdir = tmpdir()
    ctl = os.path.join(workdir, "fake.sock")
    daemon = Memtided(bus, workdir=workdir, host=host, vms=vms,
                      extra=["--backend", "fake", "--connect", ctl] + list(extra), env=env)
    daemon.fake = FakeControl(ctl)
    mtlib.mttap.at_exit(daemon.fake.close)
    return daemon


def percentile(values, p):
    """The p-th percentile (0..100) of values, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Signals:
    """Every signal of org.memtide.Manager1 on a client's connection, with
    the time it arrived (time.monotonic()); they arrive while the GLib
    main context runs (mtlib.wait_for runs it)."""

    def __init__(self, client):
        self.seen = []   # (time, member, params unpacked)

        def on_signal(conn, sender, path, iface, member, params):
            self.seen.append((time.monotonic(), member, params.unpack()))

        client.conn.signal_subscribe(None, mtlib.MANAGER, None, mtlib.PATH, None,
                                     mtlib.Gio.DBusSignalFlags.NONE, on_signal)

    def of(self, member, name=None):
        """(time, params) of each `member` signal, of VM `name` if given
        (ActionApplied and VMStuck carry the VM's name second)."""
        return [(t, p) for t, m, p in self.seen
                if m == member and (name is None or p[1] == name)]
