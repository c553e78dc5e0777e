#!/bin/sh
# /init of the Xen testbed's dom0 (PV, busybox initramfs built by
# xenbed.py). Starts the toolstack the way Debian's /etc/init.d/xen does
# (modules, xenfs, xenstored, xen-init-dom0, xenconsoled), prints
# MEMTIDE-XEN-* markers on hvc0 (Xen puts it on the serial line), runs
# /etc/xenbed/scenario.sh if the archive has one, then serves the host's
# commands on ttyS1 (the second serial port) when dom0 has it.

/bin/busybox --install -s /bin
export PATH=/usr/lib/xen-4.17/bin:/bin:/sbin:/usr/bin:/usr/sbin
# The libraries sit in Debian's multiarch directory; there is no
# ld.so.cache in the archive.
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "MEMTIDE-XEN-$*"; }
fail() {
	say "ERROR $* uptime=$(up)"
	sleep 1
	poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
say "STEP init uptime=$(up)"

[ "$(cat /sys/hypervisor/type 2>/dev/null)" = xen ] ||
	fail "not running on Xen (/sys/hypervisor/type)"

for m in $(cat /etc/xenbed/modules); do
	modprobe "$m" || fail "modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen || fail "mount xenfs on /proc/xen failed"
grep -q control_d /proc/xen/capabilities ||
	fail "not dom0: /proc/xen/capabilities has no control_d"
say "STEP modules uptime=$(up)"

mkdir -p /run/xen /run/xenstored /var/lib/xen /var/lib/xenstored \
	/var/log/xen/console /var/lock
chmod 700 /run/xen
export XENSTORED_ROOTDIR=/run/xenstored
xenstored --pid-file /run/xenstore.pid || fail "xenstored did not start"
i=0
until xenstore-read -s / >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -le 300 ] || fail "xenstored not answering after 30 s"
	sleep 0.1
done
say "STEP xenstored uptime=$(up)"
xen-init-dom0 >/dev/null || fail "xen-init-dom0 failed"
# dom0 runs the toolstack, memtided and its bus: on a busy host, with the
# domUs' vCPUs at the same weight, memtided took 80 s to start.  Four
# times the default weight (256) puts dom0 first; Xen 4.17's default
# scheduler is credit2.
xl sched-credit2 -d 0 -w 1024 >/dev/null 2>&1 ||
	xl sched-credit -d 0 -w 1024 >/dev/null 2>&1 ||
	fail "cannot raise dom0's scheduler weight"
say "STEP dom0-weight $(xl sched-credit2 -d 0 2>/dev/null | tail -1 | tr -s ' ')"
# Guest consoles go to /var/log/xen/console/guest-NAME.log, which the
# scenario and the host read.
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest \
	--log-dir=/var/log/xen/console || fail "xenconsoled did not start"
say "STEP xenconsoled uptime=$(up)"

say "READY kernel=$(uname -r) xen=$(xenstore-read /local/domain/0/name 2>/dev/null) uptime=$(up)"
say "BEGIN xl-info"
xl info
say "END xl-info rc=$?"
say "BEGIN xl-list"
xl list
say "END xl-list rc=$?"

if [ -x /etc/xenbed/scenario.sh ]; then
	say "BEGIN scenario uptime=$(up)"
	/etc/xenbed/scenario.sh
	say "END scenario rc=$? uptime=$(up)"
fi

# Control channel: one command a line, "ID COMMAND"; its output, then
# "MEMTIDE-XEN-DONE ID rc=N". An absent port reads as an I/O error.
# raw: busybox stty leaves opost (onlcr) on; the host counts bytes.
# The port is opened before CONTROL is said: bytes the host sends while
# no one has the port open are lost (a busy run lost the "c" of "c1").
if stty -F /dev/ttyS1 raw -echo -opost 115200 2>/dev/null; then
	exec 3<>/dev/ttyS1
	stty -F /dev/ttyS1 raw -echo -opost 115200
	say "CONTROL ttyS1 uptime=$(up)"
	while IFS= read -r line <&3; do
		id=${line%% *}
		cmd=${line#* }
		sh -c "$cmd" <&- >&3 2>&3
		echo "MEMTIDE-XEN-DONE $id rc=$?" >&3
	done
	say "CONTROL closed uptime=$(up)"
else
	say "CONTROL none uptime=$(up)"
fi
sleep 1
poweroff -f
