/* test_plan.c - the stage plan (worker/interventions/plan.c): the composition in order, the
 * paper's re-application of a leading Wanda/SparseGPT/GPTQ at the end (never AWQ, never a single
 * stage, never a compressor that is not first), INTERV_EXACT, and the checks that fail a job before
 * any work: not built yet, a test stage without permission, the selftest fixture, a bad spec. */
#include "tests/testlib.h"
#include "worker/interventions/intervention.h"

#include <stdlib.h>

static json_t *J(const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) fprintf(stderr, "  bad test JSON %s: %s\n", text, je.text);
    return j;
}

/* the plan of `text` as "method,method,...", with a '+' after re-applied steps; NULL on error */
static char *plan_str(const char *text, unsigned flags, cis_err *err) {
    json_t *c = J(text);
    interv_plan p;
    int rc = interv_plan_build(c, "comp", flags, &p, err);
    json_decref(c);
    if (rc) return NULL;
    char buf[512] = "";
    for (int i = 0; i < p.n; i++) {
        const interv_step *s = &p.steps[i];
        CHECK_EQ_INT(s->stage, i + 1);
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s%s", i ? "," : "", s->iv->name, s->recompress ? "+" : "");
        if (s->recompress) {
            CHECK_EQ_INT(s->of_stage, 1);
            CHECK(json_equal(s->params, p.steps[0].params)); /* same params (and seed) as stage 1 */
        } else CHECK_EQ_INT(s->of_stage, i + 1);
    }
    interv_plan_clear(&p);
    return xstrdup(buf);
}

/* which compositions re-apply: checked through interv_plan_reapplies on canonical arrays */
static void test_rule(void) {
    struct { const char *comp; bool again; } cases[] = {
        {"[]", false},
        {"[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]", false},                              /* alone */
        {"[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}},{\"method\":\"memit\"}]", true},
        {"[{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.5}},{\"method\":\"rmu\"}]", true},
        {"[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"lora\"}]", true},
        {"[{\"method\":\"awq\",\"params\":{\"bits\":4}},{\"method\":\"memit\"}]", false},                  /* AWQ never */
        {"[{\"method\":\"memit\"},{\"method\":\"gptq\",\"params\":{\"bits\":4}}]", false},                 /* not first */
        {"[{\"method\":\"rmu\"},{\"method\":\"ft\"}]", false},
        {"[{\"method\":\"test_scale\"},{\"method\":\"test_scale\"}]", false},
        {"[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"ft\"},{\"method\":\"rmu\"}]", true}, /* any length */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = J(cases[i].comp);
        cis_err err = {0};
        json_t *c = spec_normalize(j, "c", true, &err);
        CHECK_MSG(c != NULL, "%s", err.msg);
        CHECK_MSG(interv_plan_reapplies(c) == cases[i].again, "%s", cases[i].comp);
        json_decref(c);
        json_decref(j);
    }
}

/* built stages through interv_plan_build: the composition in order, canonical params */
static void test_layout_of_built_stages(void) {
    cis_err err = {0};
    char *s = plan_str("[]", 0, &err);
    CHECK_EQ_STR(s, "");
    free(s);
    s = plan_str("[{\"method\":\"test_scale\",\"params\":{\"factor\":2}},{\"method\":\"test_scale\","
                 "\"params\":{\"factor\":0.5,\"param\":\"model.norm.weight\"}}]", INTERV_ALLOW_TEST, &err);
    CHECK_EQ_STR(s, "test_scale,test_scale");
    free(s);
    /* the step carries the canonical params, defaults filled in */
    json_t *c = J("[{\"method\":\"test_scale\",\"params\":{\"factor\":3}}]");
    interv_plan p;
    CHECK_EQ_INT(interv_plan_build(c, "comp", INTERV_ALLOW_TEST, &p, &err), 0);
    CHECK_EQ_INT(p.n, 1);
    if (p.n == 1) {
        CHECK_NEAR(json_real_value(json_object_get(p.steps[0].params, "factor")), 3.0, 0);
        CHECK_EQ_STR(json_string_value(json_object_get(p.steps[0].params, "param")), "model.layers.*.mlp.down_proj.weight");
        CHECK_EQ_INT(json_integer_value(json_object_get(p.steps[0].params, "last_layers")), 0);
        CHECK_EQ_STR(p.steps[0].mi->name, "test_scale");
    }
    interv_plan_clear(&p);
    interv_plan_clear(&p); /* idempotent */
    json_decref(c);
}

/* the layout alone (interv_plan_layout), on the paper's compositions whose methods are not built
 * yet: the re-applied step comes last, repeats stage 1's params, and is marked */
static char *layout_str(const char *text, unsigned flags) {
    json_t *j = J(text);
    cis_err err = {0};
    json_t *c = spec_normalize(j, "c", true, &err);
    json_decref(j);
    CHECK_MSG(c != NULL, "%s", err.msg);
    if (!c) return xstrdup("?");
    interv_plan p;
    interv_plan_layout(c, flags, &p);
    json_decref(c); /* the plan holds its own reference */
    char buf[512] = "";
    for (int i = 0; i < p.n; i++) {
        const interv_step *s = &p.steps[i];
        CHECK_EQ_INT(s->stage, i + 1);
        CHECK(s->iv != NULL && s->mi != NULL);
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s%s", i ? "," : "", s->mi->name,
                 s->recompress ? "+" : "");
        if (s->recompress) {
            CHECK_EQ_INT(s->of_stage, 1);
            CHECK(s->params == p.steps[0].params); /* the same canonical params */
        } else CHECK_EQ_INT(s->of_stage, i + 1);
    }
    interv_plan_clear(&p);
    return xstrdup(buf);
}

static void test_layout_with_reapplication(void) {
    struct { const char *comp; unsigned flags; const char *want; } cases[] = {
        {"[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"memit\"}]", 0, "gptq,memit,gptq+"},
        {"[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}},{\"method\":\"rmu\"}]", 0, "wanda,rmu,wanda+"},
        {"[{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.35}},{\"method\":\"ga\"},{\"method\":\"ft\"}]", 0,
         "sparsegpt,ga,ft,sparsegpt+"},
        {"[{\"method\":\"awq\",\"params\":{\"bits\":4}},{\"method\":\"memit\"}]", 0, "awq,memit"},
        {"[{\"method\":\"memit\"},{\"method\":\"gptq\",\"params\":{\"bits\":4}}]", 0, "memit,gptq"},
        {"[{\"method\":\"gptq\",\"params\":{\"bits\":4}}]", 0, "gptq"},
        {"[{\"method\":\"gptq\",\"params\":{\"bits\":4}},{\"method\":\"memit\"}]", INTERV_EXACT, "gptq,memit"},
        {"[]", 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = layout_str(cases[i].comp, cases[i].flags);
        CHECK_EQ_STR(s, cases[i].want);
        free(s);
    }
}

static void test_not_built_fails_before_any_work(void) {
    cis_err err = {0};
    /* the first method of the spec registry that has not landed in this tree, if any: it is
     * refused by name, at its stage, before any work */
    const intervention *nb = NULL;
    for (size_t i = 0; intervention_at(i); i++)
        if (intervention_at(i)->status == INTERV_NOT_BUILT) { nb = intervention_at(i); break; }
    if (!nb) {  /* every method of the spec registry is built in this tree */
        int n = 0;
        for (size_t i = 0; intervention_at(i); i++, n++)
            CHECK_MSG(intervention_at(i)->status != INTERV_NOT_BUILT, "%s", intervention_at(i)->name);
        CHECK(n >= 12);  /* the ten interventions, selftest, test_scale */
        return;
    }
    char comp[160], want[128];
    snprintf(comp, sizeof comp, "[{\"method\":\"test_scale\"},{\"method\":\"%s\"}]", nb->name);
    snprintf(want, sizeof want, "intervention \"%s\" (stage 2) is not built yet", nb->name);
    char *s = plan_str(comp, INTERV_ALLOW_TEST, &err);
    CHECK(s == NULL);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK_EQ_STR(err.msg, want);
}

static void test_refusals(void) {
    cis_err err = {0};
    char *s = plan_str("[{\"method\":\"test_scale\"}]", 0, &err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err.msg, "\"test_scale\" (stage 1) is a test stage") && strstr(err.msg, "--selftest") &&
              strstr(err.msg, "--allow-test-stages"), "%s", err.msg);
    s = plan_str("[{\"method\":\"selftest\"}]", INTERV_ALLOW_TEST, &err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err.msg, "\"selftest\" (stage 1) is the orchestration fixture"), "%s", err.msg);
    s = plan_str("[{\"method\":\"test_scale\",\"params\":{\"factor\":\"big\"}}]", INTERV_ALLOW_TEST, &err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err.msg, "comp[0].params.factor") && strstr(err.msg, "not a number"), "%s", err.msg);
    s = plan_str("[{\"method\":\"rome\"}]", INTERV_ALLOW_TEST, &err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err.msg, "comp[0].method") && strstr(err.msg, "unknown method \"rome\""), "%s", err.msg);
    s = plan_str("{\"method\":\"ft\"}", 0, &err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err.msg, "array of stages"), "%s", err.msg);
}

/* the plan of `text` under a recompress policy (interv_plan_build): "method,...", a re-applied step
 * as "method+K" (K = the composition stage it repeats), a step whose zeros the mask keeps as
 * "method*"; "ERR: message" when refused */
static char *policy_str(const char *text, recompress_policy policy) {
    json_t *c = J(text);
    interv_plan p;
    cis_err err = {0};
    int rc = interv_plan_build(c, "comp", INTERV_RECOMPRESS(policy), &p, &err);
    json_decref(c);
    if (rc) return xasprintf("ERR: %s", err.msg);
    CHECK_EQ_INT((int)p.policy, (int)policy);
    char buf[512] = "";
    for (int i = 0; i < p.n; i++) {
        const interv_step *s = &p.steps[i];
        CHECK_EQ_INT(s->stage, i + 1);
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "", s->iv->name);
        if (s->recompress) {
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "+%d", s->of_stage);
            /* the same canonical params as the stage it repeats */
            CHECK(json_equal(s->params, p.steps[s->of_stage - 1].params));
        } else CHECK_EQ_INT(s->of_stage, i + 1);
        if (s->mask_capture) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "*");
    }
    interv_plan_clear(&p);
    return xstrdup(buf);
}

#define W25 "{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}"
#define SG5 "{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.5}}"
#define GQ4 "{\"method\":\"gptq\",\"params\":{\"bits\":4}}"
#define AQ4 "{\"method\":\"awq\",\"params\":{\"bits\":4}}"
#define MEMIT "{\"method\":\"memit\"}"
#define FT "{\"method\":\"ft\"}"
#define RMU "{\"method\":\"rmu\"}"

/* each recompress policy's layout (common/recompress.h) on the same compositions */
static void test_policies(void) {
    struct { const char *comp; const char *want[4]; /* paper, never, always, mask */ } cases[] = {
        {"[" GQ4 "," MEMIT "]", {"gptq,memit,gptq+1", "gptq,memit", "gptq,memit,gptq+1", "ERR"}},
        {"[" AQ4 "," MEMIT "]", {"awq,memit", "awq,memit", "awq,memit,awq+1", "ERR"}},
        {"[" W25 "," FT "]", {"wanda,ft,wanda+1", "wanda,ft", "wanda,ft,wanda+1", "wanda*,ft"}},
        {"[" MEMIT "," W25 "]", {"memit,wanda", "memit,wanda", "memit,wanda", "memit,wanda"}},
        {"[" W25 "]", {"wanda", "wanda", "wanda", "wanda"}},
        {"[" FT "," RMU "]", {"ft,rmu", "ft,rmu", "ft,rmu", "ft,rmu"}},
        /* always: every compressor that another stage follows, in composition order */
        {"[" SG5 "," RMU "," AQ4 "," FT "]",
         {"sparsegpt,rmu,awq,ft,sparsegpt+1", "sparsegpt,rmu,awq,ft", "sparsegpt,rmu,awq,ft,sparsegpt+1,awq+3", "ERR"}},
        {"[" W25 "," SG5 "," MEMIT "]",
         {"wanda,sparsegpt,memit,wanda+1", "wanda,sparsegpt,memit", "wanda,sparsegpt,memit,wanda+1,sparsegpt+2",
          "wanda*,sparsegpt*,memit"}},
        /* two compressors: always re-applies the first (as paper does), not the last */
        {"[" GQ4 "," W25 "]", {"gptq,wanda,gptq+1", "gptq,wanda", "gptq,wanda,gptq+1", "ERR"}},
        {"[" AQ4 "," W25 "]", {"awq,wanda", "awq,wanda", "awq,wanda,awq+1", "ERR"}},
        {"[" RMU "," GQ4 "]", {"rmu,gptq", "rmu,gptq", "rmu,gptq", "rmu,gptq"}}, /* a quantizer last: fine */
        {"[]", {"", "", "", ""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int p = 0; p < 4; p++) {
            char *s = policy_str(cases[i].comp, (recompress_policy)p);
            if (!strcmp(cases[i].want[p], "ERR"))
                CHECK_MSG(!strncmp(s, "ERR: recompress policy \"mask\": \"", 32) && strstr(s, "is a quantizer followed by") &&
                          strstr(s, "use paper, never or always"), "%s under %s: %s", cases[i].comp, recompress_name(p), s);
            else CHECK_MSG(!strcmp(s, cases[i].want[p]), "%s under %s: got %s, want %s", cases[i].comp,
                           recompress_name(p), s, cases[i].want[p]);
            free(s);
        }
    /* INTERV_EXACT is never, whatever policy the flags name */
    CHECK_EQ_INT((int)interv_plan_policy(INTERV_EXACT | INTERV_RECOMPRESS(RECOMPRESS_ALWAYS)), RECOMPRESS_NEVER);
    CHECK_EQ_INT((int)interv_plan_policy(0), RECOMPRESS_PAPER);
    /* the names round-trip; anything else is refused */
    for (int p = 0; p < 4; p++) CHECK_EQ_INT(recompress_parse(recompress_name(p)), p);
    CHECK_EQ_INT(recompress_parse("Paper"), -1);
    CHECK_EQ_INT(recompress_parse(""), -1);
    CHECK_EQ_INT(recompress_parse(NULL), -1);
    CHECK_EQ_STR(recompress_name((recompress_policy)7), "?");
}

int main(void) {
    RUN(test_rule);
    RUN(test_layout_of_built_stages);
    RUN(test_layout_with_reapplication);
    RUN(test_not_built_fails_before_any_work);
    RUN(test_refusals);
    RUN(test_policies);
    return test_summary();
}
