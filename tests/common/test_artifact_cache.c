/* test_artifact_cache.c - the shared artifact cache (common/artifact_cache.h) and the network-
 * filesystem check (common/fs_check.h): round trips, key errors, and races between two real
 * processes (fork) that produce the same artifacts at the same moment, round after round, with a
 * third process reading entries while they are published: exactly one writer wins each round, no
 * reader ever sees a partial entry, and nothing is left in tmp/. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include "common/artifact_cache.h"
#include "common/fs_check.h"
#include "tests/testlib.h"

#define ROUNDS 150
#define WRITERS 2
#define BYTES (192 * 1024)

static char root[256];

static void fill_round(unsigned char *b, size_t n, int r) {
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(r + 1);
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; b[i] = (unsigned char)x; }
}

static int count_dir(const char *p) {
    DIR *d = opendir(p);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void test_round_trip_and_key_errors(void) {
    acache *c = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(acache_open(root, &c, &err), 0);
    char key[65];
    bool stored = false;
    CHECK_EQ_INT(acache_put_bytes(c, "hello", 5, key, &stored, &err), 0);
    CHECK(stored);
    CHECK_EQ_STR(key, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    CHECK_EQ_INT(acache_put_bytes(c, "hello", 5, key, &stored, &err), 0);
    CHECK(!stored);   /* present already */
    char *path = NULL;
    CHECK_EQ_INT(acache_get(c, key, &path, &err), 1);
    size_t len = 0;
    char *text = read_file(path, &len, &err);
    CHECK(text && len == 5 && !memcmp(text, "hello", 5));
    free(text);
    free(path);
    CHECK_EQ_INT(acache_get(c, "00000000000000000000000000000000", &path, &err), 0);
    CHECK_EQ_INT(acache_get(c, "ABCDEF0123456789", &path, &err), -1);
    CHECK(strstr(err.msg, "not lowercase hex") != NULL);
    CHECK_EQ_INT(acache_get(c, "abc", &path, &err), -1);
    CHECK(strstr(err.msg, "expected 16-128 lowercase hex") != NULL);
    char *src = xasprintf("%s/src.bin", root);
    CHECK_EQ_INT(write_file_replace(src, "hello", 5, &err), 0);
    char key2[65];
    CHECK_EQ_INT(acache_put_file(c, src, key2, &stored, &err), 0);
    CHECK_EQ_STR(key2, key);
    CHECK_EQ_INT(acache_put_file(c, root, key2, &stored, &err), -1);
    CHECK(strstr(err.msg, "not a regular file") != NULL);
    CHECK_EQ_INT(acache_publish_dir(c, "0123456789abcdef", "/etc", &stored, &err), -1);
    CHECK(strstr(err.msg, "expected a folder from acache_tmpdir") != NULL);
    /* a recipe key (MEMIT's statistics: worker/interventions/memit_stats.c): the bytes under the
     * caller's key; the first entry stays (the recipe's bytes are interchangeable) */
    const char *rk = "feedfacefeedface0123";
    CHECK_EQ_INT(acache_put_bytes_key(c, rk, "first", 5, &stored, &err), 0);
    CHECK(stored);
    CHECK_EQ_INT(acache_put_bytes_key(c, rk, "other", 5, &stored, &err), 0);
    CHECK(!stored);
    CHECK_EQ_INT(acache_get(c, rk, &path, &err), 1);
    text = read_file(path, &len, &err);
    CHECK(text && len == 5 && !memcmp(text, "first", 5));
    CHECK(strstr(path, "/objects/fe/feedfacefeedface0123") != NULL);
    free(text);
    free(path);
    CHECK_EQ_INT(acache_put_bytes_key(c, "../../etc/passwd", "x", 1, &stored, &err), -1);
    CHECK(strstr(err.msg, "lowercase hex") != NULL);
    char *tmpd = xasprintf("%s/tmp", root);
    CHECK_EQ_INT(count_dir(tmpd), 0);
    free(tmpd);
    free(src);
    acache_close(&c);
    acache_close(&c);   /* idempotent */
    CHECK(c == NULL);
}

/* one writer process: every round, wait at the barrier, then put the round's bytes and publish the
 * round's directory; its wins go into wins[round] (shared memory) */
typedef struct {
    atomic_int arrive[ROUNDS];
    atomic_int file_wins[ROUNDS];
    atomic_int dir_wins[ROUNDS];
    atomic_int errors;
    atomic_int reader_bad;
    atomic_int reader_seen;
    atomic_int done;
} shared_t;

static void writer(shared_t *sh, unsigned char *buf) {
    acache *c = NULL;
    cis_err err = {0};
    if (acache_open(root, &c, &err)) { atomic_fetch_add(&sh->errors, 1); return; }
    for (int r = 0; r < ROUNDS; r++) {
        fill_round(buf, BYTES, r);
        atomic_fetch_add(&sh->arrive[r], 1);
        while (atomic_load(&sh->arrive[r]) < WRITERS) {}   /* both start the round together */
        char key[65];
        bool stored = false;
        if (acache_put_bytes(c, buf, BYTES, key, &stored, &err)) { fprintf(stderr, "  put: %s\n", err.msg); atomic_fetch_add(&sh->errors, 1); }
        if (stored) atomic_fetch_add(&sh->file_wins[r], 1);
        /* a directory entry keyed by the round's recipe: three files */
        char *t = acache_tmpdir(c, &err);
        if (!t) { atomic_fetch_add(&sh->errors, 1); continue; }
        for (int f = 0; f < 3; f++) {
            char *p = xasprintf("%s/part%d", t, f);
            if (write_file_replace(p, buf + f * 1000, 4096, &err)) atomic_fetch_add(&sh->errors, 1);
            free(p);
        }
        char dkey[65];
        snprintf(dkey, sizeof dkey, "%064x", r + 1);
        if (acache_publish_dir(c, dkey, t, &stored, &err)) { fprintf(stderr, "  publish: %s\n", err.msg); atomic_fetch_add(&sh->errors, 1); }
        if (stored) atomic_fetch_add(&sh->dir_wins[r], 1);
        free(t);
    }
    acache_close(&c);
}

/* the reader: whatever entry is visible must be complete (file: its sha256 is its key; dir: 3 parts of 4096) */
static void reader(shared_t *sh) {
    acache *c = NULL;
    cis_err err = {0};
    if (acache_open(root, &c, &err)) { atomic_fetch_add(&sh->errors, 1); return; }
    unsigned char *buf = malloc(BYTES);
    while (!atomic_load(&sh->done)) {
        for (int r = 0; r < ROUNDS; r++) {
            fill_round(buf, BYTES, r);
            char key[65];
            sha256_hex(buf, BYTES, key);
            char *p = NULL;
            if (acache_get(c, key, &p, &err) == 1) {
                size_t len = 0;
                char *data = read_file(p, &len, &err);
                char got[65] = "";
                if (data) sha256_hex(data, len, got);
                if (!data || strcmp(got, key)) atomic_fetch_add(&sh->reader_bad, 1);
                atomic_fetch_add(&sh->reader_seen, 1);
                free(data);
                free(p);
            }
            char dkey[65];
            snprintf(dkey, sizeof dkey, "%064x", r + 1);
            if (acache_get(c, dkey, &p, &err) == 1) {
                for (int f = 0; f < 3; f++) {
                    char *q = xasprintf("%s/part%d", p, f);
                    struct stat st;
                    if (stat(q, &st) != 0 || st.st_size != 4096) atomic_fetch_add(&sh->reader_bad, 1);
                    free(q);
                }
                atomic_fetch_add(&sh->reader_seen, 1);
                free(p);
            }
        }
    }
    free(buf);
    acache_close(&c);
}

static void test_two_processes_race(void) {
    shared_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED);
    if (sh == MAP_FAILED) return;
    memset(sh, 0, sizeof *sh);
    pid_t rd = fork();
    if (rd == 0) { reader(sh); _exit(0); }
    pid_t w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = fork();
        if (w[i] == 0) { unsigned char *b = malloc(BYTES); writer(sh, b); free(b); _exit(0); }
    }
    int st;
    for (int i = 0; i < WRITERS; i++) { CHECK(waitpid(w[i], &st, 0) == w[i]); CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); }
    atomic_store(&sh->done, 1);
    CHECK(waitpid(rd, &st, 0) == rd);
    CHECK_EQ_INT(atomic_load(&sh->errors), 0);
    int bad_file = 0, bad_dir = 0;
    for (int r = 0; r < ROUNDS; r++) {
        bad_file += atomic_load(&sh->file_wins[r]) != 1;
        bad_dir += atomic_load(&sh->dir_wins[r]) != 1;
    }
    CHECK_EQ_INT(bad_file, 0);   /* exactly one publisher per round */
    CHECK_EQ_INT(bad_dir, 0);
    CHECK_EQ_INT(atomic_load(&sh->reader_bad), 0);
    CHECK(atomic_load(&sh->reader_seen) > 0);
    fprintf(stderr, "  %d rounds x %d writers; the reader checked %d visible entries\n", ROUNDS, WRITERS, atomic_load(&sh->reader_seen));
    char *tmp = xasprintf("%s/tmp", root);
    CHECK_EQ_INT(count_dir(tmp), 0);   /* the losers cleaned up */
    free(tmp);
    /* every entry is complete at the end */
    acache *c = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(acache_open(root, &c, &err), 0);
    unsigned char *buf = malloc(BYTES);
    int incomplete = 0;
    for (int r = 0; r < ROUNDS; r++) {
        fill_round(buf, BYTES, r);
        char key[65], *p = NULL;
        sha256_hex(buf, BYTES, key);
        if (acache_get(c, key, &p, &err) != 1) { incomplete++; continue; }
        struct stat s2;
        incomplete += stat(p, &s2) != 0 || s2.st_size != BYTES;
        free(p);
    }
    CHECK_EQ_INT(incomplete, 0);
    free(buf);
    acache_close(&c);
    munmap(sh, sizeof *sh);
}

static void test_gc_tmp(void) {
    acache *c = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(acache_open(root, &c, &err), 0);
    char *t = acache_tmpdir(c, &err);
    CHECK(t != NULL);
    char *p = xasprintf("%s/x", t);
    CHECK_EQ_INT(write_file_replace(p, "x", 1, &err), 0);
    CHECK_EQ_INT(acache_gc_tmp(c, 3600, &err), 0);   /* young: kept */
    CHECK(access(p, F_OK) == 0);
    CHECK_EQ_INT(acache_gc_tmp(c, -1, &err), 1);     /* everything older than now: removed */
    CHECK(access(t, F_OK) != 0);
    free(p);
    free(t);
    acache_close(&c);
}

static void test_fs_check(void) {
    char name[64];
    cis_err err = {0};
    unsetenv("CISWEEP_FSTYPE_OVERRIDE");
    CHECK_EQ_INT(fs_kind(root, name, sizeof name, &err), 0);   /* the test's temp folder is local */
    char *db = xasprintf("%s/not-yet.db", root);
    CHECK_EQ_INT(fs_kind(db, name, sizeof name, &err), 0);     /* a file not created yet: its folder */
    CHECK_EQ_INT(fs_check_db_local(db, false, &err), 0);
    CHECK_EQ_INT(fs_kind("/no/such/folder/x.db", name, sizeof name, &err), -1);
    CHECK(strstr(err.msg, "/no/such/folder/x.db: statfs") != NULL);
    /* a real NFS mount cannot be made here: the override stands in for statfs's answer */
    setenv("CISWEEP_FSTYPE_OVERRIDE", "nfs", 1);
    CHECK_EQ_INT(fs_check_db_local(db, false, &err), -1);
    CHECK(strstr(err.msg, "network filesystem (nfs)") && strstr(err.msg, "--allow-network-db"));
    CHECK_EQ_INT(fs_check_db_local(db, true, &err), 0);
    unsetenv("CISWEEP_FSTYPE_OVERRIDE");
    free(db);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/cisweep-acache-XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    RUN(test_round_trip_and_key_errors);
    RUN(test_two_processes_race);
    RUN(test_gc_tmp);
    RUN(test_fs_check);
    char *cmd = xasprintf("rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    free(cmd);
    return test_summary();
}
