/* config-keys.h: the schema of the policy: which keys a [host] group and
 * a VM policy ([vm GLOB] group or domain metadata) have, the type and
 * range of each, and where its value lands in MtHostPolicy/MtVmPolicy.
 */
#pragma once

#include <glib.h>
#include "policy.h"

typedef enum {
  MT_VALUE_SIZE,            /* guint64 bytes */
  MT_VALUE_SIZE_OR_PERCENT, /* MtSize */
  MT_VALUE_PERCENT,         /* double 0..100 */
  MT_VALUE_DURATION,        /* gint64 µs, within the key's lo..hi */
  MT_VALUE_RATE,            /* guint64 bytes per second, > 0 */
  MT_VALUE_BOOLEAN,
  MT_VALUE_SHARES, /* guint32 MT_SHARES_MIN..MT_SHARES_MAX */
  MT_VALUE_MECHANISM,
  MT_VALUE_UINT,           /* guint64 within the key's lo..hi */
  MT_VALUE_PAGE_REPORTING, /* MtPageReporting */
} MtValueType;

typedef union {
  guint64 bytes;                  /* SIZE, RATE */
  MtSize size;                    /* SIZE_OR_PERCENT */
  double percent;                 /* PERCENT */
  gint64 usec;                    /* DURATION */
  gboolean boolean;               /* BOOLEAN */
  guint32 shares;                 /* SHARES */
  MtMechanism mechanism;          /* MECHANISM */
  guint64 number;                 /* UINT */
  MtPageReporting page_reporting; /* PAGE_REPORTING */
} MtValue;

typedef struct {
  const char *name;
  MtValueType type;
  gsize offset;  /* of the field in MtVmPolicy or MtHostPolicy */
  gint64 lo, hi; /* DURATION: allowed range in µs; UINT: allowed range */
} MtKey;

typedef struct {
  const MtKey *keys;
  guint n_keys;
} MtKeyTable;

/* Indices into mt_vm_keys.keys, in the order docs/policy.md lists them. */
enum {
  MT_VM_KEY_MIN,
  MT_VM_KEY_MAX,
  MT_VM_KEY_SHARES,
  MT_VM_KEY_HEADROOM,
  MT_VM_KEY_HEADROOM_MIN,
  MT_VM_KEY_PRESSURE_TARGET,
  MT_VM_KEY_MECHANISM,
  MT_VM_KEY_ALLOW_DROP_CACHES,
  MT_VM_KEY_RECLAIM_COLD_CACHE,
  MT_VM_KEY_BLOCK_HINTS,
  MT_VM_KEY_PAGE_REPORTING,
  MT_VM_KEY_PAGE_REPORTING_FAST_DELAY,
  MT_VM_KEY_PAGE_REPORTING_FAST_DIVISOR,
  MT_VM_KEY_STALL_BUDGET,
  MT_VM_KEY_STALL_WINDOW,
  MT_VM_N_KEYS
};

/* Indices into mt_host_keys.keys. */
enum {
  MT_HOST_KEY_RESERVE,
  MT_HOST_KEY_BUDGET,
  MT_HOST_KEY_TICK_INTERVAL,
  MT_HOST_KEY_STUCK_TIMEOUT,
  MT_HOST_KEY_MIN_CHANGE,
  MT_HOST_KEY_MAX_SHRINK_RATE,
  MT_HOST_KEY_START_GRACE,
  MT_HOST_KEY_DRY_RUN,
  MT_HOST_N_KEYS
};

extern const MtKeyTable mt_vm_keys;
extern const MtKeyTable mt_host_keys;

/* Index of name in table, or -1. */
int mt_key_table_lookup (const MtKeyTable *table, const char *name);

/* "did you mean" text for an unknown key, "" when there is nothing to
 * suggest; free with g_free. */
char *mt_key_table_hint (const MtKeyTable *table, const char *name);

/* "min, max, ..." for "expected one of" messages; free with g_free. */
char *mt_key_table_names (const MtKeyTable *table);

/* Parse text (stripped) as the key's value.  Errors quote text and say
 * what was expected, but not where it came from. */
gboolean mt_key_parse (const MtKey *key, const char *text, MtValue *out, GError **error);

/* Copy a value into / out of the policy struct the table describes. */
void mt_key_store (const MtKey *key, const MtValue *value, gpointer policy);
void mt_key_fetch (const MtKey *key, gconstpointer policy, MtValue *out);

/* Canonical text of a value, parseable by mt_key_parse. */
char *mt_key_format (const MtKey *key, const MtValue *value);

/* One key = value as read from a file group or from metadata. */
typedef struct {
  guint key; /* index into its table */
  MtValue value;
  char *text; /* as written, stripped */
  guint line; /* 1-based line in its file; 0 for metadata */
} MtSetting;

void mt_setting_clear (MtSetting *setting);

/* TRUE when min and max can be compared without knowing the domain
 * (both absolute or both percent) and min is above max. */
gboolean mt_size_min_above_max (const MtSize *min, const MtSize *max);
