/* drivers.h: the table of hypervisor drivers and how the daemon picks
 * one, like power-profiles-daemon picks its drivers: each is probed and
 * says yes, no, or later.  The daemon includes this and backend.h, never
 * a driver's own header.
 */
#pragma once

#include "backend.h"

/* One entry of the driver table. */
typedef struct {
  const char *name;
  gboolean automatic;      /* --backend auto may pick it */
  const char *default_uri; /* when --connect is not given; NULL = required */
  MtBackend *(*create) (const char *uri);
} MtDriver;

/* The entries, each defined in its driver's own file. */
#ifdef MT_HAVE_XEN
extern const MtDriver mt_driver_xen; /* backend-xen.c */
#endif
extern const MtDriver mt_driver_libvirt; /* backend-libvirt.c */
extern const MtDriver mt_driver_fake;    /* backend-fake.c */

/* "xen, libvirt, fake": every driver --backend names, in probe order
 * (xen only when memtided was built with it, meson option xen). */
const char *mt_drivers_names (void);

/* Whether --backend may name it: "auto" or a driver of the table. */
gboolean mt_drivers_known (const char *name);

/* --backend auto: probe the drivers that auto may pick (not fake), in
 * order, each with @uri (NULL: the driver's default).  The first that
 * says yes wins; else the first that says later (its hypervisor may not
 * be up yet: its connect() says what is wrong); else NULL with an error
 * that lists every driver's answer. */
MtBackend *mt_drivers_probe (const char *uri, GError **error);

/* The driver @name ("auto" or NULL: mt_drivers_probe()) for @uri; a
 * driver asked for by name is not probed.  @uri_out (may be NULL) gets
 * the URI in use, for messages: @uri, or the driver's default. */
MtBackend *mt_drivers_select (const char *name, const char *uri, char **uri_out, GError **error);
