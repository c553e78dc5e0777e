/* agent-log-limit.h: a bound on the log lines one guest can cause.
 *
 * Whatever a guest's agent does (connects, hellos, reports that are not
 * believed, pressure triggers) may be logged, and a guest decides how
 * often it does it.  One MtAgentLogLimit per VM keeps those lines to a
 * token bucket (a burst, then so many a minute) and counts what it
 * suppressed, for one summary line once lines may be logged again.
 * Pure: the caller passes `now` (monotonic µs).
 *
 *   mt_agent_log_limit_init (&l, 20, 10);
 *   if (mt_agent_log_limit_take (&l, now, &suppressed, &since)) {
 *     if (suppressed)  log "N lines suppressed"
 *     log the line
 *   }
 *   each tick: if (mt_agent_log_limit_flush (&l, now, &suppressed, &since))
 *                log the summary
 */
#pragma once

#include <glib.h>

#include "token-bucket.h"

typedef struct {
  MtTokenBucket bucket; /* of lines */
  guint64 suppressed;
  gint64 suppressed_since; /* the first suppressed line since the last summary */
} MtAgentLogLimit;

void mt_agent_log_limit_init (MtAgentLogLimit *l, guint burst, guint per_minute);

/* Whether a line may be logged at `now` (it uses a token).  When it may
 * and lines were suppressed before it, *suppressed is how many and
 * *since when the first of them was (log that summary first: it costs no
 * token), else 0. */
gboolean mt_agent_log_limit_take (MtAgentLogLimit *l, gint64 now, guint64 *suppressed,
                                  gint64 *since);

/* For a quiet guest: TRUE when lines were suppressed and one may be
 * logged now (it uses a token); *suppressed is how many, *since when
 * the first of them was (monotonic µs). */
gboolean mt_agent_log_limit_flush (MtAgentLogLimit *l, gint64 now, guint64 *suppressed,
                                   gint64 *since);
