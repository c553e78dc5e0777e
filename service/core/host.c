/* host.c: host memory, pressure and cgroup limit from /proc and cgroupfs. */
#define G_LOG_DOMAIN "memtide-host"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

struct _MtHostReader {
  char *proc_root;
  char *cgroup_dir; /* NULL: no cgroup limit known */
  gboolean cgroup_v2;
};

/* Above this a cgroup v1 limit means "unlimited" (the kernel reports
 * PAGE_COUNTER_MAX rounded to pages, 0x7FFFFFFFFFFFF000 on x86_64). */
#define CGROUP_V1_UNLIMITED (G_GUINT64_CONSTANT (1) << 62)

static gboolean
is_file (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  return g_file_test (path, G_FILE_TEST_IS_REGULAR);
}

/* libvirt without systemd puts QEMU under "machine" (v1) or
 * "machine.slice"/"machine" (v2); with systemd under machine.slice. */
static char *
find_machine_cgroup (const char *sys_fs_cgroup, gboolean *v2)
{
  static const char *const v1[] = { "memory/machine.slice", "memory/machine" };
  static const char *const unified[] = { "machine.slice", "machine", "unified/machine.slice",
                                         "unified/machine" };

  for (guint i = 0; i < G_N_ELEMENTS (v1); i++) {
    g_autofree char *dir = g_build_filename (sys_fs_cgroup, v1[i], NULL);
    if (is_file (dir, "memory.limit_in_bytes")) {
      *v2 = FALSE;
      return g_steal_pointer (&dir);
    }
  }
  for (guint i = 0; i < G_N_ELEMENTS (unified); i++) {
    g_autofree char *dir = g_build_filename (sys_fs_cgroup, unified[i], NULL);
    if (is_file (dir, "memory.max")) {
      *v2 = TRUE;
      return g_steal_pointer (&dir);
    }
  }
  return NULL;
}

MtHostReader *
mt_host_reader_new (const char *proc_root, const char *sys_fs_cgroup, const char *cgroup_dir)
{
  MtHostReader *r = g_new0 (MtHostReader, 1);

  r->proc_root = g_strdup (proc_root ? proc_root : "/proc");
  if (cgroup_dir) {
    r->cgroup_dir = g_strdup (cgroup_dir);
    r->cgroup_v2 = is_file (cgroup_dir, "memory.max");
  } else {
    r->cgroup_dir =
      find_machine_cgroup (sys_fs_cgroup ? sys_fs_cgroup : "/sys/fs/cgroup", &r->cgroup_v2);
  }
  return r;
}

void
mt_host_reader_free (MtHostReader *r)
{
  if (!r)
    return;
  g_free (r->proc_root);
  g_free (r->cgroup_dir);
  g_free (r);
}

const char *
mt_host_reader_get_cgroup_dir (MtHostReader *r)
{
  return r->cgroup_dir;
}

/* "MemTotal:       24589344 kB" -> bytes */
static gboolean
parse_meminfo (const char *text, MtHostSample *out, GError **error)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

  for (guint i = 0; lines[i]; i++) {
    guint64 *field = NULL;
    const char *colon = strchr (lines[i], ':');
    guint64 kib;
    char *end;

    if (g_str_has_prefix (lines[i], "MemTotal:"))
      field = &out->mem_total;
    else if (g_str_has_prefix (lines[i], "MemAvailable:"))
      field = &out->mem_available;
    if (!field || !colon)
      continue;
    errno = 0;
    kib = g_ascii_strtoull (colon + 1, &end, 10);
    if (errno || end == colon + 1 || kib > G_MAXUINT64 / MT_KIB) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "cannot parse meminfo line '%s'",
                   lines[i]);
      return FALSE;
    }
    *field = kib * MT_KIB;
  }
  if (out->mem_total == MT_UNKNOWN || out->mem_available == MT_UNKNOWN) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "meminfo lacks MemTotal or MemAvailable (kernel older than 3.14?)");
    return FALSE;
  }
  return TRUE;
}

/* "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" */
static void
parse_psi (const char *text, double *some, double *full)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

  for (guint i = 0; lines[i]; i++) {
    const char *avg = strstr (lines[i], "avg10=");
    double v;
    char *end;

    if (!avg)
      continue;
    v = g_ascii_strtod (avg + strlen ("avg10="), &end);
    if (end == avg + strlen ("avg10=") || !isfinite (v) || v < 0 || v > 100)
      continue;
    if (g_str_has_prefix (lines[i], "some "))
      *some = v;
    else if (g_str_has_prefix (lines[i], "full "))
      *full = v;
  }
}

static guint64
read_cgroup_value (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *text = NULL;
  guint64 v;
  char *end;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return MT_UNKNOWN;
  g_strstrip (text);
  if (g_str_equal (text, "max"))
    return MT_UNKNOWN;
  errno = 0;
  v = g_ascii_strtoull (text, &end, 10);
  if (errno || end == text || *end)
    return MT_UNKNOWN;
  if (v >= CGROUP_V1_UNLIMITED)
    return MT_UNKNOWN;
  return v;
}

gboolean
mt_host_reader_read (MtHostReader *r, gint64 now, MtHostSample *out, GError **error)
{
  g_autofree char *meminfo_path = g_build_filename (r->proc_root, "meminfo", NULL);
  g_autofree char *psi_path = g_build_filename (r->proc_root, "pressure", "memory", NULL);
  g_autofree char *meminfo = NULL;
  g_autofree char *psi = NULL;

  mt_host_sample_init (out, now);
  if (!g_file_get_contents (meminfo_path, &meminfo, NULL, error))
    return FALSE;
  if (!parse_meminfo (meminfo, out, error)) {
    g_prefix_error (error, "%s: ", meminfo_path);
    return FALSE;
  }
  /* PSI needs CONFIG_PSI and psi=1 on some kernels: optional. */
  if (g_file_get_contents (psi_path, &psi, NULL, NULL))
    parse_psi (psi, &out->psi_some_avg10, &out->psi_full_avg10);

  if (r->cgroup_dir) {
    out->cgroup_limit =
      read_cgroup_value (r->cgroup_dir, r->cgroup_v2 ? "memory.max" : "memory.limit_in_bytes");
    out->cgroup_usage =
      read_cgroup_value (r->cgroup_dir, r->cgroup_v2 ? "memory.current" : "memory.usage_in_bytes");
  }
  return TRUE;
}

static guint64
sub_sat (guint64 a, guint64 b)
{
  return a > b ? a - b : 0;
}

static guint64
add_sat (guint64 a, guint64 b)
{
  return a > G_MAXUINT64 - b ? G_MAXUINT64 : a + b;
}

guint64
mt_host_budget (const MtHostSample *host, const MtHostPolicy *policy, guint64 vm_rss_total,
                char **reason)
{
  guint64 from_host, budget;

  if (policy->budget) {
    if (reason)
      *reason =
        g_strdup_printf ("budget %" G_GUINT64_FORMAT " MiB set in policy", policy->budget / MT_MIB);
    return policy->budget;
  }

  if (vm_rss_total == MT_UNKNOWN)
    vm_rss_total = 0;
  from_host = sub_sat (add_sat (host->mem_available, vm_rss_total), policy->reserve);
  budget = from_host;
  if (host->cgroup_limit != MT_UNKNOWN) {
    guint64 from_cgroup = sub_sat (host->cgroup_limit, policy->reserve);
    if (from_cgroup < budget) {
      if (reason)
        *reason = g_strdup_printf (
          "budget %" G_GUINT64_FORMAT " MiB: VM cgroup limit %" G_GUINT64_FORMAT
          " MiB - reserve %" G_GUINT64_FORMAT " MiB",
          from_cgroup / MT_MIB, host->cgroup_limit / MT_MIB, policy->reserve / MT_MIB);
      return from_cgroup;
    }
  }
  if (reason)
    *reason = g_strdup_printf ("budget %" G_GUINT64_FORMAT " MiB: host available %" G_GUINT64_FORMAT
                               " MiB + VM RSS %" G_GUINT64_FORMAT
                               " MiB - reserve %" G_GUINT64_FORMAT " MiB",
                               budget / MT_MIB, host->mem_available / MT_MIB, vm_rss_total / MT_MIB,
                               policy->reserve / MT_MIB);
  return budget;
}
