/* memtidectl-leases.c: reserve and pin.  Both are leases that memtided
 * ends when memtidectl's bus connection closes, so memtidectl holds them
 * for as long as it runs: while a command given after "--" runs (like
 * systemd-inhibit), or until Ctrl-C with --wait.  Without either the lease
 * ends when memtidectl exits, which it says. */
#define G_LOG_DOMAIN "memtidectl"

#include <glib-unix.h>
#include <sys/wait.h>

#include "memtidectl.h"

#define DEFAULT_RESERVE_TIMEOUT 60 /* seconds */

typedef struct {
  MtCtl *ctl;
  gboolean is_pin;
  guint cookie;  /* 0 until Reserve() answered */
  char *vm_path; /* pins */

  /* ReservationDone, possibly before we know our cookie */
  GHashTable *done; /* cookie -> GVariant (bs) */
  gboolean waited_too_long;
  gboolean interrupted;
  gboolean daemon_gone;

  GPid child;
  gboolean child_running;
  int child_status;
} Hold;

static void
on_reservation_done (GDBusConnection *bus, const char *sender, const char *path, const char *iface,
                     const char *signal, GVariant *params, gpointer user_data)
{
  Hold *h = user_data;
  guint32 cookie;
  gboolean ok;
  const char *message;

  g_variant_get (params, "(ub&s)", &cookie, &ok, &message);
  g_hash_table_replace (h->done, GUINT_TO_POINTER (cookie),
                        g_variant_ref_sink (g_variant_new ("(bs)", ok, message)));
}

static void
on_daemon_vanished (GDBusConnection *bus, const char *name, gpointer user_data)
{
  ((Hold *) user_data)->daemon_gone = TRUE;
}

static gboolean
on_interrupt (gpointer user_data)
{
  ((Hold *) user_data)->interrupted = TRUE;
  return G_SOURCE_CONTINUE;
}

static gboolean
on_too_long (gpointer user_data)
{
  ((Hold *) user_data)->waited_too_long = TRUE;
  return G_SOURCE_REMOVE;
}

static void
on_child_exit (GPid pid, int status, gpointer user_data)
{
  Hold *h = user_data;

  h->child_running = FALSE;
  h->child_status = status;
  g_spawn_close_pid (pid);
}

static const char *
kind (Hold *h)
{
  return h->is_pin ? "pin" : "reservation";
}

/* Ends the lease (memtided would when we leave the bus; saying it is
 * cleaner and shows up in its log as a release, not a lost holder). */
static void
end_lease (Hold *h)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;

  if (!h->cookie || h->daemon_gone)
    return;
  if (h->is_pin)
    reply = mtctl_call (h->ctl, h->vm_path, MTCTL_VM, "Unpin", g_variant_new ("(u)", h->cookie),
                        NULL, TRUE, &error);
  else
    reply = mtctl_call (h->ctl, MTCTL_PATH, MTCTL_MANAGER, "ReleaseReservation",
                        g_variant_new ("(u)", h->cookie), NULL, TRUE, &error);
  if (!reply) {
    g_dbus_error_strip_remote_error (error);
    g_printerr ("memtidectl: %s %u: %s\n", kind (h), h->cookie, error->message);
  }
}

static int
child_exit_code (int status)
{
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return MT_EXIT_FAILED;
}

/* The lease is ours: hold it as asked, then end it. */
static int
hold_lease (Hold *h)
{
  MtCtl *ctl = h->ctl;
  g_autoptr (GError) error = NULL;
  int code = MT_EXIT_OK;

  if (ctl->command) {
    if (!g_spawn_async (NULL, ctl->command, NULL,
                        G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD
                          | G_SPAWN_CHILD_INHERITS_STDIN,
                        NULL, NULL, &h->child, &error)) {
      g_printerr ("memtidectl: cannot run %s: %s\n", ctl->command[0], error->message);
      end_lease (h);
      return MT_EXIT_FAILED;
    }
    h->child_running = TRUE;
    g_child_watch_add (h->child, on_child_exit, h);
    /* Ctrl-C reaches the command too; we wait for it to end either way. */
    while (h->child_running)
      g_main_context_iteration (NULL, TRUE);
    if (h->daemon_gone)
      g_printerr ("memtidectl: warning: memtided stopped while %s ran; the %s %u ended then\n",
                  ctl->command[0], kind (h), h->cookie);
    code = child_exit_code (h->child_status);
  } else if (ctl->wait) {
    if (!ctl->json)
      g_printerr ("Holding %s %u until Ctrl-C (it ends when memtidectl exits).\n", kind (h),
                  h->cookie);
    while (!h->interrupted && !h->daemon_gone)
      g_main_context_iteration (NULL, TRUE);
    if (h->daemon_gone) {
      g_printerr ("memtidectl: memtided stopped: the %s %u is gone\n", kind (h), h->cookie);
      return MT_EXIT_UNREACHABLE;
    }
  } else {
    g_printerr ("memtidectl: warning: the %s %u ends now, as memtidectl exits: a %s is a lease "
                "held by the program that asked for it.  Use --wait to hold it until Ctrl-C, "
                "or give the command to run while it holds: memtidectl %s ... -- COMMAND%s\n",
                kind (h), h->cookie, kind (h), h->is_pin ? "pin" : "reserve",
                h->is_pin ? " (for a lasting bound use set-limits)" : "");
  }
  end_lease (h);
  return code;
}

static void
hold_init (Hold *h, MtCtl *ctl, gboolean is_pin, guint *subscription, guint *watch, guint *sigint,
           guint *sigterm)
{
  h->ctl = ctl;
  h->is_pin = is_pin;
  h->done = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_variant_unref);
  /* Subscribed before the call, so no ReservationDone can slip by. */
  *subscription = g_dbus_connection_signal_subscribe (
    ctl->bus, MTCTL_BUS_NAME, MTCTL_MANAGER, "ReservationDone", MTCTL_PATH, NULL,
    G_DBUS_SIGNAL_FLAGS_NONE, on_reservation_done, h, NULL);
  *watch = g_bus_watch_name_on_connection (ctl->bus, MTCTL_BUS_NAME, G_BUS_NAME_WATCHER_FLAGS_NONE,
                                           NULL, on_daemon_vanished, h, NULL);
  *sigint = g_unix_signal_add (SIGINT, on_interrupt, h);
  *sigterm = g_unix_signal_add (SIGTERM, on_interrupt, h);
}

static void
hold_clear (Hold *h, MtCtl *ctl, guint subscription, guint watch, guint sigint, guint sigterm)
{
  g_dbus_connection_signal_unsubscribe (ctl->bus, subscription);
  g_bus_unwatch_name (watch);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_clear_pointer (&h->done, g_hash_table_unref);
  g_free (h->vm_path);
}

static void
print_result_json (Hold *h, guint64 bytes, gboolean ok, const char *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "cookie");
  json_builder_add_int_value (b, h->cookie);
  json_builder_set_member_name (b, "bytes");
  json_builder_add_int_value (b, (gint64) bytes);
  json_builder_set_member_name (b, "ok");
  json_builder_add_boolean_value (b, ok);
  json_builder_set_member_name (b, "message");
  json_builder_add_string_value (b, message);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  mtctl_print_json (root);
}

int
mtctl_cmd_reserve (MtCtl *ctl, const char *size_text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *size = NULL;
  Hold h = { 0 };
  guint subscription, watch, sigint, sigterm, too_long;
  guint timeout = ctl->timeout ? ctl->timeout : DEFAULT_RESERVE_TIMEOUT;
  guint64 bytes;
  GVariant *result;
  gboolean ok = FALSE;
  const char *message = NULL;
  int code;

  if (!mtctl_parse_size (size_text, &bytes, &error))
    return mtctl_usage_error ("reserve: %s", error->message);
  size = mtctl_size (bytes);

  hold_init (&h, ctl, FALSE, &subscription, &watch, &sigint, &sigterm);
  reply = mtctl_call (ctl, MTCTL_PATH, MTCTL_MANAGER, "Reserve",
                      g_variant_new ("(tsu)", bytes, ctl->reason ? ctl->reason : "", timeout),
                      "(u)", TRUE, &error);
  if (!reply) {
    code = mtctl_fail (ctl, error);
    goto out;
  }
  g_variant_get (reply, "(u)", &h.cookie);
  if (!ctl->json)
    g_printerr ("Reservation %u: making room for %s (up to %u s)...\n", h.cookie, size, timeout);

  /* memtided answers within the timeout; a little slack for its tick. */
  too_long = g_timeout_add_seconds (timeout + 10, on_too_long, &h);
  while (!(result = g_hash_table_lookup (h.done, GUINT_TO_POINTER (h.cookie))) && !h.interrupted
         && !h.daemon_gone && !h.waited_too_long)
    g_main_context_iteration (NULL, TRUE);
  if (!h.waited_too_long)
    g_source_remove (too_long);

  if (result)
    g_variant_get (result, "(b&s)", &ok, &message);
  if (h.daemon_gone) {
    g_printerr ("memtidectl: memtided stopped before the room was made\n");
    code = MT_EXIT_UNREACHABLE;
  } else if (h.interrupted && !result) {
    g_printerr ("memtidectl: interrupted; releasing reservation %u\n", h.cookie);
    end_lease (&h);
    code = MT_EXIT_FAILED;
  } else if (!result) {
    g_printerr ("memtidectl: memtided did not report on reservation %u within %u s; "
                "releasing it\n",
                h.cookie, timeout + 10);
    end_lease (&h);
    code = MT_EXIT_FAILED;
  } else if (ctl->json) {
    print_result_json (&h, bytes, ok, message);
  }
  if (result && !ok) {
    if (!ctl->json)
      g_printerr ("memtidectl: reservation %u failed: %s\n", h.cookie, message);
    code = MT_EXIT_NO_ROOM;
  } else if (result) {
    if (!ctl->json)
      g_print ("Reservation %u: %s\n", h.cookie, message);
    code = hold_lease (&h);
  }

out:
  hold_clear (&h, ctl, subscription, watch, sigint, sigterm);
  return code;
}

int
mtctl_cmd_pin (MtCtl *ctl, const char *vm, const char *size_text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *size = NULL;
  Hold h = { 0 };
  guint subscription, watch, sigint, sigterm;
  guint64 bytes;
  int code;

  if (!mtctl_parse_size (size_text, &bytes, &error))
    return mtctl_usage_error ("pin: %s", error->message);
  size = mtctl_size (bytes);

  hold_init (&h, ctl, TRUE, &subscription, &watch, &sigint, &sigterm);
  h.vm_path = mtctl_vm_path (ctl, vm, &error);
  if (!h.vm_path) {
    code = mtctl_fail (ctl, error);
    goto out;
  }
  reply =
    mtctl_call (ctl, h.vm_path, MTCTL_VM, "Pin",
                g_variant_new ("(ts)", bytes, ctl->reason ? ctl->reason : ""), "(u)", TRUE, &error);
  if (!reply) {
    code = mtctl_fail (ctl, error);
    goto out;
  }
  g_variant_get (reply, "(u)", &h.cookie);
  if (ctl->json) {
    g_autofree char *message = g_strdup_printf ("%s pinned at %s", vm, size);
    print_result_json (&h, bytes, TRUE, message);
  } else {
    g_print ("Pin %u: %s held at %s\n", h.cookie, vm, size);
  }
  code = hold_lease (&h);

out:
  hold_clear (&h, ctl, subscription, watch, sigint, sigterm);
  return code;
}
