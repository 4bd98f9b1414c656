/* backend.c - opening and closing backend instances by device string ("cpu", "cpu:N", "cuda",
 * "cuda:K"), the memory wrappers every caller uses, the instance workspace, and op names. The cpu
 * instance is filled from worker/engine/cpu/, the cuda one from worker/engine/cuda/ where the
 * build has nvcc (CISWEEP_CUDA). */
#include "worker/engine/backend.h"

#include <stdlib.h>
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"
#ifdef CISWEEP_CUDA
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

/* The cuda backend is a shared library (libcisweep-cuda.so, built beside the binaries in
 * BUILD/lib/) loaded on first use, so a worker on a CPU box never maps the CUDA libraries (about
 * 1.5 GB of address space: a worker under --mem-limit-mb would not even start its threads) and a
 * binary runs where CUDA is absent. Found through $CISWEEP_CUDA_LIB, else lib/ beside or above the
 * executable's directory (build/bin -> build/lib; build/tests/... -> build/lib; /usr/local/bin ->
 * /usr/local/lib). It resolves backend_workspace, backend_upload, ... from the executable, which
 * is linked with -rdynamic. */
typedef int (*cuda_count_fn)(const char **why);
typedef backend *(*cuda_open_fn)(int index, const backend_opts *opts, cis_err *err);
static struct {
    bool tried;
    void *lib;
    cuda_count_fn count;
    cuda_open_fn open;
    char why[600];
} cu;
static pthread_mutex_t cu_mu = PTHREAD_MUTEX_INITIALIZER;

static void cuda_try(const char *path) {
    cu.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!cu.lib) { snprintf(cu.why, sizeof cu.why, "cannot load the CUDA backend %s: %s", path, dlerror()); return; }
    cu.count = (cuda_count_fn)dlsym(cu.lib, "cuda_device_count");
    cu.open = (cuda_open_fn)dlsym(cu.lib, "cuda_backend_open");
    if (!cu.count || !cu.open) {
        snprintf(cu.why, sizeof cu.why, "%s is not a cisweep CUDA backend (no cuda_backend_open)", path);
        dlclose(cu.lib);
        cu.lib = NULL;
    }
}

static bool cuda_load(void) {
    pthread_mutex_lock(&cu_mu);
    if (!cu.tried) {
        cu.tried = true;
        const char *env = getenv("CISWEEP_CUDA_LIB");
        if (env && *env) cuda_try(env);
        else {
            char dir[PATH_MAX], path[PATH_MAX + 40];
            ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
            dir[n > 0 ? n : 0] = 0;
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            char first[PATH_MAX];
            snprintf(first, sizeof first, "%s", dir);
            bool found = false;
            for (int up = 0; up < 6 && dir[0] && !found; up++) {
                snprintf(path, sizeof path, "%s/lib/libcisweep-cuda.so", dir);
                if (access(path, R_OK) == 0) { found = true; cuda_try(path); }
                char *s = strrchr(dir, '/');
                if (!s) break;
                *s = 0;
            }
            if (!found)
                snprintf(cu.why, sizeof cu.why, "the CUDA backend library lib/libcisweep-cuda.so is not beside or above %s "
                         "(build with nvcc, or set CISWEEP_CUDA_LIB)", first);
        }
    }
    bool ok = cu.lib != NULL;
    pthread_mutex_unlock(&cu_mu);
    return ok;
}
#endif

static const char *OP_NAMES[BOP_COUNT] = {
    "gemm", "linear_fwd", "linear_bwd", "rmsnorm_fwd", "rmsnorm_bwd", "rope_table", "rope_fwd", "rope_bwd",
    "attention_fwd", "attention_bwd", "swiglu_fwd", "swiglu_bwd", "embedding_fwd", "embedding_bwd", "ce_fwd",
    "ce_bwd", "rows_gather", "rows_scatter", "rows_fill", "add", "scale", "axpy", "sum", "sumsq", "adam_step",
    "cholesky", "tri_inv", "chol_solve", "tri_solve", "spd_inverse",
    "gram_acc", "colsumsq_acc", "quant_params", "quant_dequant", "obs_sweep", "row_prune",
};

const char *backend_op_name(backend_op op) { return op >= 0 && op < BOP_COUNT ? OP_NAMES[op] : "?"; }

/* parses "kind" or "kind:N" (N a decimal >= 0); -1 when there is no index */
static int parse_device(const char *device, char *kind, size_t kn, int *index) {
    const char *colon = strchr(device, ':');
    size_t len = colon ? (size_t)(colon - device) : strlen(device);
    if (len == 0 || len >= kn) return -1;
    memcpy(kind, device, len);
    kind[len] = 0;
    *index = -1;
    if (colon) {
        char *end = NULL;
        long v = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || v < 0 || v > 4096) return -1;
        *index = (int)v;
    }
    return 0;
}

bool backend_device_ok(const char *device, cis_err *err) {
    char kind[16];
    int idx;
    if (!device || parse_device(device, kind, sizeof kind, &idx) != 0) {
        err_set(err, CIS_EINVAL, "device \"%s\": expected \"cpu\", \"cpu:THREADS\" or \"cuda:INDEX\"",
                device ? device : "(null)");
        return false;
    }
    if (!strcmp(kind, "cpu")) {
        if (idx == 0) { err_set(err, CIS_EINVAL, "device \"%s\": cpu thread count must be >= 1", device); return false; }
        return true;
    }
    if (!strcmp(kind, "cuda")) {
#ifdef CISWEEP_CUDA
        if (!cuda_load()) { err_set(err, CIS_EINVAL, "device \"%s\": %s", device, cu.why); return false; }
        const char *why = NULL;
        int n = cu.count(&why);
        if (idx < 0) idx = 0;
        if (idx < n) return true;
        err_set(err, CIS_EINVAL, "device \"%s\": %s (%d GPU%s visible)", device, n ? "no such GPU" : why, n,
                n == 1 ? "" : "s");
#else
        err_set(err, CIS_EINVAL, "device \"%s\": this build has no CUDA backend (built without nvcc); use \"cpu\"",
                device);
#endif
        return false;
    }
    err_set(err, CIS_EINVAL, "device \"%s\": unknown kind \"%s\" (expected cpu or cuda)", device, kind);
    return false;
}

backend *backend_open(const char *device, const backend_opts *opts, cis_err *err) {
    if (!device) device = "cpu";
    if (!backend_device_ok(device, err)) return NULL;
    char kind[16];
    int idx;
    parse_device(device, kind, sizeof kind, &idx);
#ifdef CISWEEP_CUDA
    if (!strcmp(kind, "cuda")) return cu.open(idx < 0 ? 0 : idx, opts, err);  // loaded by backend_device_ok
#endif
    backend *be = calloc(1, sizeof *be);
    if (!be) { err_set(err, CIS_ENOMEM, "backend %s: out of memory", device); return NULL; }
    be->iface = &cpu_backend_iface;
    be->host_memory = true;
    snprintf(be->name, sizeof be->name, "cpu");
    int threads = opts ? opts->threads : 0;
    if (idx > 0) threads = idx;  // "cpu:N"
    be->iface->set_threads(be, threads);
    return be;
}

void backend_close(backend **bp) {
    if (!bp || !*bp) return;
    backend *be = *bp;
    if (be->ws) be->iface->free(be, be->ws);
    if (be->iface->close) be->iface->close(be);
    free(be);
    *bp = NULL;
}

const char *backend_name(const backend *be) { return be->name; }
bool backend_is_host(const backend *be) { return be->host_memory; }
int backend_threads(const backend *be) { return be->threads; }
void backend_set_threads(backend *be, int n) { be->iface->set_threads(be, n); }

int backend_mem_info(backend *be, uint64_t *free_bytes, uint64_t *total_bytes, cis_err *err) {
    uint64_t f = 0, t = 0;
    if (be->iface->mem_info(be, &f, &t) != 0)
        return err_set(err, CIS_EIO, "backend %s: memory information unavailable", be->name);
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return 0;
}

/* the op entries of backend_iface follow the backend_op order, after the 11 instance and memory
 * entries (close .. synchronize): an op whose entry is NULL (a backend built before the op was
 * added, e.g. cuda without the compression kernels) is not supported, whatever the table says */
#define IFACE_OP_BASE 11
bool backend_supports(const backend *be, backend_op op, tensor_dtype dt) {
    if (op < 0 || op >= BOP_COUNT) return false;
    const void *const *fp = (const void *const *)((const char *)be->iface + sizeof(const char *));
    if (!fp[IFACE_OP_BASE + op]) return false;
    return be->iface->supports(be, op, dt);
}

void *backend_alloc(backend *be, size_t bytes, cis_err *err) {
    void *p = be->iface->alloc(be, bytes);
    if (!p) err_set(err, CIS_ENOMEM, "backend %s: cannot allocate %.1f MB", be->name, bytes / 1e6);
    return p;
}
void backend_free(backend *be, void *p) { if (p) be->iface->free(be, p); }
void backend_upload(backend *be, void *dst, const void *src, size_t bytes) { if (bytes) be->iface->upload(be, dst, src, bytes); }
void backend_download(backend *be, void *dst, const void *src, size_t bytes) { if (bytes) be->iface->download(be, dst, src, bytes); }
void backend_copy(backend *be, void *dst, const void *src, size_t bytes) { if (bytes) be->iface->copy(be, dst, src, bytes); }
void backend_memset(backend *be, void *dst, int byte, size_t bytes) { if (bytes) be->iface->memset(be, dst, byte, bytes); }
void backend_synchronize(backend *be) { be->iface->synchronize(be); }

void *backend_workspace(backend *be, size_t bytes) {
    if (bytes <= be->ws_bytes && be->ws) return be->ws;
    size_t want = bytes + bytes / 4 + 4096;
    void *p = be->iface->alloc(be, want);
    if (!p) return NULL;
    if (be->ws) be->iface->free(be, be->ws);
    be->ws = p;
    be->ws_bytes = want;
    return p;
}

tensor *tensor_new_on(backend *be, tensor_dtype dt, int ndim, const int64_t *shape, const char *name) {
    if (!be) return tensor_new(dt, ndim, shape, name);
    tensor *h = tensor_new(dt, ndim, shape, name);  // validates the shape; zero host copy for the upload
    if (!h) return NULL;
    size_t nb = tensor_nbytes(h);
    void *d = be->iface->alloc(be, nb ? nb : 1);
    if (!d) { tensor_free(&h); return NULL; }
    be->iface->upload(be, d, h->data, nb);
    free(h->data);
    h->data = d;
    h->be = be;
    return h;
}
