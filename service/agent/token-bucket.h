/* token-bucket.h: a token bucket on a guest's doings, in monotonic µs.
 *
 * The agent session limits the lines a guest sends with one, and the
 * daemon the log lines a guest causes with another (agent-log-limit.h).
 * A bucket starts full; `time` MT_TIME_NEVER means "not used yet".
 * Pure: the caller passes `now`. */
#pragma once

#include <glib.h>

#include "model.h"

typedef struct {
  double burst;  /* tokens it holds at most */
  double rate;   /* tokens added a second */
  double tokens; /* now */
  gint64 time;   /* when tokens was last brought up to date */
} MtTokenBucket;

static inline void
mt_token_bucket_init (MtTokenBucket *b, double burst, double rate)
{
  *b = (MtTokenBucket){ .burst = burst, .rate = rate, .tokens = burst, .time = MT_TIME_NEVER };
}

/* Whether a token was there at `now` (and is now used). */
static inline gboolean
mt_token_bucket_take (MtTokenBucket *b, gint64 now)
{
  gint64 dt = mt_elapsed (now, b->time);

  if (dt > 0) {
    b->tokens = MIN (b->burst, b->tokens + b->rate * (double) dt / G_USEC_PER_SEC);
    b->time = now;
  }
  /* Refills add up in floating point: a token the arithmetic says is
   * there must not be refused for a rounding error. */
  if (b->tokens < 1.0 - 1e-9)
    return FALSE;
  b->tokens -= 1.0;
  return TRUE;
}
