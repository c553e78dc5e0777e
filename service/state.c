/* state.c: per-VM state that survives restarts, in one GKeyFile. */
#define G_LOG_DOMAIN "memtide-state"

#include <errno.h>
#include <glib/gstdio.h>

#include "state.h"

struct _MtState {
  char *dir;
  char *path;
  GKeyFile *kf;
  gboolean dirty;
};

void
mt_vm_state_clear (MtVmState *s)
{
  g_clear_pointer (&s->stuck_reason, g_free);
  *s = (MtVmState) { 0 };
}

MtState *
mt_state_load (const char *dir)
{
  MtState *state = g_new0 (MtState, 1);
  g_autoptr(GError) error = NULL;

  state->dir = g_strdup (dir);
  state->path = g_build_filename (dir, "state.ini", NULL);
  state->kf = g_key_file_new ();
  if (!g_key_file_load_from_file (state->kf, state->path, G_KEY_FILE_NONE, &error)) {
    if (!g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      g_autofree char *aside = g_strconcat (state->path, ".corrupt", NULL);
      g_warning ("Cannot read state %s (%s); moved it to %s and starting with no learned state",
                 state->path, error->message, aside);
      if (g_rename (state->path, aside) < 0)
        g_warning ("Cannot move %s aside: %s", state->path, g_strerror (errno));
      g_key_file_free (state->kf);
      state->kf = g_key_file_new ();
    }
  }
  return state;
}

void
mt_state_free (MtState *state)
{
  if (!state)
    return;
  g_key_file_free (state->kf);
  g_free (state->dir);
  g_free (state->path);
  g_free (state);
}

const char *
mt_state_get_path (MtState *state)
{
  return state->path;
}

static guint64
get_u64 (GKeyFile *kf, const char *group, const char *key)
{
  g_autoptr(GError) error = NULL;
  guint64 v = g_key_file_get_uint64 (kf, group, key, &error);
  return error ? 0 : v;
}

static gint64
get_i64 (GKeyFile *kf, const char *group, const char *key)
{
  g_autoptr(GError) error = NULL;
  gint64 v = g_key_file_get_int64 (kf, group, key, &error);
  return error ? 0 : v;
}

gboolean
mt_state_get_vm (MtState *state, const char *uuid, MtVmState *out)
{
  *out = (MtVmState) { 0 };
  if (!g_key_file_has_group (state->kf, uuid))
    return FALSE;
  out->headroom = get_u64 (state->kf, uuid, "headroom");
  out->last_target = get_u64 (state->kf, uuid, "last-target");
  out->stuck = g_key_file_get_boolean (state->kf, uuid, "stuck", NULL);
  if (out->stuck)
    out->stuck_reason = g_key_file_get_string (state->kf, uuid, "stuck-reason", NULL);
  out->stuck_since = get_i64 (state->kf, uuid, "stuck-since");
  out->has_limits = g_key_file_get_boolean (state->kf, uuid, "limits", NULL);
  out->limit_min = get_u64 (state->kf, uuid, "limit-min");
  out->limit_max = get_u64 (state->kf, uuid, "limit-max");
  out->saved_at = get_i64 (state->kf, uuid, "saved-at");
  return TRUE;
}

void
mt_state_set_vm (MtState *state, const char *uuid, const MtVmState *in, gint64 now_wall)
{
  MtVmState old;
  gboolean same;

  if (mt_state_get_vm (state, uuid, &old)) {
    same = old.headroom == in->headroom && old.last_target == in->last_target &&
           old.stuck == in->stuck && old.stuck_since == in->stuck_since &&
           old.has_limits == in->has_limits && old.limit_min == in->limit_min &&
           old.limit_max == in->limit_max &&
           g_strcmp0 (old.stuck_reason, in->stuck_reason) == 0;
    mt_vm_state_clear (&old);
    if (same)
      return;
  }
  g_key_file_remove_group (state->kf, uuid, NULL);
  g_key_file_set_uint64 (state->kf, uuid, "headroom", in->headroom);
  g_key_file_set_uint64 (state->kf, uuid, "last-target", in->last_target);
  g_key_file_set_boolean (state->kf, uuid, "stuck", in->stuck);
  if (in->stuck && in->stuck_reason)
    g_key_file_set_string (state->kf, uuid, "stuck-reason", in->stuck_reason);
  g_key_file_set_int64 (state->kf, uuid, "stuck-since", in->stuck_since);
  if (in->has_limits) {
    g_key_file_set_boolean (state->kf, uuid, "limits", TRUE);
    g_key_file_set_uint64 (state->kf, uuid, "limit-min", in->limit_min);
    g_key_file_set_uint64 (state->kf, uuid, "limit-max", in->limit_max);
  }
  g_key_file_set_int64 (state->kf, uuid, "saved-at", now_wall);
  state->dirty = TRUE;
}

void
mt_state_remove_vm (MtState *state, const char *uuid)
{
  if (g_key_file_remove_group (state->kf, uuid, NULL))
    state->dirty = TRUE;
}

void
mt_state_expire (MtState *state, gint64 now_wall, gint64 max_age)
{
  g_auto(GStrv) groups = g_key_file_get_groups (state->kf, NULL);

  for (guint i = 0; groups[i]; i++) {
    if (now_wall - get_i64 (state->kf, groups[i], "saved-at") > max_age)
      mt_state_remove_vm (state, groups[i]);
  }
}

gboolean
mt_state_save (MtState *state, GError **error)
{
  if (!state->dirty)
    return TRUE;
  if (g_mkdir_with_parents (state->dir, 0700) < 0) {
    int saved = errno;
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                 "cannot create state directory %s: %s", state->dir, g_strerror (saved));
    return FALSE;
  }
  /* g_key_file_save_to_file writes a temporary file and renames it. */
  if (!g_key_file_save_to_file (state->kf, state->path, error))
    return FALSE;
  state->dirty = FALSE;
  return TRUE;
}
