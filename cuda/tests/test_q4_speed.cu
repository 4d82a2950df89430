// test_q4_speed.cu: kernel benchmark (printed, not asserted) of the 4-bit matmul (q4_matmul.h)
// against cuBLAS on fp16 weights (cublasGemmEx, fp32 accumulation: what the backend's dequantised
// path runs), for the Llama-2-7B shapes N x K = 4096 x 4096, 11008 x 4096, 4096 x 11008 and
// M = 1, 8, 16, 32, 64, 512 (16-64: the GEMM with its serial split-K reduction; the split count is
// printed), group size 128. Per case: median of 50 timed calls (CUDA events) after 5 warm-ups, the
// effective weight bandwidth of the 4-bit kernel and its speedup over fp16. Then the
// grouped fused decode launch (q, k, v: 3 x 4096 x 4096; gate, up: 2 x 11008 x 4096; M = 1, 8)
// against one fused launch per weight (bench_group).
// Compare with python/tools/q4_roofline.py (bench/results/q4_cuda_kernels.md).
//
// On a GPU (ctest -L gpu, or run gpu_test_q4_speed directly). Under cusim it runs one tiny shape
// (N = 256, K = 256, M = 1, 8, 64; K = 1024 at M = 16, split 4 ways; a group of 3) so the code path stays exercised; the times are
// meaningless there.
// Results also go to the file named by LLMRT_Q4_SPEED_JSON (one JSON object per line), if set.
#include "../q4_repack.cu"
#include "../q4_gemv.cu"
#include "../q4_gemm.cu"
#include "../q4_matmul.cu"

#include <cublas_v2.h>

#include "bench_util.cuh"
#include "test_util.cuh"

namespace {

struct Shape {
    int N, K;
};

// A random 4-bit weight [N, K] in the loader's format (group gs, integer zeros 0..15, scales
// 2^-8), repacked and copied to the device: its packed bytes, for llmrt_cuda_q4_view.
unsigned char *random_q4_to_dev(Rng &rng, int N, int K, int gs) {
    std::vector<uint8_t> qs((size_t)N * K / 2), zeros((size_t)N * (K / gs));
    std::vector<uint16_t> scales((size_t)N * (K / gs), 0x1c00); // 2^-8
    for (auto &b : qs) b = (uint8_t)rng.next();
    for (auto &z : zeros) z = (uint8_t)rng.range(0, 15);
    llmrt_cuda_q4_src src{};
    src.rows = N, src.cols = K, src.group_size = gs, src.zero_float = 0;
    src.qs = qs.data(), src.scales = scales.data(), src.zeros = zeros.data();
    std::vector<unsigned char> packed(llmrt_cuda_q4_packed_sizes(N, K, gs, 0).total);
    llmrt_cuda_q4_repack(&src, packed.data());
    return to_dev(packed);
}

void bench(cublasHandle_t h, int N, int K, int M, int reps, FILE *json) {
    const int gs = 128;
    Rng rng((unsigned long long)N * 31 + K * 7 + M);
    unsigned char *dq = random_q4_to_dev(rng, N, K, gs);
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
    const float t[2] = {time_us(run_q4, reps), time_us(run_f16, reps)}; // q4 first (left to right)
    const double q4_bytes = (double)N * K / 2 + 2.0 * 2 * N * (K / gs) + 2.0 * M * (K + N);
    const bool gemv = M <= LLMRT_CUDA_Q4_GEMV_MAX_M;
    const char *kern = gemv ? "gemv" : "gemm";
    // the GEMM's K splits (its serial in-place split-K reduction when > 1)
    const int splits = gemv ? 0 : q4::gemm_plan(M, N, K, q4::mm::sm_count()).splits;
    printf("N=%-5d K=%-5d M=%-4d %s splits %-2d: q4 %8.1f us (%6.0f GB/s)  cuBLAS fp16 %8.1f us  speedup %.2fx\n",
           N, K, M, kern, splits, t[0], q4_bytes / (t[0] * 1e3), t[1], t[1] / t[0]);
    if (json)
        fprintf(json, "{\"N\": %d, \"K\": %d, \"M\": %d, \"group_size\": %d, \"kernel\": \"%s\", \"splits\": %d, "
                      "\"q4_us\": %.2f, \"f16_us\": %.2f, \"q4_gbps\": %.1f}\n",
                N, K, M, gs, kern, splits, t[0], t[1], q4_bytes / (t[0] * 1e3));
    cudaFree(dq);
    cudaFree(dw);
    cudaFree(dx);
    cudaFree(dout);
    cudaFree(ws);
}

// One grouped fused launch (llmrt_cuda_q4_matmul_fused, n_w weights of one x: q, k, v or gate,
// up) against the same weights in n_w fused launches of one weight each (before the grouping):
// median of `reps` timed calls of each (CUDA events) after 5 warm-ups. The outputs are the same
// bits (test_q4_matmul.cu); only the launches differ.
void bench_group(const char *name, int n_w, int N, int K, int M, int reps, FILE *json) {
    const int gs = 128;
    Rng rng((unsigned long long)N * 17 + K * 5 + M + n_w);
    std::vector<unsigned char *> dq(n_w);
    std::vector<__half *> dout(n_w);
    llmrt_cuda_q4_weight w[LLMRT_CUDA_FUSED_MAX_W];
    llmrt_cuda_q4_fused f{};
    f.input = LLMRT_CUDA_FUSED_IN_ACT;
    f.n_w = n_w;
    for (int i = 0; i < n_w; i++) {
        dq[i] = random_q4_to_dev(rng, N, K, gs);
        w[i] = llmrt_cuda_q4_view(dq[i], N, K, gs, 0, 0);
        dout[i] = dev_alloc<__half>((size_t)M * N);
        f.w[i] = &w[i];
        f.out[i] = dout[i];
    }
    std::vector<__half> xh((size_t)M * K);
    for (auto &v : xh) v = __float2half(rng.uniform(-1.0f, 1.0f));
    __half *dx = to_dev(xh);
    f.x = dx;
    const uint64_t ws_bytes = llmrt_cuda_q4_fused_workspace_bytes(M, n_w, f.w);
    void *ws = ws_bytes ? dev_alloc<unsigned char>(ws_bytes) : nullptr;
    CHECK(llmrt_cuda_q4_workspace_init(nullptr, ws, ws_bytes) == 0);
    auto grouped = [&] { CHECK(llmrt_cuda_q4_matmul_fused(nullptr, M, &f, ws, ws_bytes) == 0); };
    auto separate = [&] {
        for (int i = 0; i < n_w; i++) {
            llmrt_cuda_q4_fused one = f;
            one.n_w = 1;
            one.w[0] = f.w[i];
            one.out[0] = f.out[i];
            CHECK(llmrt_cuda_q4_matmul_fused(nullptr, M, &one, ws, ws_bytes) == 0);
        }
    };
    const float t[2] = {time_us(grouped, reps), time_us(separate, reps)}; // grouped first
    const double bytes = n_w * ((double)N * K / 2 + 2.0 * 2 * N * (K / gs) + 2.0 * M * N) + 2.0 * M * K;
    printf("group %-6s %d x N=%-5d K=%-5d M=%-2d: grouped %8.1f us (%6.0f GB/s, 1 launch)  separate %8.1f us "
           "(%d launches)  speedup %.2fx\n",
           name, n_w, N, K, M, t[0], bytes / (t[0] * 1e3), t[1], n_w, t[1] / t[0]);
    if (json)
        fprintf(json, "{\"group\": \"%s\", \"n_w\": %d, \"N\": %d, \"K\": %d, \"M\": %d, \"group_size\": %d, "
                      "\"grouped_us\": %.2f, \"separate_us\": %.2f, \"grouped_gbps\": %.1f}\n",
                name, n_w, N, K, M, gs, t[0], t[1], bytes / (t[0] * 1e3));
    for (int i = 0; i < n_w; i++) {
        cudaFree(dq[i]);
        cudaFree(dout[i]);
    }
    cudaFree(dx);
    cudaFree(ws);
}

} // namespace

int main() {
    cublasHandle_t h = bench_start();
    const char *jpath = getenv("LLMRT_Q4_SPEED_JSON");
    FILE *json = jpath ? fopen(jpath, "w") : nullptr;
#ifdef CUSIM
    for (int M : {1, 8, 64}) bench(h, 256, 256, M, 1, json);
    bench(h, 256, 1024, 16, 1, json); // a GEMM that splits K (4 splits)
    bench_group("qkv", 3, 256, 256, 1, 1, json);
#else
    const Shape shapes[] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    for (const Shape &s : shapes)
        for (int M : {1, 8, 16, 32, 64, 512}) bench(h, s.N, s.K, M, 50, json);
    for (int M : {1, 8}) { // a Llama-2-7B layer's q, k, v and gate, up
        bench_group("qkv", 3, 4096, 4096, M, 50, json);
        bench_group("gateup", 2, 11008, 4096, M, 50, json);
    }
#endif
    if (json) fclose(json);
    cublasDestroy(h);
    return test_summary("test_q4_speed");
}
