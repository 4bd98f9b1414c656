/* world_zsre.c - zsRE-format edit records: one per fact of a zsRE relation (people, countries,
 * cities), in a seed-shuffled order. `src` is the relation's first question, `rephrase` its second,
 * `alt` (the edit target) another object of the same kind, and `loc` a general-knowledge question
 * ("nq question: ...") about fauna, flora, astronomy or food, answered by `loc_ans`. */
#include "worker/data/world.h"

#include <string.h>

static int is_loc_rel(const wrel *rel) {
    return rel->mmlu && (!strcmp(rel->mmlu, "fauna") || !strcmp(rel->mmlu, "flora") || !strcmp(rel->mmlu, "astronomy") ||
                         !strcmp(rel->mmlu, "culinary_arts"));
}

void world_make_zsre(world *w, wsets *s) {
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, 300);
    s->loc_facts = xmalloc((size_t)w->nfacts * sizeof(int));
    s->zsre = xmalloc((size_t)w->nfacts * sizeof(wzsre));
    s->nloc = s->nzsre = 0;
    for (int i = 0; i < w->nfacts; i++) {
        const wrel *rel = &WORLD_RELS[w->facts[i].rel];
        if (is_loc_rel(rel)) s->loc_facts[s->nloc++] = i;
    }
    CIS_ASSERT(s->nloc > 0);
    rng_xoshiro_shuffle(&r, s->loc_facts, s->nloc);
    int li = 0;
    for (int i = 0; i < w->nfacts; i++) {
        const wfact *f = &w->facts[i];
        if (WORLD_RELS[f->rel].domain != WD_ZSRE) continue;
        int no = w->pools[world_rel_obj(w, f->rel)].n, alt;
        do alt = (int)rng_xoshiro_below(&r, (uint32_t)no); while (alt == f->obj);
        s->zsre[s->nzsre++] = (wzsre){i, alt, s->loc_facts[li]};
        li = (li + 1) % s->nloc;
    }
    for (int i = s->nzsre - 1; i > 0; i--) {  /* records are not grouped by relation */
        int j = (int)rng_xoshiro_below(&r, (uint32_t)i + 1);
        wzsre t = s->zsre[i]; s->zsre[i] = s->zsre[j]; s->zsre[j] = t;
    }
}
