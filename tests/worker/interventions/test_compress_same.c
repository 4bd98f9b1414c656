/* test_compress_same.c - the calibration passes that stop at their last hook point (calib_walk_peek:
 * AWQ's 20 candidate passes per layer, GPTQ's o_proj / gate-up / down_proj passes, Wanda's and
 * SparseGPT's statistics) change no result byte: each method at one level, on tiny random models
 * (with and without GQA for AWQ, whose v->o pair only runs without), gives the same weights (every
 * parameter, byte for byte), the same record file (its sha256) and the same stage record (losses,
 * chosen ratios, errors, counts: everything but the wall times) as the same run with
 * calib_set_full_runs(true), which runs every one of those passes through the whole layer as the
 * code before the stop did. */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "tests/worker/interventions/compress_fixture.h"
#include "worker/interventions/calib.h"
#include "worker/interventions/compress.h"
#include "worker/interventions/methods.h"

#include <stdlib.h>
#include <sys/stat.h>

static char dir[256];
static tokenizer *tok;

static llama_model *model(int hkv, uint64_t seed) {
    llama_config c = fx_config(32, 2, 64, 32);
    c.num_key_value_heads = hkv;
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, NULL, &err);
    CIS_ASSERT(m);
    llama_model_init_random(m, seed);
    return m;
}

/* run one stage (JSON text) on m with its record file in recdir; the stage record without its wall
 * times (wall_ms, phases_s, the record file's write_s and path), as JSON text (malloc'ed), or NULL */
static char *run_stage(llama_model *m, const char *stage, const char *recdir, cis_err *err) {
    json_error_t je;
    json_t *arr = json_array();
    json_array_append_new(arr, json_loads(stage, 0, &je));
    interv_plan plan;
    json_t *records = NULL;
    char *out = NULL;
    mkdir(recdir, 0755);
    if (interv_plan_build(arr, "--stage", INTERV_EXACT, &plan, err) == 0) {
        interv_env env = {.model = m, .tok = tok, .data_dir = dir, .record_dir = recdir, .edit_set = 1, .threads = 2};
        if (interv_run_plan(&env, &plan, &records, err) == 0) {
            json_t *r = json_array_get(records, 0);
            json_object_del(r, "wall_ms");
            json_object_del(r, "phases_s");
            json_t *cr = json_object_get(json_object_get(r, "record"), "cmp_record");
            json_object_del(cr, "write_s");
            json_object_del(cr, "path");
            out = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
        }
        interv_plan_clear(&plan);
    }
    json_decref(records);
    json_decref(arr);
    return out;
}

/* the index of the first parameter whose bytes differ, or -1 */
static int first_diff(llama_model *a, llama_model *b) {
    int na = 0, nb = 0;
    llama_param *pa = llama_model_params(a, &na), *pb = llama_model_params(b, &nb);
    CIS_ASSERT(na == nb);
    for (int i = 0; i < na; i++) {
        int64_t cnt = 1;
        for (int d = 0; d < pa[i].ndim; d++) cnt *= pa[i].shape[d];
        if (memcmp(pa[i].data, pb[i].data, (size_t)cnt * sizeof(float))) return i;
    }
    return -1;
}

static void same(const char *stage, int hkv) {
    cis_err err = {0};
    llama_model *stop = model(hkv, 41), *full = model(hkv, 41);
    char d1[300], d2[300];
    snprintf(d1, sizeof d1, "%s/rec_stop", dir);
    snprintf(d2, sizeof d2, "%s/rec_full", dir);
    calib_set_full_runs(false);
    char *r1 = run_stage(stop, stage, d1, &err);
    CHECK_MSG(r1, "%s: %s", stage, err.msg);
    calib_set_full_runs(true);
    char *r2 = run_stage(full, stage, d2, &err);
    calib_set_full_runs(false);
    CHECK_MSG(r2, "%s: %s", stage, err.msg);
    if (r1 && r2) {
        int i = first_diff(stop, full);
        int np = 0;
        CHECK_MSG(i < 0, "%s (hkv %d): %s differs", stage, hkv, i < 0 ? "" : llama_model_params(stop, &np)[i].name);
        size_t at = 0;
        while (r1[at] && r1[at] == r2[at]) at++;
        CHECK_MSG(strcmp(r1, r2) == 0, "%s (hkv %d): the stage records differ at byte %zu: ...%.60s... vs ...%.60s...",
                  stage, hkv, at, r1 + (at > 30 ? at - 30 : 0), r2 + (at > 30 ? at - 30 : 0));
        CHECK_MSG(strstr(r1, "\"sha256\""), "%s: no record file", stage);
    }
    /* the comparison can fail: a different model gives different weights */
    llama_model *other = model(hkv, 42);
    CHECK(first_diff(stop, other) >= 0);
    llama_model_free(&other);
    free(r1);
    free(r2);
    llama_model_free(&stop);
    llama_model_free(&full);
}

static void test_awq_gqa(void) { same("{\"method\":\"awq\",\"params\":{\"bits\":4,\"group_size\":16}}", 2); }
static void test_awq_mha(void) { same("{\"method\":\"awq\",\"params\":{\"bits\":3,\"group_size\":16}}", 4); }
static void test_gptq(void) { same("{\"method\":\"gptq\",\"params\":{\"bits\":4,\"group_size\":16}}", 2); }
static void test_wanda(void) { same("{\"method\":\"wanda\",\"params\":{\"sparsity\":0.5}}", 2); }
static void test_sparsegpt(void) { same("{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.5}}", 2); }

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_compress_same.%d", (int)getpid());
    tok = cmp_fx_write_data(dir);
    RUN(test_awq_gqa);
    RUN(test_awq_mha);
    RUN(test_gptq);
    RUN(test_wanda);
    RUN(test_sparsegpt);
    tokenizer_free(tok);
    fx_rm_rf(dir);
    return test_summary();
}
