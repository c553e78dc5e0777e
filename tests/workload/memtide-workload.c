/* memtide-workload: a scripted memory consumer for testbed guests.
 *
 * It runs inside the busybox initramfs of a testbed guest (linked
 * statically, libc only) and follows a schedule of steps that allocate,
 * touch, hold and free anonymous memory and fill or drop page cache, so
 * e2e tests and benchmarks can drive a guest's memory need over time and
 * watch memtide react.  The schedule normally comes from the guest kernel
 * command line (memtide.workload=...), passed here by the guest's /init.
 *
 * Every second it prints one progress line on stdout (the guest console):
 *   memtide-workload: t=12.0 anon=240M cache=180M step=ramp idx=2 pass=1
 * anon is what it holds (touched, resident: there is no swap in the guest);
 * cache is how much of its cache file is resident in the page cache right
 * now (measured with mincore, so guest reclaim shows up there).
 * Two steps make memory the kernel cannot move, for the patched kernel's
 * per-block usage hint: slab (empty tmpfs files: inodes and dentries) and
 * pin (anonymous memory pinned as io_uring registered buffers).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PROG "memtide-workload"
#define MIB  (UINT64_C (1) << 20)
/* Anonymous memory is held in chunks of this size so it can grow and
 * shrink in small steps and a failed allocation loses little. */
#define CHUNK     (2 * MIB)
#define TICK_NS   (100 * 1000 * 1000L)
#define MAX_STEPS 64
#define MAX_BYTES (UINT64_C (1) << 40) /* 1 TiB: guards against typos */

enum step_kind {
  STEP_ANON,    /* anon:SIZE */
  STEP_RAMP,    /* ramp:[FROM-]TO/DUR */
  STEP_BURST,   /* burst:SIZE/DUR */
  STEP_HOLD,    /* hold:DUR */
  STEP_SLEEP,   /* sleep:DUR */
  STEP_FREE,    /* free */
  STEP_CACHE,   /* cache:SIZE */
  STEP_UNCACHE, /* uncache */
  STEP_SLAB,    /* slab:SIZE */
  STEP_PIN,     /* pin:SIZE */
  STEP_LOOP,    /* loop[:N] */
  STEP_EXIT,    /* exit */
};

static const char *const step_names[] = {
  [STEP_ANON] = "anon",   [STEP_RAMP] = "ramp", [STEP_BURST] = "burst", [STEP_HOLD] = "hold",
  [STEP_SLEEP] = "sleep", [STEP_FREE] = "free", [STEP_CACHE] = "cache", [STEP_UNCACHE] = "uncache",
  [STEP_SLAB] = "slab",   [STEP_PIN] = "pin",   [STEP_LOOP] = "loop",   [STEP_EXIT] = "exit",
};

struct step {
  enum step_kind kind;
  bool has_from; /* ramp: FROM given (else: start from current) */
  uint64_t from; /* bytes */
  uint64_t size; /* bytes: anon/ramp target, burst extra, cache */
  double dur;    /* seconds */
  long count;    /* loop: -1 = forever */
  char text[64]; /* as written, for messages */
};

struct schedule {
  struct step steps[MAX_STEPS];
  int n;
};

/* ---------- output ---------- */

static void say (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static void
say (const char *fmt, ...)
{
  va_list ap;

  /* One write per line: the console is shared with the kernel and
	 * /init, and tests match whole lines. */
  char buf[512];
  int n = snprintf (buf, sizeof buf, PROG ": ");
  va_start (ap, fmt);
  n += vsnprintf (buf + n, sizeof buf - (size_t) n, fmt, ap);
  va_end (ap);
  if (n > (int) sizeof buf - 2)
    n = (int) sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write (STDOUT_FILENO, buf, (size_t) n);
  (void) w;
}

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ---------- schedule parsing ---------- */

static bool
parse_size (const char *s, const char **end, uint64_t *out)
{
  char *e;
  errno = 0;
  unsigned long long v = strtoull (s, &e, 10);
  if (e == s || errno != 0 || *s == '-')
    return false;
  uint64_t mult;
  switch (*e) {
  case 'K':
  case 'k':
    mult = UINT64_C (1) << 10;
    break;
  case 'M':
  case 'm':
    mult = UINT64_C (1) << 20;
    break;
  case 'G':
  case 'g':
    mult = UINT64_C (1) << 30;
    break;
  default:
    return false; /* a unit is required: no guessing */
  }
  if (v > MAX_BYTES / mult)
    return false;
  *out = (uint64_t) v * mult;
  *end = e + 1;
  return true;
}

static bool
parse_dur (const char *s, const char **end, double *out)
{
  char *e;
  errno = 0;
  double v = strtod (s, &e);
  if (e == s || errno != 0 || !(v >= 0) || v > 1e7)
    return false;
  if (strncmp (e, "ms", 2) == 0) {
    v /= 1000.0;
    e += 2;
  } else if (*e == 's') {
    e += 1;
  } else if (*e == 'm') {
    v *= 60.0;
    e += 1;
  } else if (*e == 'h') {
    v *= 3600.0;
    e += 1;
  } else {
    return false;
  }
  *out = v;
  *end = e;
  return true;
}

/* Parses one step (text without commas).  On error writes a message that
 * names what was expected into err. */
static bool
parse_step (const char *text, struct step *st, char *err, size_t errlen)
{
  const char *colon = strchr (text, ':');
  size_t namelen = colon ? (size_t) (colon - text) : strlen (text);
  const char *arg = colon ? colon + 1 : NULL;
  const char *p = NULL;
  int kind = -1;

  memset (st, 0, sizeof *st);
  snprintf (st->text, sizeof st->text, "%s", text);
  for (size_t i = 0; i < sizeof step_names / sizeof step_names[0]; i++) {
    if (strlen (step_names[i]) == namelen && strncmp (step_names[i], text, namelen) == 0)
      kind = (int) i;
  }
  if (kind < 0) {
    snprintf (err, errlen,
              "unknown step kind (expected one of anon, ramp, "
              "burst, hold, sleep, free, cache, uncache, slab, pin, loop, exit)");
    return false;
  }
  st->kind = (enum step_kind) kind;

  switch (st->kind) {
  case STEP_FREE:
  case STEP_UNCACHE:
  case STEP_EXIT:
    if (arg) {
      snprintf (err, errlen, "'%s' takes no argument", step_names[kind]);
      return false;
    }
    return true;
  case STEP_LOOP:
    st->count = -1;
    if (arg) {
      char *e;
      errno = 0;
      long n = strtol (arg, &e, 10);
      if (e == arg || *e || errno || n < 1) {
        snprintf (err, errlen, "expected loop or loop:N with N >= 1");
        return false;
      }
      st->count = n;
    }
    return true;
  default:
    break;
  }
  if (!arg || !*arg) {
    snprintf (err, errlen, "'%s' needs an argument", step_names[kind]);
    return false;
  }
  p = arg;
  switch (st->kind) {
  case STEP_ANON:
  case STEP_CACHE:
  case STEP_SLAB:
  case STEP_PIN:
    if (!parse_size (p, &p, &st->size) || *p) {
      snprintf (err, errlen,
                "expected %s:SIZE, SIZE like 300M "
                "(unit K, M or G required)",
                step_names[kind]);
      return false;
    }
    return true;
  case STEP_HOLD:
  case STEP_SLEEP:
    if (!parse_dur (p, &p, &st->dur) || *p) {
      snprintf (err, errlen,
                "expected %s:DURATION, DURATION like 30s "
                "(unit ms, s, m or h required)",
                step_names[kind]);
      return false;
    }
    return true;
  case STEP_RAMP: {
    uint64_t a;
    if (!parse_size (p, &p, &a))
      goto ramp_bad;
    if (*p == '-') {
      st->has_from = true;
      st->from = a;
      if (!parse_size (p + 1, &p, &st->size))
        goto ramp_bad;
    } else {
      st->size = a;
    }
    if (*p != '/' || !parse_dur (p + 1, &p, &st->dur) || *p)
      goto ramp_bad;
    return true;
  ramp_bad:
    snprintf (err, errlen,
              "expected ramp:[FROM-]TO/DURATION like "
              "ramp:0M-400M/20s");
    return false;
  }
  case STEP_BURST:
    if (!parse_size (p, &p, &st->size) || *p != '/' || !parse_dur (p + 1, &p, &st->dur) || *p) {
      snprintf (err, errlen,
                "expected burst:SIZE/DURATION like "
                "burst:300M/5s");
      return false;
    }
    return true;
  default:
    return false;
  }
}

static bool
parse_schedule (const char *text, struct schedule *sc)
{
  char buf[4096];
  char err[160];
  char *save = NULL;
  int idx = 0;

  sc->n = 0;
  if (strlen (text) >= sizeof buf) {
    fprintf (stderr, PROG ": bad schedule: longer than %zu characters\n", sizeof buf - 1);
    return false;
  }
  snprintf (buf, sizeof buf, "%s", text);
  /* strtok would silently merge empty steps ("a,,b"); walk by hand. */
  for (char *s = buf; s; s = save) {
    char *comma = strchr (s, ',');
    save = comma ? comma + 1 : NULL;
    if (comma)
      *comma = '\0';
    idx++;
    if (!*s) {
      fprintf (stderr, PROG ": bad schedule: step %d is empty\n", idx);
      return false;
    }
    if (sc->n == MAX_STEPS) {
      fprintf (stderr, PROG ": bad schedule: more than %d steps\n", MAX_STEPS);
      return false;
    }
    if (!parse_step (s, &sc->steps[sc->n], err, sizeof err)) {
      fprintf (stderr, PROG ": bad schedule: step %d '%s': %s\n", idx, s, err);
      return false;
    }
    enum step_kind k = sc->steps[sc->n].kind;
    if ((k == STEP_LOOP || k == STEP_EXIT) && save) {
      fprintf (stderr,
               PROG ": bad schedule: step %d '%s': must be the "
                    "last step\n",
               idx, s);
      return false;
    }
    sc->n++;
  }
  if (sc->n == 0) {
    fprintf (stderr, PROG ": bad schedule: no steps\n");
    return false;
  }
  return true;
}

/* ---------- anonymous memory ---------- */

static void **chunks;
static size_t n_chunks, cap_chunks;
static bool alloc_failed_reported;
static unsigned char pattern = 0x5a;

static uint64_t
anon_bytes (void)
{
  return (uint64_t) n_chunks * CHUNK;
}

/* Writes one byte per page so the pages stay recently used (a "hot"
 * working set) without costing a full memset every second. */
static void
touch_chunk (void *c)
{
  long pg = sysconf (_SC_PAGESIZE);
  volatile unsigned char *b = c;
  for (size_t off = 0; off < CHUNK; off += (size_t) pg)
    b[off] = pattern;
}

/* A /proc/meminfo field ("MemAvailable", "Slab") in bytes, or
 * UINT64_MAX if unknown. */
static uint64_t
meminfo_bytes (const char *field)
{
  char line[128];
  uint64_t kb = UINT64_MAX;
  size_t len = strlen (field);
  FILE *f = fopen ("/proc/meminfo", "r");

  if (!f)
    return UINT64_MAX;
  while (fgets (line, sizeof line, f))
    if (strncmp (line, field, len) == 0 && line[len] == ':'
        && sscanf (line + len + 1, " %" SCNu64 " kB", &kb) == 1)
      break;
  fclose (f);
  return kb == UINT64_MAX ? kb : kb * 1024;
}

static uint64_t
mem_available (void)
{
  return meminfo_bytes ("MemAvailable");
}

/* Allocations stop while the guest's MemAvailable would fall below this,
 * so an undersized guest makes the workload wait (and retry every tick,
 * e.g. until memtide grows the guest) instead of being OOM-killed. */
static uint64_t reserve = 32 * MIB;

static bool
anon_grow_one (void)
{
  if (reserve) {
    uint64_t avail = mem_available ();
    if (avail != UINT64_MAX && avail < reserve + CHUNK) {
      if (!alloc_failed_reported)
        say ("ERROR allocation refused at anon=%" PRIu64 "M: guest "
             "MemAvailable %" PRIu64 "M would fall below the reserve "
             "%" PRIu64 "M; holding and retrying",
             anon_bytes () / MIB, avail / MIB, reserve / MIB);
      alloc_failed_reported = true;
      return false;
    }
  }
  if (n_chunks == cap_chunks) {
    size_t ncap = cap_chunks ? cap_chunks * 2 : 256;
    void **n = realloc (chunks, ncap * sizeof *n);
    if (!n)
      return false;
    chunks = n;
    cap_chunks = ncap;
  }
  void *c = mmap (NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (c == MAP_FAILED) {
    if (!alloc_failed_reported)
      say ("ERROR allocation of %" PRIu64 "M failed at anon=%" PRIu64 "M: %s; holding what I have",
           CHUNK / MIB, anon_bytes () / MIB, strerror (errno));
    alloc_failed_reported = true;
    return false;
  }
  /* Non-zero content: a zero page could be deduplicated by the host
	 * (KSM, zero-page detection) and would not really be resident. */
  memset (c, pattern, CHUNK);
  chunks[n_chunks++] = c;
  return true;
}

/* What the schedule wants held; tick_sleep() keeps retrying to reach it
 * after an allocation failed or was refused. */
static uint64_t anon_target;

/* Moves held anonymous memory toward anon_target (rounded up to CHUNK).
 * Returns false if an allocation failed (what was reached is kept). */
static bool
anon_reach (void)
{
  size_t want = (size_t) ((anon_target + CHUNK - 1) / CHUNK);

  while (n_chunks > want)
    munmap (chunks[--n_chunks], CHUNK);
  if (n_chunks == want)
    alloc_failed_reported = false;
  while (n_chunks < want)
    if (!anon_grow_one ())
      return false;
  return true;
}

static bool
anon_set (uint64_t target)
{
  anon_target = target;
  return anon_reach ();
}

static void
anon_touch_all (void)
{
  pattern++;
  for (size_t i = 0; i < n_chunks; i++)
    touch_chunk (chunks[i]);
}

/* ---------- page cache ---------- */

static const char *cache_dir = "/tmp";
static char cache_path[512];
static uint64_t cache_size; /* file size we asked for */

/* Sets the cache file to size bytes: grows it by writing, then reads it
 * all so it is resident; shrinking truncates (which drops those pages). */
static bool
cache_set (uint64_t size)
{
  static char buf[1 << 16];
  int fd;

  if (size == 0) {
    if (cache_size)
      unlink (cache_path);
    cache_size = 0;
    return true;
  }
  fd = open (cache_path, O_RDWR | O_CREAT, 0600);
  if (fd < 0) {
    say ("ERROR cache: open %s: %s", cache_path, strerror (errno));
    return false;
  }
  if (size < cache_size) {
    if (ftruncate (fd, (off_t) size) != 0)
      say ("ERROR cache: truncate %s: %s", cache_path, strerror (errno));
  } else {
    memset (buf, 0xa5, sizeof buf);
    if (lseek (fd, (off_t) cache_size, SEEK_SET) < 0)
      goto fail;
    for (uint64_t off = cache_size; off < size;) {
      size_t n = sizeof buf;
      if (size - off < n)
        n = (size_t) (size - off);
      ssize_t w = write (fd, buf, n);
      if (w <= 0) {
        say ("ERROR cache: write %s at %" PRIu64 "M: %s; cache "
             "stays at %" PRIu64 "M",
             cache_path, off / MIB, w < 0 ? strerror (errno) : "short write", off / MIB);
        size = off;
        break;
      }
      off += (uint64_t) w;
    }
  }
  cache_size = size;
  /* Read it back: pages written long ago or reclaimed since come back. */
  if (lseek (fd, 0, SEEK_SET) < 0)
    goto fail;
  while (read (fd, buf, sizeof buf) > 0)
    ;
  close (fd);
  return true;
fail:
  say ("ERROR cache: %s: %s", cache_path, strerror (errno));
  close (fd);
  return false;
}

/* Bytes of the cache file resident in the page cache right now. */
static uint64_t
cache_resident (void)
{
  long pg = sysconf (_SC_PAGESIZE);
  uint64_t res = 0;
  unsigned char vec[4096];

  if (cache_size == 0)
    return 0;
  int fd = open (cache_path, O_RDONLY);
  if (fd < 0)
    return 0;
  void *m = mmap (NULL, cache_size, PROT_READ, MAP_SHARED, fd, 0);
  close (fd);
  if (m == MAP_FAILED)
    return 0;
  uint64_t window = (uint64_t) sizeof vec * (uint64_t) pg;
  for (uint64_t off = 0; off < cache_size; off += window) {
    uint64_t len = cache_size - off < window ? cache_size - off : window;
    if (mincore ((char *) m + off, len, vec) != 0)
      break;
    for (uint64_t i = 0; i < (len + (uint64_t) pg - 1) / (uint64_t) pg; i++)
      res += vec[i] & 1;
  }
  munmap (m, cache_size);
  return res * (uint64_t) pg;
}

/* Reads one byte of every page of the file through a mapping: marks the
 * pages used (a "hot" cache) and faults reclaimed ones back in, without
 * copying the whole file every second (slow under TCG). */
static void
cache_touch (void)
{
  long pg = sysconf (_SC_PAGESIZE);
  unsigned char sum = 0;

  if (cache_size == 0)
    return;
  int fd = open (cache_path, O_RDONLY);
  if (fd < 0)
    return;
  void *m = mmap (NULL, cache_size, PROT_READ, MAP_SHARED, fd, 0);
  close (fd);
  if (m == MAP_FAILED)
    return;
  for (uint64_t off = 0; off < cache_size; off += (uint64_t) pg)
    sum += ((volatile unsigned char *) m)[off];
  (void) sum;
  munmap (m, cache_size);
}

/* ---------- unmovable memory: slab ---------- */

#define SLAB_DIR           "/tmp/memtide-slab"
#define SLAB_FILES_PER_DIR 4096

static uint64_t slab_grown; /* bytes the guest's Slab grew while we made files */
static unsigned long slab_files;

static void report_if_due (bool force);

/* Makes empty files on a tmpfs until the guest's Slab has grown by size:
 * each holds an inode and a dentry, kernel memory that stays (and cannot
 * move) while the file exists. The tmpfs is its own, mounted without an
 * inode limit (the rootfs allows about one inode per 2 pages of RAM);
 * where mounting is not allowed the files go to the directory itself.
 * Stops early, with an ERROR line, when MemAvailable reaches the reserve
 * or a file cannot be made. */
static bool
slab_grow (uint64_t size)
{
  uint64_t base = meminfo_bytes ("Slab");
  uint64_t now = base;
  char path[96];

  if (base == UINT64_MAX) {
    say ("ERROR slab: no Slab in /proc/meminfo");
    return false;
  }
  if (mkdir (SLAB_DIR, 0700) == 0) {
    if (mount ("memtide-slab", SLAB_DIR, "tmpfs", 0, "nr_inodes=0,mode=0700") != 0)
      say ("slab: cannot mount a tmpfs on %s (%s): using the directory as it is", SLAB_DIR,
           strerror (errno));
  } else if (errno != EEXIST) {
    say ("ERROR slab: mkdir %s: %s", SLAB_DIR, strerror (errno));
    return false;
  }
  while (now < base + size) {
    for (int i = 0; i < 256; i++, slab_files++) {
      if (slab_files % SLAB_FILES_PER_DIR == 0) {
        snprintf (path, sizeof path, SLAB_DIR "/%lu", slab_files / SLAB_FILES_PER_DIR);
        if (mkdir (path, 0700) != 0 && errno != EEXIST)
          goto fail;
      }
      snprintf (path, sizeof path, SLAB_DIR "/%lu/%lu", slab_files / SLAB_FILES_PER_DIR,
                slab_files % SLAB_FILES_PER_DIR);
      int fd = open (path, O_WRONLY | O_CREAT | O_EXCL, 0600);
      if (fd < 0)
        goto fail;
      close (fd);
    }
    now = meminfo_bytes ("Slab");
    if (now == UINT64_MAX)
      now = base;
    uint64_t avail = mem_available ();
    if (reserve && avail != UINT64_MAX && avail < reserve) {
      say ("ERROR slab: stopped at +%" PRIu64 "M: MemAvailable %" PRIu64 "M is below the reserve "
           "%" PRIu64 "M",
           (now - base) / MIB, avail / MIB, reserve / MIB);
      break;
    }
    report_if_due (false);
  }
  slab_grown += now > base ? now - base : 0;
  say ("slab: Slab grew by %" PRIu64 "M (%" PRIu64 "M in all) with %lu files in " SLAB_DIR,
       (now > base ? now - base : 0) / MIB, slab_grown / MIB, slab_files);
  return now >= base + size;
fail:
  say ("ERROR slab: %s: %s; Slab grew by %" PRIu64 "M", path, strerror (errno),
       (now > base ? now - base : 0) / MIB);
  slab_grown += now > base ? now - base : 0;
  return false;
}

/* ---------- unmovable memory: pinned pages ---------- */

/* io_uring caps one registered buffer at 1 GiB. */
#define PIN_IOV_MAX (UINT64_C (1) << 30)

static void *pin_buf;
static uint64_t pin_size;
static int pin_ring = -1;

static void
pin_release (void)
{
  if (pin_ring >= 0)
    close (pin_ring); /* unregisters the buffers: the pins go */
  if (pin_buf)
    munmap (pin_buf, pin_size);
  pin_ring = -1;
  pin_buf = NULL;
  pin_size = 0;
}

/* Holds size bytes of anonymous memory pinned (FOLL_LONGTERM, as for DMA)
 * by registering it as io_uring fixed buffers, through the raw system
 * calls: pin_user_pages() first migrates pages out of ZONE_MOVABLE, so
 * the pins land in a kernel zone. 0 releases the pins. */
static bool
pin_set (uint64_t size)
{
  struct io_uring_params params;
  struct iovec iov[64];
  unsigned n = 0;

  pin_release ();
  if (size == 0)
    return true;
  uint64_t avail = mem_available ();
  if (reserve && avail != UINT64_MAX && avail < reserve + size) {
    say ("ERROR pin: refused %" PRIu64 "M: MemAvailable %" PRIu64 "M would fall below the "
         "reserve %" PRIu64 "M",
         size / MIB, avail / MIB, reserve / MIB);
    return false;
  }
  if (size > PIN_IOV_MAX * (sizeof iov / sizeof iov[0])) {
    say ("ERROR pin: %" PRIu64 "M is more than this program registers", size / MIB);
    return false;
  }
  pin_buf = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (pin_buf == MAP_FAILED) {
    pin_buf = NULL;
    say ("ERROR pin: mmap %" PRIu64 "M: %s", size / MIB, strerror (errno));
    return false;
  }
  pin_size = size;
  memset (pin_buf, pattern, size);
  memset (&params, 0, sizeof params);
  pin_ring = (int) syscall (__NR_io_uring_setup, 1, &params);
  if (pin_ring < 0) {
    say ("ERROR pin: io_uring_setup: %s", strerror (errno));
    pin_release ();
    return false;
  }
  for (uint64_t off = 0; off < size; off += PIN_IOV_MAX, n++) {
    iov[n].iov_base = (char *) pin_buf + off;
    iov[n].iov_len = (size_t) (size - off < PIN_IOV_MAX ? size - off : PIN_IOV_MAX);
  }
  if (syscall (__NR_io_uring_register, pin_ring, IORING_REGISTER_BUFFERS, iov, n) != 0) {
    say ("ERROR pin: io_uring_register(IORING_REGISTER_BUFFERS, %" PRIu64 "M): %s", size / MIB,
         strerror (errno));
    pin_release ();
    return false;
  }
  say ("pin: %" PRIu64 "M pinned as io_uring registered buffers", size / MIB);
  return true;
}

/* ---------- running the schedule ---------- */

static double t0;
static double next_report;
static const char *cur_step = "start";
static int cur_idx;
static long cur_pass = 1;

static void
report_if_due (bool force)
{
  double t = now_s () - t0;
  if (!force && t < next_report)
    return;
  char extra[48] = "", shortfall[48] = "";
  if (slab_grown || pin_size)
    snprintf (extra, sizeof extra, " slab=%" PRIu64 "M pinned=%" PRIu64 "M", slab_grown / MIB,
              pin_size / MIB);
  if (anon_bytes () < anon_target)
    snprintf (shortfall, sizeof shortfall, " anon-wanted=%" PRIu64 "M", anon_target / MIB);
  say ("t=%.1f anon=%" PRIu64 "M cache=%" PRIu64 "M step=%s idx=%d pass=%ld%s%s", t,
       anon_bytes () / MIB, cache_resident () / MIB, cur_step, cur_idx, cur_pass, extra, shortfall);
  while (next_report <= t)
    next_report += 1.0;
}

static void
tick_sleep (void)
{
  struct timespec ts = { 0, TICK_NS };
  nanosleep (&ts, NULL);
  if (anon_bytes () < anon_target)
    anon_reach ();
  report_if_due (false);
}

/* Waits dur seconds; touching memory once a second when hot. */
static void
wait_for (double dur, bool hot)
{
  double end = now_s () + dur;
  double next_touch = now_s () + 1.0;

  while (now_s () < end) {
    tick_sleep ();
    if (hot && now_s () >= next_touch) {
      anon_touch_all ();
      cache_touch ();
      next_touch += 1.0;
    }
  }
}

static void
run_ramp (const struct step *st)
{
  uint64_t from = st->has_from ? st->from : anon_bytes ();
  double start = now_s ();

  if (st->has_from)
    anon_set (from);
  for (;;) {
    double f = st->dur > 0 ? (now_s () - start) / st->dur : 1.0;
    if (f >= 1.0)
      break;
    double target = (double) from + ((double) st->size - (double) from) * f;
    anon_set ((uint64_t) target);
    tick_sleep ();
  }
  anon_set (st->size);
}

static void
run_schedule (const struct schedule *sc)
{
  long loops_done = 0;

  for (int i = 0; i < sc->n; i++) {
    const struct step *st = &sc->steps[i];
    cur_step = step_names[st->kind];
    cur_idx = i + 1;
    say ("step %d/%d %s begins", i + 1, sc->n, st->text);
    switch (st->kind) {
    case STEP_ANON:
      anon_set (st->size);
      break;
    case STEP_RAMP:
      run_ramp (st);
      break;
    case STEP_BURST: {
      uint64_t base = anon_target;
      anon_set (base + st->size);
      wait_for (st->dur, true);
      anon_set (base);
      break;
    }
    case STEP_HOLD:
      wait_for (st->dur, true);
      break;
    case STEP_SLEEP:
      wait_for (st->dur, false);
      break;
    case STEP_FREE:
      anon_set (0);
      break;
    case STEP_CACHE:
      cache_set (st->size);
      break;
    case STEP_UNCACHE:
      cache_set (0);
      break;
    case STEP_SLAB:
      slab_grow (st->size);
      break;
    case STEP_PIN:
      pin_set (st->size);
      break;
    case STEP_EXIT:
      report_if_due (true);
      say ("exit step reached");
      exit (0);
    case STEP_LOOP:
      if (st->count >= 0 && loops_done >= st->count)
        break;
      loops_done++;
      cur_pass++;
      i = -1; /* the for loop's i++ makes it 0 */
      break;
    }
    report_if_due (false);
  }
}

static void
usage (FILE *f)
{
  fprintf (f, "Usage: " PROG " [--cache-dir DIR] [--reserve SIZE] SCHEDULE\n"
              "       " PROG " --check SCHEDULE\n"
              "\n"
              "Runs a memory workload following SCHEDULE, a comma-separated list of\n"
              "steps (no spaces), e.g.\n"
              "  ramp:0M-400M/20s,hold:30s,free,cache:200M,burst:300M/5s,sleep:10s,loop\n"
              "\n"
              "Steps:\n"
              "  anon:SIZE            hold SIZE of anonymous memory now (allocate and\n"
              "                       touch, or free down to it)\n"
              "  ramp:[FROM-]TO/DUR   move held anonymous memory linearly from FROM\n"
              "                       (default: what is held now) to TO over DUR\n"
              "  burst:SIZE/DUR       allocate SIZE more, keep it hot for DUR, free it\n"
              "  hold:DUR             keep everything for DUR and touch it every second\n"
              "                       (a hot working set)\n"
              "  sleep:DUR            keep everything for DUR without touching it\n"
              "                       (idle memory)\n"
              "  free                 free all anonymous memory (same as anon:0M)\n"
              "  cache:SIZE           make the cache file SIZE long (write, then read it\n"
              "                       back so it is in the page cache); smaller SIZE\n"
              "                       truncates it\n"
              "  uncache              delete the cache file (same as cache:0M)\n"
              "  slab:SIZE            make empty files in " SLAB_DIR " (a tmpfs mounted\n"
              "                       there without inode limit) until the guest's Slab\n"
              "                       (/proc/meminfo) has grown by SIZE: inodes and\n"
              "                       dentries, kernel memory that cannot move; kept\n"
              "  pin:SIZE             hold SIZE of anonymous memory pinned as io_uring\n"
              "                       registered buffers (replacing what was pinned);\n"
              "                       pin:0M releases it\n"
              "  loop[:N]             start again from the first step, forever or N more\n"
              "                       times; only as the last step\n"
              "  exit                 exit with status 0; only as the last step\n"
              "SIZE is an integer with unit K, M or G (powers of 1024), e.g. 300M.\n"
              "DUR is a number with unit ms, s, m or h, e.g. 20s, 1.5m.\n"
              "Without loop or exit, the program keeps what it holds and idles after\n"
              "the last step (step=done).\n"
              "\n"
              "Anonymous memory is held in 2 MiB chunks filled with non-zero bytes.\n"
              "The cache file is DIR/memtide-cache (--cache-dir, default /tmp): on a\n"
              "real filesystem (the testbed's cache disk) it is reclaimable page cache;\n"
              "on tmpfs it is shared memory that cannot be reclaimed without swap.\n"
              "\n"
              "Once a second it prints\n"
              "  " PROG ": t=SECONDS anon=MIB cache=MIB step=KIND idx=N pass=N\n"
              "where cache is the part of the cache file resident in memory now\n"
              "(after a slab or pin step also slab=MIB pinned=MIB).\n"
              "\n"
              "Options:\n"
              "  --check SCHEDULE     only parse SCHEDULE; exit 0 if valid, 2 if not\n"
              "  --cache-dir DIR      directory for the cache file (default /tmp)\n"
              "  --reserve SIZE       do not allocate while the guest's MemAvailable would\n"
              "                       drop below SIZE (default 32M; 0M: allocate until the\n"
              "                       OOM killer strikes); a failed or refused allocation\n"
              "                       is retried every 100 ms, and progress lines then end\n"
              "                       with anon-wanted=MIB\n"
              "  -h, --help           show this help\n");
}

int
main (int argc, char **argv)
{
  static struct schedule sc;
  const char *text = NULL;
  bool check = false;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "-h") == 0 || strcmp (argv[i], "--help") == 0) {
      usage (stdout);
      return 0;
    } else if (strcmp (argv[i], "--check") == 0) {
      check = true;
    } else if (strcmp (argv[i], "--cache-dir") == 0 && i + 1 < argc) {
      cache_dir = argv[++i];
    } else if (strcmp (argv[i], "--reserve") == 0 && i + 1 < argc) {
      const char *end;
      if (!parse_size (argv[++i], &end, &reserve) || *end) {
        fprintf (stderr,
                 PROG ": bad --reserve '%s' (expected e.g. "
                      "32M)\n",
                 argv[i]);
        return 2;
      }
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      fprintf (stderr, PROG ": unknown option '%s' (see --help)\n", argv[i]);
      return 2;
    } else if (!text) {
      text = argv[i];
    } else {
      fprintf (stderr, PROG ": more than one schedule given (see --help)\n");
      return 2;
    }
  }
  if (!text) {
    usage (stderr);
    return 2;
  }
  if (!parse_schedule (text, &sc))
    return 2;
  if (check)
    return 0;

  snprintf (cache_path, sizeof cache_path, "%s/memtide-cache", cache_dir);
  unlink (cache_path); /* a leftover would count as ours */
  /* Unbuffered progress: the console is our only channel. */
  setvbuf (stdout, NULL, _IONBF, 0);
  signal (SIGPIPE, SIG_IGN);

  t0 = now_s ();
  say ("schedule %s (%d steps), cache file %s", text, sc.n, cache_path);
  report_if_due (true);
  run_schedule (&sc);
  cur_step = "done";
  cur_idx = 0;
  say ("schedule done; holding anon=%" PRIu64 "M cache=%" PRIu64 "M", anon_bytes () / MIB,
       cache_size / MIB);
  for (;;)
    tick_sleep ();
}
