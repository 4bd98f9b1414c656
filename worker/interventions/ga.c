/* ga.c - gradient ascent (GA) and gradient difference (GD) unlearning (algorithms.md §9; the
 * composable-interventions profile of fidelity.md §6), as the interventions `ga` and `gd`.
 *
 * GA: the negated language-model loss on forget documents (the bio and cyber forget corpora, texts
 * longer than 50 characters, shuffled with the job's seed, the first `train_size`), `batch_size`
 * documents per batch padded to exactly `max_len` tokens (pads in the loss with pad_in_loss),
 * `accum` batches per torch.optim.Adam step (a trailing remainder of batches is dropped, as
 * upstream's loop drops its last odd batch), embeddings and the lower half of the layers frozen.
 * GD: the same plus `retain_weight` x the LM loss on retain batches (WikiText-2 test rows longer
 * than 50 characters, shuffled, the first `train_size`), forget and retain batches zipped:
 * per batch (-CE_f + w CE_r) / accum.
 *
 * Both run in the shared training loop's batch mode (train_loop.h): a step's micro-batches are the
 * forget batches with scale -1 (GA), or forget and retain batches alternating with scales -2 and 2w
 * over 2 x accum micro-batches (GD), which is the same weighting, so GD with retain_weight 0 takes
 * exactly GA's steps (the retain micro-batches add zero gradients). */
#include "worker/interventions/methods.h"
#include "worker/interventions/unlearn.h"
#include "worker/train/train_loop.h"
#include "common/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* GA's and GD's min_len (characters) */
#define GA_MIN_LEN 50

/* The tiny default family's values (hidden size <= GA_TINY_MAX_D), from grids/unlearn-tiny-tune.json
 * on the default tiny-llama3 (docs/unlearning.md): GA's lr is the lowest of the grid that unlearns at
 * all (1e-3 changes nothing in its 6 steps); GD's lr and retain weight give the lowest WMDP with MMLU
 * within 0.15 of the baseline. */
#define GA_TINY_MAX_D 128
#define GA_TINY_LR 1e-2
#define GD_TINY_RETAIN_WEIGHT 5.0
/* GD's step budget on the tiny family (results epoch 8; docs/unlearning.md "GD sized for the tiny
 * family"): the world's 480 forget documents cap the paper's train_size 2000 at 120 steps; 360
 * documents (90 steps) at the tuned lr 1e-3 scaled by 120/90 forget as much for 0.75x the time.
 * Replaces train_size only when it is the paper's. */
#define GD_PAPER_TRAIN_SIZE 2000
#define GD_TINY_TRAIN_SIZE 360
#define GD_TINY_LR 1e-3              /* tuned at 120 steps; kept when the caller gives its own train_size */
#define GD_TINY_SIZED_LR 1.333e-3    /* with GD_TINY_TRAIN_SIZE: 1e-3 x 120 / 90 */

void ga_result_clear(ga_result *r) {
    if (!r) return;
    free(r->loss);
    memset(r, 0, sizeof *r);
}

typedef struct ga_state {
    const ga_opts *o;
    const unl_batches *forget, *retain;
    ga_result *res;
    int cap;
    int32_t *no_targets;        /* [max B x T] all LOSS_IGNORE_INDEX (GD with retain weight 0) */
    bool use_x;                 /* the kept lower halves start their micro-batches (one replica only) */
} ga_state;

static int ga_batch(void *ctx, const train_step_info *si, train_batch *out, cis_err *err) {
    ga_state *s = ctx;
    bool gd = s->retain != NULL;
    int j = gd ? si->micro / 2 : si->micro;
    int64_t bi = si->step * (gd ? si->accum / 2 : si->accum) + j;
    const unl_batch *b;
    const int32_t *tg;
    const float *x = NULL;
    if (gd && si->micro % 2) {
        b = &s->retain->b[bi];
        if (s->o->retain_x) x = s->o->retain_x[bi];
        out->scale = 2.0f * s->o->retain_weight;
        /* the loop reads a scale of 0 as 1: a zero weight is a batch with no counted target (its
         * loss and gradients are exactly zero) */
        tg = s->o->retain_weight == 0 ? s->no_targets : b->targets;
        if (s->o->retain_weight == 0) out->scale = 1.0f;
    } else {
        b = &s->forget->b[bi];
        if (s->o->forget_x) x = s->o->forget_x[bi];
        out->scale = gd ? -2.0f : -1.0f;
        tg = b->targets;
    }
    out->b = (llama_batch){.B = b->B, .T = b->T, .ids = b->ids, .lens = b->lens, .targets = tg};
    if (x && s->use_x) {
        out->b.start_layer = s->o->prefix_layers;
        out->b.x_start = x;
        s->res->started++;
    }
    (void)err;
    return 0;
}

static int ga_progress(void *ctx, const train_progress *p) {
    ga_state *s = ctx;
    ga_result *r = s->res;
    if (r->steps == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 128;
        r->loss = xrealloc(r->loss, (size_t)s->cap * sizeof(double));
    }
    r->loss[r->steps++] = p->loss;
    if (s->o->progress) s->o->progress(s->o->cb_arg, p->frac);
    return s->o->stop && s->o->stop(s->o->cb_arg) ? 1 : 0;
}

int ga_run(llama_model *m, const ga_opts *o, const unl_batches *forget, const unl_batches *retain, ga_result *res_out,
           cis_err *err) {
    ga_result res0, *res = res_out ? res_out : &res0;
    memset(res, 0, sizeof *res);
    if (o->accum < 1) return err_set(err, CIS_EINVAL, "ga: accum must be >= 1 (got %d)", o->accum);
    if (!forget || forget->n < 1) return err_set(err, CIS_EINVAL, "ga: no forget batch");
    if (retain && retain->n < 1) return err_set(err, CIS_EINVAL, "gd: no retain batch");
    for (int i = 0; i < forget->n; i++)
        if (!forget->b[i].targets) return err_set(err, CIS_EINVAL, "ga: forget batch %d has no targets", i + 1);
    int nb = forget->n;
    if (retain && retain->n < nb) nb = retain->n;
    int steps = nb / o->accum;
    if (steps < 1)
        return err_set(err, CIS_EINVAL, "ga: %d batch(es) make no optimizer step of %d accumulated batches", nb, o->accum);
    const llama_config *cfg = llama_model_config(m);
    int L = cfg->num_hidden_layers;
    llama_model_freeze_all(m);
    int nt;
    if (o->freeze_lower_half) {
        nt = llama_model_set_trainable(m, "model.layers.*", L / 2, L - 1, true, err);
        if (nt >= 0) nt += llama_model_set_trainable(m, "model.norm.weight", -1, -1, true, err);
        if (nt >= 0 && llama_model_find(m, "lm_head.weight") >= 0)
            nt += llama_model_set_trainable(m, "lm_head.weight", -1, -1, true, err);
    } else {
        nt = llama_model_set_trainable(m, "*", -1, -1, true, err);
    }
    if (nt < 0) return -1;
    res->n_trainable = nt;
    ga_state s = {.o = o, .forget = forget, .retain = retain, .res = res};
    if (retain) {
        size_t mx = 1;
        for (int i = 0; i < retain->n; i++)
            if ((size_t)retain->b[i].B * retain->b[i].T > mx) mx = (size_t)retain->b[i].B * retain->b[i].T;
        s.no_targets = xmalloc(mx * sizeof(int32_t));
        for (size_t i = 0; i < mx; i++) s.no_targets[i] = LOSS_IGNORE_INDEX;
    }
    train_loop_cfg c = train_loop_cfg_default();
    c.steps = steps;
    c.accum = retain ? 2 * o->accum : o->accum;
    c.optim = optim_config_default(ADAM_TORCH_ADAM);   /* torch.optim.Adam, no decay */
    c.optim.lr = o->lr;
    c.replicas = o->replicas;
    c.progress = ga_progress;
    c.progress_ctx = &s;
    /* kept lower halves need the whole batch on one model (train_loop.h); with replicas they go unused */
    s.use_x = o->prefix_layers > 0 && (o->forget_x || o->retain_x) && train_loop_replicas(&c, m) == 1;
    train_task task = {.model = m, .batch = ga_batch, .ctx = &s};
    train_loop_result tr;
    int st = train_loop_run(&c, &task, &tr, err);
    res->seconds = tr.seconds;
    free(s.no_targets);
    llama_model_freeze_all(m);
    if (!res_out) ga_result_clear(res);
    return st == TRAIN_ERROR ? -1 : st == TRAIN_STOPPED ? 1 : 0;
}

/* ---- the interventions ---- */

/* tiny_rw < 0: no retain weight (GA); tiny_ts > 0: train_size when the given one is the paper's (GD) */
static int preset(const llama_config *cfg, json_t *params, double tiny_lr, double tiny_rw, int tiny_ts) {
    bool use = json_is_true(json_object_get(params, "use_preset"));
    if (use && cfg->hidden_size <= GA_TINY_MAX_D) {
        json_t *given = json_object();
        json_object_set_new(given, "lr", json_deep_copy(json_object_get(params, "lr")));
        json_object_set_new(params, "lr", json_real(tiny_lr));
        if (tiny_rw >= 0) {
            json_object_set_new(given, "retain_weight", json_deep_copy(json_object_get(params, "retain_weight")));
            json_object_set_new(params, "retain_weight", json_real(tiny_rw));
        }
        json_t *ts = json_object_get(params, "train_size");
        bool sized = tiny_ts > 0 && json_is_integer(ts) && json_integer_value(ts) == GD_PAPER_TRAIN_SIZE;
        if (sized) {
            json_object_set_new(given, "train_size", json_deep_copy(ts));
            json_object_set_new(params, "train_size", json_integer(tiny_ts));
            json_object_set_new(params, "lr", json_real(GD_TINY_SIZED_LR));
        }
        json_object_set_new(params, "given", given);
        json_object_set_new(params, "preset",
                            json_string(tiny_rw < 0 ? "tiny family (hidden size <= 128): lr 1e-2 from grids/unlearn-tiny-tune.json"
                                        : sized ? "tiny family (hidden size <= 128): retain_weight 5 from "
                                                  "grids/unlearn-tiny-tune.json; train_size 360 (90 steps) at lr 1e-3 x 120/90 "
                                                  "= 1.333e-3 (docs/unlearning.md, results epoch 8)"
                                                : "tiny family (hidden size <= 128): lr 1e-3 and retain_weight 5 "
                                                  "from grids/unlearn-tiny-tune.json (train_size as given)"));
    } else {
        json_object_set_new(params, "preset", json_string(use ? "the paper's values" : "none"));
    }
    int L = cfg->num_hidden_layers;
    if (json_is_true(json_object_get(params, "freeze_lower_half"))) {
        json_t *tl = json_array();
        for (int l = L / 2; l < L; l++) json_array_append_new(tl, json_integer(l));
        json_object_set_new(params, "trained_layers", tl);
    }
    long long ml = json_integer_value(json_object_get(params, "max_len"));
    json_object_set_new(params, "seq_len", json_integer(ml < cfg->max_position_embeddings ? ml : cfg->max_position_embeddings));
    return 0;
}

int ga_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    (void)err;
    return preset(cfg, params, GA_TINY_LR, -1, 0);
}

int gd_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    (void)err;
    return preset(cfg, params, GD_TINY_LR, GD_TINY_RETAIN_WEIGHT, GD_TINY_TRAIN_SIZE);
}

/* the first n of texts in a seeded shuffled order (upstream shuffles with Python's global random) */
static void shuffle_docs(text_docs *d, uint64_t seed, uint64_t stream) {
    rng_xoshiro r;
    rng_xoshiro_seed(&r, seed, stream);
    int *perm = xmalloc((size_t)(d->n > 0 ? d->n : 1) * sizeof(int));
    for (int i = 0; i < d->n; i++) perm[i] = i;
    rng_xoshiro_shuffle(&r, perm, d->n);
    char **t = xmalloc((size_t)(d->n > 0 ? d->n : 1) * sizeof(char *));
    size_t *l = xmalloc((size_t)(d->n > 0 ? d->n : 1) * sizeof(size_t));
    for (int i = 0; i < d->n; i++) { t[i] = d->text[perm[i]]; l[i] = d->len[perm[i]]; }
    memcpy(d->text, t, (size_t)d->n * sizeof(char *));
    memcpy(d->len, l, (size_t)d->n * sizeof(size_t));
    free(t); free(l); free(perm);
}

/* The kept lower half. With the lower half frozen (embeddings and layers 0..P-1, P = L/2), the
 * residual stream entering layer P is a constant of a batch. The forget and retain CE are measured
 * before and after unlearning on the first GA_MEASURE_BATCHES batches, which are also the first
 * micro-batches of the training: their lower half runs once (llama_embed + llama_layer_run, the same
 * ops as llama_forward's, hence the same floats) and the measurements and those micro-batches start
 * at layer P (previously it ran three times per batch). CISWEEP_NO_SHORTCUTS=1: from the embeddings. */
#define GA_MEASURE_BATCHES 8

typedef struct lower_half {
    int P;                      /* 0: off */
    int n;                      /* batches kept (the first n) */
    float **x;                  /* [batches] [B*T, D] backend memory or NULL */
} lower_half;

/* keep the lower half of the first n batches of bs (P layers; P = 0: nothing) */
static int lower_half_keep(llama_model *m, const unl_batches *bs, int P, int n, lower_half *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    if (P < 1 || bs->n < 1) return 0;
    backend *be = llama_model_backend(m);
    int D = llama_model_config(m)->hidden_size;
    out->P = P;
    out->x = xcalloc((size_t)bs->n, sizeof *out->x);
    float *tmp = NULL;
    size_t tmp_rows = 0;
    for (int i = 0; i < bs->n && i < n; i++, out->n++) {
        const unl_batch *b = &bs->b[i];
        size_t rows = (size_t)b->B * b->T, bytes = rows * D * sizeof(float);
        if (rows > tmp_rows) {
            if (tmp) backend_free(be, tmp);
            if (!(tmp = backend_alloc(be, bytes, err))) return -1;
            tmp_rows = rows;
        }
        if (!(out->x[i] = backend_alloc(be, bytes, err))) { backend_free(be, tmp); return -1; }
        float *cur = P % 2 == 0 ? out->x[i] : tmp, *nxt = P % 2 == 0 ? tmp : out->x[i];
        if (llama_embed(m, b->B, b->T, b->ids, b->lens, cur, err)) { backend_free(be, tmp); return -1; }
        for (int l = 0; l < P; l++) {
            if (llama_layer_run(m, l, b->B, b->T, b->lens, cur, nxt, NULL, 0, err)) { backend_free(be, tmp); return -1; }
            float *t = cur; cur = nxt; nxt = t;
        }
        CIS_ASSERT(cur == out->x[i]);
    }
    if (tmp) backend_free(be, tmp);
    return 0;
}

static void lower_half_clear(llama_model *m, lower_half *h, int n_batches) {
    for (int i = 0; h->x && i < n_batches; i++)
        if (h->x[i]) backend_free(llama_model_backend(m), h->x[i]);
    free(h->x);
    memset(h, 0, sizeof *h);
}

/* mean CE of m on the first n batches (without gradients), started at layer h->P where kept */
static int mean_ce(llama_model *m, const unl_batches *bs, int n, const lower_half *h, double *out, cis_err *err) {
    double sum = 0;
    int k = 0;
    for (int i = 0; i < bs->n && i < n; i++, k++) {
        const unl_batch *b = &bs->b[i];
        llama_batch bt = {.B = b->B, .T = b->T, .ids = b->ids, .lens = b->lens, .targets = b->targets};
        if (h->P > 0 && h->x && h->x[i]) { bt.start_layer = h->P; bt.x_start = h->x[i]; }
        double l;
        if (llama_forward(m, &bt, NULL, 0, false, &l, err)) return -1;
        sum += l;
    }
    *out = k ? sum / k : 0;
    return 0;
}

static void cb_progress(void *arg, double f) { interv_progress(arg, f); }
static bool cb_stop(void *arg) { return interv_should_stop(arg); }

static int run_ga_gd(interv_ctx *c, bool gd, cis_err *err) {
    int B = (int)interv_param_int(c, "batch_size");
    int n = (int)interv_param_int(c, "train_size");
    int T = (int)interv_param_int(c, "seq_len");
    bool pad = interv_param_bool(c, "pad_in_loss");
    text_docs f[UNL_N_TOPICS] = {{0}}, forget = {0}, retain = {0};
    unl_batches fb = {0}, rb = {0};
    lower_half hf = {0}, hr = {0};
    ga_result res = {0};
    int rc = -1;
    interv_phase_begin(c->record, "data");
    for (int t = 0; t < UNL_N_TOPICS; t++)
        if (unl_load_forget(c->data_dir, t, GA_MIN_LEN, &f[t], err)) goto out;
    /* the two corpora as one list (bio then cyber), shuffled with the job's seed */
    forget.n = f[0].n + f[1].n;
    forget.text = xmalloc((size_t)forget.n * sizeof(char *));
    forget.len = xmalloc((size_t)forget.n * sizeof(size_t));
    for (int t = 0, k = 0; t < UNL_N_TOPICS; t++)
        for (int i = 0; i < f[t].n; i++, k++) {
            forget.text[k] = f[t].text[i]; f[t].text[i] = NULL;
            forget.len[k] = f[t].len[i];
        }
    shuffle_docs(&forget, c->seed, 0x4741);
    if (unl_make_batches(c->tok, &forget, 0, n, B, T, true, true, pad, false, &fb, err)) goto out;
    if (gd) {
        if (unl_load_retain(c->data_dir, GA_MIN_LEN, &retain, err)) goto out;
        shuffle_docs(&retain, c->seed, 0x4744);
        if (unl_make_batches(c->tok, &retain, 0, n, B, T, true, true, pad, false, &rb, err)) goto out;
    }
    double ce_before = 0, ce_after = 0, rce_before = 0, rce_after = 0;
    bool freeze = interv_param_bool(c, "freeze_lower_half");
    int P = freeze && !llama_no_shortcuts() ? llama_model_config(c->model)->num_hidden_layers / 2 : 0;
    interv_phase_begin(c->record, "measure");
    if (lower_half_keep(c->model, &fb, P, GA_MEASURE_BATCHES, &hf, err)) goto out;
    if (gd && lower_half_keep(c->model, &rb, P, GA_MEASURE_BATCHES, &hr, err)) goto out;
    if (mean_ce(c->model, &fb, GA_MEASURE_BATCHES, &hf, &ce_before, err)) goto out;
    if (gd && mean_ce(c->model, &rb, GA_MEASURE_BATCHES, &hr, &rce_before, err)) goto out;
    interv_phase_begin(c->record, "unlearn");
    ga_opts o = {
        .lr = (float)interv_param_float(c, "lr"),
        .accum = (int)interv_param_int(c, "accum"),
        .retain_weight = gd ? (float)interv_param_float(c, "retain_weight") : 0.0f,
        .freeze_lower_half = freeze,
        .replicas = 0,
        .prefix_layers = P, .forget_x = hf.x, .retain_x = gd ? hr.x : NULL,
        .stop = cb_stop, .progress = cb_progress, .cb_arg = c,
    };
    int st = ga_run(c->model, &o, &fb, gd ? &rb : NULL, &res, err);
    if (st < 0) goto out;
    if (st > 0) { rc = interv_stopped(c, err); goto out; }
    interv_phase_begin(c->record, "measure");
    if (mean_ce(c->model, &fb, GA_MEASURE_BATCHES, &hf, &ce_after, err)) goto out;
    if (gd && mean_ce(c->model, &rb, GA_MEASURE_BATCHES, &hr, &rce_after, err)) goto out;
    interv_phase_end(c->record);
    interv_record_set_int(c->record, "lower_half_kept", hf.n + hr.n);
    interv_record_set_int(c->record, "lower_half_started", res.started);
    interv_record_set_int(c->record, "forget_documents", fb.n > 0 ? (n < forget.n ? n : forget.n) : 0);
    interv_record_set_int(c->record, "forget_documents_available", forget.n);
    interv_record_set_int(c->record, "forget_batches", fb.n);
    interv_record_set_int(c->record, "forget_tokens", fb.tokens);
    interv_record_set_int(c->record, "truncated", fb.truncated + rb.truncated);
    if (gd) {
        interv_record_set_int(c->record, "retain_documents_available", retain.n);
        interv_record_set_int(c->record, "retain_batches", rb.n);
        interv_record_set_num(c->record, "retain_ce_before", rce_before);
        interv_record_set_num(c->record, "retain_ce_after", rce_after);
    }
    interv_record_set_int(c->record, "steps", res.steps);
    interv_record_set_int(c->record, "n_trainable", res.n_trainable);
    interv_record_set_num(c->record, "forget_ce_before", ce_before);
    interv_record_set_num(c->record, "forget_ce_after", ce_after);
    if (res.steps > 0) {
        interv_record_set_num(c->record, "loss_first", res.loss[0]);
        interv_record_set_num(c->record, "loss_last", res.loss[res.steps - 1]);
    }
    interv_record_set_num(c->record, "steps_per_s", res.seconds > 0 ? res.steps / res.seconds : 0);
    rc = 0;
out:
    interv_phase_end(c->record);
    lower_half_clear(c->model, &hf, fb.n);
    lower_half_clear(c->model, &hr, rb.n);
    ga_result_clear(&res);
    unl_batches_clear(&fb);
    unl_batches_clear(&rb);
    for (int t = 0; t < UNL_N_TOPICS; t++) text_docs_clear(&f[t]);
    text_docs_clear(&forget);
    text_docs_clear(&retain);
    return rc;
}

int ga_apply(interv_ctx *c, cis_err *err) { return run_ga_gd(c, false, err); }
int gd_apply(interv_ctx *c, cis_err *err) { return run_ga_gd(c, true, err); }
