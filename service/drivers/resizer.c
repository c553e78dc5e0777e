/* resizer.c: resize calls in a thread pool, their outcomes back on the
 * main context.  Every call is owned by the in-flight table (main thread
 * only) from submit until its outcome was delivered; a worker touches
 * only its own call, the backend, and the queue of returned calls
 * (under the lock).  One GSource, woken with g_source_set_ready_time()
 * (safe from any thread), delivers what returned, so nothing is left
 * scheduled on the main context once the resizer is freed.
 */
#define G_LOG_DOMAIN "memtided"

#include "resizer.h"
#include "model.h" /* MT_TIME_NEVER */

typedef struct {
  char *uuid;
  MtResize resize;
  gint64 submitted;
  gint64 returned;
  GError *error;
  gpointer data;
  GDestroyNotify data_free;
} Call;

struct _MtResizer {
  MtBackend *backend;
  MtResizeDoneFunc done;
  gpointer user_data;
  GThreadPool *pool;
  GCancellable *cancellable; /* cancelled at free */
  GHashTable *in_flight;     /* uuid -> Call *, owns; main thread */
  GSource *deliver;
  GMutex lock;
  GQueue returned; /* Call *, borrowed from in_flight */
  gint running;    /* calls in a worker now (atomic), for the log at free */
};

static void
call_free (Call *call)
{
  if (call->data_free != NULL)
    call->data_free (call->data);
  g_clear_error (&call->error);
  g_free (call->uuid);
  g_free (call);
}

static void
run_call (gpointer data, gpointer user_data)
{
  Call *call = data;
  MtResizer *r = user_data;
  const MtBackendOps *ops = r->backend->ops;

  g_atomic_int_inc (&r->running);
  /* Not started once the daemon stops: the size it has stays. */
  if (!g_cancellable_set_error_if_cancelled (r->cancellable, &call->error) && call->resize.set_vmem)
    ops->set_vmem (r->backend, call->uuid, call->resize.vmem_requested, r->cancellable,
                   &call->error);
  if (call->error == NULL && call->resize.set_balloon)
    ops->set_balloon (r->backend, call->uuid, call->resize.balloon, r->cancellable, &call->error);
  call->returned = g_get_monotonic_time ();
  g_atomic_int_add (&r->running, -1);

  g_mutex_lock (&r->lock);
  g_queue_push_tail (&r->returned, call);
  g_mutex_unlock (&r->lock);
  g_source_set_ready_time (r->deliver, 0);
}

static gboolean
deliver (gpointer data)
{
  MtResizer *r = data;

  for (;;) {
    Call *call;

    g_mutex_lock (&r->lock);
    call = g_queue_pop_head (&r->returned);
    g_mutex_unlock (&r->lock);
    if (call == NULL)
      break;
    /* Out of the table first: the callback may submit the next call. */
    g_hash_table_steal (r->in_flight, call->uuid);
    r->done (call->uuid, call->data, call->error, call->returned - call->submitted, r->user_data);
    call_free (call);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
deliver_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  g_source_set_ready_time (source, -1);
  return callback (data);
}

static GSourceFuncs deliver_funcs = {
  .dispatch = deliver_dispatch,
};

MtResizer *
mt_resizer_new (MtBackend *backend, MtResizeDoneFunc done, gpointer user_data)
{
  MtResizer *r = g_new0 (MtResizer, 1);

  r->backend = backend;
  r->done = done;
  r->user_data = user_data;
  r->cancellable = g_cancellable_new ();
  r->in_flight = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) call_free);
  g_mutex_init (&r->lock);
  g_queue_init (&r->returned);
  /* Shared threads never fail to be made here; they are started when
   * needed, so an idle daemon keeps none. */
  r->pool = g_thread_pool_new (run_call, r, MT_RESIZER_THREADS, FALSE, NULL);
  r->deliver = g_source_new (&deliver_funcs, sizeof (GSource));
  g_source_set_name (r->deliver, "memtide resize completions");
  g_source_set_callback (r->deliver, deliver, r, NULL);
  g_source_attach (r->deliver, g_main_context_get_thread_default ());
  return r;
}

gboolean
mt_resizer_submit (MtResizer *r, const char *uuid, const MtResize *resize, gpointer call_data,
                   GDestroyNotify call_data_free, GError **error)
{
  Call *call;

  if (g_hash_table_contains (r->in_flight, uuid)
      || g_hash_table_size (r->in_flight) >= MT_RESIZER_MAX_CALLS) {
    gboolean busy = g_hash_table_contains (r->in_flight, uuid);

    if (busy)
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   "the resize call issued %.1f s ago has not returned",
                   (g_get_monotonic_time () - mt_resizer_in_flight (r, uuid)) / 1e6);
    else
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "%u resize calls are in flight, the most there may be: the hypervisor is "
                   "not keeping up",
                   g_hash_table_size (r->in_flight));
    if (call_data_free != NULL)
      call_data_free (call_data);
    return FALSE;
  }
  call = g_new0 (Call, 1);
  call->uuid = g_strdup (uuid);
  call->resize = *resize;
  call->submitted = g_get_monotonic_time ();
  call->data = call_data;
  call->data_free = call_data_free;
  g_hash_table_insert (r->in_flight, call->uuid, call);
  /* Never fails for a shared pool. */
  g_thread_pool_push (r->pool, call, NULL);
  return TRUE;
}

gint64
mt_resizer_in_flight (MtResizer *r, const char *uuid)
{
  const Call *call = g_hash_table_lookup (r->in_flight, uuid);

  return call != NULL ? call->submitted : MT_TIME_NEVER;
}

guint
mt_resizer_n_in_flight (MtResizer *r)
{
  return g_hash_table_size (r->in_flight);
}

void
mt_resizer_free (MtResizer *r)
{
  guint running;

  if (r == NULL)
    return;
  g_cancellable_cancel (r->cancellable);
  running = (guint) g_atomic_int_get (&r->running);
  if (running > 0)
    g_message ("Waiting for %u resize call%s to return", running, running == 1 ? "" : "s");
  /* Queued calls are dropped, running ones waited for. */
  g_thread_pool_free (r->pool, TRUE, TRUE);
  g_source_destroy (r->deliver);
  g_source_unref (r->deliver);
  g_queue_clear (&r->returned);
  g_hash_table_unref (r->in_flight);
  g_mutex_clear (&r->lock);
  g_object_unref (r->cancellable);
  g_free (r);
}
