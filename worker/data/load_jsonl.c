/* load_jsonl.c - whole-file reads through the right decompressor (plain, gzip by zlib, zstd by
 * libzstd streaming, chosen by the file suffix) and the JSON-lines text reader used by the C4 and
 * pile-val calibration loaders. */
#include "worker/data/loaders.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

typedef struct buf { char *p; size_t n, cap; } buf;

static void buf_add(buf *b, const void *d, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1 << 16;
        while (c < b->n + n + 1) c *= 2;
        b->p = xrealloc(b->p, c);
        b->cap = c;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
}

static char *read_gz(const char *path, size_t *len, cis_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { err_set(err, CIS_EIO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    unsigned char magic[2] = {0, 0};
    size_t got = fread(magic, 1, 2, f);
    fclose(f);
    if (got < 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
        err_set(err, CIS_EINVAL, "%s: not a gzip file (expected the magic bytes 1f 8b)", path);
        return NULL;
    }
    gzFile g = gzopen(path, "rb");
    if (!g) { err_set(err, CIS_EIO, "%s: gzopen failed", path); return NULL; }
    buf b = {0};
    buf_add(&b, "", 0);
    char chunk[1 << 16];
    for (;;) {
        int r = gzread(g, chunk, sizeof chunk);
        if (r > 0) { buf_add(&b, chunk, (size_t)r); continue; }
        int zerr = 0;
        const char *msg = gzerror(g, &zerr);
        if (r < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
            err_set(err, CIS_EINVAL, "%s: corrupt or truncated gzip stream after %zu bytes: %s", path, b.n, msg);
            gzclose(g); free(b.p); return NULL;
        }
        break;
    }
    /* gzread reports a missing trailer only through gzclose */
    int rc = gzclose(g);
    if (rc != Z_OK) {
        err_set(err, CIS_EINVAL, "%s: truncated gzip stream (%s) after %zu bytes", path,
                rc == Z_BUF_ERROR ? "unexpected end of file" : "bad trailer", b.n);
        free(b.p); return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}

static char *read_zst(const char *path, size_t *len, cis_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { err_set(err, CIS_EIO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    ZSTD_DStream *ds = ZSTD_createDStream();
    ZSTD_initDStream(ds);
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
    char *in = xmalloc(in_cap), *outb = xmalloc(out_cap);
    buf b = {0};
    buf_add(&b, "", 0);
    size_t last = 0, total_in = 0;
    char *res = NULL;
    for (;;) {
        size_t r = fread(in, 1, in_cap, f);
        if (r == 0) break;
        total_in += r;
        ZSTD_inBuffer ib = {in, r, 0};
        while (ib.pos < ib.size) {
            ZSTD_outBuffer ob = {outb, out_cap, 0};
            last = ZSTD_decompressStream(ds, &ob, &ib);
            if (ZSTD_isError(last)) {
                err_set(err, CIS_EINVAL, "%s: corrupt zstd stream near input byte %zu: %s", path, total_in,
                        ZSTD_getErrorName(last));
                goto out;
            }
            buf_add(&b, outb, ob.pos);
        }
    }
    if (ferror(f)) { err_set(err, CIS_EIO, "%s: read error", path); goto out; }
    if (total_in == 0) { err_set(err, CIS_EINVAL, "%s: empty file (expected a zstd stream)", path); goto out; }
    if (last != 0) {
        err_set(err, CIS_EINVAL, "%s: truncated zstd stream (the last frame is incomplete) after %zu bytes", path, b.n);
        goto out;
    }
    res = b.p;
    b.p = NULL;
    if (len) *len = b.n;
out:
    free(b.p);
    free(in);
    free(outb);
    ZSTD_freeDStream(ds);
    fclose(f);
    return res;
}

char *data_read_all(const char *path, size_t *len, cis_err *err) {
    if (str_ends(path, ".gz")) return read_gz(path, len, err);
    if (str_ends(path, ".zst")) return read_zst(path, len, err);
    return read_file(path, len, err);
}

void text_docs_clear(text_docs *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    free(d->len);
    memset(d, 0, sizeof *d);
}

int jsonl_each(const char *path, int (*fn)(void *ctx, json_t *obj, int line, cis_err *err), void *ctx, cis_err *err) {
    size_t n = 0;
    char *data = data_read_all(path, &n, err);
    if (!data) return -1;
    int line = 0, rc = 0;
    size_t pos = 0;
    while (pos < n && rc == 0) {
        line++;
        size_t e = pos;
        while (e < n && data[e] != '\n') e++;
        size_t s = pos;
        pos = e + 1;
        size_t ws = s;
        while (ws < e && (data[ws] == ' ' || data[ws] == '\t' || data[ws] == '\r')) ws++;
        if (ws == e) continue;
        json_error_t je;
        json_t *o = json_loadb(data + s, e - s, 0, &je);
        if (!o) { rc = err_set(err, CIS_EINVAL, "%s: line %d: invalid JSON: %s", path, line, je.text); break; }
        rc = fn(ctx, o, line, err);
        json_decref(o);
    }
    free(data);
    return rc < 0 ? -1 : rc;
}

typedef struct text_ctx { const char *path, *field; int max_docs, cap; text_docs *out; } text_ctx;

static int text_line(void *vc, json_t *o, int line, cis_err *err) {
    text_ctx *c = vc;
    text_docs *out = c->out;
    json_t *t = json_is_object(o) ? json_object_get(o, c->field) : NULL;
    if (!json_is_string(t))
        return err_set(err, CIS_EINVAL, "%s: line %d: field \"%s\": expected a string%s", c->path, line, c->field,
                       json_is_object(o) ? (t ? " (wrong type)" : " (missing)") : " (the line is not a JSON object)");
    if (out->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        out->text = xrealloc(out->text, (size_t)c->cap * sizeof *out->text);
        out->len = xrealloc(out->len, (size_t)c->cap * sizeof *out->len);
    }
    size_t tl = json_string_length(t);
    out->text[out->n] = xmalloc(tl + 1);
    memcpy(out->text[out->n], json_string_value(t), tl);
    out->text[out->n][tl] = 0;
    out->len[out->n] = tl;
    out->n++;
    return c->max_docs > 0 && out->n >= c->max_docs ? 1 : 0;   /* 1 = enough: stop */
}

int jsonl_text_load(const char *path, const char *field, int max_docs, text_docs *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    text_ctx c = {path, field, max_docs, 0, out};
    int rc = jsonl_each(path, text_line, &c, err);
    if (rc > 0) rc = 0;
    if (rc == 0 && out->n == 0) rc = err_set(err, CIS_EINVAL, "%s: no documents (empty file)", path);
    if (rc) text_docs_clear(out);
    return rc;
}
