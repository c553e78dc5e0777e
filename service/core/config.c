/* config.c: load the policy files into an immutable MtConfig and
 * resolve host and VM policies from it (format: docs/policy.md).
 *
 * Loading keeps going after an error so that one run of --check-config
 * shows every problem, but any error fails the whole load: a daemon
 * running half of what the admin wrote is worse than one that refuses.
 */
#define G_LOG_DOMAIN "memtide-config"

#include <string.h>
#include "config.h"
#include "config-keys.h"
#include "config-metadata.h"
#include "config-read.h"
#include "config-scan.h"
#include "config-value.h"

G_DEFINE_QUARK (memtide - config - error - quark, mt_config_error)

typedef struct {
  const MtKeyTable *table; /* mt_host_keys or mt_vm_keys */
  const char *file;        /* owned by MtConfig.files */
  guint line;
  guint order;        /* index in MtConfig.groups */
  char *name;         /* "host", "vm web-*" */
  GPatternSpec *glob; /* a [vm] glob with * or ?; NULL otherwise */
  GArray *settings;   /* MtSetting, in file order */
} Group;

struct _MtConfig {
  gatomicrefcount ref;
  GPtrArray *files;  /* char *, NULL-terminated, load order */
  GPtrArray *groups; /* Group *, precedence order (later wins) */
  /* The [vm] groups of groups, in the same order, found two ways: a
   * group whose glob has no * or ? names one VM and is looked up by that
   * name, so that a group per VM costs nothing per VM on a large host;
   * only the others are matched against every name. */
  GPtrArray *vm_globs;  /* Group *, borrowed */
  GHashTable *vm_named; /* name -> GPtrArray of Group *, borrowed */
  guint n_vm_groups;
  MtHostPolicy host;
};

/* Where a resolved key's value came from; group NULL: built-in default. */
typedef struct {
  const Group *group;
  const MtSetting *setting;
} Origin;

static void
group_free (Group *group)
{
  if (group == NULL)
    return;
  g_free (group->name);
  g_clear_pointer (&group->glob, g_pattern_spec_free);
  g_array_unref (group->settings);
  g_free (group);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Group, group_free)

static GArray *
settings_new (void)
{
  GArray *settings = g_array_new (FALSE, FALSE, sizeof (MtSetting));
  g_array_set_clear_func (settings, (GDestroyNotify) mt_setting_clear);
  return settings;
}

static const MtSetting *
settings_find (GArray *settings, guint key)
{
  for (guint i = 0; i < settings->len; i++)
    if (g_array_index (settings, MtSetting, i).key == key)
      return &g_array_index (settings, MtSetting, i);
  return NULL;
}

static void
settings_apply (const MtKeyTable *table, GArray *settings, const Group *group, gpointer policy,
                Origin *origins)
{
  for (guint i = 0; i < settings->len; i++) {
    const MtSetting *s = &g_array_index (settings, MtSetting, i);
    mt_key_store (&table->keys[s->key], &s->value, policy);
    if (origins != NULL)
      origins[s->key] = (Origin){ group, s };
  }
}

/* Every [host] group, in order, on top of what host already holds. */
static void
config_apply_host_groups (MtConfig *config, MtHostPolicy *host, Origin *origins)
{
  for (guint i = 0; i < config->groups->len; i++) {
    const Group *group = g_ptr_array_index (config->groups, i);
    if (group->table == &mt_host_keys)
      settings_apply (&mt_host_keys, group->settings, group, host, origins);
  }
}

/* Every [vm] group matching domain_name, in order, on top of what policy
 * already holds: the globs and the groups naming it are two lists in
 * precedence order, merged. */
static void
config_apply_vm_groups (MtConfig *config, const char *domain_name, MtVmPolicy *policy,
                        Origin *origins)
{
  GPtrArray *named = g_hash_table_lookup (config->vm_named, domain_name);
  guint n_named = named != NULL ? named->len : 0;
  guint i = 0, j = 0;

  for (;;) {
    const Group *glob = i < config->vm_globs->len ? g_ptr_array_index (config->vm_globs, i) : NULL;
    const Group *name = j < n_named ? g_ptr_array_index (named, j) : NULL;

    if (glob != NULL && (name == NULL || glob->order < name->order)) {
      if (g_pattern_spec_match_string (glob->glob, domain_name))
        settings_apply (&mt_vm_keys, glob->settings, glob, policy, origins);
      i++;
    } else if (name != NULL) {
      settings_apply (&mt_vm_keys, name->settings, name, policy, origins);
      j++;
    } else {
      return;
    }
  }
}

/* Adds a group that loaded without errors. */
static void
config_add_group (MtConfig *config, Group *group, const char *glob)
{
  group->order = config->groups->len;
  g_ptr_array_add (config->groups, group);
  if (group->table != &mt_vm_keys)
    return;
  config->n_vm_groups++;
  if (group->glob != NULL) {
    g_ptr_array_add (config->vm_globs, group);
  } else {
    GPtrArray *named = g_hash_table_lookup (config->vm_named, glob);

    if (named == NULL) {
      named = g_ptr_array_new ();
      g_hash_table_insert (config->vm_named, g_strdup (glob), named);
    }
    g_ptr_array_add (named, group);
  }
}

static char *
origin_describe (const Origin *origin)
{
  if (origin->group == NULL)
    return g_strdup ("built-in default");
  if (origin->setting->line == 0)
    return g_strdup ("domain metadata");
  return g_strdup_printf ("%s:%u [%s]", origin->group->file, origin->setting->line,
                          origin->group->name);
}

/* ---- loading ------------------------------------------------------- */

/* Problems listed in one load's message; the rest are counted.  Enough
 * to fix a file by; a 1 MiB file of unknown keys would otherwise make
 * 115,910 lines (30 MB) of one log message and one D-Bus reply. */
#define MAX_LISTED 50

typedef struct {
  MtConfig *config;
  GPtrArray *errors;   /* GError *, at most MAX_LISTED */
  guint n_problems;    /* listed or not */
  guint n_groups;      /* scanned, in every file so far */
  guint n_glob_groups; /* [vm] groups whose glob has * or ? */
  gboolean full;       /* a limit was passed: read nothing more */
} Loader;

static void loader_error (Loader *loader, MtConfigError code, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

static void
loader_error (Loader *loader, MtConfigError code, const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  if (++loader->n_problems > MAX_LISTED)
    return;
  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_ptr_array_add (loader->errors, g_error_new_literal (MT_CONFIG_ERROR, code, msg));
}

static void
loader_add_error (Loader *loader, GError *error)
{
  if (++loader->n_problems > MAX_LISTED)
    g_error_free (error);
  else
    g_ptr_array_add (loader->errors, error);
}

/* NULL when the group name is fine; otherwise why the glob is bad. */
static const char *
glob_problem (const char *glob)
{
  gsize len = strlen (glob);

  if (len == 0)
    return "the group has no glob; expected [vm GLOB], e.g. [vm web-*], or [vm *] for every VM";
  if (strchr (glob, '/') != NULL)
    return "libvirt forbids “/” in domain names, so this glob could never match; "
           "expected a domain-name pattern using * and ?";
  if (strchr (glob, '\\') != NULL)
    return "globs have no escapes (* and ? always match), so “\\” only matches a "
           "literal backslash; expected a domain-name pattern using * and ?";
  if (len >= 2 && (glob[0] == '"' || glob[0] == '\'') && glob[len - 1] == glob[0])
    return "the quotes would have to be part of the domain name; expected the glob "
           "without quotes, e.g. [vm web-*]";
  return NULL;
}

static const MtKeyTable *
loader_classify_group (Loader *loader, const char *path, const MtScanGroup *scanned,
                       char **glob_out)
{
  static const char *const known[] = { "host" };
  const char *name = scanned->name;
  const char *hint = "";

  if (strcmp (name, "host") == 0)
    return &mt_host_keys;

  /* GKeyFile refuses tabs in group names, so only spaces separate. */
  if (strncmp (name, "vm", 2) == 0 && (name[2] == '\0' || name[2] == ' ')) {
    g_autofree char *glob = g_strstrip (g_strdup (name + 2));
    const char *problem = glob_problem (glob);

    if (problem == NULL) {
      *glob_out = g_steal_pointer (&glob);
      return &mt_vm_keys;
    }
    if (*glob == '\0')
      loader_error (loader, MT_CONFIG_ERROR_BAD_GLOB, "%s:%u: [%s]: %s", path, scanned->line, name,
                    problem);
    else
      loader_error (loader, MT_CONFIG_ERROR_BAD_GLOB, "%s:%u: [%s]: bad glob “%s”: %s", path,
                    scanned->line, name, glob, problem);
    return NULL;
  }

  if (g_ascii_strncasecmp (name, "vm", 2) == 0)
    hint = " (a VM group is “vm”, one space, then a glob, e.g. [vm web-*])";
  else if (mt_suggest (name, known, G_N_ELEMENTS (known)) != NULL)
    hint = " (did you mean [host]?)";
  loader_error (loader, MT_CONFIG_ERROR_UNKNOWN_GROUP,
                "%s:%u: unknown group [%s]%s; expected [host] or [vm GLOB]", path, scanned->line,
                name, hint);
  return NULL;
}

static void
loader_check_min_max (Loader *loader, const Group *group)
{
  const MtSetting *min = settings_find (group->settings, MT_VM_KEY_MIN);
  const MtSetting *max = settings_find (group->settings, MT_VM_KEY_MAX);

  if (min != NULL && max != NULL && mt_size_min_above_max (&min->value.size, &max->value.size))
    loader_error (loader, MT_CONFIG_ERROR_MIN_ABOVE_MAX,
                  "%s:%u: [%s] min: “%s” is above max “%s” (line %u); expected min <= max",
                  group->file, min->line, group->name, min->text, max->text, max->line);
}

static void
loader_read_group (Loader *loader, GKeyFile *kf, const char *path, const MtScanGroup *scanned)
{
  g_autofree char *glob = NULL;
  const MtKeyTable *table = loader_classify_group (loader, path, scanned, &glob);
  g_autoptr (Group) group = NULL;
  guint n_problems = loader->n_problems;

  if (table == NULL)
    return;

  if (glob != NULL && strpbrk (glob, "*?") != NULL
      && ++loader->n_glob_groups > MT_CONFIG_MAX_GLOB_GROUPS) {
    loader_error (loader, MT_CONFIG_ERROR_TOO_LARGE,
                  "%s:%u: [%s]: more than %u [vm] groups with * or ? in the policy files, the "
                  "most memtided reads (each is matched against every VM's name); name single "
                  "VMs in groups without * or ?, or set per-VM values in the domains' metadata",
                  path, scanned->line, scanned->name, MT_CONFIG_MAX_GLOB_GROUPS);
    loader->full = TRUE;
    return;
  }

  group = g_new0 (Group, 1);
  group->table = table;
  group->file = path;
  group->line = scanned->line;
  group->name = g_strdup (scanned->name);
  group->glob = glob != NULL && strpbrk (glob, "*?") != NULL ? g_pattern_spec_new (glob) : NULL;
  group->settings = settings_new ();

  for (guint i = 0; i < scanned->keys->len; i++) {
    const MtScanKey *sk = &g_array_index (scanned->keys, MtScanKey, i);
    int key = mt_key_table_lookup (table, sk->name);
    g_autoptr (GError) error = NULL;
    g_autofree char *raw = NULL;
    MtSetting setting = { .line = sk->line };

    if (key < 0 && loader->n_problems >= MAX_LISTED) {
      /* Not listed: spare the "did you mean", which most of the time of
       * a file of unknown keys went to. */
      loader->n_problems++;
      continue;
    }
    if (key < 0) {
      g_autofree char *hint = mt_key_table_hint (table, sk->name);
      g_autofree char *names = mt_key_table_names (table);
      loader_error (loader, MT_CONFIG_ERROR_UNKNOWN_KEY,
                    "%s:%u: [%s] %s: unknown key%s; expected one of %s", path, sk->line,
                    scanned->name, sk->name, hint, names);
      continue;
    }

    /* GLib 2.74 returns the raw text *and* sets an error on a bad
       * escape sequence: the error is what counts. */
    raw = g_key_file_get_string (kf, scanned->name, sk->name, &error);
    if (error != NULL || raw == NULL) {
      g_autofree char *why = g_strdup (error ? error->message : "no value");

      if (g_str_has_suffix (why, "."))
        why[strlen (why) - 1] = '\0';
      loader_error (loader, MT_CONFIG_ERROR_SYNTAX,
                    "%s:%u: [%s] %s: %s; expected a value whose backslashes are "
                    "escapes \\s, \\n, \\t, \\r or \\\\ (two for a literal backslash)",
                    path, sk->line, scanned->name, sk->name, why);
      continue;
    }
    /* GKeyFile keeps trailing blanks; nobody means them. */
    g_strstrip (raw);
    if (!mt_key_parse (&table->keys[key], raw, &setting.value, &error)) {
      /* GKeyFile has no trailing comments: "1G # note" is the value. */
      loader_error (loader, error->code, "%s:%u: [%s] %s: %s%s", path, sk->line, scanned->name,
                    sk->name, error->message,
                    strchr (raw, '#') ? " (comments must be on a line of their own)" : "");
      continue;
    }
    setting.key = key;
    setting.text = g_steal_pointer (&raw);
    g_array_append_val (group->settings, setting);
  }

  if (table == &mt_vm_keys)
    loader_check_min_max (loader, group);

  if (loader->n_problems == n_problems)
    config_add_group (loader->config, g_steal_pointer (&group), glob);
}

static void
loader_read_file (Loader *loader, const char *path)
{
  g_autofree char *data = NULL;
  gsize length;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) scanned = NULL;
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  const char *file;

  data = mt_config_read_file (path, MT_CONFIG_FILE_MAX_BYTES, &length, &error);
  if (data == NULL) {
    loader_add_error (loader, g_steal_pointer (&error));
    return;
  }

  scanned = mt_scan_key_file (path, data, length, loader->n_groups, &error);
  if (scanned == NULL) {
    if (g_error_matches (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE))
      loader->full = TRUE;
    loader_add_error (loader, g_steal_pointer (&error));
    return;
  }
  loader->n_groups += scanned->len;
  /* The scan follows GKeyFile's rules, so this only fails if they differ. */
  if (!g_key_file_load_from_data (kf, data, length, G_KEY_FILE_NONE, &error)) {
    loader_error (loader, MT_CONFIG_ERROR_SYNTAX,
                  "%s: not a valid key file (%s); expected [group] headers, "
                  "key = value lines and # comments",
                  path, error->message);
    return;
  }

  g_debug ("reading policy file %s", path);
  /* Groups point at this copy, which lives as long as the config. */
  file = g_strdup (path);
  g_ptr_array_insert (loader->config->files, loader->config->files->len - 1, (gpointer) file);
  for (guint i = 0; i < scanned->len && !loader->full; i++)
    loader_read_group (loader, kf, file, g_ptr_array_index (scanned, i));
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
loader_read_dir (Loader *loader, const char *dir_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, &error);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (dir == NULL) {
    /* An admin who has written no policy has no directory either. */
    if (g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      g_debug ("no policy directory %s", dir_path);
      return;
    }
    loader_error (loader, MT_CONFIG_ERROR_READ,
                  "%s: cannot read the policy directory (%s); check that it is a "
                  "readable directory",
                  dir_path, error->message);
    return;
  }

  /* Editor backups and package-manager leftovers (.conf~, .dpkg-old,
   * .#foo.conf) must not become policy. */
  while ((name = g_dir_read_name (dir)) != NULL)
    if (name[0] != '.' && g_str_has_suffix (name, ".conf"))
      g_ptr_array_add (names, g_strdup (name));
    else
      g_debug ("ignoring %s/%s: not a *.conf file", dir_path, name);

  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len && !loader->full; i++) {
    g_autofree char *path = g_build_filename (dir_path, g_ptr_array_index (names, i), NULL);
    loader_read_file (loader, path);
  }
}

/* Whether a was read after b; an unset origin is never later. */
static gboolean
origin_later (const Origin *a, const Origin *b)
{
  if (a->setting == NULL)
    return FALSE;
  if (b->setting == NULL)
    return TRUE;
  if (a->group->order != b->group->order)
    return a->group->order > b->group->order;
  return a->setting->line > b->setting->line;
}

static void
loader_check_host (Loader *loader)
{
  MtConfig *config = loader->config;
  Origin origins[MT_HOST_N_KEYS] = { { 0 } };
  const Origin *tick = &origins[MT_HOST_KEY_TICK_INTERVAL];
  const Origin *stuck = &origins[MT_HOST_KEY_STUCK_TIMEOUT];
  MtHostPolicy host;

  mt_host_policy_init_defaults (&host);
  config_apply_host_groups (config, &host, origins);
  config->host = host;

  if (host.stuck_timeout < host.tick_interval) {
    /* The built-in pair is consistent, so one of them was set; blame
       * the one read last: that is the edit that broke it. */
    gboolean blame_stuck = origin_later (stuck, tick);
    const Origin *blamed = blame_stuck ? stuck : tick;
    const Origin *other = blame_stuck ? tick : stuck;
    const MtKey *other_key =
      &mt_host_keys.keys[blame_stuck ? MT_HOST_KEY_TICK_INTERVAL : MT_HOST_KEY_STUCK_TIMEOUT];
    g_autofree char *other_where = origin_describe (other);
    g_autofree char *other_text =
      mt_format_duration (blame_stuck ? host.tick_interval : host.stuck_timeout);

    loader_error (loader, MT_CONFIG_ERROR_OUT_OF_RANGE,
                  "%s:%u: [host] %s: “%s” is %s than %s “%s” (from %s); "
                  "expected stuck-timeout >= tick-interval",
                  blamed->group->file, blamed->setting->line,
                  blame_stuck ? "stuck-timeout" : "tick-interval", blamed->setting->text,
                  blame_stuck ? "shorter" : "longer", other_key->name, other_text, other_where);
  }
}

static MtConfig *
config_new (void)
{
  MtConfig *config = g_new0 (MtConfig, 1);

  g_atomic_ref_count_init (&config->ref);
  config->files = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (config->files, NULL);
  config->groups = g_ptr_array_new_with_free_func ((GDestroyNotify) group_free);
  config->vm_globs = g_ptr_array_new ();
  config->vm_named =
    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  mt_host_policy_init_defaults (&config->host);
  return config;
}

/* The config, or NULL with the problems in errors (GError *; the last
 * one says how many more there were when not all are listed) and how
 * many there were in *n_problems. */
static MtConfig *
config_load_collect (const char *default_file, const char *policies_dir, GPtrArray *errors,
                     guint *n_problems)
{
  g_autoptr (MtConfig) config = config_new ();
  Loader loader = { config, errors };

  if (default_file != NULL)
    loader_read_file (&loader, default_file);
  if (policies_dir != NULL)
    loader_read_dir (&loader, policies_dir);
  if (loader.n_problems == 0)
    loader_check_host (&loader);

  *n_problems = loader.n_problems;
  if (loader.n_problems > errors->len)
    g_ptr_array_add (errors, g_error_new (MT_CONFIG_ERROR, MT_CONFIG_ERROR_SYNTAX,
                                          "… and %u more problems, not listed",
                                          loader.n_problems - errors->len));
  return loader.n_problems == 0 ? g_steal_pointer (&config) : NULL;
}

MtConfig *
mt_config_load (const char *default_file, const char *policies_dir, GError **error)
{
  g_autoptr (GPtrArray) errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  guint n_problems;
  MtConfig *config = config_load_collect (default_file, policies_dir, errors, &n_problems);
  g_autoptr (GString) msg = NULL;

  if (config != NULL)
    return config;

  msg = g_string_new (NULL);
  for (guint i = 0; i < errors->len; i++) {
    const GError *e = g_ptr_array_index (errors, i);
    g_string_append_printf (msg, "%s%s", i ? "\n" : "", e->message);
  }
  g_set_error_literal (error, MT_CONFIG_ERROR,
                       ((const GError *) g_ptr_array_index (errors, 0))->code, msg->str);
  return NULL;
}

gboolean
mt_config_check (const char *default_file, const char *policies_dir, FILE *out)
{
  g_autoptr (GPtrArray) errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  guint n_problems;
  g_autoptr (MtConfig) config =
    config_load_collect (default_file, policies_dir, errors, &n_problems);

  g_return_val_if_fail (out != NULL, FALSE);

  if (config == NULL) {
    for (guint i = 0; i < errors->len; i++)
      fprintf (out, "%s\n", ((const GError *) g_ptr_array_index (errors, i))->message);
    fprintf (out, "%u problem%s found; memtided would refuse to start with this policy\n",
             n_problems, n_problems == 1 ? "" : "s");
    return FALSE;
  }

  for (guint i = 0; i + 1 < config->files->len; i++)
    fprintf (out, "read %s\n", (const char *) g_ptr_array_index (config->files, i));
  fprintf (out, "policy OK: %u file%s, %u [vm] group%s\n", config->files->len - 1,
           config->files->len == 2 ? "" : "s", config->n_vm_groups,
           config->n_vm_groups == 1 ? "" : "s");
  return TRUE;
}

/* ---- the loaded config ------------------------------------------- */

MtConfig *
mt_config_ref (MtConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_atomic_ref_count_inc (&config->ref);
  return config;
}

void
mt_config_unref (MtConfig *config)
{
  g_return_if_fail (config != NULL);
  if (!g_atomic_ref_count_dec (&config->ref))
    return;
  g_hash_table_unref (config->vm_named);
  g_ptr_array_unref (config->vm_globs);
  g_ptr_array_unref (config->groups);
  g_ptr_array_unref (config->files);
  g_free (config);
}

const MtHostPolicy *
mt_config_get_host (MtConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  return &config->host;
}

const char *const *
mt_config_get_files (MtConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);
  return (const char *const *) config->files->pdata;
}

guint
mt_config_get_n_vm_groups (MtConfig *config)
{
  g_return_val_if_fail (config != NULL, 0);
  return config->n_vm_groups;
}

gboolean
mt_config_names_vm (MtConfig *config, const char *domain_name)
{
  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (domain_name != NULL, FALSE);

  /* Written out: a group without * or ?, which is indexed by its name. */
  return g_hash_table_contains (config->vm_named, domain_name);
}

/* ---- a domain's own settings ---------------------------------------- */

struct _MtVmOverrides {
  gatomicrefcount ref;
  GArray *settings; /* MtSetting, in mt_vm_keys */
};

MtVmOverrides *
mt_vm_overrides_from_metadata (const char *domain_name, const char *xml, GError **error)
{
  GArray *settings;
  MtVmOverrides *overrides;

  g_return_val_if_fail (domain_name != NULL, NULL);

  settings = mt_metadata_parse (domain_name, xml, error);
  if (settings == NULL)
    return NULL;
  overrides = g_new (MtVmOverrides, 1);
  g_atomic_ref_count_init (&overrides->ref);
  overrides->settings = settings;
  return overrides;
}

MtVmOverrides *
mt_vm_overrides_ref (MtVmOverrides *overrides)
{
  g_return_val_if_fail (overrides != NULL, NULL);
  g_atomic_ref_count_inc (&overrides->ref);
  return overrides;
}

void
mt_vm_overrides_unref (MtVmOverrides *overrides)
{
  if (overrides == NULL || !g_atomic_ref_count_dec (&overrides->ref))
    return;
  g_array_unref (overrides->settings);
  g_free (overrides);
}

guint
mt_vm_overrides_get_n_settings (const MtVmOverrides *overrides)
{
  return overrides != NULL ? overrides->settings->len : 0;
}

/* File policy, then the domain's own settings; when they conflict with
 * the files *out and origins keep the file policy and FALSE is
 * returned.  origins point into overrides: keep it while using them. */
static gboolean
config_resolve_vm (MtConfig *config, const char *domain_name, const MtVmOverrides *overrides,
                   MtVmPolicy *out, Origin *origins, GError **metadata_error)
{
  GArray *metadata;
  Origin merged_origins[MT_VM_N_KEYS];
  static const Group metadata_group = { .name = (char *) "metadata" };
  MtVmPolicy merged;

  mt_vm_policy_init_defaults (out);
  config_apply_vm_groups (config, domain_name, out, origins);

  if (overrides == NULL || overrides->settings->len == 0)
    return TRUE;
  metadata = overrides->settings;

  merged = *out;
  memcpy (merged_origins, origins, sizeof merged_origins);
  settings_apply (&mt_vm_keys, metadata, &metadata_group, &merged, merged_origins);

  /* Bounds from different places only meet here: files were checked
   * group by group and the metadata on its own.  A conflict between file
   * groups alone is not the metadata's fault (max wins, see policy.h). */
  if ((settings_find (metadata, MT_VM_KEY_MIN) != NULL
       || settings_find (metadata, MT_VM_KEY_MAX) != NULL)
      && mt_size_min_above_max (&merged.min, &merged.max)) {
    const MtKey *min_key = &mt_vm_keys.keys[MT_VM_KEY_MIN];
    const MtKey *max_key = &mt_vm_keys.keys[MT_VM_KEY_MAX];
    g_autofree char *min_where = origin_describe (&merged_origins[MT_VM_KEY_MIN]);
    g_autofree char *max_where = origin_describe (&merged_origins[MT_VM_KEY_MAX]);
    g_autofree char *min_text = mt_key_format (min_key, &(MtValue){ .size = merged.min });
    g_autofree char *max_text = mt_key_format (max_key, &(MtValue){ .size = merged.max });

    g_set_error (metadata_error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_MIN_ABOVE_MAX,
                 "domain “%s”: metadata <%s>: min “%s” (from %s) is above max “%s” "
                 "(from %s); expected min <= max",
                 domain_name, settings_find (metadata, MT_VM_KEY_MIN) != NULL ? "min" : "max",
                 min_text, min_where, max_text, max_where);
    return FALSE;
  }

  *out = merged;
  memcpy (origins, merged_origins, sizeof merged_origins);
  return TRUE;
}

gboolean
mt_config_resolve_vm (MtConfig *config, const char *domain_name, const MtVmOverrides *overrides,
                      MtVmPolicy *out, GError **metadata_error)
{
  Origin origins[MT_VM_N_KEYS] = { { 0 } };

  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (domain_name != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  return config_resolve_vm (config, domain_name, overrides, out, origins, metadata_error);
}

void
mt_policy_source_free (MtPolicySource *source)
{
  if (source == NULL)
    return;
  g_free (source->value);
  g_free (source->origin);
  g_free (source);
}

static GPtrArray *
explain (const MtKeyTable *table, gconstpointer policy, const Origin *origins)
{
  GPtrArray *sources = g_ptr_array_new_with_free_func ((GDestroyNotify) mt_policy_source_free);

  for (guint i = 0; i < table->n_keys; i++) {
    MtPolicySource *source = g_new0 (MtPolicySource, 1);
    MtValue value;

    source->key = table->keys[i].name;
    if (origins[i].setting != NULL)
      source->value = g_strdup (origins[i].setting->text);
    else {
      mt_key_fetch (&table->keys[i], policy, &value);
      source->value = mt_key_format (&table->keys[i], &value);
    }
    source->origin = origin_describe (&origins[i]);
    g_ptr_array_add (sources, source);
  }
  return sources;
}

GPtrArray *
mt_config_explain_vm (MtConfig *config, const char *domain_name, const MtVmOverrides *overrides,
                      GError **metadata_error)
{
  Origin origins[MT_VM_N_KEYS] = { { 0 } };
  MtVmPolicy policy;

  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (domain_name != NULL, NULL);

  config_resolve_vm (config, domain_name, overrides, &policy, origins, metadata_error);
  return explain (&mt_vm_keys, &policy, origins);
}

GPtrArray *
mt_config_explain_host (MtConfig *config)
{
  Origin origins[MT_HOST_N_KEYS] = { { 0 } };
  MtHostPolicy host;

  g_return_val_if_fail (config != NULL, NULL);

  mt_host_policy_init_defaults (&host);
  config_apply_host_groups (config, &host, origins);
  return explain (&mt_host_keys, &host, origins);
}
