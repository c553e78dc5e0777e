#!/usr/bin/python3
"""The Xen testbed: Debian's Xen 4.17 under QEMU TCG, the Debian generic
kernel as PV dom0 from a busybox initramfs that starts the toolstack, and
PV domUs that dom0 creates with `xl create` from files in its own archive.

    xenbed.py deps             install what it needs (apt-get, as root)
    xenbed.py build            build (or find cached) the dom0 initramfs
    xenbed.py smoke            boot, run the smoke scenario, shut down
    xenbed.py run --build DIR --scenario FILE
                               boot with memtide from a meson build dir in
                               dom0 and its domUs (memtidebed.py), run
                               FILE's scenario(bed), shut down

The host reads the first serial port (Xen's console, dom0's hvc0 and the
MEMTIDE-XEN-* markers) from a file and, when dom0 has it, talks to dom0
over the second serial port (one shell command a line, see dom0-init.sh).
Run QEMU under `flock /tmp/memtide-e2e.lock` like every e2e boot.
"""

import argparse
import glob
import gzip
import hashlib
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import initramfs  # noqa: E402  (the KVM testbed's cpio writer and checks)

XEN_VERSION = "4.17"
PACKAGES = ["xen-hypervisor-4.17-amd64", "xen-utils-4.17",
            "linux-image-amd64", "busybox-static", "qemu-system-x86", "kmod"]
XEN_GZ = "/boot/xen-4.17-amd64.gz"
TOOLS_DIR = "/usr/lib/xen-4.17/bin"
# xenconsole is what `xl console` runs.
TOOLS = ["xl", "xenstored", "xenconsoled", "xen-init-dom0", "xenconsole"]
XENSTORE_BIN = "/usr/bin/xenstore"  # multi-call, by argv[0]
XENSTORE_NAMES = ["xenstore-read", "xenstore-write", "xenstore-ls",
                  "xenstore-list", "xenstore-rm", "xenstore-exists",
                  "xenstore-watch", "xenstore-chmod"]
# What Debian's init script loads, plus gntalloc (libxengnttab's
# allocator) and privcmd (every libxenctrl call); xen-acpi-processor is
# of no use under QEMU.
DOM0_MODULES = ["xenfs", "xen-evtchn", "xen-gntdev", "xen-gntalloc",
                "xen-privcmd"]
LIBDIR = "lib/x86_64-linux-gnu"
DOMU_DIR = "var/lib/xenbed"
DOM0_INIT = os.path.join(HERE, "dom0-init.sh")
DOMU_INIT = os.path.join(HERE, "domu-init.sh")
SMOKE = os.path.join(HERE, "smoke.sh")
FORMAT_VERSION = "3"

DEFAULT_XEN_CMDLINE = ("console=com1 com1=115200,8n1 console_timestamps=boot "
                       "loglvl=all guest_loglvl=all")
MARK_RE = re.compile(r"^MEMTIDE-XEN-(\S+)(.*)$", re.M)


class XenbedError(RuntimeError):
    pass


def log(msg):
    print(f"xenbed: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- packages

def _vkey(p):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p)]


def find_generic_kernel():
    """(vmlinuz path, release) of the newest Debian generic kernel: the
    cloud flavour has no CONFIG_XEN_DOM0."""
    cands = [p for p in glob.glob("/boot/vmlinuz-*-amd64")
             if not p.endswith("-cloud-amd64")]
    if not cands:
        raise initramfs.PrerequisiteError(
            "no generic kernel /boot/vmlinuz-*-amd64 (Debian package "
            "linux-image-amd64; the cloud kernel cannot be dom0)")
    kernel = sorted(cands, key=_vkey)[-1]
    kver = os.path.basename(kernel)[len("vmlinuz-"):]
    if not os.path.isdir(f"/lib/modules/{kver}"):
        raise initramfs.PrerequisiteError(f"no /lib/modules/{kver}")
    cfg = f"/boot/config-{kver}"
    if os.path.isfile(cfg):
        with open(cfg) as f:
            if "CONFIG_XEN_DOM0=y" not in f.read():
                raise initramfs.PrerequisiteError(
                    f"{kernel} has no CONFIG_XEN_DOM0 ({cfg})")
    return kernel, kver


def missing_prerequisites():
    """Names of what is missing, with the package that brings it."""
    missing = []
    for path, pkg in ((XEN_GZ, "xen-hypervisor-4.17-amd64"),
                      (XENSTORE_BIN, "xenstore-utils")):
        if not os.path.isfile(path):
            missing.append(f"{path} ({pkg})")
    for t in TOOLS:
        if not os.path.isfile(os.path.join(TOOLS_DIR, t)):
            missing.append(f"{TOOLS_DIR}/{t} (xen-utils-4.17)")
    for cmd, pkg in (("qemu-system-x86_64", "qemu-system-x86"),
                     ("modprobe", "kmod"), ("depmod", "kmod"),
                     ("ldd", "libc-bin")):
        if not shutil.which(cmd):
            missing.append(f"{cmd} ({pkg})")
    for check in (find_generic_kernel, initramfs.find_busybox):
        try:
            check()
        except initramfs.PrerequisiteError as e:
            missing.append(str(e))
    return missing


def ensure_packages(install=True):
    """Installs the Debian packages when something is missing (root only);
    raises PrerequisiteError naming what is still missing."""
    missing = missing_prerequisites()
    if not missing:
        return
    if not install or os.geteuid() != 0:
        raise initramfs.PrerequisiteError(
            "missing: " + "; ".join(missing) + " (as root: xenbed.py deps, "
            "or apt-get install " + " ".join(PACKAGES) + ")")
    log("installing " + " ".join(PACKAGES))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + PACKAGES
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        if subprocess.run(cmd, env=env).returncode != 0:
            raise initramfs.PrerequisiteError("apt-get install failed: "
                                              + " ".join(PACKAGES))
    missing = missing_prerequisites()
    if missing:
        raise initramfs.PrerequisiteError(
            "still missing after apt-get install: " + "; ".join(missing))


# ---------------------------------------------------------------- images

def xen_image(workdir):
    """QEMU's multiboot loader takes no gzip: Xen unpacked, cached."""
    with open(XEN_GZ, "rb") as f:
        data = gzip.decompress(f.read())
    key = hashlib.sha256(data).hexdigest()[:16]
    out = os.path.join(workdir, f"xen-{XEN_VERSION}-{key}")
    if not os.path.isfile(out):
        tmp = f"{out}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    return out


def extract_vmlinux(bzimage):
    """The ELF kernel inside a bzImage. libxenguest would unpack the xz
    payload itself at every `xl create`, which costs seconds under TCG."""
    with open(bzimage, "rb") as f:
        data = f.read()
    if data[0x202:0x206] != b"HdrS":
        raise initramfs.PrerequisiteError(f"{bzimage} is not a bzImage")
    setup_sects = data[0x1f1] or 4
    off = (setup_sects + 1) * 512 + int.from_bytes(data[0x248:0x24c], "little")
    length = int.from_bytes(data[0x24c:0x250], "little")
    payload = data[off:off + length]
    if payload[:6] == b"\xfd7zXZ\x00":
        # The build appends the unpacked size after the stream.
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload[:2] == b"\x1f\x8b":
        out = gzip.GzipFile(fileobj=__import__("io").BytesIO(payload)).read()
    else:
        raise initramfs.PrerequisiteError(
            f"{bzimage}: payload is neither xz nor gzip")
    if out[:4] != b"\x7fELF":
        raise initramfs.PrerequisiteError(f"{bzimage}: payload is not ELF")
    return out


def shared_libraries(binaries):
    """{path in the archive: host path} of every library the binaries load,
    the dynamic loader, and libgcc_s.so.1, which glibc opens at run time
    for pthread_cancel (ldd does not list it; without it xl aborts after
    creating a domain)."""
    libs = {}
    for b in binaries:
        r = subprocess.run(["ldd", b], capture_output=True, text=True)
        if r.returncode != 0:
            raise initramfs.PrerequisiteError(f"ldd {b} failed: {r.stderr}")
        for line in r.stdout.splitlines():
            m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)", line)
            if not m:
                if "not found" in line:
                    raise initramfs.PrerequisiteError(f"{b}: {line.strip()}")
                continue
            path = m.group(1)
            name = os.path.basename(path)
            if name.startswith("ld-linux"):
                libs["lib64/" + name] = path
            else:
                libs[f"{LIBDIR}/{name}"] = path
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
        if os.path.isfile(f"{d}/libgcc_s.so.1"):
            libs[f"{LIBDIR}/libgcc_s.so.1"] = f"{d}/libgcc_s.so.1"
            break
    else:
        raise initramfs.PrerequisiteError("libgcc_s.so.1 not found (libgcc-s1)")
    return libs


def domu_cfg(name, memory_mib, maxmem_mib, vcpus=1, extra=""):
    """xl config of a PV domU booting the archive's kernel and initramfs.
    memhp_default_state=online: the balloon grows past boot memory by
    hotplug, and that memory must come online by itself."""
    return (f'name = "{name}"\n'
            'type = "pv"\n'
            f'kernel = "/{DOMU_DIR}/vmlinux"\n'
            f'ramdisk = "/{DOMU_DIR}/domu.cpio"\n'
            'extra = "console=hvc0 rdinit=/init memhp_default_state=online '
            f'loglevel=4 {extra}"\n'
            f"memory = {memory_mib}\n"
            f"maxmem = {maxmem_mib}\n"
            f"vcpus = {vcpus}\n"
            'on_poweroff = "destroy"\n'
            'on_reboot = "destroy"\n'
            'on_crash = "destroy"\n')


def _domu_archive(busybox, domu_files):
    c = initramfs._Cpio()
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp"):
        c.dir(d)
    dirs = {"bin", "sbin", "proc", "sys", "dev", "tmp"}
    for dst, src in sorted(domu_files.items()):
        if not initramfs._is_static_elf(src):
            raise initramfs.PrerequisiteError(
                f"{src}: a domU archive has no libraries, it must be static")
        parts = dst.split("/")[:-1]
        for i in range(len(parts)):
            d = "/".join(parts[:i + 1])
            if d not in dirs:
                c.dir(d)
                dirs.add(d)
        with open(src, "rb") as f:
            c.file(dst, f.read(), 0o755)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    c.symlink("bin/sh", "busybox")
    with open(DOMU_INIT, "rb") as f:
        c.file("init", f.read(), 0o755)
    # `xl shutdown` makes the kernel run /sbin/poweroff; busybox's would
    # signal init (a shell script here), so power off at once instead.
    c.file("sbin/poweroff", b"#!/bin/sh\nexec /bin/busybox poweroff -f\n",
           0o755)
    return c.finish()


def _add_modules(c, workdir, kver, dirs):
    """The dom0 modules with their dependencies, paths kept, and the
    modules.dep that depmod writes for them."""
    initramfs.add_modules(c, tempfile.mkdtemp(prefix="xenbed-mods-", dir=workdir), kver,
                          initramfs.module_files(kver, DOM0_MODULES), dirs)


def build_dom0(workdir, scenario=SMOKE, domus=None, extra_files=None,
               domu_files=None, extra_text=None):
    """Returns (dom0 initramfs path, kernel path, kernel release). domus:
    {name: xl config text}, written to /etc/xenbed/NAME.cfg; extra_files:
    {archive path: host path} (memtided, memtidectl...; the libraries of
    dynamic ELF files are added); extra_text: {archive path: text} (configs);
    domu_files: {path in the domU archive: host path} of static binaries
    (bin/memtide-agent...). Cached by the content of every input."""
    kernel, kver = find_generic_kernel()
    busybox = initramfs.find_busybox()
    if domus is None:
        domus = {"domu1": domu_cfg("xbd1", 256, 512)}
    extra_files = dict(extra_files or {})
    domu_files = dict(domu_files or {})
    extra_text = dict(extra_text or {})
    tools = [os.path.join(TOOLS_DIR, t) for t in TOOLS] + [XENSTORE_BIN]
    libs = shared_libraries(tools + [p for p in extra_files.values()
                                     if not initramfs._is_static_elf(p)
                                     and _is_elf(p)])
    mods = initramfs.module_files(kver, DOM0_MODULES)

    h = hashlib.sha256(FORMAT_VERSION.encode())
    h.update(kver.encode())
    inputs = ([DOM0_INIT, DOMU_INIT, busybox, kernel] + tools + mods
              + sorted(libs.values()) + ([scenario] if scenario else []))
    for p in inputs:
        initramfs._digest_file(h, p)
    for k in sorted(domus):
        h.update(f"{k}\0{domus[k]}\0".encode())
    for k in sorted(extra_files):
        h.update(k.encode() + b"\0")
        initramfs._digest_file(h, extra_files[k])
    for k in sorted(domu_files):
        h.update(b"domu\0" + k.encode() + b"\0")
        initramfs._digest_file(h, domu_files[k])
    for k in sorted(extra_text):
        h.update(f"text\0{k}\0{extra_text[k]}\0".encode())
    key = h.hexdigest()[:16]
    os.makedirs(workdir, exist_ok=True)
    out = os.path.join(workdir, f"dom0-{kver}-{key}.cpio")
    if os.path.isfile(out):
        os.utime(out)
        return out, kernel, kver

    c = initramfs._Cpio()
    dirs = set()

    def mkdirs(path):
        parts = path.split("/")
        for i in range(len(parts)):
            d = "/".join(parts[:i + 1])
            if d and d not in dirs:
                c.dir(d)
                dirs.add(d)

    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/xenbed", "proc",
              "sys", "dev", "tmp", "run", "var/log", "var/lib", "lib64",
              LIBDIR, f"lib/modules/{kver}", TOOLS_DIR.lstrip("/"),
              DOMU_DIR):
        mkdirs(d)
    c.symlink("var/run", "../run")
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    c.symlink("bin/sh", "busybox")
    with open(DOM0_INIT, "rb") as f:
        c.file("init", f.read(), 0o755)
    for t in tools:
        with open(t, "rb") as f:
            c.file(t.lstrip("/"), f.read(), 0o755)
    for n in XENSTORE_NAMES:
        c.symlink(f"usr/bin/{n}", "xenstore")
    for dst, src in sorted(libs.items()):
        with open(src, "rb") as f:  # follows the .so symlinks
            c.file(dst, f.read(), 0o755)
    _add_modules(c, workdir, kver, dirs)
    c.file("etc/xenbed/modules", ("\n".join(DOM0_MODULES) + "\n").encode())
    # xl reads it at every call (and complains without it). Ballooning
    # dom0 to make room for a domU is memtided's job, not xl's.
    mkdirs("etc/xen")
    c.file("etc/xen/xl.conf", b'autoballoon="off"\n')
    if scenario:
        with open(scenario, "rb") as f:
            c.file("etc/xenbed/scenario.sh", f.read(), 0o755)
    for name, text in sorted(domus.items()):
        c.file(f"etc/xenbed/{name}.cfg", text.encode())
    c.file(f"{DOMU_DIR}/vmlinux", extract_vmlinux(kernel))
    c.file(f"{DOMU_DIR}/domu.cpio", _domu_archive(busybox, domu_files))
    for dst, src in sorted(extra_files.items()):
        mkdirs(os.path.dirname(dst))
        with open(src, "rb") as f:
            c.file(dst, f.read(), os.stat(src).st_mode & 0o777)
    for dst, text in sorted(extra_text.items()):
        mkdirs(os.path.dirname(dst))
        c.file(dst, text.encode(), 0o644)

    initramfs.store_cached(c, out, os.path.join(workdir, "dom0-*.cpio"))
    return out, kernel, kver


def _is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


# ---------------------------------------------------------------- the run

class Xenbed:
    """One QEMU running Xen and dom0. Console: the first serial port, in
    rundir/console.log. Control: the second, a Unix socket."""

    def __init__(self, rundir, xen, kernel, dom0_cpio, memory_mib=3072,
                 dom0_mib=1024, smp=2, xen_cmdline=DEFAULT_XEN_CMDLINE,
                 dom0_cmdline="loglevel=5"):
        for p in (xen, kernel, dom0_cpio):
            if "," in p:
                raise XenbedError(f"{p}: QEMU's -initrd list cannot hold a comma")
        self.rundir = rundir
        self.console_path = os.path.join(rundir, "console.log")
        self.ctl_path = os.path.join(rundir, "control.sock")
        self.cmd = [
            "qemu-system-x86_64", "-machine", "pc", "-cpu", "qemu64",
            "-m", str(memory_mib), "-smp", str(smp),
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{self.console_path}",
            "-chardev", f"socket,id=ctl,path={self.ctl_path},server=on,wait=off",
            "-serial", "chardev:ctl",
            "-kernel", xen,
            "-append", f"{xen_cmdline} dom0_mem={dom0_mib}M,max:{dom0_mib}M "
                       f"dom0_max_vcpus={smp}",
            "-initrd", f"{kernel} console=hvc0 earlyprintk=xen rdinit=/init "
                       f"{dom0_cmdline},{dom0_cpio}",
        ]
        self.proc = None
        self.t0 = None
        self.seen = {}  # marker text -> host seconds since start
        self._ctl = None
        self._ctl_buf = b""
        self._seq = 0

    def start(self):
        log("starting: " + " ".join(self.cmd))
        self.t0 = time.monotonic()
        self.qemu_log = open(os.path.join(self.rundir, "qemu.log"), "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.qemu_log,
                                     stderr=subprocess.STDOUT)

    def elapsed(self):
        return time.monotonic() - self.t0

    def console(self):
        try:
            with open(self.console_path, "rb") as f:
                return f.read().decode("utf-8", "replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def tail(self, n=60):
        return "\n".join(self.console().splitlines()[-n:])

    def _note_markers(self, text):
        for m in MARK_RE.finditer(text):
            self.seen.setdefault(m.group(0).strip(), round(self.elapsed(), 1))

    def wait_for(self, regex, timeout, since=0):
        """The first match of regex in the console after offset since;
        raises with the console tail on timeout, QEMU's exit or an ERROR
        marker."""
        rx = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            text = self.console()
            self._note_markers(text)
            m = rx.search(text, since)
            if m:
                return m
            err = re.search(r"^MEMTIDE-XEN-ERROR.*$", text[since:], re.M)
            if err:
                raise XenbedError(f"{err.group(0)}\n--- console tail:\n"
                                  + self.tail())
            if self.proc.poll() is not None:
                raise XenbedError(
                    f"QEMU exited (status {self.proc.returncode}) before "
                    f"/{regex}/\n--- console tail:\n" + self.tail())
            if time.monotonic() > deadline:
                raise XenbedError(f"no /{regex}/ after {timeout} s\n"
                                  "--- console tail:\n" + self.tail())
            time.sleep(0.1)

    def _connect(self):
        if self._ctl is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.ctl_path)
            self._ctl = s
        return self._ctl

    def run(self, command, timeout=60, raw=False):
        """(exit status, output) of a shell command in dom0, over the
        control port (needs the CONTROL ttyS1 marker); output as bytes if
        raw, else text."""
        s = self._connect()
        self._seq += 1
        tag = f"c{self._seq}"
        s.sendall(f"{tag} {command}\n".encode())
        done = re.compile(rb"^MEMTIDE-XEN-DONE " + tag.encode()
                          + rb" rc=(\d+)\r?\n", re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = done.search(self._ctl_buf)
            if m:
                out = self._ctl_buf[:m.start()]
                # The match takes the DONE line's newline: a newline
                # arriving later would start the next command's output.
                self._ctl_buf = self._ctl_buf[m.end():]
                return int(m.group(1)), out if raw else out.decode("utf-8", "replace")
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise XenbedError(f"dom0 command {command!r}: no answer "
                                  f"within {timeout} s; got so far:\n"
                                  + self._ctl_buf.decode("utf-8", "replace"))
            s.settimeout(min(left, 1.0))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise XenbedError("control port closed")
            self._ctl_buf += chunk

    def stop(self, timeout=60):
        """Powers dom0 (and so Xen) off; kills QEMU if that does not end
        it in time. Returns seconds taken."""
        t = time.monotonic()
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        try:
            s = self._connect()
            s.sendall(b"off poweroff -f\n")
        except OSError:
            pass
        # Xen may halt rather than power the machine off ("Hardware Dom0
        # halted: halting machine"): QEMU then stays; kill it.
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            halted = re.search(r"Hardware Dom0 (halted|shutdown)",
                               self.console())
            if halted or time.monotonic() > deadline:
                log("Xen halted, QEMU still running: killing it" if halted
                    else f"QEMU still running {timeout} s after poweroff: "
                    "killing it")
                time.sleep(0.5 if halted else 0)
                self.proc.kill()
                self.proc.wait()
                break
            time.sleep(0.1)
        if self._ctl:
            self._ctl.close()
        self.qemu_log.close()
        return time.monotonic() - t


def _section(text, name):
    """Output between BEGIN name and END name markers (all of them)."""
    return re.findall(r"^MEMTIDE-XEN-BEGIN " + re.escape(name)
                      + r".*?\n(.*?)^MEMTIDE-XEN-END " + re.escape(name),
                      text, re.M | re.S)


def smoke(workdir, timeout, keep=False):
    """Boots Xen + dom0, runs smoke.sh (one PV domU: create, ready,
    balloon both ways, shutdown), checks the control port, powers off.
    Prints the timeline and FIGURE lines; returns 0 on success."""
    ensure_packages(install=False)
    xen = xen_image(workdir)
    t = time.monotonic()
    cpio, kernel, kver = build_dom0(workdir)
    log(f"dom0 initramfs {cpio} ({os.path.getsize(cpio) >> 20} MiB) in "
        f"{time.monotonic() - t:.1f} s; kernel {kernel}")
    rundir = tempfile.mkdtemp(prefix="run-", dir=workdir)
    bed = Xenbed(rundir, xen, kernel, cpio)
    ok = False
    t_ready = None
    try:
        bed.start()
        # console_timestamps puts "[ seconds ]" after "(XEN) ".
        bed.wait_for(r"Xen version 4\.", 60)
        ready = bed.wait_for(r"^MEMTIDE-XEN-READY.*$", timeout)
        t_ready = bed.elapsed()
        log(f"dom0 ready after {t_ready:.1f} s: {ready.group(0)}")
        end = bed.wait_for(r"^MEMTIDE-XEN-END scenario rc=(\d+).*$",
                           timeout, ready.end())
        ctl = bed.wait_for(r"^MEMTIDE-XEN-CONTROL (\S+).*$", 30, end.end())
        text = bed.console()
        lists = _section(text, "xl-list")
        print("--- xl info (dom0)")
        print("".join(_section(text, "xl-info")).rstrip())
        for i, lst in enumerate(lists):
            print(f"--- xl list #{i + 1}")
            print(lst.rstrip())
        print("--- domU console (head)")
        print("\n".join("".join(_section(text, "domu-console"))
                        .splitlines()[:60]))
        if ctl.group(1) == "ttyS1":
            rc, out = bed.run("xl list; xl info | grep -E 'free_memory|total_memory'", 60)
            print("--- over the control port: xl list; xl info | grep memory")
            print(out.rstrip())
            if rc != 0:
                raise XenbedError(f"xl list over the control port: rc={rc}")
        if end.group(1) != "0":
            raise XenbedError(f"scenario failed (rc={end.group(1)})\n"
                              + bed.tail())
        if len(lists) < 4 or "xbd1" not in lists[1]:
            raise XenbedError("xl list after the domU's ready marker does "
                              "not show xbd1")
        if len(lists[-1].strip().splitlines()) != 2:
            raise XenbedError("a domU is still listed after the shutdown:\n"
                              + lists[-1])
        ok = True
    except XenbedError as e:
        print(f"FAILED: {e}", file=sys.stderr)
    finally:
        off = bed.stop()
        print("--- timeline (host seconds since QEMU start: marker)")
        for mark, secs in sorted(bed.seen.items(), key=lambda kv: kv[1]):
            print(f"{secs:7.1f}  {mark}")
        if t_ready is not None:
            print(f"FIGURE xen-boot-to-dom0-ready-s {t_ready:.1f}")
        _figures(bed)
        print(f"FIGURE poweroff-s {off:.1f}")
        print(f"FIGURE total-s {bed.elapsed():.1f}")
        if keep or not ok:
            print(f"run directory kept: {rundir}")
        else:
            shutil.rmtree(rundir, ignore_errors=True)
    return 0 if ok else 1


def _uptime(bed, step):
    for mark in bed.seen:
        if mark.startswith(f"MEMTIDE-XEN-STEP {step} "):
            m = re.search(r"uptime=([\d.]+)\s*$", mark)
            if m:
                return float(m.group(1))
    return None


def _figures(bed):
    """Durations measured inside dom0 (its uptime), so TCG's host noise
    between the console file and this script does not count."""
    pairs = (("domu-create-to-ready-s", "domu-create", "domu-ready"),
             ("xl-create-s", "domu-create", "domu-created"),
             ("balloon-grow-seen-s", "mem-set-384", "mem-set-384-seen"),
             ("balloon-shrink-seen-s", "mem-set-192", "mem-set-192-seen"),
             ("domu-shutdown-s", "domu-shutdown", "domu-shut-down"),
             ("domu-shutdown-to-gone-s", "domu-shutdown", "domu-gone"))
    for name, a, b in pairs:
        ta, tb = _uptime(bed, a), _uptime(bed, b)
        if ta is not None and tb is not None:
            print(f"FIGURE {name} {tb - ta:.1f}")
    t = _uptime(bed, "init")
    if t is not None:
        print(f"FIGURE dom0-uptime-at-init-s {t:.1f}")


def run_scenario(workdir, build_dir, path, memory_mib, keep):
    """xenbed.py run: boots with memtide inside and calls scenario(bed)
    from the file; 0 when it returns 0 (or None)."""
    import importlib.util
    # memtidebed imports this file as `xenbed`: one module, one XenbedError.
    sys.modules.setdefault("xenbed", sys.modules[__name__])
    import memtidebed
    spec = importlib.util.spec_from_file_location("xen_scenario", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = time.monotonic()
    rc = 1
    bed = memtidebed.MemtideXen(build_dir, workdir, memory_mib=memory_mib, keep=keep)
    try:
        bed.start()
        log(f"dom0 ready after {bed.t_ready:.1f} s; running {path}")
        rc = mod.scenario(bed) or 0
        bed.ok = rc == 0
    except XenbedError as e:
        print(f"FAILED: {e}", file=sys.stderr)
    finally:
        bed.stop(failed=rc != 0)
        print(f"FIGURE total-s {time.monotonic() - t:.1f}")
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=os.environ.get(
        "MEMTIDE_XENBED_WORKDIR",
        os.path.join(HERE, "..", "..", "..", ".testbed", "xen")))
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("deps", help="install the Debian packages (root)")
    sub.add_parser("build", help="build the dom0 initramfs, print its path")
    sp = sub.add_parser("smoke", help="boot, one PV domU, power off")
    sp.add_argument("--timeout", type=float, default=600,
                    help="seconds for each phase (default 600)")
    sp.add_argument("--keep", action="store_true",
                    help="keep the run directory (console log)")
    rp = sub.add_parser("run", help="boot with memtide inside, run a scenario")
    rp.add_argument("--build", required=True,
                    help="meson build directory (memtided, memtidectl, agent, workload)")
    rp.add_argument("--scenario", required=True,
                    help="Python file defining scenario(bed) -> exit status; "
                         "bed is a memtidebed.MemtideXen")
    rp.add_argument("--memory", type=int, default=4096,
                    help="MiB of the QEMU machine (default 4096; dom0 has 1024)")
    rp.add_argument("--keep", action="store_true",
                    help="keep the run directory (console, memtided and domU logs)")
    a = ap.parse_args()
    workdir = os.path.abspath(a.workdir)
    try:
        if a.what == "deps":
            ensure_packages(install=True)
            print("all there")
            return 0
        if a.what == "build":
            ensure_packages(install=False)
            os.makedirs(workdir, exist_ok=True)
            print(xen_image(workdir))
            print(build_dom0(workdir)[0])
            return 0
        os.makedirs(workdir, exist_ok=True)
        if a.what == "run":
            return run_scenario(workdir, a.build, a.scenario, a.memory, a.keep)
        return smoke(workdir, a.timeout, a.keep)
    except initramfs.PrerequisiteError as e:
        print(f"xenbed: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
