/* metrics.c: an OpenMetrics endpoint for Prometheus, served by libsoup3 on
 * the loopback interface only, off unless --metrics-port is given.
 *
 * Gauges are read from the daemon's status snapshots when scraped;
 * counters and the reaction-time histogram are kept by a daemon observer.
 * Reaction time: from the first plan in which a VM wanted to grow (its
 * target above its size) to the grow being applied. */
#define G_LOG_DOMAIN "memtide-metrics"

#include "build-config.h"

#include <math.h>
#include <libsoup/soup.h>

#include "metrics.h"
#include "metrics-listener.h"
#include "model.h"
#include "reporting.h"

/* Histogram bounds in seconds: the planner should grant within a tick or
 * two; baselines take 10 s and more. */
static const double reaction_bounds[] = { 0.25, 0.5, 1, 2, 5, 10, 30, 60 };
#define N_BOUNDS G_N_ELEMENTS (reaction_bounds)

/* Page cache reclaim requests to guest agents (MtDaemonObserver
 * guest_reclaimed): why x outcome. */
static const char *const reclaim_whys[] = { "shrink", "cold" };
static const char *const reclaim_outcomes[] = { "done", "refused", "failed" };
#define N_WHYS     G_N_ELEMENTS (reclaim_whys)
#define N_OUTCOMES G_N_ELEMENTS (reclaim_outcomes)

struct _MtMetrics {
  MtDaemon *daemon;
  SoupServer *server;
  MtMetricsListener *listener; /* its connections: capped, idle ones closed */
  guint port;
  GHashTable *actions;    /* "shrink|grow|cancel" + mechanism -> count */
  GHashTable *want_since; /* uuid -> gint64* monotonic µs */
  guint64 stuck_events;
  guint64 reservations_ok;
  guint64 reservations_failed;
  guint64 reclaims[N_WHYS][N_OUTCOMES];
  guint64 reclaimed_bytes[N_WHYS];
  guint64 reaction_buckets[N_BOUNDS];
  guint64 reaction_count;
  double reaction_sum;
};

static void
count_action (MtMetrics *m, const char *kind, const char *mechanism)
{
  g_autofree char *key = g_strdup_printf ("%s\t%s", kind, mechanism);
  guint64 n = GPOINTER_TO_SIZE (g_hash_table_lookup (m->actions, key));

  /* Counts stay far below G_MAXSIZE on 64-bit hosts; pointer storage
   * keeps the table simple. */
  g_hash_table_replace (m->actions, g_steal_pointer (&key), GSIZE_TO_POINTER (n + 1));
}

static void
observe_reaction (MtMetrics *m, double seconds)
{
  for (guint i = 0; i < N_BOUNDS; i++) {
    if (seconds <= reaction_bounds[i])
      m->reaction_buckets[i]++;
  }
  m->reaction_count++;
  m->reaction_sum += seconds;
}

/* Called for every VM after every plan: two numbers, no status snapshot
 * (which formats the decision's reason and copies five strings). */
static void
on_vm_updated (MtDaemon *d, const char *uuid, gpointer user_data)
{
  MtMetrics *m = user_data;
  guint64 current, target;
  gboolean wants_more;

  if (!mt_daemon_get_vm_target (d, uuid, &current, &target))
    return;
  wants_more = target != MT_UNKNOWN && current != MT_UNKNOWN && target > current;
  if (wants_more && !g_hash_table_contains (m->want_since, uuid)) {
    gint64 *since = g_new (gint64, 1);
    *since = g_get_monotonic_time ();
    g_hash_table_insert (m->want_since, g_strdup (uuid), since);
  } else if (!wants_more) {
    g_hash_table_remove (m->want_since, uuid);
  }
}

static void
on_vm_removed (MtDaemon *d, const char *uuid, gpointer user_data)
{
  MtMetrics *m = user_data;

  g_hash_table_remove (m->want_since, uuid);
}

static void
on_action_applied (MtDaemon *d, const char *uuid, const char *mechanism, guint64 from, guint64 to,
                   const char *reason, gpointer user_data)
{
  MtMetrics *m = user_data;
  const char *kind = to > from ? "grow" : to < from ? "shrink" : "cancel";
  gint64 *since;

  count_action (m, kind, mechanism);
  since = g_hash_table_lookup (m->want_since, uuid);
  if (to > from && since) {
    observe_reaction (m, (g_get_monotonic_time () - *since) / (double) G_USEC_PER_SEC);
    g_hash_table_remove (m->want_since, uuid);
  }
}

static void
on_vm_stuck (MtDaemon *d, const char *uuid, const char *reason, gpointer user_data)
{
  ((MtMetrics *) user_data)->stuck_events++;
}

static void
on_reservation_done (MtDaemon *d, guint cookie, gboolean ok, const char *message,
                     gpointer user_data)
{
  MtMetrics *m = user_data;

  if (ok)
    m->reservations_ok++;
  else
    m->reservations_failed++;
}

static guint
index_of (const char *const *names, guint n, const char *name)
{
  for (guint i = 0; i < n; i++)
    if (g_str_equal (names[i], name))
      return i;
  return n;
}

static void
on_guest_reclaimed (MtDaemon *d, const char *uuid, const char *why, const char *outcome,
                    guint64 asked, guint64 reclaimed, gpointer user_data)
{
  MtMetrics *m = user_data;
  guint w = index_of (reclaim_whys, N_WHYS, why),
        o = index_of (reclaim_outcomes, N_OUTCOMES, outcome);

  g_return_if_fail (w < N_WHYS && o < N_OUTCOMES);
  m->reclaims[w][o]++;
  m->reclaimed_bytes[w] += reclaimed;
}

static const MtDaemonObserver metrics_observer = {
  .vm_removed = on_vm_removed,
  .vm_updated = on_vm_updated,
  .action_applied = on_action_applied,
  .vm_stuck = on_vm_stuck,
  .reservation_done = on_reservation_done,
  .guest_reclaimed = on_guest_reclaimed,
};

/* Label values are domain names: escape as the exposition format asks. */
static char *
escape_label (const char *v)
{
  GString *s = g_string_new (NULL);

  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      g_string_append_c (s, '\\');
    if (*v == '\n') {
      g_string_append (s, "\\n");
      continue;
    }
    g_string_append_c (s, *v);
  }
  return g_string_free (s, FALSE);
}

static void
gauge_header (GString *out, const char *name, const char *unit, const char *help)
{
  g_string_append_printf (out, "# TYPE %s gauge\n", name);
  if (unit)
    g_string_append_printf (out, "# UNIT %s %s\n", name, unit);
  g_string_append_printf (out, "# HELP %s %s\n", name, help);
}

static void
host_gauge (GString *out, const char *name, const char *help, guint64 v)
{
  gauge_header (out, name, "bytes", help);
  if (v != MT_UNKNOWN)
    g_string_append_printf (out, "%s %" G_GUINT64_FORMAT "\n", name, v);
}

typedef struct {
  const char *name;
  const char *help;
  gsize offset; /* of a guint64 in MtVmStatus */
} VmGauge;

/* Per-VM doubles shown as ratios, NAN (unknown) left out. */
typedef struct {
  const char *name, *help;
  gsize offset; /* of a double in MtVmStatus */
  double per;   /* 100 for a percentage, 1 for a share */
  int digits;
} VmRatio;

static const VmRatio vm_ratios[] = {
  { "memtide_vm_pressure_ratio", "Guest PSI memory some avg10, as a ratio (agent only).",
    G_STRUCT_OFFSET (MtVmStatus, pressure), 100.0, 4 },
  { "memtide_vm_pressure_target_ratio",
    "The policy's pressure target: guest PSI memory some avg10 the headroom "
    "feedback keeps the guest below, as a ratio.",
    G_STRUCT_OFFSET (MtVmStatus, pressure_target), 100.0, 4 },
  { "memtide_vm_stall_ratio",
    "Share of the time the guest stalled on memory (PSI some total, from its agent), "
    "averaged over its policy's stall-window.",
    G_STRUCT_OFFSET (MtVmStatus, stall), 1.0, 6 },
  /* Never NAN: 0 = none. */
  { "memtide_vm_stall_budget_ratio",
    "The policy's stall-budget as a ratio (0 = none): above it the VM is not shrunk.",
    G_STRUCT_OFFSET (MtVmStatus, stall_budget), 1.0, 6 },
};

static const VmGauge vm_gauges[] = {
  { "memtide_vm_size_bytes", "Memory the VM has now (balloon + virtio-mem).",
    G_STRUCT_OFFSET (MtVmStatus, current) },
  { "memtide_vm_target_bytes", "Where memtided wants the VM to be.",
    G_STRUCT_OFFSET (MtVmStatus, target) },
  { "memtide_vm_need_bytes", "Working set plus headroom.", G_STRUCT_OFFSET (MtVmStatus, need) },
  { "memtide_vm_min_bytes", "Effective lower bound.", G_STRUCT_OFFSET (MtVmStatus, min) },
  { "memtide_vm_max_bytes", "Effective upper bound.", G_STRUCT_OFFSET (MtVmStatus, max) },
  { "memtide_vm_plugged_bytes", "Memory the VM has through virtio-mem.",
    G_STRUCT_OFFSET (MtVmStatus, vmem_plugged) },
  { "memtide_vm_guest_available_bytes", "MemAvailable inside the guest.",
    G_STRUCT_OFFSET (MtVmStatus, guest_available) },
  { "memtide_vm_reported_free_bytes",
    "Guest memory free page reporting handed back, as the guest claims it (patched kernels).",
    G_STRUCT_OFFSET (MtVmStatus, reported_free) },
  { "memtide_vm_rss_saved_bytes",
    "The reported memory memtided believes: the claim, at most size - QEMU RSS + tolerance.",
    G_STRUCT_OFFSET (MtVmStatus, rss_saved) },
  { "memtide_vm_unpluggable_bytes", "Virtio-mem memory an unplug could take.",
    G_STRUCT_OFFSET (MtVmStatus, unpluggable) },
};

/* Counters of the guest kernel (patched kernels): back to 0 when the
 * guest reboots, which Prometheus' rate() takes as a counter reset. */
static const VmGauge vm_counters[] = {
  { "memtide_vm_reported_bytes", "Guest memory free page reporting reported since boot.",
    G_STRUCT_OFFSET (MtVmStatus, reported_total) },
  { "memtide_vm_reused_bytes", "Reported guest memory the guest allocated again since boot.",
    G_STRUCT_OFFSET (MtVmStatus, reused_total) },
  { "memtide_vm_reporting_passes", "Free page reporting passes in the guest since boot.",
    G_STRUCT_OFFSET (MtVmStatus, reporting_passes) },
  { "memtide_vm_reporting_budget_exhausted",
    "Reporting passes that left free pages for later, their budget spent.",
    G_STRUCT_OFFSET (MtVmStatus, reporting_budget_exhausted) },
};

static void
vm_counters_render (GString *out, GPtrArray *vms, char **labels)
{
  for (guint g = 0; g < G_N_ELEMENTS (vm_counters); g++) {
    const char *name = vm_counters[g].name;
    gboolean bytes = g_str_has_suffix (name, "_bytes");

    g_string_append_printf (out, "# TYPE %s counter\n", name);
    if (bytes)
      g_string_append_printf (out, "# UNIT %s bytes\n", name);
    g_string_append_printf (out, "# HELP %s %s\n", name, vm_counters[g].help);
    for (guint i = 0; i < vms->len; i++) {
      guint64 v = G_STRUCT_MEMBER (guint64, vms->pdata[i], vm_counters[g].offset);
      if (v != MT_UNKNOWN)
        g_string_append_printf (out, "%s_total{%s} %" G_GUINT64_FORMAT "\n", name, labels[i], v);
    }
  }
}

/* Protocol violations of each VM's guest agent, by kind: every kind for
 * every VM with an agent link, 0 included, so rate() sees the first. */
static void
vm_agent_render (GString *out, GPtrArray *vms, char **labels)
{
  g_string_append (out, "# TYPE memtide_vm_agent_violations counter\n"
                        "# HELP memtide_vm_agent_violations Protocol violations of the VM's guest "
                        "agent, by kind, since memtided attached its link; each closed the link "
                        "for a back-off.\n");
  for (guint i = 0; i < vms->len; i++) {
    const MtVmStatus *st = vms->pdata[i];

    if (!st->has_agent_link)
      continue;
    for (guint c = MT_AGENT_OK + 1; c < MT_AGENT_ERR_COUNT; c++)
      g_string_append_printf (
        out, "memtide_vm_agent_violations_total{%s,kind=\"%s\"} %" G_GUINT64_FORMAT "\n", labels[i],
        mt_agent_error_code_to_string (c), st->agent_violations[c]);
  }
}

/* The guest's reporting tunables and its block usage hint, when known. */
static void
vm_reporting_render (GString *out, GPtrArray *vms, char **labels)
{
  static const char *const uses[] = { "free", "movable", "unmovable", "pinned", "offline" };

  gauge_header (out, "memtide_vm_reporting_delay_seconds", "seconds",
                "The guest's delay before a free page reporting pass.");
  for (guint i = 0; i < vms->len; i++) {
    const MtVmStatus *st = vms->pdata[i];
    if (st->reporting_delay_ms != MT_UNKNOWN)
      g_string_append_printf (out, "memtide_vm_reporting_delay_seconds{%s} %.3f\n", labels[i],
                              (double) st->reporting_delay_ms / 1000.0);
  }
  gauge_header (out, "memtide_vm_reporting_budget_divisor", NULL,
                "A reporting pass reports about 1/divisor of each free list.");
  for (guint i = 0; i < vms->len; i++) {
    const MtVmStatus *st = vms->pdata[i];
    if (st->reporting_budget_divisor != MT_UNKNOWN)
      g_string_append_printf (out,
                              "memtide_vm_reporting_budget_divisor{%s} %" G_GUINT64_FORMAT "\n",
                              labels[i], st->reporting_budget_divisor);
  }
  gauge_header (out, "memtide_vm_block_usage_blocks", NULL,
                "Online memory blocks by kind (kernel, movable, virtio-mem), from the guest.");
  for (guint i = 0; i < vms->len; i++) {
    const MtVmStatus *st = vms->pdata[i];
    MtBlockKind kinds[MT_BLOCK_KINDS];

    /* 0 blocks is a value here: a series that comes and goes is worse. */
    mt_block_kinds (&st->usage_kernel, &st->usage_movable, &st->usage_vmem, kinds);
    for (guint k = 0; k < MT_BLOCK_KINDS; k++)
      if (kinds[k].usage->blocks != MT_UNKNOWN)
        g_string_append_printf (
          out, "memtide_vm_block_usage_blocks{%s,kind=\"%s\"} %" G_GUINT64_FORMAT "\n", labels[i],
          kinds[k].name, kinds[k].usage->blocks);
  }
  gauge_header (out, "memtide_vm_block_usage_bytes", "bytes",
                "How the guest's online memory blocks are used, by kind and use (a hint).");
  for (guint i = 0; i < vms->len; i++) {
    const MtVmStatus *st = vms->pdata[i];
    MtBlockKind kinds[MT_BLOCK_KINDS];

    mt_block_kinds (&st->usage_kernel, &st->usage_movable, &st->usage_vmem, kinds);
    for (guint k = 0; k < MT_BLOCK_KINDS; k++) {
      const MtBlockUsage *ku = kinds[k].usage;
      const guint64 v[] = { ku->free, ku->movable, ku->unmovable, ku->pinned, ku->offline };
      if (ku->blocks == MT_UNKNOWN)
        continue;
      for (guint u = 0; u < G_N_ELEMENTS (uses); u++)
        g_string_append_printf (
          out, "memtide_vm_block_usage_bytes{%s,kind=\"%s\",use=\"%s\"} %" G_GUINT64_FORMAT "\n",
          labels[i], kinds[k].name, uses[u], v[u]);
    }
  }
}

static char *
render (MtMetrics *m)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GPtrArray) vms = mt_daemon_list_vms (m->daemon);
  g_autofree char **labels = g_new0 (char *, vms->len + 1);
  MtHostStatus host;
  GHashTableIter iter;
  gpointer key, value;
  guint stuck = 0;

  mt_daemon_get_host_status (m->daemon, &host);
  /* OpenMetrics' info type: the family is memtide_build, its one
   * sample memtide_build_info. */
  g_string_append (out, "# TYPE memtide_build info\n"
                        "# HELP memtide_build The memtided that serves these metrics.\n");
  g_string_append_printf (out, "memtide_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
  host_gauge (out, "memtide_host_total_bytes", "Host MemTotal.", host.total);
  host_gauge (out, "memtide_host_available_bytes", "Host MemAvailable.", host.available);
  host_gauge (out, "memtide_host_reserve_bytes", "Kept free for the host, reservations included.",
              host.reserve);
  host_gauge (out, "memtide_host_budget_bytes", "What the VMs may hold together.", host.budget);
  host_gauge (out, "memtide_guest_total_bytes", "Sum of the VMs' sizes.", host.guest_total);
  host_gauge (out, "memtide_guest_free_bytes", "Sum of free memory inside the guests.",
              host.guest_free);
  host_gauge (out, "memtide_guest_reported_free_bytes",
              "Guest memory returned to the host by free page reporting, as the guests claim it.",
              host.reported_free);
  host_gauge (out, "memtide_guest_rss_saved_bytes",
              "The reported guest memory memtided believes, each VM's claim cut by its QEMU RSS.",
              host.rss_saved);
  host_gauge (out, "memtide_guest_reported_since_boot_bytes",
              "Sum over the running VMs of the memory reported since each guest booted.",
              host.reported_total);
  host_gauge (out, "memtide_guest_reused_since_boot_bytes",
              "Sum over the running VMs of the reported memory each guest took back since boot.",
              host.reused_total);

  for (guint i = 0; i < vms->len; i++) {
    const MtVmStatus *st = vms->pdata[i];
    g_autofree char *name = escape_label (st->name);
    /* "domain": the label the Prometheus libvirt exporters put the
     * domain's name in (libvirt_domain_info_*{domain="..."}), so that
     * a query can join their series and ours on it. */
    labels[i] = g_strdup_printf ("domain=\"%s\",uuid=\"%s\"", name, st->uuid);
    stuck += st->stuck;
  }
  for (guint g = 0; g < G_N_ELEMENTS (vm_gauges); g++) {
    gauge_header (out, vm_gauges[g].name, "bytes", vm_gauges[g].help);
    for (guint i = 0; i < vms->len; i++) {
      guint64 v = G_STRUCT_MEMBER (guint64, vms->pdata[i], vm_gauges[g].offset);
      if (v != MT_UNKNOWN)
        g_string_append_printf (out, "%s{%s} %" G_GUINT64_FORMAT "\n", vm_gauges[g].name, labels[i],
                                v);
    }
  }
  for (guint g = 0; g < G_N_ELEMENTS (vm_ratios); g++) {
    gauge_header (out, vm_ratios[g].name, "ratio", vm_ratios[g].help);
    for (guint i = 0; i < vms->len; i++) {
      double v = G_STRUCT_MEMBER (double, vms->pdata[i], vm_ratios[g].offset);
      if (!isnan (v))
        g_string_append_printf (out, "%s{%s} %.*f\n", vm_ratios[g].name, labels[i],
                                vm_ratios[g].digits, v / vm_ratios[g].per);
    }
  }
  gauge_header (out, "memtide_vm_over_stall_budget", NULL,
                "1 when the last plan found the VM over its stall budget.");
  for (guint i = 0; i < vms->len; i++)
    g_string_append_printf (out, "memtide_vm_over_stall_budget{%s} %d\n", labels[i],
                            ((MtVmStatus *) vms->pdata[i])->over_budget ? 1 : 0);
  gauge_header (out, "memtide_vm_rise_floor_bytes", "bytes",
                "The largest sudden rise of the working set that stalled the guest within the "
                "last hour: kept free ahead of the next.");
  for (guint i = 0; i < vms->len; i++)
    g_string_append_printf (out, "memtide_vm_rise_floor_bytes{%s} %" G_GUINT64_FORMAT "\n",
                            labels[i], ((MtVmStatus *) vms->pdata[i])->rise_floor);
  vm_counters_render (out, vms, labels);
  vm_reporting_render (out, vms, labels);
  vm_agent_render (out, vms, labels);
  gauge_header (out, "memtide_vm_stuck", NULL, "1 when the VM did not follow its target.");
  for (guint i = 0; i < vms->len; i++)
    g_string_append_printf (out, "memtide_vm_stuck{%s} %d\n", labels[i],
                            ((MtVmStatus *) vms->pdata[i])->stuck ? 1 : 0);
  gauge_header (out, "memtide_vms_stuck", NULL, "VMs marked stuck now.");
  g_string_append_printf (out, "memtide_vms_stuck %u\n", stuck);
  for (guint i = 0; i < vms->len; i++)
    g_free (labels[i]);

  g_string_append (out, "# TYPE memtide_actions counter\n"
                        "# HELP memtide_actions Resizes applied, by kind and mechanism.\n");
  g_hash_table_iter_init (&iter, m->actions);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    g_auto (GStrv) parts = g_strsplit (key, "\t", 2);
    g_string_append_printf (
      out, "memtide_actions_total{kind=\"%s\",mechanism=\"%s\"} %" G_GSIZE_FORMAT "\n", parts[0],
      parts[1], GPOINTER_TO_SIZE (value));
  }
  g_string_append_printf (out,
                          "# TYPE memtide_stuck_events counter\n"
                          "# HELP memtide_stuck_events Times a VM was marked stuck.\n"
                          "memtide_stuck_events_total %" G_GUINT64_FORMAT "\n",
                          m->stuck_events);
  g_string_append_printf (out,
                          "# TYPE memtide_reservations counter\n"
                          "# HELP memtide_reservations Reservations that ended, by outcome.\n"
                          "memtide_reservations_total{outcome=\"done\"} %" G_GUINT64_FORMAT "\n"
                          "memtide_reservations_total{outcome=\"failed\"} %" G_GUINT64_FORMAT "\n",
                          m->reservations_ok, m->reservations_failed);
  g_string_append (out,
                   "# TYPE memtide_guest_reclaims counter\n"
                   "# HELP memtide_guest_reclaims Page cache reclaim requests to guest agents, "
                   "by why (shrink: before a shrink, cold: cold page cache) and outcome.\n");
  for (guint w = 0; w < N_WHYS; w++)
    for (guint o = 0; o < N_OUTCOMES; o++)
      g_string_append_printf (
        out, "memtide_guest_reclaims_total{why=\"%s\",outcome=\"%s\"} %" G_GUINT64_FORMAT "\n",
        reclaim_whys[w], reclaim_outcomes[o], m->reclaims[w][o]);
  g_string_append (out, "# TYPE memtide_guest_reclaimed_bytes counter\n"
                        "# UNIT memtide_guest_reclaimed_bytes bytes\n"
                        "# HELP memtide_guest_reclaimed_bytes Page cache the guests reclaimed when "
                        "asked, by why.\n");
  for (guint w = 0; w < N_WHYS; w++)
    g_string_append_printf (
      out, "memtide_guest_reclaimed_bytes_total{why=\"%s\"} %" G_GUINT64_FORMAT "\n",
      reclaim_whys[w], m->reclaimed_bytes[w]);

  g_string_append (out, "# TYPE memtide_grow_reaction_seconds histogram\n"
                        "# UNIT memtide_grow_reaction_seconds seconds\n"
                        "# HELP memtide_grow_reaction_seconds From a VM first wanting to grow "
                        "to the grow being applied.\n");
  for (guint i = 0; i < N_BOUNDS; i++)
    g_string_append_printf (
      out, "memtide_grow_reaction_seconds_bucket{le=\"%g\"} %" G_GUINT64_FORMAT "\n",
      reaction_bounds[i], m->reaction_buckets[i]);
  g_string_append_printf (
    out, "memtide_grow_reaction_seconds_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n",
    m->reaction_count);
  g_string_append_printf (out, "memtide_grow_reaction_seconds_sum %.3f\n", m->reaction_sum);
  g_string_append_printf (out, "memtide_grow_reaction_seconds_count %" G_GUINT64_FORMAT "\n",
                          m->reaction_count);
  g_string_append (out, "# EOF\n");
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static void
handle_metrics (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                gpointer user_data)
{
  MtMetrics *m = user_data;
  char *body;

  if (g_strcmp0 (soup_server_message_get_method (msg), SOUP_METHOD_GET) != 0
      && g_strcmp0 (soup_server_message_get_method (msg), SOUP_METHOD_HEAD) != 0) {
    soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
    return;
  }
  if (g_strcmp0 (path, "/metrics") != 0) {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    return;
  }
  body = render (m);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                    SOUP_MEMORY_TAKE, body, strlen (body));
}

MtMetrics *
mt_metrics_new (MtDaemon *daemon, guint port, GError **error)
{
  g_autoptr (MtMetrics) m = g_new0 (MtMetrics, 1);

  m->daemon = daemon;
  m->actions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  m->want_since = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  m->server = soup_server_new ("server-header", "memtided", NULL);
  soup_server_add_handler (m->server, NULL, handle_metrics, m, NULL);
  /* Loopback only: the figures name every VM on the host. */
  m->listener = mt_metrics_listener_new (m->server, port, error);
  if (m->listener == NULL) {
    g_prefix_error (error, "cannot serve metrics on localhost port %u: ", port);
    return NULL;
  }
  m->port = mt_metrics_listener_get_port (m->listener);
  mt_daemon_add_observer (daemon, &metrics_observer, m);
  g_message ("Metrics on http://localhost:%u/metrics", m->port);
  return g_steal_pointer (&m);
}

guint
mt_metrics_get_port (MtMetrics *m)
{
  return m->port;
}

void
mt_metrics_free (MtMetrics *m)
{
  if (!m)
    return;
  if (m->daemon && m->server)
    mt_daemon_remove_observer (m->daemon, &metrics_observer, m);
  g_clear_pointer (&m->listener, mt_metrics_listener_free);
  if (m->server) {
    soup_server_disconnect (m->server);
    g_object_unref (m->server);
  }
  g_clear_pointer (&m->actions, g_hash_table_unref);
  g_clear_pointer (&m->want_since, g_hash_table_unref);
  g_free (m);
}
