/* resizer.h: a driver's resize calls, off the main loop.
 *
 * A resize call may block as long as the hypervisor takes: libvirt waits
 * up to 30 s for a QEMU domain's job lock.  On the main loop that stalled
 * D-Bus answers, agent links and every other VM's tick.  The resizer runs
 * each call in a small thread pool instead, one call in flight per
 * domain (a second is refused, so calls for one domain never overtake
 * each other), several domains at once, and hands the outcome back on
 * the main context.  docs/architecture.md ("Act") says why this shape.
 */
#pragma once

#include "backend.h"

/* Calls that run at once; more wait in the pool's queue. */
#define MT_RESIZER_THREADS 8
/* Calls in flight (running and queued) at most; beyond it a call is
 * refused (G_IO_ERROR_NO_SPACE): a hypervisor that answers nothing must
 * not grow the queue without bound. */
#define MT_RESIZER_MAX_CALLS 256

typedef struct _MtResizer MtResizer;

/* What one call does, in this order: virtio-mem first (the balloon
 * covers only what it cannot), then the balloon. */
typedef struct {
  gboolean set_vmem;
  guint64 vmem_requested;
  gboolean set_balloon;
  guint64 balloon;
} MtResize;

/* The call returned; on the main context.  @error NULL: done.  @took:
 * µs from submit to return, queueing included. */
typedef void (*MtResizeDoneFunc) (const char *uuid, gpointer call_data, const GError *error,
                                  gint64 took, gpointer user_data);

/* @backend must outlive the resizer.  Completions are dispatched on the
 * thread-default main context of the caller. */
MtResizer *mt_resizer_new (MtBackend *backend, MtResizeDoneFunc done, gpointer user_data);

/* Start a call for @uuid.  FALSE with G_IO_ERROR_BUSY when one is in
 * flight for @uuid, G_IO_ERROR_NO_SPACE when MT_RESIZER_MAX_CALLS are;
 * @call_data is then freed at once.  Otherwise @done gets @call_data
 * when the call returns, and @call_data_free frees it after (or at
 * mt_resizer_free() when it never came). */
gboolean mt_resizer_submit (MtResizer *resizer, const char *uuid, const MtResize *resize,
                            gpointer call_data, GDestroyNotify call_data_free, GError **error);

/* When the call in flight for @uuid was submitted, MT_TIME_NEVER when
 * none is (its completion delivered). */
gint64 mt_resizer_in_flight (MtResizer *resizer, const char *uuid);
guint mt_resizer_n_in_flight (MtResizer *resizer);

/* Cancels the calls (drivers that wait on their own give up; a libvirt
 * RPC returns when libvirtd answers), waits for those running, and
 * drops completions not delivered yet. */
void mt_resizer_free (MtResizer *resizer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtResizer, mt_resizer_free)
