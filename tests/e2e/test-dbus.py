#!/usr/bin/python3
"""e2e (TAP): memtided's D-Bus API and memtidectl on real guests.

Boots two TCG guests (g0: 512 MiB boot + 1 GiB virtio-mem with 512 MiB
plugged; g1: 768 MiB, balloon only) and runs the real memtided on the
host's libvirt with its API on a private bus (python-dbusmock's polkitd
allowing everything), its budget capped by a fake VM cgroup: 2.5 GiB for
our guests plus what the host's other running domains (observe-only, but
counted) hold.
Then:
  1. each guest has its org.memtide.VM1 object, with sizes that match
     libvirt's;
  2. `memtidectl status` (and --json) shows the real guests;
  3. Reserve makes room by shrinking the guests: ReservationDone(ok) comes
     once they fit the budget less the reservation, ActionApplied signals
     report the shrinks; a reservation the minimums cannot allow fails
     with CannotReserve naming the guests; the reservation ends when its
     holder leaves the bus;
  4. a guest booted later appears through the ObjectManager
     (InterfacesAdded), and disappears when it is destroyed
     (InterfacesRemoved).
Environment: MEMTIDE_DAEMON, MEMTIDECTL, MEMTIDE_WORKLOAD (required).
"""

import json
import os
import sys
import time

import e2elib
import mttap  # noqa: E402  (tests/lib, on the path through e2elib)
from e2elib import Daemon, bail, finish, note

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
import mtlib  # noqa: E402
from mtlib import MANAGER, OBJMGR, PATH, VM, Bus, Client, Polkit, wait_for  # noqa: E402

testbed = e2elib.import_testbed()
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402

DAEMON = e2elib.require_env_file("MEMTIDE_DAEMON", "the built memtided")
mtlib.MEMTIDECTL = e2elib.require_env_file("MEMTIDECTL", "the built memtidectl")
WORKLOAD = e2elib.require_env_file("MEMTIDE_WORKLOAD", "the built memtide-workload")
AGENT = os.environ.get("MEMTIDE_AGENT") or None

B = 1024                       # bytes per KiB (testbed sizes are KiB)
CGROUP_LIMIT = 2560 * MiB * B  # bytes
RESERVE = 256 * MiB * B        # policy reserve, bytes
RESERVATION = 1280 * MiB * B   # what the test reserves, bytes
TOLERANCE = 32 * MiB * B
VM_POLICY = "min = 384M\nmax = 100%\nheadroom = 64M\n"
HOST_POLICY = f"tick-interval = 1s\nreserve = {RESERVE // (MiB * B)}M\nmin-change = 16M\n"


def tap(ok, desc, detail=None):
    """e2elib.tap, with the detail printed only on failure."""
    return e2elib.tap(ok, desc, None if ok else detail)


def libvirt_size(guest):
    """Balloon actual + virtio-mem plugged, bytes."""
    vmem = guest.vmem()
    return (guest.balloon_stats().get("actual", 0) + (vmem.current_kib if vmem else 0)) * B


def vm_props(client, guest):
    try:
        return client.props(client.vm_path(guest.name), VM)
    except Exception:  # noqa: BLE001  (not exported yet)
        return None


def all_vms_bytes(client):
    """What every VM memtided sees holds, bytes (the planner's committed)."""
    return sum(v["Current"] for v in client.m("ListVMs", reply="(aa{sv})")[0])


bus = Bus()
polkit = Polkit(bus)
polkit.set_allowed(mtlib.ALL_ACTIONS)

with Testbed(workload=WORKLOAD, agent=AGENT) as tb:
    try:
        g0, g1 = tb.up([GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB,
                                  vmem_requested_kib=512 * MiB),
                        GuestSpec(memory_kib=768 * MiB)])
    except Exception as e:  # noqa: BLE001
        bail(f"testbed did not come up: {e}")
    guests = [g0, g1]
    # Other runs' domains on this host count against the budget too.
    ours = {g.name for g in guests}
    foreign = sum(d.info()[2] * B for d in tb.conn.listAllDomains(
        testbed.libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE) if d.name() not in ours)
    if foreign:
        note(f"other domains on this host hold {foreign // (MiB * B)} MiB")
    limit = CGROUP_LIMIT + foreign
    cgroup = os.path.join(tb.rundir, "vm-cgroup")
    os.makedirs(cgroup, exist_ok=True)
    with open(os.path.join(cgroup, "memory.max"), "w") as f:
        f.write(f"{limit}\n")
    daemon = Daemon(DAEMON, tb.prefix, VM_POLICY, HOST_POLICY,
                    extra_args=["--bus-address", bus.address, "--cgroup", cgroup]).start()
    c = Client(bus)
    try:
        up = wait_for(lambda: c.has_owner(mtlib.NAME) or not daemon.alive(), 20)
        if not up or not daemon.alive():
            bail(f"memtided did not come up on the bus:\n{daemon.tail()}")

        # 1. objects and their sizes
        objs = c.call(mtlib.NAME, PATH, OBJMGR, "GetManagedObjects", None,
                      "(a{oa{sa{sv}}})")[0]
        names = {i[VM]["Name"] for i in objs.values() if VM in i}
        tap({g0.name, g1.name} <= names, "GetManagedObjects has an object per guest",
            sorted(names))
        known = wait_for(lambda: all((vm_props(c, g) or {}).get("Current") for g in guests), 30)
        tap(known, "the guests' sizes are known (balloon statistics)", daemon.tail())
        # memtided may be resizing the guests meanwhile: its view (the
        # last tick's sample) must catch up with libvirt's, not be equal
        # to it at the instant both happen to be read.
        for g in guests:
            seen = {}

            def current_matches(g=g, seen=seen):
                seen["p"] = vm_props(c, g) or {}
                seen["size"] = libvirt_size(g)
                return abs(seen["p"].get("Current", 0) - seen["size"]) <= TOLERANCE
            ok = wait_for(current_matches, 30, step=0.5)
            tap(ok, f"{g.name}: Current {seen['p'].get('Current', 0) // (MiB * B)} MiB matches "
                f"libvirt's {seen['size'] // (MiB * B)} MiB", seen["p"])
        seen = {}

        def plugged_matches():
            seen["p"] = (vm_props(c, g0) or {}).get("Plugged")
            seen["vmem"] = g0.vmem()
            return seen["p"] is not None and abs(seen["p"] - seen["vmem"].current_kib * B) <= TOLERANCE
        tap(wait_for(plugged_matches, 30, step=0.5), "g0: Plugged matches virtio-mem's current size",
            (seen.get("p"), seen.get("vmem")))
        tap((vm_props(c, g1) or {}).get("Plugged") == 0, "g1: Plugged 0 (no virtio-mem)")

        # 2. memtidectl on the real guests
        code, out, err = mtlib.ctl(bus, "status")
        rows = {line.split()[0]: line for line in out.splitlines()[4:] if line.strip()}
        tap(code == 0 and g0.name in rows and g1.name in rows and
            rows[g0.name].split()[1] != "-",
            "memtidectl status shows the real guests with their sizes", out + err)
        note(out)
        code, out, err = mtlib.ctl(bus, "--json", "status")
        doc = json.loads(out) if code == 0 else {"vms": []}
        mine = {v["Name"]: v for v in doc["vms"] if v["Name"] in (g0.name, g1.name)}
        tap(len(mine) == 2 and all(v["Current"] > 0 for v in mine.values()),
            "memtidectl --json status: the guests with exact byte sizes", out[-1500:])

        # 3. Reserve: room made by shrinking the guests
        holder = Client(bus)
        c.subscribe(MANAGER, None, PATH)
        budget = c.prop(PATH, MANAGER, "Budget")
        note(f"budget {budget // (MiB * B)} MiB; guests "
             + ", ".join(f"{g.name}={libvirt_size(g) // (MiB * B)} MiB" for g in guests))
        t0 = time.monotonic()
        err = holder.error("Reserve", RESERVATION, "e2e: start a VM", 120, sig="tsu")
        tap(err is None, "Reserve accepted", err)
        if err is not None:
            bail(f"Reserve refused: {err}")
        cookie = c.prop(PATH, MANAGER, "Reservations")[0][0]
        done = wait_for(lambda: [s for s in c.signals
                                 if s[1] == "ReservationDone" and s[3][0] == cookie], 130)
        held = all_vms_bytes(c)
        ok = done and done[0][3][1]
        tap(ok, f"ReservationDone(ok) for {RESERVATION // (MiB * B)} MiB in "
            f"{time.monotonic() - t0:.1f} s", done or daemon.tail())
        room = limit - RESERVE - RESERVATION
        tap(held <= room + TOLERANCE,
            f"the VMs fit the budget less the reservation: {held // (MiB * B)} MiB <= "
            f"{room // (MiB * B)} MiB", [s for s in c.signals if s[1] == "ActionApplied"])
        shrinks = [s[3] for s in c.signals if s[1] == "ActionApplied"
                   and s[3][1] in (g0.name, g1.name) and s[3][4] < s[3][3]]
        tap(shrinks and all(s[2] in ("balloon", "virtio-mem", "virtio-mem+balloon")
                            for s in shrinks),
            f"ActionApplied reported {len(shrinks)} shrinks of the guests", c.signals[-10:])
        res = c.prop(PATH, MANAGER, "Reservations")
        tap(res == [(cookie, RESERVATION, "e2e: start a VM", True, holder.unique_name)],
            "Reservations shows it done, held by its caller", res)
        err = c.error("Reserve", 64 * GiB * B, "too big", 30, sig="tsu")
        tap(err and err[0] == "org.memtide.Error.CannotReserve" and
            (g0.name in err[1] or g1.name in err[1]),
            "a reservation the minimums cannot allow: CannotReserve naming the guests", err)
        holder.close()
        tap(wait_for(lambda: c.prop(PATH, MANAGER, "Reservations") == [], 10),
            "the holder left the bus: the reservation ended")

        # 4. a guest comes and goes
        c.signals.clear()
        c.subscribe(OBJMGR, None, PATH)
        try:
            (g2,) = tb.up([GuestSpec(memory_kib=512 * MiB)])
        except Exception as e:  # noqa: BLE001
            bail(f"third guest did not come up: {e}")
        uuid = g2.dom.UUIDString()
        path = mtlib.vm_object_path(uuid)
        added = wait_for(lambda: [s for s in c.signals
                                  if s[1] == "InterfacesAdded" and s[3][0] == path], 30)
        tap(added and added[0][3][1].get(VM, {}).get("Name") == g2.name,
            "a guest that starts appears: InterfacesAdded with its VM1 properties",
            c.signals[-5:])
        code, out, err = mtlib.ctl(bus, "show", g2.name)
        tap(code == 0 and g2.name in out, "memtidectl show finds the new guest", out + err)
        g2.dom.destroy()   # our own guest
        removed = wait_for(lambda: [s for s in c.signals
                                    if s[1] == "InterfacesRemoved" and s[3][0] == path], 30)
        tap(removed, "a guest that stops disappears: InterfacesRemoved", c.signals[-5:])
        code, out, err = mtlib.ctl(bus, "show", g2.name)
        tap(code == 5, "memtidectl show of the stopped guest: exit 5", (code, err))
        tap(daemon.alive(), "memtided still running")
    finally:
        rc = daemon.stop()
        if not mttap.all_passed():
            note("---- memtided log (tail) ----")
            note(daemon.tail(80))
    tap(rc == 0, f"memtided exits 0 on SIGTERM (got {rc})")
mtlib._cleanup()
finish()
