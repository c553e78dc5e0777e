/* xen-agent-bridge.c: xenstore values in, protocol lines out to one
 * MtAgentLink over a unix socket (see xen-agent-bridge.h).  Nothing here
 * parses what the guest wrote: the link does, with every guard it has on
 * KVM.  Everything is bounded: one kept value per key (at most
 * MT_XEN_AGENT_VALUE_MAX bytes), an output queue of OUT_MAX bytes, an
 * input line of at most MT_XEN_AGENT_VALUE_MAX bytes. */
#define G_LOG_DOMAIN "memtide-xen-agent"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "xen-agent-bridge.h"

#define N_KEYS 3
/* Far more than the three kept values; a link reads 8 KiB per dispatch
 * and the socket buffer holds more, so only a link that stopped reading
 * gets here. */
#define OUT_MAX (16 * (MT_XEN_AGENT_VALUE_MAX + 1))

typedef struct {
  char *value;   /* at most MT_XEN_AGENT_VALUE_MAX bytes; NULL = none */
  gsize len;     /* bytes in value */
  gsize fed_len; /* the length fed (more than len when cut) */
  gboolean sent; /* queued to a client already */
  guint64 stamp; /* order of arrival among the keys */
} Slot;

struct _MtXenAgentBridge {
  char *name;
  char *path;
  MtXenAgentWriteFunc write_request;
  gpointer user_data;

  GSocket *listener;
  GSource *accept_source;
  GSocket *client;
  GSource *in_source;
  GSource *out_source;
  GByteArray *out;
  char in[MT_XEN_AGENT_VALUE_MAX];
  gsize in_len;

  Slot slot[N_KEYS];
  guint64 stamp;
  MtXenAgentBridgeStats stats;
};

static const char *const key_names[N_KEYS] = { "hello", "report", "reply" };

const char *
mt_xen_agent_key_name (MtXenAgentKey key)
{
  return (guint) key < N_KEYS ? key_names[key] : "unknown";
}

/* ---- client ------------------------------------------------------------------ */

static void
drop_client (MtXenAgentBridge *b, const char *why)
{
  if (b->client == NULL)
    return;
  g_debug ("%s: xen agent bridge: client gone: %s", b->name, why);
  if (b->in_source) {
    g_source_destroy (b->in_source);
    g_clear_pointer (&b->in_source, g_source_unref);
  }
  if (b->out_source) {
    g_source_destroy (b->out_source);
    g_clear_pointer (&b->out_source, g_source_unref);
  }
  g_socket_close (b->client, NULL);
  g_clear_object (&b->client);
  g_byte_array_set_size (b->out, 0);
  b->in_len = 0;
}

static gboolean on_writable (GSocket *socket, GIOCondition cond, gpointer data);

/* FALSE when the client was dropped. */
static gboolean
flush (MtXenAgentBridge *b)
{
  while (b->out->len > 0) {
    g_autoptr (GError) error = NULL;
    gssize n = g_socket_send (b->client, (const char *) b->out->data, b->out->len, NULL, &error);

    if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      if (b->out_source == NULL) {
        b->out_source = g_socket_create_source (b->client, G_IO_OUT, NULL);
        g_source_set_callback (b->out_source, G_SOURCE_FUNC (on_writable), b, NULL);
        g_source_set_name (b->out_source, "memtide xen agent bridge out");
        g_source_attach (b->out_source, NULL);
      }
      return TRUE;
    }
    if (n < 0) {
      drop_client (b, error->message);
      return FALSE;
    }
    g_byte_array_remove_range (b->out, 0, (guint) n);
  }
  return TRUE;
}

static gboolean
on_writable (GSocket *socket, GIOCondition cond, gpointer data)
{
  MtXenAgentBridge *b = data;

  g_clear_pointer (&b->out_source, g_source_unref);
  flush (b);
  return G_SOURCE_REMOVE;
}

/* Queues the slot's value as one line.  FALSE when the client was
 * dropped (queue full or a write failed). */
static gboolean
send_slot (MtXenAgentBridge *b, Slot *s)
{
  if (b->out->len + s->len + 1 > OUT_MAX) {
    b->stats.overflows++;
    g_message ("%s: xen agent bridge: the agent link does not read: dropped it (it reconnects)",
               b->name);
    drop_client (b, "output queue full");
    return FALSE;
  }
  g_byte_array_append (b->out, (const guint8 *) s->value, (guint) s->len);
  g_byte_array_append (b->out, (const guint8 *) "\n", 1);
  s->sent = TRUE;
  b->stats.forwarded++;
  return b->out_source != NULL || flush (b);
}

/* One line the link wrote: a request for the guest. */
static void
request_line (MtXenAgentBridge *b, const char *line, gsize len)
{
  g_autoptr (GError) error = NULL;

  if (len == 0)
    return;
  b->stats.requests++;
  if (!b->write_request (line, len, b->user_data, &error)) {
    b->stats.request_errors++;
    g_warning ("%s: cannot pass a request to the guest agent: %s", b->name,
               error ? error->message : "unknown error");
  }
}

static gboolean
on_readable (GSocket *socket, GIOCondition cond, gpointer data)
{
  MtXenAgentBridge *b = data;
  g_autoptr (GError) error = NULL;
  gsize start = 0;
  gssize n;

  n = g_socket_receive (socket, b->in + b->in_len, sizeof b->in - b->in_len, NULL, &error);
  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;
  if (n <= 0) {
    drop_client (b, n == 0 ? "closed" : error->message);
    return G_SOURCE_REMOVE;
  }
  b->in_len += (gsize) n;
  for (;;) {
    const char *nl = memchr (b->in + start, '\n', b->in_len - start);

    if (nl == NULL)
      break;
    request_line (b, b->in + start, (gsize) (nl - (b->in + start)));
    start = (gsize) (nl - b->in) + 1;
    /* write_request may not free the bridge, but a failed flush may
     * have dropped the client meanwhile. */
    if (b->client != socket)
      return G_SOURCE_REMOVE;
  }
  memmove (b->in, b->in + start, b->in_len - start);
  b->in_len -= start;
  if (b->in_len == sizeof b->in) {
    /* Our own link writes requests of a few dozen bytes. */
    b->stats.request_errors++;
    g_warning ("%s: xen agent bridge: a request line over %d bytes: dropped the link", b->name,
               MT_XEN_AGENT_VALUE_MAX);
    drop_client (b, "request line too long");
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* What a new client gets first: the kept hello if no client had it yet,
 * and the kept report if it is newer than that hello and unsent too.
 * Anything a client already had would be an old seq to the link. */
static void
replay (MtXenAgentBridge *b)
{
  Slot *hello = &b->slot[MT_XEN_AGENT_HELLO];
  Slot *report = &b->slot[MT_XEN_AGENT_REPORT];

  if (hello->value == NULL || hello->sent)
    return;
  if (!send_slot (b, hello))
    return;
  if (report->value != NULL && !report->sent && report->stamp > hello->stamp)
    send_slot (b, report);
}

static gboolean
on_accept (GSocket *listener, GIOCondition cond, gpointer data)
{
  MtXenAgentBridge *b = data;
  g_autoptr (GError) error = NULL;
  GSocket *c = g_socket_accept (listener, NULL, &error);

  if (c == NULL) {
    if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      g_debug ("%s: xen agent bridge: accept: %s", b->name, error->message);
    return G_SOURCE_CONTINUE;
  }
  if (b->client != NULL) {
    /* One reader per guest, as a virtio-serial chardev has. */
    b->stats.refused++;
    g_debug ("%s: xen agent bridge: a second client refused", b->name);
    g_socket_close (c, NULL);
    g_object_unref (c);
    return G_SOURCE_CONTINUE;
  }
  g_socket_set_blocking (c, FALSE);
  b->client = c;
  b->in_len = 0;
  b->stats.accepts++;
  b->in_source = g_socket_create_source (c, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (b->in_source, G_SOURCE_FUNC (on_readable), b, NULL);
  g_source_set_name (b->in_source, "memtide xen agent bridge in");
  g_source_attach (b->in_source, NULL);
  replay (b);
  return G_SOURCE_CONTINUE;
}

/* ---- public ------------------------------------------------------------------------ */

static gboolean
make_listener (MtXenAgentBridge *b, GError **error)
{
  g_autoptr (GSocketAddress) address = NULL;
  GStatBuf st;

  if (g_lstat (b->path, &st) == 0) {
    if (!S_ISSOCK (st.st_mode)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "%s exists and is not a socket: remove it or pick another agent socket "
                   "directory",
                   b->path);
      return FALSE;
    }
    /* Left by an earlier memtided: nobody listens there any more. */
    if (g_unlink (b->path) < 0) {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot remove stale %s: %s",
                   b->path, g_strerror (e));
      return FALSE;
    }
  }
  b->listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
  if (b->listener == NULL)
    return FALSE;
  g_socket_set_blocking (b->listener, FALSE);
  g_socket_set_listen_backlog (b->listener, 2);
  address = g_unix_socket_address_new (b->path);
  if (!g_socket_bind (b->listener, address, FALSE, error)) {
    g_prefix_error (error, "cannot listen on %s: ", b->path);
    return FALSE;
  }
  /* The directory should keep others out too; this is for a shared one. */
  if (g_chmod (b->path, 0600) < 0) {
    int e = errno;
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "chmod %s: %s", b->path,
                 g_strerror (e));
    g_unlink (b->path);
    return FALSE;
  }
  if (!g_socket_listen (b->listener, error)) {
    g_prefix_error (error, "cannot listen on %s: ", b->path);
    g_unlink (b->path);
    return FALSE;
  }
  b->accept_source = g_socket_create_source (b->listener, G_IO_IN, NULL);
  g_source_set_callback (b->accept_source, G_SOURCE_FUNC (on_accept), b, NULL);
  g_source_set_name (b->accept_source, "memtide xen agent bridge accept");
  g_source_attach (b->accept_source, NULL);
  return TRUE;
}

MtXenAgentBridge *
mt_xen_agent_bridge_new (const char *name, const char *socket_path,
                         MtXenAgentWriteFunc write_request, gpointer user_data, GError **error)
{
  g_autoptr (MtXenAgentBridge) b = NULL;

  g_return_val_if_fail (socket_path != NULL && write_request != NULL, NULL);
  b = g_new0 (MtXenAgentBridge, 1);
  b->name = g_strdup (name ? name : "?");
  b->path = g_strdup (socket_path);
  b->write_request = write_request;
  b->user_data = user_data;
  b->out = g_byte_array_new ();
  if (!make_listener (b, error)) {
    /* Not ours to unlink in free. */
    g_clear_pointer (&b->path, g_free);
    return NULL;
  }
  return g_steal_pointer (&b);
}

/* The kept value (newlines made NULs) against a new one, n bytes. */
static gboolean
same_value (const char *kept, const char *value, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (kept[i] != (value[i] == '\n' ? '\0' : value[i]))
      return FALSE;
  return TRUE;
}

void
mt_xen_agent_bridge_feed (MtXenAgentBridge *b, MtXenAgentKey key, const char *value, gsize len)
{
  Slot *s;
  gsize keep;

  g_return_if_fail ((guint) key < N_KEYS);
  s = &b->slot[key];
  if (value == NULL) {
    g_clear_pointer (&s->value, g_free);
    s->len = s->fed_len = 0;
    return;
  }
  b->stats.fed++;
  keep = MIN (len, MT_XEN_AGENT_VALUE_MAX);
  if (s->value != NULL && s->fed_len == len && same_value (s->value, value, keep)) {
    b->stats.same++;
    return;
  }
  if (len >= MT_XEN_AGENT_VALUE_MAX) {
    b->stats.overlong++;
    g_debug ("%s: xen agent bridge: %s of %" G_GSIZE_FORMAT " bytes, over the line bound", b->name,
             key_names[key], len);
  }
  g_free (s->value);
  s->value = g_malloc (keep + 1);
  memcpy (s->value, value, keep);
  s->value[keep] = '\0';
  /* One value, one line: a newline inside would split it. */
  for (gsize i = 0; i < keep; i++)
    if (s->value[i] == '\n')
      s->value[i] = '\0';
  s->len = keep;
  s->fed_len = len;
  s->sent = FALSE;
  s->stamp = ++b->stamp;
  if (b->client != NULL)
    send_slot (b, s);
}

void
mt_xen_agent_bridge_free (MtXenAgentBridge *b)
{
  if (b == NULL)
    return;
  drop_client (b, "bridge freed");
  if (b->accept_source) {
    g_source_destroy (b->accept_source);
    g_source_unref (b->accept_source);
  }
  if (b->listener) {
    g_socket_close (b->listener, NULL);
    g_object_unref (b->listener);
  }
  if (b->path)
    g_unlink (b->path);
  for (guint i = 0; i < N_KEYS; i++)
    g_free (b->slot[i].value);
  g_byte_array_unref (b->out);
  g_free (b->name);
  g_free (b->path);
  g_free (b);
}

void
mt_xen_agent_bridge_get_stats (MtXenAgentBridge *b, MtXenAgentBridgeStats *out)
{
  *out = b->stats;
  out->connected = b->client != NULL;
  out->queued = b->out->len;
}
