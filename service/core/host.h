/* host.h: what the host itself says about its memory.
 *
 * Reads /proc/meminfo, /proc/pressure/memory and the memory limit of the
 * cgroup the VMs run in (libvirt's "machine" cgroup).  Every root is
 * injected so tests point it at a fake tree (tests/unit/data/host/).
 */
#pragma once

#include <gio/gio.h>
#include "sample.h"
#include "policy.h"

typedef struct _MtHostReader MtHostReader;

/* proc_root: usually "/proc".  cgroup_dir: the directory of the cgroup
 * the VMs run in (v1: .../memory/machine, v2: .../machine.slice), or
 * NULL to find libvirt's machine cgroup under sys_fs_cgroup (usually
 * "/sys/fs/cgroup"); when none exists the limit is reported unknown. */
MtHostReader *mt_host_reader_new (const char *proc_root, const char *sys_fs_cgroup,
                                  const char *cgroup_dir);
void mt_host_reader_free (MtHostReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtHostReader, mt_host_reader_free)

/* The cgroup directory in use, or NULL. */
const char *mt_host_reader_get_cgroup_dir (MtHostReader *reader);

/* Fails only when /proc/meminfo cannot be read or parsed; PSI and the
 * cgroup are optional and left unknown when missing. */
gboolean mt_host_reader_read (MtHostReader *reader, gint64 now, MtHostSample *out, GError **error);

/* Bytes the VMs may use in total, with why in *reason (may be NULL).
 *
 * An explicit policy budget wins.  Otherwise the VMs may have what they
 * hold now (vm_rss_total, the RSS of their processes) plus what the host
 * has available, less the reserve, and never more than the limit of
 * their cgroup less the reserve.  MemAvailable alone would be wrong: it
 * does not count memory the VMs already use. */
guint64 mt_host_budget (const MtHostSample *host, const MtHostPolicy *policy, guint64 vm_rss_total,
                        char **reason);
