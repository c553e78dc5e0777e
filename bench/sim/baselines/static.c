/* static.c: static allocation.  Every VM keeps the memory it booted
 * with; nothing is ever resized.  Free page reporting (on for every
 * policy unless --no-fpr) is the only thing that returns memory. */
#include "sim.h"

static gpointer
static_init (SimWorld *w, const char *arg, GError **error)
{
  return g_new0 (int, 1);
}

static void
static_step (gpointer self, SimWorld *w)
{
}

const SimPolicy sim_policy_static = {
  .name = "static",
  .label = "static",
  .source = "no resizing: each VM at its configured memory",
  .init = static_init,
  .step = static_step,
  .report = NULL,
  .free = g_free,
};
