/* daemon.h: memtided's core: owns the policy, the backend, the model of
 * every VM and the tick that plans and acts.  main.c only parses options
 * and runs the loop; the D-Bus layer reads and steers through this. */
#pragma once

#include <glib.h>

typedef struct {
  const char *uri;            /* libvirt URI */
  const char *config_file;    /* base policy file */
  const char *policies_dir;   /* admin policy files, read in sorted order */
  const char *state_dir;      /* persisted state */
  const char *proc_root;      /* host /proc (tests point it elsewhere) */
  const char *cgroup_dir;     /* VM cgroup, NULL = find libvirt's */
  gboolean    dry_run;        /* decide and log, apply nothing */
} MtDaemonOptions;

typedef struct _MtDaemon MtDaemon;

/* Loads the policy (fails on any error in it) and the state; does not
 * connect yet. */
MtDaemon *mt_daemon_new (const MtDaemonOptions *options, GError **error);
void mt_daemon_free (MtDaemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtDaemon, mt_daemon_free)

/* Connects to the hypervisor, discovers domains, starts ticking. */
gboolean mt_daemon_start (MtDaemon *daemon, GError **error);
/* Saves state; leaves every VM at the size it has. */
void mt_daemon_stop (MtDaemon *daemon);

/* SIGHUP: re-read the policy files; on error keep the old policy and log
 * why.  Returns whether the new policy is in force. */
gboolean mt_daemon_reload (MtDaemon *daemon);

/* --check-config */
gboolean mt_daemon_check_config (const MtDaemonOptions *options, GError **error);
