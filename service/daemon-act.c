/* daemon-act.c: the act step of the tick: a plan's resizes become calls
 * to the driver, run off the main loop by the resizer (one call per VM
 * in flight, several VMs at once), and their outcomes come back here on
 * the main loop, where they are logged and published (ActionApplied).
 *
 * The planner sees a call in flight through MtVmControl.call_since: it
 * plans nothing for that VM until the call returns, and marks it stuck
 * when the call stays blocked for stuck-timeout.
 */
#define G_LOG_DOMAIN "memtided"

#include "daemon-private.h"
#include "daemon-agent.h"
#include "log-event.h"
#include "resizer.h"

/* A call that returned after this long is worth a line of its own. */
#define SLOW_CALL (1 * G_USEC_PER_SEC)

/* A planned action, as it is published once its call returned. */
typedef struct {
  const char *mechanism; /* static */
  guint64 from, to;
  char *reason;
} ActRecord;

/* What the daemon remembers of one call until it returns: its actions
 * (one, or a cancel of a stalled unplug and a grow: the planner's two
 * actions for a VM become one call). */
typedef struct {
  ActRecord acts[2];
  guint n_acts;
} CallRecord;

static void
call_record_free (CallRecord *rec)
{
  for (guint i = 0; i < rec->n_acts; i++)
    g_free (rec->acts[i].reason);
  g_free (rec);
}

static const char *
action_mechanism (const MtAction *a)
{
  if (a->set_vmem && a->set_balloon)
    return "virtio-mem+balloon";
  return a->set_vmem ? "virtio-mem" : "balloon";
}

/* The planner's reason already names the VM, both sizes and how each
 * mechanism moves: one line says it all.  The journal gets them as
 * fields too, the reason without the "<vm>: " it begins with. */
static void
log_action (const MtAction *a, const char *vm, MtEvent event, const char *prefix)
{
  gsize len = strlen (vm);
  MtEventFields f = {
    .vm = vm,
    .sizes = TRUE,
    .size_from = a->from,
    .size_to = a->to,
    .mechanism = action_mechanism (a),
    .reason = strncmp (a->reason, vm, len) == 0 && g_str_has_prefix (a->reason + len, ": ")
                ? a->reason + len + 2
                : a->reason,
  };

  mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, event, &f, "%s%s%s", prefix,
                a->emergency ? "(emergency) " : "", a->reason);
}

static void
on_resize_done (const char *uuid, gpointer data, const GError *error, gint64 took,
                gpointer user_data)
{
  MtDaemon *d = user_data;
  CallRecord *rec = data;
  MtDaemonVm *vm = g_hash_table_lookup (d->vms, uuid);
  const char *name = vm != NULL ? vm->info->name : uuid;
  gint64 now = g_get_monotonic_time ();

  if (vm != NULL) {
    MtVmControl *c = &vm->model->control;

    c->call_since = MT_TIME_NEVER;
    /* The guest was asked only now: its time to move starts now, not
     * when the call was issued and waited on the hypervisor. */
    if (c->pending)
      c->progress_time = MAX (c->progress_time, now);
  }
  if (error != NULL) {
    MtEventFields f = {
      .vm = name,
      .sizes = rec->n_acts > 0,
      .size_from = rec->n_acts > 0 ? rec->acts[0].from : 0,
      .size_to = rec->n_acts > 0 ? rec->acts[rec->n_acts - 1].to : 0,
      .mechanism = rec->n_acts > 0 ? rec->acts[rec->n_acts - 1].mechanism : NULL,
      .reason = error->message,
    };

    mt_log_event (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, MT_EVENT_RESIZE_FAILED, &f,
                  "%s: resize failed: %s (the call took %.1f s)", name, error->message,
                  took / (double) G_USEC_PER_SEC);
    return;
  }
  if (took >= SLOW_CALL)
    g_message ("%s: the resize call returned after %.1f s", name, took / (double) G_USEC_PER_SEC);
  else
    g_debug ("%s: the resize call returned after %.1f ms", name, took / 1000.0);
  if (vm == NULL) {
    g_message ("%s: resized, but it is no longer managed", uuid);
    return;
  }
  for (guint i = 0; i < rec->n_acts; i++) {
    const ActRecord *act = &rec->acts[i];

    g_free (vm->last_action);
    vm->last_action = g_strdup (act->reason);
    vm->last_action_time = now;
    MT_DAEMON_NOTIFY (d, action_applied, uuid, act->mechanism, act->from, act->to, act->reason);
  }
}

void
mt_daemon_act_start (MtDaemon *d)
{
  d->resizer = mt_resizer_new (d->backend, on_resize_done, d);
}

void
mt_daemon_act_stop (MtDaemon *d)
{
  g_clear_pointer (&d->resizer, mt_resizer_free);
}

void
mt_daemon_act_vm_added (MtDaemon *d, const char *uuid, MtDaemonVm *vm)
{
  /* It went and came back while its call was in flight: still in flight. */
  if (d->resizer != NULL)
    vm->model->control.call_since = mt_resizer_in_flight (d->resizer, uuid);
}

/* Later actions of the plan for the same VM come on top of earlier ones
 * (a grow after the cancel of a stalled unplug): their sizes win. */
static void
merge_action (MtResize *r, const MtAction *a)
{
  if (a->set_vmem) {
    r->set_vmem = TRUE;
    r->vmem_requested = a->vmem_requested;
  }
  if (a->set_balloon) {
    r->set_balloon = TRUE;
    r->balloon = a->balloon;
  }
}

guint8 *
mt_daemon_act (MtDaemon *d, const MtPlan *plan, GPtrArray *order, gboolean dry_run)
{
  g_autofree gint *first = NULL; /* per VM: its first action, -1 = none */
  guint8 *issued;

  if (plan->n_actions == 0)
    return NULL;
  if (dry_run) {
    for (guint k = 0; k < plan->n_actions; k++)
      log_action (&plan->actions[k], ((MtDaemonVm *) order->pdata[plan->actions[k].vm])->info->name,
                  MT_EVENT_RESIZE_DRY_RUN, "dry-run, not applied: ");
    return NULL;
  }
  issued = g_new0 (guint8, order->len);
  first = g_new (gint, order->len);
  for (guint i = 0; i < order->len; i++)
    first[i] = -1;
  for (guint k = 0; k < plan->n_actions; k++)
    if (first[plan->actions[k].vm] < 0)
      first[plan->actions[k].vm] = (gint) k;

  for (guint k = 0; k < plan->n_actions; k++) {
    const MtAction *a = &plan->actions[k];
    MtDaemonVm *vm = order->pdata[a->vm];
    g_autoptr (GError) error = NULL;
    CallRecord *rec;
    MtResize resize = { 0 };

    if (first[a->vm] != (gint) k)
      continue; /* went with its VM's first action */
    rec = g_new0 (CallRecord, 1);
    for (guint j = k; j < plan->n_actions; j++) {
      const MtAction *b = &plan->actions[j];

      if (b->vm != a->vm)
        continue;
      if (rec->n_acts == G_N_ELEMENTS (rec->acts)) {
        g_warning ("%s: more than two actions in one plan; ignoring: %s", vm->info->name,
                   b->reason);
        continue;
      }
      merge_action (&resize, b);
      rec->acts[rec->n_acts++] = (ActRecord){
        .mechanism = action_mechanism (b),
        .from = b->from,
        .to = b->to,
        .reason = g_strdup (b->reason),
      };
    }
    if (!mt_resizer_submit (d->resizer, vm->info->uuid, &resize, rec,
                            (GDestroyNotify) call_record_free, &error)) {
      g_autofree char *prefix =
        g_strdup_printf ("resize deferred (%s), not applied: ", error->message);

      for (guint j = k; j < plan->n_actions; j++)
        if (plan->actions[j].vm == a->vm)
          log_action (&plan->actions[j], vm->info->name, MT_EVENT_RESIZE_DEFERRED, prefix);
      issued[a->vm] = MT_ACT_DEFERRED;
      continue;
    }
    for (guint j = k; j < plan->n_actions; j++)
      if (plan->actions[j].vm == a->vm)
        log_action (&plan->actions[j], vm->info->name, MT_EVENT_RESIZE, "resize: ");
    issued[a->vm] = MT_ACT_ISSUED;
    /* Ask the guest to drop cold page cache first, so the unplug or the
     * balloon finds free pages instead of forcing the guest to reclaim
     * under it; not waited for. */
    if (a->to < a->from)
      mt_daemon_agent_before_shrink (vm->agent, a->from, a->to);
  }
  return issued;
}

void
mt_daemon_act_after_plan (MtDaemon *d, MtDaemonVm *vm, guint8 issued, const MtVmControl *before,
                          gint64 now)
{
  MtVmControl *c = &vm->model->control;

  if (issued == MT_ACT_ISSUED) {
    c->call_since = now;
  } else if (issued == MT_ACT_DEFERRED) {
    /* The planner recorded it as issued; it was not. */
    c->last_action = before->last_action;
    c->pending = before->pending;
    c->last_from = before->last_from;
    c->last_target = before->last_target;
    c->best_distance = before->best_distance;
    c->progress_time = before->progress_time;
  }
}
