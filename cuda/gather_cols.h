/* gather_cols.h: the act-order gather of activations. A weight stored in act-order (GPTQ with
 * desc_act: stored column j holds input column perm[j]) multiplies x with its columns put in the
 * same order first: out[m, j] = x[m, perm[j]]. The CUDA backend runs it into a scratch buffer it
 * sized at reserve, then the block kernels (ggml_matmul.h) on the result.
 *
 * Launchers follow llmrt_cuda.h: asynchronous on `stream`, allocate nothing, never synchronise;
 * they return a cudaError_t as int (0 = success, cudaErrorInvalidValue (1) = an argument they do
 * not take: nothing launched). Plain C: no CUDA types. */
#ifndef LLMRT_CUDA_GATHER_COLS_H
#define LLMRT_CUDA_GATHER_COLS_H

#include <stdint.h>

#include "llmrt_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[m, j] = x[m, perm[j]] for m < M, j < K (out [M, K], x [M, K], elements of type t: F16, BF16
 * or F32, copied bit for bit); perm int32 [K] on the device, each in [0, K) (the caller checked
 * it: the kernel does not). 1 <= M <= 65535, 1 <= K <= INT32_MAX; out and x must not overlap. */
int llmrt_cuda_gather_cols(void *stream, void *out, const void *x, llmrt_cuda_dtype t, int64_t M,
                           int64_t K, const int32_t *perm);

#ifdef __cplusplus
}
#endif

#endif
