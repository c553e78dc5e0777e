#!/usr/bin/python3
"""integration (TAP): what a D-Bus caller sends cannot forge or flood
memtided's log.

- Reasons (Pin, Reserve): at most 200 bytes, or InvalidArgument naming
  the limit; control characters, line separators and backslashes are
  escaped wherever the reason goes (log, Pins, Reservations), so a reason
  with a newline cannot start a log line of its own.
- Sizes (Pin, Reserve, SetLimits): 2^64 - 1 stands for "unknown" inside
  memtided, so a caller's 2^64 - 1 is InvalidArgument naming the number;
  no message or log line calls a caller's size "unknown".

Reserve runs on a second memtided that cannot read the host's memory
(data/proc-nomem): it accepts a reservation it cannot judge, as
test-dbus-leases.py explains."""

import os
import re

import mtlib
from mtlib import (GiB, MANAGER, PATH, VM, VMS, Bus, Client, Memtided, Polkit, eq, finish,
                   tap, vm_object_path)

mtlib.binaries()
bus = Bus()
polkit = Polkit(bus)
polkit.set_allowed(mtlib.ALL_ACTIONS)
daemon = Memtided(bus)
c = Client(bus)
db = vm_object_path(VMS["db"])

bus2 = Bus()
polkit2 = Polkit(bus2)
polkit2.set_allowed(mtlib.ALL_ACTIONS)
d2 = Memtided(bus2, extra=["--proc-root", os.path.join(mtlib.DATA, "proc-nomem")])
c2 = Client(bus2)

FORGED = "ok\nmemtided-Message: resize: FORGED"
FORGED_ESCAPED = "ok\\nmemtided-Message: resize: FORGED"
FORGED_LINE = re.compile(r"^memtided-Message: resize: FORGED", re.M)


def pin(reason, size=GiB):
    return c.m("Pin", size, reason, sig="ts", reply="(u)", path=db, iface=VM)[0]


def unpin(cookie):
    c.m("Unpin", cookie, sig="u", path=db, iface=VM)


def log_lines(d, needle):
    return [line for line in d.log().splitlines() if needle in line]


# ---- a newline in a reason -----------------------------------------------------------
cookie = pin(FORGED)
tap(daemon.wait_log(f"(pin {cookie}): "), "Pin with a newline in its reason is accepted")
log = daemon.log()
tap(not FORGED_LINE.search(log), "Pin: the newline in the reason starts no log line of its own",
    "\n".join(log_lines(daemon, "FORGED")))
tap(any(line.endswith(f"(pin {cookie}): {FORGED_ESCAPED}")
        for line in log_lines(daemon, f"(pin {cookie})")),
    "Pin: the reason is logged on the pin's line, its newline as \\n",
    "\n".join(log_lines(daemon, f"(pin {cookie})")))
eq([p[2] for p in c.prop(db, VM, "Pins")], [FORGED_ESCAPED],
   "Pins shows the reason as logged, escaped")
unpin(cookie)

r = c2.m("Reserve", GiB, FORGED, 1, sig="tsu", reply="(u)")[0]
tap(d2.wait_log(f"Reservation {r}: making room"), "Reserve with a newline in its reason")
log = d2.log()
tap(not FORGED_LINE.search(log), "Reserve: the newline starts no log line of its own",
    "\n".join(log_lines(d2, "FORGED")))
tap(any(line.endswith(FORGED_ESCAPED) for line in log_lines(d2, f"Reservation {r}: making")),
    "Reserve: the reason is logged on the reservation's line, escaped",
    "\n".join(log_lines(d2, f"Reservation {r}")))

# ---- other characters that are not text ----------------------------------------------
odd = "a\tb\rc\x1b[31md\\e\x7ff\u0085g\u2028h\u202ei"
want = "a\\tb\\rc\\x1b[31md\\\\e\\x7ff\\u0085g\\u2028h\\u202ei"
cookie = pin(odd)
eq([p[2] for p in c.prop(db, VM, "Pins")], [want],
   "tab, CR, ESC, backslash, DEL, NEL, line separator, bidi override: escaped")
tap(daemon.wait_log(f"(pin {cookie}): {want}"), "and logged so", log_lines(daemon, f"(pin {cookie})"))
unpin(cookie)
text = "Wartung für db – Ω 😀"
cookie = pin(text)
eq([p[2] for p in c.prop(db, VM, "Pins")], [text], "printable UTF-8 is kept as it is")
unpin(cookie)

# ---- length ----------------------------------------------------------------------------
cookie = pin("é" * 100)
eq([p[2] for p in c.prop(db, VM, "Pins")], ["é" * 100], "a reason of 200 bytes is accepted")
unpin(cookie)
for n in (201, 1 << 20):
    err = c.error("Pin", GiB, "A" * n, sig="ts", path=db, iface=VM)
    tap(err and err[0] == "org.memtide.Error.InvalidArgument"
        and f"{n} bytes" in err[1] and "at most 200 bytes" in err[1],
        f"Pin with a reason of {n} bytes: InvalidArgument naming the limit", err)
    err = c2.error("Reserve", GiB, "A" * n, 1, sig="tsu")
    tap(err and err[0] == "org.memtide.Error.InvalidArgument" and "at most 200 bytes" in err[1],
        f"Reserve with a reason of {n} bytes: InvalidArgument naming the limit", err)
eq(c.prop(db, VM, "Pins"), [], "no pin was made")
tap("A" * 201 not in daemon.log() and "A" * 201 not in d2.log(),
    "the long reasons are in neither log")

# ---- 2^64 - 1 ------------------------------------------------------------------------------
U = (1 << 64) - 1
mark1, mark2 = len(daemon.log()), len(d2.log())
reservations = c2.prop(PATH, MANAGER, "Reservations")
calls = [
    ("Pin", c, (U, "x"), "ts", db, VM),
    ("Reserve (budget known)", c, (U, "x", 1), "tsu", PATH, MANAGER),
    ("Reserve (budget unknown)", c2, (U, "x", 1), "tsu", PATH, MANAGER),
    ("SetLimits max", c, (0, U), "tt", db, VM),
    ("SetLimits min and max", c, (U, U), "tt", db, VM),
]
for what, client, args, sig, path, iface in calls:
    method = what.split()[0]
    err = client.error(method, *args, sig=sig, path=path, iface=iface)
    tap(err and err[0] == "org.memtide.Error.InvalidArgument" and str(U) in err[1]
        and "unknown" not in err[1],
        f"{what} of 2^64 - 1: InvalidArgument naming the number", err)
err = c.error("Pin", U - 1, "x", sig="ts", path=db, iface=VM)
tap(err and err[0] == "org.memtide.Error.InvalidArgument" and "unknown" not in err[1],
    "Pin of 2^64 - 2: InvalidArgument (above the domain), no \"unknown\"", err)
# Only the lines about these calls: a tick may log "budget unknown" for
# d2's unreadable host at any moment.
about_calls = [line for line in (daemon.log()[mark1:] + d2.log()[mark2:]).splitlines()
               if re.search(r"(?i)\bpin|reserv|limits|making room", line)]
tap(not [line for line in about_calls if "unknown" in line],
    "no log line calls a caller's size \"unknown\"", "\n".join(about_calls))
eq((c.prop(db, VM, "Pins"), c.prop(db, VM, "HasLimits"),
    [r for r in c2.prop(PATH, MANAGER, "Reservations") if r not in reservations]),
   ([], False, []), "none of them made a pin, limits or a reservation")
eq(c.prop(PATH, MANAGER, "Connected"), True, "memtided answers on")
finish()
