/* memtide-agent: command line. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define AGENT_PORT_NAME "org.memtide.agent.0"

enum transport {
  TRANSPORT_AUTO,     /* the virtio port; xenstore in a Xen domU without one */
  TRANSPORT_VIRTIO,   /* the virtio-serial port (or --port) only */
  TRANSPORT_XENSTORE, /* xenstore only */
};

struct options {
  const char *root;       /* --root / MEMTIDE_AGENT_ROOT */
  const char *port_name;  /* --port-name */
  const char *port_path;  /* --port */
  const char *output;     /* --output */
  const char *input;      /* --input */
  const char *cgroup_dir; /* --cgroup */
  enum transport transport;
  uint32_t interval_ms;
  uint32_t memory_watch_ms; /* 0: off */
  uint32_t psi_stall_us, psi_window_us;
  bool psi_full;
  bool allow_mount, mlock, once;
  int log_level;
};

/* 0: run; 1: done (help/version printed), exit 0; -1: usage error, exit 2. */
int options_parse (int argc, char **argv, struct options *o);
