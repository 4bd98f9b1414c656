/* cmd_inspect.c - `cisweep inspect MODEL_DIR [--prompt TEXT] [--top K] [--threads N]`: the
 * newcomer's first check that a checkpoint loads (and `cisweep inspect FILE.cisrec [--json]`: the
 * summary of a compression stage's record file, worker/interventions/cmp_record.h). Prints what config.json says (architecture,
 * sizes, RoPE, tied head, BOS/EOS), the parameter count, the dtypes found in the safetensors
 * headers, the tokenizer's kind and size, then the prompt's token ids and the top-K next tokens
 * with their probabilities after one forward on the cpu backend. Output is "key: value" lines
 * (docs/inspect.md); errors go to stderr and exit with status 2. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/config.h"
#include "worker/engine/model.h"
#include "worker/engine/safetensors.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/cmp_record.h"

int cmd_inspect(int argc, char **argv);

static void inspect_usage(FILE *f) {
    fprintf(f, "usage: cisweep inspect MODEL_DIR [--prompt TEXT] [--top K] [--threads N]\n"
               "       cisweep inspect FILE.cisrec [--json]   (a compression stage's record file)\n"
               "  MODEL_DIR holds config.json, model.safetensors (or shards + model.safetensors.index.json)\n"
               "  and, for the prompt, tokenizer.json. Defaults: --prompt \"The capital of\" --top 10.\n");
}

/* print s[0..n) as a JSON string: \" \\ \n \t and \u00HH for other control bytes; other bytes as they are */
static void print_quoted(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* the decoded text of one token; when it is not valid UTF-8 on its own (a byte of a longer
 * character decodes to U+FFFD) the vocabulary string follows: "\xef\xbf\xbd" (token "Ã") */
static void print_token(const tokenizer *tok, int32_t id) {
    char *s = NULL;
    size_t n = 0;
    if (tokenizer_decode_n(tok, &id, 1, false, &s, &n) == 0 && s) print_quoted(s, n);
    else fputs("?", stdout);
    const char *raw = tokenizer_id_to_token(tok, id);
    if (s && raw && memmem(s, n, "\xef\xbf\xbd", 3)) {
        fputs(" (token ", stdout);
        print_quoted(raw, strlen(raw));
        putchar(')');
    }
    free(s);
}

static void human(double x, char *buf, size_t n) {
    if (x >= 1e9) snprintf(buf, n, "%.2fB", x / 1e9);
    else if (x >= 1e6) snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e3) snprintf(buf, n, "%.1fK", x / 1e3);
    else snprintf(buf, n, "%.0f", x);
}

/* the files and dtypes on disk, from the safetensors headers: "F32=23 BF16=2" */
static int survey_dtypes(const char *dir, cis_err *err) {
    char *single = xasprintf("%s/model.safetensors", dir);
    char *index = xasprintf("%s/model.safetensors.index.json", dir);
    char **files = NULL;
    size_t nfiles = 0;
    struct stat sb;
    int rc = -1;
    if (stat(single, &sb) == 0) {
        files = xmalloc(sizeof *files);
        files[nfiles++] = xstrdup(single);
        printf("files: model.safetensors\n");
    } else {
        json_error_t je;
        json_t *root = json_load_file(index, 0, &je);
        json_t *wm = root ? json_object_get(root, "weight_map") : NULL;
        if (!json_is_object(wm)) {
            err_set(err, CIS_EINVAL, "%s: no model.safetensors and no readable weight_map in the index", dir);
            json_decref(root);
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(wm, k, v) {
            const char *fn = json_string_value(v);
            if (!fn) continue;
            char *p = xasprintf("%s/%s", dir, fn);
            bool seen = false;
            for (size_t i = 0; i < nfiles; i++) seen |= !strcmp(files[i], p);
            if (seen) { free(p); continue; }
            files = xrealloc(files, (nfiles + 1) * sizeof *files);
            files[nfiles++] = p;
        }
        json_decref(root);
        printf("files: %zu shards (model.safetensors.index.json)\n", nfiles);
    }
    size_t count[3] = {0, 0, 0};
    uint64_t bytes = 0;
    for (size_t i = 0; i < nfiles; i++) {
        st_file *f = st_open(files[i], err);
        if (!f) goto out;
        for (size_t j = 0; j < st_count(f); j++) {
            const st_tensor_info *t = st_get(f, j);
            count[t->dtype]++;
            bytes += t->nbytes;
        }
        st_close(&f);
    }
    char hb[32];
    human((double)bytes, hb, sizeof hb);
    printf("dtypes_on_disk:");
    const st_dtype order[3] = {ST_F32, ST_BF16, ST_F16};
    for (int i = 0; i < 3; i++)
        if (count[order[i]]) printf(" %s=%zu", st_dtype_name(order[i]), count[order[i]]);
    printf("\nbytes_on_disk: %llu (%sB)\n", (unsigned long long)bytes, hb);
    rc = 0;
out:
    for (size_t i = 0; i < nfiles; i++) free(files[i]);
    free(files);
    free(single);
    free(index);
    return rc;
}

static void print_config(const char *dir, const llama_config *c, const llama_model *m) {
    printf("model_dir: %s\n", dir);
    printf("architecture: %s\n", c->architecture);
    printf("model_type: %s\n", c->model_type);
    printf("layers: %d\n", c->num_hidden_layers);
    printf("hidden_size: %d\n", c->hidden_size);
    printf("attention_heads: %d\n", c->num_attention_heads);
    printf("kv_heads: %d%s\n", c->num_key_value_heads,
           c->num_key_value_heads < c->num_attention_heads ? " (grouped-query attention)" : "");
    printf("head_dim: %d\n", c->head_dim);
    printf("vocab_size: %d\n", c->vocab_size);
    printf("intermediate_size: %d\n", c->intermediate_size);
    printf("max_position_embeddings: %d\n", c->max_position_embeddings);
    char hb[32];
    int64_t n = llama_model_numel(m);
    human((double)n, hb, sizeof hb);
    printf("parameters: %lld (%s)\n", (long long)n, hb);
    printf("tie_word_embeddings: %s\n", c->tie_word_embeddings ? "true" : "false");
    printf("rope_theta: %g\n", c->rope_theta);
    if (c->rope_scaling == LLAMA_ROPE_LLAMA3)
        printf("rope_scaling: llama3 (factor %g, low_freq_factor %g, high_freq_factor %g, "
               "original_max_position_embeddings %d)\n", c->rope_factor, c->rope_low_freq_factor,
               c->rope_high_freq_factor, c->rope_original_max_pos);
    else
        printf("rope_scaling: none\n");
    printf("rms_norm_eps: %g\n", c->rms_norm_eps);
    if (c->sliding_window > 0) printf("sliding_window: %d\n", c->sliding_window);
    printf("torch_dtype: %s\n", c->torch_dtype[0] ? c->torch_dtype : "(unset)");
    printf("bos_token_id: %d\n", c->bos_token_id);
    printf("eos_token_id:");
    if (c->n_eos == 0) printf(" -1");
    for (int i = 0; i < c->n_eos; i++) printf(" %d", c->eos_token_ids[i]);
    printf("\n");
}

/* one forward over the prompt; prints the ids and the top-k next tokens */
static int run_prompt(llama_model *m, const tokenizer *tok, const char *prompt, int top, cis_err *err) {
    const llama_config *c = llama_model_config(m);
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &n, err)) {
        err_prefix(err, "--prompt");
        return -1;
    }
    int rc = -1;
    float *logits = NULL;
    double *p = NULL;
    int32_t *order = NULL;
    printf("prompt: ");
    print_quoted(prompt, strlen(prompt));
    printf("\nprompt_ids:");
    for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\nprompt_tokens:");
    for (size_t i = 0; i < n; i++) { putchar(' '); print_token(tok, ids[i]); }
    printf("\n");
    if (n == 0) { err_set(err, CIS_EINVAL, "--prompt encodes to no tokens (and the tokenizer adds no BOS)"); goto out; }
    if (n > (size_t)c->max_position_embeddings) {
        err_set(err, CIS_EINVAL, "--prompt: %zu tokens exceed max_position_embeddings %d", n, c->max_position_embeddings);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) {
            err_set(err, CIS_EINVAL, "--prompt: token id %d is outside the model's vocab_size %d "
                    "(tokenizer.json does not belong to this model?)", ids[i], c->vocab_size);
            goto out;
        }
    int V = c->vocab_size;
    logits = xmalloc((size_t)V * sizeof *logits);
    int32_t ob = 0, ot = (int32_t)n - 1;
    llama_batch b = {.B = 1, .T = (int)n, .ids = ids, .n_out = 1, .out_b = &ob, .out_t = &ot, .logits = logits};
    double t0 = mono_sec();
    if (llama_forward(m, &b, NULL, 0, false, NULL, err)) goto out;
    double dt = mono_sec() - t0;
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, logits[j]);
    p = xmalloc((size_t)V * sizeof *p);
    for (int j = 0; j < V; j++) z += (p[j] = exp((double)logits[j] - mx));
    for (int j = 0; j < V; j++) p[j] /= z;
    if (top > V) top = V;
    /* partial selection sort: the top-k by probability, ties to the lower id */
    order = xmalloc((size_t)V * sizeof *order);
    for (int j = 0; j < V; j++) order[j] = j;
    for (int r = 0; r < top; r++) {
        int best = r;
        for (int j = r + 1; j < V; j++)
            if (p[order[j]] > p[order[best]] || (p[order[j]] == p[order[best]] && order[j] < order[best])) best = j;
        int32_t tmp = order[r]; order[r] = order[best]; order[best] = tmp;
    }
    printf("forward_seconds: %.4f\n", dt);
    printf("top_%d_next_tokens:\n", top);
    for (int r = 0; r < top; r++) {
        int32_t id = order[r];
        printf("  %d. id %d p=%.6f logit=%.4f ", r + 1, id, p[id], logits[id]);
        print_token(tok, id);
        putchar('\n');
    }
    rc = 0;
out:
    free(ids);
    free(logits);
    free(p);
    free(order);
    return rc;
}

/* `cisweep inspect FILE.cisrec [--json]`: a compression stage's record file (cmp_record.h): what it
 * holds, per tensor and in all, with avg_bits recomputed from it as the evaluation reports it */
static int inspect_record(const char *path, bool json_out) {
    cis_err err = {0};
    cmprec *r = NULL;
    if (cmprec_read(path, NULL, &r, &err)) { fprintf(stderr, "cisweep inspect: %s\n", err.msg); return 2; }
    json_t *s = cmprec_summary(r);
    size_t len = 0;
    char *buf = read_file(path, &len, &err), hex[65] = "";
    if (buf) sha256_hex(buf, len, hex);
    free(buf);
    json_object_set_new(s, "file", json_string(path));
    json_object_set_new(s, "bytes", json_integer((json_int_t)len));
    json_object_set_new(s, "sha256", json_string(hex));
    if (json_out) {
        char *t = json_dumps(s, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        printf("%s\n", t);
        free(t);
    } else {
        printf("record: %s\nbytes_on_disk: %zu\nsha256: %s\nmethod: %s\nkind: %s\n", path, len, hex, r->method,
               r->kind == CMPREC_MASK ? "mask" : "quant");
        if (r->kind == CMPREC_QUANT)
            printf("bits: %d\ngroup: %d\nsym: %s\ndesc_act: %s\n", r->bits, r->group, r->sym ? "true" : "false",
                   r->desc_act ? "true" : "false");
        printf("tensors: %d\nnumel: %lld\nsparsity: %.6f\navg_bits: %.6f\nstored_bits_per_weight: %.4f\n", r->n,
               (long long)json_integer_value(json_object_get(s, "numel")),
               json_real_value(json_object_get(s, "sparsity")), json_real_value(json_object_get(s, "avg_bits")),
               json_real_value(json_object_get(s, "stored_bits_per_weight")));
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(s, "tensors"), i, t)
            printf("  %s [%lld, %lld] bits %lld sparsity %.4f avg_bits %.4f\n",
                   json_string_value(json_object_get(t, "name")), (long long)json_integer_value(json_object_get(t, "rows")),
                   (long long)json_integer_value(json_object_get(t, "cols")),
                   (long long)json_integer_value(json_object_get(t, "bits")),
                   json_real_value(json_object_get(t, "sparsity")), json_real_value(json_object_get(t, "avg_bits")));
    }
    json_decref(s);
    cmprec_free(&r);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    const char *dir = NULL, *prompt = "The capital of";
    int64_t top = 10, threads = 0;
    bool json_out = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { inspect_usage(stdout); return 0; }
        else if (!strcmp(a, "--json")) json_out = true;
        else if (!strcmp(a, "--prompt") && v) { prompt = v; i++; }
        else if (!strcmp(a, "--top") && v) {
            if (!parse_i64(v, &top) || top < 1 || top > 1000) {
                fprintf(stderr, "cisweep inspect: --top expects an integer in 1..1000, got \"%s\"\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            if (!parse_i64(v, &threads) || threads < 0 || threads > 1024) {
                fprintf(stderr, "cisweep inspect: --threads expects an integer in 0..1024 (0 = all cores), got \"%s\"\n", v);
                return 2;
            }
            i++;
        } else if (a[0] == '-' || dir) {
            fprintf(stderr, "cisweep inspect: unknown or incomplete argument \"%s\"\n", a);
            inspect_usage(stderr);
            return 2;
        } else dir = a;
    }
    if (!dir) { inspect_usage(stderr); return 2; }
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode) && str_ends(dir, CMPREC_EXT)) return inspect_record(dir, json_out);
    if (json_out) {
        fprintf(stderr, "cisweep inspect: --json is for a compression record (FILE%s)\n", CMPREC_EXT);
        return 2;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "cisweep inspect: %s is not a directory (expected a Hugging Face model directory "
                        "with config.json and model.safetensors)\n", dir);
        return 2;
    }
    cis_err err = {0};
    llama_config cfg;
    if (checkpoint_dir_load_config(dir, &cfg, &err)) {
        fprintf(stderr, "cisweep inspect: %s\n", err.msg);
        return 2;
    }
    backend *be = backend_open("cpu", &(backend_opts){.threads = (int)threads}, &err);
    llama_model *m = be ? llama_model_new(&cfg, be, &err) : NULL;
    if (!m) { fprintf(stderr, "cisweep inspect: %s\n", err.msg); backend_close(&be); return 2; }
    int rc = 2;
    tokenizer *tok = NULL;
    double t0 = mono_sec();
    if (llama_model_load(m, dir, &err)) { fprintf(stderr, "cisweep inspect: %s\n", err.msg); goto out; }
    double load_s = mono_sec() - t0;
    print_config(dir, &cfg, m);
    if (survey_dtypes(dir, &err)) { fprintf(stderr, "cisweep inspect: %s\n", err.msg); goto out; }
    printf("load_seconds: %.3f\n", load_s);
    char *tj = xasprintf("%s/tokenizer.json", dir);
    bool have_tok = stat(tj, &sb) == 0;
    free(tj);
    if (!have_tok) {
        printf("tokenizer: none (no tokenizer.json; prompt skipped)\n");
        rc = 0;
        goto out;
    }
    if (tokenizer_load(dir, &tok, &err)) { fprintf(stderr, "cisweep inspect: %s\n", err.msg); goto out; }
    printf("tokenizer: %s\n", tokenizer_kind_name(tokenizer_get_kind(tok)));
    printf("tokenizer_vocab_size: %d%s\n", tokenizer_vocab_size(tok),
           tokenizer_vocab_size(tok) > cfg.vocab_size ? " (larger than the model's vocab_size!)" : "");
    int32_t bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok);
    printf("tokenizer_bos: %d ", bos);
    if (bos >= 0) print_token(tok, bos); else fputs("(none)", stdout);
    printf("\ntokenizer_eos: %d ", eos);
    if (eos >= 0) print_token(tok, eos); else fputs("(none)", stdout);
    printf("\n");
    if (run_prompt(m, tok, prompt, (int)top, &err)) { fflush(stdout); fprintf(stderr, "cisweep inspect: %s\n", err.msg); goto out; }
    rc = 0;
out:
    fflush(stdout);
    tokenizer_free(tok);
    llama_model_free(&m);
    backend_close(&be);
    return rc;
}
