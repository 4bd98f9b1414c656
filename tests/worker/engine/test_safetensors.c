/* test_safetensors.c - safetensors reader/writer, fp16/bf16 conversion and checkpoint load/save.
 *
 * With no arguments it runs its unit tests. With arguments it is the tool the Python peer-parity
 * test (test_checkpoint.py) drives, so that the comparison with the `safetensors` package goes
 * through exactly this library:
 *   write PATH DTYPE           write the fixed test tensors in DTYPE (or MIXED: one dtype each) to PATH
 *                              and in F32 to PATH.f32
 *   read PATH NAME             print "DTYPE d0 d1 ..." then the fp32 bit patterns (hex), one a line
 *   ckpt-load DIR OUT          load DIR (config.json + safetensors) and write every parameter, with
 *                              Llama names, as F32 to OUT
 *   ckpt-save DIR OUTDIR DTYPE MAXBYTES   load DIR and save it to OUTDIR
 *   config-save IN OUT         load config.json IN and save it to OUT
 * Tool errors go to stderr as "error: <message>" with exit status 1. */
#include "tests/testlib.h"
#include "common/util.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/config.h"
#include "worker/engine/half.h"
#include "worker/engine/safetensors.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[256];

static char *tpath(const char *name) { return xasprintf("%s/%s", g_dir, name); }

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---------------------------------------------------------------- the fixed tool tensors */

/* values[i] for the "values" tensor: a hash spread over many magnitudes (reproduced in Python
 * with float64 arithmetic then one cast to float32), then special values */
#define N_HASHED 4000
static const uint32_t SPECIAL_BITS[] = {
    0x3f800000u, /* 1.0 */        0xc0200000u, /* -2.5 */      0x477fe000u, /* 65504 */
    0x477ff000u, /* 65520: f16 tie -> inf */   0x33800000u, /* 2^-24: f16 smallest subnormal */
    0x33000000u, /* 2^-25: f16 tie -> 0 */     0x33c00000u, /* 1.5*2^-24: f16 tie -> 2*2^-24 */
    0x387fc000u, /* f16 largest subnormal */   0x38800000u, /* f16 smallest normal */
    0x7f800000u, /* inf */        0xff800000u, /* -inf */      0x7fc00000u, /* nan */
    0x80000000u, /* -0 */         0x3f808000u, /* 1+2^-8: bf16 tie -> 1 */
    0x3f818000u, /* 1+3*2^-8: bf16 tie -> up */ 0x7f7fffffu, /* FLT_MAX: bf16 -> inf, f16 -> inf */
    0x00000001u, /* f32 subnormal */           0x00018000u, /* f32 subnormal, bf16 tie -> even up */
    0x3f801000u, /* 1+2^-11: f16 tie -> 1 */   0x3f803000u, /* 1+3*2^-11: f16 tie -> up */
};
#define N_SPECIAL (sizeof SPECIAL_BITS / sizeof SPECIAL_BITS[0])

static float *tool_values(size_t *n) {
    *n = N_HASHED + N_SPECIAL;
    float *v = xmalloc(*n * sizeof *v);
    for (size_t i = 0; i < N_HASHED; i++) {
        uint32_t h = (uint32_t)((uint64_t)(i + 1) * 2654435761u);
        double scale = 1.0;
        for (int k = 0; k < (int)(i % 13); k++) scale *= 8.0;
        v[i] = (float)(((double)h / 4294967296.0 - 0.5) * scale * 0.0009765625);
    }
    for (size_t i = 0; i < N_SPECIAL; i++) v[N_HASHED + i] = bitsf(SPECIAL_BITS[i]);
    return v;
}

static int tool_write(const char *path, const char *dtype) {
    st_dtype dt;
    bool mixed = !strcmp(dtype, "MIXED"); /* values F16, matrix BF16, scalar F32, empty BF16 */
    if (!mixed && st_dtype_parse(dtype, &dt) != 0) { fprintf(stderr, "error: bad dtype %s\n", dtype); return 1; }
    if (mixed) dt = ST_F16;
    size_t n;
    float *v = tool_values(&n);
    float m[12], sc = 3.25f;
    for (int i = 0; i < 12; i++) m[i] = (float)i - 5.5f;
    int64_t sh_v[1] = {(int64_t)n}, sh_m[2] = {3, 4}, sh_e[2] = {0, 4};
    st_write_tensor t[4] = {
        {.name = "values", .dtype = dt, .ndim = 1, .shape = sh_v, .data = v},
        {.name = "matrix.weight", .dtype = dt, .ndim = 2, .shape = sh_m, .data = m},
        {.name = "scalar", .dtype = dt, .ndim = 0, .shape = NULL, .data = &sc},
        {.name = "empty", .dtype = dt, .ndim = 2, .shape = sh_e, .data = NULL},
    };
    if (mixed) { t[1].dtype = ST_BF16; t[2].dtype = ST_F32; t[3].dtype = ST_BF16; }
    st_kv meta[1] = {{"format", "pt"}};
    cis_err err = {0};
    char *p32 = xasprintf("%s.f32", path);
    int rc = st_write(path, t, 4, meta, 1, &err);
    if (rc == 0) {
        for (int i = 0; i < 4; i++) t[i].dtype = ST_F32;
        rc = st_write(p32, t, 4, meta, 1, &err);
    }
    free(p32);
    free(v);
    if (rc != 0) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    return 0;
}

static int tool_read(const char *path, const char *name) {
    cis_err err = {0};
    st_file *f = st_open(path, &err);
    if (!f) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    const st_tensor_info *ti = st_find(f, name);
    if (!ti) { fprintf(stderr, "error: no tensor %s\n", name); st_close(&f); return 1; }
    printf("%s", st_dtype_name(ti->dtype));
    for (int i = 0; i < ti->ndim; i++) printf(" %lld", (long long)ti->shape[i]);
    printf("\n");
    float *d = xmalloc((ti->numel ? ti->numel : 1) * sizeof *d);
    if (st_read_f32(f, name, d, ti->numel, &err) != 0) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    for (uint64_t i = 0; i < ti->numel; i++) printf("%08x\n", fbits(d[i]));
    free(d);
    st_close(&f);
    return 0;
}

typedef struct model_buf {
    llama_config cfg;
    ckpt_tensor *t;
    size_t n;
} model_buf;

static void model_alloc(model_buf *m) {
    m->t = checkpoint_layout(&m->cfg, &m->n);
    for (size_t i = 0; i < m->n; i++) {
        size_t ne = 1;
        for (int k = 0; k < m->t[i].ndim; k++) ne *= (size_t)m->t[i].shape[k];
        m->t[i].data = xcalloc(ne ? ne : 1, sizeof(float));
    }
}

static void model_buf_clear(model_buf *m) {
    for (size_t i = 0; i < m->n; i++) free(m->t[i].data);
    checkpoint_layout_free(&m->t, m->n);
}

static int model_load(const char *dir, model_buf *m, cis_err *err) {
    if (checkpoint_dir_load_config(dir, &m->cfg, err) != 0) return -1;
    model_alloc(m);
    if (checkpoint_load(dir, &m->cfg, m->t, m->n, err) != 0) { model_buf_clear(m); return -1; }
    return 0;
}

static int tool_ckpt_load(const char *dir, const char *out) {
    cis_err err = {0};
    model_buf m = {0};
    if (model_load(dir, &m, &err) != 0) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    st_write_tensor *w = xcalloc(m.n, sizeof *w);
    for (size_t i = 0; i < m.n; i++)
        w[i] = (st_write_tensor){.name = m.t[i].name, .dtype = ST_F32, .ndim = m.t[i].ndim, .shape = m.t[i].shape,
                                 .data = m.t[i].data};
    int rc = st_write(out, w, m.n, NULL, 0, &err);
    free(w);
    model_buf_clear(&m);
    if (rc != 0) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    return 0;
}

static int tool_ckpt_save(const char *dir, const char *outdir, const char *dtype, const char *maxb) {
    cis_err err = {0};
    model_buf m = {0};
    if (model_load(dir, &m, &err) != 0) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    int rc = checkpoint_save(outdir, &m.cfg, m.t, m.n, dtype, (size_t)strtoull(maxb, NULL, 10), &err);
    model_buf_clear(&m);
    if (rc != 0) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    return 0;
}

static int tool_config_save(const char *in, const char *out) {
    cis_err err = {0};
    llama_config c;
    if (llama_config_load(in, &c, &err) != 0 || llama_config_save(out, &c, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- helpers for the unit tests */

/* write a raw safetensors file: 8-byte length (hlen_override if nonzero, else strlen(hdr)),
 * the header, then data_len bytes 0..255 repeating */
static char *write_raw(const char *name, const char *hdr, uint64_t hlen_override, size_t data_len) {
    char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    CIS_ASSERT(f);
    uint64_t hl = hlen_override ? hlen_override : strlen(hdr);
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(hl >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
    fclose(f);
    return p;
}

/* open must fail, and the message must contain every non-NULL needle */
static void expect_open_error(const char *name, const char *hdr, uint64_t hlen, size_t data_len, const char *n1,
                              const char *n2) {
    char *p = write_raw(name, hdr, hlen, data_len);
    cis_err err = {0};
    st_file *f = st_open(p, &err);
    CHECK_MSG(f == NULL, "%s: opened but should fail", name);
    if (f) st_close(&f);
    CHECK_MSG(strstr(err.msg, name) != NULL, "message does not name the file: %s", err.msg);
    if (n1) CHECK_MSG(strstr(err.msg, n1) != NULL, "message lacks '%s': %s", n1, err.msg);
    if (n2) CHECK_MSG(strstr(err.msg, n2) != NULL, "message lacks '%s': %s", n2, err.msg);
    unlink(p);
    free(p);
}

/* plain write (no fsync: the fuzz loop writes thousands of files) */
static void write_bytes(const char *path, const void *p, size_t n) {
    unlink(path); /* a fresh file: truncating one in place makes ext4 flush it on close */
    FILE *f = fopen(path, "wb");
    CIS_ASSERT(f);
    CIS_ASSERT(fwrite(p, 1, n, f) == n || n == 0);
    CIS_ASSERT(fclose(f) == 0);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

/* ---------------------------------------------------------------- half */

static void test_half_known_values(void) {
    CHECK_EQ_INT(half_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(half_f32_to_f16(-2.5f), 0xc100);
    CHECK_EQ_INT(half_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(half_f32_to_f16(65519.0f), 0x7bff);        /* below the tie: stays finite */
    CHECK_EQ_INT(half_f32_to_f16(65520.0f), 0x7c00);        /* tie rounds to even = inf */
    CHECK_EQ_INT(half_f32_to_f16(1e6f), 0x7c00);
    CHECK_EQ_INT(half_f32_to_f16(-1e6f), 0xfc00);
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x33800000u)), 0x0001); /* 2^-24 */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x33000000u)), 0x0000); /* 2^-25: tie -> even 0 */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x33000001u)), 0x0001); /* just above the tie */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x33c00000u)), 0x0002); /* 1.5*2^-24: tie -> even 2 */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x387fc000u)), 0x03ff); /* largest subnormal */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x387fe000u)), 0x0400); /* rounds up into the normals */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x3f801000u)), 0x3c00); /* 1+2^-11: tie -> even */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x3f803000u)), 0x3c02); /* 1+3*2^-11: tie -> even (up) */
    CHECK_EQ_INT(half_f32_to_f16(bitsf(0x00000001u)), 0x0000); /* f32 subnormal */
    CHECK_EQ_INT(half_f32_to_f16(-0.0f), 0x8000);
    CHECK_EQ_INT(half_f32_to_f16(INFINITY), 0x7c00);
    CHECK_EQ_INT(half_f32_to_f16(-INFINITY), 0xfc00);
    uint16_t hn = half_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    CHECK(half_f16_to_f32(0x3c00) == 1.0f);
    CHECK(half_f16_to_f32(0xc100) == -2.5f);
    CHECK(half_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(half_f16_to_f32(0x0001) == bitsf(0x33800000u));
    CHECK(half_f16_to_f32(0x03ff) == bitsf(0x387fc000u));
    CHECK(half_f16_to_f32(0x8001) == -bitsf(0x33800000u));
    CHECK(half_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(isinf(half_f16_to_f32(0x7c00)) && half_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(half_f16_to_f32(0xfc00)) && half_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(half_f16_to_f32(0x7e00)));
    CHECK(isnan(half_f16_to_f32(0x7c01)));

    CHECK_EQ_INT(half_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(half_f32_to_bf16(-2.5f), 0xc020);
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x3f808000u)), 0x3f80); /* tie -> even (down) */
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x3f818000u)), 0x3f82); /* tie -> even (up) */
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x3f808001u)), 0x3f81); /* above the tie */
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x3f807fffu)), 0x3f80); /* below the tie */
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x7f7fffffu)), 0x7f80); /* FLT_MAX -> inf */
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x00008000u)), 0x0000); /* subnormal tie -> even 0 */
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x00018000u)), 0x0002); /* subnormal tie -> even 2 */
    CHECK_EQ_INT(half_f32_to_bf16(bitsf(0x00010000u)), 0x0001); /* exact subnormal */
    CHECK_EQ_INT(half_f32_to_bf16(INFINITY), 0x7f80);
    CHECK_EQ_INT(half_f32_to_bf16(-INFINITY), 0xff80);
    CHECK_EQ_INT(half_f32_to_bf16(-0.0f), 0x8000);
    uint16_t bn = half_f32_to_bf16(NAN), bn2 = half_f32_to_bf16(bitsf(0x7f800001u)); /* payload only in low bits */
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) != 0);
    CHECK((bn2 & 0x7f80) == 0x7f80 && (bn2 & 0x7f) != 0);
    CHECK(half_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(half_bf16_to_f32(0xc020) == -2.5f);
    CHECK(half_bf16_to_f32(0x0001) == bitsf(0x00010000u));
    CHECK(isnan(half_bf16_to_f32(0x7fc0)));
}

static void test_half_exhaustive_roundtrip(void) {
    int bad16 = 0, badb = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = half_f16_to_f32((uint16_t)h);
        uint16_t back = half_f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) { if (!isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff)) bad16++; }
        else if (back != h) bad16++;
        float g = half_bf16_to_f32((uint16_t)h);
        uint16_t bb = half_f32_to_bf16(g);
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) { if (!isnan(g) || !isnan(half_bf16_to_f32(bb))) badb++; }
        else if (bb != h) badb++;
    }
    CHECK_EQ_INT(bad16, 0);
    CHECK_EQ_INT(badb, 0);
    /* fp16 rounding is monotone and lands on a neighbour: for every f16 pair (a, a+1) of positive
     * finite values the midpoint goes to the even one and points just off it go to the nearer */
    int badmid = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float a = half_f16_to_f32((uint16_t)h), b = half_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)(((double)a + (double)b) / 2);
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (half_f32_to_f16(mid) != want) badmid++;
        if (half_f32_to_f16(nextafterf(mid, 0)) != h) badmid++;
        if (half_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) badmid++;
    }
    CHECK_EQ_INT(badmid, 0);
}

/* ---------------------------------------------------------------- safetensors round trip */

static void roundtrip_dtype(st_dtype dt) {
    char *p = tpath(dt == ST_F32 ? "rt32.safetensors" : dt == ST_F16 ? "rt16.safetensors" : "rtbf.safetensors");
    size_t nv;
    float *v = tool_values(&nv);
    float m[15];
    for (int i = 0; i < 15; i++) m[i] = (float)i * 0.1f - 0.7f;
    float sc = -1.5f;
    int64_t sh_v[1] = {(int64_t)nv}, sh_m[2] = {3, 5}, sh_e[2] = {0, 4};
    st_write_tensor t[4] = {
        {.name = "zeta.values", .dtype = dt, .ndim = 1, .shape = sh_v, .data = v},
        {.name = "alpha.matrix", .dtype = dt, .ndim = 2, .shape = sh_m, .data = m},
        {.name = "mid.scalar", .dtype = dt, .ndim = 0, .data = &sc},
        {.name = "empty", .dtype = dt, .ndim = 2, .shape = sh_e},
    };
    st_kv meta[1] = {{"format", "pt"}};
    cis_err err = {0};
    CHECK_MSG(st_write(p, t, 4, meta, 1, &err) == 0, "%s", err.msg);
    st_file *f = st_open(p, &err);
    CHECK_MSG(f != NULL, "%s", err.msg);
    if (!f) { free(v); free(p); return; }
    CHECK_EQ_INT(st_count(f), 4);
    CHECK_EQ_STR(st_metadata(f, "format"), "pt");
    CHECK(st_metadata(f, "nope") == NULL);
    /* header length is a multiple of 8, tensors laid out in name order */
    CHECK_EQ_INT(st_get(f, 0)->offset % 8, 0);
    CHECK_EQ_STR(st_get(f, 0)->name, "alpha.matrix");
    CHECK_EQ_STR(st_get(f, 3)->name, "zeta.values");
    const st_tensor_info *ti = st_find(f, "alpha.matrix");
    CHECK(ti && ti->ndim == 2 && ti->shape[0] == 3 && ti->shape[1] == 5 && ti->dtype == dt);
    ti = st_find(f, "mid.scalar");
    CHECK(ti && ti->ndim == 0 && ti->numel == 1);
    ti = st_find(f, "empty");
    CHECK(ti && ti->numel == 0 && ti->nbytes == 0);
    float *back = xmalloc(nv * sizeof *back);
    CHECK(st_read_f32(f, "zeta.values", back, nv, &err) == 0);
    int bad = 0;
    for (size_t i = 0; i < nv; i++) {
        float want = dt == ST_F32 ? v[i] : dt == ST_F16 ? half_f16_to_f32(half_f32_to_f16(v[i]))
                                                        : half_bf16_to_f32(half_f32_to_bf16(v[i]));
        if (isnan(want) ? !isnan(back[i]) : fbits(want) != fbits(back[i])) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    float m2[15], s2;
    CHECK(st_read_f32(f, "alpha.matrix", m2, 15, &err) == 0);
    CHECK_NEAR(m2[14], m[14], dt == ST_F32 ? 0 : 1e-2);
    CHECK(st_read_f32(f, "mid.scalar", &s2, 1, &err) == 0 && s2 == -1.5f);
    CHECK(st_read_f32(f, "alpha.matrix", m2, 14, &err) == -1 && strstr(err.msg, "alpha.matrix"));
    CHECK(st_read_f32(f, "missing", m2, 1, &err) == -1 && strstr(err.msg, "missing"));
    st_close(&f);
    free(back);
    free(v);
    unlink(p);
    free(p);
}

static void test_roundtrip_f32(void) { roundtrip_dtype(ST_F32); }
static void test_roundtrip_f16(void) { roundtrip_dtype(ST_F16); }
static void test_roundtrip_bf16(void) { roundtrip_dtype(ST_BF16); }

static void test_write_parts_and_errors(void) {
    char *p = tpath("parts.safetensors");
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    int64_t sh[2] = {3, 2};
    st_write_tensor t = {.name = "fused", .dtype = ST_F32, .ndim = 2, .shape = sh, .n_parts = 2,
                         .parts = {a, b}, .part_numel = {4, 2}};
    cis_err err = {0};
    CHECK(st_write(p, &t, 1, NULL, 0, &err) == 0);
    st_file *f = st_open(p, &err);
    float out[6];
    CHECK(f && st_read_f32(f, "fused", out, 6, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK(out[i] == (float)(i + 1));
    st_close(&f);
    /* errors leave the existing file untouched */
    st_write_tensor d[2] = {{.name = "x", .dtype = ST_F32, .ndim = 1, .shape = sh, .data = a},
                            {.name = "x", .dtype = ST_F32, .ndim = 1, .shape = sh, .data = a}};
    CHECK(st_write(p, d, 2, NULL, 0, &err) == -1 && strstr(err.msg, "duplicate") && strstr(err.msg, "'x'"));
    t.part_numel[1] = 1;
    CHECK(st_write(p, &t, 1, NULL, 0, &err) == -1 && strstr(err.msg, "fused"));
    int64_t neg[1] = {-2};
    st_write_tensor nt = {.name = "neg", .dtype = ST_F32, .ndim = 1, .shape = neg, .data = a};
    CHECK(st_write(p, &nt, 1, NULL, 0, &err) == -1 && strstr(err.msg, "neg"));
    f = st_open(p, &err);
    CHECK(f && st_count(f) == 1 && st_find(f, "fused"));
    st_close(&f);
    char *bad = xasprintf("%s/no/such/dir/x.safetensors", g_dir);
    CHECK(st_write(bad, &nt, 0, NULL, 0, &err) == -1 && strstr(err.msg, "no/such/dir"));
    free(bad);
    unlink(p);
    free(p);
}

/* ---------------------------------------------------------------- bad input */

static void test_bad_files(void) {
    const char *ok1 = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    char *p = write_raw("good.safetensors", ok1, 0, 8);
    cis_err err = {0};
    st_file *f = st_open(p, &err);
    CHECK_MSG(f != NULL, "%s", err.msg);
    st_close(&f);
    free(p);

    expect_open_error("empty_hdr.safetensors", "", 0, 0, "not valid JSON", NULL); /* header length 0 */
    char *tp = tpath("tiny.safetensors");
    write_text(tp, "\x05\x00\x00");
    CHECK(st_open(tp, &err) == NULL && strstr(err.msg, "tiny.safetensors") && strstr(err.msg, "truncated"));
    write_text(tp, "");
    CHECK(st_open(tp, &err) == NULL && strstr(err.msg, "tiny.safetensors") && strstr(err.msg, "truncated"));
    unlink(tp);
    free(tp);
    expect_open_error("hlen.safetensors", ok1, 1000, 8, "header length 1000", "exceeds");
    expect_open_error("hlenhuge.safetensors", ok1, 0xffffffffffffff00ull, 8, "exceeds", NULL);
    expect_open_error("notjson.safetensors", "{\"w\": [1, 2", 0, 0, "not valid JSON", NULL);
    expect_open_error("array.safetensors", "[1, 2, 3]", 0, 0, "not a JSON object", NULL);
    expect_open_error("outside.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 4,
                      "'w'", "outside the data region");
    expect_open_error("outside2.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9223372036854775799,9223372036854775807]}}", 0, 8,
                      "'w'", "data_offsets");
    expect_open_error("backwards.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0, 8,
                      "'w'", "end before begin");
    expect_open_error("overlap.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, "'a' and 'b'", "overlap");
    expect_open_error("size.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 12,
                      "'w'", "needs 12");
    expect_open_error("size16.safetensors", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 0,
                      16, "'w'", "[2, 2]");
    expect_open_error("f64.safetensors", "{\"w64\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8,
                      "'w64'", "unsupported dtype 'F64'");
    expect_open_error("i64.safetensors", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8,
                      "'ids'", "unsupported dtype 'I64'");
    expect_open_error("u8.safetensors", "{\"mask\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 0, 8,
                      "'mask'", "unsupported dtype 'U8'");
    expect_open_error("nodtype.safetensors", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "'w'", "dtype");
    expect_open_error("dup.safetensors",
                      "{\"dupname\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"dupname\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8, "duplicate",
                      "dupname");
    expect_open_error("neg.safetensors", "{\"negw\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, 0,
                      "'negw'", "shape[0]");
    expect_open_error("real.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 0, 8,
                      "'w'", "shape[0]");
    expect_open_error("huge.safetensors",
                      "{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 0, 8,
                      "'big'", "too large");
    expect_open_error("huge2.safetensors",
                      "{\"big2\":{\"dtype\":\"F16\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 0, 8,
                      "'big2'", "too large");
    expect_open_error("hugeint.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999999],\"data_offsets\":[0,8]}}", 0, 8,
                      "not valid JSON", NULL);
    expect_open_error("dims.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4, "'w'",
                      "dimensions");
    expect_open_error("offs.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 0, 8, "'w'",
                      "data_offsets");
    expect_open_error("entry.safetensors", "{\"w\":[1]}", 0, 8, "'w'", "not a JSON object");
    expect_open_error("meta.safetensors", "{\"__metadata__\":{\"k\":1}}", 0, 0, "__metadata__", "'k'");
    expect_open_error("nul.safetensors", "{\"w\": \0}", 0, 0, "not valid JSON", NULL);

    char *missing = tpath("does-not-exist.safetensors");
    CHECK(st_open(missing, &err) == NULL && strstr(err.msg, "does-not-exist") && strstr(err.msg, "cannot open"));
    free(missing);
    CHECK(st_open(g_dir, &err) == NULL && strstr(err.msg, "not a regular file"));
}

static void test_truncated_and_fuzzed(void) {
    /* every truncation of a valid file fails cleanly */
    char *p = tpath("trunc_src.safetensors");
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh[1] = {6};
    st_write_tensor t[2] = {{.name = "a", .dtype = ST_F32, .ndim = 1, .shape = sh, .data = v},
                            {.name = "b", .dtype = ST_BF16, .ndim = 1, .shape = sh, .data = v}};
    cis_err err = {0};
    CHECK(st_write(p, t, 2, NULL, 0, &err) == 0);
    size_t len;
    char *buf = read_file(p, &len, &err);
    CHECK(buf != NULL);
    char *q = tpath("trunc.safetensors");
    int opened = 0, named = 0;
    for (size_t k = 0; k < len; k++) {
        write_bytes(q, buf, k);
        st_file *f = st_open(q, &err);
        if (f) { opened++; st_close(&f); }
        else if (strstr(err.msg, "trunc.safetensors")) named++;
    }
    CHECK_EQ_INT(opened, 0);
    CHECK_EQ_INT(named, (long long)len);
    /* random byte mutations: must never crash or read out of bounds (run under ASan); whatever
     * opens must have every tensor inside the file */
    unsigned seed = 12345;
    int ok_open = 0, bad_extent = 0;
    for (int it = 0; it < 3000; it++) {
        char *m = xmalloc(len);
        memcpy(m, buf, len);
        int nmut = 1 + (int)(rand_r(&seed) % 4);
        for (int j = 0; j < nmut; j++) {
            size_t at = (size_t)rand_r(&seed) % len;
            if (it % 3 == 0 && at >= 8) at = 8 + (size_t)rand_r(&seed) % 96; /* focus on the header */
            if (at >= len) at = len - 1;
            m[at] = (char)(rand_r(&seed) & 0xff);
        }
        size_t ml = it % 5 == 0 ? (size_t)rand_r(&seed) % (len + 1) : len;
        write_bytes(q, m, ml);
        st_file *f = st_open(q, &err);
        if (f) {
            ok_open++;
            float tmp[64];
            for (size_t i = 0; i < st_count(f); i++) {
                const st_tensor_info *ti = st_get(f, i);
                if (ti->offset + ti->nbytes > ml) bad_extent++;
                if (ti->numel <= 64) st_read_f32(f, ti->name, tmp, ti->numel, &err);
            }
            st_close(&f);
        }
        free(m);
    }
    CHECK_EQ_INT(bad_extent, 0);
    CHECK(ok_open > 0); /* mutations of the data bytes alone still open */
    unlink(q);
    unlink(p);
    free(q);
    free(p);
    free(buf);
}

/* ---------------------------------------------------------------- config.json */

static const char *LLAMA_CFG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 128256,"
    " \"hidden_size\": 2048, \"intermediate_size\": 8192, \"num_hidden_layers\": 16,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"max_position_embeddings\": 131072,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 32.0,"
    " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192,"
    " \"rope_type\": \"llama3\"}, \"tie_word_embeddings\": true, \"hidden_act\": \"silu\","
    " \"attention_bias\": false, \"mlp_bias\": false, \"bos_token_id\": 128000,"
    " \"eos_token_id\": [128001, 128008, 128009], \"torch_dtype\": \"bfloat16\", \"pretraining_tp\": 1,"
    " \"transformers_version\": \"4.45.0\", \"use_cache\": true, \"initializer_range\": 0.02}";

static int cfg_from(const char *json, llama_config *c, cis_err *err) {
    char *p = tpath("config.json");
    write_text(p, json);
    int rc = llama_config_load(p, c, err);
    free(p);
    return rc;
}

/* LLAMA_CFG with `from` replaced by `to` must fail with a message containing n1 and n2 */
static void cfg_expect_error(const char *from, const char *to, const char *n1, const char *n2) {
    const char *at = strstr(LLAMA_CFG, from);
    CIS_ASSERT(at);
    char *j = xasprintf("%.*s%s%s", (int)(at - LLAMA_CFG), LLAMA_CFG, to, at + strlen(from));
    llama_config c;
    cis_err err = {0};
    CHECK_MSG(cfg_from(j, &c, &err) == -1, "accepted: %s -> %s", from, to);
    CHECK_MSG(strstr(err.msg, "config.json") != NULL, "no file in: %s", err.msg);
    if (n1) CHECK_MSG(strstr(err.msg, n1) != NULL, "lacks '%s': %s", n1, err.msg);
    if (n2) CHECK_MSG(strstr(err.msg, n2) != NULL, "lacks '%s': %s", n2, err.msg);
    free(j);
}

static void test_config_llama32(void) {
    llama_config c;
    cis_err err = {0};
    CHECK_MSG(cfg_from(LLAMA_CFG, &c, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(c.arch, LLAMA_ARCH_LLAMA);
    CHECK_EQ_STR(c.architecture, "LlamaForCausalLM");
    CHECK_EQ_INT(c.vocab_size, 128256);
    CHECK_EQ_INT(c.num_key_value_heads, 8);
    CHECK_EQ_INT(c.head_dim, 64);
    CHECK_EQ_INT(c.rope_scaling, LLAMA_ROPE_LLAMA3);
    CHECK(c.rope_factor == 32.0f && c.rope_low_freq_factor == 1.0f && c.rope_high_freq_factor == 4.0f);
    CHECK_EQ_INT(c.rope_original_max_pos, 8192);
    CHECK(c.rope_theta == 500000.0f && c.rms_norm_eps == 1e-5f);
    CHECK(c.tie_word_embeddings);
    CHECK_EQ_INT(c.n_eos, 3);
    CHECK_EQ_INT(c.eos_token_ids[2], 128009);
    CHECK_EQ_INT(c.bos_token_id, 128000);
    CHECK_EQ_INT(c.pad_token_id, -1);
    CHECK_EQ_STR(c.torch_dtype, "bfloat16");
    /* save and load back: identical struct */
    char *p = tpath("saved_config.json");
    CHECK_MSG(llama_config_save(p, &c, &err) == 0, "%s", err.msg);
    llama_config c2;
    CHECK_MSG(llama_config_load(p, &c2, &err) == 0, "%s", err.msg);
    CHECK(memcmp(&c, &c2, sizeof c) == 0);
    size_t len;
    char *txt = read_file(p, &len, &err);
    CHECK(txt && (strstr(txt, "\"rms_norm_eps\": 1e-05") || strstr(txt, "\"rms_norm_eps\": 1e-5")) &&
          strstr(txt, "\"rope_type\": \"llama3\""));
    free(txt);
    free(p);
}

static void test_config_defaults_and_arches(void) {
    llama_config c;
    cis_err err = {0};
    /* minimal Llama-2 style: no num_key_value_heads, no head_dim, eos an int */
    CHECK_MSG(cfg_from("{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":32000,\"hidden_size\":4096,"
                       "\"intermediate_size\":11008,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
                       "\"eos_token_id\":2,\"bos_token_id\":1,\"rope_scaling\":null}", &c, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(c.num_key_value_heads, 32);
    CHECK_EQ_INT(c.head_dim, 128);
    CHECK_EQ_INT(c.n_eos, 1);
    CHECK_EQ_INT(c.eos_token_ids[0], 2);
    CHECK_EQ_INT(c.rope_scaling, LLAMA_ROPE_NONE);
    CHECK(!c.tie_word_embeddings);
    CHECK(c.rope_theta == 10000.0f);
    CHECK_EQ_STR(c.torch_dtype, "float32");
    /* Mistral with a sliding window */
    CHECK_MSG(cfg_from("{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\",\"vocab_size\":32000,"
                       "\"hidden_size\":4096,\"intermediate_size\":14336,\"num_hidden_layers\":32,"
                       "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"sliding_window\":4096,"
                       "\"head_dim\":null}", &c, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(c.arch, LLAMA_ARCH_MISTRAL);
    CHECK_EQ_INT(c.sliding_window, 4096);
    CHECK_EQ_INT(c.head_dim, 128);
    /* Phi-3 mini */
    CHECK_MSG(cfg_from("{\"architectures\":[\"Phi3ForCausalLM\"],\"model_type\":\"phi3\",\"vocab_size\":32064,"
                       "\"hidden_size\":3072,\"intermediate_size\":8192,\"num_hidden_layers\":32,"
                       "\"num_attention_heads\":32,\"num_key_value_heads\":32,\"sliding_window\":2047,"
                       "\"rope_scaling\":null,\"original_max_position_embeddings\":4096,\"eos_token_id\":32000}",
                       &c, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(c.arch, LLAMA_ARCH_PHI3);
    CHECK(c.rms_norm_eps == 1e-5f);
    CHECK_EQ_INT(c.max_position_embeddings, 4096);
    /* transformers >= 4.5x: rope_parameters */
    CHECK_MSG(cfg_from("{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":100,\"hidden_size\":64,"
                       "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                       "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":250000.0},\"dtype\":\"float16\"}",
                       &c, &err) == 0, "%s", err.msg);
    CHECK(c.rope_theta == 250000.0f && c.rope_scaling == LLAMA_ROPE_NONE);
    CHECK_EQ_STR(c.torch_dtype, "float16");
}

static void test_config_errors(void) {
    cfg_expect_error("\"LlamaForCausalLM\"", "\"GPT2LMHeadModel\"", "GPT2LMHeadModel", "not supported");
    cfg_expect_error("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"", "model_type", NULL);
    cfg_expect_error("\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"", "rope_scaling", "yarn");
    cfg_expect_error("\"rope_type\": \"llama3\"", "\"rope_type\": \"linear\"", "rope_scaling", "linear");
    cfg_expect_error("\"rope_type\": \"llama3\"", "\"type\": \"dynamic\"", "rope_scaling", "dynamic");
    cfg_expect_error("\"rope_type\": \"llama3\"", "\"type\": \"longrope\"", "rope_scaling", "longrope");
    cfg_expect_error("\"rope_type\": \"llama3\"", "\"type\": \"su\"", "rope_scaling", "su");
    cfg_expect_error("\"low_freq_factor\": 1.0,", "", "rope_scaling.low_freq_factor", "missing");
    cfg_expect_error("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act", "gelu");
    cfg_expect_error("\"attention_bias\": false", "\"attention_bias\": true", "attention_bias", NULL);
    cfg_expect_error("\"mlp_bias\": false", "\"mlp_bias\": true", "mlp_bias", NULL);
    cfg_expect_error("\"hidden_size\": 2048,", "", "hidden_size", "missing");
    cfg_expect_error("\"hidden_size\": 2048", "\"hidden_size\": \"2048\"", "hidden_size", "integer");
    cfg_expect_error("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5", "num_key_value_heads", "multiple");
    cfg_expect_error("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 0", "num_key_value_heads", "positive");
    cfg_expect_error("\"eos_token_id\": [128001, 128008, 128009]", "\"eos_token_id\": \"x\"", "eos_token_id", NULL);
    cfg_expect_error("\"eos_token_id\": [128001, 128008, 128009]", "\"eos_token_id\": [1, 2, 3, 4, 5]", "eos_token_id",
                     NULL);
    cfg_expect_error("\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": \"int8\"", "torch_dtype", NULL);
    cfg_expect_error("\"use_cache\": true", "\"quantization_config\": {\"bits\": 4}", "quantization_config", NULL);
    cfg_expect_error("\"use_cache\": true", "\"partial_rotary_factor\": 0.5", "partial_rotary_factor", NULL);
    cfg_expect_error("\"high_freq_factor\": 4.0", "\"high_freq_factor\": 0.5", "high_freq_factor", NULL);
    cfg_expect_error("\"vocab_size\": 128256,", "\"vocab_size\": 128256, \"vocab_size\": 5,", "duplicate", NULL);
    llama_config c;
    cis_err err = {0};
    CHECK(cfg_from("{not json", &c, &err) == -1 && strstr(err.msg, "config.json"));
    CHECK(cfg_from("[1]", &c, &err) == -1 && strstr(err.msg, "config.json"));
    char *p = tpath("nonexistent_config.json");
    CHECK(llama_config_load(p, &c, &err) == -1 && strstr(err.msg, "nonexistent_config.json"));
    free(p);
}

/* ---------------------------------------------------------------- checkpoints */

static void tiny_cfg(llama_config *c, llama_arch arch, bool tied) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    snprintf(c->architecture, sizeof c->architecture, "%s",
             arch == LLAMA_ARCH_LLAMA ? "LlamaForCausalLM" : arch == LLAMA_ARCH_MISTRAL ? "MistralForCausalLM"
                                                                                         : "Phi3ForCausalLM");
    snprintf(c->model_type, sizeof c->model_type, "%s",
             arch == LLAMA_ARCH_LLAMA ? "llama" : arch == LLAMA_ARCH_MISTRAL ? "mistral" : "phi3");
    c->vocab_size = 37;
    c->hidden_size = 16;
    c->intermediate_size = 24;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = 4;
    c->max_position_embeddings = 64;
    c->rms_norm_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    c->tie_word_embeddings = tied;
    c->bos_token_id = 1;
    c->eos_token_ids[0] = 2;
    c->n_eos = 1;
    c->pad_token_id = -1;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "float32");
}

static void fill_random(model_buf *m, unsigned seed) {
    for (size_t i = 0; i < m->n; i++) {
        size_t ne = 1;
        for (int k = 0; k < m->t[i].ndim; k++) ne *= (size_t)m->t[i].shape[k];
        for (size_t j = 0; j < ne; j++) m->t[i].data[j] = (float)((int)(rand_r(&seed) % 20001) - 10000) / 7919.0f;
    }
}

/* compare all tensors; with a rounding dtype, a against round(b) */
static int model_diff(const model_buf *a, const model_buf *b, st_dtype dt) {
    if (a->n != b->n) return -1;
    int bad = 0;
    for (size_t i = 0; i < a->n; i++) {
        size_t ne = 1;
        for (int k = 0; k < a->t[i].ndim; k++) ne *= (size_t)a->t[i].shape[k];
        for (size_t j = 0; j < ne; j++) {
            float w = b->t[i].data[j];
            if (dt == ST_F16) w = half_f16_to_f32(half_f32_to_f16(w));
            if (dt == ST_BF16) w = half_bf16_to_f32(half_f32_to_bf16(w));
            if (fbits(a->t[i].data[j]) != fbits(w)) bad++;
        }
    }
    return bad;
}

static char *subdir(const char *name) {
    char *p = tpath(name);
    cis_err err;
    mkdir_p(p, &err);
    return p;
}

static void ckpt_roundtrip(llama_arch arch, bool tied, const char *dtype, st_dtype dt, size_t max_shard,
                           const char *dirname) {
    model_buf a = {0}, b = {0};
    tiny_cfg(&a.cfg, arch, tied);
    model_alloc(&a);
    fill_random(&a, 7);
    char *dir = subdir(dirname);
    cis_err err = {0};
    CHECK_MSG(checkpoint_save(dir, &a.cfg, a.t, a.n, dtype, max_shard, &err) == 0, "%s", err.msg);
    CHECK_MSG(model_load(dir, &b, &err) == 0, "%s", err.msg);
    if (b.t) {
        CHECK_EQ_INT(model_diff(&b, &a, dt), 0);
        CHECK_EQ_STR(b.cfg.torch_dtype, dt == ST_F32 ? "float32" : dt == ST_F16 ? "float16" : "bfloat16");
        CHECK_EQ_INT(b.cfg.arch, arch);
        model_buf_clear(&b);
    }
    model_buf_clear(&a);
    free(dir);
}

static void test_ckpt_roundtrip_llama(void) {
    ckpt_roundtrip(LLAMA_ARCH_LLAMA, false, "F32", ST_F32, 0, "ck_llama");
    ckpt_roundtrip(LLAMA_ARCH_LLAMA, true, "BF16", ST_BF16, 0, "ck_llama_tied");
    ckpt_roundtrip(LLAMA_ARCH_MISTRAL, false, "F16", ST_F16, 0, "ck_mistral");
}

static void test_ckpt_sharded_and_relayout(void) {
    ckpt_roundtrip(LLAMA_ARCH_LLAMA, false, "F32", ST_F32, 4000, "ck_shard");
    char *dir = tpath("ck_shard");
    char *idx = xasprintf("%s/model.safetensors.index.json", dir);
    char *single = xasprintf("%s/model.safetensors", dir);
    struct stat sb;
    CHECK(stat(idx, &sb) == 0);
    CHECK(stat(single, &sb) != 0);
    cis_err err = {0};
    size_t len;
    char *txt = read_file(idx, &len, &err);
    CHECK(txt && strstr(txt, "\"total_size\"") && strstr(txt, "model-00001-of-0000"));
    /* last shard name: count the shards from the index */
    int nsh = 0;
    for (int k = 2; k < 100; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "model-00001-of-%05d.safetensors", k);
        if (txt && strstr(txt, nm)) nsh = k;
    }
    CHECK(nsh >= 3);
    free(txt);
    /* saving again as one file removes the index and the shards */
    model_buf m = {0};
    CHECK(model_load(dir, &m, &err) == 0);
    CHECK_MSG(checkpoint_save(dir, &m.cfg, m.t, m.n, "F32", 0, &err) == 0, "%s", err.msg);
    CHECK(stat(idx, &sb) != 0);
    CHECK(stat(single, &sb) == 0);
    char *sh1 = xasprintf("%s/model-00001-of-%05d.safetensors", dir, nsh);
    CHECK(stat(sh1, &sb) != 0);
    model_buf m2 = {0};
    CHECK(model_load(dir, &m2, &err) == 0);
    if (m2.t) { CHECK_EQ_INT(model_diff(&m2, &m, ST_F32), 0); model_buf_clear(&m2); }
    /* and back to shards: the single file goes */
    CHECK(checkpoint_save(dir, &m.cfg, m.t, m.n, "F32", 5000, &err) == 0);
    CHECK(stat(idx, &sb) == 0);
    CHECK(stat(single, &sb) != 0);
    /* an index naming a shard that is gone */
    unlink(sh1);
    free(sh1);
    sh1 = NULL;
    txt = read_file(idx, &len, &err);
    char *first = txt ? strstr(txt, "model-00001-of-") : NULL;
    if (first) {
        char *nm = xasprintf("%s/%.*s", dir, 32, first);
        unlink(nm);
        model_buf m3 = {0};
        CHECK(model_load(dir, &m3, &err) == -1 && strstr(err.msg, "does not exist") &&
              strstr(err.msg, "model-00001-of-"));
        free(nm);
    }
    free(txt);
    model_buf_clear(&m);
    free(idx);
    free(single);
    free(dir);
}

static void test_ckpt_phi3_fused(void) {
    ckpt_roundtrip(LLAMA_ARCH_PHI3, false, "F32", ST_F32, 0, "ck_phi3");
    /* on disk: fused tensors, no separate q/k/v/gate/up */
    char *p = tpath("ck_phi3/model.safetensors");
    cis_err err = {0};
    st_file *f = st_open(p, &err);
    CHECK(f != NULL);
    if (f) {
        const st_tensor_info *qkv = st_find(f, "model.layers.1.self_attn.qkv_proj.weight");
        const st_tensor_info *gu = st_find(f, "model.layers.0.mlp.gate_up_proj.weight");
        CHECK(qkv && qkv->ndim == 2 && qkv->shape[0] == (4 + 2 * 2) * 4 && qkv->shape[1] == 16);
        CHECK(gu && gu->shape[0] == 48 && gu->shape[1] == 16);
        CHECK(st_find(f, "model.layers.0.self_attn.q_proj.weight") == NULL);
        CHECK(st_find(f, "model.layers.0.mlp.up_proj.weight") == NULL);
        CHECK_EQ_INT(st_count(f), 1 + 2 * 6 + 1 + 1);
        st_close(&f);
    }
    free(p);
    /* the split is by rows: q then k then v; gate then up */
    model_buf a = {0}, b = {0};
    tiny_cfg(&a.cfg, LLAMA_ARCH_PHI3, false);
    model_alloc(&a);
    fill_random(&a, 99);
    char *dir = subdir("ck_phi3b");
    CHECK(checkpoint_save(dir, &a.cfg, a.t, a.n, "F32", 0, &err) == 0);
    p = xasprintf("%s/model.safetensors", dir);
    f = st_open(p, &err);
    if (f) {
        const st_tensor_info *qkv = st_find(f, "model.layers.0.self_attn.qkv_proj.weight");
        float *all = xmalloc(qkv->numel * sizeof(float));
        st_read_f32(f, qkv->name, all, qkv->numel, &err);
        const ckpt_tensor *k = NULL;
        for (size_t i = 0; i < a.n; i++)
            if (!strcmp(a.t[i].name, "model.layers.0.self_attn.k_proj.weight")) k = &a.t[i];
        CHECK(k && memcmp(all + 16 * 16, k->data, 8 * 16 * sizeof(float)) == 0);
        free(all);
        st_close(&f);
    }
    free(p);
    /* a fused tensor with the wrong height is an error naming it */
    b.cfg = a.cfg;
    b.cfg.num_key_value_heads = 4;
    model_alloc(&b);
    CHECK(checkpoint_load(dir, &b.cfg, b.t, b.n, &err) == -1 && strstr(err.msg, "qkv_proj") &&
          strstr(err.msg, "[32, 16]") && strstr(err.msg, "[48, 16]"));
    model_buf_clear(&b);
    model_buf_clear(&a);
    free(dir);
}

/* write a model dir by hand with st_write, for the error cases */
static char *hand_dir(const char *name, const llama_config *cfg, const model_buf *m, const char *drop,
                      const char *extra, bool head_differs) {
    char *dir = subdir(name);
    cis_err err = {0};
    char *cp = xasprintf("%s/config.json", dir);
    CIS_ASSERT(llama_config_save(cp, cfg, &err) == 0);
    free(cp);
    st_write_tensor *w = xcalloc(m->n + 2, sizeof *w);
    size_t k = 0;
    float *head = NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (drop && !strcmp(m->t[i].name, drop)) continue;
        w[k++] = (st_write_tensor){.name = m->t[i].name, .dtype = ST_F32, .ndim = m->t[i].ndim,
                                   .shape = m->t[i].shape, .data = m->t[i].data};
        if (!strcmp(m->t[i].name, "model.embed_tokens.weight") && cfg->tie_word_embeddings) {
            size_t ne = (size_t)(m->t[i].shape[0] * m->t[i].shape[1]);
            head = xmalloc(ne * sizeof *head);
            memcpy(head, m->t[i].data, ne * sizeof *head);
            if (head_differs) head[5] += 1.0f;
            w[k++] = (st_write_tensor){.name = "lm_head.weight", .dtype = ST_BF16, .ndim = 2,
                                       .shape = m->t[i].shape, .data = head};
        }
    }
    static float one = 1;
    static int64_t sh1[1] = {1};
    if (extra) w[k++] = (st_write_tensor){.name = extra, .dtype = ST_F32, .ndim = 1, .shape = sh1, .data = &one};
    char *p = xasprintf("%s/model.safetensors", dir);
    CIS_ASSERT(st_write(p, w, k, NULL, 0, &err) == 0);
    free(p);
    free(w);
    free(head);
    return dir;
}

static void test_ckpt_errors(void) {
    model_buf a = {0}, b = {0};
    tiny_cfg(&a.cfg, LLAMA_ARCH_LLAMA, false);
    model_alloc(&a);
    fill_random(&a, 3);
    cis_err err = {0};
    /* shapes that disagree with config.json: the model asks for a wider MLP */
    char *dir = hand_dir("ck_bad_shape", &a.cfg, &a, NULL, NULL, false);
    b.cfg = a.cfg;
    b.cfg.intermediate_size = 32;
    model_alloc(&b);
    CHECK(checkpoint_load(dir, &b.cfg, b.t, b.n, &err) == -1);
    CHECK_MSG(strstr(err.msg, "model.layers.0.mlp.gate_proj.weight") && strstr(err.msg, "[24, 16]") &&
              strstr(err.msg, "[32, 16]") && strstr(err.msg, "model.safetensors"), "%s", err.msg);
    model_buf_clear(&b);
    free(dir);
    /* missing tensor */
    dir = hand_dir("ck_missing", &a.cfg, &a, "model.layers.1.mlp.down_proj.weight", NULL, false);
    CHECK(checkpoint_load(dir, &a.cfg, a.t, a.n, &err) == -1 && strstr(err.msg, "model.layers.1.mlp.down_proj.weight") &&
          strstr(err.msg, "missing"));
    free(dir);
    /* unexpected extra tensor; inv_freq is harmless */
    dir = hand_dir("ck_extra", &a.cfg, &a, NULL, "model.layers.0.self_attn.q_proj.bias", false);
    CHECK(checkpoint_load(dir, &a.cfg, a.t, a.n, &err) == -1 &&
          strstr(err.msg, "unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"));
    free(dir);
    dir = hand_dir("ck_invfreq", &a.cfg, &a, NULL, "model.layers.0.self_attn.rotary_emb.inv_freq", false);
    CHECK_MSG(checkpoint_load(dir, &a.cfg, a.t, a.n, &err) == 0, "%s", err.msg);
    free(dir);
    /* no checkpoint at all */
    dir = subdir("ck_empty");
    CHECK(checkpoint_load(dir, &a.cfg, a.t, a.n, &err) == -1 && strstr(err.msg, "ck_empty") &&
          strstr(err.msg, "model.safetensors"));
    free(dir);
    model_buf_clear(&a);

    /* tied: an lm_head equal to the embedding (stored as BF16 of a BF16-exact embedding) is fine */
    tiny_cfg(&a.cfg, LLAMA_ARCH_LLAMA, true);
    model_alloc(&a);
    fill_random(&a, 4);
    for (size_t i = 0; i < a.n; i++)
        if (!strcmp(a.t[i].name, "model.embed_tokens.weight"))
            for (int j = 0; j < 37 * 16; j++) a.t[i].data[j] = half_bf16_to_f32(half_f32_to_bf16(a.t[i].data[j]));
    dir = hand_dir("ck_tied_ok", &a.cfg, &a, NULL, NULL, false);
    CHECK_MSG(checkpoint_load(dir, &a.cfg, a.t, a.n, &err) == 0, "%s", err.msg);
    free(dir);
    dir = hand_dir("ck_tied_bad", &a.cfg, &a, NULL, NULL, true);
    CHECK(checkpoint_load(dir, &a.cfg, a.t, a.n, &err) == -1 && strstr(err.msg, "tie_word_embeddings") &&
          strstr(err.msg, "lm_head.weight"));
    free(dir);
    /* bad save dtype */
    dir = tpath("ck_bad_dtype");
    CHECK(checkpoint_save(dir, &a.cfg, a.t, a.n, "F64", 0, &err) == -1 && strstr(err.msg, "F64"));
    free(dir);
    model_buf_clear(&a);
}

static void test_ckpt_index_lies(void) {
    model_buf a = {0};
    tiny_cfg(&a.cfg, LLAMA_ARCH_LLAMA, false);
    model_alloc(&a);
    fill_random(&a, 5);
    char *dir = subdir("ck_lie");
    cis_err err = {0};
    CHECK(checkpoint_save(dir, &a.cfg, a.t, a.n, "F32", 5000, &err) == 0);
    char *idx = xasprintf("%s/model.safetensors.index.json", dir);
    size_t len;
    char *txt = read_file(idx, &len, &err);
    CIS_ASSERT(txt);
    /* move model.norm.weight to the first shard in the index */
    char *at = strstr(txt, "\"model.norm.weight\": \"model-0000");
    CHECK(at != NULL);
    if (at) {
        char *digit = at + strlen("\"model.norm.weight\": \"model-0000");
        char keep = *digit;
        *digit = keep == '1' ? '2' : '1';
        write_text(idx, txt);
        model_buf b = {0};
        CHECK(model_load(dir, &b, &err) == -1 && strstr(err.msg, "model.norm.weight"));
        *digit = keep;
    }
    /* a shard path that leaves the directory */
    at = strstr(txt, "\"model.norm.weight\": \"");
    if (at) {
        char *j = xasprintf("%.*s\"model.norm.weight\": \"../x.safetensors\"%s", (int)(at - txt), txt,
                            strchr(at + strlen("\"model.norm.weight\": \""), '"') + 1);
        write_text(idx, j);
        model_buf b = {0};
        CHECK(model_load(dir, &b, &err) == -1 && strstr(err.msg, "model.norm.weight"));
        free(j);
    }
    free(txt);
    free(idx);
    free(dir);
    model_buf_clear(&a);
}

static void rm_rf(const char *d) {
    char *cmd = xasprintf("rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", d);
    free(cmd);
}

int main(int argc, char **argv) {
    if (argc >= 2) {
        if (!strcmp(argv[1], "write") && argc == 4) return tool_write(argv[2], argv[3]);
        if (!strcmp(argv[1], "read") && argc == 4) return tool_read(argv[2], argv[3]);
        if (!strcmp(argv[1], "ckpt-load") && argc == 4) return tool_ckpt_load(argv[2], argv[3]);
        if (!strcmp(argv[1], "ckpt-save") && argc == 6) return tool_ckpt_save(argv[2], argv[3], argv[4], argv[5]);
        if (!strcmp(argv[1], "config-save") && argc == 4) return tool_config_save(argv[2], argv[3]);
        fprintf(stderr, "usage: %s [write PATH DTYPE | read PATH NAME | ckpt-load DIR OUT | "
                        "ckpt-save DIR OUTDIR DTYPE MAXBYTES | config-save IN OUT]\n", argv[0]);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/cis_st_XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    RUN(test_half_known_values);
    RUN(test_half_exhaustive_roundtrip);
    RUN(test_roundtrip_f32);
    RUN(test_roundtrip_f16);
    RUN(test_roundtrip_bf16);
    RUN(test_write_parts_and_errors);
    RUN(test_bad_files);
    RUN(test_truncated_and_fuzzed);
    RUN(test_config_llama32);
    RUN(test_config_defaults_and_arches);
    RUN(test_config_errors);
    RUN(test_ckpt_roundtrip_llama);
    RUN(test_ckpt_sharded_and_relayout);
    RUN(test_ckpt_phi3_fused);
    RUN(test_ckpt_errors);
    RUN(test_ckpt_index_lies);
    rm_rf(g_dir);
    return test_summary();
}
