// attention_decode.cu: split-KV ("flash-decoding") attention over the paged KV cache for
// sequences with one new token each. Layout and launcher contract: cuda/attention.h.
//
// Why a separate kernel: at q_len = 1 the prefill kernel's grid (q tiles x heads) has one CTA per
// (sequence, query head), each using 1 of its 64 query rows and loading the whole context; the
// kv heads' K/V are loaded Hq/Hkv times, and a small batch at long context leaves most SMs idle.
// Here one CTA handles one (KV split, kv head, sequence):
//   - the Hq/Hkv query heads of the GQA group are the rows of one m16 mma tile (zero-padded), so
//     every K/V byte is loaded once per group and the math runs on tensor cores;
//   - the context is cut into n_splits ranges of whole kBlockN-token tiles, chosen so that the
//     grid fills the SMs (heuristic in choose_splits); each split writes its fp32 partial output
//     and log2-sum-exp2 into the caller's workspace, and attn_decode_combine_kernel merges them:
//       lse = log2 sum_s 2^lse_s,  O = sum_s 2^(lse_s - lse) O_s;
//     with one split the kernel writes the output directly (no workspace, no combine);
//   - inside a CTA, warp w takes tokens 16w .. 16w+15 of every tile (split-KV across warps: the
//     16 rows are too few to split Q), keeps its own online-softmax state, and the four warp
//     states are merged through shared memory at the end with the same LSE formula.
// K/V tiles stream through a cp.async ring exactly as in attention_prefill.cu (same swizzle,
// same zero-fill past the context so NaN in unused slots never reaches an mma). An 8-bit cache
// (KV = LLMRT_CUDA_KV_INT8 / FP8, cuda/kv8.cuh) is dequantised to T as its pieces are loaded
// (plain loads and 16-byte shared stores into the same ring): the math is the fp16/bf16 path.
#include "attention.h"

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kv8.cuh"
#include "launch.cuh"
#include "ptx_ops.cuh"

// `#pragma unroll` for nvcc; g++ (cusim) does not know it and -Wall warns.
#ifndef ATTN_UNROLL
#ifdef CUSIM
#define ATTN_UNROLL
#else
#define ATTN_UNROLL _Pragma("unroll")
#endif
#endif

namespace {
namespace dec { // (named too: the tests compile both attention .cu files into one unit)

// ---- element types ------------------------------------------------------------------------------
template <class T> struct AttnElem;
template <> struct AttnElem<__half> {
    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4],
                                               const uint32_t (&b)[2]) {
        mma_m16n8k16_f16f32(d, a, b, d);
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 h = __floats2half2_rn(lo, hi);
        uint32_t u;
        memcpy(&u, &h, 4);
        return u;
    }
    static __device__ __forceinline__ __half from(float x) {
        return __float2half_rn(x);
    }
};
template <> struct AttnElem<__nv_bfloat16> {
    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4],
                                               const uint32_t (&b)[2]) {
        mma_m16n8k16_bf16f32(d, a, b, d);
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        uint32_t u;
        memcpy(&u, &h, 4);
        return u;
    }
    static __device__ __forceinline__ __nv_bfloat16 from(float x) {
        return __float2bfloat16_rn(x);
    }
};

// ---- tile decisions -----------------------------------------------------------------------------
template <int HD> struct DecodeTraits {
    static constexpr int kHeadDim = HD;
    static_assert(kHeadDim % 16 == 0, "head dim must be a multiple of the mma k (16)");
    static constexpr int kRows = 16;   // query heads of one GQA group, padded to an m16 tile
    static constexpr int kBlockN = 64; // KV tokens per pipeline stage
    static constexpr int kWarps = 4;   // warp w: tokens 16w .. 16w+15 of each tile
    static constexpr int kThreads = kWarps * 32;
    // Decode is bandwidth bound: what matters is bytes in flight per SM. One stage in flight
    // (32 KB at hd 128) per CTA and 2-3 CTAs per SM is well above the ~20 KB/SM that Little's
    // law asks for at 2-3.35 TB/s; hd 64 tiles are half the size, so a third stage.
    static constexpr int kStages = HD == 64 ? 3 : 2;
    static constexpr int kChunks = HD / 8;
    static constexpr int kRowBytes = HD * 2;
    static constexpr int kTileBytes = kBlockN * kRowBytes;
    static constexpr int kQBytes = kRows * kRowBytes;
    static constexpr int kRingBytes = 2 * kStages * kTileBytes;
    // After the loop the ring holds each warp's unnormalised O [16][HD] and (m, l) [16][2], fp32.
    static constexpr int kMergeBytes = kWarps * kRows * (HD + 2) * 4;
    static constexpr int kSmemBytes =
        kQBytes + (kRingBytes > kMergeBytes ? kRingBytes : kMergeBytes);
    static constexpr int kLoadRows = kThreads / kChunks;
    static constexpr int kLoadPasses = kBlockN / kLoadRows;
    static_assert(HD == 64 || HD == 128, "head dims 64 and 128");
    static_assert(kBlockN == kWarps * 16, "one 16-token k-step per warp per tile");
    static_assert(kThreads % kChunks == 0 && kBlockN % kLoadRows == 0, "whole rows per pass");
    static_assert(kStages >= 2, "cp.async ring needs two stages");
};
// Heuristic limits (host): a split streams at least kMinTilesPerSplit tiles (256 tokens: at hd
// 128, 128 KB of K/V per kv head) so that the CTA prologue, the Q load and the combine pass stay
// small next to it; at most kMaxSplits splits.
constexpr int kMinTilesPerSplit = 4;
constexpr int kMaxSplits = 32;
constexpr int kTileTokens = 64; // == DecodeTraits<HD>::kBlockN for every HD

template <int HD> __device__ __forceinline__ int swz(int r, int c) {
    return r * (HD * 2) + ((c ^ (r & 7)) << 4);
}

constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ int imin(int a, int b) {
    return a < b ? a : b;
}

// The first tile the token at position ctx - 1 reads: 0, or under a sliding window W the tile
// of its first key ctx - W.
__device__ __forceinline__ int first_tile(int ctx, int window) {
    return window > 0 && ctx > window ? (ctx - window) / kTileTokens : 0;
}

// The tiles [first + split * per, ...) of split `split` of a context of ctx tokens; shared by the
// attention and the combine kernel, which derives from it how many splits hold tokens.
__device__ __forceinline__ int tiles_per_split(int ctx, int window, int n_splits) {
    const int n_tiles = (ctx + kTileTokens - 1) / kTileTokens - first_tile(ctx, window);
    return (n_tiles + n_splits - 1) / n_splits;
}

// ---- the attention kernel -----------------------------------------------------------------------
template <class T, int HD, int KV>
__global__ void __launch_bounds__(DecodeTraits<HD>::kThreads)
    attn_decode_kernel(const T *__restrict__ q,                  // [T, Hq, HD]
                       T *__restrict__ out,                      // [T, Hq, HD] (when 1 split)
                       const void *__restrict__ k_cache,         // [n_blocks, bs, Hkv, HD] T,
                                                                 // or an 8-bit pool (kv8.cuh)
                       const void *__restrict__ v_cache,         // the same for V
                       const int32_t *__restrict__ block_tables, // [rows, max_blocks]
                       const int32_t *__restrict__ q_start,      // [n_seqs] q row of each sequence
                       const int32_t *__restrict__ ctx_len,      // [n_seqs]
                       const int32_t *__restrict__ seq_slot,     // [n_seqs]
                       int n_seqs,                               // = gridDim.z
                       int n_heads,                              // Hq
                       int n_kv_heads,                           // Hkv (= gridDim.y)
                       int block_size,                           // tokens per KV block
                       int max_blocks,                           // block_tables row stride
                       float scale_log2,                         // softmax scale * log2(e)
                       int window,                               // sliding window (0: none)
                       float *__restrict__ part_o,   // [n_splits, n_seqs, Hq, HD] (when > 1 split)
                       float *__restrict__ part_lse) // [n_splits, n_seqs, Hq] log2-sum-exp2
{
    using Tr = DecodeTraits<HD>;
    using E = AttnElem<T>;
    constexpr int BN = Tr::kBlockN, S = Tr::kStages, CH = Tr::kChunks;

    DYN_SMEM(unsigned char, smem);
    unsigned char *s_q = smem;                     // [16][HD], swizzled
    unsigned char *s_k = smem + Tr::kQBytes;       // [S][BN][HD], swizzled
    unsigned char *s_v = s_k + S * Tr::kTileBytes; // [S][BN][HD], swizzled

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, tq = lane & 3;
    const int split = blockIdx.x, n_splits = gridDim.x, kvh = blockIdx.y, seq = blockIdx.z;
    const int group = n_heads / n_kv_heads; // <= 16 (checked by the launcher)

    const int ctx = ctx_len[seq];
    const int n_tiles = (ctx + BN - 1) / BN;
    const int per = tiles_per_split(ctx, window, n_splits);
    const int t_begin = first_tile(ctx, window) + split * per, t_end = imin(n_tiles, t_begin + per);
    // keys below lo are outside the window: masked, and never loaded (their blocks may be freed)
    const int lo = window > 0 && ctx > window ? ctx - window : 0;
    if (t_begin >= t_end) return; // a short context needs fewer splits; the combine knows

    // -- the group's query rows -> shared (rows >= group zero-filled) ---------------------------
    const int64_t q_row = (int64_t)q_start[seq] * n_heads + kvh * group; // first head row
    for (int i = tid; i < Tr::kRows * CH; i += Tr::kThreads) {
        const int r = i / CH, c = i % CH;
        const bool ok = r < group;
        cp_async_cg16(s_q + swz<HD>(r, c), ok ? (const void *)(q + (q_row + r) * HD + c * 8) : q,
                      ok ? 16 : 0);
    }
    cp_async_commit();

    // -- K/V loader (see attention_prefill.cu) ---------------------------------------------------
    const int32_t *btab = block_tables + (int64_t)seq_slot[seq] * max_blocks;
    const kv8::Layout L8 = {block_size, n_kv_heads, HD}; // 8-bit pools only
    const int ld_row = tid / CH, ld_chunk = tid % CH;
    int blk[Tr::kLoadPasses];
    auto fetch_blocks = [&](int t) {
        ATTN_UNROLL
        for (int i = 0; i < Tr::kLoadPasses; i++) {
            const int pos = t * BN + ld_row + i * Tr::kLoadRows;
            blk[i] = pos < ctx && pos >= lo ? __ldg(btab + pos / block_size) : -1;
        }
    };
    auto issue_kv = [&](int t) {
        if (t < t_end) {
            unsigned char *dk = s_k + ((t - t_begin) % S) * Tr::kTileBytes;
            unsigned char *dv = s_v + ((t - t_begin) % S) * Tr::kTileBytes;
            ATTN_UNROLL
            for (int i = 0; i < Tr::kLoadPasses; i++) {
                const int r = ld_row + i * Tr::kLoadRows;
                const int off = swz<HD>(r, ld_chunk);
                if (blk[i] >= 0) {
                    const int pos = t * BN + r;
                    const int64_t slot = (int64_t)blk[i] * block_size + pos % block_size;
                    if constexpr (KV == LLMRT_CUDA_KV_ACT) {
                        const int64_t e = (slot * n_kv_heads + kvh) * HD + ld_chunk * 8;
                        cp_async_cg16(dk + off, static_cast<const T *>(k_cache) + e);
                        cp_async_cg16(dv + off, static_cast<const T *>(v_cache) + e);
                    } else {
                        kv8::load_piece<T, KV>(dk + off, k_cache, L8, slot, kvh, ld_chunk);
                        kv8::load_piece<T, KV>(dv + off, v_cache, L8, slot, kvh, ld_chunk);
                    }
                } else if constexpr (KV == LLMRT_CUDA_KV_ACT) {
                    cp_async_cg16(dk + off, k_cache, 0);
                    cp_async_cg16(dv + off, v_cache, 0);
                } else {
                    kv8::zero_piece(dk + off);
                    kv8::zero_piece(dv + off);
                }
            }
            fetch_blocks(t + 1);
        }
        cp_async_commit();
    };

    fetch_blocks(t_begin);
    ATTN_UNROLL
    for (int t = 0; t < S - 1; t++)
        issue_kv(t_begin + t);

    cp_async_wait<S - 1>();
    __syncthreads();
    uint32_t qf[HD / 16][4];
    ATTN_UNROLL
    for (int kk = 0; kk < HD / 16; kk++)
        ldmatrix_x4(qf[kk], s_q + swz<HD>(lane & 15, kk * 2 + (lane >> 4)));

    float o[HD / 8][4];
    ATTN_UNROLL
    for (int d = 0; d < HD / 8; d++)
        o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float row_m[2] = {-INFINITY, -INFINITY};
    float row_l[2] = {0.f, 0.f};

    for (int t = t_begin; t < t_end; t++) {
        cp_async_wait<S - 2>();
        __syncthreads();
        issue_kv(t + S - 1);
        const unsigned char *ks = s_k + ((t - t_begin) % S) * Tr::kTileBytes;
        const unsigned char *vs = s_v + ((t - t_begin) % S) * Tr::kTileBytes;

        // S = Q K_wᵀ: 16 heads x this warp's 16 tokens
        float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
        ATTN_UNROLL
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t kf[4];
            ldmatrix_x4(kf, ks + swz<HD>(warp * 16 + (lane & 7) + ((lane >> 4) << 3),
                                         kk * 2 + ((lane >> 3) & 1)));
            const uint32_t b0[2] = {kf[0], kf[1]}, b1[2] = {kf[2], kf[3]};
            E::mma(s[0], qf[kk], b0);
            E::mma(s[1], qf[kk], b1);
        }
        // only the last tile reaches past the context, only the first below the window
        if (t == n_tiles - 1 || (lo > 0 && t * BN < lo)) {
            ATTN_UNROLL
            for (int n = 0; n < 2; n++) {
                ATTN_UNROLL
                for (int i = 0; i < 4; i++) {
                    const int key = t * BN + warp * 16 + n * 8 + 2 * tq + (i & 1);
                    if (key >= ctx || key < lo) s[n][i] = -INFINITY;
                }
            }
        }

        // online softmax, per row g + 8r (see attention_prefill.cu)
        ATTN_UNROLL
        for (int r = 0; r < 2; r++) {
            float mx = fmaxf(row_m[r], fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]),
                                             fmaxf(s[1][2 * r], s[1][2 * r + 1])));
            mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
            const float base = mx == -INFINITY ? 0.f : mx * scale_log2;
            const float corr = exp2f(row_m[r] * scale_log2 - base);
            row_m[r] = mx;
            row_l[r] *= corr;
            ATTN_UNROLL
            for (int d = 0; d < HD / 8; d++) {
                o[d][2 * r] *= corr;
                o[d][2 * r + 1] *= corr;
            }
            ATTN_UNROLL
            for (int n = 0; n < 2; n++) {
                ATTN_UNROLL
                for (int i = 2 * r; i < 2 * r + 2; i++) {
                    s[n][i] = exp2f(fmaf(s[n][i], scale_log2, -base));
                    row_l[r] += s[n][i];
                }
            }
        }

        // O += P V_w (one k-step: this warp's 16 tokens)
        const uint32_t pa[4] = {E::pack(s[0][0], s[0][1]), E::pack(s[0][2], s[0][3]),
                                E::pack(s[1][0], s[1][1]), E::pack(s[1][2], s[1][3])};
        ATTN_UNROLL
        for (int d2 = 0; d2 < HD / 16; d2++) {
            uint32_t vf[4];
            ldmatrix_x4_trans(vf, vs + swz<HD>(warp * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                               d2 * 2 + (lane >> 4)));
            const uint32_t b0[2] = {vf[0], vf[1]}, b1[2] = {vf[2], vf[3]};
            E::mma(o[2 * d2], pa, b0);
            E::mma(o[2 * d2 + 1], pa, b1);
        }
    }
    cp_async_wait_all();
    __syncthreads(); // every warp is done with the ring: reuse it for the merge

    // -- merge the 4 warps' states: ring -> s_o [warp][16][HD], s_ml [warp][16][2] --------------
    float *s_o = reinterpret_cast<float *>(s_k);
    float *s_ml = s_o + Tr::kWarps * Tr::kRows * HD;
    ATTN_UNROLL
    for (int r = 0; r < 2; r++) {
        float l = row_l[r];
        l += __shfl_xor_sync(kFull, l, 1);
        l += __shfl_xor_sync(kFull, l, 2);
        const int row = g + 8 * r;
        if (tq == 0) {
            s_ml[(warp * Tr::kRows + row) * 2] = row_m[r];
            s_ml[(warp * Tr::kRows + row) * 2 + 1] = l;
        }
        ATTN_UNROLL
        for (int d = 0; d < HD / 8; d++)
            *reinterpret_cast<float2 *>(s_o + (warp * Tr::kRows + row) * HD + d * 8 + 2 * tq) =
                make_float2(o[d][2 * r], o[d][2 * r + 1]);
    }
    __syncthreads();

    // thread -> (row, d), consecutive threads along d: conflict-free smem reads, coalesced writes
    for (int i = tid; i < group * HD; i += Tr::kThreads) {
        const int row = i / HD, d = i % HD;
        float m = -INFINITY;
        ATTN_UNROLL
        for (int w = 0; w < Tr::kWarps; w++)
            m = fmaxf(m, s_ml[(w * Tr::kRows + row) * 2]);
        // m is finite: every split holds a token of the window, which some warp does not mask
        // (a warp whose keys are all masked has m = -inf, l = 0, o = 0: weight 0)
        float num = 0.f, den = 0.f;
        ATTN_UNROLL
        for (int w = 0; w < Tr::kWarps; w++) {
            const float wt = exp2f((s_ml[(w * Tr::kRows + row) * 2] - m) * scale_log2);
            den += wt * s_ml[(w * Tr::kRows + row) * 2 + 1];
            num += wt * s_o[(w * Tr::kRows + row) * HD + d];
        }
        const int h = kvh * group + row;
        if (n_splits == 1) {
            out[(q_row + row) * HD + d] = E::from(num / den);
        } else {
            const int64_t ph = ((int64_t)split * n_seqs + seq) * n_heads + h;
            part_o[ph * HD + d] = num / den;
            if (d == 0) part_lse[ph] = m * scale_log2 + log2f(den);
        }
    }
}

// ---- the combine kernel: merges the splits of one (sequence, query head) ------------------------
template <class T, int HD>
__global__ void __launch_bounds__(HD)
    attn_decode_combine_kernel(const float *__restrict__ part_o,    // [n_splits, n_seqs, Hq, HD]
                               const float *__restrict__ part_lse,  // [n_splits, n_seqs, Hq]
                               T *__restrict__ out,                 // [T, Hq, HD]
                               const int32_t *__restrict__ q_start, // [n_seqs]
                               const int32_t *__restrict__ ctx_len, // [n_seqs]
                               int n_seqs,                          // = gridDim.y
                               int n_heads,                         // Hq (= gridDim.x)
                               int n_splits,                        // splits of the attention grid
                               int window) {                        // sliding window (0: none)
    const int d = threadIdx.x, h = blockIdx.x, seq = blockIdx.y;
    const int ctx = ctx_len[seq];
    const int per = tiles_per_split(ctx, window, n_splits);
    const int n_valid = ((ctx + kTileTokens - 1) / kTileTokens - first_tile(ctx, window) + per - 1) /
                        per; // splits with tokens
    float m = -INFINITY;
    for (int sp = 0; sp < n_valid; sp++)
        m = fmaxf(m, part_lse[((int64_t)sp * n_seqs + seq) * n_heads + h]);
    // Fixed split order: the result does not depend on scheduling (it does on n_splits).
    float num = 0.f, den = 0.f;
    for (int sp = 0; sp < n_valid; sp++) {
        const int64_t ph = ((int64_t)sp * n_seqs + seq) * n_heads + h;
        const float wt = exp2f(part_lse[ph] - m);
        den += wt;
        num += wt * part_o[ph * HD + d];
    }
    out[((int64_t)q_start[seq] * n_heads + h) * HD + d] = AttnElem<T>::from(num / den);
}

// ---- host side ----------------------------------------------------------------------------------
int fail(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int fail(char *err, size_t err_size, int code, const char *fmt, ...) {
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

size_t split_bytes(int64_t n_seqs, int64_t n_heads, int64_t hd) { // one split's partials
    return (size_t)(n_seqs * n_heads * (hd + 1) * 4);
}

// Number of KV splits. units = CTAs per split (n_seqs * Hkv). Decode is bandwidth bound and every
// CTA of a launch streams the same number of tiles, so what counts is how many CTAs each SM holds
// at once and how evenly they spread. On an H100 (Llama-2-7B layer, ctx 4096) one CTA per SM
// reached ~1.3 TB/s, two per SM ~1.9 (batch 1) to 2.8 TB/s (batch 8), and a third resident CTA or a
// deeper cp.async ring added nothing: the target is one wave of 2 CTAs per SM,
// slots = n_sm * min(2, resident CTAs per SM).
//  - If one split already fills >= 80% of the slots, splitting only adds combine work: 1.
//  - Otherwise consider s = 1 .. cap, cap bounded by the context (each split >= 4 tiles), by
//    kMaxSplits and by the workspace; score s by how evenly units*s CTAs fill whole waves of
//    slots, eff(s) = units*s / (slots * ceil(units*s / slots)), and take the smallest s within
//    5% of the best score (fewer splits = less combine traffic).
int choose_splits(int64_t units, int max_ctx, int n_sm, int ctas_per_sm, int ws_cap) {
    const int64_t slots = (int64_t)n_sm * (ctas_per_sm >= 2 ? 2 : 1);
    if (units >= (int64_t)(0.8 * (double)slots)) return 1;
    const int max_tiles =
        max_ctx > 0 ? (max_ctx + kTileTokens - 1) / kTileTokens : kMaxSplits * kMinTilesPerSplit;
    int cap = max_tiles / kMinTilesPerSplit;
    if (cap > kMaxSplits) cap = kMaxSplits;
    if (cap > ws_cap) cap = ws_cap;
    if (cap <= 1) return 1;
    auto eff = [&](int s) {
        const int64_t ctas = units * s;
        return (double)ctas / ((double)slots * (double)((ctas + slots - 1) / slots));
    };
    double best = 0;
    for (int s = 1; s <= cap; s++)
        if (eff(s) > best) best = eff(s);
    for (int s = 1; s <= cap; s++)
        if (eff(s) >= 0.95 * best) return s;
    return 1;
}

// Resolves the split count for `a` (validated) on the current device: > 0, or a negative code.
template <class T, int HD, int KV>
int plan_splits(const llmrt_cuda_attn_args *a, char *err, size_t err_size) {
    using Tr = DecodeTraits<HD>;
    const size_t per_split = split_bytes(a->n_seqs, a->n_heads, HD);
    const int64_t ws_cap64 = a->workspace ? (int64_t)(a->workspace_bytes / per_split) : 0;
    const int ws_cap = ws_cap64 > 65535 ? 65535 : (int)ws_cap64;
    if (a->num_splits > 0) {
        if (a->num_splits > 1 && a->num_splits > ws_cap)
            return fail(err, err_size, LLMRT_CUDA_ATTN_EWORKSPACE,
                        "attention decode: %d splits need %zu bytes of workspace, have %zu%s",
                        a->num_splits, per_split * (size_t)a->num_splits, a->workspace_bytes,
                        a->workspace ? "" : " (workspace is NULL)");
        return a->num_splits;
    }
    int dev = 0, n_sm = 0, ctas = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev);
    if (e == cudaSuccess && Tr::kSmemBytes > 48 * 1024)
        e = cudaFuncSetAttribute(attn_decode_kernel<T, HD, KV>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes);
    if (e == cudaSuccess)
        // (the C entry point: cuda_runtime.h's template goes through ...WithFlags, which cusim
        // does not provide)
        e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &ctas, reinterpret_cast<const void *>(attn_decode_kernel<T, HD, KV>), Tr::kThreads,
            Tr::kSmemBytes);
    if (e != cudaSuccess)
        return fail(err, err_size, LLMRT_CUDA_ATTN_ECUDA,
                    "attention decode: device query failed: %s", cudaGetErrorString(e));
    return choose_splits((int64_t)a->n_seqs * a->n_kv_heads, a->max_ctx_len, n_sm, ctas, ws_cap);
}

template <class T, int HD, int KV>
int launch_decode(const llmrt_cuda_attn_args *a, cudaStream_t stream, char *err, size_t err_size) {
    using Tr = DecodeTraits<HD>;
    const int n_splits = plan_splits<T, HD, KV>(a, err, err_size);
    if (n_splits < 0) return n_splits;
    if (Tr::kSmemBytes > 48 * 1024) { // per kernel and device; cheap, so every launch
        cudaError_t e = cudaFuncSetAttribute(attn_decode_kernel<T, HD, KV>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             Tr::kSmemBytes);
        if (e != cudaSuccess)
            return fail(err, err_size, LLMRT_CUDA_ATTN_ECUDA,
                        "attention decode: cannot allow %d bytes of shared memory: %s",
                        Tr::kSmemBytes, cudaGetErrorString(e));
    }
    float *part_o = nullptr, *part_lse = nullptr;
    if (n_splits > 1) {
        part_o = static_cast<float *>(a->workspace);
        part_lse = part_o + (size_t)n_splits * a->n_seqs * a->n_heads * HD;
    }
    LAUNCH((attn_decode_kernel<T, HD, KV>), dim3(n_splits, a->n_kv_heads, a->n_seqs),
           Tr::kThreads, Tr::kSmemBytes, stream, static_cast<const T *>(a->q),
           static_cast<T *>(a->out), a->k_cache, a->v_cache, a->block_tables,
           a->q_start, a->ctx_len, a->seq_slot, (int)a->n_seqs, (int)a->n_heads, (int)a->n_kv_heads,
           (int)a->block_size, (int)a->max_blocks, a->scale * 1.4426950408889634f,
           (int)a->window, part_o, part_lse);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && n_splits > 1) {
        LAUNCH((attn_decode_combine_kernel<T, HD>), dim3(a->n_heads, a->n_seqs), HD, 0, stream,
               static_cast<const float *>(part_o), static_cast<const float *>(part_lse),
               static_cast<T *>(a->out), a->q_start, a->ctx_len, (int)a->n_seqs, (int)a->n_heads,
               n_splits, (int)a->window);
        e = cudaGetLastError();
    }
    if (e != cudaSuccess)
        return fail(err, err_size, LLMRT_CUDA_ATTN_ECUDA, "attention decode: launch failed: %s",
                    cudaGetErrorString(e));
    return 0;
}

// Decode-only checks on top of llmrt_cuda_attention_check.
int check_decode(const llmrt_cuda_attn_args *a, char *err, size_t err_size) {
    const char *who = "attention decode";
    if (int rc = llmrt_cuda_attention_check(a, who, err, err_size)) return rc;
    const int group = a->n_heads / a->n_kv_heads;
    if (group > DecodeTraits<64>::kRows)
        return fail(err, err_size, LLMRT_CUDA_ATTN_ESHAPE,
                    "%s: %d query heads per kv head unsupported (at most %d); use "
                    "llmrt_cuda_attention_prefill",
                    who, group, DecodeTraits<64>::kRows);
    if (a->n_seqs > 65535 || a->n_kv_heads > 65535)
        return fail(err, err_size, LLMRT_CUDA_ATTN_ESHAPE,
                    "%s: n_seqs %d / n_kv_heads %d over the grid limit 65535", who, a->n_seqs,
                    a->n_kv_heads);
    if (a->n_tokens < a->n_seqs)
        return fail(err, err_size, LLMRT_CUDA_ATTN_EARG, "%s: n_tokens %d < n_seqs %d", who,
                    a->n_tokens, a->n_seqs);
    if (a->num_splits < 0 || a->num_splits > 65535)
        return fail(err, err_size, LLMRT_CUDA_ATTN_EARG, "%s: num_splits %d outside 0..65535", who,
                    a->num_splits);
    if (a->workspace && ((uintptr_t)a->workspace & 15))
        return fail(err, err_size, LLMRT_CUDA_ATTN_EWORKSPACE,
                    "%s: workspace (%p) is not 16-byte aligned", who, a->workspace);
    return 0;
}

} // namespace dec
} // namespace

extern "C" size_t llmrt_cuda_attention_decode_workspace_bytes(int32_t max_seqs, int32_t n_heads,
                                                              int32_t head_dim,
                                                              int32_t max_splits) {
    if (max_seqs <= 0 || n_heads <= 0 || head_dim <= 0 || max_splits <= 0) return 0;
    return (size_t)max_splits * dec::split_bytes(max_seqs, n_heads, head_dim);
}

namespace {
namespace dec {
// Closed dispatch over the cache's storage for one (T, HD) (kv checked by check_decode).
template <class T, int HD>
int plan_splits_kv(const llmrt_cuda_attn_args *a, char *err, size_t err_size) {
    if (a->kv == LLMRT_CUDA_KV_INT8) return plan_splits<T, HD, LLMRT_CUDA_KV_INT8>(a, err, err_size);
    if (a->kv == LLMRT_CUDA_KV_FP8) return plan_splits<T, HD, LLMRT_CUDA_KV_FP8>(a, err, err_size);
    return plan_splits<T, HD, LLMRT_CUDA_KV_ACT>(a, err, err_size);
}
template <class T, int HD>
int launch_decode_kv(const llmrt_cuda_attn_args *a, cudaStream_t s, char *err, size_t err_size) {
    if (a->kv == LLMRT_CUDA_KV_INT8) return launch_decode<T, HD, LLMRT_CUDA_KV_INT8>(a, s, err, err_size);
    if (a->kv == LLMRT_CUDA_KV_FP8) return launch_decode<T, HD, LLMRT_CUDA_KV_FP8>(a, s, err, err_size);
    return launch_decode<T, HD, LLMRT_CUDA_KV_ACT>(a, s, err, err_size);
}
} // namespace dec
} // namespace

extern "C" int llmrt_cuda_attention_decode_num_splits(const llmrt_cuda_attn_args *a, char *err,
                                                      size_t err_size) {
    if (int rc = dec::check_decode(a, err, err_size)) return rc;
    if (a->n_seqs == 0) return 1;
    const bool bf16 = a->dtype == LLMRT_CUDA_ATTN_BF16;
    if (a->head_dim == 64)
        return bf16 ? dec::plan_splits_kv<__nv_bfloat16, 64>(a, err, err_size)
                    : dec::plan_splits_kv<__half, 64>(a, err, err_size);
    return bf16 ? dec::plan_splits_kv<__nv_bfloat16, 128>(a, err, err_size)
                : dec::plan_splits_kv<__half, 128>(a, err, err_size);
}

extern "C" int llmrt_cuda_attention_decode(const llmrt_cuda_attn_args *a, void *stream, char *err,
                                           size_t err_size) {
    if (int rc = dec::check_decode(a, err, err_size)) return rc;
    if (a->n_seqs == 0) return 0;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    // Closed dispatch over (dtype, head_dim); anything else was rejected with a message.
    const bool bf16 = a->dtype == LLMRT_CUDA_ATTN_BF16;
    if (a->head_dim == 64)
        return bf16 ? dec::launch_decode_kv<__nv_bfloat16, 64>(a, s, err, err_size)
                    : dec::launch_decode_kv<__half, 64>(a, s, err, err_size);
    return bf16 ? dec::launch_decode_kv<__nv_bfloat16, 128>(a, s, err, err_size)
                : dec::launch_decode_kv<__half, 128>(a, s, err, err_size);
}
