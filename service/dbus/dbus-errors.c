/* dbus-errors.c: the org.memtide.Error.* names, and how a daemon error
 * becomes one of them. */
#define G_LOG_DOMAIN "memtided-dbus"

#include "dbus-private.h"

static const GDBusErrorEntry error_entries[] = {
  { MT_DBUS_ERROR_NO_SUCH_VM, "org.memtide.Error.NoSuchVM" },
  { MT_DBUS_ERROR_INVALID_ARGUMENT, "org.memtide.Error.InvalidArgument" },
  { MT_DBUS_ERROR_NOT_AUTHORIZED, "org.memtide.Error.NotAuthorized" },
  { MT_DBUS_ERROR_CANNOT_RESERVE, "org.memtide.Error.CannotReserve" },
  { MT_DBUS_ERROR_NO_SUCH_COOKIE, "org.memtide.Error.NoSuchCookie" },
  { MT_DBUS_ERROR_FAILED, "org.memtide.Error.Failed" },
};

GQuark
mt_dbus_error_quark (void)
{
  static gsize quark = 0;

  g_dbus_error_register_error_domain ("memtide-dbus-error-quark", &quark, error_entries,
                                      G_N_ELEMENTS (error_entries));
  return (GQuark) quark;
}

void
mt_dbus_return_error (GDBusMethodInvocation *invocation, const GError *error)
{
  MtDbusError code = MT_DBUS_ERROR_FAILED;

  if (error->domain == MT_DBUS_ERROR) {
    code = error->code;
  } else if (error->domain == MT_DAEMON_ERROR) {
    switch ((MtDaemonError) error->code) {
    case MT_DAEMON_ERROR_NO_SUCH_VM:
      code = MT_DBUS_ERROR_NO_SUCH_VM;
      break;
    case MT_DAEMON_ERROR_INVALID_ARGUMENT:
      code = MT_DBUS_ERROR_INVALID_ARGUMENT;
      break;
    case MT_DAEMON_ERROR_NO_SUCH_COOKIE:
      code = MT_DBUS_ERROR_NO_SUCH_COOKIE;
      break;
    case MT_DAEMON_ERROR_CANNOT_RESERVE:
      code = MT_DBUS_ERROR_CANNOT_RESERVE;
      break;
    }
  }
  g_dbus_method_invocation_return_error_literal (invocation, MT_DBUS_ERROR, code, error->message);
}
