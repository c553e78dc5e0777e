/* memtide-agent: notice memory pressure at once.  A PSI trigger on
 * /proc/pressure/memory ("some 150000 1000000": 150 ms of stall within a
 * 1 s window) wakes the agent with POLLPRI; where triggers are not
 * available (not root, no CAP_SYS_RESOURCE, old kernel, fake tree) the
 * same condition is checked by polling the stall total. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define PSI_WINDOW_US_MIN 500000u /* kernel limits for triggers */
#define PSI_WINDOW_US_MAX 10000000u
#define PSI_RING          8

enum psi_mode { PSI_MODE_OFF, PSI_MODE_NONE, PSI_MODE_TRIGGER, PSI_MODE_POLL };

struct psi_watch {
  enum psi_mode mode;
  int trig_fd; /* PSI_MODE_TRIGGER: poll for POLLPRI */
  int read_fd; /* PSI_MODE_POLL */
  bool full;
  uint32_t stall_us, window_us;
  char trigger[48];
  /* Poll mode: recent (time, stall total) samples. */
  uint64_t ring_t[PSI_RING], ring_total[PSI_RING];
  unsigned ring_len, ring_next;
  uint64_t last_fire_us, next_poll_us;
};

/* stall_us == 0 turns pressure events off.  Never fails: falls back to
 * polling, or to nothing when there is no PSI at all (UA_* bits set). */
void psi_watch_open (struct psi_watch *p, bool full, uint32_t stall_us, uint32_t window_us,
                     uint32_t *unavail);
void psi_watch_close (struct psi_watch *p);
const char *psi_mode_name (enum psi_mode m);

/* Trigger mode, POLLERR on the trigger fd: switch to polling. */
void psi_watch_trigger_failed (struct psi_watch *p, uint32_t *unavail);

/* Poll mode: call when now >= next_poll_us; true when the threshold was
 * crossed (at most once per window). */
bool psi_watch_poll (struct psi_watch *p, uint64_t now_us);
