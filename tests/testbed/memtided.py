"""Run the real memtided against the host's libvirt for one testbed run:
a policy that manages only that run's guests (every other domain on the
host is observe-only), its log kept in a file and in memory as
(monotonic time, line) pairs that tests, the demo and the benchmarks wait
on. Used by tests/e2e, tests/testbed/demo.py and bench/real."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from logproc import LogProcess  # noqa: E402


class Memtided(LogProcess):
    """The real memtided, run on the host's libvirt with a policy that
    manages only one testbed run's guests (every other domain on the host
    is observe-only), logging to a file and to a list of
    (monotonic time, line) that tests wait on."""

    def __init__(self, binary, prefix, vm_policy="", host_policy="",
                 dry_run=False, state_dir=None, extra_args=()):
        self.binary = binary
        self.tmp = tempfile.mkdtemp(prefix="memtide-e2e-")
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        self.config = os.path.join(self.tmp, "memtide.conf")
        with open(self.config, "w") as f:
            f.write("[host]\n" + host_policy + "\n"
                    "# every domain not of this run: observe only\n"
                    "[vm *]\nmechanism = none\n"
                    f"[vm {prefix}-*]\nmechanism = auto\n" + vm_policy + "\n")
        args = [binary, "--connect", "qemu:///system",
                "--config", self.config,
                "--policies-dir", os.path.join(self.tmp, "policies.d"),
                "--state-dir", self.state_dir, "--verbose", *extra_args]
        if not any(a in ("--bus", "--bus-address") for a in extra_args):
            # Private to this run: no system bus name to fight over, and
            # no bus policy needed on the host.
            args += ["--bus", "none"]
        if dry_run:
            args.append("--dry-run")
        super().__init__(args, env=dict(os.environ, G_DEBUG="fatal-criticals"),
                         log_path=os.path.join(self.tmp, "memtided.log"))
