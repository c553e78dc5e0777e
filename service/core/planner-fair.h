/* planner-fair.h: weighted max-min fair split of a memory budget.
 * Used by planner.c for the short-host case; public so tests and
 * bench/sim can check it alone. */
#pragma once

#include <glib.h>

typedef struct {
  guint64 lo;     /* guaranteed */
  guint64 hi;     /* demand; lo <= hi */
  guint32 shares; /* weight; 0 counts as 1 */
  guint64 alloc;  /* out: lo <= alloc <= hi */
} MtFairEntry;

/* alloc_i = clamp (λ · shares_i, lo_i, hi_i) for the largest λ with
 * Σ alloc <= budget.  Exact integer arithmetic (no floating point), so
 * raising one entry's shares never lowers its alloc and the sum never
 * exceeds the budget; up to n bytes stay unallocated by rounding down.
 * Returns FALSE when Σ lo > budget: then every alloc is lo. */
gboolean mt_fair_split (MtFairEntry *entries, guint n, guint64 budget);
