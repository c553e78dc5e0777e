/* control.c: admin control as plain data (see control.h).  Leases are
 * few (one per client request), so one array in creation order holds them
 * all; what the planner asks for every VM on every plan, its pin and its
 * limits, is one hash lookup, and none while no VM has either. */
#include "control.h"
#include "model.h"
#include "text.h"

/* A VM with a pin or limits. */
typedef struct {
  gboolean has_limits;
  guint64 limit_min;
  guint64 limit_max;
  GPtrArray *pins; /* borrowed MtLease, oldest first: the last is in force */
} ControlVm;

struct _MtControl {
  gboolean has_mode; /* else the policy files say */
  MtMode mode;
  GPtrArray *leases; /* MtLease, owned, oldest first */
  GHashTable *vms;   /* uuid -> ControlVm */
  guint64 reserved;  /* sum of the reservations' bytes */
  guint next_cookie;
};

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
mt_control_get_mode (const MtControl *c, gboolean files_dry_run)
{
  if (c->has_mode)
    return c->mode;
  return files_dry_run ? MT_MODE_DRY_RUN : MT_MODE_ACTIVE;
}

MtControlChange
mt_control_set_mode (MtControl *c, MtMode mode, gboolean files_dry_run)
{
  MtMode old = mt_control_get_mode (c, files_dry_run);

  c->has_mode = TRUE;
  c->mode = mode;
  return old == mode ? MT_CONTROL_SAME : MT_CONTROL_CHANGED;
}

/* ---- life ----------------------------------------------------------------- */

MtLease *
mt_lease_copy (const MtLease *lease)
{
  MtLease *copy = g_new (MtLease, 1);

  *copy = *lease;
  copy->holder = g_strdup (lease->holder);
  copy->uuid = g_strdup (lease->uuid);
  copy->reason = g_strdup (lease->reason);
  return copy;
}

void
mt_lease_free (MtLease *lease)
{
  if (!lease)
    return;
  g_free (lease->holder);
  g_free (lease->uuid);
  g_free (lease->reason);
  g_free (lease);
}

static void
control_vm_free (ControlVm *cvm)
{
  g_ptr_array_unref (cvm->pins);
  g_free (cvm);
}

MtControl *
mt_control_new (void)
{
  MtControl *c = g_new0 (MtControl, 1);

  c->leases = g_ptr_array_new_with_free_func ((GDestroyNotify) mt_lease_free);
  c->vms =
    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) control_vm_free);
  c->next_cookie = 1;
  return c;
}

void
mt_control_free (MtControl *c)
{
  if (!c)
    return;
  /* The VMs borrow their pins from the leases. */
  g_hash_table_unref (c->vms);
  g_ptr_array_unref (c->leases);
  g_free (c);
}

/* ---- per-VM entries --------------------------------------------------------- */

static ControlVm *
vm_entry (MtControl *c, const char *uuid)
{
  ControlVm *cvm = g_hash_table_lookup (c->vms, uuid);

  if (!cvm) {
    cvm = g_new0 (ControlVm, 1);
    cvm->pins = g_ptr_array_new ();
    g_hash_table_insert (c->vms, g_strdup (uuid), cvm);
  }
  return cvm;
}

/* Drops the entry once it holds nothing, so that a host without pins and
 * limits costs the planner no lookup at all. */
static void
vm_entry_prune (MtControl *c, const char *uuid)
{
  ControlVm *cvm = g_hash_table_lookup (c->vms, uuid);

  if (cvm && !cvm->has_limits && cvm->pins->len == 0)
    g_hash_table_remove (c->vms, uuid);
}

MtControlChange
mt_control_set_limits (MtControl *c, const char *uuid, guint64 min, guint64 max)
{
  ControlVm *cvm;
  gboolean clear = min == 0 && max == 0;

  g_return_val_if_fail (uuid != NULL, MT_CONTROL_SAME);
  g_return_val_if_fail (min <= max, MT_CONTROL_SAME);
  cvm = g_hash_table_lookup (c->vms, uuid);
  if (clear && (!cvm || !cvm->has_limits))
    return MT_CONTROL_SAME;
  if (!clear && cvm && cvm->has_limits && cvm->limit_min == min && cvm->limit_max == max)
    return MT_CONTROL_SAME;
  cvm = vm_entry (c, uuid);
  cvm->has_limits = !clear;
  cvm->limit_min = min;
  cvm->limit_max = max;
  vm_entry_prune (c, uuid);
  return MT_CONTROL_CHANGED;
}

gboolean
mt_control_get_limits (const MtControl *c, const char *uuid, guint64 *min, guint64 *max)
{
  const ControlVm *cvm = g_hash_table_lookup (c->vms, uuid);

  if (!cvm || !cvm->has_limits)
    return FALSE;
  *min = cvm->limit_min;
  *max = cvm->limit_max;
  return TRUE;
}

/* ---- leases ------------------------------------------------------------------- */

static MtLease *
lease_new (MtControl *c, MtLeaseKind kind, const char *holder, guint64 bytes, const char *reason)
{
  MtLease *lease = g_new0 (MtLease, 1);

  /* Cookies are never 0 and never reused while c lives. */
  if (c->next_cookie == 0)
    c->next_cookie = 1;
  lease->kind = kind;
  lease->cookie = c->next_cookie++;
  lease->holder = g_strdup (holder ? holder : "");
  lease->bytes = bytes;
  /* It goes into log lines and properties: one line, whatever it was. */
  lease->reason = mt_text_escape_line (reason && *reason ? reason : "no reason given");
  g_ptr_array_add (c->leases, lease);
  return lease;
}

MtControlChange
mt_control_pin (MtControl *c, const char *uuid, guint64 size, const char *reason,
                const char *holder, guint *cookie)
{
  MtLease *lease;

  g_return_val_if_fail (uuid != NULL && size > 0, MT_CONTROL_SAME);
  lease = lease_new (c, MT_LEASE_PIN, holder, size, reason);
  lease->uuid = g_strdup (uuid);
  g_ptr_array_add (vm_entry (c, uuid)->pins, lease);
  *cookie = lease->cookie;
  return MT_CONTROL_PLAN;
}

MtControlChange
mt_control_reserve (MtControl *c, guint64 bytes, const char *reason, const char *holder,
                    gint64 deadline, guint *cookie)
{
  MtLease *lease;

  g_return_val_if_fail (bytes > 0, MT_CONTROL_SAME);
  lease = lease_new (c, MT_LEASE_RESERVATION, holder, bytes, reason);
  lease->deadline = deadline;
  c->reserved = mt_sat_add (c->reserved, bytes);
  *cookie = lease->cookie;
  return MT_CONTROL_PLAN;
}

/* Takes lease number i out of c and returns it, now the caller's. */
static MtLease *
steal_lease (MtControl *c, guint i)
{
  MtLease *lease = g_ptr_array_steal_index (c->leases, i);

  if (lease->kind == MT_LEASE_PIN) {
    ControlVm *cvm = g_hash_table_lookup (c->vms, lease->uuid);

    if (cvm)
      g_ptr_array_remove (cvm->pins, lease);
    vm_entry_prune (c, lease->uuid);
  } else {
    /* Saturated sums cannot be undone exactly; recount then. */
    if (c->reserved == G_MAXUINT64) {
      c->reserved = 0;
      for (guint k = 0; k < c->leases->len; k++) {
        const MtLease *l = c->leases->pdata[k];
        if (l->kind == MT_LEASE_RESERVATION)
          c->reserved = mt_sat_add (c->reserved, l->bytes);
      }
    } else {
      c->reserved -= lease->bytes;
    }
  }
  return lease;
}

static gboolean
find_lease (const MtControl *c, guint cookie, guint *index)
{
  for (guint i = 0; i < c->leases->len; i++) {
    if (((const MtLease *) c->leases->pdata[i])->cookie == cookie) {
      *index = i;
      return TRUE;
    }
  }
  return FALSE;
}

MtControlChange
mt_control_end_lease (MtControl *c, guint cookie, MtLease **ended)
{
  guint i;
  MtLease *lease;

  if (ended)
    *ended = NULL;
  if (!find_lease (c, cookie, &i))
    return MT_CONTROL_SAME;
  lease = steal_lease (c, i);
  if (ended)
    *ended = lease;
  else
    mt_lease_free (lease);
  return MT_CONTROL_CHANGED;
}

MtControlChange
mt_control_end_holder (MtControl *c, const char *holder, GPtrArray **ended)
{
  GPtrArray *list = NULL;

  for (guint i = 0; i < c->leases->len;) {
    if (g_strcmp0 (((const MtLease *) c->leases->pdata[i])->holder, holder) != 0) {
      i++;
      continue;
    }
    if (!list)
      list = g_ptr_array_new_with_free_func ((GDestroyNotify) mt_lease_free);
    g_ptr_array_add (list, steal_lease (c, i));
  }
  if (ended)
    *ended = list;
  else if (list)
    g_ptr_array_unref (list);
  return list ? MT_CONTROL_CHANGED : MT_CONTROL_SAME;
}

MtControlChange
mt_control_vm_removed (MtControl *c, const char *uuid)
{
  ControlVm *cvm = g_hash_table_lookup (c->vms, uuid);
  gboolean had_pins = cvm && cvm->pins->len > 0;

  if (!cvm)
    return MT_CONTROL_SAME;
  cvm->has_limits = FALSE;
  for (guint i = 0; i < c->leases->len;) {
    const MtLease *lease = c->leases->pdata[i];

    if (lease->kind == MT_LEASE_PIN && g_str_equal (lease->uuid, uuid))
      mt_lease_free (steal_lease (c, i));
    else
      i++;
  }
  /* Pins end with their VM; limits only leave this table. */
  g_hash_table_remove (c->vms, uuid);
  return had_pins ? MT_CONTROL_CHANGED : MT_CONTROL_SAME;
}

const MtLease *
mt_control_lookup_lease (const MtControl *c, guint cookie)
{
  guint i;

  return find_lease (c, cookie, &i) ? c->leases->pdata[i] : NULL;
}

const MtLease *
mt_control_vm_pin (const MtControl *c, const char *uuid)
{
  const ControlVm *cvm;

  if (g_hash_table_size (c->vms) == 0)
    return NULL;
  cvm = g_hash_table_lookup (c->vms, uuid);
  return cvm && cvm->pins->len > 0 ? cvm->pins->pdata[cvm->pins->len - 1] : NULL;
}

GPtrArray *
mt_control_list_leases (const MtControl *c, MtLeaseKind kind, const char *uuid)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) mt_lease_free);

  for (guint i = 0; i < c->leases->len; i++) {
    const MtLease *lease = c->leases->pdata[i];

    if (lease->kind == kind && (!uuid || g_strcmp0 (lease->uuid, uuid) == 0))
      g_ptr_array_add (list, mt_lease_copy (lease));
  }
  return list;
}

guint64
mt_control_reserved (const MtControl *c)
{
  return c->reserved;
}

/* ---- at plan time ------------------------------------------------------------- */

void
mt_control_host_policy (const MtControl *c, const MtHostPolicy *files, MtHostPolicy *out)
{
  *out = *files;
  out->reserve = mt_sat_add (out->reserve, c->reserved);
  /* An explicit budget is what the VMs may hold: a reservation takes
   * from it too (a derived budget loses it through the reserve). */
  if (out->budget > 0)
    out->budget = MAX (mt_sat_sub (out->budget, c->reserved), 1);
  if (c->has_mode)
    out->dry_run = c->mode == MT_MODE_DRY_RUN;
}

void
mt_control_vm_policy (const MtControl *c, const char *uuid, const MtVmPolicy *files,
                      MtVmPolicy *out)
{
  const ControlVm *cvm;

  *out = *files;
  /* Asked for every VM on every plan: most hosts have no entry at all. */
  if (g_hash_table_size (c->vms) == 0)
    return;
  cvm = g_hash_table_lookup (c->vms, uuid);
  if (!cvm)
    return;
  if (cvm->pins->len > 0) {
    const MtLease *pin = cvm->pins->pdata[cvm->pins->len - 1];

    out->min = out->max = (MtSize){ .is_percent = FALSE, .bytes = pin->bytes };
    return;
  }
  if (cvm->has_limits) {
    out->min = (MtSize){ .is_percent = FALSE, .bytes = cvm->limit_min };
    out->max = (MtSize){ .is_percent = FALSE, .bytes = cvm->limit_max };
  }
}

GPtrArray *
mt_control_after_plan (MtControl *c, guint64 budget, guint64 committed, gint64 now)
{
  GPtrArray *list = NULL;
  gboolean room = budget != MT_UNKNOWN && committed <= budget;

  for (guint i = 0; i < c->leases->len;) {
    MtLease *lease = c->leases->pdata[i];

    if (lease->kind != MT_LEASE_RESERVATION || lease->done) {
      i++;
      continue;
    }
    if (!room && now < lease->deadline) {
      i++;
      continue;
    }
    if (!list)
      list = g_ptr_array_new_with_free_func ((GDestroyNotify) mt_lease_free);
    if (room) {
      lease->done = TRUE;
      g_ptr_array_add (list, mt_lease_copy (lease));
      i++;
    } else {
      g_ptr_array_add (list, steal_lease (c, i));
    }
  }
  return list;
}
