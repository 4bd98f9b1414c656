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
    const backend_ops *be;
    int L, D, F, H, Hkv, Dh, V, qdim, kvdim;   /* sizes copied from cfg */
    /* parameters */
    float *weights;          /* one block, n_floats */
    int64_t n_floats;
    llama_param *params;     /* [n_params] */
    char **names;            /* owned name strings */
    int n_params;
    int *param_layer;        /* [n_params] layer index or -1 */
    float *embed, *norm_f, *head;      /* head == embed when tied */
    int i_embed, i_norm, i_head;       /* param indices (i_head == i_embed when tied) */
    float *(*lw)[LP_COUNT];  /* [L][LP_COUNT] layer weight pointers */
    /* training */
    bool *trainable;         /* [n_params] */
    float **grads;           /* [n_params] NULL when frozen */
    float *grad_block;
    /* rope tables [P, Dh/2] */
    float *rope_cos, *rope_sin;
    int rope_P;
    /* workspace of the last forward */
    float *ws;
    size_t ws_cap;           /* floats */
    int32_t *iws;            /* integer workspace */
    size_t iws_cap;
    struct fwd_state *st;    /* saved state for backward */
};

/* workspace helpers */
float *model_ws_reserve(llama_model *m, size_t n_floats);
int32_t *model_iws_reserve(llama_model *m, size_t n);

/* layer_forward: decoder layer l on rows [B*Tq] from x_in to x_out (may not alias).
 * pos [B*Tq] absolute positions; kv_len [B]. When kc/vc are NULL the keys are this call's own k/v
 * (Tk = Tq); otherwise k/v rows are written into the cache [B, Tk, kvdim] at their positions and
 * attention reads the cache. hooks may be NULL. */
void model_layer_forward(llama_model *m, int l, layer_acts *A, const float *x_in, float *x_out, int B,
                         int Tq, const int32_t *pos, const int32_t *kv_len, float *kc, float *vc, int Tk,
                         const llama_hook *hooks, int n_hooks);
/* model_invalidate: forget the saved forward (its workspace is about to be reused) */
void model_invalidate(llama_model *m);
/* apply_hooks: edits then read-out for every hook at (l, p) on act [B*T, width] */
void model_apply_hooks(const llama_hook *hooks, int n_hooks, int l, llama_hook_point p, float *act,
                       int T, int width, int64_t N);
/* number of rows a hook touches, and the flat row index (b*T + t) of its i-th row */
static inline int64_t model_hook_nrows(const llama_hook *h, int64_t N) { return h->n_pos < 0 ? N : h->n_pos; }
static inline int64_t model_hook_row(const llama_hook *h, int T, int64_t i) {
    return h->n_pos < 0 ? i : (int64_t)h->pos_b[i] * T + h->pos_t[i];
}

#endif
