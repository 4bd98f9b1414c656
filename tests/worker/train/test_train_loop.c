/* test_train_loop.c - the shared training loop (train_loop.h) on a tiny random model and a
 * learnable synthetic sequence task: the loss falls; the progress callback sees steps 1, 2, ..
 * with the scheduled learning rates; the schedules' values; clipping bounds the gradient norm the
 * optimizer sees; the stop flag (set by the callback or by another thread) and a callback's stop
 * request end the run within one step as TRAIN_STOPPED; replicas agree with one model within a
 * tolerance and restore the thread count; the same seed twice gives bit-identical parameters (with
 * and without replicas); stop_after ends a run after N steps of the longer schedule, bit for bit
 * where the full run stood after N steps (and not where a run of N steps ends); gradient ascent (loss scale -1) raises the loss; gradient accumulation
 * over two halves equals one full batch; a caller-owned tensor (a MEMIT-style delta added at a
 * hook) is optimised with the model frozen and stops early when converged; a time budget, the end
 * of the data and bad arguments end the run as documented. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "tests/testlib.h"
#include "worker/engine/arch.h"
#include "worker/train/train_loop.h"

#define V 48
#define TT 24
#define BMAX 16

static const arch_preset TINY = {"loop-tiny", "test", LLAMA_ARCH_LLAMA, 32, 64, 2, 4, 2, 8, false, false, 10000.f, 1e-2f};

static llama_model *tiny_model(int threads, uint64_t seed) {
    llama_config cfg;
    cis_err err = {0};
    if (arch_config(&TINY, V, 1, 2, 0, TT, &cfg, &err)) { fprintf(stderr, "config: %s\n", err.msg); return NULL; }
    llama_model *m = train_model_new("cpu", threads, &cfg, &err);
    if (!m) { fprintf(stderr, "model: %s\n", err.msg); return NULL; }
    llama_model_init_random(m, seed);
    llama_model_set_trainable(m, NULL, -1, -1, true, &err);
    return m;
}

/* the data: rows start at a random token and follow next = (3 t + 5) mod V; rows may be shorter
 * than TT (right padding) when `ragged` */
typedef struct data {
    uint64_t rng;
    int B;
    bool ragged;
    int end_at;                   /* > 0: no more data at this step */
    int32_t ids[BMAX * TT], tg[BMAX * TT], lens[BMAX];
    int calls;
} data;

static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fill_rows(data *d, int B) {
    for (int b = 0; b < B; b++) {
        int len = d->ragged ? TT / 2 + (int)(next_rand(&d->rng) % (TT / 2 + 1)) : TT;
        int32_t t = 3 + (int32_t)(next_rand(&d->rng) % (V - 3));
        d->lens[b] = len;
        for (int k = 0; k < TT; k++) {
            d->ids[b * TT + k] = k < len ? t : 0;
            int32_t nx = (3 * t + 5) % V;
            d->tg[b * TT + k] = k + 1 < len ? nx : LOSS_IGNORE_INDEX;
            t = nx;
        }
    }
}

static int data_batch(void *ctx, const train_step_info *si, train_batch *out, cis_err *err) {
    data *d = ctx;
    d->calls++;
    if (d->end_at > 0 && si->step == d->end_at) return 1;
    fill_rows(d, d->B);
    out->b = (llama_batch){.B = d->B, .T = TT, .ids = d->ids, .lens = d->lens, .targets = d->tg};
    return 0;
}

/* progress: every call recorded; optionally stop (flag or return value) at a given step */
typedef struct prog {
    int n;
    int64_t step[512];
    double loss[512], frac[512], gn[512];
    float lr[512];
    atomic_int *flag;
    int flag_at, return_at;
} prog;

static int prog_cb(void *ctx, const train_progress *p) {
    prog *g = ctx;
    if (g->n < 512) {
        g->step[g->n] = p->step; g->loss[g->n] = p->loss; g->frac[g->n] = p->frac; g->lr[g->n] = p->lr; g->gn[g->n] = p->grad_norm;
        g->n++;
    }
    if (g->flag && p->step == g->flag_at) atomic_store(g->flag, 1);
    return g->return_at > 0 && p->step == g->return_at;
}

static train_loop_cfg base_cfg(int64_t steps) {
    train_loop_cfg c = train_loop_cfg_default();
    c.steps = steps;
    c.optim.lr = 1e-2f;
    c.optim.beta2 = 0.95f;
    c.schedule = TRAIN_SCHED_COSINE;
    c.warmup = 3;
    c.min_lr_ratio = 0.1f;
    c.clip = 1.0f;
    return c;
}

static int run_batches(llama_model *m, train_loop_cfg *c, data *d, prog *g, train_loop_result *res, cis_err *err) {
    if (g) { c->progress = prog_cb; c->progress_ctx = g; }
    train_task t = {.model = m, .batch = data_batch, .ctx = d};
    return train_loop_run(c, &t, res, err);
}

static double max_rel_diff(llama_model *a, llama_model *b, bool *identical) {
    int na, nb;
    llama_param *pa = llama_model_params(a, &na), *pb = llama_model_params(b, &nb);
    double worst = 0;
    *identical = na == nb;
    for (int i = 0; i < na && i < nb; i++) {
        int64_t n = 1;
        for (int k = 0; k < pa[i].ndim; k++) n *= pa[i].shape[k];
        if (memcmp(pa[i].data, pb[i].data, (size_t)n * sizeof(float))) *identical = false;
        for (int64_t k = 0; k < n; k++) {
            double d = fabs((double)pa[i].data[k] - pb[i].data[k]) / (fabs(pa[i].data[k]) + 1e-2);
            if (d > worst) worst = d;
        }
    }
    return worst;
}

static void test_loss_falls_and_progress(void) {
    llama_model *m = tiny_model(1, 7);
    if (!m) { CHECK(0); return; }
    train_loop_cfg c = base_cfg(60);
    data d = {.rng = 1, .B = 8};
    prog g = {0};
    train_loop_result r;
    cis_err err = {0};
    int st = run_batches(m, &c, &d, &g, &r, &err);
    CHECK_MSG(st == TRAIN_DONE, "%d %s", st, err.msg);
    fprintf(stderr, "# loss %.3f -> %.3f (ln V = %.3f) in %lld steps, %.2f s\n", r.first_loss, r.last_loss, log(V), (long long)r.steps,
            r.seconds);
    CHECK_EQ_INT(r.steps, 60);
    CHECK_EQ_INT(r.micro_batches, 60);
    CHECK_EQ_INT(r.replicas, 1);
    CHECK(!r.timed_out && !r.converged);
    CHECK(fabs(r.first_loss - log(V)) < 0.5);
    CHECK(r.last_loss < 0.5 * r.first_loss);
    CHECK_EQ_INT(r.targets, 60LL * 8 * (TT - 1));
    CHECK_EQ_INT(g.n, 60);
    bool mono = true;
    for (int i = 0; i < g.n; i++) {
        if (g.step[i] != i + 1) mono = false;
        if (i > 0 && !(g.frac[i] > g.frac[i - 1])) mono = false;
        if (g.lr[i] != train_loop_lr(&c, i, 60, 0)) mono = false;
    }
    CHECK(mono);
    CHECK(fabs(g.frac[g.n - 1] - 1.0) < 1e-12);
    train_model_free(&m);
}

static void test_schedules(void) {
    train_loop_cfg c = train_loop_cfg_default();
    c.optim.lr = 1.0f;
    c.warmup = 4;
    CHECK_NEAR(train_loop_lr(&c, 0, 100, 0), 0.25, 1e-7);      /* warmup: (s+1)/warmup */
    CHECK_NEAR(train_loop_lr(&c, 3, 100, 0), 1.0, 1e-7);
    CHECK_NEAR(train_loop_lr(&c, 50, 100, 0), 1.0, 1e-7);      /* constant */
    c.schedule = TRAIN_SCHED_COSINE;
    c.min_lr_ratio = 0.1f;
    CHECK_NEAR(train_loop_lr(&c, 4, 104, 0), 1.0, 1e-6);       /* decay starts after warmup */
    CHECK_NEAR(train_loop_lr(&c, 54, 104, 0), 0.55, 1e-6);     /* halfway: the mean of peak and floor */
    CHECK_NEAR(train_loop_lr(&c, 104, 104, 0), 0.1, 1e-6);     /* the floor */
    CHECK_NEAR(train_loop_lr(&c, 10, 0, 0.5), 0.55, 1e-6);     /* a time budget: the fraction used */
    c.schedule = TRAIN_SCHED_LINEAR;
    c.min_lr_ratio = 0;
    CHECK_NEAR(train_loop_lr(&c, 54, 104, 0), 0.5, 1e-6);
    CHECK_NEAR(train_loop_lr(&c, 104, 104, 0), 0.0, 1e-7);
}

/* step mode on a caller-owned tensor: loss = 0.5 s ||x - target||^2 with a large s, so every raw
 * gradient norm is far above the clip; the gradients the optimizer sees (read in after_step) are
 * clipped to it, and the progress reports the norm before clipping */
typedef struct quad {
    float x[8], g[8], target[8];
    float s;
    double seen_norm_max;
    int after;
} quad;

static int quad_step(void *ctx, const train_step_info *si, double *loss, cis_err *err) {
    quad *q = ctx;
    double l = 0;
    for (int i = 0; i < 8; i++) {
        double d = q->x[i] - q->target[i];
        l += 0.5 * q->s * d * d;
        q->g[i] += si->loss_scale * (float)(q->s * d);
    }
    *loss = l;
    return 0;
}

static int quad_after(void *ctx, int64_t step, cis_err *err) {
    quad *q = ctx;
    double n = 0;
    for (int i = 0; i < 8; i++) n += (double)q->g[i] * q->g[i];
    n = sqrt(n);
    if (n > q->seen_norm_max) q->seen_norm_max = n;
    q->after++;
    return 0;
}

static void test_clip(void) {
    llama_model *m = tiny_model(1, 1);   /* the optimizer's backend */
    if (!m) { CHECK(0); return; }
    quad q = {.s = 1000};
    for (int i = 0; i < 8; i++) { q.x[i] = (float)i; q.target[i] = (float)(8 - i); }
    float *params[1] = {q.x}, *grads[1] = {q.g};
    int64_t len[1] = {8};
    train_tensors tt = {1, params, grads, len};
    train_loop_cfg c = train_loop_cfg_default();
    c.steps = 20;
    c.optim.lr = 0.1f;
    c.optim.weight_decay = 0;
    c.clip = 0.5f;
    prog g = {0};
    c.progress = prog_cb;
    c.progress_ctx = &g;
    train_task t = {.model = m, .tensors = &tt, .step = quad_step, .after_step = quad_after, .ctx = &q};
    train_loop_result r;
    cis_err err = {0};
    CHECK_MSG(train_loop_run(&c, &t, &r, &err) == TRAIN_DONE, "%s", err.msg);
    CHECK_EQ_INT(q.after, 20);
    CHECK(q.seen_norm_max <= 0.5 * (1 + 1e-5));
    CHECK(q.seen_norm_max > 0.49);
    bool above = true;
    for (int i = 0; i < g.n; i++) if (!(g.gn[i] > 0.5)) above = false;
    CHECK(above && g.n == 20);
    CHECK_NEAR(r.last_grad_norm, g.gn[g.n - 1], 1e-9);
    CHECK(r.last_loss < r.first_loss);
    train_model_free(&m);
}

/* the stop flag, set by the progress callback after step 3: the run ends before step 4 */
static void test_stop_flag_from_callback(void) {
    llama_model *m = tiny_model(1, 3);
    if (!m) { CHECK(0); return; }
    atomic_int stop = 0;
    train_loop_cfg c = base_cfg(1000);
    c.stop = &stop;
    data d = {.rng = 2, .B = 4};
    prog g = {.flag = &stop, .flag_at = 3};
    train_loop_result r;
    cis_err err = {0};
    CHECK_EQ_INT(run_batches(m, &c, &d, &g, &r, &err), TRAIN_STOPPED);
    CHECK_EQ_INT(r.steps, 3);
    CHECK_EQ_INT(g.n, 3);
    CHECK_EQ_INT(d.calls, 3);
    /* the callback's own stop request */
    prog g2 = {.return_at = 5};
    atomic_store(&stop, 0);
    CHECK_EQ_INT(run_batches(m, &c, &d, &g2, &r, &err), TRAIN_STOPPED);
    CHECK_EQ_INT(r.steps, 5);
    /* a flag already set: nothing runs */
    atomic_store(&stop, 1);
    d.calls = 0;
    CHECK_EQ_INT(run_batches(m, &c, &d, NULL, &r, &err), TRAIN_STOPPED);
    CHECK_EQ_INT(r.steps, 0);
    CHECK_EQ_INT(d.calls, 0);
    train_model_free(&m);
}

/* the stop flag set by another thread (a job's cancel) while training with replicas */
typedef struct stopper { atomic_int *flag; double delay, set_at; } stopper;

static void *stopper_run(void *arg) {
    stopper *s = arg;
    struct timespec ts = {0, (long)(s->delay * 1e9)};
    nanosleep(&ts, NULL);
    s->set_at = mono_sec();
    atomic_store(s->flag, 1);
    return NULL;
}

static void test_stop_flag_from_thread(void) {
    llama_model *m = tiny_model(2, 3);
    if (!m) { CHECK(0); return; }
    atomic_int stop = 0;
    train_loop_cfg c = base_cfg(1000000);
    c.stop = &stop;
    c.replicas = 2;
    data d = {.rng = 2, .B = 8};
    stopper s = {.flag = &stop, .delay = 0.3};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, stopper_run, &s) == 0);
    train_loop_result r;
    cis_err err = {0};
    int st = run_batches(m, &c, &d, NULL, &r, &err);
    double done = mono_sec();
    pthread_join(th, NULL);
    fprintf(stderr, "# stopped after %lld steps, %.3f s after the flag was set\n", (long long)r.steps, done - s.set_at);
    CHECK_EQ_INT(st, TRAIN_STOPPED);
    CHECK(r.steps > 0 && r.steps < 1000000);
    CHECK(done - s.set_at < 1.0);
    CHECK_EQ_INT(train_model_threads(m), 2);   /* restored after the replicas */
    train_model_free(&m);
}

/* replicas: the same training as one model up to summation order, with a batch that does not
 * divide (5 rows over 2 replicas) and ragged rows; the thread count comes back */
static void test_replicas_agree(void) {
    llama_model *m[3];
    train_loop_result r[3];
    cis_err err = {0};
    int R[3] = {1, 2, 3};
    for (int k = 0; k < 3; k++) {
        m[k] = tiny_model(2, 11);
        if (!m[k]) { CHECK(0); return; }
        train_loop_cfg c = base_cfg(8);
        c.replicas = R[k];
        data d = {.rng = 5, .B = 5, .ragged = true};
        CHECK_MSG(run_batches(m[k], &c, &d, NULL, &r[k], &err) == TRAIN_DONE, "%s", err.msg);
        CHECK_EQ_INT(r[k].replicas, R[k]);
        CHECK_EQ_INT(train_model_threads(m[k]), 2);
    }
    CHECK(fabs(r[0].first_loss - r[1].first_loss) < 1e-4);
    CHECK(r[0].targets == r[1].targets && r[1].targets == r[2].targets);
    bool same;
    double w1 = max_rel_diff(m[0], m[1], &same), w2 = max_rel_diff(m[0], m[2], &same);
    fprintf(stderr, "# replicas 2 / 3 vs 1 after 8 steps: worst relative weight difference %.2e / %.2e\n", w1, w2);
    CHECK(w1 < 1e-3 && w2 < 1e-3);
    for (int k = 0; k < 3; k++) train_model_free(&m[k]);
}

/* determinism: the same seed (init and data) twice gives bit-identical weights, with 1 model and
 * with 2 replicas; another data seed does not */
static void test_deterministic(void) {
    for (int R = 1; R <= 2; R++) {
        llama_model *m[3];
        for (int k = 0; k < 3; k++) {
            m[k] = tiny_model(R, 21);
            if (!m[k]) { CHECK(0); return; }
            train_loop_cfg c = base_cfg(10);
            c.replicas = R;
            data d = {.rng = k == 2 ? 99 : 4, .B = 6, .ragged = true};
            train_loop_result r;
            cis_err err = {0};
            CHECK_MSG(run_batches(m[k], &c, &d, NULL, &r, &err) == TRAIN_DONE, "%s", err.msg);
        }
        bool same01, same02;
        max_rel_diff(m[0], m[1], &same01);
        max_rel_diff(m[0], m[2], &same02);
        CHECK_MSG(same01, "replicas %d: two runs with the same seed differ", R);
        CHECK(!same02);
        for (int k = 0; k < 3; k++) train_model_free(&m[k]);
    }
}

/* stop_after: a run of a 40-step schedule cut after 12 steps (TRAIN_DONE, `cut`) holds bit for bit
 * the parameters of the full 40-step run after its 12th step (stopped there by its progress
 * callback), with the same learning rates; a 12-step schedule (warmup and cosine over 12) does not.
 * With 1 model and with 2 replicas. stop_after >= steps is the full run. */
static void test_stop_after_is_a_prefix(void) {
    for (int R = 1; R <= 2; R++) {
        llama_model *m[3];
        prog g[3];
        memset(g, 0, sizeof g);
        for (int k = 0; k < 3; k++) {
            m[k] = tiny_model(R, 33);
            if (!m[k]) { CHECK(0); return; }
            train_loop_cfg c = base_cfg(k == 2 ? 12 : 40);
            c.replicas = R;
            if (k == 0) c.stop_after = 12;
            if (k == 1) g[1].return_at = 12;
            data d = {.rng = 8, .B = 6, .ragged = true};
            train_loop_result r;
            cis_err err = {0};
            int st = run_batches(m[k], &c, &d, &g[k], &r, &err);
            CHECK_MSG(st == (k == 1 ? TRAIN_STOPPED : TRAIN_DONE), "run %d: status %d %s", k, st, err.msg);
            CHECK_EQ_INT(r.steps, 12);
            CHECK(r.cut == (k == 0));
            CHECK_EQ_INT(d.calls, 12);
        }
        bool same01, same02;
        max_rel_diff(m[0], m[1], &same01);
        max_rel_diff(m[0], m[2], &same02);
        CHECK_MSG(same01, "replicas %d: the cut run differs from the full run's first 12 steps", R);
        CHECK_MSG(!same02, "replicas %d: the cut run equals a 12-step schedule", R);
        for (int i = 0; i < 12; i++) CHECK(g[0].lr[i] == g[1].lr[i] && g[0].frac[i] == g[1].frac[i]);
        CHECK(g[0].lr[11] > g[2].lr[11]);   /* a 12-step schedule has decayed to its floor by then */
        for (int k = 0; k < 3; k++) train_model_free(&m[k]);
    }
    /* stop_after at or past the budget: the whole run, not cut */
    llama_model *m = tiny_model(1, 5);
    if (!m) { CHECK(0); return; }
    train_loop_cfg c = base_cfg(5);
    c.stop_after = 5;
    data d = {.rng = 1, .B = 2};
    train_loop_result r;
    cis_err err = {0};
    CHECK(run_batches(m, &c, &d, NULL, &r, &err) == TRAIN_DONE && r.steps == 5 && !r.cut);
    train_model_free(&m);
}

/* gradient ascent: loss scale -1 raises the loss (GA); from a model that learned the task first */
static void test_gradient_ascent(void) {
    llama_model *m = tiny_model(1, 5);
    if (!m) { CHECK(0); return; }
    train_loop_cfg c = base_cfg(40);
    data d = {.rng = 8, .B = 8};
    train_loop_result r;
    cis_err err = {0};
    CHECK(run_batches(m, &c, &d, NULL, &r, &err) == TRAIN_DONE);
    double learned = r.last_loss;
    c = base_cfg(15);
    c.schedule = TRAIN_SCHED_CONSTANT;
    c.warmup = 0;
    c.optim.lr = 1e-3f;
    c.loss_scale = -1;
    prog g = {0};
    CHECK_MSG(run_batches(m, &c, &d, &g, &r, &err) == TRAIN_DONE, "%s", err.msg);
    fprintf(stderr, "# gradient ascent: loss %.3f (learned) -> %.3f .. %.3f\n", learned, r.first_loss, r.last_loss);
    CHECK(r.last_loss > 2 * r.first_loss);
    bool rising = true;
    for (int i = 5; i < g.n; i++) if (g.loss[i] < g.loss[i - 5]) rising = false;
    CHECK(rising);
    train_model_free(&m);
}

/* two micro-batches of 4 full rows = one batch of 8 (mean of equal-size means) */
static int half_batch(void *ctx, const train_step_info *si, train_batch *out, cis_err *err) {
    data *d = ctx;
    if (si->micro == 0) fill_rows(d, 8);
    out->b = (llama_batch){.B = 4, .T = TT, .ids = d->ids + si->micro * 4 * TT, .lens = d->lens + si->micro * 4,
                           .targets = d->tg + si->micro * 4 * TT};
    return 0;
}

static void test_accumulation(void) {
    llama_model *a = tiny_model(1, 13), *b = tiny_model(1, 13);
    if (!a || !b) { CHECK(0); return; }
    train_loop_cfg c = base_cfg(6);
    data d1 = {.rng = 3, .B = 8}, d2 = {.rng = 3, .B = 8};
    train_loop_result r1, r2;
    cis_err err = {0};
    CHECK(run_batches(a, &c, &d1, NULL, &r1, &err) == TRAIN_DONE);
    c.accum = 2;
    train_task t = {.model = b, .batch = half_batch, .ctx = &d2};
    CHECK_MSG(train_loop_run(&c, &t, &r2, &err) == TRAIN_DONE, "%s", err.msg);
    CHECK_EQ_INT(r2.steps, 6);
    CHECK_EQ_INT(r2.micro_batches, 12);
    CHECK_EQ_INT(r1.targets, r2.targets);
    CHECK(fabs(r1.first_loss - r2.first_loss) < 1e-5);
    bool same;
    double w = max_rel_diff(a, b, &same);
    fprintf(stderr, "# accumulation 2 x 4 rows vs 8 rows after 6 steps: worst relative weight difference %.2e\n", w);
    CHECK(w < 1e-3);
    train_model_free(&a);
    train_model_free(&b);
}

/* a MEMIT-style value optimisation: a delta vector added at the output of layer 1 (the last) at the final
 * position of a prompt, optimised so that the frozen model (trained on the task first) predicts a
 * token there that the task does not; the step function stops the run once the loss is below 0.1 */
typedef struct delta_task {
    llama_model *m;
    float delta[32], grad[32], hook_grad[32];
    int32_t ids[6], tg[6], pb, pt;
} delta_task;

static int delta_step(void *ctx, const train_step_info *si, double *loss, cis_err *err) {
    delta_task *x = ctx;
    llama_hook h = {.layer = 1, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = 1, .pos_b = &x->pb, .pos_t = &x->pt,
                    .value = x->delta, .grad = x->hook_grad};
    llama_batch b = {.B = 1, .T = 6, .ids = x->ids, .targets = x->tg};
    if (llama_forward(x->m, &b, &h, 1, true, loss, err)) return -1;
    if (*loss < 0.1) return 1;   /* converged: no update */
    if (llama_backward(x->m, si->loss_scale, NULL, err)) return -1;
    for (int i = 0; i < 32; i++) x->grad[i] += x->hook_grad[i];
    return 0;
}

static void test_custom_tensor(void) {
    delta_task x = {.pb = 0, .pt = 5};
    x.m = tiny_model(1, 17);
    if (!x.m) { CHECK(0); return; }
    train_loop_cfg c = base_cfg(60);
    data d = {.rng = 6, .B = 8};
    train_loop_result r;
    cis_err err = {0};
    CHECK(run_batches(x.m, &c, &d, NULL, &r, &err) == TRAIN_DONE);
    llama_model_freeze_all(x.m);
    int np;
    llama_param *p = llama_model_params(x.m, &np);
    float before = p[0].data[5];
    int32_t tok = 7;
    for (int t = 0; t < 6; t++) { x.ids[t] = tok; x.tg[t] = LOSS_IGNORE_INDEX; tok = (3 * tok + 5) % V; }
    x.tg[5] = (3 * tok + 5) % V;   /* the token after the task's next one */
    float *params[1] = {x.delta}, *grads[1] = {x.grad};
    int64_t len[1] = {32};
    train_tensors tt = {1, params, grads, len};
    c = train_loop_cfg_default();
    c.steps = 300;
    c.optim.lr = 0.1f;
    c.optim.weight_decay = 0;
    train_task t = {.model = x.m, .tensors = &tt, .step = delta_step, .ctx = &x};
    int st = train_loop_run(&c, &t, &r, &err);
    fprintf(stderr, "# delta: loss %.3f -> %.4f in %lld steps (converged %d)\n", r.first_loss, r.last_loss, (long long)r.steps, r.converged);
    CHECK_MSG(st == TRAIN_DONE, "%s", err.msg);
    CHECK(r.converged);
    CHECK(r.steps > 1 && r.steps < 300);
    CHECK(r.first_loss > 2 && r.last_loss < 0.1);
    CHECK(p[0].data[5] == before);   /* the model is untouched */
    double n = 0;
    for (int i = 0; i < 32; i++) n += x.delta[i] * x.delta[i];
    CHECK(n > 0);
    train_model_free(&x.m);
}

/* a time budget without steps: ends cleanly, timed out, with frac in [0, 1); the end of the data */
static void test_time_budget_and_data_end(void) {
    llama_model *m = tiny_model(1, 2);
    if (!m) { CHECK(0); return; }
    train_loop_cfg c = base_cfg(0);
    c.seconds = 0.3;
    data d = {.rng = 1, .B = 4};
    prog g = {0};
    train_loop_result r;
    cis_err err = {0};
    double t0 = mono_sec();
    CHECK_MSG(run_batches(m, &c, &d, &g, &r, &err) == TRAIN_DONE, "%s", err.msg);
    CHECK(r.timed_out && r.steps > 0);
    CHECK(mono_sec() - t0 < 1.5);
    CHECK(g.n > 0 && g.frac[0] > 0 && g.frac[0] < 1);
    c = base_cfg(50);
    d.end_at = 7;
    CHECK(run_batches(m, &c, &d, NULL, &r, &err) == TRAIN_DONE);
    CHECK_EQ_INT(r.steps, 7);
    CHECK(!r.timed_out);
    train_model_free(&m);
}

static int fail_batch(void *ctx, const train_step_info *si, train_batch *out, cis_err *err) {
    return err_set(err, CIS_EINVAL, "no data here");
}

static int nan_step(void *ctx, const train_step_info *si, double *loss, cis_err *err) {
    *loss = NAN;
    return 0;
}

/* a started batch (a kept frozen prefix, GA/GD's lower half): start_layer 1 with some x_start */
static float g_x_start[BMAX * TT * 64];
static int started_batch(void *ctx, const train_step_info *si, train_batch *out, cis_err *err) {
    int rc = data_batch(ctx, si, out, err);
    out->b.start_layer = 1;
    out->b.x_start = g_x_start;
    return rc;
}

static void test_bad_arguments(void) {
    llama_model *m = tiny_model(1, 2);
    if (!m) { CHECK(0); return; }
    data d = {.rng = 1, .B = 2};
    cis_err err = {0};
    train_loop_result r;
    train_loop_cfg c = base_cfg(0);
    train_task t = {.model = m, .batch = data_batch, .ctx = &d};
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "budget"));
    c = base_cfg(0);
    c.seconds = 5;
    c.stop_after = 2;
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "stop_after"));
    c = base_cfg(3);
    c.stop_after = -1;
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "stop_after"));
    c = base_cfg(3);
    c.accum = 0;
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "accum"));
    c = base_cfg(3);
    t.step = nan_step;
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "exactly one"));
    t = (train_task){.model = m, .batch = fail_batch};
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "step 1") && strstr(err.msg, "no data here"));
    t = (train_task){.model = m, .step = nan_step};
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "diverged at step 1"));
    t = (train_task){.batch = data_batch, .ctx = &d};
    CHECK(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "no model"));
    /* a started batch cannot be split over replicas (a slice's prefix would differ in the last bits) */
    c = base_cfg(3);
    CHECK_EQ_INT(train_loop_replicas(&c, m), 1);
    c.replicas = 0;
    CHECK_EQ_INT(train_loop_replicas(&c, m), 1);   /* one per thread of a 1-thread model */
    c.replicas = 99;
    CHECK_EQ_INT(train_loop_replicas(&c, m), 16);
    c.replicas = 2;
    t = (train_task){.model = m, .batch = started_batch, .ctx = &d};
    CHECK_MSG(train_loop_run(&c, &t, &r, &err) == TRAIN_ERROR && strstr(err.msg, "step 1") &&
              strstr(err.msg, "started batch (start_layer 1) cannot be split over 2 replicas"), "%s", err.msg);
    CHECK(train_device_check("tpu:0", &err) == -1 && strstr(err.msg, "tpu:0"));
    CHECK_EQ_INT(train_device_check("cpu", &err), 0);
    train_model_free(&m);
}

int main(void) {
    log_set_level(LOG_WARN);
    RUN(test_schedules);
    RUN(test_loss_falls_and_progress);
    RUN(test_clip);
    RUN(test_stop_flag_from_callback);
    RUN(test_stop_flag_from_thread);
    RUN(test_replicas_agree);
    RUN(test_deterministic);
    RUN(test_stop_after_is_a_prefix);
    RUN(test_gradient_ascent);
    RUN(test_accumulation);
    RUN(test_custom_tensor);
    RUN(test_time_budget_and_data_end);
    RUN(test_bad_arguments);
    return test_summary();
}
