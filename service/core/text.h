/* text.h: text from outside memtided (a D-Bus caller's reason) made fit
 * for one log line.
 *
 * A log line is one line because readers (journald, grep, a person) take
 * it as one: a newline in what a caller sent would start a line that
 * looks like memtided's own, and terminal escapes would rewrite what is
 * shown.
 */
#pragma once

#include <glib.h>

/* text with every character that is not printable text escaped: \n,
 * \r, \t, a backslash as \\, other ASCII control characters and bytes
 * that are not UTF-8 as \xNN, and C1 controls, format characters (bidi
 * overrides, zero-width) and line or paragraph separators as \uNNNN or
 * \UNNNNNNNN.  Printable UTF-8 is kept as it is. */
char *mt_text_escape_line (const char *text);
