/* fuzz_grid.c - libFuzzer target: grid files (grid_load: parse, validate, expand). */
#include "coordinator/grid.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("grid.json", data, size);
    grid *g = NULL;
    cis_err e = {0};
    if (grid_load(path, GRID_ALLOW_SELFTEST, &g, &e) == 0) grid_free(&g);
    else fuzz_require(strstr(e.msg, "grid.json") != NULL, "the error must name the file: %s", e.msg);
    return 0;
}
