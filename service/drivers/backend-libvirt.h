/* backend-libvirt.h: the libvirt driver (QEMU/KVM).  Only the driver's
 * own files and tests include this; the driver table reaches it through
 * mt_driver_libvirt (drivers.h).
 *
 * Events (lifecycle, virtio-mem size, metadata) and the reconnect timer
 * are dispatched from the GLib default main context: run it.
 *
 * connect() announces the domains already running through domain_cb
 * (MT_DOMAIN_EVENT_ADDED) before it returns.  When libvirtd goes away the
 * backend reports connection_cb (FALSE), reconnects on its own with
 * exponential backoff, then reports connection_cb (TRUE) and announces
 * the running domains again (ADDED for each, REMOVED for those that
 * stopped meanwhile).  connection_cb reports only these changes, never
 * the outcome of connect() itself.
 *
 * Errors are G_IO_ERROR: NOT_FOUND (no such domain), INVALID_ARGUMENT
 * (a size memtide or libvirt refuses), NOT_SUPPORTED (no virtio-mem
 * device, or the driver cannot), NOT_CONNECTED, FAILED (anything else
 * libvirt says, its message appended).
 *
 * See docs/driver-libvirt.md for the libvirt facts this relies on.
 */
#pragma once

#include <libvirt/libvirt.h>
#include "backend.h"
#include "config.h" /* MT_METADATA_NAMESPACE */

/* virtio-serial port name of the guest agent channel. */
#define MT_LIBVIRT_AGENT_PORT "org.memtide.agent.0"

/* Set to 1, collect() asks each domain that the batched
 * virConnectGetAllDomainStats call gave no balloon.current for its
 * balloon statistics with virDomainMemoryStats (one call per domain per
 * tick, which waits for the domain's job lock).  For drivers without the
 * balloon group in the batched call, such as libvirt 9.0's test driver,
 * whose virDomainMemoryStats does answer: bench/scale uses it to run the
 * whole tick (stats, model, plan, resizes) on test-driver domains.  QEMU
 * always reports balloon.current, so there it changes nothing. */
#define MT_LIBVIRT_PER_DOMAIN_STATS_ENV "MEMTIDE_LIBVIRT_PER_DOMAIN_STATS"

/* Never NULL; nothing is opened until probe() or connect(). */
MtBackend *mt_backend_libvirt_new (const char *uri);

/* The pieces below are pure (no libvirt connection) and exported for the
 * unit tests. */

/* Live domain XML -> info.  overrides stay NULL: they come from
 * virDomainGetMetadata, not from the XML. */
MtDomainInfo *mt_libvirt_parse_domain_xml (const char *xml, GError **error);

/* The device XML virDomainUpdateDeviceFlags needs to set the first
 * virtio-mem device of the live domain XML to @requested bytes.  Refuses
 * (G_IO_ERROR_INVALID_ARGUMENT) a size that is not a multiple of the
 * block size or is above the device size; G_IO_ERROR_NOT_SUPPORTED when
 * there is no virtio-mem device. */
char *mt_libvirt_vmem_update_xml (const char *domain_xml, guint64 requested, GError **error);

/* "600 MiB", "612 KiB" or "1000 bytes": exact, for messages. */
char *mt_libvirt_format_size (guint64 bytes);

/* Fill the backend fields of @s (initialised by the caller) from one
 * record of virConnectGetAllDomainStats (balloon group).  @info is the
 * cached info of the domain (NULL if not known yet): its virtio-mem sizes
 * go into the sample and are taken out of balloon.current, which counts
 * plugged virtio-mem memory too. */
void mt_libvirt_sample_from_stats (MtVmSample *s, virTypedParameterPtr params, int nparams,
                                   const MtDomainInfo *info);
