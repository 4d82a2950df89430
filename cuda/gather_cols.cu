// gather_cols.cu: out[m, j] = x[m, perm[j]] (gather_cols.h). One element per thread: x's row is
// read at scattered columns, but a row (a few thousand elements of one token) is in L2 after its
// first touches, and out is written coalesced; next to the weight bytes a decode matmul streams,
// the gather moves 2·M·K·(element size) bytes (M·K·4 for the perm reads, shared by all rows).
#include <cuda_runtime.h>

#include "gather_cols.h"
#include "launch.cuh"

namespace {

constexpr int kGatherThreads = 256;

// Elements are copied as raw bits of their size E (2: fp16 / bf16, 4: fp32).
template <class E>
__global__ void __launch_bounds__(kGatherThreads)
    gather_cols_kernel(E *__restrict__ out,              // [M, K]
                       const E *__restrict__ x,          // [M, K]
                       const int32_t *__restrict__ perm, // [K], each in [0, K)
                       int K) {
    const int j = blockIdx.x * kGatherThreads + threadIdx.x;
    if (j >= K) return;
    const size_t row = (size_t)blockIdx.y * (size_t)K;
    out[row + (size_t)j] = x[row + (size_t)perm[j]];
}

} // namespace

extern "C" int llmrt_cuda_gather_cols(void *stream, void *out, const void *x, llmrt_cuda_dtype t,
                                      int64_t M, int64_t K, const int32_t *perm) {
    if (!out || !x || !perm || M < 1 || M > 65535 || K < 1 || K > INT32_MAX ||
        (t != LLMRT_CUDA_F16 && t != LLMRT_CUDA_BF16 && t != LLMRT_CUDA_F32))
        return (int)cudaErrorInvalidValue;
    const dim3 grid((unsigned)((K + kGatherThreads - 1) / kGatherThreads), (unsigned)M);
    cudaStream_t s = (cudaStream_t)stream;
    if (t == LLMRT_CUDA_F32)
        LAUNCH((gather_cols_kernel<uint32_t>), grid, kGatherThreads, 0, s,
               static_cast<uint32_t *>(out), static_cast<const uint32_t *>(x), perm, (int)K);
    else
        LAUNCH((gather_cols_kernel<uint16_t>), grid, kGatherThreads, 0, s,
               static_cast<uint16_t *>(out), static_cast<const uint16_t *>(x), perm, (int)K);
    return (int)cudaGetLastError();
}
