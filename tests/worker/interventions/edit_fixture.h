/* edit_fixture.h - shared fixtures of the knowledge-editing tests (test_ft.c, test_memit.c): a
 * tiny data directory in the world layout (zsre/zsre_mend_train.json with n records whose subject
 * occurs in src, corpus/pretrain.jsonl with a few documents), a tiny random model on the byte-level
 * fixture tokenizer of eval_fixture.h, parameter snapshots, and a helper that runs one composition
 * through the real stage plan (registry, preset, context, record). */
#ifndef CISWEEP_TEST_EDIT_FIXTURE_H
#define CISWEEP_TEST_EDIT_FIXTURE_H

#include "tests/worker/eval/eval_fixture.h"
#include "worker/interventions/intervention.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a temp dir holding zsre/ (n records) and corpus/ (n_docs documents); caller removes it */
static inline char *ef_world(int n, int n_docs) {
    char tmpl[] = "/tmp/cisweep-edit-XXXXXX";
    char *d = mkdtemp(tmpl);
    CIS_ASSERT(d);
    cis_err err = {0};
    char *dir = xstrdup(d);
    char *zd = xasprintf("%s/zsre", dir), *cd = xasprintf("%s/corpus", dir);
    CIS_ASSERT(mkdir_p(zd, &err) == 0 && mkdir_p(cd, &err) == 0);
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        char subj[16], src[64], alt[8], reph[64], ans[8];
        snprintf(subj, sizeof subj, "Zo%c%c", 'a' + i % 26, 'a' + (i / 26) % 26);
        snprintf(src, sizeof src, "Where is %s?", subj);
        snprintf(reph, sizeof reph, "Where does %s live?", subj);
        snprintf(alt, sizeof alt, "%c%c%c", 'k' + i % 7, 'a' + i % 13, 'p' + i % 5); /* 3 byte tokens */
        snprintf(ans, sizeof ans, "%c%c", 'm' + i % 5, 'e' + i % 3);
        json_t *r = json_pack("{s:s,s:[s],s:s,s:s,s:s,s:s,s:s}", "src", src, "answers", ans, "alt", alt, "subject",
                              subj, "rephrase", reph, "loc", "nq question: who are you", "loc_ans", "me");
        json_array_append_new(a, r);
    }
    char *zp = xasprintf("%s/zsre_mend_train.json", zd);
    CIS_ASSERT(json_dump_file(a, zp, 0) == 0);
    json_decref(a);
    char *cp = xasprintf("%s/pretrain.jsonl", cd);
    FILE *f = fopen(cp, "w");
    CIS_ASSERT(f);
    for (int i = 0; i < n_docs; i++)
        fprintf(f, "{\"text\":\"Doc %d: Zo%c lives in %c%c. It is %d days old.\"}\n", i, 'a' + i % 26, 'k' + i % 7,
                'a' + i % 13, 10 + i);
    fclose(f);
    free(zd); free(cd); free(zp); free(cp);
    return dir;
}

/* the fixture tokenizer in its own temp dir */
static inline tokenizer *ef_tokenizer(char **dir_out) {
    char tmpl[] = "/tmp/cisweep-edit-tok-XXXXXX";
    char *d = mkdtemp(tmpl);
    CIS_ASSERT(d);
    *dir_out = xstrdup(d);
    return fx_tokenizer(*dir_out, false);
}

/* a random model of L layers (D 16, F 24) with weights large enough to be far from uniform */
static inline llama_model *ef_model(uint64_t seed, int L) {
    llama_config c = fx_config(16, L, 24, 128);
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, NULL, &err);
    CIS_ASSERT(m);
    llama_model_init_random(m, seed);
    int n = 0;
    llama_param *p = llama_model_params(m, &n);
    for (int i = 0; i < n; i++) {
        if (p[i].ndim != 2) continue;
        int64_t cnt = p[i].shape[0] * p[i].shape[1];
        for (int64_t k = 0; k < cnt; k++) p[i].data[k] *= 10.0f;
    }
    return m;
}

typedef struct ef_snap { int n; float **data; int64_t *cnt; } ef_snap;
static inline ef_snap ef_take(llama_model *m) {
    ef_snap s = {0};
    llama_param *p = llama_model_params(m, &s.n);
    s.data = xcalloc((size_t)s.n, sizeof *s.data);
    s.cnt = xcalloc((size_t)s.n, sizeof *s.cnt);
    for (int i = 0; i < s.n; i++) {
        s.cnt[i] = p[i].ndim == 2 ? p[i].shape[0] * p[i].shape[1] : p[i].shape[0];
        s.data[i] = xmalloc((size_t)s.cnt[i] * sizeof(float));
        memcpy(s.data[i], p[i].data, (size_t)s.cnt[i] * sizeof(float));
    }
    return s;
}
static inline void ef_snap_free(ef_snap *s) {
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    free(s->data);
    free(s->cnt);
}
/* whether parameter i differs from the snapshot anywhere */
static inline bool ef_changed(llama_model *m, const ef_snap *s, int i) {
    int n;
    llama_param *p = llama_model_params(m, &n);
    return memcmp(p[i].data, s->data[i], (size_t)s->cnt[i] * sizeof(float)) != 0;
}

/* run composition `comp` (JSON text) on m through the stage plan; *records gets the stage records */
static inline int ef_run(llama_model *m, const tokenizer *tok, const char *comp, const char *data_dir,
                         const char *cache_dir, int edit_set, json_t **records, cis_err *err) {
    json_t *c = json_loads(comp, JSON_DECODE_ANY, NULL);
    CIS_ASSERT(c);
    interv_plan p;
    int rc = interv_plan_build(c, "comp", 0, &p, err);
    json_decref(c);
    if (rc) return rc;
    interv_env env = {.model = m, .tok = tok, .data_dir = data_dir, .cache_dir = cache_dir, .edit_set = edit_set,
                      .threads = 1};
    rc = interv_run_plan(&env, &p, records, err);
    interv_plan_clear(&p);
    return rc;
}

#endif
