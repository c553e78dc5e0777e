/* backend-xen.h: the Xen driver (libxenctrl + libxenstore), for memtided
 * running in dom0.  Only the driver's own files and tests include this;
 * the driver table reaches it through mt_driver_xen (drivers.h).
 *
 * Domains come from xc_domain_getinfolist; they appear and vanish
 * through xenstore's @introduceDomain / @releaseDomain watches, read on
 * the GLib default main context (xs_fileno as a source): run it.
 * connect() announces the running domUs (ADDED) before it returns.  When
 * xenstored's connection fails the backend reports connection_cb (FALSE),
 * reconnects with back-off (1 s doubling to 30 s), then reports
 * connection_cb (TRUE) and announces again.
 *
 * Errors are G_IO_ERROR: NOT_FOUND (no such domain), INVALID_ARGUMENT (a
 * size memtide refuses, or a xenstore value that is not a size),
 * NOT_SUPPORTED (virtio-mem), NOT_CONNECTED, FAILED (anything else Xen
 * says, errno's text appended).
 *
 * See docs/backend-xen.md for the Xen facts this relies on.
 */
#pragma once

#include "backend.h"

/* Where the agent bridges' sockets go when MEMTIDE_XEN_AGENT_DIR is not
 * set: $RUNTIME_DIRECTORY/xen-agent (systemd), else this. */
#define MT_XEN_AGENT_DIR_DEFAULT "/run/memtide/xen-agent"
#define MT_XEN_AGENT_DIR_ENV     "MEMTIDE_XEN_AGENT_DIR"

/* The only URI the driver takes (--connect), and its default. */
#define MT_XEN_URI "xen"

/* What Explain and the log say of every Xen domain. */
#define MT_XEN_MECHANISM_NOTE                                                            \
  "balloon only: Xen has no virtio-mem, so the domain is resized by its balloon driver " \
  "(memory/target), up to its static-max"

/* Never NULL; nothing is opened until probe() or connect().  @uri: NULL
 * or "xen"; any other URI makes probe() say no and connect() fail (a
 * libvirt URI given with --backend auto must not pick Xen). */
MtBackend *mt_backend_xen_new (const char *uri);

/* The pieces below are pure (no hypervisor) and exported for the unit
 * tests. */

/* Whether @sys_root/hypervisor/type says "xen" and
 * @proc_root/xen/capabilities has "control_d" (this is dom0).  No when
 * not Xen or a domU; later when xenfs is not mounted yet. */
MtProbeResult mt_xen_probe_roots (const char *sys_root, const char *proc_root, GError **error);

/* A xenstore value that holds a size in KiB (memory/static-max,
 * memory/target, memory/videoram) -> bytes.  Only decimal digits, no
 * sign, no space, no NUL inside (@len is the length xs_read gave);
 * refuses a value whose bytes overflow.  @what names it in the error. */
gboolean mt_xen_parse_kib (const char *what, const char *value, gsize len, guint64 *bytes,
                           GError **error);

/* Whether a domain's xenstore name (@len as xs_read gave it) can be a
 * VM's name: 1 to MT_XEN_NAME_MAX bytes, valid UTF-8, no NUL or other
 * control character (it reaches logs and D-Bus). */
#define MT_XEN_NAME_MAX 256
gboolean mt_xen_name_ok (const char *value, gsize len);

/* Pages of @page_size -> bytes; MT_UNKNOWN when it overflows. */
guint64 mt_xen_pages_to_bytes (guint64 pages, guint64 page_size);

/* The 16-byte domain handle in canonical form (36 characters). */
void mt_xen_format_uuid (const guint8 handle[16], char out[37]);

/* One step of a resize. */
typedef enum {
  MT_XEN_SET_MAXMEM,   /* xc_domain_setmaxmem, KiB */
  MT_XEN_WRITE_TARGET, /* xs_write memory/target, KiB */
} MtXenStep;

typedef struct {
  MtXenStep step;
  guint64 kib;
} MtXenOp;

/* The two steps that set a domain of @static_max bytes, @videoram bytes
 * of video memory and maxmem @maxmem_kib now (MT_UNKNOWN: unlimited) to
 * @bytes in all, in the order squeezed uses: memory/target = @bytes -
 * videoram, maxmem = target + videoram + 1 MiB; raising maxmem, maxmem
 * first; lowering it, the target first, so that the target never lies
 * above maxmem.  Refuses (G_IO_ERROR_INVALID_ARGUMENT) @bytes above
 * @static_max or not above the video memory. */
gboolean mt_xen_resize_ops (guint64 bytes, guint64 static_max, guint64 videoram, guint64 maxmem_kib,
                            MtXenOp ops[2], GError **error);
