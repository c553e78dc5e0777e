/* daemon-control.c: admin requests: mode, per-VM limits, pins (leases on
 * a size) and reservations (room for a VM about to start).  Each request
 * is checked against the VM table and recorded in the daemon's MtControl
 * (core/control.c), the one place they live; every plan consults it.
 * Observers hear of it, and a plan runs when the control says so, from an
 * idle (mt_daemon_changed): nothing here plans or notifies itself. */
#define G_LOG_DOMAIN "memtided"

#include <string.h>
#include "daemon-private.h"

/* ---- a caller's values ---------------------------------------------------- */

/* 2^64 - 1 is MT_UNKNOWN to everything in memtided (and would be shown
 * as "unknown"): a caller's size never is. */
static gboolean
check_size (const char *what, guint64 bytes, GError **error)
{
  if (bytes != MT_UNKNOWN)
    return TRUE;
  g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
               "%s %" G_GUINT64_FORMAT " bytes is out of range; expected a size below 2^64 − 1 "
               "bytes",
               what, bytes);
  return FALSE;
}

/* A caller's reason is logged and published: bounded, and text.  (D-Bus
 * checks UTF-8 already; this does not rely on it.)  The control escapes
 * what is not printable. */
static gboolean
check_reason (const char *reason, GError **error)
{
  gsize len = reason != NULL ? strlen (reason) : 0;

  if (len > MT_LEASE_REASON_MAX) {
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
                 "the reason is %" G_GSIZE_FORMAT " bytes long; at most %u bytes are allowed", len,
                 MT_LEASE_REASON_MAX);
    return FALSE;
  }
  if (reason != NULL && !g_utf8_validate (reason, -1, NULL)) {
    g_set_error_literal (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
                         "the reason is not valid UTF-8");
    return FALSE;
  }
  return TRUE;
}

/* ---- mode ---------------------------------------------------------------- */

void
mt_daemon_set_mode (MtDaemon *d, MtMode mode)
{
  MtMode old = mt_daemon_get_mode (d);
  MtControlChange change = mt_control_set_mode (d->control, mode, d->host_policy.dry_run);

  if (old != mode)
    g_message ("Mode %s -> %s", mt_mode_to_string (old), mt_mode_to_string (mode));
  mt_daemon_changed (d, change, NULL, NULL);
}

/* ---- limits --------------------------------------------------------------- */

gboolean
mt_daemon_set_limits (MtDaemon *d, const char *name, guint64 min, guint64 max, GError **error)
{
  const char *uuid = NULL;
  MtDaemonVm *vm = mt_daemon_find_vm (d, name, &uuid, error);
  g_autofree char *smin = NULL;
  g_autofree char *smax = NULL;
  MtControlChange change;

  if (!vm || !check_size ("min", min, error) || !check_size ("max", max, error))
    return FALSE;
  if (min == 0 && max == 0) {
    change = mt_control_set_limits (d->control, uuid, 0, 0);
    g_message ("%s: admin limits cleared, policy files apply", vm->info->name);
    mt_daemon_save_vm_state (d, uuid, vm);
    mt_daemon_changed (d, change, uuid, NULL);
    return TRUE;
  }
  smin = mt_format_bytes (min);
  smax = mt_format_bytes (max);
  if (min > max) {
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT, "min %s is above max %s",
                 smin, smax);
    return FALSE;
  }
  if (min > mt_daemon_vm_domain_max (vm)) {
    g_autofree char *cap = mt_format_bytes (mt_daemon_vm_domain_max (vm));
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
                 "min %s is above what VM %s can have (%s: its maximum)", smin, vm->info->name,
                 cap);
    return FALSE;
  }
  change = mt_control_set_limits (d->control, uuid, min, max);
  g_message ("%s: admin limits min %s max %s", vm->info->name, smin, smax);
  mt_daemon_save_vm_state (d, uuid, vm);
  mt_daemon_changed (d, change, uuid, NULL);
  return TRUE;
}

/* ---- pins ------------------------------------------------------------------- */

guint
mt_daemon_pin (MtDaemon *d, const char *name, guint64 size, const char *reason, const char *holder,
               GError **error)
{
  const char *uuid = NULL;
  MtDaemonVm *vm = mt_daemon_find_vm (d, name, &uuid, error);
  g_autofree char *ssize = NULL;
  MtControlChange change;
  guint cookie;

  if (!vm || !check_size ("size", size, error) || !check_reason (reason, error))
    return 0;
  ssize = mt_format_bytes (size);
  if (size == 0 || size > mt_daemon_vm_domain_max (vm)) {
    g_autofree char *cap = mt_format_bytes (mt_daemon_vm_domain_max (vm));
    g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_INVALID_ARGUMENT,
                 "cannot pin VM %s at %s: expected a size above 0 and at most %s "
                 "(its maximum)",
                 vm->info->name, ssize, cap);
    return 0;
  }
  change = mt_control_pin (d->control, uuid, size, reason, holder, &cookie);
  g_message ("%s: pinned at %s (pin %u): %s", vm->info->name, ssize, cookie,
             mt_control_lookup_lease (d->control, cookie)->reason);
  mt_daemon_changed (d, change, uuid, "pin");
  return cookie;
}

/* Ends a lease of the given kind; NoSuchCookie names what could have
 * ended it. */
static gboolean
end_lease (MtDaemon *d, guint cookie, MtLeaseKind kind, GError **error)
{
  const MtLease *lease = mt_control_lookup_lease (d->control, cookie);
  g_autoptr (MtLease) ended = NULL;
  MtControlChange change;

  if (!lease || lease->kind != kind) {
    if (kind == MT_LEASE_PIN)
      g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_NO_SUCH_COOKIE,
                   "no pin %u (already released, its VM stopped, or its holder left the bus)",
                   cookie);
    else
      g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_NO_SUCH_COOKIE,
                   "no reservation %u (already released, failed, or its holder left the bus)",
                   cookie);
    return FALSE;
  }
  change = mt_control_end_lease (d->control, cookie, &ended);
  if (kind == MT_LEASE_PIN) {
    MtDaemonVm *vm = mt_daemon_lookup_vm (d, ended->uuid, NULL);
    g_message ("%s: pin %u released", vm ? vm->info->name : ended->uuid, cookie);
  } else {
    g_message ("Reservation %u released", cookie);
  }
  mt_daemon_changed (d, change, ended->uuid, NULL);
  return TRUE;
}

gboolean
mt_daemon_unpin (MtDaemon *d, guint cookie, GError **error)
{
  return end_lease (d, cookie, MT_LEASE_PIN, error);
}

/* ---- reservations -------------------------------------------------------- */

guint
mt_daemon_reserve (MtDaemon *d, guint64 bytes, const char *reason, gint64 timeout,
                   const char *holder, GError **error)
{
  g_autofree char *sbytes = mt_format_bytes (bytes);
  MtControlChange change;
  guint cookie;

  if (!check_size ("size", bytes, error) || !check_reason (reason, error))
    return 0;
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
      mins = mt_sat_add (mins, mt_daemon_vm_floor (value));
    /* d->budget already has the existing reservations taken out. */
    room = mt_sat_sub (d->budget, mins);
    if (bytes > room) {
      g_autofree char *sroom = mt_format_bytes (room);
      g_autofree char *smins = mt_format_bytes (mins);
      g_autofree char *sbudget = mt_format_bytes (d->budget);
      g_autofree char *who = mt_daemon_describe_blockers (d);
      g_set_error (error, MT_DAEMON_ERROR, MT_DAEMON_ERROR_CANNOT_RESERVE,
                   "cannot reserve %s: at most %s can be freed; the VMs' minimums (or sizes, "
                   "where unmanaged or stuck) take %s of the %s budget; largest: %s",
                   sbytes, sroom, smins, sbudget, who);
      return 0;
    }
  }
  change = mt_control_reserve (d->control, bytes, reason, holder, g_get_monotonic_time () + timeout,
                               &cookie);
  g_message ("Reservation %u: making room for %s within %" G_GINT64_FORMAT " s: %s", cookie, sbytes,
             timeout / G_USEC_PER_SEC, mt_control_lookup_lease (d->control, cookie)->reason);
  mt_daemon_changed (d, change, NULL, "reservation");
  return cookie;
}

gboolean
mt_daemon_release (MtDaemon *d, guint cookie, GError **error)
{
  return end_lease (d, cookie, MT_LEASE_RESERVATION, error);
}

/* ---- leases --------------------------------------------------------------- */

GPtrArray *
mt_daemon_end_holder_leases (MtDaemon *d, const char *holder)
{
  GPtrArray *ended = NULL;
  MtControlChange change = mt_control_end_holder (d->control, holder, &ended);

  if (!ended)
    return g_ptr_array_new_with_free_func ((GDestroyNotify) mt_lease_free);
  for (guint i = 0; i < ended->len; i++) {
    const MtLease *lease = ended->pdata[i];

    mt_daemon_changed (d, change, lease->uuid, NULL);
  }
  return ended;
}

MtLease *
mt_daemon_get_lease (MtDaemon *d, guint cookie)
{
  const MtLease *lease = mt_control_lookup_lease (d->control, cookie);

  return lease ? mt_lease_copy (lease) : NULL;
}

GPtrArray *
mt_daemon_list_leases (MtDaemon *d, MtLeaseKind kind, const char *uuid)
{
  return mt_control_list_leases (d->control, kind, uuid);
}
