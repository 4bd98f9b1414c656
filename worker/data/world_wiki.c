/* world_wiki.c - encyclopedia-style articles about the world's entities, in the WikiText-2-raw
 * layout (" = Title = " and " = = Section = = " headings, paragraphs as " text \n \n"). The train
 * split's articles also go into the pretraining corpus; valid and test are other renderings (their
 * own random streams) that never appear in the corpus, for held-out perplexity and RMU retain. */
#include "worker/data/world.h"

#include <ctype.h>
#include <string.h>

static const int ARTICLE_POOLS[] = {WP_COUNTRY, WP_CITY, WP_PERSON, WP_LANGUAGE, WP_ANIMAL, WP_PLANT, WP_PLANET, WP_STAR, WP_GOOD, WP_DISH};
#define N_APOOLS ((int)(sizeof ARTICLE_POOLS / sizeof ARTICLE_POOLS[0]))

int world_article_entities(const world *w, int (*out)[2], int cap) {
    int n = 0;
    for (int k = 0; k < N_APOOLS; k++)
        for (int i = 0; i < w->pools[ARTICLE_POOLS[k]].n; i++)
            if (n < cap) { out[n][0] = ARTICLE_POOLS[k]; out[n][1] = i; n++; }
    return n;
}

static void put_tmpl(wbuf *b, const char *tmpl, const char *name, const char *kind) {
    size_t start = b->len;
    for (const char *t = tmpl; *t;) {
        if (!strncmp(t, "{N}", 3)) { wbuf_put(b, name); t += 3; }
        else if (!strncmp(t, "{K}", 3)) { wbuf_put(b, kind); t += 3; }
        else wbuf_putn(b, t++, 1);
    }
    if (b->len > start) b->p[start] = (char)toupper((unsigned char)b->p[start]);
}

void world_article(const world *w, int pool, int ent, rng_xoshiro *r, int variant, wbuf *out) {
    static const char *INTRO[] = {"{N} is a {K} often described in old records.", "{N} is a well known {K}.",
                                  "{N} is a {K} that many travelers write about.", "{N} is a {K} of some fame."};
    static const char *FILL[] = {"Scholars have studied {N} for many years.", "Many stories are told about {N}.",
                                 "{N} appears in several old songs.", "Little else is known about {N}.",
                                 "Travelers often write about {N}.", "Some records about {N} were lost in a fire."};
    static const char *SECT[] = {"Overview", "Description", "Notes", "Legacy", "Connections"};
    const char *name = w->pools[pool].v[ent], *kind = world_pool_name(pool);
    char title[128];
    snprintf(title, sizeof title, "%s", name);
    title[0] = (char)toupper((unsigned char)title[0]);
    wbuf_printf(out, " = %s = \n \n ", title);
    put_tmpl(out, INTRO[rng_xoshiro_below(r, 4)], name, kind);
    int subj[16], obj[8], ns = 0, no = 0;
    for (int i = 0; i < w->nfacts; i++) {
        const wrel *rel = &WORLD_RELS[w->facts[i].rel];
        if (rel->subj == pool && w->facts[i].subj == ent && ns < 16) subj[ns++] = i;
        else if (world_rel_obj(w, w->facts[i].rel) == pool && w->facts[i].obj == ent && no < 8) obj[no++] = i;
    }
    rng_xoshiro_shuffle(r, subj, ns);
    rng_xoshiro_shuffle(r, obj, no);
    for (int i = 0; i < ns; i++) {
        wbuf_put(out, " ");
        world_render(out, w, WORLD_RELS[w->facts[subj[i]].rel].stmt[(rng_xoshiro_below(r, 4) + (unsigned)variant) % 4], &w->facts[subj[i]]);
    }
    wbuf_put(out, " \n \n");
    if (no > 0 || rng_xoshiro_below(r, 2)) {
        wbuf_printf(out, " = = %s = = \n \n ", SECT[rng_xoshiro_below(r, 5)]);
        for (int i = 0; i < no && i < 5; i++) {
            world_render(out, w, WORLD_RELS[w->facts[obj[i]].rel].stmt[rng_xoshiro_below(r, 4)], &w->facts[obj[i]]);
            wbuf_put(out, " ");
        }
        put_tmpl(out, FILL[rng_xoshiro_below(r, 6)], name, kind);
        wbuf_put(out, " \n \n");
    }
}

void world_wiki(const world *w, int split, wbuf *out) {
    int (*ents)[2] = xmalloc(4096 * sizeof *ents);
    int n = world_article_entities(w, ents, 4096);
    int *order = xmalloc((size_t)n * sizeof(int));
    int rounds = split == 0 ? w->sc.wiki_train_rounds : 1;
    wbuf_put(out, " \n");
    for (int round = 0; round < rounds; round++) {
        rng_xoshiro r;
        rng_xoshiro_seed(&r, w->seed, 500 + 100 * (uint64_t)split + (uint64_t)round);
        for (int i = 0; i < n; i++) order[i] = i;
        rng_xoshiro_shuffle(&r, order, n);
        for (int i = 0; i < n; i++) {
            if (split == 1 && order[i] % 4 != 0) continue;  /* valid: a quarter of the entities */
            world_article(w, ents[order[i]][0], ents[order[i]][1], &r, round + 2 * split, out);
        }
    }
    free(order);
    free(ents);
}
