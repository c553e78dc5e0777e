/* backend-fake-control.c: the fake driver's script: one command per
 * line (docs/driver-fake.md lists them), from the control socket or from
 * mt_backend_fake_command().  The socket is served on the main context
 * without blocking it: non-blocking sockets watched by GSources, replies
 * that do not fit the socket's buffer close that client.
 */
#define G_LOG_DOMAIN "memtide-fake"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>

#include "backend-fake-private.h"
#include "config-value.h"

#define MAX_LINE    4096
#define MAX_CLIENTS 16

/* ---- values --------------------------------------------------------------- */

static gboolean
parse_size (const char *key, const char *text, guint64 *out, GError **error)
{
  if (mt_parse_size (text, out, error))
    return TRUE;
  g_prefix_error (error, "%s: ", key);
  return FALSE;
}

/* "100M" or "100M/s": bytes per second. */
static gboolean
parse_speed (const char *text, guint64 *out, GError **error)
{
  g_autofree char *bare =
    g_str_has_suffix (text, "/s") ? g_strndup (text, strlen (text) - 2) : g_strdup (text);

  return parse_size ("speed", bare, out, error);
}

/* A UUID from the name, so that a script names the same domain the same
 * way every run. */
static void
uuid_from_name (const char *name, char out[MT_FAKE_UUID_LEN])
{
  g_autofree char *hex = g_compute_checksum_for_string (G_CHECKSUM_SHA1, name, -1);

  g_snprintf (out, MT_FAKE_UUID_LEN, "%.8s-%.4s-5%.3s-8%.3s-%.12s", hex, hex + 8, hex + 13,
              hex + 17, hex + 20);
}

/* ---- commands ------------------------------------------------------------- */

typedef char *(*CommandFunc) (MtFakeBackend *self, char **args, guint n, GError **error);

static MtFakeDomain *
lookup_arg (MtFakeBackend *self, const char *name, GError **error)
{
  MtFakeDomain *d = mt_fake_lookup (self, name);

  if (d == NULL)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no domain '%s'", name);
  return d;
}

/* Where a size key of add (@adding) or set goes, NULL: not such a key. */
static guint64 *
size_field (MtFakeDomain *d, const char *key, gboolean adding)
{
  static const struct {
    const char *key;
    gsize offset;
    gboolean add_only;
  } keys[] = {
    { "size", G_STRUCT_OFFSET (MtFakeDomain, base_memory), TRUE },
    { "vmem", G_STRUCT_OFFSET (MtFakeDomain, vmem_size), TRUE },
    { "block", G_STRUCT_OFFSET (MtFakeDomain, vmem_block), TRUE },
    { "plugged", G_STRUCT_OFFSET (MtFakeDomain, vmem_requested), TRUE },
    { "used", G_STRUCT_OFFSET (MtFakeDomain, used), FALSE },
    { "free", G_STRUCT_OFFSET (MtFakeDomain, free), FALSE },
    { "cache", G_STRUCT_OFFSET (MtFakeDomain, cache), FALSE },
    { "swap-in", G_STRUCT_OFFSET (MtFakeDomain, swap_in), FALSE },
    { "swap-out", G_STRUCT_OFFSET (MtFakeDomain, swap_out), FALSE },
    { "rss", G_STRUCT_OFFSET (MtFakeDomain, rss), FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    if (g_str_equal (keys[i].key, key) && (adding || !keys[i].add_only))
      return G_STRUCT_MEMBER_P (d, keys[i].offset);
  return NULL;
}

/* key=value settings of add and set; the lock is held.  @adding allows
 * the keys that shape the domain. */
static gboolean
apply_settings (MtFakeBackend *self, MtFakeDomain *d, char **args, guint n, gboolean adding,
                GError **error)
{
  gint64 now = g_get_monotonic_time ();

  for (guint i = 0; i < n; i++) {
    g_autofree char *key = NULL;
    const char *eq = strchr (args[i], '=');
    const char *value;
    guint64 *field;
    guint64 v;

    if (eq == NULL) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s': expected key=value",
                   args[i]);
      return FALSE;
    }
    key = g_strndup (args[i], eq - args[i]);
    value = eq + 1;
    if (adding && g_str_equal (key, "uuid")) {
      if (!g_uuid_string_is_valid (value)) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "uuid: '%s' is not a UUID",
                     value);
        return FALSE;
      }
      for (guint j = 0; j < sizeof d->uuid && value[j] != '\0'; j++)
        d->uuid[j] = g_ascii_tolower (value[j]);
      continue;
    }
    if (adding && g_str_equal (key, "agent")) {
      g_free (d->agent_socket);
      d->agent_socket = g_strdup (value);
      continue;
    }
    if (adding && g_str_equal (key, "opt-in")) {
      g_free (d->opt_in);
      d->opt_in = g_strdup (value);
      continue;
    }
    if (g_str_equal (key, "speed")) {
      if (!parse_speed (value, &v, error))
        return FALSE;
      mt_fake_motion_retarget (&d->balloon, d->speed, now, d->balloon.to);
      mt_fake_motion_retarget (&d->plugged, d->speed, now, d->plugged.to);
      d->speed = v;
      continue;
    }
    if (g_str_equal (key, "major-faults")) {
      if (!mt_parse_uint (value, 0, G_MAXUINT64 - 1, &d->major_faults, error)) {
        g_prefix_error (error, "major-faults: ");
        return FALSE;
      }
      continue;
    }
    field = size_field (d, key, adding);
    if (field == NULL) {
      g_set_error (
        error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "unknown key '%s'; expected %s", key,
        adding ? "size, vmem, block, plugged, uuid, agent, opt-in, speed, used, free, cache, "
                 "swap-in, swap-out, major-faults or rss"
               : "speed, used, free, cache, swap-in, swap-out, major-faults or rss");
      return FALSE;
    }
    if (!parse_size (key, value, field, error))
      return FALSE;
    /* Sizes start where they are: nothing moves before a resize call. */
    if (field == &d->base_memory)
      d->balloon.from = d->balloon.to = d->base_memory;
    else if (field == &d->vmem_requested)
      d->plugged.from = d->plugged.to = d->vmem_requested;
  }
  return TRUE;
}

static gboolean
check_new_domain (MtFakeBackend *self, MtFakeDomain *d, GError **error)
{
  if (d->base_memory == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "add %s: size= (boot memory) is required", d->name);
    return FALSE;
  }
  if (d->vmem_size != 0
      && (d->vmem_block == 0 || d->vmem_size % d->vmem_block != 0
          || d->vmem_requested > d->vmem_size || d->vmem_requested % d->vmem_block != 0)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "add %s: vmem= and plugged= must be multiples of block= (default 2M), "
                 "plugged= at most vmem=",
                 d->name);
    return FALSE;
  }
  if (d->vmem_size == 0 && d->vmem_requested != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "add %s: plugged= needs vmem=", d->name);
    return FALSE;
  }
  if (mt_fake_lookup (self, d->name) != NULL || mt_fake_lookup (self, d->uuid) != NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "add %s: a domain %s already runs", d->name,
                 mt_fake_lookup (self, d->name) != NULL ? "of that name" : "of that UUID");
    return FALSE;
  }
  return TRUE;
}

static char *
cmd_add (MtFakeBackend *self, char **args, guint n, GError **error)
{
  MtFakeDomain *d = g_new0 (MtFakeDomain, 1);
  gboolean ok;

  d->name = g_strdup (args[0]);
  uuid_from_name (d->name, d->uuid);
  d->vmem_block = 2 * MT_MIB;
  d->used = d->free = d->cache = d->swap_in = d->swap_out = d->major_faults = d->rss = MT_UNKNOWN;
  g_mutex_lock (&self->lock);
  ok = apply_settings (self, d, args + 1, n - 1, TRUE, error) && check_new_domain (self, d, error);
  g_mutex_unlock (&self->lock);
  if (!ok) {
    mt_fake_domain_free (d);
    return NULL;
  }
  g_info ("fake domain %s (%s) added: %" G_GUINT64_FORMAT
          " MiB boot memory, virtio-mem %" G_GUINT64_FORMAT " MiB",
          d->name, d->uuid, d->base_memory / MT_MIB, d->vmem_size / MT_MIB);
  {
    g_autofree char *reply = g_strdup_printf ("ok uuid=%s", d->uuid);

    mt_fake_add (self, d);
    return g_steal_pointer (&reply);
  }
}

static char *
cmd_remove (MtFakeBackend *self, char **args, guint n, GError **error)
{
  if (!mt_fake_remove (self, args[0])) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no domain '%s'", args[0]);
    return NULL;
  }
  return g_strdup ("ok");
}

static char *
cmd_set (MtFakeBackend *self, char **args, guint n, GError **error)
{
  MtFakeDomain *d;
  gboolean ok;

  g_mutex_lock (&self->lock);
  d = lookup_arg (self, args[0], error);
  if (d != NULL) {
    /* All or nothing; set changes no pointer a shallow copy shares. */
    MtFakeDomain changed = *d;

    ok = apply_settings (self, &changed, args + 1, n - 1, FALSE, error);
    if (ok)
      *d = changed;
  } else {
    ok = FALSE;
  }
  g_mutex_unlock (&self->lock);
  return ok ? g_strdup ("ok") : NULL;
}

/* speed NAME RATE: the same as set NAME speed=RATE. */
static char *
cmd_speed (MtFakeBackend *self, char **args, guint n, GError **error)
{
  g_autofree char *setting = g_strconcat ("speed=", args[1], NULL);
  char *set_args[] = { args[0], setting, NULL };

  return cmd_set (self, set_args, 2, error);
}

static char *
set_mode (MtFakeBackend *self, const char *name, gboolean refuse, const char *fail, GError **error)
{
  MtFakeDomain *d;

  g_mutex_lock (&self->lock);
  d = lookup_arg (self, name, error);
  if (d != NULL) {
    d->refuse = refuse;
    g_free (d->fail);
    d->fail = g_strdup (fail);
  }
  g_mutex_unlock (&self->lock);
  return d != NULL ? g_strdup ("ok") : NULL;
}

static char *
cmd_refuse (MtFakeBackend *self, char **args, guint n, GError **error)
{
  return set_mode (self, args[0], TRUE, NULL, error);
}

static char *
cmd_accept (MtFakeBackend *self, char **args, guint n, GError **error)
{
  return set_mode (self, args[0], FALSE, NULL, error);
}

static char *
cmd_fail (MtFakeBackend *self, char **args, guint n, GError **error)
{
  g_autofree char *message =
    n > 1 ? g_strjoinv (" ", args + 1) : g_strdup ("scripted failure (fake driver)");

  return set_mode (self, args[0], FALSE, message, error);
}

static char *
cmd_block (MtFakeBackend *self, char **args, guint n, GError **error)
{
  MtFakeDomain *d;
  gint64 block;

  if (!mt_parse_duration (args[1], &block, error)) {
    g_prefix_error (error, "block: ");
    return NULL;
  }
  g_mutex_lock (&self->lock);
  d = lookup_arg (self, args[0], error);
  if (d != NULL) {
    d->block = block;
    /* Calls waiting now measure against the new block. */
    g_cond_broadcast (&self->changed);
  }
  g_mutex_unlock (&self->lock);
  return d != NULL ? g_strdup ("ok") : NULL;
}

static char *
cmd_show (MtFakeBackend *self, char **args, guint n, GError **error)
{
  gint64 now = g_get_monotonic_time ();
  char *reply = NULL;
  MtFakeDomain *d;

  g_mutex_lock (&self->lock);
  d = lookup_arg (self, args[0], error);
  if (d != NULL) {
    guint64 balloon = mt_fake_motion_at (&d->balloon, d->speed, now);
    guint64 plugged = mt_fake_motion_at (&d->plugged, d->speed, now);

    reply = g_strdup_printf ("ok name=%s uuid=%s size=%" G_GUINT64_FORMAT
                             " balloon=%" G_GUINT64_FORMAT " balloon-target=%" G_GUINT64_FORMAT
                             " plugged=%" G_GUINT64_FORMAT " requested=%" G_GUINT64_FORMAT
                             " calls=%u in-flight=%u max-in-flight=%u blocked=%u"
                             " last-call=%s",
                             d->name, d->uuid, balloon + plugged, balloon, d->balloon.to, plugged,
                             d->vmem_requested, d->calls, d->in_flight, d->max_in_flight,
                             d->blocked, d->last_call != NULL ? d->last_call : "none");
  }
  g_mutex_unlock (&self->lock);
  return reply;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static char *
cmd_list (MtFakeBackend *self, char **args, guint n, GError **error)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  g_autoptr (GString) reply = g_string_new ("ok");
  GHashTableIter iter;
  gpointer key;

  g_mutex_lock (&self->lock);
  g_hash_table_iter_init (&iter, self->by_name);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (names, key);
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    g_string_append_printf (reply, " %s", (const char *) names->pdata[i]);
  g_mutex_unlock (&self->lock);
  return g_string_free (g_steal_pointer (&reply), FALSE);
}

static const struct {
  const char *verb;
  guint min_args, max_args; /* after the verb; G_MAXUINT = any */
  CommandFunc func;
  const char *usage;
} commands[] = {
  { "add", 1, G_MAXUINT, cmd_add, "add NAME size=SIZE [key=value ...]" },
  { "remove", 1, 1, cmd_remove, "remove NAME" },
  { "set", 2, G_MAXUINT, cmd_set, "set NAME key=value ..." },
  { "speed", 2, 2, cmd_speed, "speed NAME BYTES-PER-SECOND (0: at once)" },
  { "refuse", 1, 1, cmd_refuse, "refuse NAME" },
  { "accept", 1, 1, cmd_accept, "accept NAME" },
  { "fail", 1, G_MAXUINT, cmd_fail, "fail NAME [MESSAGE]" },
  { "block", 2, 2, cmd_block, "block NAME DURATION (0: no more)" },
  { "show", 1, 1, cmd_show, "show NAME" },
  { "list", 0, 0, cmd_list, "list" },
};

char *
mt_backend_fake_command (MtBackend *b, const char *line)
{
  MtFakeBackend *self = (MtFakeBackend *) b;
  g_auto (GStrv) words = NULL;
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  char *reply;

  g_return_val_if_fail (b != NULL && g_str_equal (b->ops->name, "fake"), NULL);
  words = g_strsplit_set (line, " \t\r\n", -1);
  for (guint i = 0; words[i] != NULL; i++)
    if (*words[i] != '\0')
      g_ptr_array_add (args, words[i]);
  if (args->len == 0)
    return g_strdup ("error: empty command");
  g_ptr_array_add (args, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++) {
    guint n = args->len - 2;

    if (!g_str_equal (args->pdata[0], commands[i].verb))
      continue;
    if (n < commands[i].min_args || n > commands[i].max_args)
      return g_strdup_printf ("error: usage: %s", commands[i].usage);
    reply = commands[i].func (self, (char **) args->pdata + 1, n, &error);
    if (reply == NULL)
      return g_strdup_printf ("error: %s", error->message);
    return reply;
  }
  return g_strdup_printf ("error: unknown command '%s'; expected add, remove, set, speed, refuse, "
                          "accept, fail, block, show or list",
                          (const char *) args->pdata[0]);
}

/* ---- the control socket ------------------------------------------------------ */

typedef struct {
  MtFakeControl *control;
  GSocket *socket;
  GSource *source;
  GString *in; /* bytes of the line being read */
} Client;

struct _MtFakeControl {
  MtFakeBackend *backend;
  char *path;
  GSocket *listener;
  GSource *source;
  GPtrArray *clients; /* Client *, owned */
};

static void
client_free (Client *c)
{
  g_source_destroy (c->source);
  g_source_unref (c->source);
  g_socket_close (c->socket, NULL);
  g_object_unref (c->socket);
  g_string_free (c->in, TRUE);
  g_free (c);
}

static void
client_drop (Client *c, const char *why)
{
  if (why != NULL)
    g_warning ("fake driver: dropping a control client: %s", why);
  g_ptr_array_remove (c->control->clients, c); /* frees it */
}

/* FALSE when the reply did not fit: a client that does not read its
 * replies is not waited for. */
static gboolean
client_reply (Client *c, const char *reply)
{
  g_autofree char *line = g_strconcat (reply, "\n", NULL);
  gsize len = strlen (line);
  g_autoptr (GError) error = NULL;
  gssize sent = g_socket_send (c->socket, line, len, NULL, &error);

  return sent == (gssize) len;
}

/* The lines that are complete; FALSE when the client was dropped. */
static gboolean
client_run_lines (Client *c)
{
  char *nl;

  while ((nl = memchr (c->in->str, '\n', c->in->len)) != NULL) {
    g_autofree char *line = g_strndup (c->in->str, nl - c->in->str);
    g_autofree char *reply = NULL;

    g_string_erase (c->in, 0, nl - c->in->str + 1);
    reply = mt_backend_fake_command (&c->control->backend->parent, line);
    g_debug ("fake driver: '%s' -> '%s'", line, reply);
    if (!client_reply (c, reply)) {
      client_drop (c, "it does not read its replies");
      return FALSE;
    }
  }
  if (c->in->len > MAX_LINE) {
    client_reply (c, "error: line too long");
    client_drop (c, "a line longer than 4096 bytes");
    return FALSE;
  }
  return TRUE;
}

static gboolean
on_client_ready (GSocket *socket, GIOCondition condition, gpointer data)
{
  Client *c = data;
  g_autoptr (GError) error = NULL;
  char buf[1024];
  gssize n = g_socket_receive (socket, buf, sizeof buf, NULL, &error);

  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;
  if (n <= 0) {
    /* The source goes with the client: keep it until then. */
    client_drop (c, n < 0 ? error->message : NULL);
    return G_SOURCE_CONTINUE;
  }
  g_string_append_len (c->in, buf, n);
  client_run_lines (c);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_incoming (GSocket *listener, GIOCondition condition, gpointer data)
{
  MtFakeControl *control = data;
  g_autoptr (GError) error = NULL;
  GSocket *socket = g_socket_accept (listener, NULL, &error);
  Client *c;

  if (socket == NULL) {
    if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      g_warning ("fake driver: cannot accept a control client: %s", error->message);
    return G_SOURCE_CONTINUE;
  }
  if (control->clients->len >= MAX_CLIENTS) {
    g_warning ("fake driver: refusing a control client: %d are connected", MAX_CLIENTS);
    g_socket_close (socket, NULL);
    g_object_unref (socket);
    return G_SOURCE_CONTINUE;
  }
  g_socket_set_blocking (socket, FALSE);
  c = g_new0 (Client, 1);
  c->control = control;
  c->socket = socket;
  c->in = g_string_new (NULL);
  c->source = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (c->source, G_SOURCE_FUNC (on_client_ready), c, NULL);
  g_source_attach (c->source, NULL);
  g_ptr_array_add (control->clients, c);
  return G_SOURCE_CONTINUE;
}

MtFakeControl *
mt_fake_control_new (MtFakeBackend *backend, const char *path, GError **error)
{
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr (GSocket) listener = NULL;
  MtFakeControl *control;

  /* Never someone else's file: a path that exists is refused. */
  if (g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                 "fake driver: %s exists; --connect names the control socket the fake driver "
                 "creates (remove it, or name another path)",
                 path);
    return NULL;
  }
  listener =
    g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);
  if (listener == NULL || !g_socket_bind (listener, address, FALSE, error)
      || !g_socket_listen (listener, error)) {
    g_prefix_error (error, "fake driver: cannot listen on %s: ", path);
    return NULL;
  }
  /* Owner only: whoever writes the script decides what memtided sees. */
  if (g_chmod (path, 0600) < 0) {
    int saved = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                 "fake driver: cannot restrict %s to its owner: %s", path, g_strerror (saved));
    g_unlink (path);
    return NULL;
  }
  g_socket_set_blocking (listener, FALSE);
  control = g_new0 (MtFakeControl, 1);
  control->backend = backend;
  control->path = g_strdup (path);
  control->listener = g_steal_pointer (&listener);
  control->clients = g_ptr_array_new_with_free_func ((GDestroyNotify) client_free);
  control->source = g_socket_create_source (control->listener, G_IO_IN, NULL);
  g_source_set_callback (control->source, G_SOURCE_FUNC (on_incoming), control, NULL);
  g_source_attach (control->source, NULL);
  return control;
}

void
mt_fake_control_free (MtFakeControl *control)
{
  g_ptr_array_unref (control->clients);
  g_source_destroy (control->source);
  g_source_unref (control->source);
  g_socket_close (control->listener, NULL);
  g_object_unref (control->listener);
  g_unlink (control->path);
  g_free (control->path);
  g_free (control);
}
