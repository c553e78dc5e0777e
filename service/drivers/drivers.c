/* drivers.c: the driver table.  The fake driver is in it so that
 * `--backend fake` can name it, but auto never picks it: a daemon on a
 * real host must not manage scripted domains because a probe said yes.
 */
#define G_LOG_DOMAIN "memtided"

#include "drivers.h"

/* Probe order.  Each entry is defined in its driver's file: the table
 * includes no driver's header.  Xen first: a Xen dom0 may run libvirtd
 * too (its libxl driver), but memtided talks to Xen directly there; a
 * KVM host says no to the Xen probe at once (/sys/hypervisor/type). */
static const MtDriver *const drivers[] = {
#ifdef MT_HAVE_XEN
  &mt_driver_xen,
#endif
  &mt_driver_libvirt,
  &mt_driver_fake,
};

const char *
mt_drivers_names (void)
{
#ifdef MT_HAVE_XEN
  return "xen, libvirt, fake";
#else
  return "libvirt, fake";
#endif
}

static const MtDriver *
find_driver (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (drivers); i++)
    if (g_str_equal (drivers[i]->name, name))
      return drivers[i];
  return NULL;
}

gboolean
mt_drivers_known (const char *name)
{
  return name != NULL && (g_str_equal (name, "auto") || find_driver (name) != NULL);
}

static const char *
uri_for (const MtDriver *driver, const char *uri)
{
  return uri != NULL ? uri : driver->default_uri;
}

MtBackend *
mt_drivers_probe (const char *uri, GError **error)
{
  g_autoptr (MtBackend) later = NULL;
  g_autoptr (GString) answers = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (drivers); i++) {
    const MtDriver *driver = drivers[i];
    g_autoptr (MtBackend) b = NULL;
    g_autoptr (GError) local_error = NULL;
    MtProbeResult result;

    if (!driver->automatic)
      continue;
    b = driver->create (uri_for (driver, uri));
    result = b->ops->probe (b, &local_error);
    g_debug ("driver %s: probe says %s%s%s", driver->name,
             result == MT_PROBE_YES  ? "yes"
             : result == MT_PROBE_NO ? "no"
                                     : "later",
             local_error != NULL ? ": " : "", local_error != NULL ? local_error->message : "");
    if (result == MT_PROBE_YES)
      return g_steal_pointer (&b);
    if (result == MT_PROBE_LATER && later == NULL)
      later = g_steal_pointer (&b);
    g_string_append_printf (answers, "%s%s: %s", answers->len > 0 ? "; " : "", driver->name,
                            local_error != NULL ? local_error->message : "not available");
  }
  if (later != NULL)
    return g_steal_pointer (&later);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
               "no hypervisor driver found (%s); --backend names one", answers->str);
  return NULL;
}

MtBackend *
mt_drivers_select (const char *name, const char *uri, char **uri_out, GError **error)
{
  const MtDriver *driver;
  MtBackend *b;

  if (name == NULL || g_str_equal (name, "auto")) {
    b = mt_drivers_probe (uri, error);
    if (b != NULL && uri_out != NULL) {
      driver = find_driver (b->ops->name);
      *uri_out = g_strdup (driver != NULL ? uri_for (driver, uri) : uri);
    }
    return b;
  }
  driver = find_driver (name);
  if (driver == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "no hypervisor driver '%s'; expected auto, %s", name, mt_drivers_names ());
    return NULL;
  }
  if (uri_out != NULL)
    *uri_out = g_strdup (uri_for (driver, uri));
  return driver->create (uri_for (driver, uri));
}
