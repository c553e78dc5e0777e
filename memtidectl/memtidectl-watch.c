/* memtidectl-watch.c: `memtidectl watch`, a live view like top: the
 * status every second, with the latest events (resizes, stuck VMs,
 * reservations) from memtided's signals below it. */
#define G_LOG_DOMAIN "memtidectl"

#include <glib-unix.h>
#include <stdarg.h>
#include <unistd.h>

#include "memtidectl.h"

#define WATCH_EVENTS 8

typedef struct {
  MtDbusManager1 *manager; /* NULL while memtided is not reachable */
  GQueue events;           /* of char *, newest last */
  gboolean stop;
} Watch;

static void add_event (Watch *w, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
add_event (Watch *w, const char *format, ...)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *when = g_date_time_format (now, "%H:%M:%S");
  g_autofree char *what = NULL;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_queue_push_tail (&w->events, g_strdup_printf ("%s %s", when, what));
  while (g_queue_get_length (&w->events) > WATCH_EVENTS)
    g_free (g_queue_pop_head (&w->events));
}

static void
on_action_applied (MtDbusManager1 *manager, const char *vm, const char *name, const char *mechanism,
                   guint64 from, guint64 to, const char *reason, gpointer user_data)
{
  g_autofree char *sfrom = mtctl_size (from);
  g_autofree char *sto = mtctl_size (to);

  add_event (user_data, "%s %s -> %s via %s: %s", name, sfrom, sto, mechanism, reason);
}

static void
on_vm_stuck (MtDbusManager1 *manager, const char *vm, const char *name, const char *reason,
             gpointer user_data)
{
  add_event (user_data, "%s STUCK: %s", name, reason);
}

static void
on_reservation_done (MtDbusManager1 *manager, guint cookie, gboolean ok, const char *message,
                     gpointer user_data)
{
  add_event (user_data, "reservation %u %s: %s", cookie, ok ? "done" : "FAILED", message);
}

static gboolean
on_watch_stop (gpointer user_data)
{
  ((Watch *) user_data)->stop = TRUE;
  return G_SOURCE_CONTINUE;
}

static gboolean
on_watch_due (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
watch_drop_manager (Watch *w)
{
  if (w->manager)
    g_signal_handlers_disconnect_by_data (w->manager, w);
  g_clear_object (&w->manager);
}

/* The host's properties, from a proxy that PropertiesChanged keeps current
 * while we wait between frames.  GDBusProxy reads them all only as it is
 * made (or when memtided comes back), so a proxy without them (memtided
 * was gone or did not answer) is replaced at the next frame. */
static GVariant *
watch_host (MtCtl *ctl, Watch *w, GError **error)
{
  GVariant *host;

  if (!w->manager) {
    w->manager = mtctl_manager (ctl, G_DBUS_PROXY_FLAGS_NONE, error);
    if (!w->manager)
      return NULL;
    g_signal_connect (w->manager, "action-applied", G_CALLBACK (on_action_applied), w);
    g_signal_connect (w->manager, "vmstuck", G_CALLBACK (on_vm_stuck), w);
    g_signal_connect (w->manager, "reservation-done", G_CALLBACK (on_reservation_done), w);
  }
  host = mtctl_properties (w->manager, error);
  if (!host)
    watch_drop_manager (w);
  return host;
}

static void
watch_frame (MtCtl *ctl, Watch *w, gboolean tty)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) host = watch_host (ctl, w, &error);
  g_autoptr (GVariant) vms = host ? mtctl_list_vms (ctl, w->manager, &error) : NULL;
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *when = g_date_time_format (now, "%H:%M:%S");

  if (ctl->json) {
    g_autoptr (JsonNode) root = NULL;
    g_autoptr (JsonGenerator) gen = json_generator_new ();
    g_autofree char *text = NULL;

    if (!vms) {
      g_dbus_error_strip_remote_error (error);
      g_printerr ("memtidectl: %s\n", error->message);
      return;
    }
    /* One line per refresh: easy to read with a pipe. */
    root = mtctl_status_json (host, vms);
    json_generator_set_root (gen, root);
    text = json_generator_to_data (gen, NULL);
    g_print ("%s\n", text);
    return;
  }
  if (tty)
    g_print ("\033[H\033[2J");
  else
    g_print ("---- %s\n", when);
  if (!vms) {
    g_dbus_error_strip_remote_error (error);
    g_print ("%s  memtided is not reachable: %s\n  (retrying; start it with: systemctl start "
             "memtided)\n",
             when, error->message);
    return;
  }
  mtctl_print_host (host);
  g_print ("\n");
  mtctl_print_vm_table (vms, tty ? mtctl_terminal_width () : 0);
  if (!g_queue_is_empty (&w->events)) {
    g_print ("\nRecent events:\n");
    for (GList *l = w->events.head; l; l = l->next)
      g_print ("  %s\n", (char *) l->data);
  }
  if (tty)
    g_print ("\n%s  refreshing every second; Ctrl-C ends\n", when);
}

int
mtctl_cmd_watch (MtCtl *ctl, guint count)
{
  Watch w = { NULL, G_QUEUE_INIT, FALSE };
  gboolean tty = isatty (STDOUT_FILENO);
  guint sigint = g_unix_signal_add (SIGINT, on_watch_stop, &w);
  guint sigterm = g_unix_signal_add (SIGTERM, on_watch_stop, &w);
  guint interval_ms = (guint) MAX (ctl->interval * 1000, 100);

  for (guint n = 0; !w.stop && (count == 0 || n < count); n++) {
    if (n > 0) {
      gboolean due = FALSE;
      guint tick = g_timeout_add (interval_ms, on_watch_due, &due);

      /* Events arrive (and are kept) while we wait. */
      while (!due && !w.stop)
        g_main_context_iteration (NULL, TRUE);
      if (!due)
        g_source_remove (tick);
      if (w.stop)
        break;
    }
    watch_frame (ctl, &w, tty);
  }
  watch_drop_manager (&w);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_queue_clear_full (&w.events, g_free);
  return MT_EXIT_OK;
}
