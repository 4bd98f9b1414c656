/* load_c4.c - the C4 calibration shard (en/c4-train.00000-of-01024.json.gz): gzipped JSON lines
 * {"text","timestamp","url"}; only "text" is kept (algorithms.md §1.2). */
#include "worker/data/loaders.h"

int c4_load(const char *path, int max_docs, text_docs *out, cis_err *err) {
    return jsonl_text_load(path, "text", max_docs, out, err);
}
