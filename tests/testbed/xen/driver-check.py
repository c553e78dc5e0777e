#!/usr/bin/python3
"""The Xen driver on real Xen, the simplest way: boot the Xen testbed
(xenbed.py), start memtided --backend xen in dom0 with a policy that
holds the domU at one size, create a PV domU, and show memtided finding
it and resizing it both ways (memory/target, maxmem, tot_pages), then
forgetting it when it shuts down.  Prints FIGURE lines (dom0 uptime
seconds, measured in dom0 by polling every 0.1 s); no timed assertions.

    flock /tmp/memtide-e2e.lock /usr/bin/python3 tests/testbed/xen/driver-check.py \
        [--memtided build/service/memtided] [--keep]

Not the e2e-xen suite (agents, workloads, several domUs): a check of
the driver alone.  Exit 0 when every step was seen.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import xenbed  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
LOG = "/tmp/memtided.log"
POLICY = "/etc/memtide/default.conf"
# The domU boots at 256 MiB with static-max 512 MiB; the policy pins it
# at SIZE_GROW, then (after SIGHUP) at SIZE_SHRINK.
SIZE_GROW = 384
SIZE_SHRINK = 192


def policy(size_mib):
    return ("[host]\n"
            "tick-interval = 1s\n"
            "[vm xbd*]\n"
            f"min = {size_mib}M\n"
            f"max = {size_mib}M\n")


# Shell helpers for dom0 (one line: the control port takes one command a
# line): its uptime, and waiting for a condition with a deadline (polling
# every 0.1 s), printing the uptime when it held.
SH = ("up() { cut -d' ' -f1 /proc/uptime; }; "
      "waitfor() { end=$(( $(cut -d. -f1 /proc/uptime) + $1 )); shift; "
      "until sh -c \"$*\" >/dev/null 2>&1; do "
      "[ $(cut -d. -f1 /proc/uptime) -lt $end ] || { echo \"TIMEOUT $*\"; return 1; }; "
      "sleep 0.1; done; echo \"SEEN $(up)\"; }; ")


def run(bed, cmd, timeout=120):
    rc, out = bed.run(SH + cmd, timeout)
    return rc, out.strip()


def seen(out):
    m = re.search(r"^SEEN ([\d.]+)$", out, re.M)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memtided", default=os.path.join(ROOT, "build", "service", "memtided"))
    ap.add_argument("--workdir", default=os.environ.get(
        "MEMTIDE_XENBED_WORKDIR", os.path.join(ROOT, ".testbed", "xen")))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    workdir = os.path.abspath(a.workdir)
    os.makedirs(workdir, exist_ok=True)
    xenbed.ensure_packages(install=False)
    xen = xenbed.xen_image(workdir)
    tmp = tempfile.mkdtemp(prefix="driver-check-", dir=workdir)
    pol = os.path.join(tmp, "default.conf")
    with open(pol, "w") as f:
        f.write(policy(SIZE_GROW))
    cpio, kernel, _ = xenbed.build_dom0(
        workdir, scenario=None,
        domus={"a": xenbed.domu_cfg("xbd1", 256, 512)},
        extra_files={"usr/sbin/memtided": a.memtided, POLICY.lstrip("/"): pol,
                     "usr/bin/relay-agent": os.path.join(HERE, "relay-agent.sh")})
    bed = xenbed.Xenbed(tmp, xen, kernel, cpio)
    ok = False
    figures = {}
    try:
        bed.start()
        bed.wait_for(r"^MEMTIDE-XEN-CONTROL ttyS1", 600)
        print(f"dom0 ready after {bed.elapsed():.1f} s (host)")

        rc, out = run(bed, f"mkdir -p /tmp/state; memtided --backend xen --bus none "
                      f"--config {POLICY} --policies-dir /nonexistent --state-dir /tmp/state "
                      f"--verbose >{LOG} 2>&1 3>&- & "
                      f"waitfor 30 \"grep -q 'memtided running' {LOG}\"")
        print(out)
        if seen(out) is None:
            raise xenbed.XenbedError("memtided did not start")

        # Creation: from `xl create` to memtided managing the domU.
        rc, out = run(bed, "echo CREATE $(up); xl create /etc/xenbed/a.cfg >/dev/null 2>&1; "
                      "echo CREATED $(up) rc=$?; "
                      f"waitfor 60 \"grep -q 'VM xbd1: managing' {LOG}\"")
        print(out)
        t_create = float(re.search(r"^CREATE ([\d.]+)", out, re.M).group(1))
        t_created = float(re.search(r"^CREATED ([\d.]+)", out, re.M).group(1))
        t_managed = seen(out)
        if t_managed is None:
            raise xenbed.XenbedError("memtided never managed xbd1")
        figures["xl-create-s"] = t_created - t_create
        figures["create-start-to-managed-s"] = t_managed - t_create
        figures["create-return-to-managed-s"] = t_managed - t_created

        # The planner sizes a VM from the guest's numbers; on Xen only an
        # agent has them.  The relay writes the domU's own MemTotal and
        # MemAvailable to its data/memtide keys as the agent would.
        rc, out = run(bed, "relay-agent xbd1 >/tmp/relay.log 2>&1 3>&- & "
                      f"waitfor 60 \"grep -q 'VM xbd1: agent connected' {LOG}\"")
        print(out)
        t_agent = seen(out)
        if t_agent is not None:
            figures["managed-to-agent-connected-s"] = t_agent - t_managed

        # Grow: the policy holds xbd1 at SIZE_GROW MiB.
        grow_kib = SIZE_GROW * 1024
        rc, out = run(bed, "d=$(xl domid xbd1); echo DOMID $d; "
                      f"waitfor 60 \"[ \\$(xenstore-read /local/domain/$d/memory/target) = {grow_kib} ]\"; "
                      f"waitfor 60 \"xl list xbd1 | grep -Eq 'xbd1 +[0-9]+ +{SIZE_GROW} '\"; "
                      "xenstore-read /local/domain/$d/memory/target /local/domain/$d/memory/static-max; "
                      "xl list", 300)
        print(out)
        t = re.findall(r"^SEEN ([\d.]+)$", out, re.M)
        if len(t) != 2:
            raise xenbed.XenbedError("xbd1 did not grow to the policy's size")
        figures["managed-to-grow-target-written-s"] = float(t[0]) - t_managed
        figures["managed-to-grow-reached-s"] = float(t[1]) - t_managed

        # Shrink: a new policy and SIGHUP.
        shrink_kib = SIZE_SHRINK * 1024
        text = policy(SIZE_SHRINK).replace("\n", "\\n")
        rc, out = run(bed, f"printf '{text}' >{POLICY}; d=$(xl domid xbd1); echo HUP $(up); "
                      "kill -HUP $(pidof memtided); "
                      f"waitfor 60 \"[ \\$(xenstore-read /local/domain/$d/memory/target) = {shrink_kib} ]\"; "
                      f"waitfor 60 \"xl list xbd1 | grep -Eq 'xbd1 +[0-9]+ +{SIZE_SHRINK} '\"; "
                      "xenstore-read /local/domain/$d/memory/target; xl list", 300)
        print(out)
        t_hup = float(re.search(r"^HUP ([\d.]+)", out, re.M).group(1))
        t = re.findall(r"^SEEN ([\d.]+)$", out, re.M)
        if len(t) != 2:
            raise xenbed.XenbedError("xbd1 did not shrink to the policy's size")
        figures["hup-to-shrink-target-written-s"] = float(t[0]) - t_hup
        figures["hup-to-shrink-reached-s"] = float(t[1]) - t_hup

        # Gone: shut down, memtided forgets it.
        rc, out = run(bed, "echo SHUTDOWN $(up); xl shutdown xbd1 >/dev/null 2>&1; "
                      f"waitfor 60 \"grep -q 'VM xbd1: gone' {LOG}\"", 120)
        print(out)
        t_shut = float(re.search(r"^SHUTDOWN ([\d.]+)", out, re.M).group(1))
        if seen(out) is None:
            raise xenbed.XenbedError("memtided did not forget xbd1")
        figures["shutdown-to-forgotten-s"] = seen(out) - t_shut

        rc, out = run(bed, f"grep -E 'managing|resize|gone|agent|Xen|xen' {LOG} "
                      "| grep -v -E 'tick |skip: |agent report seq' | head -60")
        print("--- memtided log (excerpt)")
        print(out)
        if "balloon only" not in out:
            raise xenbed.XenbedError("memtided's log does not say 'balloon only'")
        ok = True
    except xenbed.XenbedError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        try:
            rc, out = bed.run(f"tail -60 {LOG}", 30)
            print("--- memtided log (tail)\n" + out, file=sys.stderr)
        except xenbed.XenbedError:
            pass
    finally:
        bed.stop()
        for k, v in figures.items():
            print(f"FIGURE {k} {v:.2f}")
        print(f"FIGURE total-s {bed.elapsed():.1f}")
        if a.keep or not ok:
            print(f"run directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
