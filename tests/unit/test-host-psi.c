/* test-host-psi.c: the host's PSI memory trigger without a real memory
 * squeeze: where it cannot be armed it says why and writes nothing (a
 * test tree's file, no file), against the real /proc it is armed or the
 * kernel's refusal is reported, and an armed trigger's events reach the
 * caller (a loopback TCP connection's urgent data stands in for the
 * kernel's POLLPRI). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include "host-psi.h"

#define PSI_TEXT                                          \
  "some avg10=1.50 avg60=0.50 avg300=0.10 total=123456\n" \
  "full avg10=0.25 avg60=0.05 avg300=0.01 total=23456\n"

static void
test_not_procfs (void)
{
  g_autofree char *root = g_dir_make_tmp ("memtide-psi-XXXXXX", NULL);
  g_autofree char *dir = g_build_filename (root, "pressure", NULL);
  g_autofree char *file = g_build_filename (dir, "memory", NULL);
  g_autofree char *after = NULL;
  g_autoptr (GError) error = NULL;
  MtHostPsiTrigger *t;

  g_assert_cmpint (g_mkdir (dir, 0755), ==, 0);
  g_assert_true (g_file_set_contents (file, PSI_TEXT, -1, NULL));
  t = mt_host_psi_trigger_new (root, &error);
  g_assert_null (t);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_nonnull (strstr (error->message, "not on procfs"));
  /* Nothing was written to it. */
  g_assert_true (g_file_get_contents (file, &after, NULL, NULL));
  g_assert_cmpstr (after, ==, PSI_TEXT);
  g_assert_cmpint (g_unlink (file), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
  g_assert_cmpint (g_rmdir (root), ==, 0);
}

static void
test_no_psi (void)
{
  g_autofree char *root = g_dir_make_tmp ("memtide-psi-XXXXXX", NULL);
  g_autoptr (GError) error = NULL;

  g_assert_null (mt_host_psi_trigger_new (root, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_cmpint (g_rmdir (root), ==, 0);
}

/* The real /proc: armed (root, a kernel with triggers), or refused with
 * a reason that matches the machine.  Which one is printed. */
static void
test_real_proc (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtHostPsiTrigger) t = mt_host_psi_trigger_new ("/proc", &error);
  gboolean exists = g_file_test ("/proc/pressure/memory", G_FILE_TEST_EXISTS);

  if (t != NULL) {
    const char *spec = mt_host_psi_trigger_get_spec (t);

    g_test_message ("armed on /proc/pressure/memory: '%s'", spec);
    g_assert_true (g_str_equal (spec, "some 150000 1000000")
                   || g_str_equal (spec, "some 300000 2000000"));
    return;
  }
  g_test_message ("not armed on this machine: %s", error->message);
  if (!exists)
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  else if (geteuid () != 0)
    g_assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED)
                   || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED));
  else
    /* root and PSI: only the kernel can refuse (no trigger support). */
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_nonnull (strstr (error->message, "/proc/pressure/memory"));
}

typedef struct {
  guint fired;
  guint gone;
  int peer;
  int fd;
} Events;

static void
on_pressure (gboolean fired, gpointer data)
{
  Events *ev = data;
  char c;

  if (!fired) {
    ev->gone++;
    return;
  }
  ev->fired++;
  /* The stand-in's POLLPRI lasts until its urgent byte is read. */
  g_assert_cmpint (recv (ev->fd, &c, 1, MSG_OOB), ==, 1);
}

static gboolean
keep_waking (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* The main loop runs until *counter reaches want, for 10 s at most. */
static gboolean
iterate_until (guint *counter, guint want)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint wake = g_timeout_add (100, keep_waking, NULL);

  while (*counter < want && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (wake);
  return *counter >= want;
}

static void
test_events (void)
{
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof addr;
  int listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Events ev = { 0 };
  MtHostPsiTrigger *t;

  g_assert_cmpint (listener, >=, 0);
  g_assert_cmpint (bind (listener, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_assert_cmpint (listen (listener, 1), ==, 0);
  g_assert_cmpint (getsockname (listener, (struct sockaddr *) &addr, &len), ==, 0);
  ev.peer = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (connect (ev.peer, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  ev.fd = accept (listener, NULL, NULL);
  g_assert_cmpint (ev.fd, >=, 0);
  close (listener);

  t = mt_host_psi_trigger_new_for_fd (ev.fd, "some 150000 1000000");
  mt_host_psi_trigger_watch (t, on_pressure, &ev);
  /* Nothing pending: no call. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (ev.fired, ==, 0);
  for (guint i = 1; i <= 3; i++) {
    g_assert_cmpint (send (ev.peer, "!", 1, MSG_OOB), ==, 1);
    g_assert_true (iterate_until (&ev.fired, i));
  }
  g_assert_cmpuint (ev.gone, ==, 0);
  /* The descriptor ends (the kernel's POLLERR for a dropped trigger):
   * one last call, then none. */
  g_assert_cmpint (shutdown (ev.fd, SHUT_RDWR), ==, 0);
  g_assert_true (iterate_until (&ev.gone, 1));
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (ev.gone, ==, 1);
  g_assert_cmpuint (ev.fired, ==, 3);
  mt_host_psi_trigger_free (t); /* closes ev.fd */
  close (ev.peer);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/host-psi/not-procfs", test_not_procfs);
  g_test_add_func ("/host-psi/no-psi", test_no_psi);
  g_test_add_func ("/host-psi/real-proc", test_real_proc);
  g_test_add_func ("/host-psi/events", test_events);
  return g_test_run ();
}
