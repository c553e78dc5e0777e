/* dbus-auth.c: every write asks polkit first, asynchronously (a prompt
 * may take a while; the daemon keeps ticking), and fails closed: no
 * answer, an error or "challenge" all mean no. */
#define G_LOG_DOMAIN "memtided-dbus"

#include <polkit/polkit.h>

#include "dbus-private.h"

typedef struct {
  MtDbus *self;
  GDBusMethodInvocation *invocation;
  char *action_id;
  PolkitDetails *details;
  MtDbusAuthorizedFunc func;
} AuthRequest;

static void
auth_request_free (AuthRequest *req)
{
  g_object_unref (req->invocation);
  g_free (req->action_id);
  g_clear_object (&req->details);
  g_free (req);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AuthRequest, auth_request_free)

static void
deny (AuthRequest *req, const char *why)
{
  const char *sender = g_dbus_method_invocation_get_sender (req->invocation);

  g_message ("Refused %s from %s: %s", g_dbus_method_invocation_get_method_name (req->invocation),
             sender ? sender : "(unknown)", why);
  g_dbus_method_invocation_return_error (
    req->invocation, MT_DBUS_ERROR, MT_DBUS_ERROR_NOT_AUTHORIZED,
    "not authorized for %s: %s (polkit action %s)",
    g_dbus_method_invocation_get_method_name (req->invocation), why, req->action_id);
}

static void
on_checked (GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr (AuthRequest) req = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PolkitAuthorizationResult) result = NULL;

  result = polkit_authority_check_authorization_finish (POLKIT_AUTHORITY (source), res, &error);
  /* Cancelled: memtided is shutting down and req->self is gone. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_dbus_method_invocation_return_error_literal (req->invocation, MT_DBUS_ERROR,
                                                   MT_DBUS_ERROR_FAILED, "memtided is stopping");
    return;
  }
  if (!result) {
    g_autofree char *why = g_strdup_printf ("polkit could not be asked (%s)", error->message);
    deny (req, why);
    return;
  }
  if (!polkit_authorization_result_get_is_authorized (result)) {
    deny (req, polkit_authorization_result_get_is_challenge (result)
                 ? "authentication is required and none was given (run it from a terminal, "
                   "as root, or with a polkit agent)"
                 : "polkit denied it");
    return;
  }
  req->func (req->self, req->invocation);
}

static void
on_authority (GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr (AuthRequest) req = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PolkitAuthority) authority = polkit_authority_get_finish (res, &error);
  g_autoptr (PolkitSubject) subject = NULL;
  PolkitCheckAuthorizationFlags flags = POLKIT_CHECK_AUTHORIZATION_FLAGS_NONE;
  GDBusMessage *message;
  AuthRequest *pending;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_dbus_method_invocation_return_error_literal (req->invocation, MT_DBUS_ERROR,
                                                   MT_DBUS_ERROR_FAILED, "memtided is stopping");
    return;
  }
  if (!authority) {
    g_autofree char *why = g_strdup_printf ("polkit is not available (%s)", error->message);
    deny (req, why);
    return;
  }
  subject = polkit_system_bus_name_new (g_dbus_method_invocation_get_sender (req->invocation));
  message = g_dbus_method_invocation_get_message (req->invocation);
  if (g_dbus_message_get_flags (message) & G_DBUS_MESSAGE_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION)
    flags |= POLKIT_CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION;
  /* Not g_steal_pointer() in the argument list: its order is unspecified. */
  pending = g_steal_pointer (&req);
  polkit_authority_check_authorization (authority, subject, pending->action_id, pending->details,
                                        flags, pending->self->cancellable, on_checked, pending);
}

void
mt_dbus_authorize (MtDbus *self, GDBusMethodInvocation *invocation, const char *action_id,
                   const char *const *details, MtDbusAuthorizedFunc func)
{
  AuthRequest *req = g_new0 (AuthRequest, 1);

  req->self = self;
  req->invocation = g_object_ref (invocation);
  req->action_id = g_strdup (action_id);
  req->func = func;
  req->details = polkit_details_new ();
  for (guint i = 0; details && details[i] && details[i + 1]; i += 2)
    polkit_details_insert (req->details, details[i], details[i + 1]);
  polkit_authority_get_async (self->cancellable, on_authority, req);
}
