/* test_mask.c - the recompress policy `mask` (worker/interventions/mask.c, run.c, plan.c) on a tiny
 * random model through the real stage plan: wanda -> ft under `mask` leaves exactly the positions
 * Wanda pruned at zero in every decoder linear (FT's Adam steps moved them, the post-step hook put
 * them back: the record says how many), while FT still changed its down_proj weights; under `never`
 * the same composition moves pruned weights off zero (so the check can fail); wanda -> lora the same
 * through LoRA's per-step merge, wanda -> memit through its closed-form update; the mask helpers
 * alone (capture is a union, apply restores only masked positions); and the mask read back from the
 * wanda stage's record file when the plan starts from a restored prefix. */
#include "tests/testlib.h"
#include "tests/worker/interventions/edit_fixture.h"
#include "worker/interventions/compress.h"
#include "worker/interventions/mask.h"

#include <zlib.h>

static char *g_tokdir, *g_world;
static tokenizer *g_tok;

/* a C4 shard for Wanda's calibration in the world dir (documents longer than the 128-token window) */
static void write_c4(const char *dir) {
    char *d = xasprintf("%s/c4", dir), *p = xasprintf("%s/c4/c4-train.00000-of-01024.json.gz", dir);
    cis_err err = {0};
    CIS_ASSERT(mkdir_p(d, &err) == 0);
    gzFile gz = gzopen(p, "wb");
    CIS_ASSERT(gz);
    uint32_t s = 11;
    for (int doc = 0; doc < 20; doc++) {
        char buf[1024];
        size_t o = 0;
        for (int i = 0; i < 60; i++) {
            s = s * 1103515245u + 12345u;
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%c%c", i ? " " : "", 'a' + (s >> 8) % 26, 'a' + (s >> 16) % 26);
        }
        gzprintf(gz, "{\"text\": \"%s\", \"timestamp\": \"2019\", \"url\": \"u\"}\n", buf);
    }
    gzclose(gz);
    free(d);
    free(p);
}

static int run_policy(llama_model *m, const char *comp, recompress_policy pol, json_t **records, cis_err *err) {
    json_t *c = json_loads(comp, JSON_DECODE_ANY, NULL);
    CIS_ASSERT(c);
    interv_plan p;
    int rc = interv_plan_build(c, "comp", INTERV_RECOMPRESS(pol), &p, err);
    json_decref(c);
    if (rc) return rc;
    interv_env env = {.model = m, .tok = g_tok, .data_dir = g_world, .edit_set = 1, .threads = 1};
    rc = interv_run_plan(&env, &p, records, err);
    interv_plan_clear(&p);
    return rc;
}

#define WANDA "{\"method\":\"wanda\",\"params\":{\"sparsity\":0.5}}"
#define FT "{\"method\":\"ft\",\"params\":{\"layers\":[0,1],\"layers_depth\":0,\"lr\":0.01,\"steps\":4}}"

/* zeros of every decoder linear of m, as one byte per weight, concatenated; *n gets the length */
static unsigned char *zeros_of(llama_model *m, int64_t *n, int64_t *count) {
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    const llama_config *cfg = llama_model_config(m);
    unsigned char *z = NULL;
    *n = 0;
    *count = 0;
    for (int l = 0; l < cfg->num_hidden_layers; l++)
        for (int w = 0; w < CMP_N_LINEARS; w++) {
            int i = cmp_param(m, l, w);
            int64_t cnt = P[i].shape[0] * P[i].shape[1];
            z = xrealloc(z, (size_t)(*n + cnt));
            for (int64_t k = 0; k < cnt; k++) {
                z[*n + k] = P[i].data[k] == 0.0f;
                *count += z[*n + k];
            }
            *n += cnt;
        }
    return z;
}

static void test_wanda_then_ft_keeps_zeros(void) {
    cis_err err = {0};
    /* the positions Wanda prunes on this model */
    llama_model *ref = ef_model(7, 2);
    json_t *recs = NULL;
    CHECK_MSG(run_policy(ref, "[" WANDA "]", RECOMPRESS_PAPER, &recs, &err) == 0, "%s", err.msg);
    json_decref(recs);
    int64_t n_ref, z_ref;
    unsigned char *want = zeros_of(ref, &n_ref, &z_ref);
    CHECK(z_ref > n_ref / 3); /* sparsity 0.5 */
    ef_snap pruned = ef_take(ref);

    /* wanda -> ft under mask: exactly those positions are zero afterwards, and FT trained */
    llama_model *m = ef_model(7, 2);
    recs = NULL;
    CHECK_MSG(run_policy(m, "[" WANDA "," FT "]", RECOMPRESS_MASK, &recs, &err) == 0, "%s", err.msg);
    int64_t n, z;
    unsigned char *got = zeros_of(m, &n, &z);
    CHECK_EQ_INT(n, n_ref);
    CHECK_EQ_INT(z, z_ref);
    CHECK(n == n_ref && memcmp(got, want, (size_t)n) == 0);
    CHECK_EQ_INT(json_array_size(recs), 2); /* no re-application under mask */
    json_t *r1 = json_object_get(json_array_get(recs, 0), "record"), *r2 = json_object_get(json_array_get(recs, 1), "record");
    CHECK_EQ_INT(json_integer_value(json_object_get(r1, "mask_zeros")), z_ref);
    /* 4 optimizer steps + once after the stage; Adam moved pruned weights that the hook set back */
    CHECK_EQ_INT(json_integer_value(json_object_get(r2, "mask_reimposed")), 5);
    CHECK_MSG(json_integer_value(json_object_get(r2, "mask_restored")) > 0, "%s", json_dumps(r2, 0));
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    int d0 = llama_model_find(m, "model.layers.0.mlp.down_proj.weight");
    CHECK_MSG(ef_changed(m, &pruned, d0), "%s did not train", P[d0].name);
    free(got);
    json_decref(recs);
    llama_model_free(&m);

    /* the same under never: FT moves pruned weights off zero (the check above can fail) */
    m = ef_model(7, 2);
    recs = NULL;
    CHECK_MSG(run_policy(m, "[" WANDA "," FT "]", RECOMPRESS_NEVER, &recs, &err) == 0, "%s", err.msg);
    got = zeros_of(m, &n, &z);
    CHECK_MSG(z < z_ref, "never: %lld zeros, wanda left %lld", (long long)z, (long long)z_ref);
    CHECK(json_object_get(json_object_get(json_array_get(recs, 1), "record"), "mask_reimposed") == NULL);
    free(got);
    json_decref(recs);
    llama_model_free(&m);
    ef_snap_free(&pruned);
    free(want);
    llama_model_free(&ref);
}

/* wanda -> lora under mask: LoRA merges W0 + s B diag(E) A into q/v_proj after every step; the
 * hook zeroes the pruned positions of the merged weights each time, and they end zero */
static void test_wanda_then_lora_keeps_zeros(void) {
    cis_err err = {0};
    llama_model *ref = ef_model(9, 2);
    json_t *recs = NULL;
    CHECK_MSG(run_policy(ref, "[" WANDA "]", RECOMPRESS_PAPER, &recs, &err) == 0, "%s", err.msg);
    json_decref(recs);
    int64_t n_ref, z_ref, n, z;
    unsigned char *want = zeros_of(ref, &n_ref, &z_ref);
    llama_model *m = ef_model(9, 2);
    recs = NULL;
    CHECK_MSG(run_policy(m, "[" WANDA ",{\"method\":\"lora\",\"params\":{\"steps\":3,\"lr\":0.05}}]", RECOMPRESS_MASK,
                         &recs, &err) == 0, "%s", err.msg);
    unsigned char *got = zeros_of(m, &n, &z);
    CHECK_EQ_INT(z, z_ref);
    CHECK(n == n_ref && memcmp(got, want, (size_t)n) == 0);
    json_t *r2 = json_object_get(json_array_get(recs, 1), "record");
    CHECK_EQ_INT(json_integer_value(json_object_get(r2, "mask_reimposed")), 4);
    CHECK_MSG(json_integer_value(json_object_get(r2, "mask_restored")) > 0, "%s", json_dumps(r2, 0));
    free(got);
    free(want);
    json_decref(recs);
    llama_model_free(&m);
    llama_model_free(&ref);
}

/* wanda -> memit under mask: MEMIT's closed-form update of down_proj (layers 1, 2) moves pruned
 * weights; they are put back after the stage (and after each step of its value optimisation) */
static void test_wanda_then_memit_keeps_zeros(void) {
    char *w = ef_world(120, 200);
    write_c4(w);
    char cache[] = "/tmp/cisweep-mask-mom2s-XXXXXX";
    CIS_ASSERT(mkdtemp(cache));
    const char *memit = "{\"method\":\"memit\",\"params\":{\"layers\":[1,2],\"layers_depth\":0,\"v_steps\":5,"
                        "\"mom2_update_weight\":1.0,\"mom2_n_samples\":200}}";
    char *comp = xasprintf("[" WANDA ",%s]", memit);
    cis_err err = {0};
    int64_t n_ref, z_ref, n, z;
    unsigned char *want = NULL, *got = NULL;
    json_t *recs = NULL;
    for (int pass = 0; pass < 2; pass++) { /* 0: wanda alone (the reference zeros); 1: wanda -> memit, mask */
        llama_model *m = ef_model(24, 4);
        json_t *c = json_loads(pass ? comp : "[" WANDA "]", 0, NULL);
        interv_plan p;
        CHECK_MSG(interv_plan_build(c, "comp", INTERV_RECOMPRESS(RECOMPRESS_MASK), &p, &err) == 0, "%s", err.msg);
        interv_env env = {.model = m, .tok = g_tok, .data_dir = w, .cache_dir = cache, .edit_set = 1, .threads = 1};
        json_decref(recs);
        recs = NULL;
        CHECK_MSG(interv_run_plan(&env, &p, &recs, &err) == 0, "%s", err.msg);
        interv_plan_clear(&p);
        json_decref(c);
        if (pass == 0) want = zeros_of(m, &n_ref, &z_ref);
        else got = zeros_of(m, &n, &z);
        llama_model_free(&m);
    }
    CHECK_EQ_INT(z, z_ref);
    CHECK(n == n_ref && want && got && memcmp(got, want, (size_t)n) == 0);
    json_t *r2 = json_object_get(json_array_get(recs, 1), "record");
    CHECK_MSG(json_integer_value(json_object_get(r2, "mask_reimposed")) >= 1 &&
              json_integer_value(json_object_get(r2, "mask_restored")) > 0, "%s",
              json_dumps(json_object_get(json_array_get(recs, 1), "record"), JSON_COMPACT));
    json_decref(recs);
    free(want);
    free(got);
    free(comp);
    fx_rm_rf(cache);
    fx_rm_rf(w);
    free(w);
}

/* the helpers alone: capture is a union over calls; apply restores only masked weights */
static void test_mask_helpers(void) {
    cis_err err = {0};
    llama_model *m = ef_model(3, 1);
    int i = cmp_param(m, 0, CMP_UP);
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    int64_t cnt = P[i].shape[0] * P[i].shape[1];
    float *w = xmalloc(sizeof(float) * (size_t)cnt);
    CHECK(llama_model_param_get(m, i, w, &err) == 0);
    w[0] = 0.0f;
    CHECK(llama_model_param_set(m, i, w, &err) == 0);
    interv_mask mk = {0};
    CHECK(interv_mask_capture(&mk, m, &err) == 0);
    CHECK_EQ_INT(mk.zeros, 1);
    CHECK_EQ_INT(mk.n, CMP_N_LINEARS);
    w[0] = 1.5f;
    w[5] = 0.0f;
    CHECK(llama_model_param_set(m, i, w, &err) == 0);
    CHECK(interv_mask_capture(&mk, m, &err) == 0); /* adds position 5; position 0 stays masked */
    CHECK_EQ_INT(mk.zeros, 2);
    w[5] = -2.0f;
    w[6] = 3.0f;
    CHECK(llama_model_param_set(m, i, w, &err) == 0);
    CHECK(interv_mask_apply(&mk, &err) == 0);
    CHECK_EQ_INT(mk.restored, 2);
    CHECK(llama_model_param_get(m, i, w, &err) == 0);
    CHECK(w[0] == 0.0f && w[5] == 0.0f && w[6] == 3.0f);
    CHECK(interv_mask_apply(&mk, &err) == 0); /* nothing left to restore */
    CHECK_EQ_INT(mk.restored, 2);
    CHECK_EQ_INT(mk.applied, 2);
    interv_mask_clear(&mk);
    CHECK_EQ_INT(mk.n, 0);
    CHECK(interv_mask_apply(&mk, &err) == 0); /* an empty mask is a no-op */
    free(w);
    llama_model_free(&m);
}

/* wanda -> ft under mask, started from a restored prefix (the snapshot path: first_step 1, the
 * wanda stage's record handed in): the mask comes from the record file the wanda stage wrote, not
 * from the restored weights' zeros. To tell them apart the restored model gets some pruned
 * positions set off zero: with the record they end zero again; without a cmp_record (a fallback to
 * the zeros) they do not. A missing file falls back too (said in mask_source); a corrupt one fails
 * naming it. */
static int run_restored(llama_model *m, json_t *records_in, const char *recdir, json_t **out, cis_err *err) {
    json_t *c = json_loads("[" WANDA "," FT "]", 0, NULL);
    interv_plan p;
    int rc = interv_plan_build(c, "comp", INTERV_RECOMPRESS(RECOMPRESS_MASK), &p, err);
    json_decref(c);
    if (rc) return rc;
    interv_env env = {.model = m, .tok = g_tok, .data_dir = g_world, .record_dir = recdir, .edit_set = 1, .threads = 1,
                      .first_step = 1, .records_in = records_in};
    rc = interv_run_plan(&env, &p, out, err);
    interv_plan_clear(&p);
    return rc;
}

/* the pruned model with every pruned weight of layer 0's q_proj set to 0.5 */
static llama_model *restored(llama_model *pruned) {
    cis_err err = {0};
    llama_model *m = ef_model(7, 2);
    CIS_ASSERT(llama_model_copy_params(m, pruned, &err) == 0);
    int i = cmp_param(m, 0, CMP_Q), np = 0;
    llama_param *P = llama_model_params(m, &np);
    int64_t cnt = P[i].shape[0] * P[i].shape[1];
    float *w = xmalloc(sizeof(float) * (size_t)cnt);
    CIS_ASSERT(llama_model_param_get(m, i, w, &err) == 0);
    for (int64_t k = 0; k < cnt; k++) if (w[k] == 0.0f) w[k] = 0.5f;
    CIS_ASSERT(llama_model_param_set(m, i, w, &err) == 0);
    free(w);
    return m;
}

static void test_mask_from_record_after_restore(void) {
    char recdir[] = "/tmp/cisweep-mask-rec-XXXXXX";
    CIS_ASSERT(mkdtemp(recdir));
    cis_err err = {0};
    llama_model *pruned = ef_model(7, 2);
    json_t *recs = NULL;
    json_t *c = json_loads("[" WANDA "]", 0, NULL);
    interv_plan p;
    CHECK(interv_plan_build(c, "comp", 0, &p, &err) == 0);
    interv_env env = {.model = pruned, .tok = g_tok, .data_dir = g_world, .record_dir = recdir, .edit_set = 1, .threads = 1};
    CHECK_MSG(interv_run_plan(&env, &p, &recs, &err) == 0, "%s", err.msg);
    interv_plan_clear(&p);
    json_decref(c);
    int64_t n_ref, z_ref, n, z;
    unsigned char *want = zeros_of(pruned, &n_ref, &z_ref);
    json_t *ref = json_object_get(json_object_get(json_array_get(recs, 0), "record"), "cmp_record");
    const char *path = json_string_value(json_object_get(ref, "path"));
    CHECK_MSG(path != NULL, "no cmp_record: %s", json_dumps(recs, JSON_COMPACT));

    /* from the record: the perturbed positions are zero again, exactly Wanda's zeros */
    llama_model *m = restored(pruned);
    json_t *out = NULL;
    CHECK_MSG(run_restored(m, recs, recdir, &out, &err) == 0, "%s", err.msg);
    unsigned char *got = zeros_of(m, &n, &z);
    CHECK_EQ_INT(z, z_ref);
    CHECK(n == n_ref && memcmp(got, want, (size_t)n) == 0);
    const char *src = json_string_value(json_object_get(json_object_get(json_array_get(out, 0), "record"), "mask_source"));
    CHECK_MSG(src && str_starts(src, "record ") && path && strstr(src, path), "%s", src ? src : "(none)");
    free(got);
    json_decref(out);
    llama_model_free(&m);

    /* without a cmp_record: the zeros of the restored model, so the perturbed positions stay off zero */
    json_t *bare = json_deep_copy(recs);
    json_object_del(json_object_get(json_array_get(bare, 0), "record"), "cmp_record");
    m = restored(pruned);
    out = NULL;
    CHECK_MSG(run_restored(m, bare, recdir, &out, &err) == 0, "%s", err.msg);
    got = zeros_of(m, &n, &z);
    CHECK_MSG(z < z_ref, "zeros: %lld, wanda left %lld", (long long)z, (long long)z_ref);
    src = json_string_value(json_object_get(json_object_get(json_array_get(out, 0), "record"), "mask_source"));
    CHECK_MSG(src && str_starts(src, "zeros of the restored model"), "%s", src ? src : "(none)");
    free(got);
    json_decref(out);
    json_decref(bare);
    llama_model_free(&m);

    /* a file gone: the same fallback, said */
    json_t *gone = json_deep_copy(recs);
    json_object_set_new(json_object_get(json_object_get(json_array_get(gone, 0), "record"), "cmp_record"), "path",
                        json_string("/nonexistent/gone.cisrec"));
    m = restored(pruned);
    out = NULL;
    CHECK_MSG(run_restored(m, gone, recdir, &out, &err) == 0, "%s", err.msg);
    src = json_string_value(json_object_get(json_object_get(json_array_get(out, 0), "record"), "mask_source"));
    CHECK_MSG(src && strstr(src, "/nonexistent/gone.cisrec is missing"), "%s", src ? src : "(none)");
    json_decref(out);
    json_decref(gone);
    llama_model_free(&m);

    /* a corrupt file: the plan fails naming it */
    if (path) {
        size_t len = 0;
        char *bytes = read_file(path, &len, &err), *bad_path = xasprintf("%s/corrupt.cisrec", recdir);
        CIS_ASSERT(bytes && len > 100);
        bytes[60] ^= 0x5a;
        CIS_ASSERT(write_file_atomic(bad_path, bytes, len, &err) == 0);
        json_t *bad = json_deep_copy(recs);
        json_object_set_new(json_object_get(json_object_get(json_array_get(bad, 0), "record"), "cmp_record"), "path",
                            json_string(bad_path));
        m = restored(pruned);
        out = NULL;
        CHECK(run_restored(m, bad, recdir, &out, &err) == -1);
        CHECK_MSG(strstr(err.msg, bad_path) != NULL, "%s", err.msg);
        json_decref(out);
        json_decref(bad);
        llama_model_free(&m);
        free(bytes);
        free(bad_path);
    }
    free(want);
    json_decref(recs);
    llama_model_free(&pruned);
    fx_rm_rf(recdir);
}

int main(void) {
    g_tok = ef_tokenizer(&g_tokdir);
    g_world = ef_world(120, 4);
    write_c4(g_world);
    RUN(test_mask_helpers);
    RUN(test_wanda_then_ft_keeps_zeros);
    RUN(test_wanda_then_lora_keeps_zeros);
    RUN(test_wanda_then_memit_keeps_zeros);
    RUN(test_mask_from_record_after_restore);
    tokenizer_free(g_tok);
    fx_rm_rf(g_world);
    fx_rm_rf(g_tokdir);
    free(g_world);
    free(g_tokdir);
    return test_summary();
}
