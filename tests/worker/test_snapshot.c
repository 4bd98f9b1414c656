/* test_snapshot.c - shared work done once (worker/snapshot.c): a job started from the snapshot of
 * its stage prefix ends with the same weights, bit for bit, as the same job run from the base
 * weights, with real interventions (FT on a tiny zsRE file, then test_scale) through the real plan
 * loop; the restored stages are still reported, flagged with the job they came from; a prefix of
 * another edit set (seed) is not reused; the byte budget evicts the least recently used snapshot
 * and budget 0 keeps nothing; and the model cache's reset by copy gives bit-identical base weights
 * (against a fresh load of the same checkpoint). */
#include "tests/testlib.h"
#include "tests/worker/interventions/edit_fixture.h"
#include "worker/snapshot.h"
#include "worker/model_cache.h"

static char *g_tokdir;
static tokenizer *g_tok;

#define FT "{\"method\":\"ft\",\"params\":{\"layers\":[1,2],\"layers_depth\":0,\"lr\":0.001,\"steps\":3}}"
#define COMP_A "[" FT ",{\"method\":\"test_scale\",\"params\":{\"factor\":0.5}}]"
#define COMP_B "[" FT ",{\"method\":\"test_scale\",\"params\":{\"factor\":2}}]"

static bool same_params(llama_model *a, llama_model *b) {
    int na, nb;
    llama_param *pa = llama_model_params(a, &na), *pb = llama_model_params(b, &nb);
    if (na != nb) return false;
    for (int i = 0; i < na; i++) {
        int64_t cnt = pa[i].ndim == 2 ? pa[i].shape[0] * pa[i].shape[1] : pa[i].shape[0];
        if (memcmp(pa[i].data, pb[i].data, (size_t)cnt * sizeof(float))) return false;
    }
    return true;
}

/* one job as the runner runs it: reset work from base, start from a snapshot when held, run the
 * rest, keep new snapshots. Returns the plan's rc; *records the stage records; *restored the
 * steps restored. */
static int run_job(snapshot_store *st, model_slot *slot, const char *comp, int64_t job, int edit_set, const char *data,
                   json_t **records, int *restored) {
    cis_err err = {0};
    CIS_ASSERT(llama_model_copy_params(slot->work, slot->base, &err) == 0);
    json_t *c = json_loads(comp, 0, NULL);
    CIS_ASSERT(c);
    interv_plan plan;
    int rc = interv_plan_build(c, "comp", INTERV_ALLOW_TEST, &plan, &err);
    json_decref(c);
    if (rc) { fprintf(stderr, "plan: %s\n", err.msg); return rc; }
    snap_job sj;
    *restored = snap_job_begin(&sj, st, slot, false, &plan, slot->path, job, 1, edit_set, NULL);
    interv_env env = {.model = slot->work, .tok = slot->tok, .data_dir = data, .edit_set = edit_set, .threads = 1,
                      .base = slot->base, .first_step = sj.restored, .records_in = sj.records,
                      .snap_step_fn = snap_job_after_step, .snap_arg = &sj};
    rc = interv_run_plan(&env, &plan, records, &err);
    if (rc) fprintf(stderr, "run: %s\n", err.msg);
    snap_job_end(&sj);
    interv_plan_clear(&plan);
    return rc;
}

static model_slot make_slot(int L) {
    model_slot s = {0};
    s.path = "/fixture/model";
    s.base = ef_model(7, L);
    cis_err err = {0};
    s.work = llama_model_new(llama_model_config(s.base), NULL, &err);
    CIS_ASSERT(s.work);
    s.tok = g_tok;
    return s;
}

static void slot_done(model_slot *s) {
    llama_model_free(&s->base);
    llama_model_free(&s->work);
}

static void test_snapshot_path_is_bit_identical(void) {
    char *w = ef_world(120, 4);
    model_slot slot = make_slot(3);
    cis_err err = {0};
    /* from scratch, no store: COMP_B's final weights */
    json_t *r0 = NULL;
    int restored = -1;
    CHECK_EQ_INT(run_job(NULL, &slot, COMP_B, 1, 2, w, &r0, &restored), 0);
    CHECK_EQ_INT(restored, 0);
    llama_model *scratch = llama_model_new(llama_model_config(slot.base), NULL, &err);
    CHECK(llama_model_copy_params(scratch, slot.work, &err) == 0);
    CHECK(!same_params(scratch, slot.base)); /* the stages really changed the model */

    snapshot_store *st = snapshot_store_new(64u << 20);
    json_t *ra = NULL, *rb = NULL, *rc3 = NULL;
    CHECK_EQ_INT(run_job(st, &slot, COMP_A, 10, 2, w, &ra, &restored), 0); /* takes the [ft] snapshot */
    CHECK_EQ_INT(restored, 0);
    snapshot_stats s;
    snapshot_store_stats(st, &s);
    CHECK_EQ_INT(s.n_held, 1);
    CHECK_EQ_INT(s.taken, 1);
    json_t *keys = snapshot_store_keys(st);
    CHECK_EQ_INT(json_array_size(keys), 1);
    CHECK(prefix_key_valid(json_string_value(json_array_get(keys, 0))));
    json_decref(keys);

    CHECK_EQ_INT(run_job(st, &slot, COMP_B, 11, 2, w, &rb, &restored), 0); /* starts from it */
    CHECK_EQ_INT(restored, 1);
    CHECK_MSG(same_params(slot.work, scratch), "the snapshot path must give the from-scratch weights bit for bit");
    /* every stage of the plan is still reported; the first says where it came from */
    CHECK_EQ_INT(json_array_size(rb), 2);
    json_t *s1 = json_array_get(rb, 0), *from = json_object_get(json_object_get(s1, "record"), "restored_from");
    CHECK_EQ_STR(json_string_value(json_object_get(s1, "method")), "ft");
    CHECK_EQ_INT(json_integer_value(json_object_get(s1, "stage")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(s1, "seed")), 2);
    CHECK(json_is_object(from));
    CHECK_EQ_INT(json_integer_value(json_object_get(from, "job")), 10);
    CHECK_EQ_INT(json_integer_value(json_object_get(from, "edit_set")), 2);
    CHECK(json_is_integer(json_object_get(from, "wall_ms")));
    /* the FT record itself is the one the snapshot's job reported (n_edits, trained layers) */
    CHECK(json_equal(json_object_get(json_object_get(json_array_get(ra, 0), "record"), "trained"),
                     json_object_get(json_object_get(s1, "record"), "trained")));
    CHECK(json_equal(json_object_get(json_array_get(r0, 0), "params"), json_object_get(s1, "params")));
    CHECK(json_object_get(json_object_get(json_array_get(rb, 1), "record"), "restored_from") == NULL);
    /* another edit set is another seed and other edits: not reused */
    CHECK_EQ_INT(run_job(st, &slot, COMP_B, 12, 3, w, &rc3, &restored), 0);
    CHECK_EQ_INT(restored, 0);
    snapshot_store_stats(st, &s);
    CHECK_EQ_INT(s.hits, 1);
    CHECK_EQ_INT(s.misses, 2);
    CHECK_EQ_INT(s.stages_restored, 1);
    CHECK_EQ_INT(s.n_held, 2);

    json_decref(r0); json_decref(ra); json_decref(rb); json_decref(rc3);
    snapshot_store_free(&st);
    CHECK(st == NULL);
    llama_model_free(&scratch);
    slot_done(&slot);
    fx_rm_rf(w);
    free(w);
}

static void test_budget_evicts_lru_and_zero_disables(void) {
    model_slot slot = make_slot(2);
    uint64_t bytes = (uint64_t)llama_model_numel(slot.base) * sizeof(float);
    json_t *r = NULL;
    int restored;
    /* budget for one snapshot: the second single-stage job evicts the first */
    snapshot_store *st = snapshot_store_new(bytes + bytes / 2);
    const char *a = "[{\"method\":\"test_scale\",\"params\":{\"factor\":0.5}}]";
    const char *b = "[{\"method\":\"test_scale\",\"params\":{\"factor\":3}}]";
    CHECK_EQ_INT(run_job(st, &slot, a, 1, 1, NULL, &r, &restored), 0); json_decref(r);
    CHECK_EQ_INT(run_job(st, &slot, b, 2, 1, NULL, &r, &restored), 0); json_decref(r);
    snapshot_stats s;
    snapshot_store_stats(st, &s);
    CHECK_EQ_INT(s.n_held, 1);
    CHECK_EQ_INT(s.evicted, 1);
    CHECK(s.bytes_held == bytes);
    CHECK_EQ_INT(run_job(st, &slot, b, 3, 1, NULL, &r, &restored), 0); json_decref(r);
    CHECK_EQ_INT(restored, 1); /* the whole single-stage composition */
    CHECK_EQ_INT(run_job(st, &slot, a, 4, 1, NULL, &r, &restored), 0); json_decref(r);
    CHECK_EQ_INT(restored, 0); /* evicted */
    snapshot_store_free(&st);
    /* budget 0: nothing kept, nothing restored */
    st = snapshot_store_new(0);
    CHECK_EQ_INT(run_job(st, &slot, a, 5, 1, NULL, &r, &restored), 0); json_decref(r);
    CHECK_EQ_INT(run_job(st, &slot, a, 6, 1, NULL, &r, &restored), 0); json_decref(r);
    CHECK_EQ_INT(restored, 0);
    snapshot_store_stats(st, &s);
    CHECK_EQ_INT(s.n_held, 0);
    snapshot_store_free(&st);
    slot_done(&slot);
}

static void test_reset_by_copy_gives_base_weights(void) {
    /* a checkpoint on disk (the fixture tokenizer's directory), loaded by the model cache */
    char tmpl[] = "/tmp/cisweep-snap-model-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CIS_ASSERT(dir);
    fx_write_tokenizer(dir, false);
    llama_model *m = ef_model(11, 2);
    cis_err err = {0};
    CHECK_MSG(llama_model_save(m, dir, NULL, &err) == 0, "%s", err.msg);
    model_cache *c = model_cache_open("cpu", 1, &err);
    CHECK_MSG(c != NULL, "%s", err.msg);
    model_slot *s = model_cache_acquire(c, dir, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    CHECK(s->load_s > 0);
    CHECK(same_params(s->work, m));
    /* a job changes the working copy ... */
    interv_plan plan;
    json_t *comp = json_loads("[{\"method\":\"test_scale\",\"params\":{\"factor\":1.7}}]", 0, NULL);
    CHECK(interv_plan_build(comp, "c", INTERV_ALLOW_TEST, &plan, &err) == 0);
    json_decref(comp);
    interv_env env = {.model = s->work, .tok = s->tok, .edit_set = 1, .threads = 1};
    CHECK(interv_run_plan(&env, &plan, NULL, &err) == 0);
    interv_plan_clear(&plan);
    CHECK(!same_params(s->work, m));
    /* ... and the next acquire resets it by copy (no reload): the base weights bit for bit */
    model_slot *s2 = model_cache_acquire(c, dir, &err);
    CHECK(s2 == s);
    CHECK(s2->load_s == 0);
    CHECK_MSG(same_params(s2->work, s2->base), "reset by copy must give the resident base weights bit for bit");
    CHECK_MSG(same_params(s2->work, m), "and those are the checkpoint's weights bit for bit");
    model_cache_close(&c);
    llama_model_free(&m);
    fx_rm_rf(dir);
}

int main(void) {
    g_tok = ef_tokenizer(&g_tokdir);
    RUN(test_snapshot_path_is_bit_identical);
    RUN(test_budget_evicts_lru_and_zero_disables);
    RUN(test_reset_by_copy_gives_base_weights);
    tokenizer_free(g_tok);
    fx_rm_rf(g_tokdir);
    free(g_tokdir);
    return test_summary();
}
