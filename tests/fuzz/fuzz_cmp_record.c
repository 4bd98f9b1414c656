/* fuzz_cmp_record.c - libFuzzer target: compression record files (cmp_record.h: header, tensor
 * entries, payload lengths, codes, scales, zero points, permutations, raw entries, the trailer).
 * Each input is decoded as it is, then again with its trailer's sha256 recomputed so that the
 * fuzzer reaches the field checks behind the checksum; a record that decodes is summarised and its
 * quant tensors dequantized. */
#include "worker/interventions/cmp_record.h"
#include "tests/fuzz/fuzz_util.h"

#include <stdlib.h>
#include <string.h>

static void use(const cmprec *r) {
    json_decref(cmprec_summary(r));
    for (int k = 0; k < r->n; k++) {
        const cmprec_tensor *t = &r->t[k];
        if (r->kind != CMPREC_QUANT || t->raw || t->rows * t->cols > (1 << 16)) continue;
        float *out = malloc(sizeof(float) * (size_t)(t->rows * t->cols));
        cmprec_dequant(r, t, out);
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int pass = 0; pass < 2; pass++) {
        uint8_t *b = malloc(size ? size : 1);
        memcpy(b, data, size);
        if (pass == 1) {
            if (size < CMPREC_HEADER_BYTES + CMPREC_TRAILER_BYTES) { free(b); break; }
            char hex[65];
            sha256_hex(b, size - CMPREC_TRAILER_BYTES, hex);
            memcpy(b + size - CMPREC_TRAILER_BYTES, CMPREC_END, 8);
            memcpy(b + size - 64, hex, 64);
        }
        cmprec *r = NULL;
        cis_err e = {0};
        if (cmprec_decode(b, size, "fuzz.cisrec", &r, &e) == 0) use(r);
        else fuzz_require(e.msg[0] != 0 && strstr(e.msg, "fuzz.cisrec"), "a rejection must name the file and say why");
        cmprec_free(&r);
        free(b);
    }
    return 0;
}
