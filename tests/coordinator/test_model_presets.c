/* test_model_presets.c - per-model presets of a models map (coordinator/model_presets.c): bad maps
 * refused with the file, slot, method and parameter named; the precedence (a grid value other than
 * the registry default wins, the preset replaces defaults); the merged canonical, key and label;
 * the recompress policy kept in key and label; a preset that makes two compositions one refused.
 * Run from the repository root (tests/run.sh does). */
#include <stdlib.h>
#include <string.h>
#include "common/recompress.h"
#include "common/spec.h"
#include "coordinator/grid.h"
#include "coordinator/model_presets.h"
#include "tests/testlib.h"

static char tmpdir[] = "/tmp/test_model_presets.XXXXXX";

static json_t *J(const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fprintf(stderr, "  bad test JSON %s: %s\n", text, je.text);
    return j;
}

static grid *load(const char *text) {
    char *p = xasprintf("%s/g.json", tmpdir);
    cis_err err = {0};
    CIS_ASSERT(write_file_atomic(p, text, strlen(text), &err) == 0);
    grid *g = NULL;
    CHECK_MSG(grid_load(p, GRID_ALLOW_SELFTEST, &g, &err) == 0, "%s", err.msg);
    free(p);
    return g;
}

static void expect_bad_map(const char *map, const char *want1, const char *want2) {
    json_t *m = J(map);
    cis_err err = {0};
    CHECK_EQ_INT(model_presets_check(m, "models.json", &err), -1);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK_MSG(strstr(err.msg, "models.json: ") == err.msg, "no file first in: %s", err.msg);
    CHECK_MSG(!want1 || strstr(err.msg, want1), "want \"%s\" in: %s", want1, err.msg);
    CHECK_MSG(!want2 || strstr(err.msg, want2), "want \"%s\" in: %s", want2, err.msg);
    json_decref(m);
}

static void test_bad_maps(void) {
    expect_bad_map("{\"m\": {\"path\": \"/x\", \"presets\": [1]}}", "$.m.presets: expected an object", "ft|memit");
    expect_bad_map("{\"m\": {\"path\": \"/x\", \"presets\": {\"rome\": {}}}}", "$.m.presets.rome: unknown method",
                   "known: ft|memit");
    expect_bad_map("{\"m\": {\"path\": \"/x\", \"presets\": {\"rmu\": 6}}}", "$.m.presets.rmu: expected an object", NULL);
    /* the brief's {"layer": 6, "param": "down_proj"}: RMU calls it "module" */
    expect_bad_map("{\"a\": \"/y\", \"m\": {\"path\": \"/x\", \"presets\": {\"rmu\": {\"layer\": 6, \"param\": \"down_proj\"}}}}",
                   "$.m.presets.rmu.param: unknown parameter \"param\" for rmu", "module");
    expect_bad_map("{\"m\": {\"path\": \"/x\", \"presets\": {\"rmu\": {\"module\": \"mlp\"}}}}",
                   "$.m.presets.rmu.module", "o_proj|down_proj");
    expect_bad_map("{\"m\": {\"path\": \"/x\", \"presets\": {\"ft\": {\"steps\": 0}}}}", "$.m.presets.ft.steps", NULL);
    expect_bad_map("{\"m\": {\"path\": \"/x\", \"presets\": {\"ft\": {\"lr\": \"fast\"}}}}", "$.m.presets.ft.lr", NULL);
    /* good maps: strings, objects without presets, presets */
    json_t *m = J("{\"a\": \"/y\", \"b\": {\"path\": \"/z\", \"dtype\": \"bf16\"}, \"m\": {\"path\": \"/x\", \"presets\": "
                  "{\"rmu\": {\"layer\": 6, \"module\": \"down_proj\", \"use_preset\": false}, \"ft\": {\"layers\": \"1-2\"}}}}");
    cis_err err = {0};
    CHECK_MSG(model_presets_check(m, "models.json", &err) == 0, "%s", err.msg);
    json_decref(m);
}

static const char *param_of(const grid_comp *c, size_t stage, const char *name, char *buf, size_t n) {
    json_t *s = J(c->canonical);
    char *t = spec_dump_canonical(json_object_get(json_object_get(json_array_get(s, stage), "params"), name));
    snprintf(buf, n, "%s", t);
    free(t);
    json_decref(s);
    return buf;
}

static void test_merge_and_precedence(void) {
    grid *g = load("{\"name\":\"p\",\"models\":[\"a\",\"m\"],\"singles\":false,"
                   "\"compositions\":[[{\"method\":\"rmu\"}],[{\"method\":\"rmu\",\"params\":{\"layer\":4}},{\"method\":\"ft\"}],"
                   "[{\"method\":\"test_scale\",\"params\":{\"factor\":0.25}}]],"
                   "\"subgrids\":[{\"models\":[\"m\"],\"recompress\":\"never\",\"compositions\":[[{\"method\":\"ft\"}]]}]}");
    if (!g) return;
    CHECK_EQ_INT(g->n_comps, 7);
    grid_comp before[8];
    char *canon[8];
    for (size_t i = 0; i < g->n_comps && i < 8; i++) { before[i] = g->comps[i]; canon[i] = xstrdup(g->comps[i].canonical); }
    json_t *map = J("{\"a\": \"/a\", \"m\": {\"path\": \"/m\", \"presets\": {\"rmu\": {\"layer\": 6, \"module\": "
                    "\"down_proj\"}, \"ft\": {\"steps\": 3}, \"test_scale\": {\"factor\": 2, \"last_layers\": 1}}}}");
    cis_err err = {0};
    CHECK_MSG(model_presets_apply(g, map, "models.json", &err) == 0, "%s", err.msg);
    char b[256];
    for (size_t i = 0; i < g->n_comps; i++) {
        const grid_comp *c = &g->comps[i];
        if (!strcmp(c->model, "a")) { /* a slot without presets: untouched */
            CHECK_EQ_STR(c->canonical, canon[i]);
            CHECK_EQ_STR(c->key, before[i].key);
            continue;
        }
        if (!strcmp(c->label, "rmu")) {
            CHECK_EQ_STR(param_of(c, 0, "layer", b, sizeof b), "6");           /* default 3 -> preset */
            CHECK_EQ_STR(param_of(c, 0, "module", b, sizeof b), "\"down_proj\"");
            char key[65];
            grid_comp_key(c->canonical, RECOMPRESS_PAPER, key);
            CHECK_EQ_STR(c->key, key);
            CHECK(strcmp(c->key, before[i].key) != 0);
        } else if (!strcmp(c->label, "rmu->ft")) {
            CHECK_EQ_STR(param_of(c, 0, "layer", b, sizeof b), "4");           /* the grid's 4 wins */
            CHECK_EQ_STR(param_of(c, 0, "module", b, sizeof b), "\"down_proj\"");
            CHECK_EQ_STR(param_of(c, 1, "steps", b, sizeof b), "3");
        } else if (!strcmp(c->label, "test_scale(factor=0.25)")) {
            CHECK_EQ_STR(param_of(c, 0, "factor", b, sizeof b), "0.25");      /* grid wins */
            CHECK_EQ_STR(param_of(c, 0, "last_layers", b, sizeof b), "1");    /* preset */
        } else if (!strcmp(c->label, "ft [recompress=never]")) {
            CHECK_EQ_STR(param_of(c, 0, "steps", b, sizeof b), "3");
            char key[65];
            grid_comp_key(c->canonical, RECOMPRESS_NEVER, key);
            CHECK_EQ_STR(c->key, key); /* the policy stays in the key */
        } else CHECK_MSG(0, "unexpected label %s", c->label);
    }
    for (size_t i = 0; i < 7; i++) free(canon[i]);
    json_decref(map);
    grid_free(&g);
}

/* levels 5e-05 (the default) and 1e-04 of ft's lr, preset lr 1e-04: both become 1e-04 -> refused */
static void test_collision_refused(void) {
    grid *g = load("{\"name\":\"c\",\"models\":[\"m\"],\"categories\":{\"edit\":[{\"method\":\"ft\",\"levels\":"
                   "{\"lr\":[5e-05,1e-04]}}]}}");
    if (!g) return;
    json_t *map = J("{\"m\": {\"path\": \"/m\", \"presets\": {\"ft\": {\"lr\": 1e-04}}}}");
    cis_err err = {0};
    CHECK_EQ_INT(model_presets_apply(g, map, "models.json", &err), -1);
    CHECK_MSG(strstr(err.msg, "models.json: $.m.presets make two compositions of the grid the same for slot m"),
              "%s", err.msg);
    json_decref(map);
    grid_free(&g);
    /* a bad map is refused by apply too (it checks first); NULL map: nothing to do */
    g = load("{\"name\":\"c\",\"models\":[\"m\"],\"compositions\":[[{\"method\":\"ft\"}]]}");
    map = J("{\"m\": {\"path\": \"/m\", \"presets\": {\"ft\": {\"stepz\": 3}}}}");
    CHECK_EQ_INT(model_presets_apply(g, map, "models.json", &err), -1);
    CHECK_MSG(strstr(err.msg, "$.m.presets.ft.stepz: unknown parameter"), "%s", err.msg);
    CHECK_EQ_INT(model_presets_apply(g, NULL, "models.json", &err), 0);
    json_decref(map);
    grid_free(&g);
}

int main(void) {
    CIS_ASSERT(mkdtemp(tmpdir));
    RUN(test_bad_maps);
    RUN(test_merge_and_precedence);
    RUN(test_collision_refused);
    char *rm = xasprintf("rm -rf %s", tmpdir);
    if (system(rm)) {}
    free(rm);
    return test_summary();
}
