/* compress_fixture.h - the compression tests' data directory: a C4 shard (60 documents of 40
 * words) and pile-val lines (300 of 1-6 words) from a fixed 20-word vocabulary and a fixed LCG
 * (the same bytes every run), for the calibration samplers, and the fixture tokenizer in DIR/tok.
 * Used by test_compress_methods.c and test_cmp_record.c. */
#ifndef CISWEEP_TESTS_COMPRESS_FIXTURE_H
#define CISWEEP_TESTS_COMPRESS_FIXTURE_H

#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"

#include <stdio.h>
#include <sys/stat.h>
#include <zlib.h>

static void cmp_fx_word(char *buf, size_t *o, uint32_t *s) {
    static const char *W[] = {"the", "model", "river", "stone", "light", "seven", "north", "paper", "quiet", "blue",
                              "garden", "signal", "winter", "copper", "market", "a", "of", "and", "was", "in"};
    *s = *s * 1103515245u + 12345u;
    *o += (size_t)sprintf(buf + *o, "%s%s", *o ? " " : "", W[(*s >> 8) % 20]);
}

/* cmp_fx_write_data: dir/c4/c4-train.00000-of-01024.json.gz, dir/pile/val.jsonl and the fixture
 * tokenizer in dir/tok (returned) */
static tokenizer *cmp_fx_write_data(const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/c4", dir);
    mkdir(dir, 0755);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/c4/c4-train.00000-of-01024.json.gz", dir);
    gzFile gz = gzopen(p, "wb");
    CIS_ASSERT(gz);
    uint32_t s = 7;
    for (int d = 0; d < 60; d++) {
        char buf[2048];
        size_t o = 0;
        for (int i = 0; i < 40; i++) cmp_fx_word(buf, &o, &s);
        gzprintf(gz, "{\"text\": \"%s\", \"timestamp\": \"2019\", \"url\": \"u\"}\n", buf);
    }
    gzclose(gz);
    snprintf(p, sizeof p, "%s/pile", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/pile/val.jsonl", dir);
    FILE *f = fopen(p, "w");
    CIS_ASSERT(f);
    for (int d = 0; d < 300; d++) {
        char buf[2048];
        size_t o = 0;
        int nw = 1 + (int)(s % 6);
        for (int i = 0; i < nw; i++) cmp_fx_word(buf, &o, &s);
        fprintf(f, "{\"text\": \"%s\", \"meta\": {}}\n", buf);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/tok", dir);
    mkdir(p, 0755);
    return fx_tokenizer(p, false);
}

#endif
