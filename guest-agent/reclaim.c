/* memtide-agent: memory.reclaim / drop_caches.
 *
 * Where memory.reclaim is: it is a cgroup v2 file of the memory
 * controller and, unlike memory.high/max, it exists in the root cgroup
 * too (since 5.19, so on the 6.1 guests: /sys/fs/cgroup/memory.reclaim
 * when cgroup2 is mounted there and the memory controller is not bound to
 * a v1 hierarchy).  Writing N to the root's file reclaims N bytes from the
 * whole guest, page cache and (with swap) anon.  The kernel answers
 * -EAGAIN when it could not reclaim all of it; it never says how much it
 * did, so a chunk either counts whole or, on EAGAIN, not at all (the
 * chunk is then halved down to 1 MiB): the reply's "reclaimed" is a
 * lower bound.
 *
 * A guest booted from an initramfs has nothing mounted on /sys/fs/cgroup;
 * when allowed, the agent mounts cgroup2 there (and unmounts it if it
 * has no memory.reclaim). */
#include "reclaim.h"

#include "caps.h"
#include "paths.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* /proc/self/mounts escapes space, tab, newline and backslash as \ooo. */
static void
unescape_mount (char *s)
{
  char *o = s;

  while (*s) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0'
        && s[3] <= '7') {
      *o++ = (char) ((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
      s += 4;
    } else {
      *o++ = *s++;
    }
  }
  *o = '\0';
}

/* First cgroup2 mount with a memory.reclaim file; *any_cgroup2 tells
 * whether cgroup2 is mounted at all. */
static bool
find_in_mounts (char *out, size_t size, bool *any_cgroup2)
{
  char path[PATH_MAX], buf[65536];
  char *save = NULL;

  *any_cgroup2 = false;
  if (rpath (path, sizeof path, "/proc/self/mounts") < 0 || read_path (path, buf, sizeof buf) < 0)
    return false;
  for (char *line = strtok_r (buf, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
    char dev[256], mnt[1024], type[64];
    if (sscanf (line, "%255s %1023s %63s", dev, mnt, type) != 3 || strcmp (type, "cgroup2") != 0)
      continue;
    *any_cgroup2 = true;
    unescape_mount (mnt);
    if (rpath (out, size, "%s/memory.reclaim", strcmp (mnt, "/") == 0 ? "" : mnt) == 0
        && access (out, F_OK) == 0)
      return true;
  }
  return false;
}

static bool
dir_is_empty_unmounted (const char *dir, const char *parent)
{
  struct stat sd, sp;
  DIR *d;
  struct dirent *e;
  bool empty = true;

  if (stat (dir, &sd) < 0 || !S_ISDIR (sd.st_mode) || stat (parent, &sp) < 0
      || sd.st_dev != sp.st_dev)
    return false;
  d = opendir (dir);
  if (!d)
    return false;
  while ((e = readdir (d)))
    if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
      empty = false;
  closedir (d);
  return empty;
}

static void
try_mount (struct reclaimer *r)
{
  const char *dir = "/sys/fs/cgroup";

  if (!paths_real () || geteuid () != 0 || !dir_is_empty_unmounted (dir, "/sys/fs"))
    return;
  if (mount ("cgroup2", dir, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
    log_warn ("cannot mount cgroup2 on %s: %s", dir, strerror (errno));
    return;
  }
  snprintf (r->reclaim_path, sizeof r->reclaim_path, "%s/memory.reclaim", dir);
  if (access (r->reclaim_path, F_OK) == 0) {
    snprintf (r->mounted, sizeof r->mounted, "%s", dir);
    log_notice ("mounted cgroup2 on %s for memory.reclaim", dir);
    return;
  }
  r->reclaim_path[0] = '\0';
  umount2 (dir, MNT_DETACH);
  log_notice ("cgroup2 has no memory.reclaim here (memory controller bound to cgroup v1, "
              "disabled, or kernel < 5.19); unmounted it again");
}

void
reclaim_probe (struct reclaimer *r, const struct reclaim_opts *o, uint32_t *unavail)
{
  bool any = false;

  /* Also run again on SIGHUP: a request in flight keeps its fd. */
  r->reclaim_path[0] = r->drop_path[0] = '\0';
  if (!r->busy)
    r->fd = -1;
  if (o->cgroup_dir) {
    snprintf (r->reclaim_path, sizeof r->reclaim_path, "%s/memory.reclaim", o->cgroup_dir);
    if (access (r->reclaim_path, F_OK) < 0) {
      log_warn ("%s: %s", r->reclaim_path, strerror (errno));
      r->reclaim_path[0] = '\0';
    }
  } else if (!find_in_mounts (r->reclaim_path, sizeof r->reclaim_path, &any)) {
    r->reclaim_path[0] = '\0';
    if (!any && o->allow_mount && !r->mounted[0])
      try_mount (r);
    if (!r->reclaim_path[0])
      log_info ("no cgroup v2 memory.reclaim found%s", any ? "" : " (cgroup2 is not mounted)");
  }
  if (r->reclaim_path[0] && access (r->reclaim_path, W_OK) < 0) {
    log_warn ("%s is not writable: %s", r->reclaim_path, strerror (errno));
    r->reclaim_path[0] = '\0';
  }

  if (rpath (r->drop_path, sizeof r->drop_path, "/proc/sys/vm/drop_caches") < 0
      || access (r->drop_path, W_OK) < 0)
    r->drop_path[0] = '\0';

  unavail_set (unavail, UA_MEMORY_RECLAIM, !r->reclaim_path[0]);
  unavail_set (unavail, UA_DROP_CACHES, !r->drop_path[0]);
}

void
reclaim_close (struct reclaimer *r)
{
  if (r->fd >= 0)
    close (r->fd);
  r->fd = -1;
  r->busy = false;
}

void
reclaim_cleanup (struct reclaimer *r)
{
  reclaim_close (r);
  /* Leave the system as it was found: a busy mount simply stays. */
  if (r->mounted[0] && umount2 (r->mounted, 0) == 0)
    log_info ("unmounted cgroup2 from %s", r->mounted);
  r->mounted[0] = '\0';
}

uint32_t
reclaim_methods (const struct reclaimer *r)
{
  return (r->reclaim_path[0] ? 1u : 0u) | (r->drop_path[0] ? 2u : 0u);
}

int
reclaim_start (struct reclaimer *r, const struct request *req, struct req_error *err)
{
  if (r->busy)
    return req_fail (err, "busy", NULL, "reclaim request %llu is still running",
                     (unsigned long long) r->id);
  r->use_drop = false;
  r->allow_drop = req->allow_drop_caches;
  if (r->reclaim_path[0]) {
    r->fd = open (r->reclaim_path, O_WRONLY | O_CLOEXEC);
    if (r->fd < 0 && !(req->allow_drop_caches && r->drop_path[0]))
      return req_fail (err, "failed", NULL, "cannot open %s: %s", r->reclaim_path,
                       strerror (errno));
  }
  if (r->fd < 0) {
    if (!req->allow_drop_caches)
      return req_fail (err, "unavailable", NULL, "no cgroup v2 memory.reclaim in this guest%s",
                       r->drop_path[0] ? " (drop_caches not allowed by the request)" : "");
    if (!r->drop_path[0])
      return req_fail (err, "unavailable", NULL,
                       "neither memory.reclaim nor drop_caches is usable");
    r->use_drop = true;
  }
  r->busy = true;
  r->id = req->id;
  r->want = req->bytes;
  r->done = 0;
  r->chunk = RECLAIM_CHUNK;
  r->start_us = mono_us ();
  r->deadline_us = r->start_us + (uint64_t) req->timeout_ms * 1000;
  return 0;
}

static void
finish (struct reclaimer *r, uint64_t now, struct reclaim_result *res, int stop_errno)
{
  res->method = r->use_drop ? "drop_caches" : "memory.reclaim";
  res->requested = r->want;
  res->reclaimed = r->done;
  res->complete = r->done >= r->want;
  res->timed_out = !res->complete && now >= r->deadline_us && !stop_errno;
  res->elapsed_ms = (now - r->start_us) / 1000;
  res->stop_errno = stop_errno;
  if (r->fd >= 0)
    close (r->fd);
  r->fd = -1;
  r->busy = false;
}

/* drop_caches frees everything it can at once; what it freed is measured
 * as the rise of MemFree, an estimate (other tasks allocate meanwhile). */
static int
drop_caches (struct reclaimer *r, struct collector *c)
{
  uint64_t before = collector_mem_free (c), after;
  int fd = open (r->drop_path, O_WRONLY | O_CLOEXEC);
  int e;

  if (fd < 0)
    return -errno;
  e = write_all (fd, "3\n", 2);
  close (fd);
  if (e < 0)
    return e;
  after = collector_mem_free (c);
  r->done = after > before ? after - before : 0;
  return 0;
}

bool
reclaim_step (struct reclaimer *r, struct collector *c, uint64_t now, struct reclaim_result *res,
              struct req_error *err, bool *failed)
{
  char num[32];
  uint64_t chunk;
  int len, e;

  *failed = false;
  if (!r->busy)
    return false;
  if (r->use_drop) {
    e = drop_caches (r, c);
    if (e < 0) {
      reclaim_close (r);
      *failed = true;
      req_fail (err, "failed", NULL, "drop_caches: %s", strerror (-e));
      return true;
    }
    finish (r, mono_us (), res, 0);
    return true;
  }

  if (r->done >= r->want || now >= r->deadline_us) {
    finish (r, now, res, 0);
    return true;
  }
  chunk = r->want - r->done < r->chunk ? r->want - r->done : r->chunk;
  len = snprintf (num, sizeof num, "%llu\n", (unsigned long long) chunk);
  e = write_all (r->fd, num, (size_t) len);
  if (e == 0) {
    r->done += chunk;
    return false;
  }
  if (e == -EAGAIN && chunk > RECLAIM_CHUNK_MIN) {
    /* The kernel reclaimed less than the chunk, and does not say how
     * much: smaller steps keep the count close to what was done. */
    r->chunk = chunk / 2;
    return false;
  }
  if (e == -EAGAIN || r->done > 0) {
    /* The kernel found nothing more to reclaim: a normal end. */
    finish (r, mono_us (), res, -e);
    return true;
  }
  /* Nothing reclaimed and memory.reclaim refused outright. */
  close (r->fd);
  r->fd = -1;
  if (r->allow_drop && r->drop_path[0]) {
    log_info ("memory.reclaim failed (%s), falling back to drop_caches", strerror (-e));
    r->use_drop = true;
    return false;
  }
  r->busy = false;
  *failed = true;
  req_fail (err, "failed", NULL, "memory.reclaim: %s", strerror (-e));
  return true;
}
