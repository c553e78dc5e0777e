/* backend-xen-agent.c: the driver's half of the agent over xenstore
 * (docs/agent-protocol.md, "Xen: over xenstore").  Per domU: a bridge
 * (xen-agent-bridge.h) listening on a unix socket that the daemon's
 * agent link connects to, as it connects to QEMU's chardev socket on KVM,
 * and a watch on /local/domain/N/data/memtide whose events feed the
 * bridge the guest's hello, report and reply values.  The bridge's
 * requests are written to data/memtide/request.  All on the main thread.
 */
#define G_LOG_DOMAIN "memtide-xen"

#include <errno.h>
#include <string.h>

#include "backend-xen-private.h"

static const struct {
  const char *key;
  MtXenAgentKey which;
} agent_keys[] = {
  { "hello", MT_XEN_AGENT_HELLO },
  { "report", MT_XEN_AGENT_REPORT },
  { "reply", MT_XEN_AGENT_REPLY },
};

static gboolean
write_request (const char *line, gsize len, gpointer user_data, GError **error)
{
  MtXenDomain *dom = user_data;
  MtXenBackend *self = dom->backend;
  g_autofree char *path = g_strconcat (dom->agent_path, "/request", NULL);

  if (self->xsh == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                 "not connected to xenstored (reconnecting)");
    return FALSE;
  }
  if (!xs_write (self->xsh, XBT_NULL, path, line, len)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write %s: %s", path,
                 g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

/* The guest's value of @key now, to the bridge; NULL when the guest
 * removed it (the bridge forgets what it kept). */
static void
feed_key (MtXenBackend *self, MtXenDomain *dom, guint k)
{
  g_autofree char *path = g_strconcat (dom->agent_path, "/", agent_keys[k].key, NULL);
  unsigned int len = 0;
  char *value = xs_read (self->xsh, XBT_NULL, path, &len);

  if (value == NULL) {
    if (errno == ENOENT)
      mt_xen_agent_bridge_feed (dom->bridge, agent_keys[k].which, NULL, 0);
    else
      g_debug ("domain '%s': cannot read %s: %s", dom->name, path, g_strerror (errno));
    return;
  }
  mt_xen_agent_bridge_feed (dom->bridge, agent_keys[k].which, value, len);
  free (value);
}

void
mt_xen_agent_attach (MtXenBackend *self, MtXenDomain *dom)
{
  if (dom->bridge == NULL) {
    g_autoptr (GError) error = NULL;
    g_autofree char *socket = g_strdup_printf ("%s/%s.sock", self->agent_dir, dom->uuid);

    dom->bridge = mt_xen_agent_bridge_new (dom->name, socket, write_request, dom, &error);
    if (dom->bridge == NULL) {
      g_warning ("domain '%s': no agent link: %s", dom->name, error->message);
      return;
    }
    dom->agent_socket = g_steal_pointer (&socket);
  }
  /* Xen fires a new watch once at once (for the directory itself):
   * that first event feeds what the guest wrote before we watched. */
  if (!dom->agent_watched && self->xsh != NULL) {
    dom->agent_watched = xs_watch (self->xsh, dom->agent_path, dom->agent_token);
    if (!dom->agent_watched)
      g_warning ("domain '%s': cannot watch %s: %s", dom->name, dom->agent_path,
                 g_strerror (errno));
  }
}

void
mt_xen_agent_detach (MtXenBackend *self, MtXenDomain *dom)
{
  if (dom->agent_watched && self->xsh != NULL)
    xs_unwatch (self->xsh, dom->agent_path, dom->agent_token);
  dom->agent_watched = FALSE;
  g_clear_pointer (&dom->bridge, mt_xen_agent_bridge_free);
  g_clear_pointer (&dom->agent_socket, g_free);
}

gboolean
mt_xen_agent_event (MtXenBackend *self, const char *path, const char *token)
{
  guint domid;
  char *end;
  MtXenDomain *dom;
  gsize base;

  if (!g_str_has_prefix (token, "memtide-agent:"))
    return FALSE;
  domid = (guint) g_ascii_strtoull (token + strlen ("memtide-agent:"), &end, 10);
  dom = g_hash_table_lookup (self->by_domid, GUINT_TO_POINTER (domid));
  /* A late event of a domain already forgotten (or of an older one with
   * that domid): the token, which names the UUID too, tells. */
  if (dom == NULL || dom->bridge == NULL || !g_str_equal (token, dom->agent_token))
    return TRUE;
  base = strlen (dom->agent_path);
  if (strncmp (path, dom->agent_path, base) != 0)
    return TRUE;
  /* The watch's first event (or the directory made or removed): what
   * the guest said so far; an old reply answers nothing in flight. */
  if (path[base] == '\0') {
    for (guint k = 0; k < G_N_ELEMENTS (agent_keys); k++)
      if (agent_keys[k].which != MT_XEN_AGENT_REPLY)
        feed_key (self, dom, k);
    return TRUE;
  }
  for (guint k = 0; k < G_N_ELEMENTS (agent_keys); k++)
    if (path[base] == '/' && g_str_equal (path + base + 1, agent_keys[k].key))
      feed_key (self, dom, k);
  return TRUE;
}
