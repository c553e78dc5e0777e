/* agent-log-limit.c: a token bucket on the log lines of one guest (see
 * agent-log-limit.h). */
#define G_LOG_DOMAIN "memtide-agent-log"

#include "agent-log-limit.h"
#include "model.h"

void
mt_agent_log_limit_init (MtAgentLogLimit *l, guint burst, guint per_minute)
{
  *l = (MtAgentLogLimit){
    .burst = burst,
    .per_minute = per_minute,
    .tokens = burst,
    .refilled = MT_TIME_NEVER,
    .suppressed_since = MT_TIME_NEVER,
  };
}

static gboolean
take_token (MtAgentLogLimit *l, gint64 now)
{
  if (l->refilled == MT_TIME_NEVER) {
    l->refilled = now;
  } else if (now > l->refilled) {
    double minutes = (double) (now - l->refilled) / (60.0 * G_USEC_PER_SEC);

    l->tokens = MIN (l->burst, l->tokens + minutes * l->per_minute);
    l->refilled = now;
  }
  if (l->tokens < 1.0)
    return FALSE;
  l->tokens -= 1.0;
  return TRUE;
}

static guint64
end_suppression (MtAgentLogLimit *l)
{
  guint64 n = l->suppressed;

  l->suppressed = 0;
  l->suppressed_since = MT_TIME_NEVER;
  return n;
}

gboolean
mt_agent_log_limit_take (MtAgentLogLimit *l, gint64 now, guint64 *suppressed, gint64 *since)
{
  *suppressed = 0;
  *since = l->suppressed_since;
  if (!take_token (l, now)) {
    if (l->suppressed++ == 0)
      l->suppressed_since = now;
    return FALSE;
  }
  *suppressed = end_suppression (l);
  return TRUE;
}

gboolean
mt_agent_log_limit_flush (MtAgentLogLimit *l, gint64 now, guint64 *suppressed, gint64 *since)
{
  *suppressed = 0;
  *since = l->suppressed_since;
  if (l->suppressed == 0 || !take_token (l, now))
    return FALSE;
  *suppressed = end_suppression (l);
  return TRUE;
}
