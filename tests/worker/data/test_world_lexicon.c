/* test_world_lexicon.c - `cisweep world --lexicon distinct` (docs/world.md "Lexicon"): the hazard
 * pools' generated names share no character trigram with the general pools' names (and the shared
 * lexicon's do: the check can fail), their suffix and list words are no word of the general pools,
 * the blights attack crops of their own pool; the general world (every other pool, every fact, the
 * MMLU and zsRE files) is the shared lexicon's; the same seed gives byte-identical files, another
 * seed other hazard names; world.json records the lexicon only when it is not the default; bad
 * lexicon names are refused. */
#include "tests/testlib.h"
#include "worker/data/world.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256];

/* the words of a pool entry that the generator built from syllables: every word of the name but
 * the fixed suffix words (upper-cased ones like "Guild" and lower-case ones like "beetle") and the
 * language names' "ic" ending */
static const char *SUFFIX_WORDS[] = {"guild", "company", "works", "house", "silk", "salt", "glass", "wool", "spice", "tea",
                                     "beetle", "moth", "fly", "mite", "oil", "wash", "ash", "weevil", "aphid", "thrips",
                                     "leafhopper", "tincture", "fumigant", "drench", "powder", "cipher", "labs", "systems",
                                     "networks"};

static int is_suffix(const char *w) {
    for (size_t i = 0; i < sizeof SUFFIX_WORDS / sizeof SUFFIX_WORDS[0]; i++)
        if (!strcmp(w, SUFFIX_WORDS[i])) return 1;
    return 0;
}

static int generated_pool(int p) { return p < WP_OCCUPATION && p != WP_PORT; }
static int general_pool(int p) { return !world_hazard_pool(p); }

/* the lower-cased trigrams of the generated words of pool p, appended to *set (3 chars + NUL each) */
typedef struct tri { char (*v)[4]; int n, cap; } tri;
static void tri_add(tri *t, const char *s) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i], s)) return;
    if (t->n == t->cap) { t->cap = t->cap ? 2 * t->cap : 1024; t->v = xrealloc(t->v, (size_t)t->cap * sizeof *t->v); }
    memcpy(t->v[t->n++], s, 4);
}
static int tri_has(const tri *t, const char *s) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i], s)) return 1;
    return 0;
}
static void pool_trigrams(const world *w, int p, tri *t) {
    for (int i = 0; i < w->pools[p].n; i++) {
        char *name = xstrdup(w->pools[p].v[i]);
        for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
        char *save = NULL;
        for (char *word = strtok_r(name, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
            if (is_suffix(word)) continue;
            size_t n = strlen(word);
            if (p == WP_LANGUAGE && n > 2 && !strcmp(word + n - 2, "ic")) word[n -= 2] = 0;
            for (size_t k = 0; k + 3 <= n; k++) {
                char g[4] = {word[k], word[k + 1], word[k + 2], 0};
                tri_add(t, g);
            }
        }
        free(name);
    }
}

/* how many trigrams of the hazard pools' names are also trigrams of the general pools' names */
static int shared_trigrams(const world *w) {
    tri gen = {0}, haz = {0};
    for (int p = 0; p < WP_COUNT; p++) {
        if (!generated_pool(p) && p != WP_CROP) continue;
        pool_trigrams(w, p, general_pool(p) ? &gen : &haz);
    }
    int n = 0;
    for (int i = 0; i < haz.n; i++) n += tri_has(&gen, haz.v[i]);
    CHECK(gen.n > 100 && haz.n > 50);
    free(gen.v);
    free(haz.v);
    return n;
}

/* whether word (lower case) is a whole word of some entry of a general pool (names and fixed lists) */
static int general_word(const world *w, const char *word) {
    for (int p = 0; p < WP_COUNT; p++) {
        if (!general_pool(p)) continue;
        for (int i = 0; i < w->pools[p].n; i++) {
            char *name = xstrdup(w->pools[p].v[i]), *save = NULL;
            for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
            int hit = 0;
            for (char *x = strtok_r(name, " ", &save); x && !hit; x = strtok_r(NULL, " ", &save)) hit = !strcmp(x, word);
            free(name);
            if (hit) return 1;
        }
    }
    return 0;
}

static void test_disjoint_inventories(void) {
    static const uint64_t SEEDS[] = {1234, 7};
    for (int s = 0; s < 2; s++) {
        world ws, wd;
        cis_err err = {0};
        CHECK_EQ_INT(world_build_lex(&ws, SEEDS[s], "small", WL_SHARED, &err), 0);
        CHECK_EQ_INT(world_build_lex(&wd, SEEDS[s], "small", WL_DISTINCT, &err), 0);
        /* the shared lexicon's hazard names do share trigrams with the general ones (the check bites) */
        int ns = shared_trigrams(&ws), nd = shared_trigrams(&wd);
        CHECK_MSG(ns > 20, "shared lexicon: %d shared trigrams", ns);
        CHECK_MSG(nd == 0, "distinct lexicon, seed %llu: %d hazard trigrams are also general ones", (unsigned long long)SEEDS[s], nd);
        /* every word of every hazard entry (suffixes, symptoms, seasons) is no word of a general pool */
        for (int p = 0; p < WP_COUNT; p++) {
            if (!world_hazard_pool(p) || p == WP_PORT) continue;
            CHECK_MSG(wd.pools[p].n > 0, "pool %s empty", world_pool_name(p));
            for (int i = 0; i < wd.pools[p].n; i++) {
                char *name = xstrdup(wd.pools[p].v[i]), *save = NULL;
                for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
                for (char *x = strtok_r(name, " ", &save); x; x = strtok_r(NULL, " ", &save))
                    if (strcmp(x, "the")) CHECK_MSG(!general_word(&wd, x), "%s entry \"%s\": \"%s\" is a general word", world_pool_name(p), wd.pools[p].v[i], x);
                free(name);
            }
        }
        /* the shared lexicon's hazard words include general ones ("salt" remedies, "yellow leaves") */
        CHECK(general_word(&ws, "salt") && general_word(&ws, "yellow"));
        /* the blights attack crops of their own pool in the distinct lexicon, flora plants in the shared one */
        int host = -1;
        for (int k = 0; k < WORLD_NRELS; k++)
            if (!strcmp(WORLD_RELS[k].name, "host")) host = k;
        CHECK(host >= 0);
        CHECK_EQ_INT(world_rel_obj(&ws, host), WP_PLANT);
        CHECK_EQ_INT(world_rel_obj(&wd, host), WP_CROP);
        CHECK_EQ_INT(ws.pools[WP_CROP].n, 0);
        CHECK_EQ_INT(wd.pools[WP_CROP].n, ws.pools[WP_PLANT].n);
        /* the general world is the shared lexicon's: every general pool, every fact */
        for (int p = 0; p < WP_COUNT; p++) {
            if (world_hazard_pool(p)) continue;
            CHECK_EQ_INT(wd.pools[p].n, ws.pools[p].n);
            for (int i = 0; i < wd.pools[p].n && i < ws.pools[p].n; i++) CHECK_EQ_STR(wd.pools[p].v[i], ws.pools[p].v[i]);
        }
        CHECK_EQ_INT(wd.nfacts, ws.nfacts);
        int same = 1;
        for (int i = 0; i < wd.nfacts && i < ws.nfacts; i++)
            same &= wd.facts[i].rel == ws.facts[i].rel && wd.facts[i].subj == ws.facts[i].subj && wd.facts[i].obj == ws.facts[i].obj;
        CHECK(same);
        /* and the hazard names did change */
        CHECK(strcmp(wd.pools[WP_BLIGHT].v[0], ws.pools[WP_BLIGHT].v[0]) != 0);
        world_clear(&ws);
        world_clear(&wd);
    }
}

static json_t *manifest(const char *dir) {
    char *p = xasprintf("%s/world.json", dir);
    json_error_t je;
    json_t *m = json_load_file(p, 0, &je);
    if (!m) fprintf(stderr, "  %s: %s\n", p, je.text);
    free(p);
    return m;
}

static const char *sha(json_t *m, const char *rel) {
    return json_string_value(json_object_get(json_object_get(json_object_get(m, "files"), rel), "sha256"));
}

static void test_determinism(void) {
    char *a = xasprintf("%s/a", g_tmp), *b = xasprintf("%s/b", g_tmp), *c = xasprintf("%s/c", g_tmp), *s = xasprintf("%s/s", g_tmp);
    wstats st;
    cis_err err = {0};
    CHECK_EQ_INT(world_generate_lex(a, 1234, "small", WL_DISTINCT, &st, &err), 0);
    CHECK_EQ_INT(world_generate_lex(b, 1234, "small", WL_DISTINCT, &st, &err), 0);
    CHECK_EQ_INT(world_generate_lex(c, 99, "small", WL_DISTINCT, &st, &err), 0);
    CHECK_EQ_INT(world_generate(s, 1234, "small", &st, &err), 0);
    json_t *ma = manifest(a), *mb = manifest(b), *mc = manifest(c), *ms = manifest(s);
    CHECK(ma && mb && mc && ms);
    if (ma && mb && mc && ms) {
        CHECK(json_equal(json_object_get(ma, "files"), json_object_get(mb, "files")));
        CHECK_EQ_STR(json_string_value(json_object_get(ma, "lexicon")), "distinct");
        CHECK(json_object_get(ms, "lexicon") == NULL);  /* a default world's manifest is as before */
        CHECK(strcmp(sha(ma, "wmdp/wmdp-bio.json"), sha(mc, "wmdp/wmdp-bio.json")) != 0);
        /* the general world's evaluation files are the shared lexicon's, the hazard ones are not */
        static const char *SAME[] = {"zsre/zsre_mend_train.json", "zsre/edit_sets.json", "mmlu/data/test/flora_test.csv",
                                     "mmlu/data/test/world_geography_test.csv", "mmlu/data/dev/trade_dev.csv"};
        static const char *DIFF[] = {"wmdp/wmdp-bio.json", "wmdp/wmdp-cyber.json", "wmdp/bio-forget-corpus.jsonl",
                                     "wmdp/cyber-forget-corpus.jsonl", "corpus/pretrain.jsonl"};
        for (int i = 0; i < 5; i++) {
            CHECK_MSG(sha(ma, SAME[i]) && !strcmp(sha(ma, SAME[i]), sha(ms, SAME[i])), "%s differs from the shared lexicon's", SAME[i]);
            CHECK_MSG(sha(ma, DIFF[i]) && strcmp(sha(ma, DIFF[i]), sha(ms, DIFF[i])), "%s is the shared lexicon's", DIFF[i]);
        }
        /* no plant (an MMLU flora entity) is named in the distinct forget corpus; in the shared one some are */
        world w;
        CHECK_EQ_INT(world_build(&w, 1234, "small", &err), 0);
        char *pa = xasprintf("%s/wmdp/bio-forget-corpus.jsonl", a), *ps = xasprintf("%s/wmdp/bio-forget-corpus.jsonl", s);
        size_t la = 0, ls = 0;
        char *ta = read_file(pa, &la, &err), *ts = read_file(ps, &ls, &err);
        CHECK(ta && ts);
        int hits_a = 0, hits_s = 0;
        for (int i = 0; ta && ts && i < w.pools[WP_PLANT].n; i++) {
            char *word = xasprintf(" %s", w.pools[WP_PLANT].v[i]);
            hits_a += strstr(ta, word) != NULL;
            hits_s += strstr(ts, word) != NULL;
            free(word);
        }
        CHECK_MSG(hits_a == 0, "%d plant names in the distinct bio forget corpus", hits_a);
        CHECK_MSG(hits_s > 5, "only %d plant names in the shared bio forget corpus", hits_s);
        free(ta); free(ts); free(pa); free(ps);
        world_clear(&w);
    }
    json_decref(ma); json_decref(mb); json_decref(mc); json_decref(ms);
    free(a); free(b); free(c); free(s);
}

static void test_bad_lexicon(void) {
    CHECK_EQ_INT(world_lexicon_parse("shared"), WL_SHARED);
    CHECK_EQ_INT(world_lexicon_parse("distinct"), WL_DISTINCT);
    CHECK_EQ_INT(world_lexicon_parse("Distinct"), -1);
    CHECK_EQ_INT(world_lexicon_parse(NULL), -1);
    world w;
    cis_err err = {0};
    CHECK_EQ_INT(world_build_lex(&w, 1, "small", 7, &err), -1);
    CHECK(strstr(err.msg, "lexicon") != NULL);
    char *out = xasprintf("%s/bad", g_tmp);
    char *av[] = {"world", "--out", out, "--lexicon", "hazard", NULL};
    CHECK_EQ_INT(cmd_world(5, av), 2);
    CHECK(access(out, F_OK) != 0);  /* nothing written */
    free(out);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/cisweep_lexicon_XXXXXX");
    if (!mkdtemp(g_tmp)) { perror("mkdtemp"); return 1; }
    RUN(test_disjoint_inventories);
    RUN(test_determinism);
    RUN(test_bad_lexicon);
    char *cmd = xasprintf("rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    free(cmd);
    return test_summary();
}
