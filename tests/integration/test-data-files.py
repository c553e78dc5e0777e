#!/usr/bin/python3
"""integration (TAP): the files that put memtided into a host: the polkit
actions (valid against polkit's DTD, one per kind of write, the ones the
daemon asks for), the introspection XML (every member documented, with
units) and its reference docs/dbus-api.md, the D-Bus system bus policy
(loaded by a real dbus-daemon: only root may own the name, an ordinary
user may read and call memtided's interfaces and nothing else), the
systemd unit (systemd-analyze verify and security), tmpfiles, the man
pages (groff without warnings) and the bash completion (it completes)."""

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import mtlib
from mtlib import ALL_ACTIONS, Bus, Memtided, Polkit, eq, finish, note, tap

mtlib.binaries()
SRC = os.environ.get("MEMTIDE_SOURCE_ROOT") or os.path.join(mtlib.HERE, "..", "..")
BUILD = os.environ.get("MEMTIDE_BUILD_ROOT")
if not BUILD:
    mtlib.bail("MEMTIDE_BUILD_ROOT is not set (meson sets it)")
DATA_SRC = os.path.join(SRC, "data")
DATA_BUILD = os.path.join(BUILD, "data")
for tool, pkg in (("xmllint", "libxml2-utils"), ("groff", "groff-base"),
                  ("setpriv", "util-linux"), ("gdbus", "libglib2.0-bin")):
    if not shutil.which(tool):
        mtlib.bail(f"{tool} is missing (Debian package {pkg})")


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    return p.returncode, p.stdout, p.stderr


# ---- polkit actions -----------------------------------------------------------------
policy = os.path.join(DATA_SRC, "org.memtide.policy")
dtd = "/usr/share/polkit-1/policyconfig-1.dtd"
if os.path.exists(dtd):
    code, out, err = run(["xmllint", "--noout", "--dtdvalid", dtd, policy])
    tap(code == 0, "org.memtide.policy is valid against polkit's DTD", err)
else:
    code, out, err = run(["xmllint", "--noout", policy])
    tap(code == 0, f"org.memtide.policy is well-formed ({dtd} missing: no DTD check)", err)
root = ET.parse(policy).getroot()
actions = {a.get("id"): a for a in root.findall("action")}
eq(sorted(actions), sorted(ALL_ACTIONS), "one polkit action per kind of write")
with open(os.path.join(SRC, "service", "dbus", "dbus-requests.c")) as f:
    asked = set(re.findall(r'#define ACTION_\w+\s+"([^"]+)"', f.read()))
eq(asked, set(ALL_ACTIONS), "memtided asks for exactly these actions")
ok = all(a.findtext("description") and a.findtext("message") and
         a.findtext("defaults/allow_any") not in (None, "yes") and
         a.findtext("defaults/allow_inactive") not in (None, "yes") and
         a.findtext("defaults/allow_active") in ("auth_admin", "auth_admin_keep")
         for a in actions.values())
tap(ok, "every action: description, message, admin authentication by default")

# ---- the introspection XML documents every member ------------------------------------
xml = os.path.join(SRC, "service", "dbus", "org.memtide.Manager1.xml")
tree = ET.parse(xml, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
members = []
undocumented = []
unitless = []
for iface in tree.getroot().iter("interface"):
    last_comment = ""
    for el in iface:
        if el.tag is ET.Comment:
            last_comment = el.text or ""
            continue
        name = el.get("name")
        members.append(name)
        if name not in last_comment:
            undocumented.append(f"{iface.get('name')}.{name}")
        types = [el.get("type")] + [a.get("type") for a in el.findall("arg")]
        if "t" in types and "bytes" not in last_comment:
            unitless.append(f"{name}: size without 'bytes'")
        if re.search(r"timeout", last_comment) and "seconds" not in last_comment:
            unitless.append(f"{name}: timeout without 'seconds'")
        last_comment = ""
tap(len(members) > 40 and not undocumented,
    f"every one of the {len(members)} members has a comment", undocumented)
tap(not unitless, "every size says bytes, every timeout seconds", unitless)
mode_doc = open(xml).read()
tap(all(m in mode_doc for m in ('"active"', '"dry-run"', '"paused"')),
    "Mode's allowed values are listed")
with open(os.path.join(SRC, "docs", "dbus-api.md")) as f:
    ref = f.read()
missing = [m for m in members if m not in ref]
tap(not missing, "docs/dbus-api.md describes every member", missing)
tap(all(e in ref for e in ("NoSuchVM", "InvalidArgument", "NotAuthorized", "CannotReserve",
                          "NoSuchCookie", "Failed")), "docs/dbus-api.md lists every error")

# ---- the system bus policy, on a real dbus-daemon --------------------------------------
conf_file = os.path.join(DATA_SRC, "org.memtide.Manager1.conf")
code, out, err = run(["xmllint", "--noout", conf_file])
tap(code == 0, "org.memtide.Manager1.conf is well-formed", err)
work = mtlib.tmpdir()
os.chmod(work, 0o755)
bus_conf = os.path.join(work, "system-like.conf")
with open(bus_conf, "w") as f:
    # Like Debian's system.conf: users may not own names or send method
    # calls unless a policy file allows it; ours is included.
    f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:dir={work}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
  <include>{conf_file}</include>
</busconfig>
""")
sysbus = Bus(bus_conf)
tap(sysbus.address, "dbus-daemon loads the policy file")
Polkit(sysbus)
Memtided(sysbus)
tap(True, "root may own org.memtide.Manager1")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_nobody(*argv):
    return run(NOBODY + list(argv), env=dict(os.environ, HOME="/nonexistent"))


def gdbus_nobody(dest, path, method, *args):
    return as_nobody("gdbus", "call", "--address", sysbus.address, "--dest", dest,
                     "--object-path", path, "--method", method, *args)


code, out, err = as_nobody(mtlib.MEMTIDECTL, "--address", sysbus.address, "status")
tap(code == 0 and "web" in out, "an ordinary user may read (memtidectl status)", err)
code, out, err = as_nobody(mtlib.MEMTIDECTL, "--address", sysbus.address, "--json", "show", "db")
tap(code == 0, "an ordinary user may read a VM's properties", err)
code, out, err = gdbus_nobody(mtlib.NAME, mtlib.PATH, "org.freedesktop.DBus.ObjectManager."
                              "GetManagedObjects")
tap(code == 0, "an ordinary user may call GetManagedObjects", err)
code, out, err = as_nobody(mtlib.MEMTIDECTL, "--address", sysbus.address, "--no-ask-password",
                           "mode", "paused")
tap(code == 4 and "polkit" in err, "an ordinary user reaches memtided for a write, polkit says no",
    (code, err))
code, out, err = gdbus_nobody(mtlib.NAME, mtlib.PATH, "org.freedesktop.DBus.Properties.Set",
                              mtlib.MANAGER, "Mode", "<'paused'>")
tap(code != 0 and "AccessDenied" in err, "Properties.Set is refused by the bus policy", err)
code, out, err = gdbus_nobody(mtlib.NAME, mtlib.PATH, "org.memtide.Bogus1.Frob")
tap(code != 0 and "AccessDenied" in err, "an interface memtided does not offer is refused", err)
code, out, err = gdbus_nobody("org.freedesktop.DBus", "/org/freedesktop/DBus",
                              "org.freedesktop.DBus.RequestName", mtlib.NAME, "4")
tap(code != 0 and "AccessDenied" in err, "an ordinary user may not own org.memtide.Manager1",
    (code, out, err))

# ---- systemd unit ------------------------------------------------------------------------
unit_path = os.path.join(DATA_BUILD, "memtided.service")
unit = open(unit_path).read()
keys = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
for key, want in (("Type", "notify"), ("BusName", "org.memtide.Manager1"),
                  ("WatchdogSec", "60s"),
                  ("ConditionPathExists", "/proc/pressure/memory"),
                  ("ProtectSystem", "strict"), ("StateDirectory", "memtide"),
                  ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                  ("DevicePolicy", "closed"),
                  ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
                  ("IPAddressDeny", "any"), ("IPAddressAllow", "localhost")):
    eq(keys.get(key), want, f"unit: {key}={want}")
# Xen's devices, and nothing else (PrivateDevices= would hide them).
eq(sorted(re.findall(r"^DeviceAllow=(.*)$", unit, re.M)),
   ["/dev/xen/hypercall rw", "/dev/xen/privcmd rw", "/dev/xen/xenbus rw"],
   "unit: DeviceAllow= Xen's privcmd, hypercall and xenbus only")
tap("PrivateDevices" not in keys, "unit: no PrivateDevices= (it hides /dev/xen)")
tap(keys.get("ExecStart", "").endswith("/memtided --state-dir=/var/lib/memtide"),
    "unit: ExecStart runs memtided with the StateDirectory", keys.get("ExecStart"))
if shutil.which("systemd-analyze"):
    test_unit = os.path.join(work, "memtided.service")
    with open(test_unit, "w") as f:
        f.write(unit.replace(keys["ExecStart"].split()[0], mtlib.MEMTIDED))
    code, out, err = run(["systemd-analyze", "verify", "--man=no", test_unit])
    tap(code == 0 and not err.strip(), "systemd-analyze verify: no complaint", err)
    code, out, err = run(["systemd-analyze", "security", "--offline=true", test_unit])
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", out + err)
    level = float(m.group(1)) if m else 99.0
    tap(level <= 3.0, f"systemd-analyze security: exposure {level} (at most 3.0)", out[-600:])
else:
    tap(False, "systemd-analyze is missing (Debian package systemd): unit not verified")
tmpfiles = open(os.path.join(DATA_SRC, "memtide.tmpfiles")).read()
tap(re.search(r"^d /var/lib/memtide 0700 root root -$", tmpfiles, re.M),
    "tmpfiles.d: the state directory, 0700 root")

# ---- man pages -----------------------------------------------------------------------------
for page in ("memtided.8", "memtidectl.1", "memtide-agent.8"):
    path = os.path.join(DATA_BUILD, page)
    code, out, err = run(["groff", "-man", "-Tutf8", "-ww", "-z", path])
    tap(code == 0 and not err.strip() and "@" not in open(path).read().replace("@@", ""),
        f"{page}: groff has no warnings, no placeholder is left", err)
ctl_page = open(os.path.join(DATA_BUILD, "memtidectl.1")).read()
for code_ in range(7):
    if f".B {code_}\n" not in ctl_page:
        tap(False, f"memtidectl.1 documents exit status {code_}")
        break
else:
    tap(True, "memtidectl.1 documents exit statuses 0 to 6")

# ---- bash completion ----------------------------------------------------------------------
completion = os.path.join(DATA_SRC, "memtidectl.bash-completion")


def complete(line):
    words = line.split(" ")
    script = f"""
source {completion}
COMP_WORDS=({' '.join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={line!r}
COMP_POINT={len(line)}
_memtidectl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = dict(os.environ, PATH=os.path.dirname(mtlib.MEMTIDECTL) + ":" + os.environ["PATH"])
    code, out, err = run(["bash", "--norc", "-c", script], env=env)
    return sorted(out.split()) if code == 0 else ["error: " + err]


eq(complete("memtidectl mo"), ["mode"], "completion: commands")
eq(complete("memtidectl mode "), ["active", "dry-run", "paused"], "completion: modes")
eq(complete(f"memtidectl --address {sysbus.address} show "), ["batch", "db", "web"],
   "completion: VM names from memtided")
eq(complete("memtidectl reserve 1G --w"), ["--wait"], "completion: command options")
note(f"bus policy tested on {sysbus.address}")
finish()
