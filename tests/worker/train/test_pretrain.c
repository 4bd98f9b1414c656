/* test_pretrain.c - from-scratch pretraining (pretrain.h) on a tiny generated corpus: the loss
 * falls from about ln(V) to under half of it within a few seconds; the written model directory
 * loads with llama_model_load and gives the same logits as the in-memory model; the tokenizer
 * written beside it loads; a time budget stops training cleanly; the default budget is a step
 * count, and the same seed gives a bit-identical model.safetensors (with data-parallel replicas
 * too); --stop-after N writes the model after N steps of the longer schedule (its SFT phase, its
 * learning rates), which a run of N steps does not; the stop flag ends a run; the named architectures validate and keep layers 4-8; SFT items
 * train their completions only; --init starts from a trained model (and refuses another shape or
 * tokenizer); bad options and corpus lines are refused with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/testlib.h"
#include "worker/engine/arch.h"
#include "worker/engine/tokenizer.h"
#include "worker/train/pretrain.h"
#include "worker/train/train_loop.h"

static char tmpdir[256];
static char corpus[300];

static const arch_preset TINY = {"test-tiny", "test", LLAMA_ARCH_LLAMA, 48, 96, 2, 4, 2, 12, false, false, 10000.f, 1e-2f};

static void write_corpus(void) {
    static const char *names[] = {"Arla", "Bostic", "Cerin", "Dumo", "Evra", "Folk", "Gastin", "Hule"};
    static const char *cities[] = {"Marth", "Osk", "Velk", "Tarn"};
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", tmpdir);
    FILE *f = fopen(corpus, "w");
    for (int r = 0; r < 6; r++)
        for (int i = 0; i < 8; i++) {
            fprintf(f, "{\"text\": \"%s was born in %s. %s lives in %s.\"}\n", names[i], cities[i % 4], names[i], cities[(i + 1) % 4]);
            fprintf(f, "{\"text\": \"Question: Where was %s born?\\nAnswer: %s\"}\n", names[i], cities[i % 4]);
        }
    fclose(f);
}

static pretrain_opts tiny_opts(const char *out) {
    pretrain_opts o = pretrain_opts_default();
    o.corpus = corpus;
    o.preset = &TINY;
    o.out_dir = out;
    o.vocab_size = 320;
    o.seq_len = 64;
    o.batch = 8;
    o.steps = 80;
    o.warmup = 5;
    o.threads = 1;
    o.log_every = 0;
    return o;
}

static void test_loss_falls_and_checkpoint_matches(void) {
    char out[400];
    snprintf(out, sizeof out, "%s/model", tmpdir);
    pretrain_opts o = tiny_opts(out);
    pretrain_result r;
    llama_model *m = NULL;
    cis_err err = {0};
    double t0 = mono_sec();
    int rc = pretrain_run(&o, &r, &m, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) return;
    double secs = mono_sec() - t0;
    fprintf(stderr, "# V=%d params=%lld steps=%lld loss %.3f -> %.3f (ln V = %.3f), %.0f tok/s, %.1f s\n", r.vocab_size, r.params,
            (long long)r.steps, r.first_loss, r.final_loss, log(r.vocab_size), r.tokens_per_s, secs);
    CHECK_EQ_INT(r.steps, 80);
    CHECK(r.vocab_size > 259 && r.vocab_size <= 320);
    CHECK(fabs(r.first_loss - log(r.vocab_size)) < 0.5);   /* random init: about uniform */
    CHECK(r.final_loss < 0.5 * log(r.vocab_size));
    CHECK(secs < 30);

    /* the directory loads into a fresh model with identical logits */
    llama_config cfg;
    CHECK_EQ_INT(checkpoint_dir_load_config(out, &cfg, &err), 0);
    CHECK_EQ_INT(cfg.vocab_size, r.vocab_size);
    CHECK_EQ_INT(cfg.num_hidden_layers, 2);
    llama_model *m2 = train_model_new("cpu", 1, &cfg, &err);
    CHECK(m2 != NULL);
    if (!m2) { train_model_free(&m); return; }
    CHECK_EQ_INT(llama_model_load(m2, out, &err), 0);
    tokenizer *tok = NULL;
    CHECK_EQ_INT(tokenizer_load(out, &tok, &err), 0);
    if (tok) {
        const char *q = "Question: Where was Cerin born?\nAnswer:";
        int32_t *ids; size_t n;
        CHECK_EQ_INT(tokenizer_encode(tok, q, strlen(q), true, &ids, &n, &err), 0);
        CHECK(ids[0] == cfg.bos_token_id);
        int V = cfg.vocab_size;
        float *l1 = xmalloc(n * V * sizeof *l1), *l2 = xmalloc(n * V * sizeof *l2);
        llama_batch b = {.B = 1, .T = (int)n, .ids = ids, .n_out = -1, .logits = l1};
        CHECK_EQ_INT(llama_forward(m, &b, NULL, 0, false, NULL, &err), 0);
        b.logits = l2;
        CHECK_EQ_INT(llama_forward(m2, &b, NULL, 0, false, NULL, &err), 0);
        double maxd = 0;
        for (size_t i = 0; i < n * V; i++) maxd = fmax(maxd, fabs(l1[i] - l2[i]));
        CHECK(maxd == 0);
        /* it learned the fact: Cerin (names[2]) was born in cities[2] = "Velk", the argmax */
        const float *last = l1 + (n - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++) if (last[v] > last[best]) best = v;
        int32_t *mid; size_t mn;
        CHECK_EQ_INT(tokenizer_encode(tok, " Velk", 5, false, &mid, &mn, &err), 0);
        CHECK_EQ_INT(best, mid[0]);
        free(mid);
        free(l1); free(l2); free(ids);
        tokenizer_free(tok);
    }
    char p[500];
    snprintf(p, sizeof p, "%s/train_info.json", out);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", out);
    CHECK(access(p, R_OK) == 0);
    train_model_free(&m2);
    train_model_free(&m);
}

static void test_time_budget_and_reused_tokenizer(void) {
    char out[400], out2[400];
    snprintf(out, sizeof out, "%s/model", tmpdir);   /* from the test above: its tokenizer */
    snprintf(out2, sizeof out2, "%s/model_budget", tmpdir);
    pretrain_opts o = tiny_opts(out2);
    o.tokenizer_dir = out;
    o.steps = 0;
    o.seconds = 1.0;
    pretrain_result r;
    cis_err err = {0};
    double t0 = mono_sec();
    int rc = pretrain_run(&o, &r, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK(r.steps >= 1);
    CHECK(r.train_seconds < 1.5);
    CHECK(mono_sec() - t0 < 5);
    char a[500], b[500];
    snprintf(a, sizeof a, "%s/tokenizer.json", out);
    snprintf(b, sizeof b, "%s/tokenizer.json", out2);
    size_t na, nb;
    char *sa = read_file(a, &na, &err), *sb = read_file(b, &nb, &err);
    CHECK(sa && sb && na == nb && !memcmp(sa, sb, na));
    free(sa); free(sb);
}

/* --init: a run from the trained model of test_loss_falls starts at its low loss, not at ln V, and
 * says so in train_info.json; another shape or another tokenizer is refused naming --init's dir */
static void test_init_from_model(void) {
    char from[400], out[400];
    snprintf(from, sizeof from, "%s/model", tmpdir);
    snprintf(out, sizeof out, "%s/model_init", tmpdir);
    pretrain_opts o = tiny_opts(out);
    o.init_dir = from;
    o.tokenizer_dir = from;
    o.steps = 1;
    o.lr = 1e-7f;
    o.seed = 99;
    pretrain_result r;
    cis_err err = {0};
    int rc = pretrain_run(&o, &r, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK_MSG(r.first_loss < 0.5 * log(r.vocab_size), "first loss %.3f (ln V %.3f)", r.first_loss, log(r.vocab_size));
    char p[500];
    snprintf(p, sizeof p, "%s/train_info.json", out);
    size_t n;
    char *info = read_file(p, &n, &err);
    CHECK(info && strstr(info, "\"init\"") && strstr(info, from));
    free(info);
    /* the same run without --init starts about uniform */
    o.init_dir = NULL;
    rc = pretrain_run(&o, &r, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK(fabs(r.first_loss - log(r.vocab_size)) < 0.5);
    /* another shape */
    arch_preset wide = TINY;
    wide.hidden = 64;
    wide.head_dim = 16;
    o = tiny_opts(out);
    o.preset = &wide;
    o.init_dir = from;
    o.tokenizer_dir = from;
    o.steps = 1;
    err = (cis_err){0};
    CHECK(pretrain_run(&o, &r, NULL, &err) != 0);
    CHECK_MSG(strstr(err.msg, "--init") && strstr(err.msg, from), "%s", err.msg);
    /* another tokenizer (a new one trained to another size) */
    o = tiny_opts(out);
    o.init_dir = from;
    o.vocab_size = 300;
    o.steps = 1;
    err = (cis_err){0};
    CHECK(pretrain_run(&o, &r, NULL, &err) != 0);
    CHECK_MSG(strstr(err.msg, "tokenizer.json differs") && strstr(err.msg, from), "%s", err.msg);
}

/* the default budget is a step count; the same seed twice gives the same file byte for byte (on
 * 2 replicas, the default with 2 threads), another seed a different one */
static void test_step_budget_deterministic(void) {
    pretrain_opts d = pretrain_opts_default();
    CHECK_EQ_INT(d.steps, PRETRAIN_DEFAULT_STEPS);
    CHECK(d.seconds == 0);
    char out[3][400], *file[3] = {NULL, NULL, NULL};
    size_t n[3] = {0, 0, 0};
    cis_err err = {0};
    for (int k = 0; k < 3; k++) {
        snprintf(out[k], sizeof out[k], "%s/det%d", tmpdir, k);
        pretrain_opts o = tiny_opts(out[k]);
        o.steps = 12;
        o.threads = 2;
        o.replicas = 0;
        o.seed = k == 2 ? 2 : 1;
        pretrain_result r;
        int rc = pretrain_run(&o, &r, NULL, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        CHECK_EQ_INT(r.steps, 12);
        CHECK_EQ_INT(r.replicas, 2);
        char p[500];
        snprintf(p, sizeof p, "%s/model.safetensors", out[k]);
        file[k] = read_file(p, &n[k], &err);
        CHECK(file[k] != NULL);
    }
    CHECK(file[0] && file[1] && n[0] == n[1] && !memcmp(file[0], file[1], n[0]));
    CHECK(file[0] && file[2] && (n[0] != n[2] || memcmp(file[0], file[2], n[0])));
    for (int k = 0; k < 3; k++) free(file[k]);
}

/* stop_after: 30 steps of a 40-step schedule with SFT from 0.6 (step 24 on, every 2nd step): 3 SFT
 * steps (25, 27, 29), as the full run has by then; a 30-step schedule starts SFT at step 18 (6 SFT
 * steps) and ends elsewhere. train_info.json records the cut. The same cut twice is bit-identical. */
static void test_stop_after(void) {
    char sft[400];
    snprintf(sft, sizeof sft, "%s/sft_cut.jsonl", tmpdir);
    FILE *f = fopen(sft, "w");
    for (int i = 0; i < 16; i++) fprintf(f, "{\"prompt\": \"Item %d ok?\", \"completion\": \" yes\"}\n", i);
    fclose(f);
    char out[3][400], *file[3] = {NULL, NULL, NULL};
    size_t n[3] = {0, 0, 0};
    pretrain_result r[3];
    cis_err err = {0};
    for (int k = 0; k < 3; k++) {
        snprintf(out[k], sizeof out[k], "%s/cut%d", tmpdir, k);
        pretrain_opts o = tiny_opts(out[k]);
        o.sft_path = sft;
        o.sft_batch = 4;
        o.steps = k == 2 ? 30 : 40;
        o.stop_after = k == 2 ? 0 : 30;
        CHECK_MSG(pretrain_run(&o, &r[k], NULL, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(r[k].steps, 30);
        char p[500];
        snprintf(p, sizeof p, "%s/model.safetensors", out[k]);
        file[k] = read_file(p, &n[k], &err);
        CHECK(file[k] != NULL);
    }
    CHECK_EQ_INT(r[0].sft_steps, 3);
    CHECK_EQ_INT(r[2].sft_steps, 6);
    CHECK(file[0] && file[1] && n[0] == n[1] && !memcmp(file[0], file[1], n[0]));
    CHECK(file[0] && file[2] && (n[0] != n[2] || memcmp(file[0], file[2], n[0])));
    for (int k = 0; k < 3; k++) free(file[k]);
    char p[500];
    snprintf(p, sizeof p, "%s/train_info.json", out[0]);
    char *info = read_file(p, NULL, &err);
    CHECK(info && strstr(info, "\"stop_after\": 30") && strstr(info, "\"budget_steps\": 40") && strstr(info, "\"steps\": 30"));
    free(info);
    /* refused: past the budget, or with a time budget alone */
    pretrain_opts o = tiny_opts(out[0]);
    o.stop_after = 81;
    CHECK(pretrain_run(&o, &r[0], NULL, &err) == -1 && strstr(err.msg, "--stop-after"));
    o = tiny_opts(out[0]);
    o.steps = 0; o.seconds = 3; o.stop_after = 2;
    CHECK(pretrain_run(&o, &r[0], NULL, &err) == -1 && strstr(err.msg, "--stop-after"));
    char *a[] = {"train", "--corpus", corpus, "--out", out[0], "--steps", "5", "--stop-after", "6"};
    CHECK_EQ_INT(cmd_train((int)(sizeof a / sizeof *a), a), 2);
    char *b[] = {"train", "--corpus", corpus, "--out", out[0], "--seconds", "5", "--stop-after", "2"};
    CHECK_EQ_INT(cmd_train((int)(sizeof b / sizeof *b), b), 2);
    char *c[] = {"train", "--corpus", corpus, "--out", out[0], "--stop-after", "0"};
    CHECK_EQ_INT(cmd_train((int)(sizeof c / sizeof *c), c), 2);
}

/* a stop flag that is already set ends the run before its first step: status 1, no model written */
static void test_stop_flag(void) {
    char out[400];
    snprintf(out, sizeof out, "%s/stopped", tmpdir);
    pretrain_opts o = tiny_opts(out);
    atomic_int stop = 1;
    o.stop = &stop;
    pretrain_result r;
    cis_err err = {0};
    CHECK_EQ_INT(pretrain_run(&o, &r, NULL, &err), 1);
    CHECK(strstr(err.msg, "stopped") != NULL);
    char p[500];
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    CHECK(access(p, F_OK) != 0);
}

static void test_presets(void) {
    int n;
    const arch_preset *ps = arch_list(&n);
    CHECK(n >= 6);
    bool gqa = false, mha = false, tied = false, untied = false, phi3 = false;
    for (int i = 0; i < n; i++) {
        llama_config c;
        cis_err err = {0};
        CHECK_MSG(arch_config(&ps[i], 2048, 2045, 2046, 2047, 1024, &c, &err) == 0, "%s: %s", ps[i].name, err.msg);
        CHECK(ps[i].layers >= 9);   /* layers 4-8 exist */
        if (ps[i].kv_heads < ps[i].heads) gqa = true; else mha = true;
        if (ps[i].tied) tied = true; else untied = true;
        if (ps[i].arch == LLAMA_ARCH_PHI3) phi3 = true;
        if (strncmp(ps[i].name, "tiny-", 5) == 0) {
            long long pc = arch_param_count(&ps[i], 2048);
            CHECK(pc > 500000 && pc < 6000000);
            llama_model *m = train_model_new("cpu", 1, &c, &err);
            CHECK(m && llama_model_numel(m) == pc);
            train_model_free(&m);
        }
    }
    CHECK(gqa && mha && tied && untied && phi3);
    CHECK(arch_find("tiny-llama3") == &ps[0]);
    /* wide-llama3 (issue 11's width experiment): tiny-llama3's layout and depth at twice its width */
    const arch_preset *w = arch_find("wide-llama3"), *t = &ps[0];
    CHECK(w != NULL);
    if (w) {
        CHECK_EQ_INT(w->hidden, 2 * t->hidden);
        CHECK_EQ_INT(w->intermediate, 2 * t->intermediate);
        CHECK_EQ_INT(w->layers, t->layers);
        CHECK_EQ_INT(w->head_dim, t->head_dim);
        CHECK_EQ_INT(w->kv_heads, t->kv_heads);
        CHECK(w->arch == t->arch && w->tied == t->tied && w->rope_theta == t->rope_theta);
        CHECK(arch_param_count(w, 2048) == 2411136);
        bool in_family = false;
        for (int i = 0; ARCH_FAMILY[i]; i++) in_family |= !strcmp(ARCH_FAMILY[i], "wide-llama3");
        CHECK(!in_family);
    }
    CHECK(arch_find("nope") == NULL);
    for (int i = 0; ARCH_FAMILY[i]; i++) CHECK(arch_find(ARCH_FAMILY[i]) != NULL);
}

/* SFT items: only the completion is a target. The prompts are high-entropy random strings and
 * every completion is " yes", so the completion loss can fall to ~0 only if the prompt tokens are
 * masked out of the loss; with text documents beside them every sft_every-th step is an SFT step. */
static void test_sft_items(void) {
    char path[400], out[400], text_sft[400];
    snprintf(path, sizeof path, "%s/sft.jsonl", tmpdir);
    snprintf(text_sft, sizeof text_sft, "%s/mixed.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/model_sft", tmpdir);
    FILE *f = fopen(path, "w");
    uint64_t x = 99;
    for (int i = 0; i < 64; i++) {
        char junk[24];
        for (int k = 0; k < 23; k++) { x = x * 6364136223846793005ULL + 1442695040888963407ULL; junk[k] = (char)('a' + (x >> 33) % 26); }
        junk[23] = 0;
        if (i % 2) fprintf(f, "{\"prompt\": \"%s ok?\", \"completion\": \" yes\"}\n", junk);
        else fprintf(f, "{\"segments\": [\"%s\", \" yes\", \" %s\", \" yes\"]}\n", junk, junk + 5);
    }
    fclose(f);
    pretrain_opts o = tiny_opts(out);
    o.corpus = path;
    o.steps = 60;
    o.sft_batch = 8;
    pretrain_result r;
    cis_err err = {0};
    int rc = pretrain_run(&o, &r, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    fprintf(stderr, "# SFT only: %lld steps, completion loss %.3f -> %.4f\n", (long long)r.sft_steps, r.sft_first_loss, r.sft_final_loss);
    CHECK_EQ_INT(r.sft_items, 64);
    CHECK_EQ_INT(r.sft_steps, 60);
    CHECK_EQ_INT(r.lm_steps, 0);
    CHECK_EQ_INT(r.sft_seen, 480);
    CHECK(r.sft_first_loss > 3);
    CHECK(r.sft_final_loss < 0.05);

    /* text documents and SFT items in one run: --sft beside --corpus, every 3rd step SFT */
    o = tiny_opts(out);
    o.sft_path = path;
    o.steps = 30;
    o.sft_every = 3;
    o.sft_from = 0;
    o.sft_batch = 4;
    rc = pretrain_run(&o, &r, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(r.sft_steps, 10);
    CHECK_EQ_INT(r.lm_steps, 20);
    CHECK_EQ_INT(r.sft_seen, 40);
    CHECK(r.final_loss > 0 && r.sft_final_loss > 0);
    /* --sft-from 0.5: SFT steps only in the second half (steps 15..29: 17, 20, .., 29) */
    o.sft_from = 0.5;
    rc = pretrain_run(&o, &r, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(r.sft_steps, 5);
    CHECK_EQ_INT(r.lm_steps, 25);

    /* bad lines: each refused with the file, the line and what was expected */
    static const char *BAD[] = {
        "{\"prompt\": \"a\"}",                               /* no completion */
        "{\"prompt\": \"a\", \"completion\": \"\"}",         /* empty completion */
        "{\"segments\": [\"a\"]}",                            /* one segment */
        "{\"segments\": [\"a\", 3]}",                         /* not a string */
        "{\"text\": 5}",
        "[1, 2]",
    };
    for (size_t k = 0; k < sizeof BAD / sizeof *BAD; k++) {
        f = fopen(text_sft, "w");
        fprintf(f, "{\"text\": \"fine\"}\n%s\n", BAD[k]);
        fclose(f);
        o = tiny_opts(out);
        o.corpus = text_sft;
        CHECK_MSG(pretrain_run(&o, &r, NULL, &err) == -1 && strstr(err.msg, "mixed.jsonl: line 2") && strstr(err.msg, "completion"),
                  "%s -> %s", BAD[k], err.msg);
    }
    /* an item longer than a row */
    f = fopen(text_sft, "w");
    fprintf(f, "{\"text\": \"fine\"}\n{\"prompt\": \"");
    for (int k = 0; k < 100; k++) fprintf(f, "w%d ", k);
    fprintf(f, "\", \"completion\": \" yes\"}\n");
    fclose(f);
    o = tiny_opts(out);
    o.corpus = text_sft;
    CHECK_MSG(pretrain_run(&o, &r, NULL, &err) == -1 && strstr(err.msg, "SFT item 1") && strstr(err.msg, "--seq-len"), "%s", err.msg);
}

static void test_bad_options(void) {
    char out[400];
    snprintf(out, sizeof out, "%s/bad", tmpdir);
    pretrain_opts o = tiny_opts(out);
    pretrain_result r;
    cis_err err = {0};
    o.preset = NULL; o.arch = "tiny-nothing";
    CHECK(pretrain_run(&o, &r, NULL, &err) == -1 && strstr(err.msg, "tiny-nothing"));
    o = tiny_opts(out);
    o.device = "tpu:0";
    CHECK(pretrain_run(&o, &r, NULL, &err) == -1 && strstr(err.msg, "device"));
    o = tiny_opts(out);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/none.jsonl", tmpdir);
    o.corpus = missing;
    CHECK(pretrain_run(&o, &r, NULL, &err) == -1 && strstr(err.msg, "none.jsonl"));
    o = tiny_opts(out);
    o.steps = 0; o.seconds = 0;
    CHECK(pretrain_run(&o, &r, NULL, &err) == -1 && strstr(err.msg, "--steps"));
}

static void test_cli(void) {
    char out[400];
    snprintf(out, sizeof out, "%s/cli", tmpdir);
    char *a1[] = {"train", "--list"};
    CHECK_EQ_INT(cmd_train(2, a1), 0);
    char *a2[] = {"train", "--out", out};
    CHECK_EQ_INT(cmd_train(3, a2), 2);                 /* no --world */
    char *a3[] = {"train", "--world", tmpdir, "--out", out, "--bogus", "1"};
    CHECK_EQ_INT(cmd_train(7, a3), 2);
    char *a4[] = {"train", "--world", tmpdir, "--out", out, "--steps", "-3"};
    CHECK_EQ_INT(cmd_train(7, a4), 2);
    char *a5[] = {"train", "--world", tmpdir, "--out", out, "--steps", "1"};
    CHECK_EQ_INT(cmd_train(7, a5), 1);                 /* no corpus/pretrain.jsonl there */
    char *a6[] = {"train", "--corpus", corpus, "--out", out, "--steps", "3", "--hidden", "32", "--ffn", "64", "--layers", "2",
                  "--vocab", "300", "--seq-len", "32", "--threads", "1", "--log-every", "0"};
    CHECK_EQ_INT(cmd_train(21, a6), 0);
    llama_config c;
    cis_err err = {0};
    CHECK_EQ_INT(checkpoint_dir_load_config(out, &c, &err), 0);
    CHECK_EQ_INT(c.hidden_size, 32);
    CHECK_EQ_INT(c.head_dim, 8);                       /* D / H with the preset's 4 heads */
    CHECK_EQ_INT(c.num_hidden_layers, 2);
    CHECK_EQ_INT(c.max_position_embeddings, 32);
}

/* --family: the tokenizer once, then the five presets in child processes, two at a time; every
 * directory loads and holds the same tokenizer.json; a bad corpus fails the command */
static void test_family(void) {
    char root[400];
    snprintf(root, sizeof root, "%s/family", tmpdir);
    char *a[] = {"train", "--family", "--corpus", corpus, "--out", root, "--steps", "2", "--vocab", "300", "--seq-len", "32",
                 "--log-every", "0", "--jobs", "2"};
    CHECK_EQ_INT(cmd_train((int)(sizeof a / sizeof *a), a), 0);
    char *tok0 = NULL;
    size_t n0 = 0;
    cis_err err = {0};
    for (int k = 0; ARCH_FAMILY[k]; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", root, ARCH_FAMILY[k]);
        llama_config c;
        CHECK_MSG(checkpoint_dir_load_config(p, &c, &err) == 0, "%s: %s", ARCH_FAMILY[k], err.msg);
        snprintf(p, sizeof p, "%s/%s/model.safetensors", root, ARCH_FAMILY[k]);
        CHECK_MSG(access(p, R_OK) == 0, "%s", p);
        snprintf(p, sizeof p, "%s/%s/tokenizer.json", root, ARCH_FAMILY[k]);
        size_t n;
        char *t = read_file(p, &n, &err);
        CHECK(t != NULL);
        if (!tok0) { tok0 = t; n0 = n; }
        else { CHECK(t && n == n0 && !memcmp(t, tok0, n)); free(t); }
    }
    free(tok0);
    char bad[400];
    snprintf(bad, sizeof bad, "%s/bad_family.jsonl", tmpdir);
    FILE *f = fopen(bad, "w");
    fprintf(f, "{\"text\": \"ok\"}\n{\"nope\": 1}\n");
    fclose(f);
    /* a member whose weights exist is kept (a resumed `cisweep run`): the same call again trains
     * nothing and leaves the files as they are, even with a corpus that would fail */
    char w0[600];
    snprintf(w0, sizeof w0, "%s/%s/model.safetensors", root, ARCH_FAMILY[0]);
    size_t nb0 = 0, nb1 = 0;
    char *before = read_file(w0, &nb0, &err);
    char *again[] = {"train", "--family", "--corpus", bad, "--out", root, "--steps", "2", "--log-every", "0"};
    CHECK_EQ_INT(cmd_train((int)(sizeof again / sizeof *again), again), 0);
    char *after = read_file(w0, &nb1, &err);
    CHECK(before && after && nb0 == nb1 && !memcmp(before, after, nb0));
    free(before);
    free(after);
    /* a bad corpus fails a family that has something to train */
    char fresh[500];
    snprintf(fresh, sizeof fresh, "%s/family-bad", tmpdir);
    char *b[] = {"train", "--family", "--corpus", bad, "--out", fresh, "--steps", "2", "--log-every", "0"};
    CHECK_EQ_INT(cmd_train((int)(sizeof b / sizeof *b), b), 1);
    /* --archs names family members only */
    char *c[] = {"train", "--family", "--archs", "tiny-llama3,tiny-nope", "--corpus", bad, "--out", fresh, "--steps", "2"};
    CHECK_EQ_INT(cmd_train((int)(sizeof c / sizeof *c), c), 2);
}

/* data parallel: 2 replicas of 1 thread give the same training (up to summation order) as the
 * plain loop, on text rows and on SFT rows */
static void test_replicas(void) {
    char o1[400], o2[400], sft[400];
    snprintf(o1, sizeof o1, "%s/rep1", tmpdir);
    snprintf(o2, sizeof o2, "%s/rep2", tmpdir);
    snprintf(sft, sizeof sft, "%s/sft.jsonl", tmpdir);   /* written by test_sft_items */
    llama_model *m[2] = {NULL, NULL};
    pretrain_result r[2];
    cis_err err = {0};
    for (int k = 0; k < 2; k++) {
        pretrain_opts o = tiny_opts(k ? o2 : o1);
        o.steps = 6;
        o.sft_path = sft;
        o.sft_from = 0;
        o.sft_every = 2;
        o.sft_batch = 4;
        o.threads = 2;
        o.replicas = k ? 2 : 1;
        int rc = pretrain_run(&o, &r[k], &m[k], &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (rc) { train_model_free(&m[0]); return; }
    }
    CHECK_EQ_INT(r[1].sft_steps, 3);
    CHECK(fabs(r[0].first_loss - r[1].first_loss) < 1e-4);
    int np0, np1;
    llama_param *p0 = llama_model_params(m[0], &np0), *p1 = llama_model_params(m[1], &np1);
    CHECK_EQ_INT(np0, np1);
    double worst = 0;
    for (int i = 0; i < np0 && i < np1; i++) {
        int64_t n = 1;
        for (int d = 0; d < p0[i].ndim; d++) n *= p0[i].shape[d];
        for (int64_t k = 0; k < n; k++) {
            double d = fabs((double)p0[i].data[k] - p1[i].data[k]) / (fabs(p0[i].data[k]) + 1e-2);
            if (d > worst) worst = d;
        }
    }
    fprintf(stderr, "# replicas 1 vs 2 after 6 steps: worst relative weight difference %.2e\n", worst);
    CHECK(worst < 1e-3);
    train_model_free(&m[0]);
    train_model_free(&m[1]);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_pretrain.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    log_set_level(LOG_WARN);
    write_corpus();
    RUN(test_presets);
    RUN(test_loss_falls_and_checkpoint_matches);
    RUN(test_time_budget_and_reused_tokenizer);
    RUN(test_init_from_model);
    RUN(test_step_budget_deterministic);
    RUN(test_stop_flag);
    RUN(test_stop_after);
    RUN(test_sft_items);
    RUN(test_replicas);
    RUN(test_bad_options);
    RUN(test_cli);
    RUN(test_family);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
