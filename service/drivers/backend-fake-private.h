/* backend-fake-private.h: what the fake driver's files share:
 *   backend-fake.c          domains, their motion, the driver's ops
 *   backend-fake-control.c  the script: commands and the control socket
 */
#pragma once

#include "backend-fake.h"

/* A size on its way: it left `from` at `since` toward `to` and moves at
 * the domain's speed. */
typedef struct {
  guint64 from;
  guint64 to;
  gint64 since; /* monotonic µs */
} MtFakeMotion;

#define MT_FAKE_UUID_LEN 37 /* canonical form and its NUL */

typedef struct {
  char *name;
  char uuid[MT_FAKE_UUID_LEN];
  guint64 serial;      /* tells a domain from a later one of the same UUID */
  guint64 base_memory; /* boot memory: the balloon's range */
  guint64 vmem_size;   /* 0 = no virtio-mem device */
  guint64 vmem_block;
  guint64 vmem_requested;
  char *agent_socket;
  char *opt_in; /* MtDomainInfo.opt_in, NULL = an ordinary domain */
  MtFakeMotion balloon;
  MtFakeMotion plugged;
  guint64 speed;   /* bytes/s both sizes move at, 0 = at once */
  gboolean refuse; /* resize calls succeed, the sizes stay */
  char *fail;      /* resize calls fail with this message, NULL = they do not */
  gint64 block;    /* µs each resize call waits before it acts, 0 = none */

  /* What the guest reports (balloon statistics); MT_UNKNOWN = nothing. */
  guint64 used; /* MemTotal - MemAvailable; MemTotal is the size */
  guint64 free; /* MemFree, MT_UNKNOWN = MemAvailable */
  guint64 cache, swap_in, swap_out, major_faults, rss;

  /* Resize calls seen, for the script's "show". */
  guint calls;
  guint in_flight;
  guint max_in_flight;
  guint blocked; /* waiting out `block` now */
  char *last_call;
} MtFakeDomain;

typedef struct _MtFakeControl MtFakeControl;

typedef struct {
  MtBackend parent; /* first: an MtBackend * is one of these */
  char *control_path;
  /* Resize calls run in worker threads: every domain field, and the
   * tables, are read and written under the lock. */
  GMutex lock;
  GCond changed;       /* a block ended, a domain went, a call was cancelled */
  GHashTable *domains; /* uuid -> MtFakeDomain *, owns */
  GHashTable *by_name; /* name -> the same */
  guint64 next_serial;
  gboolean connected;
  MtFakeControl *control; /* the socket, NULL before connect() */
} MtFakeBackend;

/* Where a size is at @now. */
guint64 mt_fake_motion_at (const MtFakeMotion *m, guint64 speed, gint64 now);
/* Send it from where it is now toward @to. */
void mt_fake_motion_retarget (MtFakeMotion *m, guint64 speed, gint64 now, guint64 to);

/* The lock must be held. */
MtFakeDomain *mt_fake_lookup (MtFakeBackend *self, const char *name);
/* Takes @d; emits ADDED.  Lock not held. */
void mt_fake_add (MtFakeBackend *self, MtFakeDomain *d);
/* Emits REMOVED; wakes calls waiting on it.  Lock not held. */
gboolean mt_fake_remove (MtFakeBackend *self, const char *name);
void mt_fake_domain_free (MtFakeDomain *d);

/* backend-fake-control.c */
MtFakeControl *mt_fake_control_new (MtFakeBackend *self, const char *path, GError **error);
void mt_fake_control_free (MtFakeControl *control);
