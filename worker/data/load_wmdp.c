/* load_wmdp.c - WMDP multiple-choice sets (cais/wmdp wmdp-bio / wmdp-cyber): a JSON array or
 * JSON lines of {"question": str, "choices": [4 str], "answer": int 0..3}; plus the mc_task
 * helpers shared with the MMLU loader. */
#include "worker/data/loaders.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void mc_task_clear(mc_task *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        free(t->q[i].question);
        for (int c = 0; c < 4; c++) free(t->q[i].choices[c]);
    }
    free(t->q); free(t->name); free(t->subject);
    memset(t, 0, sizeof *t);
}

void mc_tasks_free(mc_task **t, int n) {
    if (!t || !*t) return;
    for (int i = 0; i < n; i++) mc_task_clear(&(*t)[i]);
    free(*t);
    *t = NULL;
}

/* one record; `where` is "record 12" or "line 13" */
static int wmdp_record(json_t *o, const char *path, const char *where, mc_question *q, cis_err *err) {
    memset(q, 0, sizeof *q);
    if (!json_is_object(o)) return err_set(err, CIS_EINVAL, "%s: %s: expected a JSON object", path, where);
    json_t *qs = json_object_get(o, "question"), *ch = json_object_get(o, "choices"), *an = json_object_get(o, "answer");
    if (!qs) return err_set(err, CIS_EINVAL, "%s: %s: field \"question\" is missing", path, where);
    if (!json_is_string(qs)) return err_set(err, CIS_EINVAL, "%s: %s: field \"question\": expected a string", path, where);
    if (!ch) return err_set(err, CIS_EINVAL, "%s: %s: field \"choices\" is missing", path, where);
    if (!json_is_array(ch) || json_array_size(ch) != 4)
        return err_set(err, CIS_EINVAL, "%s: %s: field \"choices\": expected an array of 4 strings (got %s%zu)", path, where,
                       json_is_array(ch) ? "" : "a non-array, size ", json_is_array(ch) ? json_array_size(ch) : (size_t)0);
    for (int c = 0; c < 4; c++)
        if (!json_is_string(json_array_get(ch, c)))
            return err_set(err, CIS_EINVAL, "%s: %s: field \"choices\"[%d]: expected a string", path, where, c);
    if (!an) return err_set(err, CIS_EINVAL, "%s: %s: field \"answer\" is missing", path, where);
    if (!json_is_integer(an) || json_integer_value(an) < 0 || json_integer_value(an) > 3)
        return err_set(err, CIS_EINVAL, "%s: %s: field \"answer\": expected an integer 0..3", path, where);
    q->question = xstrdup(json_string_value(qs));
    for (int c = 0; c < 4; c++) q->choices[c] = xstrdup(json_string_value(json_array_get(ch, c)));
    q->answer = (int)json_integer_value(an);
    return 0;
}

int wmdp_load(const char *path, const char *name, const char *subject, mc_task *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    size_t len = 0;
    char *data = read_file(path, &len, err);
    if (!data) return -1;
    size_t p = 0;
    while (p < len && (data[p] == ' ' || data[p] == '\n' || data[p] == '\r' || data[p] == '\t')) p++;
    int rc = 0, cap = 0;
    if (p == len) { free(data); return err_set(err, CIS_EINVAL, "%s: empty file (expected WMDP questions)", path); }
    out->name = xstrdup(name);
    out->subject = xstrdup(subject);
    char where[48];
    if (data[p] == '[') {
        json_error_t je;
        json_t *root = json_loadb(data, len, 0, &je);
        if (!root) { rc = err_set(err, CIS_EINVAL, "%s: line %d: invalid JSON: %s", path, je.line, je.text); goto out; }
        size_t n = json_array_size(root);
        out->q = xcalloc(n ? n : 1, sizeof *out->q);
        for (size_t i = 0; i < n && !rc; i++) {
            snprintf(where, sizeof where, "record %zu", i);
            rc = wmdp_record(json_array_get(root, i), path, where, &out->q[out->n], err);
            if (!rc) out->n++;
        }
        json_decref(root);
    } else {
        int line = 0;
        size_t pos = 0;
        while (pos < len && !rc) {
            line++;
            size_t e = pos;
            while (e < len && data[e] != '\n') e++;
            size_t s = pos;
            pos = e + 1;
            size_t w = s;
            while (w < e && (data[w] == ' ' || data[w] == '\t' || data[w] == '\r')) w++;
            if (w == e) continue;
            json_error_t je;
            json_t *o = json_loadb(data + s, e - s, 0, &je);
            if (!o) { rc = err_set(err, CIS_EINVAL, "%s: line %d: invalid JSON: %s", path, line, je.text); break; }
            if (out->n == cap) { cap = cap ? 2 * cap : 64; out->q = xrealloc(out->q, (size_t)cap * sizeof *out->q); }
            snprintf(where, sizeof where, "line %d", line);
            rc = wmdp_record(o, path, where, &out->q[out->n], err);
            if (!rc) out->n++;
            json_decref(o);
        }
    }
    if (!rc && out->n == 0) rc = err_set(err, CIS_EINVAL, "%s: no questions", path);
out:
    free(data);
    if (rc) mc_task_clear(out);
    return rc;
}
