/* fuzz_tokenizer.c - libFuzzer target: tokenizer.json (tokenizer_load) and encoding. Input: the
 * tokenizer.json text, optionally followed by "\n#TEXT#\n" and a text to encode (without it a
 * fixed text with a NUL byte, spaces, an added-token look-alike and non-ASCII is used). A text
 * that encodes must decode. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "worker/engine/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

static const char SEP[] = "\n#TEXT#\n";
static const char DEFAULT_TEXT[] = "Hello world <s> caf\xc3\xa9\0 a\tb  12345 \xe2\x96\x81x";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memmem(data, size, SEP, sizeof SEP - 1);
    size_t jl = sep ? (size_t)(sep - data) : size;
    const char *text = sep ? (const char *)sep + sizeof SEP - 1 : DEFAULT_TEXT;
    size_t tl = sep ? size - jl - (sizeof SEP - 1) : sizeof DEFAULT_TEXT - 1;
    fuzz_write("tokenizer.json", data, jl);
    tokenizer *t = NULL;
    cis_err e = {0};
    if (tokenizer_load(fuzz_dir(), &t, &e) != 0) return 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(t, text, tl, true, &ids, &n, &e) == 0) {
        char *back = NULL;
        tokenizer_decode(t, ids, n, false, &back);
        free(back);
    }
    free(ids);
    tokenizer_free(t);
    return 0;
}
