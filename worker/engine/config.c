/* config.c - reads, checks and writes Hugging Face config.json files for the architectures the
 * engine implements (see config.h). Anything that would change the computation and that we do
 * not implement (biases, other activations, other RoPE scalings, partial rotary, quantization)
 * is refused with the file and field named, so a checkpoint never loads "almost right". */
#include "worker/engine/config.h"

#include <jansson.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct arch_desc {
    const char *architecture, *model_type;
    llama_arch arch;
    int def_max_pos;
    float def_eps;
} arch_desc;

static const arch_desc ARCHES[] = {
    {"LlamaForCausalLM", "llama", LLAMA_ARCH_LLAMA, 2048, 1e-6f},
    {"MistralForCausalLM", "mistral", LLAMA_ARCH_MISTRAL, 4096 * 32, 1e-6f},
    {"Phi3ForCausalLM", "phi3", LLAMA_ARCH_PHI3, 4096, 1e-5f},
};
#define N_ARCHES (sizeof ARCHES / sizeof ARCHES[0])

/* a field that is absent or JSON null */
static bool absent(const json_t *v) { return v == NULL || json_is_null(v); }

static int get_int(const char *path, json_t *root, const char *key, bool required, int def, int *out,
                   cis_err *err) {
    json_t *v = json_object_get(root, key);
    if (absent(v)) {
        if (required) return err_set(err, CIS_EINVAL, "%s: field '%s' is missing (expected an integer)", path, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return err_set(err, CIS_EINVAL, "%s: field '%s' must be an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x < -2147483647LL || x > 2147483647LL)
        return err_set(err, CIS_EINVAL, "%s: field '%s' = %lld is out of range", path, key, (long long)x);
    *out = (int)x;
    return 0;
}

static int get_num(const char *path, json_t *obj, const char *where, const char *key, bool required,
                   float def, float *out, cis_err *err) {
    json_t *v = json_object_get(obj, key);
    if (absent(v)) {
        if (required)
            return err_set(err, CIS_EINVAL, "%s: field '%s%s' is missing (expected a number)", path, where, key);
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return err_set(err, CIS_EINVAL, "%s: field '%s%s' must be a number", path, where, key);
    double d = json_number_value(v);
    if (!isfinite(d))
        return err_set(err, CIS_EINVAL, "%s: field '%s%s' must be finite", path, where, key);
    /* stored as a float: a finite double beyond FLT_MAX would become inf (and a config.json
     * written from it would not load again: issue 13, fuzzing) */
    if (fabs(d) > FLT_MAX)
        return err_set(err, CIS_EINVAL, "%s: field '%s%s' = %g is too large (at most %g)", path, where, key, d,
                       (double)FLT_MAX);
    *out = (float)d;
    return 0;
}

static int get_bool(const char *path, json_t *root, const char *key, bool def, bool *out, cis_err *err) {
    json_t *v = json_object_get(root, key);
    if (absent(v)) { *out = def; return 0; }
    if (!json_is_boolean(v)) return err_set(err, CIS_EINVAL, "%s: field '%s' must be true or false", path, key);
    *out = json_is_true(v);
    return 0;
}

/* rope scaling: null, {"rope_type"|"type": "default"} or llama3 with its four parameters */
static int parse_rope_scaling(const char *path, json_t *rs, const char *field, llama_config *cfg, cis_err *err) {
    cfg->rope_scaling = LLAMA_ROPE_NONE;
    if (absent(rs)) return 0;
    if (!json_is_object(rs))
        return err_set(err, CIS_EINVAL, "%s: field '%s' must be null or an object", path, field);
    json_t *ty = json_object_get(rs, "rope_type");
    if (absent(ty)) ty = json_object_get(rs, "type");
    if (!json_is_string(ty))
        return err_set(err, CIS_EINVAL, "%s: field '%s.rope_type' is missing (expected \"llama3\")", path, field);
    const char *t = json_string_value(ty);
    if (!strcmp(t, "default")) return 0;
    if (strcmp(t, "llama3") != 0)
        return err_set(err, CIS_EINVAL,
                       "%s: %s type '%s' is not supported (only \"llama3\" RoPE scaling, or none, is implemented)",
                       path, field, t);
    cfg->rope_scaling = LLAMA_ROPE_LLAMA3;
    char where[64];
    snprintf(where, sizeof where, "%s.", field);
    float omp;
    if (get_num(path, rs, where, "factor", true, 0, &cfg->rope_factor, err) ||
        get_num(path, rs, where, "low_freq_factor", true, 0, &cfg->rope_low_freq_factor, err) ||
        get_num(path, rs, where, "high_freq_factor", true, 0, &cfg->rope_high_freq_factor, err) ||
        get_num(path, rs, where, "original_max_position_embeddings", true, 0, &omp, err))
        return -1;
    if (omp != floorf(omp) || omp <= 0 || omp > 1e9f)
        return err_set(err, CIS_EINVAL, "%s: field '%s.original_max_position_embeddings' must be a positive integer",
                       path, field);
    cfg->rope_original_max_pos = (int)omp;
    return 0;
}

static int parse_token_id(const char *path, json_t *root, const char *key, int *out, cis_err *err) {
    json_t *v = json_object_get(root, key);
    if (absent(v)) { *out = -1; return 0; }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2147483647LL)
        return err_set(err, CIS_EINVAL, "%s: field '%s' must be a non-negative integer or null", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

static int parse_config(const char *path, json_t *root, llama_config *cfg, cis_err *err) {
    memset(cfg, 0, sizeof *cfg);
    if (!json_is_object(root)) return err_set(err, CIS_EINVAL, "%s: not a JSON object", path);

    /* architecture: architectures[0], else model_type */
    const arch_desc *ad = NULL;
    json_t *archs = json_object_get(root, "architectures");
    json_t *mt = json_object_get(root, "model_type");
    if (!absent(archs)) {
        if (!json_is_array(archs) || json_array_size(archs) != 1 || !json_is_string(json_array_get(archs, 0)))
            return err_set(err, CIS_EINVAL, "%s: field 'architectures' must be a list of one string", path);
        const char *a = json_string_value(json_array_get(archs, 0));
        for (size_t i = 0; i < N_ARCHES; i++)
            if (!strcmp(a, ARCHES[i].architecture)) ad = &ARCHES[i];
        if (!ad)
            return err_set(err, CIS_EINVAL,
                           "%s: architecture '%s' is not supported (expected LlamaForCausalLM, MistralForCausalLM "
                           "or Phi3ForCausalLM)", path, a);
    } else if (json_is_string(mt)) {
        for (size_t i = 0; i < N_ARCHES; i++)
            if (!strcmp(json_string_value(mt), ARCHES[i].model_type)) ad = &ARCHES[i];
        if (!ad)
            return err_set(err, CIS_EINVAL, "%s: model_type '%s' is not supported (expected llama, mistral or phi3)",
                           path, json_string_value(mt));
    } else {
        return err_set(err, CIS_EINVAL, "%s: field 'architectures' is missing (expected e.g. [\"LlamaForCausalLM\"])",
                       path);
    }
    if (!absent(mt) && (!json_is_string(mt) || strcmp(json_string_value(mt), ad->model_type) != 0))
        return err_set(err, CIS_EINVAL, "%s: field 'model_type' must be \"%s\" for %s", path, ad->model_type,
                       ad->architecture);
    cfg->arch = ad->arch;
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", ad->architecture);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", ad->model_type);

    if (get_int(path, root, "vocab_size", true, 0, &cfg->vocab_size, err) ||
        get_int(path, root, "hidden_size", true, 0, &cfg->hidden_size, err) ||
        get_int(path, root, "intermediate_size", true, 0, &cfg->intermediate_size, err) ||
        get_int(path, root, "num_hidden_layers", true, 0, &cfg->num_hidden_layers, err) ||
        get_int(path, root, "num_attention_heads", true, 0, &cfg->num_attention_heads, err) ||
        get_int(path, root, "num_key_value_heads", false, cfg->num_attention_heads, &cfg->num_key_value_heads, err) ||
        get_int(path, root, "max_position_embeddings", false, ad->def_max_pos, &cfg->max_position_embeddings, err))
        return -1;
    int hd_def = cfg->num_attention_heads > 0 ? cfg->hidden_size / cfg->num_attention_heads : 0;
    if (get_int(path, root, "head_dim", false, hd_def, &cfg->head_dim, err)) return -1;
    if (get_num(path, root, "", "rms_norm_eps", false, ad->def_eps, &cfg->rms_norm_eps, err)) return -1;

    /* RoPE: transformers >= 4.5x may write "rope_parameters" (rope_theta inside) instead */
    json_t *rp = json_object_get(root, "rope_parameters");
    if (!absent(rp)) {
        if (!json_is_object(rp))
            return err_set(err, CIS_EINVAL, "%s: field 'rope_parameters' must be an object", path);
        if (get_num(path, rp, "rope_parameters.", "rope_theta", false, 10000.0f, &cfg->rope_theta, err)) return -1;
        if (parse_rope_scaling(path, rp, "rope_parameters", cfg, err)) return -1;
    } else {
        if (get_num(path, root, "", "rope_theta", false, 10000.0f, &cfg->rope_theta, err)) return -1;
        if (parse_rope_scaling(path, json_object_get(root, "rope_scaling"), "rope_scaling", cfg, err)) return -1;
    }

    if (get_bool(path, root, "tie_word_embeddings", false, &cfg->tie_word_embeddings, err)) return -1;
    json_t *sw = json_object_get(root, "sliding_window");
    cfg->sliding_window = 0;
    if (cfg->arch == LLAMA_ARCH_MISTRAL || cfg->arch == LLAMA_ARCH_PHI3) {
        bool use_sw = true;
        if (get_bool(path, root, "use_sliding_window", true, &use_sw, err)) return -1;
        if (!absent(sw) && use_sw) {
            if (!json_is_integer(sw) || json_integer_value(sw) < 0 || json_integer_value(sw) > 2147483647LL)
                return err_set(err, CIS_EINVAL, "%s: field 'sliding_window' must be a non-negative integer or null",
                               path);
            cfg->sliding_window = (int)json_integer_value(sw);
        }
    }

    /* options we do not implement */
    json_t *act = json_object_get(root, "hidden_act");
    if (absent(act)) act = json_object_get(root, "hidden_activation");
    if (!absent(act) && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return err_set(err, CIS_EINVAL, "%s: field 'hidden_act' = %s is not supported (expected \"silu\")", path,
                       json_is_string(act) ? json_string_value(act) : "(not a string)");
    static const char *const no_bias[] = {"attention_bias", "mlp_bias"};
    for (size_t i = 0; i < 2; i++) {
        bool b = false;
        if (get_bool(path, root, no_bias[i], false, &b, err)) return -1;
        if (b) return err_set(err, CIS_EINVAL, "%s: field '%s' = true is not supported (expected false)", path, no_bias[i]);
    }
    float prf;
    if (get_num(path, root, "", "partial_rotary_factor", false, 1.0f, &prf, err)) return -1;
    if (prf != 1.0f)
        return err_set(err, CIS_EINVAL, "%s: field 'partial_rotary_factor' = %g is not supported (expected 1.0)", path,
                       (double)prf);
    if (!absent(json_object_get(root, "quantization_config")))
        return err_set(err, CIS_EINVAL, "%s: field 'quantization_config': quantized checkpoints are not supported", path);
    int tp = 1;
    if (get_int(path, root, "pretraining_tp", false, 1, &tp, err)) return -1; /* any value is the same math */

    /* special tokens */
    if (parse_token_id(path, root, "bos_token_id", &cfg->bos_token_id, err) ||
        parse_token_id(path, root, "pad_token_id", &cfg->pad_token_id, err))
        return -1;
    json_t *eos = json_object_get(root, "eos_token_id");
    cfg->n_eos = 0;
    if (json_is_array(eos)) {
        if (json_array_size(eos) > LLAMA_MAX_EOS)
            return err_set(err, CIS_EINVAL, "%s: field 'eos_token_id' lists %zu ids (at most %d supported)", path,
                           json_array_size(eos), LLAMA_MAX_EOS);
        for (size_t i = 0; i < json_array_size(eos); i++) {
            json_t *e = json_array_get(eos, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 2147483647LL)
                return err_set(err, CIS_EINVAL, "%s: field 'eos_token_id[%zu]' must be a non-negative integer", path, i);
            cfg->eos_token_ids[cfg->n_eos++] = (int)json_integer_value(e);
        }
    } else if (!absent(eos)) {
        int id;
        if (parse_token_id(path, root, "eos_token_id", &id, err)) return -1;
        cfg->eos_token_ids[cfg->n_eos++] = id;
    }

    /* dtype to save in: "torch_dtype" (or "dtype" in newer transformers) */
    json_t *dt = json_object_get(root, "torch_dtype");
    if (absent(dt)) dt = json_object_get(root, "dtype");
    const char *dts = "float32";
    if (!absent(dt)) {
        if (!json_is_string(dt) || (strcmp(json_string_value(dt), "float32") && strcmp(json_string_value(dt), "float16") &&
                                    strcmp(json_string_value(dt), "bfloat16")))
            return err_set(err, CIS_EINVAL,
                           "%s: field 'torch_dtype' must be \"float32\", \"float16\" or \"bfloat16\"", path);
        dts = json_string_value(dt);
    }
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dts);
    return llama_config_validate(cfg, path, err);
}

int llama_config_load(const char *path, llama_config *cfg, cis_err *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(err, CIS_EINVAL, "%s: cannot read as JSON: %s (line %d)", path, jerr.text, jerr.line);
    int rc = parse_config(path, root, cfg, err);
    json_decref(root);
    return rc;
}

int llama_config_validate(const llama_config *c, const char *what, cis_err *err) {
    if (!what) what = "config";
    const struct { const char *name; int v; } pos[] = {
        {"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
        {"intermediate_size", c->intermediate_size}, {"num_hidden_layers", c->num_hidden_layers},
        {"num_attention_heads", c->num_attention_heads}, {"num_key_value_heads", c->num_key_value_heads},
        {"head_dim", c->head_dim}, {"max_position_embeddings", c->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0)
            return err_set(err, CIS_EINVAL, "%s: field '%s' = %d must be positive", what, pos[i].name, pos[i].v);
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return err_set(err, CIS_EINVAL,
                       "%s: num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)", what,
                       c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim % 2 != 0)
        return err_set(err, CIS_EINVAL, "%s: head_dim (%d) must be even for RoPE", what, c->head_dim);
    /* every weight matrix's element count must fit comfortably in int64 and in memory sizes */
    int64_t qdim = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t big = (int64_t)c->vocab_size * c->hidden_size;
    int64_t ff = (int64_t)c->intermediate_size * c->hidden_size;
    int64_t qq = qdim * c->hidden_size;
    if (big > (1LL << 40) || ff > (1LL << 40) || qq > (1LL << 40))
        return err_set(err, CIS_EINVAL, "%s: sizes are implausibly large (a weight matrix over 2^40 elements)", what);
    if (!(c->rms_norm_eps > 0) || !isfinite(c->rms_norm_eps))
        return err_set(err, CIS_EINVAL, "%s: field 'rms_norm_eps' must be positive", what);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return err_set(err, CIS_EINVAL, "%s: field 'rope_theta' must be positive", what);
    if (c->rope_scaling == LLAMA_ROPE_LLAMA3) {
        if (!(c->rope_factor > 0) || !(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > 0) ||
            c->rope_original_max_pos <= 0)
            return err_set(err, CIS_EINVAL,
                           "%s: rope_scaling (llama3): factor, low_freq_factor, high_freq_factor and "
                           "original_max_position_embeddings must be positive", what);
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return err_set(err, CIS_EINVAL,
                           "%s: rope_scaling (llama3): high_freq_factor (%g) must exceed low_freq_factor (%g)", what,
                           (double)c->rope_high_freq_factor, (double)c->rope_low_freq_factor);
    } else if (c->rope_scaling != LLAMA_ROPE_NONE) {
        return err_set(err, CIS_EINVAL, "%s: unknown rope_scaling kind %d", what, (int)c->rope_scaling);
    }
    if (c->sliding_window < 0)
        return err_set(err, CIS_EINVAL, "%s: field 'sliding_window' must be >= 0", what);
    if (c->n_eos < 0 || c->n_eos > LLAMA_MAX_EOS)
        return err_set(err, CIS_EINVAL, "%s: n_eos %d out of range", what, c->n_eos);
    if (c->arch != LLAMA_ARCH_LLAMA && c->arch != LLAMA_ARCH_MISTRAL && c->arch != LLAMA_ARCH_PHI3)
        return err_set(err, CIS_EINVAL, "%s: unknown architecture %d", what, (int)c->arch);
    return 0;
}

/* a float as the JSON number with the fewest digits that reads back as the same float (so 1e-05
 * is written "1e-05", not 1.0000000000000001e-05) */
static json_t *json_float(float f) {
    char buf[64];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

int llama_config_save(const char *path, const llama_config *c, cis_err *err) {
    if (llama_config_validate(c, path, err) != 0) return -1;
    const arch_desc *ad = NULL;
    for (size_t i = 0; i < N_ARCHES; i++)
        if (ARCHES[i].arch == c->arch) ad = &ARCHES[i];
    CIS_ASSERT(ad);
    json_t *o = json_object();
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(ad->architecture));
    json_object_set_new(o, "architectures", archs);
    json_object_set_new(o, "model_type", json_string(ad->model_type));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->num_hidden_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->num_attention_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->num_key_value_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_position_embeddings));
    json_object_set_new(o, "rms_norm_eps", json_float(c->rms_norm_eps));
    json_object_set_new(o, "rope_theta", json_float(c->rope_theta));
    if (c->rope_scaling == LLAMA_ROPE_LLAMA3) {
        json_t *rs = json_object();
        json_object_set_new(rs, "rope_type", json_string("llama3"));
        json_object_set_new(rs, "factor", json_float(c->rope_factor));
        json_object_set_new(rs, "low_freq_factor", json_float(c->rope_low_freq_factor));
        json_object_set_new(rs, "high_freq_factor", json_float(c->rope_high_freq_factor));
        json_object_set_new(rs, "original_max_position_embeddings", json_integer(c->rope_original_max_pos));
        json_object_set_new(o, "rope_scaling", rs);
    } else {
        json_object_set_new(o, "rope_scaling", json_null());
    }
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    if (c->arch == LLAMA_ARCH_LLAMA) {
        json_object_set_new(o, "attention_bias", json_false());
        json_object_set_new(o, "mlp_bias", json_false());
        json_object_set_new(o, "pretraining_tp", json_integer(1));
    }
    if (c->arch != LLAMA_ARCH_LLAMA)
        json_object_set_new(o, "sliding_window", c->sliding_window > 0 ? json_integer(c->sliding_window) : json_null());
    json_object_set_new(o, "bos_token_id", c->bos_token_id >= 0 ? json_integer(c->bos_token_id) : json_null());
    if (c->n_eos == 0) {
        json_object_set_new(o, "eos_token_id", json_null());
    } else if (c->n_eos == 1) {
        json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_ids[0]));
    } else {
        json_t *e = json_array();
        for (int i = 0; i < c->n_eos; i++) json_array_append_new(e, json_integer(c->eos_token_ids[i]));
        json_object_set_new(o, "eos_token_id", e);
    }
    json_object_set_new(o, "pad_token_id", c->pad_token_id >= 0 ? json_integer(c->pad_token_id) : json_null());
    const char *dt = c->torch_dtype[0] ? c->torch_dtype : "float32";
    if (strcmp(dt, "float32") && strcmp(dt, "float16") && strcmp(dt, "bfloat16")) {
        json_decref(o);
        return err_set(err, CIS_EINVAL, "%s: torch_dtype '%s' must be float32, float16 or bfloat16", path, dt);
    }
    json_object_set_new(o, "torch_dtype", json_string(dt));
    json_object_set_new(o, "use_cache", json_true());
    json_object_set_new(o, "initializer_range", json_real(0.02));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!s) return err_set(err, CIS_EINVAL, "%s: cannot encode config", path);
    size_t len = strlen(s);
    char *s2 = xasprintf("%s\n", s);
    free(s);
    int rc = write_file_atomic(path, s2, len + 1, err);
    free(s2);
    return rc;
}
