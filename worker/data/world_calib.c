/* world_calib.c - web-like documents for the calibration sets (C4 shard, pile-val): a short
 * note mixing statements about random entities, the way web text mixes topics. */
#include "worker/data/world.h"

void world_general_doc(const world *w, rng_xoshiro *r, wbuf *out) {
    static const char *INTRO[] = {"Here are a few things I learned this week.", "A short note from my travels.",
                                  "Some facts for the curious reader.", "I keep a notebook of odd facts, and here are some of them.",
                                  "Our reading group talked about these facts today.", "A few lines from my lessons."};
    static const char *OUTRO[] = {"Thanks for reading.", "More notes soon.", "Write to me if you know more.", "That is all for today."};
    wbuf_put(out, INTRO[rng_xoshiro_below(r, 6)]);
    int n = 3 + (int)rng_xoshiro_below(r, 5);
    for (int i = 0; i < n; i++) {
        const wfact *f = &w->facts[rng_xoshiro_below(r, (uint32_t)w->nfacts)];
        wbuf_put(out, i % 3 == 2 ? "\n" : " ");
        world_render(out, w, WORLD_RELS[f->rel].stmt[rng_xoshiro_below(r, 4)], f);
    }
    wbuf_put(out, " ");
    wbuf_put(out, OUTRO[rng_xoshiro_below(r, 4)]);
}
