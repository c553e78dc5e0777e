/* memtide-agent: kernel uevent listener. */
#include "uevent.h"

#include "util.h"

#include <errno.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
uevent_open (void)
{
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 /* kernel events */ };
  int fd = socket (AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);

  if (fd < 0)
    return -1;
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    close (fd);
    return -1;
  }
  return fd;
}

unsigned
uevent_drain (int fd)
{
  char buf[4096];
  unsigned bits = 0;

  for (int i = 0; i < 256; i++) {
    struct sockaddr_nl from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom (fd, buf, sizeof buf - 1, 0, (struct sockaddr *) &from, &fl);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == ENOBUFS)
        bits |= UEV_MEMORY | UEV_VPORTS;
      break;
    }
    /* Only the kernel (pid 0) speaks on this group: ignore anyone else. */
    if (fl != sizeof from || from.nl_pid != 0)
      continue;
    buf[n] = '\0';
    /* The header is "action@devpath". */
    if (strstr (buf, "@/devices/system/memory/"))
      bits |= UEV_MEMORY;
    else if (strstr (buf, "/virtio-ports/"))
      bits |= UEV_VPORTS;
  }
  return bits;
}
