// test_q4_speed.cu: kernel benchmark (printed, not asserted) of the 4-bit matmul (q4_matmul.h)
// against cuBLAS on fp16 weights (cublasGemmEx, fp32 accumulation: what the backend's dequantised
// path runs), for the Llama-2-7B shapes N x K = 4096 x 4096, 11008 x 4096, 4096 x 11008 and
// M = 1, 8, 64, 512, group size 128. Per case: median of 50 timed calls (CUDA events) after 5
// warm-ups, the effective weight bandwidth of the 4-bit kernel and its speedup over fp16.
// Compare with python/tools/q4_roofline.py (bench/results/q4_cuda_kernels.md).
//
// On a GPU (ctest -L gpu, or run gpu_test_q4_speed directly). Under cusim it runs one tiny shape
// (N = 256, K = 256, M = 1, 8, 64) so the code path stays exercised; the times are meaningless there.
// Results also go to the file named by LLMRT_Q4_SPEED_JSON (one JSON object per line), if set.
#include "../q4_repack.cu"
#include "../q4_gemv.cu"
#include "../q4_gemm.cu"
#include "../q4_matmul.cu"

#include <algorithm>
#include <cublas_v2.h>

#include "test_util.cuh"

namespace {

struct Shape {
    int N, K;
};

float median_us(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return 1000.0f * v[v.size() / 2];
}

void bench(cublasHandle_t h, int N, int K, int M, int reps, FILE *json) {
    const int gs = 128;
    Rng rng((unsigned long long)N * 31 + K * 7 + M);
    // random 4-bit weight in the loader's format, repacked
    std::vector<uint8_t> qs((size_t)N * K / 2), zeros((size_t)N * (K / gs));
    std::vector<uint16_t> scales((size_t)N * (K / gs));
    for (auto &b : qs) b = (uint8_t)rng.next();
    for (auto &z : zeros) z = (uint8_t)rng.range(0, 15);
    for (auto &s : scales) s = 0x1c00; // 2^-8
    llmrt_cuda_q4_src src{};
    src.rows = N, src.cols = K, src.group_size = gs, src.zero_float = 0;
    src.qs = qs.data(), src.scales = scales.data(), src.zeros = zeros.data();
    const llmrt_cuda_q4_sizes sz = llmrt_cuda_q4_packed_sizes(N, K, gs, 0);
    std::vector<unsigned char> packed(sz.total);
    llmrt_cuda_q4_repack(&src, packed.data());
    unsigned char *dq = to_dev(packed);
    const llmrt_cuda_q4_weight w = llmrt_cuda_q4_view(dq, N, K, gs, 0, 0);
    // fp16 weight, x, outputs
    std::vector<__half> wh((size_t)N * K), xh((size_t)M * K);
    for (auto &v : wh) v = __float2half(rng.uniform(-0.05f, 0.05f));
    for (auto &v : xh) v = __float2half(rng.uniform(-1.0f, 1.0f));
    __half *dw = to_dev(wh), *dx = to_dev(xh);
    __half *dout = dev_alloc<__half>((size_t)M * N);
    const uint64_t ws_bytes = llmrt_cuda_q4_workspace_bytes(M, &w);
    void *ws = ws_bytes ? dev_alloc<unsigned char>(ws_bytes) : nullptr;
    CHECK(llmrt_cuda_q4_workspace_init(nullptr, ws, ws_bytes) == 0);

    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    const float one = 1.0f, zero = 0.0f;
    auto run_q4 = [&] {
        CHECK(llmrt_cuda_q4_matmul(nullptr, dout, LLMRT_CUDA_F16, dx, M, &w, nullptr, ws, ws_bytes,
                                   LLMRT_CUDA_Q4_AUTO) == 0);
    };
    auto run_f16 = [&] { // out[M, N] = x[M, K] · Wᵀ: column-major C[N, M] = Wᵀ(op T of [K, N]) · x
        CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, dw, CUDA_R_16F, K, dx, CUDA_R_16F, K,
                           &zero, dout, CUDA_R_16F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) ==
              CUBLAS_STATUS_SUCCESS);
    };
    float t[2];
    for (int which = 0; which < 2; which++) {
        for (int i = 0; i < 5; i++) which ? run_f16() : run_q4();
        std::vector<float> ms;
        for (int i = 0; i < reps; i++) {
            CUDA_OK(cudaEventRecord(e0));
            which ? run_f16() : run_q4();
            CUDA_OK(cudaEventRecord(e1));
            CUDA_OK(cudaEventSynchronize(e1));
            float v = 0;
            CUDA_OK(cudaEventElapsedTime(&v, e0, e1));
            ms.push_back(v);
        }
        t[which] = median_us(ms);
    }
    const double q4_bytes = (double)N * K / 2 + 2.0 * 2 * N * (K / gs) + 2.0 * M * (K + N);
    const char *kern = M <= LLMRT_CUDA_Q4_GEMV_MAX_M ? "gemv" : "gemm";
    printf("N=%-5d K=%-5d M=%-4d %s: q4 %8.1f us (%6.0f GB/s)  cuBLAS fp16 %8.1f us  speedup %.2fx\n", N, K, M,
           kern, t[0], q4_bytes / (t[0] * 1e3), t[1], t[1] / t[0]);
    if (json)
        fprintf(json, "{\"N\": %d, \"K\": %d, \"M\": %d, \"group_size\": %d, \"kernel\": \"%s\", \"q4_us\": %.2f, "
                      "\"f16_us\": %.2f, \"q4_gbps\": %.1f}\n",
                N, K, M, gs, kern, t[0], t[1], q4_bytes / (t[0] * 1e3));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(dq);
    cudaFree(dw);
    cudaFree(dx);
    cudaFree(dout);
    cudaFree(ws);
}

} // namespace

int main() {
    require_device();
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        printf("SKIP: cublasCreate failed\n");
        return 77;
    }
    const char *jpath = getenv("LLMRT_Q4_SPEED_JSON");
    FILE *json = jpath ? fopen(jpath, "w") : nullptr;
    cudaDeviceProp prop{};
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
#ifdef CUSIM
    for (int M : {1, 8, 64}) bench(h, 256, 256, M, 1, json);
#else
    const Shape shapes[] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    for (const Shape &s : shapes)
        for (int M : {1, 8, 64, 512}) bench(h, s.N, s.K, M, 50, json);
#endif
    if (json) fclose(json);
    cublasDestroy(h);
    return test_summary("test_q4_speed");
}
