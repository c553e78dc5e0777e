#!/usr/bin/python3
"""integration (TAP): host memory that cannot be read holds every grow.

The real memtided on the fake driver, its /proc a copy without meminfo
(as when every descriptor is in use and /proc/meminfo cannot be opened).
A guest agent claims an emergency (PSI 100%, MemAvailable 0) in every
report: the VM is not grown on that claim alone, neither by the ticks nor
by the agent's event plans; memtided says so once, not every tick.  Once
meminfo is back it says so, and the emergency grow follows.
docs/planner.md, "This tick's step"."""

import os
import re
import shutil

import mtlib
from fakeagent import FakeAgent
from fakelib import fake_memtided
from mtlib import GiB, MiB, Bus, finish, tap, wait_for

mtlib.binaries()
bus = Bus()
workdir = mtlib.tmpdir()
proc = os.path.join(workdir, "proc")
shutil.copytree(mtlib.PROC, proc)
meminfo = os.path.join(proc, "meminfo")
shutil.move(meminfo, os.path.join(workdir, "meminfo.away"))

agent_path = os.path.join(workdir, "hot.agent")
agent = FakeAgent(agent_path, total=GiB, used=GiB)
agent.set(psi=100.0)
mtlib.mttap.at_exit(agent.stop)

daemon = fake_memtided(bus, vms="[vm hot]\nmin = 512M\nmax = 100%\n",
                       extra=["--proc-root", proc])
fake = daemon.fake
fake.ok(f"add hot size=1G vmem=1G block=128M agent={agent_path}")

UNREADABLE = "Cannot read host memory"
held = wait_for(lambda: re.search(r"hot: wait: wait at 1\.0 GiB: grow to .* when the host's "
                                  r"free memory is known \(host memory cannot be read now",
                                  daemon.log()), 30)
tap(held, "the guest's emergency waits for a host reading, with the reason",
    daemon.log()[-3000:])
tap(wait_for(lambda: "agent connected" in daemon.log(), 30), "the agent is connected")
# Twenty ticks (4 s) of the agent's emergency reports, each a chance
# for a tick or an event plan to grow the VM.
daemon.wait_ticks(20)
show = fake.show("hot")
tap(show["size"] == GiB and show["requested"] == 0,
    f"not grown while the host cannot be read (size {show['size'] // MiB} MiB, "
    f"virtio-mem requested {show['requested'] // MiB} MiB)", show)
log = daemon.log()
tap("emergency grow" not in log, "no emergency grow on the guest's claim alone",
    "\n".join(line for line in log.splitlines() if "emergency grow" in line)[:2000])
lines = [line for line in log.splitlines() if UNREADABLE in line]
tap(len(lines) == 1 and "no VM grows, not even in an emergency" in lines[0],
    f"said once, with what it means ({len(lines)} lines)", "\n".join(lines[:5]))

shutil.move(os.path.join(workdir, "meminfo.away"), meminfo)
tap(daemon.wait_log("Host memory can be read again"), "memtided says the host can be read again",
    daemon.log()[-2000:])
grown = wait_for(lambda: fake.show("hot")["requested"] > 0, 30)
tap(grown, "then the emergency grow is made", fake.show("hot"))
tap(re.search(r"resize: .*hot: emergency grow", daemon.log()), "logged as an emergency grow",
    daemon.log()[-2000:])
finish()
