/* main.c: memtided start-up, options, signals and the main loop. */
#define G_LOG_DOMAIN "memtided"

#include "build-config.h"

#include <glib.h>
#include <glib-unix.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "config.h"
#include "daemon.h"
#include "log-event.h"
#include "drivers.h"
#include "metrics.h"
#include "dbus.h"
#include "notify.h"

/* What the signal handlers act on. */
typedef struct {
  GMainLoop *loop;
  MtDaemon *daemon;
  MtNotify *notify;
} Signals;

static gboolean
on_quit_signal (gpointer user_data)
{
  Signals *sig = user_data;

  g_message ("Shutting down");
  mt_notify_stopping (sig->notify);
  g_main_loop_quit (sig->loop);
  return G_SOURCE_REMOVE;
}

static int exit_status = 0;

static void
on_bus_lost (gpointer user_data)
{
  exit_status = 1;
  g_main_loop_quit (user_data);
}

/* systemctl reload sends SIGHUP (ExecReload=); RELOADING=1 ... READY=1
 * tells systemd when the files are read, a bad one too: the old policy
 * then stays in force and memtided serves on. */
static gboolean
on_reload_signal (gpointer user_data)
{
  Signals *sig = user_data;

  mt_notify_reloading (sig->notify);
  mt_daemon_reload (sig->daemon, NULL);
  mt_notify_ready (sig->notify);
  return G_SOURCE_CONTINUE;
}

/* A policy error at start-up goes to the journal, when stderr is the
 * journal, with the fields of every policy error (log-event.h); the
 * text is the same either way. */
static void
print_start_error (const GError *error)
{
  if (error->domain == MT_CONFIG_ERROR && g_log_writer_is_journald (fileno (stderr))) {
    mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_POLICY_ERROR,
                  &(MtEventFields){ .reason = error->message }, "memtided: %s", error->message);
    return;
  }
  g_printerr ("memtided: %s\n", error->message);
}

int
main (int argc, char **argv)
{
  g_autofree char *backend = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *config_file = NULL;
  g_autofree char *policies_dir = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *proc_root = NULL;
  g_autofree char *cgroup_dir = NULL;
  g_autofree char *bus = NULL;
  g_autofree char *bus_address = NULL;
  gint metrics_port = -1;
  gint state_interval = 0;
  gboolean dry_run = FALSE;
  gboolean verbose = FALSE;
  gboolean check_config = FALSE;
  gboolean version = FALSE;
  const GOptionEntry entries[] = {
    { "backend", 0, 0, G_OPTION_ARG_STRING, &backend,
      "Hypervisor driver: auto probes the real drivers in order and takes the first that "
      "answers (xen when built with it, then libvirt); xen (memtided in dom0, on libxenctrl "
      "and xenstore); libvirt; or fake, scripted domains for tests, only when named "
      "(default: auto)",
      "auto|xen|libvirt|fake" },
    { "connect", 'c', 0, G_OPTION_ARG_STRING, &uri,
      "libvirt: URI of the hypervisor (default: qemu:///system); xen: none (or xen); fake: "
      "the control socket to create, required",
      "URI" },
    { "config", 0, 0, G_OPTION_ARG_FILENAME, &config_file,
      "Base policy file (default: " SYSCONFDIR "/memtide/default.conf)", "FILE" },
    { "policies-dir", 0, 0, G_OPTION_ARG_FILENAME, &policies_dir,
      "Directory of admin policy files read after the base file, in sorted order "
      "(default: " SYSCONFDIR "/memtide/policies.d)",
      "DIR" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
      "Where state that survives a restart is kept (default: " LOCALSTATEDIR "/lib/memtide)",
      "DIR" },
    { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run,
      "Decide and log every action with its reason, apply none", NULL },
    { "check-config", 0, 0, G_OPTION_ARG_NONE, &check_config,
      "Load and validate the policy files, print what is wrong, and exit", NULL },
    { "proc-root", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &proc_root,
      "Read host memory from this /proc (tests)", "DIR" },
    { "state-interval", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &state_interval,
      "Save state every SECONDS instead of 30 (tests)", "SECONDS" },
    { "cgroup", 0, 0, G_OPTION_ARG_FILENAME, &cgroup_dir,
      "cgroup directory the VMs run in, whose memory limit caps the budget "
      "(default: libvirt's machine cgroup when it exists)",
      "DIR" },
    { "bus", 0, 0, G_OPTION_ARG_STRING, &bus,
      "Offer the D-Bus API on the system bus, the session bus, or not at all "
      "(default: system; without this option a missing system bus only warns)",
      "system|session|none" },
    { "bus-address", 0, 0, G_OPTION_ARG_STRING, &bus_address,
      "Use the bus at this address as the system bus, for the API and for polkit (tests)",
      "ADDRESS" },
    { "metrics-port", 0, 0, G_OPTION_ARG_INT, &metrics_port,
      "Serve OpenMetrics text for Prometheus on http://localhost:PORT/metrics "
      "(loopback only; 0 picks a free port and logs it; default: off)",
      "PORT" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Log every decision, not only actions",
      NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (MtDaemon) daemon = NULL;
  g_autoptr (MtNotify) notify = NULL;
  g_autoptr (MtDbus) dbus = NULL;
  g_autoptr (MtMetrics) metrics = NULL;
  MtDaemonOptions options;
  Signals sig;

#ifdef __GLIBC__
  /* Give freed memory back.  glibc raises its trim threshold to twice
   * the largest block it ever unmapped, and each tick frees a few MiB
   * in one go (the plan's input and decisions, libvirt's replies at
   * 10,000 domains): up to 18 MiB of free heap then stayed in RSS.  A
   * fixed threshold keeps large blocks mapped per tick and trims the
   * heap's top above 1 MiB. */
  mallopt (M_TRIM_THRESHOLD, 1024 * 1024);
#endif
  setlocale (LC_ALL, "");
  context = g_option_context_new ("- keep every VM at the memory size it needs");
  g_option_context_set_summary (
    context, "memtided watches the VMs of a libvirt (KVM) or Xen host, decides per VM how\n"
             "much memory it needs from guest pressure and the policy files, and resizes\n"
             "it live with virtio-mem and the virtio-balloon (on Xen: the balloon).  Every\n"
             "resize is logged with its reason.  SIGHUP reloads the policy files (a bad\n"
             "file keeps the old policy).");
  g_option_context_set_description (
    context, "Exit status: 0 on a clean shutdown, 1 on a start-up error (bad policy file,\n"
             "hypervisor unreachable at start, another memtided owns the bus name, the bus\n"
             "connection lost), 2 on bad options.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    g_printerr ("memtided: %s (try --help)\n", error->message);
    return 2;
  }
  if (argc > 1) {
    g_printerr ("memtided: unexpected argument '%s' (try --help)\n", argv[1]);
    return 2;
  }
  if (state_interval < 0) {
    g_printerr ("memtided: --state-interval: expected a number of seconds, not %d\n",
                state_interval);
    return 2;
  }
  if (bus && !g_str_equal (bus, "system") && !g_str_equal (bus, "session")
      && !g_str_equal (bus, "none")) {
    g_printerr ("memtided: --bus: expected system, session or none, not '%s'\n", bus);
    return 2;
  }
  if (backend && !mt_drivers_known (backend)) {
    g_printerr ("memtided: --backend: expected auto or a driver (%s), not '%s'\n",
                mt_drivers_names (), backend);
    return 2;
  }
  /* Before anything connects, so that polkit's connection goes there too. */
  if (bus_address)
    mt_dbus_use_address (bus_address);
  if (version) {
    g_print ("memtided %s\n", PACKAGE_VERSION);
    return 0;
  }
  if (verbose)
    g_log_set_debug_enabled (TRUE);

  options = (MtDaemonOptions){
    .backend = backend,
    .uri = uri,
    .config_file = config_file ? config_file : SYSCONFDIR "/memtide/default.conf",
    .policies_dir = policies_dir ? policies_dir : SYSCONFDIR "/memtide/policies.d",
    .state_dir = state_dir ? state_dir : LOCALSTATEDIR "/lib/memtide",
    .proc_root = proc_root ? proc_root : "/proc",
    .cgroup_dir = cgroup_dir,
    .dry_run = dry_run,
    .state_interval = (gint64) state_interval * G_USEC_PER_SEC,
  };

  if (check_config) {
    if (!mt_daemon_check_config (&options, &error)) {
      g_printerr ("memtided: %s\n", error->message);
      return 1;
    }
    g_print ("memtided: policy files are valid\n");
    return 0;
  }

  daemon = mt_daemon_new (&options, &error);
  if (!daemon) {
    print_start_error (error);
    return 1;
  }

  loop = g_main_loop_new (NULL, FALSE);
  notify = mt_notify_new (daemon);
  sig = (Signals){ .loop = loop, .daemon = daemon, .notify = notify };
  g_unix_signal_add (SIGINT, on_quit_signal, &sig);
  g_unix_signal_add (SIGTERM, on_quit_signal, &sig);
  g_unix_signal_add (SIGHUP, on_reload_signal, &sig);

  if (g_strcmp0 (bus, "none") != 0) {
    g_autoptr (GDBusConnection) connection =
      mt_dbus_connect (bus ? bus : "system", bus_address, &error);
    MtDbusOptions dbus_options = {
      .on_lost = on_bus_lost,
      .on_lost_data = loop,
    };

    if (connection) {
      dbus = mt_dbus_new (daemon, connection, &dbus_options, &error);
      if (!dbus) {
        g_printerr ("memtided: %s\n", error->message);
        return 1;
      }
    } else if (bus || bus_address) {
      g_printerr ("memtided: %s\n", error->message);
      return 1;
    } else {
      g_warning ("%s; running without the D-Bus API, memtidectl cannot reach this memtided "
                 "(--bus none says so explicitly)",
                 error->message);
      g_clear_error (&error);
    }
  }

  if (metrics_port > 65535 || metrics_port < -1) {
    g_printerr ("memtided: --metrics-port %d: expected a port from 1 to 65535, or 0 for any "
                "free port\n",
                metrics_port);
    return 2;
  }
  if (metrics_port >= 0) {
    metrics = mt_metrics_new (daemon, (guint) metrics_port, &error);
    if (!metrics) {
      g_printerr ("memtided: %s\n", error->message);
      return 1;
    }
  }

  if (!mt_daemon_start (daemon, &error)) {
    g_printerr ("memtided: %s\n", error->message);
    return 1;
  }
  /* mt_dbus_new() owned the bus name when it returned, and
   * mt_daemon_start() has planned once. */
  mt_notify_ready (notify);
  g_main_loop_run (loop);
  mt_daemon_stop (daemon);
  return exit_status;
}
