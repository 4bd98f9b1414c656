/* cmd_overlap.c - `cisweep-worker overlap MODEL_DIR --data DIR`: how much the unlearning forget
 * corpora share their tokens with the MMLU items and with the WMDP items (docs/unlearning.md,
 * "Lexical overlap"). The texts are the ones the methods and the evaluator read: the forget corpora
 * and retain rows through unl_load_forget / unl_load_retain (RMU's min_len 0), the MMLU test CSVs
 * and the WMDP JSON through the real-format loaders; tokens are MODEL_DIR/tokenizer.json's.
 *
 * An item's content tokens are its question's (as the prompt has it, at a line start) and its four
 * options' (each with the leading space of "A. <option>"); the prompt's fixed header and "Answer:"
 * are the same for every item and are left out. For each item set X (mmlu, wmdp_bio, wmdp_cyber)
 * and each part (all content, options only) it prints, as "key: value" lines:
 *   <X>.<part>.types            distinct token ids
 *   <X>.<part>.types_in_forget  share of those ids that occur in the forget corpora (bio + cyber)
 *   <X>.<part>.occ_in_forget    share of the token occurrences whose id occurs in the forget corpora
 *   <X>.<part>.occ_forget_only  share of the occurrences whose id occurs in the forget corpora and
 *                               not in the retain text (where forgetting and retaining do not pull
 *                               the same token two ways)
 *   <X>.<part>.forget_occ_share share of the forget corpora's token occurrences whose id is one of X's
 *   <X>.<part>.word_types, word_types_in_forget, word_occ_in_forget: the same on words (maximal runs
 *                               of letters and digits, lower-cased) instead of token ids: a 2,048-token
 *                               BPE splits rare names into letters and pairs that every name shares
 * Errors (no tokenizer, a missing or malformed data file) name the file and exit with status 2. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/data/loaders.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/unlearn.h"

int cmd_overlap(int argc, char **argv);

static void overlap_usage(FILE *f) {
    fprintf(f, "usage: cisweep-worker overlap MODEL_DIR --data DIR\n"
               "  MODEL_DIR holds tokenizer.json; DIR is a `cisweep world` directory (or the real data in its layout:\n"
               "  wmdp/*-forget-corpus.jsonl, wmdp/wmdp-{bio,cyber}.json, mmlu/data/test/*.csv, wikitext/wiki.test.raw).\n");
}

/* per token id: occurrence counts */
typedef struct tcount { int64_t *c; int32_t v; int64_t total; } tcount;

static int count_text(const tokenizer *tok, const char *s, size_t len, tcount *tc, cis_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, s, len, false, &ids, &n, err)) return -1;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < tc->v) { tc->c[ids[i]]++; tc->total++; }
    free(ids);
    return 0;
}

static int count_docs(const tokenizer *tok, const text_docs *d, tcount *tc, cis_err *err) {
    for (int i = 0; i < d->n; i++)
        if (count_text(tok, d->text[i], d->len[i], tc, err)) return -1;
    return 0;
}

/* words: a sorted, de-duplicated list of lower-cased words (the forget corpora's) */
typedef struct wordset { char **v; int n, cap; } wordset;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* call fn on each lower-cased word of s[0..len) */
static void each_word(const char *s, size_t len, void (*fn)(void *ctx, const char *w), void *ctx) {
    char buf[128];
    size_t i = 0;
    while (i < len) {
        while (i < len && !isalnum((unsigned char)s[i])) i++;
        size_t n = 0;
        while (i < len && isalnum((unsigned char)s[i])) {
            if (n + 1 < sizeof buf) buf[n++] = (char)tolower((unsigned char)s[i]);
            i++;
        }
        if (n) { buf[n] = 0; fn(ctx, buf); }
    }
}

static void wordset_add(void *ctx, const char *w) {
    wordset *ws = ctx;
    if (ws->n == ws->cap) { ws->cap = ws->cap ? 2 * ws->cap : 4096; ws->v = xrealloc(ws->v, (size_t)ws->cap * sizeof(char *)); }
    ws->v[ws->n++] = xstrdup(w);
}

static void wordset_finish(wordset *ws) {
    qsort(ws->v, (size_t)ws->n, sizeof(char *), cmp_str);
    int k = 0;
    for (int i = 0; i < ws->n; i++) {
        if (k && !strcmp(ws->v[k - 1], ws->v[i])) { free(ws->v[i]); continue; }
        ws->v[k++] = ws->v[i];
    }
    ws->n = k;
}

static int wordset_has(const wordset *ws, const char *w) { return ws->n && bsearch(&w, ws->v, (size_t)ws->n, sizeof(char *), cmp_str) != NULL; }

static void wordset_clear(wordset *ws) {
    for (int i = 0; i < ws->n; i++) free(ws->v[i]);
    free(ws->v);
    memset(ws, 0, sizeof *ws);
}

/* the words of X: its list (all occurrences) checked against the forget words at the end */
static void items_words(const mc_task *t, int nt, int part, wordset *x) {
    for (int k = 0; k < nt; k++)
        for (int i = 0; i < t[k].n; i++) {
            const mc_question *q = &t[k].q[i];
            if (part == 0) each_word(q->question, strlen(q->question), wordset_add, x);
            for (int c = 0; c < 4; c++) each_word(q->choices[c], strlen(q->choices[c]), wordset_add, x);
        }
}

static void report_words(const char *name, const char *part, wordset *x, const wordset *f) {
    int occ = x->n, occ_f = 0;
    for (int i = 0; i < x->n; i++) occ_f += wordset_has(f, x->v[i]);
    wordset_finish(x);
    int types_f = 0;
    for (int i = 0; i < x->n; i++) types_f += wordset_has(f, x->v[i]);
    printf("%s.%s.word_types: %d\n", name, part, x->n);
    printf("%s.%s.word_types_in_forget: %.4f\n", name, part, x->n ? (double)types_f / x->n : 0.0);
    printf("%s.%s.word_occ_in_forget: %.4f\n", name, part, occ ? (double)occ_f / occ : 0.0);
}

/* the content tokens of a set of items: part 0 = question + options, part 1 = options only */
static int count_items(const tokenizer *tok, const mc_task *t, int nt, int part, tcount *tc, cis_err *err) {
    for (int k = 0; k < nt; k++)
        for (int i = 0; i < t[k].n; i++) {
            const mc_question *q = &t[k].q[i];
            if (part == 0 && count_text(tok, q->question, strlen(q->question), tc, err)) return -1;
            for (int c = 0; c < 4; c++) {
                char *o = xasprintf(" %s", q->choices[c]);
                int rc = count_text(tok, o, strlen(o), tc, err);
                free(o);
                if (rc) return -1;
            }
        }
    return 0;
}

static void report(const char *name, const char *part, const tcount *x, const tcount *f, const tcount *r) {
    int64_t types = 0, types_f = 0, occ_f = 0, occ_fo = 0, f_occ = 0;
    for (int32_t t = 0; t < x->v; t++) {
        if (!x->c[t]) continue;
        types++;
        f_occ += f->c[t];
        if (f->c[t]) { types_f++; occ_f += x->c[t]; if (!r->c[t]) occ_fo += x->c[t]; }
    }
    double occ = x->total ? (double)x->total : 1.0;
    printf("%s.%s.types: %lld\n", name, part, (long long)types);
    printf("%s.%s.types_in_forget: %.4f\n", name, part, types ? (double)types_f / (double)types : 0.0);
    printf("%s.%s.occ_in_forget: %.4f\n", name, part, (double)occ_f / occ);
    printf("%s.%s.occ_forget_only: %.4f\n", name, part, (double)occ_fo / occ);
    printf("%s.%s.forget_occ_share: %.4f\n", name, part, f->total ? (double)f_occ / (double)f->total : 0.0);
}

int cmd_overlap(int argc, char **argv) {
    const char *model = NULL, *data = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { overlap_usage(stdout); return 0; }
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else { fprintf(stderr, "cisweep-worker overlap: unknown or incomplete option \"%s\"\n", argv[i]); overlap_usage(stderr); return 2; }
    }
    if (!model || !data) { fprintf(stderr, "cisweep-worker overlap: MODEL_DIR and --data DIR are required\n"); overlap_usage(stderr); return 2; }
    cis_err err = {0};
    tokenizer *tok = NULL;
    char *tpath = xasprintf("%s/tokenizer.json", model);
    int rc = 2;
    text_docs forget[UNL_N_TOPICS] = {{0}}, retain = {0};
    mc_task *mmlu = NULL, wmdp[2] = {{0}};
    int nmmlu = 0;
    tcount f = {0}, r = {0}, x = {0};
    wordset fw = {0};
    if (tokenizer_load(tpath, &tok, &err)) { fprintf(stderr, "cisweep-worker overlap: %s: %s\n", tpath, err.msg); goto out; }
    int32_t v = tokenizer_vocab_size(tok);
    f = (tcount){xcalloc((size_t)v, sizeof(int64_t)), v, 0};
    r = (tcount){xcalloc((size_t)v, sizeof(int64_t)), v, 0};
    x = (tcount){xcalloc((size_t)v, sizeof(int64_t)), v, 0};
    for (int t = 0; t < UNL_N_TOPICS; t++)
        if (unl_load_forget(data, t, 0, &forget[t], &err) || count_docs(tok, &forget[t], &f, &err)) goto fail;
    for (int t = 0; t < UNL_N_TOPICS; t++)
        for (int i = 0; i < forget[t].n; i++) each_word(forget[t].text[i], forget[t].len[i], wordset_add, &fw);
    wordset_finish(&fw);
    if (unl_load_retain(data, 0, &retain, &err) || count_docs(tok, &retain, &r, &err)) goto fail;
    char *mdir = xasprintf("%s/mmlu", data);
    int mrc = mmlu_load_dir(mdir, "test", &mmlu, &nmmlu, &err);
    free(mdir);
    if (mrc) goto fail;
    static const char *WFILE[2] = {"wmdp-bio.json", "wmdp-cyber.json"}, *WNAME[2] = {"wmdp_bio", "wmdp_cyber"},
                      *WSUBJ[2] = {"biology", "cybersecurity"};
    for (int k = 0; k < 2; k++) {
        char *p = xasprintf("%s/wmdp/%s", data, WFILE[k]);
        int wrc = wmdp_load(p, WNAME[k], WSUBJ[k], &wmdp[k], &err);
        free(p);
        if (wrc) goto fail;
    }
    printf("tokenizer: %s (%d ids)\n", tpath, (int)v);
    printf("forget.tokens: %lld (bio %d + cyber %d documents)\n", (long long)f.total, forget[0].n, forget[1].n);
    printf("retain.tokens: %lld (%d rows)\n", (long long)r.total, retain.n);
    static const char *PART[2] = {"content", "options"};
    for (int set = 0; set < 3; set++)
        for (int part = 0; part < 2; part++) {
            memset(x.c, 0, (size_t)v * sizeof(int64_t));
            x.total = 0;
            const mc_task *t = set == 0 ? mmlu : &wmdp[set - 1];
            if (count_items(tok, t, set == 0 ? nmmlu : 1, part, &x, &err)) goto fail;
            report(set == 0 ? "mmlu" : WNAME[set - 1], PART[part], &x, &f, &r);
            wordset xw = {0};
            items_words(t, set == 0 ? nmmlu : 1, part, &xw);
            report_words(set == 0 ? "mmlu" : WNAME[set - 1], PART[part], &xw, &fw);
            wordset_clear(&xw);
        }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "cisweep-worker overlap: %s\n", err.msg);
out:
    for (int t = 0; t < UNL_N_TOPICS; t++) text_docs_clear(&forget[t]);
    text_docs_clear(&retain);
    mc_tasks_free(&mmlu, nmmlu);
    mc_task_clear(&wmdp[0]);
    mc_task_clear(&wmdp[1]);
    free(f.c); free(r.c); free(x.c);
    wordset_clear(&fw);
    tokenizer_free(tok);
    free(tpath);
    return rc;
}
