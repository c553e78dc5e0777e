/* memtidectl-watch.c: `memtidectl watch`, a live view like top: the
 * status every second, with the latest events (resizes, stuck VMs,
 * reservations) from memtided's signals below it. */
#define G_LOG_DOMAIN "memtidectl"

#include <glib-unix.h>
#include <unistd.h>

#include "memtidectl.h"

#define WATCH_EVENTS 8

typedef struct {
  GQueue events; /* of char *, newest last */
  gboolean stop;
} Watch;

static void
on_watch_signal (GDBusConnection *bus, const char *sender, const char *path, const char *iface,
                 const char *signal, GVariant *params, gpointer user_data)
{
  Watch *w = user_data;
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *when = g_date_time_format (now, "%H:%M:%S");
  char *line = NULL;

  if (g_str_equal (signal, "ActionApplied")) {
    const char *name, *mech, *reason;
    guint64 from, to;
    g_autofree char *sfrom = NULL;
    g_autofree char *sto = NULL;

    g_variant_get (params, "(&o&s&stt&s)", NULL, &name, &mech, &from, &to, &reason);
    sfrom = mtctl_size (from);
    sto = mtctl_size (to);
    line = g_strdup_printf ("%s %s %s -> %s via %s: %s", when, name, sfrom, sto, mech, reason);
  } else if (g_str_equal (signal, "VMStuck")) {
    const char *name, *reason;

    g_variant_get (params, "(&o&s&s)", NULL, &name, &reason);
    line = g_strdup_printf ("%s %s STUCK: %s", when, name, reason);
  } else if (g_str_equal (signal, "ReservationDone")) {
    guint32 cookie;
    gboolean ok;
    const char *message;

    g_variant_get (params, "(ub&s)", &cookie, &ok, &message);
    line =
      g_strdup_printf ("%s reservation %u %s: %s", when, cookie, ok ? "done" : "FAILED", message);
  } else {
    return;
  }
  g_queue_push_tail (&w->events, line);
  while (g_queue_get_length (&w->events) > WATCH_EVENTS)
    g_free (g_queue_pop_head (&w->events));
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
watch_frame (MtCtl *ctl, Watch *w, gboolean tty)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) host = mtctl_get_all (ctl, MTCTL_PATH, MTCTL_MANAGER, &error);
  g_autoptr (GVariant) vms = host ? mtctl_list_vms (ctl, &error) : NULL;
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
  Watch w = { G_QUEUE_INIT, FALSE };
  gboolean tty = isatty (STDOUT_FILENO);
  guint subscription;
  guint sigint = g_unix_signal_add (SIGINT, on_watch_stop, &w);
  guint sigterm = g_unix_signal_add (SIGTERM, on_watch_stop, &w);
  guint interval_ms = (guint) MAX (ctl->interval * 1000, 100);

  subscription =
    g_dbus_connection_signal_subscribe (ctl->bus, MTCTL_BUS_NAME, MTCTL_MANAGER, NULL, MTCTL_PATH,
                                        NULL, G_DBUS_SIGNAL_FLAGS_NONE, on_watch_signal, &w, NULL);
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
  g_dbus_connection_signal_unsubscribe (ctl->bus, subscription);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_queue_clear_full (&w.events, g_free);
  return MT_EXIT_OK;
}
