/* fuzz-agent-parse.c: libFuzzer target for the host side of the guest
 * agent protocol (service/agent/agent-json.c, agent-parse.c, agent-session.c).
 *
 * Each input is used twice:
 *   1. as one line for mt_agent_parse_line;
 *   2. as a byte stream a guest writes on its channel, fed to a session
 *      in reads of varying size, with time advancing per read.
 * Every outcome is checked against the protocol's bounds, so a logic
 * error (a value out of range that was let through) crashes like a
 * memory error does.  Build and run: tests/fuzz/run-fuzz. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-session.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf (stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      abort ();                                                              \
    }                                                                        \
  } while (0)

static const MtAgentLimits limits = { .max_memory = MT_GIB };

static gboolean
le (guint64 a, guint64 b)
{
  return a == MT_UNKNOWN || b == MT_UNKNOWN || a <= b;
}

static void
check_text (const char *s, gsize size)
{
  gsize n = strnlen (s, size);

  CHECK (n < size);
  for (gsize i = 0; i < n; i++)
    CHECK (s[i] >= 0x20 && s[i] < 0x7f);
}

static void
check_problem (const MtAgentProblem *p)
{
  CHECK (p->code != MT_AGENT_OK);
  CHECK (strcmp (mt_agent_error_code_to_string (p->code), "unknown") != 0);
  check_text (p->field, sizeof p->field);
  check_text (p->message, sizeof p->message);
}

static void
check_psi (const MtAgentPsiLine *l)
{
  CHECK (isnan (l->avg10) || (l->avg10 >= 0.0 && l->avg10 <= 100.0));
  CHECK (isnan (l->avg60) || (l->avg60 >= 0.0 && l->avg60 <= 100.0));
  CHECK (l->total_us == MT_UNKNOWN || l->total_us <= MT_AGENT_INT_MAX);
}

static void
check_report (const MtAgentReport *r)
{
  CHECK (r->seq >= 1 && r->seq <= MT_AGENT_INT_MAX);
  CHECK (r->mono_us <= MT_AGENT_INT_MAX);
  CHECK (r->reason <= MT_AGENT_REASON_REPLY);
  CHECK (!r->has_id || r->reason == MT_AGENT_REASON_REPLY);
  if (r->hello) {
    check_text (r->agent, sizeof r->agent);
    check_text (r->kernel, sizeof r->kernel);
    CHECK (r->boot_id[0] == '\0' || strlen (r->boot_id) == 36);
    CHECK (r->page_size >= 4096 && r->page_size <= 2097152
           && (r->page_size & (r->page_size - 1)) == 0);
    CHECK (r->interval_ms >= 100 && r->interval_ms <= 60000);
    CHECK (r->psi_mode != MT_AGENT_PSI_MODE_UNKNOWN);
    CHECK (r->unavailable < (1u << MT_AGENT_UNAVAIL_N));
  }
  if (r->has_mem) {
    CHECK (r->mem.total == MT_UNKNOWN || (r->mem.total > 0 && r->mem.total <= MT_GIB));
    CHECK (le (r->mem.free, r->mem.total));
    CHECK (le (r->mem.available, r->mem.total));
    CHECK (le (r->mem.cached, r->mem.total));
    CHECK (le (r->mem.shmem, r->mem.total));
    CHECK (le (r->mem.anon, r->mem.total));
    CHECK (le (r->mem.slab_reclaimable, r->mem.total));
    CHECK (le (r->mem.inactive_file, r->mem.total));
    CHECK (le (r->mem.swap_total, G_GUINT64_CONSTANT (1) << 50));
    CHECK (le (r->mem.swap_free, r->mem.swap_total));
  }
  if (r->has_psi) {
    CHECK (!isnan (r->psi_some.avg10));
    check_psi (&r->psi_some);
    check_psi (&r->psi_full);
  }
  if (r->has_blocks) {
    CHECK (r->blocks.block_size >= (1u << 20)
           && r->blocks.block_size <= (G_GUINT64_CONSTANT (1) << 34));
    CHECK (le (mt_agent_report_movable (r), MT_GIB));
  }
  if (r->has_page_reporting) {
    CHECK (le (r->page_reporting.order, 63));
    CHECK (le (r->page_reporting.reported_bytes, MT_GIB));
    CHECK (le (r->page_reporting.reused_total_bytes, r->page_reporting.reported_total_bytes));
    CHECK (le (r->page_reporting.budget_exhausted, r->page_reporting.passes));
    CHECK (r->page_reporting.delay_ms == MT_UNKNOWN
           || (r->page_reporting.delay_ms >= 10 && r->page_reporting.delay_ms <= 60000));
    CHECK (r->page_reporting.budget_divisor == MT_UNKNOWN
           || (r->page_reporting.budget_divisor >= 1 && r->page_reporting.budget_divisor <= 1024));
  }
  if (r->has_block_usage) {
    const MtBlockUsage *kinds[] = { &r->usage_kernel, &r->usage_movable, &r->usage_vmem };

    CHECK (r->has_blocks);
    for (guint i = 0; i < G_N_ELEMENTS (kinds); i++) {
      const MtBlockUsage *u = kinds[i];
      CHECK (u->blocks <= MT_GIB / r->blocks.block_size + 4);
      CHECK (u->free + u->movable + u->unmovable + u->pinned + u->offline
             <= u->blocks * r->blocks.block_size);
    }
    CHECK (r->usage_vmem.free <= r->usage_kernel.free + r->usage_movable.free);
    CHECK (r->usage_vmem.movable <= r->usage_kernel.movable + r->usage_movable.movable);
  } else {
    CHECK (r->usage_vmem.free == MT_UNKNOWN);
  }
  CHECK (le (mt_agent_report_droppable_cache (r), MT_GIB));
}

static void
check_reply (const MtAgentReply *r)
{
  check_text (r->message, sizeof r->message);
  CHECK (r->ok || r->error[0] != '\0');
  if (r->ok && strcmp (r->op, "reclaim") == 0) {
    CHECK (r->requested >= 1 && r->requested <= (G_GUINT64_CONSTANT (1) << 40));
    CHECK (r->reclaimed <= (G_GUINT64_CONSTANT (1) << 40));
    CHECK (r->complete == (r->reclaimed >= r->requested));
  }
  if (r->ok && strcmp (r->op, "tune_reporting") == 0) {
    CHECK (r->delay_ms >= 10 && r->delay_ms <= 60000);
    CHECK (r->budget_divisor >= 1 && r->budget_divisor <= 1024);
  }
}

static void
fuzz_line (const uint8_t *data, size_t size)
{
  MtAgentMsg msg;
  MtAgentProblem problem;

  if (mt_agent_parse_line ((const char *) data, size, &limits, &msg, &problem)) {
    CHECK (size < MT_AGENT_LINE_MAX);
    if (msg.kind == MT_AGENT_MSG_REPORT)
      check_report (&msg.report);
    else
      check_reply (&msg.reply);
  } else {
    check_problem (&problem);
  }
}

static void
fuzz_stream (const uint8_t *data, size_t size)
{
  g_autoptr (MtAgentSession) s = mt_agent_session_new (NULL);
  guint32 rng = (guint32) size * 2654435761u;
  gint64 now = 1000;
  guint64 lines = 0;

  mt_agent_session_connected (s, now);
  mt_agent_session_set_host (s, MT_GIB, 768 * MT_MIB, now);
  while (size > 0) {
    MtAgentEvent ev;
    gsize space, n;
    char *buf = mt_agent_session_buffer (s, &space);

    if (space == 0) {
      /* Closed by a violation: reconnect, as the link does. */
      now += 10 * G_USEC_PER_SEC;
      mt_agent_session_connected (s, now);
      continue;
    }
    rng = rng * 1103515245u + 12345u;
    n = MIN (MIN (space, size), 1 + (rng >> 16) % 1500);
    memcpy (buf, data, n);
    mt_agent_session_commit (s, n);
    data += n;
    size -= n;
    now += 7 * 1000;
    while (mt_agent_session_next (s, now, &ev)) {
      lines++;
      switch (ev.kind) {
      case MT_AGENT_EVENT_REPORT:
        CHECK (ev.report != NULL);
        check_report (ev.report);
        if (!ev.believed)
          check_problem (&ev.problem);
        break;
      case MT_AGENT_EVENT_REPLY:
        check_reply (&ev.reply);
        break;
      case MT_AGENT_EVENT_VIOLATION:
        check_problem (&ev.problem);
        CHECK (mt_agent_session_latest (s, now) == NULL);
        break;
      }
    }
    {
      const MtAgentReport *r = mt_agent_session_latest (s, now);
      if (r)
        check_report (r);
    }
  }
  {
    MtAgentSessionStats st;

    mt_agent_session_get_stats (s, &st);
    CHECK (st.reports + st.replies + st.violations <= st.lines + st.violations);
    CHECK (st.bytes <= 1u << 30);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_line (data, size);
  fuzz_stream (data, size);
  return 0;
}
