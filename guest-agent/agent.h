/* memtide-agent: the daemon (options, setup, event loop). */
#pragma once

/* The whole program: main() calls this; the tests call it in a forked
 * child so valgrind sees the agent too.  Returns the exit status. */
int agent_main (int argc, char **argv);
