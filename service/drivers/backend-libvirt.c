/* backend-libvirt.c: the libvirt driver: connection, events, reconnect,
 * batched statistics and the two resize calls.  Domain XML is read and
 * written in backend-libvirt-xml.c.
 *
 * The driver keeps one cache entry (MtDomainSizes: sizes and the
 * virtio-mem alias, not the whole MtDomainInfo the daemon keeps) per
 * running domain it has announced: collect() needs each domain's
 * virtio-mem sizes and boot memory every tick, and must not ask libvirt
 * per domain for them.  The cache is filled from the live XML on ADDED
 * and by get_domain(), and the plugged virtio-mem size is kept current by
 * libvirt's memory-device-size-change event.
 *
 * set_balloon() and set_vmem() run in the daemon's resize workers
 * (backend.h); everything else on the main thread.  A virConnect is
 * thread-safe; what the resize calls share with the rest is the
 * connection pointer (they take their own reference, so a disconnect on
 * the main thread never closes it under them) and the cache: the main
 * thread changes the tables, and a worker changes vmem_requested, only
 * under the lock, and collect() reads under it.
 */
#define G_LOG_DOMAIN "memtide-libvirt"

#include <gio/gio.h>
#include <libvirt/virterror.h>
#include <libvirt-glib/libvirt-glib.h>

#include "backend-libvirt.h"
#include "drivers.h"

#define RECONNECT_MIN_S 1
#define RECONNECT_MAX_S 30
#define STATS_PERIOD_S  2
#define KEEPALIVE_S     5
#define KEEPALIVE_COUNT 3

G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)

typedef virDomainStatsRecordPtr *MtStatsRecords;
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (MtStatsRecords, virDomainStatsRecordListFree, NULL)

/* virConnectListAllDomains' NULL-terminated array. */
typedef virDomainPtr *MtDomainList;
static void
domain_list_free (virDomainPtr *doms)
{
  for (virDomainPtr *d = doms; *d != NULL; d++)
    virDomainFree (*d);
  free (doms);
}
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (MtDomainList, domain_list_free, NULL)

/* libvirt's typed callbacks all go through one generic pointer type; the
 * detour through void (*)(void) keeps -Wcast-function-type quiet. */
#define EVENT_CB(cb) ((virConnectDomainEventGenericCallback) (void (*) (void)) (cb))

enum { EV_LIFECYCLE, EV_VMEM_SIZE, EV_METADATA, EV_DEVICE_ADDED, EV_DEVICE_REMOVED, N_EVENTS };

typedef struct {
  MtBackend parent;        /* first: an MtBackend * is one of these */
  char *uri;               /* NULL: libvirt's default URI */
  GMutex lock;             /* conn and the cache, against the resize workers */
  virConnectPtr conn;      /* NULL while disconnected; written under the lock */
  int event_ids[N_EVENTS]; /* -1 = not registered */
  gboolean close_cb_registered;
  guint disconnect_id; /* idle that handles a lost connection */
  guint reconnect_id;  /* timeout of the next reconnect attempt */
  guint backoff_s;
  GHashTable *domains;       /* uuid -> MtDomainSizes *, announced running domains;
                                changed under the lock */
  GHashTable *by_name;       /* name -> the same MtDomainSizes * */
  gboolean per_domain_stats; /* MT_LIBVIRT_PER_DOMAIN_STATS_ENV is set */
} MtLibvirtBackend;

/* What the driver needs of an announced domain between XML reads. */
typedef struct {
  char uuid[VIR_UUID_STRING_BUFLEN]; /* the key in domains */
  char *name;                        /* the key in by_name */
  guint64 base_memory;
  guint64 vmem_size;
  guint64 vmem_requested;
  guint64 vmem_plugged;
  char *vmem_alias; /* NULL = no virtio-mem device */
} MtDomainSizes;

static void schedule_disconnect (MtLibvirtBackend *self);

static const char *
uri_name (MtLibvirtBackend *self)
{
  return self->uri != NULL ? self->uri : "(default URI)";
}

static void
on_libvirt_error (void *user_data, virErrorPtr err)
{
  /* libvirt prints every error on stderr by default, including the ones
   * we expect (no metadata, unsupported keepalive); those that matter
   * reach the caller as a GError. */
  g_debug ("libvirt: %s", err->message);
}

static void
libvirt_init_once (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    /* Events, keepalive and the close callback only work with an event
       * loop registered before the first virConnectOpen; libvirt-glib's
       * dispatches from the GLib default main context. */
    gvir_event_register ();
    virSetErrorFunc (NULL, on_libvirt_error);
    g_once_init_leave (&done, 1);
  }
}

static int
io_error_code (int libvirt_code)
{
  switch (libvirt_code) {
  case VIR_ERR_NO_DOMAIN:
    return G_IO_ERROR_NOT_FOUND;
  case VIR_ERR_INVALID_ARG:
    return G_IO_ERROR_INVALID_ARGUMENT;
  case VIR_ERR_NO_SUPPORT:
  case VIR_ERR_ARGUMENT_UNSUPPORTED:
  case VIR_ERR_CONFIG_UNSUPPORTED:
    return G_IO_ERROR_NOT_SUPPORTED;
  default:
    return G_IO_ERROR_FAILED;
  }
}

/* "<what>: <libvirt's last error>".  Every libvirt call, even
 * virDomainGetName, resets the last error: compute the arguments first. */
static void set_error_from_libvirt (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
set_error_from_libvirt (GError **error, const char *format, ...)
{
  virErrorPtr err = virGetLastError ();
  g_autofree char *what = NULL;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, G_IO_ERROR, err != NULL ? io_error_code (err->code) : G_IO_ERROR_FAILED,
               "%s: %s", what,
               err != NULL && err->message != NULL ? err->message : "unknown libvirt error");
}

static MtDomainSizes *
domain_sizes_new (const MtDomainInfo *info)
{
  MtDomainSizes *sz = g_new (MtDomainSizes, 1);

  *sz = (MtDomainSizes){
    .name = g_strdup (info->name),
    .base_memory = info->base_memory,
    .vmem_size = info->vmem_size,
    .vmem_requested = info->vmem_requested,
    .vmem_plugged = info->vmem_plugged,
    .vmem_alias = g_strdup (info->vmem_alias),
  };
  return sz;
}

static void
domain_sizes_free (MtDomainSizes *sz)
{
  g_free (sz->name);
  g_free (sz->vmem_alias);
  g_free (sz);
}

/* The lock must be held. */
static void
cache_remove_locked (MtLibvirtBackend *self, const char *uuid)
{
  MtDomainSizes *sz = g_hash_table_lookup (self->domains, uuid);

  if (sz == NULL)
    return;
  if (g_hash_table_lookup (self->by_name, sz->name) == sz)
    g_hash_table_remove (self->by_name, sz->name);
  g_hash_table_remove (self->domains, sz->uuid);
}

static void
cache_remove (MtLibvirtBackend *self, const char *uuid)
{
  g_mutex_lock (&self->lock);
  cache_remove_locked (self, uuid);
  g_mutex_unlock (&self->lock);
}

static void
cache_put (MtLibvirtBackend *self, const MtDomainInfo *info)
{
  MtDomainSizes *sz = domain_sizes_new (info);

  g_strlcpy (sz->uuid, info->uuid, sizeof sz->uuid);
  g_mutex_lock (&self->lock);
  cache_remove_locked (self, sz->uuid);
  g_hash_table_insert (self->domains, sz->uuid, sz);
  g_hash_table_replace (self->by_name, sz->name, sz);
  g_mutex_unlock (&self->lock);
}

static gboolean
require_connection (MtLibvirtBackend *self, GError **error)
{
  if (self->conn != NULL)
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "not connected to libvirt at %s%s",
               uri_name (self), self->reconnect_id != 0 ? " (reconnecting)" : "");
  return FALSE;
}

static virDomainPtr
lookup_domain (MtLibvirtBackend *self, const char *uuid, GError **error)
{
  virDomainPtr dom;

  if (!require_connection (self, error))
    return NULL;
  dom = virDomainLookupByUUIDString (self->conn, uuid);
  if (dom == NULL)
    set_error_from_libvirt (error, "cannot find domain %s", uuid);
  return dom;
}

/* The canonical string form, as virDomainGetUUIDString writes it
 * without its second trip through g_snprintf (see lv_collect). */
static gboolean
domain_uuid (virDomainPtr dom, char uuid[VIR_UUID_STRING_BUFLEN])
{
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[VIR_UUID_BUFLEN];
  char *p = uuid;

  if (virDomainGetUUID (dom, raw) < 0)
    return FALSE;
  for (int i = 0; i < VIR_UUID_BUFLEN; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    *p++ = hex[raw[i] >> 4];
    *p++ = hex[raw[i] & 0xf];
  }
  *p = '\0';
  return TRUE;
}

/* What the live XML of @dom says. */
static MtDomainInfo *
read_domain_xml (virDomainPtr dom, GError **error)
{
  const char *name = virDomainGetName (dom);
  g_autofree char *xml = virDomainGetXMLDesc (dom, 0);
  MtDomainInfo *info;

  if (xml == NULL) {
    set_error_from_libvirt (error, "cannot read the XML of domain '%s'", name);
    return NULL;
  }
  info = mt_libvirt_parse_domain_xml (xml, error);
  if (info == NULL)
    g_prefix_error (error, "domain '%s': ", name);
  return info;
}

/* Live XML and policy metadata of @dom.  The metadata is parsed here,
 * so that the daemon gets policy settings, not libvirt XML; bad metadata
 * does not fail the read: the domain is managed with the file policy and
 * the daemon reports why. */
static MtDomainInfo *
fetch_domain_info (virDomainPtr dom, GError **error)
{
  g_autoptr (MtDomainInfo) info = read_domain_xml (dom, error);
  g_autoptr (GError) meta_error = NULL;
  g_autofree char *metadata = NULL;

  if (info == NULL)
    return NULL;
  metadata = virDomainGetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, MT_METADATA_NAMESPACE,
                                   VIR_DOMAIN_AFFECT_LIVE);
  if (metadata == NULL) {
    virErrorPtr err = virGetLastError ();

    if (err == NULL || err->code != VIR_ERR_NO_DOMAIN_METADATA) {
      set_error_from_libvirt (error, "cannot read the memtide metadata of domain '%s'", info->name);
      return NULL;
    }
    return g_steal_pointer (&info);
  }
  info->overrides = mt_vm_overrides_from_metadata (info->name, metadata, &meta_error);
  if (info->overrides == NULL)
    info->overrides_error = g_strdup (meta_error->message);
  return g_steal_pointer (&info);
}

/* Keep the cache of an announced domain as fresh as what we just read. */
static void
refresh_cache (MtLibvirtBackend *self, const MtDomainInfo *info)
{
  if (g_hash_table_contains (self->domains, info->uuid))
    cache_put (self, info);
}

static void
announce_domain (MtLibvirtBackend *self, virDomainPtr dom)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MtDomainInfo) info = fetch_domain_info (dom, &error);
  g_autofree char *uuid = NULL;

  if (info == NULL) {
    /* Stopped again before we could read it: nothing to manage. */
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
      g_debug ("%s", error->message);
    else
      g_warning ("not managing domain '%s': %s", virDomainGetName (dom), error->message);
    return;
  }

  /* The balloon driver only reports guest statistics when asked to poll. */
  if (virDomainSetMemoryStatsPeriod (dom, STATS_PERIOD_S, VIR_DOMAIN_AFFECT_LIVE) < 0)
    g_debug ("domain '%s': cannot enable balloon statistics: %s", info->name,
             virGetLastErrorMessage ());

  uuid = g_strdup (info->uuid);
  cache_put (self, info);
  g_clear_pointer (&info, mt_domain_info_free);
  mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_ADDED, uuid);
}

static void
forget_domain (MtLibvirtBackend *self, const char *uuid)
{
  g_autofree char *owned = g_strdup (uuid); /* may be the hash key itself */

  if (g_hash_table_contains (self->domains, owned)) {
    cache_remove (self, owned);
    mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_REMOVED, owned);
  }
}

/* Announce every running domain; forget those we knew that are gone
 * (they stopped while we were disconnected). */
static gboolean
announce_all (MtLibvirtBackend *self, GError **error)
{
  g_auto (MtDomainList) doms = NULL;
  g_autoptr (GHashTable) running = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GPtrArray) gone = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer key;
  int n;

  n = virConnectListAllDomains (self->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) {
    set_error_from_libvirt (error, "cannot list the domains of %s", uri_name (self));
    return FALSE;
  }
  for (int i = 0; i < n; i++) {
    char uuid[VIR_UUID_STRING_BUFLEN];

    if (domain_uuid (doms[i], uuid))
      g_hash_table_add (running, g_strdup (uuid));
  }

  g_hash_table_iter_init (&iter, self->domains);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!g_hash_table_contains (running, key))
      g_ptr_array_add (gone, g_strdup (key));
  for (guint i = 0; i < gone->len; i++)
    forget_domain (self, g_ptr_array_index (gone, i));

  for (int i = 0; i < n; i++)
    announce_domain (self, doms[i]);
  return TRUE;
}

static int
on_lifecycle (virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
  MtLibvirtBackend *self = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];

  if (!domain_uuid (dom, uuid))
    return 0;
  g_debug ("domain '%s': lifecycle event %d, detail %d", virDomainGetName (dom), event, detail);

  switch (event) {
  case VIR_DOMAIN_EVENT_STARTED:
  case VIR_DOMAIN_EVENT_RESUMED:
    /* QEMU domains start paused, so a start brings RESUMED then
       * STARTED; a paused domain stays announced.  Announce once. */
    if (!g_hash_table_contains (self->domains, uuid))
      announce_domain (self, dom);
    break;
  case VIR_DOMAIN_EVENT_STOPPED:
  case VIR_DOMAIN_EVENT_SHUTDOWN:
  case VIR_DOMAIN_EVENT_CRASHED:
  case VIR_DOMAIN_EVENT_UNDEFINED:
    forget_domain (self, uuid);
    break;
  default:
    break;
  }
  return 0;
}

static void
on_vmem_size (virConnectPtr conn, virDomainPtr dom, const char *alias, unsigned long long size_kib,
              void *opaque)
{
  MtLibvirtBackend *self = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];
  MtDomainSizes *sz;

  if (!domain_uuid (dom, uuid) || (sz = g_hash_table_lookup (self->domains, uuid)) == NULL)
    return;
  if (g_strcmp0 (alias, sz->vmem_alias) != 0) {
    g_debug ("domain '%s': size change of memory device '%s' that memtide does not drive",
             virDomainGetName (dom), alias);
    return;
  }
  sz->vmem_plugged = size_kib * MT_KIB;
  g_debug ("domain '%s': virtio-mem plugged %llu KiB", virDomainGetName (dom), size_kib);
}

static void
on_metadata (virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque)
{
  MtLibvirtBackend *self = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];

  if (type == VIR_DOMAIN_METADATA_ELEMENT && g_strcmp0 (nsuri, MT_METADATA_NAMESPACE) == 0
      && domain_uuid (dom, uuid) && g_hash_table_contains (self->domains, uuid))
    mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_CHANGED, uuid);
}

/* A hot(un)plugged device may be the agent channel or a memory device. */
static void
on_device (virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
  MtLibvirtBackend *self = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];

  if (domain_uuid (dom, uuid) && g_hash_table_contains (self->domains, uuid))
    mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_CHANGED, uuid);
}

static void
on_close (virConnectPtr conn, int reason, void *opaque)
{
  g_debug ("libvirt connection closed (reason %d)", reason);
  schedule_disconnect (opaque);
}

static void
close_connection (MtLibvirtBackend *self)
{
  virConnectPtr conn;

  g_mutex_lock (&self->lock);
  conn = g_steal_pointer (&self->conn);
  g_mutex_unlock (&self->lock);
  if (conn == NULL)
    return;
  /* Deregistering fails on a dead connection; libvirt drops the local
   * callbacks anyway, which is all we need. */
  for (int i = 0; i < N_EVENTS; i++)
    if (self->event_ids[i] >= 0) {
      virConnectDomainEventDeregisterAny (conn, self->event_ids[i]);
      self->event_ids[i] = -1;
    }
  if (self->close_cb_registered)
    virConnectUnregisterCloseCallback (conn, on_close);
  self->close_cb_registered = FALSE;
  /* A resize call running now holds its own reference. */
  virConnectClose (conn);
}

static gboolean
open_connection (MtLibvirtBackend *self, GError **error)
{
  static const struct {
    int id;
    virConnectDomainEventGenericCallback cb;
    gboolean required;
  } events[N_EVENTS] = {
    [EV_LIFECYCLE] = { VIR_DOMAIN_EVENT_ID_LIFECYCLE, EVENT_CB (on_lifecycle), TRUE },
    [EV_VMEM_SIZE] = { VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE, EVENT_CB (on_vmem_size),
                       FALSE },
    [EV_METADATA] = { VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, EVENT_CB (on_metadata), FALSE },
    [EV_DEVICE_ADDED] = { VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, EVENT_CB (on_device), FALSE },
    [EV_DEVICE_REMOVED] = { VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, EVENT_CB (on_device), FALSE },
  };

  virConnectPtr conn;

  libvirt_init_once ();
  conn = virConnectOpen (self->uri);
  if (conn == NULL) {
    set_error_from_libvirt (error, "cannot connect to libvirt at %s", uri_name (self));
    return FALSE;
  }
  g_mutex_lock (&self->lock);
  self->conn = conn;
  g_mutex_unlock (&self->lock);

  /* Notices a hung daemon, not only a closed socket; drivers without a
   * daemon (test:///) do not support it. */
  if (virConnectSetKeepAlive (self->conn, KEEPALIVE_S, KEEPALIVE_COUNT) < 0)
    g_debug ("no keepalive on %s: %s", uri_name (self), virGetLastErrorMessage ());
  self->close_cb_registered =
    virConnectRegisterCloseCallback (self->conn, on_close, self, NULL) == 0;

  for (int i = 0; i < N_EVENTS; i++) {
    self->event_ids[i] =
      virConnectDomainEventRegisterAny (self->conn, NULL, events[i].id, events[i].cb, self, NULL);
    if (self->event_ids[i] >= 0)
      continue;
    if (events[i].required) {
      set_error_from_libvirt (error, "cannot subscribe to domain events of %s", uri_name (self));
      close_connection (self);
      return FALSE;
    }
    /* Older daemons: we lose only the early notice of that change. */
    g_debug ("no domain event %d from %s: %s", events[i].id, uri_name (self),
             virGetLastErrorMessage ());
  }
  return TRUE;
}

static void schedule_reconnect (MtLibvirtBackend *self);

static gboolean
try_reconnect (gpointer data)
{
  MtLibvirtBackend *self = data;
  g_autoptr (GError) error = NULL;

  self->reconnect_id = 0;
  if (!open_connection (self, &error)) {
    self->backoff_s = MIN (self->backoff_s * 2, RECONNECT_MAX_S);
    g_debug ("%s; next try in %u s", error->message, self->backoff_s);
    schedule_reconnect (self);
    return G_SOURCE_REMOVE;
  }
  g_message ("reconnected to libvirt at %s", uri_name (self));
  mt_backend_emit_connection (&self->parent, TRUE);
  if (!announce_all (self, &error)) {
    g_warning ("%s", error->message);
    schedule_disconnect (self);
  }
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (MtLibvirtBackend *self)
{
  g_clear_handle_id (&self->reconnect_id, g_source_remove);
  self->reconnect_id = g_timeout_add_seconds (self->backoff_s, try_reconnect, self);
}

static gboolean
handle_disconnect (gpointer data)
{
  MtLibvirtBackend *self = data;

  self->disconnect_id = 0;
  if (self->conn == NULL)
    return G_SOURCE_REMOVE;
  g_message ("lost the connection to libvirt at %s; reconnecting", uri_name (self));
  close_connection (self);
  mt_backend_emit_connection (&self->parent, FALSE);
  self->backoff_s = RECONNECT_MIN_S;
  schedule_reconnect (self);
  return G_SOURCE_REMOVE;
}

/* libvirt may report a dead connection from inside one of its own calls:
 * tear it down from the main loop, where none is on the stack. */
static void
schedule_disconnect (MtLibvirtBackend *self)
{
  if (self->disconnect_id == 0)
    self->disconnect_id = g_idle_add (handle_disconnect, self);
}

static MtProbeResult
lv_probe (MtBackend *b, GError **error)
{
  MtLibvirtBackend *self = (MtLibvirtBackend *) b;
  virConnectPtr conn;
  virErrorPtr err;
  gboolean retry;

  if (self->conn != NULL)
    return MT_PROBE_YES;
  libvirt_init_once ();
  conn = virConnectOpen (self->uri);
  if (conn != NULL) {
    virConnectClose (conn);
    return MT_PROBE_YES;
  }
  /* A missing or refusing daemon socket may come up later; a URI no
   * driver takes will not. */
  err = virGetLastError ();
  retry = err != NULL && err->code == VIR_ERR_SYSTEM_ERROR;
  set_error_from_libvirt (error, "cannot connect to libvirt at %s", uri_name (self));
  return retry ? MT_PROBE_LATER : MT_PROBE_NO;
}

static gboolean
lv_connect (MtBackend *b, GError **error)
{
  MtLibvirtBackend *self = (MtLibvirtBackend *) b;

  if (self->conn != NULL)
    return TRUE;
  if (!open_connection (self, error))
    return FALSE;
  g_clear_handle_id (&self->reconnect_id, g_source_remove);
  if (!announce_all (self, error)) {
    close_connection (self);
    return FALSE;
  }
  return TRUE;
}

static MtDomainInfo *
lv_get_domain (MtBackend *b, const char *uuid, GError **error)
{
  MtLibvirtBackend *self = (MtLibvirtBackend *) b;
  g_autoptr (virDomain) dom = lookup_domain (self, uuid, error);
  MtDomainInfo *info;

  if (dom == NULL)
    return NULL;
  info = fetch_domain_info (dom, error);
  if (info != NULL)
    refresh_cache (self, info);
  return info;
}

/* libvirt reports sizes in KiB; MT_UNKNOWN stays reserved. */
static guint64
param_kib (virTypedParameterPtr params, int nparams, const char *name)
{
  unsigned long long v;

  if (virTypedParamsGetULLong (params, nparams, name, &v) != 1 || v > (MT_UNKNOWN - 1) / MT_KIB)
    return MT_UNKNOWN;
  return v * MT_KIB;
}

static guint64
param_count (virTypedParameterPtr params, int nparams, const char *name)
{
  unsigned long long v;

  if (virTypedParamsGetULLong (params, nparams, name, &v) != 1 || v == MT_UNKNOWN)
    return MT_UNKNOWN;
  return v;
}

void
mt_libvirt_sample_from_stats (MtVmSample *s, virTypedParameterPtr params, int nparams,
                              const MtDomainInfo *info)
{
  guint64 current = param_kib (params, nparams, "balloon.current");

  /* virtio-balloon's names: "available" is the guest's MemTotal,
   * "usable" its MemAvailable, "unused" its MemFree. */
  s->guest_total = param_kib (params, nparams, "balloon.available");
  s->guest_available = param_kib (params, nparams, "balloon.usable");
  s->guest_free = param_kib (params, nparams, "balloon.unused");
  s->guest_cache = param_kib (params, nparams, "balloon.disk_caches");
  s->swap_in = param_kib (params, nparams, "balloon.swap_in");
  s->swap_out = param_kib (params, nparams, "balloon.swap_out");
  s->major_faults = param_count (params, nparams, "balloon.major_fault");
  s->rss = param_kib (params, nparams, "balloon.rss");

  if (info == NULL)
    return;
  s->vmem_plugged = info->vmem_plugged;
  s->vmem_requested = info->vmem_requested;

  /* balloon.current is libvirt's <currentMemory>: boot memory left by the
   * balloon plus plugged virtio-mem memory.  A result outside the boot
   * memory means a virtio-mem size change whose event has not reached us
   * yet: unknown for this tick rather than wrong. */
  if (current != MT_UNKNOWN && info->vmem_plugged != MT_UNKNOWN && current >= info->vmem_plugged
      && current - info->vmem_plugged <= info->base_memory)
    s->balloon_actual = current - info->vmem_plugged;
}

/* Balloon statistics of one domain by virDomainMemoryStats, as the
 * batched call's balloon group would name them, for drivers whose batched
 * call has no balloon group (libvirt 9.0's test driver: state only).
 * Returns the number of parameters filled. */
static int
memory_stats_params (virDomainPtr dom, virTypedParameter params[VIR_DOMAIN_MEMORY_STAT_NR])
{
  static const char *const names[VIR_DOMAIN_MEMORY_STAT_NR] = {
    [VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON] = "balloon.current",
    [VIR_DOMAIN_MEMORY_STAT_AVAILABLE] = "balloon.available",
    [VIR_DOMAIN_MEMORY_STAT_USABLE] = "balloon.usable",
    [VIR_DOMAIN_MEMORY_STAT_UNUSED] = "balloon.unused",
    [VIR_DOMAIN_MEMORY_STAT_DISK_CACHES] = "balloon.disk_caches",
    [VIR_DOMAIN_MEMORY_STAT_SWAP_IN] = "balloon.swap_in",
    [VIR_DOMAIN_MEMORY_STAT_SWAP_OUT] = "balloon.swap_out",
    [VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT] = "balloon.major_fault",
    [VIR_DOMAIN_MEMORY_STAT_RSS] = "balloon.rss",
  };
  virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
  int n = virDomainMemoryStats (dom, stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
  int np = 0;

  for (int i = 0; i < n; i++) {
    if (stats[i].tag < 0 || stats[i].tag >= VIR_DOMAIN_MEMORY_STAT_NR
        || names[stats[i].tag] == NULL)
      continue;
    g_strlcpy (params[np].field, names[stats[i].tag], sizeof params[np].field);
    params[np].type = VIR_TYPED_PARAM_ULLONG;
    params[np].value.ul = stats[i].val;
    np++;
  }
  return np;
}

static gboolean
lv_collect (MtBackend *b, gint64 now, MtSampleFunc func, gpointer user_data, GError **error)
{
  MtLibvirtBackend *self = (MtLibvirtBackend *) b;
  g_auto (MtStatsRecords) records = NULL;
  int n;

  if (!require_connection (self, error))
    return FALSE;
  /* NOWAIT: a domain whose job lock is held (migration, a hung QEMU
   * monitor) reports what libvirt has at hand instead of stalling the tick. */
  n = virConnectGetAllDomainStats (self->conn, VIR_DOMAIN_STATS_BALLOON, &records,
                                   VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
                                     | VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
  if (n < 0) {
    set_error_from_libvirt (error, "cannot read domain statistics from %s", uri_name (self));
    /* Drivers without a close callback tell us only this way. */
    if (virConnectIsAlive (self->conn) == 0)
      schedule_disconnect (self);
    return FALSE;
  }

  /* One lock for all records: a resize call waits at most this loop to
   * read or update its domain's sizes.  @func must not call the driver. */
  g_mutex_lock (&self->lock);
  for (int i = 0; i < n; i++) {
    char uuid_buf[VIR_UUID_STRING_BUFLEN];
    const char *uuid, *name;
    virTypedParameterPtr params = records[i]->params;
    int nparams = records[i]->nparams;
    virTypedParameter fallback[VIR_DOMAIN_MEMORY_STAT_NR];
    const MtDomainSizes *sz;
    MtDomainInfo info;
    MtVmSample s;

    /* By name: any libvirt call that names a domain by UUID formats the
       * UUID for its debug log first (~16,000 instructions, whether it
       * logs or not), and virDomainGetName does not.  Running domains'
       * names are unique and fixed; one that libvirt has and we were not
       * told of yet is asked its UUID. */
    name = virDomainGetName (records[i]->dom);
    sz = name != NULL ? g_hash_table_lookup (self->by_name, name) : NULL;
    if (sz != NULL)
      uuid = sz->uuid;
    else if (domain_uuid (records[i]->dom, uuid_buf))
      uuid = uuid_buf;
    else
      continue;
    /* Opt-in only: this waits for the domain's job lock (no NOWAIT),
       * one call per domain per tick. */
    if (self->per_domain_stats && virTypedParamsGet (params, nparams, "balloon.current") == NULL) {
      params = fallback;
      nparams = memory_stats_params (records[i]->dom, fallback);
    }
    mt_vm_sample_init (&s, now);
    if (sz != NULL)
      info = (MtDomainInfo){
        .base_memory = sz->base_memory,
        .vmem_requested = sz->vmem_requested,
        .vmem_plugged = sz->vmem_plugged,
      };
    mt_libvirt_sample_from_stats (&s, params, nparams, sz != NULL ? &info : NULL);
    func (uuid, &s, user_data);
  }
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/* In a resize worker: @dom by UUID on a reference of its own to the
 * connection, and the cached sizes (FALSE in *cached when the domain is
 * not announced yet). */
static virDomainPtr
worker_lookup (MtLibvirtBackend *self, const char *uuid, MtDomainSizes *sizes, gboolean *cached,
               GError **error)
{
  virConnectPtr conn;
  const MtDomainSizes *sz;
  gboolean reconnecting;
  virDomainPtr dom;

  g_mutex_lock (&self->lock);
  conn = self->conn;
  if (conn != NULL)
    virConnectRef (conn);
  sz = g_hash_table_lookup (self->domains, uuid);
  *cached = sz != NULL;
  if (sz != NULL)
    *sizes = (MtDomainSizes){
      .base_memory = sz->base_memory,
      .vmem_size = sz->vmem_size,
    };
  reconnecting = self->reconnect_id != 0;
  g_mutex_unlock (&self->lock);

  if (conn == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "not connected to libvirt at %s%s",
                 uri_name (self), reconnecting ? " (reconnecting)" : "");
    return NULL;
  }
  dom = virDomainLookupByUUIDString (conn, uuid);
  if (dom == NULL)
    set_error_from_libvirt (error, "cannot find domain %s", uuid);
  /* The domain keeps its connection alive as long as it needs it. */
  virConnectClose (conn);
  return dom;
}

static gboolean
lv_set_balloon (MtBackend *b, const char *uuid, guint64 bytes, GCancellable *cancellable,
                GError **error)
{
  MtLibvirtBackend *self = (MtLibvirtBackend *) b;
  MtDomainSizes sizes = { 0 };
  gboolean cached;
  g_autoptr (virDomain) dom = worker_lookup (self, uuid, &sizes, &cached, error);
  g_autofree char *size = mt_libvirt_format_size (bytes);
  const char *name;

  if (dom == NULL)
    return FALSE;
  name = virDomainGetName (dom);
  if (!cached) {
    g_autoptr (MtDomainInfo) fetched = read_domain_xml (dom, error);

    if (fetched == NULL)
      return FALSE;
    sizes.base_memory = fetched->base_memory;
    sizes.vmem_size = fetched->vmem_size;
  }

  /* libvirt checks this too, with a less helpful message; and above boot
   * memory the balloon cannot go (virtio-mem memory is not balloon memory). */
  if (bytes > sizes.base_memory) {
    g_autofree char *base = mt_libvirt_format_size (sizes.base_memory);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "refusing to set balloon of domain '%s' to %s: above its boot memory of %s%s",
                 name, size, base,
                 sizes.vmem_size != 0 ? " (virtio-mem memory cannot be ballooned)" : "");
    return FALSE;
  }
  if (virDomainSetMemoryFlags (dom, bytes / MT_KIB, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_error_from_libvirt (error, "libvirt refused to set balloon of domain '%s' to %s", name,
                            size);
    return FALSE;
  }
  return TRUE;
}

static gboolean
lv_set_vmem (MtBackend *b, const char *uuid, guint64 requested, GCancellable *cancellable,
             GError **error)
{
  MtLibvirtBackend *self = (MtLibvirtBackend *) b;
  MtDomainSizes sizes = { 0 };
  gboolean cached;
  g_autoptr (virDomain) dom = worker_lookup (self, uuid, &sizes, &cached, error);
  g_autofree char *size = mt_libvirt_format_size (requested);
  g_autofree char *xml = NULL;
  g_autofree char *device_xml = NULL;
  const char *name;
  MtDomainSizes *sz;

  if (dom == NULL)
    return FALSE;
  name = virDomainGetName (dom);
  /* The live XML, not the cache: libvirt wants the device exactly as it is. */
  xml = virDomainGetXMLDesc (dom, 0);
  if (xml == NULL) {
    set_error_from_libvirt (error, "cannot read the XML of domain '%s'", name);
    return FALSE;
  }
  device_xml = mt_libvirt_vmem_update_xml (xml, requested, error);
  if (device_xml == NULL) {
    g_prefix_error (error, "refusing to set virtio-mem of domain '%s' to %s: ", name, size);
    return FALSE;
  }
  if (virDomainUpdateDeviceFlags (dom, device_xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_error_from_libvirt (error, "libvirt refused to set virtio-mem of domain '%s' to %s", name,
                            size);
    return FALSE;
  }
  g_mutex_lock (&self->lock);
  sz = g_hash_table_lookup (self->domains, uuid);
  if (sz != NULL)
    sz->vmem_requested = requested;
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static void
lv_free (MtBackend *b)
{
  MtLibvirtBackend *self = (MtLibvirtBackend *) b;

  g_clear_handle_id (&self->disconnect_id, g_source_remove);
  g_clear_handle_id (&self->reconnect_id, g_source_remove);
  close_connection (self);
  g_hash_table_unref (self->by_name);
  g_hash_table_unref (self->domains);
  g_mutex_clear (&self->lock);
  g_free (self->uri);
  g_free (self);
}

static const MtBackendOps libvirt_ops = {
  .name = "libvirt",
  .probe = lv_probe,
  .connect = lv_connect,
  .get_domain = lv_get_domain,
  .collect = lv_collect,
  .set_balloon = lv_set_balloon,
  .set_vmem = lv_set_vmem,
  .free = lv_free,
};

MtBackend *
mt_backend_libvirt_new (const char *uri)
{
  MtLibvirtBackend *self = g_new0 (MtLibvirtBackend, 1);

  self->parent.ops = &libvirt_ops;
  self->uri = g_strdup (uri);
  g_mutex_init (&self->lock);
  for (int i = 0; i < N_EVENTS; i++)
    self->event_ids[i] = -1;
  /* Keys live in the values. */
  self->domains =
    g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) domain_sizes_free);
  self->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  self->per_domain_stats = g_strcmp0 (g_getenv (MT_LIBVIRT_PER_DOMAIN_STATS_ENV), "1") == 0;
  if (self->per_domain_stats)
    g_message ("%s=1: domains without balloon statistics in the batched call are asked "
               "one by one (virDomainMemoryStats, once per domain per tick)",
               MT_LIBVIRT_PER_DOMAIN_STATS_ENV);
  return &self->parent;
}

const MtDriver mt_driver_libvirt = {
  .name = "libvirt",
  .automatic = TRUE,
  .default_uri = "qemu:///system",
  .create = mt_backend_libvirt_new,
};
