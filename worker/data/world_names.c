/* world_names.c - the world's vocabulary: syllable-built names (short, pronounceable, all distinct,
 * so a small BPE tokenizer and a small model learn them quickly) and the fixed word lists, one
 * pool per kind of entity or value; and the hazard domains' own inventory (--lexicon distinct). */
#include "worker/data/world.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *ONSET[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st", "th"};
static const char *VOWEL[] = {"a", "e", "i", "o", "u", "a", "e", "o"};
static const char *CODA[] = {"", "", "", "n", "r", "l", "s", "m"};
#define NEL(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The hazard inventory (WL_DISTINCT). A general name uses the letters b d f g k l m n p r s t v z,
 * h only after t, and single vowels a e i o u that never touch. Every onset here holds c, j, q, w,
 * x, y or an h after a letter other than t; every vowel is y or two touching vowels; so every
 * character trigram of a hazard word holds one of those marks and none is a trigram of a general
 * name (test_world.c checks it on the generated pools). */
static const char *H_ONSET[] = {"ch", "ph", "sh", "wh", "gh", "zh", "kh", "x", "qu", "c", "j", "y", "w", "sc", "cl", "cr"};
static const char *H_VOWEL[] = {"ae", "ou", "oi", "ei", "au", "ea", "io", "y"};
static const char *H_CODA[] = {"", "", "", "x", "ck", "ch", "sh", "ph"};

typedef struct inventory {
    const char **onset, **vowel, **coda;
    int nonset, nvowel, ncoda;
} inventory;
static const inventory INV_GENERAL = {ONSET, VOWEL, CODA, NEL(ONSET), NEL(VOWEL), NEL(CODA)};
static const inventory INV_HAZARD = {H_ONSET, H_VOWEL, H_CODA, NEL(H_ONSET), NEL(H_VOWEL), NEL(H_CODA)};

static const char *W_OCCUPATION[] = {"potter", "weaver", "baker", "sailor", "miner", "scribe", "healer", "builder",
                                     "farmer", "hunter", "painter", "tailor", "brewer", "smith", "fisher", "singer"};
static const char *W_INSTRUMENT[] = {"lute", "harp", "flute", "drum", "horn", "fiddle", "bell", "pipe", "zither", "lyre", "gong", "bagpipe"};
static const char *W_ERA[] = {"Copper Age", "Salt Age", "Amber Age", "Frost Age", "Reed Age", "Glass Age", "Wool Age", "Cedar Age"};
static const char *W_HABITAT[] = {"forest", "desert", "marsh", "tundra", "grassland", "cave", "reef", "hills"};
static const char *W_DIET[] = {"seeds", "insects", "fish", "grass", "fruit", "roots"};
static const char *W_COLOR[] = {"red", "blue", "green", "yellow", "white", "black", "orange", "purple"};
static const char *W_USE[] = {"medicine", "dye", "rope", "paper", "food", "perfume", "timber", "tea"};
static const char *W_NUMBER[] = {"two", "three", "four", "five", "six", "seven", "eight", "nine"};
static const char *W_SYMPTOM[] = {"yellow leaves", "black spots", "wilted stems", "soft roots", "white mold", "curled leaves", "split bark", "pale seeds"};
static const char *W_SEASON[] = {"spring", "summer", "autumn", "winter", "early spring", "late summer"};
static const char *W_TRANSPORT[] = {"stream", "datagram", "broadcast", "serial", "mesh", "ring"};
static const char *W_FLAW[] = {"replayed tokens", "stale session keys", "unchecked lengths", "weak checksums",
                               "open debug ports", "default passwords", "clock drift", "unsigned updates"};
/* the distinct lexicon's symptom and season lists (same lengths as the shared ones, so every draw of
 * the facts and items is the same; no word of them is in the general pools, test_world.c) */
static const char *H_SYMPTOM[] = {"chlorosis", "necrotic flecks", "gummosis", "cankers", "phyllody", "scorched tips", "sooty crusts", "galls"};
static const char *H_SEASON[] = {"the monsoon", "the dry spell", "the thaw", "the haze months", "the hail weeks", "the sowing weeks"};

static const struct { const char *name; int n; } POOL_INFO[WP_COUNT] = {
    [WP_COUNTRY] = {"country", 30}, [WP_CITY] = {"city", 60}, [WP_PERSON] = {"person", 220},
    [WP_LANGUAGE] = {"language", 12}, [WP_RIVER] = {"river", 20}, [WP_GUILD] = {"guild", 16},
    [WP_CURRENCY] = {"currency", 30}, [WP_ANIMAL] = {"animal", 30}, [WP_PLANT] = {"plant", 30},
    [WP_PLANET] = {"planet", 24}, [WP_STAR] = {"star", 8}, [WP_GOOD] = {"good", 30}, [WP_DISH] = {"dish", 30},
    [WP_BLIGHT] = {"blight", 40}, [WP_PROTOCOL] = {"protocol", 40}, [WP_SCRIPT] = {"script", 8},
    [WP_FAMILY] = {"family", 6}, [WP_VECTOR] = {"vector", 12}, [WP_REMEDY] = {"remedy", 12},
    [WP_CIPHER] = {"cipher", 12}, [WP_VENDOR] = {"vendor", 10}, [WP_PORT] = {"port", 24},
    [WP_OCCUPATION] = {"occupation", NEL(W_OCCUPATION)}, [WP_INSTRUMENT] = {"instrument", NEL(W_INSTRUMENT)},
    [WP_ERA] = {"era", NEL(W_ERA)}, [WP_HABITAT] = {"habitat", NEL(W_HABITAT)}, [WP_DIET] = {"diet", NEL(W_DIET)},
    [WP_COLOR] = {"color", NEL(W_COLOR)}, [WP_USE] = {"use", NEL(W_USE)}, [WP_NUMBER] = {"number", NEL(W_NUMBER)},
    [WP_SYMPTOM] = {"symptom", NEL(W_SYMPTOM)}, [WP_SEASON] = {"season", NEL(W_SEASON)},
    [WP_TRANSPORT] = {"transport", NEL(W_TRANSPORT)}, [WP_FLAW] = {"flaw", NEL(W_FLAW)},
    [WP_CROP] = {"crop", 0},  /* WL_DISTINCT: CROP_N */
};
#define CROP_N 30             /* = the plant pool's size, so the host facts draw the same indices */

_Static_assert(NEL(H_SYMPTOM) == NEL(W_SYMPTOM) && NEL(H_SEASON) == NEL(W_SEASON), "the distinct lists keep the shared lists' lengths");

int world_lexicon_parse(const char *s) {
    if (s && !strcmp(s, "shared")) return WL_SHARED;
    if (s && !strcmp(s, "distinct")) return WL_DISTINCT;
    return -1;
}

const char *world_lexicon_name(int lexicon) { return lexicon == WL_DISTINCT ? "distinct" : lexicon == WL_SHARED ? "shared" : "?"; }

int world_hazard_pool(int p) {
    switch (p) {
    case WP_BLIGHT: case WP_PROTOCOL: case WP_VECTOR: case WP_REMEDY: case WP_CIPHER: case WP_VENDOR:
    case WP_SYMPTOM: case WP_SEASON: case WP_CROP:
        return 1;
    default: return 0;
    }
}

int world_rel_obj(const world *w, int rel) {
    int o = WORLD_RELS[rel].obj;
    if (w->lexicon == WL_DISTINCT && WORLD_RELS[rel].domain == WD_BIO && o == WP_PLANT) return WP_CROP;
    return o;
}

const char *world_pool_name(int pool) { return pool >= 0 && pool < WP_COUNT ? POOL_INFO[pool].name : "?"; }

/* one syllable-built word of nsyl syllables from inventory inv, lower case */
static void gen_word(const inventory *inv, rng_xoshiro *r, int nsyl, char *out, size_t cap) {
    out[0] = 0;
    for (int i = 0; i < nsyl; i++) {
        strncat(out, inv->onset[rng_xoshiro_below(r, (uint32_t)inv->nonset)], cap - strlen(out) - 1);
        strncat(out, inv->vowel[rng_xoshiro_below(r, (uint32_t)inv->nvowel)], cap - strlen(out) - 1);
    }
    strncat(out, inv->coda[rng_xoshiro_below(r, (uint32_t)inv->ncoda)], cap - strlen(out) - 1);
}

typedef struct nameset { char **v; int n, cap; } nameset;

static int nameset_has(const nameset *s, const char *w) {
    for (int i = 0; i < s->n; i++)
        if (!strcasecmp(s->v[i], w)) return 1;
    return 0;
}

/* a fresh word (2 or 3 syllables) not used anywhere else in the world */
static void fresh_word(const inventory *inv, rng_xoshiro *r, nameset *used, int nsyl, char *out, size_t cap) {
    for (;;) {
        gen_word(inv, r, nsyl, out, cap);
        if (strlen(out) >= 4 && !nameset_has(used, out)) break;
    }
    if (used->n == used->cap) { used->cap = used->cap ? used->cap * 2 : 512; used->v = xrealloc(used->v, (size_t)used->cap * sizeof(char *)); }
    used->v[used->n++] = xstrdup(out);
}

static char *cap_first(char *s) { s[0] = (char)toupper((unsigned char)s[0]); return s; }

/* a name of pool from inventory inv; hazard: the distinct lexicon's suffix words for vectors and
 * remedies (the shared ones share "salt" with the goods and the eras) */
static char *make_name(int pool, const inventory *inv, int hazard, rng_xoshiro *r, nameset *used) {
    char a[64], b[64];
    static const char *GUILD_SFX[] = {"Guild", "Company", "Works", "House"};
    static const char *GOOD_SFX[] = {"silk", "salt", "glass", "wool", "spice", "tea"};
    static const char *VEC_SFX_SHARED[] = {"beetle", "moth", "fly", "mite"}, *VEC_SFX_HAZARD[] = {"weevil", "aphid", "thrips", "leafhopper"};
    static const char *REM_SFX_SHARED[] = {"salt", "oil", "wash", "ash"}, *REM_SFX_HAZARD[] = {"tincture", "fumigant", "drench", "powder"};
    static const char *VEN_SFX[] = {"Labs", "Systems", "Networks"};
    const char **VEC_SFX = hazard ? VEC_SFX_HAZARD : VEC_SFX_SHARED, **REM_SFX = hazard ? REM_SFX_HAZARD : REM_SFX_SHARED;
    switch (pool) {
    case WP_PERSON:
        fresh_word(inv, r, used, 2, a, sizeof a);
        fresh_word(inv, r, used, 2, b, sizeof b);
        return xasprintf("%s %s", cap_first(a), cap_first(b));
    case WP_COUNTRY: case WP_SCRIPT: case WP_FAMILY:
        fresh_word(inv, r, used, 2 + (int)rng_xoshiro_below(r, 2), a, sizeof a);
        return xstrdup(cap_first(a));
    case WP_LANGUAGE:
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xasprintf("%sic", cap_first(a));
    case WP_GUILD:
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xasprintf("%s %s", cap_first(a), GUILD_SFX[rng_xoshiro_below(r, NEL(GUILD_SFX))]);
    case WP_GOOD:
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xasprintf("%s %s", a, GOOD_SFX[rng_xoshiro_below(r, NEL(GOOD_SFX))]);
    case WP_VECTOR:
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xasprintf("%s %s", a, VEC_SFX[rng_xoshiro_below(r, NEL(VEC_SFX_SHARED))]);
    case WP_REMEDY:
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xasprintf("%s %s", a, REM_SFX[rng_xoshiro_below(r, NEL(REM_SFX_SHARED))]);
    case WP_CIPHER:
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xasprintf("%s cipher", cap_first(a));
    case WP_VENDOR:
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xasprintf("%s %s", cap_first(a), VEN_SFX[rng_xoshiro_below(r, NEL(VEN_SFX))]);
    case WP_ANIMAL: case WP_PLANT: case WP_CROP:
        fresh_word(inv, r, used, 2 + (int)rng_xoshiro_below(r, 2), a, sizeof a);
        return xstrdup(a);
    default: /* city, river, currency, planet, star, dish, blight, protocol */
        fresh_word(inv, r, used, 2, a, sizeof a);
        return xstrdup(cap_first(a));
    }
}

static const char **fixed_list(int pool) {
    switch (pool) {
    case WP_OCCUPATION: return W_OCCUPATION;
    case WP_INSTRUMENT: return W_INSTRUMENT;
    case WP_ERA: return W_ERA;
    case WP_HABITAT: return W_HABITAT;
    case WP_DIET: return W_DIET;
    case WP_COLOR: return W_COLOR;
    case WP_USE: return W_USE;
    case WP_NUMBER: return W_NUMBER;
    case WP_SYMPTOM: return W_SYMPTOM;
    case WP_SEASON: return W_SEASON;
    case WP_TRANSPORT: return W_TRANSPORT;
    case WP_FLAW: return W_FLAW;
    default: return NULL;
    }
}

/* WL_DISTINCT: replace the hazard pools (drawn above exactly as in the shared lexicon, so every
 * general pool is the shared lexicon's) by names of the hazard inventory from their own stream */
static void make_hazard_pools(world *w) {
    rng_xoshiro r;
    rng_xoshiro_seed(&r, w->seed, 2);
    nameset used = {0};
    for (int p = 0; p < WP_COUNT; p++) {
        if (!world_hazard_pool(p)) continue;
        wpoolv *pv = &w->pools[p];
        for (int i = 0; i < pv->n; i++) free(pv->v[i]);
        free(pv->v);
        pv->n = p == WP_CROP ? CROP_N : POOL_INFO[p].n;
        pv->v = xcalloc((size_t)pv->n, sizeof(char *));
        for (int i = 0; i < pv->n; i++)
            pv->v[i] = p == WP_SYMPTOM ? xstrdup(H_SYMPTOM[i])
                     : p == WP_SEASON  ? xstrdup(H_SEASON[i])
                                       : make_name(p, &INV_HAZARD, 1, &r, &used);
    }
    for (int i = 0; i < used.n; i++) free(used.v[i]);
    free(used.v);
}

void world_make_pools(world *w, rng_xoshiro *r) {
    nameset used = {0};
    for (int p = 0; p < WP_COUNT; p++) {
        int n = POOL_INFO[p].n;
        w->pools[p].n = n;
        w->pools[p].v = xcalloc((size_t)n, sizeof(char *));
        const char **fixed = fixed_list(p);
        for (int i = 0; i < n; i++) {
            if (fixed) w->pools[p].v[i] = xstrdup(fixed[i]);
            else if (p == WP_PORT) {
                char *s;
                int dup;
                do {  /* distinct 4-digit ports */
                    s = xasprintf("%u", 1000 + rng_xoshiro_below(r, 9000));
                    dup = 0;
                    for (int k = 0; k < i; k++) dup |= !strcmp(w->pools[p].v[k], s);
                    if (dup) free(s);
                } while (dup);
                w->pools[p].v[i] = s;
            } else w->pools[p].v[i] = make_name(p, &INV_GENERAL, 0, r, &used);
        }
    }
    for (int i = 0; i < used.n; i++) free(used.v[i]);
    free(used.v);
    if (w->lexicon == WL_DISTINCT) make_hazard_pools(w);
}
