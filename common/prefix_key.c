/* prefix_key.c - the identity of a composition's stage prefix (see prefix_key.h). */
#include "common/prefix_key.h"
#include "common/spec.h"

#include <stdlib.h>
#include <string.h>

/* methods whose stage ignores the job's seed, and the seed they use instead (upstream:
 * gptq's C4 sample is hard-coded to seed 0; awq's pile-val shuffle to 42). Keep in step with
 * worker/interventions/gptq.c (calib_seed = 0) and awq.c (calib_seed 42). */
static const struct { const char *method; long long seed; } FIXED_SEED[] = {
    {"gptq", 0},
    {"awq", 42},
};

bool prefix_kept(int k, int n_stages) {
    return k >= 1 && k <= PREFIX_MAX_K && (k < n_stages || (k == 1 && n_stages == 1));
}

int prefix_effective_edit_set(int edit_set) { return edit_set >= 1 ? edit_set : 1; }

static const long long *fixed_seed(const char *method) {
    for (size_t i = 0; method && i < sizeof FIXED_SEED / sizeof FIXED_SEED[0]; i++)
        if (!strcmp(method, FIXED_SEED[i].method)) return &FIXED_SEED[i].seed;
    return NULL;
}

long long prefix_stage_seed(const char *method, int edit_set) {
    const long long *f = fixed_seed(method);
    return f ? *f : prefix_effective_edit_set(edit_set);
}

static const char *stage_method(json_t *canonical, int i) {
    return json_string_value(json_object_get(json_array_get(canonical, (size_t)i), "method"));
}

bool prefix_seed_free(json_t *canonical, int k) {
    for (int i = 0; i < k; i++)
        if (!fixed_seed(stage_method(canonical, i))) return false;
    return true;
}

char *prefix_text(json_t *canonical, int k) {
    size_t cap = 64, n = 1;
    char *out = xmalloc(cap);
    out[0] = '[';
    for (int i = 0; i < k; i++) {
        char *s = spec_dump_canonical(json_array_get(canonical, (size_t)i));
        size_t l = strlen(s);
        if (n + l + 2 > cap) { cap = 2 * (n + l + 2); out = xrealloc(out, cap); }
        if (i) out[n++] = ',';
        memcpy(out + n, s, l);
        n += l;
        free(s);
    }
    out[n] = 0;
    return out;
}

int prefix_key(const char *model_path, json_t *canonical, int k, int edit_set, const char *policy,
               char hex[PREFIX_KEY_HEX + 1], cis_err *err) {
    if (!json_is_array(canonical) || k < 1 || (size_t)k > json_array_size(canonical))
        return err_set(err, CIS_EINVAL, "prefix key: k = %d is outside 1..%zu stages", k, json_array_size(canonical));
    for (int i = 0; i < k; i++)
        if (!stage_method(canonical, i))
            return err_set(err, CIS_EINVAL, "prefix key: stage %d has no method", i + 1);
    char *stages = prefix_text(canonical, k);
    size_t cap = 32 * (size_t)k + 16, n = 0;
    char *seeds = xmalloc(cap);
    seeds[0] = 0;
    for (int i = 0; i < k; i++)
        n += (size_t)snprintf(seeds + n, cap - n, "%s%lld", i ? "," : "", prefix_stage_seed(stage_method(canonical, i), edit_set));
    char *text = xasprintf("cisweep-prefix-v1\nmodel=%s\nstages=%s]\nseeds=%s\npolicy=%s\n", model_path ? model_path : "",
                           stages, seeds, k >= 2 ? (policy && *policy ? policy : "end") : "-");
    sha256_hex(text, strlen(text), hex);
    free(text);
    free(seeds);
    free(stages);
    return 0;
}

bool prefix_key_valid(const char *s) {
    if (!s || strlen(s) != PREFIX_KEY_HEX) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}
