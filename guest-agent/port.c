/* memtide-agent: finding, opening and watching the virtio-serial port. */
#include "port.h"

#include "paths.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

/* Logs a problem when it differs from the last one logged. */
#define problem(p, ...) log_warn_changed ((p)->last_problem, sizeof (p)->last_problem, __VA_ARGS__)

void
port_init (struct port *p, const char *name, const char *fixed_path)
{
  memset (p, 0, sizeof *p);
  p->name = name;
  p->fixed_path = fixed_path;
  p->fd = -1;
  p->state = PORT_DOWN;
}

void
port_close (struct port *p)
{
  if (p->fd >= 0)
    close (p->fd);
  p->fd = -1;
  p->state = PORT_DOWN;
}

/* Finds vportNpM whose name is p->name; fills p->vport and p->rdev. */
static bool
find_by_name (struct port *p)
{
  char dir[PATH_MAX], path[PATH_MAX], buf[256];
  DIR *d;
  struct dirent *e;
  bool found = false;

  if (rpath (dir, sizeof dir, "/sys/class/virtio-ports") < 0 || !(d = opendir (dir))) {
    problem (p, "no virtio-serial ports (%s missing: is virtio_console loaded?)", dir);
    return false;
  }
  while (!found && (e = readdir (d))) {
    unsigned maj, min;
    char extra;
    if (e->d_name[0] == '.' || strlen (e->d_name) >= sizeof p->vport)
      continue;
    if (snprintf (path, sizeof path, "%s/%s/name", dir, e->d_name) >= (int) sizeof path
        || read_path (path, buf, sizeof buf) < 0 || strcmp (strip (buf), p->name) != 0)
      continue;
    if (snprintf (path, sizeof path, "%s/%s/dev", dir, e->d_name) >= (int) sizeof path
        || read_path (path, buf, sizeof buf) < 0
        || sscanf (strip (buf), "%u:%u%c", &maj, &min, &extra) != 2) {
      problem (p, "%s: cannot read device numbers", path);
      continue;
    }
    snprintf (p->vport, sizeof p->vport, "%s", e->d_name);
    p->rdev = makedev (maj, min);
    found = true;
  }
  closedir (d);
  if (!found)
    problem (p, "no virtio-serial port named %s (does the VM have the channel?)", p->name);
  return found;
}

static bool
node_matches (const char *node, dev_t rdev)
{
  struct stat st;

  return stat (node, &st) == 0 && S_ISCHR (st.st_mode) && st.st_rdev == rdev;
}

/* /dev/<vport>, created when missing (no udev).  When something else
 * already sits at that name, a private node under /run is used instead
 * of touching it. */
static bool
ensure_node (struct port *p)
{
  char dir[PATH_MAX];

  if (rpath (p->node, sizeof p->node, "/dev/%s", p->vport) < 0)
    return false;
  if (node_matches (p->node, p->rdev))
    return true;
  if (access (p->node, F_OK) == 0) {
    if (rpath (dir, sizeof dir, "/run/memtide-agent") < 0
        || rpath (p->node, sizeof p->node, "/run/memtide-agent/%s", p->vport) < 0)
      return false;
    if (mkdir (dir, 0700) < 0 && errno != EEXIST) {
      problem (p, "mkdir %s: %s", dir, strerror (errno));
      return false;
    }
    if (node_matches (p->node, p->rdev))
      return true;
    unlink (p->node);
  }
  if (mknod (p->node, S_IFCHR | 0600, p->rdev) < 0) {
    problem (p, "cannot create device node %s (%u:%u): %s%s", p->node, major (p->rdev),
             minor (p->rdev), strerror (errno), geteuid () != 0 ? " (not root)" : "");
    return false;
  }
  log_notice ("created device node %s (%u:%u)", p->node, major (p->rdev), minor (p->rdev));
  return true;
}

static int
open_socket (struct port *p)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (p->fixed_path) >= sizeof sa.sun_path) {
    problem (p, "%s: socket path too long", p->fixed_path);
    return -1;
  }
  strcpy (sa.sun_path, p->fixed_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0 || fd_set_flags (fd, true) < 0) {
    problem (p, "connect %s: %s", p->fixed_path, strerror (errno));
    close (fd);
    return -1;
  }
  return fd;
}

static enum port_state
probe_connected (struct port *p)
{
  struct pollfd pfd = { .fd = p->fd, .events = POLLOUT };

  if (poll (&pfd, 1, 0) < 0)
    return p->state;
  if (pfd.revents & POLLNVAL) {
    port_close (p);
    return PORT_DOWN;
  }
  if (pfd.revents & (POLLHUP | POLLERR)) {
    if (p->is_socket) {
      port_close (p);
      return PORT_DOWN;
    }
    return PORT_HUP;
  }
  return PORT_UP;
}

enum port_state
port_open (struct port *p)
{
  struct stat st;

  if (p->state != PORT_DOWN)
    return p->state;
  p->is_socket = false;
  if (p->fixed_path) {
    snprintf (p->node, sizeof p->node, "%s", p->fixed_path);
    if (stat (p->fixed_path, &st) < 0) {
      problem (p, "%s: %s", p->fixed_path, strerror (errno));
      return PORT_DOWN;
    }
    if (S_ISSOCK (st.st_mode)) {
      p->is_socket = true;
      p->fd = open_socket (p);
    } else {
      p->fd = open (p->fixed_path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    }
  } else {
    if (!find_by_name (p) || !ensure_node (p))
      return PORT_DOWN;
    p->fd = open (p->node, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  }
  if (p->fd < 0) {
    if (!p->is_socket)
      problem (p, "cannot open %s: %s%s", p->node, strerror (errno),
               errno == EBUSY ? " (another process has the port open)" : "");
    return PORT_DOWN;
  }
  p->last_problem[0] = '\0';
  p->state = PORT_HUP;
  p->state = probe_connected (p);
  log_notice ("opened %s (%s)%s", p->node, p->fixed_path ? "--port" : p->name,
              p->state == PORT_HUP ? "; host side not connected yet" : "");
  return p->state;
}

enum port_state
port_recheck (struct port *p)
{
  char path[PATH_MAX], buf[256];

  if (p->state != PORT_HUP)
    return p->state;
  /* Hot-unplugged ports vanish from sysfs; a later port with the same
   * name may come back under another vportNpM. */
  if (!p->fixed_path) {
    if (rpath (path, sizeof path, "/sys/class/virtio-ports/%s/name", p->vport) < 0
        || read_path (path, buf, sizeof buf) < 0 || strcmp (strip (buf), p->name) != 0) {
      log_notice ("port %s (%s) went away", p->name, p->vport);
      port_close (p);
      return port_open (p);
    }
  }
  p->state = probe_connected (p);
  if (p->state == PORT_UP)
    log_notice ("host side of %s connected", p->name ? p->name : p->node);
  return p->state;
}

void
port_hangup (struct port *p)
{
  if (p->state == PORT_DOWN)
    return;
  log_notice ("host side of %s disconnected", p->fixed_path ? p->node : p->name);
  if (p->is_socket)
    port_close (p);
  else
    p->state = PORT_HUP;
}

bool
port_named_exists (const char *name)
{
  char dir[PATH_MAX], path[PATH_MAX], buf[256];
  struct dirent *e;
  bool found = false;
  DIR *d;

  if (rpath (dir, sizeof dir, "/sys/class/virtio-ports") < 0 || !(d = opendir (dir)))
    return false;
  while (!found && (e = readdir (d))) {
    if (e->d_name[0] == '.')
      continue;
    found = snprintf (path, sizeof path, "%s/%s/name", dir, e->d_name) < (int) sizeof path
            && read_path (path, buf, sizeof buf) >= 0 && strcmp (strip (buf), name) == 0;
  }
  closedir (d);
  return found;
}

bool
port_xen_domu (void)
{
  char path[PATH_MAX], buf[256];

  if (rpath (path, sizeof path, "/sys/hypervisor/type") < 0 || read_path (path, buf, sizeof buf) < 0
      || strcmp (strip (buf), "xen") != 0)
    return false;
  if (rpath (path, sizeof path, "/dev/xen/xenbus") < 0 || access (path, F_OK) < 0)
    return false;
  return rpath (path, sizeof path, "/proc/xen/capabilities") < 0
         || read_path (path, buf, sizeof buf) < 0 || strstr (buf, "control_d") == NULL;
}
