/* cpu_rows.c - gathers and scatters of whole token rows on the cpu backend: the head's selected
 * rows, KV-cache writes, hook edits and gradient stops (the loops model_forward.c and
 * model_generate.c used to run on host memory themselves). Rows are processed in index order. */
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"

void cpu_rows_gather(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (int64_t)i * D, src + (int64_t)rows[i] * D, (size_t)D * sizeof(float));
}

void cpu_rows_scatter(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D,
                      backend_rows_mode mode) {
    for (int i = 0; i < n; i++) {
        float *d = dst + (int64_t)rows[i] * D;
        const float *s = src + (int64_t)i * D;
        if (mode == ROWS_ADD)
            for (int j = 0; j < D; j++) d[j] += s[j];
        else
            memcpy(d, s, (size_t)D * sizeof(float));
    }
}

void cpu_rows_fill(backend *be, float *dst, const int32_t *rows, int n, int D, float value) {
    for (int i = 0; i < n; i++) {
        float *d = dst + (int64_t)rows[i] * D;
        if (value == 0.0f) memset(d, 0, (size_t)D * sizeof(float));
        else for (int j = 0; j < D; j++) d[j] = value;
    }
}
