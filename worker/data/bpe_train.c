/* bpe_train.c - the byte-level BPE trainer of bpe_train.h: word counting through the engine
 * tokenizer's Llama-3 splitter, merge learning with incremental pair counts, and the
 * tokenizer.json / tokenizer_config.json writer. */
#include "worker/data/bpe_train.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "worker/engine/tokenizer_internal.h"
#include "worker/engine/utf8.h"

typedef struct bpe_word {
    int32_t *sym;        /* [len] current token ids */
    int len;
    int64_t count;       /* occurrences in the texts */
} bpe_word;

typedef struct bpe_tok {
    char *s;             /* raw bytes */
    size_t n;
} bpe_tok;

/* pair -> count, open addressing; entries are never removed (a count may drop to 0) */
typedef struct pair_tab {
    uint64_t *keys;      /* [cap], UINT64_MAX = empty */
    int64_t *cnt;        /* [cap] */
    size_t cap, n;
} pair_tab;

struct bpe_trainer {
    tok_strmap word_ix;  /* raw bytes -> index in words */
    bpe_word *words; size_t n_words, cap_words;
    bpe_tok *toks; int n_toks, cap_toks;      /* model vocabulary by id */
    int32_t (*merges)[2]; int n_merges;        /* merge i: (left id, right id) -> id 256 + i */
    bool trained;
    pair_tab pairs;
};

static const char *SPECIALS[3] = {BPE_BOS, BPE_EOS, BPE_PAD};

bpe_train_opts bpe_train_opts_default(void) {
    static const char *const forced[] = {" A", " B", " C", " D", NULL};
    bpe_train_opts o = {.vocab_size = 2048, .min_frequency = 2, .forced = forced};
    return o;
}

/* ---- pair table ---- */

static uint64_t pkey(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t phash(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53ULL; k ^= k >> 33;
    return (size_t)k;
}
static void pair_init(pair_tab *p, size_t cap) {
    p->cap = cap; p->n = 0;
    p->keys = xmalloc(cap * sizeof *p->keys);
    p->cnt = xcalloc(cap, sizeof *p->cnt);
    memset(p->keys, 0xff, cap * sizeof *p->keys);
}
static void pair_add(pair_tab *p, int32_t a, int32_t b, int64_t d);
static void pair_grow(pair_tab *p) {
    pair_tab q;
    pair_init(&q, p->cap * 2);
    for (size_t i = 0; i < p->cap; i++)
        if (p->keys[i] != UINT64_MAX && p->cnt[i] > 0) pair_add(&q, (int32_t)(p->keys[i] >> 32), (int32_t)(uint32_t)p->keys[i], p->cnt[i]);
    free(p->keys); free(p->cnt);
    *p = q;
}
static void pair_add(pair_tab *p, int32_t a, int32_t b, int64_t d) {
    if (2 * (p->n + 1) > p->cap) pair_grow(p);
    uint64_t k = pkey(a, b);
    size_t i = phash(k) & (p->cap - 1);
    while (p->keys[i] != UINT64_MAX && p->keys[i] != k) i = (i + 1) & (p->cap - 1);
    if (p->keys[i] == UINT64_MAX) { p->keys[i] = k; p->n++; }
    p->cnt[i] += d;
}
static void pair_clear(pair_tab *p) { free(p->keys); free(p->cnt); p->keys = NULL; p->cnt = NULL; }

/* ---- life cycle ---- */

bpe_trainer *bpe_trainer_new(void) {
    bpe_trainer *t = xcalloc(1, sizeof *t);
    tok_strmap_init(&t->word_ix, 1024);
    return t;
}

void bpe_trainer_free(bpe_trainer **tp) {
    if (!tp || !*tp) return;
    bpe_trainer *t = *tp;
    tok_strmap_clear(&t->word_ix);
    for (size_t i = 0; i < t->n_words; i++) free(t->words[i].sym);
    free(t->words);
    for (int i = 0; i < t->n_toks; i++) free(t->toks[i].s);
    free(t->toks);
    free(t->merges);
    pair_clear(&t->pairs);
    free(t);
    *tp = NULL;
}

static void add_word(bpe_trainer *t, const char *s, size_t n) {
    int32_t ix = tok_strmap_get(&t->word_ix, s, n);
    if (ix >= 0) { t->words[ix].count++; return; }
    if (t->n_words == t->cap_words) {
        t->cap_words = t->cap_words ? 2 * t->cap_words : 1024;
        t->words = xrealloc(t->words, t->cap_words * sizeof *t->words);
    }
    bpe_word *w = &t->words[t->n_words];
    w->sym = xmalloc(n * sizeof *w->sym);
    for (size_t i = 0; i < n; i++) w->sym[i] = (unsigned char)s[i];
    w->len = (int)n;
    w->count = 1;
    tok_strmap_put(&t->word_ix, s, n, (int32_t)t->n_words);
    t->n_words++;
}

int bpe_trainer_feed(bpe_trainer *t, const char *text, size_t len, cis_err *err) {
    if (t->trained) return err_set(err, CIS_EINVAL, "bpe_trainer_feed: the trainer has already been trained");
    size_t bad;
    if (!utf8_validate(text, len, &bad)) return err_set(err, CIS_EINVAL, "invalid UTF-8 at byte offset %zu", bad);
    uint32_t *cps = xmalloc((len + 1) * sizeof *cps);
    size_t *off = xmalloc((len + 1) * sizeof *off);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int k = utf8_decode(text + i, len - i, &cps[n]);
        off[n++] = i;
        i += (size_t)k;
    }
    off[n] = len;
    for (size_t i = 0; i < n;) {
        size_t j = tok_split_match(SPLIT_LLAMA3, cps, n, i);
        add_word(t, text + off[i], off[j] - off[i]);
        i = j;
    }
    free(cps); free(off);
    return 0;
}

/* ---- training ---- */

static int new_token(bpe_trainer *t, int32_t a, int32_t b) {
    if (t->n_toks == t->cap_toks) {
        t->cap_toks = t->cap_toks ? 2 * t->cap_toks : 512;
        t->toks = xrealloc(t->toks, (size_t)t->cap_toks * sizeof *t->toks);
    }
    bpe_tok *x = &t->toks[t->n_toks];
    x->n = t->toks[a].n + t->toks[b].n;
    x->s = xmalloc(x->n + 1);
    memcpy(x->s, t->toks[a].s, t->toks[a].n);
    memcpy(x->s + t->toks[a].n, t->toks[b].s, t->toks[b].n);
    x->s[x->n] = 0;
    t->merges = xrealloc(t->merges, (size_t)(t->n_merges + 1) * sizeof *t->merges);
    t->merges[t->n_merges][0] = a;
    t->merges[t->n_merges][1] = b;
    t->n_merges++;
    return t->n_toks++;
}

static bool word_has(const bpe_word *w, int32_t a, int32_t b) {
    for (int i = 0; i + 1 < w->len; i++)
        if (w->sym[i] == a && w->sym[i + 1] == b) return true;
    return false;
}

/* replace (a, b) by id in every word holding it, keeping the pair counts exact */
static void apply_merge(bpe_trainer *t, int32_t a, int32_t b, int32_t id) {
    for (size_t k = 0; k < t->n_words; k++) {
        bpe_word *w = &t->words[k];
        if (w->len < 2 || !word_has(w, a, b)) continue;
        for (int i = 0; i + 1 < w->len; i++) pair_add(&t->pairs, w->sym[i], w->sym[i + 1], -w->count);
        int o = 0;
        for (int i = 0; i < w->len;) {
            if (i + 1 < w->len && w->sym[i] == a && w->sym[i + 1] == b) { w->sym[o++] = id; i += 2; }
            else w->sym[o++] = w->sym[i++];
        }
        w->len = o;
        for (int i = 0; i + 1 < w->len; i++) pair_add(&t->pairs, w->sym[i], w->sym[i + 1], w->count);
    }
}

/* the token id of raw bytes s[0..n) when it exists */
static int32_t find_tok(const bpe_trainer *t, const char *s, size_t n) {
    for (int i = 0; i < t->n_toks; i++)
        if (t->toks[i].n == n && !memcmp(t->toks[i].s, s, n)) return i;
    return -1;
}

int bpe_trainer_train(bpe_trainer *t, const bpe_train_opts *o, cis_err *err) {
    if (t->trained) return err_set(err, CIS_EINVAL, "bpe_trainer_train: already trained");
    int n_forced_max = 0;
    for (int i = 0; o->forced && o->forced[i]; i++) n_forced_max += (int)strlen(o->forced[i]);
    if (o->vocab_size < 256 + 3 + n_forced_max)
        return err_set(err, CIS_EINVAL, "bpe vocab_size: expected >= %d (256 bytes + 3 specials + forced merges), got %d",
                       256 + 3 + n_forced_max, o->vocab_size);
    if (o->min_frequency < 1) return err_set(err, CIS_EINVAL, "bpe min_frequency: expected >= 1, got %d", o->min_frequency);
    t->trained = true;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (t->n_toks == t->cap_toks) {
            t->cap_toks = t->cap_toks ? 2 * t->cap_toks : 512;
            t->toks = xrealloc(t->toks, (size_t)t->cap_toks * sizeof *t->toks);
        }
        t->toks[t->n_toks].s = xmalloc(2);
        t->toks[t->n_toks].s[0] = c; t->toks[t->n_toks].s[1] = 0;
        t->toks[t->n_toks].n = 1;
        t->n_toks++;
    }
    pair_init(&t->pairs, 1024);
    for (size_t k = 0; k < t->n_words; k++) {
        bpe_word *w = &t->words[k];
        for (int i = 0; i + 1 < w->len; i++) pair_add(&t->pairs, w->sym[i], w->sym[i + 1], w->count);
    }
    int target = o->vocab_size - 3;
    /* forced strings: merged left to right, byte by byte */
    for (int f = 0; o->forced && o->forced[f]; f++) {
        const char *s = o->forced[f];
        size_t n = strlen(s);
        if (n == 0) continue;
        int32_t cur = (unsigned char)s[0];
        for (size_t j = 1; j < n && t->n_toks < target; j++) {
            int32_t have = find_tok(t, s, j + 1);
            if (have >= 0) { cur = have; continue; }
            int32_t id = new_token(t, cur, (unsigned char)s[j]);
            apply_merge(t, cur, (unsigned char)s[j], id);
            cur = id;
        }
    }
    /* learned merges */
    while (t->n_toks < target) {
        int64_t best = 0;
        uint64_t bk = UINT64_MAX;
        for (size_t i = 0; i < t->pairs.cap; i++) {
            uint64_t k = t->pairs.keys[i];
            if (k == UINT64_MAX) continue;
            int64_t c = t->pairs.cnt[i];
            if (c > best || (c == best && c > 0 && k < bk)) { best = c; bk = k; }
        }
        if (best < o->min_frequency || bk == UINT64_MAX) break;
        int32_t a = (int32_t)(bk >> 32), b = (int32_t)(uint32_t)bk;
        int32_t id = new_token(t, a, b);
        apply_merge(t, a, b, id);
    }
    return 0;
}

int bpe_trainer_vocab_size(const bpe_trainer *t) { return t->trained ? t->n_toks + 3 : 0; }
int bpe_trainer_n_merges(const bpe_trainer *t) { return t->n_merges; }
size_t bpe_trainer_n_words(const bpe_trainer *t) { return t->n_words; }

int bpe_trainer_merge(const bpe_trainer *t, int i, const char **l, size_t *llen, const char **r, size_t *rlen) {
    if (i < 0 || i >= t->n_merges) return -1;
    const bpe_tok *a = &t->toks[t->merges[i][0]], *b = &t->toks[t->merges[i][1]];
    *l = a->s; *llen = a->n; *r = b->s; *rlen = b->n;
    return 0;
}

/* ---- writing ---- */

static uint32_t byte_cp(unsigned b) {
    bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (keep) return b;
    unsigned extra = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) extra++;
    return 256 + extra;
}

char *bpe_byte_level(const char *s, size_t n) {
    static uint32_t map[256];
    static bool init;
    if (!init) { for (unsigned b = 0; b < 256; b++) map[b] = byte_cp(b); init = true; }
    char *out = xmalloc(2 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += (size_t)utf8_encode(map[(unsigned char)s[i]], out + o);
    out[o] = 0;
    return out;
}

static json_t *bytelevel_obj(bool add_prefix_space, bool trim_offsets, bool use_regex) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("ByteLevel"));
    json_object_set_new(o, "add_prefix_space", json_boolean(add_prefix_space));
    json_object_set_new(o, "trim_offsets", json_boolean(trim_offsets));
    json_object_set_new(o, "use_regex", json_boolean(use_regex));
    return o;
}

static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int dump_json(json_t *root, const char *path, cis_err *err) {
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s) return err_set(err, CIS_EIO, "%s: JSON serialisation failed", path);
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n'; s[n + 1] = 0;
    int rc = write_file_atomic(path, s, n + 1, err);
    free(s);
    return rc;
}

int bpe_trainer_save(const bpe_trainer *t, const char *dir, int model_max_length, cis_err *err) {
    if (!t->trained) return err_set(err, CIS_EINVAL, "bpe_trainer_save: train first");
    if (mkdir_p(dir, err)) return -1;
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    json_t *added = json_array();
    for (int i = 0; i < 3; i++) {
        json_t *a = json_object();
        json_object_set_new(a, "id", json_integer(t->n_toks + i));
        json_object_set_new(a, "content", json_string(SPECIALS[i]));
        json_object_set_new(a, "single_word", json_false());
        json_object_set_new(a, "lstrip", json_false());
        json_object_set_new(a, "rstrip", json_false());
        json_object_set_new(a, "normalized", json_false());
        json_object_set_new(a, "special", json_true());
        json_array_append_new(added, a);
    }
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_null());
    /* pre-tokenizer: Split(Llama-3 regex, Isolated) + ByteLevel(no regex) */
    json_t *split = json_object();
    json_object_set_new(split, "type", json_string("Split"));
    json_t *pat = json_object();
    json_object_set_new(pat, "Regex", json_string(LLAMA3_REGEX));
    json_object_set_new(split, "pattern", pat);
    json_object_set_new(split, "behavior", json_string("Isolated"));
    json_object_set_new(split, "invert", json_false());
    json_t *pts = json_array();
    json_array_append_new(pts, split);
    json_array_append_new(pts, bytelevel_obj(false, true, false));
    json_t *pre = json_object();
    json_object_set_new(pre, "type", json_string("Sequence"));
    json_object_set_new(pre, "pretokenizers", pts);
    json_object_set_new(root, "pre_tokenizer", pre);
    /* post-processor: ByteLevel + TemplateProcessing with BOS */
    int bos = t->n_toks;
    json_t *tp = json_object();
    json_object_set_new(tp, "type", json_string("TemplateProcessing"));
    json_t *single = json_array(), *pair = json_array();
    json_array_append_new(single, json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", BPE_BOS, "type_id", 0));
    json_array_append_new(single, json_pack("{s:{s:s,s:i}}", "Sequence", "id", "A", "type_id", 0));
    json_array_append_new(pair, json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", BPE_BOS, "type_id", 0));
    json_array_append_new(pair, json_pack("{s:{s:s,s:i}}", "Sequence", "id", "A", "type_id", 0));
    json_array_append_new(pair, json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", BPE_BOS, "type_id", 1));
    json_array_append_new(pair, json_pack("{s:{s:s,s:i}}", "Sequence", "id", "B", "type_id", 1));
    json_object_set_new(tp, "single", single);
    json_object_set_new(tp, "pair", pair);
    json_object_set_new(tp, "special_tokens",
                        json_pack("{s:{s:s,s:[i],s:[s]}}", BPE_BOS, "id", BPE_BOS, "ids", bos, "tokens", BPE_BOS));
    json_t *procs = json_array();
    json_array_append_new(procs, bytelevel_obj(true, false, true));
    json_array_append_new(procs, tp);
    json_t *post = json_object();
    json_object_set_new(post, "type", json_string("Sequence"));
    json_object_set_new(post, "processors", procs);
    json_object_set_new(root, "post_processor", post);
    json_object_set_new(root, "decoder", bytelevel_obj(true, true, true));
    /* model */
    json_t *m = json_object();
    json_object_set_new(m, "type", json_string("BPE"));
    json_object_set_new(m, "dropout", json_null());
    json_object_set_new(m, "unk_token", json_null());
    json_object_set_new(m, "continuing_subword_prefix", json_null());
    json_object_set_new(m, "end_of_word_suffix", json_null());
    json_object_set_new(m, "fuse_unk", json_false());
    json_object_set_new(m, "byte_fallback", json_false());
    json_object_set_new(m, "ignore_merges", json_true());
    json_t *vocab = json_object();
    for (int i = 0; i < t->n_toks; i++) {
        char *s = bpe_byte_level(t->toks[i].s, t->toks[i].n);
        json_object_set_new(vocab, s, json_integer(i));
        free(s);
    }
    json_object_set_new(m, "vocab", vocab);
    json_t *merges = json_array();
    for (int i = 0; i < t->n_merges; i++) {
        const bpe_tok *a = &t->toks[t->merges[i][0]], *b = &t->toks[t->merges[i][1]];
        char *x = bpe_byte_level(a->s, a->n), *y = bpe_byte_level(b->s, b->n);
        json_array_append_new(merges, json_pack("[s,s]", x, y));
        free(x); free(y);
    }
    json_object_set_new(m, "merges", merges);
    json_object_set_new(root, "model", m);
    char *path = xasprintf("%s/tokenizer.json", dir);
    int rc = dump_json(root, path, err);
    free(path);
    json_decref(root);
    if (rc) return -1;

    json_t *cfg = json_object();
    json_object_set_new(cfg, "add_bos_token", json_true());
    json_object_set_new(cfg, "add_eos_token", json_false());
    json_object_set_new(cfg, "bos_token", json_string(BPE_BOS));
    json_object_set_new(cfg, "eos_token", json_string(BPE_EOS));
    json_object_set_new(cfg, "pad_token", json_string(BPE_PAD));
    json_object_set_new(cfg, "clean_up_tokenization_spaces", json_false());
    json_object_set_new(cfg, "model_max_length", json_integer(model_max_length));
    json_object_set_new(cfg, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    path = xasprintf("%s/tokenizer_config.json", dir);
    rc = dump_json(cfg, path, err);
    free(path);
    json_decref(cfg);
    if (rc) return -1;
    /* special_tokens_map.json, as transformers writes it */
    json_t *sm = json_pack("{s:s,s:s,s:s}", "bos_token", BPE_BOS, "eos_token", BPE_EOS, "pad_token", BPE_PAD);
    path = xasprintf("%s/special_tokens_map.json", dir);
    rc = dump_json(sm, path, err);
    free(path);
    json_decref(sm);
    return rc;
}
