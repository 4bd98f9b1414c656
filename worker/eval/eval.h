/* eval.h - the evaluation suite, computed the way the paper computes it (algorithms.md §10,
 * paper.md §3): lm-eval-harness 0-shot multiple choice (MMLU, WMDP), WikiText perplexity over
 * non-overlapping windows, zsRE generation token-set F1 (composable) and teacher-forced token
 * accuracy (EasyEdit), average bits of the decoder linear layers; and eval_suite_run, which runs
 * all of them on a world (or real data) directory and returns named metric rows.
 *
 * Models are used one call at a time (llama_model is not thread-safe); tokenizers are read-only.
 * Errors return -1 with err naming the task, record and field. */
#ifndef CISWEEP_EVAL_H
#define CISWEEP_EVAL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include "common/util.h"
#include "worker/data/loaders.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"

/* ---- metric rows ------------------------------------------------------------------------------ */

typedef struct eval_row {
    char name[96];   /* "mmlu", "mmlu_<subject>", "wmdp_bio", "ppl_wikitext", "edit_success", ... */
    double value;
} eval_row;

typedef struct eval_rows {
    eval_row *row;   /* [n] in the order added */
    int n, cap;
} eval_rows;

/* eval_rows_set: add a row, or overwrite the value of an existing row of that name. */
void eval_rows_set(eval_rows *r, const char *name, double value);
/* eval_rows_get: the row named so, or NULL. */
const eval_row *eval_rows_get(const eval_rows *r, const char *name);
/* eval_rows_clear: free the rows and zero *r (NULL-safe; r may be filled again). */
void eval_rows_clear(eval_rows *r);
/* eval_rows_json: {"name": value, ...} on one line (malloc'd; non-finite values as null). */
char *eval_rows_json(const eval_rows *r);

/* eval_encode: tokenizer_encode of a NUL-terminated string into a malloc'd array (*n tokens). */
int eval_encode(const tokenizer *tok, const char *text, bool add_special, int32_t **ids, int *n, cis_err *err);
/* eval_encode_continuation: lm-eval's _encode_pair for a context that ends without whitespace: the
 * tokens of tok(ctx_text + cont_text) after the first ctx_len (ctx_len = |tok(ctx_text)|, ctx its
 * tokens). *cont (malloc'd) gets them, *n their count; *prefix_same (may be NULL) whether those
 * first ctx_len tokens are ctx's. 0; 1 when nothing follows the context (no allocation: the caller
 * names the item); -1 with err when the encoding fails. */
int eval_encode_continuation(const tokenizer *tok, const char *ctx_text, const int32_t *ctx, int ctx_len,
                             const char *cont_text, bool add_special, int32_t **cont, int *n, bool *prefix_same,
                             cis_err *err);

/* eval_py_strip: Python's str.strip() on UTF-8 s[0..n): the kept bytes are s[*b, *e). All of
 * str.isspace()'s code points count (ASCII whitespace, U+001C..1F, U+0085, U+00A0, U+2000..200A,
 * U+3000, ...). */
void eval_py_strip(const char *s, size_t n, size_t *b, size_t *e);

/* ---- multiple choice (lm-eval-harness, algorithms.md §10.3) ------------------------------------ */

/* mc_prompt_style: how the task description ends. lm-eval 0.4.2 (the version the authors pinned,
 * fidelity.md §4) renders the yaml description "...about <subject>.\n\n" through Jinja without
 * keep_trailing_newline, which drops its last newline: ONE newline before the question. lm-eval
 * 0.4.4 and later keep both. */
typedef enum mc_prompt_style {
    MC_PROMPT_LMEVAL_042 = 0,  /* "...about <subject>.\n<question>..." (default: what the paper ran) */
    MC_PROMPT_LMEVAL_044 = 1,  /* "...about <subject>.\n\n<question>..." (lm-eval >= 0.4.4) */
} mc_prompt_style;

/* mc_prompt_style_parse: "0.4.2" / "lm-eval-0.4.2" -> 042, "0.4.4" / "lm-eval-0.4.4" -> 044;
 * 0, or -1 for anything else. */
int mc_prompt_style_parse(const char *s, mc_prompt_style *out);
/* mc_prompt_style_name: "lm-eval-0.4.2" or "lm-eval-0.4.4". */
const char *mc_prompt_style_name(mc_prompt_style s);
/* mc_prompt_newlines: the newlines after the description (1 for 0.4.2, 2 for 0.4.4): the value of
 * the `mc_prompt_newlines` metric row that records which prompt a run used. */
int mc_prompt_newlines(mc_prompt_style s);

/* cloze_prompt_style: the context of the cloze formulation (eval_cloze_task) */
typedef enum cloze_prompt_style {
    CLOZE_PROMPT_QA = 0,           /* the question alone, stripped: the form of the synthetic world's
                                      QA lines ("<question> <answer>"), as the open answers ask it
                                      (default) */
    CLOZE_PROMPT_CONTINUATION = 1, /* lm-eval's mmlu_continuation: "The following are questions (with
                                      answers) about <subject>.\n" (mc_prompt_style's newlines)
                                      "Question: <question.strip()>\nAnswer:" */
} cloze_prompt_style;

/* cloze_prompt_style_parse: "qa" / "continuation"; 0, or -1 for anything else. */
int cloze_prompt_style_parse(const char *s, cloze_prompt_style *out);
/* cloze_prompt_style_name: "qa" or "continuation". */
const char *cloze_prompt_style_name(cloze_prompt_style s);

typedef struct mc_opts {
    mc_prompt_style prompt;/* the description's newlines (default MC_PROMPT_LMEVAL_042) */
    cloze_prompt_style cloze_prompt; /* eval_cloze_task's context (default CLOZE_PROMPT_QA) */
    bool add_bos;          /* encode the context with the tokenizer's special tokens (lm-eval's
                              add_bos_token); default false, as lm-eval 0.4.x */
    bool force_full;       /* score every continuation with a full forward (tests, diagnostics) */
    bool no_shared_prefix; /* shortcut questions run whole, without the task's cached header
                              (tests, timing; also the environment CISWEEP_MC_NO_SHARED_PREFIX) */
    int max_batch_tokens;  /* padded tokens per forward; <= 0 = 8192 */
    int limit;             /* > 0: only the first `limit` questions */
} mc_opts;

typedef struct mc_result {
    int n;                 /* questions scored */
    int correct;
    double acc;            /* correct / n */
    double acc_stderr;     /* sample std (ddof 1) / sqrt(n) */
    int n_shortcut;        /* questions scored from one forward (every letter one token) */
    int n_full;            /* questions that needed the full per-continuation scoring */
    int n_shared_prefix;   /* of the shortcut ones: run as suffixes after the cached header */
    int n_prefix_mismatch; /* questions where tok(ctx + " X") != tok(ctx) ++ [id(" X")] for some X */
} mc_result;

/* mc_prompt_styled: the 0-shot context, byte for byte lm-eval's (0.4.2 shown; 0.4.4 has "\n\n"
 * after the description)
 * "The following are multiple choice questions (with answers) about <subject>.\n"
 * "<question.strip()>\nA. <c0>\nB. <c1>\nC. <c2>\nD. <c3>\nAnswer:"  (malloc'd). */
char *mc_prompt_styled(const mc_question *q, const char *subject, mc_prompt_style style);
/* mc_prompt: mc_prompt_styled with the default style (lm-eval 0.4.2). */
char *mc_prompt(const mc_question *q, const char *subject);

/* eval_mc_task: acc of the model on the task. pred (may be NULL) gets [n] predicted indices and
 * ll (may be NULL) [n*4] the continuation log-likelihoods. */
int eval_mc_task(llama_model *m, const tokenizer *tok, const mc_task *task, const mc_opts *o, int *pred,
                 double *ll, mc_result *res, cis_err *err);

/* ---- open answers (a diagnostic of this project, not a metric of the paper) ------------------ */

/* eval_open_task: the knowledge behind MC items without the MC format: each question of the task,
 * stripped, is the prompt (with BOS) and choices[answer] the gold answer of gen_f1_batch (greedy,
 * max_length tokens counting the prompt, composable's token-set F1). *f1_mean gets the mean F1 and
 * *em_mean (may be NULL) the fraction of questions whose F1 is 1. In the synthetic world every MC
 * question is also a pretraining QA line, so this measures whether the model still states the fact,
 * apart from the memorized answer letter that MMLU/WMDP score (docs/world.md "Multiple choice"). */
int eval_open_task(llama_model *m, const tokenizer *tok, const mc_task *task, int max_length, double *f1_mean,
                   double *em_mean, cis_err *err);

/* ---- cloze multiple choice (a diagnostic of this project, not a metric of the paper) ----------- */

typedef struct cloze_result {
    int n;                 /* questions scored */
    int correct;           /* argmax of the summed log-likelihood */
    int correct_norm;      /* argmax of it per character of the option */
    double acc;            /* correct / n (lm-eval acc) */
    double acc_norm;       /* correct_norm / n (lm-eval acc_norm) */
} cloze_result;

/* cloze_prompt_styled: the cloze context (malloc'd): with CLOZE_PROMPT_QA the question stripped
 * ("<question.strip()>"); with CLOZE_PROMPT_CONTINUATION lm-eval's mmlu_continuation context (0.4.2
 * shown; 0.4.4 has "\n\n" after the description) "The following are questions (with answers) about
 * <subject>.\nQuestion: <question.strip()>\nAnswer:". */
char *cloze_prompt_styled(const mc_question *q, const char *subject, mc_prompt_style style, cloze_prompt_style cs);

/* eval_cloze_task: the task in the cloze formulation (worker/eval/eval_cloze.c): each option
 * " <choice>" scored as the continuation of cloze_prompt_styled (o's prompt and cloze_prompt
 * styles, add_bos, max_batch_tokens and limit; the rest of o is ignored). pred / pred_norm (may be NULL) get [n]
 * argmax indices of the raw and per-character scores, ll (may be NULL) [n*4] log-likelihoods. */
int eval_cloze_task(llama_model *m, const tokenizer *tok, const mc_task *task, const mc_opts *o, int *pred,
                    int *pred_norm, double *ll, cloze_result *res, cis_err *err);

/* ---- perplexity (algorithms.md §10.4) ---------------------------------------------------------- */

typedef struct ppl_result {
    double ppl;            /* exp(mean over windows of the window's mean next-token CE) */
    double mean_nll;       /* that mean, nats/token */
    int n_windows;
    int seqlen;            /* T used */
    int64_t n_tokens;      /* tokens of the whole text (with the BOS) */
} ppl_result;

/* eval_ppl_tokens: windows [w*T, (w+1)*T) for w < floor(n/T) (at most max_windows when > 0),
 * each scored on its T-1 next-token predictions. A text shorter than T is scored as one window
 * of all its tokens (warned). batch_tokens bounds the tokens per forward (<= 0: one window). */
int eval_ppl_tokens(llama_model *m, const int32_t *ids, int64_t n, int seqlen, int max_windows, int batch_tokens,
                    ppl_result *res, cis_err *err);
/* eval_ppl_text: tokenize text once (with the BOS rule of the tokenizer), then eval_ppl_tokens. */
int eval_ppl_text(llama_model *m, const tokenizer *tok, const char *text, size_t len, int seqlen, int max_windows,
                  int batch_tokens, ppl_result *res, cis_err *err);
/* eval_ppl_text_spread: eval_ppl_text over n_windows windows spread evenly over the text (window
 * floor(k * W / n_windows) of the W there are, k < n_windows; all W when n_windows <= 0 or >= W),
 * then at most max_windows of those (> 0). res->n_windows is the number scored. */
int eval_ppl_text_spread(llama_model *m, const tokenizer *tok, const char *text, size_t len, int seqlen,
                         int n_windows, int max_windows, int batch_tokens, ppl_result *res, cis_err *err);

/* ---- zsRE (algorithms.md §10.1, §10.2) --------------------------------------------------------- */

/* token_set_f1: composable's score of filtered generated ids against filtered gold ids:
 * C = set(gen) ∩ set(gold); 0 when C or gen is empty; else 2PR/(P+R) with P = |C|/|set(gen)|,
 * R = |C|/|set(gold)|. *recall (may be NULL) gets R (0 when gold is empty). */
double token_set_f1(const int32_t *gen, int n_gen, const int32_t *gold, int n_gold, double *recall);

/* gen_f1_batch: §10.2 for n (prompt, answer) pairs: answer gets a leading space when it has none;
 * gold = tok(answer) with BOS, padded with EOS and truncated to max_length, excluded ids dropped
 * (EOS = pad as lm_compose sets it, BOS, the first id of tok(" "), and the leading-space token when
 * " Hello" and " Word" start with the same id; a tokenizer's own pad token is NOT excluded);
 * greedy generation to max_length tokens counting the prompt (tok(prompt) with BOS); the
 * generated ids after the prompt, filtered the same way and truncated to |gold|.
 * f1[n], recall[n] out; gen_out (may be NULL) gets malloc'd [n] arrays of the filtered generated
 * ids with lengths in gen_len[n] (caller frees each and the array). */
int gen_f1_batch(llama_model *m, const tokenizer *tok, int n, const char *const *prompts, const char *const *answers,
                 int max_length, double *f1, double *recall, int32_t ***gen_out, int **gen_len, cis_err *err);

/* tf_argmax_batch: §10.1 teacher forcing: x = tok(prompt + " " + answer) with BOS, l = |tok(prompt)|
 * with BOS; for j = l..|x|-1 the prediction argmax logits[j-1] and the label x[j]. acc[n] (may be
 * NULL) gets the fraction of positions predicted right (0 when there is none); pred (may be NULL)
 * gets malloc'd [n] arrays of the predicted ids, lengths in pred_len[n]. *n_mismatch (may be NULL)
 * counts pairs where tok(prompt) is not a prefix of x. max_batch_tokens <= 0: 8192. */
int tf_argmax_batch(llama_model *m, const tokenizer *tok, int n, const char *const *prompts,
                    const char *const *answers, int max_batch_tokens, double *acc, int32_t ***pred, int **pred_len,
                    int *n_mismatch, cis_err *err);

/* ppl_responses: composable's perplexity of responses after prompts: tok(prompt) and
 * tok(response), each with BOS, concatenated (batched: ppl_responses2); the mean next-token CE over
 * the response tokens (mask_prompt) or over all tokens (not masked), times the response length,
 * summed over pairs; *ppl = exp(sum / total response tokens). (Unmasked, the mean over all
 * tokens is weighted by the response length, as the reference code does.) */
int ppl_responses(llama_model *m, const tokenizer *tok, int n, const char *const *prompts, const char *const *responses,
                  bool mask_prompt, double *ppl, cis_err *err);
/* ppl_responses2: both of ppl_responses' numbers from one pass (either pointer may be NULL): the
 * pairs right-padded into batches of at most max_batch_tokens padded tokens (0 = 8192) and 64 MB
 * of logits, the CE of every position computed on the host (max-shifted, sums in double). */
int ppl_responses2(llama_model *m, const tokenizer *tok, int n, const char *const *prompts,
                   const char *const *responses, int max_batch_tokens, double *ppl_masked, double *ppl_unmasked,
                   cis_err *err);

/* zsre_loc_prompt: lm_compose's loc.split("nq question:")[1].strip(): the text after the first
 * "nq question:" up to a second one, Python-stripped; a loc without the marker is only stripped
 * (the reference would raise). malloc'd. */
char *zsre_loc_prompt(const char *loc);

typedef struct zsre_opts {
    int max_length;        /* generation length counting the prompt (30 in the paper, fidelity.md §4) */
    int max_batch_tokens;  /* teacher forcing; <= 0 = 8192 */
    bool teacher_forced;   /* also compute EasyEdit's tf_* metrics */
    bool ppl;              /* also ppl_edits / ppl_edits_unmasked (src vs alt) */
    llama_model *ref;      /* unedited model for tf_locality (agreement), or NULL */
    const char *prefix;    /* row-name prefix ("" or e.g. "pre_") */
} zsre_opts;

/* eval_zsre_records: on records idx[0..n) adds rows (prefix + ): edit_success, generalization,
 * locality (F1 means), edit_success_recall, generalization_recall, locality_recall,
 * src_true_f1 (src vs answers[0], the pre-edit knowledge check), with ppl ppl_edits and
 * ppl_edits_unmasked, and with teacher_forced
 * tf_rewrite_acc, tf_rephrase_acc, tf_locality (with ref: agreement of the argmax tokens on
 * (loc, loc_ans) with the reference model). */
int eval_zsre_records(llama_model *m, const tokenizer *tok, const zsre_data *d, const int32_t *idx, int n,
                      const zsre_opts *o, eval_rows *out, cis_err *err);

/* ---- average bits (paper.md §3.1) -------------------------------------------------------------- */

typedef struct quant_info {
    int wbits;             /* 0 = not quantized */
    int group_size;        /* > 0: scale + zero (16 bits each) per group; <= 0: per output row */
} quant_info;

/* eval_avg_bits: over the decoder linear layers (q,k,v,o,gate,up,down of every layer): quantized
 * -> wbits + 32/group_size (per row: 32/in_features, weighted by parameter count); otherwise
 * (#zeros*1 + #nonzeros*16)/#params = 16 - 15*sparsity. *sparsity (may be NULL) gets the zero
 * fraction. */
double eval_avg_bits(llama_model *m, const quant_info *q, double *sparsity);

/* ---- the suite --------------------------------------------------------------------------------- */

/* eval_profile: a named set of the evaluation's protocol settings (docs/eval.md "Profiles").
 *   paper   - what the paper ran (fidelity.md §4): lm-eval 0.4.2's prompt, zsRE max_length 30
 *   default - the embedded default model: lm-eval 0.4.2's prompt, max_length EVAL_DEFAULT_MAX_LENGTH
 *   sweep   - default's protocol on sets sized so that a 417-composition sweep fits on 2 cores
 *             (EVAL_SWEEP_* below; paper and default score every item), no teacher-forced extras
 * A profile sets eval_opts.mc_prompt and max_length; options given after it override them, and the
 * suite records what ran (rows eval_profile, mc_prompt_newlines, zsre_max_length). */
typedef enum eval_profile {
    EVAL_PROFILE_DEFAULT = 0,
    EVAL_PROFILE_PAPER = 1,
    EVAL_PROFILE_SWEEP = 2,
} eval_profile;

#define EVAL_PAPER_MAX_LENGTH 30     /* conf/config.yaml at v1 and on iclr_push (fidelity.md §4) */
#define EVAL_DEFAULT_MAX_LENGTH 30   /* see docs/eval.md "Profiles" for the measurement behind it */
/* (results epoch 8; 16, 100, 32 and 100 before: docs/eval.md "The sweep profile") */
#define EVAL_SWEEP_MMLU 12           /* questions per MMLU subject, spread over its file (8 subjects: 96) */
#define EVAL_SWEEP_WMDP 64           /* questions per WMDP task, spread (bio, cyber: 128) */
#define EVAL_SWEEP_PPL_WINDOWS 16    /* WikiText windows, spread over the text */
#define EVAL_SWEEP_QA 50             /* zsRE QA-set records (the edit set is scored whole) */

/* eval_profile_parse: "default" / "paper" / "sweep"; 0, or -1 for anything else. */
int eval_profile_parse(const char *s, eval_profile *out);
/* eval_profile_name: "default", "paper" or "sweep". */
const char *eval_profile_name(eval_profile p);

typedef struct eval_opts {
    eval_profile profile;  /* which profile the settings below came from (recorded as a row) */
    mc_prompt_style mc_prompt; /* MMLU/WMDP prompt (lm-eval 0.4.2 by default) */
    int edit_set;          /* zsRE edit set 1..10 (default 1) */
    int edit_set_size;     /* 50 */
    int limit;             /* > 0: at most N questions per MC task, N zsRE records, N PPL windows */
    int mmlu_sample;       /* > 0: N questions per MMLU subject, spread evenly over its file (then limit) */
    int wmdp_sample;       /* > 0: N questions per WMDP task, spread evenly (then limit) */
    int ppl_sample;        /* > 0: N PPL windows spread evenly over the text (then limit) */
    int qa_limit;          /* > 0: the first N zsRE QA-set records (a random sample: the set is
                              shuffled); with limit: the smaller */
    int seqlen;            /* > 0: PPL window min(max_position_embeddings, seqlen); 0 = max_pos */
    int max_length;        /* zsRE generation length in tokens, prompt included (the profile's) */
    int batch_tokens;      /* padded tokens per forward (MC, PPL, teacher forcing); 0 = 8192 */
    int threads;           /* > 0: backend thread count */
    bool mc_bos;           /* lm-eval add_bos_token */
    bool teacher_forced;   /* EasyEdit tf_* metrics (default true) */
    bool skip_mmlu, skip_wmdp, skip_ppl, skip_zsre, skip_qa;
    bool open_answer;      /* also the open-answer rows (eval_open_task; off by default, in no profile):
                              each scored MMLU/WMDP question asked bare, answered by greedy generation */
    bool cloze;            /* also the cloze rows (eval_cloze_task; off by default, in no profile):
                              each scored MMLU/WMDP question's options scored as continuations */
    cloze_prompt_style cloze_prompt; /* their context (default CLOZE_PROMPT_QA) */
    bool skip_missing;     /* a dataset whose file is absent is skipped with a warning; default
                              false: the run fails naming the expected path */
    llama_model *ref_model;/* unedited model for tf_locality, or NULL */
    quant_info quant;      /* what a quantizer did to the model (wbits 0: none) */
} eval_opts;

/* eval_opts_default: the default profile (eval_opts_profile(o, EVAL_PROFILE_DEFAULT)) with edit set
 * 1 of 50, batch_tokens 8192, teacher forcing on, nothing skipped. */
void eval_opts_default(eval_opts *o);
/* eval_opts_profile: set o->profile and the settings it names (mc_prompt, max_length, and the sets'
 * sizes and teacher_forced); the other fields are left alone. */
void eval_opts_profile(eval_opts *o, eval_profile p);

/* eval_suite_run: every metric on dir's files (world layout: mmlu/data/test/<subject>_test.csv, wmdp/wmdp-bio.json,
 * wmdp/wmdp-cyber.json, wikitext/wiki.test.raw, zsre/zsre_mend_train.json [+ edit_sets.json]).
 * Rows: mmlu, mmlu_<subject>..., wmdp_bio, wmdp_cyber, wmdp_avg, ppl_wikitext, edit_success,
 * generalization, locality, *_recall, src_true_f1, tf_*, qa_f1, qa_recall, avg_bits, sparsity,
 * with open_answer open_mmlu_f1, open_mmlu_em, open_wmdp_{bio,cyber}_{f1,em}, open_wmdp_f1 (on the
 * same sampled questions as the MC rows), with cloze cloze_mmlu, cloze_wmdp_{bio,cyber,avg} and each
 * with _norm (the same questions),
 * n_* counts, time_*_s and throughput rows. A dataset that is not skipped (skip_*) must be there:
 * when its file is absent the run fails with err naming the expected path, unless skip_missing
 * (then it is skipped with a warning). A malformed file is an error either way. out must be
 * zeroed (or hold earlier rows). */
int eval_suite_run(llama_model *m, tokenizer *tok, const char *dir, const eval_opts *o, eval_rows *out, cis_err *err);

/* eval_print_mc_prompts: every MMLU (dir/mmlu) and WMDP (dir/wmdp) question's context in the given
 * style, one JSON line {"task": "mmlu_<subject>" | "wmdp_bio" | "wmdp_cyber", "index": i,
 * "prompt": "..."} each, in the suite's order (worker/eval/eval_prompts.c). -1 with err naming the
 * file on a malformed dataset, or when dir holds neither MMLU nor WMDP. */
int eval_print_mc_prompts(const char *dir, mc_prompt_style style, FILE *f, cis_err *err);

/* eval_mc_task_fn: called once per MC task; row is the suite's row name ("mmlu_<subject>",
 * "wmdp_bio", "wmdp_cyber"). Non-zero stops the walk (err set). */
typedef int (*eval_mc_task_fn)(const mc_task *t, const char *row, void *ctx, cis_err *err);
/* eval_for_each_mc_task: every MMLU test subject (sorted) then WMDP bio, cyber of dir, as
 * eval_suite_run scores them; absent tasks are passed over. -1 with err naming the file on a
 * malformed dataset, when dir holds no MC task at all, or fn's own error. */
int eval_for_each_mc_task(const char *dir, eval_mc_task_fn fn, void *ctx, cis_err *err);

/* eval_open_items: one JSON line per MMLU/WMDP question of dir (every one, the suite's order):
 * {"task","index","gold","mc_pred","mc_correct","cloze_pred","cloze_correct","open_f1"}: the MC
 * and the cloze (eval_cloze_task, raw acc) predictions under mo and the open answer's F1 (max_length). The per-item view behind the open_* rows (docs/eval.md). */
int eval_open_items(llama_model *m, const tokenizer *tok, const char *dir, const mc_opts *mo, int max_length,
                    FILE *f, cis_err *err);

/* cmd_eval: `cisweep-worker eval MODEL_DIR --world DIR [...]` (worker/eval/cmd_eval.c). */
int cmd_eval(int argc, char **argv);

#endif
