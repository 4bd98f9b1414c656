/* memit_stats.h - MEMIT's second-moment statistics C_l = E[k kᵀ] of the mlp.down_proj inputs
 * (hook D, the MLP keys) of layer l over a text corpus, and their content-addressed cache.
 *
 * Corpus: DATA_DIR/corpus/pretrain.jsonl ({"text"} lines; the world's stand-in for the
 * reference's Wikipedia dump). The documents are shuffled with Python's random.seed(1) shuffle
 * (rng_py_permutation) and the first n_samples are used (all when fewer), each tokenised with BOS
 * and truncated to max_position_embeddings; every non-padding token's key counts once.
 * C = (1/N_tok) Σ k kᵀ: each chunk's Σ k kᵀ is one fp32 GEMM on the backend (fp32 accumulation, as
 * the reference), the chunks are summed in double, divided at the end and stored as fp32.
 *
 * Cache: one entry per (model, layer) in the shared artifact cache rooted at CACHE_DIR
 * (common/artifact_cache.h: CACHE_DIR/objects/<key[0:2]>/<key>), published atomically (a unique
 * temporary file, fsync, one link(2): workers sharing the directory, on a network filesystem too,
 * never read half a file, and of two that compute the same key at once one wins, the other keeps
 * its result in memory only). The coordinator's prerequisite job `memit_stats` (worker/prereq.c)
 * writes them before any MEMIT job of the sweep runs. key = sha256 of a descriptor holding the format version, the layer, n_samples, the
 * truncation length, the corpus file's sha256, and the sha256 of every parameter the layer's keys
 * depend on (the embedding and layers 0..l) in the BASE model (c->base; the working model when the
 * base is unknown).
 * Every job of a sweep that asks for the same layer on the same base model with the same settings
 * finds the file and does not recompute. File layout (little endian): "CISMOM2\0", int32 version
 * (1), int32 layer, int32 F, int32 pad, int64 n_tokens, int64 n_docs, then F*F fp32 (row-major,
 * symmetric). A file that does not match (size, magic, F, layer) is an error naming it. */
#ifndef CISWEEP_INTERVENTIONS_MEMIT_STATS_H
#define CISWEEP_INTERVENTIONS_MEMIT_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/intervention.h"

/* memit_stats_compute: C_l for the n layers of `layers` over the token sequences seqs[0..n_seq)
 * (each seq_lens[i] >= 1 tokens, at most max_position_embeddings), in one pass per chunk of
 * sequences through layers 0..max(layers). C[i] (caller-allocated, F*F floats) gets E[k kᵀ] of
 * layers[i]; *n_tokens the token count. stop (may be NULL) is polled between chunks: then -1 with
 * CIS_ECANCEL. -1 with err on an engine error. */
int memit_stats_compute(llama_model *m, int n_seq, const int32_t *const *seqs, const int *seq_lens,
                        const int *layers, int n, float **C, int64_t *n_tokens,
                        bool (*stop)(void *), void *stop_arg, cis_err *err);

#define MEMIT_STATS_MAX_LAYERS 64

/* What memit_stats_get did, for the stage record. */
typedef struct memit_stats_info {
    char key[65];          /* of the last layer asked for */
    int n_layers;          /* layers asked for (<= MEMIT_STATS_MAX_LAYERS) */
    int layers[MEMIT_STATS_MAX_LAYERS];           /* their indices */
    char layer_keys[MEMIT_STATS_MAX_LAYERS][65];  /* the cache key of each */
    int n_cached;          /* layers read from the cache */
    int n_computed;        /* layers computed now (and written, when a cache dir was given) */
    int64_t n_tokens;      /* tokens the statistics cover */
    int n_docs;            /* documents */
    double seconds;        /* computing (0 when every layer was cached) */
} memit_stats_info;

/* memit_stats_get: C for each layer of `layers` on c->base (the unmodified base model, so that a
 * MEMIT after a compressor uses the uncompressed statistics as upstream does) or, when the caller
 * does not know the base (c->base NULL: `cisweep apply` with MEMIT as its first stage, where the
 * model is still as loaded), on c->model as it is: from c->cache_dir when a file for its
 * key exists, otherwise computed over n_samples documents of the corpus (one pass for all the
 * missing layers) and published to the artifact cache (when c->cache_dir is set). C[i] is malloc'd F*F floats
 * (caller frees). -1 with err: the corpus file missing or malformed (CIS_EINVAL), a corrupt cache
 * file (CIS_EIO, naming it), a write failure (CIS_EIO), a stop (CIS_ECANCEL). */
int memit_stats_get(interv_ctx *c, const int *layers, int n, int n_samples, float **C, memit_stats_info *info,
                    cis_err *err);

/* memit_stats_key: the cache key of layer `layer` (see above) into key. */
int memit_stats_key(llama_model *m, const char *corpus_path, int layer, int n_samples, int max_len,
                    char key[65], cis_err *err);

#endif
