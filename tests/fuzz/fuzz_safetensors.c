/* fuzz_safetensors.c - libFuzzer target: .safetensors files (st_open: header, offsets, dtypes;
 * then every tensor read as f32 when it is small). */
#include "worker/engine/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("model.safetensors", data, size);
    cis_err e = {0};
    st_file *f = st_open(path, &e);
    if (!f) {
        fuzz_require(e.msg[0] != 0, "a rejection must say why");
        return 0;
    }
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor_info *t = st_get(f, i);
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        if (n > (1 << 16)) continue;
        float *buf = malloc((n ? n : 1) * sizeof *buf);
        cis_err e2 = {0};
        st_read_f32(f, t->name, buf, n, &e2);
        free(buf);
    }
    st_close(&f);
    return 0;
}
