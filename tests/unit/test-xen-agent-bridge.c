/* test-xen-agent-bridge.c: the agent protocol over xenstore, host side.
 * The REAL MtAgentLink (service/agent) connects to the bridge
 * (service/drivers/xen-agent-bridge.c) as it does on Xen; a fake guest
 * here writes values as the agent writes its xenstore keys, and feeds
 * them as the Xen driver does on each watch event.  It answers the
 * link's hello requests the way the agent does, from the main loop (a
 * xenstore watch fires later, never inside the write).
 *
 * As in test-agent-link.c the tests run on the wall clock: they wait for
 * a condition with a generous deadline (WAIT_MS) and assert outcomes,
 * never the order of two racing events. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "agent-link.h"
#include "model.h"
#include "xen-agent-bridge.h"

#define S       (G_USEC_PER_SEC)
#define MS      (G_USEC_PER_SEC / 1000)
#define WAIT_MS 10000

#define BOOT_A "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
#define BOOT_B "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"

/* ---- the fake guest: what the agent writes to data/memtide/ ---------------- */

typedef struct {
  MtXenAgentBridge *bridge;
  GPtrArray *requests; /* every line write_request got */
  GArray *hello_ids;   /* hello requests not answered yet */
  guint answer_idle;
  gboolean answer_hello; /* like a running agent */
  gboolean fail_writes;  /* write_request fails, as xs_write can */
  guint64 seq;
  guint64 mono_us;
  const char *boot_id;
} Guest;

static char *
hello_value (Guest *g, gboolean reply, guint id)
{
  g->seq++;
  g->mono_us += 1000;
  return g_strdup_printf ("{\"v\":1,\"type\":\"report\",\"seq\":%" G_GUINT64_FORMAT
                          ",\"reason\":\"%s\"%s%.0u,\"mono_us\":%" G_GUINT64_FORMAT
                          ",\"hello\":true,\"agent\":\"fake\",\"boot_id\":\"%s\","
                          "\"page_size\":4096,\"interval_ms\":1000,\"psi_mode\":\"trigger\","
                          "\"reclaim_methods\":[\"memory.reclaim\"],\"dropped\":0}",
                          g->seq, reply ? "reply" : "connect", reply ? ",\"id\":" : "",
                          reply ? id : 0, g->mono_us, g->boot_id);
}

/* `pad` spaces inside the object (JSON whitespace) make it longer. */
static char *
tick_value (Guest *g, gsize pad)
{
  g_autofree char *spaces = g_strnfill (pad, ' ');

  g->seq++;
  g->mono_us += 1000;
  return g_strdup_printf (
    "{\"v\":1,\"type\":\"report\",\"seq\":%" G_GUINT64_FORMAT
    ",\"reason\":\"tick\",\"mono_us\":%" G_GUINT64_FORMAT
    ",\"dropped\":0,\"mem\":{\"total\":500000000,\"available\":%" G_GUINT64_FORMAT "}%s}",
    g->seq, g->mono_us, 100000000 + g->seq, spaces);
}

/* xs_write by the guest, then the driver's watch event: feed. */
static void
guest_write (Guest *g, MtXenAgentKey key, const char *value)
{
  mt_xen_agent_bridge_feed (g->bridge, key, value, strlen (value));
}

static void
guest_hello (Guest *g)
{
  g_autofree char *v = hello_value (g, FALSE, 0);
  guest_write (g, MT_XEN_AGENT_HELLO, v);
}

static void
guest_tick (Guest *g)
{
  g_autofree char *v = tick_value (g, 0);
  guest_write (g, MT_XEN_AGENT_REPORT, v);
}

static gboolean
on_answer (gpointer data)
{
  Guest *g = data;

  g->answer_idle = 0;
  for (guint i = 0; i < g->hello_ids->len; i++) {
    g_autofree char *v = hello_value (g, TRUE, g_array_index (g->hello_ids, guint, i));
    guest_write (g, MT_XEN_AGENT_HELLO, v);
  }
  g_array_set_size (g->hello_ids, 0);
  return G_SOURCE_REMOVE;
}

static gboolean
write_request (const char *line, gsize len, gpointer data, GError **error)
{
  Guest *g = data;
  guint id;

  g_assert_null (memchr (line, '\n', len));
  g_ptr_array_add (g->requests, g_strndup (line, len));
  if (g->fail_writes) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "xs_write refused (test)");
    return FALSE;
  }
  if (g->answer_hello && g_strstr_len (line, len, "\"op\":\"hello\"")
      && sscanf (line, "{\"v\":1,\"id\":%u,", &id) == 1) {
    g_array_append_val (g->hello_ids, id);
    if (g->answer_idle == 0)
      g->answer_idle = g_idle_add (on_answer, g);
  }
  return TRUE;
}

/* ---- the fixture: bridge + real link --------------------------------------------- */

#define MAX_VIOLATIONS 8

typedef struct {
  char *dir;
  char *path;
  Guest guest;
  MtAgentLink *link;
  MtAgentLinkConfig cfg;
  guint reports, hellos, believed, restarted, rebooted;
  guint64 last_seq;
  guint violations;
  MtAgentProblem problem;
  gint64 backoff[MAX_VIOLATIONS];
} Fixture;

static void
on_report (MtAgentLink *link, const MtAgentEvent *ev, gpointer data)
{
  Fixture *f = data;

  f->reports++;
  f->hellos += ev->report->hello;
  f->believed += ev->believed;
  f->restarted += ev->restarted;
  f->rebooted += ev->rebooted;
  f->last_seq = ev->report->seq;
}

static void
on_violation (MtAgentLink *link, const MtAgentProblem *p, gint64 backoff, gpointer data)
{
  Fixture *f = data;

  if (f->violations < MAX_VIOLATIONS)
    f->backoff[f->violations] = backoff;
  f->violations++;
  f->problem = *p;
}

static const MtAgentLinkCallbacks callbacks = { on_report, NULL, on_violation, NULL };

static void
setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("memtide-xen-bridge-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "vm1.sock", NULL);
  f->guest.requests = g_ptr_array_new_with_free_func (g_free);
  f->guest.hello_ids = g_array_new (FALSE, FALSE, sizeof (guint));
  f->guest.answer_hello = TRUE;
  f->guest.boot_id = BOOT_A;
  f->guest.bridge = mt_xen_agent_bridge_new ("vm1", f->path, write_request, &f->guest, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->guest.bridge);

  mt_agent_link_config_init (&f->cfg);
  f->cfg.reconnect_min = 50 * MS;
  f->cfg.reconnect_max = 400 * MS;
  f->cfg.violation_min = 300 * MS;
  f->cfg.violation_max = 5 * S;
  f->cfg.silent_reconnect = WAIT_MS * MS;
  f->cfg.watchdog = 20 * MS;
  f->cfg.reply_grace = 100 * MS;
  f->cfg.session.fresh_min = WAIT_MS * MS;
  f->cfg.session.fresh_intervals = 0;
}

static void
link_start (Fixture *f)
{
  f->link = mt_agent_link_new ("vm1", f->path, &f->cfg, &callbacks, f, NULL);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->link, mt_agent_link_free);
  g_clear_pointer (&f->guest.bridge, mt_xen_agent_bridge_free);
  if (f->guest.answer_idle)
    g_source_remove (f->guest.answer_idle);
  /* The bridge removed its socket. */
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
  g_assert_cmpint (g_rmdir (f->dir), ==, 0);
  g_ptr_array_unref (f->guest.requests);
  g_array_unref (f->guest.hello_ids);
  g_free (f->path);
  g_free (f->dir);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

typedef gboolean (*Cond) (Fixture *f, gconstpointer arg);

static gboolean
on_wake (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

static gboolean
run_until (Fixture *f, Cond cond, gconstpointer arg)
{
  gint64 end = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  guint wake = g_timeout_add (5, on_wake, NULL);
  gboolean ok = FALSE;

  while (g_get_monotonic_time () < end) {
    if (cond (f, arg)) {
      ok = TRUE;
      break;
    }
    g_main_context_iteration (NULL, TRUE);
  }
  g_source_remove (wake);
  return ok;
}

static MtAgentLinkStats
link_stats (Fixture *f)
{
  MtAgentLinkStats st;

  mt_agent_link_get_stats (f->link, g_get_monotonic_time (), &st);
  return st;
}

static MtXenAgentBridgeStats
bridge_stats (Fixture *f)
{
  MtXenAgentBridgeStats st;

  mt_xen_agent_bridge_get_stats (f->guest.bridge, &st);
  return st;
}

static gboolean
cond_seq (Fixture *f, gconstpointer arg)
{
  const MtAgentReport *r = mt_agent_link_latest (f->link, g_get_monotonic_time ());
  return r != NULL && r->seq >= *(const guint64 *) arg;
}

/* The link has taken everything the guest has written so far. */
static void
wait_caught_up (Fixture *f)
{
  guint64 seq = f->guest.seq;
  g_assert_true (run_until (f, cond_seq, &seq));
}

static guint count_requests (Fixture *f, const char *op);

/* The guest answered the hello request of every connection so far. */
static gboolean
cond_answered (Fixture *f, gconstpointer arg)
{
  return count_requests (f, "hello") >= link_stats (f).connects && f->guest.answer_idle == 0;
}

/* Connected, answered, and caught up: nothing of the guest's is on its
 * way, so what a test writes next is the newest thing the link sees. */
static void
settle (Fixture *f)
{
  g_assert_true (run_until (f, cond_answered, NULL));
  wait_caught_up (f);
}

static gboolean
cond_violations (Fixture *f, gconstpointer arg)
{
  return f->violations >= GPOINTER_TO_UINT (arg);
}

static gboolean
cond_active (Fixture *f, gconstpointer arg)
{
  return mt_agent_link_get_state (f->link) == MT_AGENT_LINK_ACTIVE;
}

/* Every line the bridge queued has reached the link (and nothing else). */
static gboolean
cond_all_read (Fixture *f, gconstpointer arg)
{
  return bridge_stats (f).queued == 0 && link_stats (f).session.lines == bridge_stats (f).forwarded;
}

static guint
count_requests (Fixture *f, const char *op)
{
  g_autofree char *needle = g_strdup_printf ("\"op\":\"%s\"", op);
  guint n = 0;

  for (guint i = 0; i < f->guest.requests->len; i++)
    n += strstr (g_ptr_array_index (f->guest.requests, i), needle) != NULL;
  return n;
}

/* ---- tests --------------------------------------------------------------------------- */

/* The agent started before memtided: its hello and a report wait in the
 * bridge, the link gets both on connect, then the answer to its own
 * hello request and the reports that follow, all believed. */
static void
test_hello_and_reports (Fixture *f, gconstpointer data)
{
  MtAgentLinkStats st;
  const MtAgentReport *r;

  guest_hello (&f->guest);
  guest_tick (&f->guest);
  link_start (f);
  wait_caught_up (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  /* The link's hello request reached the guest, which answered it. */
  g_assert_cmpuint (count_requests (f, "hello"), ==, 1);
  for (guint i = 0; i < 5; i++)
    guest_tick (&f->guest);
  wait_caught_up (f);

  r = mt_agent_link_latest (f->link, g_get_monotonic_time ());
  g_assert_nonnull (r);
  g_assert_cmpuint (r->seq, ==, f->guest.seq);
  g_assert_cmpuint (r->mem.available, ==, 100000000 + f->guest.seq);
  g_assert_cmpstr (mt_agent_link_hello (f->link)->agent, ==, "fake");
  st = link_stats (f);
  g_assert_cmpuint (st.session.violations, ==, 0);
  g_assert_cmpuint (st.session.discarded, ==, 0);
  g_assert_cmpuint (st.session.stale, ==, 0);
  g_assert_cmpuint (st.session.agent_restarts, ==, 0);
  g_assert_cmpuint (st.session.guest_reboots, ==, 0);
  g_assert_cmpuint (f->believed, ==, f->reports);
  /* hello + report replayed, the answered hello, five ticks. */
  g_assert_cmpuint (f->hellos, >=, 2);
  g_assert_cmpuint (f->reports, ==, 2 + count_requests (f, "hello") + 5);
  g_assert_cmpuint (bridge_stats (f).accepts, ==, 1);
}

/* After a violation the link comes back to a hello (the answer to its
 * hello request), not to the old hello and report the bridge had already
 * sent: no spurious "agent restarted", nothing stale or discarded. */
static void
test_reconnect_after_violation (Fixture *f, gconstpointer data)
{
  MtAgentLinkStats st;
  guint hellos;

  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  guest_tick (&f->guest);
  wait_caught_up (f);

  guest_write (&f->guest, MT_XEN_AGENT_REPORT, "garbage{");
  g_assert_true (run_until (f, cond_violations, GUINT_TO_POINTER (1)));
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_MALFORMED);
  /* Reports written during the back-off: the newest is kept. */
  for (guint i = 0; i < 3; i++)
    guest_tick (&f->guest);
  hellos = f->hellos;
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  g_assert_cmpuint (f->hellos, ==, hellos + 1);
  guest_tick (&f->guest);
  wait_caught_up (f);

  st = link_stats (f);
  g_assert_cmpuint (st.connects, ==, 2);
  g_assert_cmpuint (st.session.violations, ==, 1);
  g_assert_cmpuint (st.session.agent_restarts, ==, 0);
  g_assert_cmpuint (st.session.guest_reboots, ==, 0);
  g_assert_cmpuint (f->restarted + f->rebooted, ==, 0);
  g_assert_cmpuint (st.session.stale, ==, 0);
  g_assert_cmpuint (st.session.discarded, ==, 0);
  g_assert_cmpuint (bridge_stats (f).accepts, ==, 2);
}

/* A real restart (or reboot) of the agent while the link is away is
 * still seen: its new hello was never sent, so the bridge sends it. */
static void
test_restart_while_away (Fixture *f, gconstpointer data)
{
  MtAgentLinkStats st;

  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  guest_tick (&f->guest);
  wait_caught_up (f);

  guest_write (&f->guest, MT_XEN_AGENT_REPORT, "{\"v\":2}");
  g_assert_true (run_until (f, cond_violations, GUINT_TO_POINTER (1)));
  /* A new agent process: seq starts again. */
  f->guest.seq = 0;
  guest_hello (&f->guest);
  guest_tick (&f->guest);
  wait_caught_up (f);
  st = link_stats (f);
  g_assert_cmpuint (st.session.agent_restarts, ==, 1);
  g_assert_cmpuint (st.session.guest_reboots, ==, 0);
  g_assert_cmpuint (f->restarted, ==, 1);

  /* And a reboot: another boot id. */
  guest_write (&f->guest, MT_XEN_AGENT_REPORT, "{\"v\":2}");
  g_assert_true (run_until (f, cond_violations, GUINT_TO_POINTER (2)));
  f->guest.seq = 0;
  f->guest.mono_us = 0;
  f->guest.boot_id = BOOT_B;
  guest_hello (&f->guest);
  wait_caught_up (f);
  st = link_stats (f);
  g_assert_cmpuint (st.session.guest_reboots, ==, 1);
  g_assert_cmpuint (st.session.agent_restarts, ==, 1);
  g_assert_cmpuint (st.session.violations, ==, 2);
}

/* A watch may fire twice for one write: the second is not forwarded. */
static void
test_same_value (Fixture *f, gconstpointer data)
{
  g_autofree char *tick = NULL;
  MtAgentLinkStats st;

  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  tick = tick_value (&f->guest, 0);
  guest_write (&f->guest, MT_XEN_AGENT_REPORT, tick);
  guest_write (&f->guest, MT_XEN_AGENT_REPORT, tick);
  guest_tick (&f->guest);
  g_assert_cmpuint (bridge_stats (f).same, ==, 1);
  wait_caught_up (f);
  g_assert_true (run_until (f, cond_all_read, NULL));

  st = link_stats (f);
  g_assert_cmpuint (bridge_stats (f).same, ==, 1);
  /* A repeated report would be stale (its seq not above the last). */
  g_assert_cmpuint (st.session.stale, ==, 0);
  g_assert_cmpuint (st.session.lines, ==, bridge_stats (f).forwarded);
  g_assert_cmpuint (st.session.violations, ==, 0);
}

typedef struct {
  Fixture *f;
  guint fed;
} Flood;

/* 20 distinct reports per millisecond, connected or not. */
static gboolean
on_flood (gpointer data)
{
  Flood *fl = data;

  for (guint i = 0; i < 20; i++, fl->fed++)
    guest_tick (&fl->f->guest);
  return G_SOURCE_CONTINUE;
}

/* A guest writing its keys as fast as it can: the link's rate limit
 * closes it, the back-off doubles and is counted, the bridge keeps one
 * value per key meanwhile and takes the link back when the flood ends. */
static void
test_flood (Fixture *f, gconstpointer data)
{
  Flood fl = { f, 0 };
  MtXenAgentBridgeStats bs;
  MtAgentLinkStats st;
  guint flood;

  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  flood = g_timeout_add (1, on_flood, &fl);
  g_assert_true (run_until (f, cond_violations, GUINT_TO_POINTER (2)));
  g_source_remove (flood);

  st = link_stats (f);
  bs = bridge_stats (f);
  g_test_message ("flood: %u values fed, %" G_GUINT64_FORMAT
                  " lines forwarded, the link read %" G_GUINT64_FORMAT " over %" G_GUINT64_FORMAT
                  " connections, %u violations",
                  fl.fed, bs.forwarded, st.session.lines, st.connects, f->violations);
  g_assert_cmpint (st.session.last_violation.code, ==, MT_AGENT_ERR_RATE);
  g_assert_cmpuint (st.session.violations, ==, f->violations);
  g_assert_cmpint (f->backoff[0], ==, 300 * MS);
  /* Doubled, unless 30 believed reports since the first violation ended
   * the streak (the burst lets 50 through once the hello came). */
  g_assert_true (f->backoff[1] == 600 * MS || f->backoff[1] == 300 * MS);
  /* While the link was away the bridge forwarded nothing. */
  g_assert_cmpuint (bs.forwarded, <, fl.fed);
  g_assert_cmpuint (bs.queued, <=, 16 * (MT_XEN_AGENT_VALUE_MAX + 1));

  /* The flood is over: the link comes back after its back-off. */
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  guest_tick (&f->guest);
  wait_caught_up (f);
  st = link_stats (f);
  g_assert_cmpuint (st.session.violations, ==, 2);
  g_assert_cmpuint (st.session.agent_restarts, ==, 0);
  g_assert_cmpuint (st.session.guest_reboots, ==, 0);
  g_assert_nonnull (mt_agent_link_latest (f->link, g_get_monotonic_time ()));
}

/* A value over the bound is forwarded cut, so the link counts the
 * violation; the bridge holds no more than the bound.  One byte less is
 * a line the link takes. */
static void
test_overlong (Fixture *f, gconstpointer data)
{
  g_autofree char *big = g_malloc (MT_MIB);
  g_autofree char *fits = NULL;
  MtAgentLinkStats st;
  guint64 bytes;
  gsize pad;

  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);

  /* MT_XEN_AGENT_VALUE_MAX - 1 bytes: the longest line there is. */
  fits = tick_value (&f->guest, 0);
  pad = MT_XEN_AGENT_VALUE_MAX - 1 - strlen (fits);
  f->guest.seq--;
  f->guest.mono_us -= 1000;
  g_free (fits);
  fits = tick_value (&f->guest, pad);
  g_assert_cmpuint (strlen (fits), ==, MT_XEN_AGENT_VALUE_MAX - 1);
  guest_write (&f->guest, MT_XEN_AGENT_REPORT, fits);
  wait_caught_up (f);
  g_assert_cmpuint (link_stats (f).session.violations, ==, 0);

  bytes = link_stats (f).session.bytes;
  memset (big, ' ', MT_MIB);
  big[0] = '{';
  mt_xen_agent_bridge_feed (f->guest.bridge, MT_XEN_AGENT_REPORT, big, MT_MIB);
  g_assert_cmpuint (bridge_stats (f).queued, <=, MT_XEN_AGENT_VALUE_MAX + 1);
  g_assert_true (run_until (f, cond_violations, GUINT_TO_POINTER (1)));
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_TOO_LONG);
  st = link_stats (f);
  g_assert_cmpuint (st.session.bytes - bytes, <=, MT_XEN_AGENT_VALUE_MAX + 1);
  g_assert_cmpuint (bridge_stats (f).overlong, ==, 1);

  /* Exactly the bound (no room for the newline): over it too. */
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  mt_xen_agent_bridge_feed (f->guest.bridge, MT_XEN_AGENT_REPORT, big, MT_XEN_AGENT_VALUE_MAX);
  g_assert_true (run_until (f, cond_violations, GUINT_TO_POINTER (2)));
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_TOO_LONG);
  g_assert_cmpuint (bridge_stats (f).overlong, ==, 2);
}

/* One value is one line: a newline inside does not split it. */
static void
test_newline_inside (Fixture *f, gconstpointer data)
{
  g_autofree char *a = NULL, *b = NULL, *two = NULL;

  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  a = tick_value (&f->guest, 0);
  b = tick_value (&f->guest, 0);
  two = g_strconcat (a, "\n", b, NULL);
  guest_write (&f->guest, MT_XEN_AGENT_REPORT, two);
  g_assert_true (run_until (f, cond_violations, GUINT_TO_POINTER (1)));
  g_assert_cmpint (f->problem.code, ==, MT_AGENT_ERR_MALFORMED);
  g_assert_cmpuint (link_stats (f).session.lines, ==, bridge_stats (f).forwarded);
}

typedef struct {
  guint calls;
  gboolean ok;
  guint64 reclaimed;
  GError *error;
} ReplyLog;

static void
on_reply (MtAgentLink *link, const MtAgentReply *reply, const GError *error, gpointer data)
{
  ReplyLog *log = data;

  log->calls++;
  if (reply) {
    log->ok = reply->ok;
    log->reclaimed = reply->reclaimed;
  }
  if (error)
    log->error = g_error_copy (error);
}

static gboolean
cond_reply (Fixture *f, gconstpointer arg)
{
  return ((const ReplyLog *) arg)->calls > 0;
}

static gboolean
cond_request (Fixture *f, gconstpointer arg)
{
  return count_requests (f, arg) > 0;
}

/* The link's requests reach write_request, one line each; a reply the
 * guest writes to data/memtide/reply completes the request. */
static void
test_reclaim_round_trip (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;
  ReplyLog log = { 0 };
  const char *line = NULL;
  guint id = 0;
  guint32 want;

  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  want = mt_agent_link_reclaim (f->link, 64 * MT_MIB, FALSE, 2000, on_reply, &log, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (run_until (f, cond_request, "reclaim"));
  for (guint i = 0; i < f->guest.requests->len; i++)
    if (strstr (g_ptr_array_index (f->guest.requests, i), "\"op\":\"reclaim\""))
      line = g_ptr_array_index (f->guest.requests, i);
  g_assert_cmpint (sscanf (line, "{\"v\":1,\"id\":%u,", &id), ==, 1);
  g_assert_cmpuint (id, ==, want);
  g_assert_true (g_str_has_suffix (line, "\"bytes\":67108864,\"allow_drop_caches\":false,"
                                         "\"timeout_ms\":2000}"));
  reply = g_strdup_printf ("{\"v\":1,\"type\":\"reply\",\"id\":%u,\"op\":\"reclaim\",\"ok\":true,"
                           "\"method\":\"memory.reclaim\",\"requested\":67108864,"
                           "\"reclaimed\":33554432,\"complete\":false,\"elapsed_ms\":12}",
                           id);
  guest_write (&f->guest, MT_XEN_AGENT_REPLY, reply);
  g_assert_true (run_until (f, cond_reply, &log));
  g_assert_null (log.error);
  g_assert_true (log.ok);
  g_assert_cmpuint (log.reclaimed, ==, 33554432);

  /* xs_write failing: counted; the link's request times out. */
  memset (&log, 0, sizeof log);
  f->guest.fail_writes = TRUE;
  g_test_expect_message ("memtide-xen-agent", G_LOG_LEVEL_WARNING,
                         "vm1: cannot pass a request to the guest agent: xs_write refused (test)");
  g_assert_cmpuint (
    mt_agent_link_reclaim (f->link, MT_MIB, FALSE, 50, on_reply, &log, NULL, &error), >, 0);
  g_assert_true (run_until (f, cond_reply, &log));
  g_assert_error (log.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&log.error);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (bridge_stats (f).request_errors, ==, 1);
  g_assert_cmpuint (link_stats (f).session.violations, ==, 0);
}

static gboolean
cond_refused (Fixture *f, gconstpointer arg)
{
  return bridge_stats (f).refused > 0;
}

/* One reader per guest: a second client is closed, the first stays. */
static void
test_one_client (Fixture *f, gconstpointer data)
{
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (f->path);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) other = NULL;
  struct stat st;

  g_assert_cmpint (g_stat (f->path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  guest_hello (&f->guest);
  link_start (f);
  g_assert_true (run_until (f, cond_active, NULL));
  settle (f);
  other = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (other, address, NULL, &error));
  g_assert_true (run_until (f, cond_refused, NULL));
  guest_tick (&f->guest);
  wait_caught_up (f);
  g_assert_cmpuint (link_stats (f).connects, ==, 1);
  g_assert_cmpuint (bridge_stats (f).accepts, ==, 1);
}

/* A stale socket is replaced; any other file is left alone, with an
 * error that names it. */
static void
test_socket_path (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("memtide-xen-bridge-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "vm.sock", NULL);
  MtXenAgentBridge *b;

  g_assert_no_error (error);
  b = mt_xen_agent_bridge_new ("a", path, write_request, NULL, &error);
  g_assert_no_error (error);
  /* Dropped without unlinking, as a crashed memtided leaves it. */
  {
    g_autoptr (GSocket) s = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, NULL);
    g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
    mt_xen_agent_bridge_free (b);
    g_assert_true (g_socket_bind (s, address, FALSE, &error));
    g_assert_no_error (error);
  }
  b = mt_xen_agent_bridge_new ("b", path, write_request, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (b);
  mt_xen_agent_bridge_free (b);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  g_assert_true (g_file_set_contents (path, "not a socket", -1, NULL));
  b = mt_xen_agent_bridge_new ("c", path, write_request, NULL, &error);
  g_assert_null (b);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define BRIDGE_TEST(path, fn) \
  g_test_add ("/xen-agent-bridge/" path, Fixture, NULL, setup, fn, teardown)
  BRIDGE_TEST ("hello-and-reports", test_hello_and_reports);
  BRIDGE_TEST ("reconnect-after-violation", test_reconnect_after_violation);
  BRIDGE_TEST ("restart-while-away", test_restart_while_away);
  BRIDGE_TEST ("same-value", test_same_value);
  BRIDGE_TEST ("flood", test_flood);
  BRIDGE_TEST ("overlong", test_overlong);
  BRIDGE_TEST ("newline-inside", test_newline_inside);
  BRIDGE_TEST ("reclaim-round-trip", test_reclaim_round_trip);
  BRIDGE_TEST ("one-client", test_one_client);
  g_test_add_func ("/xen-agent-bridge/socket-path", test_socket_path);

  return g_test_run ();
}
