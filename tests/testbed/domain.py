"""What a testbed guest is in libvirt: its spec, its domain XML, the
ownership record in its metadata, and removing runs (ours only)."""

import dataclasses
import glob
import json
import os
import shutil
import threading
import xml.etree.ElementTree as ET

from tbcommon import (AGENT_PORT, CACHE_DISK_SERIAL, GiB, META_KEY, META_NS,
                      MiB, NAME_MARKER, RUN_ROOT, SWAP_DISK_SERIAL,
                      TestbedError, libvirt, log)


@dataclasses.dataclass
class GuestSpec:
    """What one guest looks like. Sizes in KiB (libvirt's unit)."""
    memory_kib: int = 512 * MiB          # boot memory (balloon-able)
    vcpus: int = 1
    vmem_size_kib: int = 0               # 0: no virtio-mem device
    vmem_block_kib: int = 2 * MiB
    vmem_requested_kib: int = 0
    workload: str | None = None          # memtide-workload schedule
    cache_disk_kib: int = 1 * GiB        # ext4 disk for page cache; 0: tmpfs
    # Swap disk, as overcommitted production guests (and the simulator's)
    # have: a burst the host has not granted yet swaps instead of
    # OOM-killing. Sparse, so unused swap costs nothing. 0: no swap.
    swap_kib: int = 1 * GiB
    agent: bool = True                   # start memtide-agent if included
    extra_cmdline: str = ""
    tb_cache_mib: int = 16               # TCG translation cache (TCG only)
    free_page_reporting: bool = True     # libvirt's default is off
    # "stock": Debian's cloud kernel (modules from the initramfs);
    # "patched": kernel-patches/'s build, everything built in.
    kernel: str = "stock"
    # What a guest reboot or a reset (virsh reset) does: "destroy" stops
    # the domain (a panicking guest must not loop); "restart" boots it
    # again in the same QEMU process, its console log going on.
    on_reboot: str = "destroy"


def proc_starttime(pid):
    """Process start time (clock ticks since boot): with the pid it
    identifies a process even when pids are reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_alive(pid, start):
    try:
        pid, start = int(pid), int(start)
    except (TypeError, ValueError):  # "detached", missing, garbage
        return False
    return proc_starttime(pid) == start


def domain_xml(name, spec, kernel, initrd, console, cmdline, disk, accel,
               meta, swap=None):
    """The libvirt domain XML for one guest. disk: the page-cache disk
    image, swap: the swap disk image (None: no such disk)."""
    vmem = spec.vmem_size_kib > 0
    boot = spec.memory_kib
    lines = [f"<domain type='{'kvm' if accel == 'kvm' else 'qemu'}'>",
             f"  <name>{name}</name>",
             "  <metadata>",
             f"    <tb:{META_KEY} xmlns:tb='{META_NS}'"
             + "".join(f" {k}='{v}'" for k, v in meta.items()) + "/>",
             "  </metadata>"]
    if vmem:
        # virtio-mem lives in the device memory region above boot memory,
        # which QEMU sizes from maxMemory; it needs no DIMM slot of its own.
        lines.append(f"  <maxMemory slots='2' unit='KiB'>"
                     f"{boot + spec.vmem_size_kib}</maxMemory>")
    lines += [f"  <memory unit='KiB'>{boot + spec.vmem_size_kib}</memory>",
              f"  <currentMemory unit='KiB'>{boot + spec.vmem_requested_kib}"
              "</currentMemory>",
              f"  <vcpu>{spec.vcpus}</vcpu>",
              "  <os>",
              "    <type arch='x86_64' machine='pc'>hvm</type>",
              f"    <kernel>{kernel}</kernel>",
              f"    <initrd>{initrd}</initrd>",
              f"    <cmdline>{cmdline}</cmdline>",
              "  </os>",
              "  <features><acpi/><apic/>"
              # TCG's translation cache defaults to 1 GiB and counts in
              # QEMU's RSS as it fills; a small one keeps host RSS close
              # to what the guest really uses.
              + ("" if accel == "kvm" else
                 f"<tcg><tb-cache unit='MiB'>{spec.tb_cache_mib}</tb-cache></tcg>")
              + "</features>"]
    if vmem:
        # Memory devices need a NUMA node to attach to.
        lines.append(f"  <cpu><numa><cell id='0' cpus='0-{spec.vcpus - 1}' "
                     f"memory='{boot}' unit='KiB'/></numa></cpu>")
    lines += ["  <clock offset='utc'/>",
              # A guest that panics (panic=-1 reboots) stops instead of
              # looping; tests then see it stopped with the console tail
              # (unless its spec asks for on_reboot restart).
              "  <on_poweroff>destroy</on_poweroff>",
              f"  <on_reboot>{spec.on_reboot}</on_reboot>",
              "  <on_crash>destroy</on_crash>",
              "  <devices>",
              "    <emulator>/usr/bin/qemu-system-x86_64</emulator>",
              # append: a domain started again (destroy + create) goes on
              # in the same log instead of truncating it under a reader.
              f"    <serial type='file'><source path='{console}' append='on'/>"
              "<target port='0'/></serial>",
              "    <console type='file'>"
              f"<source path='{console}' append='on'/><target type='serial' port='0'/>"
              "</console>",
              # No path: libvirt picks one under /run/libvirt/qemu/channel;
              # the daemon (and tests) read it from the live XML.
              "    <channel type='unix'><source mode='bind'/>"
              f"<target type='virtio' name='{AGENT_PORT}'/></channel>",
              "    <memballoon model='virtio' freePageReporting="
              f"'{'on' if spec.free_page_reporting else 'off'}'>"
              "<stats period='2'/></memballoon>",
              "    <controller type='usb' model='none'/>"]
    if disk:
        # cache='unsafe': a scratch disk, flushes only cost time.
        lines.append("    <disk type='file' device='disk'>"
                     "<driver name='qemu' type='raw' cache='unsafe'/>"
                     f"<source file='{disk}'/><target dev='vda' bus='virtio'/>"
                     f"<serial>{CACHE_DISK_SERIAL}</serial></disk>")
    if swap:
        # cache='none' (O_DIRECT): swapped-out guest pages go to the disk,
        # not into the host's page cache, where they would leave QEMU's RSS
        # and still take host memory. The run directory must be on a
        # filesystem with O_DIRECT (ext4, xfs; not tmpfs): the testbed
        # checks that before it defines the guest.
        lines.append("    <disk type='file' device='disk'>"
                     "<driver name='qemu' type='raw' cache='none'/>"
                     f"<source file='{swap}'/><target dev='vdb' bus='virtio'/>"
                     f"<serial>{SWAP_DISK_SERIAL}</serial></disk>")
    if vmem:
        lines += ["    <memory model='virtio-mem'>",
                  "      <target>",
                  f"        <size unit='KiB'>{spec.vmem_size_kib}</size>",
                  "        <node>0</node>",
                  f"        <block unit='KiB'>{spec.vmem_block_kib}</block>",
                  f"        <requested unit='KiB'>{spec.vmem_requested_kib}"
                  "</requested>",
                  "      </target>",
                  "    </memory>"]
    lines += ["  </devices>", "</domain>"]
    return "\n".join(lines) + "\n"


def meta_of(dom):
    """The testbed ownership record of a domain, or None if it has none
    (then the domain is not ours, whatever its name)."""
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, META_NS, 0)
    except libvirt.libvirtError:
        return None
    try:
        return dict(ET.fromstring(xml).attrib)
    except ET.ParseError:
        return None


def console_of(dom):
    root = ET.fromstring(dom.XMLDesc(0))
    src = root.find("./devices/serial/source")
    return None if src is None else src.get("path")


def remove_domains(doms):
    """Removes several domains in parallel: libvirt's destroy waits ~1.5 s
    for each QEMU process to exit, and the calls release the GIL."""
    doms = list(doms)
    threads = [threading.Thread(target=remove_domain, args=(d,)) for d in doms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def remove_domain(dom):
    """Destroys (if running) and undefines one domain."""
    name = dom.name()
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as e:
        if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            log(f"destroy {name}: {e}")
    try:
        dom.undefineFlags(0)
    except libvirt.libvirtError as e:
        if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            log(f"undefine {name}: {e}")


def testbed_domains(conn, prefix=None):
    """(domain, metadata) for every domain carrying the testbed record
    (optionally only one run's)."""
    out = []
    for dom in conn.listAllDomains(0):
        if not dom.name().startswith(NAME_MARKER):
            continue
        meta = meta_of(dom)
        if meta is None:
            continue  # a name alike is not enough: not ours
        if prefix and meta.get("prefix") != prefix:
            continue
        out.append((dom, meta))
    return out


def remove_run(conn, prefix, run_root=RUN_ROOT):
    """Removes one run's domains and run directory. Returns the number of
    domains removed."""
    if not prefix.startswith(NAME_MARKER) or "/" in prefix:
        raise TestbedError(f"{prefix!r} is not a testbed prefix")
    doms = [dom for dom, _ in testbed_domains(conn, prefix)]
    remove_domains(doms)
    n = len(doms)
    shutil.rmtree(os.path.join(run_root, prefix), ignore_errors=True)
    return n


def cleanup(conn, everything=False, run_root=RUN_ROOT):
    """Removes leftovers of earlier runs: those whose owner process is
    gone (crashed, killed, or detached), or all runs with everything=True.
    Returns the prefixes removed."""
    prefixes = {}
    for dom, meta in testbed_domains(conn):
        p = meta.get("prefix")
        alive = owner_alive(meta.get("owner-pid"), meta.get("owner-start"))
        prefixes[p] = prefixes.get(p, False) or alive
    for d in glob.glob(os.path.join(run_root, NAME_MARKER + "*")):
        p = os.path.basename(d)
        try:
            with open(os.path.join(d, "run.json")) as f:
                man = json.load(f)
            alive = owner_alive(man.get("owner_pid"), man.get("owner_start"))
        except (OSError, ValueError):
            alive = False
        prefixes[p] = prefixes.get(p, False) or alive
    removed = []
    for p, alive in sorted(prefixes.items()):
        if alive and not everything:
            log(f"keeping {p}: its testbed process is still running "
                "(use --all to remove it anyway)")
            continue
        remove_run(conn, p, run_root)
        removed.append(p)
    return removed
