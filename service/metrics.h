/* metrics.h: OpenMetrics text for Prometheus on http://localhost:PORT/metrics
 * (loopback only; memtided --metrics-port enables it). */
#pragma once

#include <glib.h>
#include "daemon.h"

typedef struct _MtMetrics MtMetrics;

/* port 0 picks a free port (see mt_metrics_get_port). */
MtMetrics *mt_metrics_new (MtDaemon *daemon, guint port, GError **error);
guint mt_metrics_get_port (MtMetrics *metrics);
void mt_metrics_free (MtMetrics *metrics);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtMetrics, mt_metrics_free)
