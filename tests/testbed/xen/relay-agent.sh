#!/bin/sh
# relay-agent.sh NAME: a stand-in for memtide-agent's xenstore transport,
# run in dom0 by driver-check.py.  The testbed's domU only prints its
# MemTotal and MemAvailable on its console once a second (domu-init.sh);
# this turns the newest of those lines into agent reports written to the
# domU's data/memtide/ keys, as the agent in the guest would write them,
# and answers the host's hello requests.  So the guest's numbers are
# real, the path from xenstore to memtided (watch, bridge, link) is the
# one a real agent uses, and only the writer is in dom0.
name=$1
d=$(xl domid "$name") || exit 1
p=/local/domain/$d/data/memtide
log=/var/log/xen/console/guest-$name.log
boot=aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaa$(printf %04x "$d")

mono() {
	u=$(cut -d' ' -f1 /proc/uptime)
	c=${u#*.}
	echo $((${u%.*} * 1000000 + ${c#0} * 10000))
}
hello() { # seq reason [id]
	id=${3:+,\"id\":$3}
	xenstore-write $p/hello "{\"v\":1,\"type\":\"report\",\"seq\":$1,\"reason\":\"$2\"$id,\"mono_us\":$(mono),\"hello\":true,\"agent\":\"xenbed relay-agent\",\"boot_id\":\"$boot\",\"page_size\":4096,\"interval_ms\":1000,\"psi_mode\":\"none\",\"unavailable\":[\"psi\",\"vmstat\",\"memory_blocks\",\"page_reporting\"],\"dropped\":0}"
}

seq=1
hello $seq connect
last=
# Cheap steps only: under TCG each process costs tens of ms, and a report
# later than the link's fresh limit makes memtided call the agent silent.
while xenstore-read /local/domain/$d/name >/dev/null 2>&1; do
	req=$(xenstore-read $p/request 2>/dev/null)
	if [ -n "$req" ] && [ "$req" != "$last" ]; then
		last=$req
		case "$req" in
		*'"op":"hello"'*)
			seq=$((seq + 1))
			hello $seq reply "$(echo "$req" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')"
			;;
		esac
	fi
	line=$(tail -n 3 "$log" | grep MEMTIDE-DOMU-MEMINFO | tail -n 1)
	total=$(echo "$line" | sed -n 's/.*total=\([0-9]*\).*/\1/p')
	avail=$(echo "$line" | sed -n 's/.*available=\([0-9]*\).*/\1/p')
	if [ -n "$total" ] && [ -n "$avail" ]; then
		seq=$((seq + 1))
		xenstore-write $p/report "{\"v\":1,\"type\":\"report\",\"seq\":$seq,\"reason\":\"tick\",\"mono_us\":$(mono),\"mem\":{\"total\":$((total * 1024)),\"available\":$((avail * 1024))},\"dropped\":0}"
	fi
	sleep 1
done
