/* bpe_train.h - a byte-level BPE trainer in the Llama-3 layout: texts are split by the Llama-3
 * regex (the engine tokenizer's own splitter, tokenizer_internal.h), each pre-token becomes a word
 * of bytes, and merges are learned by pair frequency over the distinct words. The result is written
 * as a Hugging Face `tokenizer.json` (Split + ByteLevel pre-tokenizer, BPE with ignore_merges,
 * ByteLevel decoder, a TemplateProcessing post-processor that prepends <|begin_of_text|>) plus a
 * `tokenizer_config.json` (bos/eos/pad, add_bos_token true) that both our tokenizer_load and the
 * Python `tokenizers` package read and encode identically (docs/training.md).
 *
 * Vocabulary layout: ids 0..255 are the 256 bytes (id b = byte b, written as the GPT-2 byte-level
 * character), then the forced merges (opts.forced, e.g. " A": answer letters must be one token),
 * then the learned merges in rank order, then the special tokens <|begin_of_text|>,
 * <|end_of_text|>, <|pad|>.
 * Merge rule: the pair with the highest count over all words (count = word frequency x
 * occurrences); ties go to the smallest (left id, right id). Training stops at the target vocab
 * size or when the best pair occurs fewer than min_frequency times. Deterministic: the same texts
 * (in any order) give the same tokenizer. */
#ifndef CISWEEP_DATA_BPE_TRAIN_H
#define CISWEEP_DATA_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

#define BPE_BOS "<|begin_of_text|>"
#define BPE_EOS "<|end_of_text|>"
#define BPE_PAD "<|pad|>"

typedef struct bpe_train_opts {
    int vocab_size;          /* target total size including the 3 special tokens (>= 259 + forced) */
    int min_frequency;       /* stop when the best pair is rarer (default 2) */
    const char *const *forced; /* NULL-terminated list of strings that must be single tokens, or NULL */
} bpe_train_opts;

/* bpe_train_opts_default: vocab 2048, min_frequency 2, forced " A"," B"," C"," D". */
bpe_train_opts bpe_train_opts_default(void);

typedef struct bpe_trainer bpe_trainer;

bpe_trainer *bpe_trainer_new(void);
void bpe_trainer_free(bpe_trainer **t);

/* bpe_trainer_feed: pre-tokenize text[0..len) and add its words to the counts (before train).
 * -1 with err on invalid UTF-8 (names the byte offset) or when called after training. */
int bpe_trainer_feed(bpe_trainer *t, const char *text, size_t len, cis_err *err);
/* bpe_trainer_train: learn the merges. -1 with err on a bad option or a second call. */
int bpe_trainer_train(bpe_trainer *t, const bpe_train_opts *o, cis_err *err);

/* after training: */
int bpe_trainer_vocab_size(const bpe_trainer *t);   /* model tokens + specials */
int bpe_trainer_n_merges(const bpe_trainer *t);     /* forced + learned */
/* bpe_trainer_merge: raw bytes (not byte-level mapped) of merge i's left and right token, owned
 * by the trainer; lengths in *llen / *rlen. -1 when i is out of range. */
int bpe_trainer_merge(const bpe_trainer *t, int i, const char **l, size_t *llen, const char **r, size_t *rlen);
size_t bpe_trainer_n_words(const bpe_trainer *t);   /* distinct pre-tokens seen */

/* bpe_trainer_save: write dir/tokenizer.json and dir/tokenizer_config.json (creates dir).
 * model_max_length goes into tokenizer_config.json. */
int bpe_trainer_save(const bpe_trainer *t, const char *dir, int model_max_length, cis_err *err);

/* bpe_byte_level: the GPT-2 byte-level string of raw bytes s[0..n) (malloc'd, NUL-terminated). */
char *bpe_byte_level(const char *s, size_t n);

#endif
