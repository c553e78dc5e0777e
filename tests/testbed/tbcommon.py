"""Names shared by the testbed modules: units, the testbed's markers and
paths, console line formats, errors."""

import re
import sys

try:
    import libvirt
except ImportError:  # reported by testbed.check_prerequisites()
    libvirt = None

KiB = 1
MiB = 1024
GiB = 1024 * 1024

# Every testbed domain name starts with this; cleanup also requires the
# metadata record below before it touches a domain.
NAME_MARKER = "mtb-"
META_NS = "https://memtide.org/ns/testbed/1"
META_KEY = "memtide-testbed"
AGENT_PORT = "org.memtide.agent.0"
CACHE_DISK_SERIAL = "memtide-cache"
SWAP_DISK_SERIAL = "memtide-swap"
DEFAULT_URI = "qemu:///system"
# QEMU runs as libvirt-qemu under qemu:///system: run files live where that
# user can reach them (libvirt's DAC driver relabels kernel, initrd and
# disks; virtlogd, as root, writes the console log).
RUN_ROOT = "/var/lib/libvirt/memtide-testbed"

READY_RE = re.compile(r"^MEMTIDE-GUEST-READY\b.*$", re.M)
# swap= (swap in use, kB) is printed by guests that have a swap device.
MEMINFO_RE = re.compile(
    r"^MEMTIDE-MEMINFO total=(\d+) available=(\d+) free=(\d+)"
    r"(?: swap=(\d+))?\s*$", re.M)
# memtide.mm_stat (patched kernel): page reporting counters (bytes, counts,
# tunables) and per memory block usage (pages), see init.sh.
REPORTING_RE = re.compile(
    r"^MEMTIDE-REPORTING uptime=([\d.]+) reported=(\d+) total=(\d+) "
    r"reused=(\d+) passes=(\d+) exhausted=(\d+) delay_ms=(\d+) "
    r"divisor=(\d+)\s*$", re.M)
BLOCKS_RE = re.compile(r"^MEMTIDE-BLOCKS uptime=([\d.]+)((?: \S+)*)\s*$", re.M)
BLOCK_RE = re.compile(r"(\d+)=(\w+):(vmem|boot):(\d+):(\d+):(\d+):(\d+):(\d+)$")
WORKLOAD_RE = re.compile(
    r"^memtide-workload: t=([\d.]+) anon=(\d+)M cache=(\d+)M step=(\S+).*$", re.M)


class TestbedError(RuntimeError):
    pass


def log(msg):
    print(f"testbed: {msg}", file=sys.stderr, flush=True)


def parse_size_kib(text):
    """'512M' -> 524288 (KiB). Units K, M, G, T (powers of 1024); a bare
    number is MiB, the unit people mean for guest sizes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", str(text), re.I)
    if not m:
        raise ValueError(f"bad size {text!r} (expected e.g. 512M, 1G)")
    mult = {"K": 1, "M": MiB, "G": GiB, "T": 1024 * GiB, "": MiB}
    return int(m.group(1)) * mult[m.group(2).upper()]


def fmt_mib(kib):
    return "-" if kib is None else f"{kib / MiB:.0f}M"


def to_kib(elem):
    """Value of a libvirt XML size element (<size unit='KiB'>...) in KiB."""
    v = int(elem.text)
    unit = (elem.get("unit") or "KiB").lower()
    mult = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "m": MiB,
            "mib": MiB, "g": GiB, "gib": GiB}[unit]
    return int(v * mult)
