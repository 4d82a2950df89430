// test_ggml_speed.cu: kernel benchmark (printed, not asserted) of the GGUF block-type matmul
// (ggml_matmul.h) for each type against cuBLAS on fp16 weights (cublasGemmEx, fp32 accumulation),
// at the Llama-2-7B shapes N x K = 4096 x 4096, 11008 x 4096, 4096 x 11008 and M = 1, 8 (GEMV),
// 64, 512 (GEMM). Per case: median of 50 timed calls (CUDA events) after 5 warm-ups, the
// effective bandwidth (block bytes + x + out over the time) and the speedup over fp16. Compare
// with the modelled roofline (python/tools/ggml_decode_roofline.py). The internal Q8_Z (8-bit
// GPTQ) runs twice: plain, and act-order as the CUDA backend runs it (the column gather of x,
// gather_cols.h, into a scratch buffer, then the matmul; both in the time).
//
// On a GPU (ctest -L gpu, or run gpu_test_ggml_speed directly). Under cusim it runs one tiny shape
// per type (N = 128, K = 512, M = 1, 16) so the code path stays exercised; the times are
// meaningless there.
#include "../gather_cols.cu"
#include "../ggml_matmul.cu"

#include <algorithm>
#include <cublas_v2.h>

#include "bench_util.cuh"
#include "test_util.cuh"

namespace {

void bench(cublasHandle_t h, int t, int N, int K, int M, int reps, bool act_order = false) {
    Rng rng((unsigned long long)N * 31 + K * 7 + M + t);
    const uint64_t bytes = llmrt_cuda_ggml_bytes(t, N, K);
    // random blocks: the time does not depend on the values (no data-dependent branches), but
    // keep the fp16 scales finite so no NaN path is timed
    std::vector<uint8_t> w(bytes);
    for (auto &b : w)
        b = (uint8_t)(rng.next() & 0x3f);
    std::vector<__half> wh((size_t)N * K), xh((size_t)M * K);
    for (auto &v : wh)
        v = __float2half(rng.uniform(-0.05f, 0.05f));
    for (auto &v : xh)
        v = __float2half(rng.uniform(-1.0f, 1.0f));
    std::vector<int32_t> perm((size_t)K);
    for (int j = 0; j < K; j++)
        perm[(size_t)j] = j;
    for (int j = K - 1; j > 0; j--)
        std::swap(perm[(size_t)j], perm[(size_t)(rng.next() % (unsigned)(j + 1))]);
    int32_t *dperm = to_dev(perm);
    uint8_t *dq = to_dev(w);
    __half *dw = to_dev(wh), *dx = to_dev(xh), *dxg = dev_alloc<__half>((size_t)M * K);
    __half *dout = dev_alloc<__half>((size_t)M * N);
    const float one = 1.0f, zero = 0.0f;
    const float tq = time_us(
        [&] {
            if (act_order)
                CHECK(llmrt_cuda_gather_cols(nullptr, dxg, dx, LLMRT_CUDA_F16, M, K, dperm) == 0);
            CHECK(llmrt_cuda_ggml_matmul(nullptr, dout, LLMRT_CUDA_F16, act_order ? dxg : dx,
                                         LLMRT_CUDA_F16, M, dq, t, N, K, nullptr,
                                         LLMRT_CUDA_GGML_AUTO) == 0);
        },
        reps);
    const float tf = time_us(
        [&] {
            CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, dw, CUDA_R_16F, K, dx,
                               CUDA_R_16F, K, &zero, dout, CUDA_R_16F, N, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
        },
        reps);
    const double moved = (double)bytes + 2.0 * M * (K + N);
    printf("%s%s N=%-5d K=%-5d M=%-4d %s: %8.1f us (%6.0f GB/s)  cuBLAS fp16 %8.1f us  speedup "
           "%.2fx\n",
           llmrt_cuda_ggml_type_name(t), act_order ? " act-order" : "", N, K, M,
           M <= LLMRT_CUDA_GGML_GEMV_MAX_M ? "gemv" : "gemm", tq, moved / (tq * 1e3), tf, tf / tq);
    cudaFree(dperm);
    cudaFree(dxg);
    cudaFree(dq);
    cudaFree(dw);
    cudaFree(dx);
    cudaFree(dout);
}

} // namespace

int main() {
    cublasHandle_t h = bench_start();
    for (int t = 0; t < LLMRT_CUDA_GGML_N_TYPES; t++) {
        for (int act_order = 0; act_order <= (t == LLMRT_CUDA_GGML_Q8_Z); act_order++) {
#ifdef CUSIM
            for (int M : {1, 16})
                bench(h, t, 128, 512, M, 1, act_order);
#else
            const int shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
            for (const auto &s : shapes)
                for (int M : {1, 8, 64, 512})
                    bench(h, t, s[0], s[1], M, 50, act_order);
#endif
        }
    }
    cublasDestroy(h);
    return test_summary("test_ggml_speed");
}
