/* test_mem_need.c - scheduling by device memory (issue 15), below the processes:
 *   - the parameter count of coordinator/mem_need.c equals the engine's checkpoint_layout for
 *     Llama-3-8B-, GQA-, tied-embedding- and explicit-head_dim-shaped configs, and a bad config is
 *     refused naming the file and the field;
 *   - the estimate follows the documented formula per class (inference, train, edit-stats,
 *     override), the largest stage decides, hand-computed numbers;
 *   - launch stores one job_memory row per job from the model's config.json (none when the config
 *     cannot be read), takes the models map's need_mb, refuses a bad need_mb naming the slot;
 *   - js_claim_fit never leases a job above the offer, keeps priority, held prefixes and model
 *     affinity among the jobs that fit, and an unconstrained claim (-1) takes anything; js_unfit_jobs and
 *     js_live_offer answer what `cisweep status` prints. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/prefix_key.h"
#include "common/spec.h"
#include "coordinator/job_store.h"
#include "coordinator/mem_need.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/config.h"
#include "tests/testlib.h"

static char tmpdir[256];

#define LLAMA8B "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":128256," \
    "\"hidden_size\":4096,\"intermediate_size\":14336,\"num_hidden_layers\":32,\"num_attention_heads\":32," \
    "\"num_key_value_heads\":8,\"max_position_embeddings\":8192,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0," \
    "\"torch_dtype\":\"bfloat16\"}"
#define TINY "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":512," \
    "\"hidden_size\":64,\"intermediate_size\":176,\"num_hidden_layers\":4,\"num_attention_heads\":4," \
    "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-05,\"tie_word_embeddings\":true}"
#define HEADDIM "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":1000," \
    "\"hidden_size\":96,\"intermediate_size\":200,\"num_hidden_layers\":3,\"num_attention_heads\":6," \
    "\"num_key_value_heads\":2,\"head_dim\":32,\"max_position_embeddings\":128,\"rms_norm_eps\":1e-06}"

/* a model directory holding only config.json */
static char *model_dir(const char *name, const char *config) {
    char *d = xasprintf("%s/%s", tmpdir, name);
    mkdir(d, 0755);
    char *p = xasprintf("%s/config.json", d);
    cis_err err = {0};
    CIS_ASSERT(write_file_replace(p, config, strlen(config), &err) == 0);
    free(p);
    return d;
}

/* the engine's count: the layout's shapes summed */
static int64_t engine_params(const char *dir) {
    llama_config cfg;
    cis_err err = {0};
    if (checkpoint_dir_load_config(dir, &cfg, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
    size_t n = 0;
    ckpt_tensor *t = checkpoint_layout(&cfg, &n);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t e = 1;
        for (int k = 0; k < t[i].ndim; k++) e *= t[i].shape[k];
        sum += e;
    }
    checkpoint_layout_free(&t, n);
    return sum;
}

static void test_params_match_the_engine(void) {
    const char *cfgs[] = {LLAMA8B, TINY, HEADDIM};
    const char *names[] = {"llama8b", "tiny", "headdim"};
    for (int i = 0; i < 3; i++) {
        char *d = model_dir(names[i], cfgs[i]);
        mem_model m;
        cis_err err = {0};
        CHECK_MSG(mem_model_from_dir(d, &m, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(m.n_params, engine_params(d));
        free(d);
    }
    mem_model m;
    cis_err err = {0};
    CHECK_EQ_INT(mem_model_from_config(LLAMA8B, "x", &m, &err), 0);
    CHECK_EQ_INT(m.n_params, 8030261248LL); /* Llama-3-8B's published count */
    CHECK_EQ_INT(m.intermediate, 14336);
}

static void test_bad_configs_are_named(void) {
    mem_model m;
    cis_err err = {0};
    CHECK_EQ_INT(mem_model_from_config("{\"vocab_size\":10}", "/m/config.json", &m, &err), -1);
    CHECK_MSG(strstr(err.msg, "/m/config.json") && strstr(err.msg, "\"hidden_size\" is missing"), "%s", err.msg);
    CHECK_EQ_INT(mem_model_from_config("{\"vocab_size\":10,\"hidden_size\":-4}", "c.json", &m, &err), -1);
    CHECK_MSG(strstr(err.msg, "c.json: \"hidden_size\" must be a positive integer"), "%s", err.msg);
    CHECK_EQ_INT(mem_model_from_config("[1,", "c.json", &m, &err), -1);
    CHECK_MSG(strstr(err.msg, "c.json: line 1"), "%s", err.msg);
    CHECK_EQ_INT(mem_model_from_config("[]", "c.json", &m, &err), -1);
    CHECK_MSG(strstr(err.msg, "expected a JSON object"), "%s", err.msg);
    char *missing = xasprintf("%s/no-such-model", tmpdir);
    CHECK_EQ_INT(mem_model_from_dir(missing, &m, &err), -1);
    CHECK_MSG(strstr(err.msg, "no-such-model/config.json"), "%s", err.msg);
    free(missing);
}

static mem_need estimate(const mem_model *m, const char *stages_text) {
    json_t *st = stages_text ? json_loads(stages_text, 0, NULL) : NULL;
    mem_need n;
    mem_need_estimate(m, st, &n);
    json_decref(st);
    return n;
}

static void test_formula_by_class(void) {
    mem_model m = {.n_params = 1000000, .intermediate = 1000};
    /* W = 4e6 B; base + act = 2.25 W + 64 MiB = 9e6 B + 67108864 B = 76108864 B = 72.58 MiB -> 73 */
    mem_need n = estimate(&m, NULL);
    CHECK_EQ_INT(n.need_mb, 73);
    CHECK_EQ_STR(n.kind, "inference");
    n = estimate(&m, "[{\"method\":\"wanda\",\"params\":{}},{\"method\":\"gptq\",\"params\":{}}]");
    CHECK_EQ_INT(n.need_mb, 73);
    CHECK_EQ_STR(n.kind, "inference");
    /* train: + 3 W = 12e6 B: 88108864 B = 84.03 MiB -> 85 */
    n = estimate(&m, "[{\"method\":\"wanda\",\"params\":{}},{\"method\":\"ft\",\"params\":{}}]");
    CHECK_EQ_INT(n.need_mb, 85);
    CHECK_EQ_STR(n.kind, "train");
    CHECK_MSG(strstr(n.basis, "(ft)") && strstr(n.basis, "P=1e+06"), "%s", n.basis);
    for (const char *const *meth = (const char *const[]){"lora", "rmu", "ga", "gd", NULL}; *meth; meth++) {
        char *t = xasprintf("[{\"method\":\"%s\",\"params\":{}}]", *meth);
        n = estimate(&m, t);
        CHECK_EQ_STR(n.kind, "train");
        CHECK_EQ_INT(n.need_mb, 85);
        free(t);
    }
    /* memit with 5 layers: + 8 * 1000^2 * 5 = 40e6 B: 116108864 B = 110.73 MiB -> 111 */
    n = estimate(&m, "[{\"method\":\"memit\",\"params\":{\"layers\":[4,5,6,7,8]}}]");
    CHECK_EQ_INT(n.need_mb, 111);
    CHECK_EQ_STR(n.kind, "edit-stats");
    /* ... 2 layers: + 16e6: 92108864 B = 87.84 MiB -> 88; the largest stage decides (memit > ft) */
    n = estimate(&m, "[{\"method\":\"ft\",\"params\":{}},{\"method\":\"memit\",\"params\":{\"layers\":[1,2]}}]");
    CHECK_EQ_INT(n.need_mb, 88);
    CHECK_EQ_STR(n.kind, "edit-stats");
    /* Llama-3-8B: an inference job 2.25 * 32.12 GB + 64 MiB = 69,000 MiB fits an 80 GB H100; a train
     * job (5.25 W) does not */
    mem_model l8 = {.n_params = 8030261248LL, .intermediate = 14336};
    n = estimate(&l8, "[{\"method\":\"awq\",\"params\":{}}]");
    CHECK_EQ_INT(n.need_mb, (int64_t)((2.25 * 4 * 8030261248.0 + 64 * 1048576.0 + 1048575) / 1048576));
    CHECK(n.need_mb > 68000 && n.need_mb < 70000);
    n = estimate(&l8, "[{\"method\":\"rmu\",\"params\":{}}]");
    CHECK(n.need_mb > 160000);
    /* the models map's override wins */
    mem_model ov = {.n_params = 8030261248LL, .override_mb = 30000};
    n = estimate(&ov, "[{\"method\":\"rmu\",\"params\":{}}]");
    CHECK_EQ_INT(n.need_mb, 30000);
    CHECK_EQ_STR(n.kind, "override");
}

/* a grid of selftest compositions on slots a (big) and b (small), n each */
static void add_comp(grid *g, const char *model, int id, int priority) {
    g->comps = xrealloc(g->comps, (g->n_comps + 1) * sizeof *g->comps);
    grid_comp *c = &g->comps[g->n_comps++];
    memset(c, 0, sizeof *c);
    c->model = xstrdup(model);
    char *text = xasprintf("[{\"method\":\"selftest\",\"params\":{\"id\":%d}}]", id);
    cis_err err = {0};
    c->canonical = spec_canonical_text(text, "t", true, c->key, &err);
    CIS_ASSERT(c->canonical);
    free(text);
    c->pattern = xstrdup("selftest");
    c->label = xasprintf("%s-%d", model, id);
    c->priority = priority;
    g->n_jobs++;
}

static job_store *launch(const char *models_json, int *rc_out, cis_err *err) {
    static int n;
    char *p = xasprintf("%s/s%d.db", tmpdir, ++n);
    job_store *js = NULL;
    CIS_ASSERT(job_store_open(p, JS_CREATE | JS_NOSYNC, &js, err) == 0);
    free(p);
    grid *g = xcalloc(1, sizeof *g);
    g->path = xstrdup("grids/t.json");
    g->name = xstrdup("t");
    g->description = xstrdup("");
    g->max_attempts = 3;
    add_comp(g, "big", 1, 0);   /* job 1 */
    add_comp(g, "small", 2, 0); /* job 2 */
    add_comp(g, "big", 3, 0);   /* job 3 */
    add_comp(g, "small", 4, 0); /* job 4 */
    add_comp(g, "gone", 5, 0);  /* job 5: its model directory does not exist */
    js_launch_stats st;
    *rc_out = js_launch(js, g, NULL, models_json, 1000, &st, err);
    grid_free(&g);
    return js;
}

static int64_t q_int(job_store *js, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -999;
    if (sqlite3_prepare_v2(job_store_db(js), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *models_map(void) {
    char *big = model_dir("big", LLAMA8B), *small = model_dir("small", TINY);
    char *m = xasprintf("{\"big\": \"%s\", \"small\": {\"path\": \"%s\"}, \"gone\": \"%s/none\"}", big, small, tmpdir);
    free(big);
    free(small);
    return m;
}

static int claim_fit(job_store *js, const char *w, const char *prefer, int64_t offer, int64_t *id) {
    js_job j;
    cis_err err = {0};
    int rc = js_claim_fit(js, w, prefer, NULL, 0, offer, 2000, 30000, &j, &err);
    CHECK_MSG(rc >= 0, "%s", err.msg);
    if (rc == 1) { *id = j.id; js_job_clear(&j); }
    return rc;
}

static void test_launch_stores_needs(void) {
    char *map = models_map();
    cis_err err = {0};
    int rc;
    job_store *js = launch(map, &rc, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM job_memory"), 4); /* not job 5: no config.json */
    CHECK_EQ_INT(q_int(js, "SELECT need_mb FROM job_memory WHERE job_id = 1"),
                 (int64_t)((2.25 * 4 * 8030261248.0 + 64 * 1048576.0 + 1048575) / 1048576));
    CHECK_EQ_INT(q_int(js, "SELECT need_mb FROM job_memory WHERE job_id = 2"), 67); /* tiny: P = 234,048, 9 P = 2.01 MiB + 64 MiB */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM job_memory WHERE kind = 'inference' AND basis LIKE 'P=%'"), 4);
    job_store_close(&js);
    free(map);
    /* the models map's need_mb */
    char *big = model_dir("big", LLAMA8B);
    map = xasprintf("{\"big\": {\"path\": \"%s\", \"need_mb\": 30000}, \"small\": {\"path\": \"x\", \"need_mb\": 7}}",
                    big);
    js = launch(map, &rc, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(q_int(js, "SELECT need_mb FROM job_memory WHERE job_id = 3"), 30000);
    CHECK_EQ_INT(q_int(js, "SELECT need_mb FROM job_memory WHERE job_id = 4"), 7);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM job_memory WHERE kind = 'override'"), 4);
    job_store_close(&js);
    free(map);
    /* a bad need_mb is refused before anything is stored, naming the slot */
    map = xasprintf("{\"big\": {\"path\": \"%s\", \"need_mb\": \"lots\"}}", big);
    js = launch(map, &rc, &err);
    CHECK_EQ_INT(rc, -1);
    CHECK_MSG(strstr(err.msg, "$.big.need_mb: expected a positive integer"), "%s", err.msg);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs"), 0);
    job_store_close(&js);
    free(map);
    free(big);
}

static void test_claim_fits_the_offer(void) {
    char *map = models_map();
    cis_err err = {0};
    int rc;
    job_store *js = launch(map, &rc, &err);
    free(map);
    CHECK_MSG(rc == 0, "%s", err.msg);
    int64_t id = 0;
    /* a 16 GB worker: never job 1 or 3 (about 69,000 MiB); it takes the small and the unestimated */
    CHECK_EQ_INT(claim_fit(js, "small-w", NULL, 16000, &id), 1);
    CHECK_EQ_INT(id, 2);
    /* affinity still holds among the jobs that fit: small before the lower-id unestimated job 5 */
    CHECK_EQ_INT(claim_fit(js, "small-w", "small", 16000, &id), 1);
    CHECK_EQ_INT(id, 4);
    CHECK_EQ_INT(claim_fit(js, "small-w", "small", 16000, &id), 1);
    CHECK_EQ_INT(id, 5);
    CHECK_EQ_INT(claim_fit(js, "small-w", "small", 16000, &id), 0); /* only big jobs are left */
    /* what status says: with a 16,000 MiB worker as the largest, jobs 1 and 3 fit no one */
    js_unfit u[4];
    int64_t n = 0;
    CHECK_EQ_INT(js_unfit_jobs(js, 16000, u, 4, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(n == 2 && u[0].job_id == 1 && u[1].job_id == 3 && !strcmp(u[0].model, "big") && u[0].need_mb > 16000 &&
          !strcmp(u[0].kind, "inference"));
    CHECK_EQ_INT(js_unfit_jobs(js, 80000, u, 4, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    /* offers and live workers */
    js_worker_info wi = {.id = "small-w", .host = "h", .device = "cuda:0", .backend = "cuda", .free_mb = 16000};
    CHECK_EQ_INT(js_worker_seen(js, &wi, 3000, &err), 0);
    CHECK_EQ_INT(js_worker_offer(js, "small-w", 16000, "measured", 3000, &err), 0);
    int live = 0, unc = 0;
    int64_t max = 0;
    CHECK_EQ_INT(js_live_offer(js, &live, &unc, &max, &err), 0);
    CHECK(live == 1 && unc == 0 && max == 16000);
    js_worker_info ci = {.id = "cpu-w", .host = "h", .device = "cpu", .backend = "cpu", .free_mb = -1};
    CHECK_EQ_INT(js_worker_seen(js, &ci, 3000, &err), 0);
    CHECK_EQ_INT(js_live_offer(js, &live, &unc, &max, &err), 0);
    CHECK(live == 2 && unc == 1 && max == 16000);
    CHECK_EQ_INT(js_worker_offer(js, "small-w", 100, "telepathy", 3000, &err), -1);
    CHECK_MSG(strstr(err.msg, "measured or option"), "%s", err.msg);
    CHECK_EQ_INT(js_worker_offer(js, "small-w", -1, NULL, 3000, &err), 0); /* unconstrained again */
    CHECK_EQ_INT(js_live_offer(js, &live, &unc, &max, &err), 0);
    CHECK(unc == 2 && max == -1);
    /* an 80 GB worker takes the big ones; an unconstrained one would too */
    CHECK_EQ_INT(claim_fit(js, "big-w", NULL, 80000, &id), 1);
    CHECK_EQ_INT(id, 1);
    CHECK_EQ_INT(claim_fit(js, "cpu-w", NULL, -1, &id), 1);
    CHECK_EQ_INT(id, 3);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs WHERE state = 'leased'"), 5);
    job_store_close(&js);
}

/* the priority order is kept among the jobs that fit: a high-priority job too big for the worker
 * does not block a lower one, and is leased first to a worker it fits */
static void test_priority_among_fitting(void) {
    char *big = model_dir("big", LLAMA8B), *small = model_dir("small", TINY);
    char *p = xasprintf("%s/prio.db", tmpdir);
    job_store *js = NULL;
    cis_err err = {0};
    CIS_ASSERT(job_store_open(p, JS_CREATE | JS_NOSYNC, &js, &err) == 0);
    grid *g = xcalloc(1, sizeof *g);
    g->path = xstrdup("grids/p.json");
    g->name = xstrdup("p");
    g->description = xstrdup("");
    g->max_attempts = 3;
    add_comp(g, "small", 1, 0);
    add_comp(g, "big", 2, 5);
    add_comp(g, "small", 3, 1);
    char *map = xasprintf("{\"big\": \"%s\", \"small\": \"%s\"}", big, small);
    js_launch_stats st;
    CHECK_EQ_INT(js_launch(js, g, NULL, map, 1000, &st, &err), 0);
    int64_t id = 0;
    CHECK_EQ_INT(claim_fit(js, "w", NULL, 1000, &id), 1);
    CHECK_EQ_INT(id, 3); /* priority 1, the highest that fits */
    CHECK_EQ_INT(claim_fit(js, "w2", NULL, 100000, &id), 1);
    CHECK_EQ_INT(id, 2); /* priority 5 */
    grid_free(&g);
    job_store_close(&js);
    free(map); free(p); free(big); free(small);
}

/* the prefix preference also stays within what fits: a held GPTQ prefix whose FT continuation does
 * not fit gives the GPTQ-alone job, not the lower-id job without the prefix */
static void test_prefix_among_fitting(void) {
    char *small = model_dir("small", TINY);
    char *p = xasprintf("%s/prefix.db", tmpdir);
    job_store *js = NULL;
    cis_err err = {0};
    CIS_ASSERT(job_store_open(p, JS_CREATE | JS_NOSYNC, &js, &err) == 0);
    grid *g = xcalloc(1, sizeof *g);
    g->path = xstrdup("grids/x.json");
    g->name = xstrdup("x");
    g->description = xstrdup("");
    g->max_attempts = 3;
    const char *texts[] = {"[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"ft\"}]",
                           "[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]",
                           "[{\"method\":\"gptq\",\"params\":{\"bits\":4}}]"};
    for (int i = 0; i < 3; i++) {
        g->comps = xrealloc(g->comps, (g->n_comps + 1) * sizeof *g->comps);
        grid_comp *c = &g->comps[g->n_comps++];
        memset(c, 0, sizeof *c);
        c->model = xstrdup("small");
        c->canonical = spec_canonical_text(texts[i], "t", false, c->key, &err);
        CIS_ASSERT(c->canonical);
        c->pattern = xstrdup("x");
        c->label = xasprintf("c%d", i);
        if (i == 0) { c->n_edit_sets = 1; c->edit_sets = xmalloc(sizeof(int)); c->edit_sets[0] = 1; }
        g->n_jobs++;
    }
    char *map = xasprintf("{\"small\": \"%s\"}", small);
    js_launch_stats st;
    CHECK_EQ_INT(js_launch(js, g, NULL, map, 1000, &st, &err), 0);
    CHECK_EQ_INT(q_int(js, "SELECT need_mb FROM job_memory WHERE job_id = 1"), 69); /* train: 5.25 W + 64 MiB */
    CHECK_EQ_INT(q_int(js, "SELECT need_mb FROM job_memory WHERE job_id = 3"), 67);
    json_t *c0 = json_loads(g->comps[0].canonical, 0, NULL);
    char *text = prefix_text(c0, 1);
    js_prefix pre = {"small", small, text, prefix_seed_free(c0, 1) ? -1 : prefix_effective_edit_set(1), 0, false};
    js_job j;
    CHECK_EQ_INT(js_claim_fit(js, "w", "small", &pre, 1, 68, 2000, 30000, &j, &err), 1);
    CHECK_EQ_INT(j.id, 3); /* the prefix's job that fits */
    js_job_clear(&j);
    pre.none = false;
    CHECK_EQ_INT(js_claim_fit(js, "w2", "small", &pre, 1, 100, 2000, 30000, &j, &err), 1);
    CHECK_EQ_INT(j.id, 1); /* with room, the prefix's FT job */
    js_job_clear(&j);
    free(text);
    json_decref(c0);
    grid_free(&g);
    job_store_close(&js);
    free(map); free(p); free(small);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_mem_need.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_params_match_the_engine);
    RUN(test_bad_configs_are_named);
    RUN(test_formula_by_class);
    RUN(test_launch_stores_needs);
    RUN(test_claim_fits_the_offer);
    RUN(test_priority_among_fitting);
    RUN(test_prefix_among_fitting);
    char *rm = xasprintf("rm -rf '%s'", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(rm);
    return test_summary();
}
