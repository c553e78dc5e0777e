/* agent-parse.h: one line from a guest agent -> a validated report or
 * reply, or the exact reason it is refused.  Pure: no I/O, no clock, no
 * state between lines (agent-session.h keeps that).  The wire format is
 * docs/agent-protocol.md; docs/agent-link.md lists every check.
 *
 * A guest is untrusted, so a line is first checked by a strict RFC 8259
 * scanner (json-glib alone accepts comments, single quotes, hex and
 * silently wraps integers past 64 bits), with a nesting limit, then
 * parsed by json-glib, then every member is checked for type, range and
 * consistency with the other members and with `limits`.
 *
 * The structs are plain data (fixed-size strings, no pointers), so they
 * are copied by assignment.  An integer the line did not carry is
 * MT_UNKNOWN (every valid value is below 2^63), a number NAN.
 */
#pragma once

#include <glib.h>
#include "sample.h"

/* Bytes per line, the newline included (both directions). */
#define MT_AGENT_LINE_MAX 4096
/* Objects and arrays nest at most this deep (a report needs 3). */
#define MT_AGENT_MAX_DEPTH 4
/* Largest integer on the wire: 2^63-1. */
#define MT_AGENT_INT_MAX ((guint64) G_MAXINT64)

typedef enum {
  MT_AGENT_OK = 0,
  MT_AGENT_ERR_MALFORMED,    /* not one strict JSON object: syntax, trailing bytes,
                                 NUL, invalid UTF-8, duplicate member, integer
                                 outside 64 bits */
  MT_AGENT_ERR_TOO_DEEP,     /* nesting deeper than MT_AGENT_MAX_DEPTH */
  MT_AGENT_ERR_TOO_LONG,     /* more than MT_AGENT_LINE_MAX bytes with the newline */
  MT_AGENT_ERR_VERSION,      /* "v" missing, not an integer, or not 1 */
  MT_AGENT_ERR_FIELD,        /* a member missing, of the wrong type or out of range */
  MT_AGENT_ERR_INCONSISTENT, /* members contradict each other or what the host sees */
  MT_AGENT_ERR_REGRESSED,    /* a counter or the guest clock went back without a reboot */
  MT_AGENT_ERR_RATE,         /* more lines than the per-guest token bucket allows */
  MT_AGENT_ERR_RESTARTS,     /* more agent restarts and guest reboots than the session allows */
  MT_AGENT_ERR_COUNT         /* not a code: the number of them, MT_AGENT_OK included */
} MtAgentErrorCode;

/* "malformed", "too_deep", ...: short, for logs and status. */
const char *mt_agent_error_code_to_string (MtAgentErrorCode code);

/* Why a line was refused.  field names the member ("mem.available"), or
 * is empty; message is for people and never contains control bytes. */
typedef struct {
  MtAgentErrorCode code;
  char field[40];
  char message[200];
} MtAgentProblem;

void mt_agent_problem_set (MtAgentProblem *p, MtAgentErrorCode code, const char *field,
                           const char *format, ...) G_GNUC_PRINTF (4, 5);

/* What the host knows about the VM, to bound what its guest may say. */
typedef struct {
  guint64 max_memory; /* boot memory + virtio-mem size; MT_UNKNOWN = no bound */
} MtAgentLimits;

typedef enum {
  MT_AGENT_REASON_CONNECT,
  MT_AGENT_REASON_TICK,
  MT_AGENT_REASON_PSI,
  MT_AGENT_REASON_REPLY,
  MT_AGENT_REASON_MEMORY, /* the agent's memory watch: MemAvailable running out */
} MtAgentReason;

const char *mt_agent_reason_to_string (MtAgentReason r);

typedef enum {
  MT_AGENT_PSI_MODE_UNKNOWN = 0, /* not a hello report */
  MT_AGENT_PSI_MODE_TRIGGER,
  MT_AGENT_PSI_MODE_POLL,
  MT_AGENT_PSI_MODE_OFF,
  MT_AGENT_PSI_MODE_NONE,
} MtAgentPsiMode;

/* reclaim_methods */
#define MT_AGENT_RECLAIM_MEMORY_RECLAIM (1u << 0)
#define MT_AGENT_RECLAIM_DROP_CACHES    (1u << 1)

/* unavailable: the names this host knows (others are ignored) */
typedef enum {
  MT_AGENT_UNAVAIL_MEMINFO,
  MT_AGENT_UNAVAIL_VMSTAT,
  MT_AGENT_UNAVAIL_PSI,
  MT_AGENT_UNAVAIL_PSI_TRIGGER,
  MT_AGENT_UNAVAIL_MEMORY_BLOCKS,
  MT_AGENT_UNAVAIL_MEMORY_ZONES,
  MT_AGENT_UNAVAIL_PAGE_REPORTING,
  MT_AGENT_UNAVAIL_PAGE_REPORTING_COUNTERS,
  MT_AGENT_UNAVAIL_MEMORY_RECLAIM,
  MT_AGENT_UNAVAIL_DROP_CACHES,
  MT_AGENT_UNAVAIL_MLOCK,
  MT_AGENT_UNAVAIL_BLOCK_USAGE,       /* no memoryN/usage (stock kernel) */
  MT_AGENT_UNAVAIL_VIRTIO_MEM_RANGES, /* block_usage says nothing of virtio-mem */
  MT_AGENT_UNAVAIL_N
} MtAgentUnavailable;

typedef struct {
  double avg10; /* percent 0..100, NAN = absent */
  double avg60;
  guint64 total_us;
} MtAgentPsiLine;

typedef struct {
  guint64 seq; /* >= 1 */
  MtAgentReason reason;
  gboolean has_id; /* reason reply */
  guint32 id;
  guint64 mono_us; /* guest CLOCK_MONOTONIC */
  guint64 dropped;

  /* Hello members (hello == TRUE). */
  gboolean hello;
  char agent[65];
  char kernel[65];  /* "" = unknown */
  char boot_id[37]; /* "" = unknown */
  guint64 page_size;
  guint64 interval_ms;
  MtAgentPsiMode psi_mode;
  char psi_trigger[64];
  guint reclaim_methods; /* MT_AGENT_RECLAIM_* */
  gboolean root;
  guint unavailable; /* 1 << MtAgentUnavailable */

  gboolean has_mem;
  struct {
    guint64 total, free, available, cached, shmem, anon, slab_reclaimable;
    guint64
      inactive_file; /* Inactive(file), may exceed cached (MADV_FREE); absent from older agents */
    guint64 swap_total, swap_free;
  } mem;

  gboolean has_vmstat;
  struct {
    guint64 pgmajfault, pswpin_bytes, pswpout_bytes, oom_kill;
  } vmstat;

  gboolean has_psi;
  MtAgentPsiLine psi_some;
  MtAgentPsiLine psi_full; /* all NAN/MT_UNKNOWN when the kernel has no "full" */

  gboolean has_blocks;
  struct {
    guint64 block_size, online_movable, online_kernel, offline, going_offline;
  } blocks;

  gboolean has_page_reporting;
  struct {
    guint64 order, reported_bytes, reported_total_bytes, reused_total_bytes;
    guint64 passes, budget_exhausted; /* counters */
    guint64 delay_ms, budget_divisor; /* the tunables now */
  } page_reporting;

  /* Kinds absent from block_usage have blocks 0 and every size 0; all
   * MT_UNKNOWN when block_usage is absent. */
  gboolean has_block_usage;
  MtBlockUsage usage_kernel, usage_movable, usage_vmem;
} MtAgentReport;

/* Bytes the guest could hand back by offlining ZONE_MOVABLE blocks. */
guint64 mt_agent_report_movable (const MtAgentReport *r);
/* Page cache that can be dropped: cached - shmem. */
guint64 mt_agent_report_droppable_cache (const MtAgentReport *r);

typedef struct {
  gboolean has_id; /* FALSE: "id": null (the agent could not read ours) */
  guint32 id;
  char op[33]; /* "" = absent */
  gboolean ok;
  char error[33]; /* code when !ok */
  char field[33];
  char message[160]; /* sanitized */
  /* op "reclaim", ok */
  char method[33];
  guint64 requested, reclaimed, elapsed_ms;
  gboolean complete, timed_out;
  char stopped_by[33];
  /* op "set_interval", ok */
  guint64 interval_ms;
  /* op "tune_reporting", ok: the values read back */
  guint64 delay_ms, budget_divisor;
} MtAgentReply;

typedef enum {
  MT_AGENT_MSG_REPORT,
  MT_AGENT_MSG_REPLY,
} MtAgentMsgKind;

typedef struct {
  MtAgentMsgKind kind;
  union {
    MtAgentReport report;
    MtAgentReply reply;
  };
} MtAgentMsg;

/* Checks JSON syntax strictly: one object, nothing after it, depth,
 * UTF-8, no NUL, integers within 64 bits.  `line` excludes the newline;
 * need not be NUL-terminated. */
gboolean mt_agent_json_check (const char *line, gsize len, MtAgentProblem *problem);

/* The whole chain for one line (without its newline; need not be
 * NUL-terminated).  A line longer than MT_AGENT_LINE_MAX - 1 is TOO_LONG.
 * On FALSE, `out` is unspecified and `problem` says why. */
gboolean mt_agent_parse_line (const char *line, gsize len, const MtAgentLimits *limits,
                              MtAgentMsg *out, MtAgentProblem *problem);
