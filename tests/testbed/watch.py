"""`testbed.py watch`: one table of every testbed guest's memory as the
host (libvirt) and the guest (its console) see it."""

import os
import time
import xml.etree.ElementTree as ET

from domain import console_of, testbed_domains
from tbcommon import MEMINFO_RE, WORKLOAD_RE, fmt_mib, libvirt, to_kib


def _tail(path, nbytes=65536):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - nbytes))
            return f.read().decode("utf-8", "replace").replace("\r", "")
    except OSError:
        return ""


def _host_meminfo():
    vals = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            vals[k] = int(v.split()[0])
    return vals


def watch_snapshot(conn, prefix=None):
    """Text table of every testbed guest's memory, for `watch`."""
    hm = _host_meminfo()
    rows = [f"host: MemTotal {fmt_mib(hm['MemTotal'])}  MemAvailable "
            f"{fmt_mib(hm['MemAvailable'])}   {time.strftime('%H:%M:%S')}",
            "",
            f"{'GUEST':<26} {'STATE':<7} {'BALLOON':>8} {'VMEM cur/req':>13} "
            f"{'G-TOTAL':>8} {'G-AVAIL':>8} {'G-SWAP':>7} {'UNUSED':>7} {'HOST-RSS':>8}  WORKLOAD"]
    for dom, meta in sorted(testbed_domains(conn, prefix),
                            key=lambda dm: dm[0].name()):
        state = "running" if dom.isActive() else "off"
        st, vm = {}, "-"
        if dom.isActive():
            try:
                st = dom.memoryStats()
            except libvirt.libvirtError:
                st = {}
            root = ET.fromstring(dom.XMLDesc(0))
            for mem in root.iter("memory"):
                if mem.get("model") == "virtio-mem":
                    t = mem.find("target")
                    cur, req = t.find("current"), t.find("requested")
                    vm = (f"{fmt_mib(to_kib(cur)) if cur is not None else '-'}/"
                          f"{fmt_mib(to_kib(req))}")
        text = _tail(console_of(dom) or "")
        mi = list(MEMINFO_RE.finditer(text))
        wl = list(WORKLOAD_RE.finditer(text))
        gt = fmt_mib(int(mi[-1].group(1))) if mi else "-"
        ga = fmt_mib(int(mi[-1].group(2))) if mi else "-"
        gs = fmt_mib(int(mi[-1].group(4))) if mi and mi[-1].group(4) else "-"
        wtext = (f"anon={wl[-1].group(2)}M cache={wl[-1].group(3)}M "
                 f"{wl[-1].group(4)}") if wl else ""
        rows.append(f"{dom.name():<26} {state:<7} {fmt_mib(st.get('actual')):>8} "
                    f"{vm:>13} {gt:>8} {ga:>8} {gs:>7} {fmt_mib(st.get('unused')):>7} "
                    f"{fmt_mib(st.get('rss')):>8}  {wtext}")
    if len(rows) == 3:
        rows.append("(no testbed guests)")
    rows += ["",
             "BALLOON: balloon actual (boot memory the guest keeps); VMEM: "
             "virtio-mem plugged/requested;",
             "G-TOTAL/G-AVAIL/G-SWAP: guest MemTotal/MemAvailable/swap in use "
             "from its console; "
             "UNUSED: balloon stat; HOST-RSS: QEMU RSS"]
    return "\n".join(rows)
