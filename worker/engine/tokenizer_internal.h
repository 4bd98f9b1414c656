/* tokenizer_internal.h - the private layout of a loaded tokenizer, shared by tokenizer_load.c
 * (JSON -> struct), tokenizer_pretok.c (split regexes, normalizers, pre-tokenizers),
 * tokenizer_bpe.c (hash maps, BPE merges, word cache) and tokenizer.c (encode/decode). */
#ifndef CISWEEP_ENGINE_TOKENIZER_INTERNAL_H
#define CISWEEP_ENGINE_TOKENIZER_INTERNAL_H

#include <pthread.h>
#include "worker/engine/tokenizer.h"

/* ---- hash maps ---- */
typedef struct tok_strmap {     /* open addressing, string (bytes, owned) -> int32 */
    char **keys;                /* [cap], NULL = empty slot */
    uint32_t *klen;             /* [cap] key lengths in bytes */
    int32_t *vals;              /* [cap] */
    size_t cap, n;              /* cap is a power of two */
} tok_strmap;
void tok_strmap_init(tok_strmap *m, size_t expect);
void tok_strmap_clear(tok_strmap *m);
/* put: insert or overwrite; returns true when the key was new */
bool tok_strmap_put(tok_strmap *m, const char *k, size_t len, int32_t v);
/* get: value, or -1 when absent */
int32_t tok_strmap_get(const tok_strmap *m, const char *k, size_t len);

typedef struct tok_pairmap {    /* (left id, right id) -> (rank, merged id) */
    uint64_t *keys;             /* [cap], UINT64_MAX = empty */
    int32_t *rank, *merged;     /* [cap] */
    size_t cap, n;
} tok_pairmap;
void tok_pairmap_init(tok_pairmap *m, size_t expect);
void tok_pairmap_clear(tok_pairmap *m);
void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged); /* keeps the first */
bool tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);

/* ---- pipeline steps ---- */
typedef enum { SPLIT_LLAMA3 = 1, SPLIT_GPT2 = 2, SPLIT_QWEN2 = 3 } tok_split_pattern;
typedef enum { PT_SPLIT = 1, PT_BYTELEVEL = 2, PT_METASPACE = 3 } tok_pretok_type;
typedef enum { PREPEND_ALWAYS = 0, PREPEND_FIRST = 1, PREPEND_NEVER = 2 } tok_prepend_scheme;
typedef struct tok_pretok {
    tok_pretok_type type;
    tok_split_pattern pattern;  /* PT_SPLIT (behavior Isolated) */
    bool add_prefix_space;      /* PT_BYTELEVEL */
    bool use_regex;             /* PT_BYTELEVEL: split with the GPT-2 pattern first */
    char replacement[8];        /* PT_METASPACE: UTF-8 of the replacement char ("▁") */
    tok_prepend_scheme prepend; /* PT_METASPACE */
    bool split;                 /* PT_METASPACE: split before each replacement char */
} tok_pretok;

typedef enum { NORM_PREPEND = 1, NORM_REPLACE = 2 } tok_norm_type;
typedef struct tok_norm {
    tok_norm_type type;
    char *a;                    /* PREPEND: the prefix; REPLACE: the pattern string */
    char *b;                    /* REPLACE: the content */
} tok_norm;

typedef enum { DEC_REPLACE = 1, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_BYTELEVEL, DEC_METASPACE } tok_dec_type;
typedef struct tok_dec {
    tok_dec_type type;
    char *a, *b;                /* REPLACE: pattern, content; STRIP: content char; METASPACE: replacement */
    int start, stop;            /* STRIP: how many content chars to strip at each end */
    tok_prepend_scheme prepend; /* METASPACE */
} tok_dec;

typedef struct tok_added {
    char *content;              /* as written in added_tokens */
    char *match;                /* what is matched and decoded: content, or normalize(content) when normalized */
    size_t len;                 /* strlen(match) */
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} tok_added;

#define TOK_CACHE_SLOTS 8192
typedef struct tok_cache_ent {
    char *key; uint32_t klen;   /* the pre-token (after byte mapping) */
    int32_t *ids; uint32_t n;
} tok_cache_ent;

struct tokenizer {
    tokenizer_kind kind;
    char path[512];                 /* the tokenizer.json read (for messages) */
    /* model (BPE) */
    tok_strmap vocab;               /* token string -> id (model vocab) */
    char **id2tok;                  /* [id_cap] token strings by id (model + added), NULL = none */
    int32_t id_cap;                 /* = vocab size */
    tok_pairmap merges;
    int32_t unk_id;                 /* -1 when none */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_ids[256];          /* byte_fallback: id of <0xAB>, -1 where absent */
    /* pipeline */
    tok_norm *norms; int n_norms;
    tok_pretok *pretoks; int n_pretoks;
    tok_dec *decs; int n_decs;
    bool has_decoder;
    tok_added *added; int n_added;
    bool added_first[2][256];       /* [normalized][byte]: some added token's match starts with byte */
    bool *is_special;               /* [id_cap] */
    bool *is_added;                 /* [id_cap] */
    /* post-processing */
    int32_t *prefix_ids; int n_prefix;   /* ids before the text when add_special */
    int32_t *suffix_ids; int n_suffix;   /* ids after */
    int32_t bos_id, eos_id, pad_id;
    /* byte-level alphabet */
    uint32_t byte2cp[256];
    int16_t cp2byte[324];           /* code point (< 324) -> byte, -1 when not in the alphabet */
    /* word cache (guarded by mu; the rest is read-only after load) */
    pthread_mutex_t mu;
    tok_cache_ent *cache;           /* [TOK_CACHE_SLOTS] direct-mapped */
};

/* tokenizer_pretok.c: match one pre-token of the given split pattern at cps[i] (cps[0..n));
 * returns the end index (> i). */
size_t tok_split_match(tok_split_pattern p, const uint32_t *cps, size_t n, size_t i);
/* recognise a split regex string; 0 when unknown */
tok_split_pattern tok_split_pattern_from(const char *regex);

/* tokenizer_bpe.c: BPE one pre-token word (UTF-8 bytes, already byte-mapped for byte-level)
 * and append its ids to the growable array (*ids, *n, *cap). */
void tok_bpe_word(const tokenizer *t, const char *w, size_t len, int32_t **ids, size_t *n, size_t *cap);
void tok_cache_clear(tokenizer *t);

/* a list of text pieces during encoding (each owns its bytes) */
typedef struct tok_piece { char *s; size_t len; size_t off; int32_t added; } tok_piece; /* off: byte offset in the original text; added: added-token id or -1 */
typedef struct tok_pieces { tok_piece *v; size_t n, cap; } tok_pieces;
void tok_pieces_push(tok_pieces *p, const char *s, size_t len, size_t off, int32_t added);
void tok_pieces_clear(tok_pieces *p);
/* tokenizer_pretok.c: apply the normalizer steps (malloc'd result, length in *out_len) and the
 * pre-tokenizer steps (appends the non-empty pre-tokens of s to out) */
char *tok_normalize(const tokenizer *t, const char *s, size_t len, size_t *out_len);
void tok_pretokenize(const tokenizer *t, const char *s, size_t len, size_t off, tok_pieces *out);
/* replace every occurrence of pat in s (malloc'd result) */
char *tok_str_replace(const char *s, size_t len, const char *pat, const char *rep, size_t *out_len);

/* small growable arrays */
void tok_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t v);
uint64_t tok_hash(const char *s, size_t n);

#endif
