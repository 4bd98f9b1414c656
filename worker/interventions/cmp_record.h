/* cmp_record.h - the compression record of one compression stage (issue 9, docs/compression.md
 * "The compression record file"): what a later stage needs to re-apply or respect it.
 *   pruners (Wanda, SparseGPT): per decoder linear, the bit mask of the weights the stage left at
 *     zero (what the recompress policy `mask` holds at zero);
 *   quantizers (GPTQ, AWQ): per decoder linear, the integer code of every weight, the scale and
 *     zero point of every (row, group), the group, the bits, sym/asym, and GPTQ's act-order
 *     permutation when desc_act is on; AWQ also keeps the two RMSNorm weights of every layer that
 *     its scale folding changed, verbatim (raw fp32 entries), so that re-applying the record gives
 *     the whole model the stage left.
 * Dequantizing the codes gives the written-back weights bit for bit: the codes are recovered from
 * the written-back weights and the grid the method used (code = rint(W/scale) + zero), and every
 * one is checked on capture (scale * (code - zero) == W, the backend's formula) or the capture
 * fails. The in-memory form holds one byte per code; the file packs them at the record's bit width.
 *
 * The file (little endian, written atomically, named by its own sha256: content-addressed):
 *   header   char[8] "CISCREC\0", u32 version (1), u32 kind (1 mask, 2 quant), u32 bits (quant 2..8,
 *            mask 0), u32 group (quant >= 1, mask 0), u32 flags (bit0 sym, bit1 desc_act),
 *            u32 n_tensors, char[16] method (NUL-padded)                                  48 bytes
 *   tensor   u32 name_len (1..255), name (no NUL), u32 ndim (2; 1 for a raw entry: rows 1), u64 rows,
 *            u64 cols, u32 tflags (bit0: perm present, bit1: raw), u64 payload_len, then the payload:
 *              raw:   f32[rows*cols], the tensor's values as they are (AWQ's folded norms)
 *              mask:  ceil(rows*cols/8) bytes; weight j (row-major) is bit j&7 of byte j>>3
 *              quant: codes, ceil(rows*cols*bits/8) bytes (code j at stream bits [j*bits, j*bits+bits),
 *                     LSB first); scale f32[rows*ng]; zero u8[rows*ng] (ng = ceil(cols/group), group
 *                     g of row r at r*ng + g; with desc_act g counts permuted positions); perm
 *                     i32[cols] when tflags bit0 (perm[b] = the original column at permuted position b)
 *   trailer  char[8] "CISCEND\0", 64 lowercase hex: sha256 of every byte before the trailer
 * The reader checks every field and bound and names the file and the field on a mismatch. */
#ifndef CISWEEP_INTERVENTIONS_CMP_RECORD_H
#define CISWEEP_INTERVENTIONS_CMP_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "worker/engine/model.h"

#define CMPREC_MAGIC "CISCREC"      /* + NUL: 8 bytes */
#define CMPREC_END "CISCEND"        /* + NUL: 8 bytes */
#define CMPREC_VERSION 1
#define CMPREC_HEADER_BYTES 48
#define CMPREC_TRAILER_BYTES (8 + 64)
#define CMPREC_EXT ".cisrec"

typedef enum cmprec_kind { CMPREC_MASK = 1, CMPREC_QUANT = 2 } cmprec_kind;

typedef struct cmprec_tensor {
    char *name;          /* "model.layers.0.self_attn.q_proj.weight" (owned) */
    int64_t rows, cols;  /* the weight's shape [out, in] */
    uint8_t *mask;       /* MASK: [ceil(rows*cols/8)] bit j = weight j held at zero */
    uint8_t *codes;      /* QUANT: [rows*cols] one byte per weight, each in [0, 2^bits) */
    float *scale;        /* QUANT: [rows*ng] */
    uint8_t *zero;       /* QUANT: [rows*ng], each in [0, 2^bits) */
    int32_t *perm;       /* QUANT with desc_act: [cols]; NULL otherwise */
    float *raw;          /* a raw entry (any kind): [rows*cols] values kept verbatim; then mask,
                            codes, scale, zero and perm are NULL */
    int ndim;            /* 2; a raw entry of a 1-D parameter: 1 (rows = 1) */
} cmprec_tensor;

typedef struct cmprec {
    cmprec_kind kind;
    char method[16];     /* "wanda", "sparsegpt", "gptq", "awq" */
    int bits, group;     /* QUANT: 2..8 and >= 1; MASK: 0, 0 */
    bool sym, desc_act;  /* QUANT: a symmetric grid (GPTQ), act order (GPTQ desc_act) */
    int n;               /* tensors */
    cmprec_tensor *t;    /* [n] */
} cmprec;

/* cmprec_new: an empty record (free with cmprec_free). bits/group/sym/desc_act are ignored for MASK. */
cmprec *cmprec_new(cmprec_kind kind, const char *method, int bits, int group, bool sym, bool desc_act);
/* cmprec_free: frees everything; NULL-safe; *r = NULL. */
void cmprec_free(cmprec **r);
/* cmprec_groups: ng = ceil(cols / group) of a QUANT record. */
int64_t cmprec_groups(const cmprec *r, int64_t cols);

/* cmprec_add_quant: add parameter `param` of m (as it is now: the written-back weights) with the
 * grid the method used: scale/zero [rows*ng] in m's backend memory; perm (host, [cols]) or NULL.
 * Each code is rint(W/scale) + zero and must dequantize to W bit for bit and lie in [0, 2^bits);
 * otherwise -1 with CIS_EINVAL naming the tensor, row and column (a grid that is not the one the
 * weights were written with). */
int cmprec_add_quant(cmprec *r, llama_model *m, int param, const float *scale_dev, const float *zero_dev,
                     const int32_t *perm, cis_err *err);
/* cmprec_add_raw: add parameter `param` of m verbatim (a raw entry: AWQ's folded norms). */
int cmprec_add_raw(cmprec *r, llama_model *m, int param, cis_err *err);
/* cmprec_add_masks: add the zero pattern of every decoder linear of m (MASK records). */
int cmprec_add_masks(cmprec *r, llama_model *m, cis_err *err);

/* cmprec_dequant: tensor t's weights from its codes into out[rows*cols]: scale * (code - zero),
 * the backend's formula. */
void cmprec_dequant(const cmprec *r, const cmprec_tensor *t, float *out);
/* cmprec_apply: re-apply r to m: a QUANT record overwrites each tensor with its dequantized codes
 * (the weights the stage wrote back, bit for bit); a MASK record sets each masked weight to zero;
 * a raw entry is written as it is.
 * *changed (may be NULL) gets the weights whose value changed. -1 with CIS_EINVAL when a tensor
 * is missing from m or has another shape (naming it). */
int cmprec_apply(const cmprec *r, llama_model *m, int64_t *changed, cis_err *err);

/* cmprec_encode: the file bytes (malloc'd into *buf, *len). */
void cmprec_encode(const cmprec *r, uint8_t **buf, size_t *len);
/* cmprec_decode: parse file bytes; `name` (the file) prefixes every message. -1 with CIS_EINVAL
 * naming the field (magic, version, kind, bits, group, n_tensors, tensor i's name / shape /
 * payload_len / codes / scale / zero / perm, the trailer, the checksum) on a truncated or corrupt
 * buffer. */
int cmprec_decode(const uint8_t *buf, size_t len, const char *name, cmprec **out, cis_err *err);

/* A written record, as the stage record's "cmp_record" names it. */
typedef struct cmprec_ref {
    char path[4096];     /* DIR/<sha256>.cisrec, DIR made absolute */
    char sha256[65];
    uint64_t bytes;
    double write_s;      /* encode + hash + write */
} cmprec_ref;
/* cmprec_write: encode r and write it atomically (temp file, fsync, rename) to
 * dir/<sha256 of the bytes>.cisrec (dir created when missing); an existing file of that name has
 * the same bytes and is kept. -1 with CIS_EIO naming the path. */
int cmprec_write(const cmprec *r, const char *dir, cmprec_ref *ref, cis_err *err);
/* cmprec_ref_json: {"format": "cisrec", "version", "path", "file" (the base name), "bytes",
 * "sha256", "kind", "tensors", "write_s"} (new reference). */
json_t *cmprec_ref_json(const cmprec *r, const cmprec_ref *ref);
/* cmprec_read: read and decode `path`; when sha256 is non-NULL the file's sha256 must equal it
 * (the stage record's reference). -1 with CIS_EIO (missing, unreadable) or CIS_EINVAL (corrupt,
 * or another file than the one referenced) naming the path. */
int cmprec_read(const char *path, const char *sha256, cmprec **out, cis_err *err);
/* cmprec_read_ref: the record a stage record's "cmp_record" object references (its path and
 * sha256). -1 with err naming the field when ref is not such an object. */
int cmprec_read_ref(json_t *ref, cmprec **out, cis_err *err);

/* cmprec_summary: what `cisweep inspect FILE.cisrec` prints (new reference): method, kind, bits,
 * group, sym, desc_act, numel, per tensor {name, rows, cols, bits (QUANT the record's, MASK 16),
 * zeros, sparsity, avg_bits} (for QUANT `zeros` counts the codes equal to their zero point: the
 * weights written back as 0), sparsity (all
 * tensors), avg_bits as the evaluation reports it (eval_bits.c: QUANT bits + 32/group per weight;
 * MASK 16 - 15*sparsity over the decoder linears) and stored_bits_per_weight (payload bits of the
 * file per weight, with scales and zero points). Raw entries are listed ("raw": true) but counted in
 * none of the totals (they are not decoder linears). */
json_t *cmprec_summary(const cmprec *r);

#endif
