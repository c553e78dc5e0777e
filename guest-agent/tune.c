/* memtide-agent: tune_reporting (see tune.h).
 *
 * Both files are checked before either is written: a kernel with only
 * one of them is not the memtide patch series, and half a change is
 * worse than none.  The reply carries what the kernel says after the
 * writes, not what was asked: that is what the host compares with its
 * policy next time. */
#include "tune.h"

#include "paths.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#define DIR "/sys/kernel/mm/page_reporting"

static int
write_value (const char *path, uint32_t value, struct req_error *err)
{
  char num[16];
  int len = snprintf (num, sizeof num, "%u\n", value);
  int fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  int e;

  if (fd < 0)
    return req_fail (err, "failed", NULL, "cannot open %s: %s", path, errno_name (errno));
  e = write_all (fd, num, (size_t) len);
  close (fd);
  if (e < 0)
    return req_fail (err, "failed", NULL, "writing %u to %s: %s", value, path, errno_name (-e));
  return 0;
}

static int
read_value (const char *path, uint64_t min, uint64_t max, uint32_t *out, struct req_error *err)
{
  char buf[32];
  const char *end;
  uint64_t v;
  ssize_t n = read_path (path, buf, sizeof buf);

  if (n < 0)
    return req_fail (err, "failed", NULL, "cannot read %s back: %s", path, errno_name ((int) -n));
  if (!parse_u64 (strip (buf), &end, &v) || *end != '\0' || v < min || v > max)
    return req_fail (err, "failed", NULL, "%s reads back \"%s\", not a number in [%llu, %llu]",
                     path, buf, (unsigned long long) min, (unsigned long long) max);
  *out = (uint32_t) v;
  return 0;
}

int
tune_reporting (const struct request *req, struct tune_result *res, struct req_error *err)
{
  char delay[PATH_MAX], divisor[PATH_MAX];

  if (rpath (delay, sizeof delay, DIR "/delay_ms") < 0
      || rpath (divisor, sizeof divisor, DIR "/budget_divisor") < 0)
    return req_fail (err, "failed", NULL, "path too long");
  if (access (delay, F_OK) < 0 || access (divisor, F_OK) < 0)
    return req_fail (err, "unavailable", NULL,
                     "%s/delay_ms and budget_divisor are absent (not the memtide kernel patches)",
                     DIR);
  if (req->has_delay_ms && write_value (delay, req->delay_ms, err) < 0)
    return -1;
  if (req->has_budget_divisor && write_value (divisor, req->budget_divisor, err) < 0)
    return -1;
  if (read_value (delay, REPORTING_DELAY_MS_MIN, REPORTING_DELAY_MS_MAX, &res->delay_ms, err) < 0
      || read_value (divisor, REPORTING_DIVISOR_MIN, REPORTING_DIVISOR_MAX, &res->budget_divisor,
                     err)
           < 0)
    return -1;
  return 0;
}
