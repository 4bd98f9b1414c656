/* pretrain.c - pretrain_run of pretrain.h: corpus -> tokenizer -> packed rows and SFT items as
 * the batches of the training loop (train_loop.h) -> model directory. */
#include "worker/train/pretrain.h"
#include "common/rng.h"

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
#include "worker/train/train_loop.h"

pretrain_opts pretrain_opts_default(void) {
    pretrain_opts o;
    memset(&o, 0, sizeof o);
    o.arch = "tiny-llama3";
    o.device = "cpu";
    o.vocab_size = 2048;
    o.seq_len = 128;
    o.batch = 4;
    o.steps = PRETRAIN_DEFAULT_STEPS;
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
    text_docs_clear(&c->text);
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

static int copy_file(const char *src, const char *dst, cis_err *err) {
    size_t n;
    char *s = read_file(src, &n, err);
    if (!s) return -1;
    int rc = write_file_atomic(dst, s, n, err);
    free(s);
    return rc;
}

/* --init: the model to start from must have been trained with the tokenizer now in out_dir (its
 * ids are the embedding rows); compares the two tokenizer.json files byte for byte */
static int init_check_tokenizer(const pretrain_opts *o, cis_err *err) {
    char *a = xasprintf("%s/tokenizer.json", o->init_dir), *b = xasprintf("%s/tokenizer.json", o->out_dir);
    size_t na = 0, nb = 0;
    char *ta = read_file(a, &na, err), *tb = ta ? read_file(b, &nb, err) : NULL;
    int rc = 0;
    if (!ta || !tb) rc = -1;
    else if (na != nb || memcmp(ta, tb, na))
        rc = err_set(err, CIS_EINVAL, "--init %s: its tokenizer.json differs from the one this run trains with (%s); "
                     "give --tokenizer %s or leave --tokenizer out", o->init_dir, o->tokenizer_dir ? o->tokenizer_dir : "a new one",
                     o->init_dir);
    free(ta); free(tb); free(a); free(b);
    return rc;
}

/* the tokenizer: reused (copied into out_dir) or trained on docs and saved into out_dir */
static int make_tokenizer(const pretrain_opts *o, const corpus *cp, int max_pos, tokenizer **tok, cis_err *err) {
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
                int j = (int)(rng_splitmix64(&p->rng) % (uint64_t)(i + 1));
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
/* ---- the tokenized corpus ---- */

typedef struct pt_data {
    char *cpath;                  /* the corpus file */
    tdoc *td, *sd;                /* [ndocs] text documents, then [nsft] SFT items (one allocation) */
    int ndocs, nsft;
    int64_t corpus_tokens;
    int V, bos, eos, pad;
} pt_data;

static void pt_data_free(pt_data *d) {
    for (int i = 0; d->td && i < d->ndocs + d->nsft; i++) { free(d->td[i].ids); free(d->td[i].sup); }
    free(d->td);
    free(d->cpath);
    memset(d, 0, sizeof *d);
}

/* read the corpus (and the SFT items), make the tokenizer in out_dir and tokenize everything into
 * d. With o->tokenizer_only, stop after the tokenizer (d->V set). */
static int pt_data_load(const pretrain_opts *o, int max_pos, pt_data *d, pretrain_result *res, cis_err *err) {
    int T = o->seq_len;
    memset(d, 0, sizeof *d);
    d->cpath = o->corpus ? xstrdup(o->corpus) : o->world_dir ? xasprintf("%s/corpus/pretrain.jsonl", o->world_dir) : NULL;
    if (!d->cpath) return err_set(err, CIS_EINVAL, "--world DIR (or --corpus FILE) is required");
    const char *cpath = d->cpath;
    corpus cp = {0};
    double t0 = mono_sec();
    if (corpus_load(cpath, &cp, err)) { corpus_free(&cp); return -1; }
    /* SFT items: --sft FILE, or WORLD/corpus/sft.jsonl when it exists */
    char *spath = o->sft_path ? xstrdup(o->sft_path) : NULL;
    if (!spath && o->world_dir && !o->corpus) {
        struct stat sb;
        spath = xasprintf("%s/corpus/sft.jsonl", o->world_dir);
        if (stat(spath, &sb) != 0) { free(spath); spath = NULL; }
    }
    if (spath) {
        int src = corpus_load(spath, &cp, err);
        if (src) { corpus_free(&cp); free(spath); return -1; }
        LOG_I("train: SFT items from %s", spath);
        free(spath);
    }
    if (mkdir_p(o->out_dir, err)) { corpus_free(&cp); return -1; }
    tokenizer *tok = NULL;
    if (make_tokenizer(o, &cp, max_pos, &tok, err)) { corpus_free(&cp); return -1; }
    d->V = tokenizer_vocab_size(tok);
    if (o->tokenizer_only) {
        res->tokenizer_seconds = mono_sec() - t0;
        tokenizer_free(tok); corpus_free(&cp);
        return 0;
    }
    int bos = d->bos = tokenizer_bos_id(tok), eos = d->eos = tokenizer_eos_id(tok);
    d->pad = tokenizer_pad_id(tok);
    if (bos < 0 || eos < 0) {
        tokenizer_free(tok); corpus_free(&cp);
        return err_set(err, CIS_EINVAL, "%s: the tokenizer needs a BOS and an EOS token", o->out_dir);
    }
    int ndocs = cp.text.n, nsft = cp.nsft;
    tdoc *td = xcalloc((size_t)ndocs + (size_t)nsft + 1, sizeof *td);
    int64_t corpus_tokens = 0, sft_tokens = 0;
    int sft_max = 0;
    for (int i = 0; i < ndocs + nsft; i++) {
        tdoc *dc = &td[i];
        int erc = 0;
        if (i < ndocs) {
            int32_t *a = NULL;
            size_t na = 0;
            erc = tokenizer_encode(tok, cp.text.text[i], cp.text.len[i], false, &a, &na, err);
            if (!erc) {
                dc->ids = xmalloc((na + 2) * sizeof *dc->ids);
                dc->ids[0] = bos;
                memcpy(dc->ids + 1, a, na * sizeof *a);
                dc->ids[na + 1] = eos;
                dc->n = (int)na + 2;
                corpus_tokens += dc->n;
            }
            free(a);
        } else {
            int k = i - ndocs, cap = 64;
            dc->ids = xmalloc((size_t)cap * sizeof *dc->ids);
            dc->sup = xmalloc((size_t)cap);
            dc->ids[0] = bos; dc->sup[0] = 0; dc->n = 1;
            for (int g = 0; g < cp.nseg[k] && !erc; g++) {
                int32_t *a = NULL;
                size_t na = 0;
                erc = tokenizer_encode(tok, cp.seg[k][g], strlen(cp.seg[k][g]), false, &a, &na, err);
                if (!erc && g % 2 == 1 && na == 0) erc = err_set(err, CIS_EINVAL, "completion %d has no tokens", g / 2 + 1);
                if (!erc && dc->n + (int)na > T)
                    erc = err_set(err, CIS_EINVAL, "longer than one row of %d tokens (--seq-len)", T);
                if (!erc) {
                    while (dc->n + (int)na > cap) { cap *= 2; dc->ids = xrealloc(dc->ids, (size_t)cap * sizeof *dc->ids); dc->sup = xrealloc(dc->sup, (size_t)cap); }
                    memcpy(dc->ids + dc->n, a, na * sizeof *a);
                    memset(dc->sup + dc->n, g % 2, na);
                    dc->n += (int)na;
                }
                free(a);
            }
            sft_tokens += dc->n;
            if (dc->n > sft_max) sft_max = dc->n;
        }
        if (erc) {
            if (i < ndocs) err_prefix(err, "%s: document %d", cpath, i + 1);
            else err_prefix(err, "%s: SFT item %d", cpath, i - ndocs + 1);
            for (int k = 0; k <= i; k++) { free(td[k].ids); free(td[k].sup); }
            free(td); tokenizer_free(tok); corpus_free(&cp);
            return -1;
        }
    }
    tokenizer_free(tok);
    corpus_free(&cp);
    d->td = td; d->sd = td + ndocs; d->ndocs = ndocs; d->nsft = nsft; d->corpus_tokens = corpus_tokens;
    res->tokenizer_seconds = mono_sec() - t0;
    res->corpus_docs = ndocs;
    res->corpus_tokens = corpus_tokens;
    res->sft_items = nsft;
    LOG_I("train: corpus %s: %d documents, %lld tokens; %d SFT items (%lld tokens, longest %d) (vocab %d) in %.1f s", cpath,
          ndocs, (long long)corpus_tokens, nsft, (long long)sft_tokens, sft_max, d->V, res->tokenizer_seconds);
    return 0;
}

/* ---- the batches and the progress of the training loop (train_loop.h) ---- */

typedef struct pt_run {
    const pretrain_opts *o;
    const pt_data *d;
    pretrain_result *res;
    packer pk, sp;                /* text documents, SFT items */
    int32_t *ids, *tg, *lens;     /* [Bmax, T], [Bmax, T], [Bmax] */
    int *pick;                    /* [sft_batch] the SFT items of a step */
    bool sft_on;                  /* SFT steps have begun (at sft_from of the budget) */
    int64_t sft_phase;            /* the step they began at */
    bool cur_sft;                 /* the batch just made is an SFT batch */
    int64_t cur_tok;              /* its real (unpadded) text tokens */
    double *losses, *sft_losses;  /* per LM step, per SFT step */
    size_t lcap, scap;
    double sft_log, tlog;         /* for the log line */
    int sft_nlog;
    int64_t tok_log;
    double last_loss;
} pt_run;

static void shuffle_order(packer *p) {
    for (int i = p->ndocs - 1; i > 0; i--) {
        int j = (int)(rng_splitmix64(&p->rng) % (uint64_t)(i + 1));
        int t = p->order[i]; p->order[i] = p->order[j]; p->order[j] = t;
    }
}

/* the batch of step si->step: packed text rows, or (every sft_every-th step once sft_from of the
 * budget has run, or always with a corpus of SFT items only) sft_batch SFT items, one per row
 * (an item sees nothing but its own prompt, as in 0-shot evaluation), rows as long as the step's
 * longest item; only completion tokens are targets */
static int pt_batch(void *ctx, const train_step_info *si, train_batch *out, cis_err *err) {
    pt_run *x = ctx;
    const pretrain_opts *o = x->o;
    const pt_data *d = x->d;
    int B = o->batch, T = o->seq_len, fill = d->pad >= 0 ? d->pad : d->eos;
    if (d->nsft > 0 && !x->sft_on && si->frac >= o->sft_from) { x->sft_on = true; x->sft_phase = si->step; }
    bool sft = d->ndocs == 0 || (x->sft_on && o->sft_every > 0 && (si->step - x->sft_phase) % o->sft_every == o->sft_every - 1);
    int Bs = B, Ts = T;
    int64_t ntok = 0;
    if (sft) {
        packer *sp = &x->sp;
        Bs = o->sft_batch; Ts = 2;
        for (int b = 0; b < Bs; b++) {
            if (sp->pos == sp->ndocs) { sp->pos = 0; sp->epoch++; shuffle_order(sp); }
            x->pick[b] = sp->order[sp->pos++];
            if (d->sd[x->pick[b]].n > Ts) Ts = d->sd[x->pick[b]].n;
        }
        for (int b = 0; b < Bs; b++) {
            const tdoc *dc = &d->sd[x->pick[b]];
            int32_t *row = x->ids + (size_t)b * Ts, *trow = x->tg + (size_t)b * Ts;
            memcpy(row, dc->ids, (size_t)dc->n * sizeof *row);
            x->lens[b] = dc->n;
            for (int t = 0; t < Ts; t++) trow[t] = t + 1 < dc->n && dc->sup[t + 1] ? dc->ids[t + 1] : LOSS_IGNORE_INDEX;
            for (int t = dc->n; t < Ts; t++) row[t] = fill;
        }
    } else {
        for (int b = 0; b < B; b++) {
            int32_t *row = x->ids + (size_t)b * T, *trow = x->tg + (size_t)b * T;
            int len = pack_row(&x->pk, T, row);
            if (len < 2) { row[1] = d->eos; len = 2; }
            x->lens[b] = len;
            for (int t = 0; t < T; t++) trow[t] = t + 1 < len ? row[t + 1] : LOSS_IGNORE_INDEX;
            for (int t = len; t < T; t++) row[t] = fill;
            ntok += len;
        }
    }
    x->cur_sft = sft;
    x->cur_tok = ntok;
    out->b = (llama_batch){.B = Bs, .T = Ts, .ids = x->ids, .lens = x->lens, .targets = x->tg};
    (void)err;
    return 0;
}

/* after every step: the loss statistics of pretrain_result and the log line */
static int pt_progress(void *ctx, const train_progress *p) {
    pt_run *x = ctx;
    pretrain_result *res = x->res;
    if (x->cur_sft) {
        res->sft_steps++;
        res->sft_seen += x->o->sft_batch;
        x->sft_log += p->loss; x->sft_nlog++;
        if ((size_t)res->sft_steps > x->scap) { x->scap *= 2; x->sft_losses = xrealloc(x->sft_losses, x->scap * sizeof *x->sft_losses); }
        x->sft_losses[res->sft_steps - 1] = p->loss;
        if (res->sft_steps == 1) res->sft_first_loss = p->loss;
    } else {
        if ((size_t)res->lm_steps == x->lcap) { x->lcap *= 2; x->losses = xrealloc(x->losses, x->lcap * sizeof *x->losses); }
        x->losses[res->lm_steps++] = p->loss;
        if (res->lm_steps == 1) res->first_loss = p->loss;
        x->last_loss = p->loss;
    }
    res->tokens += x->cur_tok;
    x->tok_log += x->cur_tok;
    int le = x->o->log_every;
    if (le > 0 && (p->step % le == 0 || p->step == 1)) {
        double t = p->elapsed;
        char sl[64] = "";
        if (x->sft_nlog) snprintf(sl, sizeof sl, " sft loss %.4f", x->sft_log / x->sft_nlog);
        LOG_I("train: step %lld/%lld loss %.4f%s lr %.2e %.0f tok/s epoch %.2f", (long long)p->step, (long long)p->steps,
              x->last_loss, sl, p->lr, t > x->tlog ? x->tok_log / (t - x->tlog) : 0.0,
              x->d->corpus_tokens ? (double)res->tokens / (double)x->d->corpus_tokens : 0.0);
        x->tlog = t; x->tok_log = 0; x->sft_log = 0; x->sft_nlog = 0;
    }
    return 0;
}

/* ---- the run ---- */

int pretrain_run(const pretrain_opts *o, pretrain_result *res, llama_model **model_out, cis_err *err) {
    memset(res, 0, sizeof *res);
    if (model_out) *model_out = NULL;
    const arch_preset *p = o->preset ? o->preset : arch_find(o->arch);
    if (!p) return err_set(err, CIS_EINVAL, "--arch: unknown architecture \"%s\" (see --list)", o->arch ? o->arch : "");
    if (train_device_check(o->device, err)) return -1;
    if (!o->out_dir) return err_set(err, CIS_EINVAL, "--out: a model directory is required");
    if (o->seq_len < 8 || o->batch < 1) return err_set(err, CIS_EINVAL, "--seq-len must be >= 8 and --batch >= 1");
    if (o->steps <= 0 && o->seconds <= 0) return err_set(err, CIS_EINVAL, "give --steps N or --seconds S (a budget)");
    if (o->stop_after < 0 || (o->stop_after > 0 && (o->steps <= 0 || o->stop_after > o->steps)))
        return err_set(err, CIS_EINVAL, "--stop-after %lld: needs a step budget (--steps N) and 1 <= N' <= N (the schedule's length %lld)",
                       (long long)o->stop_after, (long long)o->steps);
    int T = o->seq_len, B = o->batch;
    int max_pos = o->max_pos > 0 ? o->max_pos : T;
    if (max_pos < T) return err_set(err, CIS_EINVAL, "max_pos %d < seq_len %d", max_pos, T);

    pt_data d;
    if (pt_data_load(o, max_pos, &d, res, err)) { pt_data_free(&d); return -1; }
    res->vocab_size = d.V;
    if (o->tokenizer_only) { pt_data_free(&d); return 0; }

    /* model */
    llama_config cfg;
    int rc = -1;
    llama_model *m = NULL;
    int Bmax = B > o->sft_batch ? B : o->sft_batch;
    pt_run x = {.o = o, .d = &d, .res = res, .lcap = 1024, .scap = 1024};
    x.ids = xcalloc((size_t)Bmax * T, sizeof *x.ids);
    x.tg = xmalloc((size_t)Bmax * T * sizeof *x.tg);
    x.lens = xcalloc((size_t)Bmax, sizeof *x.lens);
    x.pick = xmalloc((size_t)Bmax * sizeof *x.pick);
    x.losses = xmalloc(x.lcap * sizeof *x.losses);
    x.sft_losses = xmalloc(x.scap * sizeof *x.sft_losses);
    /* seeded document orders; the first pack_row / SFT step shuffles */
    x.pk = (packer){.docs = d.td, .ndocs = d.ndocs, .order = xmalloc(((size_t)d.ndocs + 1) * sizeof(int)), .pos = d.ndocs,
                    .epoch = -1, .rng = o->seed * 0x2545F4914F6CDD1DULL + 7};
    x.sp = (packer){.docs = d.sd, .ndocs = d.nsft, .order = xmalloc(((size_t)d.nsft + 1) * sizeof(int)), .pos = d.nsft,
                    .epoch = -1, .rng = o->seed * 0x9E3779B97F4A7C15ULL + 11};
    for (int i = 0; i < d.ndocs; i++) x.pk.order[i] = i;
    for (int i = 0; i < d.nsft; i++) x.sp.order[i] = i;
    if (arch_config(p, d.V, d.bos, d.eos, d.pad, max_pos, &cfg, err)) goto out;
    m = train_model_new(o->device, o->threads, &cfg, err);
    if (!m) goto out;
    llama_model_init_random(m, o->seed);
    if (o->init_dir) {
        if (init_check_tokenizer(o, err)) goto out;
        if (llama_model_load(m, o->init_dir, err)) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            err_set(err, CIS_EINVAL, "--init %s: %s (a model of the same architecture and tokenizer is expected)", o->init_dir, msg);
            goto out;
        }
        LOG_I("train: weights from %s (--init)", o->init_dir);
    }
    res->params = llama_model_numel(m);
    if (llama_model_set_trainable(m, NULL, -1, -1, true, err) < 0) goto out;

    /* the loop: AdamW (torch; betas 0.9/0.95), linear warmup (at most 10% of a step budget), cosine
     * decay to min_lr_ratio x lr, global clipping; with T threads, T data-parallel replicas of one
     * thread each (one thread per small matmul does far better than T threads on the same matmul at
     * this size) */
    train_loop_cfg lc = train_loop_cfg_default();
    lc.steps = o->steps > 0 ? o->steps : 0;
    lc.seconds = o->seconds;
    lc.stop_after = o->stop_after;
    lc.optim.lr = o->lr > 0 ? o->lr : p->lr;
    lc.optim.beta1 = 0.9f;
    lc.optim.beta2 = 0.95f;
    lc.optim.weight_decay = o->weight_decay;
    lc.schedule = TRAIN_SCHED_COSINE;
    lc.min_lr_ratio = o->min_lr_ratio;
    lc.warmup = o->warmup;
    if (lc.steps > 0 && lc.warmup > lc.steps / 10) lc.warmup = (int)(lc.steps / 10 > 1 ? lc.steps / 10 : 1);
    lc.clip = o->clip;
    lc.replicas = o->replicas;
    lc.stop = o->stop;
    lc.progress = pt_progress;
    lc.progress_ctx = &x;
    LOG_I("train: %s (%s layout, %s): %lld parameters, D=%d F=%d L=%d H=%d Hkv=%d, T=%d B=%d, lr %.2g, %s", p->name,
          cfg.architecture, cfg.tie_word_embeddings ? "tied" : "untied", res->params, cfg.hidden_size,
          cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, T, B, lc.optim.lr,
          lc.steps > 0 ? "step budget" : "time budget");
    train_task task = {.model = m, .batch = pt_batch, .ctx = &x};
    train_loop_result lres;
    x.tlog = 0;
    int st = train_loop_run(&lc, &task, &lres, err);
    if (st == TRAIN_ERROR) goto out;
    if (st == TRAIN_STOPPED) {
        err_set(err, CIS_EINVAL, "stopped after %lld steps (nothing written)", (long long)lres.steps);
        rc = 1;
        goto out;
    }
    res->replicas = lres.replicas;
    res->steps = lres.steps;
    res->train_seconds = lres.seconds;
    res->tokens_per_s = res->train_seconds > 0 ? res->tokens / res->train_seconds : 0;
    res->epochs = d.corpus_tokens ? (double)res->tokens / (double)d.corpus_tokens : 0;
    res->final_loss = tail_mean(x.losses, res->lm_steps);
    res->sft_final_loss = tail_mean(x.sft_losses, res->sft_steps);
    res->sft_epochs = d.nsft ? (double)res->sft_seen / d.nsft : 0;
    if (lres.cut) LOG_I("train: stopped after %lld of the schedule's %lld steps (--stop-after)", (long long)lres.steps, (long long)o->steps);
    LOG_I("train: %lld steps, %lld tokens (%.2f epochs) in %.1f s = %.0f tok/s; loss %.4f -> %.4f", (long long)res->steps,
          (long long)res->tokens, res->epochs, res->train_seconds, res->tokens_per_s, res->first_loss, res->final_loss);
    if (res->sft_steps)
        LOG_I("train: %lld SFT steps, %lld items (%.2f epochs of %lld); completion loss %.4f -> %.4f", (long long)res->sft_steps,
              (long long)res->sft_seen, res->sft_epochs, (long long)res->sft_items, res->sft_first_loss, res->sft_final_loss);

    /* write (llama_model_save: through a host copy when the model lives on a device; the model
     * was made from cfg, so its config.json is cfg's) */
    if (llama_model_save(m, o->out_dir, "F32", err)) goto out;
    if (write_json(o->out_dir, "generation_config.json",
                   json_pack("{s:i,s:i,s:o,s:b}", "bos_token_id", d.bos, "eos_token_id", d.eos, "pad_token_id",
                             d.pad >= 0 ? json_integer(d.pad) : json_null(), "do_sample", 0), err))
        goto out;
    json_t *info = json_pack("{s:s,s:s,s:I,s:i,s:s,s:I,s:I,s:I,s:I,s:f,s:i,s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:i}",
                             "arch", p->name, "stands_for", p->stands_for, "params", (json_int_t)res->params, "vocab_size", d.V,
                             "corpus", d.cpath, "corpus_docs", (json_int_t)d.ndocs, "corpus_tokens", (json_int_t)d.corpus_tokens,
                             "steps", (json_int_t)res->steps, "tokens", (json_int_t)res->tokens, "epochs", res->epochs,
                             "seq_len", T, "batch", B, "lr", (double)lc.optim.lr, "train_seconds", res->train_seconds,
                             "tokens_per_s", res->tokens_per_s, "first_loss", res->first_loss, "final_loss", res->final_loss,
                             "tokenizer_seconds", res->tokenizer_seconds, "seed", (json_int_t)o->seed, "threads", o->threads);
    json_object_set_new(info, "budget", json_string(o->steps > 0 ? "steps" : "seconds"));
    json_object_set_new(info, "budget_steps", json_integer(o->steps > 0 ? o->steps : 0));
    json_object_set_new(info, "budget_seconds", json_real(o->seconds > 0 ? o->seconds : 0));
    json_object_set_new(info, "stop_after", json_integer(o->stop_after > 0 ? o->stop_after : 0));
    if (o->init_dir) json_object_set_new(info, "init", json_string(o->init_dir));
    json_object_set_new(info, "replicas", json_integer(res->replicas));
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
    free(x.losses); free(x.sft_losses); free(x.pick); free(x.sp.order); free(x.pk.order);
    free(x.ids); free(x.tg); free(x.lens);
    if (rc == 0 && model_out) *model_out = m;
    else train_model_free(&m);
    pt_data_free(&d);
    return rc;
}
