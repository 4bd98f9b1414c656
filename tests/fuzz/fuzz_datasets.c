/* fuzz_datasets.c - libFuzzer target: every dataset loader on the same bytes (MMLU CSV, WMDP JSON
 * / JSON lines, zsRE JSON, WikiText raw, JSON-lines text). Each either loads or says what was
 * wrong, naming the file; nothing leaks (LeakSanitizer), nothing reads out of bounds. */
#include "worker/data/loaders.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("data.txt", data, size);
    cis_err e = {0};
    mc_task t;
    if (mmlu_load_csv(path, "fuzz_test", &t, &e) == 0) mc_task_clear(&t);
    else { fuzz_require(strstr(e.msg, "data.txt") != NULL, "mmlu: %s", e.msg); mc_task_clear(&t); }
    memset(&e, 0, sizeof e);
    if (wmdp_load(path, "wmdp", "bio", &t, &e) == 0) mc_task_clear(&t);
    else mc_task_clear(&t);
    zsre_data z;
    memset(&z, 0, sizeof z);
    zsre_load(path, &z, &e);
    zsre_clear(&z);
    char *text = NULL;
    size_t len = 0;
    if (wikitext_load(path, &text, &len, &e) == 0) free(text);
    text_docs d;
    memset(&d, 0, sizeof d);
    jsonl_text_load(path, "text", 16, &d, &e);
    text_docs_clear(&d);
    return 0;
}
