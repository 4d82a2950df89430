// fused_gemv.cu: the decode matmul of 16-bit / fp32 weights with its neighbours fused in
// (fused_gemv.h): the RMSNorm or SwiGLU that makes its input, several weights of one input in
// one launch (q, k, v; gate, up), and the residual add of its output (o, down).
//
// Decode is weight-bandwidth bound, so the kernel streams each weight row once with 16-byte loads
// and keeps everything else on chip:
//  - Grid: one CTA per kRowsPerCta output features of one weight (the weights of a group are laid
//    end to end along the grid). 8 warps, each owning kRowsPerWarp rows; a lane takes every 32nd
//    16-byte vector of a row, kLoadsInFlight of them per row in flight before any math.
//  - x is made in shared memory chunk by chunk ([MR][kChunk] in dtype t): each CTA recomputes the
//    prologue (the norm's inverse rms of each row, in rmsnorm.cu's order; silu(gate) * up) for the
//    chunk instead of reading a materialised h: the few extra flops and the L2 reads of x replace
//    a launch and a round trip of h through memory. Rows >= M are zero.
//  - A lane's partial sums run over its vectors in k order, then a xor butterfly over the warp:
//    the order depends on K and the chunk size (a constant per dtype) only, never on M or the
//    group, which is what makes a row batch-invariant and a grouped launch equal to separate ones.
#include "fused_gemv.h"
#include "llmrt_dtype.cuh"
#include "rmsnorm_row.cuh"

#include <cstdio>
#include <cstring>

namespace fused {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = 2;
constexpr int kRowsPerCta = kWarps * kRowsPerWarp;
constexpr int kLoadsInFlight = 4;      // 16-byte weight vectors per row per lane before the math
constexpr int kChunkBytes = 32 * 1024; // x chunk in shared memory at 8 rows (no opt-in needed)

template <class T> __host__ __device__ constexpr int vec_elems() {
    return 16 / (int)sizeof(T);
}
// Chunk length in elements: the same for every M (the summation order must not depend on M).
template <class T> __host__ __device__ constexpr int chunk_elems() {
    return kChunkBytes / (LLMRT_CUDA_FUSED_MAX_M * (int)sizeof(T));
}
static_assert(chunk_elems<__half>() % (32 * vec_elems<__half>()) == 0, "chunk: whole warp rounds");
static_assert(chunk_elems<float>() % (32 * vec_elems<float>()) == 0, "chunk: whole warp rounds");

// Kernel arguments (one struct by value; pointers typed per dtype inside the kernel).
struct Params {
    const void *x;       // [M, K]: ACT / SWIGLU gate dtype t, RMSNORM fp32
    const void *up;      // [M, K] (SWIGLU)
    const float *norm_w; // [K] (RMSNORM)
    float eps;
    int M;
    int64_t K;
    int n_w;
    const void *w[LLMRT_CUDA_FUSED_MAX_W]; // [N_i, K]
    const float *bias[LLMRT_CUDA_FUSED_MAX_W];
    int64_t N[LLMRT_CUDA_FUSED_MAX_W];
    void *out[LLMRT_CUDA_FUSED_MAX_W];         // [M, N_i]
    int cta_begin[LLMRT_CUDA_FUSED_MAX_W + 1]; // first CTA of weight i; [n_w] = the grid
    float *residual;                           // [M, N_0] or NULL
};

template <class T, int MR, int IN>
__global__ void __launch_bounds__(kThreads, 1) fused_gemv_kernel(const Params p) {
    constexpr int VEC = vec_elems<T>(), KC = chunk_elems<T>();
    DYN_SMEM(T, xs); // [MR][KC]
    __shared__ float fg_partial[kWarps];
    __shared__ float fg_inv[LLMRT_CUDA_FUSED_MAX_M];
    int wi = 0;
    while (wi + 1 < p.n_w && (int)blockIdx.x >= p.cta_begin[wi + 1])
        wi++; // CTA-uniform
    const T *W = static_cast<const T *>(p.w[wi]);
    const int64_t N = p.N[wi], K = p.K;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row0 =
        (int64_t)((int)blockIdx.x - p.cta_begin[wi]) * kRowsPerCta + warp * kRowsPerWarp;

    if (IN == LLMRT_CUDA_FUSED_IN_RMSNORM) {
        for (int m = 0; m < p.M; m++) {
            const float inv =
                rmsnorm_row_inv(static_cast<const float *>(p.x) + m * K, K, p.eps, fg_partial);
            if (threadIdx.x == 0) fg_inv[m] = inv;
        }
    }

    float acc[kRowsPerWarp][MR];
    LLMRT_UNROLL
    for (int r = 0; r < kRowsPerWarp; r++) {
        LLMRT_UNROLL
        for (int m = 0; m < MR; m++)
            acc[r][m] = 0.0f;
    }

    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? (int)(K - k0) : KC;
        __syncthreads(); // the previous chunk is consumed (and fg_inv written)
        // -- x of this chunk: the prologue, rounded to t where the unfused op writes t --
        for (int i = threadIdx.x; i < MR * kc; i += kThreads) {
            const int m = i / kc, j = i % kc;
            const int64_t at = m * K + k0 + j;
            T v = llmrt_from_f32<T>(0.0f);
            if (m < p.M) {
                if (IN == LLMRT_CUDA_FUSED_IN_ACT) {
                    v = static_cast<const T *>(p.x)[at];
                } else if (IN == LLMRT_CUDA_FUSED_IN_RMSNORM) { // rmsnorm.cu: w * (x * inv)
                    v = llmrt_from_f32<T>(p.norm_w[k0 + j] *
                                          (static_cast<const float *>(p.x)[at] * fg_inv[m]));
                } else { // swiglu.cu: g / (1 + exp(-g)) * u
                    const float g = llmrt_to_f32(static_cast<const T *>(p.x)[at]);
                    const float u = llmrt_to_f32(static_cast<const T *>(p.up)[at]);
                    v = llmrt_from_f32<T>(g / (1.0f + expf(-g)) * u);
                }
            }
            xs[m * KC + j] = v;
        }
        __syncthreads();
        // -- stream the warp's rows over the chunk --
        const int nv = kc / VEC;
        for (int v0 = lane; v0 < nv; v0 += 32 * kLoadsInFlight) {
            uint4 wv[kRowsPerWarp][kLoadsInFlight];
            LLMRT_UNROLL
            for (int r = 0; r < kRowsPerWarp; r++) {
                LLMRT_UNROLL
                for (int u = 0; u < kLoadsInFlight; u++) {
                    const int v = v0 + 32 * u;
                    const int64_t n = row0 + r;
                    wv[r][u] = v < nv && n < N
                                   ? __ldg(reinterpret_cast<const uint4 *>(W + n * K + k0) + v)
                                   : make_uint4(0, 0, 0, 0);
                }
            }
            LLMRT_UNROLL
            for (int u = 0; u < kLoadsInFlight; u++) {
                const int v = v0 + 32 * u;
                if (v >= nv) continue; // (the rest too: v grows with u)
                float wf[kRowsPerWarp][VEC];
                LLMRT_UNROLL
                for (int r = 0; r < kRowsPerWarp; r++) {
                    T we[VEC];
                    memcpy((void *)we, &wv[r][u], sizeof we);
                    LLMRT_UNROLL
                    for (int e = 0; e < VEC; e++)
                        wf[r][e] = llmrt_to_f32(we[e]);
                }
                LLMRT_UNROLL
                for (int m = 0; m < MR; m++) {
                    T xe[VEC];
                    const uint4 xv = reinterpret_cast<const uint4 *>(xs + m * KC)[v];
                    memcpy((void *)xe, &xv, sizeof xe);
                    LLMRT_UNROLL
                    for (int e = 0; e < VEC; e++) {
                        const float xf = llmrt_to_f32(xe[e]);
                        LLMRT_UNROLL
                        for (int r = 0; r < kRowsPerWarp; r++)
                            acc[r][m] = fmaf(wf[r][e], xf, acc[r][m]);
                    }
                }
            }
        }
    }

    // -- reduce over the warp; lane r*MR + m writes (row0 + r, m) --
    LLMRT_UNROLL
    for (int r = 0; r < kRowsPerWarp; r++) {
        LLMRT_UNROLL
        for (int m = 0; m < MR; m++)
            acc[r][m] = llmrt_warp_sum(acc[r][m]);
    }
    LLMRT_UNROLL
    for (int r = 0; r < kRowsPerWarp; r++) {
        LLMRT_UNROLL
        for (int m = 0; m < MR; m++) {
            const int64_t n = row0 + r;
            if (lane != r * MR + m || m >= p.M || n >= N) continue;
            T res = llmrt_from_f32<T>(acc[r][m]);
            if (p.bias[wi]) // as elementwise.cu's add_bias after an unfused matmul
                res = llmrt_from_f32<T>(llmrt_to_f32(res) + p.bias[wi][n]);
            if (p.residual) // as elementwise.cu's add
                p.residual[m * N + n] += llmrt_to_f32(res);
            else
                static_cast<T *>(p.out[wi])[m * N + n] = res;
        }
    }
}

template <class T, int MR>
int launch_mr(const Params &p, int input, unsigned grid, cudaStream_t s) {
    const size_t smem = (size_t)MR * chunk_elems<T>() * sizeof(T);
    switch (input) {
    case LLMRT_CUDA_FUSED_IN_ACT:
        LAUNCH((fused_gemv_kernel<T, MR, LLMRT_CUDA_FUSED_IN_ACT>), grid, kThreads, smem, s, p);
        break;
    case LLMRT_CUDA_FUSED_IN_RMSNORM:
        LAUNCH((fused_gemv_kernel<T, MR, LLMRT_CUDA_FUSED_IN_RMSNORM>), grid, kThreads, smem, s, p);
        break;
    case LLMRT_CUDA_FUSED_IN_SWIGLU:
        LAUNCH((fused_gemv_kernel<T, MR, LLMRT_CUDA_FUSED_IN_SWIGLU>), grid, kThreads, smem, s, p);
        break;
    default:
        return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

template <class T> int launch_t(const Params &p, int input, unsigned grid, cudaStream_t s) {
    const int mr = p.M <= 1 ? 1 : p.M <= 2 ? 2 : p.M <= 4 ? 4 : 8;
    switch (mr) {
    case 1:
        return launch_mr<T, 1>(p, input, grid, s);
    case 2:
        return launch_mr<T, 2>(p, input, grid, s);
    case 4:
        return launch_mr<T, 4>(p, input, grid, s);
    default:
        return launch_mr<T, 8>(p, input, grid, s);
    }
}

int refuse(char *msg, size_t cap, const char *why) {
    if (msg && cap) snprintf(msg, cap, "fused gemv: %s", why);
    return 1;
}

} // namespace fused

extern "C" int llmrt_cuda_fused_gemv_check(const llmrt_cuda_fused_gemv_args *a, char *msg,
                                           size_t cap) {
    using fused::refuse;
    if (!a) return refuse(msg, cap, "no arguments");
    const int64_t esize = a->t == LLMRT_CUDA_F32 ? 4 : 2;
    if (a->t != LLMRT_CUDA_F16 && a->t != LLMRT_CUDA_BF16 && a->t != LLMRT_CUDA_F32)
        return refuse(msg, cap, "dtype is not F16, BF16 or F32");
    if (a->input != LLMRT_CUDA_FUSED_IN_ACT && a->input != LLMRT_CUDA_FUSED_IN_RMSNORM &&
        a->input != LLMRT_CUDA_FUSED_IN_SWIGLU)
        return refuse(msg, cap, "unknown input kind");
    if (a->M < 1 || a->M > LLMRT_CUDA_FUSED_MAX_M) return refuse(msg, cap, "M is outside 1..8");
    if (a->K < 1 || (a->K * esize) % 16 != 0 || a->K > ((int64_t)1 << 40))
        return refuse(msg, cap, "K is not a whole number of 16-byte vectors");
    if (a->n_w < 1 || a->n_w > LLMRT_CUDA_FUSED_MAX_W)
        return refuse(msg, cap, "n_w is outside 1..3");
    if (!a->x || (a->input == LLMRT_CUDA_FUSED_IN_SWIGLU && !a->up) ||
        (a->input == LLMRT_CUDA_FUSED_IN_RMSNORM && !a->norm_w))
        return refuse(msg, cap, "an input pointer is NULL");
    if (a->residual && a->n_w != 1)
        return refuse(msg, cap, "the residual epilogue takes one weight");
    int64_t ctas = 0;
    for (int i = 0; i < a->n_w; i++) {
        if (!a->w[i] || ((uintptr_t)a->w[i] % 16) != 0)
            return refuse(msg, cap, "a weight is NULL or not 16-byte aligned");
        if (a->N[i] < 1 || a->N[i] > ((int64_t)1 << 30))
            return refuse(msg, cap, "N is outside 1..2^30");
        if (!a->residual && !a->out[i]) return refuse(msg, cap, "an output pointer is NULL");
        ctas += (a->N[i] + fused::kRowsPerCta - 1) / fused::kRowsPerCta;
    }
    if (ctas > 0x7fffffff) return refuse(msg, cap, "too many rows");
    return 0;
}

extern "C" int llmrt_cuda_fused_gemv(void *stream, const llmrt_cuda_fused_gemv_args *a) {
    if (llmrt_cuda_fused_gemv_check(a, nullptr, 0) != 0) return (int)cudaErrorInvalidValue;
    fused::Params p{};
    p.x = a->x;
    p.up = a->up;
    p.norm_w = a->norm_w;
    p.eps = a->eps;
    p.M = a->M;
    p.K = a->K;
    p.n_w = a->n_w;
    p.residual = a->residual;
    int ctas = 0;
    for (int i = 0; i < a->n_w; i++) {
        p.w[i] = a->w[i];
        p.bias[i] = a->bias[i];
        p.N[i] = a->N[i];
        p.out[i] = a->out[i];
        p.cta_begin[i] = ctas;
        ctas += (int)((a->N[i] + fused::kRowsPerCta - 1) / fused::kRowsPerCta);
    }
    p.cta_begin[a->n_w] = ctas;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (a->t) {
    case LLMRT_CUDA_F16:
        return fused::launch_t<__half>(p, a->input, (unsigned)ctas, s);
    case LLMRT_CUDA_BF16:
        return fused::launch_t<__nv_bfloat16>(p, a->input, (unsigned)ctas, s);
    case LLMRT_CUDA_F32:
        return fused::launch_t<float>(p, a->input, (unsigned)ctas, s);
    default:
        return (int)cudaErrorInvalidValue;
    }
}
