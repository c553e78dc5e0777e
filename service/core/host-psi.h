/* host-psi.h: a PSI trigger on the host's memory pressure, as
 * low-memory-monitor and systemd-oomd arm one: "some STALL WINDOW"
 * written to /proc/pressure/memory, then POLLPRI on that descriptor each
 * time tasks stalled on memory for STALL µs within a WINDOW.  The daemon
 * plans at once on it instead of at the next tick; the tick still reads
 * PSI (host.c), with or without a trigger.
 *
 *   g_autoptr (MtHostPsiTrigger) t = mt_host_psi_trigger_new (proc_root, &error);
 *   if (t) mt_host_psi_trigger_watch (t, on_pressure, data);
 *   else   the tick's reading is all there is (error says why)
 */
#pragma once

#include <gio/gio.h>

/* 150 ms of stall in 1 s (the guest agent's trigger too).  Without
 * CAP_SYS_RESOURCE the kernel (6.2+) takes only windows that are a
 * multiple of 2 s: then 300 ms in 2 s, the same share. */
#define MT_HOST_PSI_STALL               (150 * 1000)
#define MT_HOST_PSI_WINDOW              (1000 * 1000)
#define MT_HOST_PSI_WINDOW_UNPRIVILEGED (2000 * 1000)

typedef struct _MtHostPsiTrigger MtHostPsiTrigger;

/* Arms the trigger on proc_root/pressure/memory (proc_root usually
 * "/proc").  Fails, leaving nothing open and nothing written, with
 *   G_IO_ERROR_NOT_FOUND          no PSI (kernel without it, psi=0);
 *   G_IO_ERROR_PERMISSION_DENIED  the file cannot be opened for writing;
 *   G_IO_ERROR_NOT_SUPPORTED      the file is not on procfs (a test tree:
 *                                 nothing is written to it), or the
 *                                 kernel refused the trigger (before
 *                                 5.2, or no trigger support);
 * or the G_IO_ERROR of another reason open() failed. */
MtHostPsiTrigger *mt_host_psi_trigger_new (const char *proc_root, GError **error);

/* For tests: a trigger on an open descriptor (taken over), as if armed. */
MtHostPsiTrigger *mt_host_psi_trigger_new_for_fd (int fd, const char *spec);

/* "some 150000 1000000": what was written. */
const char *mt_host_psi_trigger_get_spec (MtHostPsiTrigger *trigger);

/* fired is TRUE each time the trigger fires.  It is FALSE once when the
 * trigger is gone (POLLERR: the kernel dropped it); no call follows. */
typedef void (*MtHostPsiFunc) (gboolean fired, gpointer data);

/* Watches it on the thread-default main context; call once.  func must
 * not free the trigger. */
void mt_host_psi_trigger_watch (MtHostPsiTrigger *trigger, MtHostPsiFunc func, gpointer data);

void mt_host_psi_trigger_free (MtHostPsiTrigger *trigger);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtHostPsiTrigger, mt_host_psi_trigger_free)
