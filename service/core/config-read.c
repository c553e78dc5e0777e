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

char *
mt_config_read_file (const char *path, gsize *length, GError **error)
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
  }
  close (fd);

  *length = data->len;
  g_byte_array_append (data, (const guint8 *) "", 1);
  return (char *) g_byte_array_free (g_steal_pointer (&data), FALSE);
}
