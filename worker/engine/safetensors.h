/* safetensors.h - reader and writer for the safetensors format (Hugging Face checkpoints).
 *
 * File layout: 8-byte little-endian header length N, N bytes of JSON header (an object: tensor
 * name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional "__metadata__"
 * object of string -> string), then the data region; offsets are relative to the data region.
 *
 * The reader mmaps the file read-only and validates the whole header before anything is handed
 * out: header length inside the file, JSON object, dtypes we implement (F32, F16, BF16; any
 * other dtype is refused naming tensor and file), shapes of non-negative integers, data_offsets
 * consistent with shape x dtype, inside the data region and not overlapping, unique names. No
 * accessor can read outside the mapping afterwards.
 *
 * The writer converts fp32 buffers to the dtype asked for, pads the header with spaces to a
 * multiple of 8 bytes, orders tensors as the Python package does (dtype, then name), and writes
 * through a temporary file renamed into place (a reader never sees half a file). */
#ifndef CISWEEP_ENGINE_SAFETENSORS_H
#define CISWEEP_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

typedef enum st_dtype {
    ST_F32 = 0,
    ST_F16 = 1,
    ST_BF16 = 2,
} st_dtype;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1000u * 1000u) /* same cap as the reference implementation */

/* one tensor of an open file; all pointers live as long as the st_file */
typedef struct st_tensor_info {
    const char *name;
    st_dtype dtype;
    int ndim;                       /* 0 (a scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];     /* elements per dimension, row-major */
    uint64_t numel;                 /* product of shape (1 for a scalar) */
    uint64_t offset;                /* byte offset of the data from the file's start */
    uint64_t nbytes;                /* numel * itemsize */
    const void *data;               /* nbytes of raw little-endian data inside the mapping; may be
                                       unaligned */
} st_tensor_info;

typedef struct st_file st_file;

/* dtype helpers */
const char *st_dtype_name(st_dtype d);           /* "F32", "F16", "BF16" */
size_t st_dtype_size(st_dtype d);                /* 4 or 2 */
int st_dtype_parse(const char *s, st_dtype *out); /* 0, or -1 for a dtype we do not implement */

/* st_open: map and validate `path`. Returns a handle the caller frees with st_close(&f), or NULL
 * with err naming the file (and tensor/field) on any problem. */
st_file *st_open(const char *path, cis_err *err);
/* st_close: unmap and free *f and set *f = NULL (NULL-safe). Pointers from st_get / st_find /
 * st_metadata die with it. */
void st_close(st_file **f);

const char *st_path(const st_file *f);
size_t st_count(const st_file *f);
/* st_get: the i-th tensor in data-offset order (i < st_count). */
const st_tensor_info *st_get(const st_file *f, size_t i);
/* st_find: the tensor called `name`, or NULL. */
const st_tensor_info *st_find(const st_file *f, const char *name);
/* st_metadata: the "__metadata__" value for key, or NULL. st_metadata_count/_at iterate. */
const char *st_metadata(const st_file *f, const char *key);
size_t st_metadata_count(const st_file *f);
void st_metadata_at(const st_file *f, size_t i, const char **key, const char **value);

/* st_read_f32: convert tensor `name` to fp32 into dst, which has room for n floats; n must equal
 * the tensor's element count. -1 with err when the tensor is absent or n disagrees. */
int st_read_f32(const st_file *f, const char *name, float *dst, size_t n, cis_err *err);
/* st_convert_f32: convert n elements of raw data in dtype d (any alignment) to fp32. */
void st_convert_f32(st_dtype d, const void *src, float *dst, size_t n);

/* one tensor to write. The values are fp32, row-major, numel = prod(shape); they come either
 * from `data` or, when data is NULL, from the n_parts buffers concatenated in order (a fused
 * tensor written from separate buffers without copying them; part_numel must sum to numel). */
#define ST_MAX_PARTS 4
typedef struct st_write_tensor {
    const char *name;
    st_dtype dtype;                 /* dtype on disk */
    int ndim;
    const int64_t *shape;           /* ndim entries */
    const float *data;
    int n_parts;
    const float *parts[ST_MAX_PARTS];
    size_t part_numel[ST_MAX_PARTS];
} st_write_tensor;

typedef struct st_kv { const char *key; const char *value; } st_kv;

/* st_write: write n tensors (and n_meta metadata pairs, may be 0) to `path` atomically.
 * -1 with err on a duplicate or empty name, a bad shape, or an I/O failure (then no file
 * is left behind, and an existing `path` is untouched). */
int st_write(const char *path, const st_write_tensor *t, size_t n, const st_kv *meta, size_t n_meta,
             cis_err *err);

#endif
