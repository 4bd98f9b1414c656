/* safetensors.c - the safetensors reader (mmap + complete header validation) and writer (fp32 in,
 * F32/F16/BF16 out, atomic). See safetensors.h for the format and the contracts. */
#include "worker/engine/safetensors.h"
#include "worker/engine/half.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format is little-endian on disk)"
#endif

struct st_file {
    char *path;
    int fd;
    unsigned char *map;       /* the whole file, read-only */
    size_t map_len;
    uint64_t data_start;      /* 8 + header length */
    st_tensor_info *t;        /* in data-offset order */
    size_t n;
    const st_tensor_info **by_name; /* n entries sorted by name (for st_find) */
    char **meta_k, **meta_v;
    size_t n_meta;
};

const char *st_dtype_name(st_dtype d) {
    switch (d) {
    case ST_F32: return "F32";
    case ST_F16: return "F16";
    case ST_BF16: return "BF16";
    }
    return "?";
}

size_t st_dtype_size(st_dtype d) { return d == ST_F32 ? 4 : 2; }

int st_dtype_parse(const char *s, st_dtype *out) {
    if (!strcmp(s, "F32")) { *out = ST_F32; return 0; }
    if (!strcmp(s, "F16")) { *out = ST_F16; return 0; }
    if (!strcmp(s, "BF16")) { *out = ST_BF16; return 0; }
    return -1;
}

/* ---------------------------------------------------------------- reader */

static int cmp_offset(const void *a, const void *b) {
    const st_tensor_info *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name_ptr(const void *a, const void *b) {
    const st_tensor_info *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

void st_close(st_file **fp) {
    if (!fp || !*fp) return;
    st_file *f = *fp;
    if (f->map && f->map != MAP_FAILED) munmap(f->map, f->map_len);
    if (f->fd >= 0) close(f->fd);
    for (size_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
    for (size_t i = 0; i < f->n_meta; i++) { free(f->meta_k[i]); free(f->meta_v[i]); }
    free(f->meta_k); free(f->meta_v);
    free(f->t); free(f->by_name); free(f->path);
    free(f);
    *fp = NULL;
}

/* read one non-negative JSON integer into *out; -1 if it is not one */
static int json_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (uint64_t)x;
    return 0;
}

/* parse one tensor entry of the header into ti (name already set); data_len = size of the data
 * region. Returns -1 with err naming the file, tensor and field. */
static int parse_entry(const char *path, const char *name, json_t *v, uint64_t data_len,
                       st_tensor_info *ti, cis_err *err) {
    if (!json_is_object(v))
        return err_set(err, CIS_EINVAL, "%s: tensor '%s': header entry is not a JSON object", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return err_set(err, CIS_EINVAL, "%s: tensor '%s': field 'dtype' missing or not a string", path, name);
    if (st_dtype_parse(json_string_value(jd), &ti->dtype) != 0)
        return err_set(err, CIS_EINVAL,
                       "%s: tensor '%s': unsupported dtype '%s' (expected F32, F16 or BF16)", path, name,
                       json_string_value(jd));
    if (!json_is_array(js))
        return err_set(err, CIS_EINVAL, "%s: tensor '%s': field 'shape' missing or not an array", path, name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return err_set(err, CIS_EINVAL, "%s: tensor '%s': shape has %zu dimensions (at most %d supported)",
                       path, name, nd, ST_MAX_DIMS);
    ti->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(json_array_get(js, i), &d) != 0)
            return err_set(err, CIS_EINVAL,
                           "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        if (d > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, d, &numel))
            return err_set(err, CIS_EINVAL, "%s: tensor '%s': shape is too large (element count overflows)",
                           path, name);
        ti->shape[i] = (int64_t)d;
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(ti->dtype), &nbytes))
        return err_set(err, CIS_EINVAL, "%s: tensor '%s': shape is too large (byte size overflows)", path, name);
    ti->numel = numel;
    ti->nbytes = nbytes;
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || json_u64(json_array_get(jo, 0), &b) != 0 ||
        json_u64(json_array_get(jo, 1), &e) != 0)
        return err_set(err, CIS_EINVAL,
                       "%s: tensor '%s': field 'data_offsets' must be [begin, end] of non-negative integers",
                       path, name);
    if (e < b)
        return err_set(err, CIS_EINVAL, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", path,
                       name, (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return err_set(err, CIS_EINVAL,
                       "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data region (%llu bytes)",
                       path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_len);
    if (e - b != nbytes) {
        char sh[256]; size_t k = 0;
        k += (size_t)snprintf(sh + k, sizeof sh - k, "[");
        for (int i = 0; i < ti->ndim && k < sizeof sh; i++)
            k += (size_t)snprintf(sh + k, sizeof sh - k, "%s%lld", i ? ", " : "", (long long)ti->shape[i]);
        if (k < sizeof sh) snprintf(sh + k, sizeof sh - k, "]");
        return err_set(err, CIS_EINVAL,
                       "%s: tensor '%s': data_offsets span %llu bytes but shape %s x %s needs %llu", path, name,
                       (unsigned long long)(e - b), sh, st_dtype_name(ti->dtype), (unsigned long long)nbytes);
    }
    ti->offset = b; /* relative for now; made absolute by the caller */
    return 0;
}

static int parse_header(st_file *f, json_t *root, uint64_t data_len, cis_err *err) {
    const char *path = f->path;
    size_t cap = json_object_size(root);
    f->t = xcalloc(cap ? cap : 1, sizeof *f->t);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (json_is_null(v)) continue;
            if (!json_is_object(v))
                return err_set(err, CIS_EINVAL, "%s: __metadata__ is not a JSON object of strings", path);
            size_t m = json_object_size(v);
            f->meta_k = xcalloc(m ? m : 1, sizeof(char *));
            f->meta_v = xcalloc(m ? m : 1, sizeof(char *));
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv))
                    return err_set(err, CIS_EINVAL, "%s: __metadata__['%s'] is not a string", path, mk);
                f->meta_k[f->n_meta] = xstrdup(mk);
                f->meta_v[f->n_meta] = xstrdup(json_string_value(mv));
                f->n_meta++;
            }
            continue;
        }
        st_tensor_info *ti = &f->t[f->n];
        memset(ti, 0, sizeof *ti);
        if (parse_entry(path, key, v, data_len, ti, err) != 0) return -1;
        ti->name = xstrdup(key);
        f->n++;
    }
    /* data-offset order; then overlap check over the non-empty tensors */
    qsort(f->t, f->n, sizeof *f->t, cmp_offset);
    uint64_t last_end = 0;
    const char *last_name = NULL;
    for (size_t i = 0; i < f->n; i++) {
        st_tensor_info *ti = &f->t[i];
        if (ti->nbytes > 0) {
            if (last_name && ti->offset < last_end)
                return err_set(err, CIS_EINVAL,
                               "%s: tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] begins before %llu)",
                               path, last_name, ti->name, (unsigned long long)ti->offset,
                               (unsigned long long)(ti->offset + ti->nbytes), (unsigned long long)last_end);
            last_end = ti->offset + ti->nbytes;
            last_name = ti->name;
        }
        ti->data = f->map + f->data_start + ti->offset;
        ti->offset += f->data_start;
    }
    f->by_name = xcalloc(f->n ? f->n : 1, sizeof *f->by_name);
    for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->t[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_name_ptr);
    return 0;
}

st_file *st_open(const char *path, cis_err *err) {
    st_file *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    f->fd = -1;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) { err_set(err, CIS_EIO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) { err_set(err, CIS_EIO, "%s: cannot stat: %s", path, strerror(errno)); goto fail; }
    if (!S_ISREG(sb.st_mode)) { err_set(err, CIS_EINVAL, "%s: not a regular file", path); goto fail; }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        err_set(err, CIS_EINVAL, "%s: truncated: %llu bytes, shorter than the 8-byte header length", path,
                (unsigned long long)size);
        goto fail;
    }
    f->map_len = (size_t)size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        err_set(err, CIS_EIO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > size - 8) {
        err_set(err, CIS_EINVAL, "%s: truncated or corrupt: header length %llu exceeds the %llu bytes after it",
                path, (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        err_set(err, CIS_EINVAL, "%s: header length %llu exceeds the %u-byte limit", path,
                (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    f->data_start = 8 + hlen;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_set(err, CIS_EINVAL, "%s: header is not valid JSON: %s (header byte %d)", path, jerr.text,
                jerr.position);
        goto fail;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        err_set(err, CIS_EINVAL, "%s: header is not a JSON object", path);
        goto fail;
    }
    int rc = parse_header(f, root, size - f->data_start, err);
    json_decref(root);
    if (rc != 0) goto fail;
    return f;
fail:
    st_close(&f);
    return NULL;
}

const char *st_path(const st_file *f) { return f->path; }
size_t st_count(const st_file *f) { return f->n; }

const st_tensor_info *st_get(const st_file *f, size_t i) {
    CIS_ASSERT(i < f->n);
    return &f->t[i];
}

const st_tensor_info *st_find(const st_file *f, const char *name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    for (size_t i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_k[i], key)) return f->meta_v[i];
    return NULL;
}

size_t st_metadata_count(const st_file *f) { return f->n_meta; }

void st_metadata_at(const st_file *f, size_t i, const char **key, const char **value) {
    CIS_ASSERT(i < f->n_meta);
    *key = f->meta_k[i];
    *value = f->meta_v[i];
}

void st_convert_f32(st_dtype d, const void *src, float *dst, size_t n) {
    switch (d) {
    case ST_F32: memcpy(dst, src, n * 4); break;
    case ST_F16: half_f16_to_f32_n(src, dst, n); break;
    case ST_BF16: half_bf16_to_f32_n(src, dst, n); break;
    }
}

int st_read_f32(const st_file *f, const char *name, float *dst, size_t n, cis_err *err) {
    const st_tensor_info *ti = st_find(f, name);
    if (!ti) return err_set(err, CIS_EINVAL, "%s: no tensor '%s'", f->path, name);
    if ((uint64_t)n != ti->numel)
        return err_set(err, CIS_EINVAL, "%s: tensor '%s' has %llu elements, caller expected %zu", f->path, name,
                       (unsigned long long)ti->numel, n);
    st_convert_f32(ti->dtype, ti->data, dst, n);
    return 0;
}

/* ---------------------------------------------------------------- writer */

typedef struct wrec {
    const st_write_tensor *t;
    uint64_t numel, nbytes, begin;
} wrec;

static int dtype_rank(st_dtype d) { return d == ST_F32 ? 2 : d == ST_BF16 ? 1 : 0; }

static int cmp_wrec(const void *a, const void *b) {
    const wrec *x = a, *y = b;
    int rx = dtype_rank(x->t->dtype), ry = dtype_rank(y->t->dtype);
    if (rx != ry) return ry - rx; /* larger alignment first, as the reference writer does */
    return strcmp(x->t->name, y->t->name);
}

static int cmp_name_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* write n converted elements of src (fp32) to fp in dtype d, chunk by chunk */
static int write_values(FILE *fp, st_dtype d, const float *src, size_t n) {
    if (d == ST_F32) return fwrite(src, 4, n, fp) == n ? 0 : -1;
    enum { CH = 8192 };
    uint16_t buf[CH];
    for (size_t i = 0; i < n; i += CH) {
        size_t k = n - i < CH ? n - i : CH;
        if (d == ST_F16) half_f32_to_f16_n(src + i, buf, k);
        else half_f32_to_bf16_n(src + i, buf, k);
        if (fwrite(buf, 2, k, fp) != k) return -1;
    }
    return 0;
}

int st_write(const char *path, const st_write_tensor *t, size_t n, const st_kv *meta, size_t n_meta,
             cis_err *err) {
    wrec *r = xcalloc(n ? n : 1, sizeof *r);
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    json_t *root = NULL;
    char *hdr = NULL, *tmp = NULL;
    FILE *fp = NULL;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        const st_write_tensor *w = &t[i];
        if (!w->name || !w->name[0] || !strcmp(w->name, "__metadata__")) {
            err_set(err, CIS_EINVAL, "%s: tensor #%zu has an empty or reserved name", path, i);
            goto out;
        }
        if (w->ndim < 0 || w->ndim > ST_MAX_DIMS || (w->ndim > 0 && !w->shape)) {
            err_set(err, CIS_EINVAL, "%s: tensor '%s': ndim %d out of range 0..%d", path, w->name, w->ndim,
                    ST_MAX_DIMS);
            goto out;
        }
        if (w->dtype != ST_F32 && w->dtype != ST_F16 && w->dtype != ST_BF16) {
            err_set(err, CIS_EINVAL, "%s: tensor '%s': unsupported dtype %d", path, w->name, (int)w->dtype);
            goto out;
        }
        uint64_t numel = 1;
        for (int d = 0; d < w->ndim; d++) {
            if (w->shape[d] < 0 || __builtin_mul_overflow(numel, (uint64_t)w->shape[d], &numel)) {
                err_set(err, CIS_EINVAL, "%s: tensor '%s': shape[%d] = %lld is negative or too large", path,
                        w->name, d, (long long)w->shape[d]);
                goto out;
            }
        }
        if (numel > SIZE_MAX / 4) {
            err_set(err, CIS_EINVAL, "%s: tensor '%s': too many elements", path, w->name);
            goto out;
        }
        if (!w->data) {
            if (w->n_parts < 0 || w->n_parts > ST_MAX_PARTS) {
                err_set(err, CIS_EINVAL, "%s: tensor '%s': n_parts %d out of range", path, w->name, w->n_parts);
                goto out;
            }
            uint64_t sum = 0;
            for (int p = 0; p < w->n_parts; p++) {
                if (!w->parts[p] && w->part_numel[p]) {
                    err_set(err, CIS_EINVAL, "%s: tensor '%s': part %d has no data", path, w->name, p);
                    goto out;
                }
                sum += w->part_numel[p];
            }
            if (sum != numel) {
                err_set(err, CIS_EINVAL, "%s: tensor '%s': parts hold %llu elements, shape needs %llu", path,
                        w->name, (unsigned long long)sum, (unsigned long long)numel);
                goto out;
            }
        }
        r[i].t = w;
        r[i].numel = numel;
        r[i].nbytes = numel * st_dtype_size(w->dtype);
        names[i] = w->name;
    }
    qsort(names, n, sizeof *names, cmp_name_str);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i])) {
            err_set(err, CIS_EINVAL, "%s: duplicate tensor name '%s'", path, names[i]);
            goto out;
        }
    qsort(r, n, sizeof *r, cmp_wrec);

    root = json_object();
    if (n_meta > 0) {
        json_t *m = json_object();
        for (size_t i = 0; i < n_meta; i++)
            if (!meta[i].key || !meta[i].value ||
                json_object_set_new(m, meta[i].key, json_string(meta[i].value)) != 0) {
                json_decref(m);
                err_set(err, CIS_EINVAL, "%s: metadata entry #%zu is missing or not valid UTF-8", path, i);
                goto out;
            }
        json_object_set_new(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object(), *sh = json_array(), *of = json_array();
        for (int d = 0; d < r[i].t->ndim; d++) json_array_append_new(sh, json_integer(r[i].t->shape[d]));
        r[i].begin = off;
        json_array_append_new(of, json_integer((json_int_t)off));
        off += r[i].nbytes;
        json_array_append_new(of, json_integer((json_int_t)off));
        json_object_set_new(e, "dtype", json_string(st_dtype_name(r[i].t->dtype)));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "data_offsets", of);
        if (json_object_set_new(root, r[i].t->name, e) != 0) {
            err_set(err, CIS_EINVAL, "%s: tensor name '%s' is not valid UTF-8", path, r[i].t->name);
            goto out;
        }
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) { err_set(err, CIS_EINVAL, "%s: cannot encode the header (bad UTF-8 in a name?)", path); goto out; }
    size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
    tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    fp = fopen(tmp, "wb");
    if (!fp) { err_set(err, CIS_EIO, "%s: cannot create: %s", tmp, strerror(errno)); goto out; }
    unsigned char len8[8];
    uint64_t hlen = hl + pad;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    int bad = fwrite(len8, 1, 8, fp) != 8 || fwrite(hdr, 1, hl, fp) != hl;
    for (size_t i = 0; i < pad && !bad; i++) bad = fputc(' ', fp) == EOF;
    for (size_t i = 0; i < n && !bad; i++) {
        const st_write_tensor *w = r[i].t;
        if (w->data) bad = write_values(fp, w->dtype, w->data, (size_t)r[i].numel) != 0;
        else
            for (int p = 0; p < w->n_parts && !bad; p++)
                bad = write_values(fp, w->dtype, w->parts[p], w->part_numel[p]) != 0;
    }
    if (bad || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        err_set(err, CIS_EIO, "%s: write failed: %s", tmp, strerror(errno));
        fclose(fp); fp = NULL;
        unlink(tmp);
        goto out;
    }
    if (fclose(fp) != 0) {
        fp = NULL;
        err_set(err, CIS_EIO, "%s: close failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    fp = NULL;
    if (rename(tmp, path) != 0) {
        err_set(err, CIS_EIO, "%s: rename to %s failed: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    if (fp) fclose(fp);
    free(tmp);
    free(hdr);
    json_decref(root);
    free(names);
    free(r);
    return rc;
}
