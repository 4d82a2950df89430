/* The CPU backend's K-quant matmul with int8 activations (LLMRT_CPU_MATMUL_INT8 only): GGUF
 * Q4_K, Q5_K and Q6_K weights, read in place in their file layout (format/ggml_quants.h), times
 * activations quantised the way llama.cpp quantises them for these types ("q8_K"):
 *
 *   per token and 256-column block b: amax = max|x|, max = the x of largest |x| (first one),
 *   iscale = -127 / max, q = round-to-nearest-even(iscale * x) (at most 127), d_b = 1 / iscale,
 *   bsums[16 b + j] = sum of q over columns 16 j .. 16 j + 15 of the block (int16);
 *   an all-zero block has d_b = 0 and q = 0.
 *
 * Per block, the weight's integer part is dotted with q exactly in int32 (the weights' small
 * integers times q; the per-sub-block scales sc and mins m multiplied in as integers):
 *   Q4_K / Q5_K  S_b = sum_s sc[s] * dot(q_w[s], q[s])        M_b = sum_s m[s] * bsum32[s]
 *                w . x ~= sum_b (d * d_b) * S_b - (dmin * d_b) * M_b
 *   Q6_K         S_b = sum_j sc[j] * (dot(q6[j], q[j]) - 32 * bsums[j])   (j: 16 sub-blocks of
 *                16; q6 the unsigned 6-bit values)     w . x ~= sum_b (d * d_b) * S_b
 * and the blocks are accumulated in block order, in fp32, as
 *   acc = fmaf((float)S_b, d * d_b, acc); acc = fmaf((float)-M_b, dmin * d_b, acc)
 * (d, dmin the block's fp16 scales as fp32; each product rounded to fp32 once). Every ISA variant
 * computes exactly that, so they all give the same bits, and a token's result depends on no
 * other token of the batch nor on the thread count. The error against the exact fp32 path is
 * that of rounding x to int8 per 256 columns: |x - d_b q| <= |d_b| / 2. */
#ifndef LLMRT_BACKEND_CPU_KQ_Q8_KERNELS_H
#define LLMRT_BACKEND_CPU_KQ_Q8_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "../../format/dtype.h"

#define LLMRT_CPU_KQ8_BLOCK 256 /* columns per activation block (QK_K) */

/* Activations of M tokens quantised per 256-column block (q8_K). */
typedef struct llmrt_cpu_xq8k {
    int8_t *q;      /* [M, K] */
    float *d;       /* [M, K / 256] block scales */
    int16_t *bsums; /* [M, K / 16] sums of q per 16 columns */
    int64_t K;      /* a multiple of 256 */
} llmrt_cpu_xq8k;

/* True for the weight types these kernels take (Q4_K, Q5_K, Q6_K). */
bool llmrt_cpu_kq8_takes(llmrt_dtype t);

/* Q5_0 / Q5_1 (32-column blocks) under LLMRT_CPU_MATMUL_INT8 take the int8 activations of
 * i8_gemm.h (per 32 columns: q, d, s = d * sum q) and are read in place, u = the 5-bit value
 * (0..31), w = d * u + off with off = -16 d (Q5_0, exact) or m (Q5_1). Arithmetic, per row and
 * token: fp32 lanes L[p][l] (p = b % 2, l: columns 4l .. 4l + 3 of block b) and offset sums O[p],
 *   per block b in order: dp_l = sum of the 4 u * q (exact), L[p][l] = fmaf((float)dp_l,
 *   d * d_b, L[p][l]); O[p] = fmaf(off, s_b, O[p]);
 *   M_l = L[0][l] + L[1][l];
 *   out = (((M0 + M4) + (M2 + M6)) + ((M1 + M5) + (M3 + M7))) + (O[0] + O[1])
 * (the SIMD variants' lanes and reduction order), so every variant gives the same bits. Read in
 * place rather than repacked into i8_gemm.h's byte panels: a decode step streams the weights
 * from memory, and the panels would double the bytes of a 5-bit weight. */
struct llmrt_cpu_xq;

typedef struct llmrt_cpu_kq8_kernels {
    const char *isa; /* "avx512" (VNNI), "avx2", "generic" */
    /* x [M, ldx] (its first xq->K columns) -> xq rows 0..M-1 */
    void (*quantize)(llmrt_cpu_xq8k *xq, const float *x, int64_t ldx, int64_t M);
    /* out[t * ldo + r] = x_t . W[r] for tokens t < M of xq and rows r < n_rows <= 4 of W (type t,
     * rows of xq->K / 256 blocks at w + r * row_bytes) */
    void (*gemm)(llmrt_dtype type, float *out, int64_t ldo, const llmrt_cpu_xq8k *xq, int64_t M,
                 const uint8_t *w, int64_t row_bytes, int n_rows);
    /* Q5_0 / Q5_1: out[t * ldo + r] = x_t . W[r] for tokens t < M of xq (i8_gemm.h) and rows
     * r < n_rows <= 4 (xq->K / 32 blocks at w + r * row_bytes) */
    void (*q5_gemm)(llmrt_dtype type, float *out, int64_t ldo, const struct llmrt_cpu_xq *xq,
                    int64_t M, const uint8_t *w, int64_t row_bytes, int n_rows);
} llmrt_cpu_kq8_kernels;

/* The best variant this CPU runs for a kernel set's isa: "avx512" on a CPU with AVX512-VNNI,
 * else "avx2" when the set is avx512 or avx2, else the portable one. */
llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_for(const char *isa);
llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_generic(void);
llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_avx2(void);
llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_avx512(void);

#endif
