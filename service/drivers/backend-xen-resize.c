/* backend-xen-resize.c: set_balloon on Xen, on the daemon's resize
 * workers: memory/target and maxmem kept in step the way squeezed (and
 * libxl_set_memory_target with enforce) does.  The workers share one
 * pair of xenctrl/xenstore handles of their own, under worker_lock: a
 * call is two short requests (5-24 ms each on the testbed), so domains
 * resized at once wait little for each other, and the main thread's
 * watch handle is never used off it.  Nothing waits for the guest: the
 * daemon sees the balloon move on later ticks.
 */
#define G_LOG_DOMAIN "memtide-xen"

#include <errno.h>
#include <string.h>

#include "backend-xen-private.h"

/* libxl's LIBXL_MAXMEM_CONSTANT: maxmem is the target plus video
 * memory plus this slack. */
#define MAXMEM_SLACK_KIB 1024

gboolean
mt_xen_resize_ops (guint64 bytes, guint64 static_max, guint64 videoram, guint64 maxmem_kib,
                   MtXenOp ops[2], GError **error)
{
  guint64 total_kib = bytes / MT_KIB;
  guint64 video_kib = videoram / MT_KIB;
  guint64 target_kib, new_maxmem_kib;

  if (bytes > static_max) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "%" G_GUINT64_FORMAT " KiB is above the domain's static-max of %" G_GUINT64_FORMAT
                 " KiB (xl mem-max cannot raise it while the domain runs)",
                 total_kib, static_max / MT_KIB);
    return FALSE;
  }
  if (total_kib <= video_kib) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "%" G_GUINT64_FORMAT " KiB leaves nothing beside the domain's %" G_GUINT64_FORMAT
                 " KiB of video memory",
                 total_kib, video_kib);
    return FALSE;
  }
  /* memory/target is what the guest's balloon driver aims at: its own
   * memory, video memory not counted (libxl writes it so). */
  target_kib = total_kib - video_kib;
  new_maxmem_kib = target_kib + video_kib + MAXMEM_SLACK_KIB;
  /* Never a moment with the target above maxmem: the guest would
   * balloon up into a limit it cannot pass. */
  if (maxmem_kib == MT_UNKNOWN || new_maxmem_kib < maxmem_kib) {
    ops[0] = (MtXenOp){ MT_XEN_WRITE_TARGET, target_kib };
    ops[1] = (MtXenOp){ MT_XEN_SET_MAXMEM, new_maxmem_kib };
  } else {
    ops[0] = (MtXenOp){ MT_XEN_SET_MAXMEM, new_maxmem_kib };
    ops[1] = (MtXenOp){ MT_XEN_WRITE_TARGET, target_kib };
  }
  return TRUE;
}

void
mt_xen_worker_close (MtXenBackend *self)
{
  g_mutex_lock (&self->worker_lock);
  g_clear_pointer (&self->worker_xsh, xs_close);
  g_clear_pointer (&self->worker_xch, xc_interface_close);
  g_mutex_unlock (&self->worker_lock);
}

/* worker_lock held. */
static gboolean
worker_open_locked (MtXenBackend *self, GError **error)
{
  if (self->worker_xch == NULL)
    self->worker_xch = xc_interface_open (mt_xen_logger (), mt_xen_logger (), 0);
  if (self->worker_xch == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "cannot open libxenctrl: %s",
                 g_strerror (errno));
    return FALSE;
  }
  if (self->worker_xsh == NULL)
    self->worker_xsh = xs_open (0);
  if (self->worker_xsh == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "cannot connect to xenstored: %s",
                 g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

/* worker_lock held.  A size under /local/domain/@domid/@key; absent
 * is 0 unless @required. */
static gboolean
worker_read_size_locked (MtXenBackend *self, guint32 domid, const char *key, gboolean required,
                         guint64 *bytes, GError **error)
{
  g_autofree char *path = mt_xen_domain_path (domid, key);
  unsigned int len = 0;
  char *value = xs_read (self->worker_xsh, XBT_NULL, path, &len);
  gboolean ok;

  if (value == NULL && errno != ENOENT) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot read %s: %s", path,
                 g_strerror (errno));
    /* xenstored may have restarted: a fresh handle next time. */
    g_clear_pointer (&self->worker_xsh, xs_close);
    return FALSE;
  }
  if (value == NULL && !required) {
    *bytes = 0;
    return TRUE;
  }
  ok = mt_xen_parse_kib (path, value, len, bytes, error);
  free (value);
  return ok;
}

/* worker_lock held. */
static gboolean
apply_locked (MtXenBackend *self, guint32 domid, const MtXenOp *op, GError **error)
{
  if (op->step == MT_XEN_SET_MAXMEM) {
    if (xc_domain_setmaxmem (self->worker_xch, domid, op->kib) < 0) {
      g_set_error (error, G_IO_ERROR, errno == ESRCH ? G_IO_ERROR_NOT_FOUND : G_IO_ERROR_FAILED,
                   "Xen refused maxmem %" G_GUINT64_FORMAT " KiB: %s", op->kib, g_strerror (errno));
      return FALSE;
    }
  } else {
    g_autofree char *path = mt_xen_domain_path (domid, "memory/target");
    g_autofree char *value = g_strdup_printf ("%" G_GUINT64_FORMAT, op->kib);

    if (!xs_write (self->worker_xsh, XBT_NULL, path, value, strlen (value))) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write %s = %s: %s", path, value,
                   g_strerror (errno));
      g_clear_pointer (&self->worker_xsh, xs_close);
      return FALSE;
    }
  }
  return TRUE;
}

/* worker_lock held.  The domain's maxmem now, MT_UNKNOWN if unlimited;
 * fails when @domid is no longer the domain @handle names. */
static gboolean
current_maxmem_locked (MtXenBackend *self, guint32 domid, const xen_domain_handle_t handle,
                       guint64 *maxmem_kib, GError **error)
{
  xc_domaininfo_t info;
  int n = xc_domain_getinfolist (self->worker_xch, domid, 1, &info);

  if (n < 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot read domain %u: %s", domid,
                 g_strerror (errno));
    return FALSE;
  }
  if (n == 0 || info.domain != domid || memcmp (info.handle, handle, sizeof info.handle) != 0
      || (info.flags & XEN_DOMINF_dying) != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "domain %u is gone", domid);
    return FALSE;
  }
  *maxmem_kib = info.max_pages > (MT_UNKNOWN - 1) / (XC_PAGE_SIZE / MT_KIB)
                  ? MT_UNKNOWN
                  : info.max_pages * (XC_PAGE_SIZE / MT_KIB);
  return TRUE;
}

gboolean
mt_xen_set_balloon (MtBackend *b, const char *uuid, guint64 bytes, GCancellable *cancellable,
                    GError **error)
{
  MtXenBackend *self = (MtXenBackend *) b;
  const MtXenDomain *dom;
  xen_domain_handle_t handle;
  g_autofree char *name = NULL;
  guint32 domid = 0;
  guint64 static_max = 0, cached_max = 0, videoram = 0, maxmem_kib = 0;
  MtXenOp ops[2];
  gboolean ok;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  g_mutex_lock (&self->lock);
  dom = g_hash_table_lookup (self->domains, uuid);
  if (dom != NULL) {
    domid = dom->domid;
    memcpy (handle, dom->handle, sizeof handle);
    name = g_strdup (dom->name);
    cached_max = dom->static_max;
  }
  g_mutex_unlock (&self->lock);
  if (name == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no running Xen domain %s", uuid);
    return FALSE;
  }

  g_mutex_lock (&self->worker_lock);
  /* static-max and videoram as they are now, not as cached at start. */
  ok = worker_open_locked (self, error)
       && worker_read_size_locked (self, domid, "memory/static-max", domid != 0, &static_max, error)
       && worker_read_size_locked (self, domid, "memory/videoram", FALSE, &videoram, error)
       && current_maxmem_locked (self, domid, handle, &maxmem_kib, error);
  /* dom0 without static-max in xenstore (the write at announce failed,
   * backend-xen.c dom0_static_max): the maxmem it had then, not today's,
   * which memtided itself lowers. */
  if (ok && domid == 0 && static_max == 0)
    static_max = cached_max;
  ok = ok && mt_xen_resize_ops (bytes, static_max, videoram, maxmem_kib, ops, error)
       && apply_locked (self, domid, &ops[0], error) && apply_locked (self, domid, &ops[1], error);
  g_mutex_unlock (&self->worker_lock);
  if (!ok) {
    g_prefix_error (error, "cannot resize Xen domain '%s' (%u): ", name, domid);
    return FALSE;
  }
  g_debug ("domain '%s' (%u): %s %" G_GUINT64_FORMAT " KiB, then %s %" G_GUINT64_FORMAT " KiB",
           name, domid, ops[0].step == MT_XEN_SET_MAXMEM ? "maxmem" : "memory/target", ops[0].kib,
           ops[1].step == MT_XEN_SET_MAXMEM ? "maxmem" : "memory/target", ops[1].kib);
  return TRUE;
}
