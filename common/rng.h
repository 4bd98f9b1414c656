/* rng.h - the project's one module of deterministic random numbers, the same on every platform:
 *   - splitmix64: a 64-bit stream from one uint64_t of state (seeding, weight init, cheap streams);
 *   - xoshiro256**: the general-purpose generator (the synthetic world), seeded through splitmix64,
 *     with an unbiased bounded integer and a Fisher-Yates shuffle;
 *   - MT19937 exactly as CPython's `random` module seeds and uses it (random.seed(int),
 *     getrandbits, random(), randrange(n), shuffle), for splits that must match Python bit for bit
 *     (the zsRE edit sets: random.seed(100); random.shuffle(records)).
 * None of these is cryptographic. All state is caller-owned plain structs (no allocation, no
 * globals); a stream is not thread-safe, give each thread its own. tests/common/test_rng.c checks
 * every function against values computed with python3. */
#ifndef CISWEEP_RNG_H
#define CISWEEP_RNG_H

#include <stddef.h>
#include <stdint.h>

/* ---- splitmix64 ------------------------------------------------------------------------------- */

/* rng_splitmix64: advance *state by the golden-ratio increment and return the mixed value
 * (Steele, Lea & Flood; the reference splitmix64.c). Any state value is valid. */
uint64_t rng_splitmix64(uint64_t *state);
/* rng_splitmix64_open01: a uniform double in the open interval (0, 1), never 0 or 1, from one
 * rng_splitmix64 draw: ((x >> 11) + 0.5) / 2^53 (safe to pass to log()). */
double rng_splitmix64_open01(uint64_t *state);

/* ---- xoshiro256** ----------------------------------------------------------------------------- */

typedef struct rng_xoshiro { uint64_t s[4]; } rng_xoshiro;

/* rng_xoshiro_seed: the stream for (seed, stream): four splitmix64 draws from
 * seed ^ (stream * 0xD1B54A32D192ED03). Different stream numbers give independent streams of one
 * seed (the world generator gives each of its parts its own). */
void rng_xoshiro_seed(rng_xoshiro *r, uint64_t seed, uint64_t stream);
/* rng_xoshiro_next: the next 64-bit output (Blackman & Vigna's xoshiro256**). */
uint64_t rng_xoshiro_next(rng_xoshiro *r);
/* rng_xoshiro_below: a uniform integer in [0, n), unbiased (rejection of the incomplete last block
 * of 2^64). n >= 1 (n == 0 is a programmer error: CIS_ASSERT). */
uint32_t rng_xoshiro_below(rng_xoshiro *r, uint32_t n);
/* rng_xoshiro_shuffle: Fisher-Yates over a[0..n) (i from n-1 down to 1, j = below(i + 1)). */
void rng_xoshiro_shuffle(rng_xoshiro *r, int *a, int n);

/* ---- MT19937 as CPython's random module -------------------------------------------------------- */

typedef struct rng_mt { uint32_t mt[624]; int mti; } rng_mt;

/* rng_mt_seed: random.seed(seed) for an int 0 <= seed < 2^64 (init_by_array over the seed's
 * 32-bit words, least significant first; one word when the seed is below 2^32). */
void rng_mt_seed(rng_mt *m, uint64_t seed);
/* rng_mt_u32: random.getrandbits(32) (one MT19937 output). */
uint32_t rng_mt_u32(rng_mt *m);
/* rng_mt_bits: random.getrandbits(k) for 1 <= k <= 32 (the top k bits of one output). */
uint32_t rng_mt_bits(rng_mt *m, int k);
/* rng_mt_below: random.randrange(n) = random._randbelow(n) for 1 <= n < 2^32: k = n.bit_length(),
 * getrandbits(k) until the draw is below n. */
uint32_t rng_mt_below(rng_mt *m, uint32_t n);
/* rng_mt_random: random.random(), a uniform double in [0, 1) with 53 random bits (two outputs). */
double rng_mt_random(rng_mt *m);
/* rng_mt_shuffle: random.shuffle(a) over n elements of `size` bytes each (a may be NULL when
 * n <= 1): for i from n-1 down to 1, swap a[i] with a[randbelow(i + 1)]. */
void rng_mt_shuffle(rng_mt *m, void *a, size_t n, size_t size);
/* rng_py_permutation: perm[0..n) = the list Python gives for
 * `random.seed(seed); x = list(range(n)); random.shuffle(x)`. */
void rng_py_permutation(uint64_t seed, int32_t *perm, int n);

#endif
