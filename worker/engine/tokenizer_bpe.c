/* tokenizer_bpe.c - the BPE model of the tokenizer: string and pair hash maps, the merge loop
 * (a binary heap of candidate merges ordered by rank then position, as the `tokenizers` package
 * does), byte fallback / unk handling for characters missing from the vocab, ignore_merges, and
 * a direct-mapped cache of recent words. */
#include <stdlib.h>
#include <string.h>
#include "worker/engine/tokenizer_internal.h"
#include "worker/engine/utf8.h"

uint64_t tok_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

void tok_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t v) {
    if (*n == *cap) { *cap = *cap ? *cap * 2 : 16; *ids = xrealloc(*ids, *cap * sizeof **ids); }
    (*ids)[(*n)++] = v;
}

/* ---- string map ---- */
void tok_strmap_init(tok_strmap *m, size_t expect) {
    m->cap = pow2_at_least(expect * 2 + 1);
    m->n = 0;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->klen = xcalloc(m->cap, sizeof *m->klen);
    m->vals = xcalloc(m->cap, sizeof *m->vals);
}

void tok_strmap_clear(tok_strmap *m) {
    if (!m || !m->keys) return;
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys); free(m->klen); free(m->vals);
    memset(m, 0, sizeof *m);
}

static void strmap_grow(tok_strmap *m) {
    tok_strmap nm;
    nm.cap = m->cap * 2; nm.n = m->n;
    nm.keys = xcalloc(nm.cap, sizeof *nm.keys);
    nm.klen = xcalloc(nm.cap, sizeof *nm.klen);
    nm.vals = xcalloc(nm.cap, sizeof *nm.vals);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = tok_hash(m->keys[i], m->klen[i]) & (nm.cap - 1);
        while (nm.keys[j]) j = (j + 1) & (nm.cap - 1);
        nm.keys[j] = m->keys[i]; nm.klen[j] = m->klen[i]; nm.vals[j] = m->vals[i];
    }
    free(m->keys); free(m->klen); free(m->vals);
    *m = nm;
}

bool tok_strmap_put(tok_strmap *m, const char *k, size_t len, int32_t v) {
    if ((m->n + 1) * 2 > m->cap) strmap_grow(m);
    size_t j = tok_hash(k, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->klen[j] == len && memcmp(m->keys[j], k, len) == 0) { m->vals[j] = v; return false; }
        j = (j + 1) & (m->cap - 1);
    }
    char *c = xmalloc(len + 1);
    memcpy(c, k, len); c[len] = 0;
    m->keys[j] = c; m->klen[j] = (uint32_t)len; m->vals[j] = v; m->n++;
    return true;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *k, size_t len) {
    if (!m->keys) return -1;
    size_t j = tok_hash(k, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->klen[j] == len && memcmp(m->keys[j], k, len) == 0) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---- pair map ---- */
static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static size_t pair_slot(uint64_t k, size_t cap) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

void tok_pairmap_init(tok_pairmap *m, size_t expect) {
    m->cap = pow2_at_least(expect * 2 + 1);
    m->n = 0;
    m->keys = xmalloc(m->cap * sizeof *m->keys);
    memset(m->keys, 0xff, m->cap * sizeof *m->keys);
    m->rank = xmalloc(m->cap * sizeof *m->rank);
    m->merged = xmalloc(m->cap * sizeof *m->merged);
}

void tok_pairmap_clear(tok_pairmap *m) {
    if (!m) return;
    free(m->keys); free(m->rank); free(m->merged);
    memset(m, 0, sizeof *m);
}

void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    if ((m->n + 1) * 2 > m->cap) {
        tok_pairmap nm;
        nm.cap = m->cap * 2; nm.n = 0;
        nm.keys = xmalloc(nm.cap * sizeof *nm.keys);
        memset(nm.keys, 0xff, nm.cap * sizeof *nm.keys);
        nm.rank = xmalloc(nm.cap * sizeof *nm.rank);
        nm.merged = xmalloc(nm.cap * sizeof *nm.merged);
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i] == UINT64_MAX) continue;
            size_t j = pair_slot(m->keys[i], nm.cap);
            while (nm.keys[j] != UINT64_MAX) j = (j + 1) & (nm.cap - 1);
            nm.keys[j] = m->keys[i]; nm.rank[j] = m->rank[i]; nm.merged[j] = m->merged[i]; nm.n++;
        }
        tok_pairmap_clear(m);
        *m = nm;
    }
    uint64_t k = pair_key(a, b);
    size_t j = pair_slot(k, m->cap);
    while (m->keys[j] != UINT64_MAX) {
        if (m->keys[j] == k) return; /* first (lowest) rank wins */
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = k; m->rank[j] = rank; m->merged[j] = merged; m->n++;
}

bool tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged) {
    if (!m->keys || a < 0 || b < 0) return false;
    uint64_t k = pair_key(a, b);
    size_t j = pair_slot(k, m->cap);
    while (m->keys[j] != UINT64_MAX) {
        if (m->keys[j] == k) { *rank = m->rank[j]; *merged = m->merged[j]; return true; }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

/* ---- merge loop ---- */
typedef struct sym { int32_t id; int prev, next; bool live; } sym;
typedef struct cand { int32_t rank; int pos; int32_t merged; } cand;

static bool cand_less(const cand *a, const cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static void heap_push(cand **h, size_t *n, size_t *cap, cand c) {
    if (*n == *cap) { *cap = *cap ? *cap * 2 : 32; *h = xrealloc(*h, *cap * sizeof **h); }
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &(*h)[p])) break;
        (*h)[i] = (*h)[p]; i = p;
    }
    (*h)[i] = c;
}
static cand heap_pop(cand *h, size_t *n) {
    cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *mv = &last;
        if (l < *n && cand_less(&h[l], mv)) { m = l; mv = &h[l]; }
        if (r < *n && cand_less(&h[r], mv)) { m = r; }
        if (m == i) break;
        h[i] = h[m]; i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static void add_cand(const tokenizer *t, const sym *s, int pos, cand **h, size_t *hn, size_t *hcap) {
    int nx = s[pos].next;
    if (nx < 0) return;
    int32_t rank, merged;
    if (tok_pairmap_get(&t->merges, s[pos].id, s[nx].id, &rank, &merged))
        heap_push(h, hn, hcap, (cand){rank, pos, merged});
}

/* symbols of the word before merging: one per character (vocab id), byte fallback or unk */
static int word_symbols(const tokenizer *t, const char *w, size_t len, sym **out) {
    sym *s = xmalloc((len + 1) * sizeof *s * 1);
    size_t cap = len + 1;
    int n = 0;
    bool last_unk = false;
    for (size_t i = 0; i < len;) {
        int l = utf8_len1((unsigned char)w[i]);
        if (i + (size_t)l > len) l = (int)(len - i);
        int32_t id = tok_strmap_get(&t->vocab, w + i, (size_t)l);
        if (id >= 0) {
            if ((size_t)n + 1 > cap) { cap *= 2; s = xrealloc(s, cap * sizeof *s); }
            s[n++].id = id; last_unk = false;
        } else {
            bool done = false;
            if (t->byte_fallback) {
                bool all = true;
                for (int k = 0; k < l; k++) if (t->byte_ids[(unsigned char)w[i + k]] < 0) all = false;
                if (all) {
                    for (int k = 0; k < l; k++) {
                        if ((size_t)n + 1 > cap) { cap *= 2; s = xrealloc(s, cap * sizeof *s); }
                        s[n++].id = t->byte_ids[(unsigned char)w[i + k]];
                    }
                    done = true; last_unk = false;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (!(t->fuse_unk && last_unk)) {
                    if ((size_t)n + 1 > cap) { cap *= 2; s = xrealloc(s, cap * sizeof *s); }
                    s[n++].id = t->unk_id;
                }
                last_unk = true;
            }
            /* no unk token: the character is dropped, as `tokenizers` does */
        }
        i += (size_t)l;
    }
    for (int k = 0; k < n; k++) { s[k].prev = k - 1; s[k].next = k + 1 < n ? k + 1 : -1; s[k].live = true; }
    *out = s;
    return n;
}

static void bpe_uncached(const tokenizer *t, const char *w, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->vocab, w, len);
        if (id >= 0) { tok_push_id(ids, n, cap, id); return; }
    }
    sym *s;
    int ns = word_symbols(t, w, len, &s);
    cand *h = NULL; size_t hn = 0, hcap = 0;
    for (int i = 0; i + 1 < ns; i++) add_cand(t, s, i, &h, &hn, &hcap);
    while (hn) {
        cand c = heap_pop(h, &hn);
        if (!s[c.pos].live || s[c.pos].next < 0) continue;
        int nx = s[c.pos].next;
        int32_t r, m;
        if (!tok_pairmap_get(&t->merges, s[c.pos].id, s[nx].id, &r, &m) || m != c.merged) continue;
        s[c.pos].id = c.merged;
        s[nx].live = false;
        s[c.pos].next = s[nx].next;
        if (s[nx].next >= 0) s[s[nx].next].prev = c.pos;
        if (s[c.pos].prev >= 0) add_cand(t, s, s[c.pos].prev, &h, &hn, &hcap);
        add_cand(t, s, c.pos, &h, &hn, &hcap);
    }
    for (int i = 0; i < ns && i >= 0; i = s[i].next) tok_push_id(ids, n, cap, s[i].id);
    free(h); free(s);
}

void tok_bpe_word(const tokenizer *t, const char *w, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    if (len == 0) return;
    tokenizer *mt = (tokenizer *)t; /* the cache is the one mutable part, under mu */
    bool cacheable = len <= 128 && mt->cache;
    size_t slot = 0;
    if (cacheable) {
        slot = tok_hash(w, len) & (TOK_CACHE_SLOTS - 1);
        pthread_mutex_lock(&mt->mu);
        tok_cache_ent *e = &mt->cache[slot];
        if (e->key && e->klen == len && memcmp(e->key, w, len) == 0) {
            for (uint32_t k = 0; k < e->n; k++) tok_push_id(ids, n, cap, e->ids[k]);
            pthread_mutex_unlock(&mt->mu);
            return;
        }
        pthread_mutex_unlock(&mt->mu);
    }
    size_t n0 = *n;
    bpe_uncached(t, w, len, ids, n, cap);
    if (cacheable) {
        pthread_mutex_lock(&mt->mu);
        tok_cache_ent *e = &mt->cache[slot];
        free(e->key); free(e->ids);
        e->key = xmalloc(len ? len : 1); if (len) memcpy(e->key, w, len); e->klen = (uint32_t)len;
        e->n = (uint32_t)(*n - n0);
        e->ids = xmalloc((e->n ? e->n : 1) * sizeof *e->ids);
        if (e->n) memcpy(e->ids, *ids + n0, e->n * sizeof *e->ids); /* *ids may be NULL when n is 0 */
        pthread_mutex_unlock(&mt->mu);
    }
}

void tok_cache_clear(tokenizer *t) {
    if (!t || !t->cache) return;
    for (size_t i = 0; i < TOK_CACHE_SLOTS; i++) { free(t->cache[i].key); free(t->cache[i].ids); }
    free(t->cache);
    t->cache = NULL;
}
