/* model.c - building a llama_model from a llama_config on a backend instance: the parameter block
 * (in the backend's memory) and its Hugging Face names and shapes, random init, loading, saving and
 * copying parameters (through host staging when the backend's memory is not host memory), the
 * trainable subset and its gradient buffers, workspaces. The forward/backward passes are in
 * model_forward.c, generation and scoring in model_generate.c. */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "worker/engine/model_internal.h"
#include "worker/engine/optim.h"

void model_fwd_state_free(llama_model *m);  /* model_forward.c */

static const char *LAYER_NAMES[LP_COUNT] = {
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    "input_layernorm.weight", "post_attention_layernorm.weight",
};

static void add_param(llama_model *m, int *idx, int64_t *off, const char *name, int layer, int ndim,
                      int64_t d0, int64_t d1) {
    int i = (*idx)++;
    m->names[i] = xstrdup(name);
    llama_param *p = &m->params[i];
    p->name = m->names[i];
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 1;
    p->shape[2] = p->shape[3] = 1;
    p->data = m->weights ? m->weights + *off : NULL;
    m->param_off[i] = *off;
    m->param_layer[i] = layer;
    *off += d0 * (ndim > 1 ? d1 : 1);
}

/* lays out (or, with m->weights == NULL, only counts) the parameters */
static void layout_params(llama_model *m) {
    int idx = 0;
    int64_t off = 0;
    char name[160];
    add_param(m, &idx, &off, "model.embed_tokens.weight", -1, 2, m->V, m->D);
    m->i_embed = 0;
    for (int l = 0; l < m->L; l++) {
        int64_t shp[LP_COUNT][2] = {
            {m->qdim, m->D}, {m->kvdim, m->D}, {m->kvdim, m->D}, {m->D, m->qdim},
            {m->F, m->D}, {m->F, m->D}, {m->D, m->F}, {m->D, 1}, {m->D, 1},
        };
        for (int j = 0; j < LP_COUNT; j++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, LAYER_NAMES[j]);
            add_param(m, &idx, &off, name, l, j >= LP_LN_IN ? 1 : 2, shp[j][0], shp[j][1]);
        }
    }
    m->i_norm = idx;
    add_param(m, &idx, &off, "model.norm.weight", -1, 1, m->D, 1);
    if (m->cfg.tie_word_embeddings) {
        m->i_head = m->i_embed;
    } else {
        m->i_head = idx;
        add_param(m, &idx, &off, "lm_head.weight", -1, 2, m->V, m->D);
    }
    m->n_params = idx;
    m->n_floats = off;
}

static void point_params(llama_model *m) {
    m->embed = m->params[m->i_embed].data;
    m->norm_f = m->params[m->i_norm].data;
    m->head = m->params[m->i_head].data;
    for (int l = 0; l < m->L; l++)
        for (int j = 0; j < LP_COUNT; j++) m->lw[l][j] = m->params[1 + l * LP_COUNT + j].data;
}

/* fills n floats of backend memory dst with v (through a host chunk when not host memory) */
static void fill_const(backend *be, float *dst, int64_t n, float v) {
    if (backend_is_host(be)) { for (int64_t i = 0; i < n; i++) dst[i] = v; return; }
    float buf[1024];
    for (int i = 0; i < 1024; i++) buf[i] = v;
    for (int64_t o = 0; o < n; o += 1024) {
        int64_t k = n - o < 1024 ? n - o : 1024;
        backend_upload(be, dst + o, buf, (size_t)k * sizeof(float));
    }
}

static void model_release(llama_model *m) {
    model_fwd_state_free(m);
    if (m->be) {
        backend_free(m->be, m->weights); backend_free(m->be, m->grad_block);
        backend_free(m->be, m->rope_cos); backend_free(m->be, m->rope_sin);
        backend_free(m->be, m->ws); backend_free(m->be, m->iws_dev);
    }
    if (m->names) for (int i = 0; i < m->n_params; i++) free(m->names[i]);
    free(m->names); free(m->params); free(m->param_layer); free(m->param_off); free(m->lw);
    free(m->trainable); free(m->grads); free(m->iws);
    if (m->own_be) backend_close(&m->be);
    free(m);
}

llama_model *llama_model_new(const llama_config *cfg, backend *be, cis_err *err) {
    if (!cfg) { err_set(err, CIS_EINVAL, "llama_model_new: no config"); return NULL; }
    if (llama_config_validate(cfg, "model config", err) != 0) return NULL;
    if (cfg->rope_scaling == LLAMA_ROPE_LLAMA3 &&
        (cfg->rope_factor <= 0 || cfg->rope_original_max_pos <= 0 ||
         cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor)) {
        err_set(err, CIS_EINVAL, "model config: rope_scaling llama3 needs factor > 0, "
                "original_max_position_embeddings > 0 and high_freq_factor > low_freq_factor");
        return NULL;
    }
    llama_model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    if (be) m->be = be;
    else {
        m->be = backend_open("cpu", NULL, err);
        if (!m->be) { free(m); return NULL; }
        m->own_be = true;
    }
    m->full_bwd = llama_no_shortcuts();
    m->L = cfg->num_hidden_layers;
    m->D = cfg->hidden_size;
    m->F = cfg->intermediate_size;
    m->H = cfg->num_attention_heads;
    m->Hkv = cfg->num_key_value_heads;
    m->Dh = cfg->head_dim;
    m->V = cfg->vocab_size;
    m->qdim = m->H * m->Dh;
    m->kvdim = m->Hkv * m->Dh;
    int np = 1 + m->L * LP_COUNT + 2;
    m->params = xcalloc((size_t)np, sizeof *m->params);
    m->names = xcalloc((size_t)np, sizeof *m->names);
    m->param_layer = xcalloc((size_t)np, sizeof *m->param_layer);
    m->param_off = xcalloc((size_t)np, sizeof *m->param_off);
    m->lw = xcalloc((size_t)(m->L ? m->L : 1), sizeof *m->lw);
    m->trainable = xcalloc((size_t)np, sizeof *m->trainable);
    m->grads = xcalloc((size_t)np, sizeof *m->grads);
    layout_params(m);  // count
    for (int i = 0; i < m->n_params; i++) { free(m->names[i]); m->names[i] = NULL; }
    m->weights = backend_alloc(m->be, (size_t)m->n_floats * sizeof(float), err);
    m->rope_P = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 2048;
    size_t half = (size_t)m->Dh / 2;
    if (m->weights) m->rope_cos = backend_alloc(m->be, (size_t)m->rope_P * half * sizeof(float), err);
    if (m->rope_cos) m->rope_sin = backend_alloc(m->be, (size_t)m->rope_P * half * sizeof(float), err);
    if (!m->rope_sin) {
        err_prefix(err, "model (%lld parameters, %.1f MB) on %s", (long long)m->n_floats, m->n_floats * 4.0 / 1e6,
                   backend_name(m->be));
        m->n_params = 0;
        model_release(m);
        return NULL;
    }
    backend_memset(m->be, m->weights, 0, (size_t)m->n_floats * sizeof(float));
    layout_params(m);  // point
    point_params(m);
    for (int l = 0; l < m->L; l++) {  // norms default to 1 (a usable model before init/load)
        fill_const(m->be, m->lw[l][LP_LN_IN], m->D, 1.0f);
        fill_const(m->be, m->lw[l][LP_LN_POST], m->D, 1.0f);
    }
    fill_const(m->be, m->norm_f, m->D, 1.0f);
    rope_params rp = {
        .head_dim = m->Dh, .theta = cfg->rope_theta, .llama3_scaling = cfg->rope_scaling == LLAMA_ROPE_LLAMA3,
        .factor = cfg->rope_factor, .low_freq_factor = cfg->rope_low_freq_factor,
        .high_freq_factor = cfg->rope_high_freq_factor, .original_max_pos = cfg->rope_original_max_pos,
    };
    BE(m->be, rope_table, m->rope_cos, m->rope_sin, m->rope_P, &rp);
    return m;
}

void llama_model_free(llama_model **mp) {
    if (!mp || !*mp) return;
    model_release(*mp);
    *mp = NULL;
}

void llama_model_own_backend(llama_model *m) { m->own_be = true; }

const llama_config *llama_model_config(const llama_model *m) { return &m->cfg; }
backend *llama_model_backend(const llama_model *m) { return m->be; }

llama_param *llama_model_params(llama_model *m, int *n) {
    if (n) *n = m->n_params;
    return m->params;
}

int llama_model_find(const llama_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

int64_t llama_model_numel(const llama_model *m) { return m->n_floats; }

int llama_hook_width(const llama_model *m, llama_hook_point p) {
    switch (p) {
    case LLAMA_HOOK_A: case LLAMA_HOOK_C: case LLAMA_HOOK_E: return m->D;
    case LLAMA_HOOK_B: return m->qdim;
    case LLAMA_HOOK_D: return m->F;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// random init: splitmix64 stream (common/rng.h) -> Box-Muller normals (platform independent up to libm)

void llama_model_init_random(llama_model *m, uint64_t seed) {
    uint64_t s = seed;
    float *host = NULL;
    for (int i = 0; i < m->n_params; i++) {
        llama_param *p = &m->params[i];
        int64_t n = p->shape[0] * p->shape[1];
        if (p->ndim == 1) { fill_const(m->be, p->data, n, 1.0f); continue; }
        float *d = p->data;
        if (!backend_is_host(m->be)) d = host = xrealloc(host, (size_t)n * sizeof(float));
        for (int64_t j = 0; j < n; j += 2) {
            double u1 = rng_splitmix64_open01(&s), u2 = rng_splitmix64_open01(&s);
            double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
            d[j] = (float)(0.02 * r * cos(th));
            if (j + 1 < n) d[j + 1] = (float)(0.02 * r * sin(th));
        }
        if (d != p->data) backend_upload(m->be, p->data, d, (size_t)n * sizeof(float));
    }
    free(host);
}

int llama_model_copy_params(llama_model *dst, const llama_model *src, cis_err *err) {
    if (dst->n_floats != src->n_floats || dst->n_params != src->n_params || dst->V != src->V ||
        dst->D != src->D || dst->L != src->L)
        return err_set(err, CIS_EINVAL, "model copy: configs differ (%lld vs %lld parameters)",
                       (long long)dst->n_floats, (long long)src->n_floats);
    size_t bytes = (size_t)src->n_floats * sizeof(float);
    if (dst->be == src->be) { backend_copy(dst->be, dst->weights, src->weights, bytes); return 0; }
    if (backend_is_host(src->be)) { backend_upload(dst->be, dst->weights, src->weights, bytes); return 0; }
    if (backend_is_host(dst->be)) { backend_download(src->be, dst->weights, src->weights, bytes); return 0; }
    size_t chunk = (size_t)64 << 20;  // two devices: through a 64 MB host buffer
    char *buf = malloc(chunk < bytes ? chunk : bytes);
    if (!buf) return err_set(err, CIS_ENOMEM, "model copy: no host staging buffer");
    for (size_t o = 0; o < bytes; o += chunk) {
        size_t k = bytes - o < chunk ? bytes - o : chunk;
        backend_download(src->be, buf, (const char *)src->weights + o, k);
        backend_upload(dst->be, (char *)dst->weights + o, buf, k);
    }
    free(buf);
    return 0;
}

int llama_model_param_get(llama_model *m, int i, float *host, cis_err *err) {
    if (i < 0 || i >= m->n_params || !host) return err_set(err, CIS_EINVAL, "param_get: index %d: expected 0..%d", i, m->n_params - 1);
    backend_download(m->be, host, m->params[i].data, (size_t)(m->params[i].shape[0] * m->params[i].shape[1]) * sizeof(float));
    return 0;
}

int llama_model_param_set(llama_model *m, int i, const float *host, cis_err *err) {
    if (i < 0 || i >= m->n_params || !host) return err_set(err, CIS_EINVAL, "param_set: index %d: expected 0..%d", i, m->n_params - 1);
    backend_upload(m->be, m->params[i].data, host, (size_t)(m->params[i].shape[0] * m->params[i].shape[1]) * sizeof(float));
    return 0;
}

/* a host copy of the parameter list (data in one host block) for checkpoint I/O off host memory */
static llama_param *host_params(llama_model *m, float **block, cis_err *err) {
    *block = malloc((size_t)m->n_floats * sizeof(float));
    if (!*block) { err_set(err, CIS_ENOMEM, "model: no host staging for %.1f MB", m->n_floats * 4.0 / 1e6); return NULL; }
    llama_param *hp = xmalloc((size_t)m->n_params * sizeof *hp);
    for (int i = 0; i < m->n_params; i++) { hp[i] = m->params[i]; hp[i].data = *block + m->param_off[i]; }
    return hp;
}

// ---------------------------------------------------------------------------------------------
// trainable subset

static int realloc_grads(llama_model *m, cis_err *err) {
    backend_free(m->be, m->grad_block);
    m->grad_block = NULL;
    int64_t tot = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->trainable[i]) tot += m->params[i].shape[0] * m->params[i].shape[1];
    if (tot) {
        m->grad_block = backend_alloc(m->be, (size_t)tot * sizeof(float), err);
        if (!m->grad_block) {
            memset(m->trainable, 0, (size_t)m->n_params * sizeof *m->trainable);
            for (int i = 0; i < m->n_params; i++) m->grads[i] = NULL;
            err_prefix(err, "gradients of %lld parameters", (long long)tot);
            return -1;
        }
        backend_memset(m->be, m->grad_block, 0, (size_t)tot * sizeof(float));
    }
    int64_t off = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (!m->trainable[i]) { m->grads[i] = NULL; continue; }
        m->grads[i] = m->grad_block + off;
        off += m->params[i].shape[0] * m->params[i].shape[1];
    }
    return 0;
}

int llama_model_set_trainable(llama_model *m, const char *glob, int layer_lo, int layer_hi, bool on,
                              cis_err *err) {
    if (layer_lo >= 0 && (layer_hi < layer_lo || layer_hi >= m->L))
        return err_set(err, CIS_EINVAL, "trainable layers [%d, %d]: expected 0 <= lo <= hi < %d",
                       layer_lo, layer_hi, m->L);
    int n = 0;
    bool changed = false;
    for (int i = 0; i < m->n_params; i++) {
        if (glob && fnmatch(glob, m->params[i].name, 0) != 0) continue;
        if (layer_lo >= 0 && (m->param_layer[i] < layer_lo || m->param_layer[i] > layer_hi)) continue;
        n++;
        if (m->trainable[i] != on) { m->trainable[i] = on; changed = true; }
    }
    if (changed && realloc_grads(m, err) != 0) return -1;
    return n;
}

void llama_model_freeze_all(llama_model *m) {
    memset(m->trainable, 0, (size_t)m->n_params * sizeof *m->trainable);
    realloc_grads(m, NULL);
}

void llama_model_set_full_backward(llama_model *m, bool on) { m->full_bwd = on; }

bool llama_no_shortcuts(void) {
    const char *v = getenv(LLAMA_NO_SHORTCUTS_ENV);
    return v && *v && strcmp(v, "0") != 0;
}

bool llama_model_is_trainable(const llama_model *m, int i) { return i >= 0 && i < m->n_params && m->trainable[i]; }

float *llama_model_grad(llama_model *m, int i) { return i >= 0 && i < m->n_params ? m->grads[i] : NULL; }

void llama_model_zero_grad(llama_model *m) {
    for (int i = 0; i < m->n_params; i++)
        if (m->grads[i]) backend_memset(m->be, m->grads[i], 0, (size_t)(m->params[i].shape[0] * m->params[i].shape[1]) * sizeof(float));
}

// ---------------------------------------------------------------------------------------------
// workspaces (grown on demand, never shrunk)

float *model_ws_reserve(llama_model *m, size_t n) {
    if (n > m->ws_cap) {
        backend_free(m->be, m->ws);
        m->ws = backend_alloc(m->be, n * sizeof(float), NULL);
        if (!m->ws) { m->ws_cap = 0; return NULL; }
        m->ws_cap = n;
    }
    return m->ws;
}

int32_t *model_iws_reserve(llama_model *m, size_t n) {
    if (n > m->iws_cap) {
        free(m->iws);
        backend_free(m->be, m->iws_dev);
        m->iws = malloc(n * sizeof(int32_t));
        m->iws_dev = m->iws ? backend_alloc(m->be, n * sizeof(int32_t), NULL) : NULL;
        if (!m->iws || !m->iws_dev) { free(m->iws); m->iws = NULL; m->iws_dev = NULL; m->iws_cap = 0; return NULL; }
        m->iws_cap = n;
    }
    return m->iws;
}

int32_t *model_iws_upload(llama_model *m, size_t n) {
    backend_upload(m->be, m->iws_dev, m->iws, n * sizeof(int32_t));
    return m->iws_dev;
}

int llama_model_load(llama_model *m, const char *model_dir, cis_err *err) {
    if (backend_is_host(m->be)) return checkpoint_load(model_dir, &m->cfg, m->params, (size_t)m->n_params, err);
    float *block;
    llama_param *hp = host_params(m, &block, err);
    if (!hp) return -1;
    int rc = checkpoint_load(model_dir, &m->cfg, hp, (size_t)m->n_params, err);
    if (rc == 0) backend_upload(m->be, m->weights, block, (size_t)m->n_floats * sizeof(float));
    free(hp); free(block);
    return rc;
}

int llama_model_save(llama_model *m, const char *model_dir, const char *dtype, cis_err *err) {
    if (backend_is_host(m->be))
        return checkpoint_save(model_dir, &m->cfg, m->params, (size_t)m->n_params, dtype ? dtype : "F32", 0, err);
    float *block;
    llama_param *hp = host_params(m, &block, err);
    if (!hp) return -1;
    backend_download(m->be, block, m->weights, (size_t)m->n_floats * sizeof(float));
    int rc = checkpoint_save(model_dir, &m->cfg, hp, (size_t)m->n_params, dtype ? dtype : "F32", 0, err);
    free(hp); free(block);
    return rc;
}

optim *llama_model_optim_new(llama_model *m, const optim_config *cfg, cis_err *err) {
    int n = 0;
    float **p = xcalloc((size_t)m->n_params, sizeof *p);
    const float **g = xcalloc((size_t)m->n_params, sizeof *g);
    int64_t *len = xcalloc((size_t)m->n_params, sizeof *len);
    for (int i = 0; i < m->n_params; i++) {
        if (!m->trainable[i]) continue;
        p[n] = m->params[i].data;
        g[n] = m->grads[i];
        len[n] = m->params[i].shape[0] * m->params[i].shape[1];
        n++;
    }
    optim *o = optim_new(m->be, cfg, n, p, g, len, err);
    free(p); free(g); free(len);
    return o;
}
