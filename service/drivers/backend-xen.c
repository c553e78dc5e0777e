/* backend-xen.c: the Xen driver: probe, the xenstore connection and its
 * watches on the main loop, the table of domUs, statistics and host
 * memory.  set_balloon() is in backend-xen-resize.c, the agent bridges
 * in backend-xen-agent.c, the checked values in backend-xen-values.c.
 *
 * Xen gives no event per domain start or stop that says which domain:
 * @introduceDomain and @releaseDomain only say that something changed.
 * Each one (and a tick that sees Xen's list differ from the table)
 * schedules one reconcile: Xen's list against the table, ADDED for new
 * domUs, REMOVED for those gone, dying or shut down.
 */
#define G_LOG_DOMAIN "memtide-xen"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>

#include "backend-xen-private.h"
#include "drivers.h"

#define RECONNECT_MIN_S 1
#define RECONNECT_MAX_S 30
/* The most domains Xen has: domids below DOMID_FIRST_RESERVED. */
#define MAX_DOMAINS  DOMID_FIRST_RESERVED
#define NAME_MAX_LEN 256

#define TOKEN_INTRODUCE "memtide:introduce"
#define TOKEN_RELEASE   "memtide:release"

/* errno's text after @format, as G_IO_ERROR_FAILED (or @code). */
static void set_error_errno (GError **error, int code, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

static void
set_error_errno (GError **error, int code, const char *format, ...)
{
  int saved = errno;
  g_autofree char *what = NULL;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, G_IO_ERROR, code, "%s: %s", what, g_strerror (saved));
}

static void
logger_vmessage (xentoollog_logger *logger, xentoollog_level level, int errnoval,
                 const char *context, const char *format, va_list args)
{
  g_autofree char *text = NULL;

  /* Below DETAIL: libxencall's buffer statistics at every close. */
  if (level < XTL_DETAIL)
    return;
  text = g_strdup_vprintf (format, args);
  g_debug ("%s: %s%s%s", context != NULL ? context : "xen", text, errnoval >= 0 ? ": " : "",
           errnoval >= 0 ? g_strerror (errnoval) : "");
}

static void
logger_destroy (xentoollog_logger *logger)
{
}

xentoollog_logger *
mt_xen_logger (void)
{
  static xentoollog_logger logger = {
    .vmessage = logger_vmessage,
    .destroy = logger_destroy,
  };
  return &logger;
}

char *
mt_xen_domain_path (guint32 domid, const char *key)
{
  return g_strdup_printf ("/local/domain/%u/%s", domid, key);
}

static gboolean
check_uri (MtXenBackend *self, GError **error)
{
  if (self->uri == NULL || g_str_equal (self->uri, MT_XEN_URI))
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "the xen driver takes no URI but \"" MT_XEN_URI "\" (--connect %s)", self->uri);
  return FALSE;
}

static void
domain_free (MtXenDomain *dom)
{
  g_free (dom->name);
  g_free (dom->agent_socket);
  g_free (dom->agent_path);
  g_free (dom->agent_token);
  g_free (dom);
}

/* A domain memtided announces: not the xenstore domain, not dying or
 * shut down (xenstored fires @releaseDomain for those; xl destroys them
 * soon).  dom0 is announced opt-in (MtDomainInfo.opt_in): the daemon
 * manages it only when the policy names it. */
static gboolean
eligible (const xc_domaininfo_t *info)
{
  return (info->flags & (XEN_DOMINF_dying | XEN_DOMINF_shutdown | XEN_DOMINF_xs_domain)) == 0;
}

/* Xen's domains into self->infos; the count, or -1. */
static int
list_domains (MtXenBackend *self, GError **error)
{
  for (;;) {
    int n;

    if (self->infos == NULL) {
      self->n_infos = MAX (self->n_infos, 64);
      self->infos = g_new0 (xc_domaininfo_t, self->n_infos);
    }
    n = xc_domain_getinfolist (self->xch, 0, self->n_infos, self->infos);
    if (n < 0) {
      set_error_errno (error, G_IO_ERROR_FAILED, "cannot list Xen's domains");
      return -1;
    }
    /* A full buffer may have left domains out: ask again with more room. */
    if ((guint) n < self->n_infos || self->n_infos >= MAX_DOMAINS)
      return n;
    self->n_infos = MIN (self->n_infos * 2, MAX_DOMAINS);
    g_clear_pointer (&self->infos, g_free);
  }
}

/* A xenstore value on the main thread's handle; NULL (errno set) when
 * absent or unreadable. */
static char *
read_key (MtXenBackend *self, guint32 domid, const char *key, unsigned int *len)
{
  g_autofree char *path = mt_xen_domain_path (domid, key);

  return xs_read (self->xsh, XBT_NULL, path, len);
}

static gboolean
read_size (MtXenBackend *self, guint32 domid, const char *key, gboolean required, guint64 *bytes,
           GError **error)
{
  unsigned int len = 0;
  g_autofree char *what = mt_xen_domain_path (domid, key);
  char *value = read_key (self, domid, key, &len);
  gboolean ok;

  if (value == NULL && !required && errno == ENOENT) {
    *bytes = 0;
    return TRUE;
  }
  ok = mt_xen_parse_kib (what, value, len, bytes, error);
  free (value);
  return ok;
}

/* The name xl gave the domain, if usable (mt_xen_name_ok); else domain-N. */
static char *
read_name (MtXenBackend *self, guint32 domid)
{
  unsigned int len = 0;
  char *value = read_key (self, domid, "name", &len);
  gboolean ok = mt_xen_name_ok (value, len);
  char *name;

  if (!ok)
    g_warning ("domain %u: %s name in xenstore; calling it domain-%u", domid,
               value == NULL ? "no" : "an unusable", domid);
  name = ok ? g_strdup (value) : g_strdup_printf ("domain-%u", domid);
  free (value);
  return name;
}

/* dom0's static-max when xenstore has none: its maxmem now, at most the
 * host's memory (dom0_mem without max: leaves it unlimited), written to
 * memory/static-max as libxl writes it when it first needs it.  Written,
 * not only kept: after memtided has shrunk dom0, maxmem is the smaller
 * size, and a restarted memtided would take that for dom0's largest. */
static gboolean
dom0_static_max (MtXenBackend *self, const xc_domaininfo_t *info, guint64 *bytes, GError **error)
{
  xc_physinfo_t phys = { 0 };
  g_autofree char *path = mt_xen_domain_path (0, "memory/static-max");
  g_autofree char *value = NULL;

  if (xc_physinfo (self->xch, &phys) < 0) {
    set_error_errno (error, G_IO_ERROR_FAILED, "cannot read Xen's physinfo");
    return FALSE;
  }
  *bytes = mt_xen_pages_to_bytes (MIN (info->max_pages, phys.total_pages), XC_PAGE_SIZE);
  value = g_strdup_printf ("%" G_GUINT64_FORMAT, *bytes / MT_KIB);
  if (!xs_write (self->xsh, XBT_NULL, path, value, strlen (value)))
    g_warning ("dom0: cannot write %s = %s KiB: %s; using it without", path, value,
               g_strerror (errno));
  else
    g_message ("dom0: no %s; wrote its maxmem there, %s KiB, as libxl does", path, value);
  return TRUE;
}

/* What the driver keeps of @info's domain, read from xenstore. */
static MtXenDomain *
read_domain (MtXenBackend *self, const xc_domaininfo_t *info, GError **error)
{
  MtXenDomain *dom;
  guint64 static_max, videoram;

  /* dom0's static-max is written by libxl only when it first needs it
   * (xl mem-set 0, a domain built with autoballoon). */
  if (!read_size (self, info->domain, "memory/static-max", info->domain != 0, &static_max, error)
      || !read_size (self, info->domain, "memory/videoram", FALSE, &videoram, error))
    return NULL;
  if (static_max == 0 && info->domain == 0 && !dom0_static_max (self, info, &static_max, error))
    return NULL;
  dom = g_new0 (MtXenDomain, 1);
  dom->backend = self;
  dom->domid = info->domain;
  memcpy (dom->handle, info->handle, sizeof dom->handle);
  mt_xen_format_uuid (info->handle, dom->uuid);
  dom->name = read_name (self, info->domain);
  dom->static_max = static_max;
  dom->videoram = videoram;
  dom->agent_path = mt_xen_domain_path (info->domain, "data/memtide");
  dom->agent_token = g_strdup_printf ("memtide-agent:%u:%s", dom->domid, dom->uuid);
  return dom;
}

static void
announce (MtXenBackend *self, MtXenDomain *dom)
{
  char uuid[37];

  g_strlcpy (uuid, dom->uuid, sizeof uuid);
  g_mutex_lock (&self->lock);
  g_hash_table_insert (self->domains, dom->uuid, dom);
  g_hash_table_insert (self->by_domid, GUINT_TO_POINTER (dom->domid), dom);
  g_mutex_unlock (&self->lock);
  mt_xen_agent_attach (self, dom);
  g_debug ("domain %u '%s' (%s): static-max %" G_GUINT64_FORMAT " KiB, videoram %" G_GUINT64_FORMAT
           " KiB",
           dom->domid, dom->name, dom->uuid, dom->static_max / MT_KIB, dom->videoram / MT_KIB);
  mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_ADDED, uuid);
}

static void
forget (MtXenBackend *self, MtXenDomain *dom)
{
  char uuid[37];

  g_strlcpy (uuid, dom->uuid, sizeof uuid);
  mt_xen_agent_detach (self, dom);
  g_mutex_lock (&self->lock);
  g_hash_table_remove (self->by_domid, GUINT_TO_POINTER (dom->domid));
  g_hash_table_remove (self->domains, uuid); /* frees dom */
  g_mutex_unlock (&self->lock);
  mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_REMOVED, uuid);
}

/* The table's entry for @info, if it is the same domain (a domid is
 * reused only after the old domain is gone, but the handle tells). */
static MtXenDomain *
known (MtXenBackend *self, const xc_domaininfo_t *info)
{
  MtXenDomain *dom = g_hash_table_lookup (self->by_domid, GUINT_TO_POINTER (info->domain));

  if (dom != NULL && memcmp (dom->handle, info->handle, sizeof dom->handle) != 0)
    return NULL;
  return dom;
}

/* Xen's list against the table: REMOVED for domains gone or no longer
 * eligible, ADDED for new ones.  A new domain whose memory keys are not
 * in xenstore yet (the toolstack is still building it) is left for the
 * next reconcile, which the next tick schedules. */
static gboolean
reconcile (MtXenBackend *self, GError **error)
{
  g_autoptr (GHashTable) alive = g_hash_table_new (NULL, NULL);
  g_autoptr (GHashTable) present = g_hash_table_new (NULL, NULL);
  g_autoptr (GPtrArray) gone = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;
  int n = list_domains (self, error);

  if (n < 0)
    return FALSE;
  for (int i = 0; i < n; i++) {
    MtXenDomain *dom = known (self, &self->infos[i]);

    g_hash_table_add (present, GUINT_TO_POINTER (self->infos[i].domain));
    if (dom != NULL && eligible (&self->infos[i]))
      g_hash_table_add (alive, dom);
  }
  g_hash_table_iter_init (&iter, self->refused);
  while (g_hash_table_iter_next (&iter, &value, NULL))
    if (!g_hash_table_contains (present, value))
      g_hash_table_iter_remove (&iter);
  g_hash_table_iter_init (&iter, self->domains);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (!g_hash_table_contains (alive, value))
      g_ptr_array_add (gone, value);
  for (guint i = 0; i < gone->len; i++)
    forget (self, g_ptr_array_index (gone, i));

  for (int i = 0; i < n; i++) {
    const xc_domaininfo_t *info = &self->infos[i];
    g_autoptr (GError) local_error = NULL;
    MtXenDomain *dom;

    if (!eligible (info) || known (self, info) != NULL)
      continue;
    dom = read_domain (self, info, &local_error);
    if (dom == NULL) {
      /* Missing: being built.  Anything else is warned of once per
       * domain: every tick retries. */
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        g_debug ("domain %u: not ready yet (%s)", info->domain, local_error->message);
      else if (g_hash_table_add (self->refused, GUINT_TO_POINTER (info->domain)))
        g_warning ("domain %u: not managing it: %s", info->domain, local_error->message);
      else
        g_debug ("domain %u: still not managing it: %s", info->domain, local_error->message);
      continue;
    }
    g_hash_table_remove (self->refused, GUINT_TO_POINTER (info->domain));
    announce (self, dom);
  }
  return TRUE;
}

static gboolean
on_reconcile (gpointer data)
{
  MtXenBackend *self = data;
  g_autoptr (GError) error = NULL;

  self->reconcile_id = 0;
  if (self->xsh != NULL && !reconcile (self, &error))
    g_warning ("%s", error->message);
  return G_SOURCE_REMOVE;
}

static void
schedule_reconcile (MtXenBackend *self)
{
  if (self->reconcile_id == 0)
    self->reconcile_id = g_idle_add (on_reconcile, self);
}

static void schedule_reconnect (MtXenBackend *self);

static void
close_connection (MtXenBackend *self)
{
  GHashTableIter iter;
  gpointer value;

  g_clear_handle_id (&self->watch_id, g_source_remove);
  g_clear_handle_id (&self->reconcile_id, g_source_remove);
  /* The watches die with the handle; the bridges stay for the links. */
  g_hash_table_iter_init (&iter, self->domains);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    ((MtXenDomain *) value)->agent_watched = FALSE;
  g_clear_pointer (&self->xsh, xs_close);
}

static void
handle_disconnect (MtXenBackend *self)
{
  g_message ("lost the connection to xenstored; reconnecting");
  close_connection (self);
  mt_backend_emit_connection (&self->parent, FALSE);
  self->backoff_s = RECONNECT_MIN_S;
  schedule_reconnect (self);
}

static gboolean
on_watch (gint fd, GIOCondition condition, gpointer data)
{
  MtXenBackend *self = data;
  char **vec;

  /* xs_check_watch until it says EAGAIN (xenstore.h). */
  while ((vec = xs_check_watch (self->xsh)) != NULL) {
    const char *path = vec[XS_WATCH_PATH], *token = vec[XS_WATCH_TOKEN];

    if (g_str_equal (token, TOKEN_INTRODUCE) || g_str_equal (token, TOKEN_RELEASE))
      schedule_reconcile (self);
    else if (!mt_xen_agent_event (self, path, token))
      g_debug ("watch event %s on %s: not ours", token, path);
    free (vec);
  }
  if (errno != EAGAIN || (condition & (G_IO_HUP | G_IO_ERR)) != 0) {
    g_debug ("xenstore watch: %s", g_strerror (errno));
    self->watch_id = 0;
    handle_disconnect (self);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
open_connection (MtXenBackend *self, GError **error)
{
  int fd;

  /* libxenctrl does not go through xenstored: kept open across its
   * reconnects, so statistics and host memory keep flowing. */
  if (self->xch == NULL)
    self->xch = xc_interface_open (mt_xen_logger (), mt_xen_logger (), 0);
  if (self->xch == NULL) {
    set_error_errno (error, G_IO_ERROR_NOT_CONNECTED,
                     "cannot open libxenctrl (/dev/xen/privcmd; dom0, as root)");
    return FALSE;
  }
  self->xsh = xs_open (0);
  if (self->xsh == NULL) {
    set_error_errno (error, G_IO_ERROR_NOT_CONNECTED, "cannot connect to xenstored");
    close_connection (self);
    return FALSE;
  }
  if (!xs_watch (self->xsh, "@introduceDomain", TOKEN_INTRODUCE)
      || !xs_watch (self->xsh, "@releaseDomain", TOKEN_RELEASE)) {
    set_error_errno (error, G_IO_ERROR_FAILED, "cannot watch xenstore for domains");
    close_connection (self);
    return FALSE;
  }
  fd = xs_fileno (self->xsh);
  if (fd < 0) {
    set_error_errno (error, G_IO_ERROR_FAILED, "no file descriptor for xenstore's watches");
    close_connection (self);
    return FALSE;
  }
  self->watch_id = g_unix_fd_add (fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_watch, self);
  return TRUE;
}

/* After a reconnect: the watches of the domains still known. */
static void
rewatch_all (MtXenBackend *self)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->domains);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    mt_xen_agent_attach (self, value);
}

static gboolean
try_reconnect (gpointer data)
{
  MtXenBackend *self = data;
  g_autoptr (GError) error = NULL;

  self->reconnect_id = 0;
  if (!open_connection (self, &error)) {
    self->backoff_s = MIN (self->backoff_s * 2, RECONNECT_MAX_S);
    g_debug ("%s; next try in %u s", error->message, self->backoff_s);
    schedule_reconnect (self);
    return G_SOURCE_REMOVE;
  }
  g_message ("reconnected to xenstored");
  mt_backend_emit_connection (&self->parent, TRUE);
  rewatch_all (self);
  if (!reconcile (self, &error)) {
    g_warning ("%s", error->message);
    close_connection (self);
    schedule_reconnect (self);
  }
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (MtXenBackend *self)
{
  g_clear_handle_id (&self->reconnect_id, g_source_remove);
  self->reconnect_id = g_timeout_add_seconds (self->backoff_s, try_reconnect, self);
}

static MtProbeResult
xen_probe (MtBackend *b, GError **error)
{
  MtXenBackend *self = (MtXenBackend *) b;

  if (!check_uri (self, error))
    return MT_PROBE_NO;
  return mt_xen_probe_roots (self->sys_root, self->proc_root, error);
}

static gboolean
xen_connect (MtBackend *b, GError **error)
{
  MtXenBackend *self = (MtXenBackend *) b;

  if (self->xsh != NULL)
    return TRUE;
  if (!check_uri (self, error))
    return FALSE;
  if (g_mkdir_with_parents (self->agent_dir, 0700) < 0)
    g_warning ("cannot create %s for the agent sockets: %s; no agent links", self->agent_dir,
               g_strerror (errno));
  if (!open_connection (self, error))
    return FALSE;
  if (!reconcile (self, error)) {
    close_connection (self);
    return FALSE;
  }
  return TRUE;
}

static MtDomainInfo *
xen_get_domain (MtBackend *b, const char *uuid, GError **error)
{
  MtXenBackend *self = (MtXenBackend *) b;
  MtXenDomain *dom = g_hash_table_lookup (self->domains, uuid);
  MtDomainInfo *info;
  guint64 static_max;

  if (dom == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no running Xen domain %s", uuid);
    return NULL;
  }
  /* A CHANGED event or a re-read: static-max again (a toolstack may
   * rewrite it), the old value kept when unreadable. */
  if (self->xsh != NULL
      && read_size (self, dom->domid, "memory/static-max", TRUE, &static_max, NULL)
      && static_max != dom->static_max) {
    g_mutex_lock (&self->lock);
    dom->static_max = static_max;
    g_mutex_unlock (&self->lock);
  }
  info = g_new0 (MtDomainInfo, 1);
  info->name = g_strdup (dom->name);
  info->uuid = g_strdup (dom->uuid);
  info->base_memory = dom->static_max;
  info->agent_socket = g_strdup (dom->agent_socket);
  info->mechanism_note = g_strdup (MT_XEN_MECHANISM_NOTE);
  if (dom->domid == 0)
    info->opt_in = g_strdup ("dom0");
  return info;
}

static gboolean
xen_collect (MtBackend *b, gint64 now, MtSampleFunc func, gpointer user_data, GError **error)
{
  MtXenBackend *self = (MtXenBackend *) b;
  guint seen = 0;
  int n;

  if (self->xch == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "not connected to Xen");
    return FALSE;
  }
  n = list_domains (self, error);
  if (n < 0)
    return FALSE;
  for (int i = 0; i < n; i++) {
    const xc_domaininfo_t *info = &self->infos[i];
    MtXenDomain *dom = known (self, info);
    MtVmSample s;

    if (dom == NULL || !eligible (info)) {
      /* A new domain, or one going away: the watch may not have fired
       * yet (or the domain was not ready when it did). */
      if (dom != NULL || eligible (info))
        schedule_reconcile (self);
      continue;
    }
    seen++;
    mt_vm_sample_init (&s, now);
    /* The domain's pages are what it holds of the host: both its size
     * and its "RSS" (the budget counts what VMs hold plus host free). */
    s.balloon_actual = mt_xen_pages_to_bytes (info->tot_pages, XC_PAGE_SIZE);
    s.rss = s.balloon_actual;
    s.vmem_plugged = 0;
    s.vmem_requested = 0;
    func (dom->uuid, &s, user_data);
  }
  if (seen != g_hash_table_size (self->domains))
    schedule_reconcile (self);
  return TRUE;
}

static gboolean
xen_read_host (MtBackend *b, gint64 now, MtHostSample *out, GError **error)
{
  MtXenBackend *self = (MtXenBackend *) b;
  xc_physinfo_t phys = { 0 };
  guint64 free_pages;

  if (self->xch == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "not connected to Xen");
    return FALSE;
  }
  if (xc_physinfo (self->xch, &phys) < 0) {
    set_error_errno (error, G_IO_ERROR_FAILED, "cannot read Xen's physinfo");
    return FALSE;
  }
  mt_host_sample_init (out, now);
  out->mem_total = mt_xen_pages_to_bytes (phys.total_pages, XC_PAGE_SIZE);
  /* Claimed pages are promised to a domain being built: not free. */
  free_pages =
    phys.free_pages > phys.outstanding_pages ? phys.free_pages - phys.outstanding_pages : 0;
  out->mem_available = mt_xen_pages_to_bytes (free_pages, XC_PAGE_SIZE);
  return TRUE;
}

static gboolean
xen_set_vmem (MtBackend *b, const char *uuid, guint64 requested, GCancellable *cancellable,
              GError **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               "Xen has no virtio-mem: its domains are resized by the balloon only");
  return FALSE;
}

static void
xen_free (MtBackend *b)
{
  MtXenBackend *self = (MtXenBackend *) b;
  GHashTableIter iter;
  gpointer value;

  g_clear_handle_id (&self->reconnect_id, g_source_remove);
  g_hash_table_iter_init (&iter, self->domains);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    mt_xen_agent_detach (self, value);
  close_connection (self);
  g_clear_pointer (&self->xch, xc_interface_close);
  mt_xen_worker_close (self);
  g_hash_table_unref (self->by_domid);
  g_hash_table_unref (self->domains);
  g_hash_table_unref (self->refused);
  g_mutex_clear (&self->lock);
  g_mutex_clear (&self->worker_lock);
  g_free (self->infos);
  g_free (self->uri);
  g_free (self->sys_root);
  g_free (self->proc_root);
  g_free (self->agent_dir);
  g_free (self);
}

static const MtBackendOps xen_ops = {
  .name = "xen",
  .probe = xen_probe,
  .connect = xen_connect,
  .get_domain = xen_get_domain,
  .collect = xen_collect,
  .read_host = xen_read_host,
  .set_balloon = mt_xen_set_balloon,
  .set_vmem = xen_set_vmem,
  .free = xen_free,
};

/* MEMTIDE_XEN_AGENT_DIR, else systemd's RuntimeDirectory (the first of
 * its colon-separated list), else the default. */
static char *
agent_dir (void)
{
  const char *env = g_getenv (MT_XEN_AGENT_DIR_ENV);
  const char *runtime = g_getenv ("RUNTIME_DIRECTORY");

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  if (runtime != NULL && *runtime != '\0') {
    g_auto (GStrv) dirs = g_strsplit (runtime, ":", 2);
    return g_build_filename (dirs[0], "xen-agent", NULL);
  }
  return g_strdup (MT_XEN_AGENT_DIR_DEFAULT);
}

MtBackend *
mt_backend_xen_new (const char *uri)
{
  MtXenBackend *self = g_new0 (MtXenBackend, 1);

  self->parent.ops = &xen_ops;
  self->uri = g_strdup (uri);
  self->sys_root = g_strdup ("/sys");
  self->proc_root = g_strdup ("/proc");
  self->agent_dir = agent_dir ();
  self->backoff_s = RECONNECT_MIN_S;
  g_mutex_init (&self->lock);
  g_mutex_init (&self->worker_lock);
  /* Keys live in the values. */
  self->domains =
    g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) domain_free);
  self->by_domid = g_hash_table_new (NULL, NULL);
  self->refused = g_hash_table_new (NULL, NULL);
  return &self->parent;
}

const MtDriver mt_driver_xen = {
  .name = "xen",
  .automatic = TRUE,
  .default_uri = MT_XEN_URI,
  .create = mt_backend_xen_new,
};
