/* memtide-agent: report formatting.  Field names, units and bounds are
 * specified in docs/agent-protocol.md; keep the two in step. */
#include "report.h"

#include "caps.h"
#include "jw.h"

/* Page counts to bytes, saturating (the host bounds every field anyway). */
static uint64_t
pages_to_bytes (uint64_t pages, uint64_t page_size)
{
  return page_size && pages > INT64_MAX / page_size ? INT64_MAX : pages * page_size;
}

static void
mem_field (struct jw *w, const struct sample *s, const char *key, int idx)
{
  if (s->mi_have & (1u << idx))
    jw_u64 (w, key, s->mi[idx]);
}

static void
format_hello (struct jw *w, const struct hello_info *h)
{
  jw_bool (w, "hello", true);
  jw_str (w, "agent", h->agent);
  if (h->kernel[0])
    jw_str (w, "kernel", h->kernel);
  if (h->boot_id[0])
    jw_str (w, "boot_id", h->boot_id);
  jw_u64 (w, "page_size", h->page_size);
  jw_u64 (w, "interval_ms", h->interval_ms);
  jw_str (w, "psi_mode", h->psi_mode);
  if (h->psi_trigger[0])
    jw_str (w, "psi_trigger", h->psi_trigger);
  jw_arr_begin (w, "reclaim_methods");
  if (h->reclaim_methods & RECLAIM_METHOD_MEMORY_RECLAIM)
    jw_str (w, NULL, "memory.reclaim");
  if (h->reclaim_methods & RECLAIM_METHOD_DROP_CACHES)
    jw_str (w, NULL, "drop_caches");
  jw_arr_end (w);
  jw_bool (w, "root", h->is_root);
  jw_arr_begin (w, "unavailable");
  for (int u = 0; u < UA_N; u++)
    if (h->unavail & (1u << u))
      jw_str (w, NULL, unavail_name ((enum unavail) u));
  jw_arr_end (w);
}

static void
format_psi_line (struct jw *w, const char *key, const struct psi_line *l)
{
  if (!l->have)
    return;
  jw_obj_begin (w, key);
  jw_num_text (w, "avg10", l->avg10);
  jw_num_text (w, "avg60", l->avg60);
  jw_u64 (w, "total_us", l->total_us);
  jw_obj_end (w);
}

int
report_format (char *buf, size_t cap, const struct sample *s, const struct report_meta *m)
{
  struct jw w;

  jw_init (&w, buf, cap);
  jw_obj_begin (&w, NULL);
  jw_u64 (&w, "v", 1);
  jw_str (&w, "type", "report");
  jw_u64 (&w, "seq", m->seq);
  jw_str (&w, "reason", m->reason);
  if (m->has_id)
    jw_u64 (&w, "id", m->id);
  jw_u64 (&w, "mono_us", m->mono_us);
  if (m->hello)
    format_hello (&w, m->hello);

  if (s->mi_have) {
    jw_obj_begin (&w, "mem");
    mem_field (&w, s, "total", MI_TOTAL);
    mem_field (&w, s, "free", MI_FREE);
    mem_field (&w, s, "available", MI_AVAILABLE);
    /* Page cache as the host thinks of it: Cached + Buffers. */
    if (s->mi_have & (1u << MI_CACHED))
      jw_u64 (&w, "cached",
              s->mi[MI_CACHED] + ((s->mi_have & (1u << MI_BUFFERS)) ? s->mi[MI_BUFFERS] : 0));
    mem_field (&w, s, "shmem", MI_SHMEM);
    mem_field (&w, s, "anon", MI_ANON);
    mem_field (&w, s, "slab_reclaimable", MI_SRECLAIMABLE);
    mem_field (&w, s, "inactive_file", MI_INACTIVE_FILE);
    mem_field (&w, s, "swap_total", MI_SWAP_TOTAL);
    mem_field (&w, s, "swap_free", MI_SWAP_FREE);
    jw_obj_end (&w);
  }

  if (s->vs_have) {
    jw_obj_begin (&w, "vmstat");
    if (s->vs_have & (1u << VS_PGMAJFAULT))
      jw_u64 (&w, "pgmajfault", s->vs[VS_PGMAJFAULT]);
    if (s->vs_have & (1u << VS_PSWPIN))
      jw_u64 (&w, "pswpin_bytes", pages_to_bytes (s->vs[VS_PSWPIN], m->page_size));
    if (s->vs_have & (1u << VS_PSWPOUT))
      jw_u64 (&w, "pswpout_bytes", pages_to_bytes (s->vs[VS_PSWPOUT], m->page_size));
    if (s->vs_have & (1u << VS_OOM_KILL))
      jw_u64 (&w, "oom_kill", s->vs[VS_OOM_KILL]);
    jw_obj_end (&w);
  }

  if (s->have_psi) {
    jw_obj_begin (&w, "psi");
    format_psi_line (&w, "some", &s->psi.some);
    format_psi_line (&w, "full", &s->psi.full);
    jw_obj_end (&w);
  }

  if (s->have_blocks) {
    jw_obj_begin (&w, "memory_blocks");
    jw_u64 (&w, "block_size", s->blocks.block_size);
    jw_u64 (&w, "online_movable", s->blocks.online_movable);
    jw_u64 (&w, "online_kernel", s->blocks.online_kernel);
    jw_u64 (&w, "offline", s->blocks.offline);
    jw_u64 (&w, "going_offline", s->blocks.going_offline);
    jw_obj_end (&w);
  }

  if (s->have_pr_order || s->pr_have) {
    jw_obj_begin (&w, "page_reporting");
    if (s->have_pr_order)
      jw_u64 (&w, "order", s->pr_order);
    if (s->pr_have & (1u << PR_REPORTED))
      jw_u64 (&w, "reported_bytes", s->pr[PR_REPORTED]);
    if (s->pr_have & (1u << PR_REPORTED_TOTAL))
      jw_u64 (&w, "reported_total_bytes", s->pr[PR_REPORTED_TOTAL]);
    if (s->pr_have & (1u << PR_REUSED_TOTAL))
      jw_u64 (&w, "reused_total_bytes", s->pr[PR_REUSED_TOTAL]);
    if (s->pr_have & (1u << PR_PASSES))
      jw_u64 (&w, "passes", s->pr[PR_PASSES]);
    if (s->pr_have & (1u << PR_BUDGET_EXHAUSTED))
      jw_u64 (&w, "budget_exhausted", s->pr[PR_BUDGET_EXHAUSTED]);
    if (s->pr_have & (1u << PR_DELAY_MS))
      jw_u64 (&w, "delay_ms", s->pr[PR_DELAY_MS]);
    if (s->pr_have & (1u << PR_BUDGET_DIVISOR))
      jw_u64 (&w, "budget_divisor", s->pr[PR_BUDGET_DIVISOR]);
    jw_obj_end (&w);
  }

  if (s->have_usage) {
    static const char *const kinds[UK_N] = { "kernel", "movable", "virtio_mem" };
    static const char *const keys[BU_N] = { "free", "movable", "unmovable", "pinned", "offline" };
    jw_obj_begin (&w, "block_usage");
    for (int k = 0; k < UK_N; k++) {
      if (s->usage[k].blocks == 0)
        continue;
      jw_obj_begin (&w, kinds[k]);
      jw_u64 (&w, "blocks", s->usage[k].blocks);
      for (int u = 0; u < BU_N; u++)
        jw_u64 (&w, keys[u], pages_to_bytes (s->usage[k].pages[u], m->page_size));
      jw_obj_end (&w);
    }
    jw_obj_end (&w);
  }

  jw_u64 (&w, "dropped", m->dropped);
  jw_obj_end (&w);
  return jw_finish (&w);
}
