/* test-resizer.c: resize calls off the main loop, on the fake driver:
 * a blocked call holds up neither another domain's call nor the main
 * context; one call per domain in flight; a bounded number in all;
 * outcomes arrive on the main context; freeing gives up on blocked
 * calls and frees what never came.  Waits are for conditions, with a
 * deadline that only catches hangs.
 */
#include <string.h>

#include "backend-fake.h"
#include "model.h"
#include "resizer.h"

#define DEADLINE_S 10

typedef struct {
  GPtrArray *done;   /* "uuid ok" / "uuid error: message", in arrival order */
  gint data_freed;   /* call data freed */
  gboolean off_main; /* an outcome arrived on another thread */
  GThread *main;
} Outcomes;

static void
on_done (const char *uuid, gpointer call_data, const GError *error, gint64 took, gpointer user_data)
{
  Outcomes *out = user_data;

  g_assert_cmpint (took, >=, 0);
  if (g_thread_self () != out->main)
    out->off_main = TRUE;
  g_ptr_array_add (out->done, error == NULL
                                ? g_strdup_printf ("%s ok", uuid)
                                : g_strdup_printf ("%s error: %s", uuid, error->message));
}

static void
data_free (gpointer data)
{
  Outcomes *out = data;

  out->data_freed++;
}

static const char *
add (MtBackend *b, const char *line, char uuid[37])
{
  g_autofree char *reply = mt_backend_fake_command (b, line);

  g_assert_true (g_str_has_prefix (reply, "ok uuid="));
  g_strlcpy (uuid, reply + strlen ("ok uuid="), 37);
  return uuid;
}

static void
command (MtBackend *b, const char *line)
{
  g_autofree char *reply = mt_backend_fake_command (b, line);

  g_assert_true (g_str_has_prefix (reply, "ok"));
}

static gboolean
has_outcome (Outcomes *out, const char *text)
{
  for (guint i = 0; i < out->done->len; i++)
    if (g_str_equal (out->done->pdata[i], text))
      return TRUE;
  return FALSE;
}

/* Run the main context until @text arrived, or the deadline. */
static gboolean
wait_outcome (Outcomes *out, const char *text)
{
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;

  while (!has_outcome (out, text)) {
    if (g_get_monotonic_time () > deadline)
      return FALSE;
    g_main_context_iteration (NULL, FALSE);
    g_usleep (1000);
  }
  return TRUE;
}

static guint64
show_value (MtBackend *b, const char *name, const char *key)
{
  g_autofree char *line = g_strdup_printf ("show %s", name);
  g_autofree char *reply = mt_backend_fake_command (b, line);
  g_autofree char *needle = g_strdup_printf (" %s=", key);
  const char *at = strstr (reply, needle);

  g_assert_nonnull (at);
  return g_ascii_strtoull (at + strlen (needle), NULL, 10);
}

static void
outcomes_init (Outcomes *out)
{
  *out = (Outcomes){ .done = g_ptr_array_new_with_free_func (g_free), .main = g_thread_self () };
}

static void
test_blocked_call_holds_up_nothing (void)
{
  g_autoptr (MtBackend) b = mt_backend_fake_new (NULL);
  g_autoptr (MtResizer) r = NULL;
  g_autoptr (GError) busy = NULL;
  g_autofree char *slow_ok = NULL;
  g_autofree char *fast_ok = NULL;
  char slow[37], fast[37];
  Outcomes out;
  MtResize shrink = { .set_balloon = TRUE, .balloon = 512 * MT_MIB };
  MtResize both = {
    .set_vmem = TRUE, .vmem_requested = 256 * MT_MIB, .set_balloon = TRUE, .balloon = 768 * MT_MIB
  };

  outcomes_init (&out);
  r = mt_resizer_new (b, on_done, &out);
  add (b, "add slow size=1G", slow);
  add (b, "add fast size=1G vmem=1G", fast);
  command (b, "block slow 1h");
  slow_ok = g_strdup_printf ("%s ok", slow);
  fast_ok = g_strdup_printf ("%s ok", fast);

  g_assert_cmpint (mt_resizer_in_flight (r, slow), ==, MT_TIME_NEVER);
  g_assert_true (mt_resizer_submit (r, slow, &shrink, &out, data_free, NULL));
  g_assert_cmpint (mt_resizer_in_flight (r, slow), !=, MT_TIME_NEVER);
  /* One call per domain: a second is refused (and its data freed). */
  g_assert_false (mt_resizer_submit (r, slow, &shrink, &out, data_free, &busy));
  g_assert_error (busy, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_assert_nonnull (strstr (busy->message, "has not returned"));
  g_assert_cmpint (out.data_freed, ==, 1);

  /* Another domain's call goes through while the first is blocked. */
  g_assert_true (mt_resizer_submit (r, fast, &both, &out, data_free, NULL));
  g_assert_true (wait_outcome (&out, fast_ok));
  g_assert_false (has_outcome (&out, slow_ok));
  g_assert_cmpint (mt_resizer_in_flight (r, fast), ==, MT_TIME_NEVER);
  g_assert_cmpint (mt_resizer_in_flight (r, slow), !=, MT_TIME_NEVER);
  g_assert_cmpuint (mt_resizer_n_in_flight (r), ==, 1);
  g_assert_cmpuint (show_value (b, "fast", "plugged"), ==, 256 * MT_MIB);
  g_assert_cmpuint (show_value (b, "fast", "balloon"), ==, 768 * MT_MIB);
  g_assert_cmpuint (show_value (b, "slow", "blocked"), ==, 1);
  g_assert_cmpuint (show_value (b, "slow", "balloon"), ==, MT_GIB);

  /* Unblocked: it returns, on the main context, and a new call may go. */
  command (b, "block slow 0");
  g_assert_true (wait_outcome (&out, slow_ok));
  g_assert_cmpuint (show_value (b, "slow", "balloon"), ==, 512 * MT_MIB);
  g_assert_cmpuint (show_value (b, "slow", "max-in-flight"), ==, 1);
  g_assert_cmpuint (mt_resizer_n_in_flight (r), ==, 0);
  g_assert_false (out.off_main);
  g_assert_cmpint (out.data_freed, ==, 3);
  g_assert_true (mt_resizer_submit (r, slow, &shrink, &out, data_free, NULL));
  g_clear_pointer (&r, mt_resizer_free);
  g_assert_cmpint (out.data_freed, ==, 4);
  g_ptr_array_unref (out.done);
}

/* A failed call comes back with its error; the balloon is not set after
 * a failed virtio-mem call. */
static void
test_failure (void)
{
  g_autoptr (MtBackend) b = mt_backend_fake_new (NULL);
  g_autoptr (MtResizer) r = NULL;
  g_autofree char *failed = NULL;
  char plain[37];
  Outcomes out;
  MtResize both = {
    .set_vmem = TRUE, .vmem_requested = 256 * MT_MIB, .set_balloon = TRUE, .balloon = 512 * MT_MIB
  };

  outcomes_init (&out);
  r = mt_resizer_new (b, on_done, &out);
  add (b, "add plain size=1G", plain);
  g_assert_true (mt_resizer_submit (r, plain, &both, &out, data_free, NULL));
  failed = g_strdup_printf ("%s error: fake domain 'plain' has no virtio-mem device", plain);
  g_assert_true (wait_outcome (&out, failed));
  g_assert_cmpuint (show_value (b, "plain", "balloon"), ==, MT_GIB);
  g_assert_cmpuint (show_value (b, "plain", "calls"), ==, 1);
  g_ptr_array_unref (out.done);
}

/* More calls than may be in flight: refused, not queued without end.
 * Freeing gives up on the blocked ones and drops the queued. */
static void
test_bound_and_free (void)
{
  g_autoptr (MtBackend) b = mt_backend_fake_new (NULL);
  MtResizer *r;
  g_autoptr (GError) full = NULL;
  g_autoptr (GPtrArray) uuids = g_ptr_array_new_with_free_func (g_free);
  Outcomes out;
  MtResize shrink = { .set_balloon = TRUE, .balloon = 512 * MT_MIB };
  char uuid[37];
  gint64 deadline;

  outcomes_init (&out);
  r = mt_resizer_new (b, on_done, &out);
  for (guint i = 0; i <= MT_RESIZER_MAX_CALLS; i++) {
    g_autofree char *line = g_strdup_printf ("add vm%u size=1G", i);
    g_autofree char *block = g_strdup_printf ("block vm%u 1h", i);

    g_ptr_array_add (uuids, g_strdup (add (b, line, uuid)));
    command (b, block);
  }
  for (guint i = 0; i < MT_RESIZER_MAX_CALLS; i++)
    g_assert_true (mt_resizer_submit (r, uuids->pdata[i], &shrink, &out, data_free, NULL));
  g_assert_false (
    mt_resizer_submit (r, uuids->pdata[MT_RESIZER_MAX_CALLS], &shrink, &out, data_free, &full));
  g_assert_error (full, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_cmpint (out.data_freed, ==, 1);

  /* As many run at once as there are threads, all blocked. */
  deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;
  for (;;) {
    guint blocked = 0;

    for (guint i = 0; i < MT_RESIZER_MAX_CALLS; i++) {
      g_autofree char *name = g_strdup_printf ("vm%u", i);

      blocked += (guint) show_value (b, name, "blocked");
    }
    if (blocked == MT_RESIZER_THREADS)
      break;
    g_assert_cmpuint (blocked, <, MT_RESIZER_THREADS);
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    g_usleep (1000);
  }

  mt_resizer_free (r);
  /* Nothing delivered after the free, every call's data freed. */
  g_assert_cmpuint (out.done->len, ==, 0);
  g_assert_cmpint (out.data_freed, ==, MT_RESIZER_MAX_CALLS + 1);
  for (guint i = 0; i < 8; i++) {
    g_autofree char *name = g_strdup_printf ("vm%u", i);

    g_assert_cmpuint (show_value (b, name, "balloon"), ==, MT_GIB);
  }
  /* Nothing left on the main context that points to it. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_ptr_array_unref (out.done);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/resizer/blocked-call-holds-up-nothing", test_blocked_call_holds_up_nothing);
  g_test_add_func ("/resizer/failure", test_failure);
  g_test_add_func ("/resizer/bound-and-free", test_bound_and_free);
  return g_test_run ();
}
