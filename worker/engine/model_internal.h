/* model_internal.h - private to model*.c: the llama_model struct, per-layer parameter pointers,
 * saved activations and the shared layer forward used by training, generation and scoring. */
#ifndef CISWEEP_ENGINE_MODEL_INTERNAL_H
#define CISWEEP_ENGINE_MODEL_INTERNAL_H

#include "worker/engine/model.h"

/* parameter indices inside a layer, in HF enumeration order (algorithms.md §0.2) */
enum { LP_Q = 0, LP_K, LP_V, LP_O, LP_GATE, LP_UP, LP_DOWN, LP_LN_IN, LP_LN_POST, LP_COUNT };

/* activations of one decoder layer for N = B*T rows (pointers into the model's workspace) */
typedef struct layer_acts {
    float *rstd1;   /* [N] */
    float *a;       /* [N, D]     hook A */
    float *q;       /* [N, H*Dh]  after RoPE */
    float *k, *v;   /* [N, Hkv*Dh] (k after RoPE) */
    float *probs;   /* [B, H, T, T] attention probabilities (NULL in inference scratch) */
    float *ctx;     /* [N, H*Dh]  hook B */
    float *h2;      /* [N, D]     h + attn */
    float *rstd2;   /* [N] */
    float *bn;      /* [N, D]     hook C */
    float *g, *u;   /* [N, F] */
    float *dact;    /* [N, F]     hook D */
} layer_acts;

struct llama_model {
    llama_config cfg;
    backend *be;             /* the instance everything below lives on */
    bool own_be;             /* opened by llama_model_new(cfg, NULL): closed with the model */
    int L, D, F, H, Hkv, Dh, V, qdim, kvdim;   /* sizes copied from cfg */
    /* parameters */
    float *weights;          /* one block of backend memory, n_floats */
    int64_t n_floats;
    llama_param *params;     /* [n_params] */
    char **names;            /* owned name strings */
    int n_params;
    int *param_layer;        /* [n_params] layer index or -1 */
    int64_t *param_off;      /* [n_params] offset of the parameter in `weights` (floats) */
    float *embed, *norm_f, *head;      /* head == embed when tied */
    int i_embed, i_norm, i_head;       /* param indices (i_head == i_embed when tied) */
    float *(*lw)[LP_COUNT];  /* [L][LP_COUNT] layer weight pointers */
    /* training */
    bool *trainable;         /* [n_params] */
    float **grads;           /* [n_params] NULL when frozen */
    float *grad_block;
    bool full_bwd;           /* every visited layer's backward in full (llama_model_set_full_backward) */
    /* rope tables [P, Dh/2] */
    float *rope_cos, *rope_sin;
    int rope_P;
    /* workspace of the last forward (backend memory) */
    float *ws;
    size_t ws_cap;           /* floats */
    int32_t *iws;            /* integer workspace (host staging), iws_cap entries */
    int32_t *iws_dev;        /* its copy in backend memory (model_iws_upload) */
    size_t iws_cap;
    struct fwd_state *st;    /* saved state for backward */
};

/* workspace helpers: ws in backend memory; iws on the host, mirrored to backend memory by
 * model_iws_upload (its first n entries), which returns the backend pointer of iws[0]; the host
 * offset of an array inside iws is the same offset in the returned pointer (model_dev). */
float *model_ws_reserve(llama_model *m, size_t n_floats);
int32_t *model_iws_reserve(llama_model *m, size_t n);
int32_t *model_iws_upload(llama_model *m, size_t n);
static inline int32_t *model_dev(const llama_model *m, const int32_t *host_in_iws) {
    return host_in_iws ? m->iws_dev + (host_in_iws - m->iws) : NULL;
}

/* layer_forward: decoder layer l on rows [B*Tq] from x_in to x_out (may not alias), all pointers
 * in backend memory. pos [B*Tq] absolute positions; kv_len [B]. When kc/vc are NULL the keys are
 * this call's own k/v (Tk = Tq); otherwise row r's k/v are written into the cache [B, Tk, kvdim]
 * at row kv_rows[r] (= b*Tk + pos[r]) and attention reads the cache. hooks may be NULL. */
void model_layer_forward(llama_model *m, int l, layer_acts *A, const float *x_in, float *x_out, int B,
                         int Tq, const int32_t *pos, const int32_t *kv_len, float *kc, float *vc, int Tk,
                         const int32_t *kv_rows, const llama_hook *hooks, int n_hooks);
/* model_layer_forward_to: the same ops in the same order, stopping after hook point `last` (after
 * its hooks ran): nothing later is computed and x_out is not written (may be NULL unless last is
 * LLAMA_HOOK_E, which is model_layer_forward). */
void model_layer_forward_to(llama_model *m, int l, llama_hook_point last, layer_acts *A, const float *x_in,
                            float *x_out, int B, int Tq, const int32_t *pos, const int32_t *kv_len, float *kc,
                            float *vc, int Tk, const int32_t *kv_rows, const llama_hook *hooks, int n_hooks);
/* model_reserve_ws: grow the backend workspace for the ops and hook staging of a B x T forward
 * with Tk keys; -1 with CIS_ENOMEM when it cannot. */
int model_reserve_ws(llama_model *m, const llama_hook *hooks, int n_hooks, int B, int T, int Tk, cis_err *err);
/* model_invalidate: forget the saved forward (its workspace is about to be reused) */
void model_invalidate(llama_model *m);
/* apply_hooks: edits then read-out for every hook at (l, p) on act [B*T, width] (backend memory;
 * the hooks' value/read arrays are host memory, moved through the backend's workspace) */
void model_apply_hooks(llama_model *m, const llama_hook *hooks, int n_hooks, int l, llama_hook_point p, float *act,
                       int T, int width, int64_t N);
/* number of rows a hook touches, and the flat row index (b*T + t) of its i-th row */
static inline int64_t model_hook_nrows(const llama_hook *h, int64_t N) { return h->n_pos < 0 ? N : h->n_pos; }
static inline int64_t model_hook_row(const llama_hook *h, int T, int64_t i) {
    return h->n_pos < 0 ? i : (int64_t)h->pos_b[i] * T + h->pos_t[i];
}

#endif
