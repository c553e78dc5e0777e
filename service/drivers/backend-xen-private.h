/* backend-xen-private.h: the Xen driver's state, shared by its files:
 * backend-xen.c (connection, watches, the domain table, statistics),
 * backend-xen-resize.c (set_balloon, on the resize workers) and
 * backend-xen-agent.c (the agent bridges over xenstore).
 *
 * Threads: everything runs on the main thread but set_balloon(), which
 * runs on the daemon's resize workers.  The workers use their own
 * xenctrl and xenstore handles (worker_lock) and read the domain table
 * only under lock; the main thread changes the table only under lock.
 */
#pragma once

#include <xenctrl.h>
#include <xenstore.h>

#include "backend-xen.h"
#include "xen-agent-bridge.h"

typedef struct _MtXenBackend MtXenBackend;

typedef struct {
  MtXenBackend *backend;
  guint32 domid;
  xen_domain_handle_t handle; /* told apart from a later domain with the same domid */
  char uuid[37];              /* the key in domains */
  char *name;
  guint64 static_max; /* bytes: memory/static-max */
  guint64 videoram;   /* bytes: memory/videoram, 0 when absent */
  MtXenAgentBridge *bridge;
  char *agent_socket; /* NULL while there is no bridge */
  char *agent_path;   /* /local/domain/N/data/memtide */
  char *agent_token;  /* the watch's token: names the domain */
  gboolean agent_watched;
} MtXenDomain;

struct _MtXenBackend {
  MtBackend parent; /* first: an MtBackend * is one of these */
  char *uri;
  char *sys_root;  /* "/sys", for the probe */
  char *proc_root; /* "/proc" */
  char *agent_dir; /* where the bridges' sockets go */

  /* Main thread only. */
  xc_interface *xch;
  struct xs_handle *xsh; /* watches and reads */
  guint watch_id;        /* source on xs_fileno */
  guint reconcile_id;    /* idle that compares Xen's domains with the table */
  guint reconnect_id;
  guint backoff_s;
  xc_domaininfo_t *infos; /* getinfolist's buffer, kept between ticks */
  guint n_infos;
  GHashTable *refused; /* domids whose xenstore values were refused: warned once */

  GMutex lock;          /* the tables, against the workers */
  GHashTable *domains;  /* uuid -> MtXenDomain *, announced domUs */
  GHashTable *by_domid; /* domid -> the same */

  GMutex worker_lock; /* the workers' handles; opened on first use */
  xc_interface *worker_xch;
  struct xs_handle *worker_xsh;
};

/* A logger that sends libxenctrl's messages to g_debug instead of
 * stderr: the failures that matter come back as GErrors. */
xentoollog_logger *mt_xen_logger (void);

/* "/local/domain/<domid>/<key>" */
char *mt_xen_domain_path (guint32 domid, const char *key);

/* backend-xen-resize.c */
gboolean mt_xen_set_balloon (MtBackend *b, const char *uuid, guint64 bytes,
                             GCancellable *cancellable, GError **error);
void mt_xen_worker_close (MtXenBackend *self);

/* backend-xen-agent.c: a domain's bridge and its watch on
 * data/memtide (announce), undone by detach (forget, disconnect). */
void mt_xen_agent_attach (MtXenBackend *self, MtXenDomain *dom);
void mt_xen_agent_detach (MtXenBackend *self, MtXenDomain *dom);
/* A watch event; TRUE when @token is one of the agent watches. */
gboolean mt_xen_agent_event (MtXenBackend *self, const char *path, const char *token);
