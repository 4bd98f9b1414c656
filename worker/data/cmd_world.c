/* cmd_world.c - `cisweep-worker world --out DIR [--seed S] [--scale small|default|large] [--lexicon L] [--mc-items M]`: writes
 * the synthetic world directory (docs/world.md) and prints what it wrote. */
#include "worker/data/world.h"

#include <stdio.h>
#include <string.h>

static void world_usage(FILE *f) {
    fprintf(f, "usage: cisweep-worker world --out DIR [--seed S (default 1234)] [--scale small|default|large]\n"
               "                            [--lexicon shared|distinct (default shared: docs/world.md \"Lexicon\")]\n"
               "                            [--mc-items test|practice (default test: docs/world.md \"Multiple choice\")]\n");
}

int cmd_world(int argc, char **argv) {
    const char *out = NULL, *scale = "default", *lexicon = "shared", *mc_items = "test";
    int64_t seed = 1234;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--out") && n) { out = n; i++; }
        else if (!strcmp(a, "--scale") && n) { scale = n; i++; }
        else if (!strcmp(a, "--lexicon") && n) { lexicon = n; i++; }
        else if (!strcmp(a, "--mc-items") && n) { mc_items = n; i++; }
        else if (!strcmp(a, "--seed") && n) {
            if (!parse_i64(n, &seed) || seed < 0) { fprintf(stderr, "cisweep-worker world: --seed expects an integer >= 0, got \"%s\"\n", n); return 2; }
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { world_usage(stdout); return 0; }
        else { fprintf(stderr, "cisweep-worker world: unknown or incomplete option \"%s\"\n", a); world_usage(stderr); return 2; }
    }
    if (!out) { fprintf(stderr, "cisweep-worker world: --out DIR is required\n"); world_usage(stderr); return 2; }
    if (strcmp(scale, "small") && strcmp(scale, "default") && strcmp(scale, "large")) {
        fprintf(stderr, "cisweep-worker world: --scale must be small, default or large, got \"%s\"\n", scale);
        return 2;
    }
    int lex = world_lexicon_parse(lexicon);
    if (lex < 0) {
        fprintf(stderr, "cisweep-worker world: --lexicon must be shared or distinct, got \"%s\"\n", lexicon);
        return 2;
    }
    int mci = wmc_items_parse(mc_items);
    if (mci < 0) {
        fprintf(stderr, "cisweep-worker world: --mc-items must be test or practice, got \"%s\"\n", mc_items);
        return 2;
    }
    wstats st;
    cis_err err = {0};
    if (world_generate_ex(out, (uint64_t)seed, scale, lex, mci, &st, &err)) { fprintf(stderr, "cisweep-worker world: %s\n", err.msg); return 1; }
    printf("world %s (seed %lld, scale %s, lexicon %s, MC items %s) in %.2f s, %zu bytes in all\n", out, (long long)seed,
           scale, world_lexicon_name(lex), wmc_items_name(mci), st.seconds, st.total_bytes);
    printf("  corpus/pretrain.jsonl     %d docs, %zu bytes (~%zu tokens)\n", st.pretrain_docs, st.pretrain_bytes, st.pretrain_bytes / 4);
    printf("  corpus/sft.jsonl          %d MC items (prompt + answer letter)\n", st.sft_items);
    printf("  zsre                      %d records, 10 edit sets of 50 + 500 QA\n", st.zsre);
    printf("  mmlu                      %d test + %d dev questions\n", st.mmlu_test, st.mmlu_dev);
    printf("  wmdp                      bio %d, cyber %d questions; forget corpora %d + %d docs\n", st.wmdp_bio, st.wmdp_cyber,
           st.bio_forget, st.cyber_forget);
    printf("  wikitext                  train %zu, valid %zu, test %zu bytes\n", st.wiki_bytes[0], st.wiki_bytes[1], st.wiki_bytes[2]);
    printf("  calibration               c4 %d docs, pile-val %d docs\n", st.c4_docs, st.pile_docs);
    printf("  manifest                  %s/world.json\n", out);
    return 0;
}
