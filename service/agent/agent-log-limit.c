/* agent-log-limit.c: a token bucket on the log lines of one guest (see
 * agent-log-limit.h). */
#define G_LOG_DOMAIN "memtide-agent-log"

#include "agent-log-limit.h"
#include "model.h"

void
mt_agent_log_limit_init (MtAgentLogLimit *l, guint burst, guint per_minute)
{
  *l = (MtAgentLogLimit){ .suppressed_since = MT_TIME_NEVER };
  mt_token_bucket_init (&l->bucket, burst, per_minute / 60.0);
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
  if (!mt_token_bucket_take (&l->bucket, now)) {
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
  if (l->suppressed == 0 || !mt_token_bucket_take (&l->bucket, now))
    return FALSE;
  *suppressed = end_suppression (l);
  return TRUE;
}
