/* agent-parse.c: a guest agent's line -> MtAgentReport / MtAgentReply,
 * every member checked (docs/agent-protocol.md, "host must check"). */
#define G_LOG_DOMAIN "memtide-agent-parse"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "agent-parse.h"
#include "model.h"

#define PAGE_SIZE_MIN     4096
#define PAGE_SIZE_MAX     (2 * 1024 * 1024)
#define INTERVAL_MS_MIN   100
#define INTERVAL_MS_MAX   60000
#define SWAP_MAX          (G_GUINT64_CONSTANT (1) << 50)
#define BLOCK_SIZE_MIN    (G_GUINT64_CONSTANT (1) << 20)
#define BLOCK_SIZE_MAX    (G_GUINT64_CONSTANT (1) << 34)
#define COUNT32_MAX       ((guint64) G_MAXUINT32)
#define RECLAIM_BYTES_MAX (G_GUINT64_CONSTANT (1) << 40)
#define UNAVAILABLE_MAX   16
#define METHODS_MAX       8
#define NAME_MAX_LEN      32
/* The patched kernel's tunables (kernel-patches/0004). */
#define DELAY_MS_MIN       10
#define DELAY_MS_MAX       60000
#define BUDGET_DIVISOR_MIN 1
#define BUDGET_DIVISOR_MAX 1024
/* Blocks the boot memory only partly fills (around the PCI hole, at its
 * end) are whole blocks: a guest may have this many above its maximum. */
#define USAGE_BLOCKS_SLACK 4

static const char *const error_codes[] = {
  [MT_AGENT_OK] = "ok",
  [MT_AGENT_ERR_MALFORMED] = "malformed",
  [MT_AGENT_ERR_TOO_DEEP] = "too_deep",
  [MT_AGENT_ERR_TOO_LONG] = "line_too_long",
  [MT_AGENT_ERR_VERSION] = "bad_version",
  [MT_AGENT_ERR_FIELD] = "bad_field",
  [MT_AGENT_ERR_INCONSISTENT] = "inconsistent",
  [MT_AGENT_ERR_REGRESSED] = "regressed",
  [MT_AGENT_ERR_RATE] = "rate",
  [MT_AGENT_ERR_RESTARTS] = "restarts",
};
G_STATIC_ASSERT (G_N_ELEMENTS (error_codes) == MT_AGENT_ERR_COUNT);

const char *
mt_agent_error_code_to_string (MtAgentErrorCode code)
{
  if ((guint) code < G_N_ELEMENTS (error_codes) && error_codes[code])
    return error_codes[code];
  return "unknown";
}

static const char *const reasons[] = {
  [MT_AGENT_REASON_CONNECT] = "connect", [MT_AGENT_REASON_TICK] = "tick",
  [MT_AGENT_REASON_PSI] = "psi",         [MT_AGENT_REASON_REPLY] = "reply",
  [MT_AGENT_REASON_MEMORY] = "memory",
};

const char *
mt_agent_reason_to_string (MtAgentReason r)
{
  return (guint) r < G_N_ELEMENTS (reasons) ? reasons[r] : "unknown";
}

static const char *const psi_modes[] = {
  [MT_AGENT_PSI_MODE_TRIGGER] = "trigger",
  [MT_AGENT_PSI_MODE_POLL] = "poll",
  [MT_AGENT_PSI_MODE_OFF] = "off",
  [MT_AGENT_PSI_MODE_NONE] = "none",
};

static const char *const unavailable_names[] = {
  [MT_AGENT_UNAVAIL_MEMINFO] = "meminfo",
  [MT_AGENT_UNAVAIL_VMSTAT] = "vmstat",
  [MT_AGENT_UNAVAIL_PSI] = "psi",
  [MT_AGENT_UNAVAIL_PSI_TRIGGER] = "psi_trigger",
  [MT_AGENT_UNAVAIL_MEMORY_BLOCKS] = "memory_blocks",
  [MT_AGENT_UNAVAIL_MEMORY_ZONES] = "memory_zones",
  [MT_AGENT_UNAVAIL_PAGE_REPORTING] = "page_reporting",
  [MT_AGENT_UNAVAIL_PAGE_REPORTING_COUNTERS] = "page_reporting_counters",
  [MT_AGENT_UNAVAIL_MEMORY_RECLAIM] = "memory.reclaim",
  [MT_AGENT_UNAVAIL_DROP_CACHES] = "drop_caches",
  [MT_AGENT_UNAVAIL_MLOCK] = "mlock",
  [MT_AGENT_UNAVAIL_BLOCK_USAGE] = "block_usage",
  [MT_AGENT_UNAVAIL_VIRTIO_MEM_RANGES] = "virtio_mem_ranges",
};
G_STATIC_ASSERT (G_N_ELEMENTS (unavailable_names) == MT_AGENT_UNAVAIL_N);

/* Guest text that reaches a log line: printable ASCII only. */
static void
sanitize (char *dst, gsize size, const char *src)
{
  gsize i = 0;

  for (; src && *src && i + 1 < size; src++)
    dst[i++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
  dst[i] = '\0';
}

void
mt_agent_problem_set (MtAgentProblem *p, MtAgentErrorCode code, const char *field,
                      const char *format, ...)
{
  char raw[sizeof p->message];
  va_list ap;

  p->code = code;
  sanitize (p->field, sizeof p->field, field ? field : "");
  va_start (ap, format);
  g_vsnprintf (raw, sizeof raw, format, ap);
  va_end (ap);
  sanitize (p->message, sizeof p->message, raw);
}

guint64
mt_agent_report_movable (const MtAgentReport *r)
{
  if (!r->has_blocks || r->blocks.online_movable == MT_UNKNOWN
      || r->blocks.block_size == MT_UNKNOWN)
    return MT_UNKNOWN;
  /* Below MT_UNKNOWN even when it saturates: a huge value is a lie to
   * catch, not an unknown. */
  return MIN (mt_sat_mul (r->blocks.online_movable, r->blocks.block_size), MT_AGENT_INT_MAX);
}

guint64
mt_agent_report_droppable_cache (const MtAgentReport *r)
{
  if (!r->has_mem || r->mem.cached == MT_UNKNOWN)
    return MT_UNKNOWN;
  return r->mem.shmem == MT_UNKNOWN ? r->mem.cached : mt_sat_sub (r->mem.cached, r->mem.shmem);
}

/* ---- member access -------------------------------------------------------- */

/* Where in the line we are, for the problem's field name. */
typedef struct {
  JsonObject *obj;
  const char *prefix; /* "" at the top, "mem." inside mem */
  MtAgentProblem *problem;
} Obj;

static const char *
path (const Obj *o, const char *key, char *buf, gsize size)
{
  g_snprintf (buf, size, "%s%s", o->prefix, key);
  return buf;
}

static gboolean
bad (const Obj *o, const char *key, const char *what)
{
  char f[64];

  mt_agent_problem_set (o->problem, MT_AGENT_ERR_FIELD, path (o, key, f, sizeof f), "%s %s", f,
                        what);
  return FALSE;
}

/* NULL when absent; fails when required and absent. */
static gboolean
member (const Obj *o, const char *key, gboolean required, JsonNode **out)
{
  *out = json_object_get_member (o->obj, key);
  if (*out == NULL && required)
    return bad (o, key, "missing");
  return TRUE;
}

static gboolean
is_int (JsonNode *n)
{
  return JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64;
}

/* An integer in [min, max]; MT_UNKNOWN when absent and optional. */
static gboolean
get_uint (const Obj *o, const char *key, gboolean required, guint64 min, guint64 max, guint64 *out)
{
  JsonNode *n;
  gint64 v;
  char f[64];

  *out = MT_UNKNOWN;
  if (!member (o, key, required, &n))
    return FALSE;
  if (n == NULL)
    return TRUE;
  if (!is_int (n))
    return bad (o, key, "is not an integer");
  v = json_node_get_int (n);
  if (v < 0 || (guint64) v < min || (guint64) v > max) {
    mt_agent_problem_set (o->problem, MT_AGENT_ERR_FIELD, path (o, key, f, sizeof f),
                          "%s = %" G_GINT64_FORMAT " outside [%" G_GUINT64_FORMAT
                          ", %" G_GUINT64_FORMAT "]",
                          f, v, min, max);
    return FALSE;
  }
  *out = (guint64) v;
  return TRUE;
}

/* A number (integer or not) in [min, max]; NAN when absent and optional. */
static gboolean
get_number (const Obj *o, const char *key, gboolean required, double min, double max, double *out)
{
  JsonNode *n;
  double v;

  *out = NAN;
  if (!member (o, key, required, &n))
    return FALSE;
  if (n == NULL)
    return TRUE;
  if (is_int (n))
    v = (double) json_node_get_int (n);
  else if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_DOUBLE)
    v = json_node_get_double (n);
  else
    return bad (o, key, "is not a number");
  if (!isfinite (v) || v < min || v > max)
    return bad (o, key, "is out of range");
  *out = v;
  return TRUE;
}

static gboolean
get_bool (const Obj *o, const char *key, gboolean required, gboolean *present, gboolean *out)
{
  JsonNode *n;

  *out = FALSE;
  *present = FALSE;
  if (!member (o, key, required, &n))
    return FALSE;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return bad (o, key, "is not a boolean");
  *present = TRUE;
  *out = json_node_get_boolean (n);
  return TRUE;
}

typedef gboolean (*CharOk) (char c);

static gboolean
printable (char c)
{
  return c >= 0x20 && c < 0x7f;
}

static gboolean
name_char (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

static gboolean
boot_id_char (char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
}

/* A string of at most max_len bytes whose characters pass ok (NULL: any
 * UTF-8, sanitized on the way out); "" when absent and optional. */
static gboolean
get_string (const Obj *o, const char *key, gboolean required, gsize max_len, CharOk ok, char *out,
            gsize out_size)
{
  JsonNode *n;
  const char *v;
  gsize len;

  g_assert (max_len < out_size);
  out[0] = '\0';
  if (!member (o, key, required, &n))
    return FALSE;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return bad (o, key, "is not a string");
  v = json_node_get_string (n);
  len = strlen (v);
  if (len > max_len)
    return bad (o, key, "is too long");
  if (ok) {
    for (gsize i = 0; i < len; i++)
      if (!ok (v[i]))
        return bad (o, key, "has a character outside its set");
    memcpy (out, v, len + 1);
  } else {
    sanitize (out, out_size, v);
  }
  return TRUE;
}

static gboolean
get_object (const Obj *o, const char *key, const char *prefix, Obj *out, gboolean *present)
{
  JsonNode *n = json_object_get_member (o->obj, key);

  *present = n != NULL;
  *out = (Obj){ NULL, prefix, o->problem };
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return bad (o, key, "is not an object");
  out->obj = json_node_get_object (n);
  return TRUE;
}

/* An array of at most max_items names; each known one sets its bit. */
static gboolean
get_name_set (const Obj *o, const char *key, guint max_items, const char *const *names,
              guint n_names, guint *bits)
{
  JsonNode *n = json_object_get_member (o->obj, key);
  JsonArray *a;

  *bits = 0;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return bad (o, key, "is not an array");
  a = json_node_get_array (n);
  if (json_array_get_length (a) > max_items)
    return bad (o, key, "has too many items");
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *item = json_array_get_element (a, i);
    const char *s;

    if (!JSON_NODE_HOLDS_VALUE (item) || json_node_get_value_type (item) != G_TYPE_STRING)
      return bad (o, key, "has an item that is not a string");
    s = json_node_get_string (item);
    if (strlen (s) > NAME_MAX_LEN)
      return bad (o, key, "has an item that is too long");
    for (guint k = 0; k < n_names; k++)
      if (names[k] && strcmp (s, names[k]) == 0)
        *bits |= 1u << k;
  }
  return TRUE;
}

/* One of `names` (index returned); anything else fails. */
static gboolean
get_enum (const Obj *o, const char *key, gboolean required, const char *const *names, guint n_names,
          guint *out)
{
  char v[NAME_MAX_LEN + 1];

  if (!get_string (o, key, required, NAME_MAX_LEN, printable, v, sizeof v))
    return FALSE;
  for (guint k = 0; k < n_names; k++) {
    if (names[k] && strcmp (v, names[k]) == 0) {
      *out = k;
      return TRUE;
    }
  }
  if (!required && v[0] == '\0' && !json_object_has_member (o->obj, key))
    return TRUE;
  return bad (o, key, "has an unknown value");
}

static gboolean
not_above (const Obj *o, const char *key, guint64 v, const char *bound_name, guint64 bound)
{
  char f[64];

  if (v == MT_UNKNOWN || bound == MT_UNKNOWN || v <= bound)
    return TRUE;
  mt_agent_problem_set (o->problem, MT_AGENT_ERR_INCONSISTENT, path (o, key, f, sizeof f),
                        "%s %" G_GUINT64_FORMAT " > %s %" G_GUINT64_FORMAT, f, v, bound_name,
                        bound);
  return FALSE;
}

static gboolean
power_of_two (guint64 v)
{
  return v != 0 && (v & (v - 1)) == 0;
}

/* ---- reports -------------------------------------------------------------- */

static gboolean
parse_hello (const Obj *o, MtAgentReport *r)
{
  guint mode = 0;

  if (!get_string (o, "agent", TRUE, 64, printable, r->agent, sizeof r->agent)
      || !get_string (o, "kernel", FALSE, 64, printable, r->kernel, sizeof r->kernel)
      || !get_string (o, "boot_id", FALSE, 36, boot_id_char, r->boot_id, sizeof r->boot_id)
      || !get_uint (o, "page_size", TRUE, PAGE_SIZE_MIN, PAGE_SIZE_MAX, &r->page_size)
      || !get_uint (o, "interval_ms", TRUE, INTERVAL_MS_MIN, INTERVAL_MS_MAX, &r->interval_ms)
      || !get_enum (o, "psi_mode", TRUE, psi_modes, G_N_ELEMENTS (psi_modes), &mode)
      || !get_string (o, "psi_trigger", FALSE, 63, printable, r->psi_trigger,
                      sizeof r->psi_trigger))
    return FALSE;
  r->psi_mode = mode;
  if (r->boot_id[0] && strlen (r->boot_id) != 36)
    return bad (o, "boot_id", "is not 36 characters");
  if (!power_of_two (r->page_size))
    return bad (o, "page_size", "is not a power of two");
  {
    static const char *const methods[] = { "memory.reclaim", "drop_caches" };
    gboolean present;

    if (!get_name_set (o, "reclaim_methods", METHODS_MAX, methods, G_N_ELEMENTS (methods),
                       &r->reclaim_methods)
        || !get_bool (o, "root", FALSE, &present, &r->root)
        || !get_name_set (o, "unavailable", UNAVAILABLE_MAX, unavailable_names,
                          G_N_ELEMENTS (unavailable_names), &r->unavailable))
      return FALSE;
  }
  return TRUE;
}

static gboolean
parse_mem (const Obj *top, MtAgentReport *r, const MtAgentLimits *limits)
{
  Obj o;
  guint64 max = limits && limits->max_memory != MT_UNKNOWN ? limits->max_memory : MT_AGENT_INT_MAX;

  if (!get_object (top, "mem", "mem.", &o, &r->has_mem))
    return FALSE;
  r->mem.total = r->mem.free = r->mem.available = r->mem.cached = r->mem.shmem = MT_UNKNOWN;
  r->mem.anon = r->mem.slab_reclaimable = r->mem.swap_total = r->mem.swap_free = MT_UNKNOWN;
  r->mem.inactive_file = MT_UNKNOWN;
  if (!r->has_mem)
    return TRUE;
  if (!get_uint (&o, "total", FALSE, 1, MT_AGENT_INT_MAX, &r->mem.total)
      || !get_uint (&o, "free", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.free)
      || !get_uint (&o, "available", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.available)
      || !get_uint (&o, "cached", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.cached)
      || !get_uint (&o, "shmem", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.shmem)
      || !get_uint (&o, "anon", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.anon)
      || !get_uint (&o, "slab_reclaimable", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.slab_reclaimable)
      || !get_uint (&o, "inactive_file", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.inactive_file)
      || !get_uint (&o, "swap_total", FALSE, 0, SWAP_MAX, &r->mem.swap_total)
      || !get_uint (&o, "swap_free", FALSE, 0, MT_AGENT_INT_MAX, &r->mem.swap_free))
    return FALSE;
  /* Every size is bounded by the VM's maximum even when total is absent. */
  {
    static const char *const keys[] = { "total", "free", "available",        "cached",
                                        "shmem", "anon", "slab_reclaimable", "inactive_file" };
    const guint64 values[] = {
      r->mem.total, r->mem.free, r->mem.available,        r->mem.cached,
      r->mem.shmem, r->mem.anon, r->mem.slab_reclaimable, r->mem.inactive_file
    };

    for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
      if (!not_above (&o, keys[i], values[i], "the VM's maximum memory", max))
        return FALSE;
  }
  return not_above (&o, "free", r->mem.free, "mem.total", r->mem.total)
         && not_above (&o, "available", r->mem.available, "mem.total", r->mem.total)
         && not_above (&o, "cached", r->mem.cached, "mem.total", r->mem.total)
         && not_above (&o, "shmem", r->mem.shmem, "mem.total", r->mem.total)
         && not_above (&o, "anon", r->mem.anon, "mem.total", r->mem.total)
         && not_above (&o, "slab_reclaimable", r->mem.slab_reclaimable, "mem.total", r->mem.total)
         /* Not bounded by cached: MADV_FREE'd anon pages sit on the
          * inactive file list too, so an honest guest can exceed it. */
         && not_above (&o, "inactive_file", r->mem.inactive_file, "mem.total", r->mem.total)
         && not_above (&o, "swap_free", r->mem.swap_free, "mem.swap_total", r->mem.swap_total);
}

static gboolean
parse_vmstat (const Obj *top, MtAgentReport *r)
{
  Obj o;

  if (!get_object (top, "vmstat", "vmstat.", &o, &r->has_vmstat))
    return FALSE;
  r->vmstat.pgmajfault = r->vmstat.pswpin_bytes = r->vmstat.pswpout_bytes = MT_UNKNOWN;
  r->vmstat.oom_kill = MT_UNKNOWN;
  if (!r->has_vmstat)
    return TRUE;
  return get_uint (&o, "pgmajfault", FALSE, 0, MT_AGENT_INT_MAX, &r->vmstat.pgmajfault)
         && get_uint (&o, "pswpin_bytes", FALSE, 0, MT_AGENT_INT_MAX, &r->vmstat.pswpin_bytes)
         && get_uint (&o, "pswpout_bytes", FALSE, 0, MT_AGENT_INT_MAX, &r->vmstat.pswpout_bytes)
         && get_uint (&o, "oom_kill", FALSE, 0, MT_AGENT_INT_MAX, &r->vmstat.oom_kill);
}

static gboolean
parse_psi_line (const Obj *psi, const char *key, const char *prefix, MtAgentPsiLine *l,
                gboolean *present)
{
  Obj o;

  *l = (MtAgentPsiLine){ NAN, NAN, MT_UNKNOWN };
  if (!get_object (psi, key, prefix, &o, present))
    return FALSE;
  if (!*present)
    return TRUE;
  return get_number (&o, "avg10", TRUE, 0.0, 100.0, &l->avg10)
         && get_number (&o, "avg60", TRUE, 0.0, 100.0, &l->avg60)
         && get_uint (&o, "total_us", TRUE, 0, MT_AGENT_INT_MAX, &l->total_us);
}

static gboolean
parse_psi (const Obj *top, MtAgentReport *r)
{
  Obj o;
  gboolean some = FALSE, full = FALSE;

  r->psi_some = r->psi_full = (MtAgentPsiLine){ NAN, NAN, MT_UNKNOWN };
  if (!get_object (top, "psi", "psi.", &o, &r->has_psi))
    return FALSE;
  if (!r->has_psi)
    return TRUE;
  if (!parse_psi_line (&o, "some", "psi.some.", &r->psi_some, &some)
      || !parse_psi_line (&o, "full", "psi.full.", &r->psi_full, &full))
    return FALSE;
  if (!some)
    return bad (&o, "some", "missing");
  return TRUE;
}

static gboolean
parse_blocks (const Obj *top, MtAgentReport *r, const MtAgentLimits *limits)
{
  Obj o;
  guint64 max = limits && limits->max_memory != MT_UNKNOWN ? limits->max_memory : MT_AGENT_INT_MAX;

  if (!get_object (top, "memory_blocks", "memory_blocks.", &o, &r->has_blocks))
    return FALSE;
  r->blocks.block_size = r->blocks.online_movable = r->blocks.online_kernel = MT_UNKNOWN;
  r->blocks.offline = r->blocks.going_offline = MT_UNKNOWN;
  if (!r->has_blocks)
    return TRUE;
  if (!get_uint (&o, "block_size", TRUE, BLOCK_SIZE_MIN, BLOCK_SIZE_MAX, &r->blocks.block_size)
      || !get_uint (&o, "online_movable", FALSE, 0, COUNT32_MAX, &r->blocks.online_movable)
      || !get_uint (&o, "online_kernel", FALSE, 0, COUNT32_MAX, &r->blocks.online_kernel)
      || !get_uint (&o, "offline", FALSE, 0, COUNT32_MAX, &r->blocks.offline)
      || !get_uint (&o, "going_offline", FALSE, 0, COUNT32_MAX, &r->blocks.going_offline))
    return FALSE;
  if (!power_of_two (r->blocks.block_size))
    return bad (&o, "block_size", "is not a power of two");
  return not_above (&o, "online_movable", mt_agent_report_movable (r), "the VM's maximum memory",
                    max);
}

static gboolean
parse_page_reporting (const Obj *top, MtAgentReport *r, const MtAgentLimits *limits)
{
  Obj o;
  guint64 max = limits && limits->max_memory != MT_UNKNOWN ? limits->max_memory : MT_AGENT_INT_MAX;

  if (!get_object (top, "page_reporting", "page_reporting.", &o, &r->has_page_reporting))
    return FALSE;
  r->page_reporting.order = r->page_reporting.reported_bytes = MT_UNKNOWN;
  r->page_reporting.reported_total_bytes = r->page_reporting.reused_total_bytes = MT_UNKNOWN;
  r->page_reporting.passes = r->page_reporting.budget_exhausted = MT_UNKNOWN;
  r->page_reporting.delay_ms = r->page_reporting.budget_divisor = MT_UNKNOWN;
  if (!r->has_page_reporting)
    return TRUE;
  if (!get_uint (&o, "order", FALSE, 0, 63, &r->page_reporting.order)
      || !get_uint (&o, "reported_bytes", FALSE, 0, MT_AGENT_INT_MAX,
                    &r->page_reporting.reported_bytes)
      || !get_uint (&o, "reported_total_bytes", FALSE, 0, MT_AGENT_INT_MAX,
                    &r->page_reporting.reported_total_bytes)
      || !get_uint (&o, "reused_total_bytes", FALSE, 0, MT_AGENT_INT_MAX,
                    &r->page_reporting.reused_total_bytes)
      || !get_uint (&o, "passes", FALSE, 0, MT_AGENT_INT_MAX, &r->page_reporting.passes)
      || !get_uint (&o, "budget_exhausted", FALSE, 0, MT_AGENT_INT_MAX,
                    &r->page_reporting.budget_exhausted)
      || !get_uint (&o, "delay_ms", FALSE, DELAY_MS_MIN, DELAY_MS_MAX, &r->page_reporting.delay_ms)
      || !get_uint (&o, "budget_divisor", FALSE, BUDGET_DIVISOR_MIN, BUDGET_DIVISOR_MAX,
                    &r->page_reporting.budget_divisor))
    return FALSE;
  return not_above (&o, "budget_exhausted", r->page_reporting.budget_exhausted,
                    "page_reporting.passes", r->page_reporting.passes)
         && not_above (&o, "reported_bytes", r->page_reporting.reported_bytes,
                       "the VM's maximum memory", max)
         && not_above (&o, "reported_bytes", r->page_reporting.reported_bytes, "mem.total",
                       r->mem.total)
         && not_above (&o, "reused_total_bytes", r->page_reporting.reused_total_bytes,
                       "page_reporting.reported_total_bytes",
                       r->page_reporting.reported_total_bytes);
}

/* One kind of block_usage; absent: no blocks. */
static gboolean
parse_usage_kind (const Obj *top, const char *key, const char *prefix, guint64 max, MtBlockUsage *u)
{
  Obj o;
  gboolean present;

  *u = (MtBlockUsage){ 0, 0, 0, 0, 0, 0 };
  if (!get_object (top, key, prefix, &o, &present))
    return FALSE;
  if (!present)
    return TRUE;
  return get_uint (&o, "blocks", TRUE, 1, COUNT32_MAX, &u->blocks)
         && get_uint (&o, "free", TRUE, 0, max, &u->free)
         && get_uint (&o, "movable", TRUE, 0, max, &u->movable)
         && get_uint (&o, "unmovable", TRUE, 0, max, &u->unmovable)
         && get_uint (&o, "pinned", TRUE, 0, max, &u->pinned)
         && get_uint (&o, "offline", TRUE, 0, max, &u->offline);
}

static guint64
usage_sum (const MtBlockUsage *u)
{
  return mt_sat_add (
    mt_sat_add (mt_sat_add (u->free, u->movable), mt_sat_add (u->unmovable, u->pinned)),
    u->offline);
}

/* Bytes of the blocks of one kind, against what each page may count in. */
static gboolean
usage_fits (const Obj *o, const char *key, const MtBlockUsage *u, guint64 block_size,
            guint64 max_blocks)
{
  char f[64];
  guint64 room = mt_sat_mul (u->blocks, block_size);

  g_snprintf (f, sizeof f, "%s.blocks", key);
  if (!not_above (o, f, u->blocks, "the VM's maximum memory in blocks", max_blocks))
    return FALSE;
  if (usage_sum (u) <= room)
    return TRUE;
  g_snprintf (f, sizeof f, "block_usage.%s", key);
  mt_agent_problem_set (o->problem, MT_AGENT_ERR_INCONSISTENT, f,
                        "%s: free + movable + unmovable + pinned + offline %" G_GUINT64_FORMAT
                        " > blocks x block_size %" G_GUINT64_FORMAT,
                        f, usage_sum (u), room);
  return FALSE;
}

static gboolean
parse_block_usage (const Obj *top, MtAgentReport *r, const MtAgentLimits *limits)
{
  Obj o;
  guint64 max = limits && limits->max_memory != MT_UNKNOWN ? limits->max_memory : MT_AGENT_INT_MAX;
  guint64 max_blocks;
  const MtBlockUsage *k = &r->usage_kernel, *m = &r->usage_movable, *v = &r->usage_vmem;

  r->usage_kernel = r->usage_movable = r->usage_vmem = MT_BLOCK_USAGE_UNKNOWN;
  if (!get_object (top, "block_usage", "block_usage.", &o, &r->has_block_usage))
    return FALSE;
  if (!r->has_block_usage)
    return TRUE;
  if (!r->has_blocks) {
    mt_agent_problem_set (o.problem, MT_AGENT_ERR_INCONSISTENT, "block_usage",
                          "block_usage without memory_blocks (its block size)");
    return FALSE;
  }
  if (!parse_usage_kind (&o, "kernel", "block_usage.kernel.", max, &r->usage_kernel)
      || !parse_usage_kind (&o, "movable", "block_usage.movable.", max, &r->usage_movable)
      || !parse_usage_kind (&o, "virtio_mem", "block_usage.virtio_mem.", max, &r->usage_vmem))
    return FALSE;
  max_blocks = MIN (max / r->blocks.block_size + USAGE_BLOCKS_SLACK, COUNT32_MAX);
  if (!usage_fits (&o, "kernel", k, r->blocks.block_size, max_blocks)
      || !usage_fits (&o, "movable", m, r->blocks.block_size, max_blocks)
      || !usage_fits (&o, "virtio_mem", v, r->blocks.block_size, max_blocks)
      || !not_above (&o, "movable.blocks", m->blocks,
                     "the VM's maximum memory in blocks less kernel.blocks",
                     max_blocks - k->blocks))
    return FALSE;
  /* The agent sums each virtio-mem block into its zone too. */
  {
    static const char *const keys[] = { "virtio_mem.blocks",  "virtio_mem.free",
                                        "virtio_mem.movable", "virtio_mem.unmovable",
                                        "virtio_mem.pinned",  "virtio_mem.offline" };
    const guint64 vm[] = { v->blocks, v->free, v->movable, v->unmovable, v->pinned, v->offline };
    const guint64 zones[] = { k->blocks + m->blocks,   k->free + m->free,
                              k->movable + m->movable, k->unmovable + m->unmovable,
                              k->pinned + m->pinned,   k->offline + m->offline };

    for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
      if (!not_above (&o, keys[i], vm[i], "the same in kernel and movable together", zones[i]))
        return FALSE;
  }
  return TRUE;
}

static gboolean
parse_report (const Obj *o, const MtAgentLimits *limits, MtAgentReport *r)
{
  guint reason = 0;
  guint64 id = MT_UNKNOWN;
  gboolean has_hello;

  memset (r, 0, sizeof *r);
  if (!get_uint (o, "seq", TRUE, 1, MT_AGENT_INT_MAX, &r->seq)
      || !get_enum (o, "reason", TRUE, reasons, G_N_ELEMENTS (reasons), &reason)
      || !get_uint (o, "mono_us", TRUE, 0, MT_AGENT_INT_MAX, &r->mono_us)
      || !get_uint (o, "dropped", TRUE, 0, MT_AGENT_INT_MAX, &r->dropped)
      || !get_bool (o, "hello", FALSE, &has_hello, &r->hello))
    return FALSE;
  r->reason = reason;
  /* The id only means something on an answer; elsewhere it is ignored. */
  if (r->reason == MT_AGENT_REASON_REPLY) {
    if (!get_uint (o, "id", TRUE, 0, G_MAXUINT32, &id))
      return FALSE;
    r->has_id = TRUE;
    r->id = (guint32) id;
  }
  if (has_hello && !r->hello)
    return bad (o, "hello", "is false (only hello reports carry it, as true)");
  r->page_size = r->interval_ms = MT_UNKNOWN;
  if (r->hello && !parse_hello (o, r))
    return FALSE;
  return parse_mem (o, r, limits) && parse_vmstat (o, r) && parse_psi (o, r)
         && parse_blocks (o, r, limits) && parse_page_reporting (o, r, limits)
         && parse_block_usage (o, r, limits);
}

/* ---- replies -------------------------------------------------------------- */

static gboolean
parse_reply (const Obj *o, MtAgentReply *r)
{
  JsonNode *n;
  gboolean present;
  guint64 id;

  memset (r, 0, sizeof *r);
  r->requested = r->reclaimed = r->elapsed_ms = r->interval_ms = MT_UNKNOWN;
  r->delay_ms = r->budget_divisor = MT_UNKNOWN;
  if (!member (o, "id", TRUE, &n))
    return FALSE;
  if (!JSON_NODE_HOLDS_NULL (n)) {
    if (!get_uint (o, "id", TRUE, 0, G_MAXUINT32, &id))
      return FALSE;
    r->has_id = TRUE;
    r->id = (guint32) id;
  }
  if (!get_string (o, "op", FALSE, NAME_MAX_LEN, name_char, r->op, sizeof r->op)
      || !get_bool (o, "ok", TRUE, &present, &r->ok)
      || !get_string (o, "error", !r->ok, NAME_MAX_LEN, name_char, r->error, sizeof r->error)
      || !get_string (o, "field", FALSE, NAME_MAX_LEN, printable, r->field, sizeof r->field)
      || !get_string (o, "message", FALSE, sizeof r->message - 1, NULL, r->message,
                      sizeof r->message))
    return FALSE;
  if (json_object_has_member (o->obj, "op") && r->op[0] == '\0')
    return bad (o, "op", "is empty");
  if (!r->ok && r->error[0] == '\0')
    return bad (o, "error", "is empty");
  if (!r->ok)
    return TRUE;
  if (strcmp (r->op, "reclaim") == 0) {
    if (!get_string (o, "method", TRUE, NAME_MAX_LEN, name_char, r->method, sizeof r->method)
        || !get_uint (o, "requested", TRUE, 1, RECLAIM_BYTES_MAX, &r->requested)
        || !get_uint (o, "reclaimed", TRUE, 0, RECLAIM_BYTES_MAX, &r->reclaimed)
        || !get_bool (o, "complete", TRUE, &present, &r->complete)
        || !get_bool (o, "timed_out", FALSE, &present, &r->timed_out)
        || !get_string (o, "stopped_by", FALSE, NAME_MAX_LEN, printable, r->stopped_by,
                        sizeof r->stopped_by)
        || !get_uint (o, "elapsed_ms", FALSE, 0, G_MAXUINT32 + G_GUINT64_CONSTANT (1),
                      &r->elapsed_ms))
      return FALSE;
    if (r->method[0] == '\0')
      return bad (o, "method", "is empty");
    if (r->complete != (r->reclaimed >= r->requested)) {
      mt_agent_problem_set (o->problem, MT_AGENT_ERR_INCONSISTENT, "complete",
                            "complete does not match reclaimed >= requested");
      return FALSE;
    }
  } else if (strcmp (r->op, "set_interval") == 0) {
    if (!get_uint (o, "interval_ms", TRUE, INTERVAL_MS_MIN, INTERVAL_MS_MAX, &r->interval_ms))
      return FALSE;
  } else if (strcmp (r->op, "tune_reporting") == 0) {
    if (!get_uint (o, "delay_ms", TRUE, DELAY_MS_MIN, DELAY_MS_MAX, &r->delay_ms)
        || !get_uint (o, "budget_divisor", TRUE, BUDGET_DIVISOR_MIN, BUDGET_DIVISOR_MAX,
                      &r->budget_divisor))
      return FALSE;
  }
  return TRUE;
}

/* ---- the line --------------------------------------------------------------- */

/* json-glib keeps the last of duplicate members; the scanner counted
 * them all, so a shortfall here means a duplicate. */
static guint
count_members (JsonNode *n)
{
  guint c = 0;

  if (JSON_NODE_HOLDS_OBJECT (n)) {
    JsonObjectIter it;
    JsonNode *v;

    json_object_iter_init (&it, json_node_get_object (n));
    while (json_object_iter_next (&it, NULL, &v))
      c += 1 + count_members (v);
  } else if (JSON_NODE_HOLDS_ARRAY (n)) {
    JsonArray *a = json_node_get_array (n);
    for (guint i = 0; i < json_array_get_length (a); i++)
      c += count_members (json_array_get_element (a, i));
  }
  return c;
}

/* Members the strict scanner saw: every string directly followed (after
 * blanks) by ':' is a member name. */
static guint
count_names (const char *line, gsize len)
{
  guint c = 0;
  gboolean in_str = FALSE;

  for (gsize i = 0; i < len; i++) {
    if (in_str) {
      if (line[i] == '\\')
        i++;
      else if (line[i] == '"')
        in_str = FALSE;
      continue;
    }
    if (line[i] == '"') {
      in_str = TRUE;
    } else if (line[i] == ':') {
      c++;
    }
  }
  return c;
}

gboolean
mt_agent_parse_line (const char *line, gsize len, const MtAgentLimits *limits, MtAgentMsg *out,
                     MtAgentProblem *problem)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) error = NULL;
  JsonNode *root;
  Obj top;
  guint64 v;
  char type[NAME_MAX_LEN + 1];

  if (len >= MT_AGENT_LINE_MAX) {
    mt_agent_problem_set (problem, MT_AGENT_ERR_TOO_LONG, NULL, "line longer than %d bytes",
                          MT_AGENT_LINE_MAX);
    return FALSE;
  }
  if (!mt_agent_json_check (line, len, problem))
    return FALSE;
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, line, (gssize) len, &error)) {
    mt_agent_problem_set (problem, MT_AGENT_ERR_MALFORMED, NULL, "%s", error->message);
    return FALSE;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    mt_agent_problem_set (problem, MT_AGENT_ERR_MALFORMED, NULL, "not a JSON object");
    return FALSE;
  }
  if (count_members (root) != count_names (line, len)) {
    mt_agent_problem_set (problem, MT_AGENT_ERR_MALFORMED, NULL, "duplicate member");
    return FALSE;
  }
  top = (Obj){ json_node_get_object (root), "", problem };

  {
    JsonNode *vn = json_object_get_member (top.obj, "v");
    if (vn == NULL || !is_int (vn) || (v = (guint64) json_node_get_int (vn)) != 1) {
      mt_agent_problem_set (problem, MT_AGENT_ERR_VERSION, "v", "\"v\" is not 1");
      return FALSE;
    }
  }
  if (!get_string (&top, "type", TRUE, NAME_MAX_LEN, name_char, type, sizeof type))
    return FALSE;
  if (strcmp (type, "report") == 0) {
    out->kind = MT_AGENT_MSG_REPORT;
    return parse_report (&top, limits, &out->report);
  }
  if (strcmp (type, "reply") == 0) {
    out->kind = MT_AGENT_MSG_REPLY;
    return parse_reply (&top, &out->reply);
  }
  return bad (&top, "type", "is neither \"report\" nor \"reply\"");
}
