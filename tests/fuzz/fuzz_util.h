/* fuzz_util.h - helpers shared by the libFuzzer targets in tests/fuzz/: write the input to a
 * per-process scratch file (the parsers under test read files, as users give them), and abort
 * on a broken property so that libFuzzer records the input. */
#ifndef CISWEEP_FUZZ_UTIL_H
#define CISWEEP_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fuzz_dir: a scratch directory for this process (created once; the path is static storage) */
static inline const char *fuzz_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/cisweep-fuzz-%d", (int)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* fuzz_write: write data[0..n) to fuzz_dir()/name; returns the path (static storage, one per call
 * site is enough: the next call with the same name overwrites it) */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (n && fwrite(data, 1, n, f) != n) { perror(path); abort(); }
    fclose(f);
    return path;
}

/* fuzz_require: a property every input must keep (libFuzzer saves the input on abort) */
#define fuzz_require(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz property broken: %s: ", #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

#endif
