/* test-agent-link.c: the host side of the guest agent protocol against
 * hostile input: the line parser (corpus in data/agent/), the session
 * (framing, rate limit, hello gate, counters, host cross-check) with
 * injected time, and the link over a real unix socket with a fake agent
 * written here (flood, silence, reconnect, requests).
 *
 * The link tests run on the wall clock, on machines that may be busy: they
 * wait for a condition with a generous deadline (WAIT_MS) and assert
 * outcomes.  A time is asserted only as a lower bound measured from
 * before its cause (the link may not act before its back-off or limit;
 * a slow machine only makes such a span longer); how fast things went is
 * printed with g_test_message.  The back-off tests run the link on a test
 * clock instead (MtAgentLinkConfig.clock), which moves only when the
 * test moves it: minutes of the default back-off, asserted exactly, in
 * no time. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "agent-link.h"
#include "model.h"

#define MAX_MEMORY MT_GIB
#define S          (G_USEC_PER_SEC)
#define MS         (G_USEC_PER_SEC / 1000)
/* How long a link test waits for what takes milliseconds on a quiet
 * machine: a busy or valgrind-slowed one may take 100 times longer. */
#define WAIT_MS 10000

static char *
data_path (const char *name)
{
  return g_test_build_filename (G_TEST_DIST, "data", "agent", name, NULL);
}

/* One line from a data file, without its newline. */
static char *
data_line (const char *name)
{
  g_autofree char *path = data_path (name);
  g_autoptr (GError) error = NULL;
  char *text = NULL;

  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  g_assert_no_error (error);
  g_strchomp (text);
  return text;
}

static const MtAgentLimits limits = { .max_memory = MAX_MEMORY };

static void
assert_outcome (const char *line, gsize len, const char *want_code, const char *want_field,
                const char *what)
{
  MtAgentMsg msg;
  MtAgentProblem problem = { 0 };
  gboolean ok = mt_agent_parse_line (line, len, &limits, &msg, &problem);
  const char *code = ok ? "ok" : mt_agent_error_code_to_string (problem.code);

  if (g_strcmp0 (code, want_code) != 0
      || (!ok && g_strcmp0 (want_field, "-") != 0 && g_strcmp0 (problem.field, want_field) != 0)
      || (!ok && g_strcmp0 (want_field, "-") == 0 && problem.field[0] != '\0')) {
    g_test_message ("%s: %.200s", what, line);
    g_test_message ("want %s %s, got %s %s (%s)", want_code, want_field, code,
                    problem.field[0] ? problem.field : "-", problem.message);
    g_test_fail ();
  }
  /* Never a control byte in what reaches a log. */
  for (const char *p = problem.message; *p; p++)
    g_assert_true (*p >= 0x20 && *p < 0x7f);
}

/* ---- the parser ------------------------------------------------------------ */

static void
test_parse_examples (void)
{
  g_autofree char *hello = data_line ("hello.json");
  g_autofree char *psi = data_line ("pressure.json");
  g_autofree char *reclaim = data_line ("reply-reclaim.json");
  g_autofree char *err = data_line ("reply-error.json");
  g_autofree char *partial = data_line ("reply-partial.json");
  MtAgentProblem problem;
  MtAgentMsg m;
  const MtAgentReport *r = &m.report;

  g_assert_true (mt_agent_parse_line (hello, strlen (hello), &limits, &m, &problem));
  g_assert_cmpint (m.kind, ==, MT_AGENT_MSG_REPORT);
  g_assert_true (r->hello);
  g_assert_cmpint (r->reason, ==, MT_AGENT_REASON_CONNECT);
  g_assert_cmpuint (r->seq, ==, 1);
  g_assert_cmpstr (r->agent, ==, "memtide-agent 0.1.0");
  g_assert_cmpstr (r->kernel, ==, "6.1.0-56-cloud-amd64");
  g_assert_cmpstr (r->boot_id, ==, "4e562c1d-d924-4f51-a8ee-656ec09ce4a7");
  g_assert_cmpuint (r->page_size, ==, 4096);
  g_assert_cmpuint (r->interval_ms, ==, 1000);
  g_assert_cmpint (r->psi_mode, ==, MT_AGENT_PSI_MODE_TRIGGER);
  g_assert_cmpstr (r->psi_trigger, ==, "some 150000 1000000");
  g_assert_cmpuint (r->reclaim_methods, ==,
                    MT_AGENT_RECLAIM_MEMORY_RECLAIM | MT_AGENT_RECLAIM_DROP_CACHES);
  g_assert_true (r->root);
  g_assert_cmpuint (r->unavailable, ==, 1u << MT_AGENT_UNAVAIL_PAGE_REPORTING_COUNTERS);
  g_assert_cmpuint (r->mem.total, ==, 761270272);
  g_assert_cmpuint (r->mem.available, ==, 717570048);
  g_assert_cmpuint (mt_agent_report_droppable_cache (r), ==, 128020480 - 4739072);
  g_assert_cmpuint (r->mem.inactive_file, ==, 85299200);
  g_assert_cmpuint (r->vmstat.oom_kill, ==, 0);
  g_assert_cmpfloat (r->psi_some.avg10, ==, 0.0);
  g_assert_cmpuint (mt_agent_report_movable (r), ==, 2 * 134217728);
  g_assert_cmpuint (r->page_reporting.order, ==, 9);
  g_assert_cmpuint (r->page_reporting.reported_bytes, ==, MT_UNKNOWN);

  {
    static const char memory[] = "{\"v\":1,\"type\":\"report\",\"seq\":7,\"reason\":\"memory\","
                                 "\"mono_us\":5000,\"dropped\":0,\"mem\":{\"total\":500000000,"
                                 "\"free\":1000000,\"available\":90000000}}";

    g_assert_true (mt_agent_parse_line (memory, strlen (memory), &limits, &m, &problem));
    g_assert_cmpint (r->reason, ==, MT_AGENT_REASON_MEMORY);
    g_assert_cmpstr (mt_agent_reason_to_string (r->reason), ==, "memory");
    g_assert_cmpuint (r->mem.available, ==, 90000000);
  }

  g_assert_true (mt_agent_parse_line (psi, strlen (psi), &limits, &m, &problem));
  g_assert_false (r->hello);
  g_assert_cmpint (r->reason, ==, MT_AGENT_REASON_PSI);
  g_assert_false (r->has_id);
  g_assert_cmpfloat_with_epsilon (r->psi_some.avg10, 9.40, 1e-9);
  g_assert_cmpfloat_with_epsilon (r->psi_full.avg10, 8.23, 1e-9);
  g_assert_cmpuint (r->psi_some.total_us, ==, 1561558);
  g_assert_cmpuint (r->page_size, ==, MT_UNKNOWN);

  /* A patched guest kernel: reporting counters, tunables, block usage. */
  {
    g_autofree char *patched = data_line ("patched.json");

    g_assert_true (mt_agent_parse_line (patched, strlen (patched), &limits, &m, &problem));
    g_assert_cmpuint (r->page_reporting.reported_bytes, ==, 486539264);
    g_assert_cmpuint (r->page_reporting.reported_total_bytes, ==, 1073741824);
    g_assert_cmpuint (r->page_reporting.reused_total_bytes, ==, 536870912);
    g_assert_cmpuint (r->page_reporting.passes, ==, 40);
    g_assert_cmpuint (r->page_reporting.budget_exhausted, ==, 12);
    g_assert_cmpuint (r->page_reporting.delay_ms, ==, 100);
    g_assert_cmpuint (r->page_reporting.budget_divisor, ==, 1);
    g_assert_true (r->has_block_usage);
    g_assert_cmpuint (r->usage_kernel.blocks, ==, 4);
    g_assert_cmpuint (r->usage_kernel.unmovable, ==, 190054400);
    g_assert_cmpuint (r->usage_kernel.pinned, ==, 16384);
    g_assert_cmpuint (r->usage_movable.blocks, ==, 2);
    g_assert_cmpuint (r->usage_movable.offline, ==, 12582912);
    g_assert_cmpuint (r->usage_vmem.free, ==, 234881024);
    g_assert_cmpuint (r->usage_vmem.movable, ==, 20971520);
  }
  /* The agent's hello on the patched kernel (kernel-patches/, built by
   * kernel-patches/build) under QEMU TCG: 1 GiB boot memory, 256 MiB
   * plugged of a 1 GiB virtio-mem device in ZONE_MOVABLE, after a
   * 300 MiB tmpfs file was removed and delay_ms=100 budget_divisor=1. */
  {
    g_autofree char *boot = data_line ("patched-boot.json");
    MtAgentLimits two = { .max_memory = 2 * MT_GIB };

    g_assert_true (mt_agent_parse_line (boot, strlen (boot), &two, &m, &problem));
    g_assert_cmpuint (r->page_reporting.delay_ms, ==, 100);
    g_assert_cmpuint (r->usage_vmem.blocks, ==, 2);
    g_assert_cmpuint (r->usage_kernel.blocks, ==, 8);
    g_assert_cmpuint (r->usage_vmem.free, ==, 266231808);
  }
  /* A kind without blocks is 0 blocks, not unknown; no block_usage at
   * all is unknown. */
  {
    const char *one = "{\"v\":1,\"type\":\"report\",\"seq\":2,\"reason\":\"tick\","
                      "\"mono_us\":1000,\"dropped\":0,\"memory_blocks\":{\"block_size\":"
                      "134217728},\"block_usage\":{\"kernel\":{\"blocks\":1,\"free\":1,"
                      "\"movable\":2,\"unmovable\":3,\"pinned\":4,\"offline\":5}}}";
    g_assert_true (mt_agent_parse_line (one, strlen (one), &limits, &m, &problem));
    g_assert_cmpuint (r->usage_kernel.offline, ==, 5);
    g_assert_cmpuint (r->usage_movable.blocks, ==, 0);
    g_assert_cmpuint (r->usage_vmem.free, ==, 0);
  }
  g_assert_true (mt_agent_parse_line (psi, strlen (psi), &limits, &m, &problem));
  g_assert_false (r->has_block_usage);
  g_assert_cmpuint (r->usage_vmem.free, ==, MT_UNKNOWN);
  g_assert_cmpuint (r->page_reporting.passes, ==, MT_UNKNOWN);

  /* An older agent without inactive_file. */
  {
    const char *old = "{\"v\":1,\"type\":\"report\",\"seq\":2,\"reason\":\"tick\",\"mono_us\":1000,"
                      "\"dropped\":0,\"mem\":{\"total\":500000000,\"cached\":100000000}}";
    g_assert_true (mt_agent_parse_line (old, strlen (old), &limits, &m, &problem));
    g_assert_cmpuint (r->mem.cached, ==, 100000000);
    g_assert_cmpuint (r->mem.inactive_file, ==, MT_UNKNOWN);
  }

  g_assert_true (mt_agent_parse_line (reclaim, strlen (reclaim), &limits, &m, &problem));
  g_assert_cmpint (m.kind, ==, MT_AGENT_MSG_REPLY);
  g_assert_true (m.reply.has_id);
  g_assert_cmpuint (m.reply.id, ==, 7);
  g_assert_cmpstr (m.reply.op, ==, "reclaim");
  g_assert_true (m.reply.ok);
  g_assert_cmpstr (m.reply.method, ==, "memory.reclaim");
  g_assert_cmpuint (m.reply.reclaimed, ==, 268435456);
  g_assert_true (m.reply.complete);
  g_assert_cmpuint (m.reply.elapsed_ms, ==, 170);

  g_assert_true (mt_agent_parse_line (err, strlen (err), &limits, &m, &problem));
  g_assert_false (m.reply.has_id);
  g_assert_false (m.reply.ok);
  g_assert_cmpstr (m.reply.error, ==, "malformed");

  g_assert_true (mt_agent_parse_line (partial, strlen (partial), &limits, &m, &problem));
  g_assert_false (m.reply.complete);
  g_assert_cmpstr (m.reply.stopped_by, ==, "EAGAIN");

  /* The same hello for a VM of 512 MiB: MemTotal 726 MiB is a lie. */
  {
    MtAgentLimits small = { .max_memory = 512 * MT_MIB };
    g_assert_false (mt_agent_parse_line (hello, strlen (hello), &small, &m, &problem));
    g_assert_cmpint (problem.code, ==, MT_AGENT_ERR_INCONSISTENT);
    g_assert_cmpstr (problem.field, ==, "mem.total");
  }
}

static void
test_parse_hostile_corpus (void)
{
  g_autofree char *path = data_path ("hostile.txt");
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  guint n = 0;

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    g_auto (GStrv) f = NULL;
    g_autofree char *what = NULL;

    if (lines[i][0] == '\0' || lines[i][0] == '#')
      continue;
    f = g_strsplit (lines[i], "\t", 3);
    g_assert_cmpuint (g_strv_length (f), ==, 3);
    what = g_strdup_printf ("hostile.txt line %u", i + 1);
    assert_outcome (f[2], strlen (f[2]), f[0], f[1], what);
    n++;
  }
  g_test_message ("%u corpus lines", n);
  g_assert_cmpuint (n, >=, 150);
}

static void
test_parse_generated (void)
{
  g_autofree char *hello = data_line ("hello.json");
  g_autoptr (GString) s = g_string_new (NULL);
  g_autoptr (GRand) rand = g_rand_new_with_seed (4);
  char *big;

  /* A 1 MiB line. */
  big = g_malloc (MT_MIB);
  memset (big, 'a', MT_MIB);
  assert_outcome (big, MT_MIB, "line_too_long", "-", "1 MiB of 'a'");
  big[0] = '{';
  assert_outcome (big, MT_MIB, "line_too_long", "-", "1 MiB object");
  g_free (big);

  /* The boundary: 4095 bytes + newline is a line, 4096 + newline is not. */
  g_string_assign (s, hello);
  g_string_truncate (s, s->len - 1);
  while (s->len < MT_AGENT_LINE_MAX - 2)
    g_string_append_c (s, ' ');
  g_string_append_c (s, '}');
  g_assert_cmpuint (s->len, ==, MT_AGENT_LINE_MAX - 1);
  assert_outcome (s->str, s->len, "ok", "-", "4095-byte hello");
  g_string_insert_c (s, s->len - 1, ' ');
  assert_outcome (s->str, s->len, "line_too_long", "-", "4096-byte hello");

  /* Depth bombs within the length limit. */
  g_string_truncate (s, 0);
  for (guint i = 0; i < 800; i++)
    g_string_append (s, "{\"a\":");
  assert_outcome (s->str, s->len, "too_deep", "-", "800 nested objects, truncated");
  g_string_truncate (s, 0);
  g_string_append (s, "{\"a\":");
  for (guint i = 0; i < 2000; i++)
    g_string_append_c (s, '[');
  assert_outcome (s->str, s->len, "too_deep", "-", "2000 nested arrays");

  /* Raw bytes json-glib would take or choke on. */
  assert_outcome ("{\"v\":1,\0\"type\":\"report\"}", 25, "malformed", "-", "NUL byte");
  assert_outcome ("{\"a\":\"\x01\"}", 9, "malformed", "-", "raw control byte in a string");
  assert_outcome ("{\"a\":\"\t\"}", 9, "malformed", "-", "raw tab in a string");
  assert_outcome ("{\"a\":\"\xc0\xaf\"}", 10, "malformed", "-", "overlong UTF-8");
  assert_outcome ("{\"a\":\"\xed\xa0\x80\"}", 11, "malformed", "-", "UTF-8 surrogate");
  assert_outcome ("\xff\xfe{}", 4, "malformed", "-", "BOM-like bytes");
  assert_outcome ("", 0, "malformed", "-", "empty");
  assert_outcome ("   ", 3, "malformed", "-", "blank");

  /* Binary garbage: any byte but '{' and blanks first is never an object;
   * any byte but '"', '}' and blanks after a member's comma is never a
   * member name. */
  for (guint i = 0; i < 2000; i++) {
    guint len = (guint) g_rand_int_range (rand, 1, 600);
    g_autofree char *buf = g_malloc (len);

    for (guint k = 0; k < len; k++)
      buf[k] = (char) g_rand_int_range (rand, 0, 256);
    while (strchr ("{ \t\r\n", buf[0]) && buf[0] != '\0')
      buf[0] = (char) g_rand_int_range (rand, 0, 256);
    assert_outcome (buf, len, "malformed", "-", "random bytes");

    g_string_assign (s, "{\"v\":1,\"type\":\"report\",");
    do
      buf[0] = (char) g_rand_int_range (rand, 0, 256);
    while (strchr ("\"} \t\r\n", buf[0]) && buf[0] != '\0');
    g_string_append_len (s, buf, len);
    assert_outcome (s->str, s->len, "malformed", "-", "object + random bytes");
  }

  /* Every prefix of a valid report is truncated JSON. */
  for (gsize len = 1; len < strlen (hello); len++)
    assert_outcome (hello, len, "malformed", "-", "truncated hello");
}

/* ---- the session, with injected time ----------------------------------------- */

typedef struct {
  MtAgentEvent ev;
  MtAgentReport report;
} Ev;

typedef struct {
  MtAgentSession *s;
  GArray *evs; /* Ev */
} SessionFixture;

static void
session_setup (SessionFixture *f, gconstpointer data)
{
  MtAgentSessionConfig cfg;

  mt_agent_session_config_init (&cfg);
  f->s = mt_agent_session_new (&cfg);
  f->evs = g_array_new (FALSE, TRUE, sizeof (Ev));
  mt_agent_session_connected (f->s, 0);
}

static void
session_teardown (SessionFixture *f, gconstpointer data)
{
  mt_agent_session_free (f->s);
  g_array_unref (f->evs);
}

/* Feeds bytes in reads of at most the buffer space; returns the number
 * of events they produced (appended to f->evs). */
static guint
feed_len (SessionFixture *f, const char *data, gsize len, gint64 now)
{
  guint before = f->evs->len;
  MtAgentEvent ev;

  while (len > 0) {
    gsize space, n;
    char *buf = mt_agent_session_buffer (f->s, &space);

    if (space == 0)
      break;
    n = MIN (space, len);
    memcpy (buf, data, n);
    mt_agent_session_commit (f->s, n);
    data += n;
    len -= n;
    while (mt_agent_session_next (f->s, now, &ev)) {
      Ev e = { .ev = ev };
      if (ev.report)
        e.report = *ev.report;
      e.ev.report = NULL;
      g_array_append_val (f->evs, e);
    }
  }
  return f->evs->len - before;
}

static guint
feed (SessionFixture *f, const char *data, gint64 now)
{
  return feed_len (f, data, strlen (data), now);
}

static const Ev *
last_ev (SessionFixture *f)
{
  g_assert_cmpuint (f->evs->len, >, 0);
  return &g_array_index (f->evs, Ev, f->evs->len - 1);
}

#define BOOT_A "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
#define BOOT_B "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"

static char *
hello_line (guint64 seq, const char *boot_id, guint64 mono_us, const char *extra)
{
  return g_strdup_printf ("{\"v\":1,\"type\":\"report\",\"seq\":%" G_GUINT64_FORMAT
                          ",\"reason\":\"connect\",\"mono_us\":%" G_GUINT64_FORMAT
                          ",\"hello\":true,\"agent\":\"fake\",%s%s%s\"page_size\":4096,"
                          "\"interval_ms\":1000,\"psi_mode\":\"trigger\",\"dropped\":0%s%s}\n",
                          seq, mono_us, boot_id ? "\"boot_id\":\"" : "", boot_id ? boot_id : "",
                          boot_id ? "\"," : "", extra ? "," : "", extra ? extra : "");
}

static char *
tick_line (guint64 seq, guint64 mono_us, const char *extra)
{
  return g_strdup_printf ("{\"v\":1,\"type\":\"report\",\"seq\":%" G_GUINT64_FORMAT
                          ",\"reason\":\"tick\",\"mono_us\":%" G_GUINT64_FORMAT
                          ",\"dropped\":0%s%s}\n",
                          seq, mono_us, extra ? "," : "", extra ? extra : "");
}

static void
test_session_hello_gate (SessionFixture *f, gconstpointer data)
{
  g_autofree char *hello = hello_line (1, BOOT_A, 100, NULL);
  g_autofree char *tick = tick_line (2, 200, NULL);
  MtAgentSessionStats st;
  gsize space;

  /* Tail of an old line, a valid report and a reply: all before the hello. */
  g_assert_cmpuint (feed (f, "ld\":12}}\n", 1), ==, 0);
  g_assert_cmpuint (feed (f, tick, 2), ==, 0);
  g_assert_cmpuint (feed (f, "{\"v\":1,\"type\":\"reply\",\"id\":1,\"ok\":true}\n", 3), ==, 0);
  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.discarded, ==, 3);
  g_assert_cmpuint (st.reports, ==, 0);
  g_assert_null (mt_agent_session_latest (f->s, 3));

  g_assert_cmpuint (feed (f, "\n", 4), ==, 0);
  g_assert_cmpuint (feed (f, hello, 5), ==, 1);
  g_assert_cmpint (last_ev (f)->ev.kind, ==, MT_AGENT_EVENT_REPORT);
  g_assert_true (last_ev (f)->ev.first_hello);
  g_assert_true (last_ev (f)->ev.believed);
  g_assert_true (mt_agent_session_alive (f->s, 6));
  g_assert_nonnull (mt_agent_session_latest (f->s, 6));

  g_autofree char *tick3 = tick_line (3, 300, NULL);
  g_assert_cmpuint (feed (f, tick3, 7), ==, 1);
  g_assert_false (last_ev (f)->ev.first_hello);

  /* After the hello, garbage is a violation and closes the session. */
  g_assert_cmpuint (feed (f, "garbage{\n", 8), ==, 1);
  g_assert_cmpint (last_ev (f)->ev.kind, ==, MT_AGENT_EVENT_VIOLATION);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_MALFORMED);
  mt_agent_session_buffer (f->s, &space);
  g_assert_cmpuint (space, ==, 0);
  g_assert_cmpuint (feed (f, tick3, 9), ==, 0);
  g_assert_null (mt_agent_session_latest (f->s, 9));
  g_assert_false (mt_agent_session_alive (f->s, 9));
  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.violations, ==, 1);
  g_assert_cmpint (st.last_violation.code, ==, MT_AGENT_ERR_MALFORMED);
  g_assert_cmpint (st.last_violation_time, ==, 8);

  /* A new connection waits for a hello again. */
  mt_agent_session_connected (f->s, 10);
  g_autofree char *tick4 = tick_line (4, 400, NULL);
  g_assert_cmpuint (feed (f, tick4, 11), ==, 0);
  g_autofree char *hello5 = hello_line (5, BOOT_A, 500, NULL);
  g_assert_cmpuint (feed (f, hello5, 12), ==, 1);
  g_assert_true (last_ev (f)->ev.first_hello);
}

static void
test_session_empty_lines_and_split_reads (SessionFixture *f, gconstpointer data)
{
  g_autofree char *hello = hello_line (1, BOOT_A, 100, NULL);
  MtAgentSessionStats st;

  g_assert_cmpuint (feed (f, "\n\n \r\n\t\n", 0), ==, 0);
  /* One byte per read. */
  for (const char *p = hello; *p; p++)
    feed_len (f, p, 1, 1);
  g_assert_cmpuint (f->evs->len, ==, 1);
  g_assert_cmpuint (feed (f, "\n\n", 2), ==, 0);
  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.lines, ==, 7);
  g_assert_cmpuint (st.discarded, ==, 0);
  g_assert_cmpuint (st.reports, ==, 1);
}

static void
test_session_too_long (SessionFixture *f, gconstpointer data)
{
  g_autofree char *hello = hello_line (1, BOOT_A, 100, NULL);
  char *big = g_malloc (MT_MIB + 1);
  MtAgentSessionStats st;

  memset (big, 'x', MT_MIB);
  big[MT_MIB] = '\n';
  /* Before the hello too: no legitimate line is that long. */
  g_assert_cmpuint (feed_len (f, big, MT_MIB + 1, 0), ==, 1);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_TOO_LONG);
  mt_agent_session_get_stats (f->s, &st);
  /* It gave up after one buffer, not after the whole MiB. */
  g_assert_cmpuint (st.bytes, <=, 2 * MT_AGENT_LINE_MAX);

  mt_agent_session_connected (f->s, 1);
  g_assert_cmpuint (feed (f, hello, 1), ==, 1);
  /* Exactly 4096 bytes without a newline is already too long. */
  g_assert_cmpuint (feed_len (f, big, MT_AGENT_LINE_MAX - 1, 2), ==, 0);
  g_assert_cmpuint (feed_len (f, big, 1, 2), ==, 1);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_TOO_LONG);
  g_free (big);
}

static void
test_session_rate (SessionFixture *f, gconstpointer data)
{
  gint64 t = 0;

  /* The burst: 50 lines at once. */
  for (guint i = 0; i < 50; i++)
    g_assert_cmpuint (feed (f, "\n", t), ==, 0);
  g_assert_cmpuint (feed (f, "\n", t), ==, 1);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_RATE);

  /* 20 lines/s go on forever. */
  mt_agent_session_connected (f->s, t);
  for (guint i = 0; i < 2000; i++) {
    t += 50 * MS;
    g_assert_cmpuint (feed (f, "\n", t), ==, 0);
  }
  /* 25 lines/s empty the bucket in 250 lines (50 / 5 per s over 10 s). */
  for (guint i = 0; i < 400 && f->evs->len == 1; i++) {
    t += 40 * MS;
    feed (f, "\n", t);
  }
  g_assert_cmpuint (f->evs->len, ==, 2);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_RATE);
}

static void
expect_violation (SessionFixture *f, const char *line, gint64 now, MtAgentErrorCode code,
                  const char *field)
{
  g_assert_cmpuint (feed (f, line, now), ==, 1);
  g_assert_cmpint (last_ev (f)->ev.kind, ==, MT_AGENT_EVENT_VIOLATION);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, code);
  g_assert_cmpstr (last_ev (f)->ev.problem.field, ==, field);
}

static void
expect_report (SessionFixture *f, const char *line, gint64 now)
{
  guint n = feed (f, line, now);

  if (n != 1 || last_ev (f)->ev.kind != MT_AGENT_EVENT_REPORT)
    g_error ("expected a report from %s, got %u events%s%s", line, n, n ? ": " : "",
             n ? last_ev (f)->ev.problem.message : "");
}

static void
test_session_counters (SessionFixture *f, gconstpointer data)
{
  g_autofree char *h1 = hello_line (1, BOOT_A, 100, "\"vmstat\":{\"pgmajfault\":10}");
  g_autofree char *t2 = tick_line (2, 200, "\"vmstat\":{\"pgmajfault\":12}");
  g_autofree char *t3 = tick_line (3, 300, "\"vmstat\":{\"pgmajfault\":11}");
  MtAgentSessionStats st;

  expect_report (f, h1, 1);
  expect_report (f, t2, 2);
  expect_violation (f, t3, 3, MT_AGENT_ERR_REGRESSED, "vmstat.pgmajfault");

  /* The baseline survives the reconnect. */
  mt_agent_session_connected (f->s, 4);
  g_autofree char *h4 = hello_line (4, BOOT_A, 400, "\"vmstat\":{\"pgmajfault\":12}");
  expect_report (f, h4, 5);
  /* A report without the counter does not reset its baseline. */
  g_autofree char *t5 = tick_line (5, 500, NULL);
  g_autofree char *t6 = tick_line (6, 600, "\"vmstat\":{\"pgmajfault\":3}");
  expect_report (f, t5, 6);
  expect_violation (f, t6, 7, MT_AGENT_ERR_REGRESSED, "vmstat.pgmajfault");

  /* A restarted agent (same boot, seq back to 1): kernel counters still
   * may not go back, but seq and dropped start again. */
  mt_agent_session_connected (f->s, 8);
  g_autofree char *r1 = hello_line (1, BOOT_A, 700, "\"vmstat\":{\"pgmajfault\":13}");
  expect_report (f, r1, 9);
  g_assert_true (last_ev (f)->ev.restarted);
  g_assert_false (last_ev (f)->ev.rebooted);
  g_autofree char *r2 =
    tick_line (2, 800, "\"psi\":{\"some\":{\"avg10\":0,\"avg60\":0,\"total_us\":50}}");
  g_autofree char *r3 =
    tick_line (3, 900, "\"psi\":{\"some\":{\"avg10\":0,\"avg60\":0,\"total_us\":49}}");
  expect_report (f, r2, 10);
  expect_violation (f, r3, 11, MT_AGENT_ERR_REGRESSED, "psi.some.total_us");

  /* A reboot (new boot id) resets everything. */
  mt_agent_session_connected (f->s, 12);
  g_autofree char *b1 = hello_line (1, BOOT_B, 50, "\"vmstat\":{\"pgmajfault\":0,\"oom_kill\":0}");
  expect_report (f, b1, 13);
  g_assert_true (last_ev (f)->ev.rebooted);

  /* The guest clock never goes back within a boot. */
  g_autofree char *b2 = tick_line (2, 40, NULL);
  expect_violation (f, b2, 14, MT_AGENT_ERR_REGRESSED, "mono_us");

  /* dropped never goes back within one agent process. */
  mt_agent_session_connected (f->s, 15);
  g_autofree char *b3 =
    g_strdup_printf ("{\"v\":1,\"type\":\"report\",\"seq\":3,\"reason\":\"connect\","
                     "\"mono_us\":60,\"hello\":true,\"agent\":\"fake\",\"boot_id\":\"" BOOT_B
                     "\",\"page_size\":4096,\"interval_ms\":1000,"
                     "\"psi_mode\":\"none\",\"dropped\":5}\n");
  expect_report (f, b3, 16);
  g_autofree char *b4 = tick_line (4, 70, NULL); /* dropped 0 */
  expect_violation (f, b4, 17, MT_AGENT_ERR_REGRESSED, "dropped");

  /* The patched kernel's reporting counters. */
  mt_agent_session_connected (f->s, 18);
  g_autofree char *c1 = hello_line (
    1, BOOT_B, 80,
    "\"page_reporting\":{\"reported_total_bytes\":100,\"passes\":7,\"budget_exhausted\":2}");
  g_autofree char *c2 =
    tick_line (2, 90, "\"page_reporting\":{\"passes\":8,\"budget_exhausted\":1}");
  expect_report (f, c1, 19);
  expect_violation (f, c2, 20, MT_AGENT_ERR_REGRESSED, "page_reporting.budget_exhausted");
  mt_agent_session_connected (f->s, 21);
  g_autofree char *c3 = hello_line (2, BOOT_B, 100, "\"page_reporting\":{\"passes\":6}");
  expect_violation (f, c3, 22, MT_AGENT_ERR_REGRESSED, "page_reporting.passes");

  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.agent_restarts, ==, 2);
  g_assert_cmpuint (st.guest_reboots, ==, 1);
  g_assert_cmpuint (st.violations, ==, 7);
  g_assert_cmpuint (st.violations_by_code[MT_AGENT_ERR_REGRESSED], ==, 7);
}

/* A guest that says it rebooted (a new boot id in each hello) or that its
 * agent restarted (seq back to 1) 19 times a second, under the rate
 * limit: each one resets baselines and is logged, so more than 10 within
 * a minute is a violation, counted across reconnects; a minute later
 * they are allowed again. */
static void
test_session_restarts (SessionFixture *f, gconstpointer data)
{
  MtAgentSessionStats st;
  gint64 now = 0;
  guint64 mono = 1000;
  guint boot = 0;

  for (guint i = 0; i < 11; i++) {
    g_autofree char *id = g_strdup_printf ("%08x-0000-4000-8000-000000000000", boot++);
    g_autofree char *hello = hello_line (1, id, mono += 1000, NULL);

    now += S / 19;
    expect_report (f, hello, now);
    g_assert_true (i == 0 || last_ev (f)->ev.rebooted);
  }
  /* Ten reboots after the first hello; the eleventh closes the link. */
  {
    g_autofree char *id = g_strdup_printf ("%08x-0000-4000-8000-000000000000", boot++);
    g_autofree char *hello = hello_line (1, id, mono += 1000, NULL);

    now += S / 19;
    expect_violation (f, hello, now, MT_AGENT_ERR_RESTARTS, "");
  }
  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.guest_reboots, ==, 10); /* the refused one is not one */
  g_assert_cmpuint (st.violations, ==, 1);

  /* Back after 10 s: the same boot and agent process (seq goes on) is
   * fine, but an agent restart (seq back to 1) is one too many still. */
  now += 10 * S;
  mt_agent_session_connected (f->s, now);
  {
    g_autofree char *id = g_strdup_printf ("%08x-0000-4000-8000-000000000000", boot - 2);
    g_autofree char *same = hello_line (2, id, mono += 1000, NULL);
    g_autofree char *restart = hello_line (1, id, mono += 1000, NULL);

    expect_report (f, same, now);
    g_assert_false (last_ev (f)->ev.restarted || last_ev (f)->ev.rebooted);
    expect_violation (f, restart, now, MT_AGENT_ERR_RESTARTS, "");
  }

  /* A minute after the storm the guest may reboot again. */
  now += 60 * S;
  mt_agent_session_connected (f->s, now);
  {
    g_autofree char *id = g_strdup_printf ("%08x-0000-4000-8000-000000000000", boot++);
    g_autofree char *hello = hello_line (1, id, 1000, NULL);

    expect_report (f, hello, now);
    g_assert_true (last_ev (f)->ev.rebooted);
  }
  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.violations, ==, 2);
  g_assert_cmpuint (st.last_violation.code, ==, MT_AGENT_ERR_RESTARTS);
}

/* Violations are counted per kind (what memtided publishes per VM: the
 * metrics, D-Bus, Explain), across connections, and add up to the total. */
static void
test_session_violation_kinds (SessionFixture *f, gconstpointer data)
{
  g_autofree char *hello = hello_line (1, BOOT_A, 100, NULL);
  g_autofree char *long_line = g_strnfill (MT_AGENT_LINE_MAX + 10, 'x');
  MtAgentProblem reply = { 0 };
  MtAgentSessionStats st;
  guint64 sum = 0;
  gint64 now = 0;

  /* Two malformed lines, a bad field, a line too long, a rate violation
   * and one the link found (a reply that does not match its request). */
  for (guint i = 0; i < 2; i++) {
    mt_agent_session_connected (f->s, now += S);
    expect_report (f, hello, now);
    expect_violation (f, "{\"v\":1,}\n", now, MT_AGENT_ERR_MALFORMED, "");
  }
  mt_agent_session_connected (f->s, now += S);
  expect_report (f, hello, now);
  expect_violation (f, "{\"v\":1,\"type\":\"report\",\"seq\":1e3}\n", now, MT_AGENT_ERR_FIELD,
                    "seq");
  mt_agent_session_connected (f->s, now += S);
  g_assert_cmpuint (feed (f, long_line, now), ==, 1);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_TOO_LONG);
  mt_agent_session_connected (f->s, now += S);
  {
    g_autoptr (GString) flood = g_string_new (NULL);
    for (guint i = 0; i < 60; i++)
      g_string_append_c (flood, '\n');
    g_assert_cmpuint (feed (f, flood->str, now), ==, 1);
    g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_RATE);
  }
  mt_agent_session_connected (f->s, now += S);
  mt_agent_problem_set (&reply, MT_AGENT_ERR_INCONSISTENT, "id",
                        "reply to request 3 does not "
                        "match it");
  mt_agent_session_violation (f->s, &reply, now);

  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.violations, ==, 6);
  g_assert_cmpuint (st.violations_by_code[MT_AGENT_ERR_MALFORMED], ==, 2);
  g_assert_cmpuint (st.violations_by_code[MT_AGENT_ERR_FIELD], ==, 1);
  g_assert_cmpuint (st.violations_by_code[MT_AGENT_ERR_TOO_LONG], ==, 1);
  g_assert_cmpuint (st.violations_by_code[MT_AGENT_ERR_RATE], ==, 1);
  g_assert_cmpuint (st.violations_by_code[MT_AGENT_ERR_INCONSISTENT], ==, 1);
  g_assert_cmpuint (st.violations_by_code[MT_AGENT_OK], ==, 0);
  for (guint c = 0; c < MT_AGENT_ERR_COUNT; c++)
    sum += st.violations_by_code[c];
  g_assert_cmpuint (sum, ==, st.violations);
  g_assert_cmpint (st.last_violation.code, ==, MT_AGENT_ERR_INCONSISTENT);
  g_assert_cmpint (st.last_violation_time, ==, now);
}

static void
test_session_stale (SessionFixture *f, gconstpointer data)
{
  g_autofree char *h1 = hello_line (1, BOOT_A, 100, NULL);
  g_autofree char *t3 = tick_line (3, 300, "\"vmstat\":{\"pgmajfault\":12}");
  /* Built before t3, written after it (the agent's report slot). */
  g_autofree char *t2 = tick_line (2, 200, "\"vmstat\":{\"pgmajfault\":11}");
  MtAgentSessionStats st;

  expect_report (f, h1, 1);
  expect_report (f, t3, 2);
  g_assert_cmpuint (feed (f, t2, 3), ==, 0);
  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.stale, ==, 1);
  g_assert_cmpuint (mt_agent_session_latest (f->s, 3)->seq, ==, 3);
}

static void
test_session_host_view (SessionFixture *f, gconstpointer data)
{
  g_autofree char *h1 =
    hello_line (1, BOOT_A, 100, "\"mem\":{\"total\":700000000,\"available\":1}");
  g_autofree char *t2 = tick_line (2, 200, "\"mem\":{\"total\":700000000,\"available\":2}");
  const MtAgentReport *r;
  MtAgentSessionStats st;
  gint64 t = 0;

  /* 768 MiB now, 256 MiB a second later: the guest may still show the
   * old size for a while (the window is 10 s). */
  mt_agent_session_set_host (f->s, MT_GIB, 768 * MT_MIB, t);
  t += S;
  /* Many calls a second (one per read) keep one slot per second: they do
   * not push the larger size out of the window. */
  for (guint i = 0; i < 500; i++)
    mt_agent_session_set_host (f->s, MT_GIB, 256 * MT_MIB, t + i * MS);
  expect_report (f, h1, t);
  g_assert_true (last_ev (f)->ev.believed);

  /* 11 s later only 256 MiB is left in the window. */
  for (guint i = 0; i < 11; i++) {
    t += S;
    mt_agent_session_set_host (f->s, MT_GIB, 256 * MT_MIB, t);
  }
  expect_report (f, t2, t);
  g_assert_false (last_ev (f)->ev.believed);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_INCONSISTENT);
  g_assert_cmpstr (last_ev (f)->ev.problem.field, ==, "mem.total");
  /* Not used: the latest believed report is still the hello, and it is
   * stale by now. */
  r = mt_agent_session_latest (f->s, t);
  g_assert_null (r);
  g_assert_true (mt_agent_session_alive (f->s, t));

  /* A lie that lasts 10 s closes the link. */
  for (guint seq = 3; seq < 20; seq++) {
    g_autofree char *line = tick_line (seq, seq * 100, "\"mem\":{\"total\":700000000}");
    t += S;
    mt_agent_session_set_host (f->s, MT_GIB, 256 * MT_MIB, t);
    feed (f, line, t);
    if (last_ev (f)->ev.kind == MT_AGENT_EVENT_VIOLATION)
      break;
  }
  g_assert_cmpint (last_ev (f)->ev.kind, ==, MT_AGENT_EVENT_VIOLATION);
  g_assert_cmpint (last_ev (f)->ev.problem.code, ==, MT_AGENT_ERR_INCONSISTENT);
  g_assert_cmpstr (last_ev (f)->ev.problem.field, ==, "mem.total");
  mt_agent_session_get_stats (f->s, &st);
  g_assert_cmpuint (st.disbelieved, ==, 10);

  /* The guest's MemTotal within the VM's size is believed. */
  mt_agent_session_connected (f->s, t);
  g_autofree char *h2 = hello_line (30, BOOT_A, 3000, "\"mem\":{\"total\":250000000}");
  expect_report (f, h2, t);
  g_assert_true (last_ev (f)->ev.believed);
  g_assert_nonnull (mt_agent_session_latest (f->s, t));
}

static void
test_session_fresh (SessionFixture *f, gconstpointer data)
{
  g_autofree char *h1 = hello_line (1, BOOT_A, 100, NULL);
  g_autofree char *h2 =
    g_strdup_printf ("{\"v\":1,\"type\":\"report\",\"seq\":2,\"reason\":\"reply\","
                     "\"id\":1,\"mono_us\":200,\"hello\":true,\"agent\":\"fake\","
                     "\"boot_id\":\"" BOOT_A "\",\"page_size\":4096,"
                     "\"interval_ms\":2000,\"psi_mode\":\"none\",\"dropped\":0}\n");

  expect_report (f, h1, 0);
  g_assert_cmpint (mt_agent_session_fresh_limit (f->s), ==, 3 * S);
  g_assert_nonnull (mt_agent_session_latest (f->s, 3 * S));
  g_assert_null (mt_agent_session_latest (f->s, 3 * S + 1));
  g_assert_false (mt_agent_session_alive (f->s, 3 * S + 1));

  /* Reports every 2 s: fresh for 3 intervals. */
  expect_report (f, h2, 4 * S);
  g_assert_true (last_ev (f)->ev.report == NULL); /* copied by feed() */
  g_assert_cmpint (mt_agent_session_fresh_limit (f->s), ==, 6 * S);
  g_assert_nonnull (mt_agent_session_latest (f->s, 10 * S));
  g_assert_null (mt_agent_session_latest (f->s, 10 * S + 1));
  g_assert_cmpuint (mt_agent_session_hello (f->s)->interval_ms, ==, 2000);
}

/* ---- the link over a unix socket ------------------------------------------------- */

/* The agent's side: a listening socket like QEMU's chardev, accepting one
 * connection at a time. */
typedef struct {
  char *dir;
  char *path;
  GSocket *listener;
  GSocket *conn;
  GString *in; /* what the host sent on the current connection */
  guint accepts;
  gint64 accepted_at; /* monotonic µs of the last accept */
} Fake;

static void
fake_listen (Fake *f)
{
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (f->path);
  g_autoptr (GError) error = NULL;

  f->listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (f->listener, FALSE);
  g_assert_true (g_socket_bind (f->listener, address, TRUE, &error));
  g_assert_true (g_socket_listen (f->listener, &error));
  g_assert_no_error (error);
}

static Fake *
fake_new (gboolean listen)
{
  Fake *f = g_new0 (Fake, 1);
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("memtide-agent-link-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "org.memtide.agent.0", NULL);
  f->in = g_string_new (NULL);
  if (listen)
    fake_listen (f);
  return f;
}

static void
fake_drop (Fake *f)
{
  if (f->conn) {
    g_socket_close (f->conn, NULL);
    g_clear_object (&f->conn);
  }
}

static void
fake_free (Fake *f)
{
  fake_drop (f);
  if (f->listener) {
    g_socket_close (f->listener, NULL);
    g_object_unref (f->listener);
  }
  g_unlink (f->path);
  g_rmdir (f->dir);
  g_string_free (f->in, TRUE);
  g_free (f->path);
  g_free (f->dir);
  g_free (f);
}

/* Accepts and reads whatever is there; never blocks. */
static void
fake_poll (Fake *f)
{
  char buf[4096];
  gssize n;

  if (f->listener) {
    GSocket *c = g_socket_accept (f->listener, NULL, NULL);
    if (c) {
      fake_drop (f);
      f->conn = c;
      g_socket_set_blocking (c, FALSE);
      g_string_truncate (f->in, 0);
      f->accepts++;
      f->accepted_at = g_get_monotonic_time ();
    }
  }
  while (f->conn && (n = g_socket_receive (f->conn, buf, sizeof buf, NULL, NULL)) > 0)
    g_string_append_len (f->in, buf, n);
}

/* All of it, or FALSE when the host end is gone. */
static gboolean
fake_send (Fake *f, const char *data)
{
  gsize len = strlen (data);

  while (len > 0 && f->conn) {
    g_autoptr (GError) error = NULL;
    gssize n = g_socket_send (f->conn, data, len, NULL, &error);

    if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_main_context_iteration (NULL, FALSE);
      continue;
    }
    if (n < 0)
      return FALSE;
    data += n;
    len -= (gsize) n;
  }
  return len == 0;
}

typedef gboolean (*Cond) (gpointer data);

static gboolean
on_wake (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the default main loop until cond holds or timeout_ms pass. */
static gboolean
run_until (Fake *f, Cond cond, gpointer data, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  guint wake = g_timeout_add (5, on_wake, NULL);
  gboolean ok = FALSE;

  while (g_get_monotonic_time () < end) {
    g_main_context_iteration (NULL, TRUE);
    if (f)
      fake_poll (f);
    if (cond (data)) {
      ok = TRUE;
      break;
    }
  }
  g_source_remove (wake);
  return ok;
}

#define MAX_VIOLATIONS 8

typedef struct {
  Fake *fake;
  MtAgentLink *link;
  MtAgentLinkConfig cfg;
  guint reports;
  guint hellos;
  gint64 hello_sent_at; /* monotonic µs before the fake sent its last hello */
  guint violations;
  MtAgentProblem problem;
  gint64 backoff;
  /* Per violation (the first MAX_VIOLATIONS): when the callback ran, its
   * back-off, the retry time the link set, the connections the fake had
   * accepted and the timer's fires by then. */
  gint64 violation_at[MAX_VIOLATIONS];
  gint64 violation_backoff[MAX_VIOLATIONS];
  gint64 violation_retry_at[MAX_VIOLATIONS];
  guint violation_accepts[MAX_VIOLATIONS];
  guint violation_timer_fires[MAX_VIOLATIONS];
  GArray *states;      /* MtAgentLinkState, each change */
  GArray *state_times; /* gint64, monotonic µs of each change */
  gboolean free_in_report;
  guint64 host_size; /* what on_host_view says */
  guint handshakes;  /* accepts handshake() has used */
  /* A timer on the same loop: proof the loop stays responsive. */
  guint timer_fires;
  gint64 timer_last;
  gint64 timer_max_gap;
} LinkFixture;

static void
on_report (MtAgentLink *link, const MtAgentEvent *ev, gpointer data)
{
  LinkFixture *f = data;

  f->reports++;
  if (ev->report->hello)
    f->hellos++;
  if (f->free_in_report) {
    mt_agent_link_free (link);
    f->link = NULL;
  }
}

static void
on_state (MtAgentLink *link, MtAgentLinkState old_state, MtAgentLinkState new_state,
          const char *why, gpointer data)
{
  LinkFixture *f = data;
  gint64 now = g_get_monotonic_time ();

  g_array_append_val (f->states, new_state);
  g_array_append_val (f->state_times, now);
  /* A violation closes the link right after its callback: the retry
   * time it sets then belongs to that violation. */
  if (new_state == MT_AGENT_LINK_WAITING && f->violations > 0 && f->violations <= MAX_VIOLATIONS
      && f->violation_retry_at[f->violations - 1] == 0) {
    MtAgentLinkStats st;

    mt_agent_link_get_stats (link, now, &st);
    f->violation_retry_at[f->violations - 1] = st.retry_at;
  }
}

static void
on_violation (MtAgentLink *link, const MtAgentProblem *p, gint64 backoff, gpointer data)
{
  LinkFixture *f = data;
  guint i = f->violations++;

  if (i < MAX_VIOLATIONS) {
    f->violation_at[i] = g_get_monotonic_time ();
    f->violation_backoff[i] = backoff;
    f->violation_accepts[i] = f->fake->accepts;
    f->violation_timer_fires[i] = f->timer_fires;
  }
  f->problem = *p;
  f->backoff = backoff;
}

/* How many times the link entered `state`. */
static guint
count_state (LinkFixture *f, MtAgentLinkState state)
{
  guint n = 0;

  for (guint i = 0; i < f->states->len; i++)
    n += g_array_index (f->states, MtAgentLinkState, i) == state;
  return n;
}

/* When the link first entered `state`, 0 if never. */
static gint64
first_state_time (LinkFixture *f, MtAgentLinkState state)
{
  for (guint i = 0; i < f->states->len; i++)
    if (g_array_index (f->states, MtAgentLinkState, i) == state)
      return g_array_index (f->state_times, gint64, i);
  return 0;
}

static const MtAgentLinkCallbacks link_callbacks = { on_report, on_state, on_violation, NULL };

static void
on_host_view (MtAgentLink *link, guint64 *max, guint64 *current, gpointer data)
{
  LinkFixture *f = data;

  *max = MT_GIB;
  *current = f->host_size;
}

static const MtAgentLinkCallbacks view_callbacks = { on_report, on_state, on_violation,
                                                     on_host_view };

static gboolean
on_timer (gpointer data)
{
  LinkFixture *f = data;
  gint64 now = g_get_monotonic_time ();

  if (f->timer_fires++ > 0)
    f->timer_max_gap = MAX (f->timer_max_gap, now - f->timer_last);
  f->timer_last = now;
  return G_SOURCE_CONTINUE;
}

static void
link_setup (LinkFixture *f, gconstpointer data)
{
  mt_agent_link_config_init (&f->cfg);
  f->cfg.reconnect_min = 50 * MS;
  f->cfg.reconnect_max = 400 * MS;
  f->cfg.violation_min = 300 * MS;
  f->cfg.violation_max = 5 * S;
  f->cfg.silent_reconnect = 800 * MS;
  f->cfg.watchdog = 20 * MS;
  f->cfg.reply_grace = 100 * MS;
  /* A report stays fresh long enough that a busy machine never sees an
   * agent fall silent between two steps of a test; the tests of silence
   * set a short limit. */
  f->cfg.session.fresh_min = WAIT_MS * MS;
  f->cfg.session.fresh_intervals = 0; /* the fake says 1 s; do not wait 3 */
  f->fake = fake_new (data == NULL);
  f->states = g_array_new (FALSE, FALSE, sizeof (MtAgentLinkState));
  f->state_times = g_array_new (FALSE, FALSE, sizeof (gint64));
}

static void
link_start (LinkFixture *f)
{
  f->link = mt_agent_link_new ("vm-test", f->fake->path, &f->cfg, &link_callbacks, f, NULL);
}

static void
link_teardown (LinkFixture *f, gconstpointer data)
{
  g_clear_pointer (&f->link, mt_agent_link_free);
  fake_free (f->fake);
  g_array_unref (f->states);
  g_array_unref (f->state_times);
  /* Nothing of the link may be left on the loop. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static gboolean
cond_accepted (gpointer data)
{
  LinkFixture *f = data;
  return f->fake->conn != NULL && strchr (f->fake->in->str, '\n') != NULL;
}

static gboolean
cond_new_accept (gpointer data)
{
  LinkFixture *f = data;
  return f->fake->accepts > f->handshakes && cond_accepted (data);
}

typedef struct {
  LinkFixture *f;
  guint n;
} CountWait;

static gboolean
cond_hellos (gpointer data)
{
  CountWait *w = data;
  return w->f->hellos >= w->n;
}

static gboolean
cond_waiting (gpointer data)
{
  LinkFixture *f = data;
  return mt_agent_link_get_state (f->link) == MT_AGENT_LINK_WAITING;
}

static gboolean
cond_silent (gpointer data)
{
  LinkFixture *f = data;
  return mt_agent_link_get_state (f->link) == MT_AGENT_LINK_SILENT;
}

static guint64 fake_seq;

static guint64
next_seq (void)
{
  return ++fake_seq;
}

/* Accept the link's connection, check its hello request, answer it, and
 * wait until the link has taken the hello report. */
static void
handshake (LinkFixture *f, const char *hello_extra)
{
  g_autofree char *hello = NULL;
  CountWait w = { f, f->hellos + 1 };

  g_assert_true (run_until (f->fake, cond_new_accept, f, WAIT_MS));
  f->handshakes = f->fake->accepts;
  g_assert_true (g_str_has_prefix (f->fake->in->str, "{\"v\":1,\"id\":"));
  g_assert_nonnull (strstr (f->fake->in->str, "\"op\":\"hello\"}\n"));
  guint64 seq = next_seq ();

  hello = hello_line (seq, BOOT_A, seq * 1000,
                      hello_extra ? hello_extra : "\"reclaim_methods\":[\"memory.reclaim\"]");
  f->hello_sent_at = g_get_monotonic_time ();
  g_assert_true (fake_send (f->fake, "\n"));
  g_assert_true (fake_send (f->fake, hello));
  g_assert_true (run_until (f->fake, cond_hellos, &w, WAIT_MS));
}

static void
send_tick (LinkFixture *f)
{
  guint64 seq = next_seq ();
  g_autofree char *tick = tick_line (seq, seq * 1000, "\"mem\":{\"total\":500000000}");
  g_assert_true (fake_send (f->fake, tick));
}

static gboolean
cond_reports (gpointer data)
{
  LinkFixture *f = data;
  return f->reports >= 2;
}

static void
test_link_reports (LinkFixture *f, gconstpointer data)
{
  MtAgentLinkStats st;
  const MtAgentReport *r;

  link_start (f);
  g_assert_cmpint (mt_agent_link_get_state (f->link), ==, MT_AGENT_LINK_WAITING);
  handshake (f, NULL);
  g_assert_true (mt_agent_link_alive (f->link, g_get_monotonic_time ()));
  send_tick (f);
  g_assert_true (run_until (f->fake, cond_reports, f, WAIT_MS));
  r = mt_agent_link_latest (f->link, g_get_monotonic_time ());
  g_assert_nonnull (r);
  g_assert_cmpuint (r->mem.total, ==, 500000000);
  g_assert_cmpstr (mt_agent_link_hello (f->link)->agent, ==, "fake");

  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpint (st.state, ==, MT_AGENT_LINK_ACTIVE);
  g_assert_true (st.connected);
  g_assert_true (st.alive);
  g_assert_cmpuint (st.connects, ==, 1);
  g_assert_cmpuint (st.requests, ==, 1); /* the hello */
  g_assert_cmpuint (st.session.reports, ==, 2);
  g_assert_cmpuint (st.session.violations, ==, 0);
  g_assert_cmpuint (st.session.last_violation.code, ==, MT_AGENT_OK);
  g_assert_cmpuint (f->states->len, ==, 2);
  g_assert_cmpint (g_array_index (f->states, MtAgentLinkState, 0), ==, MT_AGENT_LINK_HANDSHAKE);
  g_assert_cmpint (g_array_index (f->states, MtAgentLinkState, 1), ==, MT_AGENT_LINK_ACTIVE);
}

static gboolean
cond_active_again (gpointer data)
{
  LinkFixture *f = data;
  return count_state (f, MT_AGENT_LINK_ACTIVE) >= 2;
}

/* An agent that said hello, then goes quiet (killed, stopped): "no
 * agent" after the fresh limit; it counts again when reports resume. */
static void
test_link_silent (LinkFixture *f, gconstpointer data)
{
  gint64 silent_at;

  f->cfg.session.fresh_min = 300 * MS;
  f->cfg.silent_reconnect = WAIT_MS * MS; /* no reconnect while the test looks */
  link_start (f);
  handshake (f, NULL);
  g_timeout_add (10, on_timer, f);
  g_assert_true (run_until (f->fake, cond_silent, f, WAIT_MS));
  silent_at = first_state_time (f, MT_AGENT_LINK_SILENT);
  g_test_message ("silent %.0f ms after the hello was sent (fresh limit 300 ms); timer on the "
                  "same loop: %u fires, largest gap %" G_GINT64_FORMAT " ms",
                  (silent_at - f->hello_sent_at) / 1000.0, f->timer_fires, f->timer_max_gap / 1000);
  /* Not before the fresh limit has passed since the hello. */
  g_assert_cmpint (silent_at - f->hello_sent_at, >, 300 * MS);
  g_assert_false (mt_agent_link_alive (f->link, g_get_monotonic_time ()));
  g_assert_null (mt_agent_link_latest (f->link, g_get_monotonic_time ()));
  /* The loop ran other sources while the link waited. */
  g_assert_cmpuint (f->timer_fires, >, 0);

  send_tick (f);
  g_assert_true (run_until (f->fake, cond_active_again, f, WAIT_MS));
  g_assert_cmpuint (f->reports, ==, 2);
  g_source_remove_by_user_data (f);
}

static gboolean
cond_two_accepts (gpointer data)
{
  LinkFixture *f = data;
  return f->fake->accepts >= 2;
}

/* A guest that accepts and never writes: no stall, never "alive", and the
 * link reconnects after silent_reconnect. */
static void
test_link_never_writes (LinkFixture *f, gconstpointer data)
{
  MtAgentLinkStats st;
  gint64 t0, closed_at;

  /* silent_reconnect (800 ms) is above twice the fresh limit: it rules. */
  f->cfg.session.fresh_min = 300 * MS;
  t0 = g_get_monotonic_time ();
  link_start (f);
  g_timeout_add (10, on_timer, f);
  g_assert_true (run_until (f->fake, cond_two_accepts, f, WAIT_MS));
  closed_at = first_state_time (f, MT_AGENT_LINK_WAITING);
  g_test_message ("reconnected %.0f ms after the start (silent_reconnect 800 ms); timer on the "
                  "same loop: %u fires, largest gap %" G_GINT64_FORMAT " ms",
                  (closed_at - t0) / 1000.0, f->timer_fires, f->timer_max_gap / 1000);
  /* Connected, waiting for a hello that never came, then closed (not
   * before silent_reconnect) and connected again; never active. */
  g_assert_cmpuint (f->states->len, >=, 3);
  g_assert_cmpint (g_array_index (f->states, MtAgentLinkState, 0), ==, MT_AGENT_LINK_HANDSHAKE);
  g_assert_cmpint (g_array_index (f->states, MtAgentLinkState, 1), ==, MT_AGENT_LINK_WAITING);
  g_assert_cmpuint (count_state (f, MT_AGENT_LINK_ACTIVE), ==, 0);
  g_assert_cmpint (closed_at - t0, >=, 800 * MS);
  g_assert_false (mt_agent_link_alive (f->link, g_get_monotonic_time ()));
  g_assert_null (mt_agent_link_latest (f->link, g_get_monotonic_time ()));
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.session.reports, ==, 0);
  g_assert_cmpuint (st.session.violations, ==, 0);
  /* The loop ran other sources while the link waited. */
  g_assert_cmpuint (f->timer_fires, >, 0);
  g_source_remove_by_user_data (f);
}

static void
test_link_reconnect (LinkFixture *f, gconstpointer data)
{
  MtAgentLinkStats st;

  link_start (f);
  handshake (f, NULL);
  /* The peer closes: QEMU went away, or the chardev was reset. */
  fake_drop (f->fake);
  g_assert_true (run_until (f->fake, cond_waiting, f, WAIT_MS));
  g_assert_false (mt_agent_link_alive (f->link, g_get_monotonic_time ()));
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.disconnects, ==, 1);
  g_assert_cmpint (st.retry_at, >, 0);
  /* It comes back by itself and says hello again. */
  handshake (f, NULL);
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.connects, ==, 2);
  g_assert_cmpuint (f->hellos, ==, 2);
}

static gboolean
cond_connect_failures (gpointer data)
{
  CountWait *w = data;
  MtAgentLinkStats st;

  mt_agent_link_get_stats (w->f->link, g_get_monotonic_time (), &st);
  return st.connect_failures >= w->n;
}

/* No socket yet (the VM is starting): retries with back-off until it is there. */
static void
test_link_no_socket (LinkFixture *f, gconstpointer data)
{
  CountWait w = { f, 4 };
  MtAgentLinkStats st;
  gint64 t0, took;

  t0 = g_get_monotonic_time ();
  link_start (f);
  g_assert_true (run_until (NULL, cond_connect_failures, &w, WAIT_MS));
  took = g_get_monotonic_time () - t0;
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_test_message ("%" G_GUINT64_FORMAT " failed connects in %.0f ms", st.connect_failures,
                  took / 1000.0);
  g_assert_cmpint (st.state, ==, MT_AGENT_LINK_WAITING);
  g_assert_false (st.connected);
  /* Four attempts are 50 + 100 + 200 ms of back-off apart, not a busy
   * loop (less a margin: GLib times a new timeout from the loop's cached
   * time, which may lag the clock a little). */
  g_assert_cmpint (took, >=, 300 * MS);
  fake_listen (f->fake);
  handshake (f, NULL);
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.connects, ==, 1);
}

typedef struct {
  LinkFixture *f;
  guint sent;
  gint64 start;
} Flood;

/* 10 lines per millisecond: 10,000 a second, on every connection the
 * link opens (it comes back after each back-off). */
static gboolean
on_flood (gpointer data)
{
  Flood *fl = data;

  if (fl->start == 0)
    fl->start = g_get_monotonic_time ();
  for (guint i = 0; i < 10 && fl->f->fake->conn; i++) {
    guint64 seq = next_seq ();
    g_autofree char *tick = tick_line (seq, seq * 1000, NULL);
    if (!fake_send (fl->f->fake, tick))
      fake_drop (fl->f->fake); /* closed by the link: wait for the next */
    else
      fl->sent++;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
cond_violation (gpointer data)
{
  LinkFixture *f = data;
  return f->violations > 0;
}

static gboolean
cond_violations (gpointer data)
{
  CountWait *w = data;
  return w->f->violations >= w->n;
}

/* The link kept to the back-off of violation i: the retry it set is
 * `backoff` after the violation, and (a sanity check on the clock, half
 * of it as margin) violation i + 1 did not come sooner. */
static void
assert_backoff (LinkFixture *f, guint i, gint64 backoff)
{
  g_assert_cmpint (f->violation_backoff[i], ==, backoff);
  g_assert_cmpint (f->violation_retry_at[i] - f->violation_at[i], >=, backoff);
  if (i + 1 < MIN (f->violations, MAX_VIOLATIONS))
    g_assert_cmpint (f->violation_at[i + 1] - f->violation_at[i], >=, backoff / 2);
}

static void
test_link_flood (LinkFixture *f, gconstpointer data)
{
  Flood fl = { f, 0, 0 };
  CountWait w = { f, 3 };
  MtAgentLinkStats st;
  gint64 t0, took;
  guint flood;

  f->cfg.violation_min = 200 * MS;
  link_start (f);
  handshake (f, NULL);
  g_timeout_add (10, on_timer, f);
  t0 = g_get_monotonic_time ();
  flood = g_timeout_add (1, on_flood, &fl);
  g_assert_true (run_until (f->fake, cond_violations, &w, 2 * WAIT_MS));
  g_source_remove (flood);
  took = g_get_monotonic_time () - t0;

  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_test_message (
    "flood: %u lines sent in %.0f ms over %u connections; the link took %" G_GUINT64_FORMAT
    " lines (%" G_GUINT64_FORMAT " reports), closed it %u times, %.1f, %.1f and %.1f ms after "
    "the flood began; timer on the same loop: %u fires, largest gap %" G_GINT64_FORMAT " ms",
    fl.sent, took / 1000.0, f->fake->accepts, st.session.lines, st.session.reports, f->violations,
    (f->violation_at[0] - fl.start) / 1000.0, (f->violation_at[1] - fl.start) / 1000.0,
    (f->violation_at[2] - fl.start) / 1000.0, f->timer_fires, f->timer_max_gap / 1000);
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_RATE);
  g_assert_cmpuint (st.session.violations, ==, f->violations);
  g_assert_cmpint (st.session.last_violation.code, ==, MT_AGENT_ERR_RATE);
  /* Each connection is closed while the flood is on it, before the link
   * opens the next one: at once, then after 200, 400 ms of back-off,
   * doubling (the flood restarts before any hello, and counts there
   * too). */
  for (guint i = 0; i < 3; i++) {
    g_assert_cmpuint (f->violation_accepts[i], ==, i + 1);
    assert_backoff (f, i, (200 * MS) << i);
  }
  /* The bucket let through its burst and what refilled, no more: per
   * connection the burst, the line that overflowed it and the hello,
   * plus the refill over the whole flood (an upper bound of the time
   * the connections were open). */
  g_assert_cmpfloat ((double) st.session.lines, <=,
                     (f->cfg.session.burst + 2) * f->fake->accepts
                       + f->cfg.session.rate * (double) took / G_USEC_PER_SEC);
  g_assert_false (mt_agent_link_alive (f->link, g_get_monotonic_time ()));
  /* The loop kept running other sources between the violations. */
  g_assert_cmpuint (f->violation_timer_fires[1], >, f->violation_timer_fires[0]);
  g_assert_cmpuint (f->violation_timer_fires[2], >, f->violation_timer_fires[1]);
  g_source_remove_by_user_data (f);
}

static void
test_link_garbage_and_backoff (LinkFixture *f, gconstpointer data)
{
  char *big = g_malloc0 (MT_MIB + 1);
  CountWait w = { f, 1 };
  gint64 sent;

  link_start (f);
  handshake (f, NULL);
  /* A 1 MiB line: closed after the first 4 KiB. */
  memset (big, 'z', MT_MIB);
  sent = g_get_monotonic_time ();
  fake_send (f->fake, big);
  g_free (big);
  g_assert_true (run_until (f->fake, cond_violations, &w, WAIT_MS));
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_TOO_LONG);
  g_assert_cmpint (f->backoff, ==, 300 * MS);
  g_assert_cmpint (mt_agent_link_get_state (f->link), ==, MT_AGENT_LINK_WAITING);

  /* Back after the back-off (measured from before the line that caused
   * it; a tenth as margin for GLib's cached loop time); a second
   * violation doubles it. */
  handshake (f, NULL);
  g_test_message ("back %.0f ms after the line was sent (back-off 300 ms)",
                  (f->fake->accepted_at - sent) / 1000.0);
  g_assert_cmpint (f->fake->accepted_at - sent, >=, 270 * MS);
  fake_send (f->fake, "{\"v\":1,\"type\":\"report\",\"seq\":1e3}\n");
  w.n = 2;
  g_assert_true (run_until (f->fake, cond_violations, &w, WAIT_MS));
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_FIELD);
  g_assert_cmpstr (f->problem.field, ==, "seq");
  assert_backoff (f, 0, 300 * MS);
  assert_backoff (f, 1, 600 * MS);
}

/* ---- requests ---------------------------------------------------------------- */

typedef struct {
  guint calls;
  gboolean ok;
  guint64 reclaimed;
  guint64 delay_ms, budget_divisor;
  GError *error;
  guint destroyed;
} ReplyLog;

static void
on_reply (MtAgentLink *link, const MtAgentReply *reply, const GError *error, gpointer data)
{
  ReplyLog *log = data;

  log->calls++;
  if (reply) {
    log->ok = reply->ok;
    log->reclaimed = reply->reclaimed;
    log->delay_ms = reply->delay_ms;
    log->budget_divisor = reply->budget_divisor;
  }
  if (error)
    log->error = g_error_copy (error);
}

static void
on_reply_destroy (gpointer data)
{
  ((ReplyLog *) data)->destroyed++;
}

static gboolean
cond_reply (gpointer data)
{
  return ((ReplyLog *) data)->calls > 0;
}

/* The id of the last request line the fake received with this op. */
static guint
last_request_id (Fake *fake, const char *op)
{
  g_auto (GStrv) lines = g_strsplit (fake->in->str, "\n", -1);
  g_autofree char *needle = g_strdup_printf ("\"op\":\"%s\"", op);
  guint id = 0;

  for (guint i = 0; lines[i]; i++)
    if (strstr (lines[i], needle))
      g_assert_cmpint (sscanf (lines[i], "{\"v\":1,\"id\":%u,", &id), ==, 1);
  return id;
}

typedef struct {
  Fake *fake;
  const char *op;
} ReqWait;

static gboolean
cond_request (gpointer data)
{
  ReqWait *w = data;
  return last_request_id (w->fake, w->op) != 0;
}

static gboolean
cond_unmatched_reply (gpointer data)
{
  LinkFixture *f = data;
  MtAgentLinkStats st;

  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  return st.unmatched_replies > 0;
}

static void
test_link_reclaim (LinkFixture *f, gconstpointer data)
{
  ReplyLog log = { 0 };
  g_autoptr (GError) error = NULL;
  ReqWait w = { f->fake, "reclaim" };
  g_autofree char *reply = NULL;
  MtAgentLinkStats st;
  guint32 id;

  link_start (f);
  /* Before the agent is there: refused, user data freed. */
  g_assert_cmpuint (
    mt_agent_link_reclaim (f->link, MT_MIB, FALSE, 1000, on_reply, &log, on_reply_destroy, &error),
    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
  g_assert_cmpuint (log.destroyed, ==, 1);
  g_clear_error (&error);
  handshake (f, NULL);

  /* Out of range. */
  g_assert_cmpuint (mt_agent_link_reclaim (f->link, 0, FALSE, 1000, NULL, NULL, NULL, &error), ==,
                    0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* A reply. */
  id = mt_agent_link_reclaim (f->link, 64 * MT_MIB, FALSE, 2000, on_reply, &log, on_reply_destroy,
                              &error);
  g_assert_no_error (error);
  g_assert_cmpuint (id, >, 0);
  g_assert_true (run_until (f->fake, cond_request, &w, WAIT_MS));
  g_assert_cmpuint (last_request_id (f->fake, "reclaim"), ==, id);
  g_assert_nonnull (strstr (f->fake->in->str,
                            "\"op\":\"reclaim\",\"bytes\":67108864,"
                            "\"allow_drop_caches\":false,\"timeout_ms\":2000}\n"));
  reply = g_strdup_printf ("{\"v\":1,\"type\":\"reply\",\"id\":%u,\"op\":\"reclaim\",\"ok\":true,"
                           "\"method\":\"memory.reclaim\",\"requested\":67108864,"
                           "\"reclaimed\":33554432,\"complete\":false,\"stopped_by\":\"EAGAIN\","
                           "\"elapsed_ms\":12}\n",
                           id);
  fake_send (f->fake, reply);
  g_assert_true (run_until (f->fake, cond_reply, &log, WAIT_MS));
  g_assert_true (log.ok);
  g_assert_cmpuint (log.reclaimed, ==, 33554432);
  g_assert_null (log.error);
  g_assert_cmpuint (log.destroyed, ==, 2);

  /* No reply: timed out after timeout_ms + grace. */
  memset (&log, 0, sizeof log);
  id = mt_agent_link_reclaim (f->link, MT_MIB, FALSE, 50, on_reply, &log, on_reply_destroy, &error);
  g_assert_cmpuint (id, >, 0);
  send_tick (f); /* keep it alive meanwhile */
  g_assert_true (run_until (f->fake, cond_reply, &log, WAIT_MS));
  g_assert_error (log.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&log.error);
  g_assert_cmpuint (log.destroyed, ==, 1);

  /* A reply to an id nobody asked for is counted, not fatal. */
  fake_send (f->fake, "{\"v\":1,\"type\":\"reply\",\"id\":99999,\"op\":\"reclaim\",\"ok\":false,"
                      "\"error\":\"busy\"}\n");
  g_assert_true (run_until (f->fake, cond_unmatched_reply, f, WAIT_MS));
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.unmatched_replies, ==, 1);
  g_assert_cmpuint (st.session.violations, ==, 0);

  /* The link goes away with a request outstanding. */
  memset (&log, 0, sizeof log);
  id =
    mt_agent_link_reclaim (f->link, MT_MIB, FALSE, 5000, on_reply, &log, on_reply_destroy, &error);
  g_assert_cmpuint (id, >, 0);
  fake_drop (f->fake);
  g_assert_true (run_until (f->fake, cond_reply, &log, WAIT_MS));
  g_assert_error (log.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&log.error);

  /* A reply that does not match its request is a violation. */
  handshake (f, NULL);
  memset (&log, 0, sizeof log);
  id = mt_agent_link_reclaim (f->link, 8 * MT_MIB, FALSE, 5000, on_reply, &log, on_reply_destroy,
                              &error);
  g_assert_cmpuint (id, >, 0);
  g_free (reply);
  reply = g_strdup_printf ("{\"v\":1,\"type\":\"reply\",\"id\":%u,\"op\":\"reclaim\",\"ok\":true,"
                           "\"method\":\"memory.reclaim\",\"requested\":1,\"reclaimed\":1,"
                           "\"complete\":true}\n",
                           id);
  fake_send (f->fake, reply);
  g_assert_true (run_until (f->fake, cond_violation, f, WAIT_MS));
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_INCONSISTENT);
  g_assert_cmpuint (log.calls, ==, 1);
  g_assert_error (log.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&log.error);
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.session.violations, ==, 1);
  g_assert_cmpint (st.session.last_violation.code, ==, MT_AGENT_ERR_INCONSISTENT);
}

/* tune_reporting: the request line, the values read back, refusals. */
static void
test_link_tune_reporting (LinkFixture *f, gconstpointer data)
{
  ReplyLog log = { 0 };
  g_autoptr (GError) error = NULL;
  ReqWait w = { f->fake, "tune_reporting" };
  g_autofree char *reply = NULL;
  guint32 id;

  link_start (f);
  g_assert_cmpuint (
    mt_agent_link_tune_reporting (f->link, 100, 1, 1000, on_reply, &log, on_reply_destroy, &error),
    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
  g_assert_cmpuint (log.destroyed, ==, 1);
  g_clear_error (&error);
  handshake (f, NULL);

  /* Out of the kernel's ranges, or nothing asked. */
  g_assert_cmpuint (mt_agent_link_tune_reporting (f->link, 9, 1, 1000, NULL, NULL, NULL, &error),
                    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpuint (
    mt_agent_link_tune_reporting (f->link, 100, 1025, 1000, NULL, NULL, NULL, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpuint (mt_agent_link_tune_reporting (f->link, 0, 0, 1000, NULL, NULL, NULL, &error),
                    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  memset (&log, 0, sizeof log);
  id =
    mt_agent_link_tune_reporting (f->link, 100, 1, 2000, on_reply, &log, on_reply_destroy, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (id, >, 0);
  g_assert_true (run_until (f->fake, cond_request, &w, WAIT_MS));
  g_assert_cmpuint (last_request_id (f->fake, "tune_reporting"), ==, id);
  g_assert_nonnull (strstr (f->fake->in->str,
                            "\"op\":\"tune_reporting\",\"delay_ms\":100,\"budget_divisor\":1}\n"));
  reply = g_strdup_printf ("{\"v\":1,\"type\":\"reply\",\"id\":%u,\"op\":\"tune_reporting\","
                           "\"ok\":true,\"delay_ms\":100,\"budget_divisor\":1}\n",
                           id);
  fake_send (f->fake, reply);
  g_assert_true (run_until (f->fake, cond_reply, &log, WAIT_MS));
  g_assert_true (log.ok);
  g_assert_cmpuint (log.delay_ms, ==, 100);
  g_assert_cmpuint (log.budget_divisor, ==, 1);
  g_assert_cmpuint (log.destroyed, ==, 1);

  /* Only the divisor; the agent refuses (a stock kernel). */
  memset (&log, 0, sizeof log);
  id =
    mt_agent_link_tune_reporting (f->link, 0, 16, 2000, on_reply, &log, on_reply_destroy, &error);
  g_assert_cmpuint (id, >, 0);
  g_clear_pointer (&reply, g_free);
  reply = g_strdup_printf ("\"id\":%u,\"op\":\"tune_reporting\",\"budget_divisor\":16}\n", id);
  w.op = "tune_reporting\",\"budget_divisor";
  g_assert_true (run_until (f->fake, cond_request, &w, WAIT_MS));
  g_assert_nonnull (strstr (f->fake->in->str, reply));
  g_clear_pointer (&reply, g_free);
  reply = g_strdup_printf ("{\"v\":1,\"type\":\"reply\",\"id\":%u,\"op\":\"tune_reporting\","
                           "\"ok\":false,\"error\":\"unavailable\",\"message\":\"absent\"}\n",
                           id);
  fake_send (f->fake, reply);
  g_assert_true (run_until (f->fake, cond_reply, &log, WAIT_MS));
  g_assert_false (log.ok);
  g_assert_null (log.error);
}

static void
test_link_reclaim_methods (LinkFixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  link_start (f);
  handshake (f, "\"reclaim_methods\":[\"drop_caches\"]");
  /* Only drop_caches, and the policy does not allow it. */
  g_assert_cmpuint (mt_agent_link_reclaim (f->link, MT_MIB, FALSE, 1000, NULL, NULL, NULL, &error),
                    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_clear_error (&error);
  g_assert_cmpuint (mt_agent_link_reclaim (f->link, MT_MIB, TRUE, 1000, NULL, NULL, NULL, &error),
                    >, 0);
  g_assert_no_error (error);
  /* At most max_pending wait. */
  for (guint i = 1; i < f->cfg.max_pending; i++)
    g_assert_cmpuint (mt_agent_link_reclaim (f->link, MT_MIB, TRUE, 1000, NULL, NULL, NULL, &error),
                      >, 0);
  g_assert_cmpuint (mt_agent_link_reclaim (f->link, MT_MIB, TRUE, 1000, NULL, NULL, NULL, &error),
                    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
}

static void
test_link_tune_reporting_stock (LinkFixture *f, gconstpointer data)
{
  ReplyLog log = { 0 };
  g_autoptr (GError) error = NULL;
  ReqWait w = { f->fake, "tune_reporting" };
  g_autofree char *reply = NULL;
  g_autofree char *stock = NULL;
  guint32 id;

  link_start (f);
  handshake (f, NULL);
  g_assert_cmpuint (mt_agent_link_tune_reporting (f->link, 0, 0, 1000, NULL, NULL, NULL, &error),
                    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpuint (mt_agent_link_tune_reporting (f->link, 9, 0, 1000, NULL, NULL, NULL, &error),
                    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpuint (mt_agent_link_tune_reporting (f->link, 0, 1025, 1000, NULL, NULL, NULL, &error),
                    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  id =
    mt_agent_link_tune_reporting (f->link, 100, 0, 1000, on_reply, &log, on_reply_destroy, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (id, >, 0);
  g_assert_true (run_until (f->fake, cond_request, &w, WAIT_MS));
  g_assert_cmpuint (last_request_id (f->fake, "tune_reporting"), ==, id);
  g_assert_nonnull (strstr (f->fake->in->str, "\"op\":\"tune_reporting\",\"delay_ms\":100}\n"));
  reply = g_strdup_printf ("{\"v\":1,\"type\":\"reply\",\"id\":%u,\"op\":\"tune_reporting\","
                           "\"ok\":true,\"delay_ms\":100,\"budget_divisor\":16}\n",
                           id);
  fake_send (f->fake, reply);
  g_assert_true (run_until (f->fake, cond_reply, &log, WAIT_MS));
  g_assert_true (log.ok);
  g_assert_null (log.error);
  g_assert_cmpuint (log.delay_ms, ==, 100);
  g_assert_cmpuint (log.budget_divisor, ==, 16);
  g_assert_cmpuint (log.destroyed, ==, 1);

  /* A stock kernel (its hello says so): no tunables, user data freed. */
  {
    guint64 seq = next_seq ();
    CountWait cw = { f, f->hellos + 1 };

    stock = hello_line (seq, BOOT_A, seq * 1000, "\"unavailable\":[\"page_reporting_counters\"]");
    g_assert_true (fake_send (f->fake, stock));
    g_assert_true (run_until (f->fake, cond_hellos, &cw, WAIT_MS));
  }
  memset (&log, 0, sizeof log);
  g_assert_cmpuint (
    mt_agent_link_tune_reporting (f->link, 100, 1, 1000, on_reply, &log, on_reply_destroy, &error),
    ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_cmpuint (log.destroyed, ==, 1);
}

static gboolean
cond_link_freed (gpointer data)
{
  return ((LinkFixture *) data)->link == NULL;
}

static void
test_link_free_in_callback (LinkFixture *f, gconstpointer data)
{
  link_start (f);
  f->free_in_report = TRUE;
  g_assert_true (run_until (f->fake, cond_accepted, f, WAIT_MS));
  {
    guint64 seq = next_seq ();
    g_autofree char *hello = hello_line (seq, BOOT_A, seq * 1000, NULL);
    g_autofree char *tick = tick_line (seq + 1, seq * 1000 + 1000, NULL);
    g_autofree char *both = g_strconcat (hello, tick, NULL);
    /* Two reports in one read: the link is freed during the first. */
    fake_send (f->fake, both);
  }
  g_assert_true (run_until (f->fake, cond_link_freed, f, WAIT_MS));
  g_assert_cmpuint (f->reports, ==, 1);
}

static gboolean
cond_three_reports (gpointer data)
{
  LinkFixture *f = data;
  return f->reports >= 3;
}

/* The daemon says what the VM may hold before each read: a guest that
 * shows more is disbelieved at once, one within it is believed. */
static void
test_link_host_view (LinkFixture *f, gconstpointer data)
{
  MtAgentLinkStats st;

  f->host_size = 256 * MT_MIB;
  f->link = mt_agent_link_new ("vm-test", f->fake->path, &f->cfg, &view_callbacks, f, NULL);
  handshake (f, NULL);
  send_tick (f); /* MemTotal 500000000: 477 MiB > 256 MiB */
  g_assert_true (run_until (f->fake, cond_reports, f, WAIT_MS));
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.session.disbelieved, ==, 1);
  /* Still the hello (no mem), not the tick. */
  g_assert_true (mt_agent_link_latest (f->link, g_get_monotonic_time ())->hello);

  /* Asked to grow to 768 MiB: the guest may show it before the hypervisor. */
  f->host_size = 768 * MT_MIB;
  send_tick (f);
  g_assert_true (run_until (f->fake, cond_three_reports, f, WAIT_MS));
  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  g_assert_cmpuint (st.session.disbelieved, ==, 1);
  g_assert_cmpuint (mt_agent_link_latest (f->link, g_get_monotonic_time ())->mem.total, ==,
                    500000000);
  g_assert_cmpuint (st.session.violations, ==, 0);
}

/* ---- the link on a test clock ------------------------------------------------- */

/* The link's time (MtAgentLinkClock) when a test runs minutes of
 * back-off: it moves only when the test moves it, and the link's timers
 * fire on the next loop iteration once it has passed their time. */
typedef struct {
  gint64 now;
} TestClock;

typedef struct {
  GSource source;
  TestClock *clock;
  gint64 interval;
  gint64 deadline;
} TestTimeout;

static gboolean
test_timeout_due (GSource *source)
{
  TestTimeout *t = (TestTimeout *) source;
  return t->clock->now >= t->deadline;
}

static gboolean
test_timeout_prepare (GSource *source, gint *timeout)
{
  /* Nothing to wait for in real time: run_until wakes the loop. */
  *timeout = -1;
  return test_timeout_due (source);
}

static gboolean
test_timeout_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  TestTimeout *t = (TestTimeout *) source;

  if (callback == NULL || !callback (data))
    return G_SOURCE_REMOVE;
  t->deadline = t->clock->now + t->interval;
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs test_timeout_funcs = {
  .prepare = test_timeout_prepare,
  .check = test_timeout_due,
  .dispatch = test_timeout_dispatch,
};

static gint64
test_clock_now (gpointer data)
{
  return ((TestClock *) data)->now;
}

static GSource *
test_clock_timeout (gint64 interval, gpointer data)
{
  TestTimeout *t = (TestTimeout *) g_source_new (&test_timeout_funcs, sizeof (TestTimeout));

  t->clock = data;
  t->interval = interval;
  t->deadline = t->clock->now + interval;
  return &t->source;
}

/* Runs every source that is due now, without waiting. */
static void
drain_loop (LinkFixture *f)
{
  for (guint i = 0; i < 100; i++) {
    while (g_main_context_iteration (NULL, FALSE))
      ;
    fake_poll (f->fake);
  }
}

typedef struct {
  LinkFixture *f;
  guint reports;
  guint violations;
} ReportWait;

static gboolean
cond_reports_or_violation (gpointer data)
{
  ReportWait *w = data;
  return w->f->reports >= w->reports || w->f->violations > w->violations;
}

/* `n` valid reports in one write at the test clock's time; returns when
 * the link took them all or closed the link on one of them. */
static void
send_ticks (LinkFixture *f, guint n)
{
  g_autoptr (GString) lines = g_string_new (NULL);
  ReportWait w = { f, f->reports + n, f->violations };

  for (guint i = 0; i < n; i++) {
    guint64 seq = next_seq ();
    g_autofree char *tick = tick_line (seq, seq * 1000, "\"mem\":{\"total\":500000000}");
    g_string_append (lines, tick);
  }
  /* A send that fails: the link closed the socket on an earlier line. */
  fake_send (f->fake, lines->str);
  g_assert_true (run_until (f->fake, cond_reports_or_violation, &w, WAIT_MS));
}

/* After violation i the link stays closed for exactly its back-off on
 * the test clock: no connect a millisecond before, one at the time. */
static void
assert_closed_for (LinkFixture *f, TestClock *clock, guint i, gint64 backoff)
{
  MtAgentLinkStats st;
  guint64 connects;

  g_assert_cmpint (f->violation_backoff[i], ==, backoff);
  mt_agent_link_get_stats (f->link, clock->now, &st);
  connects = st.connects;
  g_assert_cmpint (st.retry_at, ==, clock->now + backoff);
  clock->now += backoff - MS;
  drain_loop (f);
  mt_agent_link_get_stats (f->link, clock->now, &st);
  g_assert_cmpint (st.state, ==, MT_AGENT_LINK_WAITING);
  g_assert_cmpuint (st.connects, ==, connects);
  clock->now += MS;
}

/* A guest that sends valid reports just over the rate limit for ever
 * (21 a second; 20 are allowed): each connection gets its burst and
 * dozens of believed reports through before the rate violation.  Those
 * reports do not make it a well-behaved guest: the back-off doubles,
 * 10, 20, 40 s, with the default limits, on a test clock. */
static void
test_link_backoff_escalates (LinkFixture *f, gconstpointer data)
{
  TestClock clock = { 1000 * S };
  const MtAgentLinkClock link_clock = { test_clock_now, test_clock_timeout, &clock };
  const gint64 want[] = { 10 * S, 20 * S, 40 * S, 80 * S };
  guint seconds[G_N_ELEMENTS (want)];

  mt_agent_link_config_init (&f->cfg);
  f->cfg.clock = &link_clock;
  link_start (f);
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    guint reports = f->reports;

    if (i > 0)
      assert_closed_for (f, &clock, i - 1, want[i - 1]);
    handshake (f, NULL);
    for (seconds[i] = 0; f->violations == i; seconds[i]++) {
      g_assert_cmpuint (seconds[i], <, 600);
      clock.now += S;
      send_ticks (f, 21);
    }
    g_test_message ("connection %u: %u reports in %u s, then %s; closed for %" G_GINT64_FORMAT " s",
                    i + 1, f->reports - reports, seconds[i], f->problem.message,
                    f->violation_backoff[i] / S);
    g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_RATE);
    /* Well over the 30 believed reports that used to end a streak. */
    g_assert_cmpuint (f->reports - reports, >, 100);
  }
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    g_assert_cmpint (f->violation_backoff[i], ==, want[i]);
}

/* A guest forgiven: after two violations, a connection that stays clean
 * for a minute ends the streak, and the next violation is closed for
 * 10 s again; one clean for less is not. */
static void
test_link_backoff_forgiven (LinkFixture *f, gconstpointer data)
{
  TestClock clock = { 1000 * S };
  const MtAgentLinkClock link_clock = { test_clock_now, test_clock_timeout, &clock };
  const char *bad = "{\"v\":1,\"type\":\"report\",\"seq\":1e3}\n";
  /* Seconds of good reports before the bad line on each connection. */
  const guint clean[] = { 0, 59, 61, 0 };
  const gint64 want[] = { 10 * S, 20 * S, 10 * S, 20 * S };

  mt_agent_link_config_init (&f->cfg);
  f->cfg.clock = &link_clock;
  link_start (f);
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    CountWait w = { f, i + 1 };

    if (i > 0)
      assert_closed_for (f, &clock, i - 1, want[i - 1]);
    handshake (f, NULL);
    for (guint s = 0; s < clean[i]; s++) {
      clock.now += S;
      send_ticks (f, 1);
    }
    g_assert_cmpuint (f->violations, ==, i);
    g_assert_true (fake_send (f->fake, bad));
    g_assert_true (run_until (f->fake, cond_violations, &w, WAIT_MS));
    g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_FIELD);
    g_assert_cmpint (f->violation_backoff[i], ==, want[i]);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/agent/parse/examples", test_parse_examples);
  g_test_add_func ("/agent/parse/hostile-corpus", test_parse_hostile_corpus);
  g_test_add_func ("/agent/parse/generated", test_parse_generated);

#define SESSION_TEST(path, fn) \
  g_test_add ("/agent/session/" path, SessionFixture, NULL, session_setup, fn, session_teardown)
  SESSION_TEST ("hello-gate", test_session_hello_gate);
  SESSION_TEST ("empty-lines-split-reads", test_session_empty_lines_and_split_reads);
  SESSION_TEST ("too-long", test_session_too_long);
  SESSION_TEST ("rate", test_session_rate);
  SESSION_TEST ("counters", test_session_counters);
  SESSION_TEST ("stale", test_session_stale);
  SESSION_TEST ("restarts", test_session_restarts);
  SESSION_TEST ("violation-kinds", test_session_violation_kinds);
  SESSION_TEST ("host-view", test_session_host_view);
  SESSION_TEST ("fresh", test_session_fresh);

#define LINK_TEST(path, fn, nolisten) \
  g_test_add ("/agent/link/" path, LinkFixture, nolisten, link_setup, fn, link_teardown)
  LINK_TEST ("reports", test_link_reports, NULL);
  LINK_TEST ("silent", test_link_silent, NULL);
  LINK_TEST ("never-writes", test_link_never_writes, NULL);
  LINK_TEST ("reconnect", test_link_reconnect, NULL);
  LINK_TEST ("no-socket", test_link_no_socket, "no listener");
  LINK_TEST ("flood", test_link_flood, NULL);
  LINK_TEST ("garbage-backoff", test_link_garbage_and_backoff, NULL);
  LINK_TEST ("reclaim", test_link_reclaim, NULL);
  LINK_TEST ("reclaim-methods", test_link_reclaim_methods, NULL);
  LINK_TEST ("tune-reporting", test_link_tune_reporting, NULL);
  LINK_TEST ("tune-reporting-stock", test_link_tune_reporting_stock, NULL);
  LINK_TEST ("free-in-callback", test_link_free_in_callback, NULL);
  LINK_TEST ("host-view", test_link_host_view, NULL);
  LINK_TEST ("backoff-escalates", test_link_backoff_escalates, NULL);
  LINK_TEST ("backoff-forgiven", test_link_backoff_forgiven, NULL);

  return g_test_run ();
}
