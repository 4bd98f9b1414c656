/* test_spool.c - the worker's spool journal: put/ack survive a reopen (a worker restart), a torn
 * last record (crash while writing) and garbage lines are skipped, compaction keeps only what is
 * unacknowledged. Real files in a temp dir. */
#include "tests/testlib.h"
#include "worker/spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static json_t *result(int job, int att) {
    return json_pack("{s:i,s:i,s:{s:f}}", "job", job, "attempt", att, "rows", "acc", 0.5);
}

static void put_ack_reopen(void) {
    spool *sp = NULL;
    cis_err e = {0};
    CHECK(spool_open(dir, &sp, &e) == 0);
    CHECK_EQ_INT(spool_count(sp), 0);
    for (int j = 1; j <= 5; j++) {
        json_t *b = result(j, 1);
        CHECK(spool_put(sp, j, 1, PROTO_RESULT, b, &e) == 0);
        json_decref(b);
    }
    json_t *f = json_pack("{s:i,s:i,s:s}", "job", 6, "attempt", 2, "error", "boom");
    CHECK(spool_put(sp, 6, 2, PROTO_FAILED, f, &e) == 0);
    json_decref(f);
    spool_ack(sp, 2, 1);
    spool_ack(sp, 4, 1);
    spool_ack(sp, 99, 1); /* unknown: no-op */
    CHECK_EQ_INT(spool_count(sp), 4);
    spool_close(&sp);
    CHECK(sp == NULL);
    /* a restart: the unacknowledged ones come back in order */
    CHECK(spool_open(dir, &sp, &e) == 0);
    CHECK_EQ_INT(spool_count(sp), 4);
    int want[4] = {1, 3, 5, 6};
    for (int i = 0; i < 4 && i < (int)spool_count(sp); i++) CHECK_EQ_INT(spool_at(sp, (size_t)i)->job, want[i]);
    CHECK(spool_at(sp, 3)->cmd == PROTO_FAILED);
    CHECK_EQ_INT(spool_at(sp, 3)->attempt, 2);
    spool_close(&sp);
}

static void torn_and_garbage_lines_skipped(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/spool.journal", dir);
    FILE *fp = fopen(path, "a");
    fputs("X what is this\n", fp);
    fputs("P {\"cmd\":\"RESULT\",\"body\":{\"job\":0}}\n", fp);          /* invalid body */
    fputs("A 1 1\n", fp);
    fputs("P {\"cmd\":\"RESULT\",\"body\":{\"job\":7,\"attem", fp);      /* torn */
    fclose(fp);
    spool *sp = NULL;
    cis_err e = {0};
    CHECK(spool_open(dir, &sp, &e) == 0);
    CHECK_EQ_INT(spool_count(sp), 3); /* 3, 5, 6 */
    if (spool_count(sp) == 3) CHECK_EQ_INT(spool_at(sp, 0)->job, 3);
    spool_close(&sp);
    /* the journal was compacted: exactly the three P records */
    cis_err e2 = {0};
    char *text = read_file(path, NULL, &e2);
    int lines = 0;
    for (char *s = text; s && *s; s++) lines += *s == '\n';
    CHECK_EQ_INT(lines, 3);
    free(text);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/cisweep-spool-test-%d", (int)getpid());
    RUN(put_ack_reopen);
    RUN(torn_and_garbage_lines_skipped);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return test_summary();
}
