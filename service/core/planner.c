/* planner.c: one plan for the whole host.
 *
 * Per VM (planner-vm.c): follow-up on the last action, headroom feedback,
 * need and bounds.  Here: the budget, the fair split when the host is
 * short, this tick's step for each VM (hysteresis, shrink delays and
 * rate limit, grows only from memory free now) and the actions with
 * their reasons.
 */
#define G_LOG_DOMAIN "memtide-planner"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include "host.h"
#include "planner-fair.h"
#include "planner-private.h"

typedef struct {
  MtPlanCtx ctx;
  MtPlan *plan;
  MtVmEval *ev;
  guint n;
  GArray *actions;   /* MtAction */
  guint64 free_left; /* for this tick's grows, MT_UNKNOWN = unknown */
} Planner;

const char *
mt_action_kind_to_string (MtActionKind k)
{
  switch (k) {
  case MT_ACTION_SHRINK:
    return "shrink";
  case MT_ACTION_GROW:
    return "grow";
  case MT_ACTION_CANCEL:
    return "cancel";
  default:
    return "invalid";
  }
}

const char *
mt_decision_kind_to_string (MtDecisionKind k)
{
  static const char *const names[] = {
    [MT_DECISION_HOLD] = "hold", [MT_DECISION_SHRINK] = "shrink", [MT_DECISION_GROW] = "grow",
    [MT_DECISION_WAIT] = "wait", [MT_DECISION_SKIP] = "skip",     [MT_DECISION_STUCK] = "stuck",
  };

  if ((guint) k >= G_N_ELEMENTS (names))
    return "invalid";
  return names[k];
}

/* ---- text ------------------------------------------------------------- */

/* Byte by byte into the buffer: reasons are short, and calls to
 * strlen() and memcpy() for a few bytes each cost more than the copy. */
static char *
text_put (char *out, const char *end, const char *s)
{
  while (*s && out < end)
    *out++ = *s++;
  return out;
}

static char *
text_uint (char *out, const char *end, guint64 v, gboolean negative)
{
  char d[24];
  guint n = 0;

  do {
    d[n++] = (char) ('0' + v % 10);
    v /= 10;
  } while (v > 0);
  if (negative && out < end)
    *out++ = '-';
  while (n > 0 && out < end)
    *out++ = d[--n];
  return out;
}

void
mt_text_append (MtText *t, const char *s)
{
  char *out = text_put (t->buf + t->len, t->buf + MT_TEXT_MAX - 1, s);

  *out = '\0';
  t->len = (gsize) (out - t->buf);
}

/* The conversions reasons use: %s %c %d %i %u with h/l/ll/z, %% and %.Nf;
 * anything else goes to g_vsnprintf.  %.0f is rint(), as printf rounds. */
void
mt_text_vprintf (MtText *t, const char *fmt, va_list ap)
{
  const char *end = t->buf + MT_TEXT_MAX - 1;
  char *out = t->buf + t->len;
  const char *p = fmt;
  va_list ap0;

  va_copy (ap0, ap);
  while (*p) {
    int prec = -1, lng = 0;

    if (*p != '%') {
      if (out < end)
        *out++ = *p;
      p++;
      continue;
    }
    p++;
    if (*p == '.') {
      prec = 0;
      for (p++; *p >= '0' && *p <= '9'; p++)
        prec = prec * 10 + (*p - '0');
    }
    for (; *p == 'l' || *p == 'z' || *p == 'h'; p++)
      lng += *p == 'h' ? 0 : (*p == 'z' ? 2 : 1);
    if (*p == '%' && prec < 0 && lng == 0) {
      if (out < end)
        *out++ = '%';
    } else if (*p == 's' && prec < 0) {
      const char *v = va_arg (ap, const char *);

      out = text_put (out, end, v != NULL ? v : "(null)");
    } else if (*p == 'c' && prec < 0 && lng == 0) {
      char ch = (char) va_arg (ap, int);

      if (out < end)
        *out++ = ch;
    } else if (*p == 'u' && prec < 0)
      out = text_uint (out, end,
                       lng >= 2   ? (guint64) va_arg (ap, unsigned long long)
                       : lng == 1 ? (guint64) va_arg (ap, unsigned long)
                                  : (guint64) va_arg (ap, unsigned int),
                       FALSE);
    else if ((*p == 'd' || *p == 'i') && prec < 0) {
      gint64 v = lng >= 2   ? (gint64) va_arg (ap, long long)
                 : lng == 1 ? (gint64) va_arg (ap, long)
                            : (gint64) va_arg (ap, int);

      out = text_uint (out, end, v < 0 ? (guint64) 0 - (guint64) v : (guint64) v, v < 0);
    } else if (*p == 'f' && lng == 0) {
      double v = va_arg (ap, double);

      if (prec == 0 && isfinite (v) && fabs (v) < 1e15) {
        double r = rint (v);

        out = text_uint (out, end, (guint64) fabs (r), signbit (r) != 0);
      } else {
        char b[64];

        g_snprintf (b, sizeof b, "%.*f", prec < 0 ? 6 : prec, v);
        out = text_put (out, end, b);
      }
    } else {
      char b[MT_TEXT_MAX];

      /* Not ours: let the C library do the whole line. */
      g_vsnprintf (b, sizeof b, fmt, ap0);
      out = text_put (t->buf + t->len, end, b);
      break;
    }
    p++;
  }
  *out = '\0';
  t->len = (gsize) (out - t->buf);
  va_end (ap0);
}

void
mt_text_printf (MtText *t, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  mt_text_vprintf (t, fmt, ap);
  va_end (ap);
}

void
mt_plan_free (MtPlan *plan)
{
  if (plan == NULL)
    return;
  for (guint i = 0; i < plan->n_actions; i++)
    g_free (plan->actions[i].reason);
  g_free (plan->actions);
  g_free (plan->decisions);
  g_free (plan->reason);
  g_free (plan);
}

static double
secs (gint64 us)
{
  return (double) us / G_USEC_PER_SEC;
}

/* ---- reasons -------------------------------------------------------------
 * A plan records why in numbers (MtVmReason); the text is made only when
 * someone reads it: the daemon logs actions and answers Explain, and
 * nobody reads 10,000 "hold" lines every second. */

static void
format_mechanism (MtText *t, const MtVmReason *w)
{
  char a[MT_FORMAT_BYTES_LEN], b[MT_FORMAT_BYTES_LEN];

  mt_text_append (t, " [");
  if (w->flags & MT_WHY_SET_VMEM)
    mt_text_printf (t, "virtio-mem %s -> %s", mt_plan_sz (a, w->size[2]),
                    mt_plan_sz (b, w->size[3]));
  if ((w->flags & MT_WHY_SET_VMEM) && (w->flags & MT_WHY_SET_BALLOON))
    mt_text_append (t, ", ");
  if (w->flags & MT_WHY_SET_BALLOON)
    mt_text_printf (t, "balloon %s -> %s", mt_plan_sz (a, w->size[4]), mt_plan_sz (b, w->size[5]));
  mt_text_append (t, "]");
}

static void
format_head (MtText *t, const MtVmDecision *d)
{
  const MtVmReason *w = &d->why;
  char c[MT_FORMAT_BYTES_LEN], a[MT_FORMAT_BYTES_LEN], b[MT_FORMAT_BYTES_LEN];
  const char *cur = mt_plan_sz (c, d->current);

  switch (w->head) {
  case MT_WHY_HOLD:
    mt_text_printf (t, "hold at %s", cur);
    break;
  case MT_WHY_HOLD_HYSTERESIS:
    mt_text_printf (t, "hold at %s: target %s is within %s (hysteresis)", cur,
                    mt_plan_sz (a, d->target), mt_plan_sz (b, w->size[0]));
    break;
  case MT_WHY_WAIT_SHRINKING:
    mt_text_printf (t, "wait at %s: the guest is still shrinking to %s (asked %.0f s ago)", cur,
                    mt_plan_sz (a, w->size[0]), secs (w->us[0]));
    break;
  case MT_WHY_WAIT_DIP:
    mt_text_printf (t, "wait at %s: shrink to %s once wanted for %.0f s (%.0f s so far)", cur,
                    mt_plan_sz (a, d->target), secs (w->us[0]), secs (w->us[1]));
    break;
  case MT_WHY_WAIT_SETTLE:
    mt_text_printf (t, "wait at %s: shrink to %s after the last action settles (%.0f s ago)", cur,
                    mt_plan_sz (a, d->target), secs (w->us[0]));
    break;
  case MT_WHY_WAIT_PACED:
    mt_text_printf (t, "wait at %s: shrink to %s is paced at %s/s", cur, mt_plan_sz (a, d->target),
                    mt_plan_sz (b, w->size[0]));
    break;
  case MT_WHY_WAIT_FREE:
    mt_text_printf (t, "wait at %s: grow to %s when the host has memory free (free now %s)", cur,
                    mt_plan_sz (a, d->target), mt_plan_sz (b, w->size[0]));
    break;
  case MT_WHY_WAIT_HOST:
    mt_text_printf (t,
                    "wait at %s: grow to %s when the host's free memory is known (host memory "
                    "cannot be read now and the policy sets no budget)",
                    cur, mt_plan_sz (a, d->target));
    break;
  case MT_WHY_WAIT_GROWING:
    mt_text_printf (t, "wait at %s: the guest is still growing to %s (asked %.0f s ago)", cur,
                    mt_plan_sz (a, w->size[0]), secs (w->us[0]));
    break;
  case MT_WHY_WAIT_UNPLUG:
    mt_text_printf (t,
                    "wait at %s: a virtio-mem unplug memtided did not ask for is under way "
                    "(plugged %s, requested %s)",
                    cur, mt_plan_sz (a, w->size[0]), mt_plan_sz (b, w->size[1]));
    break;
  case MT_WHY_WAIT_BEHIND:
    mt_text_printf (t,
                    "wait at %s: the guest still counts MemTotal %s, more than its size: its "
                    "numbers are older than its last shrink",
                    cur, mt_plan_sz (a, w->size[0]));
    break;
  case MT_WHY_CANCEL:
    mt_text_printf (t, "cancel the stalled virtio-mem unplug at %s", cur);
    format_mechanism (t, w);
    break;
  case MT_WHY_RESIZE:
    mt_text_printf (t, "%s%s %s -> %s", (w->flags & MT_WHY_EMERGENCY) ? "emergency " : "",
                    (w->flags & MT_WHY_GROW) ? "grow" : "shrink", cur, mt_plan_sz (a, w->size[0]));
    if (w->size[0] != d->target) {
      mt_text_printf (t, " (toward %s", mt_plan_sz (a, d->target));
      if (w->limit == MT_WHY_LIMIT_RATE)
        mt_text_printf (t, ", rate limit %s/s", mt_plan_sz (b, w->size[1]));
      else if (w->limit == MT_WHY_LIMIT_FREE)
        mt_text_printf (t, ", host free %s", mt_plan_sz (b, w->size[1]));
      mt_text_append (t, ")");
    }
    format_mechanism (t, w);
    break;
  case MT_WHY_NO_SIZE:
    mt_text_append (t, "left alone: the hypervisor reported no size yet");
    break;
  case MT_WHY_NO_POLICY:
    mt_text_printf (t, "left alone at %s: no policy or domain configuration", cur);
    break;
  case MT_WHY_NO_VMEM:
    mt_text_printf (
      t, "left alone at %s: policy says virtio-mem but the domain has no usable device", cur);
    break;
  case MT_WHY_NO_SAMPLES:
    mt_text_printf (t, "left alone at %s: no samples yet", cur);
    break;
  case MT_WHY_STALE:
    mt_text_printf (t, "left alone at %s: guest stats are %.0f s old", cur, secs (w->us[0]));
    break;
  case MT_WHY_NO_STATS:
    mt_text_printf (
      t, "left alone at %s: no guest memory stats yet (no agent report, no balloon stats)", cur);
    break;
  case MT_WHY_OBSERVED:
    mt_text_printf (t, "observed only (mechanism none) at %s: working set %s + headroom %s", cur,
                    mt_plan_sz (a, d->working_set), mt_plan_sz (b, d->headroom));
    break;
  case MT_WHY_STUCK: {
    char stuck[MT_STUCK_REASON_LEN];

    mt_text_printf (t, "stuck for %.0f s: %s; held at %s", secs (w->us[0]),
                    mt_vm_control_stuck_reason (&d->next, stuck), cur);
    if (d->next.call_since != MT_TIME_NEVER)
      mt_text_append (t, " until its resize call returns");
    else
      mt_text_printf (t, ", retry in %.0f s", secs (w->us[1]));
  } break;
  case MT_WHY_IN_FLIGHT:
    mt_text_printf (t,
                    "wait at %s: the resize call toward %s has not returned (in flight %.0f s); "
                    "no other call until it does",
                    cur, mt_plan_sz (a, w->size[0]), secs (w->us[0]));
    break;
  default:
    mt_text_append (t, mt_decision_kind_to_string (d->kind));
    break;
  }
}

/* Why this VM wants what it wants: "idle 400 MiB, working set 480 MiB +
 * headroom 128 MiB, ...". */
static void
format_explanation (MtText *t, const MtVmDecision *d)
{
  const MtVmReason *w = &d->why;
  char a[MT_FORMAT_BYTES_LEN], b[MT_FORMAT_BYTES_LEN];

  if (w->flags & MT_WHY_IDLE)
    mt_text_printf (t, "idle %s, ", mt_plan_sz (a, d->idle));
  mt_text_printf (t, "working set %s + headroom %s", mt_plan_sz (a, d->working_set),
                  mt_plan_sz (b, d->headroom));
  if (w->flags & MT_WHY_RISE_FLOOR)
    mt_text_append (t, " (its largest rise of the last hour)");
  else if (w->flags & MT_WHY_BURST)
    mt_text_append (t, " (held for a recent rise)");
  if (w->flags & MT_WHY_SWAPPED)
    mt_text_printf (t, " (swapped %s)", mt_plan_sz (a, w->swapped));
  if (w->flags & MT_WHY_RISING)
    mt_text_printf (t, " + %s as it rises", mt_plan_sz (a, w->rise));
  if (w->flags & MT_WHY_OOM)
    mt_text_printf (t, ", %" G_GUINT64_FORMAT " OOM kill(s)", w->oom_kills);
  if (w->flags & MT_WHY_AVAIL_LOW)
    mt_text_printf (t, ", available only %s", mt_plan_sz (a, w->available));
  if (w->flags & MT_WHY_PRESSURED)
    mt_text_printf (t, ", pressure %.1f%% > target %.1f%%", w->psi, w->psi_target);
  if (w->flags & MT_WHY_SWAP_HIGH)
    mt_text_printf (t, ", swap-in %s/s", mt_plan_sz (a, w->swap_in_rate));
  if (w->flags & MT_WHY_FAULTS_HIGH)
    mt_text_printf (t, ", %.0f major faults/s", w->fault_rate);
  if (w->flags & MT_WHY_OVER_BUDGET)
    mt_text_printf (t, ", stalled %.2f%%, over its stall budget: not shrunk", (double) w->stall);
  if (w->flags & MT_WHY_CAPPED)
    mt_text_printf (t, ", capped at max %s", mt_plan_sz (a, d->max));
  if (w->flags & MT_WHY_KEPT_DOMAIN)
    mt_text_printf (t, ", kept at %s (the least the domain can reach)", mt_plan_sz (a, d->min));
  if ((w->flags & MT_WHY_HINT_KEPT) && !(w->flags & MT_WHY_HINT_LIMIT))
    mt_text_printf (t, ", %s of it stays plugged by the guest's block hint",
                    mt_plan_sz (a, w->hint[3]));
  else if (w->flags & MT_WHY_KEPT_MIN)
    mt_text_printf (t, ", kept at min %s", mt_plan_sz (a, d->min));
  if (w->flags & MT_WHY_SHORT) {
    mt_text_printf (t, ", host short by %s", mt_plan_sz (a, w->short_by));
    if (w->flags & MT_WHY_FAIR)
      mt_text_printf (t, ", fair share %s (shares %u)", mt_plan_sz (a, d->target), w->shares);
  }
}

static void
format_notes (MtText *t, const MtVmReason *w)
{
  char a[MT_FORMAT_BYTES_LEN], b[MT_FORMAT_BYTES_LEN], c[MT_FORMAT_BYTES_LEN];

  if (w->flags & MT_WHY_HINT_LIMIT) {
    if (w->hint[2] > 0)
      mt_text_printf (t, "; virtio-mem unplugs only %s", mt_plan_sz (a, w->hint[2]));
    else
      mt_text_append (t, "; virtio-mem unplugs nothing");
    mt_text_printf (t,
                    ": the guest's block hint says %s can be given back, less a margin of %s; "
                    "the balloon takes the rest",
                    mt_plan_sz (b, w->hint[0]), mt_plan_sz (c, w->hint[1]));
  }
  if (w->flags & MT_WHY_NOTE_REACHED)
    mt_text_printf (t, "; no longer stuck: reached %s", mt_plan_sz (a, w->note_size[0]));
  if (w->flags & MT_WHY_NOTE_MOVES)
    mt_text_printf (t, "; no longer stuck: moves toward %s again", mt_plan_sz (a, w->note_size[0]));
  if (w->flags & MT_WHY_NOTE_VMEM_RETRY)
    mt_text_append (t, "; virtio-mem unplug may be tried again");
  if (w->flags & MT_WHY_NOTE_STALL)
    mt_text_printf (t,
                    "; virtio-mem unplug stalled at %s (requested %s) for %.0f s: cancel it, the "
                    "balloon takes the rest",
                    mt_plan_sz (a, w->note_size[1]), mt_plan_sz (b, w->note_size[2]),
                    secs (w->note_us));
  if (w->flags & MT_WHY_NOTE_RETRYING)
    mt_text_printf (t, "; retrying after being stuck %.0f s", secs (w->note_us));
}

static void
format_reason (MtText *t, const MtVmDecision *d)
{
  format_head (t, d);
  if (d->why.head < MT_WHY_FIXED_FIRST) {
    mt_text_append (t, ": ");
    format_explanation (t, d);
  }
  format_notes (t, &d->why);
}

char *
mt_vm_decision_format_reason (const MtVmDecision *d)
{
  MtText t;

  g_return_val_if_fail (d != NULL, NULL);
  mt_text_init (&t);
  format_reason (&t, d);
  return g_strndup (t.buf, t.len);
}

/* The numbers behind the explanation; the head comes from decide(). */
static void
record_explanation (Planner *pl, const MtVmEval *ev, MtVmReason *w)
{
  const MtVmDerived *o = &ev->in->obs;
  const MtVmPolicy *p = ev->in->policy;

  w->flags |= (ev->idle != MT_UNKNOWN ? MT_WHY_IDLE : 0) | (ev->swapped > 0 ? MT_WHY_SWAPPED : 0)
              | (ev->rise > 0 ? MT_WHY_RISING : 0) | (ev->burst > 0 ? MT_WHY_BURST : 0)
              | (ev->oom ? MT_WHY_OOM : 0) | (ev->avail_low ? MT_WHY_AVAIL_LOW : 0)
              | (ev->pressured ? MT_WHY_PRESSURED : 0) | (ev->swap_high ? MT_WHY_SWAP_HIGH : 0)
              | (ev->faults_high ? MT_WHY_FAULTS_HIGH : 0)
              | (ev->need > ev->hi && ev->want == ev->hi ? MT_WHY_CAPPED : 0)
              | (ev->need < ev->lo ? (ev->lo > ev->pmin ? MT_WHY_KEPT_DOMAIN : MT_WHY_KEPT_MIN) : 0)
              | (pl->plan->host_short ? MT_WHY_SHORT : 0)
              | (pl->plan->host_short && ev->target < ev->want ? MT_WHY_FAIR : 0)
              | (ev->rise_applied ? MT_WHY_RISE_FLOOR : 0);
  /* The hint raised the least the domain can reach. */
  w->hint[3] = mt_layout_hint_floor (&ev->lay, &w->hint[2], &w->hint[1]);
  w->hint[0] = ev->lay.unpluggable;
  if (w->hint[3] > 0 && (w->flags & MT_WHY_KEPT_DOMAIN))
    w->flags |= MT_WHY_HINT_KEPT;
  w->swapped = ev->swapped;
  w->rise = ev->rise;
  w->oom_kills = o->oom_kills_new;
  w->available = o->available;
  w->psi = o->psi_some;
  w->psi_target = p->pressure_target;
  w->swap_in_rate = mt_sat_from_double (o->swap_in_rate);
  w->fault_rate = o->major_fault_rate;
  w->short_by = pl->plan->short_by;
  w->shares = MAX (p->shares, 1u);
}

/* The decision's kind and the sentence its reason starts with. */
static MtVmReason *
decide (Planner *pl, guint i, MtDecisionKind kind, guint head)
{
  MtVmDecision *d = &pl->plan->decisions[i];

  d->kind = kind;
  d->why.head = (guint8) head;
  return &d->why;
}

/* ---- budget and the fair split ----------------------------------------- */

static void
budget (Planner *pl, const MtHostSample *host)
{
  MtPlan *plan = pl->plan;
  const MtHostPolicy *hp = pl->ctx.hp;
  guint64 rss = 0, free_phys = MT_UNKNOWN;
  g_autofree char *why = NULL;
  char held[MT_FORMAT_BYTES_LEN], wanted[MT_FORMAT_BYTES_LEN];
  char free_now[MT_FORMAT_BYTES_LEN], short_by[MT_FORMAT_BYTES_LEN];

  plan->committed = 0;
  plan->demand = 0;
  for (guint i = 0; i < pl->n; i++) {
    const MtVmEval *ev = &pl->ev[i];
    guint64 r = ev->in->obs.rss;

    plan->committed = mt_sat_add (plan->committed, ev->committed);
    /* QEMU's own memory is in its RSS but is no guest memory. */
    if (r != MT_UNKNOWN)
      rss = mt_sat_add (rss, MIN (r, ev->committed));
    plan->demand = mt_sat_add (plan->demand, ev->fixed ? ev->committed : ev->want);
  }

  if (hp->budget > 0 || (host != NULL && host->mem_available != MT_UNKNOWN))
    plan->budget = mt_host_budget (host, hp, rss, &why);
  else
    plan->budget = MT_UNKNOWN;

  if (host != NULL && host->mem_available != MT_UNKNOWN)
    free_phys = mt_sat_sub (host->mem_available, hp->reserve);
  if (host != NULL && host->cgroup_limit != MT_UNKNOWN && host->cgroup_usage != MT_UNKNOWN)
    free_phys = MIN (free_phys, mt_sat_sub (host->cgroup_limit, host->cgroup_usage));
  /* Free now is what no VM holds or was promised, and physically free. */
  plan->free_now = free_phys;
  if (plan->budget != MT_UNKNOWN)
    plan->free_now = MIN (free_phys, mt_sat_sub (plan->budget, plan->committed));
  pl->free_left = plan->free_now;

  plan->host_short = plan->budget != MT_UNKNOWN && plan->demand > plan->budget;
  plan->short_by = plan->host_short ? plan->demand - plan->budget : 0;

  plan->reason =
    g_strdup_printf ("%s; VMs hold %s, want %s, free now %s%s%s", why ? why : "budget unknown",
                     mt_plan_sz (held, plan->committed), mt_plan_sz (wanted, plan->demand),
                     mt_plan_sz (free_now, plan->free_now), plan->host_short ? ": short by " : "",
                     plan->host_short ? mt_plan_sz (short_by, plan->short_by) : "");
}

/* VMs within their stall budget keep room for their largest recent rise
 * only while the host has room besides for the largest of those rises
 * to come anywhere: held where it is not needed, that room would keep
 * the VM the rise does come to waiting for memory others give back at
 * max-shrink-rate. */
static gboolean
rise_floors_crowd (Planner *pl)
{
  guint64 largest = 0;
  gboolean any = FALSE;

  for (guint i = 0; i < pl->n; i++) {
    const MtVmEval *ev = &pl->ev[i];

    if (ev->fixed || !ev->rise_applied || ev->over_budget)
      continue;
    any = TRUE;
    largest = MAX (largest, ev->rise_floor);
  }
  return any && pl->plan->budget != MT_UNKNOWN
         && mt_sat_add (pl->plan->demand, largest) > pl->plan->budget;
}

/* Idle memory is taxed first.  Tier 0 keeps every VM's need but the
 * headroom held for a recent rise (a guess) and splits that; tier 1
 * keeps every working set and splits the headroom; only when even the
 * working sets do not fit does tier 2 cut into them, down to each VM's
 * floor. */
static void
split (Planner *pl)
{
  MtPlan *plan = pl->plan;
  g_autofree MtFairEntry *e = g_new0 (MtFairEntry, MAX (pl->n, 1));
  g_autofree guint *idx = g_new0 (guint, MAX (pl->n, 1));
  guint64 fixed = 0, avail;
  guint m = 0;

  for (guint i = 0; i < pl->n; i++) {
    MtVmEval *ev = &pl->ev[i];

    if (ev->fixed) {
      fixed = mt_sat_add (fixed, ev->committed);
      ev->target = ev->cur;
      continue;
    }
    ev->target = ev->want;
    e[m] = (MtFairEntry){ ev->tier0_lo, ev->want, ev->in->policy->shares, 0 };
    idx[m++] = i;
  }
  if (!plan->host_short)
    return;

  avail = mt_sat_sub (plan->budget, fixed);
  for (guint tier = 0; tier < 3; tier++) {
    if (tier > 0)
      for (guint k = 0; k < m; k++) {
        const MtVmEval *ev = &pl->ev[idx[k]];

        e[k] = tier == 1 ? (MtFairEntry){ ev->tier1_lo, ev->tier0_lo, ev->in->policy->shares, 0 }
                         : (MtFairEntry){ ev->floor, ev->tier1_lo, ev->in->policy->shares, 0 };
      }
    if (mt_fair_split (e, m, avail) || tier == 2)
      break;
  }
  for (guint k = 0; k < m; k++) {
    MtVmEval *ev = &pl->ev[idx[k]];

    /* Rounding down onto the lattice keeps the sum within budget; lo
       * bounds are on the lattice, so the result stays >= floor. */
    ev->target = MAX (mt_layout_snap_down (e[k].alloc, ev->granule, ev->offset), ev->floor);
  }
}

/* ---- actions ------------------------------------------------------------ */

static void
add_action (Planner *pl, guint i, MtActionKind kind, const MtLayout *l, gboolean emergency,
            guint limit, guint64 limit_value)
{
  MtVmEval *ev = &pl->ev[i];
  MtVmDecision *d = &pl->plan->decisions[i];
  MtPlanCtx *ctx = &pl->ctx;
  MtVmReason *w;
  MtText line;
  MtAction a = {
    .vm = i,
    .kind = kind,
    .emergency = emergency,
    .from = ev->cur,
    .to = l->size,
    .set_vmem = l->set_vmem,
    .vmem_requested = l->vmem_requested,
    .set_balloon = l->set_balloon,
    .balloon = l->balloon,
  };

  if (kind == MT_ACTION_CANCEL)
    w = decide (pl, i, MT_DECISION_HOLD, MT_WHY_CANCEL);
  else
    w =
      decide (pl, i, kind == MT_ACTION_GROW ? MT_DECISION_GROW : MT_DECISION_SHRINK, MT_WHY_RESIZE);
  w->limit = (guint8) limit;
  w->flags &= ~(guint32) (MT_WHY_EMERGENCY | MT_WHY_GROW | MT_WHY_SET_VMEM | MT_WHY_SET_BALLOON
                          | MT_WHY_HINT_LIMIT);
  w->flags |= (emergency ? MT_WHY_EMERGENCY : 0) | (kind == MT_ACTION_GROW ? MT_WHY_GROW : 0)
              | (l->set_vmem ? MT_WHY_SET_VMEM : 0) | (l->set_balloon ? MT_WHY_SET_BALLOON : 0)
              | (l->hint_limited ? MT_WHY_HINT_LIMIT : 0);
  if (l->hint_limited) {
    w->hint[3] = mt_layout_hint_floor (&ev->lay, &w->hint[2], &w->hint[1]);
    w->hint[0] = ev->lay.unpluggable;
  }
  w->size[0] = l->size;
  w->size[1] = limit_value;
  w->size[2] = ev->lay.requested;
  w->size[3] = l->vmem_requested;
  w->size[4] = ev->lay.balloon;
  w->size[5] = l->balloon;

  /* Actions are few and always logged: their reason is made now. */
  mt_text_init (&line);
  if (ev->name != NULL)
    mt_text_printf (&line, "%s: ", ev->name);
  else
    mt_text_printf (&line, "vm%u: ", ev->index);
  format_reason (&line, d);
  a.reason = g_strndup (line.buf, line.len);
  d->action = (gint) pl->actions->len;
  d->step = l->size;
  g_array_append_val (pl->actions, a);

  if (pl->ctx.hp->dry_run)
    return;
  ev->next->last_action = ctx->now;
  if (kind == MT_ACTION_CANCEL) {
    ev->next->pending = FALSE;
    return;
  }
  ev->next->pending = TRUE;
  ev->next->last_from = ev->cur;
  ev->next->last_target = l->size;
  ev->next->best_distance = ev->cur > l->size ? ev->cur - l->size : l->size - ev->cur;
  ev->next->progress_time = ctx->now;
}

/* memtided has just adopted the VM (its first plan for it, after a
 * restart or when the VM appeared, was less than stuck-timeout ago):
 * what the VM is in the middle of, memtided did not ask for. */
static gboolean
adopting (const MtPlanCtx *ctx, const MtVmEval *ev)
{
  return mt_elapsed (ctx->now, ev->next->first_seen) < ctx->stuck_timeout;
}

/* Shrinks free memory only later (the guest must give it back), so they
 * go first and are paced; their memory is for the next tick's grows. */
static void
plan_shrink (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtPlanCtx *ctx = &pl->ctx;
  const MtHostPolicy *hp = ctx->hp;
  gint64 settle = MT_PLAN_SETTLE_TICKS * ctx->tick;
  gint64 hold = MT_PLAN_SHRINK_HOLD_TICKS * ctx->tick;
  gint64 wanted, since_act;
  guint64 step = ev->target, allowed;
  guint limit = MT_WHY_LIMIT_NONE;
  MtVmReason *w;
  MtLayout l;

  if (ev->next->shrink_since == MT_TIME_NEVER)
    ev->next->shrink_since = ctx->now;
  wanted = mt_elapsed (ctx->now, ev->next->shrink_since);
  since_act = mt_elapsed (ctx->now, ev->next->last_action);

  /* One shrink at a time: asking for more while the guest still works
   * on the last one would hide that it does not follow (stuck).  Asking
   * for less is fine once it is worth a request: an idle guest's target
   * moves a MiB or two with its working set, and each wiggle would be a
   * new request while the balloon still inflates. */
  if (ev->next->pending && ev->next->last_target < ev->cur) {
    if (ev->target <= ev->next->last_target
        || ev->target - ev->next->last_target < hp->min_change) {
      w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_SHRINKING);
      w->size[0] = ev->next->last_target;
      w->us[0] = mt_elapsed (ctx->now, ev->next->last_action);
      return;
    }
    mt_layout_plan (&ev->lay, ev->target, &l);
    if (l.size < ev->cur && ev->cur - l.size >= hp->min_change && l.size != ev->next->last_target) {
      add_action (pl, i, MT_ACTION_SHRINK, &l, FALSE, MT_WHY_LIMIT_NONE, 0);
      return;
    }
  }
  /* A dip must last before memory is taken, unless others need it now. */
  if (!pl->plan->host_short && wanted < hold) {
    w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_DIP);
    w->us[0] = hold;
    w->us[1] = wanted;
    return;
  }
  if (since_act < settle) {
    w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_SETTLE);
    w->us[0] = since_act;
    return;
  }
  if (hp->max_shrink_rate > 0) {
    gint64 cap = MAX (
      2 * settle, (gint64) MIN ((double) G_MAXINT64 / 2, (double) hp->min_change * G_USEC_PER_SEC
                                                           / (double) hp->max_shrink_rate));

    allowed = mt_sat_from_double ((double) hp->max_shrink_rate * secs (MIN (since_act, cap)));
    if (mt_sat_sub (ev->cur, allowed) > step) {
      step = mt_layout_snap_up (ev->cur - allowed, ev->granule, ev->offset);
      limit = MT_WHY_LIMIT_RATE;
    }
  }
  mt_layout_plan (&ev->lay, step, &l);
  if (l.size >= ev->cur || ev->cur - l.size < hp->min_change) {
    w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_PACED);
    w->size[0] = hp->max_shrink_rate;
    return;
  }
  add_action (pl, i, MT_ACTION_SHRINK, &l, FALSE, limit, hp->max_shrink_rate);
}

/* Grows take only memory free right now; what others are still giving
 * back is for a later tick.  Emergencies go first and skip hysteresis. */
static void
plan_grow (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtPlanCtx *ctx = &pl->ctx;
  /* A pending grow's memory is already counted as taken. */
  guint64 base = MAX (ev->cur, ev->committed);
  guint64 extra = mt_sat_sub (ev->target, base), grant, goal;
  guint limit = MT_WHY_LIMIT_NONE;
  guint64 free_before = pl->free_left;
  MtVmReason *w;
  MtLayout l = { 0 };

  /* MemTotal is always below the size (the guest kernel keeps a
   * reserve), so a guest counting more has not caught up with a shrink
   * yet: as a virtio-mem unplug ends, the free pages it isolated count
   * as used until the guest reports the smaller MemTotal (seen on real
   * guests: a restarted memtided grew a guest on such a report and
   * shrank it back 4 s later).  Its next report settles it.  Only while
   * memtided has just adopted the VM (adopting()): a grow on its way to
   * a VM it has watched for long waits for no report (in bench/sim the
   * wait cost the web scenario a second of stalls and two short
   * episodes, and saved nothing). */
  if (!ev->emergency && adopting (ctx, ev) && ev->in->obs.total != MT_UNKNOWN
      && ev->in->obs.total > ev->cur) {
    w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_BEHIND);
    w->size[0] = ev->in->obs.total;
    return;
  }
  /* Free memory unknown: the host cannot be read (/proc/meminfo, e.g.
   * with every descriptor in use) and the policy sets no budget.
   * Nothing grows then, not even in an emergency: an emergency is the
   * guest's own claim (its PSI, its MemAvailable), and granting it on
   * that alone let ten guests claiming emergencies grow 2.5 GiB past
   * the host's budget.  A guest short of memory meets its own OOM
   * killer; a host short of memory kills every guest.  No cap from an
   * older reading either: a budget from a MemAvailable that no longer
   * falls as the VMs take memory grants the same memory plan after
   * plan.  The hold ends with the first plan that has a host reading
   * (every tick tries). */
  if (pl->free_left == MT_UNKNOWN) {
    decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_HOST);
    return;
  }
  grant = MIN (extra, pl->free_left);
  if (grant < extra)
    limit = MT_WHY_LIMIT_FREE;
  goal = mt_layout_snap_down (MIN (base + grant, ev->target), ev->granule, ev->offset);
  if (goal > ev->cur)
    mt_layout_plan (&ev->lay, goal, &l);
  /* A step below min-change is worth a request only when it gives the
   * VM all it wants or the guest is out of memory; otherwise a host
   * with a few MiB free (or a fair share a few MiB up) sees a storm of
   * tiny grows.  The memory the shrinks asked for comes next tick. */
  if (goal <= ev->cur || l.size <= ev->cur || l.size > goal
      || (l.size - ev->cur < ctx->hp->min_change && l.size < ev->want && !ev->oom && !ev->avail_low)
      || (!ev->emergency && l.size - ev->cur < ctx->hp->min_change)) {
    w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_FREE);
    w->size[0] = pl->free_left;
    return;
  }
  /* A grow on its way is not cut short nor asked again a few MiB
   * larger: the guest is busy taking the memory, a new request makes it
   * start over (and a target below the last one takes back what a
   * rising working set is about to need).  The shrink path gives back
   * what turns out too much once it landed.  A short host may cut it:
   * others need the memory. */
  if (ev->next->pending && ev->next->last_target > ev->cur
      && (l.size == ev->next->last_target
          || (!pl->plan->host_short
              && l.size < mt_sat_add (ev->next->last_target, ctx->hp->min_change)))) {
    w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_GROWING);
    w->size[0] = l.size;
    w->us[0] = mt_elapsed (ctx->now, ev->next->last_action);
    return;
  }
  pl->free_left -= mt_sat_sub (l.size, base);
  add_action (pl, i, MT_ACTION_GROW, &l, ev->emergency, limit, free_before);
}

/* A virtio-mem unplug memtided found under way when it first saw the
 * VM (a restarted memtided, killed in the middle of it): the guest is
 * isolating the memory it gives back, which reads as used, so the
 * working set is not known until it is over.  An unplug memtided asked
 * for itself is pending, and judged by track_vmem(); a stalled one is
 * the stall fallback's. */
static gboolean
foreign_unplug (const MtPlanCtx *ctx, const MtVmEval *ev)
{
  const MtVmControl *c = ev->next;

  return adopting (ctx, ev) && ev->lay.plugged > ev->lay.requested && !c->pending
         && !c->vmem_stalled;
}

/* Hysteresis first; returns TRUE when the VM wants to grow. */
static gboolean
plan_step (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtPlanCtx *ctx = &pl->ctx;
  guint64 min_change = ctx->hp->min_change;

  if (!ev->emergency && foreign_unplug (ctx, ev)) {
    MtVmReason *w = decide (pl, i, MT_DECISION_WAIT, MT_WHY_WAIT_UNPLUG);

    w->size[0] = ev->lay.plugged;
    w->size[1] = ev->lay.requested;
    return FALSE;
  }

  if (ev->target < ev->cur && ev->cur - ev->target >= min_change) {
    plan_shrink (pl, i);
    return FALSE;
  }
  ev->next->shrink_since = MT_TIME_NEVER;
  if (ev->target > ev->cur && (ev->emergency || ev->target - ev->cur >= min_change))
    return TRUE;
  if (ev->target == ev->cur)
    decide (pl, i, MT_DECISION_HOLD, MT_WHY_HOLD);
  else
    decide (pl, i, MT_DECISION_HOLD, MT_WHY_HOLD_HYSTERESIS)->size[0] = min_change;
  return FALSE;
}

static void
fill_decision (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtVmDecision *d = &pl->plan->decisions[i];

  d->kind = ev->fixed ? ev->fixed_kind : MT_DECISION_HOLD; /* decided below */
  d->managed = !ev->fixed;
  d->emergency = ev->emergency;
  d->starving = ev->oom || ev->avail_low;
  d->grace = ev->grace;
  d->refaulting = ev->refaulting;
  d->current = ev->cur;
  d->working_set = ev->active;
  d->idle = ev->idle;
  d->headroom = ev->headroom;
  d->need = ev->need;
  d->committed = ev->committed;
  d->step = ev->cur;
  d->action = -1;
  d->reclaim = 0;
  /* d->next and d->why are filled in place (MtVmEval points to them). */
  if (ev->fixed) {
    d->min = d->max = d->want = d->floor = d->keep = d->target = ev->cur;
    return;
  }
  d->min = ev->lo;
  d->max = ev->hi;
  d->want = ev->want;
  d->floor = ev->floor;
  d->keep = ev->tier1_lo;
  d->target = ev->target;
  record_explanation (pl, ev, &d->why);
}

/* ---- cold page cache ----------------------------------------------------
 * A quiet guest's page cache that it has not touched again lately
 * (Inactive(file)) is idle memory the host could use: free page
 * reporting returns it as soon as the guest lets go of it, and until
 * then it fills whatever headroom the guest has.  The kernel keeps its
 * file LRU's inactive list about as large as the active one below 1 GiB
 * of cache (inactive_is_low()), and memory.reclaim takes from the
 * inactive list first: asking for no more than the inactive cache above
 * the active leaves the cache the guest re-reads alone.  Half of that
 * per request, every MT_PLAN_COLD_INTERVAL while the guest is quiet, so
 * a misjudged request shows as refaults (which stop the requests)
 * before it is repeated.  Quiet, not the feedback's calm: PSI avg10
 * takes a minute to fall from a stall to the calm level, and a guest
 * that read a file and went idle would be asked only when it reads
 * the next one. */
static void
plan_reclaim (Planner *pl, guint i)
{
  MtVmEval *ev = &pl->ev[i];
  MtVmDecision *d = &pl->plan->decisions[i];
  const MtVmDerived *o = &ev->in->obs;
  MtVmControl *c = ev->next;
  guint64 cold;

  /* A guest reading files in fills its inactive list with pages it may
   * read again soon: what it read is not cold until the reading stops. */
  if (o->cache != MT_UNKNOWN && o->cache < c->cache_base)
    c->cache_base = o->cache;
  else if (o->cache != MT_UNKNOWN && o->cache - c->cache_base >= MT_PLAN_COLD_READ) {
    c->cache_base = o->cache;
    c->cache_rise_time = o->observed;
  }
  if (!ev->in->policy->reclaim_cold_cache || !o->can_reclaim || !o->fresh
      || o->inactive_file == MT_UNKNOWN || o->cache == MT_UNKNOWN || ev->emergency || ev->refaulting
      || ev->grace || d->action >= 0 || c->pending || (isfinite (o->psi_trend) && o->psi_trend > 0)
      || (isfinite (o->major_fault_rate) && o->major_fault_rate > MT_PLAN_FAULTS_LOW)
      || (c->cache_rise_time != MT_TIME_NEVER
          && mt_elapsed (o->observed, c->cache_rise_time) < MT_PLAN_COLD_SETTLE)
      || (c->reclaim_time != MT_TIME_NEVER
          && mt_elapsed (pl->ctx.now, c->reclaim_time) < MT_PLAN_COLD_INTERVAL))
    return;
  cold = mt_sat_sub (o->inactive_file, MAX (o->cache - o->inactive_file, MT_PLAN_COLD_KEEP));
  cold = mt_sat_from_double ((double) cold * MT_PLAN_COLD_SHARE);
  if (cold < MT_PLAN_COLD_MIN)
    return;
  d->reclaim = cold;
  c->reclaim_time = pl->ctx.now;
}

/* Each VM's control state lives in its model (MtPlanVm.control), one
 * heap block per VM, and is copied into its decision first thing:
 * fetching a few VMs ahead keeps that copy from waiting on memory.  At
 * 10,000 VMs in memtide-planner-scale without it a plan took 0.4-4.6 ms
 * more CPU than when MtPlanVm carried a copy (which mt_plan_vm_init()
 * made, outside the plan); with it 0.2-0.6 ms more, the tick as a whole
 * less (docs/benchmarks.md, "Scale: against the targets"). */
#define CONTROL_AHEAD 4
#define CACHE_LINE    64

static inline void
prefetch_control (const MtVmControl *c)
{
#if defined(__GNUC__)
  if (c == NULL)
    return;
  for (gsize o = 0; o < sizeof *c; o += CACHE_LINE)
    __builtin_prefetch ((const char *) c + o);
#else
  (void) c;
#endif
}

MtPlan *
mt_plan_compute (const MtHostSample *host, const MtPlanVm *vms, guint n_vms, const MtHostPolicy *hp,
                 gint64 now)
{
  g_autoptr (GArray) actions = g_array_new (FALSE, TRUE, sizeof (MtAction));
  g_autofree MtVmEval *ev = NULL;
  g_autofree guint *grows = NULL;
  guint n_grows = 0;
  MtPlan *plan;
  Planner pl;

  g_return_val_if_fail (hp != NULL, NULL);
  g_return_val_if_fail (n_vms == 0 || vms != NULL, NULL);

  plan = g_new0 (MtPlan, 1);
  plan->now = now;
  plan->n_decisions = n_vms;
  /* Not zeroed: every field is set below (10,000 VMs are 7 MB). */
  plan->decisions = g_new (MtVmDecision, MAX (n_vms, 1));
  ev = g_new (MtVmEval, MAX (n_vms, 1));
  grows = g_new (guint, MAX (n_vms, 1));
  pl = (Planner) {
    .ctx = {
      .hp = hp,
      .now = now,
      .tick = hp->tick_interval > 0 ? hp->tick_interval : MT_PLAN_DEFAULT_TICK,
      .stuck_timeout = hp->stuck_timeout > 0 ? hp->stuck_timeout : MT_PLAN_DEFAULT_STUCK,
      .host_out = host != NULL && host->mem_available != MT_UNKNOWN
                  && host->mem_available < hp->reserve,
    },
    .plan = plan,
    .ev = ev,
    .n = n_vms,
    .actions = actions,
  };

  for (guint i = 0; i < n_vms; i++) {
    if (i + CONTROL_AHEAD < n_vms)
      prefetch_control (vms[i + CONTROL_AHEAD].control);
    mt_plan_eval_vm (&pl.ctx, &vms[i], i, &ev[i], &plan->decisions[i]);
  }
  budget (&pl, host);
  if (rise_floors_crowd (&pl)) {
    for (guint i = 0; i < n_vms; i++)
      mt_plan_rise_strip (&ev[i]);
    g_clear_pointer (&plan->reason, g_free);
    budget (&pl, host);
  }
  split (&pl);

  for (guint i = 0; i < n_vms; i++) {
    MtVmDecision *d = &plan->decisions[i];

    fill_decision (&pl, i);
    if (ev[i].fixed)
      continue;
    if (plan_step (&pl, i))
      grows[n_grows++] = i;
    /* A stalled unplug stays requested until we take it back; any
       * resize above already did (the layout keeps what is plugged). */
    if (ev[i].lay.mech == MT_MECH_AUTO && ev[i].next->vmem_stalled
        && ev[i].lay.requested < ev[i].lay.plugged && d->action < 0) {
      MtLayout l = {
        .set_vmem = TRUE,
        .vmem_requested =
          MIN (mt_layout_snap_up (ev[i].lay.plugged, ev[i].lay.vmem_block, 0), ev[i].lay.vmem_max),
        .balloon = ev[i].lay.balloon,
        .size = ev[i].cur,
      };
      add_action (&pl, i, MT_ACTION_CANCEL, &l, FALSE, MT_WHY_LIMIT_NONE, 0);
      ev[i].lay.requested = l.vmem_requested;
    }
  }

  for (guint pass = 0; pass < 2; pass++)
    for (guint k = 0; k < n_grows; k++)
      if (pl.ev[grows[k]].emergency == (pass == 0))
        plan_grow (&pl, grows[k]);
  for (guint i = 0; i < n_vms; i++) {
    if (!ev[i].fixed)
      plan_reclaim (&pl, i);
    /* Held VMs too: reporting does not resize them. */
    mt_plan_tune (&pl.ctx, &ev[i], &plan->decisions[i]);
  }

  plan->n_actions = actions->len;
  plan->actions = (MtAction *) g_array_free (g_steal_pointer (&actions), FALSE);
  return plan;
}
