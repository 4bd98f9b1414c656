/* train.c - train_run of train.h: corpus -> tokenizer -> packed rows -> AdamW loop -> model
 * directory. */
#include "worker/train/pretrain.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>

#include "common/log.h"
#include "worker/data/bpe_train.h"
#include "worker/data/loaders.h"
#include "worker/engine/tokenizer.h"

train_opts train_opts_default(void) {
    train_opts o;
    memset(&o, 0, sizeof o);
    o.arch = "tiny-llama3";
    o.device = "cpu";
    o.vocab_size = 2048;
    o.seq_len = 128;
    o.batch = 4;
    o.seed = 1;
    o.min_lr_ratio = 0.1f;
    o.warmup = 30;
    o.weight_decay = 0.01f;
    o.clip = 1.0f;
    o.log_every = 10;
    o.sft_every = 2;
    o.sft_from = 0.6;
    o.sft_batch = 16;
    return o;
}

/* ---- corpus ---- */

/* a tokenized document: BOS text EOS (every next token is a target), or an SFT item BOS seg0 seg1
 * .. (segments tokenized one by one; sup[k] = 1 where ids[k] is a target: the tokens of the odd
 * segments, the "completions"). */
typedef struct tdoc { int32_t *ids; int n; uint8_t *sup; } tdoc;

/* the corpus as read: text documents and SFT items ({"prompt","completion"} lines) */
typedef struct corpus {
    text_docs text;                  /* {"text"} lines */
    char ***seg; int *nseg;          /* [nsft] SFT items: segments, odd ones supervised */
    int nsft, cap;
} corpus;

static void corpus_free(corpus *c) {
    text_docs_free(&c->text);
    for (int i = 0; i < c->nsft; i++) {
        for (int k = 0; k < c->nseg[i]; k++) free(c->seg[i][k]);
        free(c->seg[i]);
    }
    free(c->seg); free(c->nseg);
    memset(c, 0, sizeof *c);
}

static char *json_strdup(json_t *s) {
    size_t n = json_string_length(s);
    char *r = xmalloc(n + 1);
    memcpy(r, json_string_value(s), n);
    r[n] = 0;
    return r;
}

/* a corpus line is {"text": S}, {"prompt": P, "completion": C} or {"segments": [P1, C1, P2, C2,
 * ..]} (strings; at least one prompt and one completion; completions non-empty; only completions
 * are trained on); anything else is refused naming the file and line */
typedef struct corpus_ctx { const char *path; corpus *c; int tcap; } corpus_ctx;

static int corpus_line(void *vc, json_t *o, int line, cis_err *err) {
    corpus_ctx *x = vc;
    corpus *c = x->c;
    json_t *t = json_is_object(o) ? json_object_get(o, "text") : NULL;
    json_t *pr = json_is_object(o) ? json_object_get(o, "prompt") : NULL;
    json_t *co = json_is_object(o) ? json_object_get(o, "completion") : NULL;
    json_t *sg = json_is_object(o) ? json_object_get(o, "segments") : NULL;
    bool seg_ok = json_is_array(sg) && json_array_size(sg) >= 2;
    for (size_t k = 0; seg_ok && k < json_array_size(sg); k++) {
        json_t *v = json_array_get(sg, k);
        if (!json_is_string(v) || (k % 2 == 1 && json_string_length(v) == 0)) seg_ok = false;
    }
    if (json_is_string(t)) {
        if (c->text.n == x->tcap) {
            x->tcap = x->tcap ? 2 * x->tcap : 256;
            c->text.text = xrealloc(c->text.text, (size_t)x->tcap * sizeof *c->text.text);
            c->text.len = xrealloc(c->text.len, (size_t)x->tcap * sizeof *c->text.len);
        }
        c->text.len[c->text.n] = json_string_length(t);
        c->text.text[c->text.n++] = json_strdup(t);
        return 0;
    }
    if (!t && ((!sg && json_is_string(pr) && json_is_string(co) && json_string_length(co) > 0) || (!pr && !co && seg_ok))) {
        if (c->nsft == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            c->seg = xrealloc(c->seg, (size_t)c->cap * sizeof *c->seg);
            c->nseg = xrealloc(c->nseg, (size_t)c->cap * sizeof *c->nseg);
        }
        int ns = sg ? (int)json_array_size(sg) : 2;
        char **v = xmalloc((size_t)ns * sizeof *v);
        for (int k = 0; k < ns; k++) v[k] = json_strdup(sg ? json_array_get(sg, (size_t)k) : k ? co : pr);
        c->seg[c->nsft] = v;
        c->nseg[c->nsft++] = ns;
        return 0;
    }
    return err_set(err, CIS_EINVAL,
                   "%s: line %d: expected {\"text\": string}, {\"prompt\": string, \"completion\": non-empty string} or "
                   "{\"segments\": [prompt, completion, ..] (strings, >= 2, completions non-empty)}%s",
                   x->path, line, json_is_object(o) ? "" : " (the line is not a JSON object)");
}

/* corpus_load: append the lines of path (maybe .gz/.zst) to c. -1 with err naming the file and line. */
static int corpus_load(const char *path, corpus *c, cis_err *err) {
    corpus_ctx x = {path, c, c->text.n};
    int rc = jsonl_each(path, corpus_line, &x, err);
    if (rc == 0 && c->text.n == 0 && c->nsft == 0) rc = err_set(err, CIS_EINVAL, "%s: no documents (empty file)", path);
    return rc;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int copy_file(const char *src, const char *dst, cis_err *err) {
    size_t n;
    char *s = read_file(src, &n, err);
    if (!s) return -1;
    int rc = write_file_atomic(dst, s, n, err);
    free(s);
    return rc;
}

/* the tokenizer: reused (copied into out_dir) or trained on docs and saved into out_dir */
static int make_tokenizer(const train_opts *o, const corpus *cp, int max_pos, tokenizer **tok, cis_err *err) {
    const text_docs *docs = &cp->text;
    if (o->tokenizer_dir) {
        const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
        for (int i = 0; i < 3; i++) {
            char *src = xasprintf("%s/%s", o->tokenizer_dir, files[i]), *dst = xasprintf("%s/%s", o->out_dir, files[i]);
            struct stat sb;
            int rc = 0;
            if (i == 0 || stat(src, &sb) == 0) rc = copy_file(src, dst, err);
            free(src); free(dst);
            if (rc) return -1;
        }
    } else {
        bpe_trainer *bt = bpe_trainer_new();
        for (int i = 0; i < docs->n; i++)
            if (bpe_trainer_feed(bt, docs->text[i], docs->len[i], err)) {
                err_prefix(err, "corpus document %d", i + 1);
                bpe_trainer_free(&bt);
                return -1;
            }
        for (int i = 0; i < cp->nsft; i++) {
            int frc = 0;
            for (int k = 0; k < cp->nseg[i] && !frc; k++) frc = bpe_trainer_feed(bt, cp->seg[i][k], strlen(cp->seg[i][k]), err);
            if (frc) {
                err_prefix(err, "corpus SFT item %d", i + 1);
                bpe_trainer_free(&bt);
                return -1;
            }
        }
        bpe_train_opts bo = bpe_train_opts_default();
        bo.vocab_size = o->vocab_size;
        int rc = bpe_trainer_train(bt, &bo, err);
        if (!rc) rc = bpe_trainer_save(bt, o->out_dir, max_pos, err);
        if (!rc) LOG_I("train: BPE tokenizer: %d tokens from %zu distinct words", bpe_trainer_vocab_size(bt), bpe_trainer_n_words(bt));
        bpe_trainer_free(&bt);
        if (rc) return -1;
    }
    return tokenizer_load(o->out_dir, tok, err);
}

#define CPU_DP_MAX 16   /* at most this many data-parallel replicas */

/* ---- packing ---- */

#define PACK_LOOKAHEAD 64   /* documents scanned for one that fills the rest of a row */

typedef struct packer {
    const tdoc *docs; int ndocs;
    int *order; int pos;          /* shuffled document order and the next document */
    int chunk;                    /* offset inside order[pos] (documents longer than a row) */
    uint64_t rng;
    int64_t epoch;
} packer;

/* fill one row of T tokens from the shuffled documents; returns the row's length (the rest is
 * padding). A document that does not fit the rest of a row gives its place to the first of the
 * next PACK_LOOKAHEAD documents that does (swapped forward in the order), or starts the next row;
 * one longer than a row fills rows in chunks. Rows run on across epochs (reshuffled); every
 * document is used once per epoch. */
static int pack_row(packer *p, int T, int32_t *row) {
    int len = 0;
    for (;;) {
        if (p->pos == p->ndocs) {
            p->pos = 0; p->epoch++;
            for (int i = p->ndocs - 1; i > 0; i--) {
                int j = (int)(splitmix(&p->rng) % (uint64_t)(i + 1));
                int t = p->order[i]; p->order[i] = p->order[j]; p->order[j] = t;
            }
        }
        const tdoc *d = &p->docs[p->order[p->pos]];
        int left = d->n - p->chunk;
        if (left <= T - len) {
            memcpy(row + len, d->ids + p->chunk, (size_t)left * sizeof *row);
            len += left; p->chunk = 0; p->pos++;
            if (len == T) return len;
            continue;
        }
        if (len > 0 && p->chunk == 0 && d->n <= T) {
            /* fill the rest of the row with the first of the next PACK_LOOKAHEAD documents that
             * fits (swapped forward in the order), else end the row */
            int found = -1;
            for (int j = p->pos + 1; j < p->ndocs && j <= p->pos + PACK_LOOKAHEAD && found < 0; j++)
                if (p->docs[p->order[j]].n <= T - len) found = j;
            if (found < 0) return len;
            int t = p->order[p->pos]; p->order[p->pos] = p->order[found]; p->order[found] = t;
            continue;
        }
        int take = T - len;
        memcpy(row + len, d->ids + p->chunk, (size_t)take * sizeof *row);
        p->chunk += take;
        return T;
    }
}

/* mean of the last 10% (at least 1) of v[0..n) (0 when n = 0) */
static double tail_mean(const double *v, int64_t n) {
    if (n <= 0) return 0;
    int64_t k = n / 10 > 0 ? n / 10 : 1;
    double s = 0;
    for (int64_t i = n - k; i < n; i++) s += v[i];
    return s / (double)k;
}

/* ---- schedule ---- */

static float lr_at(const train_opts *o, float peak, int64_t step, int64_t total, int warmup) {
    if (step < warmup) return peak * (float)(step + 1) / (float)warmup;
    double prog = total > warmup ? (double)(step - warmup) / (double)(total - warmup) : 1.0;
    if (prog > 1) prog = 1;
    double lo = peak * o->min_lr_ratio;
    return (float)(lo + (peak - lo) * 0.5 * (1 + cos(M_PI * prog)));
}

/* the same schedule on the fraction of a time budget used (warmup still in steps) */
static float lr_at_frac(const train_opts *o, float peak, int64_t step, double frac, int warmup) {
    if (step < warmup) return peak * (float)(step + 1) / (float)warmup;
    if (frac > 1) frac = 1;
    double lo = peak * o->min_lr_ratio;
    return (float)(lo + (peak - lo) * 0.5 * (1 + cos(M_PI * frac)));
}

/* ---- outputs ---- */

static int write_json(const char *dir, const char *name, json_t *v, cis_err *err) {
    char *path = xasprintf("%s/%s", dir, name);
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(v);
    char *s2 = xasprintf("%s\n", s ? s : "{}");
    int rc = write_file_atomic(path, s2, strlen(s2), err);
    free(s); free(s2); free(path);
    return rc;
}

/* ---- data parallelism: replicas of the model, one thread each, on slices of the batch ---- */

typedef struct dp_work {
    llama_model *m;
    llama_batch b;
    float scale;          /* n_targets(slice) / n_targets(batch): the slice's share of the mean */
    double loss;
    int rc;
    cis_err err;
} dp_work;

static int64_t param_numel(const llama_param *p) {
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->shape[d];
    return n;
}

static void *dp_run(void *arg) {
    dp_work *w = arg;
    llama_model_zero_grad(w->m);
    w->rc = llama_forward(w->m, &w->b, NULL, 0, true, &w->loss, &w->err);
    if (!w->rc) w->rc = llama_backward(w->m, w->scale, NULL, &w->err);
    return NULL;
}

static int count_targets(const int32_t *tg, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += tg[i] != LOSS_IGNORE_INDEX;
    return c;
}

/* one forward + backward of batch bt over R replicas (rep[0] = the trained model): the rows are
 * split into R equal slices, replica r > 0 first takes rep[0]'s weights, each runs its slice with
 * the loss scaled by its share of the batch's targets, and the gradients are summed into rep[0]'s
 * buffers: the same gradient as one pass over the whole batch (up to summation order). */
static int dp_forward_backward(llama_model **rep, int R, const llama_batch *bt, double *loss, cis_err *err) {
    if (R <= 1 || bt->B % R) {
        llama_model_zero_grad(rep[0]);
        return llama_forward(rep[0], bt, NULL, 0, true, loss, err) || llama_backward(rep[0], 1.0f, NULL, err) ? -1 : 0;
    }
    int np;
    llama_param *p0 = llama_model_params(rep[0], &np);
    dp_work w[CPU_DP_MAX];
    pthread_t tid[CPU_DP_MAX];
    int rows = bt->B / R, N = count_targets(bt->targets, bt->B * bt->T);
    for (int r = 0; r < R; r++) {
        if (r > 0) {
            int npr;
            llama_param *pr = llama_model_params(rep[r], &npr);
            for (int i = 0; i < np; i++) memcpy(pr[i].data, p0[i].data, (size_t)param_numel(&p0[i]) * sizeof(float));
        }
        size_t off = (size_t)r * rows * bt->T;
        w[r] = (dp_work){.m = rep[r], .b = *bt};
        w[r].b.B = rows;
        w[r].b.ids = bt->ids + off;
        w[r].b.lens = bt->lens + r * rows;
        w[r].b.targets = bt->targets + off;
        int n = count_targets(w[r].b.targets, rows * bt->T);
        w[r].scale = N > 0 ? (float)n / (float)N : 0.0f;
    }
    for (int r = 1; r < R; r++)
        if (pthread_create(&tid[r], NULL, dp_run, &w[r])) { w[r].rc = -2; dp_run(&w[r]); }
    dp_run(&w[0]);
    for (int r = 1; r < R; r++)
        if (w[r].rc != -2) pthread_join(tid[r], NULL);
    *loss = 0;
    for (int r = 0; r < R; r++) {
        if (w[r].rc == -1) { *err = w[r].err; return -1; }
        *loss += w[r].scale * w[r].loss;
    }
    for (int r = 1; r < R; r++)
        for (int i = 0; i < np; i++) {
            float *g0 = llama_model_grad(rep[0], i), *gr = llama_model_grad(rep[r], i);
            if (!g0 || !gr) continue;
            for (int64_t k = 0, n = param_numel(&p0[i]); k < n; k++) g0[k] += gr[k];
        }
    return 0;
}

int train_run(const train_opts *o, train_result *res, llama_model **model_out, cis_err *err) {
    memset(res, 0, sizeof *res);
    if (model_out) *model_out = NULL;
    const arch_preset *p = o->preset ? o->preset : arch_find(o->arch);
    if (!p) return err_set(err, CIS_EINVAL, "--arch: unknown architecture \"%s\" (see --list)", o->arch ? o->arch : "");
    const backend_ops *be = backend_get(o->device ? o->device : "cpu");
    if (!be) return err_set(err, CIS_EINVAL, "--device: unknown or unavailable device \"%s\" (available: cpu)", o->device);
    if (!o->out_dir) return err_set(err, CIS_EINVAL, "--out: a model directory is required");
    if (o->seq_len < 8 || o->batch < 1) return err_set(err, CIS_EINVAL, "--seq-len must be >= 8 and --batch >= 1");
    if (o->steps <= 0 && o->seconds <= 0) return err_set(err, CIS_EINVAL, "give --steps N or --seconds S (a budget)");
    int T = o->seq_len, B = o->batch;
    int max_pos = o->max_pos > 0 ? o->max_pos : T;
    if (max_pos < T) return err_set(err, CIS_EINVAL, "max_pos %d < seq_len %d", max_pos, T);
    be->set_threads(o->threads);

    /* corpus */
    char *cpath = o->corpus ? xstrdup(o->corpus) : o->world_dir ? xasprintf("%s/corpus/pretrain.jsonl", o->world_dir) : NULL;
    if (!cpath) return err_set(err, CIS_EINVAL, "--world DIR (or --corpus FILE) is required");
    corpus cp = {0};
    double t0 = mono_sec();
    if (corpus_load(cpath, &cp, err)) { corpus_free(&cp); free(cpath); return -1; }
    /* SFT items: --sft FILE, or WORLD/corpus/sft.jsonl when it exists */
    char *spath = o->sft_path ? xstrdup(o->sft_path) : NULL;
    if (!spath && o->world_dir && !o->corpus) {
        struct stat sb;
        spath = xasprintf("%s/corpus/sft.jsonl", o->world_dir);
        if (stat(spath, &sb) != 0) { free(spath); spath = NULL; }
    }
    if (spath) {
        int src = corpus_load(spath, &cp, err);
        if (src) { corpus_free(&cp); free(cpath); free(spath); return -1; }
        LOG_I("train: SFT items from %s", spath);
        free(spath);
    }
    if (mkdir_p(o->out_dir, err)) { corpus_free(&cp); free(cpath); return -1; }
    tokenizer *tok = NULL;
    if (make_tokenizer(o, &cp, max_pos, &tok, err)) { corpus_free(&cp); free(cpath); return -1; }
    if (o->tokenizer_only) {
        res->vocab_size = tokenizer_vocab_size(tok);
        res->tokenizer_seconds = mono_sec() - t0;
        tokenizer_free(tok); corpus_free(&cp); free(cpath);
        return 0;
    }
    int V = tokenizer_vocab_size(tok), bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok), pad = tokenizer_pad_id(tok);
    if (bos < 0 || eos < 0) {
        tokenizer_free(tok); corpus_free(&cp); free(cpath);
        return err_set(err, CIS_EINVAL, "%s: the tokenizer needs a BOS and an EOS token", o->out_dir);
    }
    int ndocs = cp.text.n, nsft = cp.nsft;
    tdoc *td = xcalloc((size_t)ndocs + (size_t)nsft + 1, sizeof *td), *sd = td + ndocs;
    int64_t corpus_tokens = 0, sft_tokens = 0;
    int sft_max = 0;
    for (int i = 0; i < ndocs + nsft; i++) {
        tdoc *d = &td[i];
        int erc = 0;
        if (i < ndocs) {
            int32_t *a = NULL;
            size_t na = 0;
            erc = tokenizer_encode(tok, cp.text.text[i], cp.text.len[i], false, &a, &na, err);
            if (!erc) {
                d->ids = xmalloc((na + 2) * sizeof *d->ids);
                d->ids[0] = bos;
                memcpy(d->ids + 1, a, na * sizeof *a);
                d->ids[na + 1] = eos;
                d->n = (int)na + 2;
                corpus_tokens += d->n;
            }
            free(a);
        } else {
            int k = i - ndocs, cap = 64;
            d->ids = xmalloc((size_t)cap * sizeof *d->ids);
            d->sup = xmalloc((size_t)cap);
            d->ids[0] = bos; d->sup[0] = 0; d->n = 1;
            for (int g = 0; g < cp.nseg[k] && !erc; g++) {
                int32_t *a = NULL;
                size_t na = 0;
                erc = tokenizer_encode(tok, cp.seg[k][g], strlen(cp.seg[k][g]), false, &a, &na, err);
                if (!erc && g % 2 == 1 && na == 0) erc = err_set(err, CIS_EINVAL, "completion %d has no tokens", g / 2 + 1);
                if (!erc && d->n + (int)na > T)
                    erc = err_set(err, CIS_EINVAL, "longer than one row of %d tokens (--seq-len)", T);
                if (!erc) {
                    while (d->n + (int)na > cap) { cap *= 2; d->ids = xrealloc(d->ids, (size_t)cap * sizeof *d->ids); d->sup = xrealloc(d->sup, (size_t)cap); }
                    memcpy(d->ids + d->n, a, na * sizeof *a);
                    memset(d->sup + d->n, g % 2, na);
                    d->n += (int)na;
                }
                free(a);
            }
            sft_tokens += d->n;
            if (d->n > sft_max) sft_max = d->n;
        }
        if (erc) {
            if (i < ndocs) err_prefix(err, "%s: document %d", cpath, i + 1);
            else err_prefix(err, "%s: SFT item %d", cpath, i - ndocs + 1);
            for (int k = 0; k <= i; k++) { free(td[k].ids); free(td[k].sup); }
            free(td); tokenizer_free(tok); corpus_free(&cp); free(cpath);
            return -1;
        }
    }
    tokenizer_free(tok);
    corpus_free(&cp);
    res->tokenizer_seconds = mono_sec() - t0;
    res->corpus_docs = ndocs;
    res->corpus_tokens = corpus_tokens;
    res->sft_items = nsft;
    res->vocab_size = V;
    LOG_I("train: corpus %s: %d documents, %lld tokens; %d SFT items (%lld tokens, longest %d) (vocab %d) in %.1f s", cpath,
          ndocs, (long long)corpus_tokens, nsft, (long long)sft_tokens, sft_max, V, res->tokenizer_seconds);

    /* model */
    llama_config cfg;
    int rc = -1;
    llama_model *m = NULL;
    optim *opt = NULL;
    int Bmax = B > o->sft_batch ? B : o->sft_batch;
    int32_t *ids = xcalloc((size_t)Bmax * T, sizeof *ids), *tg = xmalloc((size_t)Bmax * T * sizeof *tg), *lens = xcalloc((size_t)Bmax, sizeof *lens);
    packer pk = {.docs = td, .ndocs = ndocs, .order = xmalloc((size_t)ndocs * sizeof(int)), .rng = o->seed * 0x2545F4914F6CDD1DULL + 7};
    for (int i = 0; i < ndocs; i++) pk.order[i] = i;
    pk.pos = ndocs; /* the first pack_row shuffles */
    pk.epoch = -1;
    double *losses = NULL, *sft_losses = NULL;
    llama_model *rep[CPU_DP_MAX] = {0};
    int R = 1;
    int Balloc = B > o->sft_batch ? B : o->sft_batch;
    int *pick = xmalloc((size_t)Balloc * sizeof *pick);
    packer sp = {.docs = sd, .ndocs = nsft, .order = xmalloc(((size_t)nsft + 1) * sizeof(int)), .rng = o->seed * 0x9E3779B97F4A7C15ULL + 11};
    for (int i = 0; i < nsft; i++) sp.order[i] = i;
    sp.pos = nsft;
    sp.epoch = -1;
    if (arch_config(p, V, bos, eos, pad, max_pos, &cfg, err)) goto out;
    m = llama_model_new(&cfg, be, err);
    if (!m) goto out;
    llama_model_init_random(m, o->seed);
    res->params = llama_model_numel(m);
    if (llama_model_set_trainable(m, NULL, -1, -1, true, err) < 0) goto out;
    /* data parallel: with T threads, T replicas of one thread each (the rows of every step split
     * between them) when the batch sizes divide; one thread per small matmul does far better than
     * T threads on the same matmul at this size */
    R = o->replicas > 0 ? o->replicas : be->get_threads();
    if (R > CPU_DP_MAX) R = CPU_DP_MAX;
    if (R > 1 && (B % R || o->sft_batch % R)) R = 1;
    if (R > 1) {
        be->set_threads(1);
        for (int r = 1; r < R; r++) {
            rep[r] = llama_model_new(&cfg, be, err);
            if (!rep[r] || llama_model_set_trainable(rep[r], NULL, -1, -1, true, err) < 0) goto out;
        }
        LOG_I("train: data parallel over %d replicas, 1 thread each", R);
    }
    optim_config oc = optim_config_default(ADAM_TORCH_ADAMW);
    float peak = o->lr > 0 ? o->lr : p->lr;
    oc.lr = peak;
    oc.beta1 = 0.9f; oc.beta2 = 0.95f;
    oc.weight_decay = o->weight_decay;
    opt = llama_model_optim_new(m, &oc, err);
    if (!opt) goto out;
    LOG_I("train: %s (%s layout, %s): %lld parameters, D=%d F=%d L=%d H=%d Hkv=%d, T=%d B=%d, lr %.2g", p->name,
          cfg.architecture, cfg.tie_word_embeddings ? "tied" : "untied", res->params, cfg.hidden_size,
          cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, T, B, peak);

    int64_t total = o->steps > 0 ? o->steps : INT64_MAX;
    bool fit_time = o->steps <= 0;
    size_t lcap = 1024, scap = 1024;
    losses = xmalloc(lcap * sizeof *losses);
    sft_losses = xmalloc(scap * sizeof *sft_losses);
    double sft_log = 0, last_loss = 0;
    bool sft_on = false;
    int64_t sft_phase = 0;
    int sft_nlog = 0;
    double tl0 = mono_sec(), tlog = tl0;
    int64_t tok_log = 0;
    int64_t step = 0;
    for (; fit_time || step < total; step++) {
        double now = mono_sec();
        if (o->seconds > 0 && now - tl0 >= o->seconds) break;
        /* time budget without a step count: the schedule runs on the fraction of the budget used
         * (progress = elapsed / seconds), and `total` is only the running estimate for the log */
        if (fit_time && step > 0) total = step + (int64_t)((o->seconds - (now - tl0)) / ((now - tl0) / (double)step)) + 1;
        int warm = o->warmup;
        if (!fit_time && warm > total / 10) warm = (int)(total / 10 > 1 ? total / 10 : 1);
        int64_t ntok = 0;
        double prog = fit_time ? (now - tl0) / o->seconds : (double)step / (double)total;
        if (nsft > 0 && !sft_on && prog >= o->sft_from) { sft_on = true; sft_phase = step; }
        bool sft = ndocs == 0 || (sft_on && o->sft_every > 0 && (step - sft_phase) % o->sft_every == o->sft_every - 1);
        int Bs = B, Ts = T;
        if (sft) {
            /* one SFT item per row (an item sees nothing but its own prompt, as in 0-shot evaluation),
             * rows as long as the longest item of the step; only completion tokens are targets */
            Bs = o->sft_batch; Ts = 2;
            for (int b = 0; b < Bs; b++) {
                if (sp.pos == nsft) {
                    sp.pos = 0; sp.epoch++;
                    for (int i = nsft - 1; i > 0; i--) {
                        int j = (int)(splitmix(&sp.rng) % (uint64_t)(i + 1));
                        int t = sp.order[i]; sp.order[i] = sp.order[j]; sp.order[j] = t;
                    }
                }
                pick[b] = sp.order[sp.pos++];
                if (sd[pick[b]].n > Ts) Ts = sd[pick[b]].n;
            }
            for (int b = 0; b < Bs; b++) {
                const tdoc *d = &sd[pick[b]];
                int32_t *row = ids + (size_t)b * Ts, *trow = tg + (size_t)b * Ts;
                memcpy(row, d->ids, (size_t)d->n * sizeof *row);
                lens[b] = d->n;
                for (int t = 0; t < Ts; t++) trow[t] = t + 1 < d->n && d->sup[t + 1] ? d->ids[t + 1] : LOSS_IGNORE_INDEX;
                for (int t = d->n; t < Ts; t++) row[t] = pad >= 0 ? pad : eos;
            }
        } else {
            for (int b = 0; b < B; b++) {
                int32_t *row = ids + (size_t)b * T, *trow = tg + (size_t)b * T;
                int len = pack_row(&pk, T, row);
                if (len < 2) { row[1] = eos; len = 2; }
                lens[b] = len;
                for (int t = 0; t < T; t++) trow[t] = t + 1 < len ? row[t + 1] : LOSS_IGNORE_INDEX;
                for (int t = len; t < T; t++) row[t] = pad >= 0 ? pad : eos;
                ntok += len;
            }
        }
        llama_batch bt = {.B = Bs, .T = Ts, .ids = ids, .lens = lens, .targets = tg, .n_out = 0};
        double loss = 0;
        rep[0] = m;
        if (dp_forward_backward(rep, R, &bt, &loss, err)) goto out;
        if (!isfinite(loss)) { err_set(err, CIS_EINVAL, "training diverged at step %lld (loss %g); lower --lr", (long long)step + 1, loss); goto out; }
        if (o->clip > 0) optim_clip_grad_norm(opt, o->clip);
        float lr = fit_time ? lr_at_frac(o, peak, step, (mono_sec() - tl0) / o->seconds, warm) : lr_at(o, peak, step, total, warm);
        optim_step(opt, lr);
        if (sft) {
            res->sft_steps++;
            res->sft_seen += Bs;
            sft_log += loss; sft_nlog++;
            if ((size_t)res->sft_steps > scap) { scap *= 2; sft_losses = xrealloc(sft_losses, scap * sizeof *sft_losses); }
            sft_losses[res->sft_steps - 1] = loss;
            if (res->sft_steps == 1) res->sft_first_loss = loss;
        } else {
            if ((size_t)res->lm_steps == lcap) { lcap *= 2; losses = xrealloc(losses, lcap * sizeof *losses); }
            losses[res->lm_steps++] = loss;
            if (res->lm_steps == 1) res->first_loss = loss;
        }
        res->tokens += ntok;
        tok_log += ntok;
        if (!sft) last_loss = loss;
        if (o->log_every > 0 && ((step + 1) % o->log_every == 0 || step == 0)) {
            double t = mono_sec();
            char sl[64] = "";
            if (sft_nlog) snprintf(sl, sizeof sl, " sft loss %.4f", sft_log / sft_nlog);
            LOG_I("train: step %lld/%lld loss %.4f%s lr %.2e %.0f tok/s epoch %.2f", (long long)step + 1, (long long)total,
                  last_loss, sl, lr, tok_log / (t - tlog), corpus_tokens ? (double)res->tokens / (double)corpus_tokens : 0.0);
            tlog = t; tok_log = 0; sft_log = 0; sft_nlog = 0;
        }
    }
    res->steps = step;
    res->train_seconds = mono_sec() - tl0;
    res->tokens_per_s = res->train_seconds > 0 ? res->tokens / res->train_seconds : 0;
    res->epochs = corpus_tokens ? (double)res->tokens / (double)corpus_tokens : 0;
    res->final_loss = tail_mean(losses, res->lm_steps);
    res->sft_final_loss = tail_mean(sft_losses, res->sft_steps);
    res->sft_epochs = nsft ? (double)res->sft_seen / nsft : 0;
    LOG_I("train: %lld steps, %lld tokens (%.2f epochs) in %.1f s = %.0f tok/s; loss %.4f -> %.4f", (long long)res->steps,
          (long long)res->tokens, res->epochs, res->train_seconds, res->tokens_per_s, res->first_loss, res->final_loss);
    if (res->sft_steps)
        LOG_I("train: %lld SFT steps, %lld items (%.2f epochs of %lld); completion loss %.4f -> %.4f", (long long)res->sft_steps,
              (long long)res->sft_seen, res->sft_epochs, (long long)res->sft_items, res->sft_first_loss, res->sft_final_loss);

    /* write */
    int np;
    llama_param *params = llama_model_params(m, &np);
    if (checkpoint_save(o->out_dir, &cfg, params, (size_t)np, "F32", 0, err)) goto out;
    if (write_json(o->out_dir, "generation_config.json",
                   json_pack("{s:i,s:i,s:o,s:b}", "bos_token_id", bos, "eos_token_id", eos, "pad_token_id",
                             pad >= 0 ? json_integer(pad) : json_null(), "do_sample", 0), err))
        goto out;
    json_t *info = json_pack("{s:s,s:s,s:I,s:i,s:s,s:I,s:I,s:I,s:I,s:f,s:i,s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:i}",
                             "arch", p->name, "stands_for", p->stands_for, "params", (json_int_t)res->params, "vocab_size", V,
                             "corpus", cpath, "corpus_docs", (json_int_t)ndocs, "corpus_tokens", (json_int_t)corpus_tokens,
                             "steps", (json_int_t)res->steps, "tokens", (json_int_t)res->tokens, "epochs", res->epochs,
                             "seq_len", T, "batch", B, "lr", (double)peak, "train_seconds", res->train_seconds,
                             "tokens_per_s", res->tokens_per_s, "first_loss", res->first_loss, "final_loss", res->final_loss,
                             "tokenizer_seconds", res->tokenizer_seconds, "seed", (json_int_t)o->seed, "threads", o->threads);
    json_object_set_new(info, "lm_steps", json_integer(res->lm_steps));
    json_object_set_new(info, "sft_items", json_integer(res->sft_items));
    json_object_set_new(info, "sft_every", json_integer(o->sft_every));
    json_object_set_new(info, "sft_batch", json_integer(o->sft_batch));
    json_object_set_new(info, "sft_steps", json_integer(res->sft_steps));
    json_object_set_new(info, "sft_seen", json_integer(res->sft_seen));
    json_object_set_new(info, "sft_first_loss", json_real(res->sft_first_loss));
    json_object_set_new(info, "sft_final_loss", json_real(res->sft_final_loss));
    if (write_json(o->out_dir, "train_info.json", info, err)) goto out;
    rc = 0;
out:
    for (int r = 1; r < CPU_DP_MAX; r++) llama_model_free(&rep[r]);
    free(losses); free(sft_losses); free(pick); free(sp.order);
    optim_free(&opt);
    if (rc == 0 && model_out) *model_out = m;
    else llama_model_free(&m);
    for (int i = 0; i < ndocs; i++) free(td[i].ids);
    for (int i = 0; i < nsft; i++) { free(sd[i].ids); free(sd[i].sup); }
    free(td); free(pk.order); free(ids); free(tg); free(lens); free(cpath);
    return rc;
}
