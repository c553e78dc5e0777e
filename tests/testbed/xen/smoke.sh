#!/bin/sh
# The smoke scenario, run by dom0's /init once the toolstack is up: one PV
# domU from /etc/xenbed/domu1.cfg (kernel and initramfs in dom0's
# archive), wait for its ready marker in the console log xenconsoled
# writes, show `xl list` and the console, shut it down.

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "MEMTIDE-XEN-$*"; }
log=/var/log/xen/console/guest-xbd1.log

# $1: regex, $2: deadline in tenths of a second
wait_log() {
	i=0
	until grep -q "$1" "$log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le "$2" ] || return 1
		sleep 0.1
	done
}

say "STEP domu-create uptime=$(up)"
xl create /etc/xenbed/domu1.cfg || { say "ERROR xl create failed uptime=$(up)"; exit 1; }
say "STEP domu-created uptime=$(up)"
if ! wait_log MEMTIDE-DOMU-READY 1800; then
	say "ERROR domU not ready after 180 s uptime=$(up)"
	xl list
	sed 's/^/domu1| /' "$log"
	exit 1
fi
say "STEP domu-ready $(grep -m1 MEMTIDE-DOMU-READY "$log") uptime=$(up)"
say "BEGIN xl-list"
xl list
say "END xl-list rc=$?"

# The balloon both ways: maxmem is above memory, so a grow needs no
# mem-max first.
n0=$(grep -c MEMTIDE-DOMU-MEMINFO "$log")
say "STEP mem-set-384 uptime=$(up)"
xl mem-set xbd1 384m
i=0
until [ "$(tail -n 1 "$log" | sed -n 's/.*total=\([0-9]*\).*/\1/p')" -gt 300000 ] 2>/dev/null; do
	i=$((i + 1))
	[ $i -le 600 ] || { say "ERROR domU MemTotal did not pass 300000 kB after mem-set 384m"; break; }
	sleep 0.1
done
say "STEP mem-set-384-seen $(tail -n 1 "$log") uptime=$(up)"
say "STEP mem-set-192 uptime=$(up)"
xl mem-set xbd1 192m
i=0
until [ "$(tail -n 1 "$log" | sed -n 's/.*total=\([0-9]*\).*/\1/p')" -lt 200000 ] 2>/dev/null; do
	i=$((i + 1))
	[ $i -le 600 ] || { say "ERROR domU MemTotal did not fall below 200000 kB after mem-set 192m"; break; }
	sleep 0.1
done
say "STEP mem-set-192-seen $(tail -n 1 "$log") uptime=$(up)"
say "BEGIN xl-list"
xl list
say "END xl-list rc=$?"

say "BEGIN domu-console"
head -n 400 "$log" | sed 's/^/domu1| /'
say "END domu-console"

say "STEP domu-shutdown uptime=$(up)"
# `xl shutdown -w` returns once the domain has shut down; xl's daemon then
# destroys it (it lists as "(null)" until then): wait for it to be gone.
timeout 120 xl shutdown -w xbd1 ||
	say "ERROR xl shutdown -w failed or timed out uptime=$(up)"
say "STEP domu-shut-down uptime=$(up)"
i=0
while xl list 2>/dev/null | awk 'NR > 1 && $2 != 0 { found = 1 } END { exit !found }'; do
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		say "ERROR domU still listed 60 s after its shutdown uptime=$(up)"
		break
	fi
	sleep 0.1
done
say "STEP domu-gone uptime=$(up)"
say "BEGIN xl-list"
xl list
say "END xl-list rc=$?"
