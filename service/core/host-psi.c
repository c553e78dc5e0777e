/* host-psi.c: the host's PSI memory trigger (host-psi.h).  The one file
 * of the core that watches a descriptor: host.c reads the same file each
 * tick, this one is told when it matters. */
#define G_LOG_DOMAIN "memtide-host"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <glib-unix.h>

#include "host-psi.h"

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

struct _MtHostPsiTrigger {
  int fd;
  char *spec;
  GSource *source;
  MtHostPsiFunc func;
  gpointer data;
};

/* With its NUL: the kernel ends the text at the last byte written, and
 * "some 150000 1000000" without one reads as a 100 ms window. */
static int
write_spec (int fd, const char *spec)
{
  gsize len = strlen (spec) + 1;
  gssize n = write (fd, spec, len);

  if (n == (gssize) len)
    return 0;
  return n < 0 ? errno : EIO;
}

MtHostPsiTrigger *
mt_host_psi_trigger_new (const char *proc_root, GError **error)
{
  g_autofree char *path =
    g_build_filename (proc_root ? proc_root : "/proc", "pressure", "memory", NULL);
  g_autofree char *spec = NULL;
  struct statfs fs;
  int fd, err;

  fd = open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), "cannot open %s for writing: %s",
                 path, g_strerror (err));
    return NULL;
  }
  /* A file of a test tree would take the text as its new content. */
  if (fstatfs (fd, &fs) != 0 || fs.f_type != PROC_SUPER_MAGIC) {
    close (fd);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "%s is not on procfs", path);
    return NULL;
  }
  spec = g_strdup_printf ("some %d %d", MT_HOST_PSI_STALL, MT_HOST_PSI_WINDOW);
  err = write_spec (fd, spec);
  if (err == EINVAL) {
    g_free (spec);
    spec = g_strdup_printf ("some %d %d", 2 * MT_HOST_PSI_STALL, MT_HOST_PSI_WINDOW_UNPRIVILEGED);
    err = write_spec (fd, spec);
  }
  if (err != 0) {
    close (fd);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                 "the kernel refused the trigger '%s' on %s: %s", spec, path, g_strerror (err));
    return NULL;
  }
  return mt_host_psi_trigger_new_for_fd (fd, spec);
}

MtHostPsiTrigger *
mt_host_psi_trigger_new_for_fd (int fd, const char *spec)
{
  MtHostPsiTrigger *t = g_new0 (MtHostPsiTrigger, 1);

  t->fd = fd;
  t->spec = g_strdup (spec);
  return t;
}

const char *
mt_host_psi_trigger_get_spec (MtHostPsiTrigger *t)
{
  return t->spec;
}

/* The kernel clears a trigger's event as poll() reports it: one call per
 * event, and the descriptor needs no read. */
static gboolean
on_event (gint fd, GIOCondition condition, gpointer data)
{
  MtHostPsiTrigger *t = data;

  if (condition & (G_IO_ERR | G_IO_HUP | G_IO_NVAL)) {
    t->func (FALSE, t->data);
    return G_SOURCE_REMOVE;
  }
  t->func (TRUE, t->data);
  return G_SOURCE_CONTINUE;
}

void
mt_host_psi_trigger_watch (MtHostPsiTrigger *t, MtHostPsiFunc func, gpointer data)
{
  g_return_if_fail (t->source == NULL);
  t->func = func;
  t->data = data;
  t->source = g_unix_fd_source_new (t->fd, G_IO_PRI | G_IO_ERR | G_IO_HUP);
  g_source_set_callback (t->source, G_SOURCE_FUNC (on_event), t, NULL);
  g_source_attach (t->source, g_main_context_get_thread_default ());
}

void
mt_host_psi_trigger_free (MtHostPsiTrigger *t)
{
  if (t == NULL)
    return;
  if (t->source != NULL) {
    g_source_destroy (t->source);
    g_source_unref (t->source);
  }
  close (t->fd);
  g_free (t->spec);
  g_free (t);
}
