/* model_cache.c - the worker's resident base models, one cache per device (see model_cache.h). */
#include "worker/model_cache.h"
#include "common/log.h"
#include "worker/engine/checkpoint.h"

#include <stdlib.h>
#include <string.h>

struct model_cache {
    backend *be;          /* the device's instance; base and work live in its memory */
    model_slot slot;      /* the resident model (path == NULL: none) */
};

static void slot_free(model_slot *s) {
    llama_model_free(&s->base);
    llama_model_free(&s->work);
    if (s->tok) tokenizer_free(s->tok);
    free(s->path);
    memset(s, 0, sizeof *s);
}

model_cache *model_cache_open(const char *device, int threads, cis_err *err) {
    backend *be = backend_open(device, &(backend_opts){.threads = threads}, err);
    if (!be) return NULL;
    model_cache *c = xcalloc(1, sizeof *c);
    c->be = be;
    return c;
}

void model_cache_close(model_cache **cp) {
    if (!cp || !*cp) return;
    slot_free(&(*cp)->slot);
    backend_close(&(*cp)->be);
    free(*cp);
    *cp = NULL;
}

backend *model_cache_backend(model_cache *c) { return c->be; }

int model_cache_mem_info(model_cache *c, uint64_t *free_bytes, uint64_t *total_bytes, cis_err *err) {
    return backend_mem_info(c->be, free_bytes, total_bytes, err);
}

model_slot *model_cache_acquire(model_cache *c, const char *model_dir, cis_err *err) {
    model_slot *g = &c->slot;
    if (g->path && strcmp(g->path, model_dir) == 0) {
        double t0 = mono_sec();
        if (llama_model_copy_params(g->work, g->base, err)) return NULL;
        LOG_D("model %s reset from the resident base in %.3f s", model_dir, mono_sec() - t0);
        g->load_s = 0;
        return g;
    }
    slot_free(g);  // evict first: the device's memory goes to the new model
    double t0 = mono_sec();
    llama_config cfg;
    if (checkpoint_dir_load_config(model_dir, &cfg, err)) { err_prefix(err, "model %s", model_dir); return NULL; }
    model_slot s = {0};
    s.base = llama_model_new(&cfg, c->be, err);
    if (!s.base || llama_model_load(s.base, model_dir, err)) { err_prefix(err, "model %s", model_dir); slot_free(&s); return NULL; }
    s.work = llama_model_new(&cfg, c->be, err);
    if (!s.work || llama_model_copy_params(s.work, s.base, err)) {
        err_prefix(err, "model %s (working copy)", model_dir);
        slot_free(&s);
        return NULL;
    }
    if (tokenizer_load(model_dir, &s.tok, err)) { err_prefix(err, "model %s", model_dir); slot_free(&s); return NULL; }
    s.path = xstrdup(model_dir);
    s.load_s = mono_sec() - t0;
    LOG_I("loaded model %s (%lld parameters) on %s in %.2f s; resident from now on", model_dir,
          (long long)llama_model_numel(s.base), backend_name(c->be), s.load_s);
    *g = s;
    return g;
}
