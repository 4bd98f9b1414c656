/* test_cmp_record.c - the compression record files (worker/interventions/cmp_record.c) of Wanda,
 * SparseGPT, GPTQ (desc_act off and on, a partial last group, 3-bit codes that straddle bytes) and
 * AWQ, written through the real stage plan on tiny random models: the stage record references the
 * file (path, bytes, sha256); re-reading it and dequantizing the codes gives the written-back
 * weights bit for bit; re-applying it to the uncompressed model gives the compressed model (every
 * parameter, bit for bit, for the quantizers; the zero pattern for the pruners); every code and
 * zero point lies in [0, 2^bits); the stored masks are the zero pattern and count what the method
 * says it masked; avg_bits and sparsity recomputed from the record equal the stage's avg_bits and
 * the evaluation's (eval_avg_bits); and truncated or corrupt files fail naming the file and field. */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "tests/worker/interventions/compress_fixture.h"
#include "worker/eval/eval.h"
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/compress.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <zlib.h>

static char dir[256], recdir[300];
static tokenizer *tok;

static void write_data(void) {
    snprintf(dir, sizeof dir, "/tmp/test_cmp_record.%d", (int)getpid());
    snprintf(recdir, sizeof recdir, "%s/records", dir);
    tok = cmp_fx_write_data(dir);
}

static llama_model *model(uint64_t seed) {
    llama_config c = fx_config(32, 2, 64, 32);
    c.num_key_value_heads = 2;
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, NULL, &err);
    CIS_ASSERT(m);
    llama_model_init_random(m, seed);
    return m;
}

/* run one stage (JSON text) on m with record files in recdir; the stage record (new ref) or NULL */
static json_t *run_stage(llama_model *m, const char *stage, cis_err *err) {
    json_t *arr = json_array();
    json_array_append_new(arr, json_loads(stage, 0, NULL));
    interv_plan plan;
    json_t *records = NULL, *out = NULL;
    if (interv_plan_build(arr, "--stage", INTERV_EXACT, &plan, err) == 0) {
        interv_env env = {.model = m, .tok = tok, .data_dir = dir, .record_dir = recdir, .edit_set = 1, .threads = 2};
        if (interv_run_plan(&env, &plan, &records, err) == 0) out = json_incref(json_array_get(records, 0));
        interv_plan_clear(&plan);
    }
    json_decref(records);
    json_decref(arr);
    return out;
}

/* every parameter of a and b equal bit for bit? names the first that differs */
static bool same_params(llama_model *a, llama_model *b, char *why, size_t n) {
    int np = 0;
    llama_param *P = llama_model_params(a, &np);
    for (int i = 0; i < np; i++) {
        int64_t cnt = 1;
        for (int d = 0; d < P[i].ndim; d++) cnt *= P[i].shape[d];
        float *x = xmalloc(sizeof(float) * (size_t)cnt), *y = xmalloc(sizeof(float) * (size_t)cnt);
        cis_err e = {0};
        CIS_ASSERT(llama_model_param_get(a, i, x, &e) == 0 && llama_model_param_get(b, i, y, &e) == 0);
        int64_t bad = -1;
        for (int64_t j = 0; j < cnt && bad < 0; j++)
            if (memcmp(&x[j], &y[j], sizeof(float))) bad = j;
        if (bad >= 0) snprintf(why, n, "%s[%lld]: %.9g vs %.9g", P[i].name, (long long)bad, x[bad], y[bad]);
        free(x);
        free(y);
        if (bad >= 0) return false;
    }
    return true;
}

/* the checks every method's record passes; returns the record read back from its file (caller frees) */
static cmprec *check_record(llama_model *m, json_t *st, cmprec_kind kind, int bits) {
    cis_err err = {0};
    json_t *rec = json_object_get(st, "record"), *ref = json_object_get(rec, "cmp_record");
    CHECK_MSG(json_is_object(ref), "no cmp_record in %s", json_dumps(rec, JSON_COMPACT));
    const char *path = json_string_value(json_object_get(ref, "path"));
    struct stat sb;
    CHECK(path && stat(path, &sb) == 0 && (json_int_t)sb.st_size == json_integer_value(json_object_get(ref, "bytes")));
    CHECK(path && str_ends(path, CMPREC_EXT) && strstr(path, json_string_value(json_object_get(ref, "sha256"))));
    CHECK(json_is_number(json_object_get(json_object_get(st, "phases_s"), "record")));
    cmprec *r = NULL;
    CHECK_MSG(cmprec_read_ref(ref, &r, &err) == 0, "%s", err.msg);
    if (!r) return NULL;
    CHECK_EQ_INT(r->kind, kind);
    CHECK_EQ_INT(r->bits, bits);
    int np = 0, linears = 0;
    llama_param *P = llama_model_params(m, &np);
    for (int k = 0; k < r->n; k++) {
        const cmprec_tensor *t = &r->t[k];
        if (t->raw) continue;
        linears++;
        int i = llama_model_find(m, t->name);
        CHECK_MSG(i >= 0 && P[i].shape[0] == t->rows && P[i].shape[1] == t->cols, "%s", t->name);
        if (i < 0) continue;
        int64_t n = t->rows * t->cols;
        float *w = xmalloc(sizeof(float) * (size_t)n), *dq = xmalloc(sizeof(float) * (size_t)n);
        CIS_ASSERT(llama_model_param_get(m, i, w, &err) == 0);
        if (kind == CMPREC_QUANT) {
            int64_t ng = t->rows * cmprec_groups(r, t->cols), out_of_range = 0;
            for (int64_t j = 0; j < n; j++) out_of_range += t->codes[j] >= (1 << bits);
            for (int64_t j = 0; j < ng; j++) out_of_range += t->zero[j] >= (1 << bits);
            CHECK_EQ_INT(out_of_range, 0);
            cmprec_dequant(r, t, dq);
            CHECK_MSG(memcmp(dq, w, sizeof(float) * (size_t)n) == 0, "%s: dequantized codes differ from the weights",
                      t->name);
        } else {
            int64_t diff = 0;
            for (int64_t j = 0; j < n; j++) diff += (t->mask[j >> 3] >> (j & 7) & 1) != (w[j] == 0.0f);
            CHECK_MSG(diff == 0, "%s: %lld positions where the mask is not the zero pattern", t->name, (long long)diff);
        }
        free(w);
        free(dq);
    }
    CHECK_EQ_INT(linears, CMP_N_LINEARS * llama_model_config(m)->num_hidden_layers);
    /* avg_bits and sparsity from the record = the evaluation's on the compressed model */
    json_t *s = cmprec_summary(r);
    quant_info q = {.wbits = kind == CMPREC_QUANT ? bits : 0, .group_size = r->group};
    double sp = -1, eb = eval_avg_bits(m, &q, &sp);
    CHECK_NEAR(json_real_value(json_object_get(s, "avg_bits")), eb, 1e-12);
    CHECK_NEAR(json_real_value(json_object_get(s, "sparsity")), sp, 1e-12);
    if (kind == CMPREC_QUANT)
        CHECK_NEAR(json_real_value(json_object_get(s, "avg_bits")), json_real_value(json_object_get(rec, "avg_bits")),
                   1e-12);
    json_decref(s);
    return r;
}

/* the quantizers: re-applying the record to the uncompressed model gives the stage's model */
static void quant_case(const char *stage, int bits, bool desc_act, int want_group, int raw_entries) {
    cis_err err = {0};
    llama_model *m = model(5), *base = model(5);
    json_t *st = run_stage(m, stage, &err);
    CHECK_MSG(st, "%s: %s", stage, err.msg);
    if (!st) { llama_model_free(&m); llama_model_free(&base); return; }
    cmprec *r = check_record(m, st, CMPREC_QUANT, bits);
    if (r) {
        CHECK_EQ_INT(r->group, want_group);
        CHECK(r->desc_act == desc_act);
        int perms = 0, raws = 0;
        for (int k = 0; k < r->n; k++) { perms += r->t[k].perm != NULL; raws += r->t[k].raw != NULL; }
        CHECK_EQ_INT(perms, desc_act ? CMP_N_LINEARS * 2 : 0);
        CHECK_EQ_INT(raws, raw_entries);
        char why[256] = "";
        CHECK(!same_params(base, m, why, sizeof why)); /* the stage changed the model (the check can fail) */
        int64_t changed = 0;
        CHECK_MSG(cmprec_apply(r, base, &changed, &err) == 0, "%s", err.msg);
        CHECK(changed > 0);
        CHECK_MSG(same_params(base, m, why, sizeof why), "%s re-applied: %s", stage, why);
        CHECK(cmprec_apply(r, base, &changed, &err) == 0 && changed == 0); /* idempotent */
    }
    cmprec_free(&r);
    json_decref(st);
    llama_model_free(&m);
    llama_model_free(&base);
}

static void test_gptq_record(void) {
    quant_case("{\"method\":\"gptq\",\"params\":{\"bits\":4}}", 4, false, 32, 0);
}
/* act order, 3-bit codes straddling bytes, group 24 on 32- and 64-wide inputs: partial last groups */
static void test_gptq_desc_act_record(void) {
    quant_case("{\"method\":\"gptq\",\"params\":{\"bits\":3,\"desc_act\":true,\"group_size\":24}}", 3, true, 24, 0);
}
static void test_gptq_2bit_record(void) {
    quant_case("{\"method\":\"gptq\",\"params\":{\"bits\":2,\"group_size\":8}}", 2, false, 8, 0);
}
/* AWQ also keeps its folded norms (2 per layer), so the re-applied model is the stage's whole */
static void test_awq_record(void) {
    quant_case("{\"method\":\"awq\",\"params\":{\"bits\":4}}", 4, false, 32, 4);
    quant_case("{\"method\":\"awq\",\"params\":{\"bits\":3,\"group_size\":16}}", 3, false, 16, 4);
}

/* the pruners: the masks are the zero pattern, count what the method masked, and re-applied to the
 * dense model zero exactly those positions */
static void prune_case(const char *stage) {
    cis_err err = {0};
    llama_model *m = model(6), *base = model(6);
    json_t *st = run_stage(m, stage, &err);
    CHECK_MSG(st, "%s: %s", stage, err.msg);
    if (!st) { llama_model_free(&m); llama_model_free(&base); return; }
    cmprec *r = check_record(m, st, CMPREC_MASK, 0);
    if (r) {
        int64_t ones = 0;
        for (int k = 0; k < r->n; k++)
            for (int64_t j = 0; j < r->t[k].rows * r->t[k].cols; j++) ones += r->t[k].mask[j >> 3] >> (j & 7) & 1;
        json_t *rec = json_object_get(st, "record");
        CHECK_EQ_INT(json_integer_value(json_object_get(rec, "dead_inputs")), 0);
        CHECK_EQ_INT(ones, json_integer_value(json_object_get(rec, "masked"))); /* random weights: no natural zero */
        int64_t changed = 0;
        CHECK_MSG(cmprec_apply(r, base, &changed, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(changed, ones);
        cmprec *again = cmprec_new(CMPREC_MASK, "x", 0, 0, false, false);
        CHECK(cmprec_add_masks(again, base, &err) == 0);
        bool same = again->n == r->n;
        for (int k = 0; same && k < r->n; k++)
            same = memcmp(again->t[k].mask, r->t[k].mask, (size_t)(r->t[k].rows * r->t[k].cols + 7) / 8) == 0;
        CHECK_MSG(same, "%s: the re-applied mask's zeros differ", stage);
        cmprec_free(&again);
    }
    cmprec_free(&r);
    json_decref(st);
    llama_model_free(&m);
    llama_model_free(&base);
}

static void test_wanda_record(void) {
    prune_case("{\"method\":\"wanda\",\"params\":{\"sparsity\":0.5}}");
    prune_case("{\"method\":\"wanda\",\"params\":{\"sparsity\":0.5,\"prune_n\":2,\"prune_m\":4}}");
}
static void test_sparsegpt_record(void) { prune_case("{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.6}}"); }

/* a small hand-made record with every kind of field: a 3-bit desc_act quant tensor and a raw one */
static cmprec *small_quant(void) {
    cmprec *r = cmprec_new(CMPREC_QUANT, "gptq", 3, 4, true, true);
    r->t = xcalloc(2, sizeof *r->t);
    r->n = 2;
    cmprec_tensor *t = &r->t[0];
    t->name = xstrdup("model.layers.0.self_attn.q_proj.weight");
    t->rows = 3;
    t->cols = 6;
    t->ndim = 2;
    t->codes = xmalloc(18);
    for (int j = 0; j < 18; j++) t->codes[j] = (uint8_t)(j * 5 % 8);
    t->scale = xmalloc(sizeof(float) * 6);
    t->zero = xmalloc(6);
    for (int j = 0; j < 6; j++) { t->scale[j] = 0.01f * (j + 1); t->zero[j] = 4; }
    t->perm = xmalloc(sizeof(int32_t) * 6);
    for (int j = 0; j < 6; j++) t->perm[j] = 5 - j;
    t = &r->t[1];
    t->name = xstrdup("model.layers.0.input_layernorm.weight");
    t->rows = 1;
    t->cols = 5;
    t->ndim = 1;
    t->raw = xmalloc(sizeof(float) * 5);
    for (int j = 0; j < 5; j++) t->raw[j] = 1.0f + j;
    return r;
}

/* rewrite the trailer's checksum after a deliberate edit (so the field check, not the checksum, fires) */
static void rehash(uint8_t *b, size_t n) {
    char hex[65];
    sha256_hex(b, n - CMPREC_TRAILER_BYTES, hex);
    memcpy(b + n - 64, hex, 64);
}

static void expect_fail(const uint8_t *b, size_t n, const char *needle, const char *what) {
    cmprec *r = NULL;
    cis_err err = {0};
    int rc = cmprec_decode(b, n, "x.cisrec", &r, &err);
    CHECK_MSG(rc == -1 && !r && strstr(err.msg, "x.cisrec") && strstr(err.msg, needle), "%s: rc %d, \"%s\" (want \"%s\")",
              what, rc, err.msg, needle);
    cmprec_free(&r);
}

static void test_corrupt_files(void) {
    cmprec *r = small_quant();
    uint8_t *b = NULL;
    size_t n = 0;
    cmprec_encode(r, &b, &n);
    cmprec *back = NULL;
    cis_err err = {0};
    CHECK_MSG(cmprec_decode(b, n, "x.cisrec", &back, &err) == 0, "%s", err.msg);
    if (back) { /* the round trip of every field */
        CHECK(back->n == 2 && back->bits == 3 && back->group == 4 && back->sym && back->desc_act);
        CHECK(memcmp(back->t[0].codes, r->t[0].codes, 18) == 0 && memcmp(back->t[0].scale, r->t[0].scale, 24) == 0);
        CHECK(memcmp(back->t[0].zero, r->t[0].zero, 6) == 0 && memcmp(back->t[0].perm, r->t[0].perm, 24) == 0);
        CHECK(back->t[1].ndim == 1 && memcmp(back->t[1].raw, r->t[1].raw, 20) == 0);
    }
    cmprec_free(&back);
    /* every truncation fails and names the file */
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        cmprec *x = NULL;
        cis_err e = {0};
        if (cmprec_decode(b, k, "x.cisrec", &x, &e) == 0 || !strstr(e.msg, "x.cisrec")) bad++;
        cmprec_free(&x);
    }
    CHECK_EQ_INT(bad, 0);
    expect_fail(b, 40, "truncated: header.method", "a cut header");
    expect_fail(b, CMPREC_HEADER_BYTES + 30, "truncated", "a cut tensor");
    uint8_t *c = xmalloc(n);
#define EDIT(off, val, needle, what) do { memcpy(c, b, n); c[off] = (uint8_t)(val); expect_fail(c, n, needle, what); \
                                          memcpy(c, b, n); c[off] = (uint8_t)(val); rehash(c, n); \
                                          expect_fail(c, n, needle, what " (rehashed)"); } while (0)
    EDIT(0, 'X', "header.magic", "bad magic");
    EDIT(8, 9, "header.version 9", "version");
    EDIT(12, 7, "header.kind", "kind");
    EDIT(16, 9, "header.bits 9", "bits");
    /* tensor 0: name_len at 48, name (38 bytes), ndim, rows, cols, tflags, payload_len */
    size_t t0 = CMPREC_HEADER_BYTES, nl = strlen(r->t[0].name), shape = t0 + 4 + nl, plen = shape + 4 + 16 + 4;
    EDIT(t0, 0, "name_len 0", "name_len");
    EDIT(shape, 3, "shape", "ndim");
    EDIT(plen, 1, "payload_len", "payload_len");
    /* the payload: codes ceil(18*3/8) = 7 bytes, scale 24, zero 6, perm 24 */
    size_t pay = plen + 8, zero = pay + 7 + 24, perm = zero + 6;
    memcpy(c, b, n);
    c[zero + 2] = 8; /* 2^3: out of range */
    rehash(c, n);
    expect_fail(c, n, "zero[2] = 8 exceeds", "zero point out of range");
    memcpy(c, b, n);
    memcpy(c + perm, c + perm + 4, 4); /* a column twice */
    rehash(c, n);
    expect_fail(c, n, "perm is not a permutation", "perm");
    memcpy(c, b, n);
    memset(c + pay + 7, 0, 4); /* scale[0] = 0 */
    rehash(c, n);
    expect_fail(c, n, "scale[0] = 0", "scale");
    memcpy(c, b, n);
    c[pay + 1] ^= 0x10; /* a flipped code bit: only the checksum sees it */
    expect_fail(c, n, "the file is corrupt", "a flipped bit");
    memcpy(c, b, n);
    c[n - CMPREC_TRAILER_BYTES] = 'x';
    expect_fail(c, n, "trailer", "the end mark");
#undef EDIT
    /* a shape whose payload the file does not have fails before anything is allocated for it (the
     * fuzz regression tests/fuzz/corpus/fuzz_cmp_record/regress-huge-shape: 2^30 x 64 mask bits) */
    {
        cmprec *h = cmprec_new(CMPREC_MASK, "wanda", 0, 0, false, false);
        h->t = xcalloc(1, sizeof *h->t);
        h->n = 1;
        h->t[0].name = xstrdup("w");
        h->t[0].rows = 2;
        h->t[0].cols = 64;
        h->t[0].ndim = 2;
        h->t[0].mask = xcalloc(16, 1);
        uint8_t *hb = NULL;
        size_t hn = 0;
        cmprec_encode(h, &hb, &hn);
        uint64_t rows = 1ull << 30, plen = rows * 64 / 8;
        memcpy(hb + CMPREC_HEADER_BYTES + 4 + 1 + 4, &rows, 8);     /* rows */
        memcpy(hb + CMPREC_HEADER_BYTES + 4 + 1 + 4 + 16 + 4, &plen, 8); /* payload_len to match */
        rehash(hb, hn);
        expect_fail(hb, hn, "truncated: tensor 0 (w) payload needs 8589934592 bytes", "a huge shape");
        free(hb);
        cmprec_free(&h);
    }
    /* the file against the stage record's reference */
    char d2[300];
    snprintf(d2, sizeof d2, "%s/corrupt", dir);
    cmprec_ref ref;
    CHECK_MSG(cmprec_write(r, d2, &ref, &err) == 0, "%s", err.msg);
    CHECK(ref.bytes == n);
    cmprec *x = NULL;
    CHECK(cmprec_read(ref.path, ref.sha256, &x, &err) == 0);
    cmprec_free(&x);
    CHECK(cmprec_read(ref.path, "0000000000000000000000000000000000000000000000000000000000000000", &x, &err) == -1 &&
          strstr(err.msg, ref.path) && strstr(err.msg, "references"));
    memcpy(c, b, n);
    c[pay] ^= 1;
    CHECK(write_file_atomic(ref.path, c, n, &err) == 0);
    CHECK(cmprec_read(ref.path, NULL, &x, &err) == -1 && strstr(err.msg, ref.path) && strstr(err.msg, "corrupt"));
    json_t *bad_ref = json_pack("{s:s}", "path", ref.path);
    CHECK(cmprec_read_ref(bad_ref, &x, &err) == -1 && strstr(err.msg, "cmp_record"));
    json_decref(bad_ref);
    CHECK(cmprec_read("/nonexistent/a.cisrec", NULL, &x, &err) == -1 && strstr(err.msg, "/nonexistent/a.cisrec"));
    free(c);
    free(b);
    cmprec_free(&r);
}

int main(void) {
    write_data();
    RUN(test_corrupt_files);
    RUN(test_wanda_record);
    RUN(test_sparsegpt_record);
    RUN(test_gptq_record);
    RUN(test_gptq_desc_act_record);
    RUN(test_gptq_2bit_record);
    RUN(test_awq_record);
    tokenizer_free(tok);
    fx_rm_rf(dir);
    return test_summary();
}
