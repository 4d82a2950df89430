// q4_gemv.cu: the small-M (decode) 4-bit matmul, out[M, N] = x[M, K] · Wᵀ for M <= 8, streaming
// the fragment-order weights (q4_matmul.h) with one 16-byte load per lane per (k16 tile, 64-column
// block), dequantised in registers (q4_common.cuh), fp32 accumulation.
//
// Grid: per weight N/64 x splits CTAs (column block fastest), the weights of a grouped launch
// (q, k, v of one x: GemvArgs, q4_common.cuh) end to end, each with the plan it gets alone, so
// that each gives the bits of its own launch. A CTA of 4 warps owns one 64-column block of one
// weight and a contiguous range of k16 tiles; each warp takes a contiguous quarter of it (so
// group changes are rare and the warp's loads stream). x of the CTA's K range (gathered through perm for act-order) and the block's
// scales/zeros of the groups it covers are staged in shared memory first; the k loop then only
// reads weights from global memory, kUnroll 16-byte loads in flight per lane before any math.
// A lane holds 8 columns x 4 k rows per tile: partial dot products per column, summed over the
// 4 lanes of a column by two xor shuffles, then over the 4 warps in shared memory. With
// splits > 1 (too few column blocks to fill the GPU), CTAs write fp32 partials [splits, M, N] and
// the last CTA of a column block to finish sums them in split order, adding the bias
// (q4_common.cuh: arrive_last; deterministic, and no second kernel).
#include "fused_gemv.h"
#include "q4_common.cuh"
#include "rmsnorm_row.cuh"

namespace q4 {
namespace gv { // (named: the tests compile all q4 .cu files into one unit)

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr size_t kSmemCap = 48 * 1024;  // no opt-in needed

// Shared memory of a CTA: x [MR][tiles*16] fp32 (reused for the cross-warp sums [4][MR][64]
// at the end, hence the max) + the (scales, zoff) rows of the groups the tile range can touch
// (n tiles starting anywhere span at most ceil(n*16/gs) + 1 groups).
__host__ __device__ inline int gemv_x_floats(int mr, int tiles) {
    return mr * tiles * kTileK > kWarps * mr * kBlockN ? mr * tiles * kTileK : kWarps * mr * kBlockN;
}
inline size_t gemv_smem(int mr, int tiles, int gs) {
    const int groups = (tiles * kTileK + gs - 1) / gs + 1;
    return (size_t)gemv_x_floats(mr, tiles) * 4 + (size_t)groups * 2 * 8 * 16;
}

// 16-byte weight loads in flight per lane: 8, or 4 at 8 rows, whose accumulators (64 floats)
// and x fragments would otherwise push the kernel past ~224 registers (2 CTAs per SM).
template <int MR> __host__ __device__ constexpr int unroll_for() {
    return MR >= 8 ? 4 : 8;
}

// out[at] = v (+ bias[n]) as fp32 or fp16; with a residual (fp16 out), residual[at] += the fp16
// value instead (elementwise.cu's add after an unfused matmul).
__device__ __forceinline__ void write_out(void *out, int out_f32, const float *bias, float *residual,
                                          size_t at, int n, float v) {
    if (bias) v += bias[n];
    if (residual) residual[at] += __half2float(__float2half_rn(v));
    else if (out_f32) static_cast<float *>(out)[at] = v;
    else static_cast<__half *>(out)[at] = __float2half_rn(v);
}

// The fused prologue's input element (row m, original column col) as the unfused op writes it in
// fp16: rmsnorm.cu's w * (x * inv) or swiglu.cu's g / (1 + exp(-g)) * u, rounded once.
__device__ __forceinline__ float fused_input(int input, const __half *x, const __half *up,
                                             const float *resid_x, const float *norm_w,
                                             const float *inv, int m, int ldx, int col) {
    if (input == LLMRT_CUDA_FUSED_IN_RMSNORM)
        return __half2float(__float2half_rn(norm_w[col] * (resid_x[(size_t)m * ldx + col] * inv[m])));
    const float g = __half2float(x[(size_t)m * ldx + col]);
    if (input != LLMRT_CUDA_FUSED_IN_SWIGLU) return g;
    const float u = __half2float(up[(size_t)m * ldx + col]);
    return __half2float(__float2half_rn(g / (1.0f + expf(-g)) * u));
}

// Minimum resident CTAs per SM asked of ptxas (0: none). The weight descriptor is indexed by the
// CTA's weight (a runtime index into the kernel parameters), which costs registers; at 8 rows
// with float offsets that would cost a CTA per SM (3 -> 2 on sm_80), and 3 holds without spills.
// Elsewhere a bound either changes nothing or spills (bench/results/cuda_kernel_resources.md).
template <int MR, bool ZF> __host__ __device__ constexpr int min_ctas_for() {
    return MR == 8 && ZF ? 3 : 0;
}

template <int MR, bool ZF>
__global__ void __launch_bounds__(kThreads, (min_ctas_for<MR, ZF>()))
    q4_gemv_kernel(const __grid_constant__ GemvArgs a) {
    constexpr int kUnroll = unroll_for<MR>();
    DYN_SMEM(unsigned char, smem);
    // this CTA's weight (CTA-uniform) and its place in that weight's (N/64, splits) grid
    int wi = 0;
    while (wi + 1 < a.n_w && (int)blockIdx.x >= a.w[wi + 1].cta_begin) wi++;
    const GemvWeight &d = a.w[wi];
    const int M = a.M, N = d.N, K = a.K, gs = d.group_size, ldx = a.ldx, input = a.input;
    const int tiles_per_cta = d.tiles_per_cta;
    const int32_t *__restrict__ perm = d.perm;
    const __half *__restrict__ x = a.x;
    const int NB = N / kBlockN, cta = (int)blockIdx.x - d.cta_begin;
    const int nb = cta % NB, split = cta / NB;
    const int T = K / kTileK;
    const int t_begin = split * tiles_per_cta;
    const int t_end = T < t_begin + tiles_per_cta ? T : t_begin + tiles_per_cta;
    const int kc = tiles_per_cta * kTileK;              // x row stride in shared memory
    const int k_begin = t_begin * kTileK;
    const int g_first = k_begin / gs;
    float *xs = reinterpret_cast<float *>(smem);                          // [MR][kc]
    uint4 *sz = reinterpret_cast<uint4 *>(smem + (size_t)gemv_x_floats(MR, tiles_per_cta) * 4); // [groups][2][8]
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;

    // ---- stage x (fp32, rows >= M zero) and the groups' scales / zeros -----------------------
    // (a fused prologue first: the rows' inverse rms over the whole row, in rmsnorm.cu's order)
    __shared__ float q4_inv[LLMRT_CUDA_FUSED_MAX_M], q4_partial[8];
    if (input == LLMRT_CUDA_FUSED_IN_RMSNORM) { // CTA-uniform
        for (int m = 0; m < M; m++) {
            const float inv = rmsnorm_row_inv(a.resid_x + (size_t)m * ldx, ldx, a.eps, q4_partial);
            if (tid == 0) q4_inv[m] = inv;
        }
        __syncthreads();
    }
    const int n_k = (t_end - t_begin) * kTileK;
    if (input != LLMRT_CUDA_FUSED_IN_ACT) {
        for (int i = tid; i < MR * n_k; i += kThreads) {
            const int m = i / n_k, j = i % n_k;
            const int src = perm ? perm[k_begin + j] : k_begin + j;
            xs[m * kc + j] = m < M && src >= 0 ? fused_input(input, x, a.up, a.resid_x, a.norm_w, q4_inv, m, ldx, src)
                                               : 0.0f;
        }
    } else if (perm == nullptr) {
        // 8 halves per 16-byte load (K % 64 == 0 and k_begin % 16 == 0 keep it aligned)
        const int chunks = n_k / 8;
        for (int i = tid; i < MR * chunks; i += kThreads) {
            const int m = i / chunks, c = i % chunks;
            float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            if (m < M) {
                const uint4 u = *reinterpret_cast<const uint4 *>(x + (size_t)m * K + k_begin + c * 8);
                const uint32_t w[4] = {u.x, u.y, u.z, u.w};
                Q4_UNROLL
                for (int e = 0; e < 4; e++) {
                    const float2 f = __half22float2(bits_h2(w[e]));
                    v[2 * e] = f.x;
                    v[2 * e + 1] = f.y;
                }
            }
            Q4_UNROLL
            for (int e = 0; e < 8; e++) xs[m * kc + c * 8 + e] = v[e];
        }
    } else {
        for (int i = tid; i < MR * n_k; i += kThreads) {
            const int m = i / n_k, j = i % n_k;
            const int src = perm[k_begin + j];
            xs[m * kc + j] = m < M && src >= 0 ? __half2float(x[(size_t)m * ldx + src]) : 0.0f;
        }
    }
    const int n_groups = (k_begin + n_k - 1) / gs - g_first + 1;
    for (int i = tid; i < n_groups * 16; i += kThreads) {
        const int gi = i >> 4, zo = (i >> 3) & 1, r = i & 7;
        const size_t at = ((size_t)(g_first + gi) * NB + nb) * 8 + r;
        sz[i] = zo ? d.zoff[at] : d.scales[at];
    }
    __syncthreads();

    // ---- stream this warp's tiles --------------------------------------------------------------
    const int per_warp = (t_end - t_begin + kWarps - 1) / kWarps;
    const int w_begin = t_begin + warp * per_warp;
    const int w_end = t_end < w_begin + per_warp ? t_end : w_begin + per_warp;
    float acc[MR][8];
    Q4_UNROLL
    for (int m = 0; m < MR; m++)
        Q4_UNROLL
        for (int i = 0; i < 8; i++) acc[m][i] = 0.0f;
    GroupConsts gc;
    int cur_group = -1;
    const uint4 *wp = d.qweight + (size_t)nb * 32 + lane;
    for (int t0 = w_begin; t0 < w_end; t0 += kUnroll) {
        uint4 q[kUnroll];
        Q4_UNROLL
        for (int u = 0; u < kUnroll; u++)
            q[u] = t0 + u < w_end ? __ldg(wp + (size_t)(t0 + u) * NB * 32) : make_uint4(0, 0, 0, 0);
        Q4_UNROLL
        for (int u = 0; u < kUnroll; u++) {
            const int tile = t0 + u;
            if (tile >= w_end) break;
            const int grp = tile * kTileK / gs;
            if (grp != cur_group) { // warp-uniform
                const uint4 *row = sz + (grp - g_first) * 16;
                group_consts<ZF>(gc, row[g], row[8 + g]);
                cur_group = grp;
            }
            const int kl = tile * kTileK - k_begin + 2 * t; // this lane's k rows: kl, kl+1, kl+8, kl+9
            float2 xv[MR][2];
            Q4_UNROLL
            for (int m = 0; m < MR; m++) {
                xv[m][0] = *reinterpret_cast<const float2 *>(xs + m * kc + kl);
                xv[m][1] = *reinterpret_cast<const float2 *>(xs + m * kc + kl + 8);
            }
            const uint32_t words[4] = {q[u].x, q[u].y, q[u].z, q[u].w};
            Q4_UNROLL
            for (int j = 0; j < 4; j++) {
                uint32_t b[2][2];
                dequant_word<ZF>(words[j], j, gc, b);
                Q4_UNROLL
                for (int h = 0; h < 2; h++) {
                    const float2 w0 = __half22float2(bits_h2(b[h][0]));
                    const float2 w1 = __half22float2(bits_h2(b[h][1]));
                    Q4_UNROLL
                    for (int m = 0; m < MR; m++) {
                        float sum = acc[m][2 * j + h];
                        sum = fmaf(w0.x, xv[m][0].x, sum);
                        sum = fmaf(w0.y, xv[m][0].y, sum);
                        sum = fmaf(w1.x, xv[m][1].x, sum);
                        sum = fmaf(w1.y, xv[m][1].y, sum);
                        acc[m][2 * j + h] = sum;
                    }
                }
            }
        }
    }

    // ---- reduce: the 4 lanes of a column (t), then the 4 warps ---------------------------------
    Q4_UNROLL
    for (int m = 0; m < MR; m++)
        Q4_UNROLL
        for (int i = 0; i < 8; i++) {
            float v = acc[m][i];
            v += __shfl_xor_sync(0xffffffffu, v, 1);
            v += __shfl_xor_sync(0xffffffffu, v, 2);
            acc[m][i] = v;
        }
    __syncthreads(); // xs is reused for the cross-warp sums
    float *red = xs; // [kWarps][MR][64]
    if (t == 0) {
        Q4_UNROLL
        for (int m = 0; m < MR; m++)
            Q4_UNROLL
            for (int i = 0; i < 8; i++) red[(warp * MR + m) * kBlockN + g + 8 * i] = acc[m][i];
    }
    __syncthreads();
    const int splits = d.splits;
    for (int i = tid; i < MR * kBlockN; i += kThreads) {
        const int m = i / kBlockN, c = i % kBlockN;
        if (m >= M) continue;
        float v = 0.0f;
        Q4_UNROLL
        for (int w = 0; w < kWarps; w++) v += red[(w * MR + m) * kBlockN + c];
        const int n = nb * kBlockN + c;
        if (splits > 1) d.partial[((size_t)split * M + m) * N + n] = v;
        else write_out(d.out, a.out_f32, d.bias, a.residual, (size_t)m * N + n, n, v);
    }
    if (splits == 1 || !arrive_last(d.tile_counters + nb, splits)) return;
    for (int i = tid; i < MR * kBlockN; i += kThreads) { // the last split: the block's sums
        const int m = i / kBlockN, n = nb * kBlockN + i % kBlockN;
        if (m >= M) continue;
        float v = __ldcg(d.partial + (size_t)m * N + n);
        for (int s = 1; s < splits; s++) v += __ldcg(d.partial + ((size_t)s * M + m) * N + n);
        write_out(d.out, a.out_f32, d.bias, a.residual, (size_t)m * N + n, n, v);
    }
}

template <int MR, bool ZF> int launch_mr(const GemvArgs &a, size_t smem, cudaStream_t stream) {
    const int ctas = a.w[a.n_w - 1].cta_begin + a.w[a.n_w - 1].N / kBlockN * a.w[a.n_w - 1].splits;
    LAUNCH((q4_gemv_kernel<MR, ZF>), ctas, kThreads, smem, stream, a);
    return (int)cudaGetLastError();
}

template <bool ZF> int launch_zf(const GemvArgs &a, int mr, size_t smem, cudaStream_t stream) {
    switch (mr) {
    case 1: return launch_mr<1, ZF>(a, smem, stream);
    case 2: return launch_mr<2, ZF>(a, smem, stream);
    case 4: return launch_mr<4, ZF>(a, smem, stream);
    case 8: return launch_mr<8, ZF>(a, smem, stream);
    default: return (int)cudaErrorInvalidValue;
    }
}

} // namespace gv

// Splits: enough CTAs for ~4 per SM (a 128-thread CTA streams ~4 KB per round of loads; several
// per SM keep enough bytes in flight for HBM), but at least 4 tiles per warp, and x of a CTA
// within the 48 KB of shared memory that needs no opt-in.
GemvPlan gemv_plan(int M, int N, int K, int gs, int sm_count) {
    using namespace gv;
    GemvPlan plan;
    plan.mr = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
    const int NB = N / kBlockN, T = K / kTileK;
    int splits = (4 * sm_count + NB - 1) / NB;
    const int max_splits = T / (4 * kWarps) > 1 ? T / (4 * kWarps) : 1;
    if (splits > max_splits) splits = max_splits;
    if (splits < 1) splits = 1;
    for (;;) {
        plan.tiles_per_cta = (T + splits - 1) / splits;
        plan.smem = gemv_smem(plan.mr, plan.tiles_per_cta, gs);
        if (plan.smem <= kSmemCap || splits >= T) break;
        splits++;
    }
    plan.splits = (T + plan.tiles_per_cta - 1) / plan.tiles_per_cta; // no empty CTA
    return plan;
}

int gemv_launch(const GemvArgs &a, int mr, size_t smem, int zero_float, cudaStream_t stream) {
    using namespace gv;
    if (a.n_w < 1 || a.n_w > kMaxGroup || a.M < 1 || a.M > mr || smem > kSmemCap ||
        (a.residual && a.n_w != 1))
        return (int)cudaErrorInvalidValue;
    int next = 0; // the weights' CTAs lie end to end from 0
    for (int i = 0; i < a.n_w; i++) {
        const GemvWeight &d = a.w[i];
        if (d.cta_begin != next || d.splits < 1 || gemv_smem(mr, d.tiles_per_cta, d.group_size) > smem ||
            (d.splits > 1 && (!d.partial || !d.tile_counters || d.N / kBlockN > kMaxSplitTiles)))
            return (int)cudaErrorInvalidValue;
        next += d.N / kBlockN * d.splits;
    }
    return zero_float ? launch_zf<true>(a, mr, smem, stream) : launch_zf<false>(a, mr, smem, stream);
}

} // namespace q4
