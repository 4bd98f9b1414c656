/* train_loop.c - train_loop_run of train_loop.h: steps of zero-grad, micro-batches, gradient
 * gathering over the data-parallel replicas, clipping, the scheduled optimizer update, progress. */
#include "worker/train/train_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define TRAIN_MAX_REPLICAS 16

train_loop_cfg train_loop_cfg_default(void) {
    train_loop_cfg c;
    memset(&c, 0, sizeof c);
    c.accum = 1;
    c.optim = optim_config_default(ADAM_TORCH_ADAMW);
    c.schedule = TRAIN_SCHED_CONSTANT;
    c.loss_scale = 1.0f;
    c.replicas = 1;
    return c;
}

float train_loop_lr(const train_loop_cfg *c, int64_t step, int64_t steps, double frac) {
    float peak = c->optim.lr;
    if (step < c->warmup) return peak * (float)(step + 1) / (float)c->warmup;
    if (c->schedule == TRAIN_SCHED_CONSTANT) return peak;
    double prog = steps > 0 ? (steps > c->warmup ? (double)(step - c->warmup) / (double)(steps - c->warmup) : 1.0) : frac;
    if (prog > 1) prog = 1;
    if (prog < 0) prog = 0;
    double lo = peak * c->min_lr_ratio;
    if (c->schedule == TRAIN_SCHED_LINEAR) return (float)(lo + (peak - lo) * (1 - prog));
    return (float)(lo + (peak - lo) * 0.5 * (1 + cos(M_PI * prog)));
}

static int64_t numel(const llama_param *p) {
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->shape[d];
    return n;
}

static int count_targets(const llama_batch *b) {
    int c = 0;
    for (int i = 0; i < b->B; i++) {
        int len = b->lens ? b->lens[i] : b->T;
        for (int t = 0; t < len && t < b->T; t++) c += b->targets[(size_t)i * b->T + t] != LOSS_IGNORE_INDEX;
    }
    return c;
}

/* ---- data parallelism: replicas of the model, one thread each, on slices of a batch ---- */

typedef struct replica_work {
    llama_model *m;
    llama_batch b;
    float scale;          /* loss scale x n_targets(slice) / n_targets(batch) */
    double loss;
    int rc;
    cis_err err;
} replica_work;

static void *replica_run(void *arg) {
    replica_work *w = arg;
    w->rc = llama_forward(w->m, &w->b, NULL, 0, true, &w->loss, &w->err);
    if (!w->rc) w->rc = llama_backward(w->m, w->scale, NULL, &w->err);
    return NULL;
}

/* one forward + backward of micro-batch b over R models (rep[0] = the trained one), gradients
 * accumulating in each replica's own buffers: rows [B r / R, B (r+1) / R) go to replica r, whose
 * loss is weighted by its share of the batch's targets, so the sum of the replicas' gradients is
 * the gradient of one pass over the whole batch (up to summation order). *loss = the batch's mean
 * CE; *ntg = its targets. */
static int forward_backward(llama_model **rep, int R, const llama_batch *b, float scale, double *loss, int64_t *ntg,
                            cis_err *err) {
    int N = count_targets(b);
    *ntg = N;
    if (R <= 1 || b->B < 2) {
        if (llama_forward(rep[0], b, NULL, 0, true, loss, err)) return -1;
        return llama_backward(rep[0], scale, NULL, err);
    }
    if (b->start_layer > 0)   /* its rows' prefix was computed on the whole batch: a slice's would differ */
        return err_set(err, CIS_EINVAL, "train: a started batch (start_layer %d) cannot be split over %d replicas",
                       b->start_layer, R);
    replica_work w[TRAIN_MAX_REPLICAS];
    pthread_t tid[TRAIN_MAX_REPLICAS];
    bool started[TRAIN_MAX_REPLICAS] = {false};
    float share[TRAIN_MAX_REPLICAS];
    for (int r = 0; r < R; r++) {
        int r0 = (int)((int64_t)b->B * r / R), r1 = (int)((int64_t)b->B * (r + 1) / R);
        size_t off = (size_t)r0 * b->T;
        w[r] = (replica_work){.m = rep[r], .b = *b, .rc = 1};
        w[r].b.B = r1 - r0;
        w[r].b.ids = b->ids + off;
        w[r].b.lens = b->lens ? b->lens + r0 : NULL;
        w[r].b.targets = b->targets + off;
        int n = r1 > r0 ? count_targets(&w[r].b) : 0;
        share[r] = N > 0 ? (float)n / (float)N : 0.0f;
        w[r].scale = scale * share[r];
    }
    for (int r = 1; r < R; r++)
        if (w[r].b.B > 0) {
            if (pthread_create(&tid[r], NULL, replica_run, &w[r])) replica_run(&w[r]);
            else started[r] = true;
        }
    if (w[0].b.B > 0) replica_run(&w[0]);
    for (int r = 1; r < R; r++)
        if (started[r]) pthread_join(tid[r], NULL);
    *loss = 0;
    for (int r = 0; r < R; r++) {
        if (w[r].b.B == 0) continue;
        if (w[r].rc) { *err = w[r].err; return -1; }
        *loss += share[r] * w[r].loss;
    }
    return 0;
}

/* ---- the loop ---- */

typedef struct loop_state {
    const train_loop_cfg *c;
    const train_task *t;
    llama_model *rep[TRAIN_MAX_REPLICAS];   /* rep[0] = the model */
    int R;
    optim *opt;
    bool own_opt;
    int threads0;                          /* the model's thread count before the run (R > 1) */
} loop_state;

/* zero the gradients of what is optimised (and of the replicas) */
static void zero_grads(loop_state *s) {
    const train_tensors *tt = s->t->tensors;
    if (tt) {
        for (int i = 0; i < tt->n; i++) train_tensor_zero(s->t->model, tt->grads[i], tt->len[i]);
        return;
    }
    for (int r = 0; r < s->R; r++) llama_model_zero_grad(s->rep[r]);
}

/* the replicas take the model's weights: all of them before the first step, then the trainable
 * ones (the only ones an update changes) */
static void sync_replicas(loop_state *s, bool all) {
    int np;
    llama_param *p0 = llama_model_params(s->rep[0], &np);
    for (int r = 1; r < s->R; r++) {
        int npr;
        llama_param *pr = llama_model_params(s->rep[r], &npr);
        for (int i = 0; i < np; i++)
            if (all || llama_model_is_trainable(s->rep[0], i)) train_tensor_copy(s->rep[0], pr[i].data, p0[i].data, numel(&p0[i]));
    }
}

/* the replicas' gradients summed into the model's, replica by replica (a fixed order) */
static void gather_grads(loop_state *s) {
    int np;
    llama_param *p0 = llama_model_params(s->rep[0], &np);
    for (int r = 1; r < s->R; r++)
        for (int i = 0; i < np; i++) {
            float *g0 = llama_model_grad(s->rep[0], i), *gr = llama_model_grad(s->rep[r], i);
            if (g0 && gr) train_tensor_add(s->rep[0], g0, gr, numel(&p0[i]));
        }
}

int train_loop_replicas(const train_loop_cfg *c, llama_model *m) {
    int R = c->replicas > 0 ? c->replicas : train_model_threads(m);
    return R < 1 ? 1 : R > TRAIN_MAX_REPLICAS ? TRAIN_MAX_REPLICAS : R;
}

static int setup(loop_state *s, train_loop_result *res, cis_err *err) {
    const train_loop_cfg *c = s->c;
    const train_task *t = s->t;
    if (!t->model) return err_set(err, CIS_EINVAL, "train: no model");
    if (!t->batch == !t->step) return err_set(err, CIS_EINVAL, "train: give exactly one of a batch function and a step function");
    if (t->tensors && t->batch) return err_set(err, CIS_EINVAL, "train: a tensor list needs a step function (batch mode trains the model)");
    if (c->steps <= 0 && c->seconds <= 0) return err_set(err, CIS_EINVAL, "train: a budget is required (steps > 0 or seconds > 0)");
    if (c->accum < 1) return err_set(err, CIS_EINVAL, "train: accum must be >= 1 (got %d)", c->accum);
    if (c->stop_after < 0 || (c->stop_after > 0 && c->steps <= 0))
        return err_set(err, CIS_EINVAL, "train: stop_after (%lld) must be >= 0 and needs a step budget (steps > 0)",
                       (long long)c->stop_after);
    if (c->warmup < 0) return err_set(err, CIS_EINVAL, "train: warmup must be >= 0 (got %d)", c->warmup);
    if (!(c->optim.lr >= 0)) return err_set(err, CIS_EINVAL, "train: lr must be >= 0");
    if (t->tensors)
        for (int i = 0; i < t->tensors->n; i++)
            if (!t->tensors->params[i] || !t->tensors->grads[i] || t->tensors->len[i] < 0)
                return err_set(err, CIS_EINVAL, "train: tensor %d has no data, no gradient or a negative length", i);
    s->rep[0] = t->model;
    s->R = 1;
    if (t->batch) s->R = train_loop_replicas(c, t->model);
    if (s->R > 1) {
        s->threads0 = train_model_threads(t->model);
        train_model_set_threads(t->model, 1);
        for (int r = 1; r < s->R; r++)
            if (!(s->rep[r] = train_replica_new(t->model, err))) {
                err_prefix(err, "train: replica %d", r);
                return -1;
            }
        sync_replicas(s, true);
        LOG_D("train: data parallel over %d replicas, 1 thread each", s->R);
    }
    res->replicas = s->R;
    if (t->opt) s->opt = t->opt;
    else {
        s->opt = t->tensors ? train_optim_new_tensors(t->model, &c->optim, t->tensors, err) : llama_model_optim_new(t->model, &c->optim, err);
        if (!s->opt) return -1;
        s->own_opt = true;
    }
    return 0;
}

static void teardown(loop_state *s) {
    for (int r = 1; r < TRAIN_MAX_REPLICAS; r++) train_model_free(&s->rep[r]);
    if (s->R > 1) train_model_set_threads(s->t->model, s->threads0);
    if (s->own_opt) optim_free(&s->opt);
}

static bool stop_requested(const train_loop_cfg *c) {
    return c->stop && atomic_load(c->stop) != 0;
}

/* this thread's post-step hook (train_loop_set_post_step): the job thread that runs a stage sets it */
static _Thread_local train_after_step_fn tl_post_step;
static _Thread_local void *tl_post_step_arg;

void train_loop_set_post_step(train_after_step_fn fn, void *arg) {
    tl_post_step = fn;
    tl_post_step_arg = fn ? arg : NULL;
}

int train_loop_run(const train_loop_cfg *c, const train_task *t, train_loop_result *res_out, cis_err *err) {
    train_loop_result res0, *res = res_out ? res_out : &res0;
    memset(res, 0, sizeof *res);
    loop_state s = {.c = c, .t = t};
    double t0 = mono_sec();
    int status = TRAIN_ERROR;
    if (setup(&s, res, err)) goto out;
    float loss_scale = c->loss_scale != 0 ? c->loss_scale : 1.0f;
    bool fit_time = c->steps <= 0;
    int64_t total = fit_time ? INT64_MAX : c->steps;
    int64_t step = 0;
    status = TRAIN_DONE;
    for (; fit_time || step < total; step++) {
        if (c->stop_after > 0 && !fit_time && step >= c->stop_after) { res->cut = true; break; }
        double el = mono_sec() - t0;
        if (c->seconds > 0 && el >= c->seconds) { res->timed_out = true; break; }
        /* a time budget without a step count: the schedule runs on the fraction of the budget used,
         * and `total` is only the running estimate */
        if (fit_time && step > 0 && el > 0) total = step + (int64_t)((c->seconds - el) / (el / (double)step)) + 1;
        train_step_info si = {.step = step, .steps = total, .accum = c->accum,
                              .frac = fit_time ? el / c->seconds : (double)step / (double)total,
                              .loss_scale = loss_scale / (float)c->accum};
        if (step > 0 && s.R > 1) sync_replicas(&s, false);
        zero_grads(&s);
        double loss_sum = 0;
        int64_t ntg = 0;
        for (int k = 0; k < c->accum; k++) {
            if (stop_requested(c)) { status = TRAIN_STOPPED; goto out; }
            si.micro = k;
            double loss = 0;
            if (t->step) {
                int rc = t->step(t->ctx, &si, &loss, err);
                if (rc < 0) { err_prefix(err, "train: step %lld", (long long)step + 1); status = TRAIN_ERROR; goto out; }
                res->micro_batches++;
                if (rc > 0) { res->converged = true; res->last_loss = loss; goto out; }
            } else {
                train_batch tb;
                memset(&tb, 0, sizeof tb);
                int rc = t->batch(t->ctx, &si, &tb, err);
                if (rc < 0) { err_prefix(err, "train: step %lld", (long long)step + 1); status = TRAIN_ERROR; goto out; }
                if (rc > 0) goto out;   /* no more data */
                if (!tb.b.targets || tb.b.n_out || tb.b.logits || tb.b.n_layers) {
                    err_set(err, CIS_EINVAL, "train: step %lld: a training batch needs targets and no logits or n_layers",
                            (long long)step + 1);
                    status = TRAIN_ERROR;
                    goto out;
                }
                float sc = si.loss_scale * (tb.scale != 0 ? tb.scale : 1.0f);
                int64_t n = 0;
                if (forward_backward(s.rep, s.R, &tb.b, sc, &loss, &n, err)) {
                    err_prefix(err, "train: step %lld", (long long)step + 1);
                    status = TRAIN_ERROR;
                    goto out;
                }
                res->micro_batches++;
                ntg += n;
            }
            loss_sum += loss;
        }
        double loss = loss_sum / c->accum;
        res->last_loss = loss;
        if (step == 0) res->first_loss = loss;
        if (!isfinite(loss)) {
            err_set(err, CIS_EINVAL, "train: diverged at step %lld (loss %g); lower the learning rate", (long long)step + 1, loss);
            status = TRAIN_ERROR;
            goto out;
        }
        if (s.R > 1) gather_grads(&s);
        double gn = c->clip > 0 ? optim_clip_grad_norm(s.opt, c->clip) : optim_grad_norm(s.opt);
        float lr = train_loop_lr(c, step, fit_time ? 0 : total, fit_time ? (mono_sec() - t0) / c->seconds : 0);
        optim_step(s.opt, lr);
        res->steps = step + 1;
        res->targets += ntg;
        res->last_grad_norm = gn;
        if (t->after_step && t->after_step(t->ctx, step, err)) {
            err_prefix(err, "train: after step %lld", (long long)step + 1);
            status = TRAIN_ERROR;
            goto out;
        }
        if (tl_post_step && tl_post_step(tl_post_step_arg, step, err)) {
            err_prefix(err, "train: post-step hook after step %lld", (long long)step + 1);
            status = TRAIN_ERROR;
            goto out;
        }
        if (c->progress) {
            double el2 = mono_sec() - t0;
            train_progress p = {.step = step + 1, .steps = total, .loss = loss, .grad_norm = gn, .lr = lr, .targets = ntg,
                                .elapsed = el2,
                                .frac = fit_time ? el2 / c->seconds : (double)(step + 1) / (double)total};
            if (c->progress(c->progress_ctx, &p)) { status = TRAIN_STOPPED; goto out; }
        }
    }
out:
    if (s.rep[0]) teardown(&s);
    else if (s.own_opt) optim_free(&s.opt);
    res->seconds = mono_sec() - t0;
    return status;
}
