/* cmd_study.c - `cisweep run` with no --grid: the study end to end on the embedded default
 * (issue 12, item 8). Every step is resumable: what exists is kept, and running it again after an
 * interruption continues where it stopped.
 *   1. world:    `cisweep-worker world` (synthetic world in the real datasets' formats) into OUT/world;
 *   2. family:   one tiny model per model slot of the study grid (the slot -> architecture map
 *                below), into OUT/family/<arch>: copied from the family shipped in the repository
 *                (models/family, family_shipped.h) when it was trained on this world with this step
 *                budget and its files verify, else trained (`train --family --archs ...`);
 *   3. statistics: MEMIT's second moments of each base model: prerequisite jobs of the sweep
 *                (added by the launch), computed once into OUT/artifacts, the shared artifact
 *                cache which every worker reads (--artifacts); their time is read from the DB;
 *   4. sweep:    the study grid (grids/paper-417.json) launched into OUT/sweep.db and run by local
 *                workers (one per core) through a real coordinator, with a progress line and ETA;
 *   5. report:   `cisweep report` into OUT/report;
 *   6. findings: for each of the paper's findings, the numbers of this run that support or
 *                contradict it (coordinator/findings.c), and the wall time of each step
 *                (OUT/timings.json). */
#include "coordinator/cli.h"
#include "coordinator/family_shipped.h"
#include "coordinator/findings.h"
#include "coordinator/grid.h"
#include "coordinator/job_store.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* the embedded default's stand-in for each model slot of the paper's grids (docs/training.md:
 * `train --family`); a slot not listed here is refused with the list */
static const struct { const char *slot, *arch; } SLOT_ARCH[] = {
    {"llama3-8b", "tiny-llama3"},   {"mistral-7b", "tiny-mistral"}, {"llama3.2-1b", "tiny-llama32"},
    {"yi-1.5-9b", "tiny-yi"},       {"phi3-mini", "tiny-phi3"},     {"default", "tiny-llama3"},
};

/* the wall seconds of the sweep's statistics jobs (the prerequisite jobs' current attempts, as the
 * workers timed them: attempts.run_ms), summed; 0 when there are none or the file cannot be read */
static double stats_seconds(const char *db) {
    job_store *js = NULL;
    cis_err err = {0};
    if (job_store_open(db, JS_READONLY, &js, &err)) return 0;
    sqlite3_stmt *st = NULL;
    double s = 0;
    if (sqlite3_prepare_v2(job_store_db(js),
                           "SELECT coalesce(sum(a.run_ms), 0) FROM jobs j JOIN compositions c ON c.id = j.composition_id "
                           "JOIN attempts a ON a.job_id = j.id AND a.attempt = j.current_attempt "
                           "WHERE c.pattern = 'prereq' AND j.state = 'done'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        s = sqlite3_column_int64(st, 0) / 1000.0;
    sqlite3_finalize(st);
    job_store_close(&js);
    return s;
}

static const char *slot_arch(const char *slot) {
    for (size_t i = 0; i < sizeof SLOT_ARCH / sizeof *SLOT_ARCH; i++)
        if (!strcmp(SLOT_ARCH[i].slot, slot)) return SLOT_ARCH[i].arch;
    return NULL;
}

/* run a program to completion (argv NULL-terminated); its exit status, or -1 */
static int run_child(char *const argv[]) {
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p < 0) return -1;
    if (p == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "cisweep run: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(p, &st, 0) < 0)
        if (errno != EINTR) return -1;
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static bool exists(const char *dir, const char *file) {
    char *p = xasprintf("%s/%s", dir, file);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: cisweep run [--out DIR] [--study-grid FILE] [--workers N] [--family-steps N] [--threads N]\n"
            "                   [--eval-limit N] [--eval-profile sweep|default|paper] [--mc-prompt V] [--world-scale default|small] [--no-report]\n"
            "                   [--shipped-family DIR] [--train-family] [--until world|models|sweep] [--rerun-stale]\n"
            "                   [--eval-cloze]\n"
            "  the study end to end on the embedded default: world, one tiny model per slot of the grid\n"
            "  (default grids/paper-417.json), the whole grid on N local workers (default: one per core), the\n"
            "  report and the paper's findings checked on this run's numbers. Everything goes to DIR (default\n"
            "  out/study); running it again continues where it stopped (not when its done jobs hold results of\n"
            "  another results epoch, an older build's presets: --rerun-stale recomputes those).\n"
            "  `cisweep run --grid FILE ...` runs one grid on given models instead (see cisweep run --grid --help).\n"
            "  The models are copied from the family shipped in DIR (default models/family, its manifest.json)\n"
            "  when it was trained on this world with this step budget and every file's sha256 verifies;\n"
            "  else, or with --train-family, they are trained. --until STEP stops after that step.\n"
            "  --eval-cloze also scores MMLU/WMDP in the cloze formulation (the cloze_* rows, docs/eval.md) and\n"
            "  prints the findings on them too (jobs already done keep the rows they have: use a fresh DIR).\n");
}

int cmd_study(int argc, char **argv) {
    const char *out = "out/study", *gridf = "grids/paper-417.json", *family_steps = NULL, *threads = NULL,
               *eval_limit = NULL, *world_scale = "default",
               *eval_profile = NULL, *mc_prompt = NULL, *shipped_dir = "models/family";
    int64_t workers = 0, v, family_steps_n = 0;
    bool report = true, train_family = false, rerun_stale = false, eval_cloze = false;
    int until = 6;   /* the last step to run */
    static const char *STEP_NAMES[] = {"", "world", "models", "statistics", "sweep", "report", "findings"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--out") && n) { out = n; i++; }
        else if (!strcmp(a, "--study-grid") && n) { gridf = n; i++; }
        else if (!strcmp(a, "--workers") && n && parse_i64(n, &workers) && workers >= 1 && workers <= 256) i++;
        else if (!strcmp(a, "--family-steps") && n && parse_i64(n, &family_steps_n) && family_steps_n >= 1) { family_steps = n; i++; }
        else if (!strcmp(a, "--shipped-family") && n) { shipped_dir = n; i++; }
        else if (!strcmp(a, "--train-family")) train_family = true;
        else if (!strcmp(a, "--until") && n) {
            until = 0;
            for (int k = 1; k <= 4; k++) if (k != 3 && !strcmp(n, STEP_NAMES[k])) until = k;
            if (!until) { /* step 3, the statistics, runs inside the sweep (its prerequisite jobs) */
                fprintf(stderr, "cisweep run: --until: expected world, models or sweep, got \"%s\"\n", n);
                return 2;
            }
            i++;
        }
        else if (!strcmp(a, "--threads") && n && parse_i64(n, &v) && v >= 0) { threads = n; i++; }
        else if (!strcmp(a, "--eval-limit") && n && parse_i64(n, &v) && v >= 0) { eval_limit = n; i++; }
        else if (!strcmp(a, "--no-report")) report = false;
        else if (!strcmp(a, "--rerun-stale")) rerun_stale = true;   /* cmd_run.c's stale_guard */
        else if (!strcmp(a, "--eval-cloze")) eval_cloze = true;     /* the workers' cloze_* rows */
        else if (!strcmp(a, "--world-scale") && n) { world_scale = n; i++; }
        else if (!strcmp(a, "--eval-profile") && n) { eval_profile = n; i++; }   /* checked by `run --grid` */
        else if (!strcmp(a, "--mc-prompt") && n) { mc_prompt = n; i++; }
        else {
            fprintf(stderr, "cisweep run: unknown, incomplete or invalid option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (workers == 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        workers = nc >= 1 ? nc : 1;
    }
    cis_err err = {0};
    grid *g = NULL;
    if (grid_load(gridf, 0, &g, &err)) {
        fprintf(stderr, "cisweep run: %s\n", err.msg);
        return 2;
    }
    /* the slots of the grid and their stand-ins */
    json_t *archs = json_object();   /* arch -> true, in first-seen order */
    json_t *map = json_object();     /* slot -> model directory */
    char *family = xasprintf("%s/family", out);
    int rc = 0;
    /* the grid's own slot map GRID.models.json (slot -> family member), else the table above */
    json_t *slotmap = NULL;
    char *mapf = str_ends(gridf, ".json") ? xasprintf("%.*s.models.json", (int)(strlen(gridf) - 5), gridf) : NULL;
    if (mapf && access(mapf, F_OK) == 0) {
        json_error_t je;
        slotmap = json_load_file(mapf, 0, &je);
        if (!json_is_object(slotmap)) {
            fprintf(stderr, "cisweep run: %s:%d: %s (expected an object of slot -> family member name)\n", mapf, je.line,
                    slotmap ? "not an object" : je.text);
            rc = 2;
        }
    }
    for (size_t i = 0; i < g->n_comps && !rc; i++) {
        const char *slot = g->comps[i].model;
        const char *arch = slotmap ? json_string_value(json_object_get(slotmap, slot)) : slot_arch(slot);
        if (json_object_get(map, slot)) continue;
        if (!arch) {
            fprintf(stderr, "cisweep run: %s: model slot \"%s\" has no stand-in in the embedded default (%s); run it with "
                    "--grid FILE --models MAP\n", gridf, slot, slotmap ? mapf : "slots: llama3-8b, mistral-7b, llama3.2-1b, "
                    "yi-1.5-9b, phi3-mini, default");
            rc = 2;
            break;
        }
        json_object_set_new(archs, arch, json_true());
        char *dir = xasprintf("%s/%s", family, arch);
        json_object_set_new(map, slot, json_string(dir));
        free(dir);
    }
    size_t n_comps = g->n_comps, n_jobs = g->n_jobs;
    grid_free(&g);
    if (rc) goto done;
    if (mkdir_p(out, &err)) { fprintf(stderr, "cisweep run: %s\n", err.msg); rc = 1; goto done; }
    printf("cisweep run: the study %s (%zu compositions, %zu jobs) on the embedded default, %lld workers, in %s\n", gridf,
           n_comps, n_jobs, (long long)workers, out);
    char *wbin = cli_sibling_path("cisweep-worker");
    double t_world = 0, t_family = 0, t_sweep = 0, t_report = 0, t0;

    /* 1. the world */
    char *world = xasprintf("%s/world", out);
    t0 = mono_sec();
    if (exists(world, "world.json")) printf("== 1. world: %s (exists)\n", world);
    else {
        printf("== 1. world: %s\n", world);
        char *av[] = {wbin, "world", "--out", world, "--seed", "1234", "--scale", (char *)world_scale, NULL};
        if (run_child(av)) { fprintf(stderr, "cisweep run: generating the world failed\n"); rc = 1; }
    }
    t_world = mono_sec() - t0;

    /* 2. the family: one model per slot's architecture, from the shipped family when it fits this
     * run (family_shipped.h: the world the trainer reads, the step budget, every file's sha256),
     * else trained */
    const char *models_source = "not run";
    char models_note[1100] = "";
    if (!rc && until >= 2) {
        char list[512] = "";
        const char *archv[16];
        int narch = 0, nexist = 0;
        const char *k;
        json_t *jv;
        json_object_foreach(archs, k, jv) {
            (void)jv;
            if (*list) strncat(list, ",", sizeof list - strlen(list) - 1);
            strncat(list, k, sizeof list - strlen(list) - 1);
            if (narch < 16) archv[narch++] = k;
            char *d = xasprintf("%s/%s", family, k);
            nexist += exists(d, "model.safetensors");
            free(d);
        }
        t0 = mono_sec();
        bool ready = false;   /* every member is in place: kept or copied from the shipped family */
        if (nexist == narch) {
            models_source = "kept";
            printf("== 2. models: %s in %s (exist; kept)\n", list, family);
            ready = true;   /* nothing to copy or train */
        } else if (train_family) {
            snprintf(models_note, sizeof models_note, "--train-family");
        } else {
            cis_err why = {0};
            family_shipped *fs = NULL;
            char *mf = xasprintf("%s/manifest.json", shipped_dir);
            int copied = 0;
            if (access(mf, F_OK) != 0) snprintf(why.msg, sizeof why.msg, "no shipped family at %s", shipped_dir);
            else if (family_shipped_load(shipped_dir, &fs, &why) == 0 &&
                     family_shipped_fits(fs, world, world_scale, family_steps ? family_steps_n : family_shipped_steps(fs), archv,
                                         narch, &why) == 0 &&
                     family_shipped_install(fs, family, archv, narch, &copied, &why) == 0)
                ready = true;
            free(mf);
            family_shipped_free(&fs);
            if (ready) {
                models_source = "shipped (verified)";
                printf("== 2. models: %s from the shipped family %s into %s: shipped (verified), %d copied, %.2f s\n", list,
                       shipped_dir, family, copied, mono_sec() - t0);
            } else snprintf(models_note, sizeof models_note, "%s", why.msg);
        }
        if (!ready) {
            models_source = "trained";
            printf("== 2. models: %s into %s: training (%s%s; kept where trained already)\n", list, family,
                   train_family ? "" : "not the shipped family: ", models_note);
            char *av[20];
            int ac = 0;
            av[ac++] = wbin; av[ac++] = "train"; av[ac++] = "--family"; av[ac++] = "--archs"; av[ac++] = list;
            av[ac++] = "--world"; av[ac++] = world; av[ac++] = "--out"; av[ac++] = family;
            /* one thread per member whatever the core count: the shipped family's recipe, the same
             * model on any machine (data-parallel replicas would change the summation order) */
            av[ac++] = "--threads"; av[ac++] = "1";
            if (family_steps) { av[ac++] = "--steps"; av[ac++] = (char *)family_steps; }
            av[ac] = NULL;
            if (run_child(av)) { fprintf(stderr, "cisweep run: training the models failed\n"); rc = 1; }
        }
        t_family = mono_sec() - t0;
    }

    /* 3. statistics: MEMIT's second moments of each slot's base model are the sweep's prerequisite
     * jobs (`cisweep launch` adds one per model and setting, coordinator/job_store_prereq.c): the
     * first worker free computes them into OUT/artifacts, the shared artifact cache every worker
     * reads (--artifacts), before any MEMIT job is leased. Their time is read from the database
     * after the sweep (statistics_s: part of sweep_s). */
    char *artifacts = xasprintf("%s/artifacts", out);
    double t_stats = 0;

    /* 4. the sweep */
    char *db = xasprintf("%s/sweep.db", out), *models = xasprintf("%s/models.json", out), *cache = xasprintf("%s/cache", out);
    if (!rc && until >= 4) {
        /* the models map with absolute paths (jobs carry them to workers) */
        json_t *absmap = json_object();
        const char *slot;
        json_t *dir;
        json_object_foreach(map, slot, dir) {
            char *abs = realpath(json_string_value(dir), NULL);
            json_object_set_new(absmap, slot, json_string(abs ? abs : json_string_value(dir)));
            free(abs);
        }
        char *txt = json_dumps(absmap, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(absmap);
        if (write_file_atomic(models, txt, strlen(txt), &err)) { fprintf(stderr, "cisweep run: %s\n", err.msg); rc = 1; }
        free(txt);
    }
    if (!rc && until >= 4) {
        printf("== 4. sweep: %s on %lld local workers (Ctrl-C stops; running again continues)\n", db, (long long)workers);
        t0 = mono_sec();
        char wn[32];
        snprintf(wn, sizeof wn, "%lld", (long long)workers);
        char *av[32];
        int ac = 0;
        av[ac++] = "run"; av[ac++] = "--grid"; av[ac++] = (char *)gridf; av[ac++] = "--db"; av[ac++] = db;
        av[ac++] = "--models"; av[ac++] = models; av[ac++] = "--data"; av[ac++] = world; av[ac++] = "--workers"; av[ac++] = wn;
        av[ac++] = "--cache"; av[ac++] = cache; av[ac++] = "--progress"; av[ac++] = "10";
        av[ac++] = "--artifacts"; av[ac++] = artifacts;
        /* one BLAS thread per worker unless told otherwise: the workers already fill the cores */
        av[ac++] = "--threads"; av[ac++] = threads ? (char *)threads : "1";
        if (eval_limit) { av[ac++] = "--eval-limit"; av[ac++] = (char *)eval_limit; }
        /* the sweep profile by default: evaluation sets sized for the embedded default (docs/eval.md) */
        av[ac++] = "--eval-profile"; av[ac++] = eval_profile ? (char *)eval_profile : "sweep";
        if (mc_prompt) { av[ac++] = "--mc-prompt"; av[ac++] = (char *)mc_prompt; }
        if (rerun_stale) av[ac++] = "--rerun-stale";
        if (eval_cloze) av[ac++] = "--eval-cloze";
        av[ac] = NULL;
        int r = cmd_run(ac, av);
        t_sweep = mono_sec() - t0;
        t_stats = stats_seconds(db);
        if (r == 130) { printf("cisweep run: interrupted; run it again to continue\n"); rc = 130; }
        else if (r == 2) { printf("cisweep run: the sweep did not start (see above)\n"); rc = 2; }
        else if (r) printf("cisweep run: the sweep ended with failed jobs (see above); the report covers what finished\n");
    }

    /* 5. the report */
    if (!rc && report && until >= 5) {
        char *rdir = xasprintf("%s/report", out);
        t0 = mono_sec();
        char *cis = cli_sibling_path("cisweep");
        char *av[] = {cis, "report", "--db", db, "--out", rdir, NULL};
        printf("== 5. report: %s\n", rdir);
        int r = run_child(av);
        if (r) printf("cisweep run: the report failed (exit %d)\n", r);
        t_report = mono_sec() - t0;
        free(cis);
        free(rdir);
    }

    /* 6. the findings; and the time breakdown of the steps that ran (--until stops earlier) */
    if (!rc && until >= 6) {
        job_store *js = NULL;
        printf("== 6. the paper's findings on this run\n");
        if (job_store_open(db, JS_READONLY, &js, &err) == 0) {
            findings_print(job_store_db(js), NULL, stdout);
            if (eval_cloze) {
                printf("== 6. the paper's findings on this run, read on the cloze rows\n");
                findings_print_form(job_store_db(js), NULL, FINDINGS_CLOZE, stdout);
            }
            job_store_close(&js);
        } else fprintf(stderr, "cisweep run: %s\n", err.msg);
    }
    if (!rc) {
        if (until < 6) printf("cisweep run: stopped after step %d (%s) as --until asked\n", until, STEP_NAMES[until]);
        printf("time: world %.1f s, models %.1f s (%s), sweep %.0f s (of which the statistics jobs %.0f s), report %.1f s, "
               "total %.0f s\n", t_world, t_family, models_source, t_sweep, t_stats, t_report,
               t_world + t_family + t_sweep + t_report);
        json_t *tjo = json_pack("{s:f, s:f, s:f, s:b, s:f, s:f, s:I, s:s, s:I}", "world_s", t_world, "models_s", t_family,
                                "statistics_s", t_stats, "statistics_in_sweep", 1, "sweep_s",
                                t_sweep, "report_s", t_report, "workers", (json_int_t)workers, "grid", gridf, "jobs",
                                (json_int_t)n_jobs);
        /* where the models came from: "shipped (verified)" (copied from the shipped family after
         * checking every sha256), "trained" (models_note: why not the shipped family), "kept" */
        json_object_set_new(tjo, "models_source", json_string(models_source));
        if (*models_note) json_object_set_new(tjo, "models_note", json_string(models_note));
        json_object_set_new(tjo, "until", json_string(STEP_NAMES[until]));
        char *tj = json_dumps(tjo, JSON_INDENT(2));
        json_decref(tjo);
        char *tp = xasprintf("%s/timings.json", out);
        if (write_file_atomic(tp, tj, strlen(tj), &err)) LOG_W("%s", err.msg);
        free(tp);
        free(tj);
    }
    free(db);
    free(models);
    free(cache);
    free(artifacts);
    free(world);
    free(wbin);
done:
    json_decref(archs);
    json_decref(map);
    json_decref(slotmap);
    free(mapf);
    free(family);
    return rc;
}

/* `cisweep findings --db DB [--sweep NAME] [--form letter|cloze]`: the study's findings summary on any
 * sweep database, on the lettered MMLU/WMDP rows (the paper's) or the cloze ones (--eval-cloze) */
int cmd_findings(int argc, char **argv) {
    const char *db = NULL, *sweep = NULL;
    const char *usage = "usage: cisweep findings --db DB [--sweep NAME] [--form letter|cloze]\n";
    findings_form form = FINDINGS_LETTER;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--sweep") && n) { sweep = n; i++; }
        else if (!strcmp(a, "--form") && n && (!strcmp(n, "letter") || !strcmp(n, "cloze"))) {
            form = !strcmp(n, "cloze") ? FINDINGS_CLOZE : FINDINGS_LETTER;
            i++;
        } else if (!strcmp(a, "--form")) {
            fprintf(stderr, "cisweep findings: --form expects letter or cloze, got \"%s\"\n%s", n ? n : "", usage);
            return 2;
        } else {
            fprintf(stderr, "cisweep findings: unknown or incomplete option \"%s\"\n%s", a, usage);
            return 2;
        }
    }
    if (!db) { fprintf(stderr, "cisweep findings: --db DB is required\n%s", usage); return 2; }
    cis_err err = {0};
    job_store *js = NULL;
    if (job_store_open(db, JS_READONLY, &js, &err)) { fprintf(stderr, "cisweep findings: %s\n", err.msg); return 2; }
    int n = findings_print_form(job_store_db(js), sweep, form, stdout);
    job_store_close(&js);
    return n < 0 ? 1 : 0;
}
