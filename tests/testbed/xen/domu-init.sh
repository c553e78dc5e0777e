#!/bin/sh
# /init of a Xen testbed PV domU (busybox initramfs inside dom0's archive).
# Prints a ready marker and its memory once a second on hvc0, which
# xenconsoled logs in dom0.

/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

mem() { awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print "total=" t " available=" a}' /proc/meminfo; }
echo "MEMTIDE-DOMU-READY kernel=$(uname -r) $(mem) uptime=$(cut -d' ' -f1 /proc/uptime)"
while :; do
	echo "MEMTIDE-DOMU-MEMINFO $(mem)"
	sleep 1
done
