/* memtide-agent: PSI trigger, or polling in its place. */
#include "psi.h"

#include "caps.h"
#include "collect.h"
#include "paths.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

const char *
psi_mode_name (enum psi_mode m)
{
  switch (m) {
  case PSI_MODE_OFF:
    return "off";
  case PSI_MODE_TRIGGER:
    return "trigger";
  case PSI_MODE_POLL:
    return "poll";
  case PSI_MODE_NONE:
    break;
  }
  return "none";
}

static void
start_polling (struct psi_watch *p, const char *path)
{
  p->read_fd = open (path, O_RDONLY | O_CLOEXEC);
  if (p->read_fd < 0) {
    p->mode = PSI_MODE_NONE;
    return;
  }
  p->mode = PSI_MODE_POLL;
  p->ring_len = p->ring_next = 0;
  p->next_poll_us = 0;
}

void
psi_watch_open (struct psi_watch *p, bool full, uint32_t stall_us, uint32_t window_us,
                uint32_t *unavail)
{
  char path[PATH_MAX];
  struct statfs sf;
  const char *why = NULL;
  int fd;

  memset (p, 0, sizeof *p);
  p->trig_fd = p->read_fd = -1;
  p->full = full;
  p->stall_us = stall_us;
  p->window_us = window_us;
  unavail_set (unavail, UA_PSI_TRIGGER, 0);
  if (stall_us == 0) {
    p->mode = PSI_MODE_OFF;
    return;
  }
  snprintf (p->trigger, sizeof p->trigger, "%s %u %u", full ? "full" : "some", stall_us, window_us);
  if (rpath (path, sizeof path, "/proc/pressure/memory") < 0 || access (path, R_OK) < 0) {
    p->mode = PSI_MODE_NONE;
    p->trigger[0] = '\0';
    return;
  }

  fd = open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    why = errno == EACCES || errno == EPERM ? "needs root (CAP_SYS_RESOURCE)" : strerror (errno);
  } else if (fstatfs (fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC) {
    /* A fake tree: writing the trigger would only scribble on a file. */
    why = "not on procfs";
  } else if (write (fd, p->trigger, strlen (p->trigger) + 1) < 0) {
    /* The kernel overwrites the last byte written with NUL: the trigger
     * is written with its terminating NUL, as in the PSI documentation. */
    why = errno == EPERM ? "needs CAP_SYS_RESOURCE"
          : errno == EINVAL && window_us % 2000000 != 0
            ? "refused: without CAP_SYS_RESOURCE in the initial namespace, kernels >= 6.5 "
              "only accept windows that are multiples of 2 s"
            : strerror (errno);
  } else {
    p->trig_fd = fd;
    p->mode = PSI_MODE_TRIGGER;
    return;
  }
  if (fd >= 0)
    close (fd);
  log_warn ("PSI trigger \"%s\" unavailable (%s): polling %s every %u ms instead", p->trigger, why,
            path, window_us / 4000);
  unavail_set (unavail, UA_PSI_TRIGGER, 1);
  start_polling (p, path);
}

void
psi_watch_close (struct psi_watch *p)
{
  if (p->trig_fd >= 0)
    close (p->trig_fd);
  if (p->read_fd >= 0)
    close (p->read_fd);
  p->trig_fd = p->read_fd = -1;
}

void
psi_watch_trigger_failed (struct psi_watch *p, uint32_t *unavail)
{
  char path[PATH_MAX];

  psi_watch_close (p);
  log_warn ("PSI trigger failed: polling instead");
  unavail_set (unavail, UA_PSI_TRIGGER, 1);
  if (rpath (path, sizeof path, "/proc/pressure/memory") == 0)
    start_polling (p, path);
  else
    p->mode = PSI_MODE_NONE;
}

bool
psi_watch_poll (struct psi_watch *p, uint64_t now)
{
  char buf[512];
  struct psi_values v;
  const struct psi_line *l;
  uint64_t step = p->window_us / 4, oldest_total = 0, best_t = UINT64_MAX;
  bool found = false;

  p->next_poll_us = now + step;
  if (p->mode != PSI_MODE_POLL || pread_all (p->read_fd, buf, sizeof buf) < 0
      || !psi_parse (buf, &v))
    return false;
  l = p->full ? &v.full : &v.some;
  if (!l->have)
    return false;

  /* Stall accumulated over the last window: compare with the oldest
   * sample that is still inside it. */
  for (unsigned i = 0; i < p->ring_len; i++) {
    if (now - p->ring_t[i] <= p->window_us + step / 2 && p->ring_t[i] < best_t) {
      best_t = p->ring_t[i];
      oldest_total = p->ring_total[i];
      found = true;
    }
  }
  p->ring_t[p->ring_next] = now;
  p->ring_total[p->ring_next] = l->total_us;
  p->ring_next = (p->ring_next + 1) % PSI_RING;
  if (p->ring_len < PSI_RING)
    p->ring_len++;

  if (!found || l->total_us < oldest_total || l->total_us - oldest_total < p->stall_us)
    return false;
  if (p->last_fire_us && now - p->last_fire_us < p->window_us)
    return false;
  p->last_fire_us = now;
  return true;
}
