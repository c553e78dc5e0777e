/* daemon-tune.c: see daemon-tune.h.
 *
 * The planner says which tunables a guest should have (planner-tune.c);
 * here the request goes out through the VM's agent link the way reclaim
 * requests do (daemon-agent.c), and its answer comes back to the VM
 * found again by uuid: the VM may be gone by then, or replaced. */
#define G_LOG_DOMAIN "memtided"

#include <string.h>

#include "daemon-private.h"
#include "daemon-tune.h"

/* A reply's way back to its VM. */
typedef struct {
  MtDaemon *d;
  char *uuid;
  guint64 seq;
  guint delay_ms, divisor;
} TuneCall;

static void
tune_call_free (gpointer data)
{
  TuneCall *c = data;

  g_free (c->uuid);
  g_free (c);
}

void
mt_daemon_tune_init (MtDaemonTune *t)
{
  *t = (MtDaemonTune){
    .sent_at = MT_TIME_NEVER,
    .retry_at = MT_TIME_NEVER,
  };
}

static void
back_off (MtDaemonTune *t, gboolean unavailable, gint64 now)
{
  gint64 wait = MT_DAEMON_TUNE_BACKOFF;

  t->failures++;
  for (guint i = 1; i < t->failures && wait < MT_DAEMON_TUNE_BACKOFF_MAX; i++)
    wait *= 2;
  if (unavailable)
    wait = MT_DAEMON_TUNE_BACKOFF_MAX;
  t->retry_at = now + MIN (wait, MT_DAEMON_TUNE_BACKOFF_MAX);
}

static void
on_tune_reply (MtAgentLink *link, const MtAgentReply *reply, const GError *error, gpointer data)
{
  TuneCall *c = data;
  MtDaemonVm *vm = g_hash_table_lookup (c->d->vms, c->uuid);
  gint64 now = g_get_monotonic_time ();
  MtDaemonTune *t;

  if (vm == NULL || vm->tune.seq != c->seq)
    return;
  t = &vm->tune;
  t->in_flight = FALSE;
  if (error != NULL) {
    back_off (t, FALSE, now);
    g_warning ("%s: page reporting not tuned: %s; next try in %.0f s", vm->info->name,
               error->message, (double) mt_elapsed (t->retry_at, now) / G_USEC_PER_SEC);
  } else if (!reply->ok) {
    back_off (t, strcmp (reply->error, "unavailable") == 0, now);
    g_warning ("%s: the agent did not tune page reporting: %s (%s); next try in %.0f s",
               vm->info->name, reply->error, reply->message,
               (double) mt_elapsed (t->retry_at, now) / G_USEC_PER_SEC);
  } else {
    t->failures = 0;
    t->retry_at = MT_TIME_NEVER;
    g_info ("%s: page reporting tuned: the guest reads back delay %" G_GUINT64_FORMAT
            " ms, budget divisor %" G_GUINT64_FORMAT "%s",
            vm->info->name, reply->delay_ms, reply->budget_divisor,
            reply->delay_ms == c->delay_ms && reply->budget_divisor == c->divisor
              ? ""
              : " (not what was asked)");
  }
}

gboolean
mt_daemon_tune_send (MtDaemon *d, gpointer vm_ptr, const MtVmDecision *dec, gint64 now)
{
  static guint64 next_seq;
  MtDaemonVm *vm = vm_ptr;
  MtDaemonTune *t = &vm->tune;
  const MtVmSample *s = mt_vm_model_latest (vm->model);
  MtAgentLink *link = mt_daemon_agent_link (vm->agent);
  g_autoptr (GError) error = NULL;
  g_autofree char *why = NULL;
  TuneCall *c;

  if (dec->tune_delay_ms == 0 || link == NULL || s == NULL || t->in_flight
      || mt_elapsed (now, t->sent_at) < MT_DAEMON_TUNE_INTERVAL
      || (t->retry_at != MT_TIME_NEVER && now < t->retry_at))
    return FALSE;
  /* Only a guest that reports the tunables has them, and only what
   * differs is asked. */
  if (s->reporting_delay_ms == MT_UNKNOWN || s->reporting_budget_divisor == MT_UNKNOWN
      || (s->reporting_delay_ms == dec->tune_delay_ms
          && s->reporting_budget_divisor == dec->tune_divisor))
    return FALSE;

  c = g_new0 (TuneCall, 1);
  c->d = d;
  c->uuid = g_strdup (vm->info->uuid);
  c->seq = ++next_seq;
  c->delay_ms = dec->tune_delay_ms;
  c->divisor = dec->tune_divisor;
  if (!mt_agent_link_tune_reporting (link, dec->tune_delay_ms, dec->tune_divisor,
                                     MT_DAEMON_TUNE_TIMEOUT_MS, on_tune_reply, c, tune_call_free,
                                     &error)) {
    /* Not sent (no agent now, too many requests waiting): the next plan
     * asks again; not a failure of the guest's. */
    g_debug ("%s: page reporting not tuned now: %s", vm->info->name, error->message);
    return FALSE;
  }
  t->in_flight = TRUE;
  t->seq = next_seq;
  t->sent_at = now;
  why = mt_vm_decision_format_tune (dec);
  g_message ("%s: tune page reporting: delay %" G_GUINT64_FORMAT " -> %u ms, budget divisor "
             "%" G_GUINT64_FORMAT " -> %u: %s",
             vm->info->name, s->reporting_delay_ms, dec->tune_delay_ms, s->reporting_budget_divisor,
             dec->tune_divisor, why);
  return TRUE;
}
