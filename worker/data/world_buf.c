/* world_buf.c - the growing text buffer (wbuf) every part of the world generator writes into.
 * (The world's random numbers come from common/rng.h.) */
#include "worker/data/world.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void wbuf_reserve(wbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void wbuf_putn(wbuf *b, const char *s, size_t n) {
    wbuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void wbuf_put(wbuf *b, const char *s) { wbuf_putn(b, s, strlen(s)); }

void wbuf_printf(wbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CIS_ASSERT(n >= 0);
    wbuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void wbuf_clear(wbuf *b) {
    if (!b) return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void wbuf_json(wbuf *b, json_t *v, size_t flags) {
    char *s = json_dumps(v, flags | JSON_PRESERVE_ORDER);
    CIS_ASSERT(s != NULL);
    wbuf_put(b, s);
    free(s);
    json_decref(v);
}
