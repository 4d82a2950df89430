// rmsnorm_row.cuh: the inverse rms of one row summed exactly as rmsnorm.cu's add_rmsnorm_kernel
// sums it, for kernels that fold the RMSNorm into their input (fused_gemv.cu, q4_gemv.cu) and
// must produce the bits the unfused rmsnorm writes. That kernel runs a row with
// llmrt_row_threads(D) threads: thread i sums x[i]², x[i + n]², ... (one fma per term), a xor
// butterfly sums each warp, then the warps' sums are added in warp order. A CTA of any size (a
// multiple of 32) plays those logical threads in rounds of blockDim.x.
#ifndef LLMRT_RMSNORM_ROW_CUH
#define LLMRT_RMSNORM_ROW_CUH

#include <cstdint>

#include <cuda_runtime.h>

// Logical threads of rmsnorm.cu for a row of D (llmrt_row_threads, on the device): at most 256.
__device__ __forceinline__ int rmsnorm_row_threads(int64_t D) {
    const int64_t t = (D + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : t > 256 ? 256 : t);
}

// 1 / sqrt(mean(xr²) + eps) for the row xr [D]; every thread of the CTA gets the value.
// partial: shared memory of 8 floats (the logical warps). Contains __syncthreads: call it from
// every thread of the CTA.
__device__ __forceinline__ float rmsnorm_row_inv(const float *xr, int64_t D, float eps,
                                                 float *partial) {
    const int nt = rmsnorm_row_threads(D);
    for (int base = 0; base < nt; base += (int)blockDim.x) { // CTA-uniform rounds
        const int lt = base + (int)threadIdx.x;              // the logical thread
        float ss = 0.0f;
        if (lt < nt)
            for (int64_t i = lt; i < D; i += nt) {
                float v = xr[i];
                ss += v * v;
            }
        for (int o = 16; o > 0; o >>= 1)
            ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (lt % 32 == 0 && lt < nt) partial[lt / 32] = ss;
    }
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < nt / 32; w++)
        total += partial[w];
    __syncthreads(); // partial may be reused
    return 1.0f / sqrtf(total / (float)D + eps);
}

#endif // LLMRT_RMSNORM_ROW_CUH
