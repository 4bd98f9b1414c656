/* train_backend.c - the only place in worker/train/ that touches the backend interface: a model on
 * a device with a thread count (the model owns the instance), its thread count, the replicas of
 * the data-parallel loop (each on an instance of its own: one thread at a time per instance, and
 * no shared workspace), an optimizer over caller-owned tensors, and the three memory operations
 * the replicas need. Replicas live on the same device as the model, so one instance's ops can
 * address another's memory (host memory on cpu; one device's memory on cuda). */
#include "worker/train/train_internal.h"

#include <string.h>

int train_device_check(const char *device, cis_err *err) {
    if (!backend_device_ok(device ? device : "cpu", err)) { err_prefix(err, "--device"); return -1; }
    return 0;
}

llama_model *train_model_new(const char *device, int threads, const llama_config *cfg, cis_err *err) {
    if (train_device_check(device, err)) return NULL;
    backend *be = backend_open(device ? device : "cpu", &(backend_opts){.threads = threads}, err);
    if (!be) return NULL;
    llama_model *m = llama_model_new(cfg, be, err);
    if (!m) { backend_close(&be); return NULL; }
    llama_model_own_backend(m);  // closed with the model
    return m;
}

void train_model_free(llama_model **m) { llama_model_free(m); }

int train_model_threads(const llama_model *m) { return backend_threads(llama_model_backend(m)); }

void train_model_set_threads(llama_model *m, int threads) { backend_set_threads(llama_model_backend(m), threads); }

llama_model *train_replica_new(llama_model *m, cis_err *err) {
    llama_model *r = train_model_new(backend_name(llama_model_backend(m)), 1, llama_model_config(m), err);
    if (!r) return NULL;
    int np;
    llama_param *p = llama_model_params(m, &np);
    for (int i = 0; i < np; i++)
        if (llama_model_is_trainable(m, i) && llama_model_set_trainable(r, p[i].name, -1, -1, true, err) < 0) {
            train_model_free(&r);
            return NULL;
        }
    return r;
}

optim *train_optim_new_tensors(llama_model *m, const optim_config *cfg, const train_tensors *t, cis_err *err) {
    return optim_new(llama_model_backend(m), cfg, t->n, t->params, (const float *const *)t->grads, t->len, err);
}

void train_tensor_zero(llama_model *m, float *p, int64_t n) {
    backend_memset(llama_model_backend(m), p, 0, (size_t)n * sizeof *p);
}

void train_tensor_add(llama_model *m, float *dst, const float *src, int64_t n) {
    BE(llama_model_backend(m), axpy, dst, 1.0f, src, n);  // dst += 1·src: exactly dst + src
}

void train_tensor_copy(llama_model *m, float *dst, const float *src, int64_t n) {
    backend_copy(llama_model_backend(m), dst, src, (size_t)n * sizeof *dst);
}
