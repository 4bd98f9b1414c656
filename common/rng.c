/* rng.c - splitmix64, xoshiro256** and CPython's MT19937 (random.seed / getrandbits / random /
 * randrange / shuffle), bit for bit; the contracts are in rng.h. */
#include "common/rng.h"
#include "common/util.h"

#include <string.h>

// ---- splitmix64 ---------------------------------------------------------------------------------

uint64_t rng_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double rng_splitmix64_open01(uint64_t *state) {
    return ((double)(rng_splitmix64(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// ---- xoshiro256** -------------------------------------------------------------------------------

void rng_xoshiro_seed(rng_xoshiro *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_xoshiro_next(rng_xoshiro *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

uint32_t rng_xoshiro_below(rng_xoshiro *r, uint32_t n) {
    CIS_ASSERT(n >= 1);
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;  /* reject the incomplete last block */
    uint64_t v;
    do v = rng_xoshiro_next(r); while (v >= lim);
    return (uint32_t)(v % n);
}

void rng_xoshiro_shuffle(rng_xoshiro *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_xoshiro_below(r, (uint32_t)i + 1), t = a[i];
        a[i] = a[j]; a[j] = t;
    }
}

// ---- MT19937 as CPython seeds and uses it (Modules/_randommodule.c, Lib/random.py) --------------

static void mt_init_genrand(rng_mt *m, uint32_t s) {
    m->mt[0] = s;
    for (int i = 1; i < 624; i++) m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->mti = 624;
}

static void mt_init_by_array(rng_mt *m, const uint32_t *key, int klen) {
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

void rng_mt_seed(rng_mt *m, uint64_t seed) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    mt_init_by_array(m, key, key[1] ? 2 : 1);
}

uint32_t rng_mt_u32(rng_mt *m) {
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

uint32_t rng_mt_bits(rng_mt *m, int k) {
    CIS_ASSERT(k >= 1 && k <= 32);
    return rng_mt_u32(m) >> (32 - k);
}

uint32_t rng_mt_below(rng_mt *m, uint32_t n) {
    CIS_ASSERT(n >= 1);
    int k = 0;
    for (uint32_t t = n; t; t >>= 1) k++;   /* n.bit_length() */
    uint32_t v;
    do v = rng_mt_bits(m, k); while (v >= n);
    return v;
}

double rng_mt_random(rng_mt *m) {
    uint32_t a = rng_mt_u32(m) >> 5, b = rng_mt_u32(m) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

void rng_mt_shuffle(rng_mt *m, void *a, size_t n, size_t size) {
    unsigned char tmp[64], *p = a;
    CIS_ASSERT(size >= 1 && size <= sizeof tmp);
    CIS_ASSERT(n <= UINT32_MAX);
    for (size_t i = n > 0 ? n - 1 : 0; i > 0; i--) {
        size_t j = rng_mt_below(m, (uint32_t)(i + 1));
        if (j == i) continue;
        memcpy(tmp, p + i * size, size);
        memcpy(p + i * size, p + j * size, size);
        memcpy(p + j * size, tmp, size);
    }
}

void rng_py_permutation(uint64_t seed, int32_t *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    rng_mt m;
    rng_mt_seed(&m, seed);
    rng_mt_shuffle(&m, perm, n > 0 ? (size_t)n : 0, sizeof *perm);
}
