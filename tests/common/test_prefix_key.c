/* test_prefix_key.c - the stage-prefix key (common/prefix_key.c) that both the coordinator's
 * scheduling and the worker's snapshots use: it agrees across edit sets exactly where the stages'
 * seeds do (GPTQ and AWQ use fixed calibration seeds; Wanda, FT, RMU... the edit set), edit set 0
 * runs as 1, the model, the stage params and (for two stages or more) the recompress policy change
 * it; prefix_text is how the stored canonical composition text begins; which prefixes are kept;
 * key syntax checks. */
#include "tests/testlib.h"
#include "common/prefix_key.h"
#include "common/spec.h"

#include <stdlib.h>

static json_t *canon(const char *text) {
    json_t *j = json_loads(text, 0, NULL);
    cis_err err = {0};
    json_t *c = spec_normalize(j, "t", true, &err);
    if (!c) fprintf(stderr, "%s\n", err.msg);
    CIS_ASSERT(c);
    json_decref(j);
    return c;
}

static void key(const char *model, json_t *c, int k, int es, const char *pol, char out[65]) {
    cis_err err = {0};
    CIS_ASSERT(prefix_key(model, c, k, es, pol, out, &err) == 0);
}

static void test_seeds_decide_sharing(void) {
    json_t *gf = canon("[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"ft\"}]");
    json_t *gm = canon("[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"memit\"}]");
    json_t *g3 = canon("[{\"method\":\"gptq\",\"params\":{\"bits\":3}},{\"method\":\"memit\"}]");
    json_t *wf = canon("[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}},{\"method\":\"ft\"}]");
    json_t *wm = canon("[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}},{\"method\":\"memit\"}]");
    json_t *aw = canon("[{\"method\":\"awq\",\"params\":{\"bits\":4}}]");
    json_t *aw2 = canon("[{\"method\":\"awq\",\"params\":{\"bits\":4}},{\"method\":\"lora\"}]");
    char a[65], b[65];
    /* GPTQ: one calibration sample (seed 0) for every edit set: shared across edit sets and editors */
    key("/m", gf, 1, 1, NULL, a); key("/m", gm, 1, 7, NULL, b);
    CHECK_EQ_STR(a, b);
    key("/m", g3, 1, 7, NULL, b);
    CHECK(strcmp(a, b) != 0); /* another level */
    key("/other", gm, 1, 7, NULL, b);
    CHECK(strcmp(a, b) != 0); /* another model */
    /* AWQ: fixed seed 42; the single job is the prefix of AWQ->LoRA */
    key("/m", aw, 1, 0, NULL, a); key("/m", aw2, 1, 9, NULL, b);
    CHECK_EQ_STR(a, b);
    /* Wanda: the edit set seeds the calibration windows: shared by editors of one edit set only */
    key("/m", wf, 1, 3, NULL, a); key("/m", wm, 1, 3, NULL, b);
    CHECK_EQ_STR(a, b);
    key("/m", wm, 1, 4, NULL, b);
    CHECK(strcmp(a, b) != 0);
    /* edit set 0 (no editing stage) runs with seed 1 */
    key("/m", wf, 1, 0, NULL, a); key("/m", wm, 1, 1, NULL, b);
    CHECK_EQ_STR(a, b);
    CHECK_EQ_INT(prefix_stage_seed("gptq", 5), 0);
    CHECK_EQ_INT(prefix_stage_seed("awq", 5), 42);
    CHECK_EQ_INT(prefix_stage_seed("rmu", 5), 5);
    CHECK_EQ_INT(prefix_stage_seed("rmu", 0), 1);
    CHECK(prefix_seed_free(gm, 1));
    CHECK(!prefix_seed_free(gm, 2));
    CHECK(!prefix_seed_free(wm, 1));
    /* two stages: the policy is part of the key; one stage: it is not */
    key("/m", gf, 2, 1, NULL, a); key("/m", gf, 2, 1, "mask", b);
    CHECK(strcmp(a, b) != 0);
    key("/m", gf, 2, 1, "end", b);
    CHECK_EQ_STR(a, b);
    key("/m", gf, 1, 1, "mask", a); key("/m", gf, 1, 1, NULL, b);
    CHECK_EQ_STR(a, b);
    CHECK(prefix_key_valid(a));
    cis_err err = {0};
    CHECK(prefix_key("/m", gf, 3, 1, NULL, a, &err) == -1);
    CHECK(strstr(err.msg, "outside 1..2") != NULL);
    CHECK(prefix_key("/m", gf, 0, 1, NULL, a, &err) == -1);
    json_decref(gf); json_decref(gm); json_decref(g3); json_decref(wf); json_decref(wm); json_decref(aw); json_decref(aw2);
}

static void test_prefix_text_begins_the_canonical_text(void) {
    json_t *two = canon("[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"ft\"}]");
    json_t *one = canon("[{\"method\":\"gptq\",\"params\":{\"bits\":4}}]");
    char *full2 = spec_dump_canonical(two), *full1 = spec_dump_canonical(one);
    char *t = prefix_text(two, 1), *t2 = prefix_text(two, 2);
    size_t n = strlen(t);
    CHECK(strncmp(full2, t, n) == 0 && full2[n] == ',');
    char *closed = xasprintf("%s]", t);
    CHECK_EQ_STR(closed, full1);
    char *closed2 = xasprintf("%s]", t2);
    CHECK_EQ_STR(closed2, full2);
    free(full2); free(full1); free(t); free(t2); free(closed); free(closed2);
    json_decref(two); json_decref(one);
}

static void test_kept_prefixes_and_key_syntax(void) {
    CHECK(prefix_kept(1, 1));   /* a single-stage job whole */
    CHECK(prefix_kept(1, 2));   /* the first stage of a pair */
    CHECK(!prefix_kept(2, 2));  /* a whole pair: nothing in the grids extends it */
    CHECK(prefix_kept(2, 3));
    CHECK(!prefix_kept(0, 2));
    CHECK(!prefix_kept(9, 12));
    CHECK(prefix_key_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    CHECK(!prefix_key_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    CHECK(!prefix_key_valid("0123"));
    CHECK(!prefix_key_valid(NULL));
    CHECK(!prefix_key_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"));
}

int main(void) {
    RUN(test_seeds_decide_sharing);
    RUN(test_prefix_text_begins_the_canonical_text);
    RUN(test_kept_prefixes_and_key_syntax);
    return test_summary();
}
