/* curve.h - CURVE keys for the coordinator socket (ZeroMQ's CurveZMQ: encryption plus, through a
 * ZAP handler, an allow-list of worker public keys).
 *
 * Key files are text, one `name = value` per line, '#' starts a comment, keys in Z85 (40 chars):
 *   NAME.pub   public-key = <z85>                       (give it to the other side)
 *   NAME.key   public-key = <z85>\nsecret-key = <z85>   (mode 0600; never leaves its host)
 * An allow-list is a directory (every *.pub file in it; the file name without .pub names the key)
 * or a file with one key per line (`public-key = <z85>`, or a bare <z85>, optionally followed by
 * a name). */
#ifndef CISWEEP_CURVE_H
#define CISWEEP_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

#define CURVE_Z85_LEN 40

/* curve_keygen: a new key pair in BASE.pub and BASE.key (BASE.key created 0600). Refuses to
 * overwrite either file. 0, or -1 with err naming the file. */
int curve_keygen(const char *base, cis_err *err);

/* curve_load_secret: read public-key and secret-key (Z85, NUL-terminated) from a .key file. */
int curve_load_secret(const char *path, char pub[CURVE_Z85_LEN + 1], char sec[CURVE_Z85_LEN + 1], cis_err *err);

/* curve_load_public: read public-key from a .pub (or .key) file. */
int curve_load_public(const char *path, char pub[CURVE_Z85_LEN + 1], cis_err *err);

typedef struct curve_allow {
    size_t n;
    uint8_t (*keys)[32];   /* [n] binary public keys, owned */
    char (*names)[64];     /* [n] names (file name or the name on the line), owned */
} curve_allow;

/* curve_allow_load: read an allow-list (a directory of *.pub files, or a file of keys) into *out
 * (caller-owned struct; clear with curve_allow_clear). A malformed key is an error naming the
 * file and line; an empty list is an error too (it would admit nobody). */
int curve_allow_load(const char *path, curve_allow *out, cis_err *err);
void curve_allow_clear(curve_allow *a);
/* curve_allow_find: the name of the key (32 bytes) when listed, else NULL (borrowed) */
const char *curve_allow_find(const curve_allow *a, const uint8_t key[32]);

#endif
