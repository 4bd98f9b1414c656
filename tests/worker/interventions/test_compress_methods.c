/* test_compress_methods.c - Wanda, SparseGPT, GPTQ and AWQ end to end through the stage plan
 * (interv_plan_build + interv_run_plan: effective params, presets, records) on tiny random models
 * with the fixture tokenizer and a small data directory written here (a C4 shard and pile-val
 * lines): exact zeros per row (Wanda) and per block (SparseGPT), n:m, at most 2^bits values per
 * (row, group) after GPTQ and AWQ, the group preset and what the record says, GPTQ's calibration
 * fixed at seed 0 whatever the job's seed, AWQ's v->o pair skipped under GQA and used without it,
 * AWQ's scale folding leaves the model's output unchanged, and bad parameters / missing data named
 * in the error. */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "tests/worker/interventions/compress_fixture.h"
#include "worker/interventions/compress.h"
#include "worker/interventions/methods.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <zlib.h>

static char dir[256];
static tokenizer *tok;

static void write_data(void) {
    snprintf(dir, sizeof dir, "/tmp/test_compress_methods.%d", (int)getpid());
    tok = cmp_fx_write_data(dir);
}

static llama_model *model(int D, int F, int hkv, uint64_t seed) {
    llama_config c = fx_config(D, 2, F, 32);
    c.num_key_value_heads = hkv;
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, NULL, &err);
    CIS_ASSERT(m);
    llama_model_init_random(m, seed);
    return m;
}

/* run one stage (JSON text) on m; returns the stage record (new ref) or NULL with err */
static json_t *run_stage(llama_model *m, const char *stage, int edit_set, const char *data, cis_err *err) {
    json_error_t je;
    json_t *comp = json_loads(stage, 0, &je);
    CIS_ASSERT(comp);
    json_t *arr = json_array();
    json_array_append_new(arr, comp);
    interv_plan plan;
    json_t *records = NULL, *out = NULL;
    if (interv_plan_build(arr, "--stage", INTERV_EXACT, &plan, err) == 0) {
        interv_env env = {.model = m, .tok = tok, .data_dir = data, .edit_set = edit_set, .threads = 2};
        if (interv_run_plan(&env, &plan, &records, err) == 0) out = json_incref(json_array_get(records, 0));
        interv_plan_clear(&plan);
    }
    json_decref(records);
    json_decref(arr);
    return out;
}

static float *get(llama_model *m, int l, int which, int *rows, int *k) {
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    int pi = cmp_param(m, l, which);
    *rows = (int)P[pi].shape[0];
    *k = (int)P[pi].shape[1];
    float *w = malloc(sizeof(float) * *rows * *k);
    cis_err err = {0};
    CIS_ASSERT(llama_model_param_get(m, pi, w, &err) == 0);
    return w;
}

static void test_wanda_rows(void) {
    llama_model *m = model(32, 64, 2, 3);
    cis_err err = {0};
    json_t *r = run_stage(m, "{\"method\":\"wanda\",\"params\":{\"sparsity\":0.4}}", 2, dir, &err);
    CHECK_MSG(r, "%s", err.msg);
    for (int l = 0; l < 2; l++)
        for (int which = 0; which < CMP_N_LINEARS; which++) {
            int rows, k;
            float *w = get(m, l, which, &rows, &k);
            int bad = 0;
            for (int i = 0; i < rows; i++) {
                int z = 0;
                for (int j = 0; j < k; j++) z += w[i * k + j] == 0.0f;
                bad += z != (int)(k * 0.4);
            }
            CHECK_MSG(bad == 0, "layer %d %s: %d rows without exactly %d zeros", l, cmp_linears[which].short_name, bad,
                      (int)(k * 0.4));
            free(w);
        }
    json_t *rec = json_object_get(r, "record");
    CHECK_EQ_INT(json_integer_value(json_object_get(rec, "calib_seed")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(rec, "calib_seqlen")), 32);
    CHECK(json_object_get(json_object_get(r, "phases_s"), "statistics") != NULL);
    json_decref(r);
    llama_model_free(&m);
    /* 2:4 */
    m = model(32, 64, 2, 3);
    r = run_stage(m, "{\"method\":\"wanda\",\"params\":{\"sparsity\":0.5,\"prune_n\":2,\"prune_m\":4}}", 1, dir, &err);
    CHECK_MSG(r, "%s", err.msg);
    int rows, k;
    float *w = get(m, 1, CMP_DOWN, &rows, &k);
    int bad = 0;
    for (int i = 0; i < rows; i++)
        for (int g = 0; g < k; g += 4) {
            int z = 0;
            for (int j = 0; j < 4; j++) z += w[i * k + g + j] == 0.0f;
            bad += z != 2;
        }
    CHECK_EQ_INT(bad, 0);
    free(w);
    json_decref(r);
    llama_model_free(&m);
}

static void test_sparsegpt_blocks(void) {
    llama_model *m = model(32, 64, 2, 4);
    cis_err err = {0};
    json_t *r = run_stage(m, "{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.5}}", 1, dir, &err);
    CHECK_MSG(r, "%s", err.msg);
    int64_t total = 0;
    for (int l = 0; l < 2; l++)
        for (int which = 0; which < CMP_N_LINEARS; which++) {
            int rows, k;
            float *w = get(m, l, which, &rows, &k);
            int z = 0;
            for (int i = 0; i < rows * k; i++) z += w[i] == 0.0f;
            /* k <= 128: one block, floor(0.5 rows k) + 1 pruned (the reference's <= threshold) */
            CHECK_MSG(z == rows * k / 2 + 1, "layer %d %s: %d zeros, want %d", l, cmp_linears[which].short_name, z,
                      rows * k / 2 + 1);
            total += z;
            free(w);
        }
    json_t *rec = json_object_get(r, "record");
    CHECK_EQ_INT(json_integer_value(json_object_get(rec, "masked")), total);
    CHECK(json_real_value(json_object_get(rec, "layer_err_total")) <
          json_real_value(json_object_get(rec, "layer_err_magnitude_total")));
    json_decref(r);
    llama_model_free(&m);
}

static int max_distinct(llama_model *m, int group) {
    int worst = 0;
    for (int l = 0; l < 2; l++)
        for (int which = 0; which < CMP_N_LINEARS; which++) {
            int rows, k;
            float *w = get(m, l, which, &rows, &k);
            for (int i = 0; i < rows; i++)
                for (int g0 = 0; g0 < k; g0 += group) {
                    float v[256];
                    int nv = 0;
                    for (int j = g0; j < g0 + group && j < k; j++) {
                        bool seen = false;
                        for (int a = 0; a < nv; a++) seen |= v[a] == w[i * k + j];
                        if (!seen && nv < 256) v[nv++] = w[i * k + j];
                    }
                    if (nv > worst) worst = nv;
                }
            free(w);
        }
    return worst;
}

static void test_gptq(void) {
    cis_err err = {0};
    float *first = NULL;
    for (int seed = 1; seed <= 2; seed++) {
        llama_model *m = model(32, 64, 2, 5);
        json_t *r = run_stage(m, "{\"method\":\"gptq\",\"params\":{\"bits\":3}}", seed, dir, &err);
        CHECK_MSG(r, "%s", err.msg);
        json_t *params = json_object_get(r, "params"), *rec = json_object_get(r, "record");
        CHECK_EQ_INT(json_integer_value(json_object_get(params, "group")), 32);   /* gcd(128, 32, 32, 64) */
        CHECK(json_is_string(json_object_get(params, "group_reason")));
        CHECK_EQ_INT(json_integer_value(json_object_get(rec, "wbits")), 3);
        CHECK_EQ_INT(json_integer_value(json_object_get(rec, "calib_seed")), 0);
        CHECK_NEAR(json_real_value(json_object_get(rec, "avg_bits")), 4.0, 1e-12);
        CHECK(json_real_value(json_object_get(rec, "layer_err_total")) <
              json_real_value(json_object_get(rec, "layer_err_rtn_total")));
        int nv = max_distinct(m, 32);
        CHECK_MSG(nv <= 8, "%d distinct values in a group at 3 bits", nv);
        int rows, k;
        float *w = get(m, 1, CMP_DOWN, &rows, &k);
        if (!first) first = w;
        else { CHECK_MSG(memcmp(first, w, sizeof(float) * rows * k) == 0, "GPTQ depends on the job's seed"); free(w); }
        json_decref(r);
        llama_model_free(&m);
    }
    free(first);
    /* desc_act runs and stays on the grid */
    llama_model *m = model(32, 64, 2, 5);
    json_t *r = run_stage(m, "{\"method\":\"gptq\",\"params\":{\"bits\":4,\"desc_act\":true}}", 1, dir, &err);
    CHECK_MSG(r, "%s", err.msg);
    /* with act order the groups are consecutive in the permuted order: a row of k columns holds at
     * most 2^4 values per group of 32, i.e. 16·ceil(k/32) */
    int worst = 0;
    for (int which = 0; which < CMP_N_LINEARS; which++) {
        int rows, k;
        float *w = get(m, 1, which, &rows, &k);
        for (int i = 0; i < rows; i++) {
            int nv = 0;
            for (int j = 0; j < k; j++) {
                bool seen = false;
                for (int a = 0; a < j; a++) seen |= w[i * k + a] == w[i * k + j];
                nv += !seen;
            }
            int over = nv - 16 * ((k + 31) / 32);
            if (over > worst) worst = over;
        }
        free(w);
    }
    CHECK_MSG(worst <= 0, "act order: a row holds %d values more than its groups allow", worst);
    CHECK(json_is_true(json_object_get(json_object_get(r, "record"), "desc_act")));
    json_decref(r);
    llama_model_free(&m);
}

static void test_awq(void) {
    cis_err err = {0};
    for (int hkv = 2; hkv <= 4; hkv += 2) {
        llama_model *m = model(32, 64, hkv, 6);
        json_t *r = run_stage(m, "{\"method\":\"awq\",\"params\":{\"bits\":4,\"group_size\":16}}", 1, dir, &err);
        CHECK_MSG(r, "%s", err.msg);
        if (!r) { llama_model_free(&m); continue; }
        json_t *rec = json_object_get(r, "record");
        CHECK_EQ_INT(json_integer_value(json_object_get(rec, "group")), 16);
        CHECK(json_object_get(json_object_get(r, "params"), "group_reason") == NULL);
        CHECK_MSG(json_is_true(json_object_get(rec, "vo_scaled")) == (hkv == 4), "hkv %d: vo_scaled wrong", hkv);
        json_t *l0 = json_array_get(json_object_get(rec, "layers"), 0);
        CHECK(json_is_string(json_object_get(l0, "v->o")) == (hkv == 2));
        json_t *qkv = json_object_get(l0, "qkv");
        /* the chosen loss is the minimum of the 10 evaluated (the tiny family's scale grid; 20 on
         * a real model: test_awq_grid_preset) */
        double best = json_real_value(json_object_get(qkv, "loss")), mn = 1e300;
        for (size_t i = 0; i < json_array_size(json_object_get(qkv, "losses")); i++)
            mn = fmin(mn, json_real_value(json_array_get(json_object_get(qkv, "losses"), i)));
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "params"), "n_grid")), 10);
        CHECK_EQ_INT(json_array_size(json_object_get(qkv, "losses")), 10);
        CHECK(best == mn);
        double ratio = json_real_value(json_object_get(qkv, "ratio"));
        CHECK_MSG(fabs(ratio * 10 - round(ratio * 10)) < 1e-9 && ratio < 1.0, "ratio %g is not on the 10-point grid", ratio);
        int nv = max_distinct(m, 16);
        CHECK_MSG(nv <= 16, "%d distinct values in a group at 4 bits", nv);
        CHECK_NEAR(json_real_value(json_object_get(rec, "avg_bits")), 6.0, 1e-12);
        json_decref(r);
        llama_model_free(&m);
    }
}

/* AWQ's scale grid: 20 ratios (AutoAWQ's n_grid) on a real model, 10 on the tiny family, noted */
static void test_awq_grid_preset(void) {
    cis_err err = {0};
    llama_config big = fx_config(4096, 32, 14336, 8192), tiny = fx_config(64, 10, 192, 128);
    for (int k = 0; k < 2; k++) {
        json_t *p = json_pack("{s:i, s:i}", "bits", 4, "group_size", 128);
        CHECK_MSG(awq_preset(k ? &tiny : &big, p, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(json_integer_value(json_object_get(p, "n_grid")), k ? 10 : 20);
        bool noted = false;
        json_t *note = json_object_get(p, "tiny_preset");
        for (size_t i = 0; i < json_array_size(note); i++)
            noted |= !strcmp(json_string_value(json_array_get(note, i)), "n_grid: 20 -> 10 (hidden_size 64 < 1024)");
        CHECK_MSG(noted == (k == 1), "model %d: n_grid note %d", k, (int)noted);
        json_decref(p);
    }
}

/* scaling alone (no quantization) leaves the model's output unchanged */
static void test_awq_fold_preserves_output(void) {
    for (int hkv = 2; hkv <= 4; hkv += 2) {
        llama_model *m = model(32, 64, hkv, 8);
        int32_t ids[2 * 9];
        for (int i = 0; i < 18; i++) ids[i] = (i * 37 + 5) % 256;
        float *a = malloc(sizeof(float) * 18 * FX_V), *b = malloc(sizeof(float) * 18 * FX_V);
        llama_batch bt = {.B = 2, .T = 9, .ids = ids, .n_out = -1, .logits = a};
        cis_err err = {0};
        CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0);
        for (int l = 0; l < 2; l++)
            for (int pr = 0; pr < 4; pr++) {
                if (pr == 1 && hkv != 4) continue;
                int k = pr == 3 ? 64 : 32;
                float s[64];
                for (int j = 0; j < k; j++) s[j] = 0.3f + 0.05f * (float)((j * 7 + l + pr) % 31);
                CHECK(awq_fold(m, l, pr, s, &err) == 0);
            }
        bt.logits = b;
        CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0);
        double md = 0, sc = 0;
        for (int i = 0; i < 18 * FX_V; i++) { md = fmax(md, fabs(a[i] - b[i])); sc = fmax(sc, fabs(a[i])); }
        CHECK_MSG(md <= 1e-4 * (1 + sc), "hkv %d: folding changed the logits by %g (scale %g)", hkv, md, sc);
        free(a); free(b);
        llama_model_free(&m);
    }
}

static void expect_error(const char *stage, const char *data, const char *needle) {
    llama_model *m = model(32, 64, 2, 9);
    cis_err err = {0};
    json_t *r = run_stage(m, stage, 1, data, &err);
    CHECK_MSG(!r, "%s: accepted", stage);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message \"%s\" does not name \"%s\"", stage, err.msg, needle);
    json_decref(r);
    llama_model_free(&m);
}

static void test_bad_params(void) {
    expect_error("{\"method\":\"gptq\",\"params\":{\"bits\":0}}", dir, "params.bits");
    expect_error("{\"method\":\"gptq\",\"params\":{\"bits\":5}}", dir, "params.bits");
    expect_error("{\"method\":\"awq\",\"params\":{\"bits\":0}}", dir, "params.bits");
    expect_error("{\"method\":\"wanda\",\"params\":{\"sparsity\":1.5}}", dir, "params.sparsity");
    expect_error("{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0}}", dir, "params.sparsity");
    expect_error("{\"method\":\"wanda\",\"params\":{\"sparsity\":0.3,\"prune_n\":2,\"prune_m\":4}}", dir, "params.sparsity");
    expect_error("{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.5,\"prune_n\":4,\"prune_m\":2}}", dir, "prune_n");
    expect_error("{\"method\":\"awq\",\"params\":{\"bits\":4,\"group_size\":24}}", dir, "params.group_size");
    expect_error("{\"method\":\"wanda\",\"params\":{\"sparsity\":0.5}}", NULL, "--data");
    expect_error("{\"method\":\"gptq\",\"params\":{\"bits\":4}}", "/nonexistent", "c4-train.00000-of-01024.json.gz");
    expect_error("{\"method\":\"awq\",\"params\":{\"bits\":4}}", "/nonexistent", "pile");
}

/* a backend without the compression ops (a new backend before its kernels) is refused by name */
static void test_backend_without_ops(void) {
    llama_model *m = model(32, 64, 2, 9);
    backend *be = llama_model_backend(m);
    const backend_iface *orig = be->iface;
    backend_iface partial = *orig;
    partial.obs_sweep = NULL;
    be->iface = &partial;
    cis_err err = {0};
    json_t *r = run_stage(m, "{\"method\":\"gptq\",\"params\":{\"bits\":4}}", 1, dir, &err);
    be->iface = orig;
    CHECK(r == NULL);
    CHECK_MSG(strstr(err.msg, "not implemented on backend \"cpu\"") != NULL, "%s", err.msg);
    json_decref(r);
    llama_model_free(&m);
}

static void test_group_preset(void) {
    llama_config c = fx_config(4096, 2, 14336, 8192);
    json_t *p = json_pack("{s:i}", "group_size", 128);
    cis_err err = {0};
    CHECK(cmp_group_preset(&c, p, &err) == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "group")), 128);
    CHECK(json_object_get(p, "group_reason") == NULL);
    json_decref(p);
    c = fx_config(64, 2, 192, 128);
    p = json_pack("{s:i}", "group_size", 128);
    CHECK(cmp_group_preset(&c, p, &err) == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "group")), 64);
    CHECK(json_is_string(json_object_get(p, "group_reason")));
    json_decref(p);
}

/* the calibration preset: upstream's 128 samples on a real model; the tiny family's per method,
 * noted in tiny_preset; an explicit n_samples is kept on both */
static void test_calib_preset(void) {
    llama_config big = fx_config(4096, 2, 14336, 8192), tiny = fx_config(64, 2, 192, 128);
    static const struct { const char *method; int T, tiny_n; } M[4] = {
        {"wanda", 8192, CMP_TINY_N_SAMPLES_WANDA}, {"sparsegpt", 8192, CMP_TINY_N_SAMPLES_SPARSEGPT},
        {"gptq", 8192, CMP_TINY_N_SAMPLES_GPTQ}, {"awq", 512, CMP_TINY_N_SAMPLES_AWQ}};
    cis_err err = {0};
    for (int k = 0; k < 4; k++) {
        CHECK(M[k].tiny_n >= 1 && M[k].tiny_n < 128);
        json_t *p = json_object();
        CHECK(cmp_calib_preset(&big, p, M[k].T, M[k].tiny_n, &err) == 0);
        CHECK_EQ_INT(json_integer_value(json_object_get(p, "n_samples")), 128);
        CHECK_EQ_INT(json_integer_value(json_object_get(p, "seqlen")), M[k].T);
        CHECK(json_object_get(p, "tiny_preset") == NULL);
        json_decref(p);
        p = json_object();
        CHECK(cmp_calib_preset(&tiny, p, M[k].T, M[k].tiny_n, &err) == 0);
        CHECK_EQ_INT(json_integer_value(json_object_get(p, "n_samples")), M[k].tiny_n);
        CHECK_EQ_INT(json_integer_value(json_object_get(p, "seqlen")), 128);
        char want[96];
        snprintf(want, sizeof want, "n_samples: 128 -> %d (hidden_size 64 < 1024)", M[k].tiny_n);
        json_t *note = json_array_get(json_object_get(p, "tiny_preset"), 0);
        CHECK_MSG(json_is_string(note) && !strcmp(json_string_value(note), want), "%s: %s", M[k].method,
                  json_is_string(note) ? json_string_value(note) : "(none)");
        json_decref(p);
        for (int b = 0; b < 2; b++) { /* given: kept, no note */
            p = json_pack("{s:i}", "n_samples", 128);
            CHECK(cmp_calib_preset(b ? &big : &tiny, p, M[k].T, M[k].tiny_n, &err) == 0);
            CHECK_EQ_INT(json_integer_value(json_object_get(p, "n_samples")), 128);
            CHECK(json_object_get(p, "tiny_preset") == NULL);
            json_decref(p);
        }
    }
    /* each method's preset applies its own value */
    json_t *p = json_object();
    CHECK(gptq_preset(&tiny, p, &err) == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "n_samples")), CMP_TINY_N_SAMPLES_GPTQ);
    json_decref(p);
    p = json_object();
    CHECK(sparsegpt_preset(&tiny, p, &err) == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "n_samples")), CMP_TINY_N_SAMPLES_SPARSEGPT);
    json_decref(p);
    p = json_pack("{s:i}", "n_samples", 0);
    CHECK_EQ_INT(cmp_calib_preset(&tiny, p, 8192, CMP_TINY_N_SAMPLES_GPTQ, &err), -1);
    CHECK_MSG(strstr(err.msg, "params.n_samples"), "%s", err.msg);
    json_decref(p);
}

/* the two C4 samplers: every window is T consecutive tokens of the tokenized shard (concat1000: of
 * the joined text; v1: of one document longer than T), the seed decides them, and v1 names the
 * file when no document is long enough */
static void test_c4_samplers(void) {
    json_t *params = json_object();
    interv_ctx c = {.tok = tok, .data_dir = dir, .params = params};
    for (int v = 0; v < 2; v++) {
        json_object_set_new(params, "c4_sampler", json_string(v ? "v1" : "concat1000"));
        calib_data a = {0}, b = {0}, a2 = {0};
        cis_err err = {0};
        CHECK_MSG(cmp_calib_c4(&c, 6, 16, 1, &a, &err) == 0, "%s", err.msg);
        CHECK(cmp_calib_c4(&c, 6, 16, 1, &a2, &err) == 0);
        CHECK(cmp_calib_c4(&c, 6, 16, 2, &b, &err) == 0);
        CHECK(memcmp(a.ids, a2.ids, sizeof(int32_t) * 6 * 16) == 0);
        CHECK(memcmp(a.ids, b.ids, sizeof(int32_t) * 6 * 16) != 0);
        /* a window without BOS inside (v1: from one document; concat1000: BOS only at the very start) */
        int bos_inside = 0;
        for (int i = 0; i < 6; i++) for (int t = 1; t < 16; t++) bos_inside += a.ids[i * 16 + t] == FX_BOS;
        CHECK_EQ_INT(bos_inside, 0);
        calib_data_clear(&a); calib_data_clear(&a2); calib_data_clear(&b);
    }
    calib_data d = {0};
    cis_err err = {0};
    CHECK(cmp_calib_c4(&c, 2, 31, 1, &d, &err) == 0);   /* 40 words > 31 tokens */
    calib_data_clear(&d);
    CHECK(cmp_calib_c4(&c, 2, 4000, 1, &d, &err) == -1);
    CHECK_MSG(strstr(err.msg, "c4-train.00000-of-01024.json.gz") && strstr(err.msg, "longer than"), "%s", err.msg);
    json_object_set_new(params, "c4_sampler", json_string("v2"));
    CHECK(cmp_calib_c4(&c, 2, 16, 1, &d, &err) == -1);
    CHECK_MSG(strstr(err.msg, "params.c4_sampler"), "%s", err.msg);
    json_decref(params);
}

int main(void) {
    write_data();
    RUN(test_group_preset);
    RUN(test_calib_preset);
    RUN(test_c4_samplers);
    RUN(test_wanda_rows);
    RUN(test_sparsegpt_blocks);
    RUN(test_gptq);
    RUN(test_awq);
    RUN(test_awq_grid_preset);
    RUN(test_awq_fold_preserves_output);
    RUN(test_bad_params);
    RUN(test_backend_without_ops);
    tokenizer_free(tok);
    fx_rm_rf(dir);
    return test_summary();
}
