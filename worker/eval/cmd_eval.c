/* cmd_eval.c - `cisweep-worker eval MODEL_DIR --world DIR [options]`: load a Hugging Face style
 * model directory (config.json, safetensors, tokenizer.json), run the evaluation suite on a world
 * (or real data) directory and print every metric, one `name value` per line (and one JSON line
 * with --json); --profile / --mc-prompt pick the protocol (docs/eval.md "Profiles"), and
 * --print-prompts writes the MMLU/WMDP contexts without a model. Exit 0 on success, 1 on a failed load or evaluation, 2 on bad usage. */
#include "worker/eval/eval.h"
#include "common/log.h"
#include "worker/interventions/compress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: cisweep-worker eval MODEL_DIR --world DIR [--edit-set K] [--limit N] [--seqlen T] [--threads N]\n"
            "                           [--json] [--ref MODEL_DIR] [--max-length N] [--batch-tokens N] [--mc-bos]\n"
            "                           [--wbits B --group-size G] [--no-tf] [--skip mmlu,wmdp,ppl,zsre,qa] [--skip-missing]\n"
            "                           [--profile default|paper|sweep] [--mc-prompt 0.4.2|0.4.4] [--open] [--cloze]\n"
            "                           [--cloze-prompt qa|continuation]\n"
            "                           [--per-item FILE]\n"
            "       cisweep-worker eval --world DIR --print-prompts [--mc-prompt 0.4.2|0.4.4]\n"
            "  --profile sets the protocol (paper: lm-eval 0.4.2 prompt, zsRE max_length 30; default: the\n"
            "  embedded default's, see docs/eval.md; sweep: default's protocol on smaller sets: 12 questions per\n"
            "  MMLU subject, 64 per WMDP task, 16 WikiText windows, 50 QA records, no tf_* rows); --mc-prompt\n"
            "  and --max-length given with it override it.\n"
            "  --open also asks every scored MMLU/WMDP question bare and scores the greedy answer against the\n"
            "  gold option (open_* rows: token-set F1 and exact match; a diagnostic, docs/eval.md).\n"
            "  --cloze also scores every scored MMLU/WMDP question in the cloze formulation: each option's\n"
            "  log-likelihood as the continuation of the question (cloze_* rows, acc and per-character\n"
            "  acc_norm; a diagnostic, docs/eval.md). --cloze-prompt: qa (default) the question alone, as\n"
            "  the world's QA lines; continuation lm-eval's mmlu_continuation \"Question: ...\\nAnswer:\".\n"
            "  --per-item FILE writes one JSON line per MMLU/WMDP question instead of the rows: the MC\n"
            "  prediction, the cloze prediction and the open answer's F1 (every question; the profile's\n"
            "  prompt and max_length).\n"
            "  --print-prompts writes every MMLU/WMDP context as JSON lines and loads no model.\n"
            "  A dataset of the world directory that is not skipped must be there (exit 1 naming the expected\n"
            "  file); --skip-missing skips absent datasets with a warning instead.\n"
            "  Without --wbits, a `cisweep apply` output (MODEL_DIR/apply.json) gives the bits and group of its\n"
            "  last quantizer stage, so avg_bits is reported as in a sweep (wbits + 32/group).\n");
}

static int int_opt(const char *flag, const char *v, int lo, int *out) {
    int64_t x;
    if (!v || !parse_i64(v, &x) || x < lo || x > 1000000000) {
        fprintf(stderr, "cisweep-worker eval: %s expects an integer >= %d, got \"%s\"\n", flag, lo, v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 0;
}

static llama_model *load_model(const char *dir, cis_err *err) {
    char *cp = xasprintf("%s/config.json", dir);
    llama_config cfg;
    int rc = llama_config_load(cp, &cfg, err);
    free(cp);
    if (rc) return NULL;
    llama_model *m = llama_model_new(&cfg, NULL, err);  // a cpu instance of its own
    if (!m) return NULL;
    if (llama_model_load(m, dir, err)) { llama_model_free(&m); return NULL; }
    return m;
}

int cmd_eval(int argc, char **argv) {
    /* argv[0] == "eval" */
    const char *model_dir = NULL, *world = NULL, *ref_dir = NULL, *per_item = NULL;
    bool json = false, print_prompts = false;
    eval_opts o;
    eval_opts_default(&o);
    /* the profile first, so that --max-length / --mc-prompt override it wherever they stand */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--profile") != 0) continue;
        eval_profile p;
        if (i + 1 >= argc || eval_profile_parse(argv[i + 1], &p)) {
            fprintf(stderr, "cisweep-worker eval: --profile expects default, paper or sweep, got \"%s\"\n",
                    i + 1 < argc ? argv[i + 1] : "");
            return 2;
        }
        eval_opts_profile(&o, p);
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--world") && n) { world = n; i++; }
        else if (!strcmp(a, "--ref") && n) { ref_dir = n; i++; }
        else if (!strcmp(a, "--edit-set")) { if (int_opt(a, n, 1, &o.edit_set)) return 2; i++; }
        else if (!strcmp(a, "--limit")) { if (int_opt(a, n, 0, &o.limit)) return 2; i++; }
        else if (!strcmp(a, "--seqlen")) { if (int_opt(a, n, 2, &o.seqlen)) return 2; i++; }
        else if (!strcmp(a, "--threads")) { if (int_opt(a, n, 1, &o.threads)) return 2; i++; }
        else if (!strcmp(a, "--max-length")) { if (int_opt(a, n, 2, &o.max_length)) return 2; i++; }
        else if (!strcmp(a, "--batch-tokens")) { if (int_opt(a, n, 1, &o.batch_tokens)) return 2; i++; }
        else if (!strcmp(a, "--wbits")) { if (int_opt(a, n, 1, &o.quant.wbits)) return 2; i++; }
        else if (!strcmp(a, "--group-size")) { if (int_opt(a, n, 1, &o.quant.group_size)) return 2; i++; }
        else if (!strcmp(a, "--profile")) i++; /* applied above */
        else if (!strcmp(a, "--mc-prompt")) {
            if (mc_prompt_style_parse(n, &o.mc_prompt)) {
                fprintf(stderr, "cisweep-worker eval: --mc-prompt expects 0.4.2 or 0.4.4 (lm-eval's version), got \"%s\"\n",
                        n ? n : "");
                return 2;
            }
            i++;
        }
        else if (!strcmp(a, "--print-prompts")) print_prompts = true;
        else if (!strcmp(a, "--mc-bos")) o.mc_bos = true;
        else if (!strcmp(a, "--open")) o.open_answer = true;
        else if (!strcmp(a, "--cloze")) o.cloze = true;
        else if (!strcmp(a, "--cloze-prompt")) {
            if (cloze_prompt_style_parse(n, &o.cloze_prompt)) {
                fprintf(stderr, "cisweep-worker eval: --cloze-prompt expects qa or continuation, got \"%s\"\n", n ? n : "");
                return 2;
            }
            i++;
        }
        else if (!strcmp(a, "--per-item") && n) { per_item = n; i++; }
        else if (!strcmp(a, "--no-tf")) o.teacher_forced = false;
        else if (!strcmp(a, "--skip-missing")) o.skip_missing = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--skip") && n) {
            char *s = xstrdup(n), *save = NULL;
            for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (!strcmp(t, "mmlu")) o.skip_mmlu = true;
                else if (!strcmp(t, "wmdp")) o.skip_wmdp = true;
                else if (!strcmp(t, "ppl")) o.skip_ppl = true;
                else if (!strcmp(t, "zsre")) o.skip_zsre = true;
                else if (!strcmp(t, "qa")) o.skip_qa = true;
                else { fprintf(stderr, "cisweep-worker eval: --skip: unknown part \"%s\"\n", t); free(s); return 2; }
            }
            free(s);
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { eval_usage(stdout); return 0; }
        else if (a[0] != '-' && !model_dir) model_dir = a;
        else { fprintf(stderr, "cisweep-worker eval: unknown or incomplete option \"%s\"\n", a); eval_usage(stderr); return 2; }
    }
    if (print_prompts) {
        if (!world || model_dir) { eval_usage(stderr); return 2; }
        cis_err perr = {0};
        if (eval_print_mc_prompts(world, o.mc_prompt, stdout, &perr)) { LOG_E("eval: %s", perr.msg); return 1; }
        return 0;
    }
    if (!model_dir || !world) { eval_usage(stderr); return 2; }
    if (o.quant.wbits == 0) { /* the quantizer of a `cisweep apply` output, as the runner reads it */
        char *ap = xasprintf("%s/apply.json", model_dir);
        json_t *aj = json_load_file(ap, 0, NULL);
        if (aj) cmp_quant_of_records(json_object_get(aj, "stages"), &o.quant.wbits, &o.quant.group_size);
        if (o.quant.wbits) LOG_I("eval: avg_bits from %s: %d bits, group %d", ap, o.quant.wbits, o.quant.group_size);
        json_decref(aj);
        free(ap);
    }
    LOG_I("eval: profile %s: MMLU/WMDP prompt %s, zsRE max_length %d", eval_profile_name(o.profile),
          mc_prompt_style_name(o.mc_prompt), o.max_length);
    cis_err err = {0};
    tokenizer *tok = NULL;
    llama_model *m = load_model(model_dir, &err), *ref = NULL;
    if (m && tokenizer_load(model_dir, &tok, &err)) { llama_model_free(&m); }
    if (m && ref_dir && !(ref = load_model(ref_dir, &err))) { llama_model_free(&m); }
    if (!m) { LOG_E("eval: %s", err.msg); tokenizer_free(tok); return 1; }
    o.ref_model = ref;
    if (per_item) {
        if (o.threads > 0) backend_set_threads(llama_model_backend(m), o.threads);
        int prc = -1;
        FILE *f = fopen(per_item, "w");
        if (!f) err_set(&err, CIS_EIO, "eval --per-item: cannot write %s", per_item);
        else {
            mc_opts mo = {.prompt = o.mc_prompt, .cloze_prompt = o.cloze_prompt, .add_bos = o.mc_bos,
                          .max_batch_tokens = o.batch_tokens};
            prc = eval_open_items(m, tok, world, &mo, o.max_length, f, &err);
            if (fclose(f) != 0 && !prc) prc = err_set(&err, CIS_EIO, "eval --per-item: cannot write %s", per_item);
        }
        if (prc) LOG_E("eval: %s", err.msg);
        tokenizer_free(tok);
        llama_model_free(&m);
        llama_model_free(&ref);
        return prc ? 1 : 0;
    }
    eval_rows rows = {0};
    int rc = eval_suite_run(m, tok, world, &o, &rows, &err);
    if (rc) LOG_E("eval: %s", err.msg);
    else {
        for (int i = 0; i < rows.n; i++) printf("%s %.6g\n", rows.row[i].name, rows.row[i].value);
        if (json) { char *j = eval_rows_json(&rows); printf("%s\n", j); free(j); }
        fflush(stdout);
    }
    eval_rows_clear(&rows);
    tokenizer_free(tok);
    llama_model_free(&m);
    llama_model_free(&ref);
    return rc ? 1 : 0;
}
