/* cmp_record.c - the compression record of one compression stage: capture, the file format,
 * re-application, summary (see cmp_record.h for the format). */
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/compress.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cmp_record.c writes little-endian files with memcpy: port the byte order first"
#endif

cmprec *cmprec_new(cmprec_kind kind, const char *method, int bits, int group, bool sym, bool desc_act) {
    CIS_ASSERT(kind == CMPREC_MASK || kind == CMPREC_QUANT);
    CIS_ASSERT(kind == CMPREC_MASK || (bits >= 1 && bits <= 8 && group >= 1));
    cmprec *r = xcalloc(1, sizeof *r);
    r->kind = kind;
    snprintf(r->method, sizeof r->method, "%s", method ? method : "");
    if (kind == CMPREC_QUANT) {
        r->bits = bits;
        r->group = group;
        r->sym = sym;
        r->desc_act = desc_act;
    }
    return r;
}

static void tensor_clear(cmprec_tensor *t) {
    free(t->name); free(t->mask); free(t->codes); free(t->scale); free(t->zero); free(t->perm); free(t->raw);
    memset(t, 0, sizeof *t);
}

void cmprec_free(cmprec **rp) {
    if (!rp || !*rp) return;
    cmprec *r = *rp;
    for (int i = 0; i < r->n; i++) tensor_clear(&r->t[i]);
    free(r->t);
    free(r);
    *rp = NULL;
}

int64_t cmprec_groups(const cmprec *r, int64_t cols) {
    return r->group > 0 ? (cols + r->group - 1) / r->group : 1;
}

static cmprec_tensor *push(cmprec *r, const char *name, int64_t rows, int64_t cols) {
    r->t = xrealloc(r->t, sizeof *r->t * (size_t)(r->n + 1));
    cmprec_tensor *t = &r->t[r->n++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->rows = rows;
    t->cols = cols;
    t->ndim = 2;
    return t;
}

/* the group of (original) column c: c / group, or inv[c] / group under act order */
static inline int64_t group_of(const cmprec *r, const int32_t *inv, int64_t c) {
    return (inv ? inv[c] : c) / r->group;
}

/* inv[perm[b]] = b; NULL when perm is NULL */
static int32_t *inverse_perm(const int32_t *perm, int64_t cols) {
    if (!perm) return NULL;
    int32_t *inv = xmalloc(sizeof *inv * (size_t)cols);
    for (int64_t b = 0; b < cols; b++) inv[perm[b]] = (int32_t)b;
    return inv;
}

/* the backend's dequantization (cpu_quant.c qdq): scale * (q - zero) with q and zero as floats */
static inline float dq(float scale, uint8_t code, uint8_t zero) { return scale * ((float)code - (float)zero); }

int cmprec_add_quant(cmprec *r, llama_model *m, int param, const float *scale_dev, const float *zero_dev,
                     const int32_t *perm, cis_err *err) {
    CIS_ASSERT(r->kind == CMPREC_QUANT);
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    CIS_ASSERT(param >= 0 && param < np && P[param].ndim == 2);
    int64_t rows = P[param].shape[0], cols = P[param].shape[1], ng = cmprec_groups(r, cols);
    const char *name = P[param].name;
    float *w = malloc(sizeof(float) * (size_t)(rows * cols)), *zf = malloc(sizeof(float) * (size_t)(rows * ng));
    cmprec_tensor *t = push(r, name, rows, cols);
    t->codes = malloc((size_t)(rows * cols));
    t->scale = malloc(sizeof(float) * (size_t)(rows * ng));
    t->zero = malloc((size_t)(rows * ng));
    if (!w || !zf || !t->codes || !t->scale || !t->zero) {
        free(w); free(zf);
        tensor_clear(t);
        r->n--;
        return err_set(err, CIS_ENOMEM, "out of memory (compression record of %s)", name);
    }
    if (llama_model_param_get(m, param, w, err)) { free(w); free(zf); tensor_clear(t); r->n--; return -1; }
    backend *be = llama_model_backend(m);
    backend_download(be, t->scale, scale_dev, sizeof(float) * (size_t)(rows * ng));
    backend_download(be, zf, zero_dev, sizeof(float) * (size_t)(rows * ng));
    float maxq = (float)((1 << r->bits) - 1);
    int rc = 0;
    for (int64_t i = 0; i < rows * ng && rc == 0; i++) {
        if (!(zf[i] >= 0 && zf[i] <= maxq && zf[i] == rintf(zf[i])))
            rc = err_set(err, CIS_EINVAL, "compression record of %s: zero point %g of (row %lld, group %lld) is not "
                         "an integer in [0, %g]", name, zf[i], (long long)(i / ng), (long long)(i % ng), maxq);
        else
            t->zero[i] = (uint8_t)zf[i];
    }
    if (perm && rc == 0) {
        t->perm = xmalloc(sizeof(int32_t) * (size_t)cols);
        memcpy(t->perm, perm, sizeof(int32_t) * (size_t)cols);
    }
    int32_t *inv = rc == 0 ? inverse_perm(t->perm, cols) : NULL;
    for (int64_t row = 0; row < rows && rc == 0; row++)
        for (int64_t c = 0; c < cols; c++) {
            int64_t gi = row * ng + group_of(r, inv, c), j = row * cols + c;
            float s = t->scale[gi], q = rintf(w[j] / s) + (float)t->zero[gi];
            if (q >= 0 && q <= maxq) {
                t->codes[j] = (uint8_t)q;
                float back = dq(s, t->codes[j], t->zero[gi]);
                if (memcmp(&back, &w[j], sizeof back) == 0) continue;
            }
            rc = err_set(err, CIS_EINVAL, "compression record of %s: weight (row %lld, column %lld) = %.9g is not on "
                         "its grid (scale %.9g, zero %u, %d bits)", name, (long long)row, (long long)c, w[j], s,
                         t->zero[gi], r->bits);
            break;
        }
    free(inv); free(w); free(zf);
    if (rc) { tensor_clear(t); r->n--; }
    return rc;
}

int cmprec_add_raw(cmprec *r, llama_model *m, int param, cis_err *err) {
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    CIS_ASSERT(param >= 0 && param < np && (P[param].ndim == 1 || P[param].ndim == 2));
    int64_t rows = P[param].ndim == 2 ? P[param].shape[0] : 1, cols = P[param].shape[P[param].ndim - 1];
    cmprec_tensor *t = push(r, P[param].name, rows, cols);
    t->ndim = P[param].ndim;
    t->raw = xmalloc(sizeof(float) * (size_t)(rows * cols));
    if (llama_model_param_get(m, param, t->raw, err)) { tensor_clear(t); r->n--; return -1; }
    return 0;
}

int cmprec_add_masks(cmprec *r, llama_model *m, cis_err *err) {
    CIS_ASSERT(r->kind == CMPREC_MASK);
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    const llama_config *cfg = llama_model_config(m);
    for (int l = 0; l < cfg->num_hidden_layers; l++)
        for (int wi = 0; wi < CMP_N_LINEARS; wi++) {
            int i = cmp_param(m, l, wi);
            int64_t rows = P[i].shape[0], cols = P[i].shape[1], n = rows * cols;
            float *w = malloc(sizeof(float) * (size_t)n);
            if (!w) return err_set(err, CIS_ENOMEM, "out of memory (compression record of %s)", P[i].name);
            if (llama_model_param_get(m, i, w, err)) { free(w); return -1; }
            cmprec_tensor *t = push(r, P[i].name, rows, cols);
            t->mask = xcalloc((size_t)(n + 7) / 8, 1);
            for (int64_t j = 0; j < n; j++)
                if (w[j] == 0.0f) t->mask[j >> 3] |= (uint8_t)(1u << (j & 7));
            free(w);
        }
    return 0;
}

void cmprec_dequant(const cmprec *r, const cmprec_tensor *t, float *out) {
    CIS_ASSERT(r->kind == CMPREC_QUANT && t->codes);
    int64_t ng = cmprec_groups(r, t->cols);
    int32_t *inv = inverse_perm(t->perm, t->cols);
    for (int64_t row = 0; row < t->rows; row++)
        for (int64_t c = 0; c < t->cols; c++) {
            int64_t gi = row * ng + group_of(r, inv, c), j = row * t->cols + c;
            out[j] = dq(t->scale[gi], t->codes[j], t->zero[gi]);
        }
    free(inv);
}

int cmprec_apply(const cmprec *r, llama_model *m, int64_t *changed, cis_err *err) {
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    int64_t total = 0;
    for (int k = 0; k < r->n; k++) {
        const cmprec_tensor *t = &r->t[k];
        int i = llama_model_find(m, t->name);
        if (i < 0) return err_set(err, CIS_EINVAL, "compression record: tensor %s is not in the model", t->name);
        bool same = P[i].ndim == t->ndim && (t->ndim == 1 ? P[i].shape[0] == t->cols
                                                           : P[i].shape[0] == t->rows && P[i].shape[1] == t->cols);
        if (!same)
            return err_set(err, CIS_EINVAL, "compression record: tensor %s is [%lld, %lld] in the record but not in "
                           "the model", t->name, (long long)t->rows, (long long)t->cols);
        int64_t n = t->rows * t->cols, ch = 0;
        float *w = malloc(sizeof(float) * (size_t)n), *nw = malloc(sizeof(float) * (size_t)n);
        if (!w || !nw) { free(w); free(nw); return err_set(err, CIS_ENOMEM, "out of memory (re-applying %s)", t->name); }
        if (llama_model_param_get(m, i, w, err)) { free(w); free(nw); return -1; }
        if (t->raw) memcpy(nw, t->raw, sizeof(float) * (size_t)n);
        else if (r->kind == CMPREC_QUANT) cmprec_dequant(r, t, nw);
        else
            for (int64_t j = 0; j < n; j++) nw[j] = (t->mask[j >> 3] >> (j & 7) & 1) ? 0.0f : w[j];
        for (int64_t j = 0; j < n; j++) ch += memcmp(&w[j], &nw[j], sizeof(float)) != 0;
        int rc = ch ? llama_model_param_set(m, i, nw, err) : 0;
        free(w); free(nw);
        if (rc) return -1;
        total += ch;
    }
    if (changed) *changed = total;
    return 0;
}

/* ---- the file ---------------------------------------------------------------------------- */

typedef struct wbuf { uint8_t *p; size_t n, cap; } wbuf;

static void put(wbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }

static uint64_t mask_bytes(int64_t n) { return ((uint64_t)n + 7) / 8; }
static uint64_t code_bytes(int64_t n, int bits) { return ((uint64_t)n * (uint64_t)bits + 7) / 8; }

/* the payload length of a tensor of that shape in record r */
static uint64_t payload_len(const cmprec *r, int64_t rows, int64_t cols, bool perm, bool raw) {
    if (raw) return (uint64_t)rows * (uint64_t)cols * 4;
    if (r->kind == CMPREC_MASK) return mask_bytes(rows * cols);
    uint64_t ng = (uint64_t)cmprec_groups(r, cols);
    return code_bytes(rows * cols, r->bits) + (uint64_t)rows * ng * 5 + (perm ? (uint64_t)cols * 4 : 0);
}

void cmprec_encode(const cmprec *r, uint8_t **buf, size_t *len) {
    wbuf b = {0};
    char magic[8] = CMPREC_MAGIC, method[16] = {0};
    put(&b, magic, 8);
    put_u32(&b, CMPREC_VERSION);
    put_u32(&b, (uint32_t)r->kind);
    put_u32(&b, (uint32_t)r->bits);
    put_u32(&b, (uint32_t)r->group);
    put_u32(&b, (r->sym ? 1u : 0u) | (r->desc_act ? 2u : 0u));
    put_u32(&b, (uint32_t)r->n);
    memcpy(method, r->method, strnlen(r->method, sizeof method));
    put(&b, method, 16);
    for (int k = 0; k < r->n; k++) {
        const cmprec_tensor *t = &r->t[k];
        uint32_t nl = (uint32_t)strlen(t->name);
        put_u32(&b, nl);
        put(&b, t->name, nl);
        put_u32(&b, (uint32_t)t->ndim);
        put_u64(&b, (uint64_t)t->rows);
        put_u64(&b, (uint64_t)t->cols);
        put_u32(&b, (t->perm ? 1u : 0u) | (t->raw ? 2u : 0u));
        put_u64(&b, payload_len(r, t->rows, t->cols, t->perm != NULL, t->raw != NULL));
        int64_t n = t->rows * t->cols;
        if (t->raw) {
            put(&b, t->raw, sizeof(float) * (size_t)n);
            continue;
        }
        if (r->kind == CMPREC_MASK) {
            put(&b, t->mask, mask_bytes(n));
            continue;
        }
        uint64_t nb = code_bytes(n, r->bits);
        uint8_t *packed = xcalloc(nb ? nb : 1, 1);
        for (int64_t j = 0; j < n; j++) { /* LSB-first bit stream */
            uint64_t bit = (uint64_t)j * (uint64_t)r->bits;
            uint32_t v = (uint32_t)t->codes[j] << (bit & 7);
            packed[bit >> 3] |= (uint8_t)v;
            if ((bit & 7) + (uint64_t)r->bits > 8) packed[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
        }
        put(&b, packed, nb);
        free(packed);
        int64_t ng = t->rows * cmprec_groups(r, t->cols);
        put(&b, t->scale, sizeof(float) * (size_t)ng);
        put(&b, t->zero, (size_t)ng);
        if (t->perm) put(&b, t->perm, sizeof(int32_t) * (size_t)t->cols);
    }
    char end[8] = CMPREC_END, hex[65];
    sha256_hex(b.p, b.n, hex);
    put(&b, end, 8);
    put(&b, hex, 64);
    *buf = b.p;
    *len = b.n;
}

/* a bounded reader: every take names the field it reads */
typedef struct rbuf {
    const uint8_t *p;
    size_t n, off;
    const char *file;
    cis_err *err;
} rbuf;

static int take(rbuf *b, void *dst, size_t n, const char *field) {
    if (n > b->n - b->off)
        return err_set(b->err, CIS_EINVAL, "%s: truncated: %s needs %zu bytes at offset %zu, the file has %zu", b->file,
                       field, n, b->off, b->n);
    if (dst) memcpy(dst, b->p + b->off, n);
    b->off += n;
    return 0;
}

int cmprec_decode(const uint8_t *buf, size_t len, const char *name, cmprec **out, cis_err *err) {
    *out = NULL;
    rbuf b = {buf, len, 0, name, err};
    char magic[8], method[17] = {0};
    uint32_t version, kind, bits, group, flags, nt;
    if (take(&b, magic, 8, "header.magic")) return -1;
    if (memcmp(magic, CMPREC_MAGIC, 8) != 0)
        return err_set(err, CIS_EINVAL, "%s: header.magic: not a compression record (expected \"%s\")", name, CMPREC_MAGIC);
    if (take(&b, &version, 4, "header.version") || take(&b, &kind, 4, "header.kind") ||
        take(&b, &bits, 4, "header.bits") || take(&b, &group, 4, "header.group") || take(&b, &flags, 4, "header.flags") ||
        take(&b, &nt, 4, "header.n_tensors") || take(&b, method, 16, "header.method"))
        return -1;
    if (version != CMPREC_VERSION)
        return err_set(err, CIS_EINVAL, "%s: header.version %u is not supported (expected %d)", name, version, CMPREC_VERSION);
    if (kind != CMPREC_MASK && kind != CMPREC_QUANT)
        return err_set(err, CIS_EINVAL, "%s: header.kind %u is not 1 (mask) or 2 (quant)", name, kind);
    if (kind == CMPREC_QUANT && (bits < 2 || bits > 8))
        return err_set(err, CIS_EINVAL, "%s: header.bits %u is outside 2..8", name, bits);
    if (kind == CMPREC_QUANT && (group < 1 || group > (1u << 30)))
        return err_set(err, CIS_EINVAL, "%s: header.group %u is not a group size >= 1", name, group);
    if (kind == CMPREC_MASK && (bits || group || flags))
        return err_set(err, CIS_EINVAL, "%s: header.bits/group/flags of a mask record must be 0 (got %u, %u, %u)", name,
                       bits, group, flags);
    if (flags > 3) return err_set(err, CIS_EINVAL, "%s: header.flags %u has unknown bits", name, flags);
    if (nt > 1u << 20) return err_set(err, CIS_EINVAL, "%s: header.n_tensors %u is implausible", name, nt);
    if (len < CMPREC_TRAILER_BYTES || len - CMPREC_TRAILER_BYTES < b.off)
        return err_set(err, CIS_EINVAL, "%s: truncated: %zu bytes, too short for the header and the trailer", name, len);
    b.n = len - CMPREC_TRAILER_BYTES; /* the tensors end where the trailer starts */
    cmprec *r = cmprec_new((cmprec_kind)kind, method, (int)bits, (int)group, flags & 1, flags & 2);
    char field[160];
    for (uint32_t k = 0; k < nt; k++) {
        uint32_t nl, ndim, tflags;
        uint64_t rows, cols, plen;
        snprintf(field, sizeof field, "tensor %u name_len", k);
        if (take(&b, &nl, 4, field)) goto bad;
        if (nl < 1 || nl > 255) { err_set(err, CIS_EINVAL, "%s: tensor %u: name_len %u is outside 1..255", name, k, nl); goto bad; }
        char tname[256];
        snprintf(field, sizeof field, "tensor %u name", k);
        if (take(&b, tname, nl, field)) goto bad;
        tname[nl] = 0;
        if (strlen(tname) != nl) { err_set(err, CIS_EINVAL, "%s: tensor %u: the name holds a NUL byte", name, k); goto bad; }
        snprintf(field, sizeof field, "tensor %u (%s) shape", k, tname);
        if (take(&b, &ndim, 4, field) || take(&b, &rows, 8, field) || take(&b, &cols, 8, field)) goto bad;
        snprintf(field, sizeof field, "tensor %u (%s) tflags", k, tname);
        if (take(&b, &tflags, 4, field)) goto bad;
        bool raw = tflags & 2;
        if (tflags > 3 || (raw && (tflags & 1)) || ((tflags & 1) && (kind != CMPREC_QUANT || !(flags & 2)))) {
            err_set(err, CIS_EINVAL, "%s: tensor %u (%s): tflags %u (bit0 a permutation, only in a desc_act quant "
                    "record; bit1 a raw entry, without a permutation)", name, k, tname, tflags);
            goto bad;
        }
        if (!(ndim == 2 || (raw && ndim == 1 && rows == 1)) || rows < 1 || cols < 1 || rows > (1u << 30) ||
            cols > (1u << 30) || rows * cols > (1ull << 36)) {
            err_set(err, CIS_EINVAL, "%s: tensor %u (%s): shape (ndim %u, %llu x %llu) is not a 2-D weight (or a 1-D raw "
                    "entry with rows 1)", name, k, tname, ndim, (unsigned long long)rows, (unsigned long long)cols);
            goto bad;
        }
        snprintf(field, sizeof field, "tensor %u (%s) payload_len", k, tname);
        if (take(&b, &plen, 8, field)) goto bad;
        uint64_t want = payload_len(r, (int64_t)rows, (int64_t)cols, tflags & 1, raw);
        if (plen != want) {
            err_set(err, CIS_EINVAL, "%s: tensor %u (%s): payload_len %llu, expected %llu for its shape", name, k, tname,
                    (unsigned long long)plen, (unsigned long long)want);
            goto bad;
        }
        snprintf(field, sizeof field, "tensor %u (%s) payload", k, tname);
        if (plen > b.n - b.off) { take(&b, NULL, plen, field); goto bad; } /* before allocating for it */
        cmprec_tensor *t = push(r, tname, (int64_t)rows, (int64_t)cols);
        t->ndim = (int)ndim;
        int64_t n = t->rows * t->cols;
        if (raw) {
            t->raw = xmalloc(sizeof(float) * (size_t)n);
            snprintf(field, sizeof field, "tensor %u (%s) raw values", k, tname);
            if (take(&b, t->raw, sizeof(float) * (size_t)n, field)) goto bad;
            continue;
        }
        if (kind == CMPREC_MASK) {
            t->mask = xmalloc(mask_bytes(n));
            snprintf(field, sizeof field, "tensor %u (%s) mask", k, tname);
            if (take(&b, t->mask, mask_bytes(n), field)) goto bad;
            continue;
        }
        uint64_t nb = code_bytes(n, (int)bits);
        int64_t ng = t->rows * cmprec_groups(r, t->cols);
        snprintf(field, sizeof field, "tensor %u (%s) codes", k, tname);
        if (nb > b.n - b.off) { take(&b, NULL, nb, field); goto bad; }
        const uint8_t *packed = b.p + b.off;
        b.off += nb;
        t->codes = xmalloc((size_t)n);
        uint32_t mq = (1u << bits) - 1;
        for (int64_t j = 0; j < n; j++) {
            uint64_t bit = (uint64_t)j * bits;
            uint32_t v = packed[bit >> 3];
            if ((bit & 7) + bits > 8) v |= (uint32_t)packed[(bit >> 3) + 1] << 8;
            t->codes[j] = (uint8_t)((v >> (bit & 7)) & mq);
        }
        t->scale = xmalloc(sizeof(float) * (size_t)ng);
        t->zero = xmalloc((size_t)ng);
        snprintf(field, sizeof field, "tensor %u (%s) scale", k, tname);
        if (take(&b, t->scale, sizeof(float) * (size_t)ng, field)) goto bad;
        for (int64_t i = 0; i < ng; i++)
            if (!(isfinite(t->scale[i]) && t->scale[i] > 0)) {
                err_set(err, CIS_EINVAL, "%s: %s[%lld] = %g is not a positive finite scale", name, field, (long long)i,
                        t->scale[i]);
                goto bad;
            }
        snprintf(field, sizeof field, "tensor %u (%s) zero", k, tname);
        if (take(&b, t->zero, (size_t)ng, field)) goto bad;
        for (int64_t i = 0; i < ng; i++)
            if (t->zero[i] > mq) {
                err_set(err, CIS_EINVAL, "%s: %s[%lld] = %u exceeds 2^bits - 1 = %u", name, field, (long long)i,
                        t->zero[i], mq);
                goto bad;
            }
        if (tflags & 1) {
            t->perm = xmalloc(sizeof(int32_t) * (size_t)t->cols);
            snprintf(field, sizeof field, "tensor %u (%s) perm", k, tname);
            if (take(&b, t->perm, sizeof(int32_t) * (size_t)t->cols, field)) goto bad;
            uint8_t *seen = xcalloc((size_t)t->cols, 1);
            bool ok = true;
            for (int64_t c = 0; c < t->cols && ok; c++) {
                ok = t->perm[c] >= 0 && t->perm[c] < t->cols && !seen[t->perm[c]];
                if (ok) seen[t->perm[c]] = 1;
            }
            free(seen);
            if (!ok) { err_set(err, CIS_EINVAL, "%s: %s is not a permutation of 0..%lld", name, field, (long long)t->cols - 1); goto bad; }
        }
    }
    if (b.off != b.n) {
        err_set(err, CIS_EINVAL, "%s: %zu bytes after the last tensor where the trailer should start", name, b.n - b.off);
        goto bad;
    }
    const uint8_t *tr = buf + b.n;
    if (memcmp(tr, CMPREC_END, 8) != 0) {
        err_set(err, CIS_EINVAL, "%s: trailer: no \"%s\" mark at offset %zu (truncated or corrupt)", name, CMPREC_END, b.n);
        goto bad;
    }
    char hex[65];
    sha256_hex(buf, b.n, hex);
    if (memcmp(hex, tr + 8, 64) != 0) {
        err_set(err, CIS_EINVAL, "%s: trailer.sha256 %.64s does not match the content's %s: the file is corrupt", name,
                (const char *)tr + 8, hex);
        goto bad;
    }
    *out = r;
    return 0;
bad:
    cmprec_free(&r);
    return -1;
}

int cmprec_write(const cmprec *r, const char *dir, cmprec_ref *ref, cis_err *err) {
    double t0 = mono_sec();
    uint8_t *buf = NULL;
    size_t len = 0;
    cmprec_encode(r, &buf, &len);
    memset(ref, 0, sizeof *ref);
    sha256_hex(buf, len, ref->sha256);
    ref->bytes = len;
    int rc = mkdir_p(dir, err);
    char abs[PATH_MAX]; /* the reference carries an absolute path (a worker's cache dir may be relative) */
    snprintf(ref->path, sizeof ref->path, "%s/%s%s", rc == 0 && realpath(dir, abs) ? abs : dir, ref->sha256, CMPREC_EXT);
    struct stat st;
    /* content-addressed: a file of that name holds these bytes already (same record, another job) */
    if (rc == 0 && !(stat(ref->path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == len))
        rc = write_file_atomic(ref->path, buf, len, err);
    free(buf);
    if (rc) err_prefix(err, "writing the compression record");
    ref->write_s = mono_sec() - t0;
    return rc;
}

json_t *cmprec_ref_json(const cmprec *r, const cmprec_ref *ref) {
    const char *base = strrchr(ref->path, '/');
    return json_pack("{s:s,s:i,s:s,s:s,s:I,s:s,s:s,s:i,s:f}", "format", "cisrec", "version", CMPREC_VERSION, "path",
                     ref->path, "file", base ? base + 1 : ref->path, "bytes", (json_int_t)ref->bytes, "sha256",
                     ref->sha256, "kind", r->kind == CMPREC_MASK ? "mask" : "quant", "tensors", r->n, "write_s",
                     ref->write_s);
}

int cmprec_read(const char *path, const char *sha256, cmprec **out, cis_err *err) {
    *out = NULL;
    size_t len = 0;
    char *buf = read_file(path, &len, err);
    if (!buf) return -1;
    if (sha256) {
        char hex[65];
        sha256_hex(buf, len, hex);
        if (strcmp(hex, sha256) != 0) {
            free(buf);
            return err_set(err, CIS_EINVAL, "%s: sha256 %s, but the stage record references %s (another or a changed "
                           "file)", path, hex, sha256);
        }
    }
    int rc = cmprec_decode((const uint8_t *)buf, len, path, out, err);
    free(buf);
    return rc;
}

int cmprec_read_ref(json_t *ref, cmprec **out, cis_err *err) {
    *out = NULL;
    const char *path = json_string_value(json_object_get(ref, "path"));
    const char *sha = json_string_value(json_object_get(ref, "sha256"));
    if (!json_is_object(ref) || !path || !sha || strlen(sha) != 64)
        return err_set(err, CIS_EINVAL, "record.cmp_record: expected {\"path\": FILE, \"sha256\": 64 hex, ...}");
    return cmprec_read(path, sha, out, err);
}

json_t *cmprec_summary(const cmprec *r) {
    json_t *o = json_object(), *ts = json_array();
    json_object_set_new(o, "method", json_string(r->method));
    json_object_set_new(o, "kind", json_string(r->kind == CMPREC_MASK ? "mask" : "quant"));
    json_object_set_new(o, "bits", json_integer(r->bits));
    json_object_set_new(o, "group", json_integer(r->group));
    json_object_set_new(o, "sym", json_boolean(r->sym));
    json_object_set_new(o, "desc_act", json_boolean(r->desc_act));
    double numel = 0, zeros = 0, qbits = 0, payload = 0;
    for (int k = 0; k < r->n; k++) {
        const cmprec_tensor *t = &r->t[k];
        int64_t n = t->rows * t->cols, z = 0;
        if (t->raw) {
            json_array_append_new(ts, json_pack("{s:s,s:I,s:I,s:b}", "name", t->name, "rows", (json_int_t)t->rows,
                                                "cols", (json_int_t)t->cols, "raw", 1));
            continue;
        }
        if (r->kind == CMPREC_MASK) {
            for (int64_t j = 0; j < n; j++) z += t->mask[j >> 3] >> (j & 7) & 1;
        } else {
            int64_t ng = cmprec_groups(r, t->cols);
            int32_t *inv = inverse_perm(t->perm, t->cols);
            for (int64_t row = 0; row < t->rows; row++)
                for (int64_t c = 0; c < t->cols; c++)
                    z += t->codes[row * t->cols + c] == t->zero[row * ng + group_of(r, inv, c)];
            free(inv);
            qbits += (double)n * (r->bits + 32.0 / r->group); /* eval_bits.c's formula */
        }
        payload += 8.0 * (double)payload_len(r, t->rows, t->cols, t->perm != NULL, false);
        numel += (double)n;
        zeros += (double)z;
        double tavg = r->kind == CMPREC_QUANT ? r->bits + 32.0 / r->group : n ? (z + 16.0 * (double)(n - z)) / n : 16;
        json_array_append_new(ts, json_pack("{s:s,s:I,s:I,s:i,s:I,s:f,s:f}", "name", t->name, "rows",
                                            (json_int_t)t->rows, "cols", (json_int_t)t->cols, "bits",
                                            r->kind == CMPREC_MASK ? 16 : r->bits, "zeros", (json_int_t)z, "sparsity",
                                            n ? (double)z / n : 0.0, "avg_bits", tavg));
    }
    json_object_set_new(o, "tensors", ts);
    json_object_set_new(o, "numel", json_integer((json_int_t)numel));
    double sp = numel > 0 ? zeros / numel : 0;
    json_object_set_new(o, "sparsity", json_real(sp));
    double avg = numel <= 0 ? 16 : r->kind == CMPREC_QUANT ? qbits / numel : (zeros + 16 * (numel - zeros)) / numel;
    json_object_set_new(o, "avg_bits", json_real(avg));
    json_object_set_new(o, "stored_bits_per_weight", json_real(numel > 0 ? payload / numel : 0));
    return o;
}
