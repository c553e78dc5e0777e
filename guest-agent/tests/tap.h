/* memtide-agent tests: a minimal TAP producer (meson protocol 'tap'). */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed_total;
static bool tap_failed;
static const char *tap_skip;

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      printf ("# %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      fflush (stdout);                                                   \
      tap_failed = true;                                                 \
    }                                                                    \
  } while (0)

#define CHECK_U64(a, b)                                                                \
  do {                                                                                 \
    unsigned long long a_ = (unsigned long long) (a), b_ = (unsigned long long) (b);   \
    if (a_ != b_) {                                                                    \
      printf ("# %s:%d: %s == %llu, expected %llu\n", __FILE__, __LINE__, #a, a_, b_); \
      fflush (stdout);                                                                 \
      tap_failed = true;                                                               \
    }                                                                                  \
  } while (0)

#define CHECK_STR(a, b)                                                           \
  do {                                                                            \
    const char *a_ = (a), *b_ = (b);                                              \
    if (!a_ || strcmp (a_, b_) != 0) {                                            \
      printf ("# %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
              a_ ? a_ : "(null)", b_);                                            \
      fflush (stdout);                                                            \
      tap_failed = true;                                                          \
    }                                                                             \
  } while (0)

/* Marks the running test as skipped, with the reason. */
#define SKIP(why)     \
  do {                \
    tap_skip = (why); \
    return;           \
  } while (0)

static inline void
tap_run (const char *name, void (*fn) (void))
{
  tap_failed = false;
  tap_skip = NULL;
  fn ();
  tap_count++;
  if (tap_skip)
    printf ("ok %d - %s # SKIP %s\n", tap_count, name, tap_skip);
  else
    printf ("%s %d - %s\n", tap_failed ? "not ok" : "ok", tap_count, name);
  tap_failed_total += tap_failed;
  fflush (stdout);
}

static inline int
tap_done (void)
{
  printf ("1..%d\n", tap_count);
  return tap_failed_total ? 1 : 0;
}
