/* domain.h: what a hypervisor driver knows of one running domain's
 * configuration, in the driver-neutral form the core plans with.
 * Sizes are bytes. */
#pragma once

#include <glib.h>

/* The domain's own VM policy settings, applied on top of the policy
 * files (config.h: parsed, reference-counted, immutable). */
typedef struct _MtVmOverrides MtVmOverrides;

/* What the driver knows of one running domain's configuration. */
typedef struct {
  char *name;
  char *uuid;               /* canonical string form */
  guint64 base_memory;      /* boot memory the balloon works on */
  guint64 vmem_size;        /* virtio-mem device size, 0 = none */
  guint64 vmem_block;       /* virtio-mem block size */
  char *vmem_alias;         /* device alias, NULL = none */
  guint64 vmem_requested;   /* virtio-mem size asked of the guest, 0 = no device */
  guint64 vmem_plugged;     /* virtio-mem size the guest has plugged, 0 = no
                               device, MT_UNKNOWN = not reported */
  char *agent_socket;       /* host path of the agent channel, NULL = none */
  MtVmOverrides *overrides; /* the domain's own policy settings (libvirt:
                               its memtide <metadata>), NULL = none */
  char *overrides_error;    /* why the driver ignored them (bad metadata),
                               NULL = none: the file policy applies */
  char *mechanism_note;     /* what the driver cannot do to this domain's
                               size and why (Xen: "balloon only: ..."),
                               for Explain and the log; NULL = nothing */
  char *opt_in;             /* non-NULL: managed only when a [vm NAME] group
                               names the domain written out (config.h
                               mt_config_names_vm), never below
                               MT_OPT_IN_FLOOR; observed otherwise.  Says
                               what the domain is, for the log ("dom0") */
} MtDomainInfo;

void mt_domain_info_free (MtDomainInfo *info);
/* Frees what @info points to and zeroes it, for an MtDomainInfo kept by
 * value. */
void mt_domain_info_clear (MtDomainInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtDomainInfo, mt_domain_info_free)
