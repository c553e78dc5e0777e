/* backend-fake.c: the fake driver's domains and its ops.  A domain's
 * balloon and plugged virtio-mem sizes move toward what the last resize
 * call asked at the domain's scripted speed, computed from the clock when
 * read (nothing ticks).  Resize calls run in the daemon's worker threads
 * and may wait out a scripted block; everything they touch is under the
 * lock.  The script itself is backend-fake-control.c.
 */
#define G_LOG_DOMAIN "memtide-fake"

#include "backend-fake-private.h"
#include "drivers.h"

guint64
mt_fake_motion_at (const MtFakeMotion *m, guint64 speed, gint64 now)
{
  double moved;

  if (speed == 0 || m->from == m->to || now <= m->since)
    return speed == 0 || m->from == m->to ? m->to : m->from;
  moved = (double) speed * (double) (now - m->since) / G_USEC_PER_SEC;
  if (m->to > m->from)
    return moved >= (double) (m->to - m->from) ? m->to : m->from + (guint64) moved;
  return moved >= (double) (m->from - m->to) ? m->to : m->from - (guint64) moved;
}

void
mt_fake_motion_retarget (MtFakeMotion *m, guint64 speed, gint64 now, guint64 to)
{
  m->from = mt_fake_motion_at (m, speed, now);
  m->since = now;
  m->to = to;
}

void
mt_fake_domain_free (MtFakeDomain *d)
{
  g_free (d->name);
  g_free (d->agent_socket);
  g_free (d->opt_in);
  g_free (d->fail);
  g_free (d->last_call);
  g_free (d);
}

MtFakeDomain *
mt_fake_lookup (MtFakeBackend *self, const char *name_or_uuid)
{
  MtFakeDomain *d = g_hash_table_lookup (self->by_name, name_or_uuid);

  return d != NULL ? d : g_hash_table_lookup (self->domains, name_or_uuid);
}

void
mt_fake_add (MtFakeBackend *self, MtFakeDomain *d)
{
  char uuid[MT_FAKE_UUID_LEN];

  g_strlcpy (uuid, d->uuid, sizeof uuid);
  g_mutex_lock (&self->lock);
  d->serial = ++self->next_serial;
  g_hash_table_insert (self->domains, d->uuid, d);
  g_hash_table_insert (self->by_name, d->name, d);
  g_mutex_unlock (&self->lock);
  mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_ADDED, uuid);
}

gboolean
mt_fake_remove (MtFakeBackend *self, const char *name)
{
  char uuid[MT_FAKE_UUID_LEN];
  MtFakeDomain *d;

  g_mutex_lock (&self->lock);
  d = mt_fake_lookup (self, name);
  if (d != NULL) {
    g_strlcpy (uuid, d->uuid, sizeof uuid);
    g_hash_table_remove (self->by_name, d->name);
    g_hash_table_remove (self->domains, uuid); /* frees d */
    g_cond_broadcast (&self->changed);
  }
  g_mutex_unlock (&self->lock);
  if (d == NULL)
    return FALSE;
  mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_REMOVED, uuid);
  return TRUE;
}

/* ---- ops ------------------------------------------------------------------ */

static MtProbeResult
fake_probe (MtBackend *b, GError **error)
{
  MtFakeBackend *self = (MtFakeBackend *) b;

  if (self->control_path != NULL)
    return MT_PROBE_YES;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "the fake driver needs --connect PATH, the control socket its script is "
               "written to (docs/driver-fake.md)");
  return MT_PROBE_NO;
}

static gboolean
fake_connect (MtBackend *b, GError **error)
{
  MtFakeBackend *self = (MtFakeBackend *) b;
  g_autoptr (GPtrArray) uuids = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer key;

  if (self->connected)
    return TRUE;
  if (fake_probe (b, error) != MT_PROBE_YES)
    return FALSE;
  self->control = mt_fake_control_new (self, self->control_path, error);
  if (self->control == NULL)
    return FALSE;
  g_message ("fake driver: no hypervisor, the domains are what a script writes to %s",
             self->control_path);
  self->connected = TRUE;
  g_mutex_lock (&self->lock);
  g_hash_table_iter_init (&iter, self->domains);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (uuids, g_strdup (key));
  g_mutex_unlock (&self->lock);
  for (guint i = 0; i < uuids->len; i++)
    mt_backend_emit_domain (&self->parent, MT_DOMAIN_EVENT_ADDED, uuids->pdata[i]);
  return TRUE;
}

/* The lock must be held. */
static MtDomainInfo *
domain_info (const MtFakeDomain *d, gint64 now)
{
  MtDomainInfo *info = g_new0 (MtDomainInfo, 1);

  info->name = g_strdup (d->name);
  info->uuid = g_strdup (d->uuid);
  info->base_memory = d->base_memory;
  info->vmem_size = d->vmem_size;
  info->vmem_block = d->vmem_size != 0 ? d->vmem_block : 0;
  info->vmem_alias = d->vmem_size != 0 ? g_strdup ("vmem0") : NULL;
  info->vmem_requested = d->vmem_requested;
  info->vmem_plugged = mt_fake_motion_at (&d->plugged, d->speed, now);
  info->agent_socket = g_strdup (d->agent_socket);
  info->opt_in = g_strdup (d->opt_in);
  return info;
}

static MtDomainInfo *
fake_get_domain (MtBackend *b, const char *uuid, GError **error)
{
  MtFakeBackend *self = (MtFakeBackend *) b;
  MtDomainInfo *info = NULL;
  const MtFakeDomain *d;

  g_mutex_lock (&self->lock);
  d = g_hash_table_lookup (self->domains, uuid);
  if (d != NULL)
    info = domain_info (d, g_get_monotonic_time ());
  g_mutex_unlock (&self->lock);
  if (info == NULL)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "fake driver: no domain %s", uuid);
  return info;
}

/* The lock must be held. */
static void
domain_sample (const MtFakeDomain *d, gint64 now, MtVmSample *s)
{
  guint64 size;

  mt_vm_sample_init (s, now);
  s->balloon_actual = mt_fake_motion_at (&d->balloon, d->speed, now);
  s->vmem_plugged = d->vmem_size != 0 ? mt_fake_motion_at (&d->plugged, d->speed, now) : 0;
  s->vmem_requested = d->vmem_requested;
  s->rss = d->rss;
  if (d->used == MT_UNKNOWN)
    return;
  /* The guest sees its whole size (a real guest's MemTotal is a few MiB
   * less: what its kernel keeps). */
  size = s->balloon_actual + s->vmem_plugged;
  s->guest_total = size;
  s->guest_available = d->used < size ? size - d->used : 0;
  s->guest_free = d->free != MT_UNKNOWN ? MIN (d->free, s->guest_available) : s->guest_available;
  s->guest_cache = d->cache;
  s->swap_in = d->swap_in;
  s->swap_out = d->swap_out;
  s->major_faults = d->major_faults;
}

typedef struct {
  char uuid[MT_FAKE_UUID_LEN];
  MtVmSample sample;
} UuidSample;

static gboolean
fake_collect (MtBackend *b, gint64 now, MtSampleFunc func, gpointer user_data, GError **error)
{
  MtFakeBackend *self = (MtFakeBackend *) b;
  g_autoptr (GArray) samples = g_array_new (FALSE, FALSE, sizeof (UuidSample));
  gint64 clock = g_get_monotonic_time ();
  GHashTableIter iter;
  gpointer value;

  g_mutex_lock (&self->lock);
  g_array_set_size (samples, g_hash_table_size (self->domains));
  g_hash_table_iter_init (&iter, self->domains);
  for (guint i = 0; g_hash_table_iter_next (&iter, NULL, &value); i++) {
    UuidSample *u = &g_array_index (samples, UuidSample, i);

    g_strlcpy (u->uuid, ((MtFakeDomain *) value)->uuid, sizeof u->uuid);
    /* Sizes where they are on the clock; the sample is stamped with the
     * tick's time, as every driver's is. */
    domain_sample (value, clock, &u->sample);
    u->sample.time = now;
  }
  g_mutex_unlock (&self->lock);
  /* Outside the lock: the daemon's callback may be slow, resize calls
   * must not wait for it. */
  for (guint i = 0; i < samples->len; i++) {
    UuidSample *u = &g_array_index (samples, UuidSample, i);

    func (u->uuid, &u->sample, user_data);
  }
  return TRUE;
}

static void
on_cancelled (GCancellable *cancellable, gpointer data)
{
  MtFakeBackend *self = data;

  g_mutex_lock (&self->lock);
  g_cond_broadcast (&self->changed);
  g_mutex_unlock (&self->lock);
}

typedef enum { CALL_BALLOON, CALL_VMEM } CallKind;

/* The lock must be held.  The checks libvirt makes, in its words. */
static gboolean
apply_call (MtFakeDomain *d, CallKind kind, guint64 bytes, gint64 now, GError **error)
{
  if (d->fail != NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "fake domain '%s' refused the call: %s",
                 d->name, d->fail);
    return FALSE;
  }
  if (kind == CALL_BALLOON) {
    if (bytes > d->base_memory) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "refusing to set balloon of fake domain '%s' to %" G_GUINT64_FORMAT
                   " bytes: above its boot memory of %" G_GUINT64_FORMAT " bytes",
                   d->name, bytes, d->base_memory);
      return FALSE;
    }
    if (!d->refuse)
      mt_fake_motion_retarget (&d->balloon, d->speed, now, bytes);
    return TRUE;
  }
  if (d->vmem_size == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                 "fake domain '%s' has no virtio-mem device", d->name);
    return FALSE;
  }
  if (bytes > d->vmem_size || bytes % d->vmem_block != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "refusing to set virtio-mem of fake domain '%s' to %" G_GUINT64_FORMAT
                 " bytes: not a multiple of its %" G_GUINT64_FORMAT
                 "-byte blocks up to %" G_GUINT64_FORMAT " bytes",
                 d->name, bytes, d->vmem_block, d->vmem_size);
    return FALSE;
  }
  d->vmem_requested = bytes;
  if (!d->refuse)
    mt_fake_motion_retarget (&d->plugged, d->speed, now, bytes);
  return TRUE;
}

/* One resize call, lock held: wait out the domain's block (or until the
 * block is lifted, the domain goes or the daemon stops), then do what
 * the domain is scripted to do. */
static gboolean
resize_locked (MtFakeBackend *self, const char *uuid, CallKind kind, guint64 bytes,
               GCancellable *cancellable, GError **error)
{
  gint64 start = g_get_monotonic_time ();
  MtFakeDomain *d = g_hash_table_lookup (self->domains, uuid);
  guint64 serial;
  gboolean ok;

  if (d == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "fake driver: no domain %s", uuid);
    return FALSE;
  }
  d->calls++;
  d->in_flight++;
  d->max_in_flight = MAX (d->max_in_flight, d->in_flight);
  g_free (d->last_call);
  d->last_call =
    g_strdup_printf ("%s:%" G_GUINT64_FORMAT, kind == CALL_BALLOON ? "balloon" : "vmem", bytes);
  d->blocked++;
  serial = d->serial;
  while (d->block > 0 && g_get_monotonic_time () < start + d->block
         && !g_cancellable_is_cancelled (cancellable)) {
    g_cond_wait_until (&self->changed, &self->lock, start + d->block);
    /* Removed meanwhile: gone with its counters. */
    d = g_hash_table_lookup (self->domains, uuid);
    if (d == NULL || d->serial != serial) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "fake driver: domain %s went away during the resize call", uuid);
      return FALSE;
    }
  }
  d->blocked--;
  if (g_cancellable_set_error_if_cancelled (cancellable, error)) {
    g_prefix_error (error, "fake domain '%s': ", d->name);
    ok = FALSE;
  } else {
    ok = apply_call (d, kind, bytes, g_get_monotonic_time (), error);
  }
  d->in_flight--;
  return ok;
}

/* In a worker thread. */
static gboolean
fake_resize (MtFakeBackend *self, const char *uuid, CallKind kind, guint64 bytes,
             GCancellable *cancellable, GError **error)
{
  gulong handler = 0;
  gboolean ok;

  /* Before the lock: the handler takes it, and runs at once when the
   * daemon already stopped. */
  if (cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled), self, NULL);
  g_mutex_lock (&self->lock);
  ok = resize_locked (self, uuid, kind, bytes, cancellable, error);
  g_mutex_unlock (&self->lock);
  if (handler != 0)
    g_cancellable_disconnect (cancellable, handler);
  return ok;
}

static gboolean
fake_set_balloon (MtBackend *b, const char *uuid, guint64 bytes, GCancellable *cancellable,
                  GError **error)
{
  return fake_resize ((MtFakeBackend *) b, uuid, CALL_BALLOON, bytes, cancellable, error);
}

static gboolean
fake_set_vmem (MtBackend *b, const char *uuid, guint64 requested, GCancellable *cancellable,
               GError **error)
{
  return fake_resize ((MtFakeBackend *) b, uuid, CALL_VMEM, requested, cancellable, error);
}

static void
fake_free (MtBackend *b)
{
  MtFakeBackend *self = (MtFakeBackend *) b;

  g_clear_pointer (&self->control, mt_fake_control_free);
  g_hash_table_unref (self->by_name);
  g_hash_table_unref (self->domains);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->changed);
  g_free (self->control_path);
  g_free (self);
}

static const MtBackendOps fake_ops = {
  .name = "fake",
  .probe = fake_probe,
  .connect = fake_connect,
  .get_domain = fake_get_domain,
  .collect = fake_collect,
  .set_balloon = fake_set_balloon,
  .set_vmem = fake_set_vmem,
  .free = fake_free,
};

MtBackend *
mt_backend_fake_new (const char *control_path)
{
  MtFakeBackend *self = g_new0 (MtFakeBackend, 1);

  self->parent.ops = &fake_ops;
  self->control_path = g_strdup (control_path);
  g_mutex_init (&self->lock);
  g_cond_init (&self->changed);
  /* Keys live in the values. */
  self->domains =
    g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) mt_fake_domain_free);
  self->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  return &self->parent;
}

/* Named only: --backend auto never picks it. */
const MtDriver mt_driver_fake = {
  .name = "fake",
  .automatic = FALSE,
  .default_uri = NULL,
  .create = mt_backend_fake_new,
};
