"""Builds the testbed guests' initramfs: busybox, the guest kernel's virtio
modules, /init, memtide-workload and optionally memtide-agent.

The cpio archive is written by this module (newc format, uncompressed:
under TCG decompressing costs more boot time than reading a few MB), with
every file owned by root, so no cpio binary or fakeroot is needed. Built
archives are cached under the work directory, keyed by the content of all
inputs, so repeated runs reuse them.
"""

import glob
import hashlib
import io
import lzma
import os
import re
import shutil
import stat
import subprocess
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
INIT_SCRIPT = os.path.join(HERE, "init.sh")
# /bin/memtide-hostile: the fault suite's hostile agent (memtide.hostile=...).
HOSTILE_SCRIPT = os.path.join(HERE, "hostile.sh")

# Guest drivers the testbed needs. virtio_blk carries the optional
# page-cache disk; the others are the devices memtide drives.
GUEST_MODULES = ["virtio_pci", "virtio_balloon", "virtio_mem",
                 "virtio_console", "virtio_blk"]

# Bump when the layout of the archive changes, to invalidate caches.
FORMAT_VERSION = "1"


class PrerequisiteError(RuntimeError):
    """Something the testbed needs is not installed; says what and where
    it comes from."""


def find_kernel(kernel=None):
    """Returns (kernel image path, kernel version). Default: the newest
    Debian cloud kernel in /boot."""
    if kernel is None:
        cands = glob.glob("/boot/vmlinuz-*-cloud-amd64")
        if not cands:
            raise PrerequisiteError(
                "no guest kernel: /boot/vmlinuz-*-cloud-amd64 not found "
                "(Debian package linux-image-cloud-amd64)")

        def vkey(p):
            return [int(x) if x.isdigit() else x
                    for x in re.split(r"(\d+)", p)]
        kernel = sorted(cands, key=vkey)[-1]
    if not os.path.isfile(kernel):
        raise PrerequisiteError(f"guest kernel {kernel} does not exist")
    m = re.match(r"vmlinuz-(.+)$", os.path.basename(kernel))
    if not m:
        raise PrerequisiteError(
            f"cannot tell the kernel version from the name {kernel} "
            "(expected vmlinuz-VERSION)")
    kver = m.group(1)
    if not os.path.isdir(f"/lib/modules/{kver}"):
        raise PrerequisiteError(
            f"no modules for guest kernel {kver} in /lib/modules/{kver} "
            "(Debian package linux-image-cloud-amd64)")
    return kernel, kver


def bzimage_version(path):
    """The release (uname -r) a bzImage was built as, from its setup header
    (x86 boot protocol: kernel_version at 0x20e points at the string,
    relative to 0x200); the patched kernel is not named vmlinuz-VERSION."""
    try:
        with open(path, "rb") as f:
            hdr = f.read(0x210)
            if len(hdr) < 0x210 or hdr[0x202:0x206] != b"HdrS":
                raise PrerequisiteError(f"{path} is not an x86 bzImage")
            f.seek(0x200 + int.from_bytes(hdr[0x20e:0x210], "little"))
            text = f.read(256).split(b"\0")[0].decode("ascii", "replace")
    except OSError as e:
        raise PrerequisiteError(f"cannot read kernel {path}: {e}") from e
    if not text.split():
        raise PrerequisiteError(f"{path} has no kernel version string")
    return text.split()[0]


def _is_static_elf(path):
    """True if the ELF file has no program interpreter (PT_INTERP), i.e.
    runs without a dynamic loader and libc in the guest."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:  # 64-bit only
            return False
        phoff = int.from_bytes(hdr[32:40], "little")
        phentsize = int.from_bytes(hdr[54:56], "little")
        phnum = int.from_bytes(hdr[56:58], "little")
        f.seek(phoff)
        for _ in range(phnum):
            ph = f.read(phentsize)
            if int.from_bytes(ph[0:4], "little") == 3:  # PT_INTERP
                return False
    return True


def find_busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(p) and _is_static_elf(p):
            return p
    raise PrerequisiteError(
        "no static busybox at /bin/busybox (Debian package busybox-static)")


def module_files(kver, modules=None):
    """The .ko files (with dependencies, in load order) for modules
    (default GUEST_MODULES), as `modprobe --show-depends` reports them for
    kver. The Xen testbed asks for its dom0 modules."""
    modules = GUEST_MODULES if modules is None else modules
    if not shutil.which("modprobe"):
        raise PrerequisiteError("modprobe not found (Debian package kmod)")
    # -a: several module names (without it, the rest would be taken as
    # module parameters of the first).
    r = subprocess.run(["modprobe", "-S", kver, "-a", "--show-depends"]
                       + modules, capture_output=True, text=True)
    if r.returncode != 0:
        raise PrerequisiteError(
            f"modprobe --show-depends for {kver} failed: {r.stderr.strip()}")
    files = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "insmod" and parts[1] not in files:
            files.append(parts[1])
        elif parts and parts[0] == "builtin":
            continue
    if not files:
        raise PrerequisiteError(f"no modules found for {modules} in {kver}")
    return files


def _digest_file(h, path):
    h.update(path.encode() + b"\0")
    with open(path, "rb") as f:
        h.update(hashlib.sha256(f.read()).digest())


class _Cpio:
    """Minimal writer of the "newc" cpio format the kernel unpacks."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0,
            len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self):
        self._entry("TRAILER!!!", 0)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def _read_module(path):
    """Module bytes, decompressed if the distribution compresses them
    (busybox modprobe may not handle .ko.xz / .ko.zst)."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], check=True,
                              capture_output=True).stdout
    return data


def build(workdir, workload, agent=None, kernel=None):
    """Returns (initramfs path, kernel path, kernel version), building the
    archive unless an identical one is cached under workdir."""
    kernel, kver = find_kernel(kernel)
    busybox = find_busybox()
    if not workload or not os.path.isfile(workload):
        raise PrerequisiteError(
            f"memtide-workload binary not found at {workload!r} (build it: "
            "ninja -C BUILD tests/workload/memtide-workload; pass its path "
            "or set MEMTIDE_WORKLOAD)")
    if agent and not os.path.isfile(agent):
        raise PrerequisiteError(f"memtide-agent binary not found at {agent!r}")
    # The guest has no libc or loader: a dynamic binary would not start.
    for what, path in (("memtide-workload", workload), ("memtide-agent", agent)):
        if path and not _is_static_elf(path):
            raise PrerequisiteError(
                f"{what} at {path} is not a static executable; the guest "
                "initramfs has no libc (build it with -static; for the agent "
                "-Dagent_static=true and no b_sanitize)")
    mods = module_files(kver)

    h = hashlib.sha256(FORMAT_VERSION.encode())
    h.update(kver.encode())
    for p in [INIT_SCRIPT, HOSTILE_SCRIPT, busybox, workload] + mods + ([agent] if agent else []):
        _digest_file(h, p)
    h.update(b"agent" if agent else b"noagent")
    key = h.hexdigest()[:16]

    os.makedirs(workdir, exist_ok=True)
    out = os.path.join(workdir, f"initramfs-{kver}-{key}.cpio")
    if os.path.isfile(out):
        os.utime(out)  # mark as recently used for the stale sweep
        return out, kernel, kver

    c = _Cpio()
    for d in ("bin", "sbin", "etc", "etc/memtide", "proc", "sys", "dev",
              "tmp", "run", "mnt", "lib", "lib/modules", f"lib/modules/{kver}"):
        c.dir(d)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    # /init's "#!/bin/sh" must resolve before busybox --install runs.
    c.symlink("bin/sh", "busybox")
    with open(INIT_SCRIPT, "rb") as f:
        c.file("init", f.read(), 0o755)
    with open(HOSTILE_SCRIPT, "rb") as f:
        c.file("bin/memtide-hostile", f.read(), 0o755)
    with open(workload, "rb") as f:
        c.file("bin/memtide-workload", f.read(), 0o755)
    if agent:
        with open(agent, "rb") as f:
            c.file("bin/memtide-agent", f.read(), 0o755)

    add_modules(c, os.path.join(workdir, f"stage-{key}-{os.getpid()}"), kver, mods,
                {"lib", "lib/modules", f"lib/modules/{kver}"})
    c.file("etc/memtide/modules", ("\n".join(GUEST_MODULES) + "\n").encode())

    store_cached(c, out, os.path.join(workdir, "initramfs-*.cpio"))
    return out, kernel, kver


def store_cached(c, out, pattern):
    """Writes archive c to out, then drops the other archives matching
    pattern that were not used for an hour."""
    tmp = f"{out}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(c.finish())
    os.replace(tmp, out)  # atomic: a concurrent run sees all or nothing
    # Keep the cache small (runs copy the archive into their run
    # directory, so this never breaks one).
    for old in glob.glob(pattern):
        try:
            if old != out and time.time() - os.path.getmtime(old) > 3600:
                os.unlink(old)
        except OSError:
            pass


def add_modules(c, stage, kver, files, made):
    """Adds the module files (module_files()) to the cpio writer c with
    their paths under /lib/modules/KVER kept, and the modules.dep that
    depmod, run on a staging tree at stage (removed after), writes for
    them, which busybox modprobe reads. made: the directories already in
    the archive; the ones added go in too."""
    try:
        for m in files:
            rel = os.path.relpath(m, "/")
            rel = re.sub(r"\.ko\.(xz|gz|zst)$", ".ko", rel)
            dst = os.path.join(stage, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            data = _read_module(m)
            with open(dst, "wb") as f:
                f.write(data)
            parts = os.path.dirname(rel).split("/")
            for i in range(len(parts)):
                d = "/".join(parts[:i + 1])
                if d not in made:
                    c.dir(d)
                    made.add(d)
            c.file(rel, data)
        for extra in ("modules.order", "modules.builtin",
                      "modules.builtin.modinfo"):
            src = f"/lib/modules/{kver}/{extra}"
            if os.path.isfile(src):
                os.makedirs(os.path.join(stage, "lib/modules", kver), exist_ok=True)
                shutil.copy(src, os.path.join(stage, "lib/modules", kver, extra))
        r = subprocess.run(["depmod", "-b", stage, kver],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise PrerequisiteError(f"depmod -b {stage} {kver} failed: {r.stderr}")
        moddir = os.path.join(stage, "lib/modules", kver)
        for name in sorted(os.listdir(moddir)):
            p = os.path.join(moddir, name)
            if name.startswith("modules.") and os.path.isfile(p):
                with open(p, "rb") as f:
                    c.file(f"lib/modules/{kver}/{name}", f.read())
    finally:
        shutil.rmtree(stage, ignore_errors=True)
