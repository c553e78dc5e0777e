/* planner-fair.c: weighted max-min fairness by water-filling.
 *
 * f(λ) = Σ clamp (λ·s_i, lo_i, hi_i) is continuous, piecewise linear and
 * non-decreasing; its kinks are at lo_i/s_i and hi_i/s_i.  We sort the
 * kinks, find the segment where f crosses the budget and solve the
 * linear piece there.  λ is a rational; all products fit in 128 bits
 * (sizes < 2^64, shares < 2^32, at most 2^32 entries).
 */
#define G_LOG_DOMAIN "memtide-planner"

#include <stdlib.h>
#include "planner-fair.h"

__extension__ typedef unsigned __int128 u128;

typedef struct {
  guint64 num;
  guint64 den;                 /* shares, >= 1 */
} Ratio;

static guint64
shares_of (const MtFairEntry *e)
{
  return e->shares ? e->shares : 1;
}

static int
ratio_cmp (const void *pa, const void *pb)
{
  const Ratio *a = pa, *b = pb;
  u128 l = (u128) a->num * b->den;
  u128 r = (u128) b->num * a->den;

  return l < r ? -1 : l > r ? 1 : 0;
}

/* f(r) · r.den, compared against budget · r.den by the caller. */
static u128
f_scaled (const MtFairEntry *e, guint n, Ratio r)
{
  u128 sum = 0;

  for (guint i = 0; i < n; i++)
    {
      u128 v = (u128) r.num * shares_of (&e[i]);
      u128 lo = (u128) e[i].lo * r.den;
      u128 hi = (u128) e[i].hi * r.den;

      sum += v < lo ? lo : v > hi ? hi : v;
    }
  return sum;
}

/* is a/b <= c/d */
static gboolean
ratio_le (guint64 a, guint64 b, Ratio r)
{
  return (u128) a * r.den <= (u128) r.num * b;
}

gboolean
mt_fair_split (MtFairEntry *e, guint n, guint64 budget)
{
  g_autofree Ratio *kinks = NULL;
  u128 sum_lo = 0, sum_hi = 0, c = 0, w = 0, rest;
  guint lo_k, hi_k;

  g_return_val_if_fail (n == 0 || e != NULL, FALSE);

  for (guint i = 0; i < n; i++)
    {
      if (e[i].hi < e[i].lo)
        e[i].hi = e[i].lo;
      sum_lo += e[i].lo;
      sum_hi += e[i].hi;
    }
  if (sum_lo > budget || sum_hi <= budget)
    {
      gboolean fits = sum_lo <= budget;

      for (guint i = 0; i < n; i++)
        e[i].alloc = fits ? e[i].hi : e[i].lo;
      return fits;
    }

  kinks = g_new (Ratio, 2 * (gsize) n);
  for (guint i = 0; i < n; i++)
    {
      kinks[2 * i] = (Ratio) { e[i].lo, shares_of (&e[i]) };
      kinks[2 * i + 1] = (Ratio) { e[i].hi, shares_of (&e[i]) };
    }
  qsort (kinks, 2 * (gsize) n, sizeof (Ratio), ratio_cmp);

  /* f(first kink) = Σ lo <= budget < Σ hi = f(last kink): find the first
   * kink where f exceeds the budget. */
  lo_k = 0;
  hi_k = 2 * n - 1;
  while (lo_k + 1 < hi_k)
    {
      guint mid = lo_k + (hi_k - lo_k) / 2;

      if (f_scaled (e, n, kinks[mid]) > (u128) budget * kinks[mid].den)
        hi_k = mid;
      else
        lo_k = mid;
    }

  /* Between kinks[lo_k] and kinks[hi_k] every entry is either saturated
   * at hi, still at lo, or rising with slope shares_i. */
  for (guint i = 0; i < n; i++)
    {
      if (ratio_le (e[i].hi, shares_of (&e[i]), kinks[lo_k]))
        c += e[i].hi;
      else if (!ratio_le (e[i].lo, shares_of (&e[i]), kinks[lo_k]))
        c += e[i].lo;
      else
        w += shares_of (&e[i]);
    }
  g_assert (w > 0 && c <= budget);
  rest = (u128) budget - c;     /* λ = rest / w */

  for (guint i = 0; i < n; i++)
    {
      u128 v = (u128) shares_of (&e[i]) * rest / w;

      e[i].alloc = v < e[i].lo ? e[i].lo : v > e[i].hi ? e[i].hi : (guint64) v;
    }
  return TRUE;
}
