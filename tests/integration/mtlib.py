"""Shared pieces of the integration tests: a private D-Bus bus, a mock
polkit on it, the real memtided on the libvirt test driver, bus clients,
memtidectl runs, and TAP output.

Every process a test starts is stopped by the test (atexit too), by its
own pid; memtided's log is printed when a test fails.
Environment (set by meson): MEMTIDED, MEMTIDECTL.
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True

from gi.repository import Gio, GLib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
NODE_XML = os.path.join(DATA, "node.xml")
PROC = os.path.join(DATA, "proc")
BUS_CONF = os.path.join(HERE, "bus.conf")

NAME = "org.memtide.Manager1"
PATH = "/org/memtide/Manager1"
MANAGER = "org.memtide.Manager1"
VM = "org.memtide.VM1"
PROPS = "org.freedesktop.DBus.Properties"
OBJMGR = "org.freedesktop.DBus.ObjectManager"
POLKIT = "org.freedesktop.PolicyKit1"

ALL_ACTIONS = ["org.memtide.reload", "org.memtide.set-mode", "org.memtide.reserve",
               "org.memtide.set-limits", "org.memtide.pin"]

MiB = 1024 * 1024
GiB = 1024 * MiB

# Seconds a test waits for what takes a fraction of a second on a quiet
# machine (a busy one, or ASan, may be 10 times slower; waits poll, so a
# quiet machine does not wait longer).
WAIT = 30.0

# The domains of data/node.xml that run, by name.
VMS = {
    "web": "aaaaaaaa-0000-4000-8000-000000000001",
    "db": "aaaaaaaa-0000-4000-8000-000000000002",
    "batch": "aaaaaaaa-0000-4000-8000-000000000003",
}

# ---- TAP (tests/lib/mttap.py) ------------------------------------------------

sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import mttap  # noqa: E402
from mttap import bail, eq, finish, note, tap  # noqa: E402,F401  (re-exported)

_daemons = []      # every Memtided started


def _check_daemons_exit():
    # Every memtided still running must shut down cleanly: under ASan this
    # is where leaks and use-after-free at exit show.
    for i, d in enumerate(_daemons):
        if d.alive():
            code = d.stop()
            tap(code == 0, f"memtided #{i + 1} exits 0 on SIGTERM (got {code})",
                d.log()[-3000:])


mttap.before_finish(_check_daemons_exit)


def require_env_file(var, what):
    return mttap.require_env_file(var, what, executable=True)


MEMTIDED = None
MEMTIDECTL = None


def binaries():
    global MEMTIDED, MEMTIDECTL
    MEMTIDED = require_env_file("MEMTIDED", "the built memtided")
    MEMTIDECTL = require_env_file("MEMTIDECTL", "the built memtidectl")
    for tool in ("dbus-daemon",):
        if not shutil.which(tool):
            bail(f"{tool} is missing (Debian package dbus)")
    return MEMTIDED, MEMTIDECTL


# ---- processes --------------------------------------------------------------

_procs = []
_tmpdirs = []


def _stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _cleanup():
    for proc in reversed(_procs):
        _stop(proc)
    _procs.clear()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    _tmpdirs.clear()


atexit.register(_cleanup)
mttap.at_exit(_cleanup)


def _excepthook(kind, value, tb):
    sys.__excepthook__(kind, value, tb)
    print(f"Bail out! uncaught {kind.__name__}: {value}", flush=True)
    mttap.print_context()
    _cleanup()


sys.excepthook = _excepthook


def tmpdir():
    d = tempfile.mkdtemp(prefix="memtide-it-")
    _tmpdirs.append(d)
    return d


def wait_for(pred, timeout, step=0.05):
    """pred() until it is truthy (returned) or timeout (None); runs the
    GLib main context meanwhile so signals are delivered."""
    deadline = time.monotonic() + timeout
    ctx = GLib.MainContext.default()
    while True:
        while ctx.iteration(False):
            pass
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


class Bus:
    """A private dbus-daemon (tests/integration/bus.conf, or another
    config), stopped at exit."""

    def __init__(self, config=BUS_CONF):
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _procs.append(self.proc)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            bail(f"dbus-daemon did not start: {self.proc.stderr.read()}")

    def stop(self):
        return _stop(self.proc)


class Polkit:
    """python-dbusmock's polkitd template on the bus: denies everything
    until set_allowed()."""

    def __init__(self, bus):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _procs.append(self.proc)
        self.client = Client(bus)
        if not wait_for(lambda: self.client.has_owner(POLKIT), WAIT):
            bail(f"mock polkit did not start (python3-dbusmock installed?): "
                 f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def set_allowed(self, actions):
        self.client.call(POLKIT, "/org/freedesktop/PolicyKit1/Authority",
                         "org.freedesktop.DBus.Mock", "SetAllowed",
                         GLib.Variant("(as)", (list(actions),)))

    def stop(self):
        return _stop(self.proc)


def write_config(directory, host="", vms=""):
    """A base policy: fast ticks, batch observe-only, plus the given text."""
    path = os.path.join(directory, "memtide.conf")
    with open(path, "w") as f:
        f.write("[host]\ntick-interval = 200ms\nreserve = 512M\n" + host +
                "\n[vm batch]\nmechanism = none\n" + vms + "\n")
    os.makedirs(os.path.join(directory, "policies.d"), exist_ok=True)
    return path


class Memtided:
    """The real memtided on the test driver and a private bus."""

    def __init__(self, bus, workdir=None, host="", vms="", extra=(), state_dir=None,
                 node_xml=NODE_XML, wait=True, env=None):
        self.dir = workdir or tmpdir()
        self.config = write_config(self.dir, host, vms)
        self.policies_dir = os.path.join(self.dir, "policies.d")
        self.state_dir = state_dir or os.path.join(self.dir, "state")
        self.log_path = os.path.join(self.dir, f"memtided-{len(_procs)}.log")
        self.args = [MEMTIDED, "--connect", f"test://{node_xml}",
                     "--config", self.config, "--policies-dir", self.policies_dir,
                     "--state-dir", self.state_dir, "--proc-root", PROC,
                     "--cgroup", self.dir, "--verbose"]
        if bus is not None:
            self.args += ["--bus-address", bus.address]
        self.args += list(extra)
        env = dict(os.environ, G_DEBUG="fatal-criticals", **(env or {}))
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        _procs.append(self.proc)
        _daemons.append(self)
        mttap.on_failure(self.print_log)
        if wait and bus is not None:
            self.client = Client(bus)
            ok = wait_for(lambda: self.proc.poll() is not None or (
                self.client.has_owner(NAME) and
                self.client.prop(PATH, MANAGER, "Connected")), WAIT)
            if not ok or self.proc.poll() is not None:
                bail(f"memtided did not come up on the bus\n{self.log()}")

    def log(self):
        self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def print_log(self):
        note(f"---- memtided log ({' '.join(self.args)}) ----")
        note(self.log())
        note("---- end of memtided log ----")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        code = _stop(self.proc, sig)
        self._log.flush()
        return code

    def wait_log(self, text, timeout=WAIT):
        return wait_for(lambda: text in self.log(), timeout)

    # A tick in the --verbose log: its plan, or the paused tick.
    TICK_RE = re.compile(r"\bplan: |: paused, observing only$", re.M)

    def ticks(self):
        """Ticks logged so far."""
        return len(self.TICK_RE.findall(self.log()))

    def wait_ticks(self, n, timeout=WAIT):
        """Waits until n more ticks are logged: what memtided does on
        its own in that time has been done."""
        until = self.ticks() + n
        return wait_for(lambda: self.ticks() >= until, timeout)


class Client:
    """A bus connection of its own (a bus client; closing it is leaving
    the bus)."""

    def __init__(self, bus):
        self.conn = Gio.DBusConnection.new_for_address_sync(
            bus.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        self.conn.set_exit_on_close(False)
        self.signals = []   # (interface, member, path, params unpacked)

    @property
    def unique_name(self):
        return self.conn.get_unique_name()

    def call(self, dest, path, iface, method, args=None, reply=None, timeout=10000):
        v = self.conn.call_sync(dest, path, iface, method, args,
                                GLib.VariantType(reply) if reply else None,
                                Gio.DBusCallFlags.NO_AUTO_START, timeout, None)
        return v.unpack() if v is not None else None

    def m(self, method, *args, sig=None, reply=None, path=PATH, iface=MANAGER):
        """A call to memtided; sig: the argument signature."""
        params = GLib.Variant(f"({sig})", args) if sig else None
        return self.call(NAME, path, iface, method, params, reply)

    def error(self, method, *args, sig=None, path=PATH, iface=MANAGER):
        """(D-Bus error name, message) of a call that must fail, or None."""
        try:
            self.m(method, *args, sig=sig, path=path, iface=iface)
        except GLib.Error as e:
            name = Gio.DBusError.get_remote_error(e)
            message = e.message
            if name and message.startswith(f"GDBus.Error:{name}: "):
                message = message[len(f"GDBus.Error:{name}: "):]
            return name, message
        return None

    def prop(self, path, iface, name):
        return self.call(NAME, path, PROPS, "Get", GLib.Variant("(ss)", (iface, name)),
                         "(v)")[0]

    def props(self, path, iface):
        return self.call(NAME, path, PROPS, "GetAll", GLib.Variant("(s)", (iface,)),
                         "(a{sv})")[0]

    def sync(self):
        """A round trip to memtided, then the signals it sent before its
        answer are in self.signals (one sender's messages arrive in
        order)."""
        self.call(NAME, PATH, "org.freedesktop.DBus.Peer", "Ping")
        ctx = GLib.MainContext.default()
        while ctx.iteration(False):
            pass

    def has_owner(self, name):
        try:
            return self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                             "org.freedesktop.DBus", "NameHasOwner",
                             GLib.Variant("(s)", (name,)), "(b)")[0]
        except GLib.Error:
            return False

    def vm_path(self, vm):
        return self.m("GetVM", vm, sig="s", reply="(o)")[0]

    def subscribe(self, iface=None, member=None, path=None):
        def on_signal(conn, sender, opath, oiface, omember, params):
            self.signals.append((oiface, omember, opath, params.unpack()))
        return self.conn.signal_subscribe(None, iface, member, path, None,
                                          Gio.DBusSignalFlags.NONE, on_signal)

    def close(self):
        self.conn.close_sync(None)


def escape_path(uuid):
    return Gio.dbus_escape_object_path(uuid)


def vm_object_path(uuid):
    return f"{PATH}/vm/{escape_path(uuid)}"


# ---- memtidectl --------------------------------------------------------------

def ctl(bus, *args, timeout=30, input=None, env=None):
    """memtidectl --address BUS ARGS: (exit code, stdout, stderr)."""
    argv = [MEMTIDECTL]
    if bus is not None:
        argv += ["--address", bus.address]
    argv += list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       input=input, env=env)
    return p.returncode, p.stdout, p.stderr
