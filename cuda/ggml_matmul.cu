// ggml_matmul.cu: the GGUF block-type kernels of ggml_matmul.h (GEMV for decode, tensor-core GEMM
// for prefill, the embedding gather) and their launchers, one template instance per type
// (ggml_blocks.cuh) and activation type A (__half or __nv_bfloat16).
#include <cstdio>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ggml_blocks.cuh"
#include "launch.cuh"
#include "llmrt_dtype.cuh"
#include "ptx_ops.cuh"

namespace ggml {

constexpr int kThreads = 128; // 4 warps in every kernel here
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGemvM = LLMRT_CUDA_GGML_GEMV_MAX_M;

// out[at] = v (+ bias[n]) as fp32 or the activation type A.
template <class A>
__device__ __forceinline__ void write_out(void *out, int out_f32, const float *bias, size_t at,
                                          int n, float v) {
    if (bias) v += bias[n];
    if (out_f32)
        static_cast<float *>(out)[at] = v;
    else
        static_cast<A *>(out)[at] = llmrt_from_f32<A>(v);
}

// The bits of (lo, hi) rounded to A: one 32-bit register of an mma operand.
template <class A> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    const A h[2] = {llmrt_from_f32<A>(lo), llmrt_from_f32<A>(hi)};
    uint32_t u;
    memcpy(&u, static_cast<const void *>(h), 4);
    return u;
}

// Sixteen values of x (16-byte aligned: K is a multiple of 32) as fp32.
template <class A> __device__ __forceinline__ void load_x16(const A *p, float (&v)[16]) {
    const uint4 raw[2] = {reinterpret_cast<const uint4 *>(p)[0],
                          reinterpret_cast<const uint4 *>(p)[1]};
    A h[16];
    memcpy(static_cast<void *>(h), raw, sizeof raw);
    for (int i = 0; i < 16; i++)
        v[i] = llmrt_to_f32(h[i]);
}

// ---- GEMV (M <= 8) ------------------------------------------------------------------------------
// One warp per weight row n; lane l takes the row's 16-element pieces l, l + 32, ... (for the
// K-quants 16 lanes cover one 256-element block, so a warp reads two adjacent blocks at a time),
// dequantises each once into fp32 and uses it for all M rows of x. No barriers: a warp past N
// returns at once.
template <int T, class A>
__global__ void __launch_bounds__(kThreads)
    ggml_gemv_kernel(const A *__restrict__ x,        // [M, K]
                     const uint8_t *__restrict__ w,  // [N, K / E blocks]
                     const float *__restrict__ bias, // [N] or NULL
                     void *__restrict__ out,         // [M, N] A or fp32
                     int out_f32, int M, int N, int K) {
    using Blk = Block<T>;
    constexpr int kPieces = Blk::kElems / 16; // 16-element pieces per block
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n = blockIdx.x * kWarps + warp;
    if (n >= N) return;
    const uint8_t *row = w + (size_t)n * (size_t)(K / Blk::kElems) * Blk::kBytes;
    float acc[kMaxGemvM];
    GGML_UNROLL
    for (int m = 0; m < kMaxGemvM; m++)
        acc[m] = 0.0f;
    for (int p = lane; p < K / 16; p += 32) {
        float wv[16];
        Blk::dequant16(row + (size_t)(p / kPieces) * Blk::kBytes, (p % kPieces) * 16, wv);
        GGML_UNROLL
        for (int m = 0; m < kMaxGemvM; m++) {
            if (m >= M) break;
            float xv[16];
            load_x16<A>(x + (size_t)m * K + (size_t)p * 16, xv);
            float s = 0.0f;
            GGML_UNROLL
            for (int i = 0; i < 16; i++)
                s += wv[i] * xv[i];
            acc[m] += s;
        }
    }
    GGML_UNROLL
    for (int m = 0; m < kMaxGemvM; m++) {
        if (m >= M) break;
        float v = acc[m];
        GGML_UNROLL
        for (int o = 16; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) write_out<A>(out, out_f32, bias, (size_t)m * N + n, n, v);
    }
}

// ---- GEMM (tensor cores) ------------------------------------------------------------------------
// CTA = 4 warps, tile BM = 16·MT rows x kBN = 64 columns, 32 k per step. Per step, shared memory
// holds A [BM][kLd] (x, fp16) and B [kBN][kLd] (the weight rows' 32 elements dequantised to fp16:
// each thread dequantises one 16-element piece); rows are padded to kLd = 40 halves (80 bytes) so
// the 8 row addresses of an ldmatrix hit different bank groups. Warp w owns columns 16w .. 16w+15
// (two n8 tiles) for all MT m16 tiles: per k16, MT ldmatrix.x4 for A, one for B (its rows are
// columns n, k contiguous: the "col" B operand without .trans), 2·MT mma.
// Rows past M read x = 0 and are not written; columns past N dequantise nothing (B = 0) and are
// not written.
constexpr int kBN = 64, kBK = 32, kLd = kBK + 8;
// ptxas's own register choice spilled a few bytes in the MT = 1 and 2 instances; asking for 4 CTAs
// per SM (a 128-register cap, 72 used at MT = 4) gives 0 spills in all of them.
constexpr int kGemmMinBlocks = 4;

template <int MT> struct GemmTraits {
    static constexpr int kBM = 16 * MT;
    static constexpr int kSmemBytes = (kBM + kBN) * kLd * 2;
    static constexpr int kALoads =
        (kBM * (kBK / 8) + kThreads - 1) / kThreads; // 16-byte loads per thread
    static_assert(kBM * (kBK / 8) <= 2 * kThreads, "A tile: at most two 16-byte loads per thread");
    static_assert(kBN * (kBK / 16) == kThreads, "B tile: one piece per thread");
};

template <int T, int MT, class A>
__global__ void __launch_bounds__(kThreads, kGemmMinBlocks)
    ggml_gemm_kernel(const A *__restrict__ x,        // [M, K]
                     const uint8_t *__restrict__ w,  // [N, K / E blocks]
                     const float *__restrict__ bias, // [N] or NULL
                     void *__restrict__ out,         // [M, N] fp16 or fp32
                     int out_f32, int M, int N, int K) {
    using Blk = Block<T>;
    constexpr int BM = GemmTraits<MT>::kBM;
    DYN_SMEM(A, smem);
    A *sa = smem, *sb = smem + BM * kLd;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * kBN;
    const size_t row_bytes = (size_t)(K / Blk::kElems) * Blk::kBytes;
    // this thread's B piece: column n0 + bn, elements 16·bh .. 16·bh + 15 of each k step
    const int bn = tid >> 1, bh = tid & 1;
    const bool b_ok = n0 + bn < N;
    const uint8_t *b_src = w + (size_t)(b_ok ? n0 + bn : 0) * row_bytes;

    float acc[MT][2][4];
    GGML_UNROLL
    for (int mt = 0; mt < MT; mt++)
        GGML_UNROLL
    for (int j = 0; j < 2; j++)
        GGML_UNROLL
    for (int i = 0; i < 4; i++)
        acc[mt][j][i] = 0.0f;

    // ldmatrix.x4 rows: A matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15) = a[0..3]; B matrices
    // (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) = b of n8 tiles 0, 1
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 8;
    const int b_row = warp * 16 + (lane & 7) + (lane >> 4) * 8, b_col = ((lane >> 3) & 1) * 8;
    for (int k0 = 0; k0 < K; k0 += kBK) {
        GGML_UNROLL
        for (int i = 0; i < GemmTraits<MT>::kALoads; i++) {
            const int id = tid + i * kThreads, r = id >> 2, c = id & 3;
            if (r < BM) {
                uint4 v = make_uint4(0, 0, 0, 0);
                if (m0 + r < M)
                    v = *reinterpret_cast<const uint4 *>(x + (size_t)(m0 + r) * K + k0 + c * 8);
                *reinterpret_cast<uint4 *>(sa + r * kLd + c * 8) = v;
            }
        }
        {
            float wv[16];
            const int e = k0 + 16 * bh;
            Blk::dequant16(b_src + (size_t)(e / Blk::kElems) * Blk::kBytes, e % Blk::kElems, wv);
            uint32_t hv[8];
            GGML_UNROLL
            for (int i = 0; i < 8; i++)
                hv[i] = b_ok ? pack2<A>(wv[2 * i], wv[2 * i + 1]) : 0u;
            uint4 *dst = reinterpret_cast<uint4 *>(sb + bn * kLd + 16 * bh);
            dst[0] = make_uint4(hv[0], hv[1], hv[2], hv[3]);
            dst[1] = make_uint4(hv[4], hv[5], hv[6], hv[7]);
        }
        __syncthreads();
        GGML_UNROLL
        for (int kk = 0; kk < kBK; kk += 16) {
            uint32_t b[2][2]; // the B fragments of n8 tiles 0 and 1, loaded by one ldmatrix.x4
            ldmatrix_x4(reinterpret_cast<uint32_t(&)[4]>(b), sb + b_row * kLd + kk + b_col);
            GGML_UNROLL
            for (int mt = 0; mt < MT; mt++) {
                uint32_t a[4];
                ldmatrix_x4(a, sa + (mt * 16 + a_row) * kLd + kk + a_col);
                if constexpr (std::is_same<A, __half>::value) {
                    mma_m16n8k16_f16f32(acc[mt][0], a, b[0], acc[mt][0]);
                    mma_m16n8k16_f16f32(acc[mt][1], a, b[1], acc[mt][1]);
                } else {
                    mma_m16n8k16_bf16f32(acc[mt][0], a, b[0], acc[mt][0]);
                    mma_m16n8k16_bf16f32(acc[mt][1], a, b[1], acc[mt][1]);
                }
            }
        }
        __syncthreads(); // the tiles are refilled next step
    }
    // c_i at row g + 8·(i >= 2), column 2t + (i & 1) of n8 tile j
    GGML_UNROLL
    for (int mt = 0; mt < MT; mt++)
        GGML_UNROLL
    for (int j = 0; j < 2; j++)
        GGML_UNROLL
    for (int i = 0; i < 4; i++) {
        const int m = m0 + mt * 16 + g + 8 * (i >> 1), n = n0 + warp * 16 + 8 * j + 2 * t + (i & 1);
        if (m < M && n < N) write_out<A>(out, out_f32, bias, (size_t)m * N + n, n, acc[mt][j][i]);
    }
}

// ---- embedding ----------------------------------------------------------------------------------
// One CTA per token; threads stride over the row's 16-element pieces.
template <int T>
__global__ void __launch_bounds__(kThreads)
    ggml_embed_kernel(float *__restrict__ out,            // [n_tokens, D]
                      const uint8_t *__restrict__ table,  // [V, D / E blocks]
                      const int32_t *__restrict__ tokens, // [n_tokens]
                      int D) {
    using Blk = Block<T>;
    constexpr int kPieces = Blk::kElems / 16;
    const uint8_t *row =
        table + (size_t)tokens[blockIdx.x] * (size_t)(D / Blk::kElems) * Blk::kBytes;
    float *dst = out + (size_t)blockIdx.x * D;
    for (int p = threadIdx.x; p < D / 16; p += kThreads) {
        float wv[16];
        Blk::dequant16(row + (size_t)(p / kPieces) * Blk::kBytes, (p % kPieces) * 16, wv);
        for (int i = 0; i < 16; i++)
            dst[p * 16 + i] = wv[i];
    }
}

struct MatmulArgs {
    const void *x; // A [M, K]
    const uint8_t *w;
    const float *bias;
    void *out;
    int out_f32, M, N, K;
    bool gemv, bf16;
    cudaStream_t stream;
};

template <int T, int MT, class A> int launch_gemm(const MatmulArgs &a) {
    constexpr int BM = GemmTraits<MT>::kBM;
    const dim3 grid((unsigned)((a.M + BM - 1) / BM), (unsigned)((a.N + kBN - 1) / kBN));
    LAUNCH((ggml_gemm_kernel<T, MT, A>), grid, kThreads, GemmTraits<MT>::kSmemBytes, a.stream,
           static_cast<const A *>(a.x), a.w, a.bias, a.out, a.out_f32, a.M, a.N, a.K);
    return (int)cudaGetLastError();
}

template <int T, class A> int launch_matmul(const MatmulArgs &a) {
    if (a.gemv) {
        LAUNCH((ggml_gemv_kernel<T, A>), (a.N + kWarps - 1) / kWarps, kThreads, 0, a.stream,
               static_cast<const A *>(a.x), a.w, a.bias, a.out, a.out_f32, a.M, a.N, a.K);
        return (int)cudaGetLastError();
    }
    // MT: the smallest of 1, 2, 4 m16 tiles that covers M (above 64 rows: 64-row tiles)
    return a.M <= 16   ? launch_gemm<T, 1, A>(a)
           : a.M <= 32 ? launch_gemm<T, 2, A>(a)
                       : launch_gemm<T, 4, A>(a);
}

struct RunMatmul {
    template <int T> static int run(const MatmulArgs *a) {
        return a->bf16 ? launch_matmul<T, __nv_bfloat16>(*a) : launch_matmul<T, __half>(*a);
    }
};

struct RunEmbed {
    template <int T>
    static int run(float *out, const uint8_t *table, const int32_t *tokens, int n_tokens, int D,
                   cudaStream_t s) {
        LAUNCH((ggml_embed_kernel<T>), n_tokens, kThreads, 0, s, out, table, tokens, D);
        return (int)cudaGetLastError();
    }
};

constexpr int64_t kMaxN = 65535LL * kBN;
constexpr int kElemsOf[LLMRT_CUDA_GGML_N_TYPES] = {32, 32, 32, 256, 256, 256, 256, 256, 32};
constexpr int kBytesOf[LLMRT_CUDA_GGML_N_TYPES] = {34, 22, 24, 84, 110, 144, 176, 210, 36};
const char *const kNameOf[LLMRT_CUDA_GGML_N_TYPES] = {"Q8_0", "Q5_0", "Q5_1", "Q2_K", "Q3_K",
                                                      "Q4_K", "Q5_K", "Q6_K", "Q8_Z"};
template <int T> constexpr bool block_table_ok() {
    return Block<T>::kElems == kElemsOf[T] && Block<T>::kBytes == kBytesOf[T];
}
static_assert(block_table_ok<LLMRT_CUDA_GGML_Q8_0>() && block_table_ok<LLMRT_CUDA_GGML_Q5_0>() &&
                  block_table_ok<LLMRT_CUDA_GGML_Q5_1>() &&
                  block_table_ok<LLMRT_CUDA_GGML_Q2_K>() &&
                  block_table_ok<LLMRT_CUDA_GGML_Q3_K>() &&
                  block_table_ok<LLMRT_CUDA_GGML_Q4_K>() &&
                  block_table_ok<LLMRT_CUDA_GGML_Q5_K>() &&
                  block_table_ok<LLMRT_CUDA_GGML_Q6_K>() &&
                  block_table_ok<LLMRT_CUDA_GGML_Q8_Z>() && LLMRT_CUDA_GGML_N_TYPES == 9,
              "the size tables follow the Block traits of every type");

} // namespace ggml

extern "C" int32_t llmrt_cuda_ggml_block_elems(int t) {
    return t >= 0 && t < LLMRT_CUDA_GGML_N_TYPES ? ggml::kElemsOf[t] : 0;
}

extern "C" int32_t llmrt_cuda_ggml_block_bytes(int t) {
    return t >= 0 && t < LLMRT_CUDA_GGML_N_TYPES ? ggml::kBytesOf[t] : 0;
}

extern "C" const char *llmrt_cuda_ggml_type_name(int t) {
    return t >= 0 && t < LLMRT_CUDA_GGML_N_TYPES ? ggml::kNameOf[t] : "(not a GGUF block type)";
}

extern "C" int llmrt_cuda_ggml_check(int t, int64_t N, int64_t K, char *msg, size_t cap) {
    if (t < 0 || t >= LLMRT_CUDA_GGML_N_TYPES) {
        if (msg && cap) snprintf(msg, cap, "GGUF block type %d: no CUDA kernels for it", t);
        return 1;
    }
    const int E = ggml::kElemsOf[t];
    // N: the GEMM's grid has ceil(N / 64) CTAs along y (at most 65535)
    if (N < 1 || K < 1 || N > ggml::kMaxN || K > INT32_MAX || K % E != 0) {
        if (msg && cap)
            snprintf(msg, cap,
                     "%s weight [%lld, %lld]: the CUDA kernels take 1 <= N <= %lld and "
                     "1 <= K <= 2^31 - 1 with K a multiple of the %d-element block",
                     ggml::kNameOf[t], (long long)N, (long long)K, (long long)ggml::kMaxN, E);
        return 1;
    }
    return 0;
}

extern "C" uint64_t llmrt_cuda_ggml_bytes(int t, int64_t N, int64_t K) {
    if (llmrt_cuda_ggml_check(t, N, K, nullptr, 0) != 0) return 0;
    return (uint64_t)N * (uint64_t)(K / ggml::kElemsOf[t]) * (uint64_t)ggml::kBytesOf[t]; // < 2^62
}

extern "C" int llmrt_cuda_ggml_matmul(void *stream, void *out, llmrt_cuda_dtype out_t,
                                      const void *x, llmrt_cuda_dtype x_t, int64_t M, const void *w,
                                      int t, int64_t N, int64_t K, const float *bias,
                                      llmrt_cuda_ggml_path path) {
    if (!out || !x || !w || M < 1 || M > 65535 || llmrt_cuda_ggml_check(t, N, K, nullptr, 0) != 0 ||
        (x_t != LLMRT_CUDA_F16 && x_t != LLMRT_CUDA_BF16) ||
        (out_t != x_t && out_t != LLMRT_CUDA_F32))
        return (int)cudaErrorInvalidValue;
    const bool gemv =
        path == LLMRT_CUDA_GGML_GEMV || (path == LLMRT_CUDA_GGML_AUTO && M <= ggml::kMaxGemvM);
    if (gemv && M > ggml::kMaxGemvM) return (int)cudaErrorInvalidValue;
    ggml::MatmulArgs a;
    a.x = x, a.w = static_cast<const uint8_t *>(w), a.bias = bias, a.out = out;
    a.out_f32 = out_t == LLMRT_CUDA_F32, a.M = (int)M, a.N = (int)N, a.K = (int)K;
    a.gemv = gemv, a.bf16 = x_t == LLMRT_CUDA_BF16, a.stream = (cudaStream_t)stream;
    return ggml::dispatch<ggml::RunMatmul>(t, &a);
}

extern "C" int llmrt_cuda_ggml_embed(void *stream, float *out, const void *table, int t,
                                     const int32_t *tokens, int32_t n_tokens, int64_t D) {
    if (n_tokens == 0) return 0;
    if (!out || !table || !tokens || n_tokens < 0 ||
        llmrt_cuda_ggml_check(t, 1, D, nullptr, 0) != 0)
        return (int)cudaErrorInvalidValue;
    return ggml::dispatch<ggml::RunEmbed>(t, out, static_cast<const uint8_t *>(table), tokens,
                                          (int)n_tokens, (int)D, (cudaStream_t)stream);
}
