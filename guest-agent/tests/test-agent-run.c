/* memtide-agent: the whole agent against a fake /proc + /sys tree.
 *
 * Each case copies data/root to a temporary directory and runs
 * agent_main() in a forked child (so valgrind, which follows fork, checks
 * the agent too) with --root pointing there; one case runs the real built
 * binary.  Reports and replies are parsed with json-c and every field is
 * checked against what the fake files say.
 *
 * The machine may be busy (CI shares 2 cores; valgrind runs the agent 20-50
 * times slower): a test waits for a condition with a generous deadline,
 * never for a fixed time, and the agent's timing is printed, not
 * asserted.  To know that the agent has looked at a file of the tree
 * since the test wrote it, a test watches the file's reads (inotify
 * IN_ACCESS). */
#include "tap.h"

#include "agent.h"
#include "xsport.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINES 256

static char tree[256];

static uint64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* How long a test waits for the agent to do what takes it milliseconds
 * on a quiet machine. */
#define WAIT_MS 20000

/* A fresh copy of data/root (or an empty tree). */
static const char *
make_tree (bool empty)
{
  char cmd[1024];
  const char *data = getenv ("AGENT_TEST_DATA");

  snprintf (tree, sizeof tree, "/tmp/memtide-agent-test-XXXXXX");
  if (!mkdtemp (tree))
    abort ();
  if (!empty) {
    snprintf (cmd, sizeof cmd, "cp -a '%s/root/.' '%s/'", data ? data : "data", tree);
    if (system (cmd) != 0)
      abort ();
  }
  return tree;
}

static void
remove_tree (void)
{
  char cmd[512];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tree);
  if (system (cmd) != 0)
    printf ("# could not remove %s\n", tree);
}

static void
write_file (const char *rel, const char *content)
{
  char path[512];
  FILE *f;

  snprintf (path, sizeof path, "%s/%s", tree, rel);
  f = fopen (path, "w");
  if (!f)
    abort ();
  fputs (content, f);
  fclose (f);
}

/* Rewrites a file of the tree in place with one write and no truncation,
 * as the kernel updates a /proc file: the agent keeps it open and
 * re-reads it from offset 0, and must never catch it empty.  The text
 * must be as long as what it replaces, or longer. */
static void
rewrite_file (const char *rel, const char *content)
{
  char path[512];
  size_t len = strlen (content);
  int fd;

  snprintf (path, sizeof path, "%s/%s", tree, rel);
  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || pwrite (fd, content, len, 0) != (ssize_t) len)
    abort ();
  close (fd);
}

static char *
read_file (const char *rel)
{
  static char buf[8192];
  char path[512];
  FILE *f;
  size_t n;

  snprintf (path, sizeof path, "%s/%s", tree, rel);
  f = fopen (path, "r");
  if (!f)
    return NULL;
  n = fread (buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose (f);
  return buf;
}

struct run {
  int status;
  char out[1 << 16];
  size_t out_len;
  char err[1 << 14];
  size_t err_len;
};

static int
argc_of (char **argv)
{
  int n = 0;
  while (argv[n])
    n++;
  return n;
}

/* Runs the agent (in-process code in a fork, or exe when given) with
 * input on stdin, collecting stdout and stderr until it exits. */
static void
run_agent (struct run *r, const char *exe, const char *input, char **argv)
{
  int in[2], out[2], err[2];
  pid_t pid;
  uint64_t deadline = now_ms () + 60000;
  bool out_open = true, err_open = true;

  memset (r, 0, sizeof *r);
  if (pipe (in) < 0 || pipe (out) < 0 || pipe (err) < 0)
    abort ();
  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    dup2 (in[0], 0);
    dup2 (out[1], 1);
    dup2 (err[1], 2);
    close (in[0]);
    close (in[1]);
    close (out[0]);
    close (out[1]);
    close (err[0]);
    close (err[1]);
    if (exe) {
      execv (exe, argv);
      _exit (127);
    }
    _exit (agent_main (argc_of (argv), argv));
  }
  close (in[0]);
  close (out[1]);
  close (err[1]);
  if (input && *input && write (in[1], input, strlen (input)) != (ssize_t) strlen (input))
    printf ("# short write to the agent's stdin\n");
  close (in[1]);
  while ((out_open || err_open) && now_ms () < deadline) {
    struct pollfd p[2] = { { out_open ? out[0] : -1, POLLIN, 0 },
                           { err_open ? err[0] : -1, POLLIN, 0 } };
    if (poll (p, 2, 1000) <= 0)
      continue;
    if (p[0].revents) {
      ssize_t n = read (out[0], r->out + r->out_len, sizeof r->out - 1 - r->out_len);
      if (n <= 0)
        out_open = false;
      else
        r->out_len += (size_t) n;
    }
    if (p[1].revents) {
      ssize_t n = read (err[0], r->err + r->err_len, sizeof r->err - 1 - r->err_len);
      if (n <= 0)
        err_open = false;
      else
        r->err_len += (size_t) n;
    }
  }
  if (out_open || err_open) {
    printf ("# agent did not finish in time: killing it\n");
    kill (pid, SIGKILL);
  }
  close (out[0]);
  close (err[0]);
  waitpid (pid, &r->status, 0);
  r->out[r->out_len] = r->err[r->err_len] = '\0';
  if (!WIFEXITED (r->status))
    printf ("# agent died: status 0x%x\n", r->status);
}

static void
show_stderr (const struct run *r)
{
  const char *p = r->err;
  while (*p) {
    const char *nl = strchr (p, '\n');
    int n = nl ? (int) (nl - p) : (int) strlen (p);
    printf ("#   agent: %.*s\n", n, p);
    p += n + (nl ? 1 : 0);
  }
}

/* Splits text into JSON objects, one per line; every line must parse
 * (empty lines are allowed: the agent sends one after connecting). */
static int
parse_lines (const char *text, json_object **objs)
{
  int n = 0;
  const char *p = text;

  while (*p && n < MAX_LINES) {
    const char *nl = strchr (p, '\n');
    size_t len;
    CHECK (nl != NULL); /* every line ends with a newline */
    if (!nl)
      break;
    len = (size_t) (nl - p);
    CHECK (len + 1 <= 4096);
    if (len > 0) {
      struct json_tokener *tok = json_tokener_new ();
      json_object *o = json_tokener_parse_ex (tok, p, (int) len);
      if (!o || json_tokener_get_parse_end (tok) != len) {
        printf ("# not a JSON line: %.*s\n", (int) len, p);
        tap_failed = true;
        json_object_put (o);
      } else {
        objs[n++] = o;
      }
      json_tokener_free (tok);
    }
    p = nl + 1;
  }
  return n;
}

static void
free_lines (json_object **objs, int n)
{
  for (int i = 0; i < n; i++)
    json_object_put (objs[i]);
}

/* "a.b.c" inside nested objects. */
static json_object *
jget (json_object *o, const char *path)
{
  char key[64];

  while (o && *path) {
    size_t n = strcspn (path, ".");
    json_object *v;
    snprintf (key, sizeof key, "%.*s", (int) n, path);
    if (!json_object_is_type (o, json_type_object) || !json_object_object_get_ex (o, key, &v))
      return NULL;
    o = v;
    path += n + (path[n] == '.');
  }
  return o;
}

static uint64_t
ju (json_object *o, const char *path)
{
  json_object *v = jget (o, path);
  if (!v || !json_object_is_type (v, json_type_int)) {
    printf ("# missing integer field %s\n", path);
    tap_failed = true;
    return UINT64_MAX;
  }
  return json_object_get_uint64 (v);
}

static const char *
js (json_object *o, const char *path)
{
  json_object *v = jget (o, path);
  if (!v || !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

static bool
jb (json_object *o, const char *path)
{
  json_object *v = jget (o, path);
  return v && json_object_is_type (v, json_type_boolean) && json_object_get_boolean (v);
}

static double
jd (json_object *o, const char *path)
{
  json_object *v = jget (o, path);
  return v && json_object_is_type (v, json_type_double) ? json_object_get_double (v) : -1.0;
}

/* The array at path joined with commas, e.g. "psi,vmstat". */
static const char *
jlist (json_object *o, const char *path)
{
  static char buf[512];
  json_object *a = jget (o, path);

  buf[0] = '\0';
  if (!a || !json_object_is_type (a, json_type_array))
    return "(not an array)";
  for (size_t i = 0; i < json_object_array_length (a); i++) {
    if (i)
      strcat (buf, ",");
    strncat (buf, json_object_get_string (json_object_array_get_idx (a, i)), 64);
  }
  return buf;
}

static size_t
jlen (json_object *o, const char *path)
{
  json_object *v = jget (o, path);
  return v && json_object_is_type (v, json_type_object) ? (size_t) json_object_object_length (v)
                                                        : 0;
}

static json_object *
find (json_object **objs, int n, const char *type, long long id)
{
  for (int i = 0; i < n; i++) {
    json_object *v;
    if (strcmp (js (objs[i], "type") ? js (objs[i], "type") : "", type) != 0)
      continue;
    if (id < 0)
      return objs[i];
    if (json_object_object_get_ex (objs[i], "id", &v) && json_object_is_type (v, json_type_int)
        && json_object_get_int64 (v) == id)
      return objs[i];
  }
  printf ("# no %s with id %lld\n", type, id);
  tap_failed = true;
  return NULL;
}

/* The fake tree's memoryN/usage summed per kind, in bytes: kernel zone
 * blocks 0 (zones "none"), 1 (DMA32), 2 (Normal); movable 8, 9; /proc/iomem
 * puts 2, 8 and 9 in virtio-mem ranges.  Offline blocks 10 and 11 never
 * count. */
static void
check_block_usage (json_object *o, bool with_vmem)
{
  uint64_t ps = (uint64_t) sysconf (_SC_PAGESIZE);

  CHECK_U64 (ju (o, "block_usage.kernel.blocks"), 3);
  CHECK_U64 (ju (o, "block_usage.kernel.free"), 31000 * ps);
  CHECK_U64 (ju (o, "block_usage.kernel.movable"), 22000 * ps);
  CHECK_U64 (ju (o, "block_usage.kernel.unmovable"), 43000 * ps);
  CHECK_U64 (ju (o, "block_usage.kernel.pinned"), 24 * ps);
  CHECK_U64 (ju (o, "block_usage.kernel.offline"), 0);
  CHECK_U64 (jlen (o, "block_usage.kernel"), 6);
  CHECK_U64 (ju (o, "block_usage.movable.blocks"), 2);
  CHECK_U64 (ju (o, "block_usage.movable.free"), 46384 * ps);
  CHECK_U64 (ju (o, "block_usage.movable.movable"), 2000 * ps);
  CHECK_U64 (ju (o, "block_usage.movable.unmovable"), 0);
  CHECK_U64 (ju (o, "block_usage.movable.pinned"), 0);
  CHECK_U64 (ju (o, "block_usage.movable.offline"), 16384 * ps);
  if (!with_vmem) {
    CHECK (jget (o, "block_usage.virtio_mem") == NULL);
    CHECK_U64 (jlen (o, "block_usage"), 2);
    return;
  }
  CHECK_U64 (ju (o, "block_usage.virtio_mem.blocks"), 3);
  CHECK_U64 (ju (o, "block_usage.virtio_mem.free"), 66384 * ps);
  CHECK_U64 (ju (o, "block_usage.virtio_mem.movable"), 10000 * ps);
  CHECK_U64 (ju (o, "block_usage.virtio_mem.unmovable"), 4000 * ps);
  CHECK_U64 (ju (o, "block_usage.virtio_mem.pinned"), 8 * ps);
  CHECK_U64 (ju (o, "block_usage.virtio_mem.offline"), 16384 * ps);
  CHECK_U64 (jlen (o, "block_usage"), 3);
}

/* The fake tree's numbers, as the host must receive them. */
static void
check_full_report (json_object *o)
{
  CHECK_U64 (ju (o, "mem.total"), 2014760ull * 1024);
  CHECK_U64 (ju (o, "mem.free"), 1021340ull * 1024);
  CHECK_U64 (ju (o, "mem.available"), 1502212ull * 1024);
  CHECK_U64 (ju (o, "mem.cached"), (401234ull + 12288) * 1024);
  CHECK_U64 (ju (o, "mem.shmem"), 8192ull * 1024);
  CHECK_U64 (ju (o, "mem.anon"), 301111ull * 1024);
  CHECK_U64 (ju (o, "mem.slab_reclaimable"), 44444ull * 1024);
  CHECK_U64 (ju (o, "mem.inactive_file"), 233333ull * 1024);
  CHECK_U64 (ju (o, "mem.swap_total"), 524284ull * 1024);
  CHECK_U64 (ju (o, "mem.swap_free"), 500000ull * 1024);
  CHECK_U64 (jlen (o, "mem"), 10);
  CHECK_U64 (ju (o, "vmstat.pgmajfault"), 4242);
  CHECK_U64 (ju (o, "vmstat.pswpin_bytes"), 17ull * (uint64_t) sysconf (_SC_PAGESIZE));
  CHECK_U64 (ju (o, "vmstat.pswpout_bytes"), 33ull * (uint64_t) sysconf (_SC_PAGESIZE));
  CHECK_U64 (ju (o, "vmstat.oom_kill"), 2);
  CHECK_U64 (jlen (o, "vmstat"), 4);
  CHECK (jd (o, "psi.some.avg10") == 0.52);
  CHECK (jd (o, "psi.some.avg60") == 1.25);
  CHECK_U64 (ju (o, "psi.some.total_us"), 123456);
  CHECK (jd (o, "psi.full.avg10") == 0.0);
  CHECK (jd (o, "psi.full.avg60") == 0.30);
  CHECK_U64 (ju (o, "psi.full.total_us"), 45678);
  CHECK_U64 (ju (o, "memory_blocks.block_size"), 0x8000000);
  CHECK_U64 (ju (o, "memory_blocks.online_movable"), 2);
  CHECK_U64 (ju (o, "memory_blocks.online_kernel"), 3);
  CHECK_U64 (ju (o, "memory_blocks.offline"), 1);
  CHECK_U64 (ju (o, "memory_blocks.going_offline"), 1);
  CHECK_U64 (ju (o, "page_reporting.order"), 9);
  CHECK_U64 (ju (o, "page_reporting.reported_bytes"), 1073741824ull);
  CHECK_U64 (ju (o, "page_reporting.reported_total_bytes"), 8589934592ull);
  CHECK_U64 (ju (o, "page_reporting.reused_total_bytes"), 4294967296ull);
  CHECK_U64 (ju (o, "page_reporting.passes"), 120);
  CHECK_U64 (ju (o, "page_reporting.budget_exhausted"), 30);
  CHECK_U64 (ju (o, "page_reporting.delay_ms"), 2000);
  CHECK_U64 (ju (o, "page_reporting.budget_divisor"), 16);
  CHECK_U64 (jlen (o, "page_reporting"), 8);
  check_block_usage (o, true);
}

static void
test_once_report (void)
{
  struct run *r = malloc (sizeof *r);
  json_object *objs[MAX_LINES];
  char *argv[] = { "memtide-agent", "--root",     (char *) make_tree (false),
                   "--once",        "--output",   "-",
                   "--no-mlock",    "--no-mount", NULL };
  int n;

  run_agent (r, NULL, NULL, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 1);
  if (n == 1) {
    json_object *o = objs[0];
    CHECK_U64 (ju (o, "v"), 1);
    CHECK_STR (js (o, "type"), "report");
    CHECK_U64 (ju (o, "seq"), 1);
    CHECK_STR (js (o, "reason"), "connect");
    CHECK (ju (o, "mono_us") > 0);
    CHECK (jb (o, "hello"));
    CHECK_STR (js (o, "agent"), "memtide-agent " AGENT_VERSION);
    CHECK_STR (js (o, "kernel"), "6.1.0-test-cloud-amd64");
    CHECK_STR (js (o, "boot_id"), "3c9a0c5e-7a57-4d4b-9f38-0f3f6c1d2e11");
    CHECK_U64 (ju (o, "page_size"), (uint64_t) sysconf (_SC_PAGESIZE));
    CHECK_U64 (ju (o, "interval_ms"), 1000);
    /* A fake tree is not procfs: no trigger, polling instead. */
    CHECK_STR (js (o, "psi_mode"), "poll");
    CHECK_STR (js (o, "psi_trigger"), "some 150000 1000000");
    CHECK_STR (jlist (o, "reclaim_methods"), "memory.reclaim,drop_caches");
    CHECK (jb (o, "root") == (geteuid () == 0));
    CHECK_STR (jlist (o, "unavailable"), "psi_trigger");
    CHECK_U64 (ju (o, "dropped"), 0);
    check_full_report (o);
    CHECK (strstr (r->out, "\"avg10\":0.52,") != NULL); /* the kernel's text, as is */
  }
  if (tap_failed)
    show_stderr (r);
  free_lines (objs, n);
  free (r);
  remove_tree ();
}

static void
test_missing_files (void)
{
  struct run *r = malloc (sizeof *r);
  json_object *objs[MAX_LINES];
  char *argv[] = { "memtide-agent", "--root",     (char *) make_tree (true),
                   "--once",        "--output",   "-",
                   "--no-mlock",    "--no-mount", NULL };
  int n;

  run_agent (r, NULL, NULL, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 1);
  if (n == 1) {
    json_object *o = objs[0];
    CHECK_STR (jlist (o, "unavailable"),
               "meminfo,vmstat,psi,memory_blocks,page_reporting,page_reporting_counters,"
               "block_usage,memory.reclaim,drop_caches");
    CHECK_STR (js (o, "psi_mode"), "none");
    CHECK (jget (o, "psi_trigger") == NULL);
    CHECK_STR (jlist (o, "reclaim_methods"), "");
    CHECK (jget (o, "kernel") == NULL && jget (o, "boot_id") == NULL);
    CHECK (jget (o, "mem") == NULL && jget (o, "vmstat") == NULL && jget (o, "psi") == NULL);
    CHECK (jget (o, "memory_blocks") == NULL && jget (o, "page_reporting") == NULL);
    CHECK (jget (o, "block_usage") == NULL);
    CHECK_U64 (ju (o, "seq"), 1);
  }
  /* Said once on stderr, too. */
  CHECK (strstr (r->err, "unavailable in this guest: meminfo, vmstat, psi") != NULL);
  free_lines (objs, n);
  free (r);
  remove_tree ();
}

static void
test_corrupt_files (void)
{
  struct run *r = malloc (sizeof *r);
  json_object *objs[MAX_LINES];
  char *argv[] = { "memtide-agent", "--root",     (char *) make_tree (false),
                   "--once",        "--output",   "-",
                   "--no-mlock",    "--no-mount", NULL };
  char path[512];
  int n;

  write_file ("proc/vmstat", "\x01\x02garbage\npgmajfault\npswpin x\n");
  write_file ("proc/pressure/memory", "some avg10=999.00 avg60=0.00 avg300=0.00 total=1\n");
  write_file ("proc/meminfo", "MemTotal: 1000 kB\nMemFree: lots kB\n");
  write_file ("sys/module/page_reporting/parameters/page_reporting_order", "4294967295\n");
  snprintf (path, sizeof path, "%s/sys/devices/system/memory/memory8/valid_zones", tree);
  unlink (path);
  /* One block's usage without its pinned line: no sums at all. */
  write_file ("sys/devices/system/memory/memory1/usage", "free 1\nmovable 2\nunmovable 3\n"
                                                         "offline 0\n");
  write_file ("sys/kernel/mm/page_reporting/passes", "many\n");
  run_agent (r, NULL, NULL, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 1);
  if (n == 1) {
    json_object *o = objs[0];
    CHECK_STR (jlist (o, "unavailable"), "vmstat,psi,psi_trigger,memory_zones,block_usage");
    CHECK (jget (o, "block_usage") == NULL);
    CHECK (jget (o, "page_reporting.passes") == NULL);
    CHECK_U64 (ju (o, "page_reporting.budget_exhausted"), 30);
    CHECK_U64 (ju (o, "mem.total"), 1024000);
    CHECK_U64 (jlen (o, "mem"), 1);
    CHECK (jget (o, "vmstat") == NULL && jget (o, "psi") == NULL);
    /* Without its zone, an online block counts as not removable. */
    CHECK_U64 (ju (o, "memory_blocks.online_movable"), 1);
    CHECK_U64 (ju (o, "memory_blocks.online_kernel"), 4);
    /* -1: no device registered yet, so no order; the counters remain. */
    CHECK (jget (o, "page_reporting.order") == NULL);
    CHECK_U64 (ju (o, "page_reporting.reported_bytes"), 1073741824ull);
  }
  free_lines (objs, n);
  free (r);
  remove_tree ();
}

/* Without root, /proc/iomem shows every address as 0: no virtio_mem sums,
 * and the host is told why.  A stock kernel has no usage files at all. */
static void
test_block_usage_partial (void)
{
  struct run *r = malloc (sizeof *r);
  json_object *objs[MAX_LINES];
  char *argv[] = { "memtide-agent", "--root",     (char *) make_tree (false),
                   "--once",        "--output",   "-",
                   "--no-mlock",    "--no-mount", NULL };
  char cmd[512];
  int n;

  write_file ("proc/iomem", "00000000-00000000 : Reserved\n"
                            "00000000-00000000 : virtio3\n"
                            "  00000000-00000000 : System RAM (virtio_mem)\n");
  run_agent (r, NULL, NULL, argv);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 1);
  if (n == 1) {
    CHECK_STR (jlist (objs[0], "unavailable"), "psi_trigger,virtio_mem_ranges");
    check_block_usage (objs[0], false);
  }
  free_lines (objs, n);
  remove_tree ();

  argv[2] = (char *) make_tree (false);
  snprintf (cmd, sizeof cmd, "rm -f '%s'/sys/devices/system/memory/memory*/usage", tree);
  if (system (cmd) != 0)
    abort ();
  run_agent (r, NULL, NULL, argv);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 1);
  if (n == 1) {
    CHECK_STR (jlist (objs[0], "unavailable"), "psi_trigger,block_usage");
    CHECK (jget (objs[0], "block_usage") == NULL);
    CHECK_U64 (ju (objs[0], "memory_blocks.online_movable"), 2);
  }
  free_lines (objs, n);
  free (r);
  remove_tree ();
}

static void
test_requests (void)
{
  struct run *r = malloc (sizeof *r);
  json_object *objs[MAX_LINES], *o;
  char *argv[] = { "memtide-agent", "--root",   (char *) make_tree (false),
                   "--once",        "--output", "-",
                   "--input",       "-",        "--no-mlock",
                   "--no-mount",    NULL };
  static char input[8192];
  char longline[5001];
  int n;

  memset (longline, 'x', 5000);
  longline[5000] = '\0';
  snprintf (input, sizeof input,
            "{\"v\":1,\"id\":1,\"op\":\"reclaim\",\"bytes\":20971520}\n"
            "{not json\n"
            "%s\n"
            "{\"v\":1,\"id\":4,\"op\":\"defragment\"}\n"
            "{\"v\":1,\"id\":5,\"op\":\"report\"}\n"
            "{\"v\":1,\"id\":6,\"op\":\"reclaim\",\"bytes\":0}\n"
            "\n"
            "{\"v\":1,\"id\":8,\"op\":\"set_interval\",\"interval_ms\":250}\n"
            "{\"v\":1,\"id\":9,\"op\":\"hello\"}\n",
            longline);
  run_agent (r, NULL, input, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 9);

  if ((o = find (objs, n, "reply", 1))) {
    CHECK_STR (js (o, "op"), "reclaim");
    CHECK (jb (o, "ok"));
    CHECK_STR (js (o, "method"), "memory.reclaim");
    CHECK_U64 (ju (o, "requested"), 20971520);
    CHECK_U64 (ju (o, "reclaimed"), 20971520);
    CHECK (jb (o, "complete"));
  }
  /* memory.reclaim got the request in 16 MiB steps. */
  CHECK_STR (read_file ("sys/fs/cgroup/memory.reclaim"), "16777216\n4194304\n");
  {
    int malformed = 0, too_long = 0;
    /* Errors for lines without a usable id carry "id":null. */
    for (int i = 0; i < n; i++) {
      json_object *id = NULL;
      if (!js (objs[i], "error"))
        continue;
      CHECK (json_object_object_get_ex (objs[i], "id", &id));
      CHECK (!jb (objs[i], "ok"));
      CHECK (js (objs[i], "message") != NULL);
      if (id != NULL)
        continue;
      malformed += strcmp (js (objs[i], "error"), "malformed") == 0;
      too_long += strcmp (js (objs[i], "error"), "line_too_long") == 0;
    }
    CHECK_U64 (malformed, 1);
    CHECK_U64 (too_long, 1);
  }
  if ((o = find (objs, n, "reply", 4))) {
    CHECK_STR (js (o, "error"), "unknown_op");
    CHECK_STR (js (o, "op"), "defragment");
    CHECK (!jb (o, "ok"));
  }
  if ((o = find (objs, n, "report", 5))) {
    CHECK_STR (js (o, "reason"), "reply");
    CHECK (!jb (o, "hello"));
    check_full_report (o);
  }
  if ((o = find (objs, n, "reply", 6))) {
    CHECK_STR (js (o, "error"), "bad_request");
    CHECK_STR (js (o, "field"), "bytes");
  }
  if ((o = find (objs, n, "reply", 8))) {
    CHECK (jb (o, "ok"));
    CHECK_U64 (ju (o, "interval_ms"), 250);
  }
  if ((o = find (objs, n, "report", 9))) {
    CHECK_STR (js (o, "reason"), "reply");
    CHECK (jb (o, "hello"));
    CHECK_U64 (ju (o, "interval_ms"), 250);
  }
  if (tap_failed)
    show_stderr (r);
  free_lines (objs, n);
  free (r);
  remove_tree ();
}

/* tune_reporting writes the patched kernel's tunables and answers with
 * what they read back; without them it says "unavailable". */
static void
test_tune_reporting (void)
{
  struct run *r = malloc (sizeof *r);
  json_object *objs[MAX_LINES], *o;
  char *argv[] = { "memtide-agent", "--root",   (char *) make_tree (false),
                   "--once",        "--output", "-",
                   "--input",       "-",        "--no-mlock",
                   "--no-mount",    NULL };
  char path[512];
  int n;

  snprintf (path, sizeof path, "%s/sys/kernel/mm/page_reporting", tree);
  CHECK (mkdir (path, 0755) == 0 || errno == EEXIST);
  write_file ("sys/kernel/mm/page_reporting/delay_ms", "2000\n");
  write_file ("sys/kernel/mm/page_reporting/budget_divisor", "16\n");
  run_agent (r, NULL,
             "{\"v\":1,\"id\":1,\"op\":\"tune_reporting\",\"delay_ms\":100,\"budget_divisor\":1}\n"
             "{\"v\":1,\"id\":2,\"op\":\"tune_reporting\",\"delay_ms\":2000}\n"
             "{\"v\":1,\"id\":3,\"op\":\"tune_reporting\",\"budget_divisor\":2000}\n",
             argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  if ((o = find (objs, n, "reply", 1))) {
    CHECK_STR (js (o, "op"), "tune_reporting");
    CHECK (jb (o, "ok"));
    CHECK_U64 (ju (o, "delay_ms"), 100);
    CHECK_U64 (ju (o, "budget_divisor"), 1);
  }
  /* Only the delay: the divisor stays as the first request left it. */
  if ((o = find (objs, n, "reply", 2))) {
    CHECK (jb (o, "ok"));
    CHECK_U64 (ju (o, "delay_ms"), 2000);
    CHECK_U64 (ju (o, "budget_divisor"), 1);
  }
  if ((o = find (objs, n, "reply", 3))) {
    CHECK (!jb (o, "ok"));
    CHECK_STR (js (o, "error"), "bad_request");
    CHECK_STR (js (o, "field"), "budget_divisor");
  }
  CHECK_STR (read_file ("sys/kernel/mm/page_reporting/delay_ms"), "2000\n");
  CHECK_STR (read_file ("sys/kernel/mm/page_reporting/budget_divisor"), "1\n");
  if (tap_failed)
    show_stderr (r);
  free_lines (objs, n);

  /* A file the kernel refuses to write (here: not a file): "failed",
   * and the other file is left as it was. */
  snprintf (path, sizeof path, "%s/sys/kernel/mm/page_reporting/budget_divisor", tree);
  CHECK (unlink (path) == 0 && mkdir (path, 0755) == 0);
  run_agent (r, NULL, "{\"v\":1,\"id\":4,\"op\":\"tune_reporting\",\"budget_divisor\":4}\n", argv);
  n = parse_lines (r->out, objs);
  if ((o = find (objs, n, "reply", 4))) {
    CHECK (!jb (o, "ok"));
    CHECK_STR (js (o, "error"), "failed");
    CHECK_STR (js (o, "op"), "tune_reporting");
  }
  free_lines (objs, n);
  CHECK (rmdir (path) == 0);

  /* A stock kernel: no tunables. */
  snprintf (path, sizeof path, "%s/sys/kernel/mm/page_reporting/delay_ms", tree);
  CHECK (unlink (path) == 0);
  run_agent (r, NULL, "{\"v\":1,\"id\":5,\"op\":\"tune_reporting\",\"delay_ms\":100}\n", argv);
  n = parse_lines (r->out, objs);
  if ((o = find (objs, n, "reply", 5))) {
    CHECK (!jb (o, "ok"));
    CHECK_STR (js (o, "error"), "unavailable");
  }
  if (tap_failed)
    show_stderr (r);
  free_lines (objs, n);
  free (r);
  remove_tree ();
}

static void
test_reclaim_fallback_and_busy (void)
{
  struct run *r = malloc (sizeof *r);
  json_object *objs[MAX_LINES], *o;
  char *argv[] = { "memtide-agent", "--root",   (char *) make_tree (false),
                   "--once",        "--output", "-",
                   "--input",       "-",        "--no-mlock",
                   "--no-mount",    NULL };
  char path[512];
  int n;

  /* No memory.reclaim: refused unless drop_caches is allowed. */
  snprintf (path, sizeof path, "%s/sys/fs/cgroup/memory.reclaim", tree);
  unlink (path);
  run_agent (r, NULL,
             "{\"v\":1,\"id\":1,\"op\":\"reclaim\",\"bytes\":4096}\n"
             "{\"v\":1,\"id\":2,\"op\":\"reclaim\",\"bytes\":4096,\"allow_drop_caches\":true}\n",
             argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 3);
  CHECK_STR (jlist (objs[0], "reclaim_methods"), "drop_caches");
  if ((o = find (objs, n, "reply", 1)))
    CHECK_STR (js (o, "error"), "unavailable");
  if ((o = find (objs, n, "reply", 2))) {
    CHECK (jb (o, "ok"));
    CHECK_STR (js (o, "method"), "drop_caches");
    CHECK_U64 (ju (o, "requested"), 4096);
    /* MemFree of a fake tree does not move: nothing measured. */
    CHECK_U64 (ju (o, "reclaimed"), 0);
    CHECK (!jb (o, "complete"));
  }
  CHECK_STR (read_file ("proc/sys/vm/drop_caches"), "3\n");
  free_lines (objs, n);
  remove_tree ();

  /* One reclaim at a time; a long one ends at its timeout. */
  argv[2] = (char *) make_tree (false);
  run_agent (r, NULL,
             "{\"v\":1,\"id\":1,\"op\":\"reclaim\",\"bytes\":1099511627776,\"timeout_ms\":100}\n"
             "{\"v\":1,\"id\":2,\"op\":\"reclaim\",\"bytes\":4096}\n",
             argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 3);
  if ((o = find (objs, n, "reply", 2)))
    CHECK_STR (js (o, "error"), "busy");
  if ((o = find (objs, n, "reply", 1))) {
    CHECK (jb (o, "ok"));
    CHECK (!jb (o, "complete"));
    CHECK (jb (o, "timed_out"));
    CHECK (ju (o, "reclaimed") % (16u << 20) == 0);
    CHECK (ju (o, "reclaimed") < 1099511627776ull);
    CHECK (ju (o, "elapsed_ms") >= 100);
  }
  free_lines (objs, n);
  free (r);
  remove_tree ();
}

static int
accept_timeout (int ls, unsigned ms)
{
  struct pollfd p = { ls, POLLIN, 0 };
  if (poll (&p, 1, (int) ms) <= 0)
    return -1;
  return accept4 (ls, NULL, NULL, SOCK_CLOEXEC);
}

struct linereader {
  int fd;
  char buf[65536];
  size_t len;
};

/* Next line from fd within ms (NUL-terminated, without newline), or NULL. */
static char *
next_line (struct linereader *lr, unsigned ms)
{
  static char line[8192];
  uint64_t deadline = now_ms () + ms;

  for (;;) {
    char *nl = memchr (lr->buf, '\n', lr->len);
    if (nl) {
      size_t n = (size_t) (nl - lr->buf);
      if (n >= sizeof line)
        n = sizeof line - 1;
      memcpy (line, lr->buf, n);
      line[n] = '\0';
      memmove (lr->buf, nl + 1, lr->len - (size_t) (nl - lr->buf) - 1);
      lr->len -= (size_t) (nl - lr->buf) + 1;
      return line;
    }
    uint64_t now = now_ms ();
    if (lr->len == sizeof lr->buf)
      return NULL;
    /* At (or past) the deadline, one look at what is there already. */
    struct pollfd p = { lr->fd, POLLIN, 0 };
    if (poll (&p, 1, now >= deadline ? 0 : (int) (deadline - now)) <= 0) {
      if (now >= deadline)
        return NULL;
      continue;
    }
    ssize_t n = read (lr->fd, lr->buf + lr->len, sizeof lr->buf - lr->len);
    if (n <= 0)
      return NULL;
    lr->len += (size_t) n;
  }
}

/* Next JSON line that has "type" (skips the empty separator line). */
static json_object *
next_obj (struct linereader *lr, unsigned ms)
{
  char *line;
  while ((line = next_line (lr, ms))) {
    json_object *o;
    if (!*line)
      continue;
    o = json_tokener_parse (line);
    if (!o) {
      printf ("# not JSON: %s\n", line);
      tap_failed = true;
    }
    return o;
  }
  return NULL;
}

/* An inotify watch on the reads of a file of the tree, or -1 (the test
 * fails: it cannot know when the agent has looked). */
static int
reads_watch (const char *rel)
{
  char path[512];
  int fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);

  snprintf (path, sizeof path, "%s/%s", tree, rel);
  if (fd < 0 || inotify_add_watch (fd, path, IN_ACCESS) < 0) {
    printf ("# cannot watch the reads of %s: %s\n", path, strerror (errno));
    tap_failed = true;
    if (fd >= 0)
      close (fd);
    return -1;
  }
  return fd;
}

/* Forgets the reads seen so far. */
static void
reads_forget (int fd)
{
  char buf[4096];

  while (fd >= 0 && read (fd, buf, sizeof buf) > 0)
    ;
}

/* Waits up to ms for a read of the file since the last reads_forget or
 * reads_wait. */
static bool
reads_wait (int fd, unsigned ms)
{
  uint64_t deadline = now_ms () + ms;
  char buf[4096];

  while (fd >= 0) {
    struct pollfd p = { fd, POLLIN, 0 };
    uint64_t now = now_ms ();

    if (read (fd, buf, sizeof buf) > 0) {
      reads_forget (fd);
      return true;
    }
    if (now >= deadline)
      return false;
    poll (&p, 1, (int) (deadline - now));
  }
  return false;
}

static bool
wait_exit (pid_t pid, unsigned ms, int *status)
{
  uint64_t deadline = now_ms () + ms;
  while (now_ms () < deadline) {
    if (waitpid (pid, status, WNOHANG) == pid)
      return true;
    sleep_ms (20);
  }
  kill (pid, SIGKILL);
  waitpid (pid, status, 0);
  return false;
}

static pid_t
spawn (char **argv, int out_fd)
{
  pid_t pid;

  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    int null = open ("/dev/null", O_RDWR);
    dup2 (null, 0);
    dup2 (out_fd >= 0 ? out_fd : null, 1);
    _exit (agent_main (argc_of (argv), argv));
  }
  return pid;
}

/* Host side closes, agent reconnects and says hello again; requests on
 * the port; SIGTERM ends it cleanly. */
static void
test_socket_reconnect (void)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct linereader *lr = calloc (1, sizeof *lr);
  char *argv[] = { "memtide-agent",
                   "--root",
                   (char *) make_tree (false),
                   "--port",
                   sa.sun_path,
                   "--interval",
                   "100ms",
                   "--no-mlock",
                   "--no-mount",
                   "-q",
                   NULL };
  int ls, status;
  pid_t pid;
  json_object *o;
  uint64_t first_seq = 0;
  char first[16];

  if (snprintf (sa.sun_path, sizeof sa.sun_path, "%s/host.sock", tree) >= (int) sizeof sa.sun_path)
    abort ();
  ls = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK (bind (ls, (struct sockaddr *) &sa, sizeof sa) == 0 && listen (ls, 4) == 0);
  pid = spawn (argv, -1);

  lr->fd = accept_timeout (ls, WAIT_MS);
  CHECK (lr->fd >= 0);
  /* A connection starts with an empty line, then the hello report. */
  snprintf (first, sizeof first, "%s", next_line (lr, WAIT_MS) ? "" : "none");
  CHECK_STR (first, "");
  if ((o = next_obj (lr, WAIT_MS))) {
    CHECK_STR (js (o, "reason"), "connect");
    CHECK (jb (o, "hello"));
    first_seq = ju (o, "seq");
    json_object_put (o);
  }
  if ((o = next_obj (lr, WAIT_MS))) {
    CHECK_STR (js (o, "reason"), "tick");
    CHECK (!jb (o, "hello"));
    CHECK (ju (o, "seq") == first_seq + 1);
    json_object_put (o);
  }
  CHECK (write (lr->fd, "{\"v\":1,\"id\":77,\"op\":\"report\"}\n", 30) == 30);
  for (int i = 0; i < 50 && (o = next_obj (lr, WAIT_MS)); i++) {
    bool done = ju (o, "seq") && jget (o, "id") != NULL;
    if (done) {
      CHECK_U64 (ju (o, "id"), 77);
      CHECK_STR (js (o, "reason"), "reply");
    }
    json_object_put (o);
    if (done)
      break;
  }
  close (lr->fd);

  /* The host end went away and came back. */
  lr->len = 0;
  lr->fd = accept_timeout (ls, WAIT_MS);
  CHECK (lr->fd >= 0);
  if ((o = next_obj (lr, WAIT_MS))) {
    CHECK_STR (js (o, "reason"), "connect");
    CHECK (jb (o, "hello"));
    CHECK (ju (o, "seq") > first_seq + 2);
    json_object_put (o);
  }
  kill (pid, SIGTERM);
  CHECK (wait_exit (pid, WAIT_MS, &status));
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  close (lr->fd);
  close (ls);
  free (lr);
  remove_tree ();
}

/* "dropped" of the last whole line in buf[0, len), or 0. */
static uint64_t
last_dropped_in (const char *buf, size_t len)
{
  const char *end = len ? memrchr (buf, '\n', len) : NULL;
  const char *start;
  json_object *o;
  uint64_t dropped = 0;
  char line[4096];

  if (!end)
    return 0;
  start = end;
  while (start > buf && start[-1] != '\n')
    start--;
  if ((size_t) (end - start) >= sizeof line)
    return 0;
  memcpy (line, start, (size_t) (end - start));
  line[end - start] = '\0';
  o = json_tokener_parse (line);
  if (o && jget (o, "dropped"))
    dropped = ju (o, "dropped");
  json_object_put (o);
  return dropped;
}

/* A host that does not read: the agent must not block; periodic reports
 * are replaced and counted, every line stays whole. */
static void
test_slow_reader (void)
{
  char fifo[300];
  char *argv[] = { "memtide-agent",
                   "--root",
                   (char *) make_tree (false),
                   "--output",
                   fifo,
                   "--interval",
                   "100ms",
                   "--no-mlock",
                   "--no-mount",
                   "-q",
                   NULL };
  static char buf[1 << 20];
  json_object *objs[MAX_LINES];
  size_t len = 0;
  int rfd, status, n, drains = 0;
  pid_t pid;
  uint64_t last_dropped = 0, last_seq = 0, reports = 0, t0, deadline;

  snprintf (fifo, sizeof fifo, "%s/port.fifo", tree);
  CHECK (mkfifo (fifo, 0600) == 0);
  rfd = open (fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  CHECK (rfd >= 0);
  CHECK (fcntl (rfd, F_SETPIPE_SZ, 4096) >= 0);
  pid = spawn (argv, -1);

  /* The agent fills the pipe, then ticks every 100 ms with nowhere to
   * write.  The host reads only now and then, after a pause that is the
   * subject of the test (not a wait): drops pile up meanwhile.  A pause
   * of 1.5 s, then of 0.4 s until a report says 5 were dropped: how many
   * it takes depends on how fast the agent runs. */
  t0 = now_ms ();
  deadline = t0 + 2 * WAIT_MS;
  while (last_dropped < 5 && now_ms () < deadline && len < sizeof buf - 8192) {
    ssize_t r;

    sleep_ms (drains == 0 ? 1500 : 400);
    while ((r = read (rfd, buf + len, sizeof buf - 1 - len)) > 0)
      len += (size_t) r;
    drains++;
    last_dropped = last_dropped_in (buf, len);
  }
  printf ("# %d pauses, %.1f s, until a report said %llu dropped\n", drains,
          (double) (now_ms () - t0) / 1000, (unsigned long long) last_dropped);
  CHECK (waitpid (pid, &status, WNOHANG) == 0); /* still running */
  kill (pid, SIGTERM);
  CHECK (wait_exit (pid, WAIT_MS, &status));
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  buf[len] = '\0';
  /* Cut at the last newline: the reader may have read mid-line at the end. */
  {
    char *last = strrchr (buf, '\n');
    if (last)
      last[1] = '\0';
  }
  n = parse_lines (buf, objs);
  for (int i = 0; i < n; i++) {
    uint64_t seq = ju (objs[i], "seq");
    CHECK (seq > last_seq);
    last_seq = seq;
    last_dropped = ju (objs[i], "dropped");
    reports++;
  }
  printf ("# %d reports read, last seq %llu, dropped %llu\n", n, (unsigned long long) last_seq,
          (unsigned long long) last_dropped);
  CHECK (reports >= 3);
  CHECK (last_dropped >= 5);
  /* Sequence gaps are the drops. */
  CHECK (last_seq >= reports + last_dropped - 1);
  free_lines (objs, n);
  close (rfd);
  remove_tree ();
}

/* The agent writing to a pipe (argv has --output -): its reader, with
 * the connect report checked and handed over in *hello (NULL if none). */
static struct linereader *
start_piped (char **argv, pid_t *pid, json_object **hello)
{
  struct linereader *lr = calloc (1, sizeof *lr);
  int p[2];

  CHECK (pipe (p) == 0);
  *pid = spawn (argv, p[1]);
  close (p[1]);
  lr->fd = p[0];
  *hello = next_obj (lr, WAIT_MS);
  CHECK (*hello != NULL);
  if (*hello)
    CHECK_STR (js (*hello, "reason"), "connect");
  return lr;
}

/* SIGTERM: a clean exit; the tree goes too. */
static void
stop_piped (struct linereader *lr, pid_t pid)
{
  int status;

  kill (pid, SIGTERM);
  CHECK (wait_exit (pid, WAIT_MS, &status));
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  close (lr->fd);
  free (lr);
  remove_tree ();
}

/* /proc/pressure/memory with this much stall (µs) in its "some" line,
 * always the same length: the first write replaces the tree's file, the
 * next ones rewrite it in place (the agent may be reading it). */
static void
write_pressure (uint64_t some_total_us, bool first)
{
  char text[256];

  snprintf (text, sizeof text,
            "some avg10=9.00 avg60=1.25 avg300=0.10 total=%015llu\n"
            "full avg10=0.00 avg60=0.30 avg300=0.02 total=000000000045678\n",
            (unsigned long long) some_total_us);
  if (first)
    write_file ("proc/pressure/memory", text);
  else
    rewrite_file ("proc/pressure/memory", text);
}

/* Without a usable trigger, pressure is polled and still reported at
 * once (here: long before the 60 s tick). */
static void
test_psi_polling (void)
{
  char *argv[] = { "memtide-agent",
                   "--root",
                   (char *) make_tree (false),
                   "--output",
                   "-",
                   "--interval",
                   "60s",
                   "--psi-window",
                   "500000",
                   "--psi-threshold",
                   "100000",
                   "--no-mlock",
                   "--no-mount",
                   "-q",
                   NULL };
  const uint64_t first = 423456;
  uint64_t some = first, t0, deadline;
  json_object *o;
  pid_t pid;
  bool seen = false;
  struct linereader *lr;
  int reads;

  write_pressure (0, true);
  lr = start_piped (argv, &pid, &o);
  reads = reads_watch ("proc/pressure/memory");
  if (o) {
    CHECK_STR (js (o, "psi_trigger"), "some 100000 500000");
    json_object_put (o);
  }
  /* Stall rising by 200 ms each time the agent has read the file, so
   * that any two of its polls (every 125 ms) within the 500 ms window
   * see more than the 100 ms threshold, however late they come. */
  t0 = now_ms ();
  deadline = t0 + WAIT_MS;
  while (!seen && reads >= 0 && now_ms () < deadline) {
    struct pollfd p[2] = { { lr->fd, POLLIN, 0 }, { reads, POLLIN, 0 } };

    if (lr->len == 0 && poll (p, 2, 1000) <= 0)
      continue;
    if (lr->len > 0 || p[0].revents) {
      if (!(o = next_obj (lr, WAIT_MS)))
        break;
      CHECK_STR (js (o, "reason"), "psi");
      /* One of the rising stalls, not the baseline of 0. */
      CHECK (ju (o, "psi.some.total_us") >= first && ju (o, "psi.some.total_us") <= some);
      seen = true;
      json_object_put (o);
    } else {
      reads_forget (reads);
      write_pressure (some, false);
      some += 200000;
    }
  }
  printf ("# psi report %llu ms after the stall began to rise\n",
          (unsigned long long) (now_ms () - t0));
  CHECK (seen);
  if (reads >= 0)
    close (reads);
  stop_piped (lr, pid);
}

/* meminfo with these MemTotal and MemAvailable (kB), in place: the
 * agent keeps the file open and re-reads it from offset 0. */
static void
write_meminfo (uint64_t total_kb, uint64_t avail_kb)
{
  char text[512];

  snprintf (text, sizeof text,
            "MemTotal:       %llu kB\nMemFree:          10240 kB\nMemAvailable:   %llu kB\n"
            "Cached:           51200 kB\nShmem:             8192 kB\nInactive(file):   20480 kB\n",
            (unsigned long long) total_kb, (unsigned long long) avail_kb);
  write_file ("proc/meminfo", text);
}

/* The memory watch: used memory (MemTotal - MemAvailable) rising fast
 * enough for MemAvailable to be gone within 3 s sends a "memory" report
 * at once, at most one a second; a shrink (both falling) sends none,
 * nor does --memory-watch=0. */
static void
test_memory_watch (void)
{
  for (int off = 0; off < 2; off++) {
    char *argv[] = { "memtide-agent",
                     "--root",
                     (char *) make_tree (false),
                     "--output",
                     "-",
                     "--interval",
                     "60s",
                     "--psi-threshold",
                     "0",
                     "--memory-watch",
                     off ? "0" : "100ms",
                     "--no-mlock",
                     "--no-mount",
                     "-q",
                     NULL };
    struct linereader *lr;
    json_object *o;
    pid_t pid;
    uint64_t t0, first_mono;
    int reads;

    write_meminfo (2097152, 1572864); /* 2 GiB, 1.5 GiB available */
    lr = start_piped (argv, &pid, &o);
    json_object_put (o);
    reads = off ? -1 : reads_watch ("proc/meminfo");
    /* A shrink of 1 GiB: MemTotal and MemAvailable fall together. */
    write_meminfo (1048576, 524288);
    if (off) {
      /* Nothing reads the file: a bounded look is all there is. */
      o = next_obj (lr, 800);
    } else {
      /* The watch has read the whole shrunk file (reads during the
       * write are forgotten), and read it once more: its verdict on the
       * shrink is out by then. */
      reads_forget (reads);
      CHECK (reads_wait (reads, WAIT_MS));
      CHECK (reads_wait (reads, WAIT_MS));
      o = next_obj (lr, 0);
    }
    CHECK (o == NULL);
    if (o) {
      printf ("# unexpected report after a shrink: %s\n", json_object_to_json_string (o));
      json_object_put (o);
    }
    /* 400 MiB more in use within a moment, 100 MiB left. */
    write_meminfo (1048576, 102400);
    t0 = now_ms ();
    o = next_obj (lr, off ? 1500 : WAIT_MS);
    if (off) {
      CHECK (o == NULL);
    } else if (o) {
      printf ("# memory report %llu ms after the rise was written\n",
              (unsigned long long) (now_ms () - t0));
      CHECK_STR (js (o, "reason"), "memory");
      CHECK_U64 (ju (o, "mem.available"), 102400ull * 1024);
      first_mono = ju (o, "mono_us");
      json_object_put (o);
      /* Still rising (96 MiB more: fast enough for 3 s after the first
       * report), but the next one waits out the second, on the agent's
       * own clock; a tenth of it is margin for the time between the
       * watch's clock reading and the report's. */
      write_meminfo (1048576, 4096);
      if ((o = next_obj (lr, WAIT_MS))) {
        CHECK_STR (js (o, "reason"), "memory");
        CHECK_U64 (ju (o, "mem.available"), 4096ull * 1024);
        printf ("# the second memory report %.3f s after the first (agent clock)\n",
                (double) (ju (o, "mono_us") - first_mono) / 1e6);
        CHECK (ju (o, "mono_us") - first_mono >= 900000);
        json_object_put (o);
      } else {
        CHECK (!"a second memory report after the gap");
      }
    } else {
      CHECK (!"a memory report");
    }
    if (reads >= 0)
      close (reads);
    stop_piped (lr, pid);
  }
}

/* The port is found by name in sysfs and its node made with mknod. */
static void
test_port_discovery (void)
{
  struct run *r;
  char *argv[] = { "memtide-agent", "--root", NULL, "--once", "--no-mlock", "--no-mount", NULL };
  char node[512];
  struct stat st;

  if (geteuid () != 0)
    SKIP ("mknod needs root");
  r = malloc (sizeof *r);
  argv[2] = (char *) make_tree (false);
  /* vport9p1 is ours, with the numbers of /dev/null; vport9p2 is not. */
  run_agent (r, NULL, NULL, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  snprintf (node, sizeof node, "%s/dev/vport9p1", tree);
  CHECK (stat (node, &st) == 0 && S_ISCHR (st.st_mode) && st.st_rdev == makedev (1, 3));
  snprintf (node, sizeof node, "%s/dev/vport9p2", tree);
  CHECK (stat (node, &st) < 0);
  CHECK (strstr (r->err, "created device node") != NULL);

  /* Something else already at /dev/vport9p1: left alone, a private node
   * is used instead. */
  snprintf (node, sizeof node, "%s/dev/vport9p1", tree);
  unlink (node);
  write_file ("dev/vport9p1", "not a device\n");
  snprintf (node, sizeof node, "%s/run", tree);
  mkdir (node, 0755);
  run_agent (r, NULL, NULL, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  CHECK_STR (read_file ("dev/vport9p1"), "not a device\n");
  snprintf (node, sizeof node, "%s/run/memtide-agent/vport9p1", tree);
  CHECK (stat (node, &st) == 0 && S_ISCHR (st.st_mode) && st.st_rdev == makedev (1, 3));
  remove_tree ();

  /* No such port: --once fails, saying why. */
  argv[2] = (char *) make_tree (true);
  run_agent (r, NULL, NULL, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 1);
  CHECK (strstr (r->err, "virtio-ports") != NULL);
  if (tap_failed)
    show_stderr (r);
  free (r);
  remove_tree ();
}

/* The real binary: runs, and is static when built so. */
static void
test_binary (void)
{
  const char *exe = getenv ("AGENT_EXE");
  const char *want_static = getenv ("AGENT_STATIC");
  struct run *r;
  json_object *objs[MAX_LINES];
  char *argv[] = { "memtide-agent", "--root",     NULL, "--once", "--output", "-",
                   "--no-mlock",    "--no-mount", NULL };
  int n, fd;
  Elf64_Ehdr eh;
  bool interp = false;

  if (!exe)
    SKIP ("AGENT_EXE not set");
  r = malloc (sizeof *r);
  argv[2] = (char *) make_tree (false);
  run_agent (r, exe, NULL, argv);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  n = parse_lines (r->out, objs);
  CHECK_U64 (n, 1);
  if (n == 1)
    check_full_report (objs[0]);
  free_lines (objs, n);

  fd = open (exe, O_RDONLY);
  CHECK (fd >= 0 && pread (fd, &eh, sizeof eh, 0) == sizeof eh
         && memcmp (eh.e_ident, ELFMAG, SELFMAG) == 0);
  for (int i = 0; fd >= 0 && i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    if (pread (fd, &ph, sizeof ph, (off_t) (eh.e_phoff + (uint64_t) i * eh.e_phentsize))
        != sizeof ph)
      break;
    interp |= ph.p_type == PT_INTERP;
  }
  if (fd >= 0)
    close (fd);
  if (want_static && strcmp (want_static, "1") == 0)
    CHECK (!interp); /* no program interpreter: not a dynamic executable */
  free (r);
  remove_tree ();
}

static void
test_usage (void)
{
  struct run *r = malloc (sizeof *r);
  char *help[] = { "memtide-agent", "--help", NULL };
  char *bad1[] = { "memtide-agent", "--bogus", NULL };
  char *bad2[] = { "memtide-agent", "--interval", "5", NULL };
  char *bad3[] = { "memtide-agent", "--psi-threshold", "2000000", "--psi-window", "1000000", NULL };
  char *bad4[] = { "memtide-agent", "--input", "-", NULL };
  char *bad5[] = { "memtide-agent", "extra", NULL };
  char *bad6[] = { "memtide-agent", "--memory-watch", "10ms", NULL };
  char *bad7[] = { "memtide-agent", "--memory-watch", "20s", NULL };

  run_agent (r, NULL, NULL, help);
  CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 0);
  CHECK (strstr (r->out, "SYNOPSIS") && strstr (r->out, "--psi-threshold")
         && strstr (r->out, "EXIT STATUS") && strstr (r->out, "--memory-watch"));
  char **bads[] = { bad1, bad2, bad3, bad4, bad5, bad6, bad7 };
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
    run_agent (r, NULL, NULL, bads[i]);
    CHECK (WIFEXITED (r->status) && WEXITSTATUS (r->status) == 2);
    CHECK (r->err_len > 0);
  }
  free (r);
}

/* ---- xenstore, faked with files ------------------------------------------------------ */

/* The agent's xenstore calls on a directory of the tree: a key is a file
 * (written whole: a temporary file renamed over it), the watch is
 * inotify on the directory, and renaming the directory away is xenstore
 * going away.  Set in the forked child only. */
static char fs_xs[400];

struct fs_h {
  int ino;
  bool initial; /* xenstore fires a watch once when it is set */
};

static bool
fs_path (char *buf, size_t size, const char *key)
{
  return snprintf (buf, size, "%s/%s", fs_xs, key) < (int) size;
}

static void *
fs_open (void)
{
  char dir[512];
  struct stat st;
  struct fs_h *h;

  if (!fs_path (dir, sizeof dir, XS_DIR) || stat (dir, &st) < 0)
    return NULL;
  h = calloc (1, sizeof *h);
  h->ino = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  return h;
}

static void
fs_close (void *p)
{
  struct fs_h *h = p;
  close (h->ino);
  free (h);
}

static int
fs_fileno (void *p)
{
  return ((struct fs_h *) p)->ino;
}

static bool
fs_watch (void *p, const char *path, const char *token)
{
  struct fs_h *h = p;
  char dir[512];

  if (!fs_path (dir, sizeof dir, XS_DIR)
      || inotify_add_watch (h->ino, dir, IN_MOVED_TO | IN_CLOSE_WRITE | IN_MOVE_SELF) < 0)
    return false;
  h->initial = true;
  return true;
}

static bool
fs_next_event (void *p, char *path, size_t size)
{
  struct fs_h *h = p;
  char buf[4096] __attribute__ ((aligned (__alignof__(struct inotify_event))));
  bool request = false;
  ssize_t n;

  if (h->initial) {
    h->initial = false;
    snprintf (path, size, "%s", XS_REQUEST);
    return true;
  }
  while ((n = read (h->ino, buf, sizeof buf)) > 0) {
    for (char *q = buf; q < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *) q;
      if (ev->mask & (IN_MOVE_SELF | IN_IGNORED)) {
        errno = EIO;
        return false;
      }
      request |= ev->len > 0 && strcmp (ev->name, "request") == 0;
      q += sizeof *ev + ev->len;
    }
    if (request) {
      snprintf (path, size, "%s", XS_REQUEST);
      return true;
    }
  }
  return false; /* errno EAGAIN from the read */
}

static void *
fs_read (void *p, const char *key, unsigned *len)
{
  char path[512], *v = malloc (8192);
  int fd;
  ssize_t n;

  if (!fs_path (path, sizeof path, key) || (fd = open (path, O_RDONLY | O_CLOEXEC)) < 0) {
    free (v);
    return NULL;
  }
  n = read (fd, v, 8191);
  close (fd);
  if (n < 0) {
    free (v);
    return NULL;
  }
  v[n] = '\0';
  *len = (unsigned) n;
  return v;
}

static bool
fs_write (void *p, const char *key, const char *data, unsigned len)
{
  char path[512], tmp[520];
  int fd;

  if (!fs_path (path, sizeof path, key))
    return false;
  snprintf (tmp, sizeof tmp, "%s.tmp", path);
  if ((fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
    return false;
  if (write (fd, data, len) != (ssize_t) len) {
    close (fd);
    return false;
  }
  close (fd);
  return rename (tmp, path) == 0;
}

static const struct xs_backend fs_backend = {
  fs_open, fs_close, fs_fileno, fs_watch, fs_next_event, fs_read, fs_write,
};

static pid_t
spawn_xs (char **argv)
{
  pid_t pid;

  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    int null = open ("/dev/null", O_RDWR);
    dup2 (null, 0);
    dup2 (null, 1);
    snprintf (fs_xs, sizeof fs_xs, "%s/xenstore", tree);
    xs_backend = &fs_backend;
    _exit (agent_main (argc_of (argv), argv));
  }
  return pid;
}

/* A key's value as JSON once `ok` holds for it, within WAIT_MS (NULL
 * then).  A value is one line: no newline in it. */
static json_object *
wait_key (const char *key, bool (*ok) (json_object *o, uint64_t arg), uint64_t arg)
{
  uint64_t deadline = now_ms () + WAIT_MS;
  char rel[64];

  snprintf (rel, sizeof rel, "xenstore/%s/%s", XS_DIR, key);
  do {
    const char *v = read_file (rel);
    json_object *o = v && *v ? json_tokener_parse (v) : NULL;

    if (o) {
      CHECK (strchr (v, '\n') == NULL);
      CHECK (strlen (v) <= 4095);
      if (ok (o, arg))
        return o;
      json_object_put (o);
    }
    sleep_ms (10);
  } while (now_ms () < deadline);
  printf ("# %s: no value as expected within %d ms\n", key, WAIT_MS);
  tap_failed = true;
  return NULL;
}

static bool
seq_above (json_object *o, uint64_t seq)
{
  return ju (o, "seq") > seq;
}

static bool
has_id (json_object *o, uint64_t id)
{
  json_object *v = jget (o, "id");
  return v && json_object_get_uint64 (v) == id;
}

static void
host_request (const char *line)
{
  char path[512], tmp[520];
  FILE *f;

  snprintf (path, sizeof path, "%s/xenstore/%s", tree, XS_REQUEST);
  snprintf (tmp, sizeof tmp, "%s.tmp", path);
  f = fopen (tmp, "w");
  if (!f)
    abort ();
  fputs (line, f);
  fclose (f);
  if (rename (tmp, path) < 0)
    abort ();
}

/* A Xen domU without a virtio port: auto picks xenstore; hello, reports
 * and replies go to their keys, one line per value; the request that was
 * there before the agent started is not acted on; xenstore going away
 * and coming back brings a new hello. */
static void
test_xenstore (void)
{
  char *argv[] = { "memtide-agent", "--root", (char *) make_tree (false),
                   "--interval",    "100ms",  "--no-mlock",
                   "--no-mount",    "-q",     NULL };
  char cmd[2048], gone[512], back[512];
  json_object *o;
  uint64_t hello_seq = 0;
  int status;
  pid_t pid;

  snprintf (cmd, sizeof cmd,
            "rm -rf '%s/sys/class/virtio-ports' && mkdir -p '%s/sys/hypervisor' '%s/dev/xen' "
            "'%s/xenstore/%s' && echo xen > '%s/sys/hypervisor/type' && : > '%s/dev/xen/xenbus'",
            tree, tree, tree, tree, XS_DIR, tree, tree);
  CHECK (strlen (cmd) < sizeof cmd - 1 && system (cmd) == 0);
  host_request ("{\"v\":1,\"id\":5,\"op\":\"set_interval\",\"interval_ms\":5000}");
  pid = spawn_xs (argv);

  if ((o = wait_key ("hello", seq_above, 0))) {
    CHECK (jb (o, "hello"));
    CHECK_STR (js (o, "reason"), "connect");
    CHECK_U64 (ju (o, "interval_ms"), 100);
    hello_seq = ju (o, "seq");
    json_object_put (o);
  }
  if ((o = wait_key ("report", seq_above, hello_seq))) {
    CHECK_STR (js (o, "reason"), "tick");
    check_full_report (o);
    json_object_put (o);
  }
  /* The old request (id 5) was never answered. */
  CHECK (read_file ("xenstore/" XS_DIR "/reply") == NULL);

  host_request ("{\"v\":1,\"id\":7,\"op\":\"set_interval\",\"interval_ms\":200}");
  if ((o = wait_key ("reply", has_id, 7))) {
    CHECK (jb (o, "ok"));
    CHECK_U64 (ju (o, "interval_ms"), 200);
    json_object_put (o);
  }
  host_request ("{\"v\":1,\"id\":8,\"op\":\"hello\"}");
  if ((o = wait_key ("hello", has_id, 8))) {
    CHECK_STR (js (o, "reason"), "reply");
    CHECK_U64 (ju (o, "interval_ms"), 200);
    CHECK (ju (o, "seq") > hello_seq);
    hello_seq = ju (o, "seq");
    json_object_put (o);
  }
  host_request ("{\"v\":1,\"id\":9,\"op\":\"nope\"}");
  if ((o = wait_key ("reply", has_id, 9))) {
    CHECK_STR (js (o, "error"), "unknown_op");
    json_object_put (o);
  }

  /* xenstore goes away and comes back: a new hello, on the agent's own. */
  snprintf (back, sizeof back, "%s/xenstore/%s", tree, XS_DIR);
  snprintf (gone, sizeof gone, "%s/xenstore/%s.gone", tree, XS_DIR);
  /* The agent learns it from its watch (as from a failed read or write
   * on real xenstore), however short the absence. */
  CHECK (rename (back, gone) == 0);
  CHECK (rename (gone, back) == 0);
  if ((o = wait_key ("hello", seq_above, hello_seq))) {
    CHECK_STR (js (o, "reason"), "connect");
    json_object_put (o);
  }

  kill (pid, SIGTERM);
  CHECK (wait_exit (pid, WAIT_MS, &status));
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  remove_tree ();
}

int
main (void)
{
  signal (SIGPIPE, SIG_IGN);
  tap_run ("--once report: every field from the fake tree", test_once_report);
  tap_run ("missing files: listed as unavailable, no crash", test_missing_files);
  tap_run ("corrupt files: ignored field by field", test_corrupt_files);
  tap_run ("block usage: hidden virtio-mem ranges, stock kernel", test_block_usage_partial);
  tap_run ("requests: reclaim, malformed, overlong, unknown op, report, set_interval, hello",
           test_requests);
  tap_run ("reclaim: drop_caches fallback, busy, timeout", test_reclaim_fallback_and_busy);
  tap_run ("tune_reporting: written and read back, refused write, unavailable",
           test_tune_reporting);
  tap_run ("port socket: hello, requests, reconnect, SIGTERM", test_socket_reconnect);
  tap_run ("slow host: no blocking, reports dropped and counted", test_slow_reader);
  tap_run ("PSI polling fallback sends a psi report at once", test_psi_polling);
  tap_run ("memory watch: a report at once when available memory runs out", test_memory_watch);
  tap_run ("port found by name, device node created", test_port_discovery);
  tap_run ("xenstore: auto in a Xen domU, keys, requests, xenstore back", test_xenstore);
  tap_run ("built binary runs (static when agent_static)", test_binary);
  tap_run ("usage errors and --help", test_usage);
  return tap_done ();
}
