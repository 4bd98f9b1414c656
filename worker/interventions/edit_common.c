/* edit_common.c - the knowledge editors' shared pieces (edit_common.h): the job's edit requests
 * from the zsRE file, the prompt + " " + target batch with its target positions, the layer preset
 * that scales the paper's Llama-3-8B layers to the model's depth, and the tiny-model preset
 * helper (edit_tiny_override). */
#include "worker/interventions/edit_common.h"
#include "worker/data/loaders.h"
#include "worker/engine/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int edit_requests_load(const char *data_dir, int k, edit_requests *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    if (!data_dir)
        return err_set(err, CIS_EINVAL, "the edits come from DATA_DIR/zsre/zsre_mend_train.json, but no data "
                       "directory was given (--data / the worker's --data)");
    if (k < 1) return err_set(err, CIS_EINVAL, "edit set %d: expected 1..", k);
    char *path = xasprintf("%s/zsre/zsre_mend_train.json", data_dir);
    char *sets = xasprintf("%s/zsre/edit_sets.json", data_dir);
    struct stat sb;
    int rc = 0;
    zsre_data z = {0};
    int32_t *idx = NULL;
    int n = 0;
    if (stat(path, &sb) != 0) {
        rc = err_set(err, CIS_EINVAL, "%s: missing (the zsRE-format edit file)", path);
        goto done;
    }
    if (zsre_load(path, &z, err)) { rc = -1; goto done; }
    if (zsre_split(sets, z.n, k, EDIT_SET_SIZE, &idx, &n, err)) {
        err_prefix(err, "edit set %d (sets of %d over the %d records of %s): ", k, EDIT_SET_SIZE, z.n, path);
        rc = -1;
        goto done;
    }
    if (n == 0) {
        rc = err_set(err, CIS_EINVAL, "edit set %d: no records in %s", k, path);
        goto done;
    }
    if (n > EDIT_SET_SIZE) n = EDIT_SET_SIZE;
    out->r = xcalloc((size_t)n, sizeof *out->r);
    out->n = n;
    for (int i = 0; i < n; i++) {
        const zsre_record *r = &z.rec[idx[i]];
        out->r[i].prompt = xstrdup(r->src);
        out->r[i].subject = xstrdup(r->subject);
        out->r[i].target = xstrdup(r->alt);
        out->r[i].rephrase = xstrdup(r->rephrase);
        out->r[i].record = idx[i];
    }
done:
    free(idx);
    zsre_clear(&z);
    free(path);
    free(sets);
    return rc;
}

void edit_requests_clear(edit_requests *q) {
    if (!q) return;
    for (int i = 0; i < q->n; i++) {
        free(q->r[i].prompt);
        free(q->r[i].subject);
        free(q->r[i].target);
        free(q->r[i].rephrase);
    }
    free(q->r);
    memset(q, 0, sizeof *q);
}

int edit_tokens(const tokenizer *tok, const char *text, bool bos, int32_t **ids, int *n, cis_err *err) {
    size_t m = 0;
    *ids = NULL;
    *n = 0;
    if (tokenizer_encode(tok, text, strlen(text), bos, ids, &m, err)) return -1;
    *n = (int)m;
    return 0;
}

int edit_batch_build(const tokenizer *tok, int n, const char *const *prompts, const char *const *targets,
                     int max_len, edit_batch *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    int32_t **full = xcalloc((size_t)n, sizeof *full);
    int *nf = xcalloc((size_t)n, sizeof *nf), *np = xcalloc((size_t)n, sizeof *np);
    int rc = 0, T = 1;
    for (int i = 0; i < n && !rc; i++) {
        int32_t *p = NULL;
        char *text = xasprintf("%s %s", prompts[i], targets[i]);
        if (edit_tokens(tok, prompts[i], true, &p, &np[i], err) || edit_tokens(tok, text, true, &full[i], &nf[i], err)) {
            err_prefix(err, "edit %d: ", i);
            rc = -1;
        } else if (nf[i] <= np[i]) {
            rc = err_set(err, CIS_EINVAL, "edit %d: target \"%s\" adds no token after the prompt \"%s\"", i,
                         targets[i], prompts[i]);
        } else if (nf[i] > max_len) {
            rc = err_set(err, CIS_EINVAL, "edit %d: prompt + target is %d tokens, more than the model's %d positions",
                         i, nf[i], max_len);
        }
        if (!rc && nf[i] > T) T = nf[i];
        free(p);
        free(text);
    }
    if (!rc) {
        out->B = n;
        out->T = T;
        out->ids = xcalloc((size_t)n * T, sizeof *out->ids);
        out->targets = xmalloc((size_t)n * T * sizeof *out->targets);
        out->lens = xcalloc((size_t)n, sizeof *out->lens);
        out->n_tgt = xcalloc((size_t)n, sizeof *out->n_tgt);
        for (int i = 0; i < n; i++) {
            memcpy(out->ids + (size_t)i * T, full[i], (size_t)nf[i] * sizeof(int32_t));
            out->lens[i] = nf[i];
            for (int t = 0; t < T; t++) {
                /* position t predicts token t+1; the targets are tokens np..nf-1 */
                bool tgt = t + 1 >= np[i] && t + 1 < nf[i];
                out->targets[(size_t)i * T + t] = tgt ? full[i][t + 1] : LOSS_IGNORE_INDEX;
            }
            out->n_tgt[i] = nf[i] - np[i];
        }
    }
    for (int i = 0; i < n; i++) free(full[i]);
    free(full);
    free(nf);
    free(np);
    return rc;
}

void edit_batch_clear(edit_batch *b) {
    if (!b) return;
    free(b->ids);
    free(b->lens);
    free(b->targets);
    free(b->n_tgt);
    memset(b, 0, sizeof *b);
}

static int scale_one(int l, int depth, int L) {
    return (int)floor((double)l * L / depth + 0.5);
}

int edit_scale_layers(const int *layers, int n, int depth, int L, int **out, int *n_out, cis_err *err) {
    *out = NULL;
    *n_out = 0;
    if (n <= 0) return err_set(err, CIS_EINVAL, "params.layers: expected at least one layer");
    int *r;
    int m;
    if (depth <= 0 || depth == L) {
        r = xmalloc((size_t)n * sizeof *r);
        memcpy(r, layers, (size_t)n * sizeof *r);
        m = n;
    } else {
        int lo = layers[0], hi = layers[0];
        for (int i = 1; i < n; i++) {
            if (layers[i] < lo) lo = layers[i];
            if (layers[i] > hi) hi = layers[i];
        }
        int a = scale_one(lo, depth, L), b = scale_one(hi, depth, L);
        m = b - a + 1;
        r = xmalloc((size_t)m * sizeof *r);
        for (int i = 0; i < m; i++) r[i] = a + i;
    }
    for (int i = 0; i < m; i++)
        if (r[i] < 0 || r[i] >= L) {
            int bad = r[i];
            free(r);
            return err_set(err, CIS_EINVAL, "params.layers: layer %d (resolved for a model of %d layers from a "
                           "list written for %d) is outside 0..%d", bad, L, depth, L - 1);
        }
    *out = r;
    *n_out = m;
    return 0;
}

int edit_preset_layers(const llama_config *cfg, json_t *params, cis_err *err) {
    json_t *lv = json_object_get(params, "layers");
    json_t *dv = json_object_get(params, "layers_depth");
    if (!json_is_array(lv)) return err_set(err, CIS_EINVAL, "params.layers: expected a list of layer indices");
    int n = (int)json_array_size(lv);
    int *layers = xcalloc((size_t)(n ? n : 1), sizeof *layers);
    for (int i = 0; i < n; i++) layers[i] = (int)json_integer_value(json_array_get(lv, i));
    int depth = json_is_integer(dv) ? (int)json_integer_value(dv) : 0;
    int *r = NULL, m = 0;
    int rc = edit_scale_layers(layers, n, depth, cfg->num_hidden_layers, &r, &m, err);
    free(layers);
    if (rc) return -1;
    json_t *a = json_array();
    for (int i = 0; i < m; i++) json_array_append_new(a, json_integer(r[i]));
    json_object_set_new(params, "edit_layers", a);
    free(r);
    return 0;
}

bool edit_is_tiny(const llama_config *cfg) {
    return cfg->hidden_size < EDIT_TINY_HIDDEN;
}

void edit_tiny_override(const llama_config *cfg, json_t *params, const char *name, double paper, double tiny) {
    if (!edit_is_tiny(cfg)) return;
    json_t *v = json_object_get(params, name);
    if (!json_is_number(v) || json_number_value(v) != paper) return;
    bool is_int = json_is_integer(v);
    json_object_set_new(params, name, is_int ? json_integer((json_int_t)tiny) : json_real(tiny));
    json_t *note = json_object_get(params, "tiny_preset");
    if (!json_is_array(note)) {
        note = json_array();
        json_object_set_new(params, "tiny_preset", note);
    }
    char buf[160];
    snprintf(buf, sizeof buf, "%s: %g -> %g (hidden_size %d < %d)", name, paper, tiny, cfg->hidden_size,
             EDIT_TINY_HIDDEN);
    json_array_append_new(note, json_string(buf));
}

int *edit_param_layers(const interv_ctx *c, int *n) {
    json_t *a = interv_param_get(c, "edit_layers");
    CIS_ASSERT(json_is_array(a) && json_array_size(a) > 0);
    *n = (int)json_array_size(a);
    int *r = xmalloc((size_t)*n * sizeof *r);
    for (int i = 0; i < *n; i++) r[i] = (int)json_integer_value(json_array_get(a, i));
    return r;
}
