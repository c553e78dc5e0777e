/* memtide-agent: unit tests of the pure parts (parsers, request
 * validation, framing, output queue, report format, PSI polling). */
#include "tap.h"

#include "collect.h"
#include "jw.h"
#include "linein.h"
#include "outq.h"
#include "psi.h"
#include "caps.h"
#include "report.h"
#include "request.h"
#include "xsport.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static void
test_meminfo (void)
{
  uint64_t v[MI_N] = { 0 };
  uint32_t have = meminfo_parse ("MemTotal:  1000 kB\n"
                                 "MemFree:\t  20 kB\n"
                                 "MemAvailable: 30\n"                /* no unit: ignored */
                                 "Cached: 99999999999999999999 kB\n" /* overflow: ignored */
                                 "SwapTotal: 0 kB\n"
                                 "SwapFreeX: 5 kB\n" /* other key */
                                 "Inactive: 50 kB\n" /* not Inactive(file) */
                                 "Inactive(anon): 40 kB\n"
                                 "Inactive(file): 9 kB\n"
                                 "junk\n"
                                 "SwapFree: 7 kB",
                                 v);

  CHECK_U64 (have, (1u << MI_TOTAL) | (1u << MI_FREE) | (1u << MI_SWAP_TOTAL) | (1u << MI_SWAP_FREE)
                     | (1u << MI_INACTIVE_FILE));
  CHECK_U64 (v[MI_TOTAL], 1000 * 1024);
  CHECK_U64 (v[MI_FREE], 20 * 1024);
  CHECK_U64 (v[MI_SWAP_TOTAL], 0);
  CHECK_U64 (v[MI_SWAP_FREE], 7 * 1024);
  CHECK_U64 (v[MI_INACTIVE_FILE], 9 * 1024);
  CHECK_U64 (meminfo_parse ("", v), 0);
  CHECK_U64 (meminfo_parse ("\n\n\xff\xfe", v), 0);
}

static void
test_vmstat (void)
{
  uint64_t v[VS_N] = { 0 };
  uint32_t have =
    vmstat_parse ("pgmajfault 12\npgmajfault_x 5\npswpin 3\npswpout -1\noom_kill 4 junk\n", v);

  CHECK_U64 (have, (1u << VS_PGMAJFAULT) | (1u << VS_PSWPIN));
  CHECK_U64 (v[VS_PGMAJFAULT], 12);
  CHECK_U64 (v[VS_PSWPIN], 3);
}

static void
test_psi (void)
{
  struct psi_values p;

  CHECK (psi_parse ("some avg10=1.50 avg60=100.00 avg300=0.00 total=77\n"
                    "full avg10=0.00 avg60=0.01 avg300=0.00 total=5\n",
                    &p));
  CHECK_STR (p.some.avg10, "1.50");
  CHECK_STR (p.some.avg60, "100.00");
  CHECK_U64 (p.some.total_us, 77);
  CHECK (p.full.have);
  CHECK_U64 (p.full.total_us, 5);
  /* No "full" line (CPU-style file): some only. */
  CHECK (psi_parse ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", &p));
  CHECK (!p.full.have);
  /* Out of range, malformed, truncated. */
  CHECK (!psi_parse ("some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n", &p));
  CHECK (!psi_parse ("some avg10=1.5 avg60=0.00 avg300=0.00 total=0\n", &p));
  CHECK (!psi_parse ("some avg10=1.50 avg60=0.00 avg300=0.00 total=\n", &p));
  CHECK (!psi_parse ("some avg10=1.50 avg60=0.00\n", &p));
  CHECK (!psi_parse ("", &p));
}

static void
test_blocks (void)
{
  CHECK (block_classify ("online", "Movable") == BK_ONLINE_MOVABLE);
  CHECK (block_classify ("online", "Normal") == BK_ONLINE_KERNEL);
  CHECK (block_classify ("online", "none") == BK_ONLINE_KERNEL);
  CHECK (block_classify ("online", NULL) == BK_ONLINE_KERNEL);
  CHECK (block_classify ("offline", "Normal Movable") == BK_OFFLINE);
  CHECK (block_classify ("going-offline", NULL) == BK_GOING_OFFLINE);
  CHECK (block_classify ("weird", NULL) == BK_UNKNOWN);
}

static void
test_usage_parse (void)
{
  uint64_t v[BU_N] = { 0 };

  CHECK (usage_parse ("free 30208\nmovable 2048\nunmovable 512\npinned 3\noffline 7\n", v));
  CHECK (v[BU_FREE] == 30208 && v[BU_MOVABLE] == 2048 && v[BU_UNMOVABLE] == 512);
  CHECK (v[BU_PINNED] == 3 && v[BU_OFFLINE] == 7);
  /* Order does not matter; unknown lines are skipped. */
  CHECK (usage_parse ("offline 0\nnew 5\npinned 0\nunmovable 0\nmovable 0\nfree 1", v));
  CHECK (v[BU_FREE] == 1);
  CHECK (!usage_parse ("free 1\nmovable 2\nunmovable 3\noffline 4\n", v)); /* no pinned */
  CHECK (!usage_parse ("free -1\nmovable 2\nunmovable 3\npinned 0\noffline 4\n", v));
  CHECK (!usage_parse ("free 1x\nmovable 2\nunmovable 3\npinned 0\noffline 4\n", v));
  CHECK (!usage_parse ("free 99999999999999999999\nmovable 2\nunmovable 3\npinned 0\n"
                       "offline 4\n",
                       v));
  CHECK (!usage_parse ("", v));
}

static void
test_iomem (void)
{
  uint64_t a, b;

  CHECK (iomem_vmem_line ("  140000000-147ffffff : System RAM (virtio_mem)\n", &a, &b));
  CHECK (a == 0x140000000ull && b == 0x147ffffffull);
  CHECK (iomem_vmem_line ("40000000-4FFFFFFF : System RAM (virtio_mem)", &a, &b));
  CHECK (b == 0x4fffffffull);
  CHECK (iomem_vmem_line ("00000000-00000000 : System RAM (virtio_mem)\n", &a, &b));
  CHECK (a == 0 && b == 0); /* not root: the caller sees the addresses are hidden */
  CHECK (!iomem_vmem_line ("00100000-0fffffff : System RAM\n", &a, &b));
  CHECK (!iomem_vmem_line ("140000000-147ffffff : virtio3\n", &a, &b));
  CHECK (!iomem_vmem_line ("140000000-147ffffff : System RAM (virtio_mem)x\n", &a, &b));
  CHECK (!iomem_vmem_line ("147ffffff-140000000 : System RAM (virtio_mem)\n", &a, &b));
  CHECK (!iomem_vmem_line ("10000000000000000-1 : System RAM (virtio_mem)\n", &a, &b));
  CHECK (!iomem_vmem_line ("g-1 : System RAM (virtio_mem)\n", &a, &b));
}

static void
test_jw (void)
{
  char buf[64];
  struct jw w;

  jw_init (&w, buf, sizeof buf);
  jw_obj_begin (&w, NULL);
  jw_str (&w, "s", "a\"b\\c\n\x01");
  jw_arr_begin (&w, "a");
  jw_u64 (&w, NULL, 1);
  jw_u64 (&w, NULL, 2);
  jw_arr_end (&w);
  jw_obj_end (&w);
  CHECK (jw_finish (&w) > 0);
  CHECK_STR (buf, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"a\":[1,2]}\n");

  /* Too small: reported, never overrun. */
  jw_init (&w, buf, 8);
  jw_obj_begin (&w, NULL);
  jw_str (&w, "key", "a long value");
  jw_obj_end (&w);
  CHECK (jw_finish (&w) == -1);
  CHECK (strlen (buf) < 8);
}

static int
parse (const char *line, struct request *r, struct req_error *e)
{
  return request_parse (line, strlen (line), r, e);
}

static void
test_request_valid (void)
{
  struct request r;
  struct req_error e;

  CHECK (parse ("{\"v\":1,\"id\":7,\"op\":\"reclaim\",\"bytes\":268435456}", &r, &e) == 0);
  CHECK (r.op == OP_RECLAIM);
  CHECK_U64 (r.id, 7);
  CHECK_U64 (r.bytes, 268435456);
  CHECK (!r.allow_drop_caches);
  CHECK_U64 (r.timeout_ms, RECLAIM_TIMEOUT_MS_DEFAULT);

  CHECK (
    parse (" {\"op\":\"reclaim\",\"v\":1,\"id\":4294967295,\"bytes\":1,\"allow_drop_caches\":true,"
           "\"timeout_ms\":60000,\"future_field\":{\"x\":[1]}}\r",
           &r, &e)
    == 0);
  CHECK_U64 (r.id, 4294967295u);
  CHECK (r.allow_drop_caches);
  CHECK_U64 (r.timeout_ms, 60000);

  CHECK (parse ("{\"v\":1,\"id\":0,\"op\":\"report\"}", &r, &e) == 0 && r.op == OP_REPORT);
  CHECK (parse ("{\"v\":1,\"id\":1,\"op\":\"hello\"}", &r, &e) == 0 && r.op == OP_HELLO);
  CHECK (parse ("{\"v\":1,\"id\":2,\"op\":\"set_interval\",\"interval_ms\":100}", &r, &e) == 0);
  CHECK_U64 (r.interval_ms, 100);

  CHECK (parse ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"delay_ms\":10,"
                "\"budget_divisor\":1024}",
                &r, &e)
         == 0);
  CHECK (r.op == OP_TUNE_REPORTING);
  CHECK (r.has_delay_ms && r.has_budget_divisor);
  CHECK_U64 (r.delay_ms, 10);
  CHECK_U64 (r.budget_divisor, 1024);
  CHECK (parse ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"delay_ms\":60000}", &r, &e) == 0);
  CHECK (r.has_delay_ms && !r.has_budget_divisor);
  CHECK_U64 (r.delay_ms, 60000);
  CHECK (parse ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"budget_divisor\":1}", &r, &e) == 0);
  CHECK (!r.has_delay_ms && r.has_budget_divisor);
  CHECK_U64 (r.budget_divisor, 1);
}

/* Each bad request: its error code, and whether the id could be echoed. */
static void
bad (const char *line, const char *code, bool has_id, const char *field)
{
  struct request r;
  struct req_error e;
  char out[AGENT_LINE_MAX + 1];
  int n;
  json_object *o, *v;

  if (request_parse (line, strlen (line), &r, &e) != -1) {
    printf ("# accepted: %s\n", line);
    tap_failed = true;
    return;
  }
  if (strcmp (e.code, code) != 0)
    printf ("# for: %.60s\n", line);
  CHECK_STR (e.code, code);
  CHECK (e.has_id == has_id);
  if (field)
    CHECK_STR (e.field, field);
  /* The reply is valid JSON carrying the same facts. */
  n = reply_error (out, sizeof out, &e);
  CHECK (n > 0 && out[n - 1] == '\n');
  o = json_tokener_parse (out);
  CHECK (o != NULL);
  if (!o)
    return;
  CHECK (json_object_object_get_ex (o, "ok", &v) && !json_object_get_boolean (v));
  CHECK (json_object_object_get_ex (o, "error", &v)
         && strcmp (json_object_get_string (v), code) == 0);
  CHECK (
    json_object_object_get_ex (o, "id", &v)
    && (has_id ? json_object_is_type (v, json_type_int) : json_object_is_type (v, json_type_null)));
  json_object_put (o);
}

static void
test_request_invalid (void)
{
  char deep[256] = "{\"v\":1,\"id\":1,\"op\":\"report\",\"x\":";
  char big[5000];

  bad ("", "malformed", false, NULL);
  bad ("{", "malformed", false, NULL);
  bad ("not json", "malformed", false, NULL);
  bad ("[1,2]", "malformed", false, NULL);
  bad ("\"reclaim\"", "malformed", false, NULL);
  bad ("{\"v\":1,\"id\":1,\"op\":\"report\"} trailing", "malformed", false, NULL);
  bad ("{\"v\":1,\"id\":1,\"op\":\"report\"}{}", "malformed", false, NULL);
  bad ("{\"v\":1,\"id\":1,\"op\":\"report\",}", "malformed", false, NULL);
  bad ("{\"v\":1,\"id\":01,\"op\":\"report\"}", "malformed", false, NULL);
  bad ("{\"v\":1,\"id\":3,\"op\":\"report\\u0000x\"}", "bad_request", true, "op");
  bad ("{\"v\":1,\"id\":1,\"op\":\"r\xff\"}", "malformed", false, NULL);
  bad ("{\"v\":1,\"op\":\"report\"}", "bad_request", false, "id");
  bad ("{\"v\":1,\"id\":-1,\"op\":\"report\"}", "bad_request", false, "id");
  bad ("{\"v\":1,\"id\":4294967296,\"op\":\"report\"}", "bad_request", false, "id");
  bad ("{\"v\":1,\"id\":99999999999999999999999,\"op\":\"report\"}", "bad_request", false, "id");
  bad ("{\"v\":1,\"id\":1.0,\"op\":\"report\"}", "bad_request", false, "id");
  bad ("{\"v\":1,\"id\":\"1\",\"op\":\"report\"}", "bad_request", false, "id");
  bad ("{\"v\":1,\"id\":3}", "bad_request", true, "op");
  bad ("{\"v\":1,\"id\":3,\"op\":7}", "bad_request", true, "op");
  bad ("{\"v\":1,\"id\":3,\"op\":\"\"}", "bad_request", true, "op");
  bad ("{\"v\":1,\"id\":3,\"op\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "bad_request", true,
       "op");
  bad ("{\"v\":1,\"id\":3,\"op\":\"Report\"}", "bad_request", true, "op");
  bad ("{\"id\":3,\"op\":\"report\"}", "bad_request", true, "v");
  bad ("{\"v\":2,\"id\":3,\"op\":\"report\"}", "bad_version", true, "v");
  bad ("{\"v\":1,\"id\":3,\"op\":\"format_disk\"}", "unknown_op", true, "op");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\"}", "bad_request", true, "bytes");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\",\"bytes\":0}", "bad_request", true, "bytes");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\",\"bytes\":1099511627777}", "bad_request", true,
       "bytes");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\",\"bytes\":\"1G\"}", "bad_request", true, "bytes");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\",\"bytes\":-4096}", "bad_request", true, "bytes");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\",\"bytes\":4096,\"allow_drop_caches\":1}",
       "bad_request", true, "allow_drop_caches");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\",\"bytes\":4096,\"timeout_ms\":0}", "bad_request", true,
       "timeout_ms");
  bad ("{\"v\":1,\"id\":3,\"op\":\"reclaim\",\"bytes\":4096,\"timeout_ms\":60001}", "bad_request",
       true, "timeout_ms");
  bad ("{\"v\":1,\"id\":3,\"op\":\"set_interval\",\"interval_ms\":99}", "bad_request", true,
       "interval_ms");
  bad ("{\"v\":1,\"id\":3,\"op\":\"set_interval\",\"interval_ms\":60001}", "bad_request", true,
       "interval_ms");
  bad ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\"}", "bad_request", true, NULL);
  bad ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"delay_ms\":9}", "bad_request", true,
       "delay_ms");
  bad ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"delay_ms\":60001}", "bad_request", true,
       "delay_ms");
  bad ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"delay_ms\":\"100\"}", "bad_request", true,
       "delay_ms");
  bad ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"budget_divisor\":0}", "bad_request", true,
       "budget_divisor");
  bad ("{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"delay_ms\":100,\"budget_divisor\":1025}",
       "bad_request", true, "budget_divisor");

  for (int i = 0; i < 20; i++)
    strcat (deep, "[");
  for (int i = 0; i < 20; i++)
    strcat (deep, "]");
  strcat (deep, "}");
  bad (deep, "malformed", false, NULL);

  memset (big, ' ', sizeof big);
  memcpy (big, "{\"v\":1,\"id\":1,\"op\":\"report\"}", 28);
  big[sizeof big - 1] = '\0';
  big[sizeof big - 2] = 'x';
  bad (big, "line_too_long", false, NULL);

  {
    struct request r;
    struct req_error e;
    CHECK (request_parse ("{\"v\":1,\0\"id\":1}", 16, &r, &e) == -1);
    CHECK_STR (e.code, "malformed");
  }
}

static void
test_linein (void)
{
  struct linein li;
  const char *line;
  size_t len, avail;
  char *p;
  char chunk[AGENT_LINE_MAX + 10];

  linein_reset (&li);
  p = linein_space (&li, &avail);
  memcpy (p, "ab\ncd", 5);
  linein_commit (&li, 5);
  CHECK (linein_next (&li, &line, &len) == LI_LINE && len == 2 && memcmp (line, "ab", 2) == 0);
  CHECK (linein_next (&li, &line, &len) == LI_NONE);
  p = linein_space (&li, &avail);
  memcpy (p, "e\n", 2);
  linein_commit (&li, 2);
  CHECK (linein_next (&li, &line, &len) == LI_LINE && len == 3 && memcmp (line, "cde", 3) == 0);

  /* The longest allowed line: 4095 bytes and its newline. */
  linein_reset (&li);
  p = linein_space (&li, &avail);
  memset (p, 'x', AGENT_LINE_MAX - 1);
  p[AGENT_LINE_MAX - 1] = '\n';
  linein_commit (&li, AGENT_LINE_MAX);
  CHECK (linein_next (&li, &line, &len) == LI_LINE && len == AGENT_LINE_MAX - 1);

  /* One byte more: reported once, skipped to its newline, then the next
   * line is fine; the overlong line arrives in pieces. */
  linein_reset (&li);
  memset (chunk, 'y', sizeof chunk);
  for (int i = 0; i < 3; i++) {
    p = linein_space (&li, &avail);
    memcpy (p, chunk, 3000);
    linein_commit (&li, 3000);
    enum li_result r = linein_next (&li, &line, &len);
    CHECK (r == (i == 1 ? LI_TOO_LONG : LI_NONE));
  }
  p = linein_space (&li, &avail);
  memcpy (p, "yyy\nok\n", 7);
  linein_commit (&li, 7);
  CHECK (linein_next (&li, &line, &len) == LI_LINE && len == 2 && memcmp (line, "ok", 2) == 0);
  CHECK (linein_next (&li, &line, &len) == LI_NONE);
  CHECK (!linein_pending (&li));

  /* Overlong with its newline already in the buffer. */
  linein_reset (&li);
  p = linein_space (&li, &avail);
  memset (p, 'z', AGENT_LINE_MAX);
  p[AGENT_LINE_MAX] = '\n';
  memcpy (p + AGENT_LINE_MAX + 1, "a\n", 2);
  linein_commit (&li, AGENT_LINE_MAX + 3);
  CHECK (linein_pending (&li));
  CHECK (linein_next (&li, &line, &len) == LI_TOO_LONG);
  CHECK (linein_next (&li, &line, &len) == LI_LINE && len == 1 && line[0] == 'a');
}

static void
test_outq (void)
{
  static struct outq q;
  int fds[2];
  char buf[65536];
  ssize_t n;

  outq_init (&q);
  CHECK (outq_empty (&q));
  outq_put_report (&q, "r1\n", 3);
  outq_put_report (&q, "r2\n", 3); /* replaces r1 */
  CHECK_U64 (q.dropped, 1);
  CHECK (outq_put_line (&q, "a\n", 2));
  CHECK (outq_put_line (&q, "b\n", 2));
  CHECK (pipe2 (fds, O_NONBLOCK) == 0);
  CHECK (outq_flush (&q, fds[1]) == 0);
  CHECK (outq_empty (&q));
  n = read (fds[0], buf, sizeof buf);
  CHECK (n == 7 && memcmp (buf, "a\nb\nr2\n", 7) == 0);

  /* A full pipe: flush keeps what it could not write, lines stay whole. */
  fcntl (fds[1], F_SETPIPE_SZ, 4096);
  {
    char line[1000];
    memset (line, 'x', sizeof line);
    line[sizeof line - 1] = '\n';
    for (int i = 0; i < 10; i++)
      CHECK (outq_put_line (&q, line, sizeof line));
    CHECK (outq_flush (&q, fds[1]) == 0);
    CHECK (!outq_empty (&q));
    while ((n = read (fds[0], buf, sizeof buf)) > 0)
      CHECK (outq_flush (&q, fds[1]) == 0);
    CHECK (outq_empty (&q));
  }
  /* Room is bounded: the ordered part refuses past its capacity. */
  {
    char line[AGENT_LINE_MAX];
    int put = 0;
    memset (line, 'x', sizeof line);
    while (outq_put_line (&q, line, sizeof line))
      put++;
    CHECK_U64 (put, OUTQ_CAP / AGENT_LINE_MAX);
    CHECK (!outq_has_room (&q, 1));
    outq_put_report (&q, "r\n", 2);
    outq_reset (&q);
    CHECK (outq_empty (&q));
    CHECK_U64 (q.dropped, 2);
  }
  close (fds[0]);
  /* The reader went away: a real error. */
  CHECK (outq_put_line (&q, "a\n", 2));
  CHECK (outq_flush (&q, fds[1]) == -EPIPE);
  close (fds[1]);
}

static void
test_report_bounds (void)
{
  struct sample s;
  struct hello_info h = { .agent = "memtide-agent x",
                          .page_size = 4096,
                          .interval_ms = 1000,
                          .psi_mode = "trigger",
                          .reclaim_methods = 3,
                          .is_root = true,
                          .unavail = 0xffffffffu };
  struct report_meta m = { .seq = UINT64_MAX,
                           .reason = "reply",
                           .mono_us = UINT64_MAX,
                           .has_id = true,
                           .id = REQ_ID_MAX,
                           .dropped = UINT64_MAX,
                           .page_size = 4096,
                           .hello = &h };
  char line[AGENT_LINE_MAX + 1];
  json_object *o, *v;
  int n;

  /* Every field present with its largest value: still far below 4 KiB. */
  memset (&s, 0, sizeof s);
  for (int i = 0; i < MI_N; i++)
    s.mi[i] = UINT64_MAX / 1024 * 1024;
  s.mi_have = (1u << MI_N) - 1;
  for (int i = 0; i < VS_N; i++)
    s.vs[i] = UINT64_MAX / 4096;
  s.vs_have = (1u << VS_N) - 1;
  s.have_psi = true;
  s.psi.some = (struct psi_line){ true, "100.00", "100.00", UINT64_MAX };
  s.psi.full = s.psi.some;
  s.have_blocks = true;
  s.blocks = (struct block_counts){ UINT64_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX };
  s.have_pr_order = true;
  s.pr_order = 63;
  s.pr_have = (1u << PR_N) - 1;
  for (int i = 0; i < PR_N; i++)
    s.pr[i] = UINT64_MAX;
  s.have_usage = true;
  for (int k = 0; k < UK_N; k++) {
    s.usage[k].blocks = UINT32_MAX;
    for (int u = 0; u < BU_N; u++)
      s.usage[k].pages[u] = UINT64_MAX;
  }
  memset (h.kernel, 'k', sizeof h.kernel - 1);
  memset (h.boot_id, 'b', sizeof h.boot_id - 1);
  snprintf (h.psi_trigger, sizeof h.psi_trigger, "some 10000000 10000000");
  n = report_format (line, sizeof line, &s, &m);
  printf ("# largest report: %d bytes\n", n);
  CHECK (n > 0 && n < 3072);
  CHECK (line[n - 1] == '\n' && memchr (line, '\n', (size_t) n - 1) == NULL);
  o = json_tokener_parse (line);
  CHECK (o != NULL);
  if (o) {
    CHECK (json_object_object_get_ex (o, "unavailable", &v)
           && json_object_array_length (v) == UA_N);
    json_object_put (o);
  }
}

static void
test_psi_poll (void)
{
  char path[] = "/tmp/memtide-agent-psi-XXXXXX";
  int fd = mkstemp (path);
  struct psi_watch p;
  uint64_t t = 1000000000;

  CHECK (fd >= 0);
  memset (&p, 0, sizeof p);
  p.mode = PSI_MODE_POLL;
  p.read_fd = fd;
  p.trig_fd = -1;
  p.stall_us = 150000;
  p.window_us = 1000000;

#define SET_TOTAL(x)                                                                             \
  do {                                                                                           \
    char b_[128];                                                                                \
    int n_ = snprintf (b_, sizeof b_, "some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\n", (x)); \
    CHECK (ftruncate (fd, 0) == 0 && pwrite (fd, b_, (size_t) n_, 0) == n_);                     \
  } while (0)

  /* 100 ms of stall per second: below the threshold, never fires. */
  for (int i = 0; i < 12; i++) {
    SET_TOTAL (i * 25000);
    CHECK (!psi_watch_poll (&p, t));
    CHECK_U64 (p.next_poll_us, t + 250000);
    t += 250000;
  }
  /* 200 ms within the last second: fires once ... */
  SET_TOTAL (11 * 25000 + 200000);
  CHECK (psi_watch_poll (&p, t));
  t += 250000;
  /* ... and not again within the same window, even as stall goes on. */
  SET_TOTAL (11 * 25000 + 400000);
  CHECK (!psi_watch_poll (&p, t));
  t += 250000;
  SET_TOTAL (11 * 25000 + 600000);
  CHECK (!psi_watch_poll (&p, t));
  t += 500000;
  SET_TOTAL (11 * 25000 + 800000);
  CHECK (psi_watch_poll (&p, t));
  /* Garbage in the file: no event, no crash. */
  CHECK (ftruncate (fd, 0) == 0 && pwrite (fd, "garbage", 7, 0) == 7);
  CHECK (!psi_watch_poll (&p, t + 2000000));
  close (fd);
  unlink (path);
}

/* ---- xenstore transport, against an in-memory fake xenstore ---------------- */

#define FAKE_KEYS 8

static struct {
  char path[FAKE_KEYS][64];
  char value[FAKE_KEYS][8192];
  unsigned len[FAKE_KEYS];
  int n;
  int events; /* watch events waiting */
  int writes, opens;
  bool fail_open, fail_write, broken_watch;
} fx;

static int
fake_find (const char *path, bool create)
{
  for (int i = 0; i < fx.n; i++)
    if (strcmp (fx.path[i], path) == 0)
      return i;
  if (!create || fx.n == FAKE_KEYS)
    return -1;
  snprintf (fx.path[fx.n], sizeof fx.path[0], "%s", path);
  fx.len[fx.n] = 0;
  return fx.n++;
}

static void
fake_set (const char *path, const char *v)
{
  int i = fake_find (path, true);
  fx.len[i] = (unsigned) strlen (v);
  memcpy (fx.value[i], v, fx.len[i]);
}

static const char *
fake_get (const char *path)
{
  static char buf[8193];
  int i = fake_find (path, false);
  if (i < 0)
    return NULL;
  memcpy (buf, fx.value[i], fx.len[i]);
  buf[fx.len[i]] = '\0';
  return buf;
}

static void *
fake_open (void)
{
  fx.opens++;
  if (fx.fail_open) {
    errno = ENOENT;
    return NULL;
  }
  return &fx;
}

static void
fake_close (void *h)
{
}

static int
fake_fileno (void *h)
{
  return 0;
}

static bool
fake_watch (void *h, const char *path, const char *token)
{
  fx.events++; /* xenstore fires a watch once when it is set */
  return true;
}

static bool
fake_next_event (void *h, char *path, size_t size)
{
  if (fx.broken_watch) {
    errno = EIO;
    return false;
  }
  if (fx.events == 0) {
    errno = EAGAIN;
    return false;
  }
  fx.events--;
  snprintf (path, size, "%s", XS_REQUEST);
  return true;
}

static void *
fake_read (void *h, const char *path, unsigned *len)
{
  int i = fake_find (path, false);
  char *v;

  if (i < 0) {
    errno = ENOENT;
    return NULL;
  }
  v = malloc (fx.len[i] + 1);
  memcpy (v, fx.value[i], fx.len[i]);
  v[fx.len[i]] = '\0';
  *len = fx.len[i];
  return v;
}

static bool
fake_write (void *h, const char *path, const char *data, unsigned len)
{
  int i;

  if (fx.fail_write) {
    errno = EIO;
    return false;
  }
  i = fake_find (path, true);
  memcpy (fx.value[i], data, len);
  fx.len[i] = len;
  fx.writes++;
  return true;
}

static const struct xs_backend fake_backend = {
  fake_open, fake_close, fake_fileno, fake_watch, fake_next_event, fake_read, fake_write,
};

/* The host writes a request and the watch fires. */
static void
host_request (const char *v)
{
  fake_set (XS_REQUEST, v);
  fx.events++;
}

static void
test_xs_key_for_line (void)
{
  static const char hello[] = "{\"v\":1,\"type\":\"report\",\"seq\":1,\"reason\":\"connect\","
                              "\"mono_us\":5,\"hello\":true,\"agent\":\"memtide-agent 0.1.0\"}";
  static const char tick[] = "{\"v\":1,\"type\":\"report\",\"seq\":2,\"reason\":\"tick\"}";
  static const char answer[] =
    "{\"v\":1,\"type\":\"report\",\"seq\":3,\"reason\":\"reply\",\"id\":4}";
  static const char reply[] =
    "{\"v\":1,\"type\":\"reply\",\"id\":7,\"op\":\"reclaim\",\"ok\":true}";
  /* An escaped quote cannot end a string early. */
  static const char sneaky[] = "{\"v\":1,\"type\":\"report\",\"kernel\":\"\\\"hello\\\":true\"}";

  CHECK (xsport_key_for_line (hello, strlen (hello)) == XS_KEY_HELLO);
  CHECK (xsport_key_for_line (tick, strlen (tick)) == XS_KEY_REPORT);
  CHECK (xsport_key_for_line (answer, strlen (answer)) == XS_KEY_REPORT);
  CHECK (xsport_key_for_line (reply, strlen (reply)) == XS_KEY_REPLY);
  CHECK (xsport_key_for_line (sneaky, strlen (sneaky)) == XS_KEY_REPORT);
  CHECK (xsport_key_for_line ("", 0) == XS_KEY_NONE);
  CHECK (xsport_key_for_line (" \t\r", 3) == XS_KEY_NONE);
  CHECK_STR (xsport_key_path (XS_KEY_HELLO), "data/memtide/hello");
  CHECK_STR (xsport_key_path (XS_KEY_REPORT), "data/memtide/report");
  CHECK_STR (xsport_key_path (XS_KEY_REPLY), "data/memtide/reply");
  CHECK (xsport_key_path (XS_KEY_NONE) == NULL);
}

static void
put_line (struct outq *q, const char *line)
{
  CHECK (outq_put_line (q, line, strlen (line)));
}

/* Queued lines go to their keys without the newline; the blank
 * separator is not written; a line over the bound is refused. */
static void
test_xs_flush (void)
{
  static struct outq q;
  static struct xsport x;
  static char big[AGENT_LINE_MAX + 1];
  static const char tick5[] = "{\"v\":1,\"type\":\"report\",\"seq\":5}\n";
  const struct xs_backend *saved = xs_backend;
  const char *line;
  size_t len;

  memset (&fx, 0, sizeof fx);
  xs_backend = &fake_backend;
  outq_init (&q);
  xsport_init (&x);
  CHECK (xsport_flush (&x, &q) < 0); /* not open */
  CHECK (xsport_open (&x));
  outq_put_line (&q, "\n", 1);
  put_line (&q, "{\"v\":1,\"type\":\"report\",\"hello\":true}\n");
  put_line (&q, "{\"v\":1,\"type\":\"reply\",\"id\":1}\n");
  outq_put_report (&q, tick5, strlen (tick5));
  CHECK (outq_peek_line (&q, &line, &len) && len == 1);
  CHECK (xsport_flush (&x, &q) == 0);
  CHECK (outq_empty (&q));
  CHECK_U64 (fx.writes, 3);
  CHECK_STR (fake_get ("data/memtide/hello"), "{\"v\":1,\"type\":\"report\",\"hello\":true}");
  CHECK_STR (fake_get ("data/memtide/reply"), "{\"v\":1,\"type\":\"reply\",\"id\":1}");
  CHECK_STR (fake_get ("data/memtide/report"), "{\"v\":1,\"type\":\"report\",\"seq\":5}");

  /* 4095 bytes + newline: the longest value there is. */
  memset (big, ' ', sizeof big);
  memcpy (big, "{\"v\":1,\"type\":\"report\"", 22);
  big[AGENT_LINE_MAX - 2] = '}';
  big[AGENT_LINE_MAX - 1] = '\n';
  CHECK (outq_put_line (&q, big, AGENT_LINE_MAX));
  CHECK (xsport_flush (&x, &q) == 0);
  CHECK_U64 (fx.writes, 4);
  CHECK_U64 (strlen (fake_get ("data/memtide/report")), AGENT_LINE_MAX - 1);
  /* 4096 bytes without a newline (as no formatter makes it): refused. */
  big[AGENT_LINE_MAX - 1] = ' ';
  outq_put_report (&q, big, AGENT_LINE_MAX);
  CHECK (xsport_flush (&x, &q) == 0);
  CHECK_U64 (fx.writes, 4);
  CHECK_U64 (x.refused, 1);
  CHECK_U64 (q.dropped, 1);
  CHECK (outq_empty (&q));

  /* A failed write: closed, the line left queued for the caller. */
  fx.fail_write = true;
  put_line (&q, "{\"v\":1,\"type\":\"reply\",\"id\":2}\n");
  CHECK (xsport_flush (&x, &q) == -EIO);
  CHECK (!x.up);
  CHECK (!outq_empty (&q));
  CHECK (xsport_fd (&x) == -1);
  xs_backend = saved;
}

static bool
next_request (struct linein *li, char *out, size_t size)
{
  const char *line;
  size_t len;

  if (linein_next (li, &line, &len) != LI_LINE)
    return false;
  snprintf (out, size, "%.*s", (int) len, line);
  return true;
}

/* The request found at open is not taken; a new value is taken once
 * however often its watch fires; a newline inside stays in one line. */
static void
test_xs_requests (void)
{
  static struct xsport x;
  static struct linein li;
  const struct xs_backend *saved = xs_backend;
  char got[AGENT_LINE_MAX];

  memset (&fx, 0, sizeof fx);
  xs_backend = &fake_backend;
  xsport_init (&x);
  linein_reset (&li);
  fx.fail_open = true;
  CHECK (!xsport_open (&x));
  fx.fail_open = false;
  host_request ("{\"v\":1,\"id\":1,\"op\":\"reclaim\",\"bytes\":1}"); /* before the agent */
  CHECK (xsport_open (&x));
  CHECK (xsport_events (&x));
  CHECK (xsport_take_request (&x, &li));
  CHECK (!next_request (&li, got, sizeof got));

  host_request ("{\"v\":1,\"id\":2,\"op\":\"hello\"}");
  fx.events++; /* fired twice */
  CHECK (xsport_events (&x));
  CHECK (xsport_take_request (&x, &li));
  CHECK (next_request (&li, got, sizeof got));
  CHECK_STR (got, "{\"v\":1,\"id\":2,\"op\":\"hello\"}");
  CHECK (xsport_events (&x));
  CHECK (xsport_take_request (&x, &li));
  CHECK (!next_request (&li, got, sizeof got));

  /* No watch fired: not read. */
  fake_set (XS_REQUEST, "{\"v\":1,\"id\":3,\"op\":\"hello\"}");
  CHECK (xsport_take_request (&x, &li));
  CHECK (!next_request (&li, got, sizeof got));
  fx.events++;
  CHECK (xsport_events (&x));
  CHECK (xsport_take_request (&x, &li));
  CHECK (next_request (&li, got, sizeof got));
  CHECK_STR (got, "{\"v\":1,\"id\":3,\"op\":\"hello\"}");

  host_request ("{\"v\":1,\n\"id\":4,\"op\":\"hello\"}");
  CHECK (xsport_events (&x));
  CHECK (xsport_take_request (&x, &li));
  CHECK (next_request (&li, got, sizeof got));
  CHECK_U64 (strlen (got), 7); /* "{"v":1," then the NUL */
  CHECK (!next_request (&li, got, sizeof got));

  /* The watch breaks: xenstore went away. */
  fx.broken_watch = true;
  fx.events++;
  CHECK (!xsport_events (&x));
  CHECK (!x.up);
  xsport_close (&x);
  xs_backend = saved;
}

int
main (void)
{
  signal (SIGPIPE, SIG_IGN);
  tap_run ("meminfo parser", test_meminfo);
  tap_run ("vmstat parser", test_vmstat);
  tap_run ("PSI parser", test_psi);
  tap_run ("memory block classification", test_blocks);
  tap_run ("memory block usage parser", test_usage_parse);
  tap_run ("/proc/iomem virtio-mem ranges", test_iomem);
  tap_run ("JSON writer", test_jw);
  tap_run ("valid requests", test_request_valid);
  tap_run ("invalid requests are refused with the right error", test_request_invalid);
  tap_run ("line framing and overlong lines", test_linein);
  tap_run ("output queue: order, merge, drops, partial writes", test_outq);
  tap_run ("largest report fits in a line", test_report_bounds);
  tap_run ("PSI polling fallback", test_psi_poll);
  tap_run ("xenstore: which key each line goes to", test_xs_key_for_line);
  tap_run ("xenstore: lines to keys, over-long refused, write failure", test_xs_flush);
  tap_run ("xenstore: requests taken once, old one ignored, one line each", test_xs_requests);
  return tap_done ();
}
