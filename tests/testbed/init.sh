#!/bin/sh
# /init of the memtide testbed guests (busybox initramfs).
#
# The host-side testbed (testbed.py) follows the guest only through the
# serial console, so everything a test needs is printed there as marker
# lines that start at column 0:
#   MEMTIDE-GUEST-READY kernel=.. balloon=0|1 vmem=0|1 agent-port=0|1 ...
#   MEMTIDE-MEMINFO total=<kB> available=<kB> free=<kB> [swap=<kB used>]
#                                                           (every second)
#   MEMTIDE-WORKLOAD-EXIT status=N [signal=S]               (if it ever ends)
#   MEMTIDE-AGENT-EXIT status=N [signal=S]
#   MEMTIDE-AGENT-STOPPED / -STARTED / -STAT                (test options below)
#   MEMTIDE-REPORTING / -BLOCKS / -MMSTAT                   (memtide.mm_stat)
#   MEMTIDE-GUEST-ERROR <what went wrong>
# Guest kernel command line options read here:
#   memtide.workload=SCHEDULE   run /bin/memtide-workload SCHEDULE
#   memtide.workload_reserve=SIZE   its --reserve (default 32M)
#   memtide.agent=0             do not start /bin/memtide-agent
#   memtide.agent_opts=A,B      extra options for it, commas for spaces
#                               (e.g. --memory-watch=0)
#   memtide.agent_stop_after=S  kill the agent S seconds after the ready line
#                               (MEMTIDE-AGENT-STOPPED), to test the host's
#                               fallback to balloon statistics
#   memtide.agent_restart_after=S   start it again S seconds after the ready
#                               line (MEMTIDE-AGENT-STARTED)
#   memtide.agent_flap=N,UP,DOWN,LONG,EVERY   kill the agent with SIGKILL and
#                               start it again, N times: each time it runs UP
#                               ms, is killed, and is started again DOWN ms
#                               later (LONG ms every EVERY-th time), printing
#                               MEMTIDE-AGENT-FLAP i= killed= / started= and
#                               MEMTIDE-AGENT-FLAP-DONE at the end
#   memtide.hostile=ITEM,...    instead of the agent (with memtide.agent=0),
#                               /bin/memtide-hostile writes these hostile
#                               items down the agent's port and never reads
#                               it (tests/testbed/hostile.sh, MEMTIDE-HOSTILE
#                               lines)
#   memtide.agent_stat=S        every S seconds print the agent's footprint:
#                               MEMTIDE-AGENT-STAT pid= rss_kb= pss_kb=
#                               cpu_ticks= (utime+stime, 100/s) uptime=
#   memtide.mm_stat=S           every S seconds print the patched kernel's
#                               counters and memory block usage:
#                               MEMTIDE-REPORTING uptime= reported= total=
#                               reused= passes= exhausted= delay_ms= divisor=
#                               (bytes, counts, the tunables), and
#                               MEMTIDE-BLOCKS uptime= N=ZONE:vmem|boot:FREE:
#                               MOVABLE:UNMOVABLE:PINNED:OFFLINE ... (pages,
#                               each online block N); on another kernel one
#                               MEMTIDE-MMSTAT unavailable line instead
#   memtide.cache=SERIAL        mount the virtio disk with this serial as
#                               the workload's cache filesystem
#   memtide.swap=SERIAL         mkswap + swapon the virtio disk with this
#                               serial (the guest's swap device)
# PID 1 must never exit (the kernel would panic), hence the final loop.

PATH=/bin:/sbin
export PATH

/bin/busybox mkdir -p /proc /sys /dev /tmp /run /mnt/cache /sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /sys/fs/cgroup
mount -t devpts devpts /dev/pts
# cgroup v2 gives the agent memory.reclaim and per-cgroup PSI.
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
exec </dev/console >/dev/console 2>&1

err() { echo "MEMTIDE-GUEST-ERROR $*"; }
# MEMTIDE-<WHAT>-EXIT status=N [signal=S]; signal 9 is most likely the
# guest's OOM killer.
exit_marker() {
	if [ "$2" -gt 128 ]; then
		echo "MEMTIDE-$1-EXIT status=$2 signal=$(($2 - 128))"
	else
		echo "MEMTIDE-$1-EXIT status=$2"
	fi
}

kver=$(uname -r)
# The module list is written by the initramfs builder, for the stock
# kernel it was built with. A kernel without modules for its release (the
# patched memtide kernel: everything built in, no module support) loads
# none; each driver must then be built in, else that is an error too.
if [ -d "/lib/modules/$kver" ]; then
	drivers=modules
	while read -r mod; do
		[ -n "$mod" ] || continue
		modprobe "$mod" || err "modprobe $mod failed"
	done </etc/memtide/modules
else
	drivers=builtin
	while read -r mod; do
		[ -n "$mod" ] || continue
		# virtio_pci registers as "virtio-pci" on the PCI bus.
		[ -d "/sys/bus/virtio/drivers/$mod" ] ||
			[ -d "/sys/bus/pci/drivers/$(echo "$mod" | tr _ -)" ] ||
			err "kernel $kver has no modules and no built-in driver $mod"
	done </etc/memtide/modules
fi

workload=
reserve=32M
agent=1
cache_serial=
swap_serial=
agent_stop_after=
agent_restart_after=
agent_stat=0
agent_flap=
hostile=
agent_opts=
mm_stat=0
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	memtide.workload=*) workload=${arg#memtide.workload=} ;;
	memtide.workload_reserve=*) reserve=${arg#memtide.workload_reserve=} ;;
	memtide.agent=*) agent=${arg#memtide.agent=} ;;
	memtide.agent_opts=*) agent_opts=$(echo "${arg#memtide.agent_opts=}" | tr , ' ') ;;
	memtide.cache=*) cache_serial=${arg#memtide.cache=} ;;
	memtide.swap=*) swap_serial=${arg#memtide.swap=} ;;
	memtide.agent_stop_after=*) agent_stop_after=${arg#memtide.agent_stop_after=} ;;
	memtide.agent_restart_after=*) agent_restart_after=${arg#memtide.agent_restart_after=} ;;
	memtide.agent_stat=*) agent_stat=${arg#memtide.agent_stat=} ;;
	memtide.agent_flap=*) agent_flap=$(echo "${arg#memtide.agent_flap=}" | tr , ' ') ;;
	memtide.hostile=*) hostile=$(echo "${arg#memtide.hostile=}" | tr , ' ') ;;
	memtide.mm_stat=*) mm_stat=${arg#memtide.mm_stat=} ;;
	esac
done

# Devices appear asynchronously after the modules load; give them a moment
# so the ready line reports what the guest really has.
has_balloon=0 has_vmem=0 has_port=0
i=0
while [ $i -lt 50 ]; do
	[ -d /sys/bus/virtio/drivers/virtio_balloon ] && ls /sys/bus/virtio/drivers/virtio_balloon | grep -q virtio && has_balloon=1
	[ -d /sys/bus/virtio/drivers/virtio_mem ] && ls /sys/bus/virtio/drivers/virtio_mem | grep -q virtio && has_vmem=1
	for n in /sys/class/virtio-ports/*/name; do
		[ -r "$n" ] && [ "$(cat "$n")" = org.memtide.agent.0 ] && has_port=1
	done
	[ $has_balloon = 1 ] && [ $has_port = 1 ] && break
	usleep 100000
	i=$((i + 1))
done

# /dev node of the virtio disk with serial $1, or nothing.
disk_by_serial() {
	for s in /sys/block/*/serial; do
		[ -r "$s" ] && [ "$(cat "$s")" = "$1" ] && echo /dev/$(basename "$(dirname "$s")")
	done
}

cache_dir=/tmp
if [ -n "$cache_serial" ]; then
	cache_dev=$(disk_by_serial "$cache_serial")
	if [ -z "$cache_dev" ]; then
		err "no disk with serial $cache_serial for the page-cache filesystem"
	elif mount -t ext4 -o noatime "$cache_dev" /mnt/cache; then
		cache_dir=/mnt/cache
	else
		err "cannot mount $cache_dev on /mnt/cache"
	fi
fi

# The host made the disk a sparse file; mkswap writes its one header page.
if [ -n "$swap_serial" ]; then
	swap_dev=$(disk_by_serial "$swap_serial")
	if [ -z "$swap_dev" ]; then
		err "no disk with serial $swap_serial for swap"
	elif ! mkswap "$swap_dev" >/dev/null 2>&1; then
		err "mkswap $swap_dev failed"
	elif ! swapon "$swap_dev"; then
		err "swapon $swap_dev failed"
	fi
fi
swap_kb=$(awk '/^SwapTotal:/ {print $2}' /proc/meminfo)

# Guest size, once a second, in one write per line (swap= only with swap).
(
	while :; do
		awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} /^MemFree:/ {f=$2}
		     /^SwapTotal:/ {st=$2} /^SwapFree:/ {sf=$2}
		     END {line = sprintf("MEMTIDE-MEMINFO total=%d available=%d free=%d", t, a, f)
		          if (st > 0) line = line sprintf(" swap=%d", st - sf)
		          print line}' /proc/meminfo
		sleep 1
	done
) &

start_agent() {
	# shellcheck disable=SC2086 # options split on spaces, by design
	( /bin/memtide-agent $agent_opts; exit_marker AGENT $? ) &
}

agent_started=0
if [ -x /bin/memtide-agent ] && [ "$agent" != 0 ]; then
	start_agent
	agent_started=1
fi

echo "MEMTIDE-GUEST-READY kernel=$kver drivers=$drivers balloon=$has_balloon vmem=$has_vmem agent-port=$has_port agent=$agent_started cache=$cache_dir swap=${swap_kb:-0} uptime=$(cut -d' ' -f1 /proc/uptime)"

# Test hooks (kernel command line, see the top): stop and restart the
# agent on a schedule, print its footprint.
uptime_s() { cut -d' ' -f1 /proc/uptime; }
if [ $agent_started = 1 ] && [ -n "$agent_stop_after$agent_restart_after" ]; then
	(
		waited=0
		if [ -n "$agent_stop_after" ]; then
			sleep "$agent_stop_after"
			waited=$agent_stop_after
			pid=$(pidof memtide-agent)
			[ -n "$pid" ] && kill $pid
			echo "MEMTIDE-AGENT-STOPPED pid=$pid uptime=$(uptime_s)"
		fi
		if [ -n "$agent_restart_after" ]; then
			[ "$agent_restart_after" -gt "$waited" ] && sleep $((agent_restart_after - waited))
			start_agent
			usleep 200000
			echo "MEMTIDE-AGENT-STARTED pid=$(pidof memtide-agent) uptime=$(uptime_s)"
		fi
		wait
	) &
fi
if [ $agent_started = 1 ] && [ -n "$agent_flap" ]; then
	(
		# shellcheck disable=SC2086 # N UP DOWN LONG EVERY
		set -- $agent_flap
		i=1
		while [ "$i" -le "$1" ]; do
			usleep $(($2 * 1000))
			pid=$(pidof memtide-agent)
			[ -n "$pid" ] && kill -9 $pid
			down=$3
			[ $((i % $5)) = 0 ] && down=$4
			echo "MEMTIDE-AGENT-FLAP i=$i killed=$pid down_ms=$down uptime=$(uptime_s)"
			usleep $((down * 1000))
			start_agent
			echo "MEMTIDE-AGENT-FLAP i=$i started uptime=$(uptime_s)"
			i=$((i + 1))
		done
		echo "MEMTIDE-AGENT-FLAP-DONE n=$1 uptime=$(uptime_s)"
	) &
fi
if [ -n "$hostile" ]; then
	if [ $agent_started = 1 ]; then
		err "memtide.hostile needs memtide.agent=0: the agent holds the port"
	else
		# shellcheck disable=SC2086 # the items, split on spaces
		/bin/memtide-hostile $hostile &
	fi
fi
if [ $agent_started = 1 ] && [ "$agent_stat" != 0 ]; then
	(
		while :; do
			sleep "$agent_stat"
			pid=$(pidof memtide-agent) || continue
			# Fields 14 and 15 of stat: utime, stime (the name has no blanks).
			set -- $(cat /proc/$pid/stat 2>/dev/null)
			ticks=$((${14:-0} + ${15:-0}))
			# smaps_rollup walks the page tables; VmRSS in status lags
			# by up to 64 page faults per task on 6.1 (split RSS
			# counters) and shows a few KiB for a small process.
			rss=$(awk '/^Rss:/ {print $2}' /proc/$pid/smaps_rollup 2>/dev/null)
			pss=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup 2>/dev/null)
			echo "MEMTIDE-AGENT-STAT pid=$pid rss_kb=${rss:-0} pss_kb=${pss:-0} cpu_ticks=$ticks uptime=$(uptime_s)"
		done
	) &
fi

# memtide.mm_stat=S (patched kernel): its page reporting counters and how
# the pages of each online memory block are used, every S seconds.
pr=/sys/kernel/mm/page_reporting
mem=/sys/devices/system/memory
mm_stat_once() {
	awk -v up="$(uptime_s)" 'FNR == 1 { n = FILENAME; sub(".*/", "", n); v[n] = $1 }
	     END { printf "MEMTIDE-REPORTING uptime=%s reported=%s total=%s reused=%s passes=%s exhausted=%s delay_ms=%s divisor=%s\n",
	                  up, v["reported_bytes"], v["reported_total_bytes"], v["reused_total_bytes"],
	                  v["passes"], v["budget_exhausted"], v["delay_ms"], v["budget_divisor"] }' \
		$pr/reported_bytes $pr/reported_total_bytes $pr/reused_total_bytes \
		$pr/passes $pr/budget_exhausted $pr/delay_ms $pr/budget_divisor
	# Blocks of virtio-mem memory: those inside a "System RAM (virtio_mem)"
	# range of /proc/iomem, as block numbers "first-last".
	bs=$((0x$(cat $mem/block_size_bytes)))
	vm=
	for r in $(sed -n 's/^ *\([0-9a-f]*\)-\([0-9a-f]*\) : System RAM (virtio_mem)$/\1-\2/p' /proc/iomem); do
		vm="$vm $((0x${r%-*} / bs))-$((0x${r#*-} / bs))"
	done
	# One awk over every block's state, valid_zones and usage: one line
	# "N=ZONE:vmem|boot:free:movable:unmovable:pinned:offline" per online
	# block (pages), in one write.
	set -- $mem/memory[0-9]*
	awk -v up="$(uptime_s)" -v vm="$vm" '
	     { b = FILENAME; sub(".*/memory", "", b); f = b; sub("/.*", "", b); sub(".*/", "", f) }
	     FNR == 1 && f == "state" { order[++n] = b; st[b] = $1 }
	     FNR == 1 && f == "valid_zones" { zone[b] = $1 }
	     f == "usage" { u[b] = u[b] ":" $2 }
	     END { nr = split(vm, r, " ")
	           line = "MEMTIDE-BLOCKS uptime=" up
	           for (i = 1; i <= n; i++) {
	               b = order[i]
	               if (st[b] != "online") continue
	               kind = "boot"
	               for (j = 1; j <= nr; j++) {
	                   split(r[j], lim, "-")
	                   if (b + 0 >= lim[1] + 0 && b + 0 <= lim[2] + 0) kind = "vmem"
	               }
	               line = line " " b "=" zone[b] ":" kind u[b]
	           }
	           print line }' \
		$(for b in "$@"; do echo "$b/state $b/valid_zones $b/usage"; done)
}
if [ "$mm_stat" != 0 ]; then
	if [ -r $pr/reported_bytes ] && [ -r $mem/memory0/usage ]; then
		( while :; do mm_stat_once; sleep "$mm_stat"; done ) &
	else
		echo "MEMTIDE-MMSTAT unavailable: kernel $kver has no $pr/reported_bytes or memoryN/usage (not the patched kernel)"
	fi
fi

if [ -n "$workload" ]; then
	( /bin/memtide-workload --cache-dir "$cache_dir" --reserve "$reserve" "$workload"; exit_marker WORKLOAD $? ) &
fi

# Reap orphans forever; PID 1 must not exit.
while :; do
	wait
	sleep 3600
done
