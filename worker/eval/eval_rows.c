/* eval_rows.c - named metric rows (what a job sends back as RESULT) and the small tokenization
 * helper the evaluators share. */
#include "worker/eval/eval.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_rows_set(eval_rows *r, const char *name, double value) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->row[i].name, name)) { r->row[i].value = value; return; }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 32;
        r->row = xrealloc(r->row, (size_t)r->cap * sizeof *r->row);
    }
    eval_row *e = &r->row[r->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->value = value;
}

const eval_row *eval_rows_get(const eval_rows *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->row[i].name, name)) return &r->row[i];
    return NULL;
}

void eval_rows_clear(eval_rows *r) {
    if (!r) return;
    free(r->row);
    memset(r, 0, sizeof *r);
}

char *eval_rows_json(const eval_rows *r) {
    json_t *o = json_object();
    for (int i = 0; i < r->n; i++)
        json_object_set_new(o, r->row[i].name, isfinite(r->row[i].value) ? json_real(r->row[i].value) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    return s;
}

int eval_encode(const tokenizer *tok, const char *text, bool add_special, int32_t **ids, int *n, cis_err *err) {
    size_t nn = 0;
    if (tokenizer_encode(tok, text, strlen(text), add_special, ids, &nn, err)) return -1;
    *n = (int)nn;
    return 0;
}

int eval_encode_continuation(const tokenizer *tok, const char *ctx_text, const int32_t *ctx, int ctx_len,
                             const char *cont_text, bool add_special, int32_t **cont, int *n, bool *prefix_same,
                             cis_err *err) {
    char *whole = xasprintf("%s%s", ctx_text, cont_text);
    int32_t *w = NULL;
    int wl = 0;
    int rc = eval_encode(tok, whole, add_special, &w, &wl, err);
    free(whole);
    if (rc) return -1;
    if (wl <= ctx_len) { free(w); return 1; }
    if (prefix_same) *prefix_same = !memcmp(w, ctx, (size_t)ctx_len * sizeof *w);
    *n = wl - ctx_len;
    *cont = xmalloc((size_t)*n * sizeof **cont);
    memcpy(*cont, w + ctx_len, (size_t)*n * sizeof **cont);
    free(w);
    return 0;
}

/* Python's str.isspace() code points */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* decode the UTF-8 sequence at s[0..n); returns its length (1 for an invalid byte, cp = 0xFFFD) */
static int utf8_at(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || (size_t)len > n) { *cp = 0xFFFD; return 1; }
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return len;
}

void eval_py_strip(const char *s, size_t n, size_t *b, size_t *e) {
    const unsigned char *u = (const unsigned char *)s;
    size_t pos = 0, lo = n, hi = 0;
    /* one forward pass: lo = start of the first non-space code point, hi = end of the last */
    while (pos < n) {
        uint32_t cp;
        int l = utf8_at(u + pos, n - pos, &cp);
        if (!py_space(cp)) {
            if (lo == n) lo = pos;
            hi = pos + (size_t)l;
        }
        pos += (size_t)l;
    }
    if (lo == n) { *b = *e = n; return; }
    *b = lo;
    *e = hi;
}
