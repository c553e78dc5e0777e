/* memtide-agent: built without libxenstore: no xenstore transport. */
#include "xsport.h"

#include <stddef.h>

const struct xs_backend *xs_backend = NULL;
