/* load_pile.c - the pile-val calibration set (AWQ, algorithms.md §1.2): val.jsonl or
 * val.jsonl.zst, JSON lines {"text","meta":{"pile_set_name"}}; only "text" is kept. */
#include "worker/data/loaders.h"

int pile_load(const char *path, int max_docs, text_docs *out, cis_err *err) {
    return jsonl_text_load(path, "text", max_docs, out, err);
}
