/* memtide-agent: the host's tune_reporting request: write the memtide
 * guest kernel patches' free page reporting tunables
 * (/sys/kernel/mm/page_reporting/{delay_ms,budget_divisor}) and read
 * them back. */
#pragma once

#include "request.h"

#include <stdint.h>

struct tune_result {
  uint32_t delay_ms;       /* read back after writing */
  uint32_t budget_divisor; /* read back after writing */
};

/* Writes what req asks for (delay_ms and/or budget_divisor, already
 * range-checked by request_parse) and reads both back.  0, or -1 with
 * *err: "unavailable" when the files are absent (a stock kernel),
 * "failed" when a write or the read-back fails (errno name in the
 * message). */
int tune_reporting (const struct request *req, struct tune_result *res, struct req_error *err);
