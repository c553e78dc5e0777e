/* memtide-agent: kernel uevents (netlink, no udev needed) tell the agent
 * when memory blocks are added, onlined or offlined and when virtio ports
 * come or go, so it need not rescan sysfs every second. */
#pragma once

enum { UEV_MEMORY = 1, UEV_VPORTS = 2 };

/* A non-blocking socket, or -1 (then the caller rescans periodically). */
int uevent_open (void);
/* Reads every pending message; returns UEV_* bits seen (all bits when
 * messages were lost). */
unsigned uevent_drain (int fd);
