/* memtidectl-format.c: what memtidectl prints.  People get sizes like
 * "1.5 GiB" and tables; scripts (--json) get the D-Bus property names as
 * keys and exact bytes. */
#define G_LOG_DOMAIN "memtidectl"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "memtidectl.h"
#include "config-value.h"
#include "model.h"

char *
mtctl_size (guint64 bytes)
{
  return bytes == 0 ? g_strdup ("-") : mt_format_bytes (bytes);
}

gboolean
mtctl_parse_size (const char *text, guint64 *out, GError **error)
{
  /* The policy files' syntax, so sizes read the same everywhere. */
  return mt_parse_size (text, out, error);
}

JsonNode *
mtctl_json_from_variant (GVariant *value)
{
  return json_gvariant_serialize (value);
}

void
mtctl_print_json (JsonNode *node)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, node);
  text = json_generator_to_data (gen, NULL);
  g_print ("%s\n", text);
}

JsonNode *
mtctl_status_json (GVariant *host, GVariant *vms)
{
  JsonObject *obj = json_object_new ();
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);

  json_object_set_member (obj, "host", mtctl_json_from_variant (host));
  json_object_set_member (obj, "vms", mtctl_json_from_variant (vms));
  json_node_take_object (root, obj);
  return root;
}

void
mtctl_print_json_member (const char *key, GVariant *value)
{
  g_autoptr (GVariant) ref = g_variant_ref_sink (value);
  JsonObject *obj = json_object_new ();
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);

  json_object_set_member (obj, key, mtctl_json_from_variant (ref));
  json_node_take_object (root, obj);
  mtctl_print_json (root);
}

guint
mtctl_terminal_width (void)
{
  struct winsize ws;
  const char *columns = g_getenv ("COLUMNS");

  if (!isatty (STDOUT_FILENO))
    return 0;
  if (columns && atoi (columns) > 20)
    return (guint) atoi (columns);
  if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
    return ws.ws_col;
  return 80;
}

static guint64
get_u64 (GVariant *dict, const char *key)
{
  guint64 v = 0;
  g_variant_lookup (dict, key, "t", &v);
  return v;
}

static const char *
get_str (GVariant *dict, const char *key)
{
  const char *v = NULL;
  if (!g_variant_lookup (dict, key, "&s", &v))
    return "";
  return v;
}

static gboolean
get_bool (GVariant *dict, const char *key)
{
  gboolean v = FALSE;
  g_variant_lookup (dict, key, "b", &v);
  return v;
}

/* "0.40% over 10 min (budget 1.00%)", "- (budget 1.00%)" without an agent. */
static char *
stall_text (GVariant *vm)
{
  double stall = -1, budget = 0;
  guint32 window = 0;
  guint64 rise = 0;
  GString *s = g_string_new (NULL);

  g_variant_lookup (vm, "Stall", "d", &stall);
  g_variant_lookup (vm, "StallBudget", "d", &budget);
  g_variant_lookup (vm, "StallWindow", "u", &window);
  g_variant_lookup (vm, "RiseFloor", "t", &rise);
  if (stall < 0)
    g_string_append (s, "-");
  else if (window % 60 == 0)
    g_string_append_printf (s, "%.2f%% over %u min", stall, window / 60);
  else
    g_string_append_printf (s, "%.2f%% over %u s", stall, window);
  if (budget > 0)
    g_string_append_printf (s, " (budget %.2f%%%s)", budget,
                            get_bool (vm, "OverStallBudget") ? ", over it: not shrunk" : "");
  else
    g_string_append (s, " (no budget)");
  if (rise > 0) {
    g_autofree char *r = mt_format_bytes (rise);
    g_string_append_printf (s, ", rise floor %s", r);
  }
  return g_string_free (s, FALSE);
}

static char *
pressure_text (GVariant *vm)
{
  double p = -1;

  g_variant_lookup (vm, "Pressure", "d", &p);
  return p < 0 ? g_strdup ("-") : g_strdup_printf ("%.1f%%", p);
}

void
mtctl_print_host (GVariant *host)
{
  g_autofree char *total = mtctl_size (get_u64 (host, "Total"));
  g_autofree char *avail = mtctl_size (get_u64 (host, "Available"));
  g_autofree char *reserve = mtctl_size (get_u64 (host, "Reserve"));
  g_autofree char *budget = mtctl_size (get_u64 (host, "Budget"));
  /* Sums: 0 is a real value here. */
  g_autofree char *guests = mt_format_bytes (get_u64 (host, "GuestTotal"));
  g_autofree char *gfree = mt_format_bytes (get_u64 (host, "GuestFree"));
  g_autofree char *reported = mt_format_bytes (get_u64 (host, "ReportedFree"));
  g_autoptr (GVariant) reservations =
    g_variant_lookup_value (host, "Reservations", G_VARIANT_TYPE ("a(utsbs)"));
  guint32 nvms = 0;

  g_variant_lookup (host, "NVMs", "u", &nvms);
  g_print ("memtided %s: mode %s, %s, %u VM%s\n", get_str (host, "Version"), get_str (host, "Mode"),
           get_bool (host, "Connected") ? "connected to the hypervisor"
                                        : "NOT connected to the hypervisor (VMs keep their size)",
           nvms, nvms == 1 ? "" : "s");
  g_print ("Host: %s total, %s available, %s kept in reserve\n", total, avail, reserve);
  g_print ("VMs:  %s of a %s budget; %s free inside the guests, %s returned by free page "
           "reporting\n",
           guests, budget, gfree, reported);
  /* Only guests with the memtide kernel patches report these. */
  if (get_u64 (host, "ReportedTotal") > 0 || get_u64 (host, "RssSaved") > 0) {
    g_autofree char *saved = mt_format_bytes (get_u64 (host, "RssSaved"));
    g_autofree char *rtotal = mt_format_bytes (get_u64 (host, "ReportedTotal"));
    g_autofree char *utotal = mt_format_bytes (get_u64 (host, "ReusedTotal"));
    g_print ("Reporting: %s saved on the host (claims checked against QEMU RSS); %s reported, "
             "%s reused since the guests booted\n",
             saved, rtotal, utotal);
  }
  if (reservations && g_variant_n_children (reservations) > 0) {
    GVariantIter iter;
    guint32 cookie;
    guint64 bytes;
    const char *reason, *holder;
    gboolean done;

    g_variant_iter_init (&iter, reservations);
    while (g_variant_iter_next (&iter, "(ut&sb&s)", &cookie, &bytes, &reason, &done, &holder)) {
      g_autofree char *sbytes = mtctl_size (bytes);
      g_print ("Reservation %u: %s, %s, for \"%s\" (held by %s)\n", cookie, sbytes,
               done ? "room made" : "making room", reason, holder);
    }
  }
}

static char *
decision_text (GVariant *vm)
{
  GString *s = g_string_new (get_str (vm, "Decision"));

  if (get_bool (vm, "Pinned"))
    g_string_append (s, ",pinned");
  if (get_bool (vm, "HasLimits"))
    g_string_append (s, ",limits");
  return g_string_free (s, FALSE);
}

#define N_COLUMNS 8

void
mtctl_print_vm_table (GVariant *vms, guint width)
{
  static const char *const headers[N_COLUMNS + 1] = { "NAME",     "SIZE",     "TARGET",
                                                      "NEED",     "PRESSURE", "MECHANISM",
                                                      "DECISION", "REASON",   NULL };
  g_autoptr (GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  guint widths[N_COLUMNS];
  gsize n = g_variant_n_children (vms);

  if (n == 0) {
    g_print ("No running VMs.\n");
    return;
  }
  g_ptr_array_add (rows, g_strdupv ((char **) headers));
  for (gsize i = 0; i < n; i++) {
    g_autoptr (GVariant) vm = g_variant_get_child_value (vms, i);
    char **row = g_new0 (char *, N_COLUMNS + 1);
    const char *reason =
      get_bool (vm, "Stuck") ? get_str (vm, "StuckReason") : get_str (vm, "Reason");
    row[0] = g_strdup (get_str (vm, "Name"));
    row[1] = mtctl_size (get_u64 (vm, "Current"));
    row[2] = mtctl_size (get_u64 (vm, "Target"));
    row[3] = mtctl_size (get_u64 (vm, "Need"));
    row[4] = pressure_text (vm);
    row[5] = g_strdup (get_str (vm, "Mechanism"));
    row[6] = decision_text (vm);
    row[7] = g_strdup (*reason ? reason : "-");
    g_ptr_array_add (rows, row);
  }
  for (guint c = 0; c < N_COLUMNS; c++) {
    widths[c] = 0;
    for (guint r = 0; r < rows->len; r++)
      widths[c] = MAX (widths[c], (guint) g_utf8_strlen (((char **) rows->pdata[r])[c], -1));
  }
  for (guint r = 0; r < rows->len; r++) {
    char **row = rows->pdata[r];
    g_autoptr (GString) line = g_string_new (NULL);

    for (guint c = 0; c < N_COLUMNS; c++) {
      gboolean right = c >= 1 && c <= 4;
      guint pad = widths[c] - (guint) g_utf8_strlen (row[c], -1);

      if (c > 0)
        g_string_append (line, "  ");
      if (right)
        for (guint k = 0; k < pad; k++)
          g_string_append_c (line, ' ');
      g_string_append (line, row[c]);
      if (!right && c + 1 < N_COLUMNS)
        for (guint k = 0; k < pad; k++)
          g_string_append_c (line, ' ');
    }
    /* On a terminal the reason is cut at its edge; pipes get it whole. */
    if (width > 4 && g_utf8_strlen (line->str, -1) > width) {
      const char *cut = g_utf8_offset_to_pointer (line->str, width - 1);
      g_string_truncate (line, cut - line->str);
      g_string_append (line, "…");
    }
    g_print ("%s\n", line->str);
  }
}

static void
print_field (const char *label, const char *value)
{
  g_print ("  %-16s %s\n", label, value);
}

static char *
block_usage_text (guint64 blocks, const guint64 v[5])
{
  char f[5][MT_FORMAT_BYTES_LEN];

  for (guint i = 0; i < 5; i++)
    mt_format_bytes_buf (f[i], v[i]);
  return g_strdup_printf ("%" G_GUINT64_FORMAT " blocks: free %s, movable %s, unmovable %s, "
                          "pinned %s, "
                          "offline %s",
                          blocks, f[0], f[1], f[2], f[3], f[4]);
}

/* Free page reporting and the block usage hint: patched guest kernels
 * only, so nothing at all for the others. */
static void
print_reporting (GVariant *vm)
{
  g_autoptr (GVariant) usage =
    g_variant_lookup_value (vm, "BlockUsage", G_VARIANT_TYPE ("a(stttttt)"));
  guint32 delay = 0, divisor = 0;

  g_variant_lookup (vm, "ReportingDelay", "u", &delay);
  g_variant_lookup (vm, "ReportingBudgetDivisor", "u", &divisor);
  if (get_u64 (vm, "ReportedTotal") > 0 || get_u64 (vm, "ReportedFree") > 0) {
    g_autofree char *claim = mt_format_bytes (get_u64 (vm, "ReportedFree"));
    g_autofree char *saved = mt_format_bytes (get_u64 (vm, "RssSaved"));
    g_autofree char *rtotal = mt_format_bytes (get_u64 (vm, "ReportedTotal"));
    g_autofree char *utotal = mt_format_bytes (get_u64 (vm, "ReusedTotal"));
    g_autofree char *now = g_strdup_printf ("%s (%s believed by QEMU RSS)", claim, saved);
    g_autofree char *since = g_strdup_printf (
      "%s reported, %s reused; %" G_GUINT64_FORMAT " passes, %" G_GUINT64_FORMAT " out of budget",
      rtotal, utotal, get_u64 (vm, "ReportingPasses"), get_u64 (vm, "ReportingBudgetExhausted"));
    print_field ("reported now", now);
    print_field ("since boot", since);
  }
  if (delay > 0 || divisor > 0) {
    g_autofree char *tun = g_strdup_printf ("delay %u ms, budget divisor %u", delay, divisor);
    print_field ("reporting", tun);
  }
  if (usage && g_variant_n_children (usage) > 0) {
    GVariantIter iter;
    const char *kind;
    guint64 blocks, v[5];

    g_variant_iter_init (&iter, usage);
    while (g_variant_iter_next (&iter, "(&stttttt)", &kind, &blocks, &v[0], &v[1], &v[2], &v[3],
                                &v[4])) {
      g_autofree char *text = block_usage_text (blocks, v);
      g_autofree char *label = g_strdup_printf ("usage %s", kind);
      print_field (label, text);
    }
  }
}

/* Its agent's protocol violations by kind and the last one, when any
 * (an older memtided has no such property: nothing). */
static void
print_agent_violations (GVariant *vm)
{
  g_autoptr (GVariant) kinds =
    g_variant_lookup_value (vm, "AgentViolations", G_VARIANT_TYPE ("a(st)"));
  g_autoptr (GString) text = g_string_new (NULL);
  GVariantIter iter;
  const char *kind;
  guint64 count;

  if (kinds == NULL || g_variant_n_children (kinds) == 0)
    return;
  g_variant_iter_init (&iter, kinds);
  while (g_variant_iter_next (&iter, "(&st)", &kind, &count))
    g_string_append_printf (text, "%s%s %" G_GUINT64_FORMAT, text->len ? ", " : "", kind, count);
  print_field ("agent violations", text->str);
  if (*get_str (vm, "AgentLastViolation"))
    print_field ("last violation", get_str (vm, "AgentLastViolation"));
}

void
mtctl_print_vm (GVariant *vm)
{
  g_autofree char *current = mtctl_size (get_u64 (vm, "Current"));
  g_autofree char *plugged = mt_format_bytes (get_u64 (vm, "Plugged"));
  g_autofree char *balloon = mtctl_size (get_u64 (vm, "Balloon"));
  g_autofree char *target = mtctl_size (get_u64 (vm, "Target"));
  g_autofree char *need = mtctl_size (get_u64 (vm, "Need"));
  g_autofree char *min = mtctl_size (get_u64 (vm, "Min"));
  g_autofree char *max = mtctl_size (get_u64 (vm, "Max"));
  g_autofree char *avail = mtctl_size (get_u64 (vm, "GuestAvailable"));
  g_autofree char *pressure = pressure_text (vm);
  g_autofree char *stall = stall_text (vm);
  g_autofree char *size = NULL;
  g_autofree char *bounds = NULL;
  g_autofree char *source = NULL;
  g_autofree char *decision = NULL;
  g_autoptr (GVariant) pins = g_variant_lookup_value (vm, "Pins", G_VARIANT_TYPE ("a(utss)"));
  const char *last = get_str (vm, "LastAction");

  g_print ("%s (%s)\n", get_str (vm, "Name"), get_str (vm, "UUID"));
  size = g_strdup_printf ("%s (balloon %s + virtio-mem %s)", current, balloon, plugged);
  print_field ("size", size);
  print_field ("target", target);
  print_field ("need", need);
  bounds = g_strdup_printf ("min %s, max %s (%s)", min, max,
                            get_bool (vm, "Pinned")      ? "held by a pin"
                            : get_bool (vm, "HasLimits") ? "admin limits"
                                                         : "policy");
  print_field ("bounds", bounds);
  print_field ("guest available", avail);
  print_field ("pressure", pressure);
  print_field ("stall", stall);
  source = g_strdup_printf ("%s (agent %s)", get_str (vm, "DataSource"),
                            get_bool (vm, "AgentConnected") ? "connected" : "not connected");
  print_field ("data from", source);
  print_agent_violations (vm);
  print_field ("mechanism", get_str (vm, "Mechanism"));
  decision = g_strdup_printf ("%s: %s", get_str (vm, "Decision"),
                              *get_str (vm, "Reason") ? get_str (vm, "Reason") : "no decision yet");
  print_field ("decision", decision);
  if (get_bool (vm, "Stuck"))
    print_field ("stuck", get_str (vm, "StuckReason"));
  print_field ("last action", *last ? last : "none since memtided started");
  print_reporting (vm);
  if (pins && g_variant_n_children (pins) > 0) {
    GVariantIter iter;
    guint32 cookie;
    guint64 bytes;
    const char *reason, *holder;

    g_variant_iter_init (&iter, pins);
    while (g_variant_iter_next (&iter, "(ut&s&s)", &cookie, &bytes, &reason, &holder)) {
      g_autofree char *sbytes = mt_format_bytes (bytes);
      g_autofree char *text =
        g_strdup_printf ("%u: %s, for \"%s\" (held by %s)", cookie, sbytes, reason, holder);
      print_field ("pin", text);
    }
  }
}
