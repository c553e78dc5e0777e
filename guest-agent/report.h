/* memtide-agent: format a report (agent -> host) as one JSON line. */
#pragma once

#include "collect.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { RECLAIM_METHOD_MEMORY_RECLAIM = 1, RECLAIM_METHOD_DROP_CACHES = 2 };

/* Static facts sent in the first report of each connection. */
struct hello_info {
  const char *agent; /* "memtide-agent 0.1.0" */
  char kernel[65];   /* uname release; "" when unknown */
  char boot_id[37];  /* "" when unknown */
  uint64_t page_size;
  uint32_t interval_ms;
  const char *psi_mode;     /* "trigger" | "poll" | "off" | "none" */
  char psi_trigger[48];     /* "some 150000 1000000"; "" when off/none */
  uint32_t reclaim_methods; /* RECLAIM_METHOD_* bits */
  bool is_root;
  uint32_t unavail; /* UA_* bits */
};

struct report_meta {
  uint64_t seq;
  const char *reason; /* "tick" | "psi" | "memory" | "reply" */
  uint64_t mono_us;
  bool has_id;
  uint64_t id;
  uint64_t dropped;
  uint64_t page_size;
  const struct hello_info *hello; /* NULL except in hello reports */
};

/* Returns the line length (with its newline) or -1 if it does not fit. */
int report_format (char *buf, size_t cap, const struct sample *s, const struct report_meta *m);
