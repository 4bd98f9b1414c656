/* checkpoint.c - loading and saving Hugging Face model directories (see checkpoint.h): single
 * and sharded safetensors, shape checks against the engine's parameter list, Phi-3 fused
 * projections split at load and rejoined at save. */
#include "worker/engine/checkpoint.h"
#include "worker/engine/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static uint64_t numel_of(int ndim, const int64_t *shape) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (uint64_t)shape[i];
    return n;
}

/* ---------------------------------------------------------------- the set of source tensors */

typedef struct src_tensor {
    const st_tensor_info *ti;
    const st_file *file;
    bool used;
} src_tensor;

typedef struct src_set {
    st_file **files;
    size_t nfiles;
    src_tensor *t;   /* sorted by name */
    size_t n;
} src_set;

static void src_clear(src_set *s) {
    for (size_t i = 0; i < s->nfiles; i++) st_close(&s->files[i]);
    free(s->files);
    free(s->t);
    memset(s, 0, sizeof *s);
}

static int cmp_src(const void *a, const void *b) {
    return strcmp(((const src_tensor *)a)->ti->name, ((const src_tensor *)b)->ti->name);
}

static src_tensor *src_find(src_set *s, const char *name) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->t[mid].ti->name, name);
        if (c == 0) return &s->t[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

/* buffers some exports carry that the model recomputes */
static bool harmless_extra(const char *name) { return str_ends(name, "rotary_emb.inv_freq"); }

/* a shard name from an index must be a plain file name inside the model directory */
static bool safe_shard_name(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int src_open(const char *dir, src_set *s, cis_err *err) {
    memset(s, 0, sizeof *s);
    char *single = xasprintf("%s/%s", dir, SINGLE_NAME);
    char *index = xasprintf("%s/%s", dir, INDEX_NAME);
    json_t *root = NULL;
    int rc = -1;
    if (file_exists(single)) {
        s->files = xcalloc(1, sizeof *s->files);
        if (!(s->files[0] = st_open(single, err))) goto out;
        s->nfiles = 1;
    } else if (file_exists(index)) {
        json_error_t jerr;
        root = json_load_file(index, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) { err_set(err, CIS_EINVAL, "%s: not valid JSON: %s (line %d)", index, jerr.text, jerr.line); goto out; }
        json_t *wm = json_object_get(root, "weight_map");
        if (!json_is_object(wm)) { err_set(err, CIS_EINVAL, "%s: field 'weight_map' missing or not an object", index); goto out; }
        /* distinct shard names, in first-seen order */
        size_t cap = json_object_size(wm) ? json_object_size(wm) : 1;
        const char **names = xcalloc(cap, sizeof *names);
        s->files = xcalloc(cap, sizeof *s->files);
        const char *k;
        json_t *v;
        json_object_foreach(wm, k, v) {
            if (!json_is_string(v) || !safe_shard_name(json_string_value(v))) {
                err_set(err, CIS_EINVAL, "%s: weight_map['%s'] must be a shard file name in the same directory", index, k);
                free(names);
                goto out;
            }
            const char *sh = json_string_value(v);
            size_t j = 0;
            while (j < s->nfiles && strcmp(names[j], sh)) j++;
            if (j < s->nfiles) continue;
            char *p = xasprintf("%s/%s", dir, sh);
            if (!file_exists(p)) {
                err_set(err, CIS_EINVAL, "%s: weight_map['%s'] names shard '%s', which does not exist", index, k, sh);
                free(p); free(names);
                goto out;
            }
            s->files[s->nfiles] = st_open(p, err);
            free(p);
            if (!s->files[s->nfiles]) { free(names); goto out; }
            names[s->nfiles++] = sh;
        }
        /* every listed tensor is in its shard; every shard tensor is listed there */
        json_object_foreach(wm, k, v) {
            const char *sh = json_string_value(v);
            size_t j = 0;
            while (strcmp(names[j], sh)) j++;
            if (!st_find(s->files[j], k)) {
                err_set(err, CIS_EINVAL, "%s: weight_map says tensor '%s' is in '%s', but that shard has no such tensor",
                        index, k, sh);
                free(names);
                goto out;
            }
        }
        for (size_t j = 0; j < s->nfiles; j++)
            for (size_t i = 0; i < st_count(s->files[j]); i++) {
                const char *tn = st_get(s->files[j], i)->name;
                json_t *e = json_object_get(wm, tn);
                if (!e && harmless_extra(tn)) continue;
                if (!e || strcmp(json_string_value(e), names[j]) != 0) {
                    err_set(err, CIS_EINVAL, "%s: tensor '%s' is not listed under this shard in %s's weight_map",
                            st_path(s->files[j]), tn, INDEX_NAME);
                    free(names);
                    goto out;
                }
            }
        free(names);
    } else {
        char *bin = xasprintf("%s/pytorch_model.bin", dir), *binidx = xasprintf("%s/pytorch_model.bin.index.json", dir);
        bool pt = file_exists(bin) || file_exists(binidx);
        free(bin);
        free(binidx);
        err_set(err, CIS_EINVAL, "%s: no %s or %s in this directory%s", dir, SINGLE_NAME, INDEX_NAME,
                pt ? " (only PyTorch pickles found: convert them to safetensors first, e.g. save_pretrained("
                     "safe_serialization=True))" : "");
        goto out;
    }
    size_t total = 0;
    for (size_t j = 0; j < s->nfiles; j++) total += st_count(s->files[j]);
    s->t = xcalloc(total ? total : 1, sizeof *s->t);
    for (size_t j = 0; j < s->nfiles; j++)
        for (size_t i = 0; i < st_count(s->files[j]); i++) {
            s->t[s->n].ti = st_get(s->files[j], i);
            s->t[s->n].file = s->files[j];
            s->n++;
        }
    qsort(s->t, s->n, sizeof *s->t, cmp_src);
    for (size_t i = 1; i < s->n; i++)
        if (!strcmp(s->t[i - 1].ti->name, s->t[i].ti->name)) {
            err_set(err, CIS_EINVAL, "%s: tensor '%s' appears in both %s and %s", dir, s->t[i].ti->name,
                    st_path(s->t[i - 1].file), st_path(s->t[i].file));
            goto out;
        }
    rc = 0;
out:
    json_decref(root);
    free(single);
    free(index);
    if (rc != 0) src_clear(s);
    return rc;
}

/* ---------------------------------------------------------------- Phi-3 fused projections */

/* If name is model.layers.{l}.self_attn.{q,k,v}_proj.weight or model.layers.{l}.mlp.{gate,up}_proj.weight,
 * write the fused tensor's name into fused, the slice's first row and row count, and return true. */
static bool phi3_slice(const llama_config *c, const char *name, char *fused, size_t cap, int64_t *row0,
                       int64_t *rows, int64_t *fused_rows) {
    if (!str_starts(name, "model.layers.")) return false;
    const char *p = name + strlen("model.layers.");
    char *end;
    long l = strtol(p, &end, 10);
    if (end == p || *end != '.' || l < 0) return false;
    const char *rest = end + 1;
    int64_t H = c->num_attention_heads, Hkv = c->num_key_value_heads, Dh = c->head_dim, F = c->intermediate_size;
    if (!strcmp(rest, "self_attn.q_proj.weight") || !strcmp(rest, "self_attn.k_proj.weight") ||
        !strcmp(rest, "self_attn.v_proj.weight")) {
        snprintf(fused, cap, "model.layers.%ld.self_attn.qkv_proj.weight", l);
        char w = rest[strlen("self_attn.")];
        *row0 = w == 'q' ? 0 : w == 'k' ? H * Dh : (H + Hkv) * Dh;
        *rows = w == 'q' ? H * Dh : Hkv * Dh;
        *fused_rows = (H + 2 * Hkv) * Dh;
        return true;
    }
    if (!strcmp(rest, "mlp.gate_proj.weight") || !strcmp(rest, "mlp.up_proj.weight")) {
        snprintf(fused, cap, "model.layers.%ld.mlp.gate_up_proj.weight", l);
        *row0 = rest[4] == 'g' ? 0 : F;
        *rows = F;
        *fused_rows = 2 * F;
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- load */

/* lm_head.weight present in a tied checkpoint: accept it when it equals the embedding */
static int check_tied_head(src_set *s, src_tensor *head, cis_err *err) {
    src_tensor *emb = src_find(s, "model.embed_tokens.weight");
    const st_tensor_info *h = head->ti;
    if (!emb) return err_set(err, CIS_EINVAL, "%s: lm_head.weight present but model.embed_tokens.weight missing", st_path(head->file));
    const st_tensor_info *e = emb->ti;
    bool same = h->ndim == e->ndim && h->numel == e->numel;
    for (int i = 0; same && i < h->ndim; i++) same = h->shape[i] == e->shape[i];
    if (same && h->dtype == e->dtype) {
        same = memcmp(h->data, e->data, h->nbytes) == 0;
    } else if (same) {
        enum { CH = 4096 };
        float a[CH], b[CH];
        size_t isz_h = st_dtype_size(h->dtype), isz_e = st_dtype_size(e->dtype);
        for (uint64_t i = 0; same && i < h->numel; i += CH) {
            size_t k = h->numel - i < CH ? (size_t)(h->numel - i) : CH;
            st_convert_f32(h->dtype, (const unsigned char *)h->data + i * isz_h, a, k);
            st_convert_f32(e->dtype, (const unsigned char *)e->data + i * isz_e, b, k);
            same = memcmp(a, b, k * sizeof(float)) == 0;
        }
    }
    if (!same)
        return err_set(err, CIS_EINVAL,
                       "%s: config.json sets tie_word_embeddings, but lm_head.weight differs from model.embed_tokens.weight",
                       st_path(head->file));
    head->used = true;
    return 0;
}

int checkpoint_load(const char *model_dir, const llama_config *cfg, ckpt_tensor *dst, size_t n, cis_err *err) {
    src_set s;
    if (src_open(model_dir, &s, err) != 0) return -1;
    int rc = -1;
    char es[160], fs[160];
    for (size_t i = 0; i < n; i++) {
        ckpt_tensor *d = &dst[i];
        CIS_ASSERT(d->name && d->ndim >= 0 && d->ndim <= 4 && d->data);
        src_tensor *st = src_find(&s, d->name);
        fmt_shape(es, sizeof es, d->ndim, d->shape);
        if (st) {
            const st_tensor_info *ti = st->ti;
            bool ok = ti->ndim == d->ndim;
            for (int k = 0; ok && k < d->ndim; k++) ok = ti->shape[k] == d->shape[k];
            if (!ok) {
                fmt_shape(fs, sizeof fs, ti->ndim, ti->shape);
                err_set(err, CIS_EINVAL, "%s: tensor '%s' has shape %s, but config.json implies %s", st_path(st->file),
                        d->name, fs, es);
                goto out;
            }
            st_convert_f32(ti->dtype, ti->data, d->data, (size_t)ti->numel);
            st->used = true;
            continue;
        }
        char fused[160];
        int64_t row0, rows, frows;
        src_tensor *ft = NULL;
        if (cfg->arch == LLAMA_ARCH_PHI3 && phi3_slice(cfg, d->name, fused, sizeof fused, &row0, &rows, &frows))
            ft = src_find(&s, fused);
        if (!ft) {
            err_set(err, CIS_EINVAL, "%s: tensor '%s' %s is missing from the checkpoint%s%s", model_dir, d->name, es,
                    cfg->arch == LLAMA_ARCH_PHI3 ? " (looked for the fused " : "",
                    cfg->arch == LLAMA_ARCH_PHI3 ? "qkv_proj / gate_up_proj too)" : "");
            goto out;
        }
        const st_tensor_info *ti = ft->ti;
        int64_t cols = d->ndim == 2 ? d->shape[1] : -1;
        if (ti->ndim != 2 || ti->shape[0] != frows || ti->shape[1] != cols) {
            int64_t want[2] = {frows, cols};
            fmt_shape(fs, sizeof fs, ti->ndim, ti->shape);
            fmt_shape(es, sizeof es, 2, want);
            err_set(err, CIS_EINVAL, "%s: tensor '%s' has shape %s, but config.json implies %s", st_path(ft->file),
                    fused, fs, es);
            goto out;
        }
        if (d->ndim != 2 || d->shape[0] != rows) {
            int64_t want[2] = {rows, cols};
            fmt_shape(fs, sizeof fs, 2, want);
            err_set(err, CIS_EINVAL, "%s: the model asks for '%s' as %s, but config.json implies %s", model_dir, d->name,
                    es, fs);
            goto out;
        }
        size_t isz = st_dtype_size(ti->dtype);
        st_convert_f32(ti->dtype, (const unsigned char *)ti->data + (size_t)(row0 * cols) * isz, d->data,
                       (size_t)(rows * cols));
        ft->used = true;
    }
    for (size_t i = 0; i < s.n; i++) {
        src_tensor *t = &s.t[i];
        if (t->used || harmless_extra(t->ti->name)) continue;
        if (cfg->tie_word_embeddings && !strcmp(t->ti->name, "lm_head.weight")) {
            if (check_tied_head(&s, t, err) != 0) goto out;
            continue;
        }
        err_set(err, CIS_EINVAL, "%s: unexpected tensor '%s' (not part of a %s with this config.json)", st_path(t->file),
                t->ti->name, cfg->architecture);
        goto out;
    }
    rc = 0;
out:
    src_clear(&s);
    return rc;
}

int checkpoint_dir_load_config(const char *model_dir, llama_config *cfg, cis_err *err) {
    char *p = xasprintf("%s/config.json", model_dir);
    int rc = llama_config_load(p, cfg, err);
    free(p);
    return rc;
}

/* ---------------------------------------------------------------- layout */

ckpt_tensor *checkpoint_layout(const llama_config *c, size_t *n) {
    size_t cap = 9 * (size_t)c->num_hidden_layers + 3;
    ckpt_tensor *t = xcalloc(cap, sizeof *t);
    size_t k = 0;
    int64_t V = c->vocab_size, D = c->hidden_size, F = c->intermediate_size;
    int64_t Q = (int64_t)c->num_attention_heads * c->head_dim, KV = (int64_t)c->num_key_value_heads * c->head_dim;
#define ADD2(nm, a, b) do { t[k].name = nm; t[k].ndim = 2; t[k].shape[0] = (a); t[k].shape[1] = (b); k++; } while (0)
#define ADD1(nm, a) do { t[k].name = nm; t[k].ndim = 1; t[k].shape[0] = (a); k++; } while (0)
    ADD2(xstrdup("model.embed_tokens.weight"), V, D);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        ADD1(xasprintf("model.layers.%d.input_layernorm.weight", l), D);
        ADD2(xasprintf("model.layers.%d.self_attn.q_proj.weight", l), Q, D);
        ADD2(xasprintf("model.layers.%d.self_attn.k_proj.weight", l), KV, D);
        ADD2(xasprintf("model.layers.%d.self_attn.v_proj.weight", l), KV, D);
        ADD2(xasprintf("model.layers.%d.self_attn.o_proj.weight", l), D, Q);
        ADD1(xasprintf("model.layers.%d.post_attention_layernorm.weight", l), D);
        ADD2(xasprintf("model.layers.%d.mlp.gate_proj.weight", l), F, D);
        ADD2(xasprintf("model.layers.%d.mlp.up_proj.weight", l), F, D);
        ADD2(xasprintf("model.layers.%d.mlp.down_proj.weight", l), D, F);
    }
    ADD1(xstrdup("model.norm.weight"), D);
    if (!c->tie_word_embeddings) ADD2(xstrdup("lm_head.weight"), V, D);
#undef ADD1
#undef ADD2
    *n = k;
    return t;
}

void checkpoint_layout_free(ckpt_tensor **t, size_t n) {
    if (!t || !*t) return;
    for (size_t i = 0; i < n; i++) free((char *)(*t)[i].name);
    free(*t);
    *t = NULL;
}

/* ---------------------------------------------------------------- save */

static const ckpt_tensor *find_src(const ckpt_tensor *src, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(src[i].name, name)) return &src[i];
    return NULL;
}

/* shard file names listed by an existing index (to remove stale ones); NULL-terminated */
static char **old_shards(const char *index) {
    json_t *root = json_load_file(index, 0, NULL);
    if (!root) return NULL;
    json_t *wm = json_object_get(root, "weight_map");
    size_t cap = json_is_object(wm) ? json_object_size(wm) + 1 : 1, k = 0;
    char **out = xcalloc(cap, sizeof *out);
    const char *key;
    json_t *v;
    if (json_is_object(wm))
        json_object_foreach(wm, key, v) {
            if (!json_is_string(v) || !safe_shard_name(json_string_value(v))) continue;
            size_t j = 0;
            while (j < k && strcmp(out[j], json_string_value(v))) j++;
            if (j == k) out[k++] = xstrdup(json_string_value(v));
        }
    json_decref(root);
    return out;
}

static void free_strv(char **v) {
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

int checkpoint_save(const char *model_dir, const llama_config *cfg, const ckpt_tensor *src, size_t n,
                    const char *dtype, size_t max_shard_bytes, cis_err *err) {
    st_dtype dt;
    if (!dtype || st_dtype_parse(dtype, &dt) != 0)
        return err_set(err, CIS_EINVAL, "%s: save dtype '%s' must be F32, F16 or BF16", model_dir, dtype ? dtype : "(null)");
    if (mkdir_p(model_dir, err) != 0) return -1;
    llama_config c = *cfg;
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "%s",
             dt == ST_F32 ? "float32" : dt == ST_F16 ? "float16" : "bfloat16");

    /* the tensors as they go to disk, in the caller's order (fused for Phi-3) */
    st_write_tensor *w = xcalloc(n ? n : 1, sizeof *w);
    int64_t (*shapes)[4] = xcalloc(n ? n : 1, sizeof *shapes);
    char **owned = xcalloc(n ? n : 1, sizeof *owned);
    size_t nw = 0, *shard_of = NULL;
    char *single = xasprintf("%s/%s", model_dir, SINGLE_NAME), *index = xasprintf("%s/%s", model_dir, INDEX_NAME);
    char **stale = NULL, **shard_names = NULL;
    size_t n_shards = 0;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        const ckpt_tensor *t = &src[i];
        CIS_ASSERT(t->name && t->ndim >= 0 && t->ndim <= 4);
        if (!t->data && numel_of(t->ndim, t->shape) > 0) {
            err_set(err, CIS_EINVAL, "%s: tensor '%s' has no data", model_dir, t->name);
            goto out;
        }
        if (cfg->tie_word_embeddings && !strcmp(t->name, "lm_head.weight")) continue;
        char fused[160];
        int64_t row0, rows, frows;
        if (cfg->arch == LLAMA_ARCH_PHI3 && phi3_slice(cfg, t->name, fused, sizeof fused, &row0, &rows, &frows)) {
            if (row0 != 0) continue; /* written as a part of the fused tensor started by q / gate */
            bool qkv = str_ends(fused, "qkv_proj.weight");
            const char *pre_end = strstr(t->name, qkv ? "q_proj.weight" : "gate_proj.weight");
            int plen = (int)(pre_end - t->name);
            const char *sfx[3] = {qkv ? "k_proj.weight" : "up_proj.weight", qkv ? "v_proj.weight" : NULL, NULL};
            st_write_tensor *o = &w[nw];
            o->parts[0] = t->data;
            o->part_numel[0] = numel_of(t->ndim, t->shape);
            o->n_parts = 1;
            int64_t tot_rows = t->shape[0];
            for (int k = 0; k < 2 && sfx[k]; k++) {
                char *pn = xasprintf("%.*s%s", plen, t->name, sfx[k]);
                const ckpt_tensor *p = find_src(src, n, pn);
                if (!p || p->ndim != 2 || t->ndim != 2 || p->shape[1] != t->shape[1]) {
                    err_set(err, CIS_EINVAL, "%s: cannot fuse '%s' for Phi-3: '%s' is missing or its width differs",
                            model_dir, fused, pn);
                    free(pn);
                    goto out;
                }
                free(pn);
                o->parts[o->n_parts] = p->data;
                o->part_numel[o->n_parts++] = numel_of(2, p->shape);
                tot_rows += p->shape[0];
            }
            owned[nw] = xstrdup(fused);
            o->name = owned[nw];
            shapes[nw][0] = tot_rows;
            shapes[nw][1] = t->shape[1];
            o->ndim = 2;
        } else {
            w[nw].name = t->name;
            w[nw].ndim = t->ndim;
            memcpy(shapes[nw], t->shape, sizeof shapes[nw]);
            w[nw].data = t->data;
            if (!t->data) w[nw].n_parts = 0;
        }
        w[nw].dtype = dt;
        w[nw].shape = shapes[nw];
        nw++;
    }

    /* assign shards */
    shard_of = xcalloc(nw ? nw : 1, sizeof *shard_of);
    uint64_t cur = 0, total = 0;
    n_shards = 1;
    for (size_t i = 0; i < nw; i++) {
        uint64_t b = numel_of(w[i].ndim, w[i].shape) * st_dtype_size(dt);
        if (max_shard_bytes > 0 && cur > 0 && cur + b > max_shard_bytes) { n_shards++; cur = 0; }
        shard_of[i] = n_shards - 1;
        cur += b;
        total += b;
    }
    stale = old_shards(index);
    st_kv meta[1] = {{"format", "pt"}};
    if (n_shards == 1) {
        if (st_write(single, w, nw, meta, 1, err) != 0) goto out;
    } else {
        shard_names = xcalloc(n_shards + 1, sizeof *shard_names);
        st_write_tensor *sub = xcalloc(nw, sizeof *sub);
        for (size_t s = 0; s < n_shards; s++) {
            shard_names[s] = xasprintf("model-%05zu-of-%05zu.safetensors", s + 1, n_shards);
            size_t k = 0;
            for (size_t i = 0; i < nw; i++)
                if (shard_of[i] == s) sub[k++] = w[i];
            char *p = xasprintf("%s/%s", model_dir, shard_names[s]);
            int r = st_write(p, sub, k, meta, 1, err);
            free(p);
            if (r != 0) { free(sub); goto out; }
        }
        free(sub);
        json_t *root = json_object(), *md = json_object(), *wm = json_object();
        json_object_set_new(md, "total_size", json_integer((json_int_t)total));
        for (size_t i = 0; i < nw; i++) json_object_set_new(wm, w[i].name, json_string(shard_names[shard_of[i]]));
        json_object_set_new(root, "metadata", md);
        json_object_set_new(root, "weight_map", wm);
        char *js = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(root);
        char *js2 = xasprintf("%s\n", js);
        free(js);
        int r = write_file_atomic(index, js2, strlen(js2), err);
        free(js2);
        if (r != 0) goto out;
    }
    char *cp = xasprintf("%s/config.json", model_dir);
    int r = llama_config_save(cp, &c, err);
    free(cp);
    if (r != 0) goto out;

    /* remove files of an earlier save that the new layout does not use */
    if (n_shards == 1 && file_exists(index) && unlink(index) != 0) {
        err_set(err, CIS_EIO, "%s: cannot remove stale index: %s", index, strerror(errno));
        goto out;
    }
    if (n_shards > 1 && file_exists(single) && unlink(single) != 0) {
        err_set(err, CIS_EIO, "%s: cannot remove stale file: %s", single, strerror(errno));
        goto out;
    }
    for (char **p = stale; p && *p; p++) {
        bool keep = false;
        for (size_t s = 0; shard_names && s < n_shards; s++) keep = keep || !strcmp(shard_names[s], *p);
        if (keep) continue;
        char *fp = xasprintf("%s/%s", model_dir, *p);
        unlink(fp);
        free(fp);
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) free(owned[i]);
    free(owned);
    free(shapes);
    free(w);
    free(shard_of);
    free_strv(stale);
    free_strv(shard_names);
    free(single);
    free(index);
    return rc;
}
