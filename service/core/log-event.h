/* log-event.h: the log lines an operator acts on (resizes, stuck VMs,
 * guest agent violations, policy errors), each with journald fields:
 * a MESSAGE_ID per kind and the VM, sizes and reason as fields of their
 * own, so `journalctl MESSAGE_ID=... MEMTIDE_VM=web1` finds them.  The
 * ids are listed in docs/operating.md ("The journal").
 *
 * Sent through g_log_structured_array(): GLib's default writer hands
 * every field to journald when stderr is the journal
 * (g_log_writer_is_journald) and otherwise prints only the message, the
 * same line g_message() or g_warning() would print. */
#pragma once

#include <glib.h>

typedef enum {
  MT_EVENT_RESIZE,          /* a resize sent to the hypervisor */
  MT_EVENT_RESIZE_DRY_RUN,  /* decided, not applied: dry run */
  MT_EVENT_RESIZE_DEFERRED, /* decided, not applied now: no room to run the call */
  MT_EVENT_RESIZE_FAILED,   /* the hypervisor refused the call */
  MT_EVENT_STUCK,           /* a VM did not follow: left alone until it moves */
  MT_EVENT_UNSTUCK,         /* a stuck VM moved again */
  MT_EVENT_AGENT_VIOLATION, /* a guest agent broke the protocol: its link closed */
  MT_EVENT_POLICY_ERROR,    /* bad policy files: a reload keeps the old policy, a start fails */
  MT_EVENT_COUNT,
} MtEvent;

/* The 128-bit id of a kind, as journald writes it (32 hex digits). */
const char *mt_event_message_id (MtEvent event);

/* What a line is about; NULL (or sizes FALSE) leaves a field out. */
typedef struct {
  const char *vm;        /* MEMTIDE_VM: the domain's name */
  gboolean sizes;        /* the two sizes below are given */
  guint64 size_from;     /* MEMTIDE_SIZE_FROM: bytes */
  guint64 size_to;       /* MEMTIDE_SIZE_TO: bytes */
  const char *mechanism; /* MEMTIDE_MECHANISM: balloon, virtio-mem, virtio-mem+balloon */
  const char *kind;      /* MEMTIDE_AGENT_ERROR: the violation's kind */
  const char *reason;    /* MEMTIDE_REASON: why, in one line (or several: a policy error) */
} MtEventFields;

/* Logs the message (printf format) at level (G_LOG_LEVEL_MESSAGE or
 * G_LOG_LEVEL_WARNING) in log_domain, with the event's fields. */
void mt_log_event (const char *log_domain, GLogLevelFlags level, MtEvent event,
                   const MtEventFields *fields, const char *format, ...) G_GNUC_PRINTF (5, 6);
