"""memtide on the Xen testbed: memtided and memtidectl in dom0 on a private
D-Bus, memtide-agent and memtide-workload in the PV domUs, all driven from
the host over xenbed's control port (docs/testbed-xen.md, "memtide in
dom0").

    with MemtideXen(build_dir, workdir) as bed:     # boots Xen + dom0
        bed.create("a", 256, 512, workload="sleep:30s,ramp:0M-300M/20s,hold:10m")
        bed.wait_domu_ready("a", 180)
        bed.start_memtided(backend="xen", vm_policy="min = 128M\\nmax = 100%\\n")
        bed.wait(lambda: bed.size_mib("a") > 300, 120, "a grown")
        print(bed.memtidectl("status"))

Times: dom0 stamps memtided's log lines with its uptime, a domU stamps its
markers with its own; each side prints uptime and wall clock (Xen's, the
same in every domain) once, so the host maps any guest time to dom0's
uptime (dom0_time()). Figures are computed from those times, never from
when the host happened to poll.
"""

import base64
import os
import re
import shlex
import shutil
import tempfile
import time

import xenbed
from xenbed import XenbedError

LOG = "/var/log/memtided.log"
PIDFILE = "/run/memtided.pid"
BUS_SOCKET = "/run/memtide-bus.sock"
BUS_ADDRESS = f"unix:path={BUS_SOCKET}"
CONFIG = "/etc/memtide/memtide.conf"
POLICIES = "/etc/memtide/policies.d"
STATE = "/var/lib/memtide"
CONSOLE = "/var/log/xen/console/guest-{}.log"

# dbus-daemon for memtided and memtidectl only (as ./run demo's bus): one
# user (root), any name, any call.
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/memtide-bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# Prefixes each line with dom0's uptime; awk reads the file, no fork.
STAMP = ("awk '{ getline u < \"/proc/uptime\"; close(\"/proc/uptime\"); "
         "split(u, a, \" \"); print a[1] \" \" $0; fflush() }'")
# The same, into two files: LOG_FULL gets every line; LOG (what the host
# reads over the serial port, whose every byte costs dom0 CPU under TCG)
# leaves out the debug lines other than memtided's per-VM decisions.
STAMP_SPLIT = ("awk '{ getline u < \"/proc/uptime\"; close(\"/proc/uptime\"); "
               "split(u, a, \" \"); l = a[1] \" \" $0; print l >> \"/var/log/memtided-full.log\"; "
               "fflush(\"/var/log/memtided-full.log\"); "
               "if ($0 !~ /-DEBUG: / || $0 ~ /-DEBUG: [0-9:.]+: [^ ]+: (hold|grow|shrink|wait|stuck|skip): /) "
               "{ print l >> \"/var/log/memtided.log\"; fflush(\"/var/log/memtided.log\") } }'")
CLOCK = ("cut -d' ' -f1 /proc/uptime; adjtimex | awk '/time.tv_sec/ {s=$2} "
         "/time.tv_usec/ {u=$2} END {printf \"%d.%06d\\n\", s, u}'")

DOMU_CLOCK_RE = re.compile(r"^MEMTIDE-DOMU-CLOCK uptime=([\d.]+) wall=([\d.]+)", re.M)
UP_RE = re.compile(r" up(?:time)?=([\d.]+)\s*$")
# GLib's default log writer puts dom0's wall clock (UTC, ms) in each line.
GLIB_TIME_RE = re.compile(r": (\d\d):(\d\d):(\d\d\.\d{3}): ")


def build_paths(build_dir):
    """{name: path} of the built binaries the testbed needs; raises
    PrerequisiteError naming what is missing."""
    paths = {
        "memtided": os.path.join(build_dir, "service", "memtided"),
        "memtidectl": os.path.join(build_dir, "memtidectl", "memtidectl"),
        "memtide-agent": os.path.join(build_dir, "guest-agent", "memtide-agent"),
        "memtide-workload": os.path.join(build_dir, "tests", "workload", "memtide-workload"),
    }
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if not shutil.which("dbus-daemon"):
        missing.append("dbus-daemon (Debian package dbus)")
    if missing:
        raise xenbed.initramfs.PrerequisiteError(
            "missing: " + ", ".join(missing) + f" (ninja -C {build_dir})")
    return paths


def build(workdir, build_dir):
    """(dom0 archive, kernel, release) carrying memtide from build_dir."""
    p = build_paths(build_dir)
    return xenbed.build_dom0(
        workdir, scenario=None, domus={},
        extra_files={"usr/bin/memtided": p["memtided"],
                     "usr/bin/memtidectl": p["memtidectl"],
                     # dom0's own agent (scenarios/dom0.py).
                     "usr/bin/memtide-agent": p["memtide-agent"],
                     "usr/bin/dbus-daemon": shutil.which("dbus-daemon")},
        extra_text={"etc/memtide/bus.conf": BUS_CONF,
                    # GLib and libdbus look up the user and the machine id.
                    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
                    "etc/group": "root:x:0:\n",
                    "etc/machine-id": "6d656d74696465786562656431000000\n"},
        domu_files={"bin/memtide-agent": p["memtide-agent"],
                    "bin/memtide-workload": p["memtide-workload"]})


class Console:
    """A domU's console log in dom0, read incrementally: lines with the
    domU's uptime when the line carries one (up=, uptime=)."""

    def __init__(self, name):
        self.name = name
        self.text = ""
        self.offset = 0  # bytes of the file read so far

    def lines(self):
        return self.text.splitlines()


class MemtideXen:
    """Xen + dom0 booted with memtide inside; see the module doc."""

    def __init__(self, build_dir, workdir, memory_mib=4096, dom0_mib=1024,
                 keep=False, boot_timeout=600):
        self.build_dir = os.path.abspath(build_dir)
        self.workdir = workdir
        self.memory_mib = memory_mib
        self.dom0_mib = dom0_mib
        self.keep = keep
        self.boot_timeout = boot_timeout
        self.bed = None
        self.rundir = None
        self.ok = False
        self.log_lines = []       # (dom0 uptime, text) of memtided's log
        self._log_offset = 0
        self.consoles = {}        # name -> Console
        self.domu_clock = {}      # name -> (uptime, wall)
        self.dom0_clock = None    # (uptime, wall)
        self.memtided_runs = 0

    # ---------------------------------------------------------- life cycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop(failed=exc[0] is not None)
        return False

    def start(self):
        xenbed.ensure_packages(install=False)
        os.makedirs(self.workdir, exist_ok=True)
        xen = xenbed.xen_image(self.workdir)
        t = time.monotonic()
        cpio, kernel, kver = build(self.workdir, self.build_dir)
        xenbed.log(f"dom0 archive {cpio} ({os.path.getsize(cpio) >> 20} MiB, "
                   f"{time.monotonic() - t:.1f} s)")
        self.rundir = tempfile.mkdtemp(prefix="run-", dir=self.workdir)
        self.bed = xenbed.Xenbed(self.rundir, xen, kernel, cpio,
                                 memory_mib=self.memory_mib, dom0_mib=self.dom0_mib)
        self.bed.start()
        self.bed.wait_for(r"^MEMTIDE-XEN-READY.*$", self.boot_timeout)
        ctl = self.bed.wait_for(r"^MEMTIDE-XEN-CONTROL (\S+)", 120)
        if ctl.group(1) != "ttyS1":
            raise XenbedError("dom0 has no control port (ttyS1)")
        self.t_ready = self.bed.elapsed()
        out = self.sh(CLOCK)
        up, wall = out.split()
        self.dom0_clock = (float(up), float(wall))
        self.sh(f"mkdir -p {POLICIES} {STATE} /run/memtide")

    def stop(self, failed=False):
        if self.bed is None:
            return
        # dom0 may not answer any more: the first command that times out
        # ends the post-mortem, QEMU is stopped whatever happens.
        try:
            if self.memtided_pid():
                self.stop_memtided(timeout=30)
            if failed or not self.ok or self.keep:
                # What the run directory keeps.
                for name in list(self.consoles):
                    self.console(name)
                self.read_log()
                rc, full = self.bed.run("tail -c 200000 /var/log/memtided-full.log", 120)
                with open(os.path.join(self.rundir, "memtided-full-tail.log"), "w") as f:
                    f.write(full)
        except XenbedError as e:
            xenbed.log(f"stopping memtided, reading the logs for the run directory: {e}")
        finally:
            try:
                self.save_logs()
            finally:
                self.bed.stop()
        if self.keep or failed or not self.ok:
            xenbed.log(f"run directory kept: {self.rundir}")
        else:
            shutil.rmtree(self.rundir, ignore_errors=True)
        self.bed = None

    def save_logs(self):
        with open(os.path.join(self.rundir, "memtided.log"), "w") as f:
            for t, line in self.log_lines:
                f.write(f"{t} {line}\n")
        for name, c in self.consoles.items():
            with open(os.path.join(self.rundir, f"guest-{name}.log"), "w") as f:
                f.write(c.text)

    # ---------------------------------------------------------- dom0 shell

    def sh(self, command, timeout=60, check=True):
        """Output of a shell command in dom0; raises on rc != 0 if check."""
        rc, out = self.bed.run(command, timeout)
        if check and rc != 0:
            raise XenbedError(f"dom0: {command!r} exited {rc}: {out.strip()}")
        return out

    def run(self, command, timeout=60):
        """(rc, output) of a shell command in dom0."""
        return self.bed.run(command, timeout)

    def write_file(self, path, text):
        """Writes text to a dom0 file (one control line: base64)."""
        b = base64.b64encode(text.encode()).decode()
        self.sh(f"mkdir -p {shlex.quote(os.path.dirname(path))} && "
                f"echo {b} | base64 -d > {shlex.quote(path)}")

    def _tail(self, path, offset, most=48000):
        """Whole lines of a dom0 file from byte offset on (at most about
        `most` bytes), as bytes; the rest is read next time. The echo ends
        the output with a newline, which the control port needs before its
        DONE marker."""
        rc, out = self.bed.run(f"tail -c +{offset + 1} {shlex.quote(path)} 2>/dev/null "
                               f"| head -c {most}; echo", 120, raw=True)
        data = out[:-1] if rc == 0 else b""
        return data[:data.rfind(b"\n") + 1]

    def dom0_uptime(self):
        return float(self.sh("cut -d' ' -f1 /proc/uptime").strip())

    # ---------------------------------------------------------- domUs

    def create(self, name, memory_mib, maxmem_mib, workload=None, reserve=None,
               agent=True, agent_opts=None, liar=False, pin_target=False, extra=""):
        """xl create of a PV domU NAME (memory < maxmem: the balloon goes
        both ways). pin_target: the guest keeps writing its boot target to
        its balloon's target_kb, ignoring the host's memory/target."""
        opts = []
        if workload:
            opts.append(f"memtide.workload={workload}")
        if reserve:
            opts.append(f"memtide.workload_reserve={reserve}")
        if not agent:
            opts.append("memtide.agent=0")
        if agent_opts:
            opts.append("memtide.agent_opts=" + ",".join(agent_opts))
        if liar:
            opts.append("memtide.liar=1")
        if pin_target:
            opts.append("memtide.pin_target=1")
        cfg = xenbed.domu_cfg(name, memory_mib, maxmem_mib,
                              extra=" ".join(opts + [extra]).strip())
        path = f"/etc/xenbed/{name}.cfg"
        self.write_file(path, cfg)
        self.consoles[name] = Console(name)
        self.sh(f"xl create {path}", timeout=180)

    def console(self, name):
        """The domU's console so far (read incrementally from dom0)."""
        c = self.consoles.setdefault(name, Console(name))
        data = self._tail(CONSOLE.format(name), c.offset)
        c.offset += len(data)
        c.text += data.decode("utf-8", "replace").replace("\r", "")
        if data:
            if name not in self.domu_clock:
                m = DOMU_CLOCK_RE.search(c.text)
                if m:
                    self.domu_clock[name] = (float(m.group(1)), float(m.group(2)))
        return c.text

    def dom0_time(self, name, domu_uptime):
        """A domU uptime as dom0 uptime (both through Xen's wall clock)."""
        if name not in self.domu_clock or self.dom0_clock is None:
            return None
        du, dw = self.domu_clock[name]
        u0, w0 = self.dom0_clock
        return u0 + (dw + (domu_uptime - du) - w0)

    def console_find(self, name, pattern, since=0):
        """[(domU uptime or None, match)] of console lines matching."""
        rx = re.compile(pattern)
        hits = []
        for line in self.consoles[name].lines()[since:] if name in self.consoles else []:
            m = rx.search(line)
            if m:
                u = UP_RE.search(line)
                hits.append((float(u.group(1)) if u else None, m))
        return hits

    def wait_console(self, name, pattern, timeout):
        """The first console line matching (domU uptime, match), waited for."""
        return self.wait(lambda: (self.console(name), self.console_find(name, pattern))[1],
                         timeout, f"/{pattern}/ on {name}'s console")[0]

    def wait_domu_ready(self, name, timeout=240):
        return self.wait_console(name, r"^MEMTIDE-DOMU-READY .*", timeout)

    def domains(self):
        """{name: (domid, MiB)} from `xl list` (MiB: tot_pages, rounded)."""
        out = self.sh("xl list")
        doms = {}
        for line in out.splitlines()[1:]:
            f = line.split()
            if len(f) >= 3 and f[1].isdigit():
                doms[f[0]] = (int(f[1]), int(f[2]))
        return doms

    def domid(self, name):
        d = self.domains().get(name)
        return d[0] if d else None

    def xs_read(self, path, default=None):
        rc, out = self.run(f"xenstore-read {shlex.quote(path)}")
        return out.strip() if rc == 0 else default

    def xs_mem(self, name):
        """{target, static-max, videoram} in KiB from xenstore (absent keys left out)."""
        domid = self.domid(name)
        if domid is None:
            return {}
        out = self.sh(f"for k in target static-max videoram; do "
                      f"echo $k=$(xenstore-read /local/domain/{domid}/memory/$k 2>/dev/null); done")
        vals = {}
        for line in out.splitlines():
            k, _, v = line.strip().partition("=")
            if v.isdigit():
                vals[k] = int(v)
        return vals

    def size_mib(self, name):
        """tot_pages of the domain in MiB (xl list), None if it is gone."""
        d = self.domains().get(name)
        return d[1] if d else None

    def destroy(self, name):
        self.run(f"xl destroy {name}", 60)

    # ---------------------------------------------------------- memtided

    def start_bus(self):
        if self.run(f"[ -S {BUS_SOCKET} ]")[0] != 0:
            self.sh("dbus-daemon --config-file=/etc/memtide/bus.conf --fork --nopidfile")
            self.wait(lambda: self.run(f"[ -S {BUS_SOCKET} ]")[0] == 0, 30,
                      "the private bus's socket")

    def start_memtided(self, backend="xen", vm_policy="", host_policy="",
                       policies=None, extra_args=(), connect=None, verbose=True,
                       fresh_state=False):
        """memtided in dom0 on the private bus, --config CONFIG ([host] +
        [vm *] with vm_policy), the policies dir with {file: text}. Its
        output goes, stamped with dom0's uptime, to LOG."""
        self.start_bus()
        self.write_file(CONFIG, "[host]\n" + host_policy + "\n[vm *]\n" + vm_policy + "\n")
        for f, text in (policies or {}).items():
            self.write_file(f"{POLICIES}/{f}", text)
        if fresh_state:
            self.sh(f"rm -rf {STATE}; mkdir -p {STATE}")
        args = ["memtided", "--backend", backend, "--config", CONFIG,
                "--policies-dir", POLICIES, "--state-dir", STATE,
                "--bus-address", BUS_ADDRESS]
        if connect:
            args += ["--connect", connect]
        if verbose:
            args.append("--verbose")
        args += list(extra_args)
        self.memtided_runs += 1
        run = self.memtided_runs
        inner = (f"echo MEMTIDED-START run={run}; "
                 f"G_DEBUG=fatal-criticals {' '.join(shlex.quote(a) for a in args)} & "
                 f"echo $! > {PIDFILE}; wait $!; echo MEMTIDED-EXIT run={run} status=$?")
        self.sh(f"(sh -c {shlex.quote(inner)} 2>&1 | {STAMP_SPLIT}) "
                "</dev/null >/dev/null 2>&1 &")
        self.wait(lambda: self.log_find(rf"MEMTIDED-START run={run}"), 120, "memtided started")
        return run

    def memtided_pid(self):
        if self.bed is None or self.bed.proc.poll() is not None:
            return None
        rc, out = self.run(f"p=$(cat {PIDFILE} 2>/dev/null) && kill -0 $p 2>/dev/null && echo $p")
        return int(out) if rc == 0 and out.strip().isdigit() else None

    def stop_memtided(self, timeout=60):
        """SIGTERM to memtided; its exit status once it is gone."""
        run = self.memtided_runs
        pid = self.memtided_pid()
        if pid:
            self.sh(f"kill -TERM {pid}")
        hit = self.wait(lambda: self.log_find(rf"MEMTIDED-EXIT run={run} status=(\d+)"),
                        timeout, "memtided's exit")
        return int(hit[0][1].group(1))

    def read_log(self):
        """New lines of memtided's log (kept in log_lines)."""
        data = self._tail(LOG, self._log_offset)
        self._log_offset += len(data)
        for line in data.decode("utf-8", "replace").replace("\r", "").splitlines():
            t, _, text = line.partition(" ")
            try:
                t = float(t)
            except ValueError:
                t, text = None, line
            self.log_lines.append((self._glib_time(text) or t, text))

    def _glib_time(self, text):
        """dom0 uptime of a GLib log line, from its wall-clock stamp: the
        awk stamp is when awk read the line, late when dom0 is busy."""
        m = GLIB_TIME_RE.search(text)
        if not m or self.dom0_clock is None:
            return None
        u0, w0 = self.dom0_clock
        day = w0 - w0 % 86400
        wall = day + int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        if wall < w0 - 43200:  # past midnight since dom0 started
            wall += 86400
        return u0 + (wall - w0)

    def log_mark(self):
        self.read_log()
        return len(self.log_lines)

    def log_find(self, pattern, since=0, refresh=True):
        """[(dom0 uptime, match)] of memtided log lines matching."""
        if refresh:
            self.read_log()
        rx = re.compile(pattern)
        return [(t, m) for t, line in self.log_lines[since:] for m in [rx.search(line)] if m]

    def log_tail(self, n=40):
        return "\n".join(f"{t} {line}" for t, line in self.log_lines[-n:])

    def memtidectl(self, *args, check=False):
        """(rc, output) of memtidectl on the private bus."""
        cmd = "memtidectl --address " + shlex.quote(BUS_ADDRESS) + " " + \
              " ".join(shlex.quote(a) for a in args)
        rc, out = self.run(cmd, 60)
        if check and rc != 0:
            raise XenbedError(f"{cmd}: rc={rc}: {out}")
        return rc, out

    # ---------------------------------------------------------- waiting

    def wait(self, pred, timeout, what, step=0.5):
        """pred() until truthy (returned); raises XenbedError naming what
        after timeout s, or when QEMU is gone."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if self.bed.proc.poll() is not None:
                raise XenbedError(f"QEMU exited while waiting for {what}\n" + self.bed.tail())
            if time.monotonic() > deadline:
                raise XenbedError(f"no {what} within {timeout} s")
            time.sleep(step)

    def try_wait(self, pred, timeout, what, step=0.5):
        """wait(), or None when it does not come in time."""
        try:
            return self.wait(pred, timeout, what, step)
        except XenbedError as e:
            if self.bed.proc.poll() is not None:
                raise
            xenbed.log(str(e))
            return None
