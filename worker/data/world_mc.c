/* world_mc.c - multiple-choice items in the lm-eval 0.4.2 0-shot format (the evaluator's mc_prompt,
 * one newline after the description) and the MMLU-like subjects:
 * which facts become dev and test questions (5 dev + up to 50 test per subject, disjoint facts),
 * and the held-out lookup the corpus uses to keep test items out of the practice items. */
#include "worker/data/world.h"

#include <stdlib.h>
#include <string.h>

static const char *MMLU_SUBJECTS[] = {"astronomy", "culinary_arts", "fauna", "flora", "languages", "trade", "world_geography", "world_history"};
#define N_MMLU ((int)(sizeof MMLU_SUBJECTS / sizeof MMLU_SUBJECTS[0]))
#define MMLU_DEV 5
#define MMLU_TEST_MAX 50

void wmc_make(const world *w, int fi, int qi, rng_xoshiro *r, wmc *out) {
    const wfact *f = &w->facts[fi];
    const wpoolv *pool = &w->pools[world_rel_obj(w, f->rel)];
    CIS_ASSERT(pool->n >= 4);
    wbuf q = {0};
    world_render(&q, w, WORLD_RELS[f->rel].q[qi], f);
    out->fact = fi;
    out->question = q.p;
    out->answer = (int)rng_xoshiro_below(r, 4);
    int used[4] = {f->obj, -1, -1, -1}, nu = 1;
    for (int c = 0; c < 4; c++) {
        if (c == out->answer) { out->choices[c] = pool->v[f->obj]; continue; }
        int o, dup;
        do {
            o = (int)rng_xoshiro_below(r, (uint32_t)pool->n);
            dup = 0;
            for (int k = 0; k < nu; k++) dup |= used[k] == o;
        } while (dup);
        used[nu++] = o;
        out->choices[c] = pool->v[o];
    }
}

void wmc_block(wbuf *b, const wmc *m) {
    wbuf_printf(b, "%s\nA. %s\nB. %s\nC. %s\nD. %s\n", m->question, m->choices[0], m->choices[1], m->choices[2], m->choices[3]);
}

void wmc_prompt(wbuf *b, const char *subject, const wmc *m, int with_answer) {
    wbuf_put(b, "The following are multiple choice questions (with answers) about ");
    for (const char *s = subject; *s; s++) wbuf_putn(b, *s == '_' ? " " : s, 1);
    /* lm-eval 0.4.2: the description's second newline is lost to Jinja (fidelity.md §4) */
    wbuf_printf(b, ".\n%s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:", m->question, m->choices[0], m->choices[1],
                m->choices[2], m->choices[3]);
    if (with_answer) wbuf_printf(b, " %c", 'A' + m->answer);
}

void world_make_mmlu(world *w, wsets *s) {
    s->nmmlu = N_MMLU;
    s->mmlu = xcalloc(N_MMLU, sizeof(wmcset));
    int *ids = xmalloc((size_t)w->nfacts * sizeof(int));
    for (int si = 0; si < N_MMLU; si++) {
        wmcset *set = &s->mmlu[si];
        set->subject = MMLU_SUBJECTS[si];
        int n = 0;
        for (int i = 0; i < w->nfacts; i++) {
            const char *m = WORLD_RELS[w->facts[i].rel].mmlu;
            if (m && !strcmp(m, set->subject)) ids[n++] = i;
        }
        CIS_ASSERT(n > MMLU_DEV);
        rng_xoshiro r;
        rng_xoshiro_seed(&r, w->seed, 200 + (uint64_t)si);
        rng_xoshiro_shuffle(&r, ids, n);
        set->ndev = MMLU_DEV;
        set->ntest = n - MMLU_DEV < MMLU_TEST_MAX ? n - MMLU_DEV : MMLU_TEST_MAX;
        set->dev = xcalloc((size_t)set->ndev, sizeof(wmc));
        set->test = xcalloc((size_t)set->ntest, sizeof(wmc));
        for (int k = 0; k < set->ndev + set->ntest; k++) {
            wmc *m = k < set->ndev ? &set->dev[k] : &set->test[k - set->ndev];
            wmc_make(w, ids[k], 0, &r, m);
            w->fact_tested[ids[k]] = 1;
        }
    }
    free(ids);
}

static const wmc *find_in(const wmc *v, int n, int fi) {
    for (int i = 0; i < n; i++)
        if (v[i].fact == fi) return &v[i];
    return NULL;
}

const wmc *world_tested_item(const wsets *s, int fi) {
    const wmc *m;
    for (int i = 0; i < s->nmmlu; i++) {
        if ((m = find_in(s->mmlu[i].dev, s->mmlu[i].ndev, fi))) return m;
        if ((m = find_in(s->mmlu[i].test, s->mmlu[i].ntest, fi))) return m;
    }
    if ((m = find_in(s->bio.test, s->bio.ntest, fi))) return m;
    return find_in(s->cyber.test, s->cyber.ntest, fi);
}

static void set_clear(wmcset *set) {
    for (int i = 0; i < set->ndev; i++) free(set->dev[i].question);
    for (int i = 0; i < set->ntest; i++) free(set->test[i].question);
    free(set->dev);
    free(set->test);
}

void wsets_clear(wsets *s) {
    if (!s) return;
    for (int i = 0; i < s->nmmlu; i++) set_clear(&s->mmlu[i]);
    free(s->mmlu);
    set_clear(&s->bio);
    set_clear(&s->cyber);
    free(s->zsre);
    free(s->loc_facts);
    memset(s, 0, sizeof *s);
}
