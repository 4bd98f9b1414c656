/* fuzz_spec.c - libFuzzer target: composition specs (spec_normalize, the canonical form, and
 * spec_parse of the canonical text), as they arrive in a grid file or a JOB message. */
#include "common/spec.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t je;
    json_t *j = json_loadb((const char *)data, size, 0, &je);
    if (!j) return 0;
    cis_err e = {0};
    json_t *norm = spec_normalize(j, "fuzz", true, &e);
    if (norm) {
        char *canon = spec_dump_canonical(norm);
        fuzz_require(canon != NULL, "a normalized spec must dump");
        spec_stage *st = NULL;
        size_t n = 0;
        cis_err e2 = {0};
        fuzz_require(spec_parse(canon, true, &st, &n, &e2) == 0, "canonical spec %s rejected: %s", canon, e2.msg);
        spec_stages_free(&st, n);
        free(canon);
        json_decref(norm);
    } else {
        fuzz_require(e.msg[0] != 0, "a rejection must say why");
    }
    json_decref(j);
    return 0;
}
