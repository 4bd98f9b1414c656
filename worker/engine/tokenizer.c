/* tokenizer.c - encode and decode over a loaded tokenizer (tokenizer_load.c builds it):
 * added tokens split out first (non-normalized ones on the raw text, normalized ones after the
 * normalizer), then the pre-tokenizer steps, then BPE per pre-token; the post-processor's BOS/EOS
 * around the result. Decoding runs the decoder steps over the token strings as `tokenizers` does. */
#include <stdlib.h>
#include <string.h>
#include "worker/engine/tokenizer_internal.h"
#include "worker/engine/utf8.h"

/* ---- accessors ---- */
int32_t tokenizer_token_to_id(const tokenizer *t, const char *s) {
    size_t l = strlen(s);
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s) || !strcmp(t->added[i].match, s)) return t->added[i].id;
    return tok_strmap_get(&t->vocab, s, l);
}
const char *tokenizer_id_to_token(const tokenizer *t, int32_t id) {
    return id >= 0 && id < t->id_cap ? t->id2tok[id] : NULL;
}
bool tokenizer_is_special(const tokenizer *t, int32_t id) { return id >= 0 && id < t->id_cap && t->is_special[id]; }
tokenizer_kind tokenizer_get_kind(const tokenizer *t) { return t->kind; }
const char *tokenizer_kind_name(tokenizer_kind k) {
    return k == TOKENIZER_BYTE_LEVEL_BPE ? "byte_level_bpe" : k == TOKENIZER_SENTENCEPIECE_BPE ? "sentencepiece_bpe" : "unknown";
}
int32_t tokenizer_vocab_size(const tokenizer *t) { return t->id_cap; }
int32_t tokenizer_bos_id(const tokenizer *t) { return t->bos_id; }
int32_t tokenizer_eos_id(const tokenizer *t) { return t->eos_id; }
int32_t tokenizer_pad_id(const tokenizer *t) { return t->pad_id; }
int32_t tokenizer_unk_id(const tokenizer *t) { return t->unk_id; }

/* ---- added tokens ---- */
/* the \w that `tokenizers` tests on either side of a single_word added token */
static bool is_word_cp(uint32_t c) { return unicode_is_word(c); }

/* last code point before byte offset i (s valid UTF-8), or 0 when i == 0 */
static uint32_t cp_before(const char *s, size_t i) {
    if (i == 0) return 0;
    size_t j = i - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    uint32_t cp = 0;
    if (utf8_decode(s + j, i - j, &cp) < 0) return 0;
    return cp;
}

/* split s[0..len) on the added tokens whose `normalized` flag equals normalized (leftmost-longest,
 * non-overlapping, like the Aho-Corasick scan of `tokenizers`), appending pieces to out */
static void split_added(const tokenizer *t, const char *s, size_t len, size_t off, bool normalized, tok_pieces *out) {
    size_t start_off = 0;
    size_t i = 0;
    bool any = false;
    for (int k = 0; k < t->n_added; k++) if (t->added[k].normalized == normalized) any = true;
    const bool *first = t->added_first[normalized ? 1 : 0];
    while (any && i < len) {
        if (!first[(unsigned char)s[i]]) { i++; continue; }
        int best = -1;
        for (int k = 0; k < t->n_added; k++) {
            const tok_added *a = &t->added[k];
            /* an added token whose (normalized) form is empty matches nothing: a zero-length match
             * would never advance i (issue 13, fuzzing) */
            if (a->len == 0 || a->normalized != normalized || a->match[0] != s[i] || a->len > len - i) continue;
            if (memcmp(s + i, a->match, a->len) == 0 && (best < 0 || a->len > t->added[best].len)) best = k;
        }
        if (best < 0) { i++; continue; }
        const tok_added *a = &t->added[best];
        size_t mstart = i, mstop = i + a->len;
        i = mstop;
        if (a->single_word) {
            uint32_t before = cp_before(s, mstart), after = 0;
            if (mstop < len) utf8_decode(s + mstop, len - mstop, &after);
            if ((mstart > 0 && is_word_cp(before)) || (mstop < len && is_word_cp(after))) continue;
        }
        if (a->lstrip) {
            size_t ns = mstart;
            while (ns > start_off) {
                uint32_t c = cp_before(s, ns);
                if (!unicode_is_space(c)) break;
                ns -= (size_t)utf8_encode(c, (char[4]){0});
            }
            mstart = ns;
        }
        if (a->rstrip) {
            while (mstop < len) {
                uint32_t c;
                int l = utf8_decode(s + mstop, len - mstop, &c);
                if (l < 0 || !unicode_is_space(c)) break;
                mstop += (size_t)l;
            }
            i = mstop;
        }
        if (mstart > start_off) tok_pieces_push(out, s + start_off, mstart - start_off, off + start_off, -1);
        tok_pieces_push(out, s + mstart, mstop - mstart, off + mstart, a->id);
        start_off = mstop;
    }
    if (len > start_off || (len == 0 && start_off == 0)) tok_pieces_push(out, s + start_off, len - start_off, off + start_off, -1);
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                     int32_t **ids_out, size_t *n_out, cis_err *err) {
    *ids_out = NULL; *n_out = 0;
    size_t bad;
    if (!text && len) return err_set(err, CIS_EINVAL, "tokenizer_encode: NULL text");
    if (len && !utf8_validate(text, len, &bad))
        return err_set(err, CIS_EINVAL, "tokenizer_encode: invalid UTF-8 at byte offset %zu of %zu", bad, len);
    int32_t *ids = NULL; size_t n = 0, cap = 0;
    if (add_special) for (int i = 0; i < t->n_prefix; i++) tok_push_id(&ids, &n, &cap, t->prefix_ids[i]);
    tok_pieces raw = {0};
    split_added(t, text ? text : "", len, 0, false, &raw);
    for (size_t i = 0; i < raw.n; i++) {
        if (raw.v[i].added >= 0) { tok_push_id(&ids, &n, &cap, raw.v[i].added); continue; }
        if (raw.v[i].len == 0) continue;
        size_t nl;
        char *norm = tok_normalize(t, raw.v[i].s, raw.v[i].len, &nl);
        tok_pieces np = {0};
        split_added(t, norm, nl, raw.v[i].off, true, &np);
        for (size_t j = 0; j < np.n; j++) {
            if (np.v[j].added >= 0) { tok_push_id(&ids, &n, &cap, np.v[j].added); continue; }
            if (np.v[j].len == 0) continue;
            tok_pieces pre = {0};
            tok_pretokenize(t, np.v[j].s, np.v[j].len, np.v[j].off, &pre);
            for (size_t k = 0; k < pre.n; k++) tok_bpe_word(t, pre.v[k].s, pre.v[k].len, &ids, &n, &cap);
            tok_pieces_clear(&pre);
        }
        tok_pieces_clear(&np);
        free(norm);
    }
    tok_pieces_clear(&raw);
    if (add_special) for (int i = 0; i < t->n_suffix; i++) tok_push_id(&ids, &n, &cap, t->suffix_ids[i]);
    if (!ids) ids = xmalloc(sizeof *ids);
    *ids_out = ids; *n_out = n;
    return 0;
}

/* ---- decoding ---- */
/* the decoder steps work on a list of byte strings (lengths kept: a decoded token may hold NUL) */
typedef struct sstr { char *p; size_t n; } sstr;
typedef struct strlist { sstr *v; size_t n, cap; } strlist;
static void sl_push(strlist *l, char *s, size_t n) { /* takes ownership of s */
    if (l->n == l->cap) { l->cap = l->cap ? l->cap * 2 : 16; l->v = xrealloc(l->v, l->cap * sizeof *l->v); }
    l->v[l->n++] = (sstr){s, n};
}
static char *memdup0(const void *s, size_t n) { char *c = xmalloc(n + 1); memcpy(c, s, n); c[n] = 0; return c; }
static void sl_clear(strlist *l) { for (size_t i = 0; i < l->n; i++) free(l->v[i].p); free(l->v); memset(l, 0, sizeof *l); }

typedef struct buf { char *p; size_t n, cap; } buf;
static void buf_add(buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) { b->cap = (b->n + n + 1) * 2; b->p = xrealloc(b->p, b->cap); }
    memcpy(b->p + b->n, s, n); b->n += n; b->p[b->n] = 0;
}
static char *buf_take(buf *b) { if (!b->p) { b->p = xmalloc(1); b->p[0] = 0; } return b->p; }

/* bytes to a string, each maximal invalid subpart replaced by U+FFFD (Rust's from_utf8_lossy) */
static void lossy_into(buf *o, const unsigned char *s, size_t n) {
    static const char FFFD[] = "\xEF\xBF\xBD";
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_decode((const char *)s + i, n - i, &cp);
        if (l > 0) { buf_add(o, s + i, (size_t)l); i += (size_t)l; continue; }
        unsigned char c = s[i];
        size_t need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
        size_t j = i + 1;
        for (size_t k = 0; k < need && j < n; k++, j++) {
            unsigned char lo = 0x80, hi = 0xBF;
            if (k == 0) {
                if (c == 0xE0) lo = 0xA0; else if (c == 0xED) hi = 0x9F;
                else if (c == 0xF0) lo = 0x90; else if (c == 0xF4) hi = 0x8F;
            }
            if (s[j] < lo || s[j] > hi) break;
        }
        buf_add(o, FFFD, 3);
        i = j;
    }
}

static int hexv(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void dec_bytefallback(strlist *l) {
    strlist o = {0};
    unsigned char *bytes = xmalloc(l->n + 1);
    size_t nb = 0;
    for (size_t i = 0; i <= l->n; i++) {
        const sstr *s = i < l->n ? &l->v[i] : NULL;
        if (s && s->n == 6 && !memcmp(s->p, "<0x", 3) && s->p[5] == '>' && hexv(s->p[3]) >= 0 && hexv(s->p[4]) >= 0) {
            bytes[nb++] = (unsigned char)(hexv(s->p[3]) * 16 + hexv(s->p[4]));
            continue;
        }
        if (nb) {
            if (utf8_validate((const char *)bytes, nb, NULL)) sl_push(&o, memdup0(bytes, nb), nb);
            else for (size_t k = 0; k < nb; k++) sl_push(&o, xstrdup("\xEF\xBF\xBD"), 3);
            nb = 0;
        }
        if (s) sl_push(&o, memdup0(s->p, s->n), s->n);
    }
    free(bytes);
    sl_clear(l);
    *l = o;
}

static void dec_fuse(strlist *l) {
    buf b = {0};
    for (size_t i = 0; i < l->n; i++) buf_add(&b, l->v[i].p, l->v[i].n);
    size_t n = b.n;
    sl_clear(l);
    sl_push(l, buf_take(&b), n);
}

static void dec_strip(strlist *l, const tok_dec *d) {
    uint32_t content = 0;
    utf8_decode(d->a, strlen(d->a), &content);
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i].p;
        size_t bl = l->v[i].n, nch = 0;
        size_t *offs = xmalloc((bl + 1) * sizeof *offs);
        uint32_t *cps = xmalloc((bl + 1) * sizeof *cps);
        for (size_t p = 0; p < bl;) {
            int k = utf8_decode(s + p, bl - p, &cps[nch]);
            if (k < 0) { k = 1; cps[nch] = 0xFFFD; }
            offs[nch++] = p; p += (size_t)k;
        }
        offs[nch] = bl;
        size_t sc = 0, ec = 0;
        while (sc < nch && (int)sc < d->start && cps[sc] == content) sc++;
        while (ec < nch && (int)ec < d->stop && cps[nch - 1 - ec] == content) ec++;
        /* `tokenizers` keeps (byte length - cuts) chars after the start cut */
        size_t take = bl >= sc + ec ? bl - sc - ec : 0;
        size_t end = sc + take < nch ? sc + take : nch;
        size_t nn = offs[end] - offs[sc];
        char *c = memdup0(s + offs[sc], nn);
        free(offs); free(cps); free(l->v[i].p);
        l->v[i] = (sstr){c, nn};
    }
}

static void dec_bytelevel(const tokenizer *t, strlist *l) {
    buf raw = {0};
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i].p;
        size_t bl = l->v[i].n, nb = 0;
        unsigned char *tmp = xmalloc(bl + 1);
        bool ok = true;
        for (size_t p = 0; p < bl;) {
            uint32_t cp;
            int k = utf8_decode(s + p, bl - p, &cp);
            if (k < 0 || cp >= 324 || t->cp2byte[cp] < 0) { ok = false; break; }
            tmp[nb++] = (unsigned char)t->cp2byte[cp];
            p += (size_t)k;
        }
        if (ok) buf_add(&raw, tmp, nb); else buf_add(&raw, s, bl);
        free(tmp);
    }
    buf o = {0};
    lossy_into(&o, (const unsigned char *)(raw.p ? raw.p : ""), raw.n);
    free(raw.p);
    size_t n = o.n;
    sl_clear(l);
    sl_push(l, buf_take(&o), n);
}

static void dec_metaspace(strlist *l, const tok_dec *d) {
    size_t rl = strlen(d->a);
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i].p;
        size_t sn = l->v[i].n;
        buf b = {0};
        for (size_t p = 0; p < sn;) {
            if (p + rl <= sn && !memcmp(s + p, d->a, rl)) {
                if (!(i == 0 && d->prepend != PREPEND_NEVER)) buf_add(&b, " ", 1);
                p += rl;
            } else { buf_add(&b, s + p, 1); p++; }
        }
        size_t n = b.n;
        free(l->v[i].p);
        l->v[i] = (sstr){buf_take(&b), n};
    }
}

int tokenizer_decode_n(const tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out, size_t *out_len) {
    strlist l = {0};
    for (size_t i = 0; i < n; i++) {
        const char *s = tokenizer_id_to_token(t, ids[i]);
        if (!s || (skip_special && t->is_special[ids[i]])) continue;
        sl_push(&l, xstrdup(s), strlen(s));
    }
    buf o = {0};
    if (!t->has_decoder) {
        for (size_t i = 0; i < l.n; i++) { if (i) buf_add(&o, " ", 1); buf_add(&o, l.v[i].p, l.v[i].n); }
    } else {
        for (int k = 0; k < t->n_decs; k++) {
            const tok_dec *d = &t->decs[k];
            switch (d->type) {
            case DEC_REPLACE:
                for (size_t i = 0; i < l.n; i++) {
                    size_t nl;
                    char *r = tok_str_replace(l.v[i].p, l.v[i].n, d->a, d->b, &nl);
                    free(l.v[i].p); l.v[i] = (sstr){r, nl};
                }
                break;
            case DEC_BYTEFALLBACK: dec_bytefallback(&l); break;
            case DEC_FUSE: dec_fuse(&l); break;
            case DEC_STRIP: dec_strip(&l, d); break;
            case DEC_BYTELEVEL: dec_bytelevel(t, &l); break;
            case DEC_METASPACE: dec_metaspace(&l, d); break;
            }
        }
        for (size_t i = 0; i < l.n; i++) buf_add(&o, l.v[i].p, l.v[i].n);
    }
    sl_clear(&l);
    if (out_len) *out_len = o.n;
    *out = buf_take(&o);
    return 0;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out) {
    return tokenizer_decode_n(t, ids, n, skip_special, out, NULL);
}
