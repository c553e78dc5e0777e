#!/usr/bin/python3
"""package (TAP): the Debian packages on a real Debian 12 system.

Boots a Debian 12 guest (tests/package/mkrootfs: systemd as init, the
system bus, polkitd, libvirtd; cached) under libvirt + QEMU like the
testbed's guests, with the .debs of `./run package` on a second disk.
Inside, guest/guest-test.sh installs them with apt and checks the service
under systemd, D-Bus, polkit, reload, the watchdog, remove and purge; its
TAP comes back over the guest's second serial port and is passed on here,
renumbered after this script's own checks.

  MEMTIDE_DEB_DIR   the .debs (default: build-deb/ in the source tree,
                    where `./run package` puts them)

Needs root, libvirtd, qemu-system-x86, mmdebstrap and network for the
first image build. The guest is a testbed run (prefix mtb-..., run.json,
metadata): `./run clean` removes it if this script is killed.
"""

import atexit
import glob
import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "testbed"))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

import mttap  # noqa: E402
from mttap import bail, finish, note, on_failure, tap  # noqa: E402

mttap.report_wall_time = True

# TCG on a 2-core host: the whole guest run (boot, apt, every check, a
# watchdog restart, remove, purge) takes a few minutes; this only catches
# a hang.
GUEST_DEADLINE = 1800
MEMORY_MIB = 2048
TAP_RE = re.compile(r"^(not ok|ok)\b\s*\d*\s*(?:-\s*)?(.*)$")
END_RE = re.compile(r"^MEMTIDE-PKGTEST-END rc=(\d+)")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, **kw)


if os.geteuid() != 0:
    bail("needs root (qemu:///system, mmdebstrap)")
try:
    import testbed
    from domain import meta_of, proc_starttime, remove_run
    from tbcommon import META_KEY, META_NS, NAME_MARKER, RUN_ROOT
    if testbed.libvirt is None:
        raise testbed.PrerequisiteError(
            "python module libvirt missing (Debian package python3-libvirt)")
except Exception as e:  # prerequisite errors name the package
    bail(f"prerequisite missing: {e}")
for tool, pkg in (("mmdebstrap", "mmdebstrap"), ("mke2fs", "e2fsprogs"),
                  ("dpkg-deb", "dpkg"), ("/usr/bin/qemu-system-x86_64", "qemu-system-x86")):
    if not shutil.which(tool):
        bail(f"{tool} missing (Debian package {pkg})")

deb_dir = os.environ.get("MEMTIDE_DEB_DIR") or os.path.join(SRC, "build-deb")
debs = {}
for pkg in ("memtide", "memtide-agent"):
    found = sorted(glob.glob(os.path.join(deb_dir, f"{pkg}_*.deb")))
    if not found:
        bail(f"no {pkg}_*.deb in {deb_dir}: build them with `./run package` "
             "(or set MEMTIDE_DEB_DIR)")
    debs[pkg] = found[-1]
note("debs: " + ", ".join(os.path.basename(p) for p in debs.values()))

# ---- the Debian 12 image (cached)
t0 = time.monotonic()
depends = run(["dpkg-deb", "-f", debs["memtide"], "Depends"]).stdout.strip()
p = subprocess.run([os.path.join(HERE, "mkrootfs"), depends], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
paths = dict(re.findall(r"^(image|kernel|initrd): (\S+)$", p.stdout, re.M))
if not tap(p.returncode == 0 and len(paths) == 3,
           f"Debian 12 image from mkrootfs ({time.monotonic() - t0:.1f} s)",
           "\n".join(p.stderr.splitlines()[-40:])):
    finish()
note(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "")

# ---- a testbed run: prefix, run directory, manifest
testbed.ensure_daemons()
conn = testbed.connect()
rnd = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
prefix = f"{NAME_MARKER}{os.getpid()}-{rnd}"
name = f"{prefix}-pkg"
rundir = os.path.join(RUN_ROOT, prefix)
os.makedirs(RUN_ROOT, mode=0o755, exist_ok=True)
os.makedirs(rundir, mode=0o755)
os.chmod(rundir, 0o755)  # QEMU runs as libvirt-qemu
with open(os.path.join(rundir, "run.json"), "w") as f:
    json.dump({"prefix": prefix, "owner_pid": os.getpid(),
               "owner_start": proc_starttime(os.getpid()),
               "uri": testbed.DEFAULT_URI, "domains": [name],
               "created": time.time()}, f, indent=1)
# Removed at exit, also on SIGTERM (meson's timeout) and Ctrl-C; after a
# SIGKILL, `./run clean` or the next testbed run reaps it (owner gone).
atexit.register(lambda: remove_run(conn, prefix))
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))

# Private copies: libvirt relabels what a guest uses, and the guest writes
# to its root disk; the cache stays as built.
root_img = os.path.join(rundir, "root.img")
r = run(["cp", "--sparse=always", paths["image"], root_img])
if r.returncode != 0:
    bail(f"cannot copy {paths['image']}: {r.stderr.strip()}")
kernel = shutil.copy(paths["kernel"], os.path.join(rundir, "vmlinuz"))
initrd = shutil.copy(paths["initrd"], os.path.join(rundir, "initrd.img"))

# The test disk: the .debs and the guest's script, read-only in the guest.
payload = os.path.join(rundir, "payload")
os.makedirs(os.path.join(payload, "debs"))
for path in debs.values():
    shutil.copy(path, os.path.join(payload, "debs"))
shutil.copy(os.path.join(HERE, "guest", "guest-test.sh"), payload)
payload_img = os.path.join(rundir, "payload.img")
size_mib = 32 + sum(os.path.getsize(p) for p in debs.values()) // (1 << 20)
r = run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "memtide-pkgtest", "-d", payload,
         payload_img, f"{size_mib}M"])
if r.returncode != 0:
    bail(f"mke2fs of the test disk failed: {r.stderr.strip()}")

console = os.path.join(rundir, "console.log")
tap_log = os.path.join(rundir, "tap.log")
meta = {"prefix": prefix, "owner-pid": os.getpid(),
        "owner-start": proc_starttime(os.getpid()), "rundir": rundir}
cmdline = ("root=/dev/vda rw console=ttyS0 memtide.pkgtest=1 panic=-1 "
           "systemd.show_status=false")
xml = f"""<domain type='qemu'>
  <name>{name}</name>
  <metadata>
    <tb:{META_KEY} xmlns:tb='{META_NS}' {' '.join(f"{k}='{v}'" for k, v in meta.items())}/>
  </metadata>
  <memory unit='MiB'>{MEMORY_MIB}</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='unsafe'/>
      <source file='{root_img}'/><target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{payload_img}'/><target dev='vdb' bus='virtio'/>
      <serial>memtide-pkgtest</serial><readonly/>
    </disk>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    <serial type='file'><source path='{tap_log}'/><target port='1'/></serial>
    <console type='file'><source path='{console}'/><target type='serial' port='0'/></console>
    <memballoon model='none'/>
    <controller type='usb' model='none'/>
  </devices>
</domain>
"""


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def console_tail(n=60):
    return "\n".join(read(console).splitlines()[-n:])


on_failure(lambda: note("guest console, last lines:\n" + console_tail()))

t_start = time.monotonic()
try:
    dom = conn.defineXML(xml)
    dom.create()
except testbed.libvirt.libvirtError as e:
    bail(f"starting {name} failed: {e}")
assert meta_of(dom) is not None

# ---- pass the guest's TAP on as it comes
done_rc = None
first = None
seen = 0
guest_checks = 0
while time.monotonic() - t_start < GUEST_DEADLINE:
    text = read(tap_log)
    lines = text.replace("\r", "").split("\n")
    complete, seen_new = lines[:-1], len(lines) - 1
    for line in complete[seen:]:
        if first is None and line.strip():
            first = time.monotonic() - t_start
            tap(True, f"the Debian 12 guest boots under systemd and starts the test "
                f"({first:.1f} s, TCG, {MEMORY_MIB} MiB)")
        m = TAP_RE.match(line)
        end = END_RE.match(line)
        if m:
            guest_checks += 1
            desc = m.group(2)
            todo = re.search(r"#\s*TODO\b", desc, re.I)
            if todo:
                # An explicit pending check (not a pass, not hidden): its
                # TODO directive stays on the line, as TAP defines it.
                mttap._results.append(True)
                print(f"{m.group(1)} {len(mttap._results)} - {desc}", flush=True)
            else:
                tap(m.group(1) == "ok", f"guest: {desc}")
        elif end:
            done_rc = int(end.group(1))
        elif line.startswith("Bail out!"):
            tap(False, f"guest: {line}")
        elif line.startswith("1.."):
            pass  # the plan is ours
        elif line.strip():
            print(line if line.startswith("#") else f"# {line}", flush=True)
    seen = seen_new
    if done_rc is not None:
        break
    if not dom.isActive():
        break
    time.sleep(0.2)

if first is None:
    tap(False, "the Debian 12 guest boots under systemd and starts the test "
        f"(nothing on its test port after {time.monotonic() - t_start:.0f} s)")
tap(done_rc == 0 and guest_checks > 0,
    f"the guest's test ran to its end ({guest_checks} checks, exit {done_rc}, "
    f"{time.monotonic() - t_start:.1f} s after start)")

# The guest powers itself off when its test is done.
t_off = time.monotonic()
while dom.isActive() and time.monotonic() - t_off < 120:
    time.sleep(0.2)
tap(not dom.isActive(), f"the guest powered off ({time.monotonic() - t_off:.1f} s)")
finish()
