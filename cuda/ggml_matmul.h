/* ggml_matmul.h: CUDA kernels for GGUF's block-quantised weights, kept on the device exactly as the
 * file stores them: Q8_0, Q5_0, Q5_1 and the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (Q4_0 / Q4_1
 * load losslessly into the internal 4-bit format and run on the q4 kernels, q4_matmul.h); and the
 * internal Q8_Z block (8-bit GPTQ with zero points, llmrt dtype.h), which the same templates run.
 * An act-order weight (stored column j = input column perm[j]) runs these kernels on x gathered
 * into stored column order first (llmrt_cuda_gather_cols, gather_cols.h).
 *
 * Device layout: W [N, K] is N rows of K / E blocks (E = 32 or 256 elements, B bytes each), the
 * rows back to back: the GGUF tensor data, byte for byte (no repack, no alignment: a block is
 * read with byte loads; Q8_Z's 36-byte blocks are 4-byte aligned and read in words, so its
 * device copy must start 4-byte aligned, as every cudaMalloc does). The block layouts and the
 * dequantisation of each type follow llama.cpp's dequantize_row_* (the CPU reference:
 * host/format/ggml_quants.h); ggml_blocks.cuh holds the device version, one function per type
 * that dequantises 16 consecutive elements of a block.
 *
 * Kernels (ggml_matmul.cu, one template per type):
 *   GEMV, M <= 8 rows of x (decode): one warp per weight row, the lanes stride over the row's
 *        16-element pieces, dequantise each into fp32 registers and multiply with the x rows
 *        (fp32 accumulation, exactly the reference weights).
 *   GEMM, M > 8 (prefill): a CTA computes a (16·MT) x 64 tile of out; per 32-deep k step it stages
 *        x and the weight tile dequantised to the activation type in shared memory and runs
 *        mma.m16n8k16 (ptx_ops.cuh) with fp32 accumulators. The weights are rounded once to
 *        fp16 (bf16 with bf16 activations).
 * Activations (x, and out unless fp32): fp16 or bf16.
 *   embed: rows of the table (a quantised token_embd) dequantised to fp32.
 *
 * Launchers follow llmrt_cuda.h: asynchronous on `stream`, allocate nothing, never synchronise,
 * need no workspace; they return a cudaError_t as int (0 = success, cudaErrorInvalidValue (1) = a
 * type, shape or dtype they do not take: nothing launched). Plain C: no CUDA types. */
#ifndef LLMRT_CUDA_GGML_MATMUL_H
#define LLMRT_CUDA_GGML_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmrt_cuda_ggml_type {
    LLMRT_CUDA_GGML_Q8_0 = 0, /*  34 B / 32:  fp16 d | i8 q[32]                     w = d*q */
    LLMRT_CUDA_GGML_Q5_0 = 1, /*  22 B / 32:  fp16 d | u32 qh | u8 qs[16]           w = d*(q-16) */
    LLMRT_CUDA_GGML_Q5_1 = 2, /*  24 B / 32:  fp16 d | fp16 m | u32 qh | u8 qs[16]  w = d*q + m */
    LLMRT_CUDA_GGML_Q2_K = 3, /*  84 B / 256 */
    LLMRT_CUDA_GGML_Q3_K = 4, /* 110 B / 256 */
    LLMRT_CUDA_GGML_Q4_K = 5, /* 144 B / 256 */
    LLMRT_CUDA_GGML_Q5_K = 6, /* 176 B / 256 */
    LLMRT_CUDA_GGML_Q6_K = 7, /* 210 B / 256 */
    LLMRT_CUDA_GGML_Q8_Z = 8, /*  36 B / 32:  fp16 d | u8 z | u8 0 | u8 q[32]       w = d*(q-z) */
    LLMRT_CUDA_GGML_N_TYPES = 9
} llmrt_cuda_ggml_type;

/* Elements and bytes of one block of `t`; 0 for a value outside the enum. */
int32_t llmrt_cuda_ggml_block_elems(int t);
int32_t llmrt_cuda_ggml_block_bytes(int t);
const char *llmrt_cuda_ggml_type_name(int t);

/* 0 when the kernels take W [N, K] of type t (1 <= N <= 65535 * 64, 1 <= K <= INT32_MAX, K a
 * whole number of blocks), else non-zero with a message naming what is wrong in msg (cap; msg
 * may be NULL). */
int llmrt_cuda_ggml_check(int t, int64_t N, int64_t K, char *msg, size_t cap);

/* Bytes of W [N, K] of type t (0 when llmrt_cuda_ggml_check refuses it). */
uint64_t llmrt_cuda_ggml_bytes(int t, int64_t N, int64_t K);

/* Kernel choice (for tests and benchmarks; the backend passes AUTO). */
typedef enum llmrt_cuda_ggml_path {
    LLMRT_CUDA_GGML_AUTO = 0, /* GEMV for M <= LLMRT_CUDA_GGML_GEMV_MAX_M, else the GEMM */
    LLMRT_CUDA_GGML_GEMV = 1, /* M <= 8 only */
    LLMRT_CUDA_GGML_GEMM = 2,
} llmrt_cuda_ggml_path;
#define LLMRT_CUDA_GGML_GEMV_MAX_M 8

/* out[M, N] (out_t: x_t or F32) = x[M, K] (x_t: F16 or BF16) · Wᵀ (+ bias[N] fp32 when not
 * NULL), fp32 accumulation; 1 <= M <= 65535; w: the device copy of the GGUF blocks (layout
 * above). */
int llmrt_cuda_ggml_matmul(void *stream, void *out, llmrt_cuda_dtype out_t, const void *x,
                           llmrt_cuda_dtype x_t, int64_t M, const void *w, int t, int64_t N,
                           int64_t K, const float *bias, llmrt_cuda_ggml_path path);

/* out[i, :] (fp32 [n_tokens, D]) = row tokens[i] of the table (type t, [V, D] blocks), tokens on
 * the device, each in [0, V). */
int llmrt_cuda_ggml_embed(void *stream, float *out, const void *table, int t, const int32_t *tokens,
                          int32_t n_tokens, int64_t D);

#ifdef __cplusplus
}
#endif

#endif
