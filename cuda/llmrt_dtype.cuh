// llmrt_dtype.cuh: element types of the CUDA backend's kernels (fp32, fp16, bf16) and the closed
// dispatch from llmrt_cuda_dtype (llmrt_cuda.h) to a C++ type. Shared by the kernel files.
#ifndef LLMRT_DTYPE_CUH
#define LLMRT_DTYPE_CUH

#include <cstdint>

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "launch.cuh"
#include "llmrt_cuda.h"

__host__ __device__ __forceinline__ float llmrt_to_f32(float x) { return x; }
__host__ __device__ __forceinline__ float llmrt_to_f32(__half x) { return __half2float(x); }
__host__ __device__ __forceinline__ float llmrt_to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> __host__ __device__ __forceinline__ T llmrt_from_f32(float x);
template <> __host__ __device__ __forceinline__ float llmrt_from_f32<float>(float x) { return x; }
template <> __host__ __device__ __forceinline__ __half llmrt_from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __host__ __device__ __forceinline__ __nv_bfloat16 llmrt_from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// `#pragma unroll` for nvcc only (g++ under cusim does not know it; -Wall warns).
#ifdef CUSIM
#define LLMRT_UNROLL
#else
#define LLMRT_UNROLL _Pragma("unroll")
#endif

// Sum of v over the 32 lanes of a full warp (xor butterfly: every lane gets the same value).
__device__ __forceinline__ float llmrt_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Runs BODY with `T` bound to the C++ type of dtype `dt`; an unknown dtype returns
// cudaErrorInvalidValue from the enclosing launcher (closed dispatch: nothing is launched).
#define LLMRT_DISPATCH(dt, T, ...)                       \
  switch (dt) {                                          \
    case LLMRT_CUDA_F32: {                               \
      typedef float T;                                   \
      __VA_ARGS__;                                       \
      break;                                             \
    }                                                    \
    case LLMRT_CUDA_F16: {                               \
      typedef __half T;                                  \
      __VA_ARGS__;                                       \
      break;                                             \
    }                                                    \
    case LLMRT_CUDA_BF16: {                              \
      typedef __nv_bfloat16 T;                           \
      __VA_ARGS__;                                       \
      break;                                             \
    }                                                    \
    default: return (int)cudaErrorInvalidValue;          \
  }

// Threads per block of the row-wise kernels: whole warps, at most 256, no more than needed.
static inline int llmrt_row_threads(int64_t cols) {
  int64_t t = (cols + 31) / 32 * 32;
  return (int)(t < 32 ? 32 : t > 256 ? 256 : t);
}

// Blocks of `threads` for a grid-stride loop over n elements (capped: each thread loops).
static inline unsigned llmrt_flat_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 1 ? 1 : b > 4096 ? 4096 : b);
}

#endif  // LLMRT_DTYPE_CUH
