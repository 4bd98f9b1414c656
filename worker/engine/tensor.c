/* tensor.c - the small tensor type (see tensor.h). */
#include "worker/engine/tensor.h"
#include "worker/engine/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t tensor_dtype_size(tensor_dtype dt) { return dt == TENSOR_F32 ? 4 : 2; }

const char *tensor_dtype_name(tensor_dtype dt) {
    switch (dt) {
    case TENSOR_F32: return "F32";
    case TENSOR_BF16: return "BF16";
    case TENSOR_F16: return "F16";
    }
    return "?";
}

static bool shape_ok(int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) return false;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return false;
        if (shape[i] > 0 && n > INT64_MAX / 8 / shape[i]) return false;
        n *= shape[i];
    }
    *numel = n;
    return true;
}

static void fill_header(tensor *t, tensor_dtype dt, int ndim, const int64_t *shape, const char *name) {
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
}

tensor *tensor_new(tensor_dtype dt, int ndim, const int64_t *shape, const char *name) {
    int64_t n;
    if (!shape_ok(ndim, shape, &n)) return NULL;
    tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    fill_header(t, dt, ndim, shape, name);
    t->data = calloc(n ? (size_t)n : 1, tensor_dtype_size(dt));
    if (!t->data) { free(t); return NULL; }
    t->owner = true;
    return t;
}

tensor tensor_view(tensor_dtype dt, void *data, int ndim, const int64_t *shape, const char *name) {
    tensor t;
    memset(&t, 0, sizeof t);
    if (ndim < 0) ndim = 0;
    if (ndim > TENSOR_MAX_DIMS) ndim = TENSOR_MAX_DIMS;
    fill_header(&t, dt, ndim, shape, name);
    t.data = data;
    t.owner = false;
    return t;
}

void tensor_free(tensor **t) {
    if (!t || !*t) return;
    if ((*t)->owner) {
        if ((*t)->be) backend_free((*t)->be, (*t)->data);
        else free((*t)->data);
    }
    free(*t);
    *t = NULL;
}

int64_t tensor_numel(const tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_nbytes(const tensor *t) { return (size_t)tensor_numel(t) * tensor_dtype_size(t->dtype); }

float *tensor_f32(const tensor *t) { return t->dtype == TENSOR_F32 ? (float *)t->data : NULL; }

bool tensor_same_shape(const tensor *a, const tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

char *tensor_shape_str(const tensor *t, char *buf, size_t n) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}
