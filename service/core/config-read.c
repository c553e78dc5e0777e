/* config-read.c: reading one policy file (see config-read.h). */
#define G_LOG_DOMAIN "memtide-config"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include "config.h"
#include "config-read.h"

static const char *
file_kind (mode_t mode)
{
  if (S_ISFIFO (mode))
    return "a FIFO (named pipe)";
  if (S_ISCHR (mode))
    return "a character device";
  if (S_ISBLK (mode))
    return "a block device";
  if (S_ISDIR (mode))
    return "a directory";
  if (S_ISSOCK (mode))
    return "a socket";
  return "not a regular file";
}

static gboolean
check_regular (const char *path, const struct stat *st, GError **error)
{
  if (S_ISREG (st->st_mode))
    return TRUE;
  g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_READ,
               "%s: not read: it is %s; a policy file must be a regular file "
               "(or a symlink to one)",
               path, file_kind (st->st_mode));
  return FALSE;
}

static gboolean
fail_errno (const char *path, int errsv, GError **error)
{
  g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_READ,
               "%s: cannot read the policy file (%s); check that it exists and is readable", path,
               g_strerror (errsv));
  return FALSE;
}

/* size: what fstat said, or 0 when the file turned out longer than that. */
static void
fail_too_large (const char *path, goffset size, gsize max_bytes, GError **error)
{
  g_autofree char *limit = max_bytes % (1024 * 1024) == 0
                             ? g_strdup_printf ("%" G_GSIZE_FORMAT " MiB", max_bytes >> 20)
                             : g_strdup_printf ("%" G_GSIZE_FORMAT " bytes", max_bytes);

  if (size > 0)
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE,
                 "%s: not read: it has %" G_GOFFSET_FORMAT " bytes, and a policy file may "
                 "have at most %s (%" G_GSIZE_FORMAT " bytes); split it into several files",
                 path, size, limit, max_bytes);
  else
    g_set_error (error, MT_CONFIG_ERROR, MT_CONFIG_ERROR_TOO_LARGE,
                 "%s: not read past %" G_GSIZE_FORMAT " bytes: a policy file may have at "
                 "most %s; split it into several files",
                 path, max_bytes, limit);
}

char *
mt_config_read_file (const char *path, gsize max_bytes, gsize *length, GError **error)
{
  g_autoptr (GByteArray) data = g_byte_array_new ();
  struct stat st;
  int fd;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (length != NULL, NULL);

  /* Looked at before it is opened: opening a device can do things (a
   * tape rewinds, a watchdog starts). */
  if (g_stat (path, &st) != 0) {
    fail_errno (path, errno, error);
    return NULL;
  }
  if (!check_regular (path, &st, error))
    return NULL;
  if ((guint64) st.st_size > max_bytes) {
    fail_too_large (path, st.st_size, max_bytes, error);
    return NULL;
  }
  /* O_NONBLOCK: if a FIFO took the file's place meanwhile, open returns
   * at once instead of waiting for a writer, and fstat refuses it. */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    fail_errno (path, errno, error);
    return NULL;
  }
  if (fstat (fd, &st) != 0) {
    int errsv = errno;

    close (fd);
    fail_errno (path, errsv, error);
    return NULL;
  }
  if (!check_regular (path, &st, error)) {
    close (fd);
    return NULL;
  }

  /* Up to one buffer past the limit, whatever the size said: the file
   * may have grown since, or lie. */
  for (;;) {
    guint8 buf[8192];
    gssize n = read (fd, buf, sizeof buf);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int errsv = errno;

      close (fd);
      fail_errno (path, errsv, error);
      return NULL;
    }
    if (n == 0)
      break;
    g_byte_array_append (data, buf, (guint) n);
    if (data->len > max_bytes) {
      close (fd);
      fail_too_large (path, 0, max_bytes, error);
      return NULL;
    }
  }
  close (fd);

  *length = data->len;
  g_byte_array_append (data, (const guint8 *) "", 1);
  return (char *) g_byte_array_free (g_steal_pointer (&data), FALSE);
}
