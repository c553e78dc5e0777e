#!/usr/bin/python3
"""integration (TAP): every write to memtided's D-Bus API is checked with
polkit (a mock on the private bus), one action id per kind of write:
denied when polkit says no (and nothing changes), allowed when it says yes
to that action only, reads need no authorization, a lease's holder may end
it without asking, and with no polkit at all every write fails (fail
closed)."""

import mtlib
from mtlib import (ALL_ACTIONS, GiB, MANAGER, PATH, VM, VMS, Bus, Client, Memtided, Polkit,
                   eq, finish, tap, vm_object_path)

mtlib.binaries()
bus = Bus()
polkit = Polkit(bus)
daemon = Memtided(bus)
c = Client(bus)
other = Client(bus)
db = vm_object_path(VMS["db"])
NOT_AUTHORIZED = "org.memtide.Error.NotAuthorized"

# A pin held by `other`, for the Unpin checks.
polkit.set_allowed(["org.memtide.pin"])
other_pin = other.m("Pin", GiB, "other's", sig="ts", reply="(u)", path=db, iface=VM)[0]

# (description, action, call); call(client) makes the request.
WRITES = [
    ("ReloadPolicies", "org.memtide.reload", lambda k: k.error("ReloadPolicies")),
    ("SetMode", "org.memtide.set-mode", lambda k: k.error("SetMode", "dry-run", sig="s")),
    ("Reserve", "org.memtide.reserve",
     lambda k: k.error("Reserve", GiB, "auth test", 5, sig="tsu")),
    ("SetLimits", "org.memtide.set-limits",
     lambda k: k.error("SetLimits", GiB, 2 * GiB, sig="tt", path=db, iface=VM)),
    ("Pin", "org.memtide.pin",
     lambda k: k.error("Pin", GiB, "auth test", sig="ts", path=db, iface=VM)),
    ("Unpin of another client's pin", "org.memtide.pin",
     lambda k: k.error("Unpin", other_pin, sig="u", path=db, iface=VM)),
]


def state():
    return (c.prop(PATH, MANAGER, "Mode"), c.prop(db, VM, "HasLimits"),
            len(c.prop(db, VM, "Pins")), c.prop(PATH, MANAGER, "Reservations"))


# ---- denied ------------------------------------------------------------------------
polkit.set_allowed([])
before = state()
for desc, action, call in WRITES:
    err = call(c)
    tap(err and err[0] == NOT_AUTHORIZED and action in err[1],
        f"{desc} denied by polkit: NotAuthorized naming {action}", err)
eq(state(), before, "nothing changed while denied")

# ---- reads need nothing --------------------------------------------------------------
ok = True
try:
    c.m("ListVMs", reply="(aa{sv})")
    c.m("Explain", "db", sig="s", reply="(s)")
    c.m("GetVM", "web", sig="s", reply="(o)")
    c.props(PATH, MANAGER)
    c.props(db, VM)
except Exception as e:  # noqa: BLE001
    ok = False
    mtlib.note(e)
tap(ok, "reads (ListVMs, Explain, GetVM, properties) need no authorization")

# ---- allowed: that action only ----------------------------------------------------------
for desc, action, call in WRITES:
    polkit.set_allowed([action])
    err = call(c)
    tap(err is None or err[0] != NOT_AUTHORIZED, f"{desc} allowed with {action} alone", err)
    others = [a for a in ALL_ACTIONS if a != action]
    polkit.set_allowed(others)
    if desc.startswith("Unpin"):
        continue  # the pin is gone now
    err = call(c)
    tap(err and err[0] == NOT_AUTHORIZED, f"{desc} still denied with every other action", err)
eq(c.prop(PATH, MANAGER, "Mode"), "dry-run", "the allowed SetMode took effect")
eq(c.prop(db, VM, "HasLimits"), True, "the allowed SetLimits took effect")

# ---- a lease's holder may end it without asking ------------------------------------------
polkit.set_allowed(["org.memtide.pin"])
mine = c.m("Pin", GiB, "mine", sig="ts", reply="(u)", path=db, iface=VM)[0]
polkit.set_allowed([])
err = c.error("Unpin", mine, sig="u", path=db, iface=VM)
eq(err, None, "the holder ends its own pin with no authorization")
err = c.error("Unpin", 424242, sig="u", path=db, iface=VM)
tap(err and err[0] == "org.memtide.Error.NoSuchCookie", "Unpin of an unknown cookie: NoSuchCookie",
    err)

# ---- fail closed: no polkit on the bus -------------------------------------------------
polkit.stop()
for desc, action, call in WRITES[:5]:
    err = call(c)
    tap(err and err[0] == NOT_AUTHORIZED and "polkit could not be asked" in err[1],
        f"{desc} with no polkit: NotAuthorized (fail closed)", err)
tap(daemon.alive(), "memtided still running")
tap("Refused SetMode" in daemon.log(), "memtided logs refused requests")
finish()
