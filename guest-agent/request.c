/* memtide-agent: request parsing and reply formatting. */
#include "request.h"

#include "jw.h"
#include "util.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Requests are flat objects; a little nesting is tolerated in fields the
 * agent does not know (forward compatibility), no more. */
#define REQ_JSON_DEPTH 4

int
req_fail (struct req_error *err, const char *code, const char *field, const char *fmt, ...)
{
  va_list ap;

  err->code = code;
  err->field = field;
  va_start (ap, fmt);
  vsnprintf (err->message, sizeof err->message, fmt, ap);
  va_end (ap);
  return -1;
}

/* An integer field in [min, max]; absent is fine when !required. */
static int
get_uint (json_object *obj, const char *key, bool required, uint64_t min, uint64_t max,
          uint64_t *out, bool *present, struct req_error *err)
{
  json_object *v;
  int64_t x;

  *present = json_object_object_get_ex (obj, key, &v);
  if (!*present) {
    if (required)
      return req_fail (err, "bad_request", key, "missing field \"%s\"", key);
    return 0;
  }
  if (!json_object_is_type (v, json_type_int))
    return req_fail (err, "bad_request", key, "\"%s\" must be an integer", key);
  x = json_object_get_int64 (v);
  if (x < 0 || (uint64_t) x < min || (uint64_t) x > max)
    return req_fail (err, "bad_request", key, "\"%s\" out of range [%llu, %llu]", key,
                     (unsigned long long) min, (unsigned long long) max);
  *out = (uint64_t) x;
  return 0;
}

static bool
op_chars_ok (const char *s)
{
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
      return false;
  return true;
}

static int
parse_object (json_object *obj, struct request *req, struct req_error *err)
{
  json_object *v;
  uint64_t n;
  bool present;
  const char *op;

  /* The id first, so every later error can be matched to its request. */
  if (get_uint (obj, "id", true, 0, REQ_ID_MAX, &n, &present, err) < 0)
    return -1;
  req->id = err->id = n;
  err->has_id = true;

  if (!json_object_object_get_ex (obj, "op", &v) || !json_object_is_type (v, json_type_string))
    return req_fail (err, "bad_request", "op", "missing or non-string \"op\"");
  op = json_object_get_string (v);
  if (json_object_get_string_len (v) < 1 || json_object_get_string_len (v) > REQ_OP_MAX
      || strlen (op) != (size_t) json_object_get_string_len (v) || !op_chars_ok (op))
    return req_fail (err, "bad_request", "op", "\"op\" must be 1-%d characters [a-z0-9_.]",
                     REQ_OP_MAX);
  snprintf (err->op, sizeof err->op, "%s", op);

  if (get_uint (obj, "v", true, 0, UINT32_MAX, &n, &present, err) < 0)
    return -1;
  if (n != 1)
    return req_fail (err, "bad_version", "v", "protocol version %llu not supported (only 1)",
                     (unsigned long long) n);

  if (strcmp (op, "hello") == 0) {
    req->op = OP_HELLO;
  } else if (strcmp (op, "report") == 0) {
    req->op = OP_REPORT;
  } else if (strcmp (op, "reclaim") == 0) {
    req->op = OP_RECLAIM;
    if (get_uint (obj, "bytes", true, 1, RECLAIM_BYTES_MAX, &req->bytes, &present, err) < 0)
      return -1;
    req->timeout_ms = RECLAIM_TIMEOUT_MS_DEFAULT;
    if (get_uint (obj, "timeout_ms", false, 1, RECLAIM_TIMEOUT_MS_MAX, &n, &present, err) < 0)
      return -1;
    if (present)
      req->timeout_ms = (uint32_t) n;
    if (json_object_object_get_ex (obj, "allow_drop_caches", &v)) {
      if (!json_object_is_type (v, json_type_boolean))
        return req_fail (err, "bad_request", "allow_drop_caches",
                         "\"allow_drop_caches\" must be a boolean");
      req->allow_drop_caches = json_object_get_boolean (v);
    }
  } else if (strcmp (op, "set_interval") == 0) {
    req->op = OP_SET_INTERVAL;
    if (get_uint (obj, "interval_ms", true, INTERVAL_MS_MIN, INTERVAL_MS_MAX, &n, &present, err)
        < 0)
      return -1;
    req->interval_ms = (uint32_t) n;
  } else if (strcmp (op, "tune_reporting") == 0) {
    req->op = OP_TUNE_REPORTING;
    if (get_uint (obj, "delay_ms", false, REPORTING_DELAY_MS_MIN, REPORTING_DELAY_MS_MAX, &n,
                  &req->has_delay_ms, err)
        < 0)
      return -1;
    req->delay_ms = (uint32_t) n;
    if (get_uint (obj, "budget_divisor", false, REPORTING_DIVISOR_MIN, REPORTING_DIVISOR_MAX, &n,
                  &req->has_budget_divisor, err)
        < 0)
      return -1;
    req->budget_divisor = (uint32_t) n;
    if (!req->has_delay_ms && !req->has_budget_divisor)
      return req_fail (err, "bad_request", NULL,
                       "tune_reporting needs \"delay_ms\" or \"budget_divisor\"");
  } else {
    return req_fail (err, "unknown_op", "op", "unknown op \"%s\"", op);
  }
  return 0;
}

int
request_parse (const char *line, size_t len, struct request *req, struct req_error *err)
{
  struct json_tokener *tok;
  json_object *obj;
  enum json_tokener_error jerr;
  size_t end;
  int r;

  memset (req, 0, sizeof *req);
  memset (err, 0, sizeof *err);
  while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
    len--;
  if (len >= AGENT_LINE_MAX)
    return req_fail (err, "line_too_long", NULL, "request longer than %d bytes",
                     AGENT_LINE_MAX - 1);
  if (memchr (line, '\0', len))
    return req_fail (err, "malformed", NULL, "NUL byte in request");

  tok = json_tokener_new_ex (REQ_JSON_DEPTH);
  if (!tok)
    return req_fail (err, "failed", NULL, "out of memory");
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  obj = json_tokener_parse_ex (tok, line, (int) len);
  jerr = json_tokener_get_error (tok);
  end = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);

  if (!obj || jerr != json_tokener_success || end != len) {
    if (obj)
      json_object_put (obj);
    return req_fail (err, "malformed", NULL, "not a JSON object: %s",
                     jerr != json_tokener_success ? json_tokener_error_desc (jerr)
                                                  : "trailing characters");
  }
  if (!json_object_is_type (obj, json_type_object)) {
    json_object_put (obj);
    return req_fail (err, "malformed", NULL, "a request must be a JSON object");
  }
  r = parse_object (obj, req, err);
  json_object_put (obj);
  return r;
}

static void
reply_head (struct jw *w, bool has_id, uint64_t id, const char *op, bool ok)
{
  jw_obj_begin (w, NULL);
  jw_u64 (w, "v", 1);
  jw_str (w, "type", "reply");
  if (has_id)
    jw_u64 (w, "id", id);
  else
    jw_null (w, "id");
  if (op && *op)
    jw_str (w, "op", op);
  jw_bool (w, "ok", ok);
}

int
reply_error (char *buf, size_t cap, const struct req_error *err)
{
  struct jw w;

  jw_init (&w, buf, cap);
  reply_head (&w, err->has_id, err->id, err->op, false);
  jw_str (&w, "error", err->code ? err->code : "failed");
  if (err->field)
    jw_str (&w, "field", err->field);
  jw_str (&w, "message", err->message);
  jw_obj_end (&w);
  return jw_finish (&w);
}

int
reply_reclaim (char *buf, size_t cap, uint64_t id, const struct reclaim_result *r)
{
  struct jw w;

  jw_init (&w, buf, cap);
  reply_head (&w, true, id, "reclaim", true);
  jw_str (&w, "method", r->method);
  jw_u64 (&w, "requested", r->requested);
  jw_u64 (&w, "reclaimed", r->reclaimed);
  jw_bool (&w, "complete", r->complete);
  if (r->timed_out)
    jw_bool (&w, "timed_out", true);
  if (r->stop_errno)
    jw_str (&w, "stopped_by", errno_name (r->stop_errno));
  jw_u64 (&w, "elapsed_ms", r->elapsed_ms);
  jw_obj_end (&w);
  return jw_finish (&w);
}

int
reply_tune_reporting (char *buf, size_t cap, uint64_t id, uint32_t delay_ms,
                      uint32_t budget_divisor)
{
  struct jw w;

  jw_init (&w, buf, cap);
  reply_head (&w, true, id, "tune_reporting", true);
  jw_u64 (&w, "delay_ms", delay_ms);
  jw_u64 (&w, "budget_divisor", budget_divisor);
  jw_obj_end (&w);
  return jw_finish (&w);
}

int
reply_set_interval (char *buf, size_t cap, uint64_t id, uint32_t interval_ms)
{
  struct jw w;

  jw_init (&w, buf, cap);
  reply_head (&w, true, id, "set_interval", true);
  jw_u64 (&w, "interval_ms", interval_ms);
  jw_obj_end (&w);
  return jw_finish (&w);
}
