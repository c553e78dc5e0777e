/* test-agent-log-limit.c: the bound on the log lines one guest can cause
 * (service/agent/agent-log-limit.h), with injected time. */
#include "agent-log-limit.h"
#include "model.h"

#define S G_USEC_PER_SEC

/* A guest that causes a line 19 times a second for ten minutes gets the
 * burst, then ten a minute, and every suppressed line is counted in the
 * summary before the next line logged. */
static void
test_flood (void)
{
  MtAgentLogLimit l;
  guint64 logged = 0, summaries = 0, summarised = 0, suppressed, total = 0;
  gint64 now = 1000 * S, since;

  mt_agent_log_limit_init (&l, 20, 10);
  for (guint i = 0; i < 19 * 600; i++, now += S / 19) {
    total++;
    if (!mt_agent_log_limit_take (&l, now, &suppressed, &since)) {
      g_assert_cmpuint (suppressed, ==, 0);
      continue;
    }
    logged++;
    if (suppressed > 0) {
      summaries++;
      summarised += suppressed;
      g_assert_cmpint (since, !=, MT_TIME_NEVER);
      /* A summary covers at most the 6 s a token takes to come back. */
      g_assert_cmpint (mt_elapsed (now, since), <=, 6 * S);
    }
  }
  g_test_message ("%" G_GUINT64_FORMAT " lines caused, %" G_GUINT64_FORMAT
                  " logged, %" G_GUINT64_FORMAT " summaries",
                  total, logged, summaries);
  /* 20 at once, then 10 a minute for 10 minutes. */
  g_assert_cmpuint (logged, <=, 20 + 10 * 10);
  g_assert_cmpuint (logged, >=, 20 + 10 * 10 - 1);
  g_assert_cmpuint (summaries, ==, logged - 20);
  /* Every line caused is either logged, summarised, or still waiting. */
  g_assert_cmpuint (logged + summarised, <=, total);
  g_assert_cmpuint (logged + summarised, >=, total - 6 * 19);
}

/* A guest that went quiet: its summary comes at the next tick a token
 * is there, not never. */
static void
test_flush (void)
{
  MtAgentLogLimit l;
  guint64 suppressed;
  gint64 now = 5 * S, since;

  mt_agent_log_limit_init (&l, 2, 10);
  g_assert_false (mt_agent_log_limit_flush (&l, now, &suppressed, &since));
  g_assert_true (mt_agent_log_limit_take (&l, now, &suppressed, &since));
  g_assert_true (mt_agent_log_limit_take (&l, now, &suppressed, &since));
  for (guint i = 0; i < 5; i++)
    g_assert_false (mt_agent_log_limit_take (&l, now + i, &suppressed, &since));
  /* No token yet: no summary either. */
  g_assert_false (mt_agent_log_limit_flush (&l, now + 5 * S, &suppressed, &since));
  g_assert_true (mt_agent_log_limit_flush (&l, now + 6 * S, &suppressed, &since));
  g_assert_cmpuint (suppressed, ==, 5);
  g_assert_cmpint (since, ==, now);
  /* Said once. */
  g_assert_false (mt_agent_log_limit_flush (&l, now + 60 * S, &suppressed, &since));
  g_assert_true (mt_agent_log_limit_take (&l, now + 60 * S, &suppressed, &since));
  g_assert_cmpuint (suppressed, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/log-limit/flood", test_flood);
  g_test_add_func ("/agent/log-limit/flush", test_flush);
  return g_test_run ();
}
