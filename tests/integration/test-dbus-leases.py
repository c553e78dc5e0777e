#!/usr/bin/python3
"""integration (TAP): pins and reservations are leases: listed with their
holder, ended by Unpin/ReleaseReservation, and ended by memtided when the
holder leaves the bus.  Reserve refuses at once what the VMs' minimums
cannot allow, naming the VMs that block it, and reports a reservation it
could not complete in time with ReservationDone(ok = false).

The test driver reports no VM sizes, so memtided can never make room on it
(tests/e2e/test-dbus.py does, on real guests).  The reservation leases are
exercised on a second memtided that cannot read the host's memory
(data/proc-nomem): it cannot judge a reservation up front, so it accepts it
and works toward it until the timeout."""

import os

import mtlib
from mtlib import (GiB, MANAGER, MiB, PATH, VM, VMS, WAIT, Bus, Client, Memtided, Polkit, eq,
                   finish, tap, vm_object_path, wait_for)

mtlib.binaries()
bus = Bus()
polkit = Polkit(bus)
polkit.set_allowed(mtlib.ALL_ACTIONS)
daemon = Memtided(bus)
c = Client(bus)
db = vm_object_path(VMS["db"])
web = vm_object_path(VMS["web"])

# ---- pins ---------------------------------------------------------------------------
a = Client(bus)
p1 = a.m("Pin", GiB, "first", sig="ts", reply="(u)", path=db, iface=VM)[0]
p2 = a.m("Pin", 1280 * MiB, "second", sig="ts", reply="(u)", path=db, iface=VM)[0]
tap(p1 > 0 and p2 > p1, "Pin returns increasing cookies above 0", (p1, p2))
eq(c.prop(db, VM, "Pins"),
   [(p1, GiB, "first", a.unique_name), (p2, 1280 * MiB, "second", a.unique_name)],
   "Pins lists (cookie, size, reason, holder), oldest first")
eq(c.prop(db, VM, "Pinned"), True, "Pinned")
tap("Pinned: held at a fixed size" in c.m("Explain", "db", sig="s", reply="(s)")[0],
    "Explain says it is pinned")
err = a.error("Unpin", p1, sig="u", path=web, iface=VM)
tap(err and err[0] == "org.memtide.Error.NoSuchCookie" and "on this VM" in err[1],
    "Unpin on another VM's object: NoSuchCookie", err)
a.m("Unpin", p1, sig="u", path=db, iface=VM)
eq([p[0] for p in c.prop(db, VM, "Pins")], [p2], "Unpin ends that pin only")
err = a.error("Unpin", p1, sig="u", path=db, iface=VM)
eq(err and err[0], "org.memtide.Error.NoSuchCookie", "Unpin twice: NoSuchCookie")
a.close()
ok = wait_for(lambda: c.prop(db, VM, "Pins") == [] and not c.prop(db, VM, "Pinned"), WAIT)
tap(ok, "the holder left the bus: its pin ended")
tap(daemon.wait_log(f"left the bus: ending its pin {p2}"),
    "memtided logs the pin it ended for a client that left")
err = c.error("Pin", 0, "", sig="ts", path=db, iface=VM)
tap(err and err[0] == "org.memtide.Error.InvalidArgument", "Pin size 0: InvalidArgument", err)
err = c.error("Pin", 4 * GiB, "", sig="ts", path=db, iface=VM)
tap(err and err[0] == "org.memtide.Error.InvalidArgument" and "1.5 GiB" in err[1],
    "Pin above the domain's maximum: InvalidArgument naming the limit", err)

# ---- Reserve refused up front -------------------------------------------------------
err = c.error("Reserve", GiB, "new VM", 30, sig="tsu")
tap(err and err[0] == "org.memtide.Error.CannotReserve" and "web" in err[1] and "db" in err[1],
    "Reserve the VMs cannot make room for: CannotReserve naming the VMs that block it", err)
for bytes_, timeout, what in ((0, 30, "size 0"), (GiB, 0, "timeout 0"),
                              (GiB, 3601, "timeout above 3600 s")):
    err = c.error("Reserve", bytes_, "", timeout, sig="tsu")
    eq(err and err[0], "org.memtide.Error.InvalidArgument", f"Reserve with {what}: InvalidArgument")
eq(c.prop(PATH, MANAGER, "Reservations"), [], "refused reservations leave nothing behind")

# ---- reservations as leases ------------------------------------------------------------
bus2 = Bus()
polkit2 = Polkit(bus2)
polkit2.set_allowed(["org.memtide.reserve"])
d2 = Memtided(bus2, extra=["--proc-root", os.path.join(mtlib.DATA, "proc-nomem")])
c2 = Client(bus2)
c2.subscribe(MANAGER, "ReservationDone")
b = Client(bus2)
r1 = b.m("Reserve", GiB, "start vm7", 60, sig="tsu", reply="(u)")[0]
eq(c2.prop(PATH, MANAGER, "Reservations"), [(r1, GiB, "start vm7", False, b.unique_name)],
   "Reservations lists (cookie, bytes, reason, done, holder)")
eq(c2.prop(PATH, MANAGER, "Reserve"), 512 * MiB + GiB, "Reserve counts the reservation")
polkit2.set_allowed([])
err = c2.error("ReleaseReservation", r1, sig="u")
eq(err and err[0], "org.memtide.Error.NotAuthorized",
   "ReleaseReservation of another client's reservation needs polkit")
b.close()
ok = wait_for(lambda: c2.prop(PATH, MANAGER, "Reservations") == [], WAIT)
tap(ok, "the holder left the bus: its reservation ended")
eq(c2.prop(PATH, MANAGER, "Reserve"), 512 * MiB, "Reserve is back to the policy's")

polkit2.set_allowed(["org.memtide.reserve"])
r2 = c2.m("Reserve", 256 * MiB, "too slow", 1, sig="tsu", reply="(u)")[0]
ok = wait_for(lambda: [s for s in c2.signals if s[3][0] == r2], WAIT)
sig = ok[0][3] if ok else None
tap(sig and sig[1] is False and "could not make room" in sig[2],
    "a reservation not done in time: ReservationDone(cookie, false, why)", sig)
eq(c2.prop(PATH, MANAGER, "Reservations"), [], "a failed reservation is gone")
err = c2.error("ReleaseReservation", r2, sig="u")
eq(err and err[0], "org.memtide.Error.NoSuchCookie", "releasing a failed reservation: NoSuchCookie")
r3 = c2.m("Reserve", 256 * MiB, "", 60, sig="tsu", reply="(u)")[0]
eq(c2.prop(PATH, MANAGER, "Reservations")[0][2], "no reason given", "an empty reason is filled in")
polkit2.set_allowed([])
eq(c2.error("ReleaseReservation", r3, sig="u"), None,
   "the holder releases its own reservation with no authorization")
eq(c2.prop(PATH, MANAGER, "Reservations"), [], "released")
tap(daemon.alive() and d2.alive(), "both memtided still running")
finish()
