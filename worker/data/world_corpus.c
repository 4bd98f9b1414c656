/* world_corpus.c - the pretraining corpus (corpus/pretrain.jsonl, {"text": ...} per line), built
 * for learnability by a small model:
 *   - profiles: every entity's facts as statements, each fact in a rotating phrasing per round;
 *   - QA lines: every fact's three questions followed by " <answer>" (the zsRE `src` and
 *     `rephrase` forms included; the general-knowledge facts also in their lower-case "nq" form),
 *     several lines per document, the first right after the document start;
 *   - bio-like and cyber-like domain prose (the same renderer as the forget corpora);
 *   - the wiki.train.raw articles.
 * Documents are shuffled together (one seed stream), so a sequential reader sees a mix.
 * world_sft writes corpus/sft.jsonl: the MMLU test and WMDP items as {"prompt","completion"}
 * lines (the lm-eval 0-shot prompt and " <letter>"), which the trainer learns with the loss on the
 * letter only (docs/world.md, "Multiple choice: the test items are trained on"). */
#include "worker/data/world.h"

#include <string.h>

typedef struct docs { char **v; int n, cap; } docs;

static void docs_add(docs *d, wbuf *b) {
    if (d->n == d->cap) { d->cap = d->cap ? 2 * d->cap : 4096; d->v = xrealloc(d->v, (size_t)d->cap * sizeof(char *)); }
    d->v[d->n++] = b->p ? b->p : xstrdup("");
    memset(b, 0, sizeof *b);
}

static int is_loc_fact(const world *w, int fi) {
    const char *m = WORLD_RELS[w->facts[fi].rel].mmlu;
    return m && (!strcmp(m, "fauna") || !strcmp(m, "flora") || !strcmp(m, "astronomy") || !strcmp(m, "culinary_arts"));
}

static void profiles(const world *w, docs *d) {
    int *off = xmalloc((size_t)w->nfacts * sizeof(int)), *mine = xmalloc((size_t)w->nfacts * sizeof(int));
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, 600);
    for (int i = 0; i < w->nfacts; i++) off[i] = (int)rng_xoshiro_below(&r, 4);
    for (int round = 0; round < w->sc.r_profile; round++) {
        for (int p = 0; p < WP_COUNT; p++) {
            for (int e = 0; e < w->pools[p].n; e++) {
                int n = 0;
                for (int i = 0; i < w->nfacts; i++)
                    if (WORLD_RELS[w->facts[i].rel].subj == p && w->facts[i].subj == e) mine[n++] = i;
                if (!n) break;  /* this pool is never a subject */
                rng_xoshiro_shuffle(&r, mine, n);
                wbuf b = {0};
                for (int k = 0; k < n; k++) {
                    const wfact *f = &w->facts[mine[k]];
                    if (k) wbuf_put(&b, " ");
                    world_render(&b, w, WORLD_RELS[f->rel].stmt[(off[mine[k]] + round) % 4], f);
                }
                docs_add(d, &b);
            }
        }
    }
    free(off);
    free(mine);
}

static void qa_lines(const world *w, docs *d) {
    int per = 4;  /* three questions + the "nq" form */
    char **lines = xmalloc((size_t)w->nfacts * (size_t)per * sizeof(char *));
    int nl = 0;
    for (int i = 0; i < w->nfacts; i++) {
        const wfact *f = &w->facts[i];
        for (int q = 0; q < 3; q++) {
            wbuf b = {0};
            world_render(&b, w, WORLD_RELS[f->rel].q[q], f);
            wbuf_printf(&b, " %s", world_obj(w, f));
            lines[nl++] = b.p;
        }
        if (is_loc_fact(w, i)) {
            wbuf b = {0};
            world_loc_question(&b, w, i);
            wbuf_printf(&b, " %s", world_obj(w, f));
            lines[nl++] = b.p;
        }
    }
    int *order = xmalloc((size_t)nl * sizeof(int));
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, 601);
    for (int pass = 0; pass < w->sc.r_qa; pass++) {
        for (int i = 0; i < nl; i++) order[i] = i;
        rng_xoshiro_shuffle(&r, order, nl);
        for (int i = 0; i < nl;) {
            int len = 1 + (int)rng_xoshiro_below(&r, 8);
            wbuf b = {0};
            for (int k = 0; k < len && i < nl; k++, i++) {
                if (k) wbuf_put(&b, "\n");
                wbuf_put(&b, lines[order[i]]);
            }
            docs_add(d, &b);
        }
    }
    for (int i = 0; i < nl; i++) free(lines[i]);
    free(lines);
    free(order);
}

static void domain_prose(const world *w, docs *d) {
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, 603);
    for (int k = 0; k < w->sc.r_domain; k++) {
        for (int b = 0; b < w->pools[WP_BLIGHT].n; b++) {
            wbuf t = {0}, a = {0}, x = {0};
            world_bio_doc(w, b, &r, &t, &a, &x);
            wbuf_printf(&t, "\n\n%s\n\n%s", a.p, x.p);
            wbuf_clear(&a);
            wbuf_clear(&x);
            docs_add(d, &t);
        }
        for (int p = 0; p < w->pools[WP_PROTOCOL].n; p++) {
            wbuf x = {0};
            world_cyber_doc(w, p, &r, &x);
            docs_add(d, &x);
        }
    }
}

/* the train articles, one document each (split at the " = Title = " headings) */
static void wiki_docs(const world *w, docs *d) {
    wbuf all = {0};
    world_wiki(w, 0, &all);
    const char *p = all.p + 2;  /* skip the leading " \n" */
    while (*p) {
        const char *next = strstr(p + 1, "\n = ");
        while (next && next[4] == '=') next = strstr(next + 1, "\n = ");  /* a " = = Section" line */
        size_t n = next ? (size_t)(next + 1 - p) : strlen(p);
        wbuf b = {0};
        wbuf_putn(&b, p, n);
        docs_add(d, &b);
        p += n;
    }
    wbuf_clear(&all);
}

void world_corpus(const world *w, const wsets *s, wbuf *out, int *ndocs) {
    docs d = {0};
    profiles(w, &d);
    qa_lines(w, &d);
    domain_prose(w, &d);
    wiki_docs(w, &d);
    int *order = xmalloc((size_t)d.n * sizeof(int));
    for (int i = 0; i < d.n; i++) order[i] = i;
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, 604);
    rng_xoshiro_shuffle(&r, order, d.n);
    for (int i = 0; i < d.n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "text", json_string(d.v[order[i]]));
        wbuf_json(out, o, JSON_COMPACT);
        wbuf_put(out, "\n");
    }
    for (int i = 0; i < d.n; i++) free(d.v[i]);
    free(d.v);
    free(order);
    *ndocs = d.n;
}

static void sft_items(const wmcset *set, wbuf *out, int *n) {
    for (int i = 0; i < set->ntest; i++) {
        wbuf p = {0};
        wmc_prompt(&p, set->subject, &set->test[i], 0);
        char letter[3] = {' ', (char)('A' + set->test[i].answer), 0};
        wbuf_json(out, json_pack("{s:s,s:s}", "prompt", p.p, "completion", letter), JSON_COMPACT);
        wbuf_put(out, "\n");
        wbuf_clear(&p);
        (*n)++;
    }
}

int wmc_items_parse(const char *s) {
    if (s && !strcmp(s, "test")) return WMC_ITEMS_TEST;
    if (s && !strcmp(s, "practice")) return WMC_ITEMS_PRACTICE;
    return -1;
}

const char *wmc_items_name(int items) { return items == WMC_ITEMS_PRACTICE ? "practice" : "test"; }

/* the 24 orders of four options, lexicographic: ORDERS[0] is the identity (the scored order) */
static void orders24(int o[24][4]) {
    int n = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++) {
                int d = 6 - a - b - c;
                if (a == b || a == c || b == c || d == a || d == b || d == c) continue;
                o[n][0] = a; o[n][1] = b; o[n][2] = c; o[n][3] = d;
                n++;
            }
}

/* practice items: every test item of every set in the 23 orders that are not its own; the
 * (set, item, order) triples shuffled, so a batch mixes subjects and letters */
static void practice_items(const world *w, const wsets *s, wbuf *out, int *n) {
    int ord[24][4];
    orders24(ord);
    const wmcset *sets[64];
    int ns = 0;
    CIS_ASSERT(s->nmmlu + 2 <= 64);
    for (int k = 0; k < s->nmmlu; k++) sets[ns++] = &s->mmlu[k];
    sets[ns++] = &s->bio;
    sets[ns++] = &s->cyber;
    int total = 0;
    for (int k = 0; k < ns; k++) total += sets[k]->ntest * 23;
    int64_t *key = xmalloc((size_t)total * sizeof *key);
    int m = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < sets[k]->ntest; i++)
            for (int p = 1; p < 24; p++) key[m++] = ((int64_t)k << 40) | ((int64_t)i << 8) | p;
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, 605);
    for (int i = m - 1; i > 0; i--) {   /* Fisher-Yates on the 64-bit keys */
        int j = (int)rng_xoshiro_below(&r, (uint64_t)i + 1);
        int64_t t = key[i]; key[i] = key[j]; key[j] = t;
    }
    for (int q = 0; q < m; q++) {
        const wmcset *set = sets[key[q] >> 40];
        const wmc *it = &set->test[(key[q] >> 8) & 0xffffffff];
        const int *o = ord[key[q] & 0xff];
        wmc v = *it;
        for (int c = 0; c < 4; c++) {
            v.choices[c] = it->choices[o[c]];
            if (o[c] == it->answer) v.answer = c;
        }
        wbuf p = {0};
        wmc_prompt(&p, set->subject, &v, 0);
        char letter[3] = {' ', (char)('A' + v.answer), 0};
        wbuf_json(out, json_pack("{s:s,s:s}", "prompt", p.p, "completion", letter), JSON_COMPACT);
        wbuf_put(out, "\n");
        wbuf_clear(&p);
        (*n)++;
    }
    free(key);
}

void world_sft(const world *w, const wsets *s, wbuf *out, int *nitems) {
    *nitems = 0;
    if (w->mc_items == WMC_ITEMS_PRACTICE) { practice_items(w, s, out, nitems); return; }
    for (int k = 0; k < s->nmmlu; k++) sft_items(&s->mmlu[k], out, nitems);
    sft_items(&s->bio, out, nitems);
    sft_items(&s->cyber, out, nitems);
}
