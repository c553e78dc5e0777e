/* metrics-listener.h: the metrics endpoint's sockets on the loopback
 * interface, accepted here and handed to a SoupServer.
 *
 * libsoup's own listener stops accepting for good on the first failed
 * accept() (EMFILE included) and takes every connection it is offered:
 * a local client that held ~1,025 connections used up every descriptor
 * of memtided, and /metrics never answered again.  Here:
 *   - at most MT_METRICS_MAX_CONNECTIONS open at once; beyond that a
 *     connection is accepted and closed at once (said once, and its end
 *     once, at most once a minute);
 *   - a connection that does nothing for MT_METRICS_IDLE_TIMEOUT (no
 *     request started, read or answered) is closed;
 *   - a failed accept() (no descriptor left, no memory) pauses accepting
 *     and retries with a back-off up to MT_METRICS_RETRY_MAX, serving the
 *     open connections meanwhile (said once, and when it accepts again;
 *     at most once a minute, as a client at the edge makes it flap).
 */
#pragma once

#include <libsoup/soup.h>

#define MT_METRICS_MAX_CONNECTIONS 32
#define MT_METRICS_IDLE_TIMEOUT    (10 * G_USEC_PER_SEC)
#define MT_METRICS_RETRY_MIN       (100 * 1000)
#define MT_METRICS_RETRY_MAX       (1 * G_USEC_PER_SEC)

typedef struct _MtMetricsListener MtMetricsListener;

/* Listens on 127.0.0.1:port (and [::1]:port where IPv6 is there); port 0
 * picks a free one.  Connections go to `server`, which must outlive the
 * listener. */
MtMetricsListener *mt_metrics_listener_new (SoupServer *server, guint port, GError **error);
guint mt_metrics_listener_get_port (MtMetricsListener *listener);
void mt_metrics_listener_free (MtMetricsListener *listener);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtMetricsListener, mt_metrics_listener_free)
