/* curve.c - CURVE key files and allow-lists (see curve.h). */
#include "common/curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static bool z85_ok(const char *s, size_t n) {
    static const char Z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    if (n != CURVE_Z85_LEN) return false;
    for (size_t i = 0; i < n; i++)
        if (!memchr(Z85, s[i], sizeof Z85 - 1)) return false;
    return true;
}

static int write_new(const char *path, const char *text, mode_t mode, cis_err *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return err_set(err, CIS_EIO, "%s: %s%s", path, strerror(errno),
                       errno == EEXIST ? " (keygen never overwrites a key; remove it first)" : "");
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    close(fd);
    if (!ok) { unlink(path); return err_set(err, CIS_EIO, "%s: cannot write: %s", path, strerror(errno)); }
    return 0;
}

int curve_keygen(const char *base, cis_err *err) {
    char pub[CURVE_Z85_LEN + 1], sec[CURVE_Z85_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0)
        return err_set(err, CIS_EIO, "cannot make a CURVE key pair: %s (is libzmq built with CURVE?)", zmq_strerror(errno));
    char *pp = xasprintf("%s.pub", base), *kp = xasprintf("%s.key", base);
    char *pt = xasprintf("# cisweep CURVE public key: give it to the other side\npublic-key = %s\n", pub);
    char *kt = xasprintf("# cisweep CURVE secret key: keep it private, it never leaves this host\n"
                         "public-key = %s\nsecret-key = %s\n", pub, sec);
    int rc = write_new(kp, kt, 0600, err);
    if (rc == 0 && (rc = write_new(pp, pt, 0644, err)) != 0) unlink(kp);
    memset(sec, 0, sizeof sec);
    memset(kt, 0, strlen(kt));
    free(pp); free(kp); free(pt); free(kt);
    return rc;
}

/* the value of `name = value` in a key file */
static int key_field(const char *path, const char *text, const char *field, char out[CURVE_Z85_LEN + 1], cis_err *err) {
    int line = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        line++;
        size_t fl = strlen(field);
        const char *q = p;
        while (q < p + n && (*q == ' ' || *q == '\t')) q++;
        if ((size_t)(p + n - q) > fl && !strncmp(q, field, fl)) {
            q += fl;
            while (q < p + n && (*q == ' ' || *q == '\t')) q++;
            if (q < p + n && *q == '=') {
                q++;
                while (q < p + n && (*q == ' ' || *q == '\t')) q++;
                const char *v = q;
                while (q < p + n && *q != ' ' && *q != '\t' && *q != '\r') q++;
                if (!z85_ok(v, (size_t)(q - v)))
                    return err_set(err, CIS_EINVAL, "%s:%d: %s must be %d Z85 characters", path, line, field,
                                   CURVE_Z85_LEN);
                memcpy(out, v, CURVE_Z85_LEN);
                out[CURVE_Z85_LEN] = 0;
                return 0;
            }
        }
        p += n + (e ? 1 : 0);
    }
    return err_set(err, CIS_EINVAL, "%s: no \"%s = ...\" line (make key files with `cisweep keygen NAME`)", path, field);
}

int curve_load_secret(const char *path, char pub[CURVE_Z85_LEN + 1], char sec[CURVE_Z85_LEN + 1], cis_err *err) {
    char *t = read_file(path, NULL, err);
    if (!t) return -1;
    int rc = key_field(path, t, "public-key", pub, err);
    if (rc == 0) rc = key_field(path, t, "secret-key", sec, err);
    memset(t, 0, strlen(t));
    free(t);
    if (rc == 0) {
        uint8_t p[32], s[32], derived[41];
        zmq_z85_decode(p, pub);
        zmq_z85_decode(s, sec);
        if (zmq_curve_public((char *)derived, sec) != 0 || strcmp((char *)derived, pub) != 0)
            rc = err_set(err, CIS_EINVAL, "%s: public-key does not belong to secret-key", path);
        memset(s, 0, sizeof s);
    }
    return rc;
}

int curve_load_public(const char *path, char pub[CURVE_Z85_LEN + 1], cis_err *err) {
    char *t = read_file(path, NULL, err);
    if (!t) return -1;
    int rc = key_field(path, t, "public-key", pub, err);
    free(t);
    return rc;
}

static void allow_add(curve_allow *a, size_t *cap, const char *z85, const char *name) {
    if (a->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        a->keys = xrealloc(a->keys, *cap * sizeof *a->keys);
        a->names = xrealloc(a->names, *cap * sizeof *a->names);
    }
    zmq_z85_decode(a->keys[a->n], z85);
    snprintf(a->names[a->n], sizeof a->names[a->n], "%s", name);
    a->n++;
}

static int allow_file(const char *path, curve_allow *a, size_t *cap, cis_err *err) {
    char *t = read_file(path, NULL, err);
    if (!t) return -1;
    int line = 0, rc = 0;
    for (char *p = t; *p && !rc;) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        line++;
        char *h = strchr(p, '#');
        if (h) *h = 0;
        char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (!strncmp(q, "public-key", 10)) {
            q += 10;
            while (*q == ' ' || *q == '\t') q++;
            if (*q == '=') q++;
            while (*q == ' ' || *q == '\t') q++;
        }
        if (*q && *q != '\r') {
            char *v = q;
            while (*q && *q != ' ' && *q != '\t' && *q != '\r') q++;
            size_t n = (size_t)(q - v);
            while (*q == ' ' || *q == '\t') q++;
            char *nm = q;
            while (*q && *q != '\r') q++;
            *q = 0;
            if (!z85_ok(v, n)) {
                rc = err_set(err, CIS_EINVAL, "%s:%d: expected a %d-character Z85 public key (or `public-key = KEY`)",
                             path, line, CURVE_Z85_LEN);
                break;
            }
            char key[CURVE_Z85_LEN + 1], name[64];
            memcpy(key, v, n);
            key[n] = 0;
            snprintf(name, sizeof name, "%s", *nm ? nm : path);
            allow_add(a, cap, key, name);
        }
        if (!e) break;
        p = e + 1;
    }
    free(t);
    return rc;
}

int curve_allow_load(const char *path, curve_allow *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return err_set(err, CIS_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return err_set(err, CIS_EIO, "%s: %s", path, strerror(errno));
        struct dirent *de;
        while (!rc && (de = readdir(d))) {
            size_t n = strlen(de->d_name);
            if (n < 5 || strcmp(de->d_name + n - 4, ".pub")) continue;
            char *f = xasprintf("%s/%s", path, de->d_name);
            char key[CURVE_Z85_LEN + 1], name[64];
            rc = curve_load_public(f, key, err);
            snprintf(name, sizeof name, "%.*s", (int)(n - 4), de->d_name);
            if (rc == 0) allow_add(out, &cap, key, name);
            free(f);
        }
        closedir(d);
    } else {
        rc = allow_file(path, out, &cap, err);
    }
    if (rc == 0 && out->n == 0)
        rc = err_set(err, CIS_EINVAL, "%s: no worker public key in it (it would admit nobody): add NAME.pub files "
                     "made by `cisweep keygen NAME`", path);
    if (rc) curve_allow_clear(out);
    return rc;
}

void curve_allow_clear(curve_allow *a) {
    if (!a) return;
    free(a->keys);
    free(a->names);
    memset(a, 0, sizeof *a);
}

const char *curve_allow_find(const curve_allow *a, const uint8_t key[32]) {
    for (size_t i = 0; a && i < a->n; i++)
        if (memcmp(a->keys[i], key, 32) == 0) return a->names[i];
    return NULL;
}
