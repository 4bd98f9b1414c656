/* model_cache.c - the worker's resident base model (see model_cache.h). */
#include "worker/model_cache.h"
#include "common/log.h"
#include "worker/engine/checkpoint.h"

#include <stdlib.h>
#include <string.h>

static model_slot g_slot;

static void slot_free(model_slot *s) {
    llama_model_free(&s->base);
    llama_model_free(&s->work);
    if (s->tok) tokenizer_free(s->tok);
    free(s->path);
    memset(s, 0, sizeof *s);
}

void model_cache_release_all(void) { slot_free(&g_slot); }

model_slot *model_cache_acquire(const char *model_dir, cis_err *err) {
    if (g_slot.path && strcmp(g_slot.path, model_dir) == 0) {
        double t0 = mono_sec();
        if (llama_model_copy_params(g_slot.work, g_slot.base, err)) return NULL;
        LOG_D("model %s reset from the resident base in %.3f s", model_dir, mono_sec() - t0);
        g_slot.load_s = 0;
        return &g_slot;
    }
    slot_free(&g_slot);
    double t0 = mono_sec();
    llama_config cfg;
    if (checkpoint_dir_load_config(model_dir, &cfg, err)) { err_prefix(err, "model %s", model_dir); return NULL; }
    model_slot s = {0};
    s.base = llama_model_new(&cfg, NULL, err);
    if (!s.base || llama_model_load(s.base, model_dir, err)) { err_prefix(err, "model %s", model_dir); slot_free(&s); return NULL; }
    s.work = llama_model_new(&cfg, NULL, err);
    if (!s.work || llama_model_copy_params(s.work, s.base, err)) { slot_free(&s); return NULL; }
    if (tokenizer_load(model_dir, &s.tok, err)) { err_prefix(err, "model %s", model_dir); slot_free(&s); return NULL; }
    s.path = xstrdup(model_dir);
    s.load_s = mono_sec() - t0;
    LOG_I("loaded model %s (%lld parameters) in %.2f s; resident from now on", model_dir,
          (long long)llama_model_numel(s.base), s.load_s);
    g_slot = s;
    return &g_slot;
}
