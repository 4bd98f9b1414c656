/* tensor.h - the engine's small tensor type: a dtype tag, up to 4 dimensions, row-major and
 * contiguous, a data pointer that the tensor may own, and a name (the Hugging Face parameter name
 * for weights). Ops in the backend table take raw float pointers plus sizes (llm.c style); this
 * type is what modules hand each other when the shape must travel with the data (checkpoint I/O,
 * hooks, tests). A tensor says which backend's memory holds its data (`be`, NULL = host; see
 * tensor_new_on in backend.h). F32 carries arithmetic everywhere; BF16 weights are accepted by the
 * matmul family where a backend supports them (backend_supports); F16 is an on-disk format. */
#ifndef CISWEEP_ENGINE_TENSOR_H
#define CISWEEP_ENGINE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 4

typedef enum tensor_dtype {
    TENSOR_F32 = 0,
    TENSOR_BF16 = 1,   /* tag only (2 bytes per element) */
    TENSOR_F16 = 2,    /* tag only (2 bytes per element) */
} tensor_dtype;

typedef struct tensor {
    tensor_dtype dtype;
    int ndim;                          /* 0..4 (0 = scalar) */
    int64_t shape[TENSOR_MAX_DIMS];    /* row-major, last index fastest; unused dims are 1 */
    void *data;                        /* numel * tensor_dtype_size(dtype) bytes */
    bool owner;                        /* tensor_free frees data */
    struct backend *be;                /* whose memory data lives in: NULL = host memory, else that
                                          backend instance's (device memory for cuda) */
    char name[128];                    /* e.g. "model.layers.0.mlp.down_proj.weight"; may be "" */
} tensor;

/* bytes per element of dtype (4 or 2). */
size_t tensor_dtype_size(tensor_dtype dt);
/* name of a dtype as safetensors spells it ("F32", "BF16", "F16"). */
const char *tensor_dtype_name(tensor_dtype dt);

/* tensor_new: a zero-filled owning tensor of the given shape; NULL if ndim is out of range, a dim
 * is negative, or the size overflows (never aborts on a bad shape). Caller frees with tensor_free. */
tensor *tensor_new(tensor_dtype dt, int ndim, const int64_t *shape, const char *name);
/* tensor_view: a non-owning tensor header over caller memory (returned by value). */
tensor tensor_view(tensor_dtype dt, void *data, int ndim, const int64_t *shape, const char *name);
/* tensor_free: frees the data if owned and the header (allocated by tensor_new); NULLs *t. */
void tensor_free(tensor **t);

int64_t tensor_numel(const tensor *t);
size_t tensor_nbytes(const tensor *t);
/* tensor_f32: the data as float*, or NULL when the dtype is not F32. */
float *tensor_f32(const tensor *t);
/* tensor_same_shape: same ndim and dims. */
bool tensor_same_shape(const tensor *a, const tensor *b);
/* tensor_shape_str: "[2, 3, 4]" into buf; returns buf. */
char *tensor_shape_str(const tensor *t, char *buf, size_t n);

#endif
