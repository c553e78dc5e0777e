/* metrics-listener.c: the metrics endpoint's sockets; a connection is
 * accepted here, counted, watched for idleness and handed to the
 * SoupServer (metrics-listener.h says why not libsoup's listener). */
#define G_LOG_DOMAIN "memtide-metrics"

#include "metrics-listener.h"

/* Connections accepted per wake-up: the main loop has other work. */
#define ACCEPT_BATCH 16
/* A trouble (out of descriptors, at the cap) is said at most this often:
 * a client that keeps memtided at the edge makes it come and go. */
#define WARN_INTERVAL (60 * G_USEC_PER_SEC)

/* One kind of trouble: said once, its end said once, again only a
 * WARN_INTERVAL after it was last said. */
typedef struct {
  gint64 said_at;   /* 0 = never */
  gboolean ongoing; /* since the last time it ended */
  gboolean end_said;
  guint64 count; /* failures or refusals since it was said */
} Episode;

/* Another occurrence; TRUE when it should be said now. */
static gboolean
episode_occurs (Episode *e)
{
  gint64 now = g_get_monotonic_time ();

  e->ongoing = TRUE;
  e->count++;
  if (e->said_at != 0 && now - e->said_at < WARN_INTERVAL)
    return FALSE;
  e->said_at = now;
  e->end_said = FALSE;
  e->count = 1;
  return TRUE;
}

/* It is over; TRUE when that should be said now (it was said, and its
 * end was not). */
static gboolean
episode_ends (Episode *e)
{
  gboolean say = e->ongoing && e->said_at != 0 && !e->end_said;

  e->ongoing = FALSE;
  if (say)
    e->end_said = TRUE;
  return say;
}

/* One open connection, from accept until its GSocketConnection is
 * finalized (libsoup holds it; a weak reference says when it goes). */
typedef struct {
  MtMetricsListener *owner;
  GSocketConnection *conn; /* not a reference */
  GSocket *socket;         /* a reference: shut down when idle, or seen closed */
  char *peer;              /* "127.0.0.1:41234": finds it from a message */
  gint64 active;           /* monotonic µs of the last thing it did */
  gboolean closing;        /* shut down for idleness */
} Conn;

struct _MtMetricsListener {
  SoupServer *server;
  GSocket *sockets[2]; /* 127.0.0.1, ::1 */
  GSource *sources[2]; /* accept sources; NULL while paused */
  guint n_sockets;
  guint port;
  GList *conns; /* Conn *, newest first */
  guint n_conns;
  guint sweep_source;
  guint retry_source;
  gint64 retry_delay; /* µs; 0 = accept() did not fail lately */
  Episode failing;    /* accept() fails (out of descriptors) */
  Episode full;       /* connections refused at the cap */
  gulong handlers[3];
};

static gboolean on_incoming (GSocket *socket, GIOCondition condition, gpointer data);

static void
conn_free (Conn *c)
{
  g_object_unref (c->socket);
  g_free (c->peer);
  g_free (c);
}

static void
conn_forget (MtMetricsListener *l, Conn *c)
{
  l->conns = g_list_remove (l->conns, c);
  l->n_conns--;
  conn_free (c);
}

static void
on_conn_gone (gpointer data, GObject *where_the_object_was)
{
  Conn *c = data;

  conn_forget (c->owner, c);
}

/* Closes what did nothing for the idle timeout; forgets what libsoup
 * closed but still holds a reference to. */
static gboolean
on_sweep (gpointer data)
{
  MtMetricsListener *l = data;
  gint64 now = g_get_monotonic_time ();
  GList *next;

  for (GList *it = l->conns; it != NULL; it = next) {
    Conn *c = it->data;

    next = it->next;
    if (g_socket_is_closed (c->socket)) {
      g_object_weak_unref (G_OBJECT (c->conn), on_conn_gone, c);
      conn_forget (l, c);
    } else if (!c->closing && now - c->active >= MT_METRICS_IDLE_TIMEOUT) {
      /* Shut down, not closed: libsoup still polls the descriptor; it
       * reads the end of the stream and closes it itself. */
      g_debug ("Metrics: closing the connection from %s, idle for %.0f s", c->peer,
               (double) (now - c->active) / G_USEC_PER_SEC);
      c->closing = TRUE;
      g_socket_shutdown (c->socket, TRUE, TRUE, NULL);
    }
  }
  if (l->conns != NULL)
    return G_SOURCE_CONTINUE;
  l->sweep_source = 0;
  return G_SOURCE_REMOVE;
}

/* A request was read or answered on the connection of `msg`. */
static void
on_request_activity (SoupServer *server, SoupServerMessage *msg, gpointer data)
{
  MtMetricsListener *l = data;
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  g_autofree char *peer = NULL;

  if (remote == NULL)
    return;
  peer = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (remote));
  for (GList *it = l->conns; it != NULL; it = it->next) {
    Conn *c = it->data;

    if (g_str_equal (c->peer, peer)) {
      c->active = g_get_monotonic_time ();
      return;
    }
  }
}

static void
watch_sockets (MtMetricsListener *l)
{
  for (guint i = 0; i < l->n_sockets; i++) {
    if (l->sources[i] != NULL)
      continue;
    l->sources[i] = g_socket_create_source (l->sockets[i], G_IO_IN, NULL);
    g_source_set_callback (l->sources[i], G_SOURCE_FUNC (on_incoming), l, NULL);
    g_source_attach (l->sources[i], NULL);
  }
}

static void
unwatch_sockets (MtMetricsListener *l)
{
  for (guint i = 0; i < l->n_sockets; i++) {
    if (l->sources[i] == NULL)
      continue;
    g_source_destroy (l->sources[i]);
    g_clear_pointer (&l->sources[i], g_source_unref);
  }
}

static gboolean
on_retry (gpointer data)
{
  MtMetricsListener *l = data;

  l->retry_source = 0;
  watch_sockets (l);
  return G_SOURCE_REMOVE;
}

/* accept() failed.  The connection waits in the listen queue, so the
 * socket stays readable: watched, it would wake the loop at once, again
 * and again.  Pause instead, and try again later, longer each time. */
static void
accept_failed (MtMetricsListener *l, const GError *error)
{
  gboolean lack = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES)
                  || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);

  l->retry_delay =
    l->retry_delay == 0 ? MT_METRICS_RETRY_MIN : MIN (2 * l->retry_delay, MT_METRICS_RETRY_MAX);
  if (!lack && !l->failing.ongoing) {
    /* A client that reset its connection while it waited: said only
     * when accept() fails again at the retry. */
    l->failing.ongoing = TRUE;
    g_debug ("Metrics: cannot accept a connection: %s", error->message);
  } else if (episode_occurs (&l->failing)) {
    g_warning ("Metrics: cannot accept connections: %s; trying again every %.1f s at most, "
               "serving the %u open ones meanwhile",
               error->message, (double) MT_METRICS_RETRY_MAX / G_USEC_PER_SEC, l->n_conns);
  } else {
    g_debug ("Metrics: cannot accept a connection: %s", error->message);
  }
  unwatch_sockets (l);
  if (l->retry_source == 0)
    l->retry_source = g_timeout_add ((guint) (l->retry_delay / 1000), on_retry, l);
}

static void
accepted (MtMetricsListener *l, GSocket *socket)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) local = NULL;
  g_autoptr (GSocketAddress) remote = NULL;
  GSocketConnection *conn;
  Conn *c;

  l->retry_delay = 0;
  if (episode_ends (&l->failing))
    g_message ("Metrics: accepting connections again (after %.1f s)",
               (double) (g_get_monotonic_time () - l->failing.said_at) / G_USEC_PER_SEC);
  if (l->n_conns >= MT_METRICS_MAX_CONNECTIONS) {
    if (episode_occurs (&l->full))
      g_warning ("Metrics: %u connections open, the most allowed; refusing new ones until one "
                 "closes (idle ones close after %.0f s)",
                 l->n_conns, (double) MT_METRICS_IDLE_TIMEOUT / G_USEC_PER_SEC);
    g_socket_close (socket, NULL);
    return;
  }
  if (episode_ends (&l->full))
    g_message ("Metrics: accepting connections again (refused %" G_GUINT64_FORMAT " meanwhile)",
               l->full.count);
  local = g_socket_get_local_address (socket, &error);
  if (local != NULL)
    remote = g_socket_get_remote_address (socket, &error);
  if (remote == NULL) {
    /* The client is gone already. */
    g_debug ("Metrics: dropping a connection: %s", error->message);
    g_socket_close (socket, NULL);
    return;
  }
  conn = g_socket_connection_factory_create_connection (socket);
  c = g_new0 (Conn, 1);
  c->owner = l;
  c->conn = conn;
  c->socket = g_object_ref (socket);
  c->peer = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (remote));
  c->active = g_get_monotonic_time ();
  g_object_weak_ref (G_OBJECT (conn), on_conn_gone, c);
  l->conns = g_list_prepend (l->conns, c);
  l->n_conns++;
  if (l->sweep_source == 0)
    l->sweep_source = g_timeout_add_seconds (1, on_sweep, l);
  soup_server_accept_iostream (l->server, G_IO_STREAM (conn), local, remote, NULL);
  g_object_unref (conn);
}

static gboolean
on_incoming (GSocket *listening, GIOCondition condition, gpointer data)
{
  MtMetricsListener *l = data;

  for (guint k = 0; k < ACCEPT_BATCH; k++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (GSocket) socket = g_socket_accept (listening, NULL, &error);

    if (socket == NULL) {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return G_SOURCE_CONTINUE;
      accept_failed (l, error);
      return G_SOURCE_REMOVE;
    }
    accepted (l, socket);
  }
  return G_SOURCE_CONTINUE;
}

static GSocket *
listen_on (const char *address, guint port, GError **error)
{
  g_autoptr (GInetAddress) ia = g_inet_address_new_from_string (address);
  g_autoptr (GSocketAddress) sa = g_inet_socket_address_new (ia, (guint16) port);
  g_autoptr (GSocket) s = NULL;

  s = g_socket_new (g_inet_address_get_family (ia), G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                    error);
  if (s == NULL)
    return NULL;
  g_socket_set_blocking (s, FALSE);
  g_socket_set_listen_backlog (s, MT_METRICS_MAX_CONNECTIONS);
  if (!g_socket_bind (s, sa, TRUE, error) || !g_socket_listen (s, error))
    return NULL;
  return g_steal_pointer (&s);
}

MtMetricsListener *
mt_metrics_listener_new (SoupServer *server, guint port, GError **error)
{
  g_autoptr (MtMetricsListener) l = g_new0 (MtMetricsListener, 1);
  g_autoptr (GError) v6_error = NULL;
  g_autoptr (GSocketAddress) bound = NULL;
  GSocket *v6;

  l->server = server;
  l->sockets[0] = listen_on ("127.0.0.1", port, error);
  if (l->sockets[0] == NULL)
    return NULL;
  l->n_sockets = 1;
  bound = g_socket_get_local_address (l->sockets[0], error);
  if (bound == NULL)
    return NULL;
  l->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  /* IPv6 where the host has it; 127.0.0.1 serves every client then. */
  v6 = listen_on ("::1", l->port, &v6_error);
  if (v6 != NULL)
    l->sockets[l->n_sockets++] = v6;
  else
    g_debug ("Metrics: not on [::1]:%u: %s", l->port, v6_error->message);
  l->handlers[0] = g_signal_connect (server, "request-read", G_CALLBACK (on_request_activity), l);
  l->handlers[1] =
    g_signal_connect (server, "request-finished", G_CALLBACK (on_request_activity), l);
  l->handlers[2] =
    g_signal_connect (server, "request-aborted", G_CALLBACK (on_request_activity), l);
  watch_sockets (l);
  return g_steal_pointer (&l);
}

guint
mt_metrics_listener_get_port (MtMetricsListener *l)
{
  return l->port;
}

void
mt_metrics_listener_free (MtMetricsListener *l)
{
  if (l == NULL)
    return;
  unwatch_sockets (l);
  for (guint i = 0; i < l->n_sockets; i++) {
    g_socket_close (l->sockets[i], NULL);
    g_object_unref (l->sockets[i]);
  }
  g_clear_handle_id (&l->sweep_source, g_source_remove);
  g_clear_handle_id (&l->retry_source, g_source_remove);
  /* The connections stay libsoup's; only the watching ends. */
  while (l->conns != NULL) {
    Conn *c = l->conns->data;

    g_object_weak_unref (G_OBJECT (c->conn), on_conn_gone, c);
    conn_forget (l, c);
  }
  for (guint i = 0; i < G_N_ELEMENTS (l->handlers); i++)
    if (l->handlers[i] != 0)
      g_signal_handler_disconnect (l->server, l->handlers[i]);
  g_free (l);
}
