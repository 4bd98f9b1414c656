/* calib.h - calibration activations gathered layer by layer, the driver that Wanda, SparseGPT,
 * GPTQ and AWQ share. The calibration sequences are embedded once (llama_embed); then, for each
 * decoder layer l in turn, the caller reads the activations at the hook points it needs (the
 * inputs of q/k/v, o_proj, gate/up or down_proj: points A-D of model.h) through llama_layer_run,
 * may change layer l's weights, and moves the residual stream on to layer l+1 either through the
 * changed layer (the sequential methods: the next layer sees the compressed layer's output) or
 * with the output the layer gave before the change (AWQ: each layer's input comes from the
 * uncompressed previous layer). Running layers 0..L-1 this way gives exactly the activations of a
 * full llama_forward with READ hooks (tests/worker/interventions/test_calib.c).
 *
 * Memory: the stream and the pending layer output are [n_seq*T, D] floats each; activations are
 * handed to the caller one chunk of sequences at a time (only the real, unpadded token rows), so a
 * statistic (column norms, a Hessian X^T X) is accumulated without holding all of them. */
#ifndef CISWEEP_INTERVENTIONS_CALIB_H
#define CISWEEP_INTERVENTIONS_CALIB_H

#include <stdint.h>
#include "worker/interventions/intervention.h"

/* Token sequences, right-padded to T. */
typedef struct calib_data {
    int n_seq;            /* number of sequences */
    int T;                /* padded length (<= max_position_embeddings) */
    int32_t *ids;         /* [n_seq, T] token ids; positions t >= lens[s] are ignored */
    int32_t *lens;        /* [n_seq] real lengths in 1..T */
} calib_data;

/* calib_data_init: zeroed ids, every length T. calib_data_clear frees and zeroes. */
void calib_data_init(calib_data *d, int n_seq, int T);
void calib_data_clear(calib_data *d);

typedef struct calib_walk calib_walk;

/* calib_visit_fn: activations at `point` of `layer` for one chunk: rows [n_rows, width], the real
 * token rows of sequences first_seq.. in order (sequence-major, then position). Return 0, or -1
 * with err to abort the walk (calib_walk_collect returns -1 with that err). */
typedef int (*calib_visit_fn)(void *arg, int layer, llama_hook_point point, int first_seq, const float *rows,
                              int n_rows, int width, cis_err *err);

/* calib_walk_new: embed d's sequences into the stream at the input of layer 0. chunk: sequences per
 * llama_layer_run call (<= 0 = all at once). ctx (may be NULL): its stop request is checked between
 * chunks (CIS_ECANCEL). The model and d must outlive the walk. -1 with err (ids outside the
 * vocabulary, bad lengths, out of memory). Free with calib_walk_destroy. */
int calib_walk_new(llama_model *m, const calib_data *d, int chunk, const interv_ctx *ctx, calib_walk **out,
                   cis_err *err);
void calib_walk_destroy(calib_walk **w);

/* calib_walk_layer: the layer whose input the stream holds (0..L-1; L when every layer was passed). */
int calib_walk_layer(const calib_walk *w);
/* calib_walk_stream: the stream, [n_seq*T, D] (rows of padding positions included, unspecified). */
const float *calib_walk_stream(const calib_walk *w);

/* calib_walk_collect: run the current layer with its current weights over every chunk, READ hooks
 * at points[0..n_points-1] (distinct), and call visit for each chunk and point. The layer's output
 * of this run is kept for calib_walk_next(CALIB_KEEP_OUTPUT). May be called several times on one
 * layer (GPTQ's true-sequential order re-reads after changing q/k/v). n_points may be 0 (only the
 * output is computed). -1 with err when the layer is past the last, a point is invalid, a visit
 * failed, or on a stop request. */
int calib_walk_collect(calib_walk *w, const llama_hook_point *points, int n_points, calib_visit_fn visit, void *arg,
                       cis_err *err);

/* calib_walk_peek: calib_walk_collect for a caller that needs no output of this run: the layer is
 * run only through the last of points[0..n_points-1] (1..4 distinct points of A..D,
 * llama_layer_run_to), the activations handed to visit are the bytes a collect would give, and the
 * kept output is left as it was (set or unset). AWQ's 20 candidate passes per scaling pair read
 * point B alone and keep the first collect's output; GPTQ's o_proj, gate/up and down_proj passes
 * read B, C and D before calib_walk_next(CALIB_RERUN); Wanda and SparseGPT read A..D before it.
 * -1 with err as collect (peek refuses point E: that is the output, use collect). */
int calib_walk_peek(calib_walk *w, const llama_hook_point *points, int n_points, calib_visit_fn visit, void *arg,
                    cis_err *err);
/* calib_set_full_runs(true): every later calib_walk_peek of this process runs the whole layer, as
 * the collect it replaced did (its output goes to a scratch buffer: the kept output still stays as
 * it was), so that a test can prove the stop changes no result byte (test_compress_same.c). Off by
 * default; not for production use (process-wide, not thread-safe). */
void calib_set_full_runs(bool on);

/* calib_walk_collect_norm_in: the activations at point A (RMSNorm_in of the stream: the inputs of
 * q/k/v_proj) of the current layer for every chunk, handed to visit as calib_walk_collect does,
 * without running the layer: point A is the layer's first op (model_forward.c), so the backend's
 * rmsnorm_fwd on the stream with the layer's input_layernorm weight gives the same bytes (tested
 * against a hook read in test_calib.c). GPTQ's first true-sequential pass needs nothing else. The
 * kept output is unset (calib_walk_next then needs CALIB_RERUN). -1 with err as collect. */
int calib_walk_collect_norm_in(calib_walk *w, calib_visit_fn visit, void *arg, cis_err *err);

enum calib_next {
    CALIB_RERUN = 0,       /* run the layer again with its current (maybe changed) weights */
    CALIB_KEEP_OUTPUT = 1, /* use the output of the last calib_walk_collect on this layer */
};
/* calib_walk_next: move the stream to the input of the next layer (how: enum calib_next).
 * -1 with err when past the last layer, or KEEP_OUTPUT without a collect on this layer. */
int calib_walk_next(calib_walk *w, int how, cis_err *err);

#endif
