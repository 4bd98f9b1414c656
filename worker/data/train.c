/* train.c - train_run of train.h: corpus -> tokenizer -> packed rows -> AdamW loop -> model
 * directory. */
#include "worker/data/train.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    return o;
}

/* ---- corpus ---- */

typedef struct tdoc { int32_t *ids; int n; } tdoc;   /* BOS doc EOS */

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
static int make_tokenizer(const train_opts *o, const text_docs *docs, int max_pos, tokenizer **tok, cis_err *err) {
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
                err_prefix(err, "corpus document %d: ", i + 1);
                bpe_trainer_free(&bt);
                return -1;
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

/* ---- packing ---- */

typedef struct packer {
    const tdoc *docs; int ndocs;
    int *order; int pos;          /* shuffled document order and the next document */
    int chunk;                    /* offset inside order[pos] (documents longer than a row) */
    uint64_t rng;
    int64_t epoch;
} packer;

/* fill one row of T tokens from the shuffled documents; returns the row's length (the rest is
 * padding). A document that does not fit the rest of a row starts the next row, except one
 * longer than a row, which fills rows in chunks. Rows run on across epochs (reshuffled). */
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
        if (len > 0 && p->chunk == 0 && d->n <= T) return len;
        int take = T - len;
        memcpy(row + len, d->ids + p->chunk, (size_t)take * sizeof *row);
        p->chunk += take;
        return T;
    }
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
    text_docs docs = {0};
    double t0 = mono_sec();
    if (jsonl_text_load(cpath, "text", 0, &docs, err)) { free(cpath); return -1; }
    if (docs.n == 0) { text_docs_free(&docs); err_set(err, CIS_EINVAL, "%s: no documents", cpath); free(cpath); return -1; }
    if (mkdir_p(o->out_dir, err)) { text_docs_free(&docs); free(cpath); return -1; }
    tokenizer *tok = NULL;
    if (make_tokenizer(o, &docs, max_pos, &tok, err)) { text_docs_free(&docs); free(cpath); return -1; }
    int V = tokenizer_vocab_size(tok), bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok), pad = tokenizer_pad_id(tok);
    if (bos < 0 || eos < 0) {
        tokenizer_free(tok); text_docs_free(&docs); free(cpath);
        return err_set(err, CIS_EINVAL, "%s: the tokenizer needs a BOS and an EOS token", o->out_dir);
    }
    tdoc *td = xcalloc((size_t)docs.n, sizeof *td);
    int64_t corpus_tokens = 0;
    for (int i = 0; i < docs.n; i++) {
        int32_t *ids; size_t n;
        if (tokenizer_encode(tok, docs.text[i], docs.len[i], false, &ids, &n, err)) {
            err_prefix(err, "%s: document %d: ", cpath, i + 1);
            for (int k = 0; k < i; k++) free(td[k].ids);
            free(td); tokenizer_free(tok); text_docs_free(&docs); free(cpath);
            return -1;
        }
        td[i].ids = xmalloc((n + 2) * sizeof *td[i].ids);
        td[i].ids[0] = bos;
        memcpy(td[i].ids + 1, ids, n * sizeof *ids);
        td[i].ids[n + 1] = eos;
        td[i].n = (int)n + 2;
        corpus_tokens += td[i].n;
        free(ids);
    }
    tokenizer_free(tok);
    int ndocs = docs.n;
    text_docs_free(&docs);
    res->tokenizer_seconds = mono_sec() - t0;
    res->corpus_docs = ndocs;
    res->corpus_tokens = corpus_tokens;
    res->vocab_size = V;
    LOG_I("train: corpus %s: %d documents, %lld tokens (vocab %d) in %.1f s", cpath, ndocs, (long long)corpus_tokens, V,
          res->tokenizer_seconds);

    /* model */
    llama_config cfg;
    int rc = -1;
    llama_model *m = NULL;
    optim *opt = NULL;
    int32_t *ids = xcalloc((size_t)B * T, sizeof *ids), *tg = xmalloc((size_t)B * T * sizeof *tg), *lens = xcalloc((size_t)B, sizeof *lens);
    packer pk = {.docs = td, .ndocs = ndocs, .order = xmalloc((size_t)ndocs * sizeof(int)), .rng = o->seed * 0x2545F4914F6CDD1DULL + 7};
    for (int i = 0; i < ndocs; i++) pk.order[i] = i;
    pk.pos = ndocs; /* the first pack_row shuffles */
    pk.epoch = -1;
    double *losses = NULL;
    if (arch_config(p, V, bos, eos, pad, max_pos, &cfg, err)) goto out;
    m = llama_model_new(&cfg, be, err);
    if (!m) goto out;
    llama_model_init_random(m, o->seed);
    res->params = llama_model_numel(m);
    if (llama_model_set_trainable(m, NULL, -1, -1, true, err) < 0) goto out;
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
    size_t lcap = 1024;
    losses = xmalloc(lcap * sizeof *losses);
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
        for (int b = 0; b < B; b++) {
            int32_t *row = ids + (size_t)b * T, *trow = tg + (size_t)b * T;
            int len = pack_row(&pk, T, row);
            if (len < 2) { row[1] = eos; len = 2; }
            lens[b] = len;
            for (int t = 0; t < T; t++) trow[t] = t + 1 < len ? row[t + 1] : LOSS_IGNORE_INDEX;
            for (int t = len; t < T; t++) row[t] = pad >= 0 ? pad : eos;
            ntok += len;
        }
        llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .targets = tg, .n_out = 0};
        double loss = 0;
        llama_model_zero_grad(m);
        if (llama_forward(m, &bt, NULL, 0, true, &loss, err) || llama_backward(m, 1.0f, NULL, err)) goto out;
        if (!isfinite(loss)) { err_set(err, CIS_EINVAL, "training diverged at step %lld (loss %g); lower --lr", (long long)step + 1, loss); goto out; }
        if (o->clip > 0) optim_clip_grad_norm(opt, o->clip);
        float lr = fit_time ? lr_at_frac(o, peak, step, (mono_sec() - tl0) / o->seconds, warm) : lr_at(o, peak, step, total, warm);
        optim_step(opt, lr);
        if ((size_t)step == lcap) { lcap *= 2; losses = xrealloc(losses, lcap * sizeof *losses); }
        losses[step] = loss;
        res->tokens += ntok;
        tok_log += ntok;
        if (step == 0) res->first_loss = loss;
        if (o->log_every > 0 && ((step + 1) % o->log_every == 0 || step == 0)) {
            double t = mono_sec();
            LOG_I("train: step %lld/%lld loss %.4f lr %.2e %.0f tok/s epoch %.2f", (long long)step + 1, (long long)total, loss,
                  lr, tok_log / (t - tlog), (double)res->tokens / (double)corpus_tokens);
            tlog = t; tok_log = 0;
        }
    }
    res->steps = step;
    res->train_seconds = mono_sec() - tl0;
    res->tokens_per_s = res->train_seconds > 0 ? res->tokens / res->train_seconds : 0;
    res->epochs = (double)res->tokens / (double)corpus_tokens;
    if (step > 0) {
        int64_t k = step / 10 > 0 ? step / 10 : 1;
        double s = 0;
        for (int64_t i = step - k; i < step; i++) s += losses[i];
        res->final_loss = s / (double)k;
    }
    LOG_I("train: %lld steps, %lld tokens (%.2f epochs) in %.1f s = %.0f tok/s; loss %.4f -> %.4f", (long long)res->steps,
          (long long)res->tokens, res->epochs, res->train_seconds, res->tokens_per_s, res->first_loss, res->final_loss);

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
    if (write_json(o->out_dir, "train_info.json", info, err)) goto out;
    rc = 0;
out:
    free(losses);
    optim_free(&opt);
    if (rc == 0 && model_out) *model_out = m;
    else llama_model_free(&m);
    for (int i = 0; i < ndocs; i++) free(td[i].ids);
    free(td); free(pk.order); free(ids); free(tg); free(lens); free(cpath);
    return rc;
}
