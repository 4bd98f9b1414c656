/* artifact_cache.h - a shared, content-addressed artifact cache on a (network) filesystem, safe when
 * several workers on several nodes produce the same artifact at once (issue 15).
 *
 * Layout under ROOT (any filesystem, NFS included; only POSIX rename(2)/link(2) atomicity is used):
 *   ROOT/objects/ab/abcdef...      one entry per key: a file or a directory, complete once visible
 *   ROOT/tmp/<host>.<pid>.<n>.XXXXXX  where writers build entries; renamed (or linked) into objects/
 *
 * An entry is never visible half-written: a writer builds it under a unique temporary name in
 * ROOT/tmp (same filesystem as objects/), fsyncs it, and publishes it with one link(2) (files) or
 * rename(2) (directories). When two writers race on one key, exactly one publish succeeds; the
 * loser sees EEXIST/ENOTEMPTY, deletes its copy and uses the winner's, which has the same content
 * (files: the key is the sha256 of the bytes; directories: the key names a deterministic recipe,
 * e.g. a job key). Entries are immutable: nothing rewrites one in place.
 *
 * Keys are lowercase hex, 16 to 128 characters. */
#ifndef CISWEEP_ARTIFACT_CACHE_H
#define CISWEEP_ARTIFACT_CACHE_H

#include "common/util.h"

typedef struct acache acache;

/* acache_open: use (and create, mode 0775) ROOT/objects and ROOT/tmp. Free with acache_close. */
int acache_open(const char *root, acache **out, cis_err *err);
void acache_close(acache **c);

/* acache_key_ok: whether key is 16-128 lowercase hex characters; fills err naming what was expected */
bool acache_key_ok(const char *key, cis_err *err);

/* acache_path: where the entry of key lives (present or not). malloc'd, caller frees. */
char *acache_path(const acache *c, const char *key);

/* acache_get: 1 and *path_out (malloc'd) when the entry is present, 0 when absent, -1 on error */
int acache_get(const acache *c, const char *key, char **path_out, cis_err *err);

/* acache_put_bytes / acache_put_file: store bytes (a file's bytes) under key = their sha256, which
 * goes into key_out (65 bytes). *stored (may be NULL) = true when this call published the entry,
 * false when it was there already (or another writer won the race). 0 ok, -1 err. */
int acache_put_bytes(const acache *c, const void *data, size_t len, char key_out[65], bool *stored, cis_err *err);
int acache_put_file(const acache *c, const char *src, char key_out[65], bool *stored, cis_err *err);

/* acache_put_bytes_key: store bytes under a caller-given key that names a deterministic recipe
 * (e.g. MEMIT's statistics: the sha256 of the base weights, layer and settings), published like a
 * file of acache_put_bytes (a temporary name, fsync, one link(2)). When the entry exists already
 * (or another writer wins the race) the entry is kept as it is and *stored = false: the recipe's
 * bytes are interchangeable. Key checked by acache_key_ok. 0 ok, -1 err. */
int acache_put_bytes_key(const acache *c, const char *key, const void *data, size_t len, bool *stored, cis_err *err);

/* acache_tmpdir: a fresh empty directory under ROOT/tmp for the caller to build an entry in;
 * malloc'd path. Publish it with acache_publish_dir or remove it with acache_discard. */
char *acache_tmpdir(const acache *c, cis_err *err);

/* acache_publish_dir: fsync the files of tmpdir (built by the caller) and rename it to the entry of
 * key. When the entry exists already (another writer won), tmpdir is removed and *stored = false.
 * In both cases tmpdir is gone afterwards and the entry is complete. 0 ok, -1 err (tmpdir kept). */
int acache_publish_dir(const acache *c, const char *key, const char *tmpdir, bool *stored, cis_err *err);

/* acache_discard: remove a temporary file or directory tree (recursively). 0 ok, -1 err */
int acache_discard(const char *path, cis_err *err);

/* acache_gc_tmp: remove what crashed writers left in ROOT/tmp, older than max_age_s seconds;
 * returns how many entries were removed, -1 on error */
int acache_gc_tmp(const acache *c, int64_t max_age_s, cis_err *err);

#endif
