/* model_cache.h - the worker's resident base models, one cache per device. A cache owns a backend
 * instance opened for its device ("cpu", "cuda:0"); the first job on a model loads its checkpoint
 * and tokenizer once into that backend's memory (the base copy, never modified) and makes a
 * working copy beside it; every job starts by resetting the working copy from the base by a copy
 * within the backend (DESIGN.md: "reset model to the resident base weights, a device copy, not a
 * reload"). One model is resident per cache; a job on another model evicts it. Used only from
 * the job thread, except model_cache_mem_info (any thread). */
#ifndef CISWEEP_WORKER_MODEL_CACHE_H
#define CISWEEP_WORKER_MODEL_CACHE_H

#include <stdint.h>

#include "common/util.h"
#include "worker/engine/backend.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"

typedef struct model_slot {
    char *path;           /* model directory (config.json, *.safetensors, tokenizer.json) */
    llama_model *base;    /* as loaded; read-only */
    llama_model *work;    /* what a job modifies; reset from base at the start of each job */
    tokenizer *tok;
    double load_s;        /* seconds the load took (0 when it was resident) */
} model_slot;

typedef struct model_cache model_cache;

/* model_cache_open: a cache on `device` (backend_open's strings) with `threads` for a cpu
 * device (<= 0 = all cores). NULL with err naming the device when it cannot be opened. */
model_cache *model_cache_open(const char *device, int threads, cis_err *err);
/* model_cache_close: frees the resident model and the backend; NULL-safe; sets *c = NULL. */
void model_cache_close(model_cache **c);
backend *model_cache_backend(model_cache *c);
/* model_cache_acquire: the slot for model_dir, loading it if it is not resident, with `work`
 * reset to the base weights. NULL with err (naming the directory) when it cannot load; err->code
 * is CIS_ENOMEM when the device's memory was short (the job may succeed elsewhere: retryable). */
model_slot *model_cache_acquire(model_cache *c, const char *model_dir, cis_err *err);
/* model_cache_mem_info: free and total bytes of the cache's device memory (host RAM for cpu). */
int model_cache_mem_info(model_cache *c, uint64_t *free_bytes, uint64_t *total_bytes, cis_err *err);

#endif
