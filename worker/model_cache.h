/* model_cache.h - the worker's resident base model. The first job on a model loads its checkpoint
 * and tokenizer once (the base copy, never modified) and makes a working copy; every job starts
 * by resetting the working copy from the base by a memory copy (DESIGN.md: "reset model to the
 * resident base weights, a device copy, not a reload"). One model is resident at a time; a job on
 * another model evicts it. Used only from the job thread. */
#ifndef CISWEEP_WORKER_MODEL_CACHE_H
#define CISWEEP_WORKER_MODEL_CACHE_H

#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"

typedef struct model_slot {
    char *path;           /* model directory (config.json, *.safetensors, tokenizer.json) */
    llama_model *base;    /* as loaded; read-only */
    llama_model *work;    /* what a job modifies; reset from base at the start of each job */
    tokenizer *tok;
    double load_s;        /* seconds the load took (0 when it was resident) */
} model_slot;

/* model_cache_acquire: the slot for model_dir, loading it if it is not resident, with `work`
 * reset to the base weights. Returns NULL with err (naming the directory) when it cannot load. */
model_slot *model_cache_acquire(const char *model_dir, cis_err *err);
/* model_cache_release_all: free the resident model (daemon exit, tests). */
void model_cache_release_all(void);

#endif
