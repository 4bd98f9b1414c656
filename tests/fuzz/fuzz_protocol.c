/* fuzz_protocol.c - libFuzzer target: the wire protocol decoder (proto_decode + proto_validate)
 * on arbitrary frames. Input: byte 0 = number of frames (mod 9), then per frame a 2-byte
 * little-endian length and its bytes (a short input ends the frames early). A valid message
 * must survive a re-encode: its body, dumped and decoded again, is still valid. */
#include "common/protocol.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t nf = data[0] % 9, p = 1, k = 0;
    const void *fr[8];
    size_t ln[8];
    while (k < nf && k < 8) {
        size_t l = 0;
        if (p + 2 <= size) { l = (size_t)data[p] | (size_t)data[p + 1] << 8; p += 2; }
        if (l > size - p) l = size - p;
        fr[k] = data + p;
        ln[k] = l;
        p += l;
        k++;
    }
    proto_msg m = {0};
    cis_err e = {0};
    if (proto_decode(fr, ln, k, &m, &e) == 0) {
        char *text = json_dumps(m.body, JSON_COMPACT);
        fuzz_require(text != NULL, "a decoded body must dump");
        const char *name = proto_cmd_name(m.cmd);
        const void *f2[4] = {"", PROTO_TAG, name, text};
        size_t l2[4] = {0, strlen(PROTO_TAG), strlen(name), strlen(text)};
        proto_msg m2 = {0};
        cis_err e2 = {0};
        /* a re-encoded body can be longer than the original (escapes): only check within the cap */
        if (l2[3] <= proto_max_body(m.cmd))
            fuzz_require(proto_decode(f2, l2, 4, &m2, &e2) == 0, "re-encoded %s rejected: %s", name, e2.msg);
        proto_msg_clear(&m2);
        free(text);
    } else {
        fuzz_require(e.msg[0] != 0, "a rejection must say why");
    }
    proto_msg_clear(&m);
    return 0;
}
