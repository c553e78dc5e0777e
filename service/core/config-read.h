/* config-read.h: reading one policy file, whatever sits at its path.
 *
 * policies.d is read on the main loop, at start-up and at every reload:
 * what is read there must end, and soon.  Only regular files are read (a
 * symlink to one is fine: some admins manage their policy that way); a
 * FIFO would block the daemon until someone writes to it, and a device
 * may never end.  What is read is bounded too.
 */
#pragma once

#include <glib.h>

/* The contents of the file at path, NUL-terminated, and their length in
 * *length.  NULL with an MT_CONFIG_ERROR whose message starts with path:
 * READ when it cannot be read or is not a regular file, TOO_LARGE when
 * it holds more than max_bytes (at most 8 KiB past max_bytes is read,
 * whatever the file's size says: some regular files, like
 * /proc/self/pagemap, claim a size of 0 and have no end). */
char *mt_config_read_file (const char *path, gsize max_bytes, gsize *length, GError **error);
