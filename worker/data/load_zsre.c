/* load_zsre.c - zsRE records as EasyEdit distributes them (zsre_mend_train.json: a JSON array of
 * {src, answers, alt, subject, rephrase, loc, loc_ans}) and the composable edit-set split:
 * Python random.seed(100); random.shuffle(records); edit set k = [(k-1)*50, k*50), QA = [500, 1000)
 * (paper.md §6). Python's Mersenne Twister shuffle is reproduced bit for bit (rng_py_permutation,
 * common/rng.h) so that no Python is needed; DIR/zsre/edit_sets.json, when present, is used
 * instead (and must agree). */
#include "worker/data/loaders.h"
#include "common/rng.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- records ---------------------------------------------------------------------------------- */

static void rec_clear(zsre_record *r) {
    free(r->src); free(r->alt); free(r->subject); free(r->rephrase); free(r->loc); free(r->loc_ans);
    for (int i = 0; i < r->n_answers; i++) free(r->answers[i]);
    free(r->answers);
}

void zsre_clear(zsre_data *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) rec_clear(&d->rec[i]);
    free(d->rec);
    memset(d, 0, sizeof *d);
}

static int get_str(json_t *o, const char *path, int i, const char *key, char **dst, cis_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v) return err_set(err, CIS_EINVAL, "%s: record %d: field \"%s\" is missing", path, i, key);
    if (!json_is_string(v)) return err_set(err, CIS_EINVAL, "%s: record %d: field \"%s\": expected a string", path, i, key);
    *dst = xstrdup(json_string_value(v));
    return 0;
}

int zsre_load(const char *path, zsre_data *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return err_set(err, CIS_EINVAL, "%s: line %d: invalid JSON: %s", path, je.line, je.text);
    if (!json_is_array(root)) { json_decref(root); return err_set(err, CIS_EINVAL, "%s: expected a JSON array of records", path); }
    size_t n = json_array_size(root);
    if (n == 0) { json_decref(root); return err_set(err, CIS_EINVAL, "%s: no records (empty array)", path); }
    out->rec = xcalloc(n, sizeof *out->rec);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *o = json_array_get(root, i);
        zsre_record *r = &out->rec[i];
        out->n = (int)i + 1;
        if (!json_is_object(o)) { rc = err_set(err, CIS_EINVAL, "%s: record %zu: expected a JSON object", path, i); break; }
        static const char *keys[6] = {"src", "alt", "subject", "rephrase", "loc", "loc_ans"};
        char **dst[6] = {&r->src, &r->alt, &r->subject, &r->rephrase, &r->loc, &r->loc_ans};
        for (int k = 0; k < 6 && !rc; k++) rc = get_str(o, path, (int)i, keys[k], dst[k], err);
        if (rc) break;
        json_t *a = json_object_get(o, "answers");
        if (!a) { rc = err_set(err, CIS_EINVAL, "%s: record %zu: field \"answers\" is missing", path, i); break; }
        if (!json_is_array(a) || json_array_size(a) == 0) {
            rc = err_set(err, CIS_EINVAL, "%s: record %zu: field \"answers\": expected a non-empty array of strings", path, i);
            break;
        }
        r->answers = xcalloc(json_array_size(a), sizeof *r->answers);
        for (size_t k = 0; k < json_array_size(a); k++) {
            json_t *s = json_array_get(a, k);
            if (!json_is_string(s)) {
                rc = err_set(err, CIS_EINVAL, "%s: record %zu: field \"answers\"[%zu]: expected a string", path, i, k);
                break;
            }
            r->answers[r->n_answers++] = xstrdup(json_string_value(s));
        }
    }
    json_decref(root);
    if (rc) zsre_clear(out);
    return rc;
}

/* ---- the edit-set split ----------------------------------------------------------------------- */

static int split_from_file(const char *path, int n_records, int k, int32_t **idx, int *n, cis_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return err_set(err, CIS_EINVAL, "%s: line %d: invalid JSON: %s", path, je.line, je.text);
    char key[16];
    snprintf(key, sizeof key, "%d", k);
    json_t *list = k == 0 ? json_object_get(root, "qa") : json_object_get(json_object_get(root, "sets"), key);
    int rc = 0;
    if (!json_is_array(list)) {
        rc = k == 0 ? err_set(err, CIS_EINVAL, "%s: field \"qa\": expected an array of record indices", path)
                    : err_set(err, CIS_EINVAL, "%s: field \"sets\".\"%d\": expected an array of record indices", path, k);
    } else {
        size_t m = json_array_size(list);
        *idx = xmalloc((m ? m : 1) * sizeof **idx);
        for (size_t i = 0; i < m; i++) {
            json_t *v = json_array_get(list, i);
            json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
            if (x < 0 || x >= n_records) {
                rc = err_set(err, CIS_EINVAL, "%s: %s%s[%zu]: expected a record index in 0..%d", path,
                             k ? "sets." : "qa", k ? key : "", i, n_records - 1);
                free(*idx); *idx = NULL;
                break;
            }
            (*idx)[i] = (int32_t)x;
        }
        if (!rc) *n = (int)m;
    }
    json_decref(root);
    return rc;
}

int zsre_split(const char *edit_sets_json, int n_records, int k, int size, int32_t **idx, int *n, cis_err *err) {
    *idx = NULL; *n = 0;
    if (k < 0) return err_set(err, CIS_EINVAL, "zsre: edit set %d: expected 1.. (or 0 for the QA set)", k);
    struct stat sb;
    if (edit_sets_json && stat(edit_sets_json, &sb) == 0) return split_from_file(edit_sets_json, n_records, k, idx, n, err);
    int lo = k == 0 ? 500 : (k - 1) * size, hi = k == 0 ? 1000 : k * size;
    if (hi > n_records) hi = n_records;
    if (lo >= hi)
        return err_set(err, CIS_EINVAL, "zsre: %s %d needs records [%d, %d) of the shuffled list but there are only %d",
                       k ? "edit set" : "QA set", k, lo, k == 0 ? 1000 : k * size, n_records);
    int32_t *perm = xmalloc((size_t)n_records * sizeof *perm);
    rng_py_permutation(100, perm, n_records);
    *idx = xmalloc((size_t)(hi - lo) * sizeof **idx);
    memcpy(*idx, perm + lo, (size_t)(hi - lo) * sizeof **idx);
    *n = hi - lo;
    free(perm);
    return 0;
}
