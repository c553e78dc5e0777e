/* state.c: per-VM state that survives restarts, in one key file.
 *
 * In memory the state is one small MtVmState per VM, not a GKeyFile: a
 * key file keeps every key and value as its own strings and list nodes,
 * ~600 bytes per VM (6 MiB at 10,000 VMs) for ~80 bytes of numbers.  The
 * file is parsed by GKeyFile at load and written as text at save, in the
 * same format (one group per VM, keys below). */
#define G_LOG_DOMAIN "memtide-state"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>

#include "state.h"

struct _MtState {
  char *dir;
  char *path;
  GHashTable *vms; /* uuid -> MtVmState *, as the file has them */
  gboolean dirty;
};

void
mt_vm_state_clear (MtVmState *s)
{
  g_clear_pointer (&s->stuck_reason, g_free);
  *s = (MtVmState){ 0 };
}

static void
vm_state_free (MtVmState *s)
{
  mt_vm_state_clear (s);
  g_free (s);
}

/* What the file keeps of @in: limits only with has_limits, a reason only
 * while stuck. */
static void
vm_state_copy (MtVmState *out, const MtVmState *in, gint64 saved_at)
{
  *out = (MtVmState){
    .headroom = in->headroom,
    .reserve = in->reserve,
    .last_target = in->last_target,
    .stuck = in->stuck,
    .stuck_reason = in->stuck ? g_strdup (in->stuck_reason) : NULL,
    .stuck_since = in->stuck_since,
    .has_limits = in->has_limits,
    .limit_min = in->has_limits ? in->limit_min : 0,
    .limit_max = in->has_limits ? in->limit_max : 0,
    .rise_floor = in->rise_floor,
    .rise_floor_at = in->rise_floor > 0 ? in->rise_floor_at : 0,
    .stall_us = in->stall_us,
    .saved_at = saved_at,
  };
}

static guint64
get_u64 (GKeyFile *kf, const char *group, const char *key)
{
  g_autoptr (GError) error = NULL;
  guint64 v = g_key_file_get_uint64 (kf, group, key, &error);
  return error ? 0 : v;
}

static gint64
get_i64 (GKeyFile *kf, const char *group, const char *key)
{
  g_autoptr (GError) error = NULL;
  gint64 v = g_key_file_get_int64 (kf, group, key, &error);
  return error ? 0 : v;
}

static void
load_groups (MtState *state, GKeyFile *kf)
{
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);

  for (guint i = 0; groups[i]; i++) {
    const char *uuid = groups[i];
    MtVmState *s = g_new0 (MtVmState, 1);

    s->headroom = get_u64 (kf, uuid, "headroom");
    s->reserve = get_u64 (kf, uuid, "kernel-reserve");
    s->last_target = get_u64 (kf, uuid, "last-target");
    s->stuck = g_key_file_get_boolean (kf, uuid, "stuck", NULL);
    if (s->stuck)
      s->stuck_reason = g_key_file_get_string (kf, uuid, "stuck-reason", NULL);
    s->stuck_since = get_i64 (kf, uuid, "stuck-since");
    s->has_limits = g_key_file_get_boolean (kf, uuid, "limits", NULL);
    s->limit_min = get_u64 (kf, uuid, "limit-min");
    s->limit_max = get_u64 (kf, uuid, "limit-max");
    s->rise_floor = get_u64 (kf, uuid, "rise-floor");
    s->rise_floor_at = get_i64 (kf, uuid, "rise-floor-at");
    s->stall_us = get_u64 (kf, uuid, "stall-us");
    s->saved_at = get_i64 (kf, uuid, "saved-at");
    g_hash_table_replace (state->vms, g_strdup (uuid), s);
  }
}

MtState *
mt_state_load (const char *dir)
{
  MtState *state = g_new0 (MtState, 1);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) error = NULL;

  state->dir = g_strdup (dir);
  state->path = g_build_filename (dir, "state.ini", NULL);
  state->vms =
    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) vm_state_free);
  if (g_key_file_load_from_file (kf, state->path, G_KEY_FILE_NONE, &error)) {
    load_groups (state, kf);
  } else if (error->domain == G_FILE_ERROR
             && !g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
    /* Not read (the directory is a file, no permission, an I/O error):
     * nothing says the file is bad, so it stays where it is. */
    g_warning ("Cannot read state %s (%s); starting with no learned state", state->path,
               error->message);
  } else if (error->domain != G_FILE_ERROR) {
    g_autofree char *aside = g_strconcat (state->path, ".corrupt", NULL);
    g_warning ("Cannot read state %s (%s); moved it to %s and starting with no learned state",
               state->path, error->message, aside);
    if (g_rename (state->path, aside) < 0)
      g_warning ("Cannot move %s aside: %s", state->path, g_strerror (errno));
  }
  return state;
}

void
mt_state_free (MtState *state)
{
  if (!state)
    return;
  g_hash_table_unref (state->vms);
  g_free (state->dir);
  g_free (state->path);
  g_free (state);
}

const char *
mt_state_get_path (MtState *state)
{
  return state->path;
}

gboolean
mt_state_get_vm (MtState *state, const char *uuid, MtVmState *out)
{
  const MtVmState *s = g_hash_table_lookup (state->vms, uuid);

  *out = (MtVmState){ 0 };
  if (!s)
    return FALSE;
  *out = *s;
  out->stuck_reason = g_strdup (s->stuck_reason);
  return TRUE;
}

void
mt_state_set_vm (MtState *state, const char *uuid, const MtVmState *in, gint64 now_wall)
{
  MtVmState *old = g_hash_table_lookup (state->vms, uuid);
  MtVmState *s;

  if (old) {
    MtVmState kept;

    vm_state_copy (&kept, in, old->saved_at);
    if (old->headroom == kept.headroom && old->reserve == kept.reserve
        && old->last_target == kept.last_target && old->stuck == kept.stuck
        && old->stuck_since == kept.stuck_since && old->has_limits == kept.has_limits
        && old->limit_min == kept.limit_min && old->limit_max == kept.limit_max
        && old->rise_floor == kept.rise_floor && old->rise_floor_at == kept.rise_floor_at
        && old->stall_us == kept.stall_us
        && g_strcmp0 (old->stuck_reason, kept.stuck_reason) == 0) {
      mt_vm_state_clear (&kept);
      return;
    }
    mt_vm_state_clear (&kept);
  }
  s = g_new (MtVmState, 1);
  vm_state_copy (s, in, now_wall);
  g_hash_table_replace (state->vms, g_strdup (uuid), s);
  state->dirty = TRUE;
}

void
mt_state_remove_vm (MtState *state, const char *uuid)
{
  if (g_hash_table_remove (state->vms, uuid))
    state->dirty = TRUE;
}

void
mt_state_expire (MtState *state, gint64 now_wall, gint64 max_age)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, state->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    if (now_wall - ((MtVmState *) value)->saved_at > max_age) {
      g_hash_table_iter_remove (&iter);
      state->dirty = TRUE;
    }
  }
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* A value as GKeyFile escapes it (\n, \t, leading space, backslash...). */
static char *
escape_value (const char *v)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();

  g_key_file_set_string (kf, "g", "k", v);
  return g_key_file_get_value (kf, "g", "k", NULL);
}

static char *
to_text (MtState *state)
{
  g_autoptr (GPtrArray) uuids = g_ptr_array_sized_new (g_hash_table_size (state->vms));
  GString *out = g_string_sized_new (g_hash_table_size (state->vms) * 160 + 1);
  GHashTableIter iter;
  gpointer key;

  /* Sorted: the same state always gives the same file. */
  g_hash_table_iter_init (&iter, state->vms);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (uuids, key);
  g_ptr_array_sort (uuids, compare_strings);
  for (guint i = 0; i < uuids->len; i++) {
    const char *uuid = uuids->pdata[i];
    const MtVmState *s = g_hash_table_lookup (state->vms, uuid);

    if (i > 0)
      g_string_append_c (out, '\n');
    g_string_append_printf (
      out, "[%s]\nheadroom=%" G_GUINT64_FORMAT "\nlast-target=%" G_GUINT64_FORMAT "\nstuck=%s\n",
      uuid, s->headroom, s->last_target, s->stuck ? "true" : "false");
    if (s->stuck && s->stuck_reason) {
      g_autofree char *reason = escape_value (s->stuck_reason);
      g_string_append_printf (out, "stuck-reason=%s\n", reason);
    }
    g_string_append_printf (out, "stuck-since=%" G_GINT64_FORMAT "\n", s->stuck_since);
    if (s->reserve > 0)
      g_string_append_printf (out, "kernel-reserve=%" G_GUINT64_FORMAT "\n", s->reserve);
    if (s->has_limits)
      g_string_append_printf (
        out, "limits=true\nlimit-min=%" G_GUINT64_FORMAT "\nlimit-max=%" G_GUINT64_FORMAT "\n",
        s->limit_min, s->limit_max);
    if (s->rise_floor > 0)
      g_string_append_printf (
        out, "rise-floor=%" G_GUINT64_FORMAT "\nrise-floor-at=%" G_GINT64_FORMAT "\n",
        s->rise_floor, s->rise_floor_at);
    if (s->stall_us > 0)
      g_string_append_printf (out, "stall-us=%" G_GUINT64_FORMAT "\n", s->stall_us);
    g_string_append_printf (out, "saved-at=%" G_GINT64_FORMAT "\n", s->saved_at);
  }
  return g_string_free (out, FALSE);
}

gboolean
mt_state_save (MtState *state, GError **error)
{
  g_autofree char *text = NULL;

  if (!state->dirty)
    return TRUE;
  if (g_mkdir_with_parents (state->dir, 0700) < 0) {
    int saved = errno;
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                 "cannot create state directory %s: %s", state->dir, g_strerror (saved));
    return FALSE;
  }
  /* Writes a temporary file and renames it: a crash leaves the old one. */
  text = to_text (state);
  if (!g_file_set_contents (state->path, text, -1, error))
    return FALSE;
  state->dirty = FALSE;
  return TRUE;
}
