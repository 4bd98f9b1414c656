/* family_shipped.c - the shipped default family of family_shipped.h: manifest checks, the fit
 * test against this run's world and budget, and the verified copy into OUT/family. */
#include "coordinator/family_shipped.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct family_shipped {
    char *dir;          /* the shipped family's directory (manifest.json and one folder per member) */
    char *manifest;     /* DIR/manifest.json, for messages */
    json_t *root;       /* the manifest */
    json_t *world_files, *members;   /* borrowed from root */
    const char *scale;
    int64_t steps;
};

static bool is_sha256_hex(json_t *v) {
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* a plain file name: non-empty, no '/', not "." or ".." */
static bool plain_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* a relative path inside the world: non-empty, not absolute, no ".." component */
static bool relative_path(const char *s) {
    if (!*s || *s == '/') return false;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '/');
        size_t m = e ? (size_t)(e - p) : strlen(p);
        if (m == 0 || (m == 2 && p[0] == '.' && p[1] == '.')) return false;
        p += m + (e ? 1 : 0);
    }
    return true;
}

int family_shipped_load(const char *dir, family_shipped **out, cis_err *err) {
    *out = NULL;
    char *mf = xasprintf("%s/manifest.json", dir);
    json_error_t je;
    json_t *root = json_load_file(mf, 0, &je);
    if (!root) {
        err_set(err, CIS_EINVAL, "%s:%d: %s", mf, je.line, je.text);
        free(mf);
        return -1;
    }
    const char *bad = NULL;
    json_t *world = json_object_get(root, "world"), *train = json_object_get(root, "train");
    json_t *wf = json_object_get(world, "files"), *mem = json_object_get(root, "members");
    json_t *steps = json_object_get(train, "steps");
    if (!json_is_object(root)) bad = "the file is not a JSON object";
    else if (!json_is_string(json_object_get(world, "scale"))) bad = "world.scale: expected a string (the world's --scale)";
    else if (!json_is_object(wf) || json_object_size(wf) == 0)
        bad = "world.files: expected a non-empty object of world file -> sha256";
    else if (!json_is_integer(steps) || json_integer_value(steps) < 1) bad = "train.steps: expected an integer >= 1";
    else if (!json_is_object(mem) || json_object_size(mem) == 0) bad = "members: expected a non-empty object of member -> {files}";
    const char *k;
    json_t *v;
    if (!bad) json_object_foreach(wf, k, v) {
        if (!relative_path(k) || !is_sha256_hex(v)) {
            err_set(err, CIS_EINVAL, "%s: world.files.\"%s\": expected a relative path (no \"..\") -> 64 lowercase hex (sha256)", mf, k);
            json_decref(root);
            free(mf);
            return -1;
        }
    }
    if (!bad) json_object_foreach(mem, k, v) {
        json_t *files = json_object_get(v, "files");
        const char *fk;
        json_t *fv;
        const char *why = NULL;
        if (!plain_name(k)) why = "a member name must be a plain directory name";
        else if (!json_is_object(files) || !json_object_get(files, "model.safetensors"))
            why = "expected {\"files\": {file -> sha256}} with a model.safetensors";
        else json_object_foreach(files, fk, fv) {
            if (!plain_name(fk) || !is_sha256_hex(fv)) { why = "each file: a plain file name -> 64 lowercase hex (sha256)"; break; }
        }
        if (why) {
            err_set(err, CIS_EINVAL, "%s: members.\"%s\": %s", mf, k, why);
            json_decref(root);
            free(mf);
            return -1;
        }
    }
    if (bad) {
        err_set(err, CIS_EINVAL, "%s: %s", mf, bad);
        json_decref(root);
        free(mf);
        return -1;
    }
    family_shipped *f = xcalloc(1, sizeof *f);
    f->dir = xstrdup(dir);
    f->manifest = mf;
    f->root = root;
    f->world_files = wf;
    f->members = mem;
    f->scale = json_string_value(json_object_get(world, "scale"));
    f->steps = json_integer_value(steps);
    *out = f;
    return 0;
}

void family_shipped_free(family_shipped **f) {
    if (!*f) return;
    json_decref((*f)->root);
    free((*f)->dir);
    free((*f)->manifest);
    free(*f);
    *f = NULL;
}

int64_t family_shipped_steps(const family_shipped *f) { return f->steps; }

/* sha256 of a whole file into hex; 0, 1 when the file does not exist, -1 on another error (err) */
static int file_sha256(const char *path, char hex[65], cis_err *err) {
    if (access(path, F_OK) != 0 && errno == ENOENT) return 1;
    size_t n;
    char *b = read_file(path, &n, err);
    if (!b) return -1;
    sha256_hex(b, n, hex);
    free(b);
    return 0;
}

int family_shipped_fits(const family_shipped *f, const char *world_dir, const char *world_scale, int64_t steps,
                        const char *const *archs, int n, cis_err *why) {
    if (strcmp(world_scale, f->scale)) {
        err_set(why, CIS_EINVAL, "the world's scale is \"%s\", the shipped family's (%s) \"%s\"", world_scale, f->manifest, f->scale);
        return 1;
    }
    if (steps != f->steps) {
        err_set(why, CIS_EINVAL, "the step budget is %lld per model, the shipped family's (%s) %lld", (long long)steps, f->manifest,
                (long long)f->steps);
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (!json_object_get(f->members, archs[i])) {
            err_set(why, CIS_EINVAL, "%s is not a member of the shipped family (%s)", archs[i], f->manifest);
            return 1;
        }
    const char *k;
    json_t *v;
    json_object_foreach(f->world_files, k, v) {
        char *p = xasprintf("%s/%s", world_dir, k), hex[65];
        int rc = file_sha256(p, hex, why);
        if (rc == 0 && strcmp(hex, json_string_value(v))) {
            err_set(why, CIS_EINVAL, "the world's %s has sha256 %.12s.., the shipped family was trained on %.12s.. (%s)", p, hex,
                    json_string_value(v), f->manifest);
            rc = 1;
        } else if (rc == 1) err_set(why, CIS_EINVAL, "the world has no %s, which the shipped family was trained on", p);
        free(p);
        if (rc) return rc;
    }
    return 0;
}

typedef struct member_bytes { const char *name; char *dir; int nf; const char **file; char **data; size_t *len; bool skip; } member_bytes;

static void member_bytes_free(member_bytes *m) {
    for (int i = 0; i < m->nf; i++) free(m->data[i]);
    free(m->file); free(m->data); free(m->len); free(m->dir);
}

int family_shipped_install(const family_shipped *f, const char *family_dir, const char *const *archs, int n, int *installed,
                           cis_err *err) {
    if (installed) *installed = 0;
    member_bytes *mb = xcalloc((size_t)(n > 0 ? n : 1), sizeof *mb);
    int rc = 0, done = 0;
    /* 1. read and verify every file of every member to install */
    for (int i = 0; i < n && !rc; i++) {
        member_bytes *m = &mb[i];
        m->name = archs[i];
        m->dir = xasprintf("%s/%s", family_dir, archs[i]);
        char *w = xasprintf("%s/model.safetensors", m->dir);
        m->skip = access(w, F_OK) == 0;
        free(w);
        json_t *files = json_object_get(json_object_get(f->members, archs[i]), "files");
        if (!files) { rc = err_set(err, CIS_EINVAL, "%s is not a member of the shipped family (%s)", archs[i], f->manifest); break; }
        if (m->skip) continue;
        size_t nf = json_object_size(files);
        m->file = xcalloc(nf, sizeof *m->file);
        m->data = xcalloc(nf, sizeof *m->data);
        m->len = xcalloc(nf, sizeof *m->len);
        const char *k;
        json_t *v;
        json_object_foreach(files, k, v) {
            char *src = xasprintf("%s/%s/%s", f->dir, archs[i], k), hex[65];
            int j = m->nf++;
            m->file[j] = k;
            m->data[j] = read_file(src, &m->len[j], err);
            if (!m->data[j]) rc = -1;
            else {
                sha256_hex(m->data[j], m->len[j], hex);
                if (strcmp(hex, json_string_value(v)))
                    rc = err_set(err, CIS_EINVAL, "%s: sha256 %s, the manifest (%s) says %s: the shipped file is damaged", src, hex,
                                 f->manifest, json_string_value(v));
            }
            free(src);
            if (rc) break;
        }
    }
    /* 2. write them, model.safetensors last in each member */
    for (int i = 0; i < n && !rc; i++) {
        member_bytes *m = &mb[i];
        if (m->skip) continue;
        if (mkdir_p(m->dir, err)) { rc = -1; break; }
        for (int pass = 0; pass < 2 && !rc; pass++)
            for (int j = 0; j < m->nf && !rc; j++) {
                if ((pass == 1) != !strcmp(m->file[j], "model.safetensors")) continue;
                char *dst = xasprintf("%s/%s", m->dir, m->file[j]);
                if (write_file_atomic(dst, m->data[j], m->len[j], err)) rc = -1;
                free(dst);
            }
        if (!rc) done++;
    }
    for (int i = 0; i < n; i++) member_bytes_free(&mb[i]);
    free(mb);
    if (installed) *installed = done;
    return rc;
}
