/* test_rng.c - common/rng.h against numbers computed with python3 (3.11): CPython's `random`
 * module for the MT19937 functions (seed, getrandbits, random, randrange, shuffle), and the
 * reference algorithms written out in Python for splitmix64 and xoshiro256**. Each expected value
 * carries the Python that printed it. When python3 is here, the shuffle is also compared live. */
#include "common/rng.h"
#include "common/util.h"
#include "tests/testlib.h"

#include <stdlib.h>

/* ---- splitmix64 ---- */
/* python3 -c "
 * M=2**64-1
 * def sm(s):
 *     s=(s+0x9E3779B97F4A7C15)&M; z=s; z=((z^(z>>30))*0xBF58476D1CE4E5B9)&M
 *     z=((z^(z>>27))*0x94D049BB133111EB)&M; return s, z^(z>>31)
 * s=0; o=[]
 * for _ in range(3): s,z=sm(s); o.append(hex(z))
 * print(o)
 * s=1234567
 * for _ in range(2): s,z=sm(s); print(hex(z), (((z>>11)+0.5)*2.0**-53).hex())" */
static void test_splitmix64(void) {
    uint64_t s = 0;
    CHECK(rng_splitmix64(&s) == 0xe220a8397b1dcdafull);
    CHECK(rng_splitmix64(&s) == 0x6e789e6aa1b965f4ull);
    CHECK(rng_splitmix64(&s) == 0x06c45d188009454full);
    CHECK(s == 3 * 0x9E3779B97F4A7C15ull);
    s = 1234567;
    uint64_t t = s;
    CHECK(rng_splitmix64(&t) == 0x599ed017fb08fc85ull);
    CHECK(rng_splitmix64(&t) == 0x2c73f08458540fa5ull);
    CHECK(rng_splitmix64_open01(&s) == 0x1.667b405fec23fp-2);
    CHECK(rng_splitmix64_open01(&s) == 0x1.639f8422c2a06p-3);
    /* open at both ends */
    uint64_t u = 99;
    for (int i = 0; i < 100000; i++) {
        double x = rng_splitmix64_open01(&u);
        if (!(x > 0 && x < 1)) { CHECK_MSG(0, "draw %d = %.17g", i, x); break; }
    }
}

/* ---- xoshiro256** ---- */
/* The reference vector of xoshiro256starstar.c: state {1, 2, 3, 4} gives 11520, 0, 1509978240,
 * 1215971899390074240. Seeded, in Python (sm as above):
 * def rotl(x,k): return ((x<<k)|(x>>(64-k)))&M
 * def nxt(s):
 *     out=(rotl((s[1]*5)&M,7)*9)&M; t=(s[1]<<17)&M
 *     s[2]^=s[0]; s[3]^=s[1]; s[1]^=s[2]; s[0]^=s[3]; s[2]^=t; s[3]=rotl(s[3],45); return out
 * def seed(sd,part):
 *     x=sd^((part*0xD1B54A32D192ED03)&M); st=[]
 *     for _ in range(4): x,z=sm(x); st.append(z)
 *     return st
 * def below(s,n):
 *     lim=M-(M%n)
 *     while True:
 *         v=nxt(s)
 *         if v<lim: return v%n
 * s=seed(1,0); print([hex(nxt(s)) for _ in range(3)])
 * s=seed(42,300); print([below(s,n) for n in (1,2,3,10,1000,2**32-1)])
 * s=seed(42,300); a=list(range(10))
 * for i in range(9,0,-1): j=below(s,i+1); a[i],a[j]=a[j],a[i]
 * print(a) */
static void test_xoshiro(void) {
    rng_xoshiro r = {{1, 2, 3, 4}};
    CHECK(rng_xoshiro_next(&r) == 11520u);
    CHECK(rng_xoshiro_next(&r) == 0u);
    CHECK(rng_xoshiro_next(&r) == 1509978240u);
    CHECK(rng_xoshiro_next(&r) == 1215971899390074240ull);
    rng_xoshiro_seed(&r, 1, 0);
    CHECK(rng_xoshiro_next(&r) == 0xb3f2af6d0fc710c5ull);
    CHECK(rng_xoshiro_next(&r) == 0x853b559647364ceaull);
    CHECK(rng_xoshiro_next(&r) == 0x92f89756082a4514ull);
    rng_xoshiro_seed(&r, 42, 300);
    const uint32_t n[6] = {1, 2, 3, 10, 1000, 4294967295u}, want[6] = {0, 0, 2, 6, 698, 1724566692u};
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(rng_xoshiro_below(&r, n[i]), want[i]);
    rng_xoshiro_seed(&r, 42, 300);
    int a[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, wa[10] = {1, 6, 3, 4, 9, 0, 8, 5, 7, 2};
    rng_xoshiro_shuffle(&r, a, 10);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(a[i], wa[i]);
    /* different streams of one seed differ */
    rng_xoshiro p, q;
    rng_xoshiro_seed(&p, 7, 1);
    rng_xoshiro_seed(&q, 7, 2);
    CHECK(rng_xoshiro_next(&p) != rng_xoshiro_next(&q));
}

/* ---- MT19937 as CPython's random ---- */
static void test_mt_getrandbits(void) {
    rng_mt m;
    /* python3 -c "import random; random.seed(100); print([random.getrandbits(32) for _ in range(5)])" */
    const uint32_t w100[5] = {625644691u, 1973661107u, 1953896601u, 4087596401u, 3310491232u};
    rng_mt_seed(&m, 100);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(rng_mt_u32(&m), w100[i]);
    /* python3 -c "import random; random.seed(0); print([random.getrandbits(32) for _ in range(3)])" */
    const uint32_t w0[3] = {3626764237u, 1654615998u, 3255389356u};
    rng_mt_seed(&m, 0);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(rng_mt_u32(&m), w0[i]);
    /* a seed wider than 32 bits: init_by_array over two words
     * python3 -c "import random; random.seed(5000000000); print([random.getrandbits(32) for _ in range(3)])" */
    const uint32_t w5e9[3] = {372202282u, 4101146408u, 2606164382u};
    rng_mt_seed(&m, 5000000000ull);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(rng_mt_u32(&m), w5e9[i]);
    /* python3 -c "import random; random.seed(2**64-1); print([random.getrandbits(32) for _ in range(3)])" */
    const uint32_t wmax[3] = {93740670u, 1068495656u, 1452108352u};
    rng_mt_seed(&m, UINT64_MAX);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(rng_mt_u32(&m), wmax[i]);
    /* python3 -c "import random; random.seed(100); print([random.getrandbits(7) for _ in range(5)])" */
    const uint32_t w7[5] = {18, 58, 58, 121, 98};
    rng_mt_seed(&m, 100);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(rng_mt_bits(&m, 7), w7[i]);
    /* past the first 624-word block: python3 -c "import random; random.seed(42);
     * [random.random() for _ in range(700)]; print(random.getrandbits(32))" */
    rng_mt_seed(&m, 42);
    for (int i = 0; i < 700; i++) (void)rng_mt_random(&m);
    CHECK_EQ_INT(rng_mt_u32(&m), 2781569954u);
}

static void test_mt_random_randrange(void) {
    rng_mt m;
    /* python3 -c "import random; random.seed(100); print([random.random().hex() for _ in range(3)])" */
    rng_mt_seed(&m, 100);
    CHECK(rng_mt_random(&m) == 0x1.2a54a475a3ad8p-3);
    CHECK(rng_mt_random(&m) == 0x1.d1d86279d1e2ap-2);
    CHECK(rng_mt_random(&m) == 0x1.8aa42ccb2f102p-1);
    /* python3 -c "import random; random.seed(7);
     * print([random.randrange(n) for n in (1,2,3,10,1000,2**31-1,2**31,2**32-1)])" */
    const uint32_t n[8] = {1, 2, 3, 10, 1000, 2147483647u, 2147483648u, 4294967295u};
    const uint32_t want[8] = {0, 0, 1, 0, 74, 1763673106u, 404285457u, 1570621944u};
    rng_mt_seed(&m, 7);
    for (int i = 0; i < 8; i++) CHECK_EQ_INT(rng_mt_below(&m, n[i]), want[i]);
}

static void test_py_shuffle(void) {
    /* python3 -c "import random; random.seed(100); x=list(range(1000)); random.shuffle(x);
     * print(x[:12], x[995:], sum(i*v for i,v in enumerate(x)))" */
    int32_t *p = xmalloc(1000 * sizeof *p);
    rng_py_permutation(100, p, 1000);
    const int32_t head[12] = {342, 471, 929, 100, 543, 231, 154, 450, 721, 788, 685, 61};
    const int32_t tail[5] = {789, 974, 465, 470, 149};
    for (int i = 0; i < 12; i++) CHECK_EQ_INT(p[i], head[i]);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(p[995 + i], tail[i]);
    long long s = 0;
    for (int i = 0; i < 1000; i++) s += (long long)i * p[i];
    CHECK_EQ_INT(s, 248457308LL);
    /* python3 -c "import random; random.seed(100); x=list(range(7)); random.shuffle(x); print(x)" */
    rng_py_permutation(100, p, 7);
    const int32_t w7[7] = {0, 4, 2, 6, 5, 3, 1};
    for (int i = 0; i < 7; i++) CHECK_EQ_INT(p[i], w7[i]);
    /* python3 -c "import random; random.seed(5000000000); x=list(range(20)); random.shuffle(x); print(x)" */
    rng_py_permutation(5000000000ULL, p, 20);
    const int32_t w20[20] = {1, 8, 12, 10, 18, 4, 3, 5, 11, 7, 17, 19, 13, 16, 6, 14, 9, 15, 0, 2};
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(p[i], w20[i]);
    /* rng_mt_shuffle permutes any element size the same way (random.shuffle of any list) */
    struct { double x; char tag[8]; } e[7];
    for (int i = 0; i < 7; i++) { e[i].x = i; snprintf(e[i].tag, sizeof e[i].tag, "e%d", i); }
    rng_mt m;
    rng_mt_seed(&m, 100);
    rng_mt_shuffle(&m, e, 7, sizeof e[0]);
    for (int i = 0; i < 7; i++) {
        char t[8];
        snprintf(t, sizeof t, "e%d", w7[i]);
        CHECK(e[i].x == w7[i]);
        CHECK_EQ_STR(e[i].tag, t);
    }
    rng_py_permutation(3, p, 0);  /* empty and single lists: no draw, no write past n */
    p[0] = 77;
    rng_py_permutation(3, p, 1);
    CHECK_EQ_INT(p[0], 0);
    free(p);
}

/* when python3 is here, compare a few more sizes against the real thing */
static void test_py_shuffle_live(void) {
    FILE *f = popen("python3 -c \"import random\nfor n in (1,2,3,50,1001,4096):\n random.seed(100); x=list(range(n)); "
                    "random.shuffle(x); print(n, *x)\" 2>/dev/null", "r");
    if (!f) SKIP("python3 not available");
    int n, checked = 0;
    while (fscanf(f, "%d", &n) == 1) {
        int32_t *p = xmalloc((size_t)n * sizeof *p);
        rng_py_permutation(100, p, n);
        for (int i = 0; i < n; i++) { int v; if (fscanf(f, "%d", &v) != 1) { CHECK(0); break; } CHECK_EQ_INT(p[i], v); }
        free(p);
        checked++;
    }
    int rc = pclose(f);
    if (checked == 0 && rc != 0) SKIP("python3 not available");
    CHECK_EQ_INT(checked, 6);
}

int main(void) {
    RUN(test_splitmix64);
    RUN(test_xoshiro);
    RUN(test_mt_getrandbits);
    RUN(test_mt_random_randrange);
    RUN(test_py_shuffle);
    RUN(test_py_shuffle_live);
    return test_summary();
}
