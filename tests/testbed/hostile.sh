#!/bin/sh
# /bin/memtide-hostile ITEM...: a hostile guest agent for the e2e fault
# suite (tests/e2e/test-faults.py), started by /init with
# memtide.hostile=ITEM,ITEM,... in a guest without memtide-agent.  The
# items (payloads below): nul huge json nulline deep range regress flood.
#
# It opens the agent's virtio-serial port (org.memtide.agent.0) for
# writing only and never reads what the host sends, then writes the
# items down it, each as fast as the guest can.  A write on that port
# blocks while the host end is not connected, so each item waits for
# memtided to connect again after closing the link for the previous
# one: one item per connection.  Each item is
#   1. an interlude: an empty line, a hello and 32 honest reports in one
#      burst (within the link's burst of 50 lines), so that the payload
#      comes after a hello on its connection (before one, memtided only
#      discards a bad line); the streak of violations ends only after
#      60 s clean on one connection (docs/agent-link.md), so each item's
#      back-off doubles: 10, 20, 40 s for four items;
#   2. the hostile payload, after which memtided must close the link and
#      count a violation of the kind named;
#   3. a 2 s pause, so that the close has reached the guest (its port
#      sees the host disconnect) before the next interlude is written.
# Console lines: MEMTIDE-HOSTILE item=NAME expect=KIND bytes=N uptime=U
# before each payload, MEMTIDE-HOSTILE-DONE items=N uptime=U at the end.
#
# The reports carry no boot_id and seq rises across the whole run, so
# memtided sees one agent process: a lower mono_us later is a clock
# going back within one boot.

port=
for n in /sys/class/virtio-ports/*/name; do
	[ -r "$n" ] && [ "$(cat "$n")" = org.memtide.agent.0 ] &&
		port=/dev/$(basename "$(dirname "$n")")
done
if [ -z "$port" ]; then
	echo "MEMTIDE-GUEST-ERROR memtide-hostile: no virtio-serial port org.memtide.agent.0"
	exit 1
fi
# Write only: nothing the host sends is ever read.
if ! exec 3>"$port"; then
	echo "MEMTIDE-GUEST-ERROR memtide-hostile: cannot open $port"
	exit 1
fi

seq=0
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# The guest clock in microseconds (CLOCK_MONOTONIC and /proc/uptime
# both count from boot), never below the last one sent: /proc/uptime
# moves in 10 ms steps.
last_mono=0
mono_us() {
	now=$(awk '{ printf "%.0f", $1 * 1000000 }' /proc/uptime)
	[ "$now" -gt "$last_mono" ] || now=$((last_mono + 1))
	echo "$now"
}

# The interlude, in one awk so that it leaves in one burst.
interlude() {
	mono=$(mono_us)
	awk -v seq="$seq" -v mono="$mono" 'BEGIN {
		printf "\n{\"v\":1,\"type\":\"report\",\"seq\":%d,\"reason\":\"connect\",\"mono_us\":%.0f,\"hello\":true,\"agent\":\"memtide-hostile\",\"page_size\":4096,\"interval_ms\":1000,\"psi_mode\":\"none\",\"dropped\":0}\n", seq + 1, mono
		for (i = 2; i <= 33; i++)
			printf "{\"v\":1,\"type\":\"report\",\"seq\":%d,\"reason\":\"tick\",\"mono_us\":%.0f,\"dropped\":0}\n", seq + i, mono + i
	}' >&3
	seq=$((seq + 33))
	last_mono=$((mono + 33))
}

# One valid-looking report line with extra members ($1) and the next seq.
report() {
	seq=$((seq + 1))
	last_mono=$(mono_us)
	printf '{"v":1,"type":"report","seq":%d,"reason":"tick","mono_us":%s,"dropped":0%s}\n' \
		"$seq" "$last_mono" "$1"
}

payload() {
	case "$1" in
	# 16 KiB of NUL bytes and no newline.
	nul) head -c 16384 /dev/zero ;;
	# One well-formed JSON line of 64 KiB, 16 times the bound.
	huge) awk 'BEGIN { s = "x"; while (length(s) < 65536) s = s s
	                   printf "{\"v\":1,\"type\":\"report\",\"pad\":\"%s\"}\n", s }' ;;
	# Invalid JSON: an object that never closes.
	json) seq=$((seq + 1))
		printf '{"v":1,"type":"report","seq":%d,\n' "$seq" ;;
	# A NUL byte inside an otherwise valid report.
	nulline) seq=$((seq + 1))
		printf '{"v":1,"type":"report","seq":%d,"reason":"tick","mono_us":1\000,"dropped":0}\n' \
			"$seq" ;;
	# Arrays nested 64 deep (a report needs 3).
	deep) awk 'BEGIN { for (i = 0; i < 64; i++) l = l "["; for (i = 0; i < 64; i++) r = r "]"
	                   printf "{\"v\":1,\"type\":\"report\",\"x\":%s%s}\n", l, r }' ;;
	# Numbers out of range: MemTotal of 2^63-1 bytes.
	range) report ',"mem":{"total":9223372036854775807,"free":0,"available":0}' ;;
	# The guest clock going back within one boot.
	regress) seq=$((seq + 1))
		printf '{"v":1,"type":"report","seq":%d,"reason":"tick","mono_us":1,"dropped":0}\n' \
			"$seq" ;;
	# A flood of valid reports, as fast as the guest writes: 25 times the
	# burst, and still small enough (about 40 KB) to leave in the one
	# connection that closes on it (the rest of a larger one waits for the
	# next connections, each of them then closed for it too, with a
	# doubled back-off).
	flood) mono=$(mono_us)
		awk -v seq="$seq" -v mono="$mono" 'BEGIN {
		for (i = 1; i <= 500; i++)
			printf "{\"v\":1,\"type\":\"report\",\"seq\":%d,\"reason\":\"tick\",\"mono_us\":%.0f,\"dropped\":0}\n", seq + i, mono + i }'
		seq=$((seq + 500))
		last_mono=$((mono + 500)) ;;
	esac
}

n=0
for name in "$@"; do
	case "$name" in
	nul | huge) kind=line_too_long ;;
	json | nulline) kind=malformed ;;
	deep) kind=too_deep ;;
	range) kind=inconsistent ;;
	regress) kind=regressed ;;
	flood) kind=rate ;;
	*)
		echo "MEMTIDE-GUEST-ERROR memtide-hostile: no item '$name'"
		continue
		;;
	esac
	interlude
	# Written to a file first: its size for the marker, then one copy
	# down the port at full speed.
	payload "$name" >/tmp/hostile.item
	echo "MEMTIDE-HOSTILE item=$name expect=$kind bytes=$(wc -c </tmp/hostile.item) uptime=$(uptime_s)"
	cat /tmp/hostile.item >&3
	n=$((n + 1))
	sleep 2
done
rm -f /tmp/hostile.item
echo "MEMTIDE-HOSTILE-DONE items=$n uptime=$(uptime_s)"
# Keep the port open, silent: the host sees a connected guest that says
# nothing more.
while :; do sleep 3600; done
