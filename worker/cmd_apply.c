/* cmd_apply.c - `cisweep apply MODEL_DIR --stage JSON [--stage JSON ...] --out DIR [options]`:
 * load a Hugging Face model directory, apply a composition through the intervention registry (the
 * same plan and interv_run_plan a sweep job uses, the paper's recompress rule included unless
 * --exact), and write the result as a model directory (config.json, model.safetensors, the
 * tokenizer files) plus DIR/apply.json: each stage's method, effective params, seed, record and
 * wall time. `cisweep eval DIR --world DATA` then scores it. Exit status: 0 ok; 1 a run-time
 * failure (a stage, the save, a stop signal); 2 usage or bad input (JSON, method, params, a model
 * directory that is missing or does not load, a stage not built yet).
 * `cisweep apply MODEL_DIR --record FILE.cisrec --out DIR` re-applies a compression stage's record
 * file instead (cmp_record.h: codes dequantized, or masks) and writes the same outputs. */
#include "worker/apply.h"
#include "worker/interventions/intervention.h"
#include "worker/interventions/cmp_record.h"
#include "common/log.h"
#include "common/version.h"
#include "worker/engine/checkpoint.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void apply_usage(FILE *f) {
    fprintf(f,
            "usage: cisweep apply MODEL_DIR --stage JSON [--stage JSON ...] --out DIR [--data DIR] [--edit-set K]\n"
            "                     [--device cpu] [--threads N] [--cache DIR] [--dtype F32|BF16|F16] [--exact]\n"
            "                     [--recompress paper|never|always|mask] [--allow-test-stages]\n"
            "  --stage JSON   one stage {\"method\": NAME, \"params\": {...}} (or an array of stages), in order\n"
            "  --edit-set K   the zsRE edit set, also the seed of every stage (default 1)\n"
            "  --exact        run the stages as given: no re-application of a leading Wanda/SparseGPT/GPTQ\n"
            "                 (the same as --recompress never)\n"
            "  --recompress P the recompress policy (docs/interventions.md): paper (default: a leading\n"
            "                 Wanda/SparseGPT/GPTQ re-applied at the end), never, always (every compressor\n"
            "                 that a non-compressor follows, AWQ too), mask (a pruner's zeros kept at zero)\n"
            "  --dtype D      dtype of model.safetensors (default: the model's torch_dtype)\n"
            "  --allow-test-stages  accept test-category stages (test_scale)\n"
            "usage: cisweep apply MODEL_DIR --record FILE.cisrec --out DIR [--dtype D]\n"
            "  --record FILE  instead of stages: re-apply a compression stage's record file (its integer codes,\n"
            "                 dequantized, or its masks; docs/compression.md \"The compression record file\")\n");
}

/* ---- saving ------------------------------------------------------------------------------- */

const char *apply_dtype_of(const llama_config *cfg) {
    if (!strcmp(cfg->torch_dtype, "bfloat16")) return "BF16";
    if (!strcmp(cfg->torch_dtype, "float16")) return "F16";
    return "F32";
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int copy_file(const char *from, const char *to, cis_err *err) {
    size_t n = 0;
    char *data = read_file(from, &n, err);
    if (!data) return -1;
    int rc = write_file_replace(to, data, n, err);
    free(data);
    return rc;
}

int apply_save_model(llama_model *m, const char *src_dir, const char *out_dir, const char *dtype, cis_err *err) {
    static const char *const COPIED[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                         "generation_config.json", "tokenizer.model", "added_tokens.json"};
    int n = 0;
    (void)n;
    if (mkdir_p(out_dir, err)) return -1;
    /* through a host copy when the model's memory is a device's */
    if (llama_model_save(m, out_dir, dtype, err)) {
        err_prefix(err, "saving %s", out_dir);
        return -1;
    }
    for (size_t i = 0; i < sizeof COPIED / sizeof COPIED[0]; i++) {
        char *from = xasprintf("%s/%s", src_dir, COPIED[i]), *to = xasprintf("%s/%s", out_dir, COPIED[i]);
        int rc = file_exists(from) ? copy_file(from, to, err) : 0;
        free(from);
        free(to);
        if (rc) return -1;
    }
    return 0;
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct apply_opts {
    const char *model_dir, *out_dir, *data_dir, *cache_dir, *device, *dtype;
    int edit_set, threads;
    bool exact, allow_test;
    int recompress;          /* recompress_policy (--recompress; paper by default) */
    json_t *stages;          /* the --stage values in order (owned) */
    const char *record;      /* --record FILE.cisrec: re-apply a compression record instead of stages */
} apply_opts;

static int int_opt(const char *flag, const char *v, int lo, int *out) {
    int64_t x;
    if (!v || !parse_i64(v, &x) || x < lo || x > 1000000) {
        fprintf(stderr, "cisweep apply: %s expects an integer >= %d, got \"%s\"\n", flag, lo, v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* one --stage value: an object, or an array of them, appended to o->stages */
static int add_stage_arg(apply_opts *o, const char *text, int k) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        fprintf(stderr, "cisweep apply: --stage #%d: JSON syntax error at line %d, column %d: %s\n", k, je.line,
                je.column, je.text);
        return -1;
    }
    if (json_is_object(j)) json_array_append(o->stages, j);
    else if (json_is_array(j)) json_array_extend(o->stages, j);
    else {
        fprintf(stderr, "cisweep apply: --stage #%d: expected a stage object {\"method\": NAME, \"params\": {...}} "
                "or an array of them\n", k);
        json_decref(j);
        return -1;
    }
    json_decref(j);
    return 0;
}

static int parse_args(int argc, char **argv, apply_opts *o) {
    memset(o, 0, sizeof *o);
    o->edit_set = 1;
    o->device = "cpu";
    o->stages = json_array();
    int n_stage_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--stage") && n) { if (add_stage_arg(o, n, ++n_stage_args)) return -1; i++; }
        else if (!strcmp(a, "--out") && n) { o->out_dir = n; i++; }
        else if (!strcmp(a, "--data") && n) { o->data_dir = n; i++; }
        else if (!strcmp(a, "--cache") && n) { o->cache_dir = n; i++; }
        else if (!strcmp(a, "--device") && n) { o->device = n; i++; }
        else if (!strcmp(a, "--dtype") && n) { o->dtype = n; i++; }
        else if (!strcmp(a, "--edit-set")) { if (int_opt(a, n, 1, &o->edit_set)) return -1; i++; }
        else if (!strcmp(a, "--threads")) { if (int_opt(a, n, 1, &o->threads)) return -1; i++; }
        else if (!strcmp(a, "--exact")) o->exact = true;
        else if (!strcmp(a, "--recompress") && n) {
            if ((o->recompress = recompress_parse(n)) < 0) {
                fprintf(stderr, "cisweep apply: --recompress: \"%s\" is not a policy (allowed: %s)\n", n,
                        RECOMPRESS_CHOICES);
                return -1;
            }
            i++;
        }
        else if (!strcmp(a, "--allow-test-stages")) o->allow_test = true;
        else if (!strcmp(a, "--record") && n) { o->record = n; i++; }
        else if (a[0] != '-' && !o->model_dir) o->model_dir = a;
        else { fprintf(stderr, "cisweep apply: unknown or incomplete option \"%s\"\n", a); return -1; }
    }
    if (o->record && json_array_size(o->stages)) {
        fprintf(stderr, "cisweep apply: --record and --stage exclude each other\n");
        return -1;
    }
    if (!o->model_dir || !o->out_dir || (json_array_size(o->stages) == 0 && !o->record)) {
        fprintf(stderr, "cisweep apply: MODEL_DIR, --out DIR and at least one --stage (or --record FILE) are "
                "required\n");
        return -1;
    }
    if (o->dtype && strcmp(o->dtype, "F32") && strcmp(o->dtype, "BF16") && strcmp(o->dtype, "F16")) {
        fprintf(stderr, "cisweep apply: --dtype must be F32, BF16 or F16, got \"%s\"\n", o->dtype);
        return -1;
    }
    return 0;
}

/* everything checkable before loading the model; messages name the stage or the path */
static int check_inputs(const apply_opts *o, cis_err *err) {
    for (size_t i = 0; i < json_array_size(o->stages); i++) {
        char *where = xasprintf("stage %zu", i + 1);
        json_t *st = spec_normalize_stage(json_array_get(o->stages, i), where, o->allow_test, err);
        free(where);
        if (!st) return -1;
        json_decref(st);
    }
    if (!backend_device_ok(o->device, err)) { err_prefix(err, "--device"); return -1; }
    char *cfg = xasprintf("%s/config.json", o->model_dir);
    bool ok = file_exists(cfg);
    free(cfg);
    if (!ok) return err_set(err, CIS_EINVAL, "%s: no config.json (expected a Hugging Face model directory)", o->model_dir);
    if (o->data_dir && !dir_exists(o->data_dir))
        return err_set(err, CIS_EINVAL, "--data %s: not a directory", o->data_dir);
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(o->model_dir, a) && realpath(o->out_dir, b) && !strcmp(a, b))
        return err_set(err, CIS_EINVAL, "--out %s is the model directory itself: write the result elsewhere", o->out_dir);
    return 0;
}

/* ---- running ------------------------------------------------------------------------------ */

static volatile int g_signal = 0;
static bool stop_on_signal(void *arg) { (void)arg; return g_signal != 0; }

static llama_model *load_model(const char *dir, const char *device, int threads, tokenizer **tok, cis_err *err) {
    llama_config cfg;
    if (checkpoint_dir_load_config(dir, &cfg, err)) return NULL;
    backend *be = backend_open(device, &(backend_opts){.threads = threads}, err);
    llama_model *m = be ? llama_model_new(&cfg, be, err) : NULL;
    if (!m) { backend_close(&be); return NULL; }
    llama_model_own_backend(m);
    if (llama_model_load(m, dir, err) || tokenizer_load(dir, tok, err)) { llama_model_free(&m); return NULL; }
    return m;
}

static json_t *apply_record(const apply_opts *o, const interv_plan *plan, json_t *stages, const char *dtype,
                            double load_s, double apply_s) {
    char when[40];
    json_t *r = json_object();
    json_object_set_new(r, "tool", json_string("cisweep apply"));
    json_object_set_new(r, "version", json_string(cisweep_version()));
    json_object_set_new(r, "created", json_string(fmt_time_ms(now_ms(), when, sizeof when)));
    json_object_set_new(r, "source", json_string(o->model_dir));
    json_object_set_new(r, "composition", json_incref(plan->canonical));
    json_object_set_new(r, "plan", json_string(o->exact ? "exact" : recompress_name(plan->policy)));
    json_object_set_new(r, "recompress", json_string(recompress_name(plan->policy)));
    json_object_set_new(r, "edit_set", json_integer(o->edit_set));
    json_object_set_new(r, "seed", json_integer(o->edit_set));
    json_object_set_new(r, "data", o->data_dir ? json_string(o->data_dir) : json_null());
    json_object_set_new(r, "device", json_string(o->device));
    json_object_set_new(r, "dtype", json_string(dtype));
    json_object_set_new(r, "stages", json_incref(stages));
    json_object_set_new(r, "load_s", json_real(load_s));
    json_object_set_new(r, "apply_s", json_real(apply_s));
    return r;
}

static int write_record(const char *out_dir, json_t *rec, cis_err *err) {
    char *text = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    char *path = xasprintf("%s/apply.json", out_dir);
    size_t n = strlen(text);
    text = xrealloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = 0;
    int rc = write_file_atomic(path, text, n + 1, err);
    free(path);
    free(text);
    return rc;
}

/* whether a MEMIT step comes after another step of the plan (then its statistics need the model as
 * loaded: the working model is no longer it) */
static bool apply_needs_base(const interv_plan *plan) {
    for (int i = 1; i < plan->n; i++)
        if (!strcmp(plan->steps[i].iv->name, "memit")) return true;
    return false;
}

static int run_apply(const apply_opts *o, const interv_plan *plan) {
    cis_err err = {0};
    tokenizer *tok = NULL;
    double t0 = mono_sec();
    llama_model *m = load_model(o->model_dir, o->device, o->threads, &tok, &err);
    if (!m) { fprintf(stderr, "cisweep apply: %s: %s\n", o->model_dir, err.msg); return 2; }
    double load_s = mono_sec() - t0;
    install_stop_signals(&g_signal);
    /* MEMIT after another stage keys its statistics on the model as loaded (the base), as upstream
     * reuses the uncompressed statistics after a compressor: a copy of the loaded weights is kept */
    llama_model *base = NULL;
    if (apply_needs_base(plan)) {
        base = llama_model_new(llama_model_config(m), llama_model_backend(m), &err);
        if (!base || llama_model_copy_params(base, m, &err)) {
            fprintf(stderr, "cisweep apply: %s: keeping the base model for MEMIT's statistics: %s\n", o->model_dir, err.msg);
            llama_model_free(&base);
            tokenizer_free(tok);
            llama_model_free(&m);
            return 1;
        }
    }
    /* a compression stage's record file (masks, integer codes) goes next to apply.json */
    interv_env env = {.model = m, .tok = tok, .data_dir = o->data_dir, .cache_dir = o->cache_dir, .base = base,
                      .record_dir = o->out_dir,
                      .edit_set = o->edit_set, .threads = o->threads, .stop_fn = stop_on_signal};
    json_t *stages = NULL;
    t0 = mono_sec();
    int rc = interv_run_plan(&env, plan, &stages, &err);
    double apply_s = mono_sec() - t0;
    int status = 0;
    const char *dtype = o->dtype ? o->dtype : apply_dtype_of(llama_model_config(m));
    if (rc) {
        fprintf(stderr, "cisweep apply: %s\n", err.msg);
        status = err.code == CIS_EINVAL ? 2 : 1;
    } else if (apply_save_model(m, o->model_dir, o->out_dir, dtype, &err)) {
        fprintf(stderr, "cisweep apply: %s\n", err.msg);
        status = 1;
    } else {
        json_t *rec = apply_record(o, plan, stages, dtype, load_s, apply_s);
        if (write_record(o->out_dir, rec, &err)) { fprintf(stderr, "cisweep apply: %s\n", err.msg); status = 1; }
        json_decref(rec);
    }
    if (status == 0) {
        for (size_t i = 0; i < json_array_size(stages); i++) {
            json_t *s = json_array_get(stages, i);
            printf("stage %lld: %s%s %.3f s\n", (long long)json_integer_value(json_object_get(s, "stage")),
                   json_string_value(json_object_get(s, "method")),
                   json_is_true(json_object_get(s, "recompress")) ? " (re-applied: paper rule)" : "",
                   json_integer_value(json_object_get(s, "wall_ms")) / 1000.0);
        }
        printf("wrote %s (%s) and %s/apply.json; score it with: cisweep eval %s --world DATA_DIR\n", o->out_dir, dtype,
               o->out_dir, o->out_dir);
    }
    json_decref(stages);
    tokenizer_free(tok);
    llama_model_free(&base);
    llama_model_free(&m);
    return status;
}

/* --record: re-apply a compression record file to the model and save it, with an apply.json whose
 * one stage names the record (and, for codes, its wbits and group: `cisweep eval` reports avg_bits
 * from them as after the stage itself) */
static int run_record(const apply_opts *o) {
    cis_err err = {0};
    cmprec *r = NULL;
    if (cmprec_read(o->record, NULL, &r, &err)) { fprintf(stderr, "cisweep apply: --record: %s\n", err.msg); return 2; }
    tokenizer *tok = NULL;
    double t0 = mono_sec();
    llama_model *m = load_model(o->model_dir, o->device, o->threads, &tok, &err);
    if (!m) { fprintf(stderr, "cisweep apply: %s: %s\n", o->model_dir, err.msg); cmprec_free(&r); return 2; }
    double load_s = mono_sec() - t0;
    int64_t changed = 0;
    int status = 0;
    const char *dtype = o->dtype ? o->dtype : apply_dtype_of(llama_model_config(m));
    t0 = mono_sec();
    if (cmprec_apply(r, m, &changed, &err)) {
        fprintf(stderr, "cisweep apply: --record %s: %s\n", o->record, err.msg);
        status = 2;
    } else if (apply_save_model(m, o->model_dir, o->out_dir, dtype, &err)) {
        fprintf(stderr, "cisweep apply: %s\n", err.msg);
        status = 1;
    } else {
        size_t len = 0;
        char *bytes = read_file(o->record, &len, &err), hex[65] = "";
        if (bytes) sha256_hex(bytes, len, hex);
        free(bytes);
        json_t *rec = json_pack("{s:s,s:s,s:I,s:I}", "reapplied_from_record", o->record, "sha256", hex, "changed",
                                (json_int_t)changed, "tensors", (json_int_t)r->n);
        if (r->kind == CMPREC_QUANT) {
            json_object_set_new(rec, "wbits", json_integer(r->bits));
            json_object_set_new(rec, "group", json_integer(r->group));
        }
        interv_stage_info si = {1, 1, r->method, "compress", false, NULL, 0, (int64_t)((mono_sec() - t0) * 1000)};
        interv_record ir;
        interv_record_init(&ir);
        json_decref(ir.info);
        ir.info = rec;
        json_t *stages = json_array();
        json_array_append_new(stages, interv_stage_json(&si, &ir));
        interv_record_clear(&ir);
        char when[40];
        json_t *a = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:f}", "tool", "cisweep apply", "version", cisweep_version(),
                              "created", fmt_time_ms(now_ms(), when, sizeof when), "source", o->model_dir, "plan",
                              "record", "device", o->device, "dtype", dtype, "stages", stages, "load_s", load_s);
        if (write_record(o->out_dir, a, &err)) { fprintf(stderr, "cisweep apply: %s\n", err.msg); status = 1; }
        json_decref(a);
        if (status == 0)
            printf("re-applied %s (%s, %d tensors, %lld weights changed); wrote %s (%s) and %s/apply.json\n", o->record,
                   r->method, r->n, (long long)changed, o->out_dir, dtype, o->out_dir);
    }
    tokenizer_free(tok);
    llama_model_free(&m);
    cmprec_free(&r);
    return status;
}

int cmd_apply(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { apply_usage(stdout); return 0; }
    apply_opts o;
    if (parse_args(argc, argv, &o)) { apply_usage(stderr); json_decref(o.stages); return 2; }
    cis_err err = {0};
    interv_plan plan = {0};
    unsigned flags = (o.allow_test ? INTERV_ALLOW_TEST : 0) | (o.exact ? INTERV_EXACT : 0) |
                     INTERV_RECOMPRESS(o.recompress);
    int status = 2;
    if (o.record) {
        if (check_inputs(&o, &err)) fprintf(stderr, "cisweep apply: %s\n", err.msg);
        else status = run_record(&o);
    } else if (check_inputs(&o, &err) || interv_plan_build(o.stages, "stages", flags, &plan, &err))
        fprintf(stderr, "cisweep apply: %s\n", err.msg);
    else
        status = run_apply(&o, &plan);
    interv_plan_clear(&plan);
    json_decref(o.stages);
    return status;
}
