/* test_prefix_claim.c - the claim prefers the jobs whose stage prefix the worker holds
 * (js_claim_prefer, coordinator/job_store_dispatch.c; coordinator/prefix_sched.c): on a real SQLite
 * job store with compress->edit compositions over three edit sets, a worker holding GPTQ 4-bit gets
 * every GPTQ 4-bit job first, of any edit set and editor (GPTQ's calibration seed is fixed); a
 * worker holding Wanda 0.25 of edit set 2 gets the two Wanda jobs of edit set 2 only; a
 * higher-priority job still comes first (no starvation); without a match the usual order holds;
 * prefix_sched turns the keys a worker advertises into those preferences, only for keys it knows,
 * and forgets a worker that left. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/prefix_key.h"
#include "common/spec.h"
#include "coordinator/job_store.h"
#include "coordinator/prefix_sched.h"
#include "tests/testlib.h"

static char tmpdir[256];

#define GPTQ4 "{\"method\":\"gptq\",\"params\":{\"bits\":4}}"
#define WANDA "{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}"

static char *canon_text(const char *text) {
    cis_err err = {0};
    char key[65];
    char *c = spec_canonical_text(text, "t", false, key, &err);
    if (!c) fprintf(stderr, "%s\n", err.msg);
    CIS_ASSERT(c);
    return c;
}

static void add(grid *g, const char *text, int priority, int n_edit_sets) {
    g->comps = xrealloc(g->comps, (g->n_comps + 1) * sizeof *g->comps);
    grid_comp *c = &g->comps[g->n_comps++];
    memset(c, 0, sizeof *c);
    c->model = xstrdup("m1");
    c->canonical = canon_text(text);
    sha256_hex(c->canonical, strlen(c->canonical), c->key);
    c->pattern = xstrdup("compress->edit");
    c->label = xstrdup(text);
    c->priority = priority;
    c->n_edit_sets = n_edit_sets;
    c->edit_sets = xmalloc((size_t)n_edit_sets * sizeof(int));
    for (int i = 0; i < n_edit_sets; i++) c->edit_sets[i] = i + 1;
    g->n_jobs += n_edit_sets;
}

static job_store *open_grid(bool with_priority) {
    static int n;
    char *p = xasprintf("%s/p%d.db", tmpdir, ++n);
    job_store *js = NULL;
    cis_err err = {0};
    CIS_ASSERT(job_store_open(p, JS_CREATE | JS_NOSYNC, &js, &err) == 0);
    free(p);
    grid *g = xcalloc(1, sizeof *g);
    g->path = xstrdup("grids/t.json");
    g->name = xstrdup("t");
    g->description = xstrdup("");
    g->max_attempts = 3;
    add(g, "[" WANDA ",{\"method\":\"ft\"}]", 0, 3);
    add(g, "[" GPTQ4 ",{\"method\":\"ft\"}]", 0, 3);
    add(g, "[" GPTQ4 ",{\"method\":\"memit\"}]", 0, 3);
    add(g, "[" WANDA ",{\"method\":\"memit\"}]", 0, 3);
    if (with_priority) add(g, "[{\"method\":\"ft\"},{\"method\":\"awq\",\"params\":{\"bits\":4}}]", 1, 1);
    js_launch_stats st;
    CIS_ASSERT(js_launch(js, g, NULL, "{\"m1\": \"/models/one\"}", 1000, &st, &err) == 0);
    /* the MEMIT statistics job the launch added (coordinator/job_store_prereq.c) is done, as if a
     * worker had run it: the MEMIT jobs that wait for it are runnable, the order under test is theirs */
    CIS_ASSERT(st.prereqs_added == 1);
    CIS_ASSERT(sqlite3_exec(job_store_db(js), "UPDATE jobs SET state = 'done' WHERE composition_id IN "
                            "(SELECT id FROM compositions WHERE pattern = 'prereq')", NULL, NULL, NULL) == SQLITE_OK);
    grid_free(&g);
    return js;
}

/* the prefix of the first stage of `text` (a composition) for edit set es, as prefix_sched makes it */
typedef struct pre { char *text; js_prefix p; } pre;
static pre first_stage(const char *text, int es) {
    json_t *j = json_loads(text, 0, NULL);
    cis_err err = {0};
    json_t *c = spec_normalize(j, "t", false, &err);
    CIS_ASSERT(c);
    pre r;
    r.text = prefix_text(c, 1);
    r.p = (js_prefix){"m1", "/models/one", r.text, prefix_seed_free(c, 1) ? -1 : prefix_effective_edit_set(es), 0, false};
    json_decref(c);
    json_decref(j);
    return r;
}

/* claim one job; 1 and its composition's first method and edit set, 0 none */
static int claim(job_store *js, js_prefix *p, int n, char *method, int *es, char *second) {
    js_job j;
    cis_err err = {0};
    int rc = js_claim_prefer(js, "w1", "m1", p, n, 2000, 30000, &j, &err);
    CIS_ASSERT(rc >= 0);
    if (rc == 0) return 0;
    json_t *c = json_loads(j.composition, 0, NULL);
    snprintf(method, 32, "%s", json_string_value(json_object_get(json_array_get(c, 0), "method")));
    snprintf(second, 32, "%s", json_string_value(json_object_get(json_array_get(c, 1), "method")));
    *es = j.edit_set;
    json_decref(c);
    js_job_clear(&j);
    return 1;
}

static void test_holder_gets_its_prefix_jobs_first(void) {
    job_store *js = open_grid(false);
    char m[32], s[32];
    int es;
    /* no preference: the lowest id (wanda->ft, edit set 1) */
    CHECK_EQ_INT(claim(js, NULL, 0, m, &es, s), 1);
    CHECK_EQ_STR(m, "wanda");
    CHECK_EQ_INT(es, 1);
    /* GPTQ 4-bit held: all six GPTQ jobs (two editors x three edit sets) come next */
    pre g = first_stage("[" GPTQ4 ",{\"method\":\"ft\"}]", 1);
    int n_ft = 0, n_memit = 0;
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(claim(js, &g.p, 1, m, &es, s), 1);
        CHECK_EQ_STR(m, "gptq");
        n_ft += !strcmp(s, "ft");
        n_memit += !strcmp(s, "memit");
    }
    CHECK_EQ_INT(n_ft, 3);
    CHECK_EQ_INT(n_memit, 3);
    /* Wanda 0.25 of edit set 2 held: its two jobs of edit set 2 (ft, memit), never another set */
    pre w = first_stage("[" WANDA ",{\"method\":\"ft\"}]", 2);
    js_prefix both[2] = {g.p, w.p}; /* the GPTQ prefix has no job left: the next one counts */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(claim(js, both, 2, m, &es, s), 1);
        CHECK_EQ_STR(m, "wanda");
        CHECK_EQ_INT(es, 2);
        CHECK(both[0].none);  /* the GPTQ scan found nothing: the caller stops asking for it */
        CHECK(!both[1].none);
    }
    /* nothing left with that prefix: the usual order (lowest id: wanda->ft edit set 3) */
    CHECK_EQ_INT(claim(js, both, 2, m, &es, s), 1);
    CHECK_EQ_STR(m, "wanda");
    CHECK_EQ_STR(s, "ft");
    CHECK_EQ_INT(es, 3);
    free(g.text);
    free(w.text);
    job_store_close(&js);
}

static void test_priority_comes_before_prefix(void) {
    job_store *js = open_grid(true);
    pre g = first_stage("[" GPTQ4 ",{\"method\":\"ft\"}]", 1);
    char m[32], s[32];
    int es;
    CHECK_EQ_INT(claim(js, &g.p, 1, m, &es, s), 1);
    CHECK_EQ_STR(m, "ft"); /* the priority-1 job, though the worker holds GPTQ */
    CHECK_EQ_INT(claim(js, &g.p, 1, m, &es, s), 1);
    CHECK_EQ_STR(m, "gptq");
    /* another model path never matches */
    js_prefix other = g.p;
    other.model_path = "/models/two";
    CHECK_EQ_INT(claim(js, &other, 1, m, &es, s), 1);
    CHECK_EQ_STR(m, "wanda");
    free(g.text);
    job_store_close(&js);
}

static void test_prefix_sched_maps_advertised_keys(void) {
    prefix_sched *ps = prefix_sched_new();
    json_t *gf = json_loads("[" GPTQ4 ",{\"method\":\"ft\"}]", 0, NULL), *wf = json_loads("[" WANDA ",{\"method\":\"ft\"}]", 0, NULL);
    cis_err err = {0};
    json_t *cg = spec_normalize(gf, "t", false, &err), *cw = spec_normalize(wf, "t", false, &err);
    prefix_sched_note_job(ps, "m1", "/models/one", cg, 3);
    prefix_sched_note_job(ps, "m1", "/models/one", cw, 2);
    char kg[65], kw[65], kx[65];
    CIS_ASSERT(prefix_key("/models/one", cg, 1, 3, NULL, kg, &err) == 0);
    CIS_ASSERT(prefix_key("/models/one", cw, 1, 2, NULL, kw, &err) == 0);
    CIS_ASSERT(prefix_key("/models/one", cw, 1, 5, NULL, kx, &err) == 0); /* never leased: unknown */
    js_prefix out[4];
    CHECK_EQ_INT(prefix_sched_for(ps, "w1", out, 4), 0); /* w1 advertised nothing */
    json_t *adv = json_pack("[s,s,s]", kx, kw, kg);
    prefix_sched_worker_held(ps, "w1", adv);
    int n = prefix_sched_for(ps, "w1", out, 4);
    CHECK_EQ_INT(n, 2);
    CHECK(n == 2 && out[0].edit_set == 2 && str_starts(out[0].text, "[{\"method\":\"wanda\""));
    CHECK(n == 2 && out[1].edit_set == -1 && str_starts(out[1].text, "[{\"method\":\"gptq\""));
    CHECK_EQ_STR(out[0].model_path, "/models/one");
    prefix_sched_worker_held(ps, "w1", NULL); /* a message without the field changes nothing */
    CHECK_EQ_INT(prefix_sched_for(ps, "w1", out, 4), 2);
    /* a claim found no job left for the Wanda prefix: it is no longer asked for ... */
    out[0].none = true;
    prefix_sched_claimed(ps, out, 2);
    CHECK_EQ_INT(prefix_sched_for(ps, "w1", out, 4), 1);
    CHECK(str_starts(out[0].text, "[{\"method\":\"gptq\""));
    /* ... until a job with it is leased again */
    prefix_sched_note_job(ps, "m1", "/models/one", cw, 2);
    CHECK_EQ_INT(prefix_sched_for(ps, "w1", out, 4), 2);
    CHECK_EQ_INT(prefix_sched_for(ps, "w2", out, 4), 0);
    prefix_sched_worker_gone(ps, "w1");
    CHECK_EQ_INT(prefix_sched_for(ps, "w1", out, 4), 0);
    /* a leased job's prefix is anticipated for a worker that keeps snapshots (it said so with an
     * empty HELLO.prefixes), in front of what it listed; never for one that did not say so */
    prefix_sched_anticipate(ps, "w3", "/models/one", cg, 3);
    CHECK_EQ_INT(prefix_sched_for(ps, "w3", out, 4), 0);
    json_t *empty = json_array(), *one = json_pack("[s]", kw);
    prefix_sched_worker_held(ps, "w3", empty);
    CHECK_EQ_INT(prefix_sched_for(ps, "w3", out, 4), 0);
    prefix_sched_worker_held(ps, "w3", one);
    prefix_sched_anticipate(ps, "w3", "/models/one", cg, 3);
    prefix_sched_anticipate(ps, "w3", "/models/one", cg, 3); /* once only */
    n = prefix_sched_for(ps, "w3", out, 4);
    CHECK_EQ_INT(n, 2);
    CHECK(n == 2 && str_starts(out[0].text, "[{\"method\":\"gptq\"") && str_starts(out[1].text, "[{\"method\":\"wanda\""));
    /* a RESULT of an earlier job lists what the worker holds then: the anticipated prefix stays first */
    prefix_sched_worker_held(ps, "w3", one);
    n = prefix_sched_for(ps, "w3", out, 4);
    CHECK_EQ_INT(n, 2);
    CHECK(n == 2 && str_starts(out[0].text, "[{\"method\":\"gptq\""));
    json_decref(empty); json_decref(one);
    json_decref(adv); json_decref(gf); json_decref(wf); json_decref(cg); json_decref(cw);
    prefix_sched_free(&ps);
    CHECK(ps == NULL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_prefix_claim.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_holder_gets_its_prefix_jobs_first);
    RUN(test_priority_comes_before_prefix);
    RUN(test_prefix_sched_maps_advertised_keys);
    char *rm = xasprintf("rm -rf '%s'", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(rm);
    return test_summary();
}
