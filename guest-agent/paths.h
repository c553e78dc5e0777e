/* memtide-agent: every /proc, /sys and /dev path goes through here, so
 * tests can point the agent at a fake tree (--root, MEMTIDE_AGENT_ROOT). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* NULL, "" or "/" select the real system.  0 or -ENAMETOOLONG. */
int paths_set_root (const char *root);

/* True when the agent looks at the real system (no --root). */
bool paths_real (void);

/* buf = root + formatted absolute path.  0 or -ENAMETOOLONG. */
int rpath (char *buf, size_t size, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
