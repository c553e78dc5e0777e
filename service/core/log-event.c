/* log-event.c: operator log lines with journald fields (log-event.h). */
#define G_LOG_DOMAIN "memtide-log"

#include "log-event.h"

/* Made once (random, 128 bits) and never changed: journalctl queries,
 * alerting on the journal and docs/operating.md name them. */
static const char *const message_ids[MT_EVENT_COUNT] = {
  [MT_EVENT_RESIZE] = "e0306dca9c444aafa451764a410b7da2",
  [MT_EVENT_RESIZE_DRY_RUN] = "f21516831b844eec81c395909b47ed36",
  [MT_EVENT_RESIZE_DEFERRED] = "22fb84012e6d4cab9450246677e470a0",
  [MT_EVENT_RESIZE_FAILED] = "a6f0b6bee061450b8038b3bbfb94e10d",
  [MT_EVENT_STUCK] = "b127c68f777646a1ad7309d9b68c7010",
  [MT_EVENT_UNSTUCK] = "c850e3645a364f7c8525ce46d28ee0be",
  [MT_EVENT_AGENT_VIOLATION] = "c1b3663b98a84f4b9cf8114af3a9f19b",
  [MT_EVENT_POLICY_ERROR] = "cf0ec7e6175a4fcbab1d23cd8946ef64",
};

const char *
mt_event_message_id (MtEvent event)
{
  g_return_val_if_fail (event < MT_EVENT_COUNT, NULL);
  return message_ids[event];
}

/* syslog(3) priorities, as GLib gives them to g_message() and g_warning(). */
static const char *
priority (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "3";
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    return "4";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "5";
  if (level & G_LOG_LEVEL_INFO)
    return "6";
  return "7";
}

void
mt_log_event (const char *log_domain, GLogLevelFlags level, MtEvent event, const MtEventFields *f,
              const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *from = NULL;
  g_autofree char *to = NULL;
  GLogField fields[10];
  gsize n = 0;
  va_list args;

  g_return_if_fail (event < MT_EVENT_COUNT);
  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

#define ADD(key_, value_)                                                        \
  do {                                                                           \
    fields[n++] = (GLogField){ .key = (key_), .value = (value_), .length = -1 }; \
  } while (0)
  ADD ("MESSAGE", message);
  ADD ("PRIORITY", priority (level));
  if (log_domain)
    ADD ("GLIB_DOMAIN", log_domain);
  ADD ("MESSAGE_ID", message_ids[event]);
  if (f && f->vm)
    ADD ("MEMTIDE_VM", f->vm);
  if (f && f->sizes) {
    from = g_strdup_printf ("%" G_GUINT64_FORMAT, f->size_from);
    to = g_strdup_printf ("%" G_GUINT64_FORMAT, f->size_to);
    ADD ("MEMTIDE_SIZE_FROM", from);
    ADD ("MEMTIDE_SIZE_TO", to);
  }
  if (f && f->mechanism)
    ADD ("MEMTIDE_MECHANISM", f->mechanism);
  if (f && f->kind)
    ADD ("MEMTIDE_AGENT_ERROR", f->kind);
  if (f && f->reason)
    ADD ("MEMTIDE_REASON", f->reason);
#undef ADD
  g_log_structured_array (level, fields, n);
}
