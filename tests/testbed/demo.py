#!/usr/bin/python3
"""memtide demo: three real guests, memtided resizing them live.

Boots three small TCG guests on this host's libvirt and runs the real
memtided on them, showing every second each guest's memory and the
daemon's last resize decisions with their reasons:

  g0  idle:     512 MiB boot memory + 1 GiB virtio-mem (512 MiB plugged)
  g1  breathing: same devices, a workload that ramps its memory up to
                500 MiB, holds, frees it, and starts over
  g2  cache:    768 MiB, balloon only, a workload that fills page cache

memtided manages only these three guests; any other domain on the host is
observed, never resized. Ctrl-C stops memtided and removes the guests and
every file of the run.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import testbed  # noqa: E402
from memtided import Memtided  # noqa: E402
from testbed import GiB, MiB, GuestSpec, Testbed  # noqa: E402
from watch import watch_snapshot  # noqa: E402

VM_POLICY = """min = 256M
headroom = 96M
"""
HOST_POLICY = """tick-interval = 1s
"""
ACTION = re.compile(r"(resize|dry-run, not applied): .*")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--duration", type=float, default=0,
                    help="stop by itself after this many seconds (0: until Ctrl-C)")
    ap.add_argument("--dry-run", action="store_true",
                    help="run memtided with --dry-run: decide and log, resize nothing")
    args = ap.parse_args()

    daemon_bin = os.path.join(args.build, "service", "memtided")
    workload = os.path.join(args.build, "tests", "workload", "memtide-workload")
    agent = os.path.join(args.build, "guest-agent", "memtide-agent")
    for path in (daemon_bin, workload):
        if not os.path.isfile(path):
            sys.exit(f"demo: {path} is missing: build first (./run build)")
    try:
        testbed.check_prerequisites()
    except Exception as e:
        sys.exit(f"demo: {e}")

    with Testbed(workload=workload, agent=agent if os.path.isfile(agent) else None,
                 workdir=os.path.join(args.build, "testbed-cache")) as tb:
        print("demo: booting 3 guests (TCG, a few seconds each)...", flush=True)
        guests = tb.up([
            GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB, vmem_requested_kib=512 * MiB),
            GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB,
                      workload="sleep:20s,ramp:0M-500M/40s,hold:30s,free,sleep:30s,loop"),
            GuestSpec(memory_kib=768 * MiB, workload="sleep:10s,cache:400M,hold:60s,"
                      "uncache,sleep:30s,loop"),
        ])
        bus = subprocess.Popen(
            ["dbus-daemon", "--config-file",
             os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo-bus.conf"),
             "--nofork", "--print-address=1"], stdout=subprocess.PIPE, text=True)
        daemon = None
        try:
            address = bus.stdout.readline().strip()
            if not address:
                print("demo: dbus-daemon did not start (package dbus); see above",
                      file=sys.stderr)
                return 1
            daemon = Memtided(daemon_bin, tb.prefix, VM_POLICY, HOST_POLICY,
                              dry_run=args.dry_run,
                              extra_args=["--bus-address", address]).start()
            ctl = os.path.join(args.build, "memtidectl", "memtidectl")
            hint = (f"In another terminal (as root):  {ctl} --address '{address}' status\n"
                    f"                           or:  {ctl} --address '{address}' watch")
            stop = {"now": False}
            signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
            signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
            t0 = time.monotonic()
            while not stop["now"]:
                if args.duration and time.monotonic() - t0 > args.duration:
                    break
                if not daemon.alive():
                    print("demo: memtided exited:\n" + daemon.tail(), file=sys.stderr)
                    return 1
                render(tb, guests, daemon, hint)
                time.sleep(1)
        finally:
            if daemon is not None:
                daemon.stop()
                print(f"\ndemo: memtided log kept at {daemon.log_path}")
            bus.terminate()
            bus.wait()
            print("demo: removing the guests...", flush=True)
    return 0


def render(tb, guests, daemon, hint):
    cols = shutil.get_terminal_size((120, 40)).columns
    actions = [m for _, m in daemon.findall(ACTION.pattern)][-8:]
    out = ["\033[H\033[J" if sys.stdout.isatty() else "",
           f"memtide demo: run {tb.prefix}, memtided log {daemon.log_path}   (Ctrl-C ends)",
           "", watch_snapshot(tb.conn, tb.prefix), "",
           "Last resizes by memtided (reason in one line each):"]
    if not actions:
        out.append("  (none yet: memtided waits for stats and lets guests settle first)")
    for m in actions:
        out.append("  " + m.group(0)[: cols - 3])
    out += ["", hint]
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
