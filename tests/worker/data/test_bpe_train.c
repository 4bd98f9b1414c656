/* test_bpe_train.c - the byte-level BPE trainer: merges on a tiny corpus against hand-computed
 * ones, determinism (any text order gives the same files), forced answer letters, special tokens,
 * and the written tokenizer loaded back by the engine's tokenizer.
 * Tool mode (for test_bpe_train.py): test_bpe_train train LINES_FILE OUT_DIR VOCAB
 * trains on each line of LINES_FILE as one text and saves the tokenizer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "worker/data/bpe_train.h"
#include "worker/engine/tokenizer.h"

static char tmpdir[256];

static bpe_trainer *train_texts(const char *const *texts, int n, int vocab, const char *const *forced, int rev) {
    bpe_trainer *t = bpe_trainer_new();
    cis_err err = {0};
    for (int i = 0; i < n; i++) {
        const char *s = texts[rev ? n - 1 - i : i];
        if (bpe_trainer_feed(t, s, strlen(s), &err)) { fprintf(stderr, "%s\n", err.msg); bpe_trainer_free(&t); return NULL; }
    }
    bpe_train_opts o = bpe_train_opts_default();
    o.vocab_size = vocab;
    o.forced = forced;
    if (bpe_trainer_train(t, &o, &err)) { fprintf(stderr, "%s\n", err.msg); bpe_trainer_free(&t); return NULL; }
    return t;
}

static void merge_str(const bpe_trainer *t, int i, char *out, size_t cap) {
    const char *l, *r; size_t ln, rn;
    if (bpe_trainer_merge(t, i, &l, &ln, &r, &rn)) { snprintf(out, cap, "?"); return; }
    snprintf(out, cap, "%.*s|%.*s", (int)ln, l, (int)rn, r);
}

/* "low low low lower newest newest": words "low" x1, " low" x2, " lower" x1, " newest" x2.
 * Pair counts: l-o 4, o-w 4 (tie -> smaller ids: l-o), then lo-w 4, then " "-low 3, then the
 * count-2 pairs by smallest (left id, right id): " "-n (32,110), e-s (101,115), e-w (101,119), then
 * " n"-ew (259,261) before es-t (260,116), then " new"-est; then only count-1 pairs remain
 * (min_frequency 2). */
static void test_hand_merges(void) {
    const char *texts[] = {"low low low lower newest newest"};
    bpe_trainer *t = train_texts(texts, 1, 1000, NULL, 0);
    CHECK(t != NULL);
    if (!t) return;
    const char *want[] = {"l|o", "lo|w", " |low", " |n", "e|s", "e|w", " n|ew", "es|t", " new|est"};
    CHECK_EQ_INT(bpe_trainer_n_merges(t), 9);
    for (int i = 0; i < 9 && i < bpe_trainer_n_merges(t); i++) {
        char got[64];
        merge_str(t, i, got, sizeof got);
        CHECK_EQ_STR(got, want[i]);
    }
    CHECK_EQ_INT(bpe_trainer_n_words(t), 4);
    CHECK_EQ_INT(bpe_trainer_vocab_size(t), 256 + 9 + 3);
    bpe_trainer_free(&t);
}

static void test_vocab_limit_and_forced(void) {
    const char *texts[] = {"low low low lower newest newest"};
    const char *forced[] = {" A", " B", NULL};
    /* 256 bytes + 2 forced + 3 learned + 3 specials */
    bpe_trainer *t = train_texts(texts, 1, 264, forced, 0);
    CHECK(t != NULL);
    if (!t) return;
    CHECK_EQ_INT(bpe_trainer_n_merges(t), 5);
    CHECK_EQ_INT(bpe_trainer_vocab_size(t), 264);
    char got[64];
    merge_str(t, 0, got, sizeof got); CHECK_EQ_STR(got, " |A");
    merge_str(t, 1, got, sizeof got); CHECK_EQ_STR(got, " |B");
    merge_str(t, 2, got, sizeof got); CHECK_EQ_STR(got, "l|o");
    merge_str(t, 4, got, sizeof got); CHECK_EQ_STR(got, " |low");
    bpe_trainer_free(&t);
    cis_err err = {0};
    bpe_trainer *u = bpe_trainer_new();
    bpe_train_opts o = bpe_train_opts_default();
    o.vocab_size = 100;
    CHECK(bpe_trainer_train(u, &o, &err) == -1);
    CHECK(strstr(err.msg, "vocab_size") != NULL);
    bpe_trainer_free(&u);
    u = bpe_trainer_new();
    CHECK(bpe_trainer_feed(u, "ok \xc3(", 5, &err) == -1);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    bpe_trainer_free(&u);
}

static const char *CORPUS[] = {
    "The capital of Veloria is Marth. Veloria's capital, Marth, lies on the river Osk.",
    "Question: What is the capital of Veloria?\nAnswer: Marth",
    "The following are multiple choice questions (with answers) about biology.\n\nWhich gene?\nA. xr-1\nB. xr-2\nC. xr-3\nD. xr-4\nAnswer: B",
    "In 1987 the company had 12345 employees and 42 offices; by 2003 it had 987.",
    "Tessa Quill was born in Dunmere in 1942. She worked as a potter.",
    "Café naïve résumé — unicode text with émigré words and 東京.",
};

static char *slurp(const char *path) {
    cis_err err = {0};
    size_t n;
    return read_file(path, &n, &err);
}

static void test_save_load_and_determinism(void) {
    int n = (int)(sizeof CORPUS / sizeof *CORPUS);
    bpe_train_opts d = bpe_train_opts_default();
    bpe_trainer *a = train_texts(CORPUS, n, 400, d.forced, 0);
    bpe_trainer *b = train_texts(CORPUS, n, 400, d.forced, 1);
    CHECK(a && b);
    if (!a || !b) { bpe_trainer_free(&a); bpe_trainer_free(&b); return; }
    char da[300], db[300];
    snprintf(da, sizeof da, "%s/a", tmpdir);
    snprintf(db, sizeof db, "%s/b", tmpdir);
    cis_err err = {0};
    CHECK_EQ_INT(bpe_trainer_save(a, da, 512, &err), 0);
    CHECK_EQ_INT(bpe_trainer_save(b, db, 512, &err), 0);
    char pa[400], pb[400];
    snprintf(pa, sizeof pa, "%s/tokenizer.json", da);
    snprintf(pb, sizeof pb, "%s/tokenizer.json", db);
    char *ja = slurp(pa), *jb = slurp(pb);
    CHECK(ja && jb && !strcmp(ja, jb));
    free(ja); free(jb);

    tokenizer *tok = NULL;
    CHECK_EQ_INT(tokenizer_load(da, &tok, &err), 0);
    if (!tok) { fprintf(stderr, "%s\n", err.msg); bpe_trainer_free(&a); bpe_trainer_free(&b); return; }
    int V = bpe_trainer_vocab_size(a);
    CHECK_EQ_INT(tokenizer_vocab_size(tok), V);
    CHECK_EQ_INT(tokenizer_bos_id(tok), V - 3);
    CHECK_EQ_INT(tokenizer_eos_id(tok), V - 2);
    CHECK_EQ_INT(tokenizer_pad_id(tok), V - 1);
    CHECK(tokenizer_is_special(tok, V - 3));
    /* answer letters and digits are single tokens */
    const char *single[] = {" A", " B", " C", " D", "0", "1", "5", "9"};
    for (int i = 0; i < 8; i++) {
        int32_t *ids; size_t k;
        CHECK_EQ_INT(tokenizer_encode(tok, single[i], strlen(single[i]), false, &ids, &k, &err), 0);
        CHECK_EQ_INT(k, 1);
        free(ids);
    }
    /* BOS is prepended; round trip of every corpus text; a frequent word is one token */
    for (int i = 0; i < n; i++) {
        int32_t *ids; size_t k;
        CHECK_EQ_INT(tokenizer_encode(tok, CORPUS[i], strlen(CORPUS[i]), true, &ids, &k, &err), 0);
        CHECK(k >= 2 && ids[0] == V - 3);
        char *s;
        tokenizer_decode(tok, ids, k, true, &s);
        CHECK_EQ_STR(s, CORPUS[i]);
        free(s); free(ids);
    }
    int32_t *ids; size_t k;
    CHECK_EQ_INT(tokenizer_encode(tok, " Veloria", 8, false, &ids, &k, &err), 0);
    CHECK_EQ_INT(k, 1);
    free(ids);
    tokenizer_free(tok);
    bpe_trainer_free(&a); bpe_trainer_free(&b);
}

static int tool(int argc, char **argv) {
    if (argc != 5 || strcmp(argv[1], "train")) { fprintf(stderr, "usage: %s train LINES_FILE OUT_DIR VOCAB\n", argv[0]); return 2; }
    cis_err err = {0};
    size_t len;
    char *all = read_file(argv[2], &len, &err);
    if (!all) { fprintf(stderr, "%s\n", err.msg); return 1; }
    bpe_trainer *t = bpe_trainer_new();
    for (size_t s = 0; s < len;) {
        size_t e = s;
        while (e < len && all[e] != '\n') e++;
        if (bpe_trainer_feed(t, all + s, e - s, &err)) { fprintf(stderr, "line at %zu: %s\n", s, err.msg); return 1; }
        s = e + 1;
    }
    bpe_train_opts o = bpe_train_opts_default();
    o.vocab_size = atoi(argv[4]);
    double t0 = mono_sec();
    if (bpe_trainer_train(t, &o, &err) || bpe_trainer_save(t, argv[3], 1024, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("{\"vocab_size\": %d, \"words\": %zu, \"seconds\": %.3f}\n", bpe_trainer_vocab_size(t), bpe_trainer_n_words(t), mono_sec() - t0);
    bpe_trainer_free(&t);
    free(all);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) return tool(argc, argv);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_bpe_train.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_hand_merges);
    RUN(test_vocab_limit_and_forced);
    RUN(test_save_load_and_determinism);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
