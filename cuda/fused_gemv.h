/* fused_gemv.h: the decode (small-M) matmul of 16-bit / fp32 weights with the ops around it fused
 * in, so that a decode layer runs fewer kernels (cuda/fused_gemv.cu). One launch computes
 *
 *   in      = x                                    (ACT: activations)
 *           | round_t(w_norm * (x / rms(x)))       (RMSNORM: x the fp32 residual stream)
 *           | round_t(silu(gate) * up)             (SWIGLU)
 *   r_i     = round_t(in · W_iᵀ)   [+ bias: round_t(r_i + bias_i)]      for i < n_w (grouped)
 *   out_i   = r_i,  or  residual += (float) r_0    (the residual epilogue, n_w == 1)
 *
 * i.e. exactly the numbers of the unfused sequence (add_rmsnorm / swiglu kernel, matmul, bias
 * add, residual add): the prologues use the same expressions and, for the norm, the same
 * reduction order as rmsnorm.cu / swiglu.cu, and every rounding to t happens where the unfused
 * ops round. The dot products accumulate in fp32 in an order that depends on K only (never on M
 * or on the other weights of a group), so a row's result does not depend on the batch, and the
 * grouped launch gives the bits of separate ones. Plain C: no CUDA types.
 *
 * Taken: dtype t F16, BF16 or F32 for x / gate / up, the weights and the outputs; 1 <= M <= 8;
 * K a multiple of 16 / sizeof(t) (one 16-byte vector) with every row 16-byte aligned; 1..3
 * weights of the same K. llmrt_cuda_fused_gemv_check says why not, and the caller then runs the
 * unfused ops. Launchers follow llmrt_cuda.h: asynchronous on `stream`, allocate nothing. */
#ifndef LLMRT_CUDA_FUSED_GEMV_H
#define LLMRT_CUDA_FUSED_GEMV_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMRT_CUDA_FUSED_MAX_M 8 /* rows of x (decode: one per sequence)  */
#define LLMRT_CUDA_FUSED_MAX_W 3 /* weights sharing one input (q, k, v)   */

typedef enum llmrt_cuda_fused_input {
    LLMRT_CUDA_FUSED_IN_ACT = 0,     /* x [M, K] activations (dtype t)                          */
    LLMRT_CUDA_FUSED_IN_RMSNORM = 1, /* x fp32 [M, K] residual, norm_w fp32 [K], eps            */
    LLMRT_CUDA_FUSED_IN_SWIGLU = 2,  /* x = gate [M, K], up [M, K] (dtype t)                    */
} llmrt_cuda_fused_input;

typedef struct llmrt_cuda_fused_gemv_args {
    llmrt_cuda_dtype t; /* activations, weights and outputs                       */
    llmrt_cuda_fused_input input;
    const void *x;       /* [M, K]: see llmrt_cuda_fused_input                     */
    const void *up;      /* SWIGLU: [M, K]                                          */
    const float *norm_w; /* RMSNORM: [K]                                            */
    float eps;           /* RMSNORM                                                 */
    int32_t M;
    int64_t K;
    int32_t n_w;                               /* 1..LLMRT_CUDA_FUSED_MAX_W         */
    const void *w[LLMRT_CUDA_FUSED_MAX_W];     /* [N_i, K] dtype t                  */
    const float *bias[LLMRT_CUDA_FUSED_MAX_W]; /* [N_i] or NULL                     */
    int64_t N[LLMRT_CUDA_FUSED_MAX_W];
    void *out[LLMRT_CUDA_FUSED_MAX_W]; /* [M, N_i] dtype t (no residual)    */
    float *residual;                   /* NULL, or (n_w 1) fp32 [M, N_0] += r_0; out[0] unused  */
} llmrt_cuda_fused_gemv_args;

/* 0 when the kernel takes `a` (shapes, dtypes, alignment), else non-zero with the reason in
 * msg[cap] (msg may be NULL). Reads no device memory. */
int llmrt_cuda_fused_gemv_check(const llmrt_cuda_fused_gemv_args *a, char *msg, size_t cap);

/* Enqueues the fused matmul (one kernel launch); cudaErrorInvalidValue (1) and nothing launched
 * when llmrt_cuda_fused_gemv_check refuses `a`. */
int llmrt_cuda_fused_gemv(void *stream, const llmrt_cuda_fused_gemv_args *a);

#ifdef __cplusplus
}
#endif

#endif
