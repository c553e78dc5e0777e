#!/usr/bin/python3
"""integration (TAP): `meson install --destdir` puts memtided, memtidectl
and every integration file (unit, tmpfiles, D-Bus policy and interface,
polkit actions, man pages, completion, the base policy and the empty
policies.d for the admin's drop-ins) in place, with the unit's
ExecStart pointing at the installed memtided."""

import json
import os
import shutil
import subprocess

import mtlib
from mtlib import eq, finish, note, tap

BUILD = os.environ.get("MEMTIDE_BUILD_ROOT")
meson = os.environ.get("MESON") or shutil.which("meson")
if not BUILD or not meson:
    mtlib.bail("MEMTIDE_BUILD_ROOT (set by meson) or meson itself is missing")

opts = json.loads(subprocess.run([meson, "introspect", BUILD, "--buildoptions"],
                                 capture_output=True, text=True, check=True).stdout)
opt = {o["name"]: o["value"] for o in opts}
prefix = opt["prefix"]


def under(*parts):
    return os.path.join(prefix, *parts)


dest = mtlib.tmpdir()
p = subprocess.run([meson, "install", "-C", BUILD, "--destdir", dest, "--no-rebuild",
                    "--quiet"], capture_output=True, text=True)
if not tap(p.returncode == 0, "meson install --destdir", p.stdout + p.stderr):
    finish()

installed = sorted(os.path.relpath(os.path.join(d, f), dest)
                   for d, _, files in os.walk(dest) for f in files)
note("installed:\n" + "\n".join("  /" + f for f in installed))

want = {
    "memtided": under(opt["sbindir"], "memtided"),
    "memtidectl": under(opt["bindir"], "memtidectl"),
    "systemd unit": os.path.join(opt.get("systemdsystemunitdir") or under("lib", "systemd", "system"),
                                 "memtided.service"),
    "base policy": under(opt["sysconfdir"], "memtide", "default.conf"),
    "tmpfiles.d": under("lib", "tmpfiles.d", "memtide.conf"),
    "D-Bus system bus policy": under(opt["datadir"], "dbus-1", "system.d",
                                     "org.memtide.Manager1.conf"),
    "D-Bus interface XML": under(opt["datadir"], "dbus-1", "interfaces",
                                 "org.memtide.Manager1.xml"),
    "polkit actions": under(opt["datadir"], "polkit-1", "actions", "org.memtide.policy"),
    "bash completion": under(opt["datadir"], "bash-completion", "completions", "memtidectl"),
    "Grafana dashboard": under(opt["datadir"], "memtide", "grafana", "memtide-dashboard.json"),
    "Prometheus alerts": under(opt["datadir"], "memtide", "prometheus", "memtide-alerts.yml"),
}
if opt.get("docs", True):
    want.update({
        "memtided(8)": under(opt["mandir"], "man8", "memtided.8"),
        "memtidectl(1)": under(opt["mandir"], "man1", "memtidectl.1"),
        "memtide-agent(8)": under(opt["mandir"], "man8", "memtide-agent.8"),
        "docs/dbus-api.md": under(opt["datadir"], "doc", "memtide", "dbus-api.md"),
        "docs/operating.md": under(opt["datadir"], "doc", "memtide", "operating.md"),
    })
for what, path in want.items():
    tap(os.path.isfile(dest + path), f"{what}: {path}")
pdir = under(opt["sysconfdir"], "memtide", "policies.d")
tap(os.path.isdir(dest + pdir), f"the admin's drop-in directory: {pdir}")
for what in ("memtided", "memtidectl"):
    tap(os.access(dest + want[what], os.X_OK), f"{what} is executable")

with open(dest + want["systemd unit"]) as f:
    unit = f.read()
tap(f"ExecStart={want['memtided']} " in unit, "the unit runs the installed memtided")
code = subprocess.run([dest + want["memtidectl"], "--version"], capture_output=True,
                      text=True)
eq(code.returncode, 0, "the installed memtidectl runs")
finish()
