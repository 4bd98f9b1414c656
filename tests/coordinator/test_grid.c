/* test_grid.c - grid expansion: the shipped grids' counts (paper 311 with the per-pattern counts of
 * docs/paper.md §2.1 and 1688 jobs; paper-417 as fidelity.md §1 rebuilds it, per model and pattern,
 * with its models map; smoke), the "seeds" key, determinism, edit sets, sub-grid
 * inheritance, the selftest generator, bad grids (syntax, unknown method, invalid level, unknown
 * key, duplicates: -1 with the file and the JSON path) and `cmd_grid`'s output and exit codes.
 * Run from the repository root (tests/run.sh does). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <dirent.h>
#include "common/recompress.h"
#include <jansson.h>
#include "common/spec.h"
#include "coordinator/grid.h"
#include "tests/testlib.h"

static char tmpdir[256];

static char *write_tmp(const char *name, const char *text) {
    char *p = xasprintf("%s/%s", tmpdir, name);
    cis_err err = {0};
    CIS_ASSERT(write_file_atomic(p, text, strlen(text), &err) == 0);
    return p;
}

static size_t count_pattern(const grid *g, const char *model, const char *pattern) {
    size_t n = 0;
    for (size_t i = 0; i < g->n_comps; i++)
        if ((!model || !strcmp(g->comps[i].model, model)) && !strcmp(g->comps[i].pattern, pattern)) n++;
    return n;
}

static void test_paper_311(void) {
    grid *g = NULL;
    cis_err err = {0};
    if (grid_load("grids/paper.json", 0, &g, &err)) { fprintf(stderr, "  %s\n", err.msg); CHECK(0); return; }
    CHECK_EQ_INT(g->n_comps, 311);
    CHECK_EQ_STR(g->name, "paper");
    CHECK_EQ_INT(g->max_attempts, 3);
    /* docs/paper.md §2.1 */
    const char *pats[] = {"baseline", "edit", "compress", "unlearn", "edit->compress", "compress->edit",
                          "unlearn->compress", "compress->unlearn", "edit->unlearn", "unlearn->edit"};
    const int want[] = {1, 3, 22, 3, 66, 66, 66, 66, 9, 9};
    size_t total = 0;
    for (int i = 0; i < 10; i++) {
        size_t n = count_pattern(g, "llama3-8b", pats[i]);
        CHECK_MSG((int)n == want[i], "%s: %zu, want %d", pats[i], n, want[i]);
        total += n;
    }
    CHECK_EQ_INT(total, 311);
    CHECK_EQ_INT(g->n_jobs, 153 * 10 + 158);
    /* editing compositions run on edit sets 1..10, the others once (edit set 0) */
    size_t editing = 0;
    for (size_t i = 0; i < g->n_comps; i++) {
        const grid_comp *c = &g->comps[i];
        bool ed = strstr(c->pattern, "edit") != NULL;
        editing += ed;
        CHECK_EQ_INT(c->n_edit_sets, ed ? 10 : 0);
        if (ed && c->n_edit_sets == 10) { CHECK_EQ_INT(c->edit_sets[0], 1); CHECK_EQ_INT(c->edit_sets[9], 10); }
        char h[65];
        sha256_hex(c->canonical, strlen(c->canonical), h);
        CHECK_EQ_STR(c->key, h);
        CHECK_EQ_INT(c->priority, 0);
    }
    CHECK_EQ_INT(editing, 153);
    /* order: baseline first, then singles by category, then pairs */
    CHECK_EQ_STR(g->comps[0].canonical, "[]");
    CHECK_EQ_STR(g->comps[0].pattern, "baseline");
    CHECK_EQ_STR(g->comps[1].label, "ft");
    CHECK_EQ_STR(g->comps[4].label, "wanda(sparsity=0.25)");
    CHECK_EQ_STR(g->comps[9].label, "wanda(sparsity=0.75)");
    CHECK_EQ_STR(g->comps[16].label, "gptq(bits=2)");
    CHECK_EQ_STR(g->comps[25].label, "awq(bits=8)");
    CHECK_EQ_STR(g->comps[26].label, "rmu");
    CHECK_EQ_STR(g->comps[29].label, "ft->wanda(sparsity=0.25)");
    CHECK_EQ_STR(g->comps[29 + 66].label, "wanda(sparsity=0.25)->ft");
    /* the compressor levels really are the paper's */
    CHECK(strstr(g->comps[9].canonical, "\"sparsity\":0.75") != NULL);
    /* deterministic: a second load gives the same order and keys */
    grid *g2 = NULL;
    CHECK_EQ_INT(grid_load("grids/paper.json", 0, &g2, &err), 0);
    if (g2) {
        CHECK_EQ_INT(g2->n_comps, g->n_comps);
        for (size_t i = 0; i < g->n_comps && i < g2->n_comps; i++) CHECK(!strcmp(g->comps[i].key, g2->comps[i].key));
    }
    grid_free(&g2);
    grid_free(&g);
    CHECK(g == NULL);
}

/* the comps of `model` whose canonical text contains every one of the NULL-ended needles */
static size_t count_canon(const grid *g, const char *model, const char *pattern, const char *const *needles) {
    size_t n = 0;
    for (size_t i = 0; i < g->n_comps; i++) {
        const grid_comp *c = &g->comps[i];
        if (strcmp(c->model, model) || (pattern && strcmp(c->pattern, pattern))) continue;
        bool all = true;
        for (size_t k = 0; needles[k] && all; k++) all = strstr(c->canonical, needles[k]) != NULL;
        n += all;
    }
    return n;
}

/* docs/fidelity.md §1: 311 (main, edit sets 1..10) + Mistral 65 + Yi 38 (edit set 1) + 3 Mistral
 * compositions outside the design (RMU->FT, RMU->LoRA evidence; FT->RMU reconstruction) */
static void test_paper_417(void) {
    grid *g = NULL;
    cis_err err = {0};
    if (grid_load("grids/paper-417.json", 0, &g, &err)) { fprintf(stderr, "  %s\n", err.msg); CHECK(0); return; }
    CHECK_EQ_INT(g->n_comps, 417);
    const char *pats[] = {"baseline", "edit", "compress", "unlearn", "edit->compress", "compress->edit",
                          "unlearn->compress", "compress->unlearn", "edit->unlearn", "unlearn->edit"};
    struct { const char *m; int n; int want[10]; } models[] = {
        {"llama3-8b", 311, {1, 3, 22, 3, 66, 66, 66, 66, 9, 9}},
        {"mistral-7b", 68, {1, 1, 12, 1, 12, 12, 12, 12, 2, 3}},  /* 65 + RMU->FT, RMU->LoRA (unlearn->edit), FT->RMU */
        {"yi-1.5-9b", 38, {1, 1, 12, 0, 12, 12, 0, 0, 0, 0}},
    };
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        int n = 0;
        for (size_t j = 0; j < g->n_comps; j++) n += !strcmp(g->comps[j].model, models[i].m);
        CHECK_MSG(n == models[i].n, "%s: %d, want %d", models[i].m, n, models[i].n);
        for (int k = 0; k < 10; k++) {
            size_t c = count_pattern(g, models[i].m, pats[k]);
            CHECK_MSG((int)c == models[i].want[k], "%s %s: %zu, want %d", models[i].m, pats[k], c, models[i].want[k]);
        }
        total += (size_t)n;
    }
    CHECK_EQ_INT(total, 417);
    /* the main model is exactly grids/paper.json, in the same order */
    grid *p = NULL;
    CHECK_EQ_INT(grid_load("grids/paper.json", 0, &p, &err), 0);
    if (p) {
        CHECK_EQ_INT(p->n_comps, 311);
        for (size_t i = 0; i < 311 && i < p->n_comps; i++) {
            CHECK_MSG(!strcmp(p->comps[i].key, g->comps[i].key) && !strcmp(g->comps[i].model, "llama3-8b"),
                      "composition %zu differs from paper.json", i);
            CHECK_EQ_INT(g->comps[i].n_edit_sets, p->comps[i].n_edit_sets);
        }
    }
    grid_free(&p);
    /* the appendix models ran once: edit set 1 for editing compositions, one job otherwise */
    size_t jobs_appendix = 0;
    for (size_t j = 311; j < g->n_comps; j++) {
        const grid_comp *c = &g->comps[j];
        bool ed = strstr(c->pattern, "edit") != NULL;
        CHECK_EQ_INT(c->n_edit_sets, ed ? 1 : 0);
        if (ed && c->n_edit_sets == 1) CHECK_EQ_INT(c->edit_sets[0], 1);
        CHECK(!c->seeded);
        jobs_appendix++;
    }
    CHECK_EQ_INT(g->n_jobs, 1688 + jobs_appendix);
    CHECK_EQ_INT(g->n_jobs, 1794);
    /* Mistral's RMU: layer 6 on down_proj, in every Mistral composition that has RMU */
    const char *rmu6[] = {"\"method\":\"rmu\",\"params\":{", "\"layer\":6,", "\"module\":\"down_proj\"", NULL};
    const char *rmu[] = {"\"method\":\"rmu\"", NULL};
    CHECK_EQ_INT(count_canon(g, "mistral-7b", NULL, rmu6), 1 + 24 + 2 + 3);
    CHECK_EQ_INT(count_canon(g, "mistral-7b", NULL, rmu), 1 + 24 + 2 + 3);
    CHECK_EQ_INT(count_canon(g, "llama3-8b", NULL, rmu6), 0);
    /* the appendix compressors: Wanda six levels and AWQ 2,3,4,5,6,8; no SparseGPT, no GPTQ */
    const char *sgpt[] = {"sparsegpt", NULL}, *gptq[] = {"gptq", NULL}, *awq5[] = {"\"method\":\"awq\",\"params\":{\"bits\":5,", NULL},
               *w75[] = {"\"method\":\"wanda\",\"params\":{\"prune_m\":0,\"prune_n\":0,\"sparsity\":0.75}", NULL};
    for (int i = 1; i < 3; i++) {
        CHECK_EQ_INT(count_canon(g, models[i].m, NULL, sgpt) + count_canon(g, models[i].m, NULL, gptq), 0);
        CHECK_EQ_INT(count_canon(g, models[i].m, "compress", awq5), 1);
        CHECK_EQ_INT(count_canon(g, models[i].m, "compress", w75), 1);
    }
    /* the three compositions outside the design, and the editors of the appendix (MEMIT in the design) */
    const char *ft[] = {"\"method\":\"ft\"", NULL}, *lora[] = {"\"method\":\"lora\"", NULL}, *memit[] = {"\"method\":\"memit\"", NULL};
    CHECK_EQ_INT(count_canon(g, "mistral-7b", "unlearn->edit", ft), 1);
    CHECK_EQ_INT(count_canon(g, "mistral-7b", "unlearn->edit", lora), 1);
    CHECK_EQ_INT(count_canon(g, "mistral-7b", "edit->unlearn", ft), 1);
    CHECK_EQ_INT(count_canon(g, "mistral-7b", "edit->unlearn", lora), 0);
    CHECK_EQ_INT(count_canon(g, "mistral-7b", NULL, ft), 2);
    CHECK_EQ_INT(count_canon(g, "mistral-7b", NULL, memit), 1 + 24 + 2);
    CHECK_EQ_INT(count_canon(g, "yi-1.5-9b", NULL, memit), 1 + 24);
    CHECK_EQ_INT(count_canon(g, "yi-1.5-9b", NULL, ft) + count_canon(g, "yi-1.5-9b", NULL, lora), 0);
    grid_free(&g);
}

/* grids/paper-417.models.json maps exactly the slots of paper-417 to members of the default family
 * (worker/engine/arch.c ARCH_FAMILY: tiny-llama3, tiny-mistral, tiny-yi), as relative paths */
static void test_paper_417_models_map(void) {
    size_t len;
    cis_err err = {0};
    char *text = read_file("grids/paper-417.models.json", &len, &err);
    if (!text) { fprintf(stderr, "  %s\n", err.msg); CHECK(0); return; }
    json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    CHECK(json_is_object(m));
    grid *g = NULL;
    CHECK_EQ_INT(grid_load("grids/paper-417.json", 0, &g, &err), 0);
    if (g && json_is_object(m)) {
        for (size_t i = 0; i < g->n_comps; i++)
            CHECK_MSG(json_is_string(json_object_get(m, g->comps[i].model)), "slot %s not mapped", g->comps[i].model);
        CHECK_EQ_INT(json_object_size(m), 3);
        CHECK_EQ_STR(json_string_value(json_object_get(m, "llama3-8b")), "tiny-llama3");
        CHECK_EQ_STR(json_string_value(json_object_get(m, "mistral-7b")), "tiny-mistral");
        CHECK_EQ_STR(json_string_value(json_object_get(m, "yi-1.5-9b")), "tiny-yi");
    }
    grid_free(&g);
    json_decref(m);
}

/* "seeds": compositions without an editor run once per seed (edit_sets holds the seeds, seeded);
 * editing ones keep their edit sets; the baseline runs once; subgrids inherit; 0 turns it off */
static void test_seeds(void) {
    char *p = write_tmp("seeds.json",
        "{\"name\":\"s\",\"models\":[\"a\"],\"edit_sets\":[1,2],\"seeds\":3,\"baseline\":true,"
        "\"categories\":{\"edit\":[{\"method\":\"ft\"}],\"compress\":[{\"method\":\"wanda\",\"levels\":{\"sparsity\":[0.25]}}],"
        "  \"unlearn\":[{\"method\":\"rmu\"}]},"
        "\"pairs\":[[\"unlearn\",\"compress\"],[\"edit\",\"compress\"]],"
        "\"subgrids\":[{\"models\":[\"b\"],\"categories\":{\"unlearn\":[{\"method\":\"ga\"}]}},"
        "  {\"models\":[\"c\"],\"seeds\":[7,9],\"edit_sets\":[4],\"compositions\":[[{\"method\":\"gd\"}],[{\"method\":\"lora\"}]]},"
        "  {\"models\":[\"d\"],\"seeds\":0,\"categories\":{\"unlearn\":[{\"method\":\"ga\"}]}}]}");
    grid *g = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(grid_load(p, 0, &g, &err), 0);
    if (!g) { fprintf(stderr, "  %s\n", err.msg); free(p); return; }
    /* a: baseline, ft, wanda, rmu, rmu->wanda, wanda->rmu, ft->wanda, wanda->ft; b: ga; c: gd, lora; d: ga */
    CHECK_EQ_INT(g->n_comps, 8 + 1 + 2 + 1);
    for (size_t i = 0; i < g->n_comps; i++) {
        const grid_comp *c = &g->comps[i];
        bool ed = strstr(c->pattern, "edit") != NULL, base = !strcmp(c->pattern, "baseline");
        int want = !strcmp(c->model, "d") || base ? 0 : ed ? (!strcmp(c->model, "c") ? 1 : 2) : (!strcmp(c->model, "c") ? 2 : 3);
        CHECK_MSG(c->n_edit_sets == want, "%s %s: %d sets, want %d", c->model, c->label, c->n_edit_sets, want);
        CHECK_MSG(c->seeded == (!ed && want > 0), "%s %s: seeded %d", c->model, c->label, c->seeded);
        if (!strcmp(c->model, "a") && !ed && !base && c->n_edit_sets == 3) CHECK_EQ_INT(c->edit_sets[2], 3);
        if (!strcmp(c->model, "c") && !ed && c->n_edit_sets == 2) CHECK_EQ_INT(c->edit_sets[1], 9);
        if (!strcmp(c->model, "c") && ed && c->n_edit_sets == 1) CHECK_EQ_INT(c->edit_sets[0], 4);
    }
    /* jobs: a 1 + 2 (ft) + 3 (wanda) + 3 (rmu) + 3 + 3 + 2 + 2, b 3, c 2 + 1, d 1 */
    CHECK_EQ_INT(g->n_jobs, 19 + 3 + 3 + 1);
    grid_free(&g);
    free(p);
}

static void test_smoke(void) {
    grid *g = NULL;
    cis_err err = {0};
    if (grid_load("grids/smoke.json", 0, &g, &err)) { fprintf(stderr, "  %s\n", err.msg); CHECK(0); return; }
    CHECK(g->n_comps >= 4 && g->n_comps <= 12);
    CHECK_EQ_INT(count_pattern(g, NULL, "baseline"), 1);
    CHECK(count_pattern(g, NULL, "edit") >= 1);
    CHECK(count_pattern(g, NULL, "compress") >= 1);
    CHECK(count_pattern(g, NULL, "unlearn") >= 1);
    CHECK_EQ_INT(g->n_jobs, g->n_comps); /* one edit set */
    grid_free(&g);
}

static void test_selftest_generator(void) {
    char *p = write_tmp("st.json",
        "{\"name\":\"st\",\"models\":[\"m\"],\"max_attempts\":5,\"priority\":7,"
        "\"selftest\":{\"count\":200,\"id_start\":10,\"params\":{\"sleep_ms\":5,\"rows\":{\"x\":2.5}}},"
        "\"compositions\":[[{\"method\":\"selftest\",\"params\":{\"action\":\"crash\"}}]]}");
    grid *g = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(grid_load(p, GRID_ALLOW_SELFTEST, &g, &err), 0);
    if (g) {
        CHECK_EQ_INT(g->n_comps, 201);
        CHECK_EQ_INT(g->n_jobs, 201);
        CHECK_EQ_INT(g->max_attempts, 5);
        CHECK_EQ_INT(g->comps[0].priority, 7);
        CHECK_EQ_STR(g->comps[0].pattern, "test");
        CHECK(strstr(g->comps[0].canonical, "\"action\":\"crash\"") != NULL); /* explicit ones before generated */
        CHECK(strstr(g->comps[1].canonical, "\"id\":10,") != NULL);
        CHECK(strstr(g->comps[200].canonical, "\"id\":209,") != NULL);
        CHECK(strstr(g->comps[1].canonical, "\"rows\":{\"x\":2.5},\"sleep_ms\":5") != NULL);
        CHECK_EQ_STR(g->comps[1].label, "selftest(id=10)");
    }
    grid_free(&g);
    /* without the flag: refused, naming the flag */
    CHECK_EQ_INT(grid_load(p, 0, &g, &err), -1);
    CHECK_MSG(strstr(err.msg, "allow-selftest") && strstr(err.msg, p), "%s", err.msg);
    free(p);
    p = write_tmp("st2.json", "{\"name\":\"st\",\"models\":[\"m\"],\"compositions\":[[{\"method\":\"selftest\"}]]}");
    CHECK_EQ_INT(grid_load(p, 0, &g, &err), -1);
    CHECK_MSG(strstr(err.msg, "$.compositions[0][0].method") && strstr(err.msg, "allow-selftest"), "%s", err.msg);
    free(p);
}

static void test_subgrids_and_edit_sets(void) {
    char *p = write_tmp("sub.json",
        "{\"name\":\"s\",\"models\":[\"a\"],\"edit_sets\":[3,5],\"priority\":2,"
        "\"categories\":{\"edit\":[{\"method\":\"memit\",\"params\":{\"layers\":\"1-2\"}}],"
        "  \"compress\":[{\"method\":\"gptq\",\"levels\":{\"bits\":[4,8],\"group_size\":[64,128]}}]},"
        "\"pairs\":[[\"compress\",\"edit\"]],\"both_orders\":false,"
        "\"subgrids\":[{\"models\":[\"b\",\"c\"],\"singles\":false,\"baseline\":true,\"priority\":-1,"
        "  \"categories\":{\"unlearn\":[{\"method\":\"ga\",\"levels\":{\"lr\":[1e-5,2e-5]}}]}}]}");
    grid *g = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(grid_load(p, 0, &g, &err), 0);
    if (g) {
        /* a: 1 edit + 4 gptq (bits x group_size) + 4 compress->edit; b, c: baseline only */
        CHECK_EQ_INT(g->n_comps, 9 + 2);
        CHECK_EQ_INT(count_pattern(g, "a", "compress->edit"), 4);
        CHECK_EQ_INT(count_pattern(g, "a", "edit->compress"), 0);
        CHECK_EQ_INT(count_pattern(g, "b", "baseline"), 1);
        CHECK_EQ_INT(count_pattern(g, "c", "unlearn"), 0);
        /* level product: first level parameter (sorted: bits) outermost */
        CHECK_EQ_STR(g->comps[0].label, "memit"); /* no baseline: the top level's default is false */
        CHECK(strstr(g->comps[1].canonical, "{\"bits\":4,\"desc_act\":false,\"group_size\":64}") != NULL);
        CHECK(strstr(g->comps[2].canonical, "{\"bits\":4,\"desc_act\":false,\"group_size\":128}") != NULL);
        CHECK(strstr(g->comps[3].canonical, "{\"bits\":8,\"desc_act\":false,\"group_size\":64}") != NULL);
        CHECK_EQ_INT(g->comps[0].n_edit_sets, 2);
        if (g->comps[0].n_edit_sets == 2) CHECK_EQ_INT(g->comps[0].edit_sets[1], 5);
        CHECK_EQ_INT(g->comps[0].priority, 2);
        CHECK_EQ_INT(g->comps[5].n_edit_sets, 2); /* compress->edit */
        CHECK_EQ_INT(g->comps[1].n_edit_sets, 0);
        CHECK_EQ_INT(g->comps[9].priority, -1);
        CHECK_EQ_STR(g->comps[9].model, "b");
        CHECK_EQ_INT(g->n_jobs, 1 * 2 + 4 + 4 * 2 + 2);
    }
    grid_free(&g);
    free(p);
}

static void expect_bad(const char *name, const char *body, const char *want1, const char *want2);

/* the "recompress" key: block-level, inherited by sub-grids, in the label and the key (the same
 * stages under two policies are two compositions; paper keeps the plain key); bad values named */
static void test_recompress_key(void) {
    char *p = write_tmp("rc.json",
        "{\"name\":\"rc\",\"models\":[\"a\"],\"singles\":false,"
        "\"categories\":{\"edit\":[{\"method\":\"ft\"}],\"compress\":[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]},"
        "\"pairs\":[[\"compress\",\"edit\"]],\"both_orders\":false,"
        "\"subgrids\":[{\"models\":[\"a\"],\"recompress\":\"mask\",\"singles\":false,\"pairs\":[[\"compress\",\"edit\"]],"
        "  \"categories\":{\"edit\":[{\"method\":\"ft\"}],\"compress\":[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]}},"
        " {\"models\":[\"a\"],\"singles\":false,\"pairs\":[[\"compress\",\"edit\"]],"
        "  \"categories\":{\"edit\":[{\"method\":\"ft\"}],\"compress\":[{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.25}}]}}],"
        "\"recompress\":\"never\"}");
    grid *g = NULL;
    cis_err err = {0};
    CHECK_MSG(grid_load(p, 0, &g, &err) == 0, "%s", err.msg);
    if (g) {
        /* top: wanda->ft (never); sub 0: wanda->ft (mask); sub 1: sparsegpt->ft (never, inherited) */
        CHECK_EQ_INT(g->n_comps, 3);
        CHECK_EQ_INT(g->comps[0].recompress, RECOMPRESS_NEVER);
        CHECK_EQ_STR(g->comps[0].label, "wanda(sparsity=0.25)->ft [recompress=never]");
        char key[65];
        sha256_hex(g->comps[0].canonical, strlen(g->comps[0].canonical), key);
        CHECK(strcmp(g->comps[0].key, key) != 0); /* never: not the plain key */
        CHECK_EQ_INT(g->comps[1].recompress, RECOMPRESS_MASK);
        CHECK_EQ_STR(g->comps[1].label, "wanda(sparsity=0.25)->ft [recompress=mask]");
        CHECK_EQ_STR(g->comps[1].canonical, g->comps[0].canonical);
        CHECK(strcmp(g->comps[1].key, g->comps[0].key) != 0);
        grid_comp_key(g->comps[1].canonical, RECOMPRESS_MASK, key);
        CHECK_EQ_STR(g->comps[1].key, key);
        CHECK_EQ_INT(g->comps[2].recompress, RECOMPRESS_NEVER);
    }
    grid_free(&g);
    free(p);
    /* without the key: paper, the plain sha256 of the canonical text (keys of older grids unchanged) */
    p = write_tmp("rc0.json", "{\"name\":\"rc0\",\"models\":[\"a\"],\"categories\":{\"compress\":["
                  "{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]}}");
    CHECK_MSG(grid_load(p, 0, &g, &err) == 0, "%s", err.msg);
    if (g && g->n_comps == 1) {
        char key[65];
        sha256_hex(g->comps[0].canonical, strlen(g->comps[0].canonical), key);
        CHECK_EQ_STR(g->comps[0].key, key);
        CHECK_EQ_INT(g->comps[0].recompress, RECOMPRESS_PAPER);
        CHECK_EQ_STR(g->comps[0].label, "wanda(sparsity=0.25)");
    }
    grid_free(&g);
    free(p);
    expect_bad("rc1.json", "{\"name\":\"x\",\"models\":[\"m\"],\"baseline\":true,\"recompress\":\"sometimes\"}",
               "$.recompress: \"sometimes\" is not a recompress policy", "(allowed: paper|never|always|mask)");
    expect_bad("rc2.json", "{\"name\":\"x\",\"models\":[\"m\"],\"baseline\":true,\"subgrids\":[{\"recompress\":1}]}",
               "$.subgrids[0].recompress: expected a string", "paper|never|always|mask");
    expect_bad("rc3.json", "{\"name\":\"x\",\"models\":[\"m\"],\"recompress\":\"mask\",\"singles\":false,"
               "\"pairs\":[[\"compress\",\"edit\"]],\"both_orders\":false,\"categories\":{\"edit\":[{\"method\":\"ft\"}],\"compress\":[{\"method\":\"gptq\",\"params\":{\"bits\":4}}]}}",
               "\"recompress\": \"mask\" keeps only a pruner's", "stage 1 is the quantizer gptq followed by another stage");
}

/* every shipped grid loads (selftest ones with the flag) and has a unique name */
static void test_all_shipped_grids_load(void) {
    DIR *d = opendir("grids");
    if (!d) SKIP("no grids/ directory (run from the repository root)");
    struct dirent *e;
    int n = 0;
    char names[64][128];
    while ((e = readdir(d))) {
        if (!str_ends(e->d_name, ".json") || str_ends(e->d_name, ".models.json")) continue; /* models maps */
        char *p = xasprintf("grids/%s", e->d_name);
        grid *g = NULL;
        cis_err err = {0};
        int rc = grid_load(p, GRID_ALLOW_SELFTEST, &g, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (g) {
            CHECK_MSG(g->n_comps > 0 && g->description[0], "%s: no compositions or no description", p);
            for (int i = 0; i < n && i < 64; i++) CHECK_MSG(strcmp(names[i], g->name), "%s: name %s used twice", p, g->name);
            if (n < 64) snprintf(names[n], sizeof names[n], "%s", g->name);
            n++;
        }
        grid_free(&g);
        free(p);
    }
    closedir(d);
    CHECK(n >= 3);
}

/* (file body, substrings the message must hold besides the file name) */
static void expect_bad(const char *name, const char *body, const char *want1, const char *want2) {
    char *p = write_tmp(name, body);
    grid *g = (grid *)1;
    cis_err err = {0};
    CHECK_EQ_INT(grid_load(p, 0, &g, &err), -1);
    CHECK(g == NULL);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK_MSG(strstr(err.msg, p) != NULL, "no file name in: %s", err.msg);
    CHECK_MSG(!want1 || strstr(err.msg, want1), "want \"%s\" in: %s", want1, err.msg);
    CHECK_MSG(!want2 || strstr(err.msg, want2), "want \"%s\" in: %s", want2, err.msg);
    free(p);
}

static void test_bad_grids(void) {
    expect_bad("syntax.json", "{\"name\": \"x\",\n  \"models\": [\"m\"]\n  \"baseline\": true}\n", "line 3", "column");
    expect_bad("method.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"edit\":[{\"method\":\"ft\"},{\"method\":\"rome\"}]}}",
               "$.categories.edit[1].method", "unknown method \"rome\" (known: ft|memit|lora");
    expect_bad("level.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"compress\":["
               "{\"method\":\"wanda\",\"levels\":{\"sparsity\":[0.25]}},{\"method\":\"gptq\",\"levels\":{\"bits\":[2,3,5]}}]}}",
               "$.categories.compress[1].levels.bits[2]: 5 is not allowed for gptq bits (allowed: 2|3|4|8)", NULL);
    expect_bad("range.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"compress\":["
               "{\"method\":\"sparsegpt\",\"levels\":{\"sparsity\":[0.5,1.5]}}]}}",
               "$.categories.compress[0].levels.sparsity[1]", "out of range");
    expect_bad("key.json", "{\"name\":\"x\",\"models\":[\"m\"],\"pairz\":[]}", "$: unknown key \"pairz\"", "pairs");
    expect_bad("key2.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"edit\":[{\"method\":\"ft\",\"level\":{}}]}}",
               "$.categories.edit[0]: unknown key \"level\"", "levels");
    expect_bad("key3.json", "{\"name\":\"x\",\"subgrids\":[{\"models\":[\"m\"],\"max_attempts\":2}]}",
               "$.subgrids[0]: unknown key \"max_attempts\"", NULL);
    expect_bad("cat.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"prune\":[]}}", "unknown key \"prune\"", NULL);
    expect_bad("wrongcat.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"edit\":[{\"method\":\"rmu\"}]}}",
               "$.categories.edit[0].method", "unlearn method, not edit");
    expect_bad("param.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"unlearn\":[{\"method\":\"rmu\",\"params\":{\"layers\":3}}]}}",
               "$.categories.unlearn[0].params.layers", "unknown parameter \"layers\" for rmu");
    expect_bad("req.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"compress\":[{\"method\":\"awq\"}]}}",
               "$.categories.compress[0]", "missing required parameter \"bits\"");
    expect_bad("dup.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"compress\":["
               "{\"method\":\"wanda\",\"levels\":{\"sparsity\":[0.25,0.35]}},{\"method\":\"wanda\",\"levels\":{\"sparsity\":[0.250]}}]}}",
               "$.categories.compress[1]: duplicate composition wanda(sparsity=0.25)", "$.categories.compress[0]");
    expect_bad("dup2.json", "{\"name\":\"x\",\"models\":[\"m\"],\"baseline\":true,\"compositions\":[[]]}",
               "$.compositions[0]: duplicate composition baseline", "$.baseline");
    expect_bad("dup3.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"edit\":[{\"method\":\"ft\"}],"
               "\"unlearn\":[{\"method\":\"ga\"}]},\"pairs\":[[\"edit\",\"unlearn\"],[\"unlearn\",\"edit\"]]}",
               "$.pairs[1]: duplicate composition", "$.pairs[0]");
    expect_bad("dupkey.json", "{\"name\":\"x\",\"name\":\"y\"}", "duplicate", NULL);
    expect_bad("pair.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"edit\":[{\"method\":\"ft\"}]},\"pairs\":[[\"edit\",\"unlearn\"]]}",
               "$.pairs[0][1]", "no methods");
    expect_bad("pair2.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"edit\":[{\"method\":\"ft\"}]},\"pairs\":[[\"edit\",\"edit\"]]}",
               "$.pairs[0]", "two different categories");
    expect_bad("nomodels.json", "{\"name\":\"x\",\"baseline\":true}", "$.models", NULL);
    expect_bad("models.json", "{\"name\":\"x\",\"models\":[\"m\",\"m\"],\"baseline\":true}", "$.models[1]", "twice");
    expect_bad("noname.json", "{\"models\":[\"m\"],\"baseline\":true}", "$.name", NULL);
    expect_bad("editsets.json", "{\"name\":\"x\",\"models\":[\"m\"],\"edit_sets\":[1,0]}", "$.edit_sets[1]", NULL);
    expect_bad("seeds.json", "{\"name\":\"x\",\"models\":[\"m\"],\"seeds\":[1,2,2]}", "$.seeds[2]: 2 is listed twice", NULL);
    expect_bad("seeds2.json", "{\"name\":\"x\",\"models\":[\"m\"],\"seeds\":-1}", "$.seeds: -1 is out of range",
               "0 = run once");
    expect_bad("seeds3.json", "{\"name\":\"x\",\"models\":[\"m\"],\"seeds\":\"3\"}", "$.seeds: expected a count N", NULL);
    expect_bad("seeds4.json", "{\"name\":\"x\",\"subgrids\":[{\"models\":[\"m\"],\"seeds\":[0]}]}",
               "$.subgrids[0].seeds[0]: expected a positive integer", NULL);
    expect_bad("seeds5.json", "{\"name\":\"x\",\"models\":[\"m\"],\"seeds\":[]}", "$.seeds: expected a count N", NULL);
    expect_bad("version.json", "{\"name\":\"x\",\"version\":2}", "$.version", NULL);
    expect_bad("notobj.json", "[1,2]", "$: expected an object", NULL);
    expect_bad("stage.json", "{\"name\":\"x\",\"models\":[\"m\"],\"compositions\":[[{\"method\":\"gptq\",\"params\":{\"bits\":16}}]]}",
               "$.compositions[0][0].params.bits", "2|3|4|8");
    /* a missing file names the file */
    grid *g = NULL;
    cis_err err = {0};
    char *p = xasprintf("%s/none.json", tmpdir);
    CHECK_EQ_INT(grid_load(p, 0, &g, &err), -1);
    CHECK(strstr(err.msg, p) != NULL);
    free(p);
}

/* run cmd_grid with stdout and stderr captured into files; returns the exit status */
static int run_cmd(int argc, char **argv, char **out, char **errout) {
    char *po = xasprintf("%s/out.txt", tmpdir), *pe = xasprintf("%s/err.txt", tmpdir);
    fflush(stdout); fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1); dup2(fe, 2);
    close(fo); close(fe);
    int rc = cmd_grid(argc, argv);
    fflush(stdout); fflush(stderr);
    dup2(so, 1); dup2(se, 2);
    close(so); close(se);
    *out = read_file(po, NULL, NULL);
    *errout = read_file(pe, NULL, NULL);
    free(po); free(pe);
    return rc;
}

static const char *last_line(char *s) {
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n') s[--n] = 0;
    char *nl = strrchr(s, '\n');
    return nl ? nl + 1 : s;
}

static void test_cmd_grid(void) {
    char *out, *er;
    char *a1[] = {"grid", "grids/paper.json", "--count"};
    CHECK_EQ_INT(run_cmd(3, a1, &out, &er), 0);
    CHECK(strstr(out, "llama3-8b\tbaseline\t[]\n") != NULL);
    CHECK(strstr(out, "llama3-8b\tcompress->edit\t[{\"method\":\"awq\",\"params\":{\"bits\":8,\"group_size\":128}},{\"method\":\"lora\"") != NULL);
    CHECK(strstr(out, "edit->compress") && strstr(out, "    66 compositions"));
    CHECK_EQ_STR(last_line(out), "311");
    free(out); free(er);
    char *a2[] = {"grid", "--quiet", "grids/paper-417.json", "--count"};
    CHECK_EQ_INT(run_cmd(4, a2, &out, &er), 0);
    CHECK_EQ_STR(last_line(out), "417");
    CHECK(strstr(out, "\t[") == NULL);
    free(out); free(er);
    char *a3[] = {"grid", "grids/paper.json", "--jobs"};
    CHECK_EQ_INT(run_cmd(3, a3, &out, &er), 0);
    CHECK_EQ_STR(last_line(out), "1688");
    free(out); free(er);
    char *bad = write_tmp("bad.json", "{\"name\":\"x\",\"models\":[\"m\"],\"categories\":{\"compress\":[{\"method\":\"gptq\",\"levels\":{\"bits\":[5]}}]}}");
    char *a4[] = {"grid", bad, "--count"};
    CHECK_EQ_INT(run_cmd(3, a4, &out, &er), 2);
    CHECK_MSG(strstr(er, bad) && strstr(er, "$.categories.compress[0].levels.bits[0]") && strstr(er, "2|3|4|8"), "%s", er);
    CHECK_EQ_STR(out, "");
    free(out); free(er); free(bad);
    char *a5[] = {"grid"};
    CHECK_EQ_INT(run_cmd(1, a5, &out, &er), 2);
    CHECK(strstr(er, "usage: cisweep grid FILE") != NULL);
    free(out); free(er);
    char *a6[] = {"grid", "grids/paper.json", "--frobnicate"};
    CHECK_EQ_INT(run_cmd(3, a6, &out, &er), 2);
    CHECK(strstr(er, "--frobnicate") && strstr(er, "usage:"));
    free(out); free(er);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_grid.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_paper_311);
    RUN(test_paper_417);
    RUN(test_paper_417_models_map);
    RUN(test_seeds);
    RUN(test_smoke);
    RUN(test_selftest_generator);
    RUN(test_all_shipped_grids_load);
    RUN(test_subgrids_and_edit_sets);
    RUN(test_bad_grids);
    RUN(test_recompress_key);
    RUN(test_cmd_grid);
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    return test_summary();
}
