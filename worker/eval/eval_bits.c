/* eval_bits.c - "Average bits" (paper.md §3.1) over the decoder linear layers (q, k, v, o, gate,
 * up, down of every layer): quantized models wbits + (16 + 16)/group_size (scale and zero per
 * group); otherwise zeros cost 1 bit and non-zeros 16, i.e. 16 - 15*sparsity (uncompressed 16). */
#include "worker/eval/eval.h"

#include <string.h>

static bool is_decoder_linear(const char *name) {
    static const char *sfx[7] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                 "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                                 "mlp.down_proj.weight"};
    if (!str_starts(name, "model.layers.")) return false;
    for (int i = 0; i < 7; i++) if (str_ends(name, sfx[i])) return true;
    return false;
}

double eval_avg_bits(llama_model *m, const quant_info *q, double *sparsity) {
    int np = 0;
    llama_param *p = llama_model_params(m, &np);
    double total = 0, zeros = 0, qbits = 0;
    for (int i = 0; i < np; i++) {
        if (!is_decoder_linear(p[i].name)) continue;
        int64_t rows = p[i].shape[0], cols = p[i].shape[1], cnt = rows * cols;
        const float *w = (const float *)p[i].data;
        int64_t z = 0;
        for (int64_t k = 0; k < cnt; k++) z += w[k] == 0.0f;
        zeros += (double)z;
        total += (double)cnt;
        if (q && q->wbits > 0) {
            double g = q->group_size > 0 ? q->group_size : (double)cols;
            qbits += (double)cnt * (q->wbits + 32.0 / g);
        }
    }
    if (sparsity) *sparsity = total > 0 ? zeros / total : 0;
    if (total == 0) return 16;
    if (q && q->wbits > 0) return qbits / total;
    return (zeros * 1 + (total - zeros) * 16) / total;
}
