/* memtide-agent: the virtio-serial port to the host.
 *
 * Found by name under /sys/class/virtio-ports/<vportNpM>/name; the device
 * node is /dev/<vportNpM>, created from the sysfs "dev" numbers when there
 * is no udev.  A virtio port stays open while the host end is not
 * connected: poll() then reports POLLHUP (and reads return 0) until the
 * host connects again, so the agent stops polling it and looks again at
 * each tick instead of spinning.  --port PATH replaces the search: a
 * character device behaves like a virtio port, a unix socket is connected
 * and reconnected after its peer closes. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

enum port_state { PORT_DOWN, PORT_HUP, PORT_UP };

struct port {
  const char *name;       /* port name to search, e.g. org.memtide.agent.0 */
  const char *fixed_path; /* --port, or NULL */
  enum port_state state;
  bool is_socket;
  int fd;
  char vport[64]; /* "vport1p1" when found by name */
  dev_t rdev;
  char node[PATH_MAX];    /* the path opened */
  char last_problem[160]; /* to say each problem once, not every tick */
};

void port_init (struct port *p, const char *name, const char *fixed_path);
/* DOWN -> find and open.  Returns the new state. */
enum port_state port_open (struct port *p);
/* HUP -> is the host end back, is the port still there?  New state. */
enum port_state port_recheck (struct port *p);
/* The host end went away (POLLHUP, EOF, EPIPE). */
void port_hangup (struct port *p);
void port_close (struct port *p);
/* A virtio-serial port with this name exists (quiet: nothing logged). */
bool port_named_exists (const char *name);
/* A Xen guest other than dom0: /sys/hypervisor/type is "xen",
 * /dev/xen/xenbus exists and /proc/xen/capabilities (if readable) has no
 * "control_d".  Under --root. */
bool port_xen_domu (void);
