/* rmu.c - RMU, Representation Misdirection for Unlearning (Li et al. 2024, WMDP; algorithms.md §8;
 * the composable-interventions profile of fidelity.md §6), as the intervention `rmu`.
 *
 * Each step takes the forget batch of one topic (bio, cyber, alternating) and a retain batch. The
 * updated model runs only up to the activation layer (a partial forward, n_layers = layer + 1) with a
 * READ hook at its output (hook E); the forget loss is the mean over every element of
 * (h_f - c u_t)^2 with u_t the topic's control vector, the retain loss alpha x mean((h_r - h_r0)^2)
 * against a frozen copy of the starting model on the same retain batch. Both gradients enter the
 * backward as hook grad seeds (2 (h - target) / (N D), times alpha for the retain term), and only
 * `module` of the layers layer_lo..layer_hi is trainable. One transformers.AdamW step per batch.
 *
 * The intervention (rmu_apply) reads the corpora of the data directory, truncates as upstream does
 * (512 tokens bio, 768 cyber, 512 retain; never past the model's positions), runs `max_batches`
 * steps in all (250, fidelity.md: upstream's hard-coded 1000 is capped by its corpora at 250) and
 * records what ran. Its preset (rmu_preset) resolves the layer given for Llama-3-8B to this model's
 * depth (round(layer x L / 32)), Mistral's layer 6 and down_proj, and for the tiny default family
 * (hidden size <= 128) the layer, down_proj, coefficient, alpha and lr of its tuning grids (below;
 * docs/unlearning.md); the replaced values stay under "given". */
#include "worker/interventions/methods.h"
#include "worker/interventions/unlearn.h"
#include "worker/train/train_loop.h"
#include "common/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* upstream's truncation lengths (tokens): bio forget, cyber forget, retain (wmdp rmu/unlearn.py) */
#define RMU_MAXLEN_BIO 512
#define RMU_MAXLEN_CYBER 768
#define RMU_MAXLEN_RETAIN 512

/* The tiny default family's values (hidden size <= RMU_TINY_MAX_D), since results epoch 9 (session
 * 12): activation layer 6 (an index of the model, not scaled: down_proj of layers 4-6), c 1200,
 * alpha 80, lr 1e-2, tuned on the cloze rows (docs/eval.md "Cloze multiple choice": each option
 * scored as the continuation of the bare question; the lettered rows of these models are
 * per-question associations learned from the world's MC items, docs/unlearning.md "Transfer
 * binding") by grids/rmu-cloze-tune.json on the shipped tiny-llama3: cloze WMDP 0.320 +- 0.013 with
 * cloze MMLU -0.090 (seeds 1-3, every item), the target (<= 0.35 within -0.10). For
 * model_type "mistral" (as upstream has its own Mistral setting) the epoch-8 values stay: layer 3,
 * c 300, alpha 30, the best of that grid on the shipped tiny-mistral (cloze WMDP 0.393 at -0.038;
 * no point there meets the target; docs/unlearning.md "Cloze accuracy"). The scaled paper layer (1
 * of 10) with o_proj does not unlearn selectively on these models (measured, docs/unlearning.md). */
#define RMU_TINY_MAX_D 128
#define RMU_TINY_COEFF 1200.0
#define RMU_TINY_ALPHA 80.0
#define RMU_TINY_LR 1e-2
#define RMU_TINY_LAYER 6
#define RMU_TINY_MISTRAL_COEFF 300.0
#define RMU_TINY_MISTRAL_ALPHA 30.0
#define RMU_TINY_MISTRAL_LAYER 3
#define RMU_TINY_MODULE "down_proj"

void rmu_control_vector(uint64_t seed, int topic, int D, float coeff, float *out) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ull ^ (0x524D55ull + (uint64_t)topic * 0xD1B54A32D192ED03ull);
    double ss = 0;
    double *u = xmalloc((size_t)D * sizeof *u);
    for (int i = 0; i < D; i++) {
        u[i] = (double)(rng_splitmix64(&st) >> 11) * 0x1.0p-53; /* uniform [0, 1), as torch.rand */
        ss += u[i] * u[i];
    }
    double inv = ss > 0 ? 1.0 / sqrt(ss) : 0;
    for (int i = 0; i < D; i++) out[i] = (float)(u[i] * inv * coeff);
    free(u);
}

void rmu_result_clear(rmu_result *r) {
    if (!r) return;
    free(r->forget_loss);
    free(r->retain_loss);
    memset(r, 0, sizeof *r);
}

/* ---- the engine ---- */

/* The frozen prefix. Layers 0..P-1 below the lowest updated layer P = layer_lo never change, in
 * neither model, so the residual stream entering layer P is a constant of the batch: it is computed
 * once per step and batch (llama_embed + llama_layer_run, the same ops as llama_forward's own
 * layers, hence the same floats), kept while its batch will come again (the forget batches cycle:
 * 250 steps over 60 batches per topic on the default world), and the updated and the frozen
 * forwards start from it (start_layer P) instead of from the embeddings. The frozen model shares it
 * only when its embeddings and layers 0..P-1 are bit-identical to the updated model's (always, as
 * rmu_apply makes it; a caller's other frozen model runs its own full forward). Off with
 * opts->no_prefix or CISWEEP_NO_SHORTCUTS=1: every forward from the embeddings, as before. */
#define RMU_PREFIX_KEEP_BYTES ((size_t)256 << 20)   /* kept prefixes at most (then recomputed) */

typedef struct rmu_prefix {
    int P;                      /* 0 = off */
    bool frozen_shares;         /* the frozen model's layers 0..P-1 are the updated model's */
    int n_slot;                 /* forget[0] batches, forget[1] batches, retain batches */
    int off[UNL_N_TOPICS + 1];  /* first slot of forget[0], forget[1], retain */
    float **x;                  /* [n_slot] kept [B*T, D] backend memory, or NULL */
    int *uses_left;             /* [n_slot] steps still to use the slot's batch */
    size_t kept;                /* bytes kept */
    float *tmp[2];              /* [cap, D] backend scratch: the ping-pong of the layers */
    size_t tmp_cap;             /* rows */
    int64_t computed, reused;   /* prefixes computed, and uses served from a kept one */
} rmu_prefix;

typedef struct rmu_state {
    llama_model *m, *frozen;
    const rmu_opts *o;
    const unl_batches *forget, *retain;
    int D;
    float *cvec[UNL_N_TOPICS];  /* [D] */
    float *act, *act0, *seed;   /* [rows, D] host scratch, grown on demand */
    size_t cap;
    rmu_prefix px;
    bool shortcuts;             /* the frozen prefix and the kept frozen activation (off: opts->no_prefix) */
    int64_t act0_batch;         /* the retain batch whose frozen activation act0 holds, or -1 */
    rmu_result *res;
    int res_cap;
} rmu_state;

static void grow(rmu_state *s, size_t rows) {
    size_t need = rows * (size_t)s->D;
    if (need <= s->cap) return;
    s->cap = need;
    s->act = xrealloc(s->act, need * sizeof(float));
    s->act0 = xrealloc(s->act0, need * sizeof(float));
    s->seed = xrealloc(s->seed, need * sizeof(float));
}

/* the activation at the output of o->layer on batch b: forward (kept for a backward when seed),
 * from the embeddings (x_start NULL) or from x_start [B*T, D] at the input of layer px.P */
static int act_forward(rmu_state *s, llama_model *m, const unl_batch *b, const float *x_start, float *read,
                       const float *seed, bool bwd, cis_err *err) {
    llama_hook h = {.layer = s->o->layer, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_READ, .n_pos = -1,
                    .read = read, .grad_seed = seed};
    llama_batch bt = {.B = b->B, .T = b->T, .ids = b->ids, .lens = b->lens, .n_layers = s->o->layer + 1};
    if (x_start) { bt.start_layer = s->px.P; bt.x_start = x_start; }
    return llama_forward(m, &bt, &h, 1, bwd, NULL, err);
}

/* whether a and b hold the same embeddings and layers 0..P-1, bit for bit, on one backend */
static bool same_prefix(llama_model *a, llama_model *b, int P) {
    if (llama_model_backend(a) != llama_model_backend(b)) return false;
    int na, nb;
    llama_param *pa = llama_model_params(a, &na), *pb = llama_model_params(b, &nb);
    if (na != nb) return false;
    bool same = true;
    for (int i = 0; i < na && same; i++) {
        if (strcmp(pa[i].name, pb[i].name)) return false;
        int l = -1;
        bool below = sscanf(pa[i].name, "model.layers.%d.", &l) == 1 ? l < P : !strcmp(pa[i].name, "model.embed_tokens.weight");
        if (!below) continue;
        size_t n = (size_t)pa[i].shape[0] * (pa[i].ndim == 2 ? (size_t)pa[i].shape[1] : 1);
        float *ha = xmalloc(n * sizeof(float)), *hb = xmalloc(n * sizeof(float));
        cis_err e = {0};
        same = !llama_model_param_get(a, i, ha, &e) && !llama_model_param_get(b, i, hb, &e) &&
               !memcmp(ha, hb, n * sizeof(float));
        free(ha);
        free(hb);
    }
    return same;
}

/* set up the prefix of rmu_run (px.P = 0: off); counts each slot's uses over the run's steps */
static int prefix_init(rmu_state *s, cis_err *err) {
    rmu_prefix *px = &s->px;
    memset(px, 0, sizeof *px);
    if (!s->shortcuts || s->o->layer_lo < 1) return 0;
    px->P = s->o->layer_lo;
    px->frozen_shares = same_prefix(s->m, s->frozen, px->P);
    px->off[0] = 0;
    px->off[1] = s->forget[0].n;
    px->off[2] = px->off[1] + s->forget[1].n;
    px->n_slot = px->off[2] + s->retain->n;
    px->x = xcalloc((size_t)px->n_slot, sizeof *px->x);
    px->uses_left = xcalloc((size_t)px->n_slot, sizeof *px->uses_left);
    for (int64_t i = 0; i < s->o->steps; i++) {
        int t = (int)(i % UNL_N_TOPICS);
        int64_t bi = i / UNL_N_TOPICS;
        px->uses_left[px->off[t] + bi % s->forget[t].n]++;
        px->uses_left[px->off[2] + bi % s->retain->n]++;
    }
    (void)err;
    return 0;
}

static void prefix_clear(rmu_state *s) {
    rmu_prefix *px = &s->px;
    backend *be = llama_model_backend(s->m);
    for (int i = 0; i < px->n_slot; i++)
        if (px->x[i]) backend_free(be, px->x[i]);
    for (int k = 0; k < 2; k++)
        if (px->tmp[k]) backend_free(be, px->tmp[k]);
    free(px->x);
    free(px->uses_left);
    memset(px, 0, sizeof *px);
}

/* the residual stream entering layer P for batch b (slot `slot`): a kept one, or computed with the
 * updated model's layers 0..P-1 (kept when the batch comes again and the budget allows). *x points
 * to backend memory valid until the next prefix_get; one use of the slot is counted. */
static int prefix_get(rmu_state *s, int slot, const unl_batch *b, const float **x, cis_err *err) {
    rmu_prefix *px = &s->px;
    backend *be = llama_model_backend(s->m);
    size_t rows = (size_t)b->B * b->T, bytes = rows * (size_t)s->D * sizeof(float);
    px->uses_left[slot]--;
    if (px->x[slot]) {
        *x = px->x[slot];
        px->reused++;
        return 0;
    }
    if (rows > px->tmp_cap) {
        for (int k = 0; k < 2; k++) {
            if (px->tmp[k]) backend_free(be, px->tmp[k]);
            px->tmp[k] = backend_alloc(be, bytes, err);
            if (!px->tmp[k]) return -1;
        }
        px->tmp_cap = rows;
    }
    float *keep = NULL;
    if (px->uses_left[slot] > 0 && px->kept + bytes <= RMU_PREFIX_KEEP_BYTES) {
        keep = backend_alloc(be, bytes, NULL);   /* no memory: recomputed next time instead */
        if (keep) { px->x[slot] = keep; px->kept += bytes; }
    }
    /* embeddings and layers 0..P-1 ping-pong between the buffers so that the last lands in out */
    float *out = keep ? keep : px->tmp[0];
    float *other = keep ? px->tmp[0] : px->tmp[1];
    float *cur = px->P % 2 == 0 ? out : other, *nxt = px->P % 2 == 0 ? other : out;
    if (llama_embed(s->m, b->B, b->T, b->ids, b->lens, cur, err)) return -1;
    for (int l = 0; l < px->P; l++) {
        if (llama_layer_run(s->m, l, b->B, b->T, b->lens, cur, nxt, NULL, 0, err)) return -1;
        float *t = cur; cur = nxt; nxt = t;
    }
    CIS_ASSERT(cur == out);
    px->computed++;
    *x = out;
    return 0;
}

/* a slot's batch is used no more: its kept prefix goes */
static void prefix_done(rmu_state *s, int slot) {
    rmu_prefix *px = &s->px;
    if (px->uses_left[slot] > 0 || !px->x[slot]) return;
    backend *be = llama_model_backend(s->m);
    const unl_batch *b = slot >= px->off[2] ? &s->retain->b[slot - px->off[2]]
                         : slot >= px->off[1] ? &s->forget[1].b[slot - px->off[1]] : &s->forget[0].b[slot];
    px->kept -= (size_t)b->B * b->T * (size_t)s->D * sizeof(float);
    backend_free(be, px->x[slot]);
    px->x[slot] = NULL;
}

/* rows that count in the loss: every row with pad_in_loss (lens = T), else the real tokens */
static bool row_counts(const unl_batch *b, int r, int t) {
    return t < b->lens[r];
}

static int rmu_step(void *ctx, const train_step_info *si, double *loss, cis_err *err) {
    rmu_state *s = ctx;
    const rmu_opts *o = s->o;
    int topic = (int)(si->step % UNL_N_TOPICS);
    int64_t bi = si->step / UNL_N_TOPICS;
    const unl_batches *fb = &s->forget[topic];
    const unl_batch *f = &fb->b[bi % fb->n];
    const unl_batch *r = &s->retain->b[bi % s->retain->n];
    int D = s->D;

    /* forget: mean over the counted elements of (h - c u)^2 */
    grow(s, (size_t)f->B * f->T);
    memset(s->seed, 0, (size_t)f->B * f->T * D * sizeof(float));
    const float *xf = NULL;
    int fslot = s->px.off[topic] + (int)(bi % fb->n);
    if (s->px.P && prefix_get(s, fslot, f, &xf, err)) return -1;
    if (act_forward(s, s->m, f, xf, s->act, s->seed, true, err)) return -1;
    if (s->px.P) prefix_done(s, fslot);
    int64_t nrow = 0;
    for (int b = 0; b < f->B; b++)
        for (int t = 0; t < f->T; t++) nrow += row_counts(f, b, t);
    const float *cu = s->cvec[topic];
    double lf = 0, gsc = 2.0 / ((double)nrow * D) * si->loss_scale;
    for (int b = 0; b < f->B; b++)
        for (int t = 0; t < f->T; t++) {
            if (!row_counts(f, b, t)) continue;
            size_t off = ((size_t)b * f->T + t) * D;
            for (int k = 0; k < D; k++) {
                double d = (double)s->act[off + k] - cu[k];
                lf += d * d;
                s->seed[off + k] = (float)(gsc * d);
            }
        }
    lf /= (double)nrow * D;
    if (llama_backward(s->m, 0.0f, NULL, err)) return -1;

    /* retain: alpha x mean((h - h_frozen)^2) */
    double alpha = o->alpha[topic];
    grow(s, (size_t)r->B * r->T);
    const float *xr = NULL;
    int rslot = s->px.off[2] + (int)(bi % s->retain->n);
    if (s->px.P && prefix_get(s, rslot, r, &xr, err)) return -1;
    /* the frozen activation of a retain batch is a constant: consecutive steps (bio, cyber) share
     * their retain batch, so the second takes the first's */
    int64_t rbi = bi % s->retain->n;
    if (s->act0_batch != rbi) {
        s->act0_batch = -1;
        if (act_forward(s, s->frozen, r, s->px.frozen_shares ? xr : NULL, s->act0, NULL, false, err)) return -1;
        if (s->shortcuts) s->act0_batch = rbi;
    } else {
        s->res->frozen_reused++;
    }
    memset(s->seed, 0, (size_t)r->B * r->T * D * sizeof(float));
    if (act_forward(s, s->m, r, xr, s->act, s->seed, true, err)) return -1;
    if (s->px.P) prefix_done(s, rslot);
    nrow = 0;
    for (int b = 0; b < r->B; b++)
        for (int t = 0; t < r->T; t++) nrow += row_counts(r, b, t);
    double lr_ = 0;
    gsc = 2.0 * alpha / ((double)nrow * D) * si->loss_scale;
    for (int b = 0; b < r->B; b++)
        for (int t = 0; t < r->T; t++) {
            if (!row_counts(r, b, t)) continue;
            size_t off = ((size_t)b * r->T + t) * D;
            for (int k = 0; k < D; k++) {
                double d = (double)s->act[off + k] - s->act0[off + k];
                lr_ += d * d;
                s->seed[off + k] = (float)(gsc * d);
            }
        }
    lr_ = alpha * lr_ / ((double)nrow * D);
    if (llama_backward(s->m, 0.0f, NULL, err)) return -1;

    rmu_result *res = s->res;
    if (res->steps == s->res_cap) {
        s->res_cap = s->res_cap ? 2 * s->res_cap : 256;
        res->forget_loss = xrealloc(res->forget_loss, (size_t)s->res_cap * sizeof(double));
        res->retain_loss = xrealloc(res->retain_loss, (size_t)s->res_cap * sizeof(double));
    }
    res->forget_loss[res->steps] = lf;
    res->retain_loss[res->steps] = lr_;
    res->steps++;
    *loss = lf + lr_;
    return 0;
}

static int rmu_progress(void *ctx, const train_progress *p) {
    rmu_state *s = ctx;
    if (s->o->progress) s->o->progress(s->o->cb_arg, p->frac);
    return s->o->stop && s->o->stop(s->o->cb_arg) ? 1 : 0;
}

static const char *module_parent(const char *module) {
    if (!strcmp(module, "q_proj") || !strcmp(module, "k_proj") || !strcmp(module, "v_proj") || !strcmp(module, "o_proj"))
        return "self_attn";
    if (!strcmp(module, "gate_proj") || !strcmp(module, "up_proj") || !strcmp(module, "down_proj")) return "mlp";
    return NULL;
}

int rmu_run(llama_model *m, llama_model *frozen, const rmu_opts *o, const unl_batches *forget,
            const unl_batches *retain, rmu_result *res_out, cis_err *err) {
    rmu_result res0, *res = res_out ? res_out : &res0;
    memset(res, 0, sizeof *res);
    const llama_config *cfg = llama_model_config(m);
    int L = cfg->num_hidden_layers;
    if (o->layer < 0 || o->layer >= L)
        return err_set(err, CIS_EINVAL, "rmu: activation layer %d is outside the model's layers 0..%d", o->layer, L - 1);
    if (o->layer_lo < 0 || o->layer_hi > o->layer || o->layer_lo > o->layer_hi)
        return err_set(err, CIS_EINVAL, "rmu: updated layers %d..%d must lie in 0..%d (at or below the activation layer)",
                       o->layer_lo, o->layer_hi, o->layer);
    const char *parent = o->module ? module_parent(o->module) : NULL;
    if (!parent) return err_set(err, CIS_EINVAL, "rmu: module \"%s\" is not one of q_proj|k_proj|v_proj|o_proj|gate_proj|"
                                "up_proj|down_proj", o->module ? o->module : "(null)");
    if (o->steps < 1) return err_set(err, CIS_EINVAL, "rmu: steps must be >= 1 (got %d)", o->steps);
    for (int t = 0; t < UNL_N_TOPICS; t++)
        if (!forget || forget[t].n < 1) return err_set(err, CIS_EINVAL, "rmu: no %s forget batch", UNL_TOPIC_NAMES[t]);
    if (!retain || retain->n < 1) return err_set(err, CIS_EINVAL, "rmu: no retain batch");
    if (!frozen || llama_model_config(frozen)->hidden_size != cfg->hidden_size ||
        llama_model_config(frozen)->num_hidden_layers != L)
        return err_set(err, CIS_EINVAL, "rmu: the frozen model must have the updated model's configuration");

    rmu_state s = {.m = m, .frozen = frozen, .o = o, .forget = forget, .retain = retain, .D = cfg->hidden_size, .res = res,
                   .shortcuts = !o->no_prefix && !llama_no_shortcuts(), .act0_batch = -1};
    for (int t = 0; t < UNL_N_TOPICS; t++) {
        s.cvec[t] = xmalloc((size_t)s.D * sizeof(float));
        rmu_control_vector(o->seed, t, s.D, o->coeff[t], s.cvec[t]);
    }
    llama_model_freeze_all(m);
    char *glob = xasprintf("model.layers.*.%s.%s.weight", parent, o->module);
    int nm = llama_model_set_trainable(m, glob, o->layer_lo, o->layer_hi, true, err);
    free(glob);
    int rc = -1;
    if (nm < 0) goto out;
    if (nm == 0) { err_set(err, CIS_EINVAL, "rmu: module %s matches no parameter in layers %d..%d", o->module, o->layer_lo, o->layer_hi); goto out; }
    res->n_updated = nm;
    int np;
    llama_param *p = llama_model_params(m, &np);
    for (int i = 0; i < np; i++)
        if (llama_model_is_trainable(m, i)) res->numel_updated += (int64_t)p[i].shape[0] * p[i].shape[1];

    if (prefix_init(&s, err)) goto out;
    train_loop_cfg c = train_loop_cfg_default();
    c.steps = o->steps;
    c.optim = optim_config_default(ADAM_HF_ADAMW);   /* transformers.AdamW: eps 1e-6, no decay */
    c.optim.lr = o->lr;
    c.progress = rmu_progress;
    c.progress_ctx = &s;
    train_task task = {.model = m, .step = rmu_step, .ctx = &s};
    train_loop_result tr;
    int st = train_loop_run(&c, &task, &tr, err);
    res->seconds = tr.seconds;
    res->prefix_layers = s.px.P;
    res->prefix_computed = s.px.computed;
    res->prefix_reused = s.px.reused;
    rc = st == TRAIN_ERROR ? -1 : st == TRAIN_STOPPED ? 1 : 0;
out:
    prefix_clear(&s);
    llama_model_freeze_all(m);
    for (int t = 0; t < UNL_N_TOPICS; t++) free(s.cvec[t]);
    free(s.act);
    free(s.act0);
    free(s.seed);
    if (!res_out) rmu_result_clear(res);
    return rc;
}

/* ---- the intervention ---- */

/* scale_layer: the paper's layer (given for Llama-3-8B, 32 layers) on a model of L layers:
 * round(layer x L / 32), clamped to 0..L-1. */
static int scale_layer(int layer, int L) {
    int l = (int)lround((double)layer * L / 32.0);
    return l < 0 ? 0 : l >= L ? L - 1 : l;
}

int rmu_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    int L = cfg->num_hidden_layers;
    long long layer = json_integer_value(json_object_get(params, "layer"));
    bool use = json_is_true(json_object_get(params, "use_preset"));
    json_t *given = json_object();
    const char *rule;
    int act = (int)layer;
    if (use) {
        bool mistral = !strcmp(cfg->model_type, "mistral");
        if (mistral) {
            /* upstream's Mistral run: layer 6 (of 32) on down_proj (launch_jobs_rmu_mistral.sh) */
            json_object_set_new(given, "layer", json_integer(layer));
            json_object_set_new(given, "module", json_deep_copy(json_object_get(params, "module")));
            layer = 6;
            json_object_set_new(params, "module", json_string("down_proj"));
        }
        act = L == 32 ? (int)layer : scale_layer((int)layer, L);
        rule = L == 32 ? "32 layers: the layer as given" : "round(layer x L / 32) for a model of L != 32 layers";
        /* the tiny preset's layer, or the last layer of a tiny model too shallow for it (the tiny
         * branch needs L > 3, as in epoch 8) */
        const int tiny_want = mistral ? RMU_TINY_MISTRAL_LAYER : RMU_TINY_LAYER;
        const int tiny_layer = L > tiny_want ? tiny_want : L - 1;
        if (cfg->hidden_size <= RMU_TINY_MAX_D && L > RMU_TINY_MISTRAL_LAYER) {
            const char *keys[] = {"steering_coeff", "alpha", "lr", "module"};
            for (int k = 0; k < 4; k++)
                if (!json_object_get(given, keys[k])) json_object_set_new(given, keys[k], json_deep_copy(json_object_get(params, keys[k])));
            if (!json_object_get(given, "layer")) json_object_set_new(given, "layer", json_integer(layer));
            json_object_set_new(params, "steering_coeff", json_real(mistral ? RMU_TINY_MISTRAL_COEFF : RMU_TINY_COEFF));
            json_object_set_new(params, "alpha", json_real(mistral ? RMU_TINY_MISTRAL_ALPHA : RMU_TINY_ALPHA));
            json_object_set_new(params, "lr", json_real(RMU_TINY_LR));
            json_object_set_new(params, "module", json_string(RMU_TINY_MODULE));
            act = tiny_layer;
            rule = mistral ? "tiny family, Mistral: layer 3 (an index of the model, not scaled with depth)"
                 : tiny_layer == RMU_TINY_LAYER ? "tiny family: layer 6 (an index of the model, not scaled with depth)"
                                                : "tiny family: the last layer (the model has 6 or fewer layers)";
            json_object_set_new(params, "preset",
                                json_string(mistral ? "tiny family (hidden size <= 128), Mistral: layer 3, down_proj, "
                                                      "steering_coeff 300, alpha 30, lr 1e-2 (results epoch 8; "
                                                      "grids/rmu-candidate-seeds.json, grids/rmu-cloze-tune.json)"
                                                    : "tiny family (hidden size <= 128): layer 6, down_proj, "
                                                      "steering_coeff 1200, alpha 80, lr 1e-2 (results epoch 9; "
                                                      "tuned on the cloze rows, grids/rmu-cloze-tune.json)"));
        } else {
            json_object_set_new(params, "preset", json_string(mistral ? "Mistral: layer 6, down_proj (upstream)"
                                                                      : "the paper's Llama-3-8B values"));
        }
    } else {
        rule = "use_preset false: the layer is an index of this model";
        json_object_set_new(params, "preset", json_string("none"));
    }
    if (act < 0 || act >= L) {
        json_decref(given);
        return err_set(err, CIS_EINVAL, "params.layer: %d is outside this model's layers 0..%d", act, L - 1);
    }
    json_object_set_new(params, "act_layer", json_integer(act));
    json_t *ul = json_array();
    for (int l = act - 2 < 0 ? 0 : act - 2; l <= act; l++) json_array_append_new(ul, json_integer(l));
    json_object_set_new(params, "update_layers", ul);
    json_object_set_new(params, "layer_rule", json_string(rule));
    if (json_object_size(given)) json_object_set_new(params, "given", given);
    else json_decref(given);
    json_t *ml = json_object();
    int maxpos = cfg->max_position_embeddings;
    json_object_set_new(ml, "bio", json_integer(RMU_MAXLEN_BIO < maxpos ? RMU_MAXLEN_BIO : maxpos));
    json_object_set_new(ml, "cyber", json_integer(RMU_MAXLEN_CYBER < maxpos ? RMU_MAXLEN_CYBER : maxpos));
    json_object_set_new(ml, "retain", json_integer(RMU_MAXLEN_RETAIN < maxpos ? RMU_MAXLEN_RETAIN : maxpos));
    json_object_set_new(params, "max_len", ml);
    return 0;
}

static void cb_progress(void *arg, double f) { interv_progress(arg, f); }
static bool cb_stop(void *arg) { return interv_should_stop(arg); }

int rmu_apply(interv_ctx *c, cis_err *err) {
    const llama_config *cfg = llama_model_config(c->model);
    json_t *ml = interv_param_get(c, "max_len");
    json_t *ul = interv_param_get(c, "update_layers");
    CIS_ASSERT(ml && ul && json_array_size(ul) > 0); /* the preset always runs */
    int B = (int)interv_param_int(c, "batch_size");
    bool pad = interv_param_bool(c, "pad_in_loss");
    int len[3] = {(int)json_integer_value(json_object_get(ml, "bio")), (int)json_integer_value(json_object_get(ml, "cyber")),
                  (int)json_integer_value(json_object_get(ml, "retain"))};
    text_docs docs[3] = {{0}};
    unl_batches bat[3] = {{0}};
    llama_model *frozen = NULL;
    rmu_result res = {0};
    int rc = -1;
    interv_phase_begin(c->record, "data");
    for (int t = 0; t < UNL_N_TOPICS; t++)
        if (unl_load_forget(c->data_dir, t, 0, &docs[t], err)) goto out;
    if (unl_load_retain(c->data_dir, 0, &docs[2], err)) goto out;
    for (int k = 0; k < 3; k++)
        if (unl_make_batches(c->tok, &docs[k], 0, -1, B, len[k], false, false, pad, false, &bat[k], err)) goto out;
    interv_phase_begin(c->record, "frozen_copy");
    frozen = llama_model_new(cfg, llama_model_backend(c->model), err);
    if (!frozen || llama_model_copy_params(frozen, c->model, err)) goto out;
    interv_phase_begin(c->record, "unlearn");
    rmu_opts o = {
        .layer = (int)interv_param_int(c, "act_layer"),
        .layer_lo = (int)json_integer_value(json_array_get(ul, 0)),
        .layer_hi = (int)json_integer_value(json_array_get(ul, json_array_size(ul) - 1)),
        .module = interv_param_str(c, "module"),
        .lr = (float)interv_param_float(c, "lr"),
        .steps = (int)interv_param_int(c, "max_batches"),
        .seed = c->seed,
        .pad_in_loss = pad,
        .stop = cb_stop, .progress = cb_progress, .cb_arg = c,
    };
    for (int t = 0; t < UNL_N_TOPICS; t++) {
        o.coeff[t] = (float)interv_param_float(c, "steering_coeff");
        o.alpha[t] = (float)interv_param_float(c, "alpha");
    }
    int st = rmu_run(c->model, frozen, &o, bat, &bat[2], &res, err);
    interv_phase_end(c->record);
    if (st < 0) goto out;
    if (st > 0) { rc = interv_stopped(c, err); goto out; }
    json_t *docs_j = json_object(), *batches_j = json_object(), *tok_j = json_object(), *trunc_j = json_object();
    const char *names[3] = {"bio", "cyber", "retain"};
    for (int k = 0; k < 3; k++) {
        json_object_set_new(docs_j, names[k], json_integer(docs[k].n));
        json_object_set_new(batches_j, names[k], json_integer(bat[k].n));
        json_object_set_new(tok_j, names[k], json_integer(bat[k].tokens));
        json_object_set_new(trunc_j, names[k], json_integer(bat[k].truncated));
    }
    interv_record_set(c->record, "documents", docs_j);
    interv_record_set(c->record, "batches", batches_j);
    interv_record_set(c->record, "tokens", tok_j);
    interv_record_set(c->record, "truncated", trunc_j);
    interv_record_set_int(c->record, "steps", res.steps);
    /* how often each corpus was cycled through: > 1 only when a corpus has fewer batches than the
     * steps need (the synthetic world's 240 documents per topic; not the real WMDP corpora) */
    json_t *passes = json_object();
    int per_topic = (res.steps + 1) / 2;
    json_object_set_new(passes, "bio", json_real((double)per_topic / bat[0].n));
    json_object_set_new(passes, "cyber", json_real((double)(res.steps / 2) / bat[1].n));
    json_object_set_new(passes, "retain", json_real((double)per_topic / bat[2].n));
    interv_record_set(c->record, "passes", passes);
    /* the frozen prefix (rmu_run): layers 0..layers-1 run once per batch and step, not per forward */
    json_t *px = json_object();
    json_object_set_new(px, "layers", json_integer(res.prefix_layers));
    json_object_set_new(px, "computed", json_integer(res.prefix_computed));
    json_object_set_new(px, "reused", json_integer(res.prefix_reused));
    json_object_set_new(px, "frozen_reused", json_integer(res.frozen_reused));
    interv_record_set(c->record, "prefix", px);
    interv_record_set_int(c->record, "n_updated", res.n_updated);
    interv_record_set_int(c->record, "numel_updated", res.numel_updated);
    if (res.steps > 0) {
        interv_record_set_num(c->record, "forget_loss_first", res.forget_loss[0]);
        interv_record_set_num(c->record, "retain_loss_first", res.retain_loss[0]);
        int k0 = res.steps >= 10 ? res.steps - 10 : 0;
        double fl = 0, rl = 0;
        for (int k = k0; k < res.steps; k++) { fl += res.forget_loss[k]; rl += res.retain_loss[k]; }
        interv_record_set_num(c->record, "forget_loss_last10", fl / (res.steps - k0));
        interv_record_set_num(c->record, "retain_loss_last10", rl / (res.steps - k0));
    }
    interv_record_set_num(c->record, "steps_per_s", res.seconds > 0 ? res.steps / res.seconds : 0);
    rc = 0;
out:
    interv_phase_end(c->record);
    llama_model_free(&frozen);
    rmu_result_clear(&res);
    for (int k = 0; k < 3; k++) { unl_batches_clear(&bat[k]); text_docs_clear(&docs[k]); }
    return rc;
}
