#!/bin/sh
# /init of a Xen testbed PV domU (busybox initramfs inside dom0's archive).
# Prints its markers on hvc0, which xenconsoled logs in dom0
# (/var/log/xen/console/guest-NAME.log):
#   MEMTIDE-DOMU-CLOCK uptime=S wall=SEC.USEC   once: maps the uptimes below
#                                              to the wall clock (Xen's, the
#                                              same in dom0 and every domU)
#   MEMTIDE-DOMU-READY kernel=K total=KB available=KB agent=0|1 workload=0|1 uptime=S
#   MEMTIDE-DOMU-MEMINFO total=KB available=KB uptime=S        every second
#   memtide-workload: ... up=S       the workload's lines, stamped
#   MEMTIDE-DOMU-AGENT-EXIT status=N / MEMTIDE-DOMU-WORKLOAD-EXIT status=N
# Kernel command line options (xl's `extra`):
#   memtide.workload=SCHEDULE     run /bin/memtide-workload SCHEDULE
#   memtide.workload_reserve=SIZE its --reserve (default 32M)
#   memtide.agent=0               do not start /bin/memtide-agent
#   memtide.agent_opts=A,B        extra agent options, commas for spaces
#   memtide.liar=1                the agent reads a fake /proc/meminfo
#                                 (its --root) that says the guest is full:
#                                 MemTotal true, MemFree and MemAvailable
#                                 1/64 of it, rewritten every 0.5 s
#   memtide.pin_target=1          the guest ignores the host's target: every
#                                 50 ms it writes its boot target back to
#                                 the balloon's own target_kb in sysfs, so
#                                 a memory/target from the host moves the
#                                 balloon for at most that long

/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
exec </dev/console >/dev/console 2>&1

up() { cut -d' ' -f1 /proc/uptime; }
# Stamps each line with the guest's uptime (awk reads the file, no fork).
stamp() {
	awk '{ getline u < "/proc/uptime"; close("/proc/uptime"); split(u, a, " ");
	       print $0 " up=" a[1]; fflush() }'
}
exit_marker() { echo "MEMTIDE-DOMU-$1-EXIT status=$2"; }

workload=
reserve=32M
agent=1
agent_opts=
liar=0
pin_target=0
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	memtide.workload=*) workload=${arg#memtide.workload=} ;;
	memtide.workload_reserve=*) reserve=${arg#memtide.workload_reserve=} ;;
	memtide.agent=*) agent=${arg#memtide.agent=} ;;
	memtide.agent_opts=*) agent_opts=$(echo "${arg#memtide.agent_opts=}" | tr , ' ') ;;
	memtide.liar=*) liar=${arg#memtide.liar=} ;;
	memtide.pin_target=*) pin_target=${arg#memtide.pin_target=} ;;
	esac
done

set -- $(adjtimex 2>/dev/null | awk '/time.tv_sec/ {s=$2} /time.tv_usec/ {u=$2} END {printf "%d %06d", s, u}')
echo "MEMTIDE-DOMU-CLOCK uptime=$(up) wall=$1.$2"

mem() { awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print "total=" t " available=" a}' /proc/meminfo; }

# The liar's /proc/meminfo: the real MemTotal, almost nothing free. The
# agent keeps the file open and re-reads it with pread(), so it is
# rewritten in place with fixed-width numbers (same size, no truncation).
if [ "$liar" = 1 ]; then
	mkdir -p /liar/proc
	lie() {
		awk '/^MemTotal:/ {t=$2} /^SwapTotal:/ {st=$2} /^SwapFree:/ {sf=$2}
		     END { f = int(t / 64)
		           printf "MemTotal:       %12d kB\nMemFree:        %12d kB\nMemAvailable:   %12d kB\n", t, f, f
		           printf "Buffers:        %12d kB\nCached:         %12d kB\nShmem:          %12d kB\n", 0, 0, 0
		           printf "AnonPages:      %12d kB\nSReclaimable:   %12d kB\nInactive(file): %12d kB\n", t - f, 0, 0
		           printf "SwapTotal:      %12d kB\nSwapFree:       %12d kB\n", st, sf }' /proc/meminfo |
			dd of=/liar/proc/meminfo conv=notrunc 2>/dev/null
	}
	lie
	( while :; do usleep 500000; lie; done ) &
	# --root moves /sys and /dev too: name the transport (auto would look
	# for /liar/sys/hypervisor/type).
	agent_opts="$agent_opts --root /liar --transport xenstore"
fi

# The Linux balloon follows the last target it was given, from xenstore's
# memory/target (its watch) or from root in the guest (target_kb).
if [ "$pin_target" = 1 ]; then
	tk=/sys/devices/system/xen_memory/xen_memory0/target_kb
	pinned=$(cat $tk)
	echo "MEMTIDE-DOMU-PIN target_kb=$pinned"
	# read is a shell builtin: no fork per round (20 a second under TCG
	# were a noticeable share of the testbed's CPU).
	( while :; do
		read -r cur <$tk
		[ "$cur" = "$pinned" ] || echo "$pinned" >$tk
		usleep 50000
	done ) &
fi

agent_started=0
if [ -x /bin/memtide-agent ] && [ "$agent" != 0 ]; then
	# shellcheck disable=SC2086 # options split on spaces, by design
	( /bin/memtide-agent $agent_opts; exit_marker AGENT $? ) &
	agent_started=1
fi
workload_started=0
if [ -n "$workload" ] && [ -x /bin/memtide-workload ]; then
	( /bin/memtide-workload --reserve "$reserve" "$workload" 2>&1; exit_marker WORKLOAD $? ) | stamp &
	workload_started=1
fi

echo "MEMTIDE-DOMU-READY kernel=$(uname -r) $(mem) agent=$agent_started workload=$workload_started liar=$liar pin_target=$pin_target uptime=$(up)"
while :; do
	echo "MEMTIDE-DOMU-MEMINFO $(mem) uptime=$(up)"
	sleep 1
done
