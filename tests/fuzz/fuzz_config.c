/* fuzz_config.c - libFuzzer target: config.json (llama_config_load). Property: a config that
 * loads is saved (llama_config_save) and loads again with the same shape. */
#include "worker/engine/config.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("config.json", data, size);
    llama_config c;
    memset(&c, 0, sizeof c);
    cis_err e = {0};
    if (llama_config_load(path, &c, &e) != 0) {
        fuzz_require(strstr(e.msg, "config.json") != NULL, "the error must name the file: %s", e.msg);
        return 0;
    }
    char out[512];
    snprintf(out, sizeof out, "%s/saved.json", fuzz_dir());
    cis_err e2 = {0};
    fuzz_require(llama_config_save(out, &c, &e2) == 0, "save: %s", e2.msg);
    llama_config c2;
    memset(&c2, 0, sizeof c2);
    fuzz_require(llama_config_load(out, &c2, &e2) == 0, "a saved config must load again: %s", e2.msg);
    fuzz_require(c2.hidden_size == c.hidden_size && c2.num_hidden_layers == c.num_hidden_layers, "shape changed");
    return 0;
}
