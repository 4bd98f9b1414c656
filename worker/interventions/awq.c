/* awq.c - AWQ (Lin et al. 2023) as composable-interventions runs it through AutoAWQ (algorithms.md
 * §5, fidelity.md §6): per decoder layer, on inputs that come from the UN-quantized previous layers
 * (calib.h CALIB_KEEP_OUTPUT), every linear quantized to `bits` (2-8) in groups of `group`
 * columns with a zero point (grid QGRID_AWQ), after
 *  1. the scale search of each scaling pair, each against the original layer (AutoAWQ's
 *     get_layers_for_scaling for Llama): input_layernorm -> {q,k,v} inspected through the whole
 *     attention (o_proj's output); v_proj -> o_proj only when v_proj and o_proj have the same shape
 *     (skipped under GQA, e.g. Llama-3 and tiny-llama3); post_attention_layernorm -> {gate,up}
 *     inspected through the whole MLP; up_proj -> down_proj. Duo scaling: for α = 0, 1/20, ...,
 *     19/20 (n_grid 20; 10 on the tiny family: 0, 1/10, ..., 9/10), s = max(x̄^α / (w̄^(1-α) +
 *     1e-4), 1e-4) normalised by sqrt(max s · min s), with x̄ the mean |x| per input channel and
 *     w̄ the mean over the group's rows of |W| / (group absmax + 1e-6); each linear set to
 *     Q(W·s)/s; loss = mean (y_orig - y)²; the first minimum wins;
 *  2. the scales folded in (the norm weight or prev_op's rows divided by s, the linears' columns
 *     multiplied), the recorded inputs divided by s;
 *  3. the clip search for every linear but q_proj and k_proj: tokens sub-sampled with stride
 *     max(1, n/512), per (row, group) the max |W| shrunk by (1 - i/20), i = 0..9, keeping the one
 *     with the smallest mean squared partial output error (strict <), then W clamped to ±max;
 *  4. round-to-nearest group quantization (backend ops quant_params / quant_dequant).
 * Calibration: pile-val lines shuffled with seed 42, the first n_samples (128; 16 on the tiny
 * family: compress.h) that encode to at most seqlen tokens, concatenated and cut into blocks of
 * seqlen (512, capped by the model).
 *
 * Record: wbits, group, zero_point, duo_scaling, per layer the chosen ratio and loss of every
 * scaling pair (and which were skipped), clip shrink counts, calib_*; phases calibrate, statistics
 * (the collection passes), solve (scale and clip search), write_back (fold, quantize), record (the
 * integer codes, scales, zero points and the folded norms as the stage's record file, cmp_record.h). */
#include "worker/interventions/compress.h"
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/methods.h"
#include "worker/interventions/edit_common.h"

#include <float.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AWQ_GRID 20         /* the scale search's ratios (AutoAWQ n_grid); the clip search's shrink step 1/20 */
#define AWQ_TINY_GRID 10    /* the scale search on the tiny family (results epoch 8): ratios 0, 1/10, ..., 9/10 */
#define AWQ_CLIP_STEPS 10   /* max_shrink 0.5 * 20 */
#define AWQ_CLIP_TOKENS 512

/* the effective params: the group for this model, the calibration (128 pile-val lines, 16 on the tiny family, in blocks of
 * 512 tokens, capped by the model), and the searches' fixed settings, recorded */
int awq_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    if (cmp_group_preset(cfg, params, err) || cmp_calib_preset(cfg, params, 512, CMP_TINY_N_SAMPLES_AWQ, err)) return -1;
    json_object_set_new(params, "zero_point", json_true());
    json_object_set_new(params, "duo_scaling", json_true());
    json_object_set_new(params, "n_grid", json_integer(AWQ_GRID));
    /* the tiny family searches every other ratio (docs/compression.md "AWQ's scale grid at 10 points") */
    edit_tiny_override(cfg, params, "n_grid", AWQ_GRID, AWQ_TINY_GRID);
    json_object_set_new(params, "max_shrink", json_real(0.5));
    json_object_set_new(params, "clip_tokens", json_integer(AWQ_CLIP_TOKENS));
    return 0;
}

typedef struct awq_state {
    interv_ctx *c;
    llama_model *m;
    backend *be;
    int D, F, HD, n_tok, bits, group;
    float *X[4];            /* host [n_tok, width] inputs at A, B, C, D */
    float *y_ref;           /* host [n_tok, D]: the inspected module's original output */
    float *dY, *dX, *dT;    /* backend scratch: [n_tok, max width] x3 */
    double loss_acc;        /* qkv search: Σ (y - y_ref)² over chunks */
    float *Wo;              /* backend: o_proj weight (the qkv search projects B through it) */
} awq_state;

/* rows of chunk `first_seq` start at first_seq*T: every block is full (no padding) */
typedef struct cx { awq_state *s; int T; bool search; } cx;
static int visit_store(void *arg, int layer, llama_hook_point point, int first_seq, const float *rows, int n_rows,
                       int width, cis_err *err) {
    cx *x = arg;
    memcpy(x->s->X[point] + (size_t)first_seq * x->T * width, rows, (size_t)n_rows * width * sizeof(float));
    return 0;
}
/* qkv search: the attention context B of this chunk through o_proj, compared with y_ref */
static int visit_attn(void *arg, int layer, llama_hook_point point, int first_seq, const float *rows, int n_rows,
                      int width, cis_err *err) {
    cx *x = arg;
    awq_state *s = x->s;
    backend *be = s->be;
    backend_upload(be, s->dX, rows, (size_t)n_rows * width * sizeof(float));
    BE(be, linear_fwd, s->dY, s->dX, s->Wo, TENSOR_F32, n_rows, width, s->D, false);
    backend_upload(be, s->dT, s->y_ref + (size_t)first_seq * x->T * s->D, (size_t)n_rows * s->D * sizeof(float));
    BE(be, axpy, s->dY, -1.0f, s->dT, (int64_t)n_rows * s->D);
    s->loss_acc += BE(be, sumsq, s->dY, (int64_t)n_rows * s->D);
    return 0;
}

/* the inspected module on X (backend) into y (backend): o_proj / down_proj alone, or the MLP */
static void module_out(awq_state *s, int l, int pair, const float *Xd, float *y) {
    llama_param *P = llama_model_params(s->m, &(int){0});
    backend *be = s->be;
    int N = s->n_tok;
    if (pair == 1) BE(be, linear_fwd, y, Xd, P[cmp_param(s->m, l, CMP_O)].data, TENSOR_F32, N, s->HD, s->D, false);
    else if (pair == 3) BE(be, linear_fwd, y, Xd, P[cmp_param(s->m, l, CMP_DOWN)].data, TENSOR_F32, N, s->F, s->D, false);
    else { /* MLP: down(silu(gate x) * up x) */
        BE(be, linear_fwd, s->dT, Xd, P[cmp_param(s->m, l, CMP_GATE)].data, TENSOR_F32, N, s->D, s->F, false);
        BE(be, linear_fwd, s->dX, Xd, P[cmp_param(s->m, l, CMP_UP)].data, TENSOR_F32, N, s->D, s->F, false);
        BE(be, swiglu_fwd, s->dT, s->dT, s->dX, (int64_t)N * s->F);
        BE(be, linear_fwd, y, s->dT, P[cmp_param(s->m, l, CMP_DOWN)].data, TENSOR_F32, N, s->F, s->D, false);
    }
}

/* W (backend, [rows,k]) <- Q(W0·diag(s)) / s, W0 host */
static int fake_quant_scaled(awq_state *s, float *W, const float *W0, int rows, int k, const float *sc, float *tmp,
                             float *qs, float *qz, cis_err *err) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < k; j++) tmp[(size_t)r * k + j] = W0[(size_t)r * k + j] * sc[j];
    backend_upload(s->be, W, tmp, (size_t)rows * k * sizeof(float));
    BE(s->be, quant_params, qs, qz, W, rows, k, k, s->group, s->bits, QGRID_AWQ);
    BE(s->be, quant_dequant, W, W, qs, qz, rows, k, s->group, s->bits);
    backend_download(s->be, tmp, W, (size_t)rows * k * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < k; j++) tmp[(size_t)r * k + j] /= sc[j];
    backend_upload(s->be, W, tmp, (size_t)rows * k * sizeof(float));
    return 0;
}

/* one group's AWQ grid on host values (the clip search) */
static void qdq_group_host(float *w, int n, int bits) {
    float mn = w[0], mx = w[0];
    for (int i = 1; i < n; i++) { if (w[i] < mn) mn = w[i]; if (w[i] > mx) mx = w[i]; }
    float maxq = (float)((1 << bits) - 1);
    float sc = fmaxf(mx - mn, 1e-5f) / maxq, z = fminf(fmaxf(-rintf(mn / sc), 0.0f), maxq);
    for (int i = 0; i < n; i++) w[i] = sc * (fminf(fmaxf(rintf(w[i] / sc) + z, 0.0f), maxq) - z);
}

/* clip search of W [rows,k] (host, in place) on inputs X [n_tok,k] (host, post-scale); returns the
 * number of (row, group) pairs whose max was shrunk. Per group of columns, the partial outputs of
 * the original weights and of the 10 clipped-and-quantized candidates of a batch of rows are one
 * GEMM on the backend (Y = X_g · [W; candidates]ᵀ over the sub-sampled tokens), the errors
 * mean_t (y_cand - y_orig)² on the host. -1 with err when backend memory is short. */
#define CLIP_ROWS 256
static int64_t clip_search(backend *be, const float *X, int n_tok, float *W, int rows, int k, int group, int bits,
                           cis_err *err) {
    int step = n_tok / AWQ_CLIP_TOKENS > 1 ? n_tok / AWQ_CLIP_TOKENS : 1;
    int ns = (n_tok + step - 1) / step, C = AWQ_CLIP_STEPS + 1;
    int rb_max = rows < CLIP_ROWS ? rows : CLIP_ROWS;
    size_t xb = (size_t)ns * group * sizeof(float), wb = (size_t)rb_max * C * group * sizeof(float),
           yb = (size_t)ns * rb_max * C * sizeof(float);
    float *xg = malloc(xb), *wc = malloc(wb), *y = malloc(yb), *mvs = malloc((size_t)rb_max * C * sizeof(float));
    float *dX = backend_alloc(be, xb, err), *dW = dX ? backend_alloc(be, wb, err) : NULL;
    float *dY = dW ? backend_alloc(be, yb, err) : NULL;
    int64_t shrunk = -1;
    if (!xg || !wc || !y || !mvs) err_set(err, CIS_ENOMEM, "out of memory (AWQ clip search)");
    if (!xg || !wc || !y || !mvs || !dY) goto out;
    shrunk = 0;
    for (int g0 = 0; g0 < k; g0 += group) {
        for (int t = 0; t < ns; t++) memcpy(xg + (size_t)t * group, X + (size_t)t * step * k + g0, (size_t)group * sizeof(float));
        backend_upload(be, dX, xg, xb);
        for (int r0 = 0; r0 < rows; r0 += rb_max) {
            int rb = rows - r0 < rb_max ? rows - r0 : rb_max;
            for (int r = 0; r < rb; r++) {
                const float *w = W + (size_t)(r0 + r) * k + g0;
                float m0 = 0;
                for (int j = 0; j < group; j++) m0 = fmaxf(m0, fabsf(w[j]));
                float *o = wc + (size_t)r * C * group;
                memcpy(o, w, (size_t)group * sizeof(float));
                for (int i = 0; i < AWQ_CLIP_STEPS; i++) {
                    float mv = m0 * (1.0f - (float)i / AWQ_GRID), *cur = o + (size_t)(i + 1) * group;
                    mvs[r * C + i] = mv;
                    for (int j = 0; j < group; j++) cur[j] = fminf(fmaxf(w[j], -mv), mv);
                    qdq_group_host(cur, group, bits);
                }
            }
            backend_upload(be, dW, wc, (size_t)rb * C * group * sizeof(float));
            BE(be, gemm, false, true, ns, rb * C, group, 1.0f, dX, group, dW, group, 0.0f, dY, rb * C);
            backend_download(be, y, dY, (size_t)ns * rb * C * sizeof(float));
            for (int r = 0; r < rb; r++) {
                double best = 1e9;
                int best_i = 0;
                for (int i = 0; i < AWQ_CLIP_STEPS; i++) {
                    double e = 0;
                    for (int t = 0; t < ns; t++) {
                        const float *yt = y + (size_t)t * rb * C + (size_t)r * C;
                        double dlt = (double)yt[1 + i] - yt[0];
                        e += dlt * dlt;
                    }
                    e /= ns;
                    if (e < best) { best = e; best_i = i; }
                }
                if (best_i > 0) shrunk++;
                float bm = mvs[r * C + best_i], *w = W + (size_t)(r0 + r) * k + g0;
                for (int j = 0; j < group; j++) w[j] = fminf(fmaxf(w[j], -bm), bm);
            }
        }
    }
out:
    free(xg); free(wc); free(y); free(mvs);
    backend_free(be, dX); backend_free(be, dW); backend_free(be, dY);
    return shrunk;
}

int awq_fold(llama_model *m, int l, int pair, const float *sv, cis_err *err) {
    static const int LIN[4][3] = {{CMP_Q, CMP_K, CMP_V}, {CMP_O, -1, -1}, {CMP_GATE, CMP_UP, -1}, {CMP_DOWN, -1, -1}};
    static const llama_hook_point PT[4] = {LLAMA_HOOK_A, LLAMA_HOOK_B, LLAMA_HOOK_C, LLAMA_HOOK_D};
    static const char *NORMS[2] = {"input_layernorm", "post_attention_layernorm"};
    int np = 0;
    llama_param *P = llama_model_params(m, &np);
    int k = llama_hook_width(m, PT[pair]);
    float *buf = NULL;
    int rc = -1;
    if (pair == 0 || pair == 2) {
        char nm[96];
        snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, NORMS[pair / 2]);
        int ni = llama_model_find(m, nm);
        CIS_ASSERT(ni >= 0);
        if (!(buf = malloc((size_t)k * sizeof(float)))) goto oom;
        if (llama_model_param_get(m, ni, buf, err)) goto out;
        for (int j = 0; j < k; j++) buf[j] /= sv[j];
        if (llama_model_param_set(m, ni, buf, err)) goto out;
    } else { /* the prev op's last k output rows / s: v_proj (pair 1), up_proj (pair 3) */
        int pi = cmp_param(m, l, pair == 1 ? CMP_V : CMP_UP), rows = (int)P[pi].shape[0], cols = (int)P[pi].shape[1];
        if (rows < k) return err_set(err, CIS_EINVAL, "AWQ fold: prev op has %d rows, fewer than %d scales", rows, k);
        if (!(buf = malloc((size_t)rows * cols * sizeof(float)))) goto oom;
        if (llama_model_param_get(m, pi, buf, err)) goto out;
        for (int r = rows - k; r < rows; r++)
            for (int j = 0; j < cols; j++) buf[(size_t)r * cols + j] /= sv[r - (rows - k)];
        if (llama_model_param_set(m, pi, buf, err)) goto out;
    }
    for (int q = 0; q < 3 && LIN[pair][q] >= 0; q++) {
        int pi = cmp_param(m, l, LIN[pair][q]), rows = (int)P[pi].shape[0];
        free(buf);
        if (!(buf = malloc((size_t)rows * k * sizeof(float)))) goto oom;
        if (llama_model_param_get(m, pi, buf, err)) goto out;
        for (int r = 0; r < rows; r++) for (int j = 0; j < k; j++) buf[(size_t)r * k + j] *= sv[j];
        if (llama_model_param_set(m, pi, buf, err)) goto out;
    }
    rc = 0;
    goto out;
oom:
    err_set(err, CIS_ENOMEM, "out of memory (AWQ fold)");
out:
    free(buf);
    return rc;
}

int awq_apply(interv_ctx *c, cis_err *err) {
    llama_model *m = c->model;
    const llama_config *lc = llama_model_config(m);
    backend *be = llama_model_backend(m);
    long long bits = interv_param_int(c, "bits");
    json_t *ngv = interv_param_get(c, "n_grid");
    const int n_grid = ngv && json_is_integer(ngv) ? (int)json_integer_value(ngv) : AWQ_GRID;
    if (n_grid < 1 || n_grid > 1000) return err_set(err, CIS_EINVAL, "params.n_grid: %d is outside 1..1000", n_grid);
    json_t *gv = interv_param_get(c, "group");
    int group = (int)(gv ? json_integer_value(gv) : interv_param_int(c, "group_size"));
    if (bits < 2 || bits > 8) return err_set(err, CIS_EINVAL, "params.bits: %lld is outside 2..8", bits);
    if (cmp_require_ops(c->model, err)) return -1;
    awq_state s = {.c = c, .m = m, .be = be, .D = lc->hidden_size, .F = lc->intermediate_size,
                   .HD = lc->num_attention_heads * lc->head_dim, .bits = (int)bits, .group = group};
    int widths[3] = {s.D, s.HD, s.F};
    for (int i = 0; i < 3; i++)
        if (group < 1 || widths[i] % group)
            return err_set(err, CIS_EINVAL, "params.group_size: the effective group %d does not divide the linear input "
                           "width %d (AutoAWQ needs whole groups)", group, widths[i]);
    int L = lc->num_hidden_layers, np = 0;
    llama_param *P = llama_model_params(m, &np);
    interv_record *rec = c->record;
    bool gqa_skip = !(lc->num_key_value_heads * lc->head_dim == s.D && s.HD == s.D);
    calib_data d = {0};
    calib_walk *w = NULL;
    int rc = -1;
    int maxw = s.F > s.D ? s.F : s.D;
    if (s.HD > maxw) maxw = s.HD;
    float *W0[CMP_N_LINEARS] = {0}, *tmp = NULL, *qs = NULL, *qz = NULL, *y0 = NULL, *Xd = NULL, *yd = NULL;
    float *xm = NULL, *wm = NULL, *sc = NULL;
    json_t *layers_rec = json_array();
    int64_t shrunk_total = 0;

    interv_phase_begin(rec, "calibrate");
    long long Tp = cmp_param_int(c, "seqlen", 512);
    int T = (int)(Tp > 0 && Tp < lc->max_position_embeddings ? Tp : lc->max_position_embeddings);
    if (cmp_calib_pile(c, (int)cmp_param_int(c, "n_samples", 128), T, 42, &d, err)) goto done;
    if (calib_walk_new(m, &d, 8, c, &w, err)) goto done;
    interv_phase_end(rec);
    s.n_tok = d.n_seq * d.T;
    size_t bigw = (size_t)maxw * maxw, nt = (size_t)s.n_tok;
    for (int i = 0; i < 4; i++) if (!(s.X[i] = malloc(nt * (i == 3 ? s.F : i == 1 ? s.HD : s.D) * sizeof(float)))) goto oom;
    if (!(s.y_ref = malloc(nt * s.D * sizeof(float))) || !(tmp = malloc(bigw * sizeof(float))) ||
        !(xm = malloc(maxw * sizeof(float))) || !(wm = malloc(maxw * sizeof(float))) ||
        !(sc = malloc(maxw * sizeof(float))))
        goto oom;
    for (int i = 0; i < CMP_N_LINEARS; i++) if (!(W0[i] = malloc(bigw * sizeof(float)))) goto oom;
    if (!(s.dY = backend_alloc(be, nt * maxw * sizeof(float), err)) || !(s.dX = backend_alloc(be, nt * maxw * sizeof(float), err)) ||
        !(s.dT = backend_alloc(be, nt * maxw * sizeof(float), err)) || !(Xd = backend_alloc(be, nt * maxw * sizeof(float), err)) ||
        !(yd = backend_alloc(be, nt * s.D * sizeof(float), err)) || !(y0 = backend_alloc(be, nt * s.D * sizeof(float), err)) ||
        !(qs = backend_alloc(be, bigw * sizeof(float), err)) || !(qz = backend_alloc(be, bigw * sizeof(float), err)))
        goto done;

    for (int l = 0; l < L; l++) {
        cx x = {.s = &s, .T = d.T};
        const llama_hook_point pts[4] = {LLAMA_HOOK_A, LLAMA_HOOK_B, LLAMA_HOOK_C, LLAMA_HOOK_D};
        interv_phase_begin(rec, "statistics");
        if (calib_walk_collect(w, pts, 4, visit_store, &x, err)) goto done;
        interv_phase_begin(rec, "solve");
        for (int i = 0; i < CMP_N_LINEARS; i++)
            if (llama_model_param_get(m, cmp_param(m, l, i), W0[i], err)) goto done;
        json_t *lrec = json_object();
        /* the four scaling pairs: linears, their input point, prev op */
        static const int PAIRS[4][3] = {{CMP_Q, CMP_K, CMP_V}, {CMP_O, -1, -1}, {CMP_GATE, CMP_UP, -1}, {CMP_DOWN, -1, -1}};
        static const char *PAIR_NAMES[4] = {"qkv", "v->o", "gate_up", "up->down"};
        static const llama_hook_point PAIR_PT[4] = {LLAMA_HOOK_A, LLAMA_HOOK_B, LLAMA_HOOK_C, LLAMA_HOOK_D};
        float *scales[4] = {0};
        float *scale_buf = malloc((size_t)4 * maxw * sizeof(float));
        if (!scale_buf) goto oom;
        for (int pr = 0; pr < 4; pr++) {
            if (pr == 1 && gqa_skip) { json_object_set_new(lrec, PAIR_NAMES[pr], json_string("skipped: v_proj and o_proj differ in shape (GQA)")); continue; }
            if (interv_should_stop(c)) { free(scale_buf); rc = interv_stopped(c, err); goto done; }
            int k = llama_hook_width(m, PAIR_PT[pr]);
            const float *X = s.X[PAIR_PT[pr]];
            /* x̄: mean |x| per channel; w̄: mean over the pair's rows of |W|/(group absmax + 1e-6) */
            for (int j = 0; j < k; j++) xm[j] = 0;
            for (size_t t = 0; t < nt; t++) for (int j = 0; j < k; j++) xm[j] += fabsf(X[t * k + j]);
            for (int j = 0; j < k; j++) xm[j] /= (float)nt;
            int tot_rows = 0;
            for (int j = 0; j < k; j++) wm[j] = 0;
            for (int q = 0; q < 3 && PAIRS[pr][q] >= 0; q++) {
                int which = PAIRS[pr][q], rows = (int)P[cmp_param(m, l, which)].shape[0];
                for (int r = 0; r < rows; r++)
                    for (int g0 = 0; g0 < k; g0 += group) {
                        float mx = 0;
                        for (int j = 0; j < group; j++) mx = fmaxf(mx, fabsf(W0[which][(size_t)r * k + g0 + j]));
                        for (int j = 0; j < group; j++) wm[g0 + j] += fabsf(W0[which][(size_t)r * k + g0 + j]) / (mx + 1e-6f);
                    }
                tot_rows += rows;
            }
            for (int j = 0; j < k; j++) wm[j] /= (float)tot_rows;
            /* the reference output */
            if (pr == 0) {
                /* o_proj(B) of the original layer */
                backend_upload(be, Xd, s.X[LLAMA_HOOK_B], nt * s.HD * sizeof(float));
                BE(be, linear_fwd, y0, Xd, P[cmp_param(m, l, CMP_O)].data, TENSOR_F32, s.n_tok, s.HD, s.D, false);
                backend_download(be, s.y_ref, y0, nt * s.D * sizeof(float));
                s.Wo = P[cmp_param(m, l, CMP_O)].data;
            } else {
                backend_upload(be, Xd, X, nt * k * sizeof(float));
                module_out(&s, l, pr, Xd, y0);
            }
            double best_loss = DBL_MAX;
            int best_i = -1;
            json_t *losses = json_array();
            for (int gi = 0; gi < n_grid; gi++) {
                float ratio = (float)gi / n_grid, mx = -FLT_MAX, mn = FLT_MAX;
                for (int j = 0; j < k; j++) {
                    float v = powf(xm[j], ratio) / (powf(wm[j], 1.0f - ratio) + 1e-4f);
                    sc[j] = fmaxf(v, 1e-4f);
                    mx = fmaxf(mx, sc[j]); mn = fminf(mn, sc[j]);
                }
                float norm = sqrtf(mx * mn);
                for (int j = 0; j < k; j++) sc[j] /= norm;
                for (int q = 0; q < 3 && PAIRS[pr][q] >= 0; q++) {
                    int which = PAIRS[pr][q], pi = cmp_param(m, l, which);
                    fake_quant_scaled(&s, P[pi].data, W0[which], (int)P[pi].shape[0], k, sc, tmp, qs, qz, err);
                }
                double loss;
                if (pr == 0) {
                    s.loss_acc = 0;
                    llama_hook_point pb = LLAMA_HOOK_B;
                    interv_phase_begin(rec, "statistics");
                    /* through point B only: the kept output stays the original layer's */
                    int crc = calib_walk_peek(w, &pb, 1, visit_attn, &x, err);
                    interv_phase_begin(rec, "solve");
                    if (crc) { json_decref(losses); free(scale_buf); goto done; }
                    loss = s.loss_acc / ((double)nt * s.D);
                } else {
                    module_out(&s, l, pr, Xd, yd);
                    BE(be, axpy, yd, -1.0f, y0, (int64_t)nt * s.D);
                    loss = BE(be, sumsq, yd, (int64_t)nt * s.D) / ((double)nt * s.D);
                }
                json_array_append_new(losses, json_real(loss));
                if (loss < best_loss) { best_loss = loss; best_i = gi; memcpy(scale_buf + (size_t)pr * maxw, sc, k * sizeof(float)); }
                for (int q = 0; q < 3 && PAIRS[pr][q] >= 0; q++) { /* restore */
                    int which = PAIRS[pr][q];
                    if (llama_model_param_set(m, cmp_param(m, l, which), W0[which], err)) { json_decref(losses); free(scale_buf); goto done; }
                }
            }
            if (best_i < 0) { json_decref(losses); free(scale_buf); err_set(err, CIS_EINVAL, "layer %d %s: every scale ratio gave a non-finite loss", l, PAIR_NAMES[pr]); goto done; }
            scales[pr] = scale_buf + (size_t)pr * maxw;
            json_t *o = json_object();
            json_object_set_new(o, "ratio", json_real((double)best_i / n_grid));
            json_object_set_new(o, "loss", json_real(best_loss));
            json_object_set_new(o, "losses", losses);
            json_object_set_new(lrec, PAIR_NAMES[pr], o);
        }
        interv_phase_begin(rec, "write_back");
        /* fold the scales into the model (prev op / s, the linears' columns * s), read the scaled
         * weights back, and divide the recorded inputs by s */
        for (int pr = 0; pr < 4; pr++) {
            if (!scales[pr]) continue;
            if (awq_fold(m, l, pr, scales[pr], err)) { free(scale_buf); goto done; }
            int k = llama_hook_width(m, PAIR_PT[pr]);
            float *X = s.X[PAIR_PT[pr]];
            for (size_t t = 0; t < nt; t++) for (int j = 0; j < k; j++) X[t * k + j] /= scales[pr][j];
        }
        for (int i = 0; i < CMP_N_LINEARS; i++)
            if (llama_model_param_get(m, cmp_param(m, l, i), W0[i], err)) { free(scale_buf); goto done; }
        free(scale_buf);
        /* clip (all but q_proj, k_proj), then quantize every linear */
        interv_phase_begin(rec, "solve");
        int64_t shrunk = 0;
        for (int which = 0; which < CMP_N_LINEARS; which++) {
            if (which == CMP_Q || which == CMP_K) continue;
            int pi = cmp_param(m, l, which);
            int64_t sh = clip_search(be, s.X[cmp_linears[which].point], s.n_tok, W0[which], (int)P[pi].shape[0],
                                     (int)P[pi].shape[1], group, s.bits, err);
            if (sh < 0) goto done;
            shrunk += sh;
        }
        interv_phase_begin(rec, "write_back");
        for (int which = 0; which < CMP_N_LINEARS; which++) {
            int pi = cmp_param(m, l, which), rows = (int)P[pi].shape[0], k = (int)P[pi].shape[1];
            if (llama_model_param_set(m, pi, W0[which], err)) goto done;
            BE(be, quant_params, qs, qz, P[pi].data, rows, k, k, group, s.bits, QGRID_AWQ);
            BE(be, quant_dequant, P[pi].data, P[pi].data, qs, qz, rows, k, group, s.bits);
            interv_phase_begin(rec, "record"); /* the integer codes and the grid, for the record file */
            if (!rec->cmp) rec->cmp = cmprec_new(CMPREC_QUANT, "awq", s.bits, group, false, false);
            if (cmprec_add_quant(rec->cmp, m, pi, qs, qz, NULL, err)) goto done;
            interv_phase_begin(rec, "write_back");
        }
        json_object_set_new(lrec, "clip_shrunk", json_integer(shrunk));
        shrunk_total += shrunk;
        json_array_append_new(layers_rec, lrec);
        if (calib_walk_next(w, CALIB_KEEP_OUTPUT, err)) goto done;
        interv_phase_end(rec);
        interv_progress(c, (l + 1.0) / L);
    }
    rc = 0;
    goto done;
oom:
    err_set(err, CIS_ENOMEM, "out of memory (AWQ buffers)");
done:
    interv_phase_end(rec);
    for (int i = 0; i < 4; i++) free(s.X[i]);
    for (int i = 0; i < CMP_N_LINEARS; i++) free(W0[i]);
    free(s.y_ref); free(tmp); free(xm); free(wm); free(sc);
    backend_free(be, s.dY); backend_free(be, s.dX); backend_free(be, s.dT); backend_free(be, Xd);
    backend_free(be, yd); backend_free(be, y0); backend_free(be, qs); backend_free(be, qz);
    calib_walk_destroy(&w);
    for (int l = 0; rc == 0 && l < L; l++) { /* the folded norms, verbatim, so the record re-applies whole */
        char name[96];
        interv_phase_begin(rec, "record");
        for (int nrm = 0; nrm < 2 && rc == 0; nrm++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, nrm ? "post_attention_layernorm" : "input_layernorm");
            int pi = llama_model_find(m, name);
            CIS_ASSERT(pi >= 0);
            rc = cmprec_add_raw(rec->cmp, m, pi, err);
        }
        interv_phase_end(rec);
    }
    if (rc == 0) {
        interv_record_set_int(rec, "wbits", bits);
        interv_record_set_int(rec, "group", group);
        interv_record_set(rec, "zero_point", json_true());
        interv_record_set(rec, "duo_scaling", json_true());
        interv_record_set(rec, "vo_scaled", json_boolean(!gqa_skip));
        interv_record_set_int(rec, "clip_shrunk", shrunk_total);
        interv_record_set_int(rec, "calib_blocks", d.n_seq);
        interv_record_set_int(rec, "calib_seqlen", d.T);
        interv_record_set_int(rec, "calib_seed", 42);
        interv_record_set_num(rec, "avg_bits", bits + 32.0 / group);
        interv_record_set(rec, "layers", layers_rec);
    } else {
        json_decref(layers_rec);
    }
    calib_data_clear(&d);
    return rc;
}
