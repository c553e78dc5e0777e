/* run.c: one policy on one scenario, from the first step to the last:
 * the loop the tables and the density search share. */
#include <math.h>
#include "report.h"

gboolean
sim_run (const SimScenario *sc, const SimPolicy *p, const char *arg, gboolean fpr,
         const char *series, SimResult *r, GError **error)
{
  SimWorld *w = g_new0 (SimWorld, 1);
  gpointer self;
  FILE *f = NULL;
  guint steps = (guint) llround (sc->duration / SIM_DT);
  guint per_s = (guint) llround (1.0 / SIM_DT);

  sim_world_init (w, sc, fpr);
  self = p->init (w, arg, error);
  if (self == NULL)
    goto fail;
  if (series != NULL && (f = sim_series_open (series, w, error)) == NULL) {
    p->free (self);
    goto fail;
  }
  for (guint k = 0; k <= steps; k++) {
    if (f != NULL && k % per_s == 0)
      sim_series_row (f, w);
    if (k == steps)
      break;
    sim_world_step (w);
    if (p->report != NULL)
      for (guint i = 0; i < w->n; i++)
        if (w->vm[i].new_report)
          p->report (self, w, i);
    p->step (self, w);
  }
  if (f != NULL)
    fclose (f);
  sim_result_from_world (r, p, w);
  r->series = g_strdup (series);
  p->free (self);
  sim_world_clear (w);
  g_free (w);
  return TRUE;

fail:
  sim_world_clear (w);
  g_free (w);
  return FALSE;
}
