/* memtide-agent: reclaim guest memory on the host's request, through
 * cgroup v2 memory.reclaim (proactive reclaim, Linux >= 5.19), or
 * /proc/sys/vm/drop_caches when the request allows it.  Work is done in
 * bounded steps so reports keep flowing during a long reclaim. */
#pragma once

#include "collect.h"
#include "request.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

/* One write to memory.reclaim.  The kernel works until it has reclaimed
 * this much (or gives up with EAGAIN), so the step stays short. */
#define RECLAIM_CHUNK     (16ull << 20)
#define RECLAIM_CHUNK_MIN (1ull << 20)

struct reclaimer {
  char reclaim_path[PATH_MAX]; /* "" when there is no usable memory.reclaim */
  char drop_path[PATH_MAX];    /* "" when drop_caches is not usable */
  char mounted[PATH_MAX];      /* cgroup2 mount we made, "" if none */
  /* The request in flight. */
  bool busy;
  bool use_drop;   /* drop_caches instead of memory.reclaim */
  bool allow_drop; /* the request allows drop_caches */
  uint64_t id, want, done, chunk, start_us, deadline_us;
  int fd;
};

struct reclaim_opts {
  const char *cgroup_dir; /* --cgroup: use DIR/memory.reclaim as is */
  bool allow_mount;       /* mount cgroup2 if none is mounted */
};

void reclaim_probe (struct reclaimer *r, const struct reclaim_opts *o, uint32_t *unavail);
void reclaim_close (struct reclaimer *r);
/* At exit: also unmounts the cgroup2 the agent mounted, if any. */
void reclaim_cleanup (struct reclaimer *r);
uint32_t reclaim_methods (const struct reclaimer *r);

/* 0 when the request was accepted (reclaim_step() finishes it), -1 with
 * *err filled otherwise. */
int reclaim_start (struct reclaimer *r, const struct request *req, struct req_error *err);

/* Does one step.  Returns false while there is more to do; true when done,
 * with *res (ok) or *err (*failed = true) filled. */
bool reclaim_step (struct reclaimer *r, struct collector *c, uint64_t now_us,
                   struct reclaim_result *res, struct req_error *err, bool *failed);
