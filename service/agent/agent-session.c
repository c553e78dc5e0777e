/* agent-session.c: framing, rate limit, hello gating and the checks that
 * need more than one line (see agent-session.h). */
#define G_LOG_DOMAIN "memtide-agent-session"

#include <string.h>

#include "agent-session.h"
#include "model.h"
#include "token-bucket.h"

/* Two full lines: one being completed, one being read behind it. */
#define BUF_SIZE (2 * MT_AGENT_LINE_MAX)
/* One-second slots: more than any host_window. */
#define HOST_RING 64
/* MemTotal is always below the hypervisor's size (the guest kernel keeps
 * some for itself); the slack only absorbs rounding between the two. */
#define HOST_SLACK_MIN (16 * MT_MIB)
#define HOST_SLACK_DIV 64

/* Counters that never decrease within one guest boot. */
enum {
  C_PGMAJFAULT,
  C_PSWPIN,
  C_PSWPOUT,
  C_OOM_KILL,
  C_PSI_SOME,
  C_PSI_FULL,
  C_REPORTED_TOTAL,
  C_REUSED_TOTAL,
  C_PASSES,
  C_BUDGET_EXHAUSTED,
  C_MONO_US,
  C_N
};

static const char *const counter_names[C_N] = {
  "vmstat.pgmajfault",
  "vmstat.pswpin_bytes",
  "vmstat.pswpout_bytes",
  "vmstat.oom_kill",
  "psi.some.total_us",
  "psi.full.total_us",
  "page_reporting.reported_total_bytes",
  "page_reporting.reused_total_bytes",
  "page_reporting.passes",
  "page_reporting.budget_exhausted",
  "mono_us",
};

struct _MtAgentSession {
  MtAgentSessionConfig cfg;

  char buf[BUF_SIZE];
  gsize start;          /* first unconsumed byte */
  gsize len;            /* end of the buffered bytes */
  gboolean open;        /* FALSE after a violation, until the next connect */
  gboolean got_hello;   /* on this connection */
  MtTokenBucket bucket; /* of lines */

  guint64 max_memory;
  struct {
    gint64 time;
    guint64 size;
  } host[HOST_RING];
  guint host_next;
  gint64 disbelief_since;

  /* Times of the last agent restarts and guest reboots, a ring. */
  gint64 restarts[MT_AGENT_SESSION_RESTARTS_MAX];
  guint restart_next;

  /* Baselines, kept across reconnects; reset when the guest reboots. */
  guint64 counter[C_N]; /* MT_UNKNOWN = none yet */
  guint64 seq;          /* of this agent process, 0 = none */
  guint64 dropped;
  char boot_id[37];
  gboolean have_hello;
  MtAgentReport hello;
  gboolean have_good;
  MtAgentReport good;
  gint64 good_time;
  guint64 interval_ms;

  MtAgentMsg msg; /* the line being looked at */
  MtAgentSessionStats stats;
};

void
mt_agent_session_config_init (MtAgentSessionConfig *cfg)
{
  *cfg = (MtAgentSessionConfig){
    .rate = 20.0,
    .burst = 50.0,
    .fresh_min = 3 * G_USEC_PER_SEC,
    .fresh_intervals = 3,
    .disbelief_limit = 10 * G_USEC_PER_SEC,
    .host_window = 10 * G_USEC_PER_SEC,
    .max_restarts = 10,
    .restart_window = 60 * G_USEC_PER_SEC,
  };
}

static void
reset_baselines (MtAgentSession *s)
{
  for (guint i = 0; i < C_N; i++)
    s->counter[i] = MT_UNKNOWN;
  s->seq = 0;
  s->dropped = 0;
}

MtAgentSession *
mt_agent_session_new (const MtAgentSessionConfig *cfg)
{
  MtAgentSession *s = g_new0 (MtAgentSession, 1);

  if (cfg)
    s->cfg = *cfg;
  else
    mt_agent_session_config_init (&s->cfg);
  s->max_memory = MT_UNKNOWN;
  for (guint i = 0; i < HOST_RING; i++)
    s->host[i].time = MT_TIME_NEVER;
  s->cfg.max_restarts = MIN (s->cfg.max_restarts, MT_AGENT_SESSION_RESTARTS_MAX - 1);
  s->disbelief_since = MT_TIME_NEVER;
  for (guint i = 0; i < MT_AGENT_SESSION_RESTARTS_MAX; i++)
    s->restarts[i] = MT_TIME_NEVER;
  s->good_time = MT_TIME_NEVER;
  s->stats.last_violation_time = MT_TIME_NEVER;
  s->stats.last_report_time = MT_TIME_NEVER;
  s->interval_ms = 1000;
  reset_baselines (s);
  return s;
}

void
mt_agent_session_free (MtAgentSession *s)
{
  g_free (s);
}

void
mt_agent_session_connected (MtAgentSession *s, gint64 now)
{
  s->start = s->len = 0;
  s->open = TRUE;
  s->got_hello = FALSE;
  mt_token_bucket_init (&s->bucket, s->cfg.burst, s->cfg.rate);
  s->bucket.time = now;
  s->disbelief_since = MT_TIME_NEVER;
}

char *
mt_agent_session_buffer (MtAgentSession *s, gsize *space)
{
  if (!s->open) {
    *space = 0;
    return s->buf;
  }
  if (s->start > 0) {
    memmove (s->buf, s->buf + s->start, s->len - s->start);
    s->len -= s->start;
    s->start = 0;
  }
  *space = BUF_SIZE - s->len;
  return s->buf + s->len;
}

void
mt_agent_session_commit (MtAgentSession *s, gsize n)
{
  g_return_if_fail (n <= BUF_SIZE - s->len);
  s->len += n;
}

/* ---- host view ------------------------------------------------------------ */

/* One slot per second (the largest size seen in it), so frequent calls
 * cannot push the window's older, larger sizes out of the ring. */
void
mt_agent_session_set_host (MtAgentSession *s, guint64 max_memory, guint64 current, gint64 now)
{
  guint last = (s->host_next + HOST_RING - 1) % HOST_RING;

  s->max_memory = max_memory;
  if (current == MT_UNKNOWN)
    return;
  if (s->host[last].time != MT_TIME_NEVER && now >= s->host[last].time
      && now - s->host[last].time < G_USEC_PER_SEC) {
    s->host[last].size = MAX (s->host[last].size, current);
    return;
  }
  s->host[s->host_next].time = now;
  s->host[s->host_next].size = current;
  s->host_next = (s->host_next + 1) % HOST_RING;
}

/* The largest size the hypervisor showed in the window, MT_UNKNOWN if none. */
static guint64
host_ceiling (const MtAgentSession *s, gint64 now)
{
  guint64 ceiling = MT_UNKNOWN;

  for (guint i = 0; i < HOST_RING; i++) {
    if (s->host[i].time == MT_TIME_NEVER || mt_elapsed (now, s->host[i].time) > s->cfg.host_window)
      continue;
    if (ceiling == MT_UNKNOWN || s->host[i].size > ceiling)
      ceiling = s->host[i].size;
  }
  return ceiling;
}

/* ---- checks across reports ------------------------------------------------- */

static void
get_counters (const MtAgentReport *r, guint64 *c)
{
  c[C_PGMAJFAULT] = r->has_vmstat ? r->vmstat.pgmajfault : MT_UNKNOWN;
  c[C_PSWPIN] = r->has_vmstat ? r->vmstat.pswpin_bytes : MT_UNKNOWN;
  c[C_PSWPOUT] = r->has_vmstat ? r->vmstat.pswpout_bytes : MT_UNKNOWN;
  c[C_OOM_KILL] = r->has_vmstat ? r->vmstat.oom_kill : MT_UNKNOWN;
  c[C_PSI_SOME] = r->has_psi ? r->psi_some.total_us : MT_UNKNOWN;
  c[C_PSI_FULL] = r->has_psi ? r->psi_full.total_us : MT_UNKNOWN;
  c[C_REPORTED_TOTAL] = r->has_page_reporting ? r->page_reporting.reported_total_bytes : MT_UNKNOWN;
  c[C_REUSED_TOTAL] = r->has_page_reporting ? r->page_reporting.reused_total_bytes : MT_UNKNOWN;
  c[C_PASSES] = r->has_page_reporting ? r->page_reporting.passes : MT_UNKNOWN;
  c[C_BUDGET_EXHAUSTED] = r->has_page_reporting ? r->page_reporting.budget_exhausted : MT_UNKNOWN;
  c[C_MONO_US] = r->mono_us;
}

typedef enum {
  CHECK_OK,
  CHECK_STALE,
  CHECK_VIOLATION,
} CheckResult;

/* One more agent restart or guest reboot at `now`: FALSE when that makes
 * more than max_restarts within restart_window.  Kept across connects,
 * so reconnecting does not start the count again. */
static gboolean
restart_allowed (MtAgentSession *s, gint64 now, MtAgentEvent *ev)
{
  guint within = 1;

  for (guint i = 0; i < MT_AGENT_SESSION_RESTARTS_MAX; i++)
    within +=
      s->restarts[i] != MT_TIME_NEVER && mt_elapsed (now, s->restarts[i]) < s->cfg.restart_window;
  s->restarts[s->restart_next] = now;
  s->restart_next = (s->restart_next + 1) % MT_AGENT_SESSION_RESTARTS_MAX;
  if (within <= s->cfg.max_restarts)
    return TRUE;
  mt_agent_problem_set (&ev->problem, MT_AGENT_ERR_RESTARTS, NULL,
                        "%u agent restarts and guest reboots within %" G_GINT64_FORMAT
                        " s (at most %u)",
                        within, s->cfg.restart_window / G_USEC_PER_SEC, s->cfg.max_restarts);
  return FALSE;
}

/* Sequence, boot and counters.  Baselines only move forward; a counter a
 * report leaves out keeps its baseline, so leaving it out once does not
 * excuse a lower value later. */
static CheckResult
check_sequence (MtAgentSession *s, const MtAgentReport *r, gint64 now, MtAgentEvent *ev)
{
  guint64 c[C_N];
  gboolean new_process = FALSE;

  if (r->hello) {
    gboolean rebooted = r->boot_id[0] && s->boot_id[0] && strcmp (r->boot_id, s->boot_id) != 0;

    new_process = s->seq != 0 && r->seq <= s->seq;
    if ((rebooted || new_process) && !restart_allowed (s, now, ev))
      return CHECK_VIOLATION;
    if (rebooted || (new_process && (!r->boot_id[0] || !s->boot_id[0]))) {
      /* Rebooted, or a new agent process where either boot id is
       * unknown, so a reboot cannot be ruled out: the kernel counters
       * may have started again. */
      reset_baselines (s);
    } else if (new_process) {
      s->seq = 0;
      s->dropped = 0;
    }
    ev->rebooted = rebooted;
    ev->restarted = new_process && !rebooted;
    if (rebooted)
      s->stats.guest_reboots++;
    else if (new_process)
      s->stats.agent_restarts++;
  } else if (s->seq != 0 && r->seq <= s->seq) {
    /* The agent writes a periodic report that waited behind replies
     * after them: older than what we have, so not used. */
    return CHECK_STALE;
  }

  if (r->dropped < s->dropped) {
    mt_agent_problem_set (&ev->problem, MT_AGENT_ERR_REGRESSED, "dropped",
                          "dropped went from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                          " within one agent process",
                          s->dropped, r->dropped);
    return CHECK_VIOLATION;
  }
  get_counters (r, c);
  for (guint i = 0; i < C_N; i++) {
    if (c[i] == MT_UNKNOWN || s->counter[i] == MT_UNKNOWN || c[i] >= s->counter[i])
      continue;
    mt_agent_problem_set (&ev->problem, MT_AGENT_ERR_REGRESSED, counter_names[i],
                          "%s went from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                          " without a reboot",
                          counter_names[i], s->counter[i], c[i]);
    return CHECK_VIOLATION;
  }
  for (guint i = 0; i < C_N; i++)
    if (c[i] != MT_UNKNOWN)
      s->counter[i] = c[i];
  s->seq = r->seq;
  s->dropped = r->dropped;
  if (r->hello) {
    g_strlcpy (s->boot_id, r->boot_id, sizeof s->boot_id);
    s->hello = *r;
    s->have_hello = TRUE;
    s->interval_ms = r->interval_ms;
  }
  return CHECK_OK;
}

/* MemTotal against the hypervisor.  The guest's view lags a resize, so a
 * contradiction is first only disbelieved (not used); one that lasts
 * disbelief_limit is a lie. */
static CheckResult
check_host (MtAgentSession *s, const MtAgentReport *r, gint64 now, MtAgentEvent *ev)
{
  guint64 ceiling = host_ceiling (s, now), bound;

  ev->believed = TRUE;
  if (!r->has_mem || r->mem.total == MT_UNKNOWN || ceiling == MT_UNKNOWN) {
    s->disbelief_since = MT_TIME_NEVER;
    return CHECK_OK;
  }
  bound = mt_sat_add (ceiling, MAX (HOST_SLACK_MIN, ceiling / HOST_SLACK_DIV));
  if (r->mem.total <= bound) {
    s->disbelief_since = MT_TIME_NEVER;
    return CHECK_OK;
  }
  mt_agent_problem_set (&ev->problem, MT_AGENT_ERR_INCONSISTENT, "mem.total",
                        "mem.total %" G_GUINT64_FORMAT " MiB > the VM's size %" G_GUINT64_FORMAT
                        " MiB as the hypervisor sees it",
                        r->mem.total / MT_MIB, ceiling / MT_MIB);
  if (s->disbelief_since == MT_TIME_NEVER)
    s->disbelief_since = now;
  if (mt_elapsed (now, s->disbelief_since) >= s->cfg.disbelief_limit) {
    g_strlcat (ev->problem.message, " (for too long)", sizeof ev->problem.message);
    return CHECK_VIOLATION;
  }
  ev->believed = FALSE;
  return CHECK_OK;
}

/* ---- lines ---------------------------------------------------------------- */

static gboolean
violation (MtAgentSession *s, gint64 now, MtAgentEvent *ev)
{
  ev->kind = MT_AGENT_EVENT_VIOLATION;
  ev->report = NULL;
  s->open = FALSE;
  s->got_hello = FALSE;
  s->start = s->len = 0;
  s->stats.violations++;
  if (ev->problem.code > MT_AGENT_OK && ev->problem.code < MT_AGENT_ERR_COUNT)
    s->stats.violations_by_code[ev->problem.code]++;
  s->stats.last_violation = ev->problem;
  s->stats.last_violation_time = now;
  return TRUE;
}

void
mt_agent_session_violation (MtAgentSession *s, const MtAgentProblem *problem, gint64 now)
{
  MtAgentEvent ev = { .problem = *problem };

  violation (s, now, &ev);
}

static gboolean
blank (const char *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
      return FALSE;
  return TRUE;
}

gboolean
mt_agent_session_next (MtAgentSession *s, gint64 now, MtAgentEvent *ev)
{
  MtAgentLimits limits;

  memset (ev, 0, sizeof *ev);
  while (s->open) {
    const char *line = s->buf + s->start;
    const char *nl = memchr (line, '\n', s->len - s->start);
    gsize n;

    if (nl == NULL) {
      if (s->len - s->start >= MT_AGENT_LINE_MAX) {
        mt_agent_problem_set (&ev->problem, MT_AGENT_ERR_TOO_LONG, NULL,
                              "no newline within %d bytes", MT_AGENT_LINE_MAX);
        s->stats.bytes += s->len - s->start;
        return violation (s, now, ev);
      }
      return FALSE;
    }
    n = (gsize) (nl - line);
    s->start += n + 1;
    s->stats.lines++;
    s->stats.bytes += n + 1;
    if (!mt_token_bucket_take (&s->bucket, now)) {
      mt_agent_problem_set (&ev->problem, MT_AGENT_ERR_RATE, NULL,
                            "more than %.0f lines/s (burst %.0f)", s->cfg.rate, s->cfg.burst);
      return violation (s, now, ev);
    }
    if (n + 1 > MT_AGENT_LINE_MAX) {
      mt_agent_problem_set (&ev->problem, MT_AGENT_ERR_TOO_LONG, NULL,
                            "line of %" G_GSIZE_FORMAT " bytes", n + 1);
      return violation (s, now, ev);
    }
    if (blank (line, n))
      continue;

    limits.max_memory = s->max_memory;
    if (!mt_agent_parse_line (line, n, &limits, &s->msg, &ev->problem)) {
      /* Before the hello it may be the tail of an old line. */
      if (!s->got_hello) {
        s->stats.discarded++;
        continue;
      }
      return violation (s, now, ev);
    }
    if (!s->got_hello) {
      if (s->msg.kind != MT_AGENT_MSG_REPORT || !s->msg.report.hello) {
        s->stats.discarded++;
        continue;
      }
      s->got_hello = TRUE;
      ev->first_hello = TRUE;
    }

    if (s->msg.kind == MT_AGENT_MSG_REPLY) {
      s->stats.replies++;
      ev->kind = MT_AGENT_EVENT_REPLY;
      ev->reply = s->msg.reply;
      return TRUE;
    }

    switch (check_sequence (s, &s->msg.report, now, ev)) {
    case CHECK_STALE:
      s->stats.stale++;
      continue;
    case CHECK_VIOLATION:
      return violation (s, now, ev);
    case CHECK_OK:
      break;
    }
    if (check_host (s, &s->msg.report, now, ev) == CHECK_VIOLATION)
      return violation (s, now, ev);
    s->stats.reports++;
    s->stats.last_report_time = now;
    if (ev->believed) {
      s->good = s->msg.report;
      s->have_good = TRUE;
      s->good_time = now;
    } else {
      s->stats.disbelieved++;
    }
    ev->kind = MT_AGENT_EVENT_REPORT;
    ev->report = &s->msg.report;
    return TRUE;
  }
  return FALSE;
}

/* ---- queries ---------------------------------------------------------------- */

gint64
mt_agent_session_fresh_limit (const MtAgentSession *s)
{
  return MAX (s->cfg.fresh_min, (gint64) s->cfg.fresh_intervals * (gint64) s->interval_ms * 1000);
}

const MtAgentReport *
mt_agent_session_latest (const MtAgentSession *s, gint64 now)
{
  if (!s->got_hello || !s->have_good
      || mt_elapsed (now, s->good_time) > mt_agent_session_fresh_limit (s))
    return NULL;
  return &s->good;
}

gboolean
mt_agent_session_alive (const MtAgentSession *s, gint64 now)
{
  return s->got_hello
         && mt_elapsed (now, s->stats.last_report_time) <= mt_agent_session_fresh_limit (s);
}

const MtAgentReport *
mt_agent_session_hello (const MtAgentSession *s)
{
  return s->have_hello ? &s->hello : NULL;
}

gboolean
mt_agent_session_has_hello (const MtAgentSession *s)
{
  return s->got_hello;
}

void
mt_agent_session_get_stats (const MtAgentSession *s, MtAgentSessionStats *out)
{
  *out = s->stats;
}
