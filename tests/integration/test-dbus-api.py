#!/usr/bin/python3
"""integration (TAP): memtided's D-Bus API on a private bus, backed by the
libvirt test driver (data/node.xml) and a fake /proc (data/proc):
properties match what the backend and the host say, one object per running
VM through the ObjectManager, reads, errors, PropertiesChanged only on
change, reload, limits that survive a restart."""

import os

import mtlib
from mtlib import (GiB, MANAGER, MiB, NAME, OBJMGR, PATH, PROPS, VM, VMS, WAIT, Bus, Client,
                   Memtided, Polkit, eq, finish, note, tap, vm_object_path, wait_for)

mtlib.binaries()
bus = Bus()
polkit = Polkit(bus)
daemon = Memtided(bus)
c = Client(bus)

# ---- the host ----------------------------------------------------------------
host = c.props(PATH, MANAGER)
version = os.popen(f"{mtlib.MEMTIDED} --version").read().split()[-1]
eq(host["Version"], version, "Version is memtided --version")
eq(host["Mode"], "active", "Mode starts as the policy says: active")
eq(host["PolicyFiles"], [daemon.config], "PolicyFiles lists the base policy file")
eq(host["Connected"], True, "Connected to the hypervisor")
eq(host["Total"], 8388608 * 1024, "Total is MemTotal of /proc/meminfo, in bytes")
eq(host["Available"], 4194304 * 1024, "Available is MemAvailable, in bytes")
eq(host["Reserve"], 512 * MiB, "Reserve is the policy's reserve")
eq(host["Budget"], 4 * GiB - 512 * MiB, "Budget: available + VM RSS (none) - reserve")
eq(host["NVMs"], 3, "NVMs counts the running domains only")
eq(host["Reservations"], [], "no reservations")
eq(host["GuestTotal"], 0, "GuestTotal 0: the test driver reports no balloon sizes")

# ---- one object per running VM -------------------------------------------------
objects = c.call(NAME, PATH, OBJMGR, "GetManagedObjects", None, "(a{oa{sa{sv}}})")[0]
want_paths = {vm_object_path(u) for u in VMS.values()}
eq(set(objects), want_paths, "GetManagedObjects: one object per running VM, none for 'off'")
eq(vm_object_path(VMS["db"]),
   "/org/memtide/Manager1/vm/aaaaaaaa_2d0000_2d4000_2d8000_2d000000000002",
   "object path: the UUID escaped with g_dbus_escape_object_path")
ok = all(set(ifaces) >= {VM} and ifaces[VM]["UUID"] == VMS[ifaces[VM]["Name"]]
         for ifaces in objects.values())
tap(ok, "each object has org.memtide.VM1 with the domain's Name and UUID", objects)
intro = c.call(NAME, PATH, "org.freedesktop.DBus.Introspectable", "Introspect", None, "(s)")[0]
tap(MANAGER in intro and OBJMGR in intro,
    "/org/memtide/Manager1 has Manager1 and ObjectManager")

web = c.props(vm_object_path(VMS["web"]), VM)
batch = c.props(vm_object_path(VMS["batch"]), VM)
eq(web["Mechanism"], "auto", "web: Mechanism from the default policy")
eq(batch["Mechanism"], "none", "batch: Mechanism none from the [vm batch] group")
eq(web["Decision"], "skip", "web: Decision skip (no size from the test driver)")
tap("no size" in web["Reason"], "web: Reason says why", web["Reason"])
eq(web["Pressure"], -1.0, "Pressure -1: unknown without an agent")
eq((web["Current"], web["Target"], web["Min"], web["Max"]), (0, 0, 0, 0),
   "unknown sizes are 0")
eq((web["AgentConnected"], web["Stuck"], web["StuckReason"], web["Pinned"],
    web["HasLimits"], web["Pins"], web["LastAction"]),
   (False, False, "", False, False, [], ""), "web: no agent, not stuck, no pin, no limits")
eq(web["DataSource"], "none", "DataSource none")

# ---- ListVMs, GetVM, Explain ------------------------------------------------------
vms = c.m("ListVMs", reply="(aa{sv})")[0]
eq([v["Name"] for v in vms], ["batch", "db", "web"], "ListVMs: every VM, sorted by name")
same = all(
    {k: v for k, v in d.items() if k != "ObjectPath"} == c.props(d["ObjectPath"], VM)
    for d in vms)
tap(same, "ListVMs: each entry is the VM object's properties plus ObjectPath")
eq(c.vm_path("db"), vm_object_path(VMS["db"]), "GetVM by name")
eq(c.vm_path(VMS["db"]), vm_object_path(VMS["db"]), "GetVM by UUID")
err = c.error("GetVM", "nope", sig="s")
tap(err and err[0] == "org.memtide.Error.NoSuchVM" and "nope" in err[1],
    "GetVM of an unknown VM: NoSuchVM naming it", err)
text = c.m("Explain", "db", sig="s", reply="(s)")[0]
tap(text.startswith(f"db ({VMS['db']})") and "768M" in text and "domain metadata" in text,
    "Explain: the VM, and its min of 768M from its domain metadata", text)
err = c.error("Explain", "nope", sig="s")
eq(err and err[0], "org.memtide.Error.NoSuchVM", "Explain of an unknown VM: NoSuchVM")

# ---- PropertiesChanged only on change -----------------------------------------
# Each check lets memtided tick a few times, then makes a round trip to it:
# every signal it sent by then has arrived.
c.subscribe(PROPS, "PropertiesChanged")
ticked = daemon.wait_ticks(7)
c.sync()
tap(ticked and c.signals == [], "steady state: no PropertiesChanged over 7 ticks",
    f"ticked: {ticked}, signals: {c.signals}")
polkit.set_allowed(["org.memtide.set-mode"])
c.m("SetMode", "paused", sig="s")
ticked = daemon.wait_ticks(2)
c.sync()
changes = [(p, s[0], s[1]) for (_, _, p, s) in c.signals]
tap(ticked and changes == [(PATH, MANAGER, {"Mode": "paused"})],
    "SetMode paused: one PropertiesChanged, Mode only, over the next 2 ticks",
    f"ticked: {ticked}, signals: {changes}")
c.signals.clear()
c.m("SetMode", "paused", sig="s")
ticked = daemon.wait_ticks(2)
c.sync()
tap(ticked and c.signals == [], "SetMode to the same mode: no PropertiesChanged over 2 ticks",
    f"ticked: {ticked}, signals: {c.signals}")
err = c.error("SetMode", "fast", sig="s")
tap(err and err[0] == "org.memtide.Error.InvalidArgument" and "active, dry-run or paused" in err[1],
    "SetMode of an unknown mode: InvalidArgument listing the allowed values", err)
c.m("SetMode", "active", sig="s")
eq(c.prop(PATH, MANAGER, "Mode"), "active", "SetMode active")

# ---- ReloadPolicies ----------------------------------------------------------------
polkit.set_allowed(["org.memtide.reload"])
extra = os.path.join(daemon.policies_dir, "10-web.conf")
with open(extra, "w") as f:
    f.write("[vm web]\nmechanism = balloon\n")
c.m("ReloadPolicies")
eq(c.prop(PATH, MANAGER, "PolicyFiles"), [daemon.config, extra],
   "ReloadPolicies: PolicyFiles lists the new file")
ok = wait_for(lambda: c.prop(vm_object_path(VMS["web"]), VM, "Mechanism") == "balloon", WAIT)
tap(ok, "after the reload web's Mechanism is balloon")
bad = os.path.join(daemon.policies_dir, "20-bad.conf")
with open(bad, "w") as f:
    f.write("[vm db]\nmin = lots\n")
err = c.error("ReloadPolicies")
tap(err and err[0] == "org.memtide.Error.Failed" and "20-bad.conf" in err[1]
    and "lots" in err[1], "a bad policy file: Failed, naming the file and the value", err)
eq(c.prop(PATH, MANAGER, "PolicyFiles"), [daemon.config, extra],
   "the policy in force stays after a failed reload")
os.unlink(bad)

# ---- SetLimits, persisted -------------------------------------------------------------
polkit.set_allowed(["org.memtide.set-limits"])
db = vm_object_path(VMS["db"])
err = c.error("SetLimits", GiB, 512 * MiB, sig="tt", path=db, iface=VM)
tap(err and err[0] == "org.memtide.Error.InvalidArgument" and "above max" in err[1],
    "SetLimits min > max: InvalidArgument", err)
err = c.error("SetLimits", 8 * GiB, 8 * GiB, sig="tt", path=db, iface=VM)
tap(err and err[0] == "org.memtide.Error.InvalidArgument" and "its maximum" in err[1],
    "SetLimits above what the domain can have: InvalidArgument", err)
c.m("SetLimits", GiB, 1536 * MiB, sig="tt", path=db, iface=VM)
eq(c.prop(db, VM, "HasLimits"), True, "SetLimits: HasLimits")
tap("Admin limits: min 1.0 GiB, max 1.5 GiB" in c.m("Explain", "db", sig="s", reply="(s)")[0],
    "Explain shows the admin limits")
eq(daemon.stop(), 0, "memtided exits 0 on SIGTERM")
daemon2 = Memtided(bus, workdir=daemon.dir)
eq(c.prop(db, VM, "HasLimits"), True, "the limits survive a restart of memtided")
c.m("SetLimits", 0, 0, sig="tt", path=db, iface=VM)
eq(c.prop(db, VM, "HasLimits"), False, "SetLimits 0 0 clears them")
tap(daemon2.alive(), "memtided still running")
finish()
