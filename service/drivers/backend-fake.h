/* backend-fake.h: the fake driver: domains that live inside memtided and
 * move as a test scripts them, so that the real daemon runs without a
 * hypervisor.  Picked only by `memtided --backend fake --connect PATH`,
 * never by --backend auto.  docs/driver-fake.md describes it.
 *
 * The script is a line-based control socket at PATH, which the driver
 * creates when it connects (connect() fails when PATH exists) and
 * removes when it is freed: one command per line, one reply line each,
 * "ok ..." or "error: ...".  mt_backend_fake_command() runs one command
 * without the socket (the unit tests).
 */
#pragma once

#include "backend.h"

/* Never NULL; nothing is created until connect().  @control_path NULL:
 * probe() says no and connect() fails, naming --connect. */
MtBackend *mt_backend_fake_new (const char *control_path);

/* Run one command line; the reply line without its newline ("ok ...",
 * or "error: ..." when the command was refused).  Runs on the main
 * context's thread: it may announce domains (domain_cb). */
char *mt_backend_fake_command (MtBackend *b, const char *line);
