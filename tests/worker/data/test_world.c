/* test_world.c - the synthetic world generator (`cisweep world`, small scale): determinism (same
 * seed -> same sha256 of every file, another seed -> different files), the manifest against the
 * files on disk, every file read back by the real-format loaders (worker/data/loaders.h), record
 * schemas and counts, MC items well-formed, no MC item in the pretraining text, every tested fact
 * * stated there, every MMLU test / WMDP item in corpus/sft.jsonl with the evaluator's exact prompt,
 * and edit_sets.json against the CPython shuffle (rng_py_permutation, tests/common/test_rng.c). */
#include "tests/testlib.h"
#include "worker/data/world.h"
#include "worker/data/loaders.h"
#include "worker/eval/eval.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256];
static char g_a[300], g_b[300], g_c[300];
static char *g_corpus;  /* all corpus texts joined by "\x01" */

static char *pjoin(const char *dir, const char *rel) { return xasprintf("%s/%s", dir, rel); }

static json_t *load_json(const char *dir, const char *rel) {
    char *p = pjoin(dir, rel);
    json_error_t je;
    json_t *v = json_load_file(p, 0, &je);
    if (!v) fprintf(stderr, "  %s: %s\n", p, je.text);
    free(p);
    return v;
}

static int gen(const char *dir, uint64_t seed) {
    wstats st;
    cis_err err = {0};
    int rc = world_generate(dir, seed, "small", &st, &err);
    if (rc) fprintf(stderr, "  world_generate: %s\n", err.msg);
    return rc;
}

static void test_determinism(void) {
    CHECK_EQ_INT(gen(g_a, 1234), 0);
    CHECK_EQ_INT(gen(g_b, 1234), 0);
    CHECK_EQ_INT(gen(g_c, 99), 0);
    json_t *ma = load_json(g_a, "world.json"), *mb = load_json(g_b, "world.json"), *mc = load_json(g_c, "world.json");
    CHECK(ma && mb && mc);
    if (!ma || !mb || !mc) return;
    CHECK_EQ_INT(json_integer_value(json_object_get(ma, "format")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(ma, "seed")), 1234);
    CHECK_EQ_STR(json_string_value(json_object_get(ma, "scale")), "small");
    json_t *fa = json_object_get(ma, "files"), *fb = json_object_get(mb, "files"), *fc = json_object_get(mc, "files");
    CHECK(json_object_size(fa) >= 20);
    CHECK(json_equal(fa, fb));
    const char *rel;
    json_t *e;
    int ndiff = 0;
    json_object_foreach(fa, rel, e) {
        /* the manifest checksum is the file's */
        char *p = pjoin(g_a, rel);
        size_t len = 0;
        cis_err err = {0};
        char *data = read_file(p, &len, &err);
        CHECK_MSG(data != NULL, "%s", rel);
        if (data) {
            char hex[65];
            sha256_hex(data, len, hex);
            CHECK_EQ_STR(hex, json_string_value(json_object_get(e, "sha256")));
            CHECK_EQ_INT(len, json_integer_value(json_object_get(e, "bytes")));
            CHECK_MSG(len > 0, "%s is empty", rel);
            free(data);
        }
        free(p);
        json_t *ec = json_object_get(fc, rel);
        CHECK_MSG(ec != NULL, "%s missing for seed 99", rel);
        if (ec && strcmp(json_string_value(json_object_get(e, "sha256")), json_string_value(json_object_get(ec, "sha256")))) ndiff++;
    }
    /* another seed changes every file but edit_sets.json (a function of the record count only) */
    CHECK_EQ_INT(ndiff, (int)json_object_size(fa) - 1);
    CHECK(json_equal(json_object_get(fa, "zsre/edit_sets.json"), json_object_get(fc, "zsre/edit_sets.json")));
    json_decref(ma); json_decref(mb); json_decref(mc);
}

static void test_sizes(void) {
    json_t *m = load_json(g_a, "world.json");
    if (!m) { CHECK(0); return; }
    json_t *s = json_object_get(m, "sizes");
    CHECK(json_integer_value(json_object_get(s, "zsre_records")) >= 1000);
    CHECK_EQ_INT(json_integer_value(json_object_get(s, "mmlu_subjects")), 8);
    CHECK_EQ_INT(json_integer_value(json_object_get(s, "mmlu_dev")), 40);
    CHECK(json_integer_value(json_object_get(s, "mmlu_test")) >= 8 * 40);
    CHECK(json_integer_value(json_object_get(s, "wmdp_bio")) >= 100);
    CHECK(json_integer_value(json_object_get(s, "wmdp_cyber")) >= 100);
    json_int_t pb = json_integer_value(json_object_get(s, "pretrain_bytes"));
    CHECK_MSG(pb > 300000 && pb < 1200000, "small corpus %lld bytes", (long long)pb);
    json_decref(m);
}

static void test_zsre(void) {
    char *p = pjoin(g_a, "zsre/zsre_mend_train.json"), *es = pjoin(g_a, "zsre/edit_sets.json");
    zsre_data d = {0};
    cis_err err = {0};
    CHECK_EQ_INT(zsre_load(p, &d, &err), 0);
    CHECK(d.n >= 1000);
    int nsubj = 0;
    for (int i = 0; i < d.n; i++) {
        zsre_record *r = &d.rec[i];
        CHECK_EQ_INT(r->n_answers, 1);
        CHECK(strcmp(r->alt, r->answers[0]) != 0);
        CHECK(strstr(r->src, r->subject) != NULL);
        CHECK(strstr(r->rephrase, r->subject) != NULL);
        CHECK(strcmp(r->src, r->rephrase) != 0);
        CHECK(str_starts(r->loc, "nq question: ") && strlen(r->loc) > 14);
        CHECK(strlen(r->loc_ans) > 0);
        nsubj += strstr(r->src, r->subject) != NULL;
    }
    CHECK_EQ_INT(nsubj, d.n);
    /* edit_sets.json = the seed-100 shuffle: each set from the file equals the computed one */
    int32_t *perm = xmalloc((size_t)d.n * sizeof(int32_t));
    rng_py_permutation(100, perm, d.n);
    for (int k = 0; k <= 10; k++) {
        int32_t *a = NULL, *b = NULL;
        int na = 0, nb = 0;
        CHECK_EQ_INT(zsre_split(es, d.n, k, 50, &a, &na, &err), 0);
        CHECK_EQ_INT(zsre_split(NULL, d.n, k, 50, &b, &nb, &err), 0);
        CHECK_EQ_INT(na, k ? 50 : 500);
        CHECK_EQ_INT(na, nb);
        for (int i = 0; i < na && i < nb; i++) CHECK_EQ_INT(a[i], b[i]);
        if (k == 1) for (int i = 0; i < na; i++) CHECK_EQ_INT(a[i], perm[i]);
        free(a); free(b);
    }
    free(perm);
    zsre_clear(&d);
    free(p); free(es);
}

static void check_task(const mc_task *t) {
    for (int i = 0; i < t->n; i++) {
        const mc_question *q = &t->q[i];
        CHECK(q->answer >= 0 && q->answer < 4);
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++) CHECK_MSG(strcmp(q->choices[a], q->choices[b]), "%s: %s", t->name, q->question);
    }
}

static void test_mc_files(void) {
    cis_err err = {0};
    char *dir = pjoin(g_a, "mmlu");
    mc_task *tt = NULL, *dv = NULL;
    int nt = 0, nd = 0;
    CHECK_EQ_INT(mmlu_load_dir(dir, "test", &tt, &nt, &err), 0);
    CHECK_EQ_INT(mmlu_load_dir(dir, "dev", &dv, &nd, &err), 0);
    CHECK_EQ_INT(nt, 8);
    CHECK_EQ_INT(nd, 8);
    int counts[4] = {0};
    for (int i = 0; i < nt; i++) {
        CHECK(tt[i].n >= 40 && tt[i].n <= 80);
        check_task(&tt[i]);
        for (int k = 0; k < tt[i].n; k++) counts[tt[i].q[k].answer]++;
    }
    for (int i = 0; i < nd; i++) { CHECK_EQ_INT(dv[i].n, 5); check_task(&dv[i]); }
    for (int c = 0; c < 4; c++) CHECK_MSG(counts[c] > 50, "answer letter %c used %d times", 'A' + c, counts[c]);
    mc_tasks_free(&tt, nt);
    mc_tasks_free(&dv, nd);
    free(dir);
    static const char *W[2][3] = {{"wmdp/wmdp-bio.json", "wmdp-bio", "biology"}, {"wmdp/wmdp-cyber.json", "wmdp-cyber", "cybersecurity"}};
    for (int k = 0; k < 2; k++) {
        mc_task t = {0};
        char *p = pjoin(g_a, W[k][0]);
        CHECK_EQ_INT(wmdp_load(p, W[k][1], W[k][2], &t, &err), 0);
        CHECK(t.n >= 100 && t.n <= 200);
        check_task(&t);
        mc_task_clear(&t);
        free(p);
    }
}

static void test_text_files(void) {
    cis_err err = {0};
    text_docs d = {0};
    char *p = pjoin(g_a, "c4/c4-train.00000-of-01024.json.gz");
    CHECK_EQ_INT(c4_load(p, 0, &d, &err), 0);
    CHECK_EQ_INT(d.n, 300);
    text_docs_clear(&d); free(p);
    text_docs z = {0}, j = {0};
    p = pjoin(g_a, "pile/val.jsonl.zst");
    CHECK_EQ_INT(pile_load(p, 0, &z, &err), 0);
    free(p);
    p = pjoin(g_a, "pile/val.jsonl");
    CHECK_EQ_INT(pile_load(p, 0, &j, &err), 0);
    free(p);
    CHECK_EQ_INT(z.n, 200);
    CHECK_EQ_INT(z.n, j.n);
    for (int i = 0; i < z.n && i < j.n; i++) CHECK(!strcmp(z.text[i], j.text[i]));
    text_docs_clear(&z); text_docs_clear(&j);
    p = pjoin(g_a, "wmdp/bio-forget-corpus.jsonl");
    CHECK_EQ_INT(jsonl_text_load(p, "abstract", 0, &d, &err), 0);
    CHECK(d.n >= 40);
    text_docs_clear(&d); free(p);
    p = pjoin(g_a, "wmdp/cyber-forget-corpus.jsonl");
    CHECK_EQ_INT(jsonl_text_load(p, "text", 0, &d, &err), 0);
    CHECK(d.n >= 40);
    text_docs_clear(&d); free(p);
    static const char *WK[] = {"wikitext/wiki.train.raw", "wikitext/wiki.valid.raw", "wikitext/wiki.test.raw"};
    for (int k = 0; k < 3; k++) {
        char *txt = NULL;
        size_t len = 0;
        p = pjoin(g_a, WK[k]);
        CHECK_EQ_INT(wikitext_load(p, &txt, &len, &err), 0);
        CHECK(len > 10000);
        CHECK(txt && strstr(txt, " = = ") != NULL);
        free(txt);
        size_t rawlen = 0;
        char *raw = read_file(p, &rawlen, &err);
        CHECK(raw && str_starts(raw, " \n = "));
        free(raw);
        free(p);
    }
}

/* load the corpus into g_corpus ("\x01"-separated documents) */
static void test_corpus_loads(void) {
    cis_err err = {0};
    text_docs d = {0};
    char *p = pjoin(g_a, "corpus/pretrain.jsonl");
    CHECK_EQ_INT(jsonl_text_load(p, "text", 0, &d, &err), 0);
    free(p);
    CHECK(d.n > 2000);
    wbuf b = {0};
    wbuf_put(&b, "\x01");
    for (int i = 0; i < d.n; i++) { wbuf_put(&b, d.text[i]); wbuf_put(&b, "\x01"); }
    g_corpus = b.p;
    text_docs_clear(&d);
}

/* corpus/sft.jsonl as "prompt\x02completion\x01" records (g_sft) */
static char *g_sft;
static int g_nsft;

/* the MC items never appear in the pretraining text; each tested fact appears there as a QA line
 * (question + " " + answer); each MMLU test and WMDP item is an SFT item whose prompt is byte for
 * byte the evaluator's (mc_prompt) and whose completion is " <gold letter>" (dev items are not) */
static void check_items(const mc_task *t, int want_sft, int *verbatim, int *unstated, int *sft_ok) {
    for (int i = 0; i < t->n; i++) {
        const mc_question *q = &t->q[i];
        wbuf b = {0};
        wbuf_printf(&b, "%s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:", q->question, q->choices[0], q->choices[1], q->choices[2], q->choices[3]);
        if (strstr(g_corpus, b.p)) (*verbatim)++;
        wbuf_clear(&b);
        wbuf_printf(&b, "%s %s", q->question, q->choices[q->answer]);
        if (!strstr(g_corpus, b.p)) (*unstated)++;
        wbuf_clear(&b);
        char *ctx = mc_prompt(q, t->subject);
        wbuf_printf(&b, "\x01%s\x02 %c\x01", ctx, 'A' + q->answer);
        if ((strstr(g_sft, b.p) != NULL) == want_sft) (*sft_ok)++;
        wbuf_clear(&b);
        free(ctx);
    }
}

static void test_corpus_coverage(void) {
    if (!g_corpus) { CHECK(0); return; }
    cis_err err = {0};
    /* sft.jsonl: exactly {"prompt","completion"} per line */
    char *sp = pjoin(g_a, "corpus/sft.jsonl");
    size_t sn;
    char *sd = read_file(sp, &sn, &err);
    CHECK(sd != NULL);
    wbuf sb = {0};
    wbuf_put(&sb, "\x01");
    for (char *line = sd ? strtok(sd, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECK(o && json_object_size(o) == 2 && json_is_string(json_object_get(o, "prompt")) &&
              json_is_string(json_object_get(o, "completion")));
        if (!o) continue;
        wbuf_printf(&sb, "%s\x02%s\x01", json_string_value(json_object_get(o, "prompt")), json_string_value(json_object_get(o, "completion")));
        g_nsft++;
        json_decref(o);
    }
    free(sd); free(sp);
    g_sft = sb.p;
    int verbatim = 0, unstated = 0, sft_ok = 0, total = 0;
    char *dir = pjoin(g_a, "mmlu");
    static const char *SPLITS[] = {"test", "dev"};
    for (int s = 0; s < 2; s++) {
        mc_task *tt = NULL;
        int nt = 0;
        CHECK_EQ_INT(mmlu_load_dir(dir, SPLITS[s], &tt, &nt, &err), 0);
        for (int i = 0; i < nt; i++) { check_items(&tt[i], s == 0, &verbatim, &unstated, &sft_ok); total += tt[i].n; }
        mc_tasks_free(&tt, nt);
    }
    free(dir);
    static const char *W[2] = {"wmdp/wmdp-bio.json", "wmdp/wmdp-cyber.json"};
    static const char *WS[2] = {"biology", "cybersecurity"};
    for (int k = 0; k < 2; k++) {
        mc_task t = {0};
        char *p = pjoin(g_a, W[k]);
        CHECK_EQ_INT(wmdp_load(p, W[k], WS[k], &t, &err), 0);
        check_items(&t, 1, &verbatim, &unstated, &sft_ok);
        total += t.n;
        mc_task_clear(&t);
        free(p);
    }
    CHECK_EQ_INT(sft_ok, total);
    /* every SFT item is a test item: 399 MMLU test + 400 WMDP at every scale */
    CHECK_EQ_INT(g_nsft, 799);
    CHECK(total > 700);
    CHECK_EQ_INT(verbatim, 0);
    CHECK_EQ_INT(unstated, 0);
    /* zsRE: "src answer", "rephrase answer" and the loc question with its answer are all in the corpus */
    zsre_data d = {0};
    char *p = pjoin(g_a, "zsre/zsre_mend_train.json");
    CHECK_EQ_INT(zsre_load(p, &d, &err), 0);
    free(p);
    int miss = 0;
    for (int i = 0; i < d.n; i++) {
        char *a = xasprintf("%s %s\n", d.rec[i].src, d.rec[i].answers[0]), *b = xasprintf("%s %s\n", d.rec[i].rephrase, d.rec[i].answers[0]);
        char *c = xasprintf("%s %s", d.rec[i].loc + 13, d.rec[i].loc_ans);
        /* a QA line ends with "\n" or with the document end ("\x01") */
        size_t la = strlen(a), lb = strlen(b);
        int ha = strstr(g_corpus, a) != NULL, hb = strstr(g_corpus, b) != NULL;
        if (!ha) { a[la - 1] = '\x01'; ha = strstr(g_corpus, a) != NULL; }
        if (!hb) { b[lb - 1] = '\x01'; hb = strstr(g_corpus, b) != NULL; }
        miss += !ha + !hb + !strstr(g_corpus, c);
        free(a); free(b); free(c);
    }
    CHECK_EQ_INT(miss, 0);
    zsre_clear(&d);
}

/* wiki.test.raw articles are held out: (almost) none appears verbatim in the corpus */
static void test_wiki_held_out(void) {
    if (!g_corpus) { CHECK(0); return; }
    cis_err err = {0};
    char *p = pjoin(g_a, "wikitext/wiki.test.raw");
    char *raw = read_file(p, NULL, &err);
    free(p);
    if (!raw) { CHECK(0); return; }
    int n = 0, seen = 0;
    for (char *s = strstr(raw, "\n = "); s; ) {
        char *next = strstr(s + 1, "\n = ");
        while (next && next[4] == '=') next = strstr(next + 1, "\n = ");
        if (next) *next = 0;
        n++;
        seen += strstr(g_corpus, s + 1) != NULL;
        if (next) *next = '\n';
        s = next;
    }
    CHECK(n > 300);
    CHECK_MSG(seen * 10 < n, "%d of %d test articles are in the corpus", seen, n);
    free(raw);
}

static void test_bad_args(void) {
    wstats st;
    cis_err err = {0};
    CHECK_EQ_INT(world_generate(g_c, 1, "huge", &st, &err), -1);
    CHECK(strstr(err.msg, "huge") != NULL);
    char *av1[] = {"world", "--scale", "huge", "--out", g_c};
    CHECK_EQ_INT(cmd_world(5, av1), 2);
    char *av2[] = {"world", "--seed", "-3", "--out", g_c};
    CHECK_EQ_INT(cmd_world(5, av2), 2);
    char *av3[] = {"world", "--seed", "5"};
    CHECK_EQ_INT(cmd_world(3, av3), 2);
    char *bad = xasprintf("%s/file", g_tmp);
    CHECK_EQ_INT(write_file_atomic(bad, "x", 1, &err), 0);
    char *under = xasprintf("%s/sub", bad);  /* a directory below a regular file cannot be made */
    CHECK_EQ_INT(world_generate(under, 1, "small", &st, &err), -1);
    free(under); free(bad);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/cisweep_world_XXXXXX");
    if (!mkdtemp(g_tmp)) { perror("mkdtemp"); return 1; }
    snprintf(g_a, sizeof g_a, "%s/a", g_tmp);
    snprintf(g_b, sizeof g_b, "%s/b", g_tmp);
    snprintf(g_c, sizeof g_c, "%s/c", g_tmp);
    RUN(test_determinism);
    RUN(test_sizes);
    RUN(test_zsre);
    RUN(test_mc_files);
    RUN(test_text_files);
    RUN(test_corpus_loads);
    RUN(test_corpus_coverage);
    RUN(test_wiki_held_out);
    RUN(test_bad_args);
    free(g_corpus);
    free(g_sft);
    char *cmd = xasprintf("rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    free(cmd);
    return test_summary();
}
