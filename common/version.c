/* version.c - the code version string reported by both programs and stored with every attempt. */
#include "common/version.h"
const char *cisweep_version(void) { return CISWEEP_VERSION; }
