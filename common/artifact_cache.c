/* artifact_cache.c - the shared content-addressed artifact cache (see artifact_cache.h): unique
 * temporary names, fsync, then one link(2) or rename(2) to publish; the loser of a race drops its
 * copy. */
#include "common/artifact_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct acache {
    char *root;     /* owned */
    char *objects;  /* owned: ROOT/objects */
    char *tmp;      /* owned: ROOT/tmp */
};

static atomic_uint tmp_counter;

int acache_open(const char *root, acache **out, cis_err *err) {
    *out = NULL;
    if (!root || !*root) return err_set(err, CIS_EINVAL, "artifact cache: the root folder is empty (expected a path)");
    char *objects = xasprintf("%s/objects", root), *tmp = xasprintf("%s/tmp", root);
    if (mkdir_p(objects, err) || mkdir_p(tmp, err)) {
        err_prefix(err, "artifact cache %s", root);
        free(objects); free(tmp);
        return -1;
    }
    acache *c = xcalloc(1, sizeof *c);
    c->root = xstrdup(root);
    c->objects = objects;
    c->tmp = tmp;
    *out = c;
    return 0;
}

void acache_close(acache **c) {
    if (!c || !*c) return;
    free((*c)->root); free((*c)->objects); free((*c)->tmp);
    free(*c);
    *c = NULL;
}

bool acache_key_ok(const char *key, cis_err *err) {
    size_t n = key ? strlen(key) : 0;
    if (n < 16 || n > 128) {
        err_set(err, CIS_EINVAL, "artifact cache: key \"%.40s\" has %zu characters (expected 16-128 lowercase hex)", key ? key : "", n);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) {
            err_set(err, CIS_EINVAL, "artifact cache: key \"%.40s\": character %zu '%c' is not lowercase hex", key, i, key[i]);
            return false;
        }
    return true;
}

char *acache_path(const acache *c, const char *key) {
    return xasprintf("%s/%.2s/%s", c->objects, key, key);
}

int acache_get(const acache *c, const char *key, char **path_out, cis_err *err) {
    *path_out = NULL;
    if (!acache_key_ok(key, err)) return -1;
    char *p = acache_path(c, key);
    struct stat st;
    if (stat(p, &st) == 0) { *path_out = p; return 1; }
    int e = errno;
    free(p);
    if (e == ENOENT) return 0;
    return err_set(err, CIS_EIO, "artifact cache %s: stat %s: %s", c->root, key, strerror(e));
}

/* a unique temporary name under ROOT/tmp: host.pid.counter.time */
static char *tmp_name(const acache *c) {
    char host[64] = "h";
    gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++) if (*p == '/') *p = '_';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return xasprintf("%s/%s.%d.%u.%lld%09ld", c->tmp, host, (int)getpid(), atomic_fetch_add(&tmp_counter, 1),
                     (long long)ts.tv_sec, ts.tv_nsec);
}

static int shard_dir(const acache *c, const char *key, cis_err *err) {
    char *d = xasprintf("%s/%.2s", c->objects, key);
    int rc = 0;
    if (mkdir(d, 0775) != 0 && errno != EEXIST) rc = err_set(err, CIS_EIO, "artifact cache %s: mkdir %s: %s", c->root, d, strerror(errno));
    free(d);
    return rc;
}

int acache_put_bytes(const acache *c, const void *data, size_t len, char key_out[65], bool *stored, cis_err *err) {
    sha256_hex(data, len, key_out);
    return acache_put_bytes_key(c, key_out, data, len, stored, err);
}

int acache_put_bytes_key(const acache *c, const char *key, const void *data, size_t len, bool *stored, cis_err *err) {
    if (stored) *stored = false;
    if (!acache_key_ok(key, err)) return -1;
    char *final = acache_path(c, key);
    struct stat st;
    if (stat(final, &st) == 0) { free(final); return 0; }   /* present: the same recipe's bytes */
    if (shard_dir(c, key, err)) { free(final); return -1; }
    char *tmp = tmp_name(c);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) { err_set(err, CIS_EIO, "artifact cache %s: create %s: %s", c->root, tmp, strerror(errno)); goto out; }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { err_set(err, CIS_EIO, "artifact cache %s: write %s: %s", c->root, tmp, strerror(errno)); close(fd); unlink(tmp); goto out; }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) { err_set(err, CIS_EIO, "artifact cache %s: fsync %s: %s", c->root, tmp, strerror(errno)); unlink(tmp); goto out; }
    /* link(2) publishes atomically and fails with EEXIST when another writer won: exactly one winner.
     * Filesystems without hard links fall back to rename(2), which replaces a winner's identical file. */
    if (link(tmp, final) == 0) {
        if (stored) *stored = true;
    } else if (errno == EEXIST) {
        /* lost the race: the entry holds the same bytes */
    } else if (errno == EPERM || errno == ENOTSUP || errno == EOPNOTSUPP || errno == EMLINK) {
        if (rename(tmp, final) != 0) { err_set(err, CIS_EIO, "artifact cache %s: rename to %s: %s", c->root, final, strerror(errno)); unlink(tmp); goto out; }
        if (stored) *stored = true;
        rc = 0;
        goto out;
    } else {
        err_set(err, CIS_EIO, "artifact cache %s: link %s: %s", c->root, final, strerror(errno));
        unlink(tmp);
        goto out;
    }
    unlink(tmp);
    rc = 0;
out:
    free(tmp);
    free(final);
    return rc;
}

int acache_put_file(const acache *c, const char *src, char key_out[65], bool *stored, cis_err *err) {
    int fd = open(src, O_RDONLY);
    if (fd < 0) return err_set(err, CIS_EIO, "artifact cache: open %s: %s", src, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, CIS_EINVAL, "artifact cache: %s is not a regular file (expected a file to store)", src);
    }
    void *m = NULL;
    if (st.st_size > 0) {
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) { close(fd); return err_set(err, CIS_EIO, "artifact cache: mmap %s: %s", src, strerror(errno)); }
    }
    int rc = acache_put_bytes(c, m ? m : "", (size_t)st.st_size, key_out, stored, err);
    if (m) munmap(m, (size_t)st.st_size);
    close(fd);
    if (rc) err_prefix(err, "%s", src);
    return rc;
}

char *acache_tmpdir(const acache *c, cis_err *err) {
    char *base = tmp_name(c);
    char *t = xasprintf("%s.XXXXXX", base);
    free(base);
    if (!mkdtemp(t)) {
        err_set(err, CIS_EIO, "artifact cache %s: mkdtemp under %s: %s", c->root, c->tmp, strerror(errno));
        free(t);
        return NULL;
    }
    chmod(t, 0775);
    return t;
}

static int fsync_one(const char *path, const struct stat *sb, int type, struct FTW *f) {
    (void)sb; (void)f;
    if (type != FTW_F && type != FTW_D && type != FTW_DP) return 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int r = fsync(fd);
    if (r != 0 && (errno == EINVAL || errno == EBADF)) r = 0;   /* directories on some filesystems */
    close(fd);
    return r;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *f) {
    (void)sb; (void)f;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

int acache_discard(const char *path, cis_err *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : err_set(err, CIS_EIO, "artifact cache: lstat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return unlink(path) == 0 || errno == ENOENT ? 0 : err_set(err, CIS_EIO, "artifact cache: unlink %s: %s", path, strerror(errno));
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) != 0) return err_set(err, CIS_EIO, "artifact cache: remove %s: %s", path, strerror(errno));
    return 0;
}

int acache_publish_dir(const acache *c, const char *key, const char *tmpdir, bool *stored, cis_err *err) {
    if (stored) *stored = false;
    if (!acache_key_ok(key, err)) return -1;
    size_t tl = strlen(c->tmp);
    if (strncmp(tmpdir, c->tmp, tl) != 0 || tmpdir[tl] != '/')
        return err_set(err, CIS_EINVAL, "artifact cache %s: %s is not under %s (expected a folder from acache_tmpdir)", c->root, tmpdir, c->tmp);
    if (nftw(tmpdir, fsync_one, 32, FTW_PHYS) != 0)
        return err_set(err, CIS_EIO, "artifact cache %s: fsync %s: %s", c->root, tmpdir, strerror(errno));
    if (shard_dir(c, key, err)) return -1;
    char *final = acache_path(c, key);
    int rc = 0;
    /* rename(2) of a directory onto an existing non-empty directory fails (ENOTEMPTY or EEXIST):
     * the first writer wins, and a reader never sees a partial entry. An empty directory at the
     * entry's path cannot exist: entries are published whole. */
    if (rename(tmpdir, final) == 0) {
        if (stored) *stored = true;
    } else if (errno == ENOTEMPTY || errno == EEXIST) {
        rc = acache_discard(tmpdir, err);
    } else {
        rc = err_set(err, CIS_EIO, "artifact cache %s: rename %s to %s: %s", c->root, tmpdir, final, strerror(errno));
    }
    free(final);
    return rc;
}

int acache_gc_tmp(const acache *c, int64_t max_age_s, cis_err *err) {
    DIR *d = opendir(c->tmp);
    if (!d) return err_set(err, CIS_EIO, "artifact cache %s: opendir %s: %s", c->root, c->tmp, strerror(errno));
    int n = 0;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = xasprintf("%s/%s", c->tmp, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && now - st.st_mtime > max_age_s && acache_discard(p, NULL) == 0) n++;
        free(p);
    }
    closedir(d);
    return n;
}
