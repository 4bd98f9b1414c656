/* tokenizer_pretok.c - text before BPE: the normalizers (Prepend, Replace), the pre-tokenizers
 * (Split with the Llama-3 / GPT-2 / Qwen2 regexes as hand-written matchers, ByteLevel with the
 * GPT-2 byte-to-unicode alphabet, Metaspace). The matchers reproduce the regexes' leftmost-first
 * alternation with backtracking:
 *  Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *  GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *  Qwen2:   the Llama-3 pattern with \p{N} (one digit) in place of \p{N}{1,3}. */
#include <stdlib.h>
#include <string.h>
#include "worker/engine/tokenizer_internal.h"
#include "worker/engine/utf8.h"

static const char RE_LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

tok_split_pattern tok_split_pattern_from(const char *re) {
    if (!strcmp(re, RE_LLAMA3)) return SPLIT_LLAMA3;
    if (!strcmp(re, RE_GPT2)) return SPLIT_GPT2;
    if (!strcmp(re, RE_QWEN2)) return SPLIT_QWEN2;
    return 0;
}

static bool is_L(uint32_t c) { return unicode_is_letter(c); }
static bool is_N(uint32_t c) { return unicode_is_number(c); }
static bool is_S(uint32_t c) { return unicode_is_space(c); }
static bool is_P(uint32_t c) { return !is_S(c) && !is_L(c) && !is_N(c); } /* [^\s\p{L}\p{N}] */
static bool is_nl(uint32_t c) { return c == '\r' || c == '\n'; }

/* case-folded ASCII letter for (?i:...): 'ſ' (U+017F) folds to 's' */
static uint32_t fold(uint32_t c, bool ci) {
    if (!ci) return c;
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x17F) return 's';
    return c;
}

/* 's 't 're 've 'm 'll 'd at i: length in code points, 0 when none */
static size_t contraction(const uint32_t *c, size_t n, size_t i, bool ci) {
    if (c[i] != '\'' || i + 1 >= n) return 0;
    uint32_t a = fold(c[i + 1], ci);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= n) return 0;
    uint32_t b = fold(c[i + 2], ci);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at a white-space position i */
static size_t ws_tail(const uint32_t *c, size_t n, size_t i) {
    size_t e = i;
    while (e < n && is_S(c[e])) e++;
    if (e == n) return e;
    if (e - i >= 2) return e - 1;
    return e;
}

static size_t match_llama3(const uint32_t *c, size_t n, size_t i, size_t maxdig) {
    size_t k = contraction(c, n, i, true);
    if (k) return i + k;
    uint32_t c0 = c[i];
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!is_nl(c0) && !is_L(c0) && !is_N(c0) && i + 1 < n && is_L(c[i + 1])) {
        size_t j = i + 2;
        while (j < n && is_L(c[j])) j++;
        return j;
    }
    if (is_L(c0)) {
        size_t j = i + 1;
        while (j < n && is_L(c[j])) j++;
        return j;
    }
    /* \p{N}{1,maxdig} */
    if (is_N(c0)) {
        size_t j = i + 1;
        while (j < n && j < i + maxdig && is_N(c[j])) j++;
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t p = i + (c0 == ' ' ? 1 : 0);
    if (p < n && is_P(c[p])) {
        size_t j = p + 1;
        while (j < n && is_P(c[j])) j++;
        while (j < n && is_nl(c[j])) j++;
        return j;
    }
    /* c0 is white space here */
    /* \s*[\r\n]+ : up to and including the last \r or \n of the white-space run */
    size_t e = i;
    size_t last_nl = SIZE_MAX;
    while (e < n && is_S(c[e])) { if (is_nl(c[e])) last_nl = e; e++; }
    if (last_nl != SIZE_MAX) return last_nl + 1;
    return ws_tail(c, n, i);
}

static size_t match_gpt2(const uint32_t *c, size_t n, size_t i) {
    size_t k = contraction(c, n, i, false);
    if (k) return i + k;
    size_t p = i + (c[i] == ' ' ? 1 : 0);
    if (p < n) {
        bool (*cls)(uint32_t) = is_L(c[p]) ? is_L : is_N(c[p]) ? is_N : is_P(c[p]) ? is_P : NULL;
        if (cls) {
            size_t j = p + 1;
            while (j < n && cls(c[j])) j++;
            return j;
        }
    }
    return ws_tail(c, n, i);
}

size_t tok_split_match(tok_split_pattern p, const uint32_t *cps, size_t n, size_t i) {
    size_t j;
    switch (p) {
    case SPLIT_LLAMA3: j = match_llama3(cps, n, i, 3); break;
    case SPLIT_QWEN2: j = match_llama3(cps, n, i, 1); break;
    default: j = match_gpt2(cps, n, i); break;
    }
    return j > i ? j : i + 1;
}

/* ---- piece lists ---- */
void tok_pieces_push(tok_pieces *p, const char *s, size_t len, size_t off, int32_t added) {
    if (p->n == p->cap) { p->cap = p->cap ? p->cap * 2 : 16; p->v = xrealloc(p->v, p->cap * sizeof *p->v); }
    char *c = xmalloc(len + 1);
    memcpy(c, s, len); c[len] = 0;
    p->v[p->n++] = (tok_piece){c, len, off, added};
}

void tok_pieces_clear(tok_pieces *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) free(p->v[i].s);
    free(p->v);
    memset(p, 0, sizeof *p);
}

char *tok_str_replace(const char *s, size_t len, const char *pat, const char *rep, size_t *out_len) {
    size_t pl = strlen(pat), rl = strlen(rep), cap = len + 16, n = 0;
    char *o = xmalloc(cap);
    for (size_t i = 0; i < len;) {
        const char *src; size_t sl;
        if (pl && i + pl <= len && memcmp(s + i, pat, pl) == 0) { src = rep; sl = rl; i += pl; }
        else { src = s + i; sl = 1; i++; }
        if (n + sl + 1 > cap) { cap = (n + sl + 1) * 2; o = xrealloc(o, cap); }
        memcpy(o + n, src, sl); n += sl;
    }
    o[n] = 0;
    *out_len = n;
    return o;
}

char *tok_normalize(const tokenizer *t, const char *s, size_t len, size_t *out_len) {
    char *cur = xmalloc(len + 1);
    memcpy(cur, s, len); cur[len] = 0;
    size_t n = len;
    for (int k = 0; k < t->n_norms; k++) {
        const tok_norm *nm = &t->norms[k];
        char *nx; size_t nn;
        if (nm->type == NORM_PREPEND) {
            if (n == 0) continue;
            size_t pl = strlen(nm->a);
            nx = xmalloc(n + pl + 1);
            memcpy(nx, nm->a, pl); memcpy(nx + pl, cur, n); nn = n + pl; nx[nn] = 0;
        } else {
            nx = tok_str_replace(cur, n, nm->a, nm->b, &nn);
        }
        free(cur); cur = nx; n = nn;
    }
    *out_len = n;
    return cur;
}

/* decode s into code points with byte offsets (offs has n+1 entries) */
static size_t decode_cps(const char *s, size_t len, uint32_t **cps, size_t **offs) {
    *cps = xmalloc((len + 1) * sizeof **cps);
    *offs = xmalloc((len + 1) * sizeof **offs);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = utf8_decode(s + i, len - i, &cp);
        if (l < 0) { cp = 0xFFFD; l = 1; } /* input was validated; defensive only */
        (*cps)[n] = cp; (*offs)[n] = i; n++;
        i += (size_t)l;
    }
    (*offs)[n] = len;
    return n;
}

static void split_regex(tok_split_pattern p, const tok_piece *in, tok_pieces *out) {
    uint32_t *cps; size_t *offs;
    size_t n = decode_cps(in->s, in->len, &cps, &offs);
    for (size_t i = 0; i < n;) {
        size_t j = tok_split_match(p, cps, n, i);
        tok_pieces_push(out, in->s + offs[i], offs[j] - offs[i], in->off + offs[i], -1);
        i = j;
    }
    free(cps); free(offs);
}

static void bytelevel_step(const tokenizer *t, const tok_pretok *st, const tok_piece *in, tok_pieces *out) {
    tok_pieces tmp = {0};
    if (st->add_prefix_space && (in->len == 0 || in->s[0] != ' ')) {
        char *c = xmalloc(in->len + 2);
        c[0] = ' '; memcpy(c + 1, in->s, in->len); c[in->len + 1] = 0;
        tok_piece pp = {c, in->len + 1, in->off, -1};
        if (st->use_regex) split_regex(SPLIT_GPT2, &pp, &tmp);
        else tok_pieces_push(&tmp, pp.s, pp.len, pp.off, -1);
        free(c);
    } else if (st->use_regex) {
        split_regex(SPLIT_GPT2, in, &tmp);
    } else {
        tok_pieces_push(&tmp, in->s, in->len, in->off, -1);
    }
    for (size_t k = 0; k < tmp.n; k++) {
        const tok_piece *p = &tmp.v[k];
        char *m = xmalloc(p->len * 2 + 1);
        size_t mn = 0;
        for (size_t i = 0; i < p->len; i++) mn += (size_t)utf8_encode(t->byte2cp[(unsigned char)p->s[i]], m + mn);
        tok_pieces_push(out, m, mn, p->off, -1);
        free(m);
    }
    tok_pieces_clear(&tmp);
}

static void metaspace_step(const tok_pretok *st, const tok_piece *in, tok_pieces *out) {
    size_t n;
    char *r = tok_str_replace(in->s, in->len, " ", st->replacement, &n);
    size_t rl = strlen(st->replacement);
    bool starts = n >= rl && memcmp(r, st->replacement, rl) == 0;
    if (!starts && (st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && in->off == 0))) {
        char *c = xmalloc(n + rl + 1);
        memcpy(c, st->replacement, rl); memcpy(c + rl, r, n); c[n + rl] = 0;
        free(r); r = c; n += rl;
    }
    if (!st->split) {
        tok_pieces_push(out, r, n, in->off, -1);
    } else { /* MergedWithNext: a new piece starts at each replacement char */
        size_t start = 0;
        for (size_t i = 0; i + rl <= n; i++) {
            if (i > start && memcmp(r + i, st->replacement, rl) == 0) {
                tok_pieces_push(out, r + start, i - start, in->off + start, -1);
                start = i;
            }
        }
        if (n > start) tok_pieces_push(out, r + start, n - start, in->off + start, -1);
    }
    free(r);
}

void tok_pretokenize(const tokenizer *t, const char *s, size_t len, size_t off, tok_pieces *out) {
    tok_pieces cur = {0};
    tok_pieces_push(&cur, s, len, off, -1);
    for (int k = 0; k < t->n_pretoks; k++) {
        const tok_pretok *st = &t->pretoks[k];
        tok_pieces nx = {0};
        for (size_t i = 0; i < cur.n; i++) {
            const tok_piece *p = &cur.v[i];
            if (p->len == 0) continue;
            if (st->type == PT_SPLIT) split_regex(st->pattern, p, &nx);
            else if (st->type == PT_BYTELEVEL) bytelevel_step(t, st, p, &nx);
            else metaspace_step(st, p, &nx);
        }
        tok_pieces_clear(&cur);
        cur = nx;
    }
    for (size_t i = 0; i < cur.n; i++)
        if (cur.v[i].len) tok_pieces_push(out, cur.v[i].s, cur.v[i].len, cur.v[i].off, -1);
    tok_pieces_clear(&cur);
}
