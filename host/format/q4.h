/* The one internal 4-bit weight format every 4-bit source loads into (GPTQ v1/v2, sym/asym,
 * act-order; GGUF Q4_0/Q4_1), on the host. Each backend repacks it at load into the layout its
 * kernels want (fragment order on the GPU).
 *
 * W has N rows (output features) and K columns (input features); out = x · Wᵀ as for every
 * weight. Columns are grouped in runs of `group_size` along K (G = K / group_size groups; a
 * GPTQ group_size of -1 becomes group_size = K). Per (row, group) there is one fp16 scale and one
 * zero term, and every source dequantises exactly by its own reference formula:
 *   zero_kind INT   (GPTQ sym/asym, GGUF Q4_0):  w = scale * (q - zero),  zero in 0..16 (u8;
 *                   the sources write 0..15: a GPTQ v1 word is read back word-wise, gptq.c)
 *   zero_kind FLOAT (GGUF Q4_1):                 w = scale * q + offset,  offset fp16
 * Act-order (GPTQ desc_act, a non-monotonic g_idx): the columns are stored permuted so every
 * group is contiguous: stored column j is original column perm[j] (perm = stable argsort of
 * g_idx), and the kernels read x[perm[j]] for column j. perm is NULL when the order is natural.
 * GGUF Q4_K does not map onto this format losslessly (its sub-block scales d*sc are fp32 products,
 * not fp16 values): it stays packed with the other K-quants (format/ggml_quants.h).
 * Padding (model/shard_slice.c): a row-parallel slice whose groups hold unequal numbers of its
 * columns (act-order, or a slice cutting groups) pads every group to one size with columns of
 * perm -1: the kernels read 0 for them, so they add nothing whatever their nibbles. */
#ifndef LLMRT_MODEL_Q4_H
#define LLMRT_MODEL_Q4_H

#include <stdint.h>

typedef enum llmrt_q4_zero_kind {
    LLMRT_Q4_ZERO_INT   = 0, /* w = s * (q - z) */
    LLMRT_Q4_ZERO_FLOAT = 1, /* w = s * q + m   */
} llmrt_q4_zero_kind;

typedef struct llmrt_q4_host {
    int64_t            rows;       /* N */
    int64_t            cols;       /* K, a multiple of group_size and of 2 */
    int32_t            group_size; /* columns per group; K for a single group */
    llmrt_q4_zero_kind zero_kind;
    const uint8_t     *qs;         /* [N, K/2] column 2c in the low nibble of byte c, 2c+1 high */
    const uint16_t    *scales;     /* [N, G] fp16 bits */
    const uint8_t     *zeros;      /* [N, G] integer zero points (ZERO_INT), else NULL */
    const uint16_t    *offsets;    /* [N, G] fp16 bits (ZERO_FLOAT), else NULL */
    const int32_t     *perm;       /* [K] act-order column permutation, or NULL */
    int64_t            x_cols;     /* input width: x is [T, x_cols]; 0 means K. A tensor-parallel
                                    * slice may be padded (x_cols < K): perm is then required,
                                    * and a -1 entry is a padding column, whose input is 0 */
} llmrt_q4_host;

/* Reference dequantisation of one row into out[K] (in stored column order), float32 math exactly
 * as each source's reference: (float)s * ((float)q - (float)z), or (float)s * (float)q + (float)m. */
void llmrt_q4_dequant_row(const llmrt_q4_host *w, int64_t row, float *out);

#endif
