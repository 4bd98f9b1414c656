/* tokenizer.h - the engine's tokenizer, loaded from a Hugging Face `tokenizer.json` (+ the optional
 * `tokenizer_config.json` beside it). Two kinds, as the Llama family ships them:
 *   TOKENIZER_BYTE_LEVEL_BPE   Llama-3 / GPT-2: Split(regex) + ByteLevel pre-tokenizer, byte-to-unicode
 *                              alphabet, BPE merges by rank, ignore_merges; ByteLevel decoder.
 *   TOKENIZER_SENTENCEPIECE_BPE Llama-2 / Mistral: "▁" for spaces (Prepend+Replace normalizer or the
 *                              Metaspace pre-tokenizer), BPE over characters, byte_fallback to <0xAB>,
 *                              unk; Replace/ByteFallback/Fuse/Strip (or Metaspace) decoder.
 * Added tokens (special or not, lstrip/rstrip/single_word/normalized) are split out before
 * pre-tokenization; BOS/EOS come from the TemplateProcessing post-processor, or from
 * add_bos_token/add_eos_token in tokenizer_config.json when those keys are present.
 * docs/tokenizer.md lists what is supported and what is refused.
 * A loaded tokenizer is read-only except for an internal word cache guarded by a mutex, so one
 * tokenizer may be used from several threads. */
#ifndef CISWEEP_ENGINE_TOKENIZER_H
#define CISWEEP_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

typedef enum tokenizer_kind {
    TOKENIZER_BYTE_LEVEL_BPE = 1,
    TOKENIZER_SENTENCEPIECE_BPE = 2,
} tokenizer_kind;

typedef struct tokenizer tokenizer;

/* tokenizer_load: path is a directory holding tokenizer.json (and maybe tokenizer_config.json)
 * or the tokenizer.json file itself (tokenizer_config.json is then looked for beside it).
 * Returns 0 and a new tokenizer in *out (free with tokenizer_free), or -1 with err naming the
 * file and field (missing model, vocab not an object, merges naming unknown tokens, an unsupported
 * model type / normalizer / pre-tokenizer / split pattern / decoder / post-processor). */
int tokenizer_load(const char *path, tokenizer **out, cis_err *err);
void tokenizer_free(tokenizer *tok);

/* tokenizer_encode: text[0..len) (UTF-8; need not be NUL-terminated) to token ids. add_special
 * applies the BOS/EOS rule (post-processor or tokenizer_config.json). Returns 0 with a malloc'd
 * array in *ids (caller frees; non-NULL even when *n == 0) and its length in *n, or -1 (invalid
 * UTF-8: err names the byte offset). */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool add_special,
                     int32_t **ids, size_t *n, cis_err *err);

/* tokenizer_decode: ids to text through the tokenizer's decoder. skip_special drops special added
 * tokens (BOS, EOS, ...). Ids outside the vocabulary are skipped. Returns 0 and a malloc'd
 * NUL-terminated string in *out (caller frees). Bytes that do not form valid UTF-8 come out as
 * U+FFFD, as in the `tokenizers` package. */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, char **out);
/* tokenizer_decode_n: the same, with the byte length in *out_len (the text may hold NUL bytes,
 * e.g. from <0x00> or the byte-level token for byte 0). */
int tokenizer_decode_n(const tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, char **out, size_t *out_len);

/* token string <-> id (added tokens included). token_to_id returns -1 for an unknown string;
 * id_to_token returns a pointer owned by the tokenizer, or NULL for an unknown id. */
int32_t tokenizer_token_to_id(const tokenizer *tok, const char *token);
const char *tokenizer_id_to_token(const tokenizer *tok, int32_t id);
/* true when id is an added token flagged special */
bool tokenizer_is_special(const tokenizer *tok, int32_t id);

tokenizer_kind tokenizer_get_kind(const tokenizer *tok);
const char *tokenizer_kind_name(tokenizer_kind k); /* "byte_level_bpe" / "sentencepiece_bpe" */
/* vocabulary size: 1 + the largest id of the model vocab and the added tokens */
int32_t tokenizer_vocab_size(const tokenizer *tok);
/* special ids, -1 when the tokenizer has none */
int32_t tokenizer_bos_id(const tokenizer *tok);
int32_t tokenizer_eos_id(const tokenizer *tok);
int32_t tokenizer_pad_id(const tokenizer *tok);
int32_t tokenizer_unk_id(const tokenizer *tok);

#endif
