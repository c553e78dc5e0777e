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
  guint cookie;            /* 0 until Reserve() or Pin() answered */
  MtDbusManager1 *manager; /* its signals, and its name's owner */
  char *owner;             /* the owner of the name as last seen */
  MtDbusVM1 *vm;           /* pins */

  /* ReservationDone, possibly before we know our cookie */
  GHashTable *done; /* cookie -> GVariant (bs) */
  gboolean waited_too_long;
  gboolean interrupted;
  gboolean daemon_gone;
  guint sigint, sigterm;

  GPid child;
  gboolean child_running;
  int child_status;
} Hold;

static void
on_reservation_done (MtDbusManager1 *manager, guint cookie, gboolean ok, const char *message,
                     gpointer user_data)
{
  Hold *h = user_data;

  g_hash_table_replace (h->done, GUINT_TO_POINTER (cookie),
                        g_variant_ref_sink (g_variant_new ("(bs)", ok, message)));
}

static void
on_owner_changed (GObject *proxy, GParamSpec *pspec, gpointer user_data)
{
  Hold *h = user_data;
  g_autofree char *owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (proxy));

  /* A lease lives in the memtided that granted it: when the name loses its
   * owner, or passes to another process, the lease is gone.  A name that
   * only now finds an owner is memtided starting after the proxy was made. */
  if (!owner || h->owner)
    h->daemon_gone = TRUE;
  g_free (h->owner);
  h->owner = g_steal_pointer (&owner);
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
  GDBusCallFlags flags = mtctl_call_flags (h->ctl, MTCTL_WRITE);
  int timeout = mtctl_call_timeout (h->ctl, MTCTL_WRITE);
  gboolean ok;

  if (!h->cookie || h->daemon_gone)
    return;
  if (h->is_pin)
    ok = mt_dbus_vm1_call_unpin_sync (h->vm, h->cookie, flags, timeout, NULL, &error);
  else
    ok = mt_dbus_manager1_call_release_reservation_sync (h->manager, h->cookie, flags, timeout,
                                                         NULL, &error);
  if (!ok) {
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

/* The proxy is made before the request, so neither a ReservationDone nor
 * the loss of memtided can slip by: its match rules are in place. */
static gboolean
hold_init (Hold *h, MtCtl *ctl, gboolean is_pin, GError **error)
{
  h->ctl = ctl;
  h->is_pin = is_pin;
  h->done = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_variant_unref);
  h->manager = mtctl_manager (ctl, is_pin ? MTCTL_PROXY_CALLS : MTCTL_PROXY_SIGNALS, error);
  if (!h->manager)
    return FALSE;
  h->owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (h->manager));
  g_signal_connect (h->manager, "reservation-done", G_CALLBACK (on_reservation_done), h);
  g_signal_connect (h->manager, "notify::g-name-owner", G_CALLBACK (on_owner_changed), h);
  h->sigint = g_unix_signal_add (SIGINT, on_interrupt, h);
  h->sigterm = g_unix_signal_add (SIGTERM, on_interrupt, h);
  return TRUE;
}

static void
hold_clear (Hold *h)
{
  if (h->manager)
    g_signal_handlers_disconnect_by_data (h->manager, h);
  g_clear_handle_id (&h->sigint, g_source_remove);
  g_clear_handle_id (&h->sigterm, g_source_remove);
  g_clear_pointer (&h->done, g_hash_table_unref);
  g_clear_object (&h->vm);
  g_clear_object (&h->manager);
  g_clear_pointer (&h->owner, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Hold, hold_clear)

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

/* Waits for ReservationDone, then holds the reservation as asked. */
static int
await_room (Hold *h, guint64 bytes, guint timeout)
{
  MtCtl *ctl = h->ctl;
  GVariant *result;
  gboolean ok = FALSE;
  const char *message = NULL;
  guint too_long;
  int code = MT_EXIT_OK;

  /* memtided answers within the timeout; a little slack for its tick. */
  too_long = g_timeout_add_seconds (timeout + 10, on_too_long, h);
  while (!(result = g_hash_table_lookup (h->done, GUINT_TO_POINTER (h->cookie))) && !h->interrupted
         && !h->daemon_gone && !h->waited_too_long)
    g_main_context_iteration (NULL, TRUE);
  if (!h->waited_too_long)
    g_source_remove (too_long);

  if (result)
    g_variant_get (result, "(b&s)", &ok, &message);
  if (h->daemon_gone) {
    g_printerr ("memtidectl: memtided stopped before the room was made\n");
    code = MT_EXIT_UNREACHABLE;
  } else if (h->interrupted && !result) {
    g_printerr ("memtidectl: interrupted; releasing reservation %u\n", h->cookie);
    end_lease (h);
    code = MT_EXIT_FAILED;
  } else if (!result) {
    g_printerr ("memtidectl: memtided did not report on reservation %u within %u s; "
                "releasing it\n",
                h->cookie, timeout + 10);
    end_lease (h);
    code = MT_EXIT_FAILED;
  } else if (ctl->json) {
    print_result_json (h, bytes, ok, message);
  }
  if (result && !ok) {
    if (!ctl->json)
      g_printerr ("memtidectl: reservation %u failed: %s\n", h->cookie, message);
    code = MT_EXIT_NO_ROOM;
  } else if (result) {
    if (!ctl->json)
      g_print ("Reservation %u: %s\n", h->cookie, message);
    code = hold_lease (h);
  }
  return code;
}

int
mtctl_cmd_reserve (MtCtl *ctl, const char *size_text)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *size = NULL;
  g_auto (Hold) h = { 0 };
  guint timeout = ctl->timeout ? ctl->timeout : DEFAULT_RESERVE_TIMEOUT;
  guint64 bytes;

  if (!mtctl_parse_size (size_text, &bytes, &error))
    return mtctl_usage_error ("reserve: %s", error->message);
  size = mtctl_size (bytes);

  if (!hold_init (&h, ctl, FALSE, &error)
      || !mt_dbus_manager1_call_reserve_sync (h.manager, bytes, ctl->reason ? ctl->reason : "",
                                              timeout, mtctl_call_flags (ctl, MTCTL_WRITE),
                                              mtctl_call_timeout (ctl, MTCTL_WRITE), &h.cookie,
                                              NULL, &error))
    return mtctl_fail (ctl, error);
  if (!ctl->json)
    g_printerr ("Reservation %u: making room for %s (up to %u s)...\n", h.cookie, size, timeout);
  return await_room (&h, bytes, timeout);
}

int
mtctl_cmd_pin (MtCtl *ctl, const char *vm, const char *size_text)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *size = NULL;
  g_autofree char *path = NULL;
  g_auto (Hold) h = { 0 };
  guint64 bytes;

  if (!mtctl_parse_size (size_text, &bytes, &error))
    return mtctl_usage_error ("pin: %s", error->message);
  size = mtctl_size (bytes);

  if (!hold_init (&h, ctl, TRUE, &error))
    return mtctl_fail (ctl, error);
  path = mtctl_vm_path (ctl, h.manager, vm, &error);
  if (!path)
    return mtctl_fail (ctl, error);
  h.vm = mtctl_vm (ctl, path, MTCTL_PROXY_CALLS, &error);
  if (!h.vm
      || !mt_dbus_vm1_call_pin_sync (
        h.vm, bytes, ctl->reason ? ctl->reason : "", mtctl_call_flags (ctl, MTCTL_WRITE),
        mtctl_call_timeout (ctl, MTCTL_WRITE), &h.cookie, NULL, &error))
    return mtctl_fail (ctl, error);
  if (ctl->json) {
    g_autofree char *message = g_strdup_printf ("%s pinned at %s", vm, size);
    print_result_json (&h, bytes, TRUE, message);
  } else {
    g_print ("Pin %u: %s held at %s\n", h.cookie, vm, size);
  }
  return hold_lease (&h);
}
