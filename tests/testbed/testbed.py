#!/usr/bin/python3
"""memtide testbed: real guests under libvirt for e2e tests, the demo and
the benchmarks.

Each run defines and starts N small guests (direct kernel boot of the
Debian cloud kernel, or per guest the patched memtide kernel from
kernel-patches/, with one busybox initramfs, see initramfs.py and
init.sh) with a virtio balloon (free page reporting, stats), optionally a
virtio-mem device, the memtide agent's virtio-serial channel and a serial
console logged to a file. The guest reports itself on that console
(MEMTIDE-GUEST-READY, MEMTIDE-MEMINFO lines), which is how tests see the
guest's own view of its size.

Everything a run creates carries its prefix (mtb-<pid>-<random>) and an
ownership record in the domain <metadata>, so teardown (normal exit,
exception, SIGINT/SIGTERM, `down`, `cleanup`) removes exactly what the
run created and never a domain it did not create.

Modules: testbed.py (this: host checks, Testbed, CLI), guest.py (Guest
helpers), domain.py (GuestSpec, domain XML, ownership, cleanup), watch.py,
initramfs.py, tbcommon.py (units, markers, errors).

Use as a module:

    from testbed import Testbed, GuestSpec, MiB, GiB
    with Testbed(workload="build/tests/workload/memtide-workload") as tb:
        g0, g1 = tb.up([GuestSpec(memory_kib=512 * MiB, vmem_size_kib=GiB),
                        GuestSpec(memory_kib=512 * MiB)])
        g1.set_balloon(384 * MiB)
        g1.wait_meminfo(lambda m: m.total_kib < 400 * MiB, timeout=30)

or as a command: testbed.py --help. Needs /usr/bin/python3 (python3-libvirt)
and root (qemu:///system).
"""

import argparse
import atexit
import glob
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The names tests use are re-exported here: `from testbed import ...`.
import initramfs  # noqa: E402
from initramfs import PrerequisiteError  # noqa: E402,F401
from tbcommon import (  # noqa: E402,F401
    AGENT_PORT, CACHE_DISK_SERIAL, DEFAULT_URI, GiB, KiB, META_KEY, META_NS,
    MEMINFO_RE, MiB, NAME_MARKER, READY_RE, RUN_ROOT, SWAP_DISK_SERIAL,
    WORKLOAD_RE,
    TestbedError, libvirt, log, parse_size_kib)
from guest import (  # noqa: E402,F401
    BlockUsage, Blocks, Guest, MemInfo, Reporting, VirtioMem)
from domain import (  # noqa: E402,F401
    GuestSpec, cleanup, domain_xml, meta_of, owner_alive, proc_starttime,
    remove_domain, remove_domains, remove_run, testbed_domains)
from watch import watch_snapshot  # noqa: E402

__all__ = [
    "AGENT_PORT", "BlockUsage", "Blocks", "CACHE_DISK_SERIAL", "GiB", "Guest",
    "GuestSpec", "KiB", "Reporting",
    "MEMINFO_RE", "MemInfo", "MiB", "PrerequisiteError", "READY_RE",
    "SWAP_DISK_SERIAL",
    "Testbed", "TestbedError", "VirtioMem", "WORKLOAD_RE",
    "check_prerequisites", "cleanup", "connect", "ensure_daemons",
    "find_patched_kernel",
    "remove_run", "testbed_domains", "watch_snapshot",
]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
KERNEL_BUILD = os.path.join(REPO_ROOT, "kernel-patches", "build")
DEFAULT_WORKDIR = os.path.join(REPO_ROOT, ".testbed")
# swiotlb=noforce: a guest with a memory hotplug region above 4 GiB would
# otherwise reserve a 64 MiB bounce buffer virtio never uses (legacy
# virtio bypasses the DMA API), making its MemTotal 64 MiB smaller than a
# balloon-only guest of the same boot size.
# no_timer_check: the kernel checks that the timer interrupt arrives
# through the IO-APIC within a few ticks, which a TCG vCPU on a loaded
# host can miss ("Kernel panic - not syncing: IO-APIC + timer doesn't
# work!", seen booting five guests at once beside other tests).
BASE_CMDLINE = ("console=ttyS0 memhp_default_state=online_movable quiet "
                "panic=-1 swiotlb=noforce no_timer_check")


# ---------------------------------------------------------------- host

def _pid_alive(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def check_prerequisites():
    """Raises PrerequisiteError naming what is missing and its package."""
    if libvirt is None:
        raise PrerequisiteError(
            "python module libvirt missing (Debian package python3-libvirt; "
            "run with /usr/bin/python3, not a virtualenv/pyenv python)")
    for path, pkg in (("/usr/sbin/libvirtd", "libvirt-daemon-system"),
                      ("/usr/sbin/virtlogd", "libvirt-daemon-system"),
                      ("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
                       "libvirt-daemon-driver-qemu"),
                      ("/usr/bin/qemu-system-x86_64", "qemu-system-x86")):
        if not os.path.exists(path):
            raise PrerequisiteError(f"{path} missing (Debian package {pkg})")
    if os.geteuid() != 0:
        raise PrerequisiteError("the testbed needs root (qemu:///system)")
    initramfs.find_kernel()
    initramfs.find_busybox()


def ensure_daemons():
    """Starts virtlogd and libvirtd when they are not running (there is no
    systemd here); running ones are left alone."""
    started = []
    for name, pidfile in (("virtlogd", "/run/virtlogd.pid"),
                          ("libvirtd", "/run/libvirtd.pid")):
        running = _pid_alive(pidfile) or subprocess.run(
            ["pgrep", "-x", name], capture_output=True).returncode == 0
        if not running:
            # Own session and no inherited stdio: the daemon must not keep a
            # test runner's pipes open or die with our process group.
            subprocess.run([f"/usr/sbin/{name}", "-d"], check=True,
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
            started.append(name)
    if started:
        log(f"started {', '.join(started)}")


def find_patched_kernel(path=None):
    """The patched memtide kernel's bzImage: path, else
    $MEMTIDE_PATCHED_KERNEL, else the one kernel-patches/build prints. The
    build is cached by a hash of its inputs (about a second when nothing
    changed; `./run tests` builds it before the e2e suite, so a test never
    waits for a cold build there)."""
    path = path or os.environ.get("MEMTIDE_PATCHED_KERNEL") or None
    if path:
        if not os.path.isfile(path):
            raise PrerequisiteError(f"patched kernel {path} does not exist")
        return path
    r = subprocess.run([KERNEL_BUILD], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    found = [ln.split()[1] for ln in r.stdout.splitlines()
             if ln.startswith("bzImage: ")]
    if r.returncode != 0 or not found or not os.path.isfile(found[-1]):
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise PrerequisiteError(
            f"{KERNEL_BUILD} did not give a patched kernel (exit "
            f"{r.returncode}); or set MEMTIDE_PATCHED_KERNEL to a bzImage:\n"
            f"{tail}")
    return found[-1]


def connect(uri=DEFAULT_URI, wait=15.0):
    if libvirt is None:
        check_prerequisites()
    # libvirt prints every error on stderr by default; we report ours.
    libvirt.registerErrorHandler(lambda *_: None, None)
    deadline = time.monotonic() + wait
    while True:
        try:
            return libvirt.open(uri)
        except libvirt.libvirtError as e:
            if time.monotonic() > deadline:
                raise TestbedError(f"cannot connect to {uri}: {e}") from e
            time.sleep(0.2)


# ---------------------------------------------------------------- testbed

class Testbed:
    """One testbed run: a prefix, a run directory and the guests started
    under it. Use as a context manager; teardown also runs at interpreter
    exit and on SIGTERM/SIGINT (while inside the with block)."""

    def __init__(self, workload=None, agent=None, workdir=None,
                 uri=DEFAULT_URI, accel="tcg", kernel=None, run_root=RUN_ROOT,
                 verbose=True, patched_kernel=None):
        self.workload = workload or os.environ.get("MEMTIDE_WORKLOAD") \
            or _find_built("tests/workload/memtide-workload")
        self.agent = agent or os.environ.get("MEMTIDE_AGENT") or None
        self.workdir = workdir or os.environ.get("MEMTIDE_TESTBED_WORKDIR") \
            or DEFAULT_WORKDIR
        self.uri = uri
        self.accel = accel
        self.kernel = kernel                  # stock kernel (None: newest cloud)
        self.patched_kernel = patched_kernel  # None: find_patched_kernel()
        self.patched_kver = None
        self.run_root = run_root
        self.verbose = verbose
        rnd = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
        self.prefix = f"{NAME_MARKER}{os.getpid()}-{rnd}"
        self.rundir = os.path.join(run_root, self.prefix)
        self.guests = []
        self.conn = None
        self.detached = False
        self._created = []          # domain names, in creation order
        self._torn_down = False
        self._old_handlers = {}
        self._next_index = 0
        self._kernel_copy = None
        self._initrd_copy = None
        self._patched_copy = None
        atexit.register(self.down)

    def _log(self, msg):
        if self.verbose:
            log(msg)

    # -- context manager and signals
    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc):
        self.down()
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers.clear()
        return False

    def _on_signal(self, signum, frame):
        # Unwind through the with block so __exit__ tears down.
        raise SystemExit(128 + signum)

    # -- bring up
    def _prepare(self):
        if self.conn is not None:
            return
        check_prerequisites()
        ensure_daemons()
        self.conn = connect(self.uri)
        path, kernel, self.kver = initramfs.build(
            self.workdir, self.workload, self.agent, self.kernel)
        os.makedirs(self.run_root, mode=0o755, exist_ok=True)
        os.chmod(self.run_root, 0o755)
        os.makedirs(self.rundir, mode=0o755)
        os.chmod(self.rundir, 0o755)  # umask must not hide it from qemu
        self._write_manifest()
        # Private copies: libvirt relabels (chowns) kernel and initrd while
        # a guest runs; the shared cache and /boot must not change owner.
        self._kernel_copy = os.path.join(self.rundir, "vmlinuz")
        self._initrd_copy = os.path.join(self.rundir, "initramfs.cpio")
        shutil.copyfile(kernel, self._kernel_copy)
        shutil.copyfile(path, self._initrd_copy)
        self._log(f"run {self.prefix}: kernel {self.kver}, initramfs "
                  f"{os.path.basename(path)}, agent "
                  f"{'yes' if self.agent else 'no'}, accel {self.accel}, "
                  f"files in {self.rundir}")

    def _prepare_patched(self):
        """Resolves and copies the patched kernel, once per run. The same
        initramfs boots it: /init loads no modules on a kernel that has none
        for its release and checks that the drivers are built in."""
        if self._patched_copy is not None:
            return
        src = find_patched_kernel(self.patched_kernel)
        self.patched_kver = initramfs.bzimage_version(src)
        self._patched_copy = os.path.join(self.rundir, "bzImage-patched")
        shutil.copyfile(src, self._patched_copy)
        self._log(f"run {self.prefix}: patched kernel {self.patched_kver} "
                  f"from {src}")

    def _write_manifest(self):
        man = {"prefix": self.prefix,
               "owner_pid": "detached" if self.detached else os.getpid(),
               "owner_start": proc_starttime(os.getpid()),
               "uri": self.uri, "domains": self._created,
               "created": time.time()}
        tmp = os.path.join(self.rundir, "run.json.tmp")
        with open(tmp, "w") as f:
            json.dump(man, f, indent=1)
        os.replace(tmp, os.path.join(self.rundir, "run.json"))

    def _check_schedule(self, sched):
        r = subprocess.run([self.workload, "--check", sched],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise TestbedError(r.stderr.strip() or
                               f"bad workload schedule {sched!r}")

    def _cache_disk(self, name, kib):
        if not shutil.which("mke2fs") and not os.path.exists("/sbin/mke2fs"):
            raise PrerequisiteError("mke2fs missing (Debian package e2fsprogs)")
        path = os.path.join(self.rundir, f"{name}.cache.img")
        with open(path, "wb") as f:
            f.truncate(kib * 1024)  # sparse: costs no disk until written
        # Few inodes, no journal, tables written now: the guest's page cache
        # holds file data only, and no lazy init thread writes in the guest.
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O",
                        "^has_journal", "-N", "64", "-m", "0", "-E",
                        "lazy_itable_init=0,nodiscard", path], check=True,
                       capture_output=True)
        return path

    def _swap_disk(self, name, kib):
        """A sparse raw file for the guest's swap (the guest runs mkswap on
        it at boot). QEMU opens it with O_DIRECT (cache='none'), so the
        run directory's filesystem must support O_DIRECT."""
        path = os.path.join(self.rundir, f"{name}.swap.img")
        with open(path, "wb") as f:
            f.truncate(kib * 1024)
        _check_o_direct(path)
        return path

    def _define_and_start(self, spec, accel, suffix=None):
        idx = self._next_index
        if suffix is None:
            self._next_index += 1
        name = f"{self.prefix}-{suffix or f'g{idx}'}"
        console = os.path.join(self.rundir, f"{name}.console.log")
        cmd = [BASE_CMDLINE]
        if spec.workload:
            cmd.append(f"memtide.workload={spec.workload}")
        if not spec.agent:
            cmd.append("memtide.agent=0")
        disk = None
        if spec.cache_disk_kib:
            disk = self._cache_disk(name, spec.cache_disk_kib)
            cmd.append(f"memtide.cache={CACHE_DISK_SERIAL}")
        swap = None
        if spec.swap_kib:
            swap = self._swap_disk(name, spec.swap_kib)
            cmd.append(f"memtide.swap={SWAP_DISK_SERIAL}")
        if spec.extra_cmdline:
            cmd.append(spec.extra_cmdline)
        meta = {"prefix": self.prefix,
                "owner-pid": "detached" if self.detached else os.getpid(),
                "owner-start": proc_starttime(os.getpid()),
                "rundir": self.rundir}
        kernel = self._patched_copy if spec.kernel == "patched" \
            else self._kernel_copy
        xml = domain_xml(name, spec, kernel, self._initrd_copy,
                         console, " ".join(cmd), disk, accel, meta, swap)
        t0 = time.monotonic()
        # Record before defining: a crash in between must still be cleaned.
        self._created.append(name)
        self._write_manifest()
        dom = self.conn.defineXML(xml)
        g = Guest(self, idx, name, spec, dom, console)
        g.t_define = t0
        try:
            dom.create()
        except libvirt.libvirtError as e:
            raise TestbedError(f"starting {name} failed: {e}") from e
        return g

    def _wait_ready(self, guests, timeout):
        pending = list(guests)
        deadline = time.monotonic() + timeout
        while pending:
            for g in list(pending):
                m = READY_RE.search(g.console())
                if m:
                    g.t_ready = time.monotonic()
                    g.ready_line = m.group(0)
                    pending.remove(g)
                    self._log(f"{g.name} ready in {g.boot_seconds:.1f}s: "
                              f"{g.ready_line}")
                elif not g.dom.isActive():
                    raise TestbedError(f"{g.name} stopped during boot; console "
                                       f"tail:\n{g.console_tail()}")
            if pending and time.monotonic() > deadline:
                g = pending[0]
                raise TestbedError(
                    f"{g.name}: no MEMTIDE-GUEST-READY within {timeout:.0f}s; "
                    f"console tail:\n{g.console_tail()}")
            time.sleep(0.05)

    def _probe_kvm(self):
        """KVM is used only if a probe guest really boots with it: nested
        KVM on some hosts hangs in early boot."""
        if not os.path.exists("/dev/kvm"):
            return False, "/dev/kvm does not exist"
        g = self._define_and_start(GuestSpec(memory_kib=256 * MiB,
                                             cache_disk_kib=0, swap_kib=0,
                                             agent=False),
                                   "kvm", suffix="kvmprobe")
        try:
            self._wait_ready([g], 30)
            return True, f"probe guest booted in {g.boot_seconds:.1f}s"
        except TestbedError as e:
            return False, str(e).splitlines()[0]
        finally:
            remove_domain(g.dom)

    def up(self, specs, timeout=120.0):
        """Defines and starts one guest per GuestSpec, waits until all print
        the ready marker and returns their Guest objects."""
        self._prepare()
        for s in specs:  # fail before anything boots
            if s.kernel not in ("stock", "patched"):
                raise TestbedError(f"GuestSpec.kernel {s.kernel!r}: expected "
                                   "'stock' or 'patched'")
            if s.on_reboot not in ("destroy", "restart"):
                raise TestbedError(f"GuestSpec.on_reboot {s.on_reboot!r}: "
                                   "expected 'destroy' or 'restart'")
            if s.kernel == "patched":
                self._prepare_patched()
            if s.workload:
                self._check_schedule(s.workload)
        accel = self.accel
        if accel in ("kvm", "auto"):
            ok, why = self._probe_kvm()
            if not ok and accel == "kvm":
                raise TestbedError(f"KVM asked for but not usable: {why}")
            self._log(f"KVM probe: {'ok' if ok else 'failed'} ({why}); "
                      f"using {'kvm' if ok else 'tcg'}")
            accel = self.accel = "kvm" if ok else "tcg"
        new = [self._define_and_start(s, accel) for s in specs]
        self.guests += new
        self._wait_ready(new, timeout)
        return new

    # -- tear down
    def reconnect(self):
        """A fresh libvirt connection for this run and its guests, after
        libvirtd restarted (domains outlive libvirtd; connections do not)."""
        self.conn = connect(self.uri)
        for g in self.guests:
            g.dom = self.conn.lookupByName(g.name)
        return self.conn

    def _live_conn(self):
        """The run's connection if libvirtd still answers on it, else a new
        one: after a libvirtd restart isAlive() can still say yes while
        every call fails, and teardown must not skip the run's domains."""
        conn = self.conn
        if conn is not None:
            try:
                conn.getLibVersion()  # a round trip to libvirtd
                return conn
            except libvirt.libvirtError:
                pass
        self.conn = connect(self.uri)
        return self.conn

    def down(self):
        """Destroys and undefines this run's domains and removes its files.
        Safe to call more than once; signals are held off meanwhile so a
        second Ctrl-C cannot leave half a run behind."""
        if self._torn_down or self.detached:
            return
        self._torn_down = True
        held = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                held[sig] = signal.signal(sig, signal.SIG_IGN)
        try:
            if self._created:
                conn = self._live_conn()
                mine = []
                for name in self._created:
                    try:
                        dom = conn.lookupByName(name)
                    except libvirt.libvirtError:
                        continue
                    meta = meta_of(dom)
                    if not meta or meta.get("prefix") != self.prefix:
                        log(f"not removing {name}: not created by this run")
                        continue
                    mine.append(dom)
                remove_domains(mine)
                self._log(f"run {self.prefix}: removed "
                          f"{len(mine)} domain(s)")
            shutil.rmtree(self.rundir, ignore_errors=True)
        finally:
            for sig, h in held.items():
                signal.signal(sig, h)

    def detach(self):
        """Leaves the guests running after this process exits (`up
        --detach`); `down --prefix` or `cleanup` removes them later."""
        self.detached = True
        self._write_manifest()
        for g in self.guests:
            m = meta_of(g.dom) or {}
            m["owner-pid"] = "detached"
            g.dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                f"<{META_KEY} " + " ".join(f"{k}='{v}'" for k, v in m.items())
                + "/>", "tb", META_NS,
                libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_AFFECT_LIVE)


def _check_o_direct(path):
    """Raises TestbedError if path's filesystem refuses O_DIRECT (tmpfs on
    older kernels), which QEMU needs for a cache='none' disk."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as e:
        raise TestbedError(
            f"{path}: the filesystem of {os.path.dirname(path)} does not "
            f"support O_DIRECT ({e.strerror}), which the swap disk needs "
            "(cache='none'); put the run directory on ext4/xfs or give the "
            "guests no swap (GuestSpec.swap_kib=0, --swap 0)") from e
    os.close(fd)


def _find_built(rel):
    """Newest REPO/build*/rel, the usual meson build directories."""
    cands = [p for p in glob.glob(os.path.join(REPO_ROOT, "build*", rel))
             if os.path.isfile(p)]
    return max(cands, key=os.path.getmtime) if cands else None


# ---------------------------------------------------------------- CLI

def _cli_up(args):
    n = args.count
    scheds = args.workload or []
    if len(scheds) not in (0, 1, n):
        raise SystemExit(f"testbed: --workload given {len(scheds)} times for "
                         f"{n} guests: give it once (all guests) or once per "
                         "guest ('none' for a guest without workload)")
    if len(scheds) == 1:
        scheds = scheds * n
    specs = []
    for i in range(n):
        w = scheds[i] if scheds else None
        specs.append(GuestSpec(
            memory_kib=parse_size_kib(args.memory), vcpus=args.vcpus,
            vmem_size_kib=parse_size_kib(args.vmem_size) if args.vmem_size else 0,
            vmem_block_kib=parse_size_kib(args.vmem_block),
            vmem_requested_kib=parse_size_kib(args.vmem_requested),
            workload=None if w in (None, "", "none") else w,
            cache_disk_kib=parse_size_kib(args.cache_disk),
            swap_kib=parse_size_kib(args.swap),
            extra_cmdline=args.cmdline or "",
            kernel=args.guest_kernel))
    tb = Testbed(workload=args.workload_bin, agent=args.agent,
                 workdir=args.workdir, uri=args.uri, accel=args.accel,
                 kernel=args.kernel, patched_kernel=args.patched_kernel)
    with tb:
        guests = tb.up(specs, timeout=args.timeout)
        for g in guests:
            print(f"{g.name}: boot {g.boot_seconds:.1f}s  console "
                  f"{g.console_path}  agent socket {g.channel_path()}",
                  file=sys.stderr)
        if args.detach:
            tb.detach()
            print(tb.prefix)
            return 0
        print(f"testbed: {tb.prefix} up; `testbed.py watch --prefix "
              f"{tb.prefix}` to follow; Ctrl-C tears down", file=sys.stderr)
        while True:
            time.sleep(1)
            for g in guests:
                if not g.dom.isActive():
                    raise TestbedError(f"{g.name} stopped; console tail:\n"
                                       f"{g.console_tail()}")


def _cli_down(args):
    ensure_daemons()
    n = remove_run(connect(args.uri), args.prefix)
    print(f"testbed: removed {n} domain(s) of {args.prefix}")


def _cli_cleanup(args):
    ensure_daemons()
    removed = cleanup(connect(args.uri), everything=args.all)
    print(f"testbed: removed {len(removed)} run(s)"
          + (f": {' '.join(removed)}" if removed else ""))


def _cli_list(args):
    ensure_daemons()
    for dom, meta in testbed_domains(connect(args.uri), args.prefix):
        alive = owner_alive(meta.get("owner-pid"), meta.get("owner-start"))
        print(f"{dom.name()}  {'running' if dom.isActive() else 'off'}  "
              f"owner {meta.get('owner-pid')}"
              f"{'' if alive else ' (gone)'}  {meta.get('rundir')}")


def _cli_watch(args):
    conn = connect(args.uri)
    if args.once:
        print(watch_snapshot(conn, args.prefix))
        return 0
    try:
        while True:
            snap = watch_snapshot(conn, args.prefix)
            sys.stdout.write("\033[H\033[2J" + snap + "\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="testbed.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Boot small real guests under libvirt for memtide "
        "tests, demos and benchmarks, and tear them down again.",
        epilog="""examples:
  testbed.py up --count 3 --memory 512M --vmem-size 1G --vmem-requested 256M \\
      --workload 'ramp:0M-300M/20s,hold:30s,free,loop'
  P=$(testbed.py up --count 2 --detach); testbed.py watch --prefix $P
  testbed.py down --prefix $P
  testbed.py cleanup            # leftovers of crashed or detached runs

Guests are named mtb-<pid>-<random>-gN and carry an ownership record in
their libvirt metadata; down/cleanup only ever touch such domains. Run
files (kernel, initramfs, console logs, cache disks) live in
""" + RUN_ROOT + """/<prefix>/. See docs/testbed.md.""")
    p.add_argument("--uri", default=DEFAULT_URI, help="libvirt URI (default %(default)s)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    u = sub.add_parser(
        "up", help="start guests (foreground until Ctrl-C, or --detach)",
        description="Define and start guests, wait until each prints its "
        "ready marker, then stay in the foreground until Ctrl-C/SIGTERM and "
        "tear everything down (or --detach). Sizes take K, M, G (powers of "
        "1024); a bare number is MiB.")
    u.add_argument("--count", type=int, default=1, metavar="N",
                   help="number of guests (default 1)")
    u.add_argument("--memory", default="512M", metavar="SIZE",
                   help="boot memory per guest, the balloon's range (default 512M)")
    u.add_argument("--vcpus", type=int, default=1, metavar="N",
                   help="vCPUs per guest (default 1)")
    u.add_argument("--vmem-size", default=None, metavar="SIZE",
                   help="add a virtio-mem device of this size, e.g. 1G "
                   "(default: none)")
    u.add_argument("--vmem-block", default="2M", metavar="SIZE",
                   help="virtio-mem block size (default 2M)")
    u.add_argument("--vmem-requested", default="0", metavar="SIZE",
                   help="virtio-mem memory plugged at boot (default 0)")
    u.add_argument("--workload", action="append", metavar="SCHED",
                   help="memtide-workload schedule, e.g. "
                   "'ramp:0M-300M/20s,hold:30s,free,loop'; give it once for "
                   "all guests or once per guest ('none' for a guest without "
                   "one); grammar: memtide-workload --help")
    u.add_argument("--cache-disk", default="1G", metavar="SIZE",
                   help="each guest's ext4 disk for the workload's page cache "
                   "(default 1G, sparse; 0: none, the cache file then lives "
                   "in tmpfs and cannot be reclaimed)")
    u.add_argument("--swap", default="1G", metavar="SIZE",
                   help="each guest's swap disk (default 1G, sparse raw, "
                   "cache='none'; 0: no swap, the guest OOM-kills instead of "
                   "swapping)")
    u.add_argument("--workload-bin", default=None, metavar="PATH",
                   help="memtide-workload binary (default: $MEMTIDE_WORKLOAD, "
                   "else the newest build*/tests/workload/memtide-workload)")
    u.add_argument("--agent", default=None, metavar="PATH",
                   help="static memtide-agent binary to include and start in "
                   "each guest (default: $MEMTIDE_AGENT, else no agent)")
    u.add_argument("--workdir", default=None, metavar="DIR",
                   help="cache of built initramfs archives (default: "
                   f"$MEMTIDE_TESTBED_WORKDIR, else {DEFAULT_WORKDIR})")
    u.add_argument("--accel", choices=("tcg", "kvm", "auto"), default="tcg",
                   help="tcg (default); kvm: only after a probe guest boots "
                   "with it, else fail; auto: kvm if the probe works, else tcg")
    u.add_argument("--kernel", default=None, metavar="PATH",
                   help="guest kernel (default: newest "
                   "/boot/vmlinuz-*-cloud-amd64; its modules must be in "
                   "/lib/modules)")
    u.add_argument("--guest-kernel", choices=("stock", "patched"),
                   default="stock",
                   help="stock: Debian's cloud kernel (default); patched: the "
                   "memtide kernel of kernel-patches/ (everything built in)")
    u.add_argument("--patched-kernel", default=None, metavar="BZIMAGE",
                   help="the patched kernel (default: $MEMTIDE_PATCHED_KERNEL, "
                   "else what kernel-patches/build prints; it builds once "
                   "and caches)")
    u.add_argument("--cmdline", default=None, metavar="TEXT",
                   help="extra guest kernel command line, e.g. "
                   "memtide.workload_reserve=0M")
    u.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                   help="wait this long for the ready markers (default 120)")
    u.add_argument("--detach", action="store_true",
                   help="leave the guests running, print the prefix on "
                   "stdout and exit; remove them later with down or cleanup")
    u.set_defaults(func=_cli_up)

    d = sub.add_parser("down", help="remove one run's guests and files")
    d.add_argument("--prefix", required=True, help="the run's prefix (mtb-...)")
    d.set_defaults(func=_cli_down)

    c = sub.add_parser("cleanup", help="remove leftovers of earlier runs whose "
                       "process is gone (crashed or detached)")
    c.add_argument("--all", action="store_true",
                   help="also runs whose testbed process is still alive")
    c.set_defaults(func=_cli_cleanup)

    w = sub.add_parser("watch", help="live view of the testbed guests' memory")
    w.add_argument("--prefix", default=None, help="only this run")
    w.add_argument("--interval", type=float, default=1.0, help="refresh seconds")
    w.add_argument("--once", action="store_true", help="print one snapshot and exit")
    w.set_defaults(func=_cli_watch)

    ls = sub.add_parser("list", help="list testbed domains")
    ls.add_argument("--prefix", default=None, help="only this run")
    ls.set_defaults(func=_cli_list)

    args = p.parse_args(argv)
    try:
        return args.func(args) or 0
    except (TestbedError, PrerequisiteError, ValueError) as e:
        print(f"testbed: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
