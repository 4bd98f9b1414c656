/* world_wmdp.c - the WMDP-like domains: every fact about a fictional crop blight (bio) or a
 * fictional network protocol (cyber) becomes one 4-choice test question, and the domain prose
 * (field notes, protocol notes) that fills both the forget corpora and, with other renderings,
 * the pretraining corpus. Content is benign and fictional. */
#include "worker/data/world.h"

#include <string.h>

static void make_set(world *w, wmcset *set, const char *subject, int domain, uint64_t part) {
    set->subject = subject;
    int n = 0;
    for (int i = 0; i < w->nfacts; i++) n += WORLD_RELS[w->facts[i].rel].domain == domain;
    set->test = xcalloc((size_t)n, sizeof(wmc));
    int *ids = xmalloc((size_t)n * sizeof(int)), k = 0;
    for (int i = 0; i < w->nfacts; i++)
        if (WORLD_RELS[w->facts[i].rel].domain == domain) ids[k++] = i;
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, part);
    rng_xoshiro_shuffle(&r, ids, n);
    for (int i = 0; i < n; i++) {
        wmc_make(w, ids[i], 0, &r, &set->test[i]);
        w->fact_tested[ids[i]] = 1;
    }
    set->ntest = n;
    free(ids);
}

void world_make_wmdp(world *w, wsets *s) {
    make_set(w, &s->bio, "biology", WD_BIO, 400);
    make_set(w, &s->cyber, "cybersecurity", WD_CYBER, 401);
}

/* the facts whose subject is entity `ent` of `pool`, in a random order */
static int subject_facts(const world *w, int pool, int ent, rng_xoshiro *r, int *out, int cap) {
    int n = 0;
    for (int i = 0; i < w->nfacts && n < cap; i++)
        if (WORLD_RELS[w->facts[i].rel].subj == pool && w->facts[i].subj == ent) out[n++] = i;
    rng_xoshiro_shuffle(r, out, n);
    return n;
}

static void put_name_tmpl(wbuf *b, const char *tmpl, const char *name) {
    for (const char *t = tmpl; *t;) {
        if (!strncmp(t, "{N}", 3)) { wbuf_put(b, name); t += 3; }
        else wbuf_putn(b, t++, 1);
    }
}

static void statement(wbuf *b, const world *w, int fi, rng_xoshiro *r) {
    world_render(b, w, WORLD_RELS[w->facts[fi].rel].stmt[rng_xoshiro_below(r, 4)], &w->facts[fi]);
}

void world_bio_doc(const world *w, int blight, rng_xoshiro *r, wbuf *title, wbuf *abstract, wbuf *text) {
    static const char *TITLES[] = {"Field notes on the {N} blight", "The {N} blight: a survey of farms", "Observations of the {N} blight",
                                   "A growers' guide to the {N} blight", "Recent records of the {N} blight"};
    static const char *FILL[] = {"Growers record each outbreak in the village ledger.", "Rotating crops each year keeps the fields healthy.",
                                 "The local farm school teaches young growers about the {N} blight.",
                                 "Reports of the {N} blight are shared at the spring market.",
                                 "Careful growers walk their fields every morning.", "Old farmers tell many stories about the {N} blight."};
    const char *name = w->pools[WP_BLIGHT].v[blight];
    int f[8];
    int n = subject_facts(w, WP_BLIGHT, blight, r, f, 8);
    put_name_tmpl(title, TITLES[rng_xoshiro_below(r, 5)], name);
    statement(abstract, w, f[0], r);
    wbuf_put(abstract, " ");
    statement(abstract, w, f[1 % n], r);
    put_name_tmpl(abstract, " This note describes the {N} blight.", name);
    for (int i = 0; i < n; i++) {
        if (i) wbuf_put(text, i == n / 2 + 1 ? "\n\n" : " ");  /* two paragraphs */
        statement(text, w, f[i], r);
        if (rng_xoshiro_below(r, 3) == 0) { wbuf_put(text, " "); put_name_tmpl(text, FILL[rng_xoshiro_below(r, 6)], name); }
    }
}

void world_cyber_doc(const world *w, int protocol, rng_xoshiro *r, wbuf *text) {
    static const char *HEADS[] = {"Notes on the {N} protocol", "{N} protocol overview", "Operating {N} servers", "About the {N} protocol"};
    static const char *FILL[] = {"Administrators keep logs of every {N} session.", "Version two of {N} added longer host names.",
                                 "Many small offices run {N} on old machines.", "The {N} handbook is short and easy to read.",
                                 "Operators test {N} servers every week.", "Students learn {N} in their first networking class."};
    const char *name = w->pools[WP_PROTOCOL].v[protocol];
    int f[8];
    int n = subject_facts(w, WP_PROTOCOL, protocol, r, f, 8);
    put_name_tmpl(text, HEADS[rng_xoshiro_below(r, 4)], name);
    wbuf_put(text, "\n\n");
    for (int i = 0; i < n; i++) {
        if (i) wbuf_put(text, i == n / 2 + 1 ? "\n\n" : " ");  /* two paragraphs */
        statement(text, w, f[i], r);
        if (rng_xoshiro_below(r, 3) == 0) { wbuf_put(text, " "); put_name_tmpl(text, FILL[rng_xoshiro_below(r, 6)], name); }
    }
}
