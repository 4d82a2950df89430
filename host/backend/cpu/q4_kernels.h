/* The CPU backend's 4-bit weights: the layout the internal format (model/q4.h) is repacked into
 * at load, and the per-ISA kernels over it.
 *
 * Layout of W [N rows, K columns] (K and group_size multiples of 32): rows in tiles of 4 (N
 * padded with zero rows), each tile one contiguous stream of G groups, each group
 *   16 bytes       fp16 scale s of rows 0..3, then fp16 zero term of rows 0..3: the integer zero
 *                  point z (INT, w = s*(q-z), z exact in fp16) or the offset m (FLOAT, w = s*q +
 * m); 64 bytes per 32-column block of the group: 16 bytes for each of rows 0..3. Byte 4p + L holds
 * column 4L + p in its low nibble and column 16 + 4L + p in its high nibble (L, p in 0..3). Why:
 * the 16 bytes broadcast to every 128-bit lane of a zmm leave dword p of lane L = bytes 4p..4p+3,
 * so one variable shift right by 8L (+4 for the high nibbles) puts column 4L + p's nibble into the
 * low 4 bits of dword 4L + p, which is all vpermps reads as its table index: no byte widening
 * shuffle (the AVX2 kernel does the same on two 128-bit lanes). A decode step reads each tile front
 * to back, one sequential stream for the hardware prefetcher, with the scales next to the nibbles
 * they scale. Bytes per weight: 0.5 + 4/gs. Columns are in stored order; with act-order (perm !=
 * NULL) the matmul gathers x[perm[j]] into column j first.
 *
 * Arithmetic: every weight is dequantised to fp32 by the source's reference formula, exactly as
 * llmrt_q4_dequant_row does (s*((float)q-(float)z) or s*q+m rounded twice), and the dot products
 * then run with the same accumulation order as the ISA's fp32 dot_tile (cpu_kernels.h). So an
 * output is bit-identical whether it comes from the fused small-T kernel (gemv), from dequant_rows
 * + dot_tile (prefill) or from the fp32 weights the loader would otherwise have produced: results
 * never depend on the batch, the thread count or the path. */
#ifndef LLMRT_BACKEND_CPU_Q4_KERNELS_H
#define LLMRT_BACKEND_CPU_Q4_KERNELS_H

#include <stdint.h>

#include "../../core/error.h"
#include "../../format/q4.h"

#define LLMRT_CPU_Q4_BLOCK 32 /* columns per nibble block */

/* Byte of a 16-byte row block holding the nibbles of columns c and c + 16 (c in 0..15). */
static inline int llmrt_cpu_q4_byte_of(int c) {
    return 4 * (c % 4) + c / 4;
}

typedef struct llmrt_cpu_q4 {
    int64_t rows;       /* N */
    int64_t cols;       /* K, a multiple of 32 */
    int32_t group_size; /* a multiple of 32 */
    int32_t n_groups;   /* G = K / group_size */
    llmrt_q4_zero_kind zero_kind;
    int64_t group_bytes; /* 16 + 64 * group_size / 32 */
    int64_t tile_bytes;  /* G * group_bytes: one tile of 4 rows */
    uint8_t *data;       /* [ceil(N/4)] tiles */
    int32_t *perm;       /* [K] act-order gather (-1: padding, reads 0), or NULL */
    int64_t x_cols;      /* input width (row stride of x): K, or less for a padded slice */
    void *mem;           /* one allocation holding data and perm */
    struct llmrt_cpu_i8w *i8; /* the int8 panels of LLMRT_CPU_MATMUL_INT8 (i8_gemm.h), or NULL */
} llmrt_cpu_q4;

/* Rows of W one gemv call produces at least when that many remain: one tile (a kernel set may
 * take more per call: gemv_rows). */
#define LLMRT_CPU_Q4_GEMV_N 4
/* Activation rows (tokens) one gemv call takes at most (the backend calls it per 4 tokens for
 * small batches and uses dequant_rows + dot_tile for large ones). */
#define LLMRT_CPU_Q4_GEMV_T 4

typedef struct llmrt_cpu_q4_kernels {
    const char *isa;
    /* rows one gemv / q8_gemv call takes at most: LLMRT_CPU_Q4_GEMV_N or a multiple of it (AVX2:
     * 8, two tiles, so that a single token's 8 independent FMA chains hide the FMA latency) */
    int gemv_rows;
    /* GGUF Q8_0 rows used in place (the lm_head / embedding table of GGUF files), blocks of 32:
     * fp16 d + 32 int8, w = d * q exactly as the loader's dequantisation.
     * out[k] = W[row][k] for all K; row points at the row's first block. */
    void (*q8_dequant_row)(float *out, const uint8_t *row, int64_t K);
    /* out[t * ldo + r] = dot(x[t * ldx .. +K], W[r]) for t < n_t <= GEMV_T, r < n_n <=
     * gemv_rows, rows at w + r * row_bytes; bit-identical to q8_dequant_row + dot_tile. NULL: none. */
    void (*q8_gemv)(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t, const uint8_t *w,
                    int64_t row_bytes, int n_n, int64_t K);
    /* out[r * K + k] = W[n0 + r][k] in fp32 for r < n_rows (all K columns). */
    void (*dequant_rows)(float *out, const llmrt_cpu_q4 *w, int64_t n0, int n_rows);
    /* out[t * ldo + r] = dot(x[t * ldx .. +K], W[n0 + r]) for t < n_t <= GEMV_T, r < n_n <=
     * gemv_rows, n0 a multiple of 4 (a tile), fused dequantisation; NULL when the ISA has none
     * (dequant_rows + dot_tile then). */
    void (*gemv)(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                 const llmrt_cpu_q4 *w, int64_t n0, int n_n);
} llmrt_cpu_q4_kernels;

/* The variant matching the fp32 kernels' isa ("avx512", "avx2", "generic"). */
llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_for(const char *isa);

llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_generic(void);
llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_avx2(void);
llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_avx512(void);

/* Validates `h` for this layout and repacks it into `*out` (which owns its memory afterwards).
 * Returns LLMRT_ERR_UNSUPPORTED (the caller may dequantise instead) for shapes the layout cannot
 * hold: K or group_size not a multiple of 32. */
llmrt_status llmrt_cpu_q4_pack(const llmrt_q4_host *h, llmrt_cpu_q4 *out, llmrt_error *err);
void llmrt_cpu_q4_free(llmrt_cpu_q4 *w);

#endif
