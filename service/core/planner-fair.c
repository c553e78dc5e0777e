/* planner-fair.c: weighted max-min fairness by water-filling.
 *
 * f(λ) = Σ clamp (λ·s_i, lo_i, hi_i) is continuous, piecewise linear and
 * non-decreasing; its kinks are at lo_i/s_i and hi_i/s_i.  We find the
 * segment where f crosses the budget (selecting among the kinks, no sort)
 * and solve the linear piece there.  λ is a rational; all products fit in 128 bits
 * (sizes < 2^64, shares < 2^32, at most 2^32 entries).
 */
#define G_LOG_DOMAIN "memtide-planner"

#include "planner-fair.h"

__extension__ typedef unsigned __int128 u128;

typedef struct {
  guint64 num;
  guint64 den; /* shares, >= 1 */
} Ratio;

static guint64
shares_of (const MtFairEntry *e)
{
  return e->shares ? e->shares : 1;
}

static gboolean
ratio_lt (Ratio a, Ratio b)
{
  return (u128) a.num * b.den < (u128) b.num * a.den;
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
  g_autofree guint *open = NULL;
  g_autofree Ratio *kinks = NULL;
  u128 sum_lo = 0, sum_hi = 0, c = 0, w = 0, rest, fixed = 0, rising = 0;
  Ratio lo_r = { 0, 1 }, hi_r = { 1, 0 }; /* (L, R); 1/0 is +infinity */
  guint n_open = 0, m;

  g_return_val_if_fail (n == 0 || e != NULL, FALSE);

  for (guint i = 0; i < n; i++) {
    if (e[i].hi < e[i].lo)
      e[i].hi = e[i].lo;
    sum_lo += e[i].lo;
    sum_hi += e[i].hi;
  }
  if (sum_lo > budget || sum_hi <= budget) {
    gboolean fits = sum_lo <= budget;

    for (guint i = 0; i < n; i++)
      e[i].alloc = fits ? e[i].hi : e[i].lo;
    return fits;
  }

  /* The largest kink L where f is still within the budget, by a
   * quickselect on the kinks inside (L, R) (no sort).  Over (L, R) an
   * entry is at hi, at lo, rising (λ·s), or "open" (a kink inside):
   * only open entries are summed one by one, the others are kept as
   * two sums, so each round costs what is left open: O(n) expected.
   * An entry with lo == hi is constant and never open.  At λ = 0,
   * f = Σ lo <= budget. */
  open = g_new (guint, MAX (n, 1));
  kinks = g_new (Ratio, 2 * (gsize) MAX (n, 1));
  for (guint i = 0; i < n; i++)
    if (e[i].lo < e[i].hi)
      open[n_open++] = i;
    else
      fixed += e[i].lo;
  for (;;) {
    Ratio a, b, z, pivot;
    u128 f;
    guint k = 0;

    /* Settle what (L, R) decides, collect the kinks inside it. */
    m = 0;
    for (guint j = 0; j < n_open; j++) {
      const MtFairEntry *x = &e[open[j]];
      Ratio rlo = { x->lo, shares_of (x) }, rhi = { x->hi, shares_of (x) };
      gboolean lo_in = ratio_lt (lo_r, rlo) && ratio_lt (rlo, hi_r);
      gboolean hi_in = ratio_lt (lo_r, rhi) && ratio_lt (rhi, hi_r);

      if (!ratio_lt (lo_r, rhi))
        fixed += x->hi; /* hi/s <= L: saturated */
      else if (!ratio_lt (rlo, hi_r))
        fixed += x->lo; /* lo/s >= R: at lo */
      else if (!lo_in && !hi_in)
        rising += shares_of (x); /* lo/s <= L, hi/s >= R */
      else {
        if (lo_in)
          kinks[m++] = rlo;
        if (hi_in)
          kinks[m++] = rhi;
        open[k++] = open[j];
      }
    }
    n_open = k;
    if (m == 0)
      break;

    /* Median of three. */
    a = kinks[0];
    b = kinks[m / 2];
    z = kinks[m - 1];
    if (ratio_lt (b, a)) {
      Ratio t = a;
      a = b;
      b = t;
    }
    if (ratio_lt (z, b)) {
      b = z;
    }
    if (ratio_lt (b, a)) {
      b = a;
    }
    pivot = b;

    f = fixed * pivot.den + (u128) pivot.num * rising;
    for (guint j = 0; j < n_open; j++) {
      const MtFairEntry *x = &e[open[j]];
      u128 v = (u128) pivot.num * shares_of (x);
      u128 l = (u128) x->lo * pivot.den;
      u128 h = (u128) x->hi * pivot.den;

      f += v < l ? l : v > h ? h : v;
    }
    if (f <= (u128) budget * pivot.den)
      lo_r = pivot;
    else
      hi_r = pivot;
  }

  /* Between L and the next kink every entry is either saturated
   * at hi, still at lo, or rising with slope shares_i. */
  for (guint i = 0; i < n; i++) {
    if (ratio_le (e[i].hi, shares_of (&e[i]), lo_r))
      c += e[i].hi;
    else if (!ratio_le (e[i].lo, shares_of (&e[i]), lo_r))
      c += e[i].lo;
    else
      w += shares_of (&e[i]);
  }
  g_assert (w > 0 && c <= budget);
  rest = (u128) budget - c; /* λ = rest / w */

  for (guint i = 0; i < n; i++) {
    u128 v = (u128) shares_of (&e[i]) * rest / w;

    e[i].alloc = v < e[i].lo ? e[i].lo : v > e[i].hi ? e[i].hi : (guint64) v;
  }
  return TRUE;
}
