/* backend.h: the hypervisor driver interface.  One driver per file
 * (backend-libvirt.c, backend-xen.c); the daemon only talks to this.
 *
 * All sizes are bytes.  Drivers convert to KiB (libvirt) or pages (Xen)
 * at their own boundary.  Calls are made from the main thread; a driver
 * that blocks must keep it short (libvirt calls are local RPC).
 */
#pragma once

#include <glib.h>
#include "sample.h"

typedef struct _MtBackend MtBackend;

/* What the backend knows of one running domain's configuration. */
typedef struct {
  char    *name;
  char    *uuid;               /* canonical string form */
  guint64  base_memory;        /* boot memory the balloon works on */
  guint64  vmem_size;          /* virtio-mem device size, 0 = none */
  guint64  vmem_block;         /* virtio-mem block size */
  char    *vmem_alias;         /* device alias, NULL = none */
  guint64  vmem_requested;     /* virtio-mem size asked of the guest, 0 = no device */
  guint64  vmem_plugged;       /* virtio-mem size the guest has plugged, 0 = no
                                  device, MT_UNKNOWN = not reported */
  char    *agent_socket;       /* host path of the agent channel, NULL = none */
  char    *metadata;           /* memtide <metadata> XML fragment, NULL = none */
} MtDomainInfo;

void mt_domain_info_free (MtDomainInfo *info);
/* Frees what @info points to and zeroes it, for an MtDomainInfo kept by
 * value. */
void mt_domain_info_clear (MtDomainInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtDomainInfo, mt_domain_info_free)

typedef enum {
  MT_DOMAIN_EVENT_ADDED,       /* started, or found at connect */
  MT_DOMAIN_EVENT_REMOVED,     /* stopped, crashed, or undefined */
  MT_DOMAIN_EVENT_CHANGED,     /* memory device or metadata changed: re-read info */
} MtDomainEvent;

typedef enum {
  MT_PROBE_YES,
  MT_PROBE_NO,
  MT_PROBE_LATER,              /* hypervisor not there yet: retry */
} MtProbeResult;

/* One domain's sample from collect(); @sample is the callee's to change
 * (the daemon overlays agent numbers) but only valid during the call. */
typedef void (*MtSampleFunc) (const char *uuid, MtVmSample *sample, gpointer user_data);

typedef void (*MtDomainEventFunc) (MtBackend *backend, MtDomainEvent event,
                                   const char *uuid, gpointer user_data);
typedef void (*MtConnectionFunc) (MtBackend *backend, gboolean connected,
                                  gpointer user_data);

typedef struct {
  const char *name;
  MtProbeResult (*probe)   (MtBackend *b, GError **error);
  gboolean (*connect)      (MtBackend *b, GError **error);
  /* Running domains now; element type MtDomainInfo. */
  GPtrArray *(*list_domains) (MtBackend *b, GError **error);
  MtDomainInfo *(*get_domain) (MtBackend *b, const char *uuid, GError **error);
  /* One batched call for all domains; @func gets one sample per running
   * domain.  Nothing is allocated per domain: at 10,000 domains a table
   * of samples per tick was 2 MiB of churn for one lookup each. */
  gboolean (*collect)      (MtBackend *b, gint64 now, MtSampleFunc func, gpointer user_data,
                            GError **error);
  gboolean (*set_balloon)  (MtBackend *b, const char *uuid, guint64 bytes, GError **error);
  gboolean (*set_vmem)     (MtBackend *b, const char *uuid, guint64 requested, GError **error);
  void     (*free)         (MtBackend *b);
} MtBackendOps;

struct _MtBackend {
  const MtBackendOps *ops;
  MtDomainEventFunc   domain_cb;
  MtConnectionFunc    connection_cb;
  gpointer            user_data;
};
