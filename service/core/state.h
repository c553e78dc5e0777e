/* state.h: what must survive a daemon restart, per VM (keyed by UUID):
 * learned headroom and kernel reserve, the rise floor and the measured
 * stall of the stall budget, stuck marks, the last target.  Kept as one GKeyFile
 * under the state directory, written atomically (write + rename) so a
 * crash mid-write leaves the previous file intact.
 *
 * Times are wall-clock seconds (g_get_real_time / G_USEC_PER_SEC):
 * monotonic time does not survive a restart.
 */
#pragma once

#include <glib.h>

typedef struct {
  guint64 headroom;    /* learned headroom, bytes; 0 = none learned */
  guint64 reserve;     /* learned size - MemTotal (what the guest kernel keeps),
                          bytes; 0 = none learned */
  guint64 last_target; /* bytes; 0 = none */
  gboolean stuck;
  gboolean has_limits;  /* admin SetLimits in force */
  char *stuck_reason;   /* owned; NULL when not stuck */
  gint64 stuck_since;   /* wall-clock seconds */
  guint64 limit_min;    /* bytes */
  guint64 limit_max;    /* bytes */
  guint64 rise_floor;   /* largest sudden rise that found the guest short, bytes; 0 = none */
  gint64 rise_floor_at; /* wall-clock seconds it was learned (at the latest) */
  guint64 stall_us;     /* the stall budget's decayed sum of stalled µs, as of saved_at */
  gint64 saved_at;      /* wall-clock seconds, set by mt_state_set_vm */
} MtVmState;

void mt_vm_state_clear (MtVmState *s);

typedef struct _MtState MtState;

/* A missing file is an empty state; a corrupt one is logged, moved aside
 * (state.ini.corrupt) and replaced by an empty state; one that cannot be
 * read (the directory is a file, an I/O error) is logged and left where
 * it is: losing learned values must never stop the daemon. */
MtState *mt_state_load (const char *dir);
void mt_state_free (MtState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtState, mt_state_free)

const char *mt_state_get_path (MtState *state);

/* FALSE when the VM has no saved state; *out is cleared first. */
gboolean mt_state_get_vm (MtState *state, const char *uuid, MtVmState *out);
void mt_state_set_vm (MtState *state, const char *uuid, const MtVmState *in, gint64 now_wall);
void mt_state_remove_vm (MtState *state, const char *uuid);
/* Drop entries older than max_age seconds (VMs gone for good). */
void mt_state_expire (MtState *state, gint64 now_wall, gint64 max_age);

/* Writes only when something changed since the last save. */
gboolean mt_state_save (MtState *state, GError **error);
