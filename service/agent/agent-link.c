/* agent-link.c: sockets, reconnects, back-off and requests for one guest
 * agent; the protocol itself is agent-session.c.  Nothing here blocks:
 * the socket is non-blocking, each dispatch does one bounded read, and
 * what the guest does not read waits in a bounded queue. */
#define G_LOG_DOMAIN "memtide-agent-link"

#include <string.h>

#include <gio/gunixsocketaddress.h>

#include "agent-link.h"
#include "model.h"

/* Requests are a few dozen bytes; this is room for far more than
 * max_pending of them plus hellos. */
#define OUT_MAX (4 * MT_AGENT_LINE_MAX)

typedef struct {
  guint32 id;
  char op[16];
  guint64 bytes; /* reclaim: what we asked for */
  gint64 deadline;
  MtAgentReplyFunc callback;
  gpointer user_data;
  GDestroyNotify destroy;
} Pending;

struct _MtAgentLink {
  char *name;
  char *path;
  MtAgentLinkConfig cfg;
  const MtAgentLinkCallbacks *cb;
  gpointer user_data;
  GDestroyNotify destroy;

  MtAgentSession *session;
  MtAgentLinkState state;
  GSocket *socket;
  GSource *in_source;
  GSource *out_source; /* waiting for POLLOUT: connect or a full queue */
  gboolean connecting;
  GByteArray *out;
  GSource *timer; /* WAITING: the next attempt; connected: the watchdog */

  gint64 reconnect_delay;
  guint violation_streak;
  gint64 clean_since; /* the hello of this connection: clean since then */
  gint64 retry_at;
  gint64 last_valid; /* connect or last valid report, for silent_reconnect */

  guint32 next_id;
  GHashTable *pending; /* id -> Pending */
  MtAgentLinkStats stats;

  guint busy; /* inside a dispatch: free later */
  gboolean free_requested;
};

static const char *const state_names[] = {
  [MT_AGENT_LINK_WAITING] = "waiting",
  [MT_AGENT_LINK_HANDSHAKE] = "handshake",
  [MT_AGENT_LINK_ACTIVE] = "active",
  [MT_AGENT_LINK_SILENT] = "silent",
};

const char *
mt_agent_link_state_to_string (MtAgentLinkState state)
{
  return (guint) state < G_N_ELEMENTS (state_names) ? state_names[state] : "unknown";
}

void
mt_agent_link_config_init (MtAgentLinkConfig *cfg)
{
  *cfg = (MtAgentLinkConfig){
    .reconnect_min = 1 * G_USEC_PER_SEC,
    .reconnect_max = 30 * G_USEC_PER_SEC,
    .violation_min = 10 * G_USEC_PER_SEC,
    .violation_max = 300 * G_USEC_PER_SEC,
    .clean_time = 60 * G_USEC_PER_SEC,
    .silent_reconnect = 60 * G_USEC_PER_SEC,
    .watchdog = 1 * G_USEC_PER_SEC,
    .max_pending = 4,
    .reply_grace = 5 * G_USEC_PER_SEC,
  };
  mt_agent_session_config_init (&cfg->session);
}

static void
pending_free (Pending *p)
{
  if (p->destroy)
    p->destroy (p->user_data);
  g_free (p);
}

static void link_connect (MtAgentLink *link);
static void link_connected (MtAgentLink *link);
static void really_free (MtAgentLink *link);

/* ---- re-entrancy ------------------------------------------------------------ */

/* Callbacks may free the link; it is freed when the outermost dispatch
 * returns.  leave() returns FALSE when the link is gone. */
static void
enter (MtAgentLink *link)
{
  link->busy++;
}

static gboolean
leave (MtAgentLink *link)
{
  if (--link->busy == 0 && link->free_requested) {
    really_free (link);
    return FALSE;
  }
  return TRUE;
}

/* ---- time ------------------------------------------------------------------------ */

static gint64
link_now (MtAgentLink *link)
{
  const MtAgentLinkClock *c = link->cfg.clock;

  return c ? c->now (c->data) : g_get_monotonic_time ();
}

static GSource *
link_timeout_source (MtAgentLink *link, gint64 interval)
{
  const MtAgentLinkClock *c = link->cfg.clock;

  if (c)
    return c->timeout_source (interval, c->data);
  return g_timeout_source_new ((guint) MAX (interval / 1000, 0));
}

/* ---- state ----------------------------------------------------------------------- */

static void
set_state (MtAgentLink *link, MtAgentLinkState state, const char *why)
{
  MtAgentLinkState old = link->state;

  if (old == state)
    return;
  link->state = state;
  g_debug ("%s: agent link %s -> %s: %s", link->name, mt_agent_link_state_to_string (old),
           mt_agent_link_state_to_string (state), why);
  if (link->cb && link->cb->state_changed && !link->free_requested)
    link->cb->state_changed (link, old, state, why, link->user_data);
}

static void
clear_timer (MtAgentLink *link)
{
  if (link->timer) {
    g_source_destroy (link->timer);
    g_clear_pointer (&link->timer, g_source_unref);
  }
}

static void
set_timer (MtAgentLink *link, gint64 delay, GSourceFunc func)
{
  clear_timer (link);
  link->timer = link_timeout_source (link, delay);
  g_source_set_callback (link->timer, func, link, NULL);
  g_source_set_name (link->timer, "memtide agent link timer");
  g_source_attach (link->timer, NULL);
}

static void
fail_pending (MtAgentLink *link, GIOErrorEnum code, const char *message)
{
  g_autoptr (GList) values = NULL;
  GHashTableIter iter;
  gpointer value;

  /* Steal them all first: a callback may send a new request. */
  g_hash_table_iter_init (&iter, link->pending);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    values = g_list_prepend (values, value);
    g_hash_table_iter_steal (&iter);
  }
  for (GList *l = values; l; l = l->next) {
    Pending *p = l->data;
    g_autoptr (GError) error = g_error_new_literal (G_IO_ERROR, code, message);

    link->stats.requests_failed++;
    if (p->callback && !link->free_requested)
      p->callback (link, NULL, error, p->user_data);
    pending_free (p);
  }
}

static void
close_socket (MtAgentLink *link)
{
  if (link->in_source) {
    g_source_destroy (link->in_source);
    g_clear_pointer (&link->in_source, g_source_unref);
  }
  if (link->out_source) {
    g_source_destroy (link->out_source);
    g_clear_pointer (&link->out_source, g_source_unref);
  }
  if (link->socket) {
    g_socket_close (link->socket, NULL);
    g_clear_object (&link->socket);
  }
  g_byte_array_set_size (link->out, 0);
  link->connecting = FALSE;
}

static gboolean
on_retry (gpointer data)
{
  MtAgentLink *link = data;

  g_clear_pointer (&link->timer, g_source_unref);
  enter (link);
  link_connect (link);
  leave (link);
  return G_SOURCE_REMOVE;
}

/* Close and try again after `delay`. */
static void
disconnect (MtAgentLink *link, gint64 delay, const char *why)
{
  close_socket (link);
  link->retry_at = link_now (link) + delay;
  set_timer (link, delay, on_retry);
  set_state (link, MT_AGENT_LINK_WAITING, why);
  fail_pending (link, G_IO_ERROR_CONNECTION_CLOSED, why);
}

static gint64
next_reconnect_delay (MtAgentLink *link)
{
  gint64 d = link->reconnect_delay;

  link->reconnect_delay = MIN (link->reconnect_delay * 2, link->cfg.reconnect_max);
  return d;
}

static void
lost (MtAgentLink *link, const char *why)
{
  link->stats.disconnects++;
  disconnect (link, next_reconnect_delay (link), why);
}

/* ---- output ------------------------------------------------------------------------ */

static gboolean on_writable (GSocket *socket, GIOCondition cond, gpointer data);

static void
watch_out (MtAgentLink *link)
{
  if (link->out_source)
    return;
  link->out_source = g_socket_create_source (link->socket, G_IO_OUT, NULL);
  g_source_set_callback (link->out_source, G_SOURCE_FUNC (on_writable), link, NULL);
  g_source_attach (link->out_source, NULL);
}

/* FALSE: the socket failed (the caller closes it). */
static gboolean
flush (MtAgentLink *link)
{
  while (link->out->len > 0) {
    g_autoptr (GError) error = NULL;
    gssize n =
      g_socket_send (link->socket, (const char *) link->out->data, link->out->len, NULL, &error);

    if (n < 0) {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        watch_out (link);
        return TRUE;
      }
      g_debug ("%s: agent link write: %s", link->name, error->message);
      return FALSE;
    }
    g_byte_array_remove_range (link->out, 0, (guint) n);
  }
  return TRUE;
}

static gboolean
send_line (MtAgentLink *link, const char *line, GError **error)
{
  gsize len = strlen (line);

  if (link->socket == NULL || link->connecting) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "not connected to the agent");
    return FALSE;
  }
  if (link->out->len + len + 1 > OUT_MAX) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "the guest does not read its channel");
    return FALSE;
  }
  g_byte_array_append (link->out, (const guint8 *) line, (guint) len);
  g_byte_array_append (link->out, (const guint8 *) "\n", 1);
  /* A failed write shows up as HUP/ERR on the read side, which closes
   * the link from the main loop, not from inside the caller. */
  if (!link->out_source && !flush (link))
    g_byte_array_set_size (link->out, 0);
  return TRUE;
}

static guint32
new_id (MtAgentLink *link)
{
  do
    link->next_id++;
  while (link->next_id == 0
         || g_hash_table_contains (link->pending, GUINT_TO_POINTER (link->next_id)));
  return link->next_id;
}

static void
send_hello (MtAgentLink *link)
{
  g_autofree char *line = g_strdup_printf ("{\"v\":1,\"id\":%u,\"op\":\"hello\"}", new_id (link));

  if (send_line (link, line, NULL))
    link->stats.requests++;
}

/* ---- input ------------------------------------------------------------------------------ */

static void
violation (MtAgentLink *link, const MtAgentProblem *problem)
{
  gint64 backoff = link->cfg.violation_min;
  g_autofree char *why = NULL;

  for (guint i = 0; i < link->violation_streak && backoff < link->cfg.violation_max; i++)
    backoff *= 2;
  backoff = MIN (backoff, link->cfg.violation_max);
  link->violation_streak++;
  why = g_strdup_printf ("protocol violation (%s%s%s: %s)",
                         mt_agent_error_code_to_string (problem->code),
                         problem->field[0] ? " " : "", problem->field, problem->message);
  if (link->cb && link->cb->violation)
    link->cb->violation (link, problem, backoff, link->user_data);
  disconnect (link, backoff, why);
}

static void
handle_reply (MtAgentLink *link, const MtAgentReply *reply)
{
  Pending *p =
    reply->has_id ? g_hash_table_lookup (link->pending, GUINT_TO_POINTER (reply->id)) : NULL;
  MtAgentProblem problem;

  if (p == NULL) {
    /* An answer meant for an earlier connection, or a refused line. */
    link->stats.unmatched_replies++;
    return;
  }
  if ((reply->op[0] && strcmp (reply->op, p->op) != 0)
      || (reply->ok && strcmp (p->op, "reclaim") == 0 && reply->requested != p->bytes)) {
    mt_agent_problem_set (&problem, MT_AGENT_ERR_INCONSISTENT, "id",
                          "reply to request %u does not match it (op \"%s\")", reply->id,
                          reply->op);
    mt_agent_session_violation (link->session, &problem, link_now (link));
    violation (link, &problem);
    return;
  }
  g_hash_table_steal (link->pending, GUINT_TO_POINTER (reply->id));
  if (!reply->ok)
    link->stats.requests_failed++;
  if (p->callback)
    p->callback (link, reply, NULL, p->user_data);
  pending_free (p);
}

static void
handle_event (MtAgentLink *link, const MtAgentEvent *ev, gint64 now)
{
  switch (ev->kind) {
  case MT_AGENT_EVENT_VIOLATION:
    violation (link, &ev->problem);
    break;
  case MT_AGENT_EVENT_REPLY:
    handle_reply (link, &ev->reply);
    break;
  case MT_AGENT_EVENT_REPORT:
    link->last_valid = now;
    if (ev->first_hello) {
      link->reconnect_delay = link->cfg.reconnect_min;
      link->clean_since = now;
    }
    /* Time, not a count of reports: a guest just over the rate limit
     * gets its burst and dozens of believed reports through on every
     * connection before the violation, and must still see the back-off
     * double. */
    if (ev->believed && mt_elapsed (now, link->clean_since) >= link->cfg.clean_time)
      link->violation_streak = 0;
    if (link->state != MT_AGENT_LINK_ACTIVE)
      set_state (link, MT_AGENT_LINK_ACTIVE, ev->first_hello ? "hello report" : "reports again");
    if (link->cb && link->cb->report && !link->free_requested)
      link->cb->report (link, ev, link->user_data);
    break;
  }
}

static gboolean
on_readable (GSocket *socket, GIOCondition cond, gpointer data)
{
  MtAgentLink *link = data;
  g_autoptr (GError) error = NULL;
  gint64 now = link_now (link);
  MtAgentEvent ev;
  gsize space;
  char *buf;
  gssize n;

  buf = mt_agent_session_buffer (link->session, &space);
  g_return_val_if_fail (space > 0, G_SOURCE_REMOVE);
  n = g_socket_receive (socket, buf, space, NULL, &error);
  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;

  enter (link);
  if (n > 0 && link->cb && link->cb->host_view) {
    guint64 max_memory = MT_UNKNOWN, current = MT_UNKNOWN;

    link->cb->host_view (link, &max_memory, &current, link->user_data);
    mt_agent_session_set_host (link->session, max_memory, current, now);
  }
  if (n <= 0) {
    g_autofree char *why =
      n == 0 ? g_strdup ("the channel was closed") : g_strdup_printf ("read: %s", error->message);
    lost (link, why);
  } else {
    mt_agent_session_commit (link->session, (gsize) n);
    /* Every event of this read, as long as the socket is the same one
     * (a violation or a callback may close it). */
    while (link->socket == socket && !link->free_requested
           && mt_agent_session_next (link->session, now, &ev))
      handle_event (link, &ev, now);
  }
  if (!leave (link))
    return G_SOURCE_REMOVE;
  return link->socket == socket ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
on_writable (GSocket *socket, GIOCondition cond, gpointer data)
{
  MtAgentLink *link = data;
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&link->out_source, g_source_unref);
  enter (link);
  if (link->connecting) {
    link->connecting = FALSE;
    if (!g_socket_check_connect_result (socket, &error)) {
      link->stats.connect_failures++;
      disconnect (link, next_reconnect_delay (link), error->message);
    } else {
      link_connected (link);
    }
  } else if (!flush (link)) {
    g_byte_array_set_size (link->out, 0);
  }
  leave (link);
  return G_SOURCE_REMOVE;
}

/* ---- connection ----------------------------------------------------------------------- */

static gboolean
on_watchdog (gpointer data)
{
  MtAgentLink *link = data;
  gint64 now = link_now (link);
  g_autoptr (GList) expired = NULL;
  GHashTableIter iter;
  gpointer value;

  enter (link);
  if (link->state == MT_AGENT_LINK_ACTIVE && !mt_agent_session_alive (link->session, now))
    set_state (link, MT_AGENT_LINK_SILENT, "no report within the fresh limit");
  /* An agent with a long report interval is not silent between reports. */
  if (link->state != MT_AGENT_LINK_ACTIVE
      && mt_elapsed (now, link->last_valid)
           >= MAX (link->cfg.silent_reconnect, 2 * mt_agent_session_fresh_limit (link->session))) {
    lost (link, "silent for too long: reconnecting");
    leave (link);
    return G_SOURCE_REMOVE;
  }

  g_hash_table_iter_init (&iter, link->pending);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    if (((Pending *) value)->deadline <= now) {
      expired = g_list_prepend (expired, value);
      g_hash_table_iter_steal (&iter);
    }
  }
  for (GList *l = expired; l; l = l->next) {
    Pending *p = l->data;
    g_autoptr (GError) error = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                            "no reply to %s request %u in time", p->op, p->id);

    link->stats.requests_failed++;
    if (p->callback && !link->free_requested)
      p->callback (link, NULL, error, p->user_data);
    pending_free (p);
  }
  leave (link);
  return G_SOURCE_CONTINUE;
}

static void
link_connected (MtAgentLink *link)
{
  gint64 now = link_now (link);

  link->stats.connects++;
  link->last_valid = now;
  link->clean_since = now;
  mt_agent_session_connected (link->session, now);
  link->in_source = g_socket_create_source (link->socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (link->in_source, G_SOURCE_FUNC (on_readable), link, NULL);
  g_source_set_name (link->in_source, "memtide agent link");
  g_source_attach (link->in_source, NULL);
  clear_timer (link);
  link->timer = link_timeout_source (link, MAX (link->cfg.watchdog, 1000));
  g_source_set_callback (link->timer, on_watchdog, link, NULL);
  g_source_attach (link->timer, NULL);
  set_state (link, MT_AGENT_LINK_HANDSHAKE, "connected");
  /* The agent answers with a hello report; lines before it are ignored. */
  send_hello (link);
}

static void
link_connect (MtAgentLink *link)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) address = NULL;

  close_socket (link);
  link->socket =
    g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, &error);
  if (link->socket == NULL) {
    link->stats.connect_failures++;
    disconnect (link, next_reconnect_delay (link), error->message);
    return;
  }
  g_socket_set_blocking (link->socket, FALSE);
  address = g_unix_socket_address_new (link->path);
  if (g_socket_connect (link->socket, address, NULL, &error)) {
    link_connected (link);
    return;
  }
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING)) {
    link->connecting = TRUE;
    watch_out (link);
    return;
  }
  link->stats.connect_failures++;
  g_debug ("%s: cannot connect to %s: %s", link->name, link->path, error->message);
  disconnect (link, next_reconnect_delay (link), error->message);
}

/* ---- public ---------------------------------------------------------------------------------- */

MtAgentLink *
mt_agent_link_new (const char *name, const char *socket_path, const MtAgentLinkConfig *cfg,
                   const MtAgentLinkCallbacks *callbacks, gpointer user_data,
                   GDestroyNotify destroy)
{
  MtAgentLink *link = g_new0 (MtAgentLink, 1);

  link->name = g_strdup (name);
  link->path = g_strdup (socket_path);
  if (cfg)
    link->cfg = *cfg;
  else
    mt_agent_link_config_init (&link->cfg);
  link->cb = callbacks;
  link->user_data = user_data;
  link->destroy = destroy;
  link->session = mt_agent_session_new (&link->cfg.session);
  link->out = g_byte_array_new ();
  link->pending = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) pending_free);
  link->reconnect_delay = link->cfg.reconnect_min;
  link->state = MT_AGENT_LINK_WAITING;
  link->retry_at = link_now (link);
  set_timer (link, 0, on_retry);
  return link;
}

static void
really_free (MtAgentLink *link)
{
  clear_timer (link);
  close_socket (link);
  g_hash_table_destroy (link->pending);
  g_byte_array_unref (link->out);
  mt_agent_session_free (link->session);
  if (link->destroy)
    link->destroy (link->user_data);
  g_free (link->name);
  g_free (link->path);
  g_free (link);
}

void
mt_agent_link_free (MtAgentLink *link)
{
  if (link == NULL)
    return;
  if (link->busy > 0) {
    link->free_requested = TRUE;
    /* Nothing may fire between now and the real free. */
    clear_timer (link);
    close_socket (link);
    return;
  }
  really_free (link);
}

gpointer
mt_agent_link_get_user_data (MtAgentLink *link)
{
  return link->user_data;
}

const char *
mt_agent_link_get_name (MtAgentLink *link)
{
  return link->name;
}

MtAgentLinkState
mt_agent_link_get_state (MtAgentLink *link)
{
  return link->state;
}

void
mt_agent_link_set_host (MtAgentLink *link, guint64 max_memory, guint64 current, gint64 now)
{
  mt_agent_session_set_host (link->session, max_memory, current, now);
}

const MtAgentReport *
mt_agent_link_latest (MtAgentLink *link, gint64 now)
{
  if (link->state == MT_AGENT_LINK_WAITING)
    return NULL;
  return mt_agent_session_latest (link->session, now);
}

gboolean
mt_agent_link_alive (MtAgentLink *link, gint64 now)
{
  return link->state != MT_AGENT_LINK_WAITING && mt_agent_session_alive (link->session, now);
}

const MtAgentReport *
mt_agent_link_hello (MtAgentLink *link)
{
  return mt_agent_session_hello (link->session);
}

void
mt_agent_link_get_stats (MtAgentLink *link, gint64 now, MtAgentLinkStats *out)
{
  *out = link->stats;
  mt_agent_session_get_stats (link->session, &out->session);
  out->state = link->state;
  out->connected = link->socket != NULL && !link->connecting;
  out->alive = mt_agent_link_alive (link, now);
  out->retry_at = link->state == MT_AGENT_LINK_WAITING ? link->retry_at : MT_TIME_NEVER;
}

/* Sends a request and waits for its reply; on failure frees p and
 * user_data (destroy) and returns 0. */
static guint32
queue_request (MtAgentLink *link, Pending *p, const char *line, MtAgentReplyFunc callback,
               gpointer user_data, GDestroyNotify destroy, GError **error)
{
  if (!send_line (link, line, error)) {
    g_free (p);
    if (destroy)
      destroy (user_data);
    return 0;
  }
  p->callback = callback;
  p->user_data = user_data;
  p->destroy = destroy;
  g_hash_table_insert (link->pending, GUINT_TO_POINTER (p->id), p);
  link->stats.requests++;
  return p->id;
}

/* A request waiting for its reply within timeout_ms plus the link's
 * grace; NULL with G_IO_ERROR_BUSY when max_pending already wait. */
static Pending *
pending_new (MtAgentLink *link, const char *op, guint timeout_ms, GError **error)
{
  Pending *p;

  if (g_hash_table_size (link->pending) >= link->cfg.max_pending) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "%u requests already wait for %s",
                 g_hash_table_size (link->pending), link->name);
    return NULL;
  }
  p = g_new0 (Pending, 1);
  p->id = new_id (link);
  g_strlcpy (p->op, op, sizeof p->op);
  p->deadline = link_now (link) + (gint64) timeout_ms * 1000 + link->cfg.reply_grace;
  return p;
}

guint32
mt_agent_link_reclaim (MtAgentLink *link, guint64 bytes, gboolean allow_drop_caches,
                       guint timeout_ms, MtAgentReplyFunc callback, gpointer user_data,
                       GDestroyNotify destroy, GError **error)
{
  const MtAgentReport *hello = mt_agent_session_hello (link->session);
  g_autofree char *line = NULL;
  Pending *p;
  guint methods;

  if (bytes < 1 || bytes > (G_GUINT64_CONSTANT (1) << 40) || timeout_ms < 1 || timeout_ms > 60000) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "reclaim of %" G_GUINT64_FORMAT " bytes in %u ms is out of range", bytes,
                 timeout_ms);
    goto refused;
  }
  if (!mt_agent_link_alive (link, link_now (link)) || hello == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "no agent on %s", link->name);
    goto refused;
  }
  methods = hello->reclaim_methods;
  if (!allow_drop_caches)
    methods &= ~MT_AGENT_RECLAIM_DROP_CACHES;
  if (methods == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                 "the agent on %s has no reclaim method%s", link->name,
                 allow_drop_caches ? "" : " (drop_caches not allowed by the policy)");
    goto refused;
  }
  if (!(p = pending_new (link, "reclaim", timeout_ms, error)))
    goto refused;
  p->bytes = bytes;
  line = g_strdup_printf ("{\"v\":1,\"id\":%u,\"op\":\"reclaim\",\"bytes\":%" G_GUINT64_FORMAT
                          ",\"allow_drop_caches\":%s,\"timeout_ms\":%u}",
                          p->id, bytes, allow_drop_caches ? "true" : "false", timeout_ms);
  return queue_request (link, p, line, callback, user_data, destroy, error);

refused:
  if (destroy)
    destroy (user_data);
  return 0;
}

guint32
mt_agent_link_tune_reporting (MtAgentLink *link, guint delay_ms, guint budget_divisor,
                              guint timeout_ms, MtAgentReplyFunc callback, gpointer user_data,
                              GDestroyNotify destroy, GError **error)
{
  const MtAgentReport *hello = mt_agent_session_hello (link->session);
  g_autoptr (GString) line = g_string_new (NULL);
  Pending *p;

  if ((delay_ms == 0 && budget_divisor == 0)
      || (delay_ms != 0 && (delay_ms < 10 || delay_ms > 60000)) || budget_divisor > 1024
      || timeout_ms < 1 || timeout_ms > 60000) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "reporting delay %u ms, budget divisor %u, reply within %u ms: out of range "
                 "(10..60000 ms, 1..1024, 0 = leave as is, not both 0; 1..60000 ms)",
                 delay_ms, budget_divisor, timeout_ms);
    goto refused;
  }
  if (!mt_agent_link_alive (link, link_now (link)) || hello == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "no agent on %s", link->name);
    goto refused;
  }
  if (hello->unavailable & (1u << MT_AGENT_UNAVAIL_PAGE_REPORTING_COUNTERS)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                 "the guest kernel of %s has no reporting tunables (not the memtide patches)",
                 link->name);
    goto refused;
  }
  if (!(p = pending_new (link, "tune_reporting", timeout_ms, error)))
    goto refused;
  g_string_printf (line, "{\"v\":1,\"id\":%u,\"op\":\"tune_reporting\"", p->id);
  if (delay_ms != 0)
    g_string_append_printf (line, ",\"delay_ms\":%u", delay_ms);
  if (budget_divisor != 0)
    g_string_append_printf (line, ",\"budget_divisor\":%u", budget_divisor);
  g_string_append_c (line, '}');
  return queue_request (link, p, line->str, callback, user_data, destroy, error);

refused:
  if (destroy)
    destroy (user_data);
  return 0;
}
