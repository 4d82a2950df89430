// test_ggml_matmul.cu: the GGUF block-type kernels (ggml_matmul.h: GEMV, tensor-core GEMM,
// embedding gather) against fp64 references on the weights dequantised by the loader's CPU
// reference (host/format/ggml_quants.c, llama.cpp's dequantize_row_*), fed the same fp16 x.
// Runs under cusim (ctest -L cusim) and on a GPU (ctest -L gpu).
//
// Every type (Q8_0, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the internal 8-bit GPTQ block
// Q8_Z, whose zero points are random bytes 0..255) over irregular shapes: N = 72 and
// 200 (not multiples of the GEMM's 64-column tile; 200 also leaves a GEMV CTA with idle warps),
// K = 1, 2 and 3 blocks (96 / 160 columns for the 32-element types: odd numbers of 32-deep k
// steps), M = 1, 3, 8 (GEMV), 9, 33, 70 (GEMM: 1, 2 and 4 m16 tiles per CTA, partial tiles, two M
// tiles), the GEMM forced at M = 1 and 8; fp16 and fp32 output, bias on/off; bf16 activations
// (M = 2, 7: GEMV; 12, 40: GEMM; bf16 and fp32 output); the embedding gather of chosen rows;
// argument errors; the act-order gather (gather_cols.h) bit for bit against the host gather.
//
// Tolerances, the same for every type because the error sources are the same:
//   GEMV: the weights are the reference's fp32 values (same formula, same rounding order; nvcc may
//         contract d1*q - m1 into an fma), fp32 accumulation in another order: fp32 output within
//         max|out − ref| <= 1e-5 · max|ref|; fp16 output adds the final rounding (2^-11 relative).
//   GEMM: each dequantised weight is rounded once to fp16 (2^-12 relative), then fp32 mma
//         accumulation: mean|out − ref| / mean|ref| <= 1e-3 and max|out − ref| <= 2e-3 · max|ref|
//         (test_q4_matmul's criterion).
//   bf16 activations (the reference gets the same bf16 x): GEMV with bf16 output 4e-3 (its final
//         rounding, 2^-8 relative); GEMM: the weights rounded to bf16 (2^-9 relative, 8x fp16's):
//         8x the fp16 bounds, mean 8e-3 and max 1.6e-2.
//   embed: max|out − ref| <= 1e-6 · max|ref| per row (exactly equal under cusim).
// The test also corrupts one scale byte (Q8_Z: its zero-point byte) on the device and checks that
// the comparison then fails.
#include "../gather_cols.cu"
#include "../ggml_matmul.cu"

extern "C" {
#include "../../host/format/ggml_quants.h"
}
#include "../../host/format/ggml_quants.c"

#include <algorithm>
#include <chrono>

#include "test_util.cuh"

namespace {

struct Lcg {
    uint64_t s;
    explicit Lcg(uint64_t seed) : s(seed) {}
    uint32_t next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return (uint32_t)(s >> 33);
    }
    float uniform(float lo, float hi) {
        return lo + (hi - lo) * (float)(next() & 0xffffff) / 16777216.0f;
    }
};

uint16_t f16_bits(float v) {
    __half h = __float2half_rn(v);
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

// The 16-bit activation of value v in fp16 or bf16, and back.
uint16_t act_bits(float v, bool bf16) {
    if (!bf16) return f16_bits(v);
    __nv_bfloat16 h = __float2bfloat16_rn(v);
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
float act_val(uint16_t u, bool bf16) {
    if (!bf16) return llmrt_f16_to_f32(u);
    const uint32_t f = (uint32_t)u << 16;
    float v;
    memcpy(&v, &f, 4);
    return v;
}

llmrt_dtype host_dtype(int t) {
    static const llmrt_dtype map[] = {LLMRT_DTYPE_Q8_0, LLMRT_DTYPE_Q5_0, LLMRT_DTYPE_Q5_1,
                                      LLMRT_DTYPE_Q2_K, LLMRT_DTYPE_Q3_K, LLMRT_DTYPE_Q4_K,
                                      LLMRT_DTYPE_Q5_K, LLMRT_DTYPE_Q6_K, LLMRT_DTYPE_Q8_Z};
    static_assert(sizeof map / sizeof map[0] == LLMRT_CUDA_GGML_N_TYPES, "one dtype per type");
    return map[t];
}

// Random blocks with sane fp16 scales: random bytes, then each block's d (and dmin / m) set to a
// value that keeps |w| around 0.01 .. 1.
std::vector<uint8_t> make_blocks(Lcg &rng, int t, int64_t N, int64_t K) {
    const int E = llmrt_cuda_ggml_block_elems(t), B = llmrt_cuda_ggml_block_bytes(t);
    std::vector<uint8_t> w((size_t)(N * (K / E) * B));
    for (auto &b : w)
        b = (uint8_t)(rng.next() & 0xff);
    for (size_t at = 0; at < w.size(); at += (size_t)B) {
        uint8_t *b = &w[at];
        auto put = [&](int off, float v) {
            const uint16_t u = f16_bits(v);
            memcpy(b + off, &u, 2);
        };
        switch (t) {
        case LLMRT_CUDA_GGML_Q8_0:
            put(0, rng.uniform(0.001f, 0.01f));
            break;
        case LLMRT_CUDA_GGML_Q5_0:
            put(0, rng.uniform(0.005f, 0.05f));
            break;
        case LLMRT_CUDA_GGML_Q5_1:
            put(0, rng.uniform(0.005f, 0.05f)), put(2, rng.uniform(-0.5f, 0.1f));
            break;
        case LLMRT_CUDA_GGML_Q2_K:
            put(80, rng.uniform(0.005f, 0.05f)), put(82, rng.uniform(0.001f, 0.02f));
            break;
        case LLMRT_CUDA_GGML_Q3_K:
            put(108, rng.uniform(0.0005f, 0.005f));
            break;
        case LLMRT_CUDA_GGML_Q4_K:
        case LLMRT_CUDA_GGML_Q5_K:
            put(0, rng.uniform(0.0005f, 0.002f)), put(2, rng.uniform(0.0005f, 0.005f));
            break;
        case LLMRT_CUDA_GGML_Q6_K:
            put(208, rng.uniform(0.0001f, 0.001f));
            break;
        case LLMRT_CUDA_GGML_Q8_Z: // byte 2: the zero point (kept random), byte 3: 0
            put(0, rng.uniform(0.0005f, 0.004f)), b[3] = 0;
            break;
        }
    }
    return w;
}

std::vector<float> dequant(int t, const std::vector<uint8_t> &w, int64_t N, int64_t K) {
    std::vector<float> out((size_t)(N * K));
    const size_t row =
        (size_t)(K / llmrt_cuda_ggml_block_elems(t) * llmrt_cuda_ggml_block_bytes(t));
    for (int64_t n = 0; n < N; n++)
        llmrt_ggml_dequant_row(host_dtype(t), &w[(size_t)n * row], &out[(size_t)(n * K)], K);
    return out;
}

struct Err {
    double mean_rel, max_rel;
};

// out (the activation type or fp32 on the device) vs fp64 x · dequant(W)ᵀ (+ bias).
Err compare(const std::vector<float> &wf, const std::vector<uint16_t> &x,
            const std::vector<float> &bias, const void *dout, bool out_f32, bool bf16, int M,
            int64_t N, int64_t K) {
    std::vector<float> got((size_t)(M * N));
    if (out_f32) {
        CUDA_OK(cudaMemcpy(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost));
    } else {
        std::vector<uint16_t> h((size_t)(M * N));
        CUDA_OK(cudaMemcpy(h.data(), dout, h.size() * 2, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < h.size(); i++)
            got[i] = act_val(h[i], bf16);
    }
    double sum_err = 0, sum_ref = 0, max_err = 0, max_ref = 0;
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double r = bias.empty() ? 0.0 : bias[(size_t)n];
            for (int64_t k = 0; k < K; k++)
                r +=
                    (double)act_val(x[(size_t)(m * K + k)], bf16) * (double)wf[(size_t)(n * K + k)];
            const double e = fabs((double)got[(size_t)(m * N + n)] - r);
            sum_err += e, sum_ref += fabs(r);
            max_err = std::max(max_err, e), max_ref = std::max(max_ref, fabs(r));
        }
    return {sum_err / std::max(sum_ref, 1e-30), max_err / std::max(max_ref, 1e-30)};
}

double g_worst_gemv = 0, g_worst_gemm_mean[2] = {0, 0}, g_worst_gemm_max[2] = {0, 0};

// One matmul (fp16 activations, or bf16); returns whether it met its tolerance.
bool run(int t, const std::vector<uint8_t> &w, const std::vector<float> &wf, const void *dw,
         int64_t N, int64_t K, int M, llmrt_cuda_ggml_path path, bool out_f32, bool with_bias,
         Lcg &rng, bool expect_pass, bool bf16 = false) {
    std::vector<uint16_t> x((size_t)(M * K));
    for (auto &v : x)
        v = act_bits(rng.uniform(-1.0f, 1.0f), bf16);
    std::vector<float> bias;
    if (with_bias)
        for (int64_t n = 0; n < N; n++)
            bias.push_back(rng.uniform(-0.5f, 0.5f));
    uint16_t *dx = to_dev(x);
    float *dbias = with_bias ? to_dev(bias) : nullptr;
    void *dout = dev_alloc<float>((size_t)(M * N));
    const llmrt_cuda_dtype act = bf16 ? LLMRT_CUDA_BF16 : LLMRT_CUDA_F16;
    const int rc = llmrt_cuda_ggml_matmul(nullptr, dout, out_f32 ? LLMRT_CUDA_F32 : act, dx, act, M,
                                          dw, t, N, K, dbias, path);
    CHECKF(rc == 0, "%s launch rc %d", llmrt_cuda_ggml_type_name(t), rc);
    CUDA_OK(cudaDeviceSynchronize());
    const Err e = compare(wf, x, bias, dout, out_f32, bf16, M, N, K);
    const bool gemv = path == LLMRT_CUDA_GGML_GEMV || (path == LLMRT_CUDA_GGML_AUTO && M <= 8);
    bool ok;
    if (gemv) {
        const double tol = out_f32 ? 1e-5 : bf16 ? 4e-3 : 1e-3;
        ok = e.max_rel <= tol;
        if (expect_pass && out_f32) g_worst_gemv = std::max(g_worst_gemv, e.max_rel);
    } else {
        const double scale = bf16 ? 8 : 1; // bf16 rounds the weights to 8 bits, fp16 to 11
        ok = e.mean_rel <= 1e-3 * scale && e.max_rel <= 2e-3 * scale;
        if (expect_pass) g_worst_gemm_mean[bf16] = std::max(g_worst_gemm_mean[bf16], e.mean_rel);
        if (expect_pass) g_worst_gemm_max[bf16] = std::max(g_worst_gemm_max[bf16], e.max_rel);
    }
    if (expect_pass)
        CHECKF(ok, "%s N %lld K %lld M %d %s %s x, %s out%s: mean rel %.2e, max %.2e of max|ref|",
               llmrt_cuda_ggml_type_name(t), (long long)N, (long long)K, M, gemv ? "GEMV" : "GEMM",
               bf16 ? "bf16" : "f16",
               out_f32 ? "f32"
               : bf16  ? "bf16"
                       : "f16",
               with_bias ? " bias" : "", e.mean_rel, e.max_rel);
    cudaFree(dx);
    cudaFree(dbias);
    cudaFree(dout);
    return ok;
}

void test_embed(int t, const std::vector<uint8_t> &w, const std::vector<float> &wf, const void *dw,
                int64_t V, int64_t D) {
    const std::vector<int32_t> tokens = {(int32_t)(V - 1), 0, 3, 3, (int32_t)(V / 2)};
    int32_t *dt = to_dev(tokens);
    float *dout = dev_alloc<float>(tokens.size() * (size_t)D);
    CHECK(llmrt_cuda_ggml_embed(nullptr, dout, dw, t, dt, (int32_t)tokens.size(), D) == 0);
    const std::vector<float> got = to_host(dout, tokens.size() * (size_t)D);
    for (size_t i = 0; i < tokens.size(); i++) {
        double max_err = 0, max_ref = 0;
        for (int64_t d = 0; d < D; d++) {
            const double r = wf[(size_t)(tokens[i] * D + d)];
            max_err = std::max(max_err, fabs(got[i * (size_t)D + (size_t)d] - r)),
            max_ref = std::max(max_ref, fabs(r));
        }
        CHECKF(max_err <= 1e-6 * max_ref, "%s embed row %d: max err %.3e of max|ref| %.3e",
               llmrt_cuda_ggml_type_name(t), tokens[i], max_err, max_ref);
    }
    cudaFree(dt);
    cudaFree(dout);
}

void test_errors() {
    char msg[256] = "";
    CHECK(llmrt_cuda_ggml_check(LLMRT_CUDA_GGML_Q4_K, 64, 300, msg, sizeof msg) != 0);
    CHECKF(strstr(msg, "Q4_K") && strstr(msg, "256"), "message: %s", msg);
    CHECK(llmrt_cuda_ggml_check(LLMRT_CUDA_GGML_N_TYPES, 64, 256, msg, sizeof msg) != 0);
    CHECK(llmrt_cuda_ggml_check(LLMRT_CUDA_GGML_Q8_0, 0, 32, msg, sizeof msg) != 0);
    CHECK(llmrt_cuda_ggml_check(LLMRT_CUDA_GGML_Q8_0, 65535 * 64, 32, msg, sizeof msg) == 0);
    CHECK(llmrt_cuda_ggml_check(LLMRT_CUDA_GGML_Q8_0, 65535 * 64 + 1, 32, msg, sizeof msg) != 0);
    CHECK(llmrt_cuda_ggml_check(LLMRT_CUDA_GGML_Q6_K, 7, 512, msg, sizeof msg) == 0);
    CHECK(llmrt_cuda_ggml_bytes(LLMRT_CUDA_GGML_Q6_K, 7, 512) == 7 * 2 * 210);
    CHECK(llmrt_cuda_ggml_bytes(LLMRT_CUDA_GGML_Q6_K, 7, 500) == 0);
    void *p = dev_alloc<float>(1024);
    const int bad = (int)cudaErrorInvalidValue;
    const llmrt_cuda_dtype F16 = LLMRT_CUDA_F16, BF16 = LLMRT_CUDA_BF16, F32 = LLMRT_CUDA_F32;
    const int Q8 = LLMRT_CUDA_GGML_Q8_0;
    const llmrt_cuda_ggml_path GEMV = LLMRT_CUDA_GGML_GEMV, AUTO = LLMRT_CUDA_GGML_AUTO;
    CHECK(llmrt_cuda_ggml_matmul(nullptr, p, F16, p, F16, 9, p, Q8, 8, 32, nullptr, GEMV) ==
          bad); // the GEMV takes M <= 8
    CHECK(llmrt_cuda_ggml_matmul(nullptr, p, BF16, p, F16, 1, p, Q8, 8, 32, nullptr, AUTO) ==
          bad); // out: x's type or fp32
    CHECK(llmrt_cuda_ggml_matmul(nullptr, p, F32, p, F32, 1, p, Q8, 8, 32, nullptr, AUTO) == bad);
    CHECK(llmrt_cuda_ggml_matmul(nullptr, p, F16, p, F16, 0, p, Q8, 8, 32, nullptr, AUTO) == bad);
    CHECK(llmrt_cuda_ggml_matmul(nullptr, p, F16, p, F16, 1, p, -1, 8, 32, nullptr, AUTO) == bad);
    CHECK(llmrt_cuda_ggml_embed(nullptr, (float *)p, p, LLMRT_CUDA_GGML_Q4_K, (const int32_t *)p, 1,
                                100) == (int)cudaErrorInvalidValue);
    cudaFree(p);
}

// llmrt_cuda_gather_cols: out[m, j] = x[m, perm[j]] exactly (16- and 32-bit elements), over a
// K that is not a multiple of its 256-thread CTA, and its argument errors.
void test_gather(Lcg &rng) {
    const int M = 3, K = 300;
    std::vector<int32_t> perm(K);
    for (int j = 0; j < K; j++)
        perm[(size_t)j] = j;
    for (int j = K - 1; j > 0; j--) // Fisher-Yates
        std::swap(perm[(size_t)j], perm[(size_t)(rng.next() % (uint32_t)(j + 1))]);
    std::vector<uint32_t> x((size_t)M * K);
    for (auto &v : x)
        v = rng.next();
    int32_t *dperm = to_dev(perm);
    uint32_t *dx = to_dev(x), *dout = dev_alloc<uint32_t>(x.size());
    for (int wide = 0; wide < 2; wide++) {
        const llmrt_cuda_dtype t = wide ? LLMRT_CUDA_F32 : LLMRT_CUDA_F16;
        CHECK(llmrt_cuda_gather_cols(nullptr, dout, dx, t, M, K, dperm) == 0);
        CUDA_OK(cudaDeviceSynchronize());
        const std::vector<uint32_t> got = to_host(dout, x.size());
        bool same = true;
        for (int m = 0; m < M; m++)
            for (int j = 0; j < K; j++) {
                const size_t at = (size_t)m * K + (size_t)perm[(size_t)j];
                if (wide)
                    same &= got[(size_t)m * K + (size_t)j] == x[at];
                else
                    same &= reinterpret_cast<const uint16_t *>(got.data())[(size_t)m * K + j] ==
                            reinterpret_cast<const uint16_t *>(x.data())[at];
            }
        CHECKF(same, "gather_cols (%s elements) differs from the host gather", wide ? "32" : "16");
    }
    const int bad = (int)cudaErrorInvalidValue;
    CHECK(llmrt_cuda_gather_cols(nullptr, dout, dx, LLMRT_CUDA_F16, 0, K, dperm) == bad);
    CHECK(llmrt_cuda_gather_cols(nullptr, dout, dx, LLMRT_CUDA_F16, 65536, K, dperm) == bad);
    CHECK(llmrt_cuda_gather_cols(nullptr, dout, dx, LLMRT_CUDA_F16, M, 0, dperm) == bad);
    CHECK(llmrt_cuda_gather_cols(nullptr, dout, dx, LLMRT_CUDA_F16, M, K, nullptr) == bad);
    CHECK(llmrt_cuda_gather_cols(nullptr, dout, dx, (llmrt_cuda_dtype)7, M, K, dperm) == bad);
    cudaFree(dperm);
    cudaFree(dx);
    cudaFree(dout);
}

} // namespace

int main() {
    require_device();
    const auto t0 = std::chrono::steady_clock::now();
    test_errors();
    Lcg gather_rng(4242);
    test_gather(gather_rng);
    Lcg rng(1717);
    for (int t = 0; t < LLMRT_CUDA_GGML_N_TYPES; t++) {
        const int E = llmrt_cuda_ggml_block_elems(t);
        const int64_t Ks[] = {E == 32 ? 96 : 256, E == 32 ? 160 : 768};
        const int64_t Ns[] = {72, 200};
        for (int s = 0; s < 2; s++) {
            const int64_t N = Ns[s], K = Ks[s];
            const std::vector<uint8_t> w = make_blocks(rng, t, N, K);
            const std::vector<float> wf = dequant(t, w, N, K);
            void *dw = to_dev(w);
            int i = 0;
            for (int M : {1, 3, 8, 9, 33, 70}) {
                run(t, w, wf, dw, N, K, M, LLMRT_CUDA_GGML_AUTO, i % 2 == 0, i % 3 != 1, rng, true);
                i++;
            }
            run(t, w, wf, dw, N, K, 1, LLMRT_CUDA_GGML_GEMM, false, true, rng, true);
            run(t, w, wf, dw, N, K, 8, LLMRT_CUDA_GGML_GEMM, true, false, rng, true);
            run(t, w, wf, dw, N, K, 5, LLMRT_CUDA_GGML_GEMV, true, true, rng, true);
            // bf16 activations: the GEMV (fp32 and bf16 out) and the bf16 mma GEMM
            run(t, w, wf, dw, N, K, 2, LLMRT_CUDA_GGML_AUTO, true, true, rng, true, true);
            run(t, w, wf, dw, N, K, 7, LLMRT_CUDA_GGML_AUTO, false, false, rng, true, true);
            run(t, w, wf, dw, N, K, 40, LLMRT_CUDA_GGML_AUTO, true, true, rng, true, true);
            run(t, w, wf, dw, N, K, 12, LLMRT_CUDA_GGML_AUTO, false, false, rng, true, true);
            test_embed(t, w, wf, dw, N, K);
            if (s == 0) { // sensitivity: one corrupted byte (each type's d's high byte; Q8_Z:
                          // its zero point) must fail
                static const int d_hi[] = {1, 1, 1, 81, 109, 1, 1, 209, 2};
                static_assert(sizeof d_hi / sizeof d_hi[0] == LLMRT_CUDA_GGML_N_TYPES, "per type");
                std::vector<uint8_t> bad = w;
                bad[(size_t)d_hi[t]] ^= 0x10;
                void *dbad = to_dev(bad);
                CHECKF(
                    !run(t, w, wf, dbad, N, K, 1, LLMRT_CUDA_GGML_GEMV, true, false, rng, false) &&
                        !run(t, w, wf, dbad, N, K, 33, LLMRT_CUDA_GGML_GEMM, true, false, rng,
                             false),
                    "%s: a corrupted scale / zero went unnoticed", llmrt_cuda_ggml_type_name(t));
                cudaFree(dbad);
            }
            cudaFree(dw);
        }
    }
    printf("worst: GEMV f32 max %.2e of max|ref| (<= 1e-5); GEMM fp16 mean rel %.2e (<= 1e-3), "
           "max %.2e (<= 2e-3); GEMM bf16 mean rel %.2e (<= 8e-3), max %.2e (<= 1.6e-2); %.1f s\n",
           g_worst_gemv, g_worst_gemm_mean[0], g_worst_gemm_max[0], g_worst_gemm_mean[1],
           g_worst_gemm_max[1],
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return test_summary("test_ggml_matmul");
}
