/* test-log-event.c: mt_log_event() through a custom GLogWriterFunc: the
 * journald fields each kind of operator line carries, and that the line
 * itself is what g_message()/g_warning() would have written. */
#define G_LOG_DOMAIN "memtided"

#include "log-event.h"

typedef struct {
  GLogLevelFlags level;
  GHashTable *fields; /* key -> value */
  char *text;         /* as the standard streams writer formats it, no time */
} Captured;

static Captured last;

static void
captured_clear (void)
{
  g_clear_pointer (&last.fields, g_hash_table_unref);
  g_clear_pointer (&last.text, g_free);
}

static GLogWriterOutput
capture (GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data)
{
  g_autofree char *text = g_log_writer_format_fields (level, fields, n, FALSE);
  g_autoptr (GRegex) time = g_regex_new ("\\d\\d:\\d\\d:\\d\\d\\.\\d\\d\\d", 0, 0, NULL);

  captured_clear ();
  last.level = level;
  last.fields = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (gsize i = 0; i < n; i++)
    g_hash_table_replace (last.fields, g_strdup (fields[i].key),
                          fields[i].length < 0
                            ? g_strdup (fields[i].value)
                            : g_strndup (fields[i].value, (gsize) fields[i].length));
  last.text = g_regex_replace_literal (time, text, -1, 0, "TIME", 0, NULL);
  return G_LOG_WRITER_HANDLED;
}

static const char *
field (const char *key)
{
  return g_hash_table_lookup (last.fields, key);
}

static void
test_ids (void)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GRegex) hex = g_regex_new ("^[0-9a-f]{32}$", 0, 0, NULL);

  for (MtEvent e = 0; e < MT_EVENT_COUNT; e++) {
    const char *id = mt_event_message_id (e);

    g_assert_nonnull (id);
    g_assert_true (g_regex_match (hex, id, 0, NULL));
    g_assert_true (g_hash_table_add (seen, (gpointer) id));
  }
}

static void
test_resize (void)
{
  g_autofree char *text = NULL;
  MtEventFields f = {
    .vm = "web1",
    .sizes = TRUE,
    .size_from = 2147483648,
    .size_to = 1610612736,
    .mechanism = "balloon",
    .reason = "shrink 2.0 GiB -> 1.5 GiB: idle",
  };

  g_message ("resize: web1: shrink 2.0 GiB -> 1.5 GiB: idle");
  text = g_strdup (last.text);
  mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, MT_EVENT_RESIZE, &f, "resize: %s: %s", "web1",
                "shrink 2.0 GiB -> 1.5 GiB: idle");
  /* Without the journal, the same line as before. */
  g_assert_cmpstr (last.text, ==, text);
  g_assert_cmpint (last.level, ==, G_LOG_LEVEL_MESSAGE);
  g_assert_cmpstr (field ("MESSAGE"), ==, "resize: web1: shrink 2.0 GiB -> 1.5 GiB: idle");
  g_assert_cmpstr (field ("PRIORITY"), ==, "5");
  g_assert_cmpstr (field ("GLIB_DOMAIN"), ==, G_LOG_DOMAIN);
  g_assert_cmpstr (field ("MESSAGE_ID"), ==, "e0306dca9c444aafa451764a410b7da2");
  g_assert_cmpstr (field ("MEMTIDE_VM"), ==, "web1");
  g_assert_cmpstr (field ("MEMTIDE_SIZE_FROM"), ==, "2147483648");
  g_assert_cmpstr (field ("MEMTIDE_SIZE_TO"), ==, "1610612736");
  g_assert_cmpstr (field ("MEMTIDE_MECHANISM"), ==, "balloon");
  g_assert_cmpstr (field ("MEMTIDE_REASON"), ==, "shrink 2.0 GiB -> 1.5 GiB: idle");
  g_assert_null (field ("MEMTIDE_AGENT_ERROR"));
}

static void
test_warnings (void)
{
  g_autofree char *text = NULL;

  /* Not fatal here (g_test_init makes warnings fatal): this test
   * compares them. */
  g_log_set_always_fatal (G_LOG_FATAL_MASK);

  g_warning ("web1: stuck: did not move toward 1.5 GiB in 60 s");
  text = g_strdup (last.text);
  mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_STUCK,
                &(MtEventFields){ .vm = "web1", .reason = "did not move toward 1.5 GiB in 60 s" },
                "web1: stuck: %s", "did not move toward 1.5 GiB in 60 s");
  g_assert_cmpstr (last.text, ==, text);
  g_assert_cmpstr (field ("PRIORITY"), ==, "4");
  g_assert_cmpstr (field ("MESSAGE_ID"), ==, mt_event_message_id (MT_EVENT_STUCK));
  g_assert_cmpstr (field ("MEMTIDE_REASON"), ==, "did not move toward 1.5 GiB in 60 s");
  /* No sizes given: no size fields. */
  g_assert_null (field ("MEMTIDE_SIZE_FROM"));
  g_assert_null (field ("MEMTIDE_SIZE_TO"));
  g_assert_null (field ("MEMTIDE_MECHANISM"));

  mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_AGENT_VIOLATION,
                &(MtEventFields){ .vm = "db", .kind = "rate", .reason = "too many reports" },
                "VM %s: agent protocol violation (%s: %s)", "db", "rate", "too many reports");
  g_assert_cmpstr (field ("MESSAGE"), ==,
                   "VM db: agent protocol violation (rate: too many reports)");
  g_assert_cmpstr (field ("MESSAGE_ID"), ==, mt_event_message_id (MT_EVENT_AGENT_VIOLATION));
  g_assert_cmpstr (field ("MEMTIDE_VM"), ==, "db");
  g_assert_cmpstr (field ("MEMTIDE_AGENT_ERROR"), ==, "rate");

  /* A policy error: several lines, no VM. */
  g_warning ("Reload failed, keeping the policy in force:\n/etc/memtide/a.conf:3: bad");
  g_free (text);
  text = g_strdup (last.text);
  mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_POLICY_ERROR,
                &(MtEventFields){ .reason = "/etc/memtide/a.conf:3: bad" },
                "Reload failed, keeping the policy in force:\n%s", "/etc/memtide/a.conf:3: bad");
  g_assert_cmpstr (last.text, ==, text);
  g_assert_cmpstr (field ("MESSAGE_ID"), ==, "cf0ec7e6175a4fcbab1d23cd8946ef64");
  g_assert_null (field ("MEMTIDE_VM"));
  g_assert_cmpstr (field ("MEMTIDE_REASON"), ==, "/etc/memtide/a.conf:3: bad");
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (capture, NULL, NULL);
  g_test_add_func ("/log-event/ids", test_ids);
  g_test_add_func ("/log-event/resize", test_resize);
  g_test_add_func ("/log-event/warnings", test_warnings);
  status = g_test_run ();
  captured_clear ();
  return status;
}
