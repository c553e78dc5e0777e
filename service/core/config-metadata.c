/* config-metadata.c: parse the <policy> element of config-metadata.h
 * with GMarkup.  GMarkup knows nothing of namespaces, so xmlns
 * declarations are tracked here in a stack of scopes, one per open
 * element.  GMarkup expands no custom entities and uses no recursion,
 * so hostile input costs at most linear time in its (capped) length.
 */
#define G_LOG_DOMAIN "memtide-config"

#include <string.h>
#include "config.h"
#include "config-keys.h"
#include "config-metadata.h"

/* A value is a few characters; more is garbage, not a size. */
#define MAX_VALUE_LENGTH 256

typedef struct {
  const char *domain;
  GPtrArray *scopes; /* GHashTable prefix -> uri, or NULL, per open element */
  guint depth;       /* open elements */
  guint skip_depth;  /* > 0: inside a foreign element opened at this depth */
  int key;           /* open setting element, -1 when none */
  GString *text;
  GArray *settings; /* MtSetting */
  gboolean seen[MT_VM_N_KEYS];
  gboolean saw_root;
} Meta;

static void meta_fail (Meta *meta, GError **error, MtConfigError code, const char *format, ...)
  G_GNUC_PRINTF (4, 5);

static void
meta_fail (Meta *meta, GError **error, MtConfigError code, const char *format, ...)
{
  va_list args;
  g_autofree char *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, MT_CONFIG_ERROR, code, "domain “%s”: metadata %s", meta->domain, msg);
}

/* The namespace URI of a prefix ("" for the default namespace) in the
 * innermost scope declaring it; "" when none does. */
static const char *
meta_lookup_ns (Meta *meta, const char *prefix, gboolean *found)
{
  for (guint i = meta->scopes->len; i > 0; i--) {
    GHashTable *scope = g_ptr_array_index (meta->scopes, i - 1);
    const char *uri = scope ? g_hash_table_lookup (scope, prefix) : NULL;
    if (uri != NULL) {
      *found = TRUE;
      return uri;
    }
  }
  *found = FALSE;
  return "";
}

/* Split "prefix:local"; FALSE when the prefix is undeclared. */
static gboolean
meta_resolve (Meta *meta, const char *qname, const char **uri, const char **local,
              char **prefix_out)
{
  const char *colon = strchr (qname, ':');
  g_autofree char *prefix = colon ? g_strndup (qname, colon - qname) : g_strdup ("");
  gboolean found;

  *local = colon ? colon + 1 : qname;
  *uri = meta_lookup_ns (meta, prefix, &found);
  if (colon != NULL && !found) {
    *prefix_out = g_steal_pointer (&prefix);
    return FALSE;
  }
  return TRUE;
}

static gboolean
is_ours (const char *uri)
{
  /* "" is libvirt's stripped form, see config-metadata.h. */
  return *uri == '\0' || strcmp (uri, MT_METADATA_NAMESPACE) == 0;
}

static void
meta_start (GMarkupParseContext *context, const char *element, const char **attr_names,
            const char **attr_values, gpointer user_data, GError **error)
{
  Meta *meta = user_data;
  GHashTable *scope = NULL;
  const char *uri, *local;
  g_autofree char *bad_prefix = NULL;

  for (guint i = 0; attr_names[i] != NULL; i++) {
    const char *prefix = NULL;
    if (strcmp (attr_names[i], "xmlns") == 0)
      prefix = "";
    else if (g_str_has_prefix (attr_names[i], "xmlns:"))
      prefix = attr_names[i] + strlen ("xmlns:");
    if (prefix == NULL)
      continue;
    if (scope == NULL)
      scope = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    g_hash_table_insert (scope, g_strdup (prefix), g_strdup (attr_values[i]));
  }
  g_ptr_array_add (meta->scopes, scope);
  meta->depth++;

  if (meta->skip_depth > 0)
    return;

  if (!meta_resolve (meta, element, &uri, &local, &bad_prefix)) {
    meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
               "element <%s> uses the undeclared namespace prefix “%s”; "
               "expected an xmlns:%s declaration",
               element, bad_prefix, bad_prefix);
    return;
  }

  if (meta->depth == 1) {
    if (meta->saw_root) {
      meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
                 "has a second root element <%s>; expected one <policy> element", element);
      return;
    }
    meta->saw_root = TRUE;
    if (!is_ours (uri) || strcmp (local, "policy") != 0) {
      meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
                 "root element is <%s>%s%s; expected <policy> in namespace %s", element,
                 *uri ? " in namespace " : "", uri, MT_METADATA_NAMESPACE);
      return;
    }
  } else if (!is_ours (uri)) {
    /* Another tool's annotation: not ours to judge. */
    meta->skip_depth = meta->depth;
    return;
  } else if (meta->depth == 2) {
    int key = mt_key_table_lookup (&mt_vm_keys, local);
    if (key < 0) {
      g_autofree char *hint = mt_key_table_hint (&mt_vm_keys, local);
      g_autofree char *names = mt_key_table_names (&mt_vm_keys);
      meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
                 "<policy>: unknown element <%s>%s; expected one of %s", local, hint, names);
      return;
    }
    if (meta->seen[key]) {
      meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
                 "<%s>: element appears a second time; expected each setting at most once", local);
      return;
    }
    meta->seen[key] = TRUE;
    meta->key = key;
    g_string_truncate (meta->text, 0);
  } else {
    meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
               "<%s>: contains element <%s>; expected text only, e.g. <min>512M</min>",
               mt_vm_keys.keys[meta->key].name, local);
    return;
  }

  for (guint i = 0; attr_names[i] != NULL; i++) {
    const char *attr_uri, *attr_local;
    g_autofree char *attr_prefix = NULL;

    if (strcmp (attr_names[i], "xmlns") == 0 || g_str_has_prefix (attr_names[i], "xmlns:"))
      continue;
    /* Unprefixed attributes have no namespace: they would be ours. */
    if (strchr (attr_names[i], ':') != NULL
        && meta_resolve (meta, attr_names[i], &attr_uri, &attr_local, &attr_prefix)
        && !is_ours (attr_uri))
      continue;
    meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
               "<%s>: unexpected attribute “%s”; expected no attributes", local, attr_names[i]);
    return;
  }
}

static void
meta_end (GMarkupParseContext *context, const char *element, gpointer user_data, GError **error)
{
  Meta *meta = user_data;
  guint depth = meta->depth;

  g_ptr_array_remove_index (meta->scopes, meta->scopes->len - 1);
  meta->depth--;

  if (meta->skip_depth > 0) {
    if (depth == meta->skip_depth)
      meta->skip_depth = 0;
    return;
  }

  if (depth == 2 && meta->key >= 0) {
    const MtKey *key = &mt_vm_keys.keys[meta->key];
    g_autofree char *text = g_strstrip (g_strdup (meta->text->str));
    g_autoptr (GError) local_error = NULL;
    MtSetting setting = { .key = meta->key, .line = 0 };

    meta->key = -1;
    if (!mt_key_parse (key, text, &setting.value, &local_error)) {
      meta_fail (meta, error, local_error->code, "<%s>: %s", key->name, local_error->message);
      return;
    }
    setting.text = g_steal_pointer (&text);
    g_array_append_val (meta->settings, setting);
  }
}

static void
meta_text (GMarkupParseContext *context, const char *text, gsize len, gpointer user_data,
           GError **error)
{
  Meta *meta = user_data;

  if (meta->skip_depth > 0)
    return;

  if (meta->key >= 0) {
    if (meta->text->len + len > MAX_VALUE_LENGTH) {
      meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
                 "<%s>: value is longer than %d bytes; expected a short value such as 512M",
                 mt_vm_keys.keys[meta->key].name, MAX_VALUE_LENGTH);
      return;
    }
    g_string_append_len (meta->text, text, len);
    return;
  }

  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isspace (text[i])) {
      /* GMarkup hands over valid UTF-8; cut it at a character. */
      g_autofree char *all = g_strndup (text + i, len - i);
      g_autofree char *shown = g_utf8_substring (all, 0, MIN (g_utf8_strlen (all, -1), 40));

      meta_fail (meta, error, MT_CONFIG_ERROR_METADATA,
                 "<policy>: unexpected text “%s”; expected only setting elements "
                 "such as <min>512M</min>",
                 g_strchomp (shown));
      return;
    }
}

static const GMarkupParser meta_parser = {
  .start_element = meta_start,
  .end_element = meta_end,
  .text = meta_text,
};

static void
scope_free (gpointer scope)
{
  if (scope != NULL)
    g_hash_table_unref (scope);
}

static gboolean
is_blank (const char *s)
{
  for (; *s; s++)
    if (!g_ascii_isspace (*s))
      return FALSE;
  return TRUE;
}

GArray *
mt_metadata_parse (const char *domain_name, const char *xml, GError **error)
{
  g_autoptr (GArray) settings = g_array_new (FALSE, FALSE, sizeof (MtSetting));
  g_autoptr (GPtrArray) scopes = g_ptr_array_new_with_free_func (scope_free);
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (GMarkupParseContext) context = NULL;
  g_autoptr (GError) local_error = NULL;
  Meta meta = {
    .domain = domain_name,
    .scopes = scopes,
    .key = -1,
    .text = text,
    .settings = settings,
  };
  gsize length;

  g_array_set_clear_func (settings, (GDestroyNotify) mt_setting_clear);
  if (xml == NULL)
    return g_steal_pointer (&settings);

  length = strnlen (xml, MT_METADATA_MAX_LENGTH + 1);
  if (length > MT_METADATA_MAX_LENGTH) {
    meta_fail (&meta, error, MT_CONFIG_ERROR_METADATA,
               "is longer than %d bytes; expected a small <policy> element",
               MT_METADATA_MAX_LENGTH);
    return NULL;
  }
  if (is_blank (xml))
    return g_steal_pointer (&settings);

  context = g_markup_parse_context_new (&meta_parser, G_MARKUP_TREAT_CDATA_AS_TEXT, &meta, NULL);
  if (!g_markup_parse_context_parse (context, xml, length, &local_error)
      || !g_markup_parse_context_end_parse (context, &local_error)) {
    if (local_error->domain == MT_CONFIG_ERROR)
      g_propagate_error (error, g_steal_pointer (&local_error));
    else {
      /* GMarkup quotes the offending bytes, which may not be UTF-8. */
      g_autofree char *why = g_utf8_make_valid (local_error->message, -1);
      meta_fail (&meta, error, MT_CONFIG_ERROR_METADATA,
                 "is not well-formed XML (%s); expected <policy> in namespace %s", why,
                 MT_METADATA_NAMESPACE);
    }
    return NULL;
  }

  if (meta.seen[MT_VM_KEY_MIN] && meta.seen[MT_VM_KEY_MAX]) {
    const MtSetting *min = NULL, *max = NULL;
    for (guint i = 0; i < settings->len; i++) {
      const MtSetting *s = &g_array_index (settings, MtSetting, i);
      if (s->key == MT_VM_KEY_MIN)
        min = s;
      else if (s->key == MT_VM_KEY_MAX)
        max = s;
    }
    if (mt_size_min_above_max (&min->value.size, &max->value.size)) {
      meta_fail (&meta, error, MT_CONFIG_ERROR_MIN_ABOVE_MAX,
                 "<min>: “%s” is above <max> “%s”; expected min <= max", min->text, max->text);
      return NULL;
    }
  }
  return g_steal_pointer (&settings);
}
