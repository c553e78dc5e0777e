/* memtide-agent: host requests (host -> agent) and the replies to them.
 * A request is one JSON object per line; everything in it is bounded and
 * validated here, before any of it is acted on. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQ_ID_MAX                 4294967295ull
#define REQ_OP_MAX                 32
#define RECLAIM_BYTES_MAX          (1ull << 40) /* 1 TiB */
#define RECLAIM_TIMEOUT_MS_DEFAULT 10000u
#define RECLAIM_TIMEOUT_MS_MAX     60000u
#define INTERVAL_MS_MIN            100u
#define INTERVAL_MS_MAX            60000u
/* The memtide kernel patches' ranges (Documentation/ABI). */
#define REPORTING_DELAY_MS_MIN 10u
#define REPORTING_DELAY_MS_MAX 60000u
#define REPORTING_DIVISOR_MIN  1u
#define REPORTING_DIVISOR_MAX  1024u

enum req_op { OP_HELLO, OP_REPORT, OP_RECLAIM, OP_SET_INTERVAL, OP_TUNE_REPORTING };

struct request {
  enum req_op op;
  uint64_t id;
  uint64_t bytes;                        /* reclaim */
  bool allow_drop_caches;                /* reclaim */
  uint32_t timeout_ms;                   /* reclaim */
  uint32_t interval_ms;                  /* set_interval */
  bool has_delay_ms, has_budget_divisor; /* tune_reporting: at least one */
  uint32_t delay_ms, budget_divisor;     /* tune_reporting */
};

struct req_error {
  const char *code;  /* stable token, see docs/agent-protocol.md */
  const char *field; /* offending field or NULL */
  char message[160];
  char op[REQ_OP_MAX + 1]; /* echoed when it was a valid op string */
  bool has_id;
  uint64_t id;
};

/* line excludes the newline.  0 and *req filled, or -1 and *err filled. */
int request_parse (const char *line, size_t len, struct request *req, struct req_error *err);

/* Fill *err (id/op kept as they are).  Returns -1 for convenience. */
int req_fail (struct req_error *err, const char *code, const char *field, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

struct reclaim_result {
  const char *method; /* "memory.reclaim" | "drop_caches" */
  uint64_t requested;
  uint64_t reclaimed;
  bool complete;
  bool timed_out;
  uint64_t elapsed_ms;
  int stop_errno; /* why it stopped early (0 if it did not) */
};

/* Each returns the line length (newline included) or -1. */
int reply_error (char *buf, size_t cap, const struct req_error *err);
int reply_reclaim (char *buf, size_t cap, uint64_t id, const struct reclaim_result *r);
int reply_set_interval (char *buf, size_t cap, uint64_t id, uint32_t interval_ms);
int reply_tune_reporting (char *buf, size_t cap, uint64_t id, uint32_t delay_ms,
                          uint32_t budget_divisor);
