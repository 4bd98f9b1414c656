/* train_backend.c - the only place in worker/train/ that touches the backend interface: a model on
 * a device with a thread count, its thread count, the replicas of the data-parallel loop and an
 * optimizer over caller-owned tensors. Each spot is marked BACKEND-API (the engine's backend is
 * becoming an instance: backend_open / backend_set_threads / backend_threads / backend_close). */
#include "worker/train/train_internal.h"

#include <string.h>

int train_device_check(const char *device, cis_err *err) {
    /* BACKEND-API: whether a backend of that name exists in this build */
    if (!backend_get(device ? device : "cpu"))
        return err_set(err, CIS_EINVAL, "--device: unknown or unavailable device \"%s\" (available: cpu)", device);
    return 0;
}

llama_model *train_model_new(const char *device, int threads, const llama_config *cfg, cis_err *err) {
    /* BACKEND-API: open a backend instance for device with `threads` threads; the model owns it */
    if (train_device_check(device, err)) return NULL;
    const backend_ops *be = backend_get(device ? device : "cpu");
    be->set_threads(threads);
    return llama_model_new(cfg, be, err);
}

void train_model_free(llama_model **m) {
    /* BACKEND-API: also close the backend instance train_model_new opened for the model */
    llama_model_free(m);
}

int train_model_threads(const llama_model *m) {
    /* BACKEND-API */
    return llama_model_backend(m)->get_threads();
}

void train_model_set_threads(llama_model *m, int threads) {
    /* BACKEND-API */
    llama_model_backend(m)->set_threads(threads);
}

llama_model *train_replica_new(llama_model *m, cis_err *err) {
    /* BACKEND-API: the replica gets a backend instance of its own (same device, 1 thread), so the
     * replicas' threads never share a backend's workspace */
    llama_model *r = train_model_new(llama_model_backend(m)->name, 1, llama_model_config(m), err);
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
    /* BACKEND-API: the optimizer runs on the model's backend */
    return optim_new(llama_model_backend(m), cfg, t->n, t->params, (const float *const *)t->grads, t->len, err);
}

void train_tensor_zero(llama_model *m, float *p, int64_t n) {
    /* BACKEND-API: a memset of backend memory */
    (void)m;
    memset(p, 0, (size_t)n * sizeof *p);
}

void train_tensor_add(llama_model *m, float *dst, const float *src, int64_t n) {
    /* BACKEND-API: an add (or axpy with 1) of backend memory; element order does not matter */
    (void)m;
    for (int64_t k = 0; k < n; k++) dst[k] += src[k];
}

void train_tensor_copy(llama_model *m, float *dst, const float *src, int64_t n) {
    /* BACKEND-API: a copy between two models' memory (device to device) */
    (void)m;
    memcpy(dst, src, (size_t)n * sizeof *dst);
}
