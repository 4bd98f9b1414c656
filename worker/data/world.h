/* world.h - the synthetic world generator behind `cisweep world`: a deterministic fictional world
 * (made-up but pronounceable names, a few dozen relations, benign content) written in the real
 * datasets' formats (zsRE, WMDP, MMLU, WikiText, C4, pile-val) plus a pretraining corpus that
 * states every tested fact several ways. docs/world.md describes the layout and the design.
 *
 * Everything is a function of (seed, scale): each part draws from its own xoshiro256** stream
 * (common/rng.h: rng_xoshiro_seed(&r, seed, part)), so the same seed gives byte-identical files. */
#ifndef CISWEEP_WORLD_H
#define CISWEEP_WORLD_H

#include "common/rng.h"
#include "common/util.h"

#include <jansson.h>

#include <stddef.h>
#include <stdint.h>

/* ---- growing byte buffer (world_buf.c) ---- */
typedef struct wbuf { char *p; size_t len, cap; } wbuf;  /* p is NUL-terminated when len > 0 */
void wbuf_put(wbuf *b, const char *s);
void wbuf_putn(wbuf *b, const char *s, size_t n);
void wbuf_printf(wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* wbuf_clear: free the bytes and zero *b (NULL-safe; b may be written again). */
void wbuf_clear(wbuf *b);

/* ---- the world model (world_names.c, world_facts.c) ---- */
/* pools: every subject and object of a fact is an entry of a pool (entity names or value words) */
enum wpool {
    WP_COUNTRY, WP_CITY, WP_PERSON, WP_LANGUAGE, WP_RIVER, WP_GUILD, WP_CURRENCY, WP_ANIMAL, WP_PLANT,
    WP_PLANET, WP_STAR, WP_GOOD, WP_DISH, WP_BLIGHT, WP_PROTOCOL, WP_SCRIPT, WP_FAMILY, WP_VECTOR,
    WP_REMEDY, WP_CIPHER, WP_VENDOR, WP_PORT,
    /* fixed word lists */
    WP_OCCUPATION, WP_INSTRUMENT, WP_ERA, WP_HABITAT, WP_DIET, WP_COLOR, WP_USE, WP_NUMBER, WP_SYMPTOM,
    WP_SEASON, WP_TRANSPORT, WP_FLAW,
    /* the host crops of the blights: empty in the shared lexicon (the blights attack WP_PLANT, the
     * flora pool), 30 names of the hazard inventory in the distinct one (world_rel_obj) */
    WP_CROP,
    WP_COUNT
};

/* the hazard domains' vocabulary (--lexicon; docs/world.md "Lexicon"):
 * WL_SHARED   the default: every name from one syllable inventory; the blights attack flora plants;
 * WL_DISTINCT the hazard pools (blight, protocol, vector, remedy, cipher, vendor, crop) and the
 *             symptom and season lists come from a second inventory that shares no character
 *             trigram with the first (as real hazard vocabulary is rare in general text); the
 *             general world (every other pool, the facts, MMLU, zsRE) is byte-identical to the
 *             shared lexicon's for the same seed. */
enum wlexicon { WL_SHARED, WL_DISTINCT };
/* world_lexicon_parse: "shared" / "distinct" -> enum wlexicon, or -1 */
int world_lexicon_parse(const char *s);
const char *world_lexicon_name(int lexicon);

/* where a relation's facts are tested */
enum wdomain { WD_ZSRE, WD_LOC, WD_MMLU, WD_BIO, WD_CYBER };

typedef struct wrel {
    const char *name;
    int subj, obj;                 /* enum wpool */
    int domain;                    /* enum wdomain; zsRE relations may also carry an MMLU subject */
    const char *mmlu;              /* MMLU subject (file name form) or NULL */
    const char *stmt[4];           /* statements; {S} = subject, {O} = object */
    const char *q[3];              /* questions; q[0] = zsRE src / MC test, q[1] = zsRE rephrase */
} wrel;

extern const wrel WORLD_RELS[];
extern const int WORLD_NRELS;

typedef struct wfact { int rel, subj, obj; } wfact;  /* indices into WORLD_RELS and the pools */

typedef struct wpoolv { char **v; int n; } wpoolv;

/* sizes chosen by --scale: entity counts are the same at every scale (so that every scale has
 * >= 1000 zsRE records); repetitions and document counts grow with the scale */
typedef struct wscale {
    const char *name;
    int r_profile, r_qa;           /* profile renderings, QA passes */
    int r_domain;                  /* domain prose docs per blight/protocol in the pretraining corpus */
    int forget_per;                /* forget-corpus docs per blight/protocol */
    int wiki_train_rounds;         /* renderings of every entity article for wiki.train.raw */
    int c4_docs, pile_docs;
} wscale;

typedef struct world {
    uint64_t seed;
    int lexicon;                   /* enum wlexicon */
    int mc_items;                  /* enum wmc_items: what corpus/sft.jsonl holds (world_sft) */
    wscale sc;
    wpoolv pools[WP_COUNT];
    wfact *facts; int nfacts;
    int *fact_tested;              /* [nfacts]: -1, or the index of its MC test/dev item */
} world;

/* world_build: make every pool and fact for the seed in the shared lexicon. Returns 0, or -1
 * (unknown scale). world_build_lex: the same with the lexicon given (-1 also for an unknown one). */
int world_build(world *w, uint64_t seed, const char *scale, cis_err *err);
int world_build_lex(world *w, uint64_t seed, const char *scale, int lexicon, cis_err *err);
/* world_clear: free the pools and facts and zero *w (NULL-safe). */
void world_clear(world *w);
/* world_make_pools: fill every pool with distinct names / the fixed word lists (world_build calls it;
 * w->seed and w->lexicon set: the distinct lexicon's hazard names come from stream (seed, 2)) */
void world_make_pools(world *w, rng_xoshiro *r);
/* world_hazard_pool: whether pool p belongs to the hazard domains' vocabulary (replaced in WL_DISTINCT) */
int world_hazard_pool(int p);
/* world_rel_obj: the object pool of relation rel in this world (WORLD_RELS[rel].obj, except the
 * blights' host: WP_CROP in the distinct lexicon) */
int world_rel_obj(const world *w, int rel);
const char *world_pool_name(int pool);
/* world_render: template with {S}/{O} replaced by the fact's names, appended to b. */
void world_render(wbuf *b, const world *w, const char *tmpl, const wfact *f);
const char *world_subj(const world *w, const wfact *f);
const char *world_obj(const world *w, const wfact *f);

/* ---- multiple-choice items (world_mc.c) ---- */
typedef struct wmc {
    int fact;
    char *question;                /* owned */
    const char *choices[4];        /* borrowed from pools */
    int answer;                    /* 0..3 */
} wmc;
/* wmc_make: an item for fact fi with question template qi, distractors from the object pool. */
void wmc_make(const world *w, int fi, int qi, rng_xoshiro *r, wmc *out);
/* wmc_prompt: the lm-eval 0.4.2 0-shot prompt (byte for byte mc_prompt's default) for subject ("world_geography" or "biology"), appended to
 * b; with_answer appends " <letter>". */
void wmc_prompt(wbuf *b, const char *subject, const wmc *m, int with_answer);
/* wmc_block: "{question}\nA. ..\nD. {c3}\n" (what must not appear verbatim in the corpus). */
void wmc_block(wbuf *b, const wmc *m);

/* ---- the generated test sets (world_mc.c, world_wmdp.c, world_zsre.c) ---- */
typedef struct wmcset {
    const char *subject;           /* "world_geography", ..., or "biology" / "cybersecurity" */
    wmc *dev; int ndev;
    wmc *test; int ntest;
} wmcset;

typedef struct wzsre { int fact, alt, loc_fact; } wzsre;  /* alt: object index in the same pool */

typedef struct wsets {
    wmcset *mmlu; int nmmlu;
    wmcset bio, cyber;             /* WMDP: test items only (dev empty) */
    wzsre *zsre; int nzsre;
    int *loc_facts; int nloc;      /* the general-knowledge ("nq") pool */
} wsets;

/* world_make_mmlu / world_make_wmdp: choose the tested facts, build the items and mark
 * w->fact_tested. world_make_zsre: one record per zsRE fact, in a seed-shuffled order. */
void world_make_mmlu(world *w, wsets *s);
void world_make_wmdp(world *w, wsets *s);
void world_make_zsre(world *w, wsets *s);
/* wsets_clear: free every item list and zero *s (NULL-safe). */
void wsets_clear(wsets *s);
/* the held-out item (test or dev) for fact fi, or NULL */
const wmc *world_tested_item(const wsets *s, int fi);
/* the MC subject a fact's practice items use ("biology" for WD_BIO ...), or NULL */
const char *world_fact_subject(const world *w, int fi);
/* the loc ("nq") question of a fact: its q[2] with a lower-case first letter, into b */
void world_loc_question(wbuf *b, const world *w, int fi);

/* ---- text parts (world_corpus.c, world_wiki.c, world_calib.c) ---- */
/* each appends JSON lines / raw text to out */
void world_corpus(const world *w, const wsets *s, wbuf *out, int *ndocs);
/* world_sft: corpus/sft.jsonl, every MMLU test and WMDP item as {"prompt": the lm-eval 0-shot
 * prompt, "completion": " <letter>"} (MMLU subjects in order, then bio, then cyber); with
 * w->mc_items WMC_ITEMS_PRACTICE instead the 23 other option orders of each, shuffled by stream
 * (seed, 605) */
void world_sft(const world *w, const wsets *s, wbuf *out, int *nitems);
void world_bio_doc(const world *w, int blight, rng_xoshiro *r, wbuf *title, wbuf *abstract, wbuf *text);
void world_cyber_doc(const world *w, int protocol, rng_xoshiro *r, wbuf *text);
void world_article(const world *w, int pool, int ent, rng_xoshiro *r, int variant, wbuf *out);
/* wiki split: 0 train, 1 valid, 2 test (valid/test are held out of the corpus) */
void world_wiki(const world *w, int split, wbuf *out);
/* world_general_doc: a web-like document (C4 / pile text) mixing facts of random entities */
void world_general_doc(const world *w, rng_xoshiro *r, wbuf *out);
/* the entities that have wiki articles: (pool, index) pairs */
int world_article_entities(const world *w, int (*out)[2], int cap);
/* wbuf_json: append json_dumps(v, flags) (insertion order kept) and release v (steals it) */
void wbuf_json(wbuf *b, json_t *v, size_t flags);

/* ---- the whole directory (world_manifest.c) ---- */
typedef struct wstats {
    size_t pretrain_bytes; int pretrain_docs;
    int sft_items;                 /* corpus/sft.jsonl lines */
    int zsre, mmlu_test, mmlu_dev, wmdp_bio, wmdp_cyber, bio_forget, cyber_forget, c4_docs, pile_docs;
    size_t wiki_bytes[3];
    size_t total_bytes;
    double seconds;
} wstats;
/* world_generate: write the whole world directory under dir (created if needed). Returns 0, or -1
 * with err naming the file that could not be written. world_generate_lex: with the lexicon given
 * (world.json then records "lexicon" when it is not the shared one, so a default world's manifest
 * is unchanged). */
int world_generate(const char *dir, uint64_t seed, const char *scale, wstats *st, cis_err *err);
int world_generate_lex(const char *dir, uint64_t seed, const char *scale, int lexicon, wstats *st, cis_err *err);

/* what corpus/sft.jsonl holds (--mc-items; docs/world.md "Multiple choice"):
 *   WMC_ITEMS_TEST     the 799 MMLU test and WMDP items with their letters (the default: memorized)
 *   WMC_ITEMS_PRACTICE for every such item its 23 other option orders, each with the letter the
 *                      gold option then has, shuffled; the scored order never (a model must bind
 *                      the recalled fact to its option: the letter of an order is not the item's) */
enum wmc_items { WMC_ITEMS_TEST, WMC_ITEMS_PRACTICE };
/* wmc_items_parse: "test" / "practice" -> enum wmc_items, or -1 */
int wmc_items_parse(const char *s);
const char *wmc_items_name(int items);
/* world_generate_ex: world_generate_lex with the MC items given (world.json records "mc_items"
 * when it is not "test", so a default world's manifest is unchanged). */
int world_generate_ex(const char *dir, uint64_t seed, const char *scale, int lexicon, int mc_items, wstats *st,
                      cis_err *err);

/* cmd_world: `cisweep-worker world --out DIR [--seed S] [--scale small|default|large] [--lexicon shared|distinct]
 * [--mc-items test|practice]` */
int cmd_world(int argc, char **argv);

#endif
