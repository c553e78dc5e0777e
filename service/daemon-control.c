/* daemon-control.c: how admins steer the daemon: mode, per-VM limits,
 * pins (leases on a size) and reservations (room for a VM about to
 * start).  All of it works by changing the policy the planner sees; the
 * planner itself knows nothing of it. */
#define G_LOG_DOMAIN "memtided"

#include "daemon-private.h"

typedef struct {
  guint cookie;
  char *uuid;
  guint64 size;
  char *reason;
} MtPin;

typedef struct {
  guint cookie;
  guint64 bytes;
  char *reason;
  gint64 deadline; /* monotonic µs */
  gboolean done;   /* room was made; memory stays set aside */
} MtReservation;

G_DEFINE_QUARK (memtide - daemon - error - quark, mt_daemon_error)

static void
pin_free (MtPin *pin)
{
  g_free (pin->uuid);
  g_free (pin->reason);
  g_free (pin);
}

static void
reservation_free (MtReservation *r)
{
  g_free (r->reason);
  g_free (r);
}

void
mt_daemon_control_init (MtDaemon *d)
{
  d->pins = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) pin_free);
  d->reservations = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) reservation_free);
  d->next_cookie = 1;
}

void
mt_daemon_control_free (MtDaemon *d)
{
  g_clear_pointer (&d->pins, g_hash_table_unref);
  g_clear_pointer (&d->reservations, g_hash_table_unref);
}

static guint
new_cookie (MtDaemon *d)
{
  /* Cookies are never 0 and never reused while the daemon runs. */
  if (d->next_cookie == 0)
    d->next_cookie = 1;
  return d->next_cookie++;
}

/* ---- mode ---------------------------------------------------------------- */

const char *
mt_mode_to_string (MtMode mode)
{
  switch (mode) {
  case MT_MODE_ACTIVE:
    return "active";
  case MT_MODE_DRY_RUN:
    return "dry-run";
  case MT_MODE_PAUSED:
    return "paused";
  }
  return "unknown";
}

gboolean
mt_mode_from_string (const char *text, MtMode *out)
{
  for (MtMode m = MT_MODE_ACTIVE; m <= MT_MODE_PAUSED; m++) {
    if (g_strcmp0 (text, mt_mode_to_string (m)) == 0) {
      *out = m;
      return TRUE;
    }
  }
  return FALSE;
}

MtMode
mt_daemon_get_mode (MtDaemon *d)
{
  if (d->has_mode_override)
    return d->mode_override;
  return d->host_policy.dry_run ? MT_MODE_DRY_RUN : MT_MODE_ACTIVE;
}

void
mt_daemon_set_mode (MtDaemon *d, MtMode mode)
{
  MtMode old = mt_daemon_get_mode (d);

  d->has_mode_override = TRUE;
  d->mode_override = mode;
  if (old != mode)
    g_message ("Mode %s -> %s", mt_mode_to_string (old), mt_mode_to_string (mode));
}

/* ---- limits and pins ----------------------------------------------------- */

static guint64
domain_max (const MtDaemonVm *vm)
{
  return mt_sat_add (vm->info->base_memory, vm->info->vmem_size);
}

gboolean
mt_daemon_set_limits (MtDaemon *d, const char *name, guint64 min, guint64 max, GError **error)
{
  const char *uuid = NULL;
  MtDaemonVm *vm = mt_daemon_find_vm (d, name, &uuid, error);
  g_autofree char *smin = NULL;
  g_autofree char *smax = NULL;

  if (!vm)
    return FALSE;
  if (min == 0 && max == 0) {
    vm->has_limits = FALSE;
    vm->limit_min = vm->limit_max = 0;
    g_message ("%s: admin limits cleared, policy files apply", vm->info->name);
    mt_daemon_save_vm_state (d, uuid, vm);
    return TRUE;
  }
  smin = mt_format_bytes (min);
  smax = mt_format_bytes (max);
  if (min > max) {
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT, "min %s is above max %s",
                 smin, smax);
    return FALSE;
  }
  if (min > domain_max (vm)) {
    g_autofree char *cap = mt_format_bytes (domain_max (vm));
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
                 "min %s is above what VM %s can have (%s: boot memory + virtio-mem)", smin,
                 vm->info->name, cap);
    return FALSE;
  }
  vm->has_limits = TRUE;
  vm->limit_min = min;
  vm->limit_max = max;
  g_message ("%s: admin limits min %s max %s", vm->info->name, smin, smax);
  mt_daemon_save_vm_state (d, uuid, vm);
  return TRUE;
}

/* The newest pin of a VM wins. */
static const MtPin *
vm_pin (MtDaemon *d, const char *uuid)
{
  GHashTableIter iter;
  gpointer value;
  const MtPin *best = NULL;

  /* Asked for every VM on every plan: most hosts have no pin at all. */
  if (g_hash_table_size (d->pins) == 0)
    return NULL;
  g_hash_table_iter_init (&iter, d->pins);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    const MtPin *pin = value;
    if (g_str_equal (pin->uuid, uuid) && (!best || pin->cookie > best->cookie))
      best = pin;
  }
  return best;
}

gboolean
mt_daemon_vm_is_pinned (MtDaemon *d, const char *uuid)
{
  return vm_pin (d, uuid) != NULL;
}

guint
mt_daemon_pin (MtDaemon *d, const char *name, guint64 size, const char *reason, GError **error)
{
  const char *uuid = NULL;
  MtDaemonVm *vm = mt_daemon_find_vm (d, name, &uuid, error);
  g_autofree char *ssize = NULL;
  MtPin *pin;

  if (!vm)
    return 0;
  ssize = mt_format_bytes (size);
  if (size == 0 || size > domain_max (vm)) {
    g_autofree char *cap = mt_format_bytes (domain_max (vm));
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
                 "cannot pin VM %s at %s: expected a size above 0 and at most %s "
                 "(boot memory + virtio-mem)",
                 vm->info->name, ssize, cap);
    return 0;
  }
  pin = g_new0 (MtPin, 1);
  pin->cookie = new_cookie (d);
  pin->uuid = g_strdup (uuid);
  pin->size = size;
  pin->reason = g_strdup (reason && *reason ? reason : "no reason given");
  g_hash_table_insert (d->pins, GUINT_TO_POINTER (pin->cookie), pin);
  g_message ("%s: pinned at %s (pin %u): %s", vm->info->name, ssize, pin->cookie, pin->reason);
  mt_daemon_plan_now (d, "pin");
  return pin->cookie;
}

gboolean
mt_daemon_unpin (MtDaemon *d, guint cookie, GError **error)
{
  MtPin *pin = g_hash_table_lookup (d->pins, GUINT_TO_POINTER (cookie));
  MtDaemonVm *vm;

  if (!pin) {
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_NO_SUCH_COOKIE,
                 "no pin %u (already released, or its holder left the bus)", cookie);
    return FALSE;
  }
  vm = mt_daemon_lookup_vm (d, pin->uuid, NULL);
  g_message ("%s: pin %u released", vm ? vm->info->name : pin->uuid, cookie);
  g_hash_table_remove (d->pins, GUINT_TO_POINTER (cookie));
  return TRUE;
}

void
mt_daemon_control_vm_policy (MtDaemon *d, const char *uuid, MtDaemonVm *vm, MtVmPolicy *out)
{
  const MtPin *pin = vm_pin (d, uuid);

  *out = vm->policy;
  if (pin) {
    out->min = out->max = (MtSize){ .is_percent = FALSE, .bytes = pin->size };
    return;
  }
  if (vm->has_limits) {
    out->min = (MtSize){ .is_percent = FALSE, .bytes = vm->limit_min };
    out->max = (MtSize){ .is_percent = FALSE, .bytes = vm->limit_max };
  }
}

void
mt_daemon_control_vm_removed (MtDaemon *d, const char *uuid)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, d->pins);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    if (g_str_equal (((MtPin *) value)->uuid, uuid))
      g_hash_table_iter_remove (&iter);
  }
}

/* ---- reservations -------------------------------------------------------- */

static guint64
reserved_total (MtDaemon *d)
{
  GHashTableIter iter;
  gpointer value;
  guint64 total = 0;

  g_hash_table_iter_init (&iter, d->reservations);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    total = mt_sat_add (total, ((MtReservation *) value)->bytes);
  return total;
}

void
mt_daemon_control_host_policy (MtDaemon *d, MtHostPolicy *out)
{
  guint64 reserved = reserved_total (d);

  *out = d->host_policy;
  out->reserve = mt_sat_add (out->reserve, reserved);
  /* An explicit budget is what the VMs may hold: a reservation takes
   * from it too (a derived budget loses it through the reserve). */
  if (out->budget > 0)
    out->budget = MAX (mt_sat_sub (out->budget, reserved), 1);
  if (d->has_mode_override)
    out->dry_run = d->mode_override == MT_MODE_DRY_RUN;
}

static guint64 floor_of (const MtDaemonVm *vm);

static int
compare_floor_desc (gconstpointer a, gconstpointer b)
{
  guint64 ma = floor_of (*(const MtDaemonVm *const *) a);
  guint64 mb = floor_of (*(const MtDaemonVm *const *) b);
  return ma < mb ? 1 : ma > mb ? -1 : 0;
}

/* What a reservation can never take from a VM: its min when it is
 * managed; else what the planner counts it at (its size, or for a VM
 * whose size is not known yet, what it holds or could hold). */
static guint64
floor_of (const MtDaemonVm *vm)
{
  MtVmDecision dec;

  if (!vm->has_decision)
    return domain_max (vm);
  mt_daemon_vm_decision (vm, &dec);
  if (dec.managed && dec.min != MT_UNKNOWN)
    return dec.min;
  if (dec.committed != MT_UNKNOWN)
    return dec.committed;
  return domain_max (vm);
}

/* "web1 (min 2.0 GiB), db (min 1.0 GiB, stuck: ...)": who holds memory
 * that a reservation cannot take. */
static char *
describe_blockers (MtDaemon *d)
{
  g_autoptr (GPtrArray) vms = g_ptr_array_new ();
  g_autoptr (GString) s = g_string_new (NULL);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, d->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (vms, value);
  g_ptr_array_sort (vms, compare_floor_desc);
  for (guint i = 0; i < vms->len && i < 5; i++) {
    MtDaemonVm *vm = vms->pdata[i];
    g_autofree char *floor = mt_format_bytes (floor_of (vm));
    MtVmDecision dec = { .current = MT_UNKNOWN };
    g_autofree char *cur = NULL;
    char stuck[MT_STUCK_REASON_LEN];

    if (vm->has_decision)
      mt_daemon_vm_decision (vm, &dec);
    cur =
      dec.current != MT_UNKNOWN ? mt_format_bytes (dec.current) : g_strdup ("size not known yet");

    g_string_append_printf (s, "%s%s (at %s, keeps %s%s%s)", i ? ", " : "", vm->info->name, cur,
                            floor, vm->model->control.stuck ? ", stuck: " : "",
                            mt_vm_control_stuck_reason (&vm->model->control, stuck));
  }
  if (vms->len > 5)
    g_string_append_printf (s, " and %u more", vms->len - 5);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

guint
mt_daemon_reserve (MtDaemon *d, guint64 bytes, const char *reason, gint64 timeout, GError **error)
{
  g_autofree char *sbytes = mt_format_bytes (bytes);
  MtReservation *r;

  if (bytes == 0 || timeout <= 0) {
    g_set_error (
      error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
      "a reservation needs a size above 0 and a timeout above 0 (got %s, %" G_GINT64_FORMAT " s)",
      sbytes, timeout / G_USEC_PER_SEC);
    return 0;
  }
  /* Refuse at once what the policy can never allow: the VMs' minimums
   * plus every reservation must fit the budget. */
  if (d->budget != MT_UNKNOWN) {
    GHashTableIter iter;
    gpointer value;
    guint64 mins = 0;
    guint64 room;

    g_hash_table_iter_init (&iter, d->vms);
    while (g_hash_table_iter_next (&iter, NULL, &value))
      mins = mt_sat_add (mins, floor_of (value));
    /* d->budget already has the existing reservations taken out. */
    room = mt_sat_sub (d->budget, mins);
    if (bytes > room) {
      g_autofree char *sroom = mt_format_bytes (room);
      g_autofree char *smins = mt_format_bytes (mins);
      g_autofree char *sbudget = mt_format_bytes (d->budget);
      g_autofree char *who = describe_blockers (d);
      g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_CANNOT_RESERVE,
                   "cannot reserve %s: at most %s can be freed; the VMs' minimums (or sizes, "
                   "where unmanaged or stuck) take %s of the %s budget; largest: %s",
                   sbytes, sroom, smins, sbudget, who);
      return 0;
    }
  }
  r = g_new0 (MtReservation, 1);
  r->cookie = new_cookie (d);
  r->bytes = bytes;
  r->reason = g_strdup (reason && *reason ? reason : "no reason given");
  r->deadline = g_get_monotonic_time () + timeout;
  g_hash_table_insert (d->reservations, GUINT_TO_POINTER (r->cookie), r);
  g_message ("Reservation %u: making room for %s within %" G_GINT64_FORMAT " s: %s", r->cookie,
             sbytes, timeout / G_USEC_PER_SEC, r->reason);
  mt_daemon_plan_now (d, "reservation");
  return r->cookie;
}

gboolean
mt_daemon_release (MtDaemon *d, guint cookie, GError **error)
{
  if (!g_hash_table_remove (d->reservations, GUINT_TO_POINTER (cookie))) {
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_NO_SUCH_COOKIE,
                 "no reservation %u (already released, failed, or its holder left the bus)",
                 cookie);
    return FALSE;
  }
  g_message ("Reservation %u released", cookie);
  return TRUE;
}

/* A reservation is done when the VMs hold no more than the budget with
 * the reservation taken out, i.e. the room really is there. */
void
mt_daemon_control_after_plan (MtDaemon *d, const MtPlan *plan)
{
  GHashTableIter iter;
  gpointer value;
  gint64 now = plan->now;

  g_hash_table_iter_init (&iter, d->reservations);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    MtReservation *r = value;
    g_autofree char *sbytes = NULL;
    g_autofree char *msg = NULL;
    guint cookie = r->cookie;

    if (r->done)
      continue;
    sbytes = mt_format_bytes (r->bytes);
    if (plan->budget != MT_UNKNOWN && plan->committed <= plan->budget) {
      r->done = TRUE;
      msg = g_strdup_printf ("room for %s is free: %s", sbytes, r->reason);
      g_message ("Reservation %u done: %s", cookie, msg);
      MT_DAEMON_NOTIFY (d, reservation_done, cookie, TRUE, msg);
    } else if (now >= r->deadline) {
      g_autofree char *who = describe_blockers (d);
      g_autofree char *over = mt_format_bytes (mt_sat_sub (plan->committed, plan->budget));
      msg = g_strdup_printf ("could not make room for %s in time: the VMs still hold %s "
                             "too much; largest: %s",
                             sbytes, over, who);
      g_warning ("Reservation %u failed: %s", cookie, msg);
      g_hash_table_iter_remove (&iter);
      MT_DAEMON_NOTIFY (d, reservation_done, cookie, FALSE, msg);
    }
  }
}
