/* memtidectl: query and steer memtided over D-Bus.  See memtidectl(1). */
#define G_LOG_DOMAIN "memtidectl"

#include "build-config.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "memtidectl.h"
#include "config-value.h"

static const char usage_text[] =
  "Usage: memtidectl [OPTION...] COMMAND [ARG...]\n"
  "\n"
  "Query and steer memtided, the memory manager of this host's VMs.\n"
  "\n"
  "Commands:\n"
  "  status                      the host and a table of VMs (the default)\n"
  "  show VM                     everything about one VM (name or UUID)\n"
  "  explain VM                  its last decision and the inputs, in words\n"
  "  watch [--interval S] [--count N]\n"
  "                              live view, refreshed every second (Ctrl-C ends)\n"
  "  mode [active|dry-run|paused]\n"
  "                              print or set what memtided does each tick\n"
  "  reload                      re-read the policy files\n"
  "  set-limits VM MIN MAX       admin bounds for a VM, kept across restarts\n"
  "  set-limits VM clear         drop them: the policy files apply again\n"
  "  reserve SIZE [--reason R] [--timeout S] [--wait | -- COMMAND...]\n"
  "                              make SIZE free for a VM about to start\n"
  "  release COOKIE              end a reservation\n"
  "  pin VM SIZE [--reason R] [--wait | -- COMMAND...]\n"
  "                              hold a VM at SIZE\n"
  "  unpin COOKIE                end a pin\n"
  "\n"
  "Reservations and pins are leases: they last while memtidectl runs.  With\n"
  "-- COMMAND memtidectl runs COMMAND and ends the lease when it exits (and\n"
  "exits with its status); with --wait it holds the lease until Ctrl-C;\n"
  "otherwise the lease ends as memtidectl exits.\n"
  "\n"
  "Options:\n"
  "  --system                    talk to memtided on the system bus (default)\n"
  "  --address ADDRESS           talk to memtided on the bus at ADDRESS\n"
  "  --json                      print JSON (D-Bus property names, exact bytes)\n"
  "  --no-ask-password           fail instead of letting polkit ask for a password\n"
  "  --reason TEXT               why (reserve, pin): shown in logs and status\n"
  "  --timeout S                 seconds to make the room (reserve; default 60)\n"
  "  --wait                      hold the lease until Ctrl-C (reserve, pin)\n"
  "  --interval S                seconds between refreshes (watch; default 1)\n"
  "  --count N                   refresh N times, then exit (watch)\n"
  "  -h, --help                  this text\n"
  "  --version                   print the version\n"
  "\n"
  "Sizes: 512M, 2G, 1.5GiB (K, M, G, T; binary).\n"
  "Exit status: 0 ok, 1 memtided failed the request, 2 bad usage or a value\n"
  "memtided refused as invalid, 3 memtided not running or not reachable,\n"
  "4 not authorized, 5 no such VM, pin or reservation, 6 no room could be\n"
  "made; with -- COMMAND: the command's status.\n";

/* ---- reading commands ------------------------------------------------------ */

static int
cmd_status (MtCtl *ctl)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDbusManager1) manager = mtctl_manager (ctl, MTCTL_PROXY_PROPERTIES, &error);
  g_autoptr (GVariant) host = manager ? mtctl_properties (manager, &error) : NULL;
  g_autoptr (GVariant) vms = NULL;

  if (!host)
    return mtctl_fail (ctl, error);
  vms = mtctl_list_vms (ctl, manager, &error);
  if (!vms)
    return mtctl_fail (ctl, error);
  if (ctl->json) {
    g_autoptr (JsonNode) root = mtctl_status_json (host, vms);
    mtctl_print_json (root);
    return MT_EXIT_OK;
  }
  mtctl_print_host (host);
  g_print ("\n");
  mtctl_print_vm_table (vms, mtctl_terminal_width ());
  return MT_EXIT_OK;
}

static int
cmd_show (MtCtl *ctl, const char *vm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDbusManager1) manager = mtctl_manager (ctl, MTCTL_PROXY_CALLS, &error);
  g_autofree char *path = manager ? mtctl_vm_path (ctl, manager, vm, &error) : NULL;
  g_autoptr (MtDbusVM1) proxy = NULL;
  g_autoptr (GVariant) props = NULL;

  if (!path)
    return mtctl_fail (ctl, error);
  proxy = mtctl_vm (ctl, path, MTCTL_PROXY_PROPERTIES, &error);
  if (!proxy)
    return mtctl_fail (ctl, error);
  props = mtctl_properties (proxy, &error);
  if (!props) {
    g_autoptr (GError) again = NULL;
    g_autofree char *still = mtctl_vm_path (ctl, manager, vm, &again);

    /* Most likely the VM stopped since GetVM: asking again says so. */
    return mtctl_fail (ctl, still ? error : again);
  }
  if (ctl->json) {
    g_autoptr (JsonNode) root = mtctl_json_from_variant (props);
    json_object_set_string_member (json_node_get_object (root), "ObjectPath", path);
    mtctl_print_json (root);
  } else {
    mtctl_print_vm (props);
  }
  return MT_EXIT_OK;
}

static int
cmd_explain (MtCtl *ctl, const char *vm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDbusManager1) manager = mtctl_manager (ctl, MTCTL_PROXY_CALLS, &error);
  g_autofree char *text = NULL;

  if (!manager
      || !mt_dbus_manager1_call_explain_sync (manager, vm, mtctl_call_flags (ctl, MTCTL_READ),
                                              mtctl_call_timeout (ctl, MTCTL_READ), &text, NULL,
                                              &error))
    return mtctl_fail (ctl, error);
  if (ctl->json) {
    mtctl_print_json_member ("Explain", g_variant_new_string (text));
  } else {
    g_print ("%s", text);
  }
  return MT_EXIT_OK;
}

/* ---- writing commands -------------------------------------------------------- */

/* Manager1's properties as they are after a write: a proxy made now reads
 * them now (the one that wrote would only learn of the change later, from
 * PropertiesChanged). */
static MtDbusManager1 *
manager_after_write (MtCtl *ctl, GError **error)
{
  g_autoptr (MtDbusManager1) manager = mtctl_manager (ctl, MTCTL_PROXY_PROPERTIES, error);
  g_autoptr (GVariant) props = manager ? mtctl_properties (manager, error) : NULL;

  return props ? g_steal_pointer (&manager) : NULL;
}

static int
cmd_mode (MtCtl *ctl, const char *mode)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDbusManager1) manager = NULL;
  const char *now;

  if (mode) {
    g_autoptr (MtDbusManager1) writer = NULL;

    if (!g_str_equal (mode, "active") && !g_str_equal (mode, "dry-run")
        && !g_str_equal (mode, "paused"))
      return mtctl_usage_error ("mode: expected active, dry-run or paused, not '%s'", mode);
    writer = mtctl_manager (ctl, MTCTL_PROXY_CALLS, &error);
    if (!writer
        || !mt_dbus_manager1_call_set_mode_sync (writer, mode, mtctl_call_flags (ctl, MTCTL_WRITE),
                                                 mtctl_call_timeout (ctl, MTCTL_WRITE), NULL,
                                                 &error))
      return mtctl_fail (ctl, error);
  }
  manager = manager_after_write (ctl, &error);
  if (!manager)
    return mtctl_fail (ctl, error);
  now = mt_dbus_manager1_get_mode (manager);
  if (ctl->json)
    mtctl_print_json_member ("Mode", g_variant_new_string (now ? now : ""));
  else
    g_print ("%s\n", now ? now : "");
  return MT_EXIT_OK;
}

static int
cmd_reload (MtCtl *ctl)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDbusManager1) writer = mtctl_manager (ctl, MTCTL_PROXY_CALLS, &error);
  g_autoptr (MtDbusManager1) manager = NULL;
  const char *const *files;

  if (!writer
      || !mt_dbus_manager1_call_reload_policies_sync (writer, mtctl_call_flags (ctl, MTCTL_WRITE),
                                                      mtctl_call_timeout (ctl, MTCTL_WRITE), NULL,
                                                      &error))
    return mtctl_fail (ctl, error);
  manager = manager_after_write (ctl, &error);
  if (!manager)
    return mtctl_fail (ctl, error);
  files = mt_dbus_manager1_get_policy_files (manager);
  if (ctl->json) {
    mtctl_print_json_member ("PolicyFiles", g_variant_new_strv (files, files ? -1 : 0));
  } else {
    g_print ("Policy reloaded from:\n");
    for (guint i = 0; files && files[i]; i++)
      g_print ("  %s\n", files[i]);
  }
  return MT_EXIT_OK;
}

static int
cmd_set_limits (MtCtl *ctl, const char *vm, const char *min_text, const char *max_text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDbusManager1) manager = NULL;
  g_autofree char *path = NULL;
  g_autoptr (MtDbusVM1) proxy = NULL;
  guint64 min = 0, max = 0;

  if (!max_text && g_strcmp0 (min_text, "clear") != 0)
    return mtctl_usage_error ("set-limits: expected VM MIN MAX, or VM clear");
  if (max_text) {
    if (!mtctl_parse_size (min_text, &min, &error) || !mtctl_parse_size (max_text, &max, &error))
      return mtctl_usage_error ("set-limits: %s", error->message);
    if (min > max)
      return mtctl_usage_error ("set-limits: MIN %s is above MAX %s", min_text, max_text);
  }
  manager = mtctl_manager (ctl, MTCTL_PROXY_CALLS, &error);
  path = manager ? mtctl_vm_path (ctl, manager, vm, &error) : NULL;
  if (!path)
    return mtctl_fail (ctl, error);
  proxy = mtctl_vm (ctl, path, MTCTL_PROXY_CALLS, &error);
  if (!proxy
      || !mt_dbus_vm1_call_set_limits_sync (proxy, min, max, mtctl_call_flags (ctl, MTCTL_WRITE),
                                            mtctl_call_timeout (ctl, MTCTL_WRITE), NULL, &error))
    return mtctl_fail (ctl, error);
  if (!ctl->json) {
    g_autofree char *smin = mtctl_size (min);
    g_autofree char *smax = mtctl_size (max);

    if (max == 0)
      g_print ("%s: admin limits cleared, the policy files apply\n", vm);
    else
      g_print ("%s: min %s, max %s (kept across restarts; clear with: memtidectl set-limits "
               "%s clear)\n",
               vm, smin, smax, vm);
  } else {
    g_autoptr (GVariant) limits =
      g_variant_ref_sink (g_variant_new_parsed ("{'Min': <%t>, 'Max': <%t>}", min, max));
    g_autoptr (JsonNode) root = mtctl_json_from_variant (limits);
    mtctl_print_json (root);
  }
  return MT_EXIT_OK;
}

static gboolean
parse_cookie (const char *text, guint *out)
{
  guint64 v;

  if (!mt_parse_uint (text, 1, G_MAXUINT32, &v, NULL))
    return FALSE;
  *out = (guint) v;
  return TRUE;
}

static int
cmd_release (MtCtl *ctl, const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDbusManager1) manager = NULL;
  guint cookie;

  if (!parse_cookie (text, &cookie))
    return mtctl_usage_error ("release: '%s' is not a reservation cookie (a number above 0)", text);
  manager = mtctl_manager (ctl, MTCTL_PROXY_CALLS, &error);
  if (!manager
      || !mt_dbus_manager1_call_release_reservation_sync (
        manager, cookie, mtctl_call_flags (ctl, MTCTL_WRITE), mtctl_call_timeout (ctl, MTCTL_WRITE),
        NULL, &error))
    return mtctl_fail (ctl, error);
  if (!ctl->json)
    g_print ("Reservation %u released\n", cookie);
  return MT_EXIT_OK;
}

/* The VM a pin is on: the one with the pin's cookie in its Pins, or NULL. */
static MtDbusVM1 *
find_pin (GDBusObjectManager *objects, guint cookie)
{
  g_autolist (GDBusObject) list = g_dbus_object_manager_get_objects (objects);

  for (GList *l = list; l; l = l->next) {
    MtDbusVM1 *vm = mt_dbus_object_peek_vm1 (MT_DBUS_OBJECT (l->data));
    GVariant *pins = vm ? mt_dbus_vm1_get_pins (vm) : NULL;
    GVariantIter iter;
    guint32 c;

    if (!pins)
      continue;
    g_variant_iter_init (&iter, pins);
    while (g_variant_iter_next (&iter, "(ut&s&s)", &c, NULL, NULL, NULL)) {
      if (c == cookie)
        return g_object_ref (vm);
    }
  }
  return NULL;
}

static int
cmd_unpin (MtCtl *ctl, const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GDBusObjectManager) objects = NULL;
  g_autoptr (MtDbusVM1) vm = NULL;
  guint cookie;

  if (!parse_cookie (text, &cookie))
    return mtctl_usage_error ("unpin: '%s' is not a pin cookie (a number above 0)", text);
  objects = mtctl_vm_objects (ctl, &error);
  if (!objects)
    return mtctl_fail (ctl, error);
  vm = find_pin (objects, cookie);
  if (!vm) {
    g_printerr ("memtidectl: no pin %u (already ended, its VM stopped, or its holder exited; "
                "memtidectl show VM lists a VM's pins)\n",
                cookie);
    return MT_EXIT_NOT_FOUND;
  }
  if (!mt_dbus_vm1_call_unpin_sync (vm, cookie, mtctl_call_flags (ctl, MTCTL_WRITE),
                                    mtctl_call_timeout (ctl, MTCTL_WRITE), NULL, &error))
    return mtctl_fail (ctl, error);
  if (!ctl->json)
    g_print ("Pin %u ended\n", cookie);
  return MT_EXIT_OK;
}

/* ---- command line ------------------------------------------------------------ */

typedef struct {
  const char *name;
  guint min_args, max_args;
  gboolean takes_command;
} Command;

static const Command commands[] = {
  { "status", 0, 0, FALSE },     { "show", 1, 1, FALSE },   { "explain", 1, 1, FALSE },
  { "watch", 0, 0, FALSE },      { "mode", 0, 1, FALSE },   { "reload", 0, 0, FALSE },
  { "set-limits", 2, 3, FALSE }, { "reserve", 1, 1, TRUE }, { "release", 1, 1, FALSE },
  { "pin", 2, 2, TRUE },         { "unpin", 1, 1, FALSE },
};

/* "--name VALUE" or "--name=VALUE"; advances *i past VALUE. */
static gboolean
option_value (int argc, char **argv, int *i, const char *name, const char **value)
{
  gsize len = strlen (name);

  if (strncmp (argv[*i], name, len) != 0)
    return FALSE;
  if (argv[*i][len] == '=') {
    *value = argv[*i] + len + 1;
    return TRUE;
  }
  if (argv[*i][len] != '\0')
    return FALSE;
  *value = *i + 1 < argc ? argv[++*i] : NULL;
  return TRUE;
}

static int
parse_seconds (const char *opt, const char *text, double lo, double hi, double *out)
{
  gint64 usec;
  char *end = NULL;
  double v;

  if (!text)
    return mtctl_usage_error ("%s needs a value", opt);
  v = g_ascii_strtod (text, &end);
  if (end == text || *end != '\0') {
    if (!mt_parse_duration (text, &usec, NULL))
      return mtctl_usage_error ("%s: '%s' is not a duration (30, 30s, 2m)", opt, text);
    v = (double) usec / G_USEC_PER_SEC;
  }
  /* Written so that NaN, which compares false with everything, fails. */
  if (!(v >= lo && v <= hi))
    return mtctl_usage_error ("%s: %s is out of range (%g to %g s)", opt, text, lo, hi);
  *out = v;
  return MT_EXIT_OK;
}

/* Every return from main frees what the options allocated. */
static void
mtctl_clear (MtCtl *ctl)
{
  g_clear_object (&ctl->bus);
  g_clear_pointer (&ctl->address, g_free);
  g_clear_pointer (&ctl->reason, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MtCtl, mtctl_clear)

int
main (int argc, char **argv)
{
  g_auto (MtCtl) ctl = { .interval = 1.0, .ask_password = isatty (STDIN_FILENO) };
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  const Command *cmd = NULL;
  const char *name;
  guint64 count = 0;
  int code;

  setlocale (LC_ALL, "");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *value = NULL;
    double seconds;

    if (g_str_equal (a, "--")) {
      ctl.command = argv + i + 1;
      if (!ctl.command[0])
        return mtctl_usage_error ("-- must be followed by a command to run");
      break;
    } else if (g_str_equal (a, "-h") || g_str_equal (a, "--help")) {
      g_print ("%s", usage_text);
      return MT_EXIT_OK;
    } else if (g_str_equal (a, "--version")) {
      g_print ("memtidectl %s\n", PACKAGE_VERSION);
      return MT_EXIT_OK;
    } else if (g_str_equal (a, "--json")) {
      ctl.json = TRUE;
    } else if (g_str_equal (a, "--system")) {
      g_clear_pointer (&ctl.address, g_free);
    } else if (g_str_equal (a, "--wait")) {
      ctl.wait = TRUE;
    } else if (g_str_equal (a, "--no-ask-password")) {
      ctl.ask_password = FALSE;
    } else if (option_value (argc, argv, &i, "--address", &value)) {
      if (!value || !*value)
        return mtctl_usage_error ("--address needs a D-Bus address");
      g_free (ctl.address);
      ctl.address = g_strdup (value);
    } else if (option_value (argc, argv, &i, "--reason", &value)) {
      if (!value)
        return mtctl_usage_error ("--reason needs a text");
      g_free (ctl.reason);
      ctl.reason = g_strdup (value);
    } else if (option_value (argc, argv, &i, "--timeout", &value)) {
      if ((code = parse_seconds ("--timeout", value, 1, 3600, &seconds)))
        return code;
      ctl.timeout = (guint) seconds;
    } else if (option_value (argc, argv, &i, "--interval", &value)) {
      if ((code = parse_seconds ("--interval", value, 0.1, 3600, &ctl.interval)))
        return code;
    } else if (option_value (argc, argv, &i, "--count", &value)) {
      if (!value || !mt_parse_uint (value, 1, G_MAXUINT32, &count, NULL))
        return mtctl_usage_error ("--count: expected a number above 0");
    } else if (a[0] == '-' && a[1] != '\0') {
      return mtctl_usage_error ("unknown option '%s'", a);
    } else {
      g_ptr_array_add (args, (gpointer) a);
    }
  }

  name = args->len > 0 ? args->pdata[0] : "status";
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++) {
    if (g_str_equal (commands[i].name, name))
      cmd = &commands[i];
  }
  if (!cmd)
    return mtctl_usage_error ("unknown command '%s'", name);
  if (args->len > 0 && (args->len - 1 < cmd->min_args || args->len - 1 > cmd->max_args))
    return mtctl_usage_error ("%s takes %u%s argument%s, not %u", name, cmd->min_args,
                              cmd->max_args > cmd->min_args ? " or more" : "",
                              cmd->max_args == 1 ? "" : "s", args->len - 1);
  if (ctl.command && !cmd->takes_command)
    return mtctl_usage_error ("%s does not run a command (only reserve and pin do)", name);
  if (ctl.command && ctl.wait)
    return mtctl_usage_error ("--wait and -- COMMAND exclude each other: the lease is held "
                              "while COMMAND runs");
  g_ptr_array_add (args, NULL);

  if (!mtctl_connect (&ctl, &error)) {
    g_printerr ("memtidectl: %s (is D-Bus running?)\n", error->message);
    return MT_EXIT_UNREACHABLE;
  }

  {
    const char *a1 = args->len > 2 ? args->pdata[1] : NULL;
    const char *a2 = args->len > 3 ? args->pdata[2] : NULL;
    const char *a3 = args->len > 4 ? args->pdata[3] : NULL;

    if (g_str_equal (name, "status"))
      code = cmd_status (&ctl);
    else if (g_str_equal (name, "show"))
      code = cmd_show (&ctl, a1);
    else if (g_str_equal (name, "explain"))
      code = cmd_explain (&ctl, a1);
    else if (g_str_equal (name, "watch"))
      code = mtctl_cmd_watch (&ctl, (guint) count);
    else if (g_str_equal (name, "mode"))
      code = cmd_mode (&ctl, a1);
    else if (g_str_equal (name, "reload"))
      code = cmd_reload (&ctl);
    else if (g_str_equal (name, "set-limits"))
      code = cmd_set_limits (&ctl, a1, a2, a3);
    else if (g_str_equal (name, "reserve"))
      code = mtctl_cmd_reserve (&ctl, a1);
    else if (g_str_equal (name, "release"))
      code = cmd_release (&ctl, a1);
    else if (g_str_equal (name, "pin"))
      code = mtctl_cmd_pin (&ctl, a1, a2);
    else
      code = cmd_unpin (&ctl, a1);
  }

  g_dbus_connection_flush_sync (ctl.bus, NULL, NULL);
  return code;
}
