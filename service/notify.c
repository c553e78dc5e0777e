/* notify.c: memtided's messages to systemd, through libsystemd's
 * sd_notify(3), which does nothing when $NOTIFY_SOCKET is not set.
 *
 * STATUS= is a daemon observer: the line is rebuilt after every tick
 * and sent when it changed, at most once per STATUS_MIN_GAP (the budget
 * moves with the host's free memory; systemctl status needs no more).
 * WATCHDOG=1 comes from a timeout on the default main context, so a
 * loop that stalls stops it and systemd restarts memtided. */
#define G_LOG_DOMAIN "memtide-notify"

#include <systemd/sd-daemon.h>

#include "model.h"
#include "notify.h"

#define STATUS_MIN_GAP (2 * G_USEC_PER_SEC)

struct _MtNotify {
  MtDaemon *daemon;
  gboolean ready;      /* READY=1 sent: STATUS= goes out from now on */
  gboolean warned;     /* a failed send was logged */
  char *last_action;   /* "NAME grow 1.0 GiB -> 1.5 GiB", NULL = none */
  char *status_sent;   /* the last STATUS= line, NULL = none */
  gint64 status_at;    /* when it was sent, monotonic µs */
  guint status_source; /* a STATUS= held back by the gap */
  guint watchdog_source;
};

static void
send_state (MtNotify *n, const char *state)
{
  int r = sd_notify (0, state);

  /* r == 0: no $NOTIFY_SOCKET, not started by a service manager. */
  if (r < 0 && !n->warned) {
    n->warned = TRUE;
    g_warning ("Cannot tell the service manager '%s' through $NOTIFY_SOCKET: %s; the "
               "watchdog may restart memtided",
               state, g_strerror (-r));
  }
}

static char *
format_status (MtNotify *n)
{
  MtHostStatus host;
  g_autoptr (GString) s = g_string_new (NULL);

  mt_daemon_get_host_status (n->daemon, &host);
  if (!host.connected)
    g_string_append (s, "not connected to the hypervisor (retrying); ");
  if (host.mode == MT_MODE_DRY_RUN)
    g_string_append (s, "dry run: ");
  else if (host.mode == MT_MODE_PAUSED)
    g_string_append (s, "paused: ");
  g_string_append_printf (s, "%u VM%s", host.n_vms, host.n_vms == 1 ? "" : "s");
  if (host.budget != MT_UNKNOWN) {
    g_autofree char *budget = mt_format_bytes (host.budget);
    g_autofree char *held = mt_format_bytes (host.guest_total);

    g_string_append_printf (s, ", budget %s, VMs hold %s", budget, held);
  }
  g_string_append_printf (s, "; last action: %s", n->last_action ? n->last_action : "none");
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static gboolean on_status_due (gpointer user_data);

static void
update_status (MtNotify *n)
{
  g_autofree char *line = NULL;
  g_autofree char *message = NULL;
  gint64 now = g_get_monotonic_time ();

  if (!n->ready || n->status_source)
    return;
  line = format_status (n);
  if (g_strcmp0 (line, n->status_sent) == 0)
    return;
  if (n->status_sent && now - n->status_at < STATUS_MIN_GAP) {
    guint ms = (guint) ((n->status_at + STATUS_MIN_GAP - now) / 1000) + 1;

    n->status_source = g_timeout_add (ms, on_status_due, n);
    return;
  }
  message = g_strdup_printf ("STATUS=%s", line);
  send_state (n, message);
  g_free (n->status_sent);
  n->status_sent = g_steal_pointer (&line);
  n->status_at = now;
}

static gboolean
on_status_due (gpointer user_data)
{
  MtNotify *n = user_data;

  n->status_source = 0;
  update_status (n);
  return G_SOURCE_REMOVE;
}

static void
on_host_updated (MtDaemon *d, gpointer user_data)
{
  update_status (user_data);
}

static void
on_action_applied (MtDaemon *d, const char *uuid, const char *mechanism, guint64 from, guint64 to,
                   const char *reason, gpointer user_data)
{
  MtNotify *n = user_data;
  g_autoptr (MtVmStatus) vm = mt_daemon_get_vm_status (d, uuid, NULL);
  g_autofree char *sfrom = mt_format_bytes (from);
  g_autofree char *sto = mt_format_bytes (to);

  g_free (n->last_action);
  n->last_action = g_strdup_printf ("%s %s %s -> %s (%s)", vm ? vm->name : uuid,
                                    to > from   ? "grow"
                                    : to < from ? "shrink"
                                                : "cancel",
                                    sfrom, sto, mechanism);
  update_status (n);
}

static const MtDaemonObserver notify_observer = {
  .host_updated = on_host_updated,
  .action_applied = on_action_applied,
};

static gboolean
on_watchdog (gpointer user_data)
{
  send_state (user_data, "WATCHDOG=1");
  return G_SOURCE_CONTINUE;
}

MtNotify *
mt_notify_new (MtDaemon *daemon)
{
  MtNotify *n = g_new0 (MtNotify, 1);
  uint64_t usec = 0;
  int r;

  n->daemon = daemon;
  mt_daemon_add_observer (daemon, &notify_observer, n);
  /* $WATCHDOG_USEC, and $WATCHDOG_PID when set must be this process. */
  r = sd_watchdog_enabled (0, &usec);
  if (r < 0) {
    g_warning ("The service manager's watchdog settings are not usable: %s; no WATCHDOG=1 "
               "is sent",
               g_strerror (-r));
  } else if (r > 0) {
    guint ms = (guint) MAX (usec / 2 / 1000, 1);

    n->watchdog_source = g_timeout_add (ms, on_watchdog, n);
    g_message ("Watchdog: WATCHDOG=1 to the service manager every %.1f s (its limit: %.1f s)",
               ms / 1000.0, usec / (double) G_USEC_PER_SEC);
  }
  return n;
}

void
mt_notify_ready (MtNotify *n)
{
  g_autofree char *line = format_status (n);
  g_autofree char *message = g_strdup_printf ("READY=1\nSTATUS=%s", line);

  send_state (n, message);
  n->ready = TRUE;
  g_free (n->status_sent);
  n->status_sent = g_steal_pointer (&line);
  n->status_at = g_get_monotonic_time ();
}

void
mt_notify_reloading (MtNotify *n)
{
  /* systemd >= 253 takes RELOADING=1 only with the CLOCK_MONOTONIC time
   * the reload began (sd_notify(3)); 252 ignores the extra field.
   * g_get_monotonic_time() is CLOCK_MONOTONIC on Linux. */
  g_autofree char *message = g_strdup_printf ("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT
                                              "\nSTATUS=reloading the policy files",
                                              g_get_monotonic_time ());

  send_state (n, message);
  g_clear_pointer (&n->status_sent, g_free);
}

void
mt_notify_stopping (MtNotify *n)
{
  send_state (n, "STOPPING=1\nSTATUS=shutting down");
}

void
mt_notify_free (MtNotify *n)
{
  if (!n)
    return;
  mt_daemon_remove_observer (n->daemon, &notify_observer, n);
  g_clear_handle_id (&n->status_source, g_source_remove);
  g_clear_handle_id (&n->watchdog_source, g_source_remove);
  g_free (n->last_action);
  g_free (n->status_sent);
  g_free (n);
}
