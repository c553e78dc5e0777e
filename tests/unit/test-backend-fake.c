/* test-backend-fake.c: the fake driver: its script (commands and the
 * control socket), how sizes move, and resize calls that are refused,
 * fail, or block until their block ends, the domain goes or the caller
 * cancels.  No timed assertions: waits are for conditions, with a
 * deadline that only catches hangs.
 */
#include <string.h>
#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>

#include "backend-fake-private.h"

#define DEADLINE_S 10

typedef struct {
  GPtrArray *events; /* "ADDED <uuid>" */
  char *dir;
  char *path;
  MtBackend *b;
} Fixture;

static void
record_event (MtBackend *b, MtDomainEvent event, const char *uuid, gpointer user_data)
{
  Fixture *fx = user_data;

  g_ptr_array_add (fx->events, g_strdup_printf ("%s %s",
                                                event == MT_DOMAIN_EVENT_ADDED     ? "ADDED"
                                                : event == MT_DOMAIN_EVENT_REMOVED ? "REMOVED"
                                                                                   : "CHANGED",
                                                uuid));
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  fx->events = g_ptr_array_new_with_free_func (g_free);
  fx->dir = g_dir_make_tmp ("memtide-fake-XXXXXX", &error);
  g_assert_no_error (error);
  fx->path = g_build_filename (fx->dir, "ctl", NULL);
  fx->b = mt_backend_fake_new (fx->path);
  fx->b->domain_cb = record_event;
  fx->b->user_data = fx;
  g_assert_cmpint (fx->b->ops->probe (fx->b, &error), ==, MT_PROBE_YES);
  g_assert_true (fx->b->ops->connect (fx->b, &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  g_clear_pointer (&fx->b, mt_backend_free);
  /* The driver removed its socket. */
  g_assert_false (g_file_test (fx->path, G_FILE_TEST_EXISTS));
  g_rmdir (fx->dir);
  g_free (fx->path);
  g_free (fx->dir);
  g_ptr_array_unref (fx->events);
}

static char *
cmd (Fixture *fx, const char *line)
{
  return mt_backend_fake_command (fx->b, line);
}

static void
assert_ok (Fixture *fx, const char *line)
{
  g_autofree char *reply = cmd (fx, line);

  g_test_message ("%s -> %s", line, reply);
  g_assert_true (g_str_has_prefix (reply, "ok"));
}

static void
assert_refused (Fixture *fx, const char *line, const char *needle)
{
  g_autofree char *reply = cmd (fx, line);

  g_test_message ("%s -> %s", line, reply);
  g_assert_true (g_str_has_prefix (reply, "error: "));
  g_assert_nonnull (strstr (reply, needle));
}

/* The value of key= in a show reply. */
static guint64
show_value (Fixture *fx, const char *name, const char *key)
{
  g_autofree char *line = g_strdup_printf ("show %s", name);
  g_autofree char *reply = cmd (fx, line);
  g_autofree char *needle = g_strdup_printf (" %s=", key);
  const char *at = strstr (reply, needle);

  g_assert_nonnull (at);
  return g_ascii_strtoull (at + strlen (needle), NULL, 10);
}

static const char *
uuid_of (Fixture *fx, const char *name, char buf[MT_FAKE_UUID_LEN])
{
  g_autofree char *line = g_strdup_printf ("show %s", name);
  g_autofree char *reply = cmd (fx, line);
  const char *at = strstr (reply, " uuid=");

  g_assert_nonnull (at);
  g_strlcpy (buf, at + strlen (" uuid="), MT_FAKE_UUID_LEN);
  return buf;
}

/* ---- pure ------------------------------------------------------------------- */

static void
test_motion (void)
{
  MtFakeMotion m = { .from = 100 * MT_MIB, .to = 100 * MT_MIB, .since = 0 };

  /* At once without a speed. */
  mt_fake_motion_retarget (&m, 0, 1000, 50 * MT_MIB);
  g_assert_cmpuint (mt_fake_motion_at (&m, 0, 1000), ==, 50 * MT_MIB);
  /* A new speed applies from now: anchored where it got at the old one. */
  mt_fake_motion_retarget (&m, 0, G_USEC_PER_SEC, m.to);
  /* 10 MiB/s: 2 s later 20 MiB further, then there and no further. */
  mt_fake_motion_retarget (&m, 10 * MT_MIB, G_USEC_PER_SEC, 100 * MT_MIB);
  g_assert_cmpuint (m.from, ==, 50 * MT_MIB);
  g_assert_cmpuint (mt_fake_motion_at (&m, 10 * MT_MIB, G_USEC_PER_SEC), ==, 50 * MT_MIB);
  g_assert_cmpuint (mt_fake_motion_at (&m, 10 * MT_MIB, 3 * G_USEC_PER_SEC), ==, 70 * MT_MIB);
  g_assert_cmpuint (mt_fake_motion_at (&m, 10 * MT_MIB, 60 * G_USEC_PER_SEC), ==, 100 * MT_MIB);
  /* A new target midway starts from where it is, downward too. */
  mt_fake_motion_retarget (&m, 10 * MT_MIB, 3 * G_USEC_PER_SEC, 0);
  g_assert_cmpuint (m.from, ==, 70 * MT_MIB);
  g_assert_cmpuint (mt_fake_motion_at (&m, 10 * MT_MIB, 4 * G_USEC_PER_SEC), ==, 60 * MT_MIB);
  g_assert_cmpuint (mt_fake_motion_at (&m, 10 * MT_MIB, 100 * G_USEC_PER_SEC), ==, 0);
}

/* ---- the script ------------------------------------------------------------- */

static void
test_commands (Fixture *fx, gconstpointer data)
{
  char uuid[MT_FAKE_UUID_LEN];
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDomainInfo) info = NULL;
  g_autofree char *list = NULL;

  assert_ok (fx, "add web size=2G used=300M");
  assert_ok (fx, "add db size=512M vmem=1G block=128M plugged=256M agent=/run/db.sock "
                 "uuid=AAAAAAAA-0000-4000-8000-000000000002");
  g_assert_cmpuint (fx->events->len, ==, 2);
  g_assert_cmpstr (fx->events->pdata[1], ==, "ADDED aaaaaaaa-0000-4000-8000-000000000002");

  /* A UUID from the name: the same every run. */
  uuid_of (fx, "web", uuid);
  g_assert_true (g_uuid_string_is_valid (uuid));
  {
    g_autoptr (MtBackend) other = mt_backend_fake_new (NULL);
    g_autofree char *reply = mt_backend_fake_command (other, "add web size=1G");

    g_assert_cmpstr (reply + strlen ("ok uuid="), ==, uuid);
  }

  info = fx->b->ops->get_domain (fx->b, "aaaaaaaa-0000-4000-8000-000000000002", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (info->name, ==, "db");
  g_assert_cmpuint (info->base_memory, ==, 512 * MT_MIB);
  g_assert_cmpuint (info->vmem_size, ==, MT_GIB);
  g_assert_cmpuint (info->vmem_block, ==, 128 * MT_MIB);
  g_assert_cmpuint (info->vmem_requested, ==, 256 * MT_MIB);
  g_assert_cmpuint (info->vmem_plugged, ==, 256 * MT_MIB);
  g_assert_cmpstr (info->agent_socket, ==, "/run/db.sock");
  g_assert_null (info->overrides);
  list = cmd (fx, "list");
  g_assert_cmpstr (list, ==, "ok db web");
  g_assert_cmpuint (show_value (fx, "db", "size"), ==, 768 * MT_MIB);

  assert_refused (fx, "", "empty command");
  assert_refused (fx, "frobnicate web", "unknown command 'frobnicate'");
  assert_refused (fx, "add x", "size= (boot memory) is required");
  assert_refused (fx, "add x size=12", "“12”");
  assert_refused (fx, "add x size=1G colour=red", "unknown key 'colour'");
  assert_refused (fx, "add x size=1G vmem=1G block=3M", "multiples of block=");
  assert_refused (fx, "add x size=1G plugged=2M", "plugged= needs vmem=");
  assert_refused (fx, "add x size=1G uuid=nope", "not a UUID");
  assert_refused (fx, "add web size=1G", "of that name already runs");
  assert_refused (fx, "add x size=1G uuid=aaaaaaaa-0000-4000-8000-000000000002",
                  "of that UUID already runs");
  assert_refused (fx, "set web size=1G", "unknown key 'size'");
  assert_refused (fx, "set nobody used=1G", "no domain 'nobody'");
  assert_refused (fx, "block web soon", "block: ");
  assert_refused (fx, "remove", "usage: remove NAME");
  /* A refused add changed nothing. */
  g_assert_cmpuint (fx->events->len, ==, 2);

  assert_ok (fx, "remove db");
  g_assert_cmpstr (fx->events->pdata[2], ==, "REMOVED aaaaaaaa-0000-4000-8000-000000000002");
  assert_refused (fx, "remove db", "no domain 'db'");
}

typedef struct {
  char uuid[MT_FAKE_UUID_LEN];
  MtVmSample sample;
  guint n;
} OneSample;

static void
on_sample (const char *uuid, MtVmSample *s, gpointer user_data)
{
  OneSample *one = user_data;

  if (g_str_equal (uuid, one->uuid)) {
    one->sample = *s;
    one->n++;
  }
}

static void
test_sizes_and_stats (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  OneSample one = { 0 };

  assert_ok (fx, "add vm size=1G vmem=1G plugged=512M");
  uuid_of (fx, "vm", one.uuid);

  /* No guest statistics until the script sets them. */
  g_assert_true (fx->b->ops->collect (fx->b, 42, on_sample, &one, &error));
  g_assert_cmpuint (one.n, ==, 1);
  g_assert_cmpint (one.sample.time, ==, 42);
  g_assert_cmpuint (one.sample.balloon_actual, ==, MT_GIB);
  g_assert_cmpuint (one.sample.vmem_plugged, ==, 512 * MT_MIB);
  g_assert_cmpuint (one.sample.vmem_requested, ==, 512 * MT_MIB);
  g_assert_cmpuint (one.sample.guest_total, ==, MT_UNKNOWN);
  g_assert_cmpuint (one.sample.guest_available, ==, MT_UNKNOWN);

  assert_ok (fx, "set vm used=600M free=100M major-faults=7 swap-in=1M");
  g_assert_true (fx->b->ops->collect (fx->b, 43, on_sample, &one, &error));
  g_assert_cmpuint (one.sample.guest_total, ==, 1536 * MT_MIB);
  g_assert_cmpuint (one.sample.guest_available, ==, 936 * MT_MIB);
  g_assert_cmpuint (one.sample.guest_free, ==, 100 * MT_MIB);
  g_assert_cmpuint (one.sample.major_faults, ==, 7);
  g_assert_cmpuint (one.sample.swap_in, ==, MT_MIB);

  /* At once without a speed; the guest's size follows. */
  g_assert_true (fx->b->ops->set_balloon (fx->b, "vm", 768 * MT_MIB, NULL, &error) == FALSE);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND); /* by UUID only */
  g_clear_error (&error);
  g_assert_true (fx->b->ops->set_balloon (fx->b, one.uuid, 768 * MT_MIB, NULL, &error));
  g_assert_true (fx->b->ops->set_vmem (fx->b, one.uuid, 256 * MT_MIB, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (show_value (fx, "vm", "balloon"), ==, 768 * MT_MIB);
  g_assert_cmpuint (show_value (fx, "vm", "plugged"), ==, 256 * MT_MIB);
  g_assert_true (fx->b->ops->collect (fx->b, 44, on_sample, &one, &error));
  g_assert_cmpuint (one.sample.guest_total, ==, MT_GIB);
  g_assert_cmpuint (show_value (fx, "vm", "calls"), ==, 2);
  g_assert_cmpuint (show_value (fx, "vm", "max-in-flight"), ==, 1);

  /* What libvirt refuses, the fake refuses. */
  g_assert_false (fx->b->ops->set_balloon (fx->b, one.uuid, 2 * MT_GIB, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (fx->b->ops->set_vmem (fx->b, one.uuid, 3 * MT_MIB, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  assert_ok (fx, "add plain size=1G");
  {
    char plain[MT_FAKE_UUID_LEN];

    g_assert_false (fx->b->ops->set_vmem (fx->b, uuid_of (fx, "plain", plain), 0, NULL, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
    g_clear_error (&error);
  }

  /* A slow guest: 1 MiB/s, so it is on its way whenever it is read. */
  assert_ok (fx, "speed vm 1M/s");
  g_assert_true (fx->b->ops->set_balloon (fx->b, one.uuid, 256 * MT_MIB, NULL, &error));
  g_assert_cmpuint (show_value (fx, "vm", "balloon-target"), ==, 256 * MT_MIB);
  g_assert_cmpuint (show_value (fx, "vm", "balloon"), >, 256 * MT_MIB);
  g_assert_cmpuint (show_value (fx, "vm", "balloon"), <=, 768 * MT_MIB);

  /* refuse: the call is taken, the size stays; fail: the call fails. */
  assert_ok (fx, "speed vm 0");
  assert_ok (fx, "refuse vm");
  g_assert_true (fx->b->ops->set_balloon (fx->b, one.uuid, 512 * MT_MIB, NULL, &error));
  g_assert_cmpuint (show_value (fx, "vm", "balloon"), ==, 256 * MT_MIB);
  assert_ok (fx, "fail vm the monitor is gone");
  g_assert_false (fx->b->ops->set_balloon (fx->b, one.uuid, 512 * MT_MIB, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "the monitor is gone"));
  g_clear_error (&error);
  assert_ok (fx, "accept vm");
  g_assert_true (fx->b->ops->set_balloon (fx->b, one.uuid, 512 * MT_MIB, NULL, &error));
  g_assert_cmpuint (show_value (fx, "vm", "balloon"), ==, 512 * MT_MIB);
}

/* ---- blocked calls ---------------------------------------------------------- */

typedef struct {
  MtBackend *b;
  char uuid[MT_FAKE_UUID_LEN];
  GCancellable *cancellable;
  gboolean ok;
  GError *error;
  gint done;
} Call;

static gpointer
call_thread (gpointer data)
{
  Call *call = data;

  call->ok =
    call->b->ops->set_balloon (call->b, call->uuid, 512 * MT_MIB, call->cancellable, &call->error);
  g_atomic_int_set (&call->done, 1);
  return NULL;
}

/* Until the command's value is @want, or the deadline. */
static gboolean
wait_show (Fixture *fx, const char *name, const char *key, guint64 want)
{
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;

  while (show_value (fx, name, key) != want) {
    if (g_get_monotonic_time () > deadline)
      return FALSE;
    g_usleep (1000);
  }
  return TRUE;
}

static gboolean
wait_done (Call *call)
{
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;

  while (!g_atomic_int_get (&call->done)) {
    if (g_get_monotonic_time () > deadline)
      return FALSE;
    g_usleep (1000);
  }
  return TRUE;
}

typedef enum { END_UNBLOCK, END_CANCEL, END_REMOVE } BlockEnd;

static void
test_block (Fixture *fx, gconstpointer data)
{
  const BlockEnd ends[] = { END_UNBLOCK, END_CANCEL, END_REMOVE };

  for (guint i = 0; i < G_N_ELEMENTS (ends); i++) {
    Call call = { .b = fx->b, .cancellable = g_cancellable_new () };
    GThread *thread;

    assert_ok (fx, "add vm size=1G");
    uuid_of (fx, "vm", call.uuid);
    /* Far longer than the test waits: only the end below releases it. */
    assert_ok (fx, "block vm 1h");
    thread = g_thread_new ("call", call_thread, &call);
    g_assert_true (wait_show (fx, "vm", "blocked", 1));
    g_assert_cmpuint (show_value (fx, "vm", "in-flight"), ==, 1);
    g_assert_false (g_atomic_int_get (&call.done));
    g_assert_cmpuint (show_value (fx, "vm", "balloon"), ==, MT_GIB);

    if (ends[i] == END_UNBLOCK)
      assert_ok (fx, "block vm 0");
    else if (ends[i] == END_CANCEL)
      g_cancellable_cancel (call.cancellable);
    else
      assert_ok (fx, "remove vm");
    g_assert_true (wait_done (&call));
    g_thread_join (thread);

    if (ends[i] == END_UNBLOCK) {
      g_assert_true (call.ok);
      g_assert_no_error (call.error);
      g_assert_cmpuint (show_value (fx, "vm", "balloon"), ==, 512 * MT_MIB);
      g_assert_cmpuint (show_value (fx, "vm", "in-flight"), ==, 0);
      g_assert_cmpuint (show_value (fx, "vm", "blocked"), ==, 0);
      assert_ok (fx, "remove vm");
    } else if (ends[i] == END_CANCEL) {
      g_assert_false (call.ok);
      g_assert_error (call.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_assert_cmpuint (show_value (fx, "vm", "balloon"), ==, MT_GIB);
      g_assert_cmpuint (show_value (fx, "vm", "in-flight"), ==, 0);
      assert_ok (fx, "remove vm");
    } else {
      g_assert_false (call.ok);
      g_assert_error (call.error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
    }
    g_clear_error (&call.error);
    g_object_unref (call.cancellable);
  }
}

/* ---- the control socket ----------------------------------------------------- */

/* Send @line, then run the main context until a reply line came. */
static char *
socket_command (GSocket *socket, const char *line)
{
  g_autofree char *text = g_strconcat (line, "\n", NULL);
  g_autoptr (GString) reply = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;

  g_assert_cmpint (g_socket_send (socket, text, strlen (text), NULL, &error), ==, strlen (text));
  while (strchr (reply->str, '\n') == NULL) {
    char buf[256];
    gssize n;

    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    g_main_context_iteration (NULL, FALSE);
    n = g_socket_receive (socket, buf, sizeof buf, NULL, &error);
    if (n < 0) {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      g_clear_error (&error);
      g_usleep (1000);
      continue;
    }
    g_assert_cmpint (n, >, 0);
    g_string_append_len (reply, buf, n);
  }
  g_assert_true (g_str_has_suffix (reply->str, "\n"));
  g_string_truncate (reply, reply->len - 1);
  return g_string_free (g_steal_pointer (&reply), FALSE);
}

static void
test_socket (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (fx->path);
  g_autoptr (GSocket) socket = NULL;
  g_autofree char *added = NULL;
  g_autofree char *refused = NULL;
  g_autofree char *list = NULL;
  GStatBuf st;

  /* Its owner's only. */
  g_assert_cmpint (g_stat (fx->path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  socket =
    g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (socket, address, NULL, &error));
  g_socket_set_blocking (socket, FALSE);

  added = socket_command (socket, "add web size=1G");
  g_assert_true (g_str_has_prefix (added, "ok uuid="));
  g_assert_cmpuint (fx->events->len, ==, 1);
  refused = socket_command (socket, "add web size=1G");
  g_assert_true (g_str_has_prefix (refused, "error: "));
  list = socket_command (socket, "list");
  g_assert_cmpstr (list, ==, "ok web");

  /* A second driver on the same path refuses to take it over. */
  {
    g_autoptr (MtBackend) second = mt_backend_fake_new (fx->path);
    g_autoptr (GError) exists = NULL;

    g_assert_false (second->ops->connect (second, &exists));
    g_assert_error (exists, G_IO_ERROR, G_IO_ERROR_EXISTS);
  }
  g_assert_true (g_file_test (fx->path, G_FILE_TEST_EXISTS));
}

static void
test_no_path (void)
{
  g_autoptr (MtBackend) b = mt_backend_fake_new (NULL);
  g_autoptr (GError) probe_error = NULL;
  g_autoptr (GError) connect_error = NULL;

  g_assert_cmpint (b->ops->probe (b, &probe_error), ==, MT_PROBE_NO);
  g_assert_nonnull (strstr (probe_error->message, "--connect PATH"));
  g_assert_false (b->ops->connect (b, &connect_error));
  g_assert_nonnull (strstr (connect_error->message, "--connect PATH"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/backend-fake/motion", test_motion);
  g_test_add_func ("/backend-fake/no-path", test_no_path);
  g_test_add ("/backend-fake/commands", Fixture, NULL, fixture_setup, test_commands,
              fixture_teardown);
  g_test_add ("/backend-fake/sizes-and-stats", Fixture, NULL, fixture_setup, test_sizes_and_stats,
              fixture_teardown);
  g_test_add ("/backend-fake/block", Fixture, NULL, fixture_setup, test_block, fixture_teardown);
  g_test_add ("/backend-fake/socket", Fixture, NULL, fixture_setup, test_socket, fixture_teardown);
  return g_test_run ();
}
