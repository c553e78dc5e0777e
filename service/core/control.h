/* control.h: what admins steer, as one value the daemon consults when it
 * plans: a mode override, per-VM limits, pins (leases on a VM's size) and
 * reservations (room on the host for a VM about to start).  Every lease
 * carries its holder, so the leases live here and nowhere else.
 *
 * API in a few lines:
 *   MtControl *c = mt_control_new ();
 *   change = mt_control_pin (c, uuid, size, reason, holder, &cookie);
 *   change = mt_control_reserve (c, bytes, reason, holder, deadline, &cookie);
 *   change = mt_control_end_holder (c, holder, &ended);     the holder left
 *       every change says whether to plan again now (MT_CONTROL_PLAN)
 *   mt_control_host_policy (c, &files, &hp);       at plan time: the host
 *   mt_control_vm_policy (c, uuid, &vm_files, &p); and each VM's policy
 *   done = mt_control_after_plan (c, budget, committed, now);
 *       reservations the plan completed, or that ran out of time
 *
 * Pure: no I/O, no clock (callers pass now and deadlines), no logging.
 * The daemon checks requests against its VMs, logs, plans and tells its
 * observers; this only keeps the state and the rules. */
#pragma once

#include <glib.h>
#include "policy.h"

typedef enum {
  MT_MODE_ACTIVE,  /* decide and resize */
  MT_MODE_DRY_RUN, /* decide and log, resize nothing */
  MT_MODE_PAUSED,  /* neither decide nor resize; keep observing */
} MtMode;

const char *mt_mode_to_string (MtMode mode);
gboolean mt_mode_from_string (const char *text, MtMode *out);

/* What a change means for the daemon. */
typedef enum {
  MT_CONTROL_SAME,    /* nothing anyone sees changed */
  MT_CONTROL_CHANGED, /* what the planner or a reader sees changed; the next tick will do */
  MT_CONTROL_PLAN,    /* plan again now: a request waits for the plan (a pin, a reservation) */
} MtControlChange;

typedef enum {
  MT_LEASE_PIN,         /* hold one VM at a size */
  MT_LEASE_RESERVATION, /* keep room free on the host */
} MtLeaseKind;

typedef struct {
  MtLeaseKind kind;
  guint cookie;    /* > 0, never reused while the MtControl lives */
  char *holder;    /* who asked (a bus client's unique name); ends with it */
  char *uuid;      /* pins: the VM; NULL for reservations */
  guint64 bytes;   /* pin size, or reservation size */
  char *reason;    /* never empty, one line (mt_text_escape_line) */
  gint64 deadline; /* reservations: the room must be there by then (monotonic µs) */
  gboolean done;   /* reservations: the room is there (and stays set aside) */
} MtLease;

MtLease *mt_lease_copy (const MtLease *lease);
void mt_lease_free (MtLease *lease);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtLease, mt_lease_free)

typedef struct _MtControl MtControl;

MtControl *mt_control_new (void);
void mt_control_free (MtControl *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtControl, mt_control_free)

/* ---- mode ---------------------------------------------------------------- */

/* The mode in force: the override, else the policy files' (dry-run or
 * active). */
MtMode mt_control_get_mode (const MtControl *c, gboolean files_dry_run);
/* Overrides the files' mode until the next call (or the end of c).
 * CHANGED when the mode in force changes. */
MtControlChange mt_control_set_mode (MtControl *c, MtMode mode, gboolean files_dry_run);

/* ---- per-VM limits ----------------------------------------------------------- */

/* Admin bounds that replace the policy's min and max of one VM (the
 * caller checked them against the domain); min = max = 0 clears them.
 * min > max is a programming error (SAME).  CHANGED when they differ
 * from the ones in force. */
MtControlChange mt_control_set_limits (MtControl *c, const char *uuid, guint64 min, guint64 max);
gboolean mt_control_get_limits (const MtControl *c, const char *uuid, guint64 *min, guint64 *max);

/* ---- leases ------------------------------------------------------------------- */

/* The longest reason a caller may give a lease, in bytes (before it is
 * escaped): a sentence, enough to say who and why. */
#define MT_LEASE_REASON_MAX 200

/* A new pin of a VM at `size` (> 0): the newest pin of a VM is in force.
 * An empty reason becomes "no reason given"; the reason is kept escaped
 * to one line (the caller checked its length).  PLAN. */
MtControlChange mt_control_pin (MtControl *c, const char *uuid, guint64 size, const char *reason,
                                const char *holder, guint *cookie);
/* A new reservation of `bytes` (> 0) to be made by `deadline`.  PLAN. */
MtControlChange mt_control_reserve (MtControl *c, guint64 bytes, const char *reason,
                                    const char *holder, gint64 deadline, guint *cookie);
/* Ends one lease.  *ended (may be NULL) gets it, for the caller to free;
 * SAME and NULL when there is no such lease. */
MtControlChange mt_control_end_lease (MtControl *c, guint cookie, MtLease **ended);
/* Ends every lease of a holder (it left).  *ended (may be NULL) gets a
 * GPtrArray of them, oldest first, NULL when there were none (SAME). */
MtControlChange mt_control_end_holder (MtControl *c, const char *holder, GPtrArray **ended);
/* The VM stopped: its pins end and its limits are forgotten here (the
 * daemon keeps limits in its state file). */
MtControlChange mt_control_vm_removed (MtControl *c, const char *uuid);

/* Borrowed: valid until the next change of c. */
const MtLease *mt_control_lookup_lease (const MtControl *c, guint cookie);
/* The pin in force on a VM (its newest), NULL when none. */
const MtLease *mt_control_vm_pin (const MtControl *c, const char *uuid);
/* Copies of the leases of one kind (and of one VM when uuid is not
 * NULL), oldest first; element type MtLease. */
GPtrArray *mt_control_list_leases (const MtControl *c, MtLeaseKind kind, const char *uuid);
/* The bytes all reservations set aside, done or not. */
guint64 mt_control_reserved (const MtControl *c);

/* ---- at plan time ------------------------------------------------------------- */

/* The policy files' host policy with the mode (dry-run) and the
 * reservations applied: the reserve grows by them, and an explicit
 * budget shrinks by them (never to 0, which would mean "derive"). */
void mt_control_host_policy (const MtControl *c, const MtHostPolicy *files, MtHostPolicy *out);
/* A VM's policy (files and metadata) with its pin (min = max = size) or
 * else its limits (replacing min and max) applied. */
void mt_control_vm_policy (const MtControl *c, const char *uuid, const MtVmPolicy *files,
                           MtVmPolicy *out);
/* After each plan, with its budget (MT_UNKNOWN = none) and what the VMs
 * hold: a reservation is done once committed <= budget (the budget has
 * the reservations taken out, so the room is there); one not done by its
 * deadline fails and ends.  Returns copies of the reservations that
 * became done (done TRUE) or failed (done FALSE), oldest first, or NULL
 * when none did. */
GPtrArray *mt_control_after_plan (MtControl *c, guint64 budget, guint64 committed, gint64 now);
