/* recompress.c - names of the recompress policies (recompress.h). */
#include "common/recompress.h"

#include <string.h>

static const char *const NAMES[] = {"paper", "never", "always", "mask"};

const char *recompress_name(recompress_policy p) {
    return (unsigned)p < sizeof NAMES / sizeof NAMES[0] ? NAMES[p] : "?";
}

int recompress_parse(const char *s) {
    for (int i = 0; s && i < (int)(sizeof NAMES / sizeof NAMES[0]); i++)
        if (!strcmp(s, NAMES[i])) return i;
    return -1;
}
