#!/usr/bin/python3
"""integration (TAP): the real memtided on the fake driver, on a private
bus: scripted domains come and go as VM objects; idle guests are shrunk
(balloon and virtio-mem) and every resize shows in the log, in
ActionApplied and in the fake driver's sizes; a guest that does not
follow is reported stuck (VMStuck, Stuck, StuckReason); a resize call
that fails is logged and not published as applied."""

import mtlib
from fakelib import Signals, fake_memtided
from mtlib import MANAGER, MiB, GiB, PATH, VM, Bus, Client, eq, finish, tap, wait_for

mtlib.binaries()
bus = Bus()
daemon = fake_memtided(bus, host="stuck-timeout = 2s\n")
fake = daemon.fake
c = Client(bus)
signals = Signals(c)

tap("memtided running on " in daemon.log() and "(fake driver)" in daemon.log(),
    "the start line names the fake driver", daemon.log()[-2000:])
eq(c.prop(PATH, MANAGER, "NVMs"), 0, "no VM before the script adds one")


def vm_props(name):
    try:
        return c.props(c.vm_path(name), VM)
    except mtlib.GLib.Error:
        return None


# ---- a domain appears, is shrunk, and each resize is published ----------------
web_uuid = fake.ok("add web size=2G used=300M").split("=", 1)[1]
tap(wait_for(lambda: vm_props("web"), 10), "an added domain becomes a VM object")
eq(vm_props("web")["UUID"], web_uuid, "... with the UUID the fake driver gave it")
applied = wait_for(lambda: signals.of("ActionApplied", "web"), 15)
tap(applied, "an idle guest is shrunk: ActionApplied for web", signals.seen)
if applied:
    _, (vm_path, name, mechanism, frm, to, reason) = applied[0]
    eq((vm_path, mechanism, frm), (c.vm_path("web"), "balloon", 2 * GiB),
       "ActionApplied: the VM's object, the balloon, from its boot size")
    tap(to < frm and reason.startswith("web: shrink "), "... to a smaller size, with the reason",
        reason)
    tap(wait_for(lambda: fake.show("web")["balloon"] <= to, 5),
        "the fake driver's balloon went there", fake.show("web"))
    tap(f"resize: {reason}" in daemon.log(), "the log has the resize with its reason, one line")
done = wait_for(lambda: (vm_props("web") or {}).get("Current") == 512 * MiB and
                fake.show("web")["balloon"] == 512 * MiB, 30)
tap(done, "web reaches its min (512M, 25% of 2G) step by step, as the fake driver shows",
    (vm_props("web"), fake.show("web")))
tap(vm_props("web")["LastAction"].startswith("web: shrink "), "LastAction is the last resize")
web = fake.show("web")
eq(web["max-in-flight"], 1, "never two resize calls for web at once")
eq(web["calls"], len(signals.of("ActionApplied", "web")),
   "one resize call per ActionApplied")

# ---- virtio-mem -----------------------------------------------------------------
fake.ok("add db size=1G vmem=1G block=128M plugged=1G used=600M")
vmem = wait_for(lambda: [s for s in signals.of("ActionApplied", "db")
                         if "virtio-mem" in s[1][2]], 15)
tap(vmem, "a virtio-mem guest is shrunk by unplugging blocks", signals.of("ActionApplied", "db"))
if vmem:
    tap(wait_for(lambda: fake.show("db")["requested"] < GiB and
                 fake.show("db")["plugged"] == fake.show("db")["requested"], 5),
        "the fake driver's requested and plugged sizes went down", fake.show("db"))

# ---- a guest that does not follow ------------------------------------------------
# No guest statistics until the refusal is in place: nothing is planned before.
fake.ok("add stubborn size=2G")
fake.ok("refuse stubborn")
fake.ok("set stubborn used=300M")
stuck = wait_for(lambda: signals.of("VMStuck", "stubborn"), 20)
tap(stuck and "did not move toward" in stuck[0][1][2],
    "a guest that does not follow: VMStuck, saying it did not move", signals.of("VMStuck"))
props = vm_props("stubborn")
tap(props["Stuck"] and "did not move toward" in props["StuckReason"] and
    props["Decision"] == "stuck", "Stuck, StuckReason and Decision say so", props)
eq(fake.show("stubborn")["balloon"], 2 * GiB, "its size did not change")
tap("stubborn: stuck: did not move toward" in daemon.log(), "the log says so, as a warning")

# ---- a call that fails ----------------------------------------------------------------
fake.ok("add broken size=2G")
fake.ok("fail broken the monitor is gone")
fake.ok("set broken used=300M")
tap(daemon.wait_log("broken: resize failed: fake domain 'broken' refused the call: "
                    "the monitor is gone (the call took ", 15),
    "a failed call: logged with its error", daemon.log()[-3000:])
tap("resize: broken: shrink" in daemon.log(), "... after its resize was logged as issued")
eq(signals.of("ActionApplied", "broken"), [], "... and no ActionApplied for it")

# ---- a domain goes ----------------------------------------------------------------------
n = c.prop(PATH, MANAGER, "NVMs")
fake.ok("remove web")
tap(wait_for(lambda: vm_props("web") is None, 10), "a removed domain's VM object goes")
eq(c.prop(PATH, MANAGER, "NVMs"), n - 1, "NVMs counts it no more")
tap(fake.command("show web").startswith("error: no domain 'web'"),
    "the fake driver has no such domain any more")

finish()
