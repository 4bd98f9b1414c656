/* cmd_slurm.c - `cisweep slurm submit`: fill the batch templates of deploy/slurm/ (compiled in,
 * see the Makefile's gen/slurm_templates.h) from a sweep database and submit them with sbatch:
 * the coordinator as one job, then the workers as an array (one worker per GPU with --gpus N, or
 * N CPU workers), and print the Slurm job ids. With --coordinator EP the coordinator is already
 * running (a login node, the test's local one): only the worker array is submitted and the
 * endpoint file is written here. docs/cluster.md explains the whole flow. */
#include "coordinator/cli.h"
#include "coordinator/job_store.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slurm_templates.h"   /* generated: TPL_WORKER_SBATCH, TPL_COORDINATOR_SBATCH */

#define MAX_ARGS 32

typedef struct {
    const char *db, *shared, *partition, *time_limit, *coordinator, *coord_node, *account;
    const char *worker_bin, *cisweep_bin, *templates, *sweep;
    const char *keys;        /* --keys DIR: CURVE keys laid out by deploy/curve-keys.sh DIR slurm */
    int64_t gpus, cpu_workers, port, signal_s, max_parallel, wait_s, cpus, coord_cpus;
    const char *worker_args[MAX_ARGS];
    int n_worker_args;
    const char *sbatch_args[MAX_ARGS];
    int n_sbatch_args;
    bool dry_run;
} slurm_opts;

/* a value that goes into a #SBATCH line or an unquoted shell word: only plain characters */
static int plain_value(const char *flag, const char *v) {
    for (const char *p = v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("_./:@%+=,-", *p))
            continue;
        fprintf(stderr, "cisweep slurm submit: %s \"%s\": character '%c' is not allowed (expected letters, digits and _./:@%%+=,-)\n",
                flag, v, *p);
        return 2;
    }
    if (!*v) { fprintf(stderr, "cisweep slurm submit: %s is empty\n", flag); return 2; }
    return 0;
}

/* single-quote a word for the shell: 'it'\''s' */
static void shell_quote(const char *s, char **buf, size_t *len, size_t *cap) {
    size_t need = *len + strlen(s) * 4 + 4;
    if (need > *cap) { *cap = need * 2; *buf = xrealloc(*buf, *cap); }
    char *o = *buf + *len;
    *o++ = '\'';
    for (; *s; s++) {
        if (*s == '\'') { memcpy(o, "'\\''", 4); o += 4; }
        else *o++ = *s;
    }
    *o++ = '\'';
    *o = 0;
    *len = (size_t)(o - *buf);
}

static char *quoted_words(const char **w, int n) {
    size_t cap = 64, len = 0;
    char *b = xmalloc(cap);
    b[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) { if (len + 2 > cap) { cap *= 2; b = xrealloc(b, cap); } b[len++] = ' '; b[len] = 0; }
        shell_quote(w[i], &b, &len, &cap);
    }
    return b;
}

typedef struct { const char *key; const char *val; } kv;

/* fill: replace every {{KEY}} of tpl; a placeholder without a value is an error naming it */
static char *fill(const char *tplname, const char *tpl, const kv *vals, int n, cis_err *err) {
    size_t cap = strlen(tpl) * 2 + 1024, len = 0;
    char *out = xmalloc(cap);
    const char *p = tpl;
    while (*p) {
        const char *o = strstr(p, "{{");
        if (!o) o = p + strlen(p);
        size_t chunk = (size_t)(o - p);
        if (len + chunk + 1 > cap) { cap = (len + chunk + 1) * 2; out = xrealloc(out, cap); }
        memcpy(out + len, p, chunk);
        len += chunk;
        if (!*o) break;
        const char *c = strstr(o + 2, "}}");
        if (!c) { free(out); err_set(err, CIS_EINVAL, "template %s: \"{{\" without \"}}\"", tplname); return NULL; }
        const char *val = NULL;
        for (int i = 0; i < n; i++)
            if (strlen(vals[i].key) == (size_t)(c - o - 2) && !strncmp(vals[i].key, o + 2, (size_t)(c - o - 2))) val = vals[i].val;
        if (!val) {
            err_set(err, CIS_EINVAL, "template %s: unknown placeholder {{%.*s}} (expected one of the names cisweep slurm submit fills)",
                    tplname, (int)(c - o - 2), o + 2);
            free(out);
            return NULL;
        }
        size_t vl = strlen(val);
        if (len + vl + 1 > cap) { cap = (len + vl + 1) * 2; out = xrealloc(out, cap); }
        memcpy(out + len, val, vl);
        len += vl;
        p = c + 2;
    }
    out[len] = 0;
    return out;
}

/* run sbatch --parsable [extra...] FILE; the job id (digits before ';') into id. 0 ok, -1 err */
static int sbatch(const char *file, const char *dep, char *id, size_t idsz, cis_err *err) {
    int pfd[2];
    if (pipe(pfd)) { err_set(err, CIS_EIO, "pipe: %s", strerror(errno)); return -1; }
    const char *sb = getenv("CISWEEP_SBATCH") ? getenv("CISWEEP_SBATCH") : "sbatch";
    pid_t pid = fork();
    if (pid < 0) { err_set(err, CIS_EIO, "fork: %s", strerror(errno)); close(pfd[0]); close(pfd[1]); return -1; }
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]); close(pfd[1]);
        if (dep) execlp(sb, sb, "--parsable", dep, file, (char *)NULL);
        else execlp(sb, sb, "--parsable", file, (char *)NULL);
        fprintf(stderr, "cisweep slurm submit: cannot run %s: %s\n---> HINT: run it where Slurm's commands are on PATH\n", sb, strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    char buf[256] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(pfd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        err_set(err, CIS_EIO, "sbatch %s failed (exit %d; its message is above)", file, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return -1;
    }
    size_t k = 0;
    while (k < got && buf[k] >= '0' && buf[k] <= '9' && k + 1 < idsz) { id[k] = buf[k]; k++; }
    id[k] = 0;
    if (!k) { err_set(err, CIS_EIO, "sbatch %s printed \"%s\", expected a job id", file, buf); return -1; }
    return 0;
}

/* sweep facts from the DB: its name (the only sweep, or --sweep) and how many jobs can still run */
static int sweep_facts(const slurm_opts *o, char *name, size_t nsz, int64_t *runnable, cis_err *err) {
    job_store *js = NULL;
    if (job_store_open(o->db, JS_READONLY, &js, err)) return -1;
    sqlite3 *db = job_store_db(js);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    const char *sql = o->sweep ? "SELECT id, name FROM sweeps WHERE name = ?1" : "SELECT id, name FROM sweeps ORDER BY id";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) { err_set(err, CIS_EDB, "%s: %s", o->db, sqlite3_errmsg(db)); goto out; }
    if (o->sweep) sqlite3_bind_text(st, 1, o->sweep, -1, SQLITE_STATIC);
    int64_t sid = -1;
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n++ == 0) { sid = sqlite3_column_int64(st, 0); snprintf(name, nsz, "%s", (const char *)sqlite3_column_text(st, 1)); }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (n == 0) {
        err_set(err, CIS_EINVAL, o->sweep ? "%s: no sweep named \"%s\" (see `cisweep status --db %s`)" : "%s: no sweep in this database%s (create one with `cisweep launch`)",
                o->db, o->sweep ? o->sweep : "", o->db);
        goto out;
    }
    if (n > 1 && !o->sweep) { err_set(err, CIS_EINVAL, "%s: %d sweeps in this database; name one with --sweep NAME", o->db, n); goto out; }
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs WHERE sweep_id = ?1 AND state IN ('pending','leased')", -1, &st, NULL) != SQLITE_OK) {
        err_set(err, CIS_EDB, "%s: %s", o->db, sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_int64(st, 1, sid);
    *runnable = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    rc = 0;
out:
    if (st) sqlite3_finalize(st);
    job_store_close(&js);
    return rc;
}

static char *abs_path(const char *p) {
    if (p[0] == '/') return xstrdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return xstrdup(p);
    return xasprintf("%s/%s", cwd, p);
}

static int write_text(const char *path, const char *text, mode_t mode, cis_err *err) {
    if (write_file_atomic(path, text, strlen(text), err)) return -1;
    chmod(path, mode);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
        "usage: cisweep slurm submit --db DB [--gpus N | --cpu-workers N] [--partition P] [--time T] [options]\n"
        "  fills deploy/slurm/{coordinator,worker}.sbatch from the sweep in DB and submits them; prints the job ids\n"
        "  --gpus N              N array tasks with one GPU each (--gres=gpu:1, --device cuda:0 in the task)\n"
        "  --cpu-workers N       N array tasks with a CPU worker each (default 1 when --gpus is not given)\n"
        "  --partition P --time T --account A   passed to sbatch for both jobs\n"
        "  --shared DIR          folder on the shared filesystem: filled scripts, logs, endpoint file,\n"
        "                        worker caches (default: ./cisweep-slurm)\n"
        "  --coordinator EP      a coordinator already runs at EP: submit only the worker array\n"
        "  --coordinator-node N  pin the coordinator job to node N (the one whose local disk holds DB)\n"
        "  --port P              the coordinator job's port (default 5555)\n"
        "  --max-parallel K      at most K array tasks at once (--array=0-N%%K)\n"
        "  --signal-s S          SIGTERM S seconds before Slurm's kill (default 120; the job is preempted)\n"
        "  --cpus C              CPUs per worker task (default 2)\n"
        "  --coordinator-cpus C  CPUs of the coordinator job (default 1: one thread and SQLite)\n"
        "  --wait-s S            how long a worker task waits for the endpoint file (default 600)\n"
        "  --worker-arg ARG      one more argument for every worker (repeatable), e.g. --data /shared/world\n"
        "  --sbatch-arg ARG      one more #SBATCH line for both jobs (repeatable), e.g. --qos=low\n"
        "  --sweep NAME          the sweep, when DB holds several\n"
        "  --templates DIR       use DIR/{coordinator,worker}.sbatch instead of the built-in copies\n"
        "  --worker-bin PATH / --cisweep-bin PATH   the programs as the nodes see them (default: next to this one)\n"
        "  --keys DIR            CURVE authentication with the keys of `deploy/curve-keys.sh DIR slurm`: the\n"
        "                        coordinator gets --curve-key DIR/coordinator.key --allow-keys DIR/workers, every\n"
        "                        worker --curve-key DIR/private/slurm.key --server-key DIR/coordinator.pub.\n"
        "                        Without it the coordinator binds every interface unauthenticated\n"
        "                        (--insecure-bind-any; a warning says so)\n"
        "  --dry-run             write the filled scripts, print their paths, submit nothing\n");
}

static int int_flag(const char *flag, const char *v, int64_t lo, int64_t *out) {
    if (v && parse_i64(v, out) && *out >= lo) return 0;
    fprintf(stderr, "cisweep slurm submit: %s expects an integer >= %lld, got \"%s\"\n", flag, (long long)lo, v ? v : "");
    return 2;
}

static int slurm_submit(int argc, char **argv) {
    slurm_opts o = {.gpus = 0, .cpu_workers = 0, .port = 5555, .signal_s = 120, .max_parallel = 0, .wait_s = 600, .cpus = 2, .coord_cpus = 1};
    int rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--dry-run")) { o.dry_run = true; continue; }
        if (!n) { fprintf(stderr, "cisweep slurm submit: unknown or incomplete option \"%s\"\n", a); usage(stderr); return 2; }
        i++;
        if (!strcmp(a, "--db")) o.db = n;
        else if (!strcmp(a, "--shared")) o.shared = n;
        else if (!strcmp(a, "--partition")) { if ((rc = plain_value(a, n))) return rc; o.partition = n; }
        else if (!strcmp(a, "--time")) { if ((rc = plain_value(a, n))) return rc; o.time_limit = n; }
        else if (!strcmp(a, "--account")) { if ((rc = plain_value(a, n))) return rc; o.account = n; }
        else if (!strcmp(a, "--coordinator")) { if ((rc = plain_value(a, n))) return rc; o.coordinator = n; }
        else if (!strcmp(a, "--coordinator-node")) { if ((rc = plain_value(a, n))) return rc; o.coord_node = n; }
        else if (!strcmp(a, "--sweep")) o.sweep = n;
        else if (!strcmp(a, "--templates")) o.templates = n;
        else if (!strcmp(a, "--worker-bin")) o.worker_bin = n;
        else if (!strcmp(a, "--cisweep-bin")) o.cisweep_bin = n;
        else if (!strcmp(a, "--gpus")) { if ((rc = int_flag(a, n, 1, &o.gpus))) return rc; }
        else if (!strcmp(a, "--cpu-workers")) { if ((rc = int_flag(a, n, 1, &o.cpu_workers))) return rc; }
        else if (!strcmp(a, "--port")) { if ((rc = int_flag(a, n, 1, &o.port)) || o.port > 65535) { if (!rc) fprintf(stderr, "cisweep slurm submit: --port is at most 65535\n"); return 2; } }
        else if (!strcmp(a, "--max-parallel")) { if ((rc = int_flag(a, n, 1, &o.max_parallel))) return rc; }
        else if (!strcmp(a, "--signal-s")) { if ((rc = int_flag(a, n, 1, &o.signal_s)) || o.signal_s > 65535) { if (!rc) fprintf(stderr, "cisweep slurm submit: --signal-s is at most 65535\n"); return 2; } }
        else if (!strcmp(a, "--cpus")) { if ((rc = int_flag(a, n, 1, &o.cpus))) return rc; }
        else if (!strcmp(a, "--coordinator-cpus")) { if ((rc = int_flag(a, n, 1, &o.coord_cpus))) return rc; }
        else if (!strcmp(a, "--wait-s")) { if ((rc = int_flag(a, n, 1, &o.wait_s))) return rc; }
        else if (!strcmp(a, "--keys")) o.keys = n;
        else if (!strcmp(a, "--worker-arg")) {
            if (o.n_worker_args == MAX_ARGS) { fprintf(stderr, "cisweep slurm submit: at most %d --worker-arg\n", MAX_ARGS); return 2; }
            o.worker_args[o.n_worker_args++] = n;
        } else if (!strcmp(a, "--sbatch-arg")) {
            if (o.n_sbatch_args == MAX_ARGS) { fprintf(stderr, "cisweep slurm submit: at most %d --sbatch-arg\n", MAX_ARGS); return 2; }
            if (n[0] != '-' || strchr(n, '\n')) { fprintf(stderr, "cisweep slurm submit: --sbatch-arg \"%s\": expected one sbatch option such as --qos=low\n", n); return 2; }
            o.sbatch_args[o.n_sbatch_args++] = n;
        } else { fprintf(stderr, "cisweep slurm submit: unknown option \"%s\"\n", a); usage(stderr); return 2; }
    }
    if (!o.db) { fprintf(stderr, "cisweep slurm submit: --db DB is required\n"); usage(stderr); return 2; }
    if (o.gpus && o.cpu_workers) { fprintf(stderr, "cisweep slurm submit: --gpus and --cpu-workers exclude each other\n"); return 2; }
    if (access(o.db, R_OK) != 0) {
        fprintf(stderr, "cisweep slurm submit: no sweep database at %s\n---> HINT: create it with `cisweep launch --db %s --grid FILE`\n", o.db, o.db);
        return 2;
    }
    cis_err err = {0};
    char name[128];
    int64_t runnable = 0;
    if (sweep_facts(&o, name, sizeof name, &runnable, &err)) { fprintf(stderr, "cisweep slurm submit: %s\n", err.msg); return 2; }
    if (runnable == 0) { fprintf(stderr, "cisweep slurm submit: sweep \"%s\" in %s has no pending or running job: nothing to submit\n", name, o.db); return 1; }
    int src = cli_stale_refusal("slurm submit", o.db); /* the coordinator job would refuse: say it now */
    if (src) return src;
    int64_t tasks = o.gpus ? o.gpus : (o.cpu_workers ? o.cpu_workers : 1);
    if (tasks > runnable) {
        fprintf(stderr, "cisweep slurm submit: %lld workers asked for, %lld jobs left: submitting %lld\n", (long long)tasks, (long long)runnable, (long long)runnable);
        tasks = runnable;
    }
    /* a job name Slurm shows: the sweep name, plain characters only */
    char jname[64];
    size_t k = 0;
    for (const char *p = name; *p && k < sizeof jname - 1; p++) {
        char c = *p;
        jname[k++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_') ? c : '_';
    }
    jname[k] = 0;

    char *shared = abs_path(o.shared ? o.shared : "cisweep-slurm");
    char *db = abs_path(o.db);
    char *wbin = o.worker_bin ? xstrdup(o.worker_bin) : cli_sibling_path("cisweep-worker");
    char *cbin = o.cisweep_bin ? xstrdup(o.cisweep_bin) : cli_sibling_path("cisweep");
    char *cache = xasprintf("%s/cache", shared);
    char *logs = xasprintf("%s/logs", shared);
    char *wtpl = NULL, *ctpl = NULL, *wfile = NULL, *cfile = NULL, *wtext = NULL, *ctext = NULL, *epfile = NULL;
    char *wargs = NULL, *sbl = NULL;
    char *kdir = NULL, *k_ckey = NULL, *k_allow = NULL, *k_wkey = NULL, *k_pub = NULL, *cargs = NULL;
    rc = 2;
    if (plain_value("--shared", shared) || plain_value("--db", db) || plain_value("--worker-bin", wbin) || plain_value("--cisweep-bin", cbin))
        goto out;
    rc = 1;
    if (mkdir_p(logs, &err) || mkdir_p(cache, &err)) { fprintf(stderr, "cisweep slurm submit: %s\n", err.msg); goto out; }
    if (o.templates) {
        char *p1 = xasprintf("%s/worker.sbatch", o.templates), *p2 = xasprintf("%s/coordinator.sbatch", o.templates);
        wtpl = read_file(p1, NULL, &err);
        if (wtpl) ctpl = read_file(p2, NULL, &err);
        free(p1); free(p2);
        if (!wtpl || !ctpl) { fprintf(stderr, "cisweep slurm submit: --templates: %s\n", err.msg); rc = 2; goto out; }
    } else {
        wtpl = xstrdup(TPL_WORKER_SBATCH);
        ctpl = xstrdup(TPL_COORDINATOR_SBATCH);
    }

    /* #SBATCH lines shared by both jobs */
    {
        size_t cap = 256, len = 0;
        sbl = xmalloc(cap);
        sbl[0] = 0;
        const char *extra[MAX_ARGS + 8];
        int ne = 0;
        char *tmp[4] = {0};
        int nt = 0;
        if (o.partition) extra[ne++] = tmp[nt++] = xasprintf("--partition=%s", o.partition);
        if (o.time_limit) extra[ne++] = tmp[nt++] = xasprintf("--time=%s", o.time_limit);
        if (o.account) extra[ne++] = tmp[nt++] = xasprintf("--account=%s", o.account);
        for (int i = 0; i < o.n_sbatch_args; i++) extra[ne++] = o.sbatch_args[i];
        for (int i = 0; i < ne; i++) {
            size_t need = len + strlen(extra[i]) + 16;
            if (need > cap) { cap = need * 2; sbl = xrealloc(sbl, cap); }
            len += (size_t)sprintf(sbl + len, "#SBATCH %s\n", extra[i]);
        }
        for (int i = 0; i < nt; i++) free(tmp[i]);
    }
    char *wsbl = o.gpus ? xasprintf("%s#SBATCH --gres=gpu:1\n", sbl) : xstrdup(sbl);
    char *csbl = o.coord_node ? xasprintf("%s#SBATCH --nodelist=%s\n", sbl, o.coord_node) : xstrdup(sbl);
    /* authentication: the CURVE keys, or an explicit, announced --insecure-bind-any */
    kdir = o.keys ? abs_path(o.keys) : NULL;
    if (kdir) {
        k_ckey = xasprintf("%s/coordinator.key", kdir);
        k_allow = xasprintf("%s/workers", kdir);
        k_wkey = xasprintf("%s/private/slurm.key", kdir);
        k_pub = xasprintf("%s/coordinator.pub", kdir);
        const char *need[] = {k_ckey, k_allow, k_wkey, k_pub};
        for (int i = 0; i < 4; i++)
            if (access(need[i], R_OK) != 0) {
                fprintf(stderr, "cisweep slurm submit: --keys %s: %s is missing\n---> HINT: make the keys with "
                        "`deploy/curve-keys.sh %s slurm`\n", o.keys, need[i], o.keys);
                rc = 2;
                goto out;
            }
        const char *ca[] = {"--curve-key", k_ckey, "--allow-keys", k_allow};
        cargs = quoted_words(ca, 4);
        if (o.n_worker_args + 4 > MAX_ARGS) { fprintf(stderr, "cisweep slurm submit: too many --worker-arg\n"); rc = 2; goto out; }
        o.worker_args[o.n_worker_args++] = "--curve-key";
        o.worker_args[o.n_worker_args++] = k_wkey;
        o.worker_args[o.n_worker_args++] = "--server-key";
        o.worker_args[o.n_worker_args++] = k_pub;
    } else {
        cargs = xstrdup("--insecure-bind-any");
        if (!o.coordinator)
            fprintf(stderr, "cisweep slurm submit: WARNING: no --keys: the coordinator accepts any host that reaches its port "
                    "(--insecure-bind-any); see `deploy/curve-keys.sh`\n");
    }
    wargs = quoted_words(o.worker_args, o.n_worker_args);
    char last[32], sig[32], wait_s[32], cpus[32], ccpus[32], port[32], limit[32] = "";
    snprintf(ccpus, sizeof ccpus, "%lld", (long long)o.coord_cpus);
    snprintf(last, sizeof last, "%lld", (long long)(tasks - 1));
    snprintf(sig, sizeof sig, "%lld", (long long)o.signal_s);
    snprintf(wait_s, sizeof wait_s, "%lld", (long long)o.wait_s);
    snprintf(cpus, sizeof cpus, "%lld", (long long)o.cpus);
    snprintf(port, sizeof port, "%lld", (long long)o.port);
    if (o.max_parallel) snprintf(limit, sizeof limit, "%%%lld", (long long)o.max_parallel);
    kv wv[] = {{"JOB_NAME", jname}, {"LAST_TASK", last}, {"ARRAY_LIMIT", limit}, {"SHARED", shared}, {"SIGNAL_S", sig},
               {"CPUS", cpus}, {"SBATCH_LINES", wsbl}, {"WAIT_S", wait_s}, {"WORKER_BIN", wbin},
               {"DEVICE", o.gpus ? "cuda:0" : "cpu"}, {"CACHE", cache}, {"WORKER_ARGS", wargs}};
    kv cv[] = {{"JOB_NAME", jname}, {"SHARED", shared}, {"SBATCH_LINES", csbl}, {"CISWEEP_BIN", cbin}, {"DB", db}, {"PORT", port},
               {"COORD_CPUS", ccpus}, {"COORD_ARGS", cargs}};
    wtext = fill("worker.sbatch", wtpl, wv, (int)(sizeof wv / sizeof wv[0]), &err);
    if (wtext && !o.coordinator) ctext = fill("coordinator.sbatch", ctpl, cv, (int)(sizeof cv / sizeof cv[0]), &err);
    free(wsbl);
    free(csbl);
    if (!wtext || (!o.coordinator && !ctext)) { fprintf(stderr, "cisweep slurm submit: %s\n", err.msg); rc = 2; goto out; }
    wfile = xasprintf("%s/worker.sbatch", shared);
    cfile = xasprintf("%s/coordinator.sbatch", shared);
    epfile = xasprintf("%s/coordinator.endpoint", shared);
    if (write_text(wfile, wtext, 0755, &err) || (ctext && write_text(cfile, ctext, 0755, &err))) {
        fprintf(stderr, "cisweep slurm submit: %s\n", err.msg);
        goto out;
    }
    if (o.dry_run) {
        if (ctext) printf("coordinator script: %s\n", cfile);
        printf("worker script: %s (%lld tasks)\n", wfile, (long long)tasks);
        rc = 0;
        goto out;
    }
    char cid[64] = "", wid[64] = "";
    if (o.coordinator) {
        char *ep = xasprintf("endpoint=%s\nserver_public_key=\nslurm_job=\n", o.coordinator);
        int w = write_file_atomic(epfile, ep, strlen(ep), &err);
        free(ep);
        if (w) { fprintf(stderr, "cisweep slurm submit: %s\n", err.msg); goto out; }
    } else {
        unlink(epfile);   /* a stale endpoint of an earlier coordinator must not be used */
        if (sbatch(cfile, NULL, cid, sizeof cid, &err)) { fprintf(stderr, "cisweep slurm submit: %s\n", err.msg); goto out; }
    }
    char *dep = cid[0] ? xasprintf("--dependency=after:%s", cid) : NULL;
    int s = sbatch(wfile, dep, wid, sizeof wid, &err);
    free(dep);
    if (s) {
        fprintf(stderr, "cisweep slurm submit: %s%s%s\n", err.msg, cid[0] ? "; the coordinator job was submitted: scancel " : "", cid);
        goto out;
    }
    printf("sweep %s: %lld jobs left\n", name, (long long)runnable);
    if (cid[0]) printf("coordinator job %s (publishes its endpoint in %s)\n", cid, epfile);
    else printf("coordinator %s (written to %s)\n", o.coordinator, epfile);
    printf("worker array job %s: tasks %s_0..%s_%lld, %s\n", wid, wid, wid, (long long)(tasks - 1), o.gpus ? "one GPU each" : "CPU workers");
    printf("logs: %s; watch: cisweep status --db %s\n", logs, o.db);
    rc = 0;
out:
    free(kdir); free(k_ckey); free(k_allow); free(k_wkey); free(k_pub); free(cargs);
    free(shared); free(db); free(wbin); free(cbin); free(cache); free(logs); free(wtpl); free(ctpl); free(wfile); free(cfile);
    free(wtext); free(ctext); free(epfile); free(wargs); free(sbl);
    return rc;
}

int cmd_slurm(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "submit")) return slurm_submit(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) { usage(stdout); return 0; }
    fprintf(stderr, "cisweep slurm: expected the subcommand \"submit\"%s%s\n", argc >= 2 ? ", got " : "", argc >= 2 ? argv[1] : "");
    usage(stderr);
    return 2;
}
