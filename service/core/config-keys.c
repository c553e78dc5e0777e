/* config-keys.c: the key tables of config-keys.h and the type dispatch
 * between text, MtValue and the policy structs.  Adding a key means one
 * line here, a field in policy.h, a default in policy.c, and its entry
 * in docs/policy.md and policies/default.conf.
 */
#define G_LOG_DOMAIN "memtide-config"

#include <stddef.h>
#include <string.h>
#include "config.h"
#include "config-keys.h"
#include "config-value.h"

#define VM(field)   offsetof (MtVmPolicy, field)
#define HOST(field) offsetof (MtHostPolicy, field)

static const MtKey vm_keys[MT_VM_N_KEYS] = {
  [MT_VM_KEY_MIN] = { "min", MT_VALUE_SIZE_OR_PERCENT, VM (min), 0, 0 },
  [MT_VM_KEY_MAX] = { "max", MT_VALUE_SIZE_OR_PERCENT, VM (max), 0, 0 },
  [MT_VM_KEY_SHARES] = { "shares", MT_VALUE_SHARES, VM (shares), 0, 0 },
  [MT_VM_KEY_HEADROOM] = { "headroom", MT_VALUE_SIZE_OR_PERCENT, VM (headroom), 0, 0 },
  [MT_VM_KEY_HEADROOM_MIN] = { "headroom-min", MT_VALUE_SIZE, VM (headroom_min), 0, 0 },
  [MT_VM_KEY_PRESSURE_TARGET] = { "pressure-target", MT_VALUE_PERCENT, VM (pressure_target), 0, 0 },
  [MT_VM_KEY_MECHANISM] = { "mechanism", MT_VALUE_MECHANISM, VM (mechanism), 0, 0 },
  [MT_VM_KEY_ALLOW_DROP_CACHES] = { "allow-drop-caches", MT_VALUE_BOOLEAN, VM (allow_drop_caches),
                                    0, 0 },
  [MT_VM_KEY_RECLAIM_COLD_CACHE] = { "reclaim-cold-cache", MT_VALUE_BOOLEAN,
                                     VM (reclaim_cold_cache), 0, 0 },
  [MT_VM_KEY_BLOCK_HINTS] = { "block-hints", MT_VALUE_BOOLEAN, VM (block_hints), 0, 0 },
  [MT_VM_KEY_PAGE_REPORTING] = { "page-reporting", MT_VALUE_PAGE_REPORTING, VM (page_reporting), 0,
                                 0 },
  /* The guest kernel's own ranges (MT_REPORTING_*): a value it would
   * refuse is refused here, where the admin sees it. */
  [MT_VM_KEY_PAGE_REPORTING_FAST_DELAY] = { "page-reporting-fast-delay", MT_VALUE_DURATION,
                                            VM (page_reporting_fast_delay),
                                            MT_REPORTING_DELAY_MS_MIN * 1000,
                                            MT_REPORTING_DELAY_MS_MAX * 1000 },
  [MT_VM_KEY_PAGE_REPORTING_FAST_DIVISOR] = { "page-reporting-fast-divisor", MT_VALUE_UINT,
                                              VM (page_reporting_fast_divisor),
                                              MT_REPORTING_DIVISOR_MIN, MT_REPORTING_DIVISOR_MAX },
  [MT_VM_KEY_STALL_BUDGET] = { "stall-budget", MT_VALUE_PERCENT, VM (stall_budget), 0, 0 },
  /* Shorter than a minute is PSI avg60's business; longer than an hour
   * and a VM is judged by a stall it has long recovered from. */
  [MT_VM_KEY_STALL_WINDOW] = { "stall-window", MT_VALUE_DURATION, VM (stall_window),
                               60 * G_USEC_PER_SEC, 3600 * (gint64) G_USEC_PER_SEC },
};

/* Ticks much faster than the agents' 1 s reports only burn CPU; much
 * slower and a pressure spike waits minutes.  A stuck timeout is
 * measured in ticks, so it cannot be shorter than a second. */
static const MtKey host_keys[MT_HOST_N_KEYS] = {
  [MT_HOST_KEY_RESERVE] = { "reserve", MT_VALUE_SIZE, HOST (reserve), 0, 0 },
  [MT_HOST_KEY_BUDGET] = { "budget", MT_VALUE_SIZE, HOST (budget), 0, 0 },
  [MT_HOST_KEY_TICK_INTERVAL] = { "tick-interval", MT_VALUE_DURATION, HOST (tick_interval),
                                  100 * 1000, 10 * 60 * G_USEC_PER_SEC },
  [MT_HOST_KEY_STUCK_TIMEOUT] = { "stuck-timeout", MT_VALUE_DURATION, HOST (stuck_timeout),
                                  G_USEC_PER_SEC, 24 * 3600 * (gint64) G_USEC_PER_SEC },
  [MT_HOST_KEY_MIN_CHANGE] = { "min-change", MT_VALUE_SIZE, HOST (min_change), 0, 0 },
  [MT_HOST_KEY_MAX_SHRINK_RATE] = { "max-shrink-rate", MT_VALUE_RATE, HOST (max_shrink_rate), 0,
                                    0 },
  [MT_HOST_KEY_START_GRACE] = { "start-grace", MT_VALUE_DURATION, HOST (start_grace), 0,
                                3600 * (gint64) G_USEC_PER_SEC },
  [MT_HOST_KEY_DRY_RUN] = { "dry-run", MT_VALUE_BOOLEAN, HOST (dry_run), 0, 0 },
};

const MtKeyTable mt_vm_keys = { vm_keys, MT_VM_N_KEYS };
const MtKeyTable mt_host_keys = { host_keys, MT_HOST_N_KEYS };

int
mt_key_table_lookup (const MtKeyTable *table, const char *name)
{
  for (guint i = 0; i < table->n_keys; i++)
    if (strcmp (table->keys[i].name, name) == 0)
      return (int) i;
  return -1;
}

static const char *
key_table_suggest (const MtKeyTable *table, const char *name)
{
  const char *names[16];

  g_assert (table->n_keys <= G_N_ELEMENTS (names));
  for (guint i = 0; i < table->n_keys; i++)
    names[i] = table->keys[i].name;
  return mt_suggest (name, names, table->n_keys);
}

char *
mt_key_table_hint (const MtKeyTable *table, const char *name)
{
  const MtKeyTable *other = (table == &mt_vm_keys) ? &mt_host_keys : &mt_vm_keys;
  const char *close;

  /* A key in the wrong kind of group is a likelier mistake than a typo. */
  if (mt_key_table_lookup (other, name) >= 0)
    return g_strdup_printf (" (“%s” belongs in %s)", name,
                            other == &mt_host_keys ? "[host]" : "a [vm GLOB] group");
  close = key_table_suggest (table, name);
  if (close != NULL)
    return g_strdup_printf (" (did you mean “%s”?)", close);
  return g_strdup ("");
}

char *
mt_key_table_names (const MtKeyTable *table)
{
  g_autoptr (GString) s = g_string_new (NULL);

  for (guint i = 0; i < table->n_keys; i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", table->keys[i].name);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

gboolean
mt_key_parse (const MtKey *key, const char *text, MtValue *out, GError **error)
{
  MtValue v = { 0 };
  guint64 n;

  switch (key->type) {
  case MT_VALUE_SIZE:
    if (!mt_parse_size (text, &v.bytes, error))
      return FALSE;
    break;

  case MT_VALUE_SIZE_OR_PERCENT:
    if (!mt_parse_size_or_percent (text, &v.size, error))
      return FALSE;
    break;

  case MT_VALUE_PERCENT:
    if (!mt_parse_percent (text, &v.percent, error))
      return FALSE;
    break;

  case MT_VALUE_DURATION:
    if (!mt_parse_duration (text, &v.usec, error))
      return FALSE;
    if (v.usec < key->lo || v.usec > key->hi) {
      g_autofree char *lo = mt_format_duration (key->lo);
      g_autofree char *hi = mt_format_duration (key->hi);
      g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE,
                   "“%s” is out of range; expected %s to %s", text, lo, hi);
      return FALSE;
    }
    break;

  case MT_VALUE_RATE: {
    /* "256M/s" reads naturally; the per-second is implied anyway. */
    g_autofree char *size = g_strdup (text);
    if (g_str_has_suffix (size, "/s")) {
      size[strlen (size) - 2] = '\0';
      g_strchomp (size);
    }
    if (!mt_parse_size (size, &v.bytes, error))
      return FALSE;
    if (v.bytes == 0) {
      g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_OUT_OF_RANGE,
                   "“%s” would never let a VM shrink; expected a rate above 0, "
                   "e.g. 256M (per second)",
                   text);
      return FALSE;
    }
  } break;

  case MT_VALUE_BOOLEAN:
    if (!mt_parse_boolean (text, &v.boolean, error))
      return FALSE;
    break;

  case MT_VALUE_SHARES:
    if (!mt_parse_uint (text, MT_SHARES_MIN, MT_SHARES_MAX, &n, error))
      return FALSE;
    v.shares = (guint32) n;
    break;

  case MT_VALUE_MECHANISM:
    if (!mt_parse_mechanism (text, &v.mechanism, error))
      return FALSE;
    break;

  case MT_VALUE_UINT:
    if (!mt_parse_uint (text, (guint64) key->lo, (guint64) key->hi, &v.number, error))
      return FALSE;
    break;

  case MT_VALUE_PAGE_REPORTING:
    if (!mt_parse_page_reporting (text, &v.page_reporting, error))
      return FALSE;
    break;

  default:
    g_assert_not_reached ();
  }

  *out = v;
  return TRUE;
}

void
mt_key_store (const MtKey *key, const MtValue *value, gpointer policy)
{
  char *field = (char *) policy + key->offset;

  switch (key->type) {
  case MT_VALUE_SIZE:
  case MT_VALUE_RATE:
    memcpy (field, &value->bytes, sizeof value->bytes);
    break;
  case MT_VALUE_SIZE_OR_PERCENT:
    memcpy (field, &value->size, sizeof value->size);
    break;
  case MT_VALUE_PERCENT:
    memcpy (field, &value->percent, sizeof value->percent);
    break;
  case MT_VALUE_DURATION:
    memcpy (field, &value->usec, sizeof value->usec);
    break;
  case MT_VALUE_BOOLEAN:
    memcpy (field, &value->boolean, sizeof value->boolean);
    break;
  case MT_VALUE_SHARES:
    memcpy (field, &value->shares, sizeof value->shares);
    break;
  case MT_VALUE_MECHANISM:
    memcpy (field, &value->mechanism, sizeof value->mechanism);
    break;
  case MT_VALUE_UINT:
    memcpy (field, &value->number, sizeof value->number);
    break;
  case MT_VALUE_PAGE_REPORTING:
    memcpy (field, &value->page_reporting, sizeof value->page_reporting);
    break;
  default:
    g_assert_not_reached ();
  }
}

void
mt_key_fetch (const MtKey *key, gconstpointer policy, MtValue *out)
{
  const char *field = (const char *) policy + key->offset;

  memset (out, 0, sizeof *out);
  switch (key->type) {
  case MT_VALUE_SIZE:
  case MT_VALUE_RATE:
    memcpy (&out->bytes, field, sizeof out->bytes);
    break;
  case MT_VALUE_SIZE_OR_PERCENT:
    memcpy (&out->size, field, sizeof out->size);
    break;
  case MT_VALUE_PERCENT:
    memcpy (&out->percent, field, sizeof out->percent);
    break;
  case MT_VALUE_DURATION:
    memcpy (&out->usec, field, sizeof out->usec);
    break;
  case MT_VALUE_BOOLEAN:
    memcpy (&out->boolean, field, sizeof out->boolean);
    break;
  case MT_VALUE_SHARES:
    memcpy (&out->shares, field, sizeof out->shares);
    break;
  case MT_VALUE_MECHANISM:
    memcpy (&out->mechanism, field, sizeof out->mechanism);
    break;
  case MT_VALUE_UINT:
    memcpy (&out->number, field, sizeof out->number);
    break;
  case MT_VALUE_PAGE_REPORTING:
    memcpy (&out->page_reporting, field, sizeof out->page_reporting);
    break;
  default:
    g_assert_not_reached ();
  }
}

char *
mt_key_format (const MtKey *key, const MtValue *value)
{
  switch (key->type) {
  case MT_VALUE_SIZE:
    return mt_format_size (value->bytes);
  case MT_VALUE_RATE: {
    g_autofree char *size = mt_format_size (value->bytes);
    return g_strconcat (size, "/s", NULL);
  }
  case MT_VALUE_SIZE_OR_PERCENT:
    return value->size.is_percent ? mt_format_percent (value->size.percent)
                                  : mt_format_size (value->size.bytes);
  case MT_VALUE_PERCENT:
    return mt_format_percent (value->percent);
  case MT_VALUE_DURATION:
    return mt_format_duration (value->usec);
  case MT_VALUE_BOOLEAN:
    return g_strdup (value->boolean ? "true" : "false");
  case MT_VALUE_SHARES:
    return g_strdup_printf ("%u", value->shares);
  case MT_VALUE_MECHANISM:
    return g_strdup (mt_mechanism_to_string (value->mechanism));
  case MT_VALUE_UINT:
    return g_strdup_printf ("%" G_GUINT64_FORMAT, value->number);
  case MT_VALUE_PAGE_REPORTING:
    return g_strdup (mt_page_reporting_to_string (value->page_reporting));
  default:
    g_assert_not_reached ();
  }
}

void
mt_setting_clear (MtSetting *setting)
{
  g_clear_pointer (&setting->text, g_free);
}

gboolean
mt_size_min_above_max (const MtSize *min, const MtSize *max)
{
  if (min->is_percent != max->is_percent)
    return FALSE;
  return min->is_percent ? min->percent > max->percent : min->bytes > max->bytes;
}
