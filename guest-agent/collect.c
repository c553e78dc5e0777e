/* memtide-agent: read the guest's memory state.
 *
 * Files read every report are opened once and re-read with pread() from
 * offset 0 (procfs and sysfs regenerate their text on a read at offset 0),
 * so a report costs a handful of syscalls.  Memory blocks are the
 * exception: there can be hundreds, so their counts are cached and
 * rescanned only when a memory uevent says something changed (or when the
 * cache is older than blocks_max_age_us; 0 means every report).
 *
 * The usage of each online block (memoryN/usage, patched kernels) changes
 * all the time, so it is re-read on every report, but at most
 * USAGE_READS_MAX blocks per report, round robin: reading the file walks
 * every page of the block in the kernel, and a large guest has thousands
 * of blocks.  Sums use each block's last reading.  These files are
 * opened relative to the kept directory fd and closed at once: a guest
 * may have more blocks than the agent should keep fds. */
#include "collect.h"

#include "caps.h"
#include "paths.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct key {
  const char *name;
  int index;
};

static const struct key meminfo_keys[] = {
  { "MemTotal", MI_TOTAL },
  { "MemFree", MI_FREE },
  { "MemAvailable", MI_AVAILABLE },
  { "Buffers", MI_BUFFERS },
  { "Cached", MI_CACHED },
  { "Shmem", MI_SHMEM },
  { "AnonPages", MI_ANON },
  { "SReclaimable", MI_SRECLAIMABLE },
  { "SwapTotal", MI_SWAP_TOTAL },
  { "SwapFree", MI_SWAP_FREE },
  { "Inactive(file)", MI_INACTIVE_FILE },
};

static const struct key vmstat_keys[] = {
  { "pgmajfault", VS_PGMAJFAULT },
  { "pswpin", VS_PSWPIN },
  { "pswpout", VS_PSWPOUT },
  { "oom_kill", VS_OOM_KILL },
};

/* Blocks whose usage a report reads at most (besides blocks never read
 * yet): 64 blocks of 128 MiB walk 8 GiB of struct pages. */
#define USAGE_READS_MAX ((size_t) 64)

static const char *const pr_files[PR_N] = {
  [PR_REPORTED] = "reported_bytes",           [PR_REPORTED_TOTAL] = "reported_total_bytes",
  [PR_REUSED_TOTAL] = "reused_total_bytes",   [PR_PASSES] = "passes",
  [PR_BUDGET_EXHAUSTED] = "budget_exhausted", [PR_DELAY_MS] = "delay_ms",
  [PR_BUDGET_DIVISOR] = "budget_divisor",
};

/* The order the files are read in: a counter bounded by another is read
 * before it (a reused page was reported earlier; a pass is counted when it
 * starts, its exhaustion when it ends), so the pair never looks
 * inconsistent to the host. */
static const int pr_read_order[PR_N] = {
  PR_REPORTED, PR_REUSED_TOTAL, PR_REPORTED_TOTAL, PR_BUDGET_EXHAUSTED,
  PR_PASSES,   PR_DELAY_MS,     PR_BUDGET_DIVISOR,
};

static const char *const usage_keys[BU_N] = {
  [BU_FREE] = "free",     [BU_MOVABLE] = "movable", [BU_UNMOVABLE] = "unmovable",
  [BU_PINNED] = "pinned", [BU_OFFLINE] = "offline",
};

/* Matches "name" followed by sep at the start of line. */
static const char *
after_name (const char *line, const char *name, char sep)
{
  size_t n = strlen (name);

  if (strncmp (line, name, n) != 0 || line[n] != sep)
    return NULL;
  return line + n + 1;
}

static const char *
next_line (const char *p)
{
  const char *nl = strchr (p, '\n');
  return nl ? nl + 1 : NULL;
}

uint32_t
meminfo_parse (const char *text, uint64_t out[MI_N])
{
  uint32_t have = 0;

  for (const char *line = text; line && *line; line = next_line (line)) {
    for (size_t k = 0; k < ARRAY_SIZE (meminfo_keys); k++) {
      const char *p = after_name (line, meminfo_keys[k].name, ':');
      uint64_t v;
      if (!p)
        continue;
      while (*p == ' ' || *p == '\t')
        p++;
      if (!parse_u64 (p, &p, &v) || strncmp (p, " kB", 3) != 0 || v > UINT64_MAX / 1024)
        break;
      out[meminfo_keys[k].index] = v * 1024;
      have |= 1u << meminfo_keys[k].index;
      break;
    }
  }
  return have;
}

uint32_t
vmstat_parse (const char *text, uint64_t out[VS_N])
{
  uint32_t have = 0;

  for (const char *line = text; line && *line; line = next_line (line)) {
    for (size_t k = 0; k < ARRAY_SIZE (vmstat_keys); k++) {
      const char *p = after_name (line, vmstat_keys[k].name, ' ');
      uint64_t v;
      if (!p)
        continue;
      if (parse_u64 (p, &p, &v) && (*p == '\n' || *p == '\0')) {
        out[vmstat_keys[k].index] = v;
        have |= 1u << vmstat_keys[k].index;
      }
      break;
    }
  }
  return have;
}

/* "d.dd" .. "ddd.dd", at most 100.00: copied into out[8]. */
static bool
psi_avg (const char *p, const char *name, char out[8], const char **end)
{
  size_t n = strlen (name), i = 0;

  if (strncmp (p, name, n) != 0)
    return false;
  p += n;
  while (isdigit ((unsigned char) p[i]) && i < 3)
    i++;
  if (i == 0 || p[i] != '.' || !isdigit ((unsigned char) p[i + 1])
      || !isdigit ((unsigned char) p[i + 2]) || (p[i + 3] != ' ' && p[i + 3] != '\0'))
    return false;
  memcpy (out, p, i + 3);
  out[i + 3] = '\0';
  if (strtod (out, NULL) > 100.0)
    return false;
  *end = p + i + 3;
  return true;
}

static bool
psi_parse_line (const char *p, struct psi_line *l)
{
  char avg300[8];

  if (!psi_avg (p, "avg10=", l->avg10, &p) || *p++ != ' ' || !psi_avg (p, "avg60=", l->avg60, &p)
      || *p++ != ' ' || !psi_avg (p, "avg300=", avg300, &p) || *p++ != ' '
      || strncmp (p, "total=", 6) != 0 || !parse_u64 (p + 6, &p, &l->total_us)
      || (*p != '\n' && *p != '\0'))
    return false;
  l->have = true;
  return true;
}

bool
psi_parse (const char *text, struct psi_values *out)
{
  memset (out, 0, sizeof *out);
  for (const char *line = text; line && *line; line = next_line (line)) {
    const char *p;
    if ((p = after_name (line, "some", ' ')))
      psi_parse_line (p, &out->some);
    else if ((p = after_name (line, "full", ' ')))
      psi_parse_line (p, &out->full);
  }
  return out->some.have;
}

enum block_kind
block_classify (const char *state, const char *zones)
{
  if (strcmp (state, "offline") == 0)
    return BK_OFFLINE;
  if (strcmp (state, "going-offline") == 0)
    return BK_GOING_OFFLINE;
  if (strcmp (state, "online") != 0)
    return BK_UNKNOWN;
  /* An online block shows the one zone it is in ("none" when it spans
   * several zones, which can never be offlined). */
  if (zones && strcmp (zones, "Movable") == 0)
    return BK_ONLINE_MOVABLE;
  return BK_ONLINE_KERNEL;
}

bool
usage_parse (const char *text, uint64_t out[BU_N])
{
  uint32_t have = 0;

  for (const char *line = text; line && *line; line = next_line (line)) {
    for (int k = 0; k < BU_N; k++) {
      const char *p = after_name (line, usage_keys[k], ' ');
      uint64_t v;
      if (!p)
        continue;
      if (parse_u64 (p, &p, &v) && (*p == '\n' || *p == '\0')) {
        out[k] = v;
        have |= 1u << k;
      }
      break;
    }
  }
  return have == (1u << BU_N) - 1;
}

static bool
hex_u64 (const char *p, const char **end, uint64_t *out)
{
  uint64_t v = 0;
  const char *q = p;

  for (; isxdigit ((unsigned char) *q); q++) {
    if (v >> 60)
      return false;
    v = v * 16 + (uint64_t) (isdigit ((unsigned char) *q) ? *q - '0' : (*q | 0x20) - 'a' + 10);
  }
  if (q == p)
    return false;
  *end = q;
  *out = v;
  return true;
}

bool
iomem_vmem_line (const char *line, uint64_t *start, uint64_t *end)
{
  static const char name[] = "System RAM (virtio_mem)";
  const char *p = line;

  while (*p == ' ')
    p++;
  if (!hex_u64 (p, &p, start) || *p++ != '-' || !hex_u64 (p, &p, end) || strncmp (p, " : ", 3) != 0)
    return false;
  p += 3;
  return strncmp (p, name, sizeof name - 1) == 0
         && (p[sizeof name - 1] == '\n' || p[sizeof name - 1] == '\0') && *start <= *end;
}

static int
open_ro (const char *fmt_path)
{
  char path[PATH_MAX];

  if (rpath (path, sizeof path, "%s", fmt_path) < 0)
    return -1;
  return open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

void
collector_open (struct collector *c, uint32_t *unavail)
{
  char path[PATH_MAX], buf[64];
  bool any_pr = false;

  memset (c, 0, sizeof *c);
  c->meminfo_fd = open_ro ("/proc/meminfo");
  c->vmstat_fd = open_ro ("/proc/vmstat");
  c->psi_fd = open_ro ("/proc/pressure/memory");
  c->pr_order_fd = open_ro ("/sys/module/page_reporting/parameters/page_reporting_order");
  unavail_set (unavail, UA_MEMINFO, c->meminfo_fd < 0);
  unavail_set (unavail, UA_VMSTAT, c->vmstat_fd < 0);
  unavail_set (unavail, UA_PSI, c->psi_fd < 0);
  unavail_set (unavail, UA_PAGE_REPORTING, c->pr_order_fd < 0);

  for (int i = 0; i < PR_N; i++) {
    /* O_RDONLY even for the tunables: tune_reporting opens them for writing. */
    if (rpath (path, sizeof path, "/sys/kernel/mm/page_reporting/%s", pr_files[i]) == 0)
      c->pr_fd[i] = open (path, O_RDONLY | O_CLOEXEC);
    else
      c->pr_fd[i] = -1;
    any_pr |= c->pr_fd[i] >= 0;
  }
  unavail_set (unavail, UA_PAGE_REPORTING_COUNTERS, !any_pr);

  c->mem_dirfd = -1;
  if (rpath (path, sizeof path, "/sys/devices/system/memory") == 0)
    c->mem_dirfd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c->mem_dirfd >= 0) {
    int fd = openat (c->mem_dirfd, "block_size_bytes", O_RDONLY | O_CLOEXEC);
    /* The kernel prints it in hex without 0x. */
    if (fd >= 0 && pread_all (fd, buf, sizeof buf) > 0) {
      char *end;
      errno = 0;
      c->block_size = strtoull (strip (buf), &end, 16);
      if (errno || *end || c->block_size == 0 || (c->block_size & (c->block_size - 1)))
        c->block_size = 0;
    }
    if (fd >= 0)
      close (fd);
    if (c->block_size == 0) {
      close (c->mem_dirfd);
      c->mem_dirfd = -1;
    }
  }
  unavail_set (unavail, UA_MEMORY_BLOCKS, c->mem_dirfd < 0);
  unavail_set (unavail, UA_BLOCK_USAGE, c->mem_dirfd < 0);
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

void
collector_close (struct collector *c)
{
  close_fd (&c->meminfo_fd);
  close_fd (&c->vmstat_fd);
  close_fd (&c->psi_fd);
  close_fd (&c->pr_order_fd);
  close_fd (&c->mem_dirfd);
  for (int i = 0; i < PR_N; i++)
    close_fd (&c->pr_fd[i]);
  free (c->ub);
  c->ub = NULL;
  c->n_ub = c->ub_next = 0;
}

/* Reads a short sysfs attribute relative to dirfd; first line, stripped. */
static bool
read_attr_at (int dirfd, const char *name, char *buf, size_t size)
{
  int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0)
    return false;
  n = pread_all (fd, buf, size);
  close (fd);
  if (n < 0)
    return false;
  buf[strcspn (buf, "\n")] = '\0';
  strip (buf);
  return true;
}

static int
compare_index (const void *a, const void *b)
{
  uint64_t x = ((const struct usage_block *) a)->index, y = ((const struct usage_block *) b)->index;
  return x < y ? -1 : x > y;
}

static struct usage_block *
find_block (struct usage_block *ub, size_t n, uint64_t index)
{
  struct usage_block key = { .index = index };
  return n ? bsearch (&key, ub, n, sizeof *ub, compare_index) : NULL;
}

/* Marks the blocks inside virtio-mem ranges; false when /proc/iomem is
 * unreadable or hides its addresses (they read 0 unless root). */
static bool
mark_vmem (struct usage_block *ub, size_t n, uint64_t block_size)
{
  char path[PATH_MAX], line[256];
  FILE *f;
  bool hidden = false;

  if (rpath (path, sizeof path, "/proc/iomem") < 0 || !(f = fopen (path, "re")))
    return false;
  while (fgets (line, sizeof line, f)) {
    uint64_t start, end;
    if (!iomem_vmem_line (line, &start, &end))
      continue;
    if (end == 0) {
      hidden = true;
      continue;
    }
    /* virtio-mem adds whole blocks; a range a block only overlaps is
     * still counted, which errs towards "virtio-mem". */
    for (uint64_t b = start / block_size; b <= end / block_size && n; b++) {
      struct usage_block *e = find_block (ub, n, b);
      if (e)
        e->vmem = true;
    }
  }
  fclose (f);
  return !hidden;
}

/* The online blocks of this scan, sorted, with the usage last read for
 * the same block in the same zone carried over. */
static void
usage_rebuild (struct collector *c, struct usage_block *fresh, size_t n)
{
  qsort (fresh, n, sizeof *fresh, compare_index);
  for (size_t i = 0; i < n; i++) {
    struct usage_block *old = find_block (c->ub, c->n_ub, fresh[i].index);
    if (old && old->have && old->movable == fresh[i].movable) {
      fresh[i].have = true;
      memcpy (fresh[i].pages, old->pages, sizeof fresh[i].pages);
    }
  }
  c->vmem_known = mark_vmem (fresh, n, c->block_size);
  free (c->ub);
  c->ub = fresh;
  c->n_ub = n;
  c->ub_next = 0;
}

static bool
scan_blocks (struct collector *c)
{
  struct block_counts b = { .block_size = c->block_size };
  int dfd = dup (c->mem_dirfd);
  DIR *d;
  struct dirent *e;
  bool zones_missing = false;
  struct usage_block *fresh = NULL;
  size_t n_fresh = 0, cap = 0;
  bool alloc_failed = false;

  if (dfd < 0)
    return false;
  d = fdopendir (dfd);
  if (!d) {
    close (dfd);
    return false;
  }
  rewinddir (d);
  while ((e = readdir (d))) {
    char name[300], state[32], zones[64];
    uint64_t idx;
    const char *end;
    bool have_zones = false;
    enum block_kind kind;

    if (strncmp (e->d_name, "memory", 6) != 0 || !parse_u64 (e->d_name + 6, &end, &idx) || *end)
      continue;
    snprintf (name, sizeof name, "%s/state", e->d_name);
    if (!read_attr_at (c->mem_dirfd, name, state, sizeof state))
      continue; /* removed while we looked */
    if (strcmp (state, "online") == 0) {
      snprintf (name, sizeof name, "%s/valid_zones", e->d_name);
      have_zones = read_attr_at (c->mem_dirfd, name, zones, sizeof zones);
      if (have_zones)
        zones[strcspn (zones, " ")] = '\0';
      else
        zones_missing = true;
    }
    kind = block_classify (state, have_zones ? zones : NULL);
    switch (kind) {
    case BK_ONLINE_MOVABLE:
      b.online_movable++;
      break;
    case BK_ONLINE_KERNEL:
      b.online_kernel++;
      break;
    case BK_OFFLINE:
      b.offline++;
      break;
    case BK_GOING_OFFLINE:
      b.going_offline++;
      break;
    case BK_UNKNOWN:
      break;
    }
    if (kind == BK_ONLINE_MOVABLE || kind == BK_ONLINE_KERNEL) {
      if (n_fresh == cap) {
        size_t ncap = cap ? cap * 2 : 64;
        struct usage_block *p = realloc (fresh, ncap * sizeof *fresh);
        if (!p) {
          alloc_failed = true; /* sums without some blocks would mislead */
          continue;
        }
        fresh = p;
        cap = ncap;
      }
      fresh[n_fresh++] = (struct usage_block){ .index = idx, .movable = kind == BK_ONLINE_MOVABLE };
    }
  }
  closedir (d);
  c->blocks = b;
  c->zones_missing = zones_missing;
  if (alloc_failed) {
    free (fresh);
    fresh = NULL;
    n_fresh = 0;
  }
  /* Stock kernels have no usage file: probe the first online block. */
  if (n_fresh > 0) {
    char name[300];
    snprintf (name, sizeof name, "memory%" PRIu64 "/usage", fresh[0].index);
    c->usage_supported = faccessat (c->mem_dirfd, name, R_OK, 0) == 0;
  } else {
    c->usage_supported = false;
  }
  usage_rebuild (c, fresh, n_fresh);
  return true;
}

static bool
usage_read_one (struct collector *c, struct usage_block *e)
{
  char name[300], buf[256];
  uint64_t pages[BU_N];
  int fd;
  ssize_t n;

  snprintf (name, sizeof name, "memory%" PRIu64 "/usage", e->index);
  fd = openat (c->mem_dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  n = pread_all (fd, buf, sizeof buf);
  close (fd);
  if (n < 0 || !usage_parse (buf, pages))
    return false;
  memcpy (e->pages, pages, sizeof pages);
  e->have = true;
  return true;
}

/* Reads the blocks never read and up to USAGE_READS_MAX others, then sums
 * every block's last reading.  False while some block has none (a block
 * that vanished is dropped at the rescan its uevent causes). */
static bool
usage_read (struct collector *c, struct usage_sum out[UK_N])
{
  size_t budget = USAGE_READS_MAX;
  bool complete = true;

  if (c->n_ub <= USAGE_READS_MAX) {
    for (size_t i = 0; i < c->n_ub; i++)
      usage_read_one (c, &c->ub[i]);
  } else {
    for (size_t i = 0; i < c->n_ub; i++)
      if (!c->ub[i].have)
        usage_read_one (c, &c->ub[i]);
    for (; budget > 0; budget--) {
      usage_read_one (c, &c->ub[c->ub_next]);
      c->ub_next = (c->ub_next + 1) % c->n_ub;
    }
  }
  memset (out, 0, sizeof (struct usage_sum) * UK_N);
  for (size_t i = 0; i < c->n_ub; i++) {
    const struct usage_block *e = &c->ub[i];
    int kinds[2] = { e->movable ? UK_MOVABLE : UK_KERNEL, UK_VMEM };
    if (!e->have) {
      complete = false;
      continue;
    }
    for (int j = 0; j < (e->vmem ? 2 : 1); j++) {
      out[kinds[j]].blocks++;
      for (int u = 0; u < BU_N; u++)
        out[kinds[j]].pages[u] += e->pages[u];
    }
  }
  return complete && c->n_ub > 0;
}

/* meminfo into mi[]; the MI_* bits it had, 0 when unreadable. */
static uint32_t
meminfo_now (struct collector *c, uint64_t mi[MI_N])
{
  char buf[8192];

  if (c->meminfo_fd < 0 || pread_all (c->meminfo_fd, buf, sizeof buf) < 0)
    return 0;
  return meminfo_parse (buf, mi);
}

uint64_t
collector_mem_free (struct collector *c)
{
  uint64_t mi[MI_N] = { 0 };

  meminfo_now (c, mi);
  return mi[MI_FREE];
}

bool
collector_mem_available (struct collector *c, uint64_t *total, uint64_t *available)
{
  uint64_t mi[MI_N] = { 0 };
  uint32_t need = (1u << MI_TOTAL) | (1u << MI_AVAILABLE);

  if ((meminfo_now (c, mi) & need) != need || mi[MI_AVAILABLE] > mi[MI_TOTAL])
    return false;
  *total = mi[MI_TOTAL];
  *available = mi[MI_AVAILABLE];
  return true;
}

void
collector_read (struct collector *c, struct sample *s, uint32_t *unavail, uint64_t now)
{
  char buf[16384];

  memset (s, 0, sizeof *s);
  if (c->meminfo_fd >= 0 && pread_all (c->meminfo_fd, buf, sizeof buf) >= 0)
    s->mi_have = meminfo_parse (buf, s->mi);
  if (c->vmstat_fd >= 0 && pread_all (c->vmstat_fd, buf, sizeof buf) >= 0)
    s->vs_have = vmstat_parse (buf, s->vs);
  if (c->psi_fd >= 0 && pread_all (c->psi_fd, buf, sizeof buf) >= 0)
    s->have_psi = psi_parse (buf, &s->psi);
  unavail_set (unavail, UA_MEMINFO, s->mi_have == 0);
  unavail_set (unavail, UA_VMSTAT, s->vs_have == 0);
  unavail_set (unavail, UA_PSI, !s->have_psi);

  if (c->pr_order_fd >= 0 && pread_all (c->pr_order_fd, buf, sizeof buf) >= 0) {
    uint64_t v;
    /* The kernel keeps -1 (as unsigned) until a device registers. */
    if (parse_u64 (strip (buf), NULL, &v) && v < 64) {
      s->have_pr_order = true;
      s->pr_order = (uint32_t) v;
    }
  }
  for (int k = 0; k < PR_N; k++) {
    int i = pr_read_order[k];
    uint64_t v;
    const char *end;
    if (c->pr_fd[i] < 0 || pread_all (c->pr_fd[i], buf, 64) < 0)
      continue;
    if (parse_u64 (strip (buf), &end, &v) && !*end) {
      s->pr[i] = v;
      s->pr_have |= 1u << i;
    }
  }

  if (c->mem_dirfd >= 0) {
    bool stale =
      !c->blocks_valid || c->blocks_dirty || now - c->blocks_at_us >= c->blocks_max_age_us;
    if (stale) {
      c->blocks_valid = scan_blocks (c);
      c->blocks_dirty = false;
      c->blocks_at_us = now;
    }
    if (c->blocks_valid) {
      s->have_blocks = true;
      s->blocks = c->blocks;
    }
    unavail_set (unavail, UA_MEMORY_BLOCKS, !c->blocks_valid);
    unavail_set (unavail, UA_MEMORY_ZONES, c->blocks_valid && c->zones_missing);
    if (c->blocks_valid && c->usage_supported)
      s->have_usage = usage_read (c, s->usage);
    unavail_set (unavail, UA_BLOCK_USAGE, !s->have_usage);
    unavail_set (unavail, UA_VIRTIO_MEM_RANGES, s->have_usage && !c->vmem_known);
    if (!c->vmem_known)
      memset (&s->usage[UK_VMEM], 0, sizeof s->usage[UK_VMEM]);
  }
}
