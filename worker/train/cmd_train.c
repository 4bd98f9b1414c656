/* cmd_train.c - `cisweep-worker train`: the command line of pretrain_run (pretrain.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/train/pretrain.h"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: cisweep-worker train --world DIR --arch NAME --out MODEL_DIR [--device cpu] [--steps N [--stop-after N']] [--seconds S]\n"
            "                            [--threads N] [--seed S] [--tokenizer DIR] [--corpus FILE.jsonl] [--vocab N]\n"
            "                            [--seq-len T] [--batch B] [--lr X] [--warmup N] [--log-every N]\n"
            "                            [--sft FILE] [--sft-every K] [--sft-batch N] [--sft-from F] [--replicas R]   (corpus {\"prompt\",\"completion\"} items: every\n"
            "                            K-th step trains N of them, loss on the completion only, from fraction F of the budget on; default 2, 16, 0.6)\n"
            "                            [--hidden D] [--ffn F] [--layers L] [--heads H] [--kv-heads K] [--head-dim Dh]\n"
            "                            (shape overrides on top of --arch: a custom size of that layout)\n"
            "                            [--init MODEL_DIR]   (start from that trained model's weights, not random ones: the same\n"
            "                            architecture and tokenizer, which --tokenizer then defaults to; a new schedule and optimizer)\n"
            "       cisweep-worker train --family --world DIR --out DIR [--steps N | --seconds S] [--jobs N] ...   (the five slot\n"
            "                            stand-ins into DIR/<name>, one tokenizer trained once and shared; N models at a time\n"
            "                            in their own processes, 1 thread each (default all five); --steps %d per model by default;\n"
            "                            --archs a,b,... trains only those members; a member whose model.safetensors exists is kept)\n"
            "       cisweep-worker train --list      (the architectures and their sizes)\n"
            "--stop-after N: train the first N steps of the --steps schedule and write that model: an exact prefix of\n"
            "the full run (the same learning rate, data and SFT phase at every step), to check a rebuild cheaply.\n"
            "The budget is a step count, --steps %d by default (%d per model with --family): the same seed and thread count\n"
            "give the same model bit for bit on a loaded or an idle machine. --seconds S also stops after S seconds of training;\n"
            "alone, it fits the schedule to that time (the step count then depends on the machine).\n",
            PRETRAIN_FAMILY_STEPS, PRETRAIN_DEFAULT_STEPS, PRETRAIN_FAMILY_STEPS);
}

static int num_arg(const char *flag, const char *v, double lo, double hi, double *out) {
    if (!v || !parse_double(v, out) || *out < lo || *out > hi) {
        fprintf(stderr, "cisweep-worker train: %s expects a number in [%g, %g], got \"%s\"\n", flag, lo, hi, v ? v : "");
        return -1;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    pretrain_opts o = pretrain_opts_default();
    o.steps = 0;
    o.arch = NULL;
    bool seconds_set = false, steps_set = false, family = false, threads_set = false;
    int jobs = 0;   /* --family: models trained at once; 0 = all five */
    const char *archs = NULL;   /* --family --archs a,b: only these members (default: all five) */
    int shape[6] = {0};   /* overrides: hidden, ffn, layers, heads, kv-heads, head-dim (0 = the preset's) */
    static const char *shape_flags[6] = {"--hidden", "--ffn", "--layers", "--heads", "--kv-heads", "--head-dim"};
    double v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { train_usage(stdout); return 0; }
        if (!strcmp(a, "--list")) {
            int np;
            const arch_preset *ps = arch_list(&np);
            printf("%-14s %-24s %-20s %5s %5s %3s %3s %4s %4s %-6s %10s\n", "name", "stands for", "architecture", "D", "F", "L",
                   "H", "Hkv", "Dh", "head", "params@2048");
            static const char *an[] = {"LlamaForCausalLM", "MistralForCausalLM", "Phi3ForCausalLM"};
            for (int k = 0; k < np; k++)
                printf("%-14s %-24s %-20s %5d %5d %3d %3d %4d %4d %-6s %10lld\n", ps[k].name, ps[k].stands_for, an[ps[k].arch],
                       ps[k].hidden, ps[k].intermediate, ps[k].layers, ps[k].heads, ps[k].kv_heads, ps[k].head_dim,
                       ps[k].tied ? "tied" : "untied", arch_param_count(&ps[k], 2048));
            return 0;
        }
        if (!strcmp(a, "--family")) { family = true; continue; }
        if (!strcmp(a, "--archs") && n) { archs = n; i++; continue; }
        if (!n) { fprintf(stderr, "cisweep-worker train: option \"%s\" needs a value\n", a); train_usage(stderr); return 2; }
        if (!strcmp(a, "--world")) o.world_dir = n;
        else if (!strcmp(a, "--corpus")) o.corpus = n;
        else if (!strcmp(a, "--sft")) o.sft_path = n;
        else if (!strcmp(a, "--arch")) o.arch = n;
        else if (!strcmp(a, "--out")) o.out_dir = n;
        else if (!strcmp(a, "--tokenizer")) o.tokenizer_dir = n;
        else if (!strcmp(a, "--init")) o.init_dir = n;
        else if (!strcmp(a, "--device")) o.device = n;
        else if (!strcmp(a, "--steps")) { if (num_arg(a, n, 1, 1e9, &v)) return 2; o.steps = (int64_t)v; steps_set = true; }
        else if (!strcmp(a, "--stop-after")) { if (num_arg(a, n, 1, 1e9, &v)) return 2; o.stop_after = (int64_t)v; }
        else if (!strcmp(a, "--seconds")) { if (num_arg(a, n, 1, 1e7, &v)) return 2; o.seconds = v; seconds_set = true; }
        else if (!strcmp(a, "--threads")) { if (num_arg(a, n, 0, 1024, &v)) return 2; o.threads = (int)v; threads_set = true; }
        else if (!strcmp(a, "--replicas")) { if (num_arg(a, n, 0, 16, &v)) return 2; o.replicas = (int)v; }
        else if (!strcmp(a, "--jobs")) { if (num_arg(a, n, 1, 16, &v)) return 2; jobs = (int)v; }
        else if (!strcmp(a, "--seed")) { if (num_arg(a, n, 0, 9e15, &v)) return 2; o.seed = (uint64_t)v; }
        else if (!strcmp(a, "--vocab")) { if (num_arg(a, n, 272, 1 << 20, &v)) return 2; o.vocab_size = (int)v; }
        else if (!strcmp(a, "--seq-len")) { if (num_arg(a, n, 8, 1 << 16, &v)) return 2; o.seq_len = (int)v; }
        else if (!strcmp(a, "--batch")) { if (num_arg(a, n, 1, 4096, &v)) return 2; o.batch = (int)v; }
        else if (!strcmp(a, "--lr")) { if (num_arg(a, n, 1e-7, 1, &v)) return 2; o.lr = (float)v; }
        else if (!strcmp(a, "--warmup")) { if (num_arg(a, n, 1, 1e6, &v)) return 2; o.warmup = (int)v; }
        else if (!strcmp(a, "--sft-every")) { if (num_arg(a, n, 0, 1e6, &v)) return 2; o.sft_every = (int)v; }
        else if (!strcmp(a, "--sft-from")) { if (num_arg(a, n, 0, 1, &v)) return 2; o.sft_from = v; }
        else if (!strcmp(a, "--sft-batch")) { if (num_arg(a, n, 1, 4096, &v)) return 2; o.sft_batch = (int)v; }
        else if (!strcmp(a, "--log-every")) { if (num_arg(a, n, 0, 1e9, &v)) return 2; o.log_every = (int)v; }
        else {
            int k = 0;
            while (k < 6 && strcmp(a, shape_flags[k])) k++;
            if (k < 6) { if (num_arg(a, n, 1, 1 << 16, &v)) return 2; shape[k] = (int)v; i++; continue; }
            fprintf(stderr, "cisweep-worker train: unknown option \"%s\"\n", a); train_usage(stderr); return 2;
        }
        i++;
    }
    if (!o.world_dir && !o.corpus) { fprintf(stderr, "cisweep-worker train: --world DIR is required\n"); train_usage(stderr); return 2; }
    if (!o.out_dir) { fprintf(stderr, "cisweep-worker train: --out MODEL_DIR is required\n"); train_usage(stderr); return 2; }
    if (!o.arch) o.arch = "tiny-llama3";
    if (o.init_dir && family) { fprintf(stderr, "cisweep-worker train: --init starts one model; it does not go with --family\n"); return 2; }
    if (o.init_dir && !o.tokenizer_dir) o.tokenizer_dir = o.init_dir;
    arch_preset custom;
    if (shape[0] || shape[1] || shape[2] || shape[3] || shape[4] || shape[5]) {
        const arch_preset *base = arch_find(o.arch);
        if (!base) { fprintf(stderr, "cisweep-worker train: --arch: unknown architecture \"%s\" (see --list)\n", o.arch); return 2; }
        custom = *base;
        int *f[6] = {&custom.hidden, &custom.intermediate, &custom.layers, &custom.heads, &custom.kv_heads, &custom.head_dim};
        for (int k = 0; k < 6; k++) if (shape[k]) *f[k] = shape[k];
        if (shape[0] && !shape[5]) custom.head_dim = custom.hidden / custom.heads;
        if (shape[3] && !shape[4] && base->kv_heads == base->heads) custom.kv_heads = custom.heads;
        o.preset = &custom;
        LOG_I("train: custom shape on %s: D=%d F=%d L=%d H=%d Hkv=%d Dh=%d", o.arch, custom.hidden, custom.intermediate,
              custom.layers, custom.heads, custom.kv_heads, custom.head_dim);
    }
    if (!steps_set && !seconds_set) o.steps = family ? PRETRAIN_FAMILY_STEPS : PRETRAIN_DEFAULT_STEPS;
    if (o.stop_after > 0 && (o.steps <= 0 || o.stop_after > o.steps)) {
        fprintf(stderr, "cisweep-worker train: --stop-after %lld needs a step budget of at least that many steps (--steps is %lld%s)\n",
                (long long)o.stop_after, (long long)o.steps, o.steps <= 0 ? ": a time budget alone" : "");
        return 2;
    }
    pretrain_result r;
    cis_err err = {0};
    if (family) {
        /* the tokenizer once (into the first model's directory), then the five models, `jobs` at a
         * time in child processes (1 thread each unless --threads says otherwise) */
        const char *root = o.out_dir;
        double t0 = mono_sec();
        if (archs) /* every name of --archs must be a family member */
            for (const char *p = archs; *p;) {
                const char *e = strchr(p, ',');
                size_t m = e ? (size_t)(e - p) : strlen(p);
                int k = 0;
                while (ARCH_FAMILY[k] && !(strlen(ARCH_FAMILY[k]) == m && !strncmp(p, ARCH_FAMILY[k], m))) k++;
                if (!ARCH_FAMILY[k]) {
                    fprintf(stderr, "cisweep-worker train: --archs: \"%.*s\" is not a family member (tiny-llama3, tiny-mistral, "
                            "tiny-llama32, tiny-yi, tiny-phi3)\n", (int)m, p);
                    return 2;
                }
                p += m + (e ? 1 : 0);
            }
        char *first = xasprintf("%s/%s", root, ARCH_FAMILY[0]);
        char *first_tok = xasprintf("%s/tokenizer.json", first);
        if (!o.tokenizer_dir && access(first_tok, F_OK) == 0) {
            LOG_I("train: the family's tokenizer %s exists; reused", first_tok);
            o.tokenizer_dir = first;
        }
        free(first_tok);
        if (!o.tokenizer_dir) {
            pretrain_opts to = o;
            to.arch = ARCH_FAMILY[0];
            to.out_dir = first;
            to.tokenizer_only = true;
            if (pretrain_run(&to, &r, NULL, &err)) { LOG_E("train: tokenizer: %s", err.msg); free(first); return 1; }
            o.tokenizer_dir = first;
        }
        /* the members: all five, or those --archs names (each must be a family member) */
        const char *member[16];
        int nfam = 0;
        for (int k = 0; ARCH_FAMILY[k]; k++) {
            bool want = !archs;
            if (archs) {
                size_t L = strlen(ARCH_FAMILY[k]);
                for (const char *p = archs; *p;) {
                    const char *e = strchr(p, ',');
                    size_t m = e ? (size_t)(e - p) : strlen(p);
                    if (m == L && !strncmp(p, ARCH_FAMILY[k], L)) want = true;
                    p += m + (e ? 1 : 0);
                }
            }
            char *weights = xasprintf("%s/%s/model.safetensors", root, ARCH_FAMILY[k]);
            bool have = access(weights, F_OK) == 0;
            free(weights);
            if (want && have) LOG_I("train: %s/%s exists; kept (remove it to train again)", root, ARCH_FAMILY[k]);
            else if (want) member[nfam++] = ARCH_FAMILY[k];
        }
        if (nfam == 0) { LOG_I("train: every family member asked for exists"); free(first); return 0; }
        if (jobs < 1 || jobs > nfam) jobs = nfam;
        if (jobs > 1 && !threads_set) o.threads = 1;
        if (o.steps > 0) LOG_I("train: family of %d models, %d at a time, %lld steps each, %d thread(s) each", nfam, jobs, (long long)o.steps, o.threads);
        else LOG_I("train: family of %d models, %d at a time, %.0f s each, %d thread(s) each", nfam, jobs, o.seconds, o.threads);
        pid_t pids[16] = {0};
        int failed = 0, next = 0, running = 0;
        while (next < nfam || running > 0) {
            if (next < nfam && running < jobs) {
                int k = next++;
                fflush(stdout); fflush(stderr);
                pid_t pid = fork();
                if (pid < 0) { LOG_E("train %s: fork: %s", member[k], strerror(errno)); failed++; continue; }
                if (pid == 0) {
                    char *dir = xasprintf("%s/%s", root, member[k]);
                    o.arch = member[k];
                    o.preset = NULL;   /* shape overrides apply to single runs only */
                    o.out_dir = dir;
                    if (pretrain_run(&o, &r, NULL, &err)) { LOG_E("train %s: %s", member[k], err.msg); fflush(stderr); _exit(1); }
                    printf("{\"arch\": \"%s\", \"out\": \"%s\", \"params\": %lld, \"steps\": %lld, \"tokens\": %lld, \"epochs\": %.3f, "
                           "\"train_seconds\": %.1f, \"tokens_per_s\": %.0f, \"first_loss\": %.4f, \"final_loss\": %.4f, "
                           "\"sft_seen\": %lld, \"sft_final_loss\": %.4f}\n",
                           o.arch, dir, r.params, (long long)r.steps, (long long)r.tokens, r.epochs, r.train_seconds, r.tokens_per_s,
                           r.first_loss, r.final_loss, (long long)r.sft_seen, r.sft_final_loss);
                    fflush(stdout);
                    _exit(0);
                }
                pids[k] = pid;
                running++;
                continue;
            }
            int st;
            pid_t w = waitpid(-1, &st, 0);
            if (w < 0) { if (errno == EINTR) continue; break; }
            for (int k = 0; k < nfam; k++)
                if (pids[k] == w) {
                    running--;
                    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        failed++;
                        LOG_E("train %s: the training process %s %d", member[k], WIFEXITED(st) ? "exited with" : "was killed by signal",
                              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                    }
                }
        }
        free(first);
        LOG_I("train: family of %d models in %.1f s (%d failed)", nfam, mono_sec() - t0, failed);
        return failed ? 1 : 0;
    }
    if (pretrain_run(&o, &r, NULL, &err)) { LOG_E("train: %s", err.msg); return 1; }
    printf("{\"arch\": \"%s\", \"out\": \"%s\", \"params\": %lld, \"vocab_size\": %d, \"steps\": %lld, \"tokens\": %lld, "
           "\"epochs\": %.3f, \"train_seconds\": %.1f, \"tokens_per_s\": %.0f, \"first_loss\": %.4f, \"final_loss\": %.4f, \"sft_steps\": %lld, \"sft_seen\": %lld, "
           "\"sft_final_loss\": %.4f}\n",
           o.arch, o.out_dir, r.params, r.vocab_size, (long long)r.steps, (long long)r.tokens, r.epochs, r.train_seconds,
           r.tokens_per_s, r.first_loss, r.final_loss, (long long)r.sft_steps, (long long)r.sft_seen, r.sft_final_loss);
    return 0;
}
