#!/usr/bin/python3
"""integration (TAP): memtidectl against the real memtided on a private
bus: human output and --json checked against the bus, lease semantics
(pin/reserve with -- COMMAND and --wait), and the exit codes of
memtidectl(1): 0 ok, 1 failed, 2 usage or invalid value, 3 not reachable,
4 not authorized, 5 no such VM/pin/reservation, 6 no room."""

import json
import os
import signal
import subprocess

import mtlib
from mtlib import (GiB, MANAGER, MiB, PATH, VM, VMS, Bus, Client, Memtided, Polkit, ctl, eq,
                   finish, tap, vm_object_path, wait_for)

mtlib.binaries()
bus = Bus()
polkit = Polkit(bus)
daemon = Memtided(bus)
c = Client(bus)
db = vm_object_path(VMS["db"])


def jsonable(v):
    """A bus value as json.loads gives it back (tuples are lists)."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


# ---- status ------------------------------------------------------------------------
code, out, err = ctl(bus, "status")
eq(code, 0, "status: exit 0")
lines = out.splitlines()
tap(lines and lines[0].startswith("memtided ") and "mode active" in lines[0],
    "status: first line names the version and mode", out)
tap("8.0 GiB total" in out and "4.0 GiB available" in out and "512 MiB kept in reserve" in out,
    "status: host sizes human-readable", out)
header = next((l for l in lines if l.startswith("NAME")), "")
tap(header.split() == ["NAME", "SIZE", "TARGET", "NEED", "PRESSURE", "MECHANISM", "DECISION",
                       "REASON"], "status: table header", header)
rows = [l.split()[0] for l in lines[lines.index(header) + 1:]] if header else []
eq(rows, ["batch", "db", "web"], "status: one row per VM, sorted by name")
eq(ctl(bus)[:2], (code, out), "no command means status")

code, out, err = ctl(bus, "--json", "status")
doc = json.loads(out) if code == 0 else {}
eq(code, 0, "status --json: exit 0")
eq(doc.get("host"), jsonable(c.props(PATH, MANAGER)), "status --json: host is Manager1's properties")
eq(doc.get("vms"), jsonable(c.m("ListVMs", reply="(aa{sv})")[0]),
   "status --json: vms is ListVMs (property names, exact bytes)")

# ---- show, explain ---------------------------------------------------------------------
code, out, err = ctl(bus, "show", "db")
tap(code == 0 and out.startswith(f"db ({VMS['db']})") and "mechanism" in out and "decision" in out,
    "show db", out + err)
code, out, err = ctl(bus, "show", VMS["db"], "--json")
want = dict(jsonable(c.props(db, VM)), ObjectPath=db)
eq((code, json.loads(out) if code == 0 else None), (0, want),
   "show --json by UUID: the VM's properties and ObjectPath")
code, out, err = ctl(bus, "show", "nope")
tap(code == 5 and "nope" in err and "memtidectl status" in err,
    "show of an unknown VM: exit 5, says how to list VMs", (code, err))
code, out, err = ctl(bus, "explain", "db")
eq((code, out), (0, c.m("Explain", "db", sig="s", reply="(s)")[0]), "explain db prints Explain")
code, out, err = ctl(bus, "--json", "explain", "db")
eq(json.loads(out) if code == 0 else None, {"Explain": c.m("Explain", "db", sig="s",
                                                           reply="(s)")[0]},
   "explain --json")

# ---- authorization and exit code 4 ------------------------------------------------------
polkit.set_allowed([])
code, out, err = ctl(bus, "mode", "dry-run")
tap(code == 4 and "org.memtide.set-mode" in err and "polkit" in err,
    "mode dry-run denied: exit 4, names the polkit action", (code, err))
eq(c.prop(PATH, MANAGER, "Mode"), "active", "denied: mode unchanged")

# ---- mode, reload, set-limits -------------------------------------------------------------
polkit.set_allowed(mtlib.ALL_ACTIONS)
eq(ctl(bus, "mode")[:2], (0, "active\n"), "mode prints the mode")
eq(ctl(bus, "mode", "dry-run")[:2], (0, "dry-run\n"), "mode dry-run sets it")
eq(c.prop(PATH, MANAGER, "Mode"), "dry-run", "the bus says dry-run")
eq(json.loads(ctl(bus, "--json", "mode", "active")[1]), {"Mode": "active"}, "mode --json")
code, out, err = ctl(bus, "mode", "fast")
tap(code == 2 and "active, dry-run or paused" in err, "mode fast: exit 2", (code, err))

code, out, err = ctl(bus, "reload")
tap(code == 0 and daemon.config in out, "reload lists the policy files", (code, out, err))
bad = os.path.join(daemon.policies_dir, "50-bad.conf")
with open(bad, "w") as f:
    f.write("[host]\nreserve = plenty\n")
code, out, err = ctl(bus, "reload")
tap(code == 1 and "50-bad.conf" in err and "plenty" in err,
    "reload with a bad file: exit 1 with the error", (code, err))
os.unlink(bad)

code, out, err = ctl(bus, "set-limits", "db", "1G", "1536M")
tap(code == 0 and "min 1.0 GiB, max 1.5 GiB" in out, "set-limits db 1G 1536M", (code, out, err))
eq(c.prop(db, VM, "HasLimits"), True, "the bus says HasLimits")
eq(ctl(bus, "set-limits", "db", "2G", "1G")[0], 2, "set-limits MIN > MAX: exit 2")
eq(ctl(bus, "set-limits", "db", "1X", "2G")[0], 2, "set-limits with a bad size: exit 2")
eq(ctl(bus, "set-limits", "db", "1G")[0], 2, "set-limits without MAX: exit 2")
code, out, err = ctl(bus, "set-limits", "db", "1G", "8G")
tap(code == 0, "set-limits with max above the domain's is accepted (the domain caps it)", err)
code, out, err = ctl(bus, "set-limits", "db", "4G", "8G")
tap(code == 2 and "its maximum" in err, "set-limits min above the domain's: exit 2 (InvalidArgument)",
    (code, err))
eq(ctl(bus, "set-limits", "nope", "1G", "2G")[0], 5, "set-limits of an unknown VM: exit 5")
# 2^64 - 1 stands for "unknown" inside memtided: refused, and named as the number it is.
for args in (["set-limits", "db", "0", "18446744073709551615B"],
             ["set-limits", "db", "18446744073709551615B", "18446744073709551615B"],
             ["pin", "db", "18446744073709551615B"], ["reserve", "18446744073709551615B"]):
    code, out, err = ctl(bus, *args)
    tap(code == 2 and "18446744073709551615" in err and "unknown" not in out + err,
        f"{' '.join(args[:-1])} 2^64-1: exit 2, naming the number", (code, out, err))
eq(c.prop(db, VM, "HasLimits"), True, "the limits before stay")
eq(ctl(bus, "set-limits", "db", "clear")[0], 0, "set-limits db clear")
eq(c.prop(db, VM, "HasLimits"), False, "limits cleared")

# ---- pin: a lease held while memtidectl runs ------------------------------------------------
code, out, err = ctl(bus, "pin", "db", "1G", "--reason", "maintenance")
tap(code == 0 and "Pin " in out and "ends now" in err and "--wait" in err,
    "pin without --wait: the pin ends at exit, and it says so", (code, out, err))
eq(c.prop(db, VM, "Pins"), [], "no pin left after memtidectl exited")

inner = f"{mtlib.MEMTIDECTL} --address {bus.address} --json show db"
code, out, err = ctl(bus, "pin", "db", "1G", "--reason", "backup", "--", "sh", "-c", inner)
doc = json.loads(out[out.index("{"):]) if "{" in out else {}
tap(code == 0 and doc.get("Pinned") is True and doc.get("Pins", [[0, 0, ""]])[0][2] == "backup",
    "pin -- COMMAND: the pin holds while COMMAND runs", (code, out, err))
eq(c.prop(db, VM, "Pins"), [], "and ends when it exits")
eq(ctl(bus, "pin", "db", "1G", "--", "sh", "-c", "exit 7")[0], 7,
   "pin -- COMMAND exits with COMMAND's status")

p = subprocess.Popen([mtlib.MEMTIDECTL, "--address", bus.address, "pin", "db", "1G", "--wait"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
held = wait_for(lambda: c.prop(db, VM, "Pins"), mtlib.WAIT)
tap(held, "pin --wait holds the pin")
cookie = held[0][0] if held else 0
p.send_signal(signal.SIGINT)
out, err = p.communicate(timeout=mtlib.WAIT)
eq(p.returncode, 0, "pin --wait: Ctrl-C ends it with exit 0")
eq(c.prop(db, VM, "Pins"), [], "pin --wait: the pin ended")
tap("Holding pin" in err and "Ctrl-C" in err, "pin --wait says how to end it", err)

q = subprocess.Popen([mtlib.MEMTIDECTL, "--address", bus.address, "pin", "db", "1G", "--wait"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
held = wait_for(lambda: c.prop(db, VM, "Pins"), mtlib.WAIT)
cookie = held[0][0] if held else 0
code, out, err = ctl(bus, "unpin", str(cookie))
tap(code == 0 and f"Pin {cookie} ended" in out, "unpin COOKIE from another memtidectl",
    (code, out, err))
q.send_signal(signal.SIGINT)
q.communicate(timeout=mtlib.WAIT)
eq(ctl(bus, "unpin", "999")[0], 5, "unpin of an unknown cookie: exit 5")
eq(ctl(bus, "unpin", "abc")[0], 2, "unpin of a non-number: exit 2")
eq(ctl(bus, "release", "999")[0], 5, "release of an unknown cookie: exit 5")
eq(ctl(bus, "pin", "db", "1G", "--wait", "--", "true")[0], 2, "--wait with -- COMMAND: exit 2")
eq(ctl(bus, "pin", "nope", "1G")[0], 5, "pin of an unknown VM: exit 5")
eq(ctl(bus, "pin", "db", "64G")[0], 2, "pin above the domain's size: exit 2")

# ---- reserve ------------------------------------------------------------------------------
code, out, err = ctl(bus, "reserve", "1G", "--reason", "start vm9", "--timeout", "10")
tap(code == 6 and "cannot reserve" in err and "web" in err,
    "reserve the VMs cannot make room for: exit 6, naming them", (code, err))
eq(ctl(bus, "reserve", "0")[0], 2, "reserve 0: exit 2")
eq(ctl(bus, "reserve", "1G", "--timeout", "0")[0], 2, "reserve --timeout 0: exit 2")
eq(ctl(bus, "reserve", "lots")[0], 2, "reserve with a bad size: exit 2")

# ---- watch --------------------------------------------------------------------------------
code, out, err = ctl(bus, "watch", "--count", "2", "--interval", "0.2")
tap(code == 0 and out.count("NAME ") == 2 and out.count("---- ") == 2,
    "watch --count 2: two frames (separated when not on a terminal)", (code, out, err))
code, out, err = ctl(bus, "--json", "watch", "--count", "2", "--interval", "0.2")
docs = [json.loads(line) for line in out.splitlines()] if code == 0 else []
tap(len(docs) == 2 and all(len(d["vms"]) == 3 for d in docs),
    "watch --json: one JSON document per line and refresh", out)
# Not a number is out of range like infinity, 0 and -1 (--count 1: an
# accepted value ends the run instead of watching on).
for value in ("inf", "0", "-1", "nan", "NAN", "-nan"):
    code, out, err = ctl(bus, "watch", "--count", "1", "--interval", value)
    tap(code == 2 and f"--interval: {value} is out of range (0.1 to 3600 s)" in err,
        f"watch --interval {value}: exit 2, out of range", (code, out, err))
code, out, err = ctl(bus, "reserve", "1G", "--timeout", "nan")
tap(code == 2 and "--timeout: nan is out of range" in err, "reserve --timeout nan: exit 2",
    (code, out, err))

# ---- usage and reachability ---------------------------------------------------------------
eq(ctl(bus, "frobnicate")[0], 2, "unknown command: exit 2")
eq(ctl(bus, "--frob")[0], 2, "unknown option: exit 2")
eq(ctl(bus, "show")[0], 2, "show without VM: exit 2")
eq(ctl(bus, "status", "--", "true")[0], 2, "-- COMMAND on status: exit 2")
code, out, err = ctl(None, "--help")
tap(code == 0 and "Exit status" in out, "--help", code)
code, out, err = ctl(None, "--version")
tap(code == 0 and out.startswith("memtidectl "), "--version", out)

empty = Bus()
code, out, err = ctl(empty, "status")
tap(code == 3 and "memtided is not running" in err and "systemctl start memtided" in err,
    "no memtided on the bus: exit 3, says how to start it", (code, err))
code, out, err = mtlib.ctl(None, "--address", "unix:path=/nonexistent/bus", "status")
tap(code == 3 and "cannot reach" in err, "no bus at the address: exit 3", (code, err))
tap(daemon.alive(), "memtided still running")
finish()
