/* world_rng.c - the world generator's deterministic random numbers (xoshiro256** seeded through
 * splitmix64), a bit-exact copy of CPython's `random.seed(int); random.shuffle(list)` (MT19937)
 * for the zsRE edit sets, and the growing text buffer every part writes into. */
#include "worker/data/world.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void wrng_seed(wrng *r, uint64_t seed, uint64_t part) {
    uint64_t x = seed ^ (part * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t wrng_next(wrng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

uint32_t wrng_below(wrng *r, uint32_t n) {
    CIS_ASSERT(n >= 1);
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;  /* reject the incomplete last block */
    uint64_t v;
    do v = wrng_next(r); while (v >= lim);
    return (uint32_t)(v % n);
}

void wrng_shuffle(wrng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)wrng_below(r, (uint32_t)i + 1), t = a[i];
        a[i] = a[j]; a[j] = t;
    }
}

/* ---- MT19937 as CPython seeds and uses it ---- */
typedef struct mt19937 { uint32_t mt[624]; int mti; } mt19937;

static void mt_init_genrand(mt19937 *m, uint32_t s) {
    m->mt[0] = s;
    for (int i = 1; i < 624; i++) m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->mti = 624;
}

static void mt_init_by_array(mt19937 *m, const uint32_t *key, int klen) {
    mt_init_genrand(m, 19650218u);
    int i = 1, j = 0;
    for (int k = 624 > klen ? 624 : klen; k; k--) {
        m->mt[i] = (m->mt[i] ^ ((m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++; j++;
        if (i >= 624) { m->mt[0] = m->mt[623]; i = 1; }
        if (j >= klen) j = 0;
    }
    for (int k = 623; k; k--) {
        m->mt[i] = (m->mt[i] ^ ((m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= 624) { m->mt[0] = m->mt[623]; i = 1; }
    }
    m->mt[0] = 0x80000000u;
}

static uint32_t mt_next(mt19937 *m) {
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    uint32_t y;
    if (m->mti >= 624) {
        int kk;
        for (kk = 0; kk < 624 - 397; kk++) {
            y = (m->mt[kk] & 0x80000000u) | (m->mt[kk + 1] & 0x7fffffffu);
            m->mt[kk] = m->mt[kk + 397] ^ (y >> 1) ^ mag01[y & 1u];
        }
        for (; kk < 623; kk++) {
            y = (m->mt[kk] & 0x80000000u) | (m->mt[kk + 1] & 0x7fffffffu);
            m->mt[kk] = m->mt[kk + (397 - 624)] ^ (y >> 1) ^ mag01[y & 1u];
        }
        y = (m->mt[623] & 0x80000000u) | (m->mt[0] & 0x7fffffffu);
        m->mt[623] = m->mt[396] ^ (y >> 1) ^ mag01[y & 1u];
        m->mti = 0;
    }
    y = m->mt[m->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* CPython's _randbelow_with_getrandbits for n < 2^31: k = n.bit_length(), draw getrandbits(k)
 * (the top k bits of one 32-bit output) until it is below n. */
static uint32_t mt_randbelow(mt19937 *m, uint32_t n) {
    int k = 0;
    for (uint32_t t = n; t; t >>= 1) k++;
    uint32_t v;
    do v = mt_next(m) >> (32 - k); while (v >= n);
    return v;
}

void py_shuffle(uint32_t seed, int *a, int n) {
    mt19937 m;
    uint32_t key[1] = {seed};
    mt_init_by_array(&m, key, 1);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)mt_randbelow(&m, (uint32_t)i + 1), t = a[i];
        a[i] = a[j]; a[j] = t;
    }
}

/* ---- wbuf ---- */
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

void wbuf_free(wbuf *b) { free(b->p); b->p = NULL; b->len = b->cap = 0; }

void wbuf_json(wbuf *b, json_t *v, size_t flags) {
    char *s = json_dumps(v, flags | JSON_PRESERVE_ORDER);
    CIS_ASSERT(s != NULL);
    wbuf_put(b, s);
    free(s);
    json_decref(v);
}
