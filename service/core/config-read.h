/* config-read.h: reading one policy file, whatever sits at its path.
 *
 * policies.d is read on the main loop, at start-up and at every reload:
 * what is read there must end, and soon.  Only regular files are read (a
 * symlink to one is fine: some admins manage their policy that way); a
 * FIFO would block the daemon until someone writes to it, and a device
 * may never end.
 */
#pragma once

#include <glib.h>

/* The contents of the file at path, NUL-terminated, and their length in
 * *length.  NULL with an MT_CONFIG_ERROR_READ whose message starts with
 * path when it cannot be read or is not a regular file. */
char *mt_config_read_file (const char *path, gsize *length, GError **error);
