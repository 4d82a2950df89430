// bench_util.cuh: what the kernel benchmarks against cuBLAS (test_q4_speed.cu,
// test_ggml_speed.cu) share: their start (device, cuBLAS handle) and their timing, the median
// over timed calls, each bracketed by CUDA events on the default stream, after warm-ups (first
// launches pay for module loading and cold caches). Under cusim the times are meaningless; the
// code paths still run.
#ifndef LLMRT_BENCH_UTIL_CUH
#define LLMRT_BENCH_UTIL_CUH

#include <algorithm>
#include <vector>

#include <cublas_v2.h>

#include "test_util.cuh"

// Skips (exit 77) without a device or a cuBLAS handle (the fp16 baseline), prints the device:
// the handle.
static inline cublasHandle_t bench_start() {
    require_device();
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        printf("SKIP: cublasCreate failed\n");
        exit(77);
    }
    cudaDeviceProp prop{};
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    return h;
}

// the median of v (ms) in us
static inline float median_us(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return 1000.0f * v[v.size() / 2];
}

// Times fn over reps calls after 5 warm-ups: the median in us.
template <class F> float time_us(F fn, int reps) {
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    for (int i = 0; i < 5; i++)
        fn();
    std::vector<float> ms;
    for (int i = 0; i < reps; i++) {
        CUDA_OK(cudaEventRecord(e0));
        fn();
        CUDA_OK(cudaEventRecord(e1));
        CUDA_OK(cudaEventSynchronize(e1));
        float v = 0;
        CUDA_OK(cudaEventElapsedTime(&v, e0, e1));
        ms.push_back(v);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return median_us(ms);
}

#endif
