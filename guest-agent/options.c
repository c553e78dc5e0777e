/* memtide-agent: command line parsing and --help. */
#include "options.h"

#include "psi.h"
#include "request.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AGENT_VERSION
#define AGENT_VERSION "unknown"
#endif

#ifdef HAVE_XENSTORE
#define XENSTORE_BUILD ""
#else
#define XENSTORE_BUILD                                                      \
  "\n        This memtide-agent was built without libxenstore: it has no\n" \
  "        xenstore transport (auto means virtio, xenstore is refused).\n"
#endif

static const char usage_text[] =
  "NAME\n"
  "    memtide-agent - report guest memory state to the memtide host service\n"
  "\n"
  "SYNOPSIS\n"
  "    memtide-agent [OPTION]...\n"
  "\n"
  "DESCRIPTION\n"
  "    memtide-agent runs inside a KVM or Xen guest.  It finds the virtio-serial\n"
  "    port named " AGENT_PORT_NAME " (under /sys/class/virtio-ports; no udev\n"
  "    needed: a missing /dev node is created from the sysfs device numbers)\n"
  "    and writes one JSON report per line to it: every interval, and at once\n"
  "    when a PSI memory pressure trigger fires or available memory is about\n"
  "    to run out (--memory-watch).  Reports carry memory sizes\n"
  "    from /proc/meminfo, swap and OOM counters from /proc/vmstat, PSI from\n"
  "    /proc/pressure/memory, online memory blocks per zone from\n"
  "    /sys/devices/system/memory and the free page reporting state.  The\n"
  "    host may send requests on the same port, e.g. to reclaim memory\n"
  "    through cgroup v2 memory.reclaim before it shrinks the guest.\n"
  "\n"
  "    A Xen guest has no virtio-serial port: there the same lines go to\n"
  "    xenstore, one per value, under the guest's data/memtide/ (hello,\n"
  "    report, reply), and requests come from data/memtide/request, which\n"
  "    the agent watches (--transport).\n"
  "\n"
  "    When the host end is not connected or the port is missing, the agent\n"
  "    waits and looks again every interval; it never blocks on a host that\n"
  "    does not read: periodic reports that cannot be written are replaced by\n"
  "    newer ones and counted.  The wire protocol is specified in\n"
  "    docs/agent-protocol.md.\n"
  "\n"
  "    It runs as root.  Without root it still reports what it can read, and\n"
  "    says once what it cannot do (create the device node, set PSI triggers,\n"
  "    reclaim, mount cgroup2, lock itself in memory).\n"
  "\n"
  "OPTIONS\n"
  "    -i, --interval=TIME\n"
  "        Time between periodic reports: milliseconds, or with a unit\n"
  "        (ms, s).  100ms to 60s; default 1s.  The host may change it.\n"
  "\n"
  "    --psi-threshold=USEC\n"
  "        Stall time within the PSI window that sends a report at once,\n"
  "        in microseconds; default 150000.  0 turns pressure events off.\n"
  "\n"
  "    --psi-window=USEC\n"
  "        PSI trigger window in microseconds, 500000 to 10000000; default\n"
  "        1000000.  The threshold must not exceed it.\n"
  "\n"
  "    --psi-full\n"
  "        Watch \"full\" stalls (all tasks stalled) instead of \"some\".\n"
  "\n"
  "    --memory-watch=TIME\n"
  "        How often to read /proc/meminfo between reports: milliseconds, or\n"
  "        with a unit (ms, s); 50ms to 10s, default 200ms; 0 turns it off.\n"
  "        When used memory (MemTotal - MemAvailable) rose since the last\n"
  "        report at 32 MiB/s or more and MemAvailable would be gone within\n"
  "        3 s at that rate, a report is sent at once (reason \"memory\", at\n"
  "        most one a second): the host can grow the guest before it evicts\n"
  "        its page cache and swaps.  A balloon taking memory lowers both\n"
  "        and does not count.\n"
  "\n"
  "    -n, --port-name=NAME\n"
  "        virtio-serial port name to look for; default " AGENT_PORT_NAME ".\n"
  "\n"
  "    -t, --transport=auto|virtio|xenstore\n"
  "        virtio: the virtio-serial port (or --port).  xenstore: the\n"
  "        guest's data/memtide/ keys through libxenstore (/dev/xen/xenbus);\n"
  "        reopened every interval while it fails, with a hello each time it\n"
  "        opens.  auto (default): the virtio port when the guest has one,\n"
  "        else xenstore when the guest is a Xen domU (/sys/hypervisor/type\n"
  "        is xen and /dev/xen/xenbus exists), else wait for the port.\n" XENSTORE_BUILD "\n"
  "    -p, --port=PATH\n"
  "        Use this character device or unix socket instead of searching\n"
  "        by name (debugging; a socket is reconnected when it closes).\n"
  "\n"
  "    -o, --output=PATH\n"
  "        Write reports and replies to PATH (appended; - for stdout)\n"
  "        instead of the port.  For tests and debugging.\n"
  "\n"
  "    --input=PATH\n"
  "        With --output: read requests from PATH (- for stdin).\n"
  "\n"
  "    --once\n"
  "        Send one (hello) report and exit.  With --input, answer the\n"
  "        requests until end of input first.\n"
  "\n"
  "    -r, --root=DIR\n"
  "        Read /proc, /sys and /dev under DIR instead of / (fake trees for\n"
  "        tests).  Also from the MEMTIDE_AGENT_ROOT environment variable.\n"
  "\n"
  "    --cgroup=DIR\n"
  "        Reclaim through DIR/memory.reclaim instead of the cgroup v2 root\n"
  "        found in /proc/self/mounts.\n"
  "\n"
  "    --no-mount\n"
  "        Never mount cgroup2.  By default, when nothing is mounted on an\n"
  "        empty /sys/fs/cgroup (initramfs), cgroup2 is mounted there so\n"
  "        memory.reclaim can be used.\n"
  "\n"
  "    --no-mlock\n"
  "        Do not lock the agent in memory.  By default it is locked (pages\n"
  "        as they are touched: a few hundred KiB) so it keeps reporting\n"
  "        while the guest thrashes.\n"
  "\n"
  "    -v, --verbose\n"
  "        More messages on stderr; twice for debugging.\n"
  "\n"
  "    -q, --quiet\n"
  "        Only errors on stderr.\n"
  "\n"
  "    -h, --help\n"
  "        Show this help and exit.\n"
  "\n"
  "    -V, --version\n"
  "        Show the version and exit.\n"
  "\n"
  "FILES\n"
  "    /sys/class/virtio-ports/*/name, /dev/vportNpM   the port\n"
  "    /sys/hypervisor/type, /dev/xen/xenbus,\n"
  "    /proc/xen/capabilities            is this a Xen domU (auto)\n"
  "    xenstore data/memtide/{hello,report,reply,request}   over xenstore\n"
  "    /proc/meminfo, /proc/vmstat, /proc/pressure/memory\n"
  "    /sys/devices/system/memory/{block_size_bytes,memoryN/state,memoryN/valid_zones}\n"
  "    /sys/module/page_reporting/parameters/page_reporting_order\n"
  "    /sys/kernel/mm/page_reporting/*   (memtide guest kernel patches)\n"
  "    /sys/fs/cgroup/memory.reclaim, /proc/sys/vm/drop_caches\n"
  "\n"
  "SIGNALS\n"
  "    SIGTERM, SIGINT   exit cleanly (status 0).\n"
  "    SIGHUP            look again for cgroup2, the port and memory blocks.\n"
  "\n"
  "EXIT STATUS\n"
  "    0 on SIGTERM/SIGINT or when --once is done, 1 on a fatal error,\n"
  "    2 on a usage error.\n"
  "\n"
  "EXAMPLES\n"
  "    memtide-agent                      run in a guest (root)\n"
  "    memtide-agent --once --output -    print one report and exit\n"
  "    echo '{\"v\":1,\"id\":1,\"op\":\"reclaim\",\"bytes\":67108864}' |\n"
  "        memtide-agent --once --output - --input -\n"
  "\n"
  "SEE ALSO\n"
  "    docs/agent-protocol.md, memtided(8)\n";

enum {
  OPT_PSI_THRESHOLD = 256,
  OPT_PSI_WINDOW,
  OPT_PSI_FULL,
  OPT_CGROUP,
  OPT_NO_MOUNT,
  OPT_NO_MLOCK,
  OPT_ONCE,
  OPT_INPUT,
  OPT_MEMORY_WATCH,
};

static const char *const transport_names[] = {
  [TRANSPORT_AUTO] = "auto",
  [TRANSPORT_VIRTIO] = "virtio",
  [TRANSPORT_XENSTORE] = "xenstore",
};

static const struct option long_opts[] = {
  { "interval", required_argument, NULL, 'i' },
  { "psi-threshold", required_argument, NULL, OPT_PSI_THRESHOLD },
  { "psi-window", required_argument, NULL, OPT_PSI_WINDOW },
  { "memory-watch", required_argument, NULL, OPT_MEMORY_WATCH },
  { "psi-full", no_argument, NULL, OPT_PSI_FULL },
  { "port-name", required_argument, NULL, 'n' },
  { "port", required_argument, NULL, 'p' },
  { "transport", required_argument, NULL, 't' },
  { "output", required_argument, NULL, 'o' },
  { "input", required_argument, NULL, OPT_INPUT },
  { "once", no_argument, NULL, OPT_ONCE },
  { "root", required_argument, NULL, 'r' },
  { "cgroup", required_argument, NULL, OPT_CGROUP },
  { "no-mount", no_argument, NULL, OPT_NO_MOUNT },
  { "no-mlock", no_argument, NULL, OPT_NO_MLOCK },
  { "verbose", no_argument, NULL, 'v' },
  { "quiet", no_argument, NULL, 'q' },
  { "help", no_argument, NULL, 'h' },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

static bool
parse_num (const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
  const char *end;

  return parse_u64 (s, &end, out) && *end == '\0' && *out >= min && *out <= max;
}

/* "1500", "1500ms", "2s" -> milliseconds. */
static bool
parse_ms (const char *s, uint64_t *out)
{
  const char *end;
  uint64_t v;

  if (!parse_u64 (s, &end, &v) || v > 1000000)
    return false;
  if (*end == '\0' || strcmp (end, "ms") == 0)
    *out = v;
  else if (strcmp (end, "s") == 0)
    *out = v * 1000;
  else
    return false;
  return true;
}

static int
bad (const char *opt, const char *arg, const char *what)
{
  fprintf (stderr, "memtide-agent: %s %s: %s\nTry 'memtide-agent --help'.\n", opt, arg, what);
  return -1;
}

int
options_parse (int argc, char **argv, struct options *o)
{
  uint64_t v;
  int c, verbosity = 0;

  memset (o, 0, sizeof *o);
  o->root = getenv ("MEMTIDE_AGENT_ROOT");
  o->port_name = AGENT_PORT_NAME;
  o->interval_ms = 1000;
  o->psi_stall_us = 150000;
  o->psi_window_us = 1000000;
  o->memory_watch_ms = 200;
  o->allow_mount = true;
  o->mlock = true;

  opterr = 1;
  while ((c = getopt_long (argc, argv, "i:n:p:t:o:r:vqhV", long_opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (!parse_ms (optarg, &v) || v < INTERVAL_MS_MIN || v > INTERVAL_MS_MAX)
        return bad ("--interval", optarg, "must be 100ms to 60s");
      o->interval_ms = (uint32_t) v;
      break;
    case OPT_PSI_THRESHOLD:
      if (!parse_num (optarg, 0, PSI_WINDOW_US_MAX, &v))
        return bad ("--psi-threshold", optarg, "must be 0 to 10000000 microseconds");
      o->psi_stall_us = (uint32_t) v;
      break;
    case OPT_PSI_WINDOW:
      if (!parse_num (optarg, PSI_WINDOW_US_MIN, PSI_WINDOW_US_MAX, &v))
        return bad ("--psi-window", optarg, "must be 500000 to 10000000 microseconds");
      o->psi_window_us = (uint32_t) v;
      break;
    case OPT_MEMORY_WATCH:
      if (!parse_ms (optarg, &v) || (v != 0 && (v < 50 || v > 10000)))
        return bad ("--memory-watch", optarg, "must be 0 (off) or 50ms to 10s");
      o->memory_watch_ms = (uint32_t) v;
      break;
    case OPT_PSI_FULL:
      o->psi_full = true;
      break;
    case 'n':
      if (!*optarg || strlen (optarg) > 200)
        return bad ("--port-name", optarg, "must be 1 to 200 characters");
      o->port_name = optarg;
      break;
    case 'p':
      o->port_path = optarg;
      break;
    case 't': {
      size_t i;
      for (i = 0; i < ARRAY_SIZE (transport_names); i++)
        if (strcmp (optarg, transport_names[i]) == 0)
          break;
      if (i == ARRAY_SIZE (transport_names))
        return bad ("--transport", optarg, "must be auto, virtio or xenstore");
#ifndef HAVE_XENSTORE
      if (i == TRANSPORT_XENSTORE)
        return bad ("--transport", optarg, "this memtide-agent was built without libxenstore");
#endif
      o->transport = (enum transport) i;
    } break;
    case 'o':
      o->output = optarg;
      break;
    case OPT_INPUT:
      o->input = optarg;
      break;
    case OPT_ONCE:
      o->once = true;
      break;
    case 'r':
      o->root = optarg;
      break;
    case OPT_CGROUP:
      o->cgroup_dir = optarg;
      break;
    case OPT_NO_MOUNT:
      o->allow_mount = false;
      break;
    case OPT_NO_MLOCK:
      o->mlock = false;
      break;
    case 'v':
      verbosity++;
      break;
    case 'q':
      verbosity = -1;
      break;
    case 'h':
      fputs (usage_text, stdout);
      return 1;
    case 'V':
      puts ("memtide-agent " AGENT_VERSION);
      return 1;
    default:
      fputs ("Try 'memtide-agent --help'.\n", stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf (stderr, "memtide-agent: unexpected argument '%s'\nTry 'memtide-agent --help'.\n",
             argv[optind]);
    return -1;
  }
  if (o->psi_stall_us > o->psi_window_us) {
    fprintf (stderr, "memtide-agent: --psi-threshold must not exceed --psi-window\n");
    return -1;
  }
  if (o->input && !o->output) {
    fprintf (stderr, "memtide-agent: --input needs --output\n");
    return -1;
  }
  if (o->transport == TRANSPORT_XENSTORE && (o->output || o->port_path)) {
    fprintf (stderr, "memtide-agent: --transport xenstore excludes --output and --port\n");
    return -1;
  }
  if (o->output && o->port_path) {
    fprintf (stderr, "memtide-agent: --output and --port exclude each other\n");
    return -1;
  }
  o->log_level = verbosity < 0    ? LOG_ERR
                 : verbosity == 0 ? LOG_NOTICE
                 : verbosity == 1 ? LOG_INFO
                                  : LOG_DEBUG;
  return 0;
}
