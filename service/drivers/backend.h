/* backend.h: the hypervisor driver interface.  One driver per file
 * (backend-libvirt.c, backend-xen.c, backend-fake.c); the daemon only talks to this and
 * to the driver table (drivers.h), never to a driver's own header.
 *
 * All sizes are bytes.  Drivers convert to their hypervisor's units
 * (libvirt: KiB; Xen: KiB and pages) at their own boundary.
 *
 * Threads: set_balloon() and set_vmem() may be called from worker
 * threads, several domains at once but never two calls for the same
 * domain at once (service/drivers/resizer.c); they may block as long
 * as the hypervisor takes.  Everything else, the callbacks included, runs
 * on the thread of the GLib default main context.  A driver guards what
 * its resize calls share with the rest.
 */
#pragma once

#include <gio/gio.h>
#include "sample.h"
#include "domain.h"

typedef struct _MtBackend MtBackend;

typedef enum {
  MT_DOMAIN_EVENT_ADDED,   /* started, or found at connect */
  MT_DOMAIN_EVENT_REMOVED, /* stopped, crashed, or undefined */
  MT_DOMAIN_EVENT_CHANGED, /* memory device or metadata changed: re-read info */
} MtDomainEvent;

typedef enum {
  MT_PROBE_YES,
  MT_PROBE_NO,
  MT_PROBE_LATER, /* hypervisor not there yet: retry */
} MtProbeResult;

/* One domain's sample from collect(); @sample is the callee's to change
 * (the daemon overlays agent numbers) but only valid during the call. */
typedef void (*MtSampleFunc) (const char *uuid, MtVmSample *sample, gpointer user_data);

typedef void (*MtDomainEventFunc) (MtBackend *backend, MtDomainEvent event, const char *uuid,
                                   gpointer user_data);
typedef void (*MtConnectionFunc) (MtBackend *backend, gboolean connected, gpointer user_data);

typedef struct {
  const char *name;
  MtProbeResult (*probe) (MtBackend *b, GError **error);
  gboolean (*connect) (MtBackend *b, GError **error);
  /* The running domains are announced through domain_cb (ADDED) by
   * connect() and after each reconnect, which also announces REMOVED for
   * those that stopped meanwhile: there is no listing call. */
  MtDomainInfo *(*get_domain) (MtBackend *b, const char *uuid, GError **error);
  /* One batched call for all domains; @func gets one sample per running
   * domain.  Nothing is allocated per domain: at 10,000 domains a table
   * of samples per tick was 2 MiB of churn for one lookup each. */
  gboolean (*collect) (MtBackend *b, gint64 now, MtSampleFunc func, gpointer user_data,
                       GError **error);
  /* Optional.  The host's memory as the hypervisor sees it, where the
   * daemon's own view is not the host's (Xen: dom0's /proc/meminfo is
   * dom0 only).  NULL = the daemon reads the host from /proc (core/host.h).
   * Sizes the driver cannot tell are MT_UNKNOWN, PSI NAN. */
  gboolean (*read_host) (MtBackend *b, gint64 now, MtHostSample *out, GError **error);
  /* The resize calls (see Threads above).  @cancellable is cancelled
   * when the daemon stops: a driver that waits on its own may give up
   * then (G_IO_ERROR_CANCELLED); one that cannot (a libvirt RPC) returns
   * when the hypervisor answers. */
  gboolean (*set_balloon) (MtBackend *b, const char *uuid, guint64 bytes, GCancellable *cancellable,
                           GError **error);
  gboolean (*set_vmem) (MtBackend *b, const char *uuid, guint64 requested,
                        GCancellable *cancellable, GError **error);
  void (*free) (MtBackend *b);
} MtBackendOps;

struct _MtBackend {
  const MtBackendOps *ops;
  MtDomainEventFunc domain_cb;
  MtConnectionFunc connection_cb;
  gpointer user_data;
};

/* For drivers: tell the daemon (either callback may be unset). */
static inline void
mt_backend_emit_domain (MtBackend *b, MtDomainEvent event, const char *uuid)
{
  if (b->domain_cb != NULL)
    b->domain_cb (b, event, uuid, b->user_data);
}

static inline void
mt_backend_emit_connection (MtBackend *b, gboolean connected)
{
  if (b->connection_cb != NULL)
    b->connection_cb (b, connected, b->user_data);
}

/* Frees any driver's backend; NULL is fine. */
static inline void
mt_backend_free (MtBackend *b)
{
  if (b != NULL)
    b->ops->free (b);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtBackend, mt_backend_free)
