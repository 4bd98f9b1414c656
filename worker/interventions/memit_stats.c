/* memit_stats.c - MEMIT's second-moment statistics E[k kᵀ] of the MLP keys and their
 * content-addressed cache (memit_stats.h). */
#include "worker/interventions/memit_stats.h"
#include "worker/data/loaders.h"
#include "worker/engine/backend.h"
#include "common/artifact_cache.h"
#include "common/rng.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MOM2_VERSION 1
#define MOM2_CHUNK_TOKENS 4096   /* padded tokens per forward */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int memit_stats_compute(llama_model *m, int n_seq, const int32_t *const *seqs, const int *seq_lens,
                        const int *layers, int n, float **C, int64_t *n_tokens,
                        bool (*stop)(void *), void *stop_arg, cis_err *err) {
    const llama_config *cfg = llama_model_config(m);
    backend *be = llama_model_backend(m);
    int F = cfg->intermediate_size, top = 0;
    for (int i = 0; i < n; i++) if (layers[i] > top) top = layers[i];
    double **acc = xcalloc((size_t)n, sizeof *acc);
    for (int i = 0; i < n; i++) acc[i] = xcalloc((size_t)F * F, sizeof(double));
    float *chunk = xmalloc((size_t)F * F * sizeof(float));
    int64_t tokens = 0;
    int rc = 0;
    float *dK = NULL, *dC = NULL;
    size_t dK_rows = 0;
    dC = backend_alloc(be, (size_t)F * F * sizeof(float), err);
    if (!dC) rc = -1;
    for (int s0 = 0; s0 < n_seq && !rc;) {
        if (stop && stop(stop_arg)) { rc = err_set(err, CIS_ECANCEL, "stopped on request"); break; }
        /* a chunk of consecutive sequences, at most MOM2_CHUNK_TOKENS padded tokens */
        int T = 0, B = 0;
        while (s0 + B < n_seq) {
            int t = seq_lens[s0 + B] > T ? seq_lens[s0 + B] : T;
            if (B > 0 && (int64_t)t * (B + 1) > MOM2_CHUNK_TOKENS) break;
            T = t;
            B++;
        }
        int32_t *ids = xcalloc((size_t)B * T, sizeof *ids), *lens = xmalloc((size_t)B * sizeof *lens);
        int real = 0;
        for (int b = 0; b < B; b++) {
            memcpy(ids + (size_t)b * T, seqs[s0 + b], (size_t)seq_lens[s0 + b] * sizeof(int32_t));
            lens[b] = seq_lens[s0 + b];
            real += lens[b];
        }
        llama_hook *hk = xcalloc((size_t)n, sizeof *hk);
        float **rd = xcalloc((size_t)n, sizeof *rd);
        for (int i = 0; i < n; i++) {
            rd[i] = xmalloc((size_t)B * T * F * sizeof(float));
            hk[i] = (llama_hook){.layer = layers[i], .point = LLAMA_HOOK_D, .mode = LLAMA_HOOK_READ, .n_pos = -1,
                                 .read = rd[i]};
        }
        llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .n_layers = top + 1};
        if (llama_forward(m, &bt, hk, n, false, NULL, err)) rc = -1;
        if (!rc && (size_t)real > dK_rows) {
            backend_free(be, dK);
            dK = backend_alloc(be, (size_t)real * F * sizeof(float), err);
            dK_rows = dK ? (size_t)real : 0;
            if (!dK) rc = -1;
        }
        float *rows = rc ? NULL : xmalloc((size_t)real * F * sizeof(float));
        for (int i = 0; i < n && !rc; i++) {
            /* the real (unpadded) rows, then Σ k kᵀ of the chunk as one fp32 GEMM: Kᵀ K */
            int r = 0;
            for (int b = 0; b < B; b++) {
                memcpy(rows + (size_t)r * F, rd[i] + (size_t)b * T * F, (size_t)lens[b] * F * sizeof(float));
                r += lens[b];
            }
            backend_upload(be, dK, rows, (size_t)real * F * sizeof(float));
            BE(be, gemm, true, false, F, F, real, 1.0f, dK, F, dK, F, 0.0f, dC, F);
            backend_download(be, chunk, dC, (size_t)F * F * sizeof(float));
            for (size_t j = 0; j < (size_t)F * F; j++) acc[i][j] += chunk[j];
        }
        free(rows);
        for (int i = 0; i < n; i++) free(rd[i]);
        free(rd);
        free(hk);
        free(ids);
        free(lens);
        tokens += real;
        s0 += B;
    }
    if (!rc) {
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < (size_t)F * F; j++) C[i][j] = tokens ? (float)(acc[i][j] / (double)tokens) : 0.f;
        *n_tokens = tokens;
    }
    backend_free(be, dK);
    backend_free(be, dC);
    for (int i = 0; i < n; i++) free(acc[i]);
    free(acc);
    free(chunk);
    return rc;
}

/* sha256 of every parameter the keys of layer `layer` depend on: the embedding and layers 0..layer
 * (hex digests concatenated, in parameter order) */
static int weights_digest(llama_model *m, int layer, char *out, size_t cap, cis_err *err) {
    int n;
    llama_param *p = llama_model_params(m, &n);
    size_t w = 0;
    float *buf = NULL;
    size_t buf_n = 0;
    for (int i = 0; i < n; i++) {
        int l = -1;
        if (!strncmp(p[i].name, "model.layers.", 13)) l = atoi(p[i].name + 13);
        bool dep = !strcmp(p[i].name, "model.embed_tokens.weight") || (l >= 0 && l <= layer);
        if (!dep) continue;
        size_t cnt = 1;
        for (int d = 0; d < p[i].ndim; d++) cnt *= (size_t)p[i].shape[d];
        if (cnt > buf_n) { free(buf); buf = xmalloc(cnt * sizeof(float)); buf_n = cnt; }
        if (llama_model_param_get(m, i, buf, err)) { free(buf); return -1; }
        char hex[65];
        sha256_hex(buf, cnt * sizeof(float), hex);
        if (w + 66 >= cap) { free(buf); return err_set(err, CIS_EINVAL, "mom2 key: too many parameters"); }
        w += (size_t)snprintf(out + w, cap - w, "%s\n", hex);
    }
    free(buf);
    return 0;
}

int memit_stats_key(llama_model *m, const char *corpus_path, int layer, int n_samples, int max_len,
                    char key[65], cis_err *err) {
    size_t clen = 0;
    char *corpus = read_file(corpus_path, &clen, err);
    if (!corpus) return -1;
    char chex[65];
    sha256_hex(corpus, clen, chex);
    free(corpus);
    size_t cap = 1 << 20;
    char *desc = xmalloc(cap);
    int w = snprintf(desc, cap, "cisweep mom2 v%d\nlayer %d\nn_samples %d\nmax_len %d\ncorpus %s\n", MOM2_VERSION,
                     layer, n_samples, max_len, chex);
    if (weights_digest(m, layer, desc + w, cap - (size_t)w, err)) { free(desc); return -1; }
    sha256_hex(desc, strlen(desc), key);
    free(desc);
    return 0;
}

typedef struct mom2_header {
    char magic[8];
    int32_t version, layer, F, pad;
    int64_t n_tokens, n_docs;
} mom2_header;

/* 1 = loaded, 0 = no file, -1 = a file that is not a valid statistics file */
static int cache_read(const char *path, int layer, int F, float *C, int64_t *ntok, int64_t *ndocs, cis_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : err_set(err, CIS_EIO, "%s: %s", path, strerror(errno));
    mom2_header h;
    int rc = 1;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, "CISMOM2", 8) != 0 || h.version != MOM2_VERSION)
        rc = err_set(err, CIS_EIO, "%s: not a cisweep statistics file (expected magic CISMOM2, version %d)", path,
                     MOM2_VERSION);
    else if (h.layer != layer || h.F != F)
        rc = err_set(err, CIS_EIO, "%s: holds layer %d with %d keys; expected layer %d with %d", path, h.layer, h.F,
                     layer, F);
    else if (fread(C, sizeof(float), (size_t)F * F, f) != (size_t)F * F)
        rc = err_set(err, CIS_EIO, "%s: truncated (expected %d x %d floats after the header)", path, F, F);
    fclose(f);
    if (rc == 1) { *ntok = h.n_tokens; *ndocs = h.n_docs; }
    return rc;
}

/* publish layer `layer`'s statistics as the artifact cache entry `key` (acache_put_bytes_key: a
 * temporary file, fsync, one link; a writer that loses a race keeps the winner's entry) */
static int cache_write(const acache *ac, const char *key, int layer, int F, const float *C, int64_t ntok,
                       int64_t ndocs, cis_err *err) {
    size_t bytes = sizeof(mom2_header) + (size_t)F * F * sizeof(float);
    char *buf = xcalloc(1, bytes);
    mom2_header h = {.version = MOM2_VERSION, .layer = layer, .F = F, .n_tokens = ntok, .n_docs = ndocs};
    memcpy(h.magic, "CISMOM2", 8);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, C, (size_t)F * F * sizeof(float));
    int rc = acache_put_bytes_key(ac, key, buf, bytes, NULL, err);
    free(buf);
    return rc;
}

static bool ctx_stop(void *arg) { return interv_should_stop(arg); }

int memit_stats_get(interv_ctx *c, const int *layers, int n, int n_samples, float **C, memit_stats_info *info,
                    cis_err *err) {
    memset(info, 0, sizeof *info);
    llama_model *m = c->base ? c->base : c->model;   /* the base model's statistics when it is known */
    const llama_config *cfg = llama_model_config(m);
    int F = cfg->intermediate_size, maxlen = cfg->max_position_embeddings;
    if (!c->data_dir)
        return err_set(err, CIS_EINVAL, "the statistics come from DATA_DIR/corpus/pretrain.jsonl, but no data "
                       "directory was given");
    char *corpus = xasprintf("%s/corpus/pretrain.jsonl", c->data_dir);
    struct stat sb;
    if (stat(corpus, &sb) != 0) {
        int rc = err_set(err, CIS_EINVAL, "%s: missing (the corpus of MEMIT's second-moment statistics)", corpus);
        free(corpus);
        return rc;
    }
    if (n > MEMIT_STATS_MAX_LAYERS) {
        free(corpus);
        return err_set(err, CIS_EINVAL, "MEMIT statistics: %d layers asked for (at most %d)", n, MEMIT_STATS_MAX_LAYERS);
    }
    char (*keys)[65] = xcalloc((size_t)n, sizeof *keys);
    char **paths = xcalloc((size_t)n, sizeof *paths);
    int *missing = xmalloc((size_t)n * sizeof *missing), n_miss = 0;
    float **Cm = xcalloc((size_t)n, sizeof *Cm);
    int rc = 0;
    acache *ac = NULL;
    if (c->cache_dir && acache_open(c->cache_dir, &ac, err)) rc = -1;
    for (int i = 0; i < n; i++) C[i] = xmalloc((size_t)F * F * sizeof(float));
    info->n_layers = n;
    for (int i = 0; i < n && !rc; i++) {
        if (memit_stats_key(m, corpus, layers[i], n_samples, maxlen, keys[i], err)) { rc = -1; break; }
        memcpy(info->key, keys[i], 65);
        memcpy(info->layer_keys[i], keys[i], 65);
        info->layers[i] = layers[i];
        int got = 0;
        int64_t ntok = 0, ndocs = 0;
        if (ac) {
            paths[i] = acache_path(ac, keys[i]);
            got = cache_read(paths[i], layers[i], F, C[i], &ntok, &ndocs, err);
            if (got < 0) { rc = -1; break; }
        }
        if (got) { info->n_cached++; info->n_tokens = ntok; info->n_docs = (int)ndocs; }
        else { Cm[n_miss] = C[i]; missing[n_miss++] = i; }
    }
    if (!rc && n_miss) {
        double t0 = now_s();
        text_docs docs = {0};
        if (jsonl_text_load(corpus, "text", 0, &docs, err)) rc = -1;
        int use = 0;
        int32_t **seqs = NULL;
        int *lens = NULL;
        if (!rc) {
            int32_t *perm = xmalloc((size_t)(docs.n ? docs.n : 1) * sizeof *perm);
            rng_py_permutation(1, perm, docs.n);
            use = n_samples < docs.n ? n_samples : docs.n;
            seqs = xcalloc((size_t)(use ? use : 1), sizeof *seqs);
            lens = xcalloc((size_t)(use ? use : 1), sizeof *lens);
            for (int i = 0; i < use && !rc; i++) {
                size_t k = 0;
                if (tokenizer_encode(c->tok, docs.text[perm[i]], docs.len[perm[i]], true, &seqs[i], &k, err)) {
                    err_prefix(err, "%s: document %d: ", corpus, perm[i]);
                    rc = -1;
                }
                lens[i] = (int)(k > (size_t)maxlen ? (size_t)maxlen : k);
                if (lens[i] < 1) lens[i] = 1, seqs[i] = xrealloc(seqs[i], sizeof(int32_t)), seqs[i][0] = 0;
            }
            free(perm);
        }
        int *lay = xmalloc((size_t)n_miss * sizeof *lay);
        for (int j = 0; j < n_miss; j++) lay[j] = layers[missing[j]];
        int64_t ntok = 0;
        if (!rc)
            rc = memit_stats_compute(m, use, (const int32_t *const *)seqs, lens, lay, n_miss, Cm, &ntok, ctx_stop, c,
                                     err);
        for (int i = 0; i < use; i++) free(seqs[i]);
        free(seqs);
        free(lens);
        free(lay);
        text_docs_clear(&docs);
        info->seconds = now_s() - t0;
        info->n_tokens = ntok;
        info->n_docs = use;
        info->n_computed = n_miss;
        for (int j = 0; j < n_miss && !rc && ac; j++) {
            int i = missing[j];
            if (cache_write(ac, keys[i], layers[i], F, C[i], ntok, use, err)) rc = -1;
        }
    }
    acache_close(&ac);
    if (rc)
        for (int i = 0; i < n; i++) { free(C[i]); C[i] = NULL; }
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(keys);
    free(missing);
    free(Cm);
    free(corpus);
    return rc;
}
