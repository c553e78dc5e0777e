/* memtide-agent: small helpers shared by every module (I/O, parsing, log). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <syslog.h>

/* One protocol line, newline included, in either direction. */
#define AGENT_LINE_MAX 4096

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

/* CLOCK_MONOTONIC in microseconds. */
uint64_t mono_us (void);

/* Read a whole small file through a kept-open fd, from offset 0, into buf
 * (NUL-terminated, truncated to size-1).  Returns the length or -errno. */
ssize_t pread_all (int fd, char *buf, size_t size);

/* open + pread_all + close.  Returns the length or -errno. */
ssize_t read_path (const char *path, char *buf, size_t size);

/* Write all of data with write(2), retrying on EINTR.  0 or -errno. */
int write_all (int fd, const char *data, size_t len);

/* Decimal unsigned integer without sign; false on no digits or overflow.
 * *end (if not NULL) points after the digits. */
bool parse_u64 (const char *s, const char **end, uint64_t *out);

/* Trim ASCII whitespace at both ends, in place. */
char *strip (char *s);

/* Set close-on-exec and (optionally) non-blocking on fd. */
int fd_set_flags (int fd, bool nonblock);

/* Logging to stderr (the console in an initramfs, the journal under
 * systemd, with <N> level prefixes when JOURNAL_STREAM is set). */
extern int log_max_level;
void log_init (int max_level);
void agent_log (int level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
#define log_err(...)    agent_log (LOG_ERR, __VA_ARGS__)
#define log_warn(...)   agent_log (LOG_WARNING, __VA_ARGS__)
#define log_notice(...) agent_log (LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   agent_log (LOG_INFO, __VA_ARGS__)
#define log_debug(...)  agent_log (LOG_DEBUG, __VA_ARGS__)
/* A warning, logged only when it differs from the last one kept in
 * last[size] (a problem met at every tick is said once). */
void log_warn_changed (char *last, size_t size, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* "EAGAIN", "EPERM", ... for the errors the agent can meet; "E<n>" else. */
const char *errno_name (int e);
