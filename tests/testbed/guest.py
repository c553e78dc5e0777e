"""A running testbed guest: its console (the guest's own view of its
memory) and the libvirt knobs and views tests use."""

import dataclasses
import re
import threading
import time
import xml.etree.ElementTree as ET

from tbcommon import (AGENT_PORT, BLOCK_RE, BLOCKS_RE, MEMINFO_RE,
                      REPORTING_RE, WORKLOAD_RE, TestbedError, libvirt,
                      to_kib)


@dataclasses.dataclass
class MemInfo:
    total_kib: int
    available_kib: int
    free_kib: int
    pos: int                             # console offset of the line
    swap_used_kib: int = 0               # guest swap in use (0: none or no swap)


@dataclasses.dataclass
class VirtioMem:
    size_kib: int
    block_kib: int
    requested_kib: int
    current_kib: int                     # plugged, as QEMU reports it


@dataclasses.dataclass
class Reporting:
    """One MEMTIDE-REPORTING line (memtide.mm_stat, patched kernel)."""
    uptime: float
    reported: int                        # bytes reported now
    total: int                           # bytes reported in all
    reused: int                          # reported bytes allocated again
    passes: int
    exhausted: int                       # passes that ran out of budget
    delay_ms: int
    divisor: int
    pos: int                             # console offset of the line


@dataclasses.dataclass
class BlockUsage:
    """One online memory block of a MEMTIDE-BLOCKS line, in pages."""
    zone: str                            # valid_zones' first word
    vmem: bool                           # inside a virtio-mem range
    free: int
    movable: int
    unmovable: int
    pinned: int
    offline: int

    @property
    def pages(self):
        return (self.free + self.movable + self.unmovable + self.pinned
                + self.offline)

    @property
    def kernel_zone(self):
        return self.zone != "Movable"


@dataclasses.dataclass
class Blocks:
    """One MEMTIDE-BLOCKS line: every online block, by block number."""
    uptime: float
    blocks: dict                         # int -> BlockUsage
    pos: int


class Guest:
    """One running testbed guest and the helpers tests need."""

    def __init__(self, testbed, index, name, spec, dom, console_path):
        self.testbed = testbed
        self.index = index
        self.name = name
        self.spec = spec
        self.dom = dom
        self.console_path = console_path
        self.t_define = None      # monotonic time of defineXML
        self.t_ready = None
        self.ready_line = None
        self._raw_off = 0
        self._text = ""
        # Tests may follow one guest from several threads.
        self._console_lock = threading.Lock()

    def __repr__(self):
        return f"<Guest {self.name}>"

    @property
    def boot_seconds(self):
        """Define to ready marker, seconds."""
        if self.t_ready is None:
            return None
        return self.t_ready - self.t_define

    # -- console
    def console(self):
        """Console text so far (CRs removed)."""
        with self._console_lock:
            return self._console_locked()

    def _console_locked(self):
        try:
            with open(self.console_path, "rb") as f:
                f.seek(self._raw_off)
                data = f.read()
        except FileNotFoundError:
            data = b""
        # Cut at the last newline so a line is never seen half-written.
        cut = data.rfind(b"\n") + 1
        if cut:
            self._raw_off += cut
            self._text += data[:cut].decode("utf-8", "replace").replace("\r", "")
        return self._text

    def console_mark(self):
        """Position to pass as since= to only see later console output."""
        return len(self.console())

    def console_tail(self, lines=25):
        return "\n".join(self.console().splitlines()[-lines:])

    def wait_console(self, pattern, timeout=60.0, since=0):
        """Waits until a console line after position since matches the
        regex pattern (multiline: ^ and $ match at line ends). Returns the
        match; raises TestbedError with the console tail on timeout or if
        the guest stops."""
        rx = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.console(), since)
            if m:
                return m
            if not self.dom.isActive():
                raise TestbedError(
                    f"{self.name} stopped while waiting for /{rx.pattern}/; "
                    f"console tail:\n{self.console_tail()}")
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"{self.name}: no console line matching /{rx.pattern}/ "
                    f"within {timeout:.0f}s; console tail:\n{self.console_tail()}")
            time.sleep(0.05)

    def meminfo(self, since=0):
        """Latest MEMTIDE-MEMINFO line (after since), or None."""
        text = self.console()
        # Search backwards: consoles of long benchmark runs get large.
        end = len(text)
        last = None
        while last is None:
            i = text.rfind("MEMTIDE-MEMINFO ", since, end)
            if i < 0:
                return None
            last = MEMINFO_RE.match(text, i)
            end = i
        return MemInfo(int(last.group(1)), int(last.group(2)),
                       int(last.group(3)), last.start(), int(last.group(4) or 0))

    def wait_meminfo(self, pred, timeout=60.0, since=None, what="condition"):
        """Waits for a MEMTIDE-MEMINFO line printed after since (default:
        now) for which pred(MemInfo) is true; returns it. On timeout the
        error shows the last value seen."""
        pos = self.console_mark() if since is None else since
        deadline = time.monotonic() + timeout
        last = None
        while True:
            text = self.console()
            for m in MEMINFO_RE.finditer(text, pos):
                last = MemInfo(int(m.group(1)), int(m.group(2)),
                               int(m.group(3)), m.start(), int(m.group(4) or 0))
                pos = m.end()
                if pred(last):
                    return last
            if not self.dom.isActive():
                raise TestbedError(f"{self.name} stopped; console tail:\n"
                                   f"{self.console_tail()}")
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"{self.name}: guest meminfo never met {what} within "
                    f"{timeout:.0f}s; last seen {last}")
            time.sleep(0.1)

    def reporting(self, since=0):
        """MEMTIDE-REPORTING lines printed after console offset since."""
        return [Reporting(float(m.group(1)), *(int(x) for x in m.groups()[1:]),
                          m.start())
                for m in REPORTING_RE.finditer(self.console(), since)]

    def blocks(self, since=0):
        """MEMTIDE-BLOCKS lines printed after console offset since."""
        out = []
        for m in BLOCKS_RE.finditer(self.console(), since):
            blk = {}
            for tok in m.group(2).split():
                b = BLOCK_RE.match(tok)
                if b:
                    n = [int(x) for x in b.groups()[3:]]
                    blk[int(b.group(1))] = BlockUsage(
                        b.group(2), b.group(3) == "vmem", *n)
            out.append(Blocks(float(m.group(1)), blk, m.start()))
        return out

    def workload_progress(self):
        """Latest workload progress (t, anon MiB, cache MiB, step) or None."""
        last = None
        for last in WORKLOAD_RE.finditer(self.console()):
            pass
        if not last:
            return None
        return (float(last.group(1)), int(last.group(2)),
                int(last.group(3)), last.group(4))

    # -- libvirt views and knobs
    def live_xml(self):
        return ET.fromstring(self.dom.XMLDesc(0))

    def balloon_stats(self):
        """dom.memoryStats(): actual, unused, available, usable, rss, ...
        (KiB). The guest fills in unused/available every stats period."""
        return self.dom.memoryStats()

    def set_balloon(self, kib):
        """Sets the balloon target: the guest keeps kib of its boot memory
        (virtio-mem memory is not affected)."""
        self.dom.setMemoryFlags(int(kib), libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def current_memory_kib(self):
        """libvirt's live <currentMemory> (boot memory minus balloon, plus
        plugged virtio-mem memory)."""
        return int(self.live_xml().findtext("currentMemory"))

    def _vmem_elem(self, root=None):
        root = self.live_xml() if root is None else root
        for mem in root.iter("memory"):
            if mem.get("model") == "virtio-mem":
                return mem
        return None

    def vmem(self):
        """Live virtio-mem state from the domain XML, or None."""
        mem = self._vmem_elem()
        if mem is None:
            return None
        t = mem.find("target")

        def kib(tag):
            e = t.find(tag)
            return None if e is None else to_kib(e)
        return VirtioMem(kib("size"), kib("block"), kib("requested"),
                         kib("current"))

    def set_vmem_requested(self, kib):
        """Asks the guest to plug/unplug virtio-mem memory up to kib (a
        multiple of the block size) by updating the device live."""
        mem = self._vmem_elem()
        if mem is None:
            raise TestbedError(f"{self.name} has no virtio-mem device")
        t = mem.find("target")
        req = t.find("requested")
        req.text = str(int(kib))
        req.set("unit", "KiB")
        cur = t.find("current")
        if cur is not None:  # output-only; libvirt rejects it on input
            t.remove(cur)
        self.dom.updateDeviceFlags(ET.tostring(mem, encoding="unicode"),
                                   libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def wait_vmem_current(self, kib, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            v = self.vmem()
            if v and v.current_kib == kib:
                return v
            if time.monotonic() > deadline:
                raise TestbedError(f"{self.name}: virtio-mem current stayed "
                                   f"{v.current_kib if v else None} KiB, "
                                   f"wanted {kib} KiB (after {timeout:.0f}s)")
            time.sleep(0.2)

    def channel_path(self):
        """Host side unix socket of the agent channel (libvirt chose it)."""
        for ch in self.live_xml().iter("channel"):
            tgt = ch.find("target")
            if tgt is not None and tgt.get("name") == AGENT_PORT:
                src = ch.find("source")
                return None if src is None else src.get("path")
        return None

    def qemu_pid(self):
        try:
            with open(f"/run/libvirt/qemu/{self.name}.pid") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None
