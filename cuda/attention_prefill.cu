// attention_prefill.cu: causal flash attention (FlashAttention-2 forward) over the paged KV cache,
// for packed varlen batches: prefill chunks with any past length (chunked prefill, prefix-cache
// hits), and decodes too (q_len = 1 is just a short sequence). Layout and launcher contract:
// cuda/attention.h.
//
// One CTA = one tile of kBlockM query rows of one sequence and one query head. The Q tile is
// loaded once (cp.async) and kept in registers as mma A fragments; K/V tiles of kBlockN tokens
// are gathered through the block table with cp.async into a kStages-deep ring of XOR-swizzled
// shared-memory buffers. Each warp owns 16 query rows (split-Q, as in FA2), so softmax row
// statistics need only quad shuffles, never shared memory:
//   S = Q Kᵀ           mma.m16n8k16 (K rows via ldmatrix.x4: K is already "col" for B)
//   online softmax     m' = max(m, rowmax S); P = exp2(S·c − m'·c), c = scale·log2(e);
//                      l = l·exp2((m − m')·c) + rowsum P; O = O·exp2((m − m')·c) + P V
//   O += P V           P converted to f16/bf16 in registers and reused as the A operand
//                      (the S accumulator layout is the A fragment layout); V via ldmatrix.trans
// KV tiles entirely above the causal diagonal (or below a sliding window) are never loaded;
// element masks are applied only on
// tiles that cross the diagonal (or the end of the context). Rows of the tile past q_len, and KV
// rows past ctx_len, are zero-filled by cp.async (src-size 0), so NaN in unused cache slots never
// reaches an mma (0·NaN would poison a whole output row).
//
// Grid: x = an upper bound of the number of q tiles of all sequences (each CTA finds its
// (sequence, tile) by a warp scan over q_len; CTAs past the last tile exit at once), y = Hq.
// Blocks are taken in reverse so that the last (longest, causally) tiles start first.
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
namespace pf { // (named too: the tests compile both attention .cu files into one unit)

// ---- element types ------------------------------------------------------------------------------
// What differs between fp16 and bf16: the mma instruction and the float -> 2-element packing.
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
};

// ---- tile decisions -----------------------------------------------------------------------------
template <int HD> struct PrefillTraits {
    static constexpr int kHeadDim = HD;
    static_assert(kHeadDim % 16 == 0, "head dim must be a multiple of the mma k (16)");
    // 64 query rows = 4 warps x one m16 tile each. FA2 uses 128 rows for hd 128 on sm80; 64 keeps
    // registers (O: HD/2 floats per thread) and the tail waste of short chunks down, and gives
    // twice the CTAs for the short prompts a serving batch mostly has.
    static constexpr int kBlockM = 64;
    static constexpr int kBlockN = 64; // KV tokens per pipeline stage (4 blocks of 16)
    static constexpr int kWarps = kBlockM / 16;
    static constexpr int kThreads = kWarps * 32;
    // Ring depth: stage t+kStages-1 loads while stage t computes. hd 64 tiles are small (8 KB
    // each for K and V), so a third stage costs little and hides more latency; hd 128 stays at 2
    // to keep 2 CTAs (8 warps) per A100 SM.
    static constexpr int kStages = HD == 64 ? 3 : 2;
    static constexpr int kChunks = HD / 8; // 16-byte chunks per row
    static constexpr int kRowBytes = HD * 2;
    static constexpr int kTileBytes = kBlockN * kRowBytes; // one K (or V) stage
    static constexpr int kQBytes = kBlockM * kRowBytes;
    // Q only passes through shared memory (into registers at the start, O out at the end), so it
    // borrows the K buffer of the ring's last stage, which the loop first fills after a barrier:
    // 64 KB instead of 80 at hd 128 (room for a third CTA per H100 SM, or for a third stage).
    static constexpr int kSmemBytes = 2 * kStages * kTileBytes;
    // CTAs per SM the register allocation must allow (__launch_bounds__). hd 64: 3 (~150 regs,
    // no spills). hd 128: 2 (~220 regs). Shared memory would let 3 run on an H100, but 168
    // registers spill there, and on the H100 the 3-CTA build measured 5% slower than this one
    // (Llama-2-7B layer, 2048-token prompt: 312 vs 297 us).
    static constexpr int kMinBlocks = HD == 64 ? 3 : 2;
    static constexpr int kLoadRows = kThreads / kChunks;    // rows one cp.async pass covers
    static constexpr int kLoadPasses = kBlockN / kLoadRows; // passes per K (or V) tile
    static_assert(HD == 64 || HD == 128, "head dims 64 and 128");
    static_assert(kBlockM % 16 == 0 && kBlockN % 16 == 0, "m16n8k16 tiles");
    static_assert(kThreads % kChunks == 0 && kBlockN % kLoadRows == 0, "whole rows per pass");
    static_assert(kBlockM * kChunks % kThreads == 0, "whole Q tile per pass");
    static_assert(kStages >= 2, "cp.async ring needs two stages");
    static_assert(kQBytes <= kTileBytes, "Q tile fits in one K stage");
};

// Byte offset of 16-byte chunk c of row r in a [rows][HD] tile. XOR-ing the chunk with r % 8 puts
// the 8 rows an ldmatrix phase reads (same logical chunk) into 8 different 16-byte bank groups,
// and the 8 chunks a quarter warp writes with cp.async (one row, consecutive chunks) likewise.
template <int HD> __device__ __forceinline__ int swz(int r, int c) {
    return r * (HD * 2) + ((c ^ (r & 7)) << 4);
}

constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ int imin(int a, int b) {
    return a < b ? a : b;
}

// Tile `tile` of the concatenation of all sequences' q tiles -> its sequence (or -1 past the end)
// and the tile index inside the sequence. Every lane of the calling warp gets the answer.
template <int BM>
__device__ __forceinline__ int find_q_tile(const int32_t *__restrict__ q_len, int n_seqs, int tile,
                                           int *q_tile) {
    const int lane = threadIdx.x & 31;
    int before = 0; // tiles of the sequences before this group of 32
    for (int s0 = 0; s0 < n_seqs; s0 += 32) {
        const int s = s0 + lane;
        const int nt = s < n_seqs ? (q_len[s] + BM - 1) / BM : 0;
        int incl = nt; // inclusive scan of nt over the warp
        for (int o = 1; o < 32; o <<= 1) {
            const int v = __shfl_up_sync(kFull, incl, o);
            if (lane >= o) incl += v;
        }
        const int total = __shfl_sync(kFull, incl, 31);
        if (tile < before + total) {
            const unsigned hit = __ballot_sync(kFull, tile < before + incl);
            const int L = __ffs((int)hit) - 1;
            *q_tile = tile - before - __shfl_sync(kFull, incl - nt, L);
            return s0 + L;
        }
        before += total;
    }
    return -1;
}

// ---- the kernel ---------------------------------------------------------------------------------
template <class T, int HD, int KV>
__global__ void __launch_bounds__(PrefillTraits<HD>::kThreads, PrefillTraits<HD>::kMinBlocks)
    attn_prefill_kernel(const T *__restrict__ q,                  // [T, Hq, HD]
                        T *__restrict__ out,                      // [T, Hq, HD]
                        const void *__restrict__ k_cache,         // [n_blocks, bs, Hkv, HD] T, or
                                                                  // an 8-bit pool (kv8.cuh)
                        const void *__restrict__ v_cache,         // the same for V
                        const int32_t *__restrict__ block_tables, // [rows, max_blocks]
                        const int32_t *__restrict__ q_start,      // [n_seqs]
                        const int32_t *__restrict__ q_len,        // [n_seqs]
                        const int32_t *__restrict__ ctx_len,      // [n_seqs]
                        const int32_t *__restrict__ seq_slot,     // [n_seqs]
                        int n_seqs,                               // sequences
                        int n_heads,                              // Hq (= gridDim.y)
                        int n_kv_heads,                           // Hkv
                        int block_size,                           // tokens per KV block
                        int max_blocks,                           // block_tables row stride
                        float scale_log2,                         // softmax scale * log2(e)
                        int window) {                             // sliding window (0: none)
    using Tr = PrefillTraits<HD>;
    using E = AttnElem<T>;
    constexpr int BM = Tr::kBlockM, BN = Tr::kBlockN, S = Tr::kStages, CH = Tr::kChunks;

    DYN_SMEM(unsigned char, smem);
    unsigned char *s_k = smem;                           // [S][BN][HD], swizzled
    unsigned char *s_v = s_k + S * Tr::kTileBytes;       // [S][BN][HD], swizzled
    unsigned char *s_q = s_k + (S - 1) * Tr::kTileBytes; // [BM][HD] = K stage S-1 (see traits)

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, tq = lane & 3; // mma fragment row group and column pair
    const int head = blockIdx.y;
    const int kvh = head / (n_heads / n_kv_heads);

    int qt = 0;
    const int seq = find_q_tile<BM>(q_len, n_seqs, (int)(gridDim.x - 1 - blockIdx.x), &qt);
    if (seq < 0) return; // past the last tile (the grid is an upper bound); uniform per CTA

    const int qlen = q_len[seq], ctx = ctx_len[seq];
    const int m0 = qt * BM;                 // first row of the tile within the sequence
    const int rows = imin(BM, qlen - m0);   // valid rows of the tile
    const int p_first = ctx - qlen + m0;    // position of the tile's first row
    const int p_last = p_first + rows - 1;  // ... and of its last valid row
    const int n_kv_tiles = p_last / BN + 1; // KV tiles above the diagonal: never loaded
    // Sliding window W: row p sees keys (p - W, p]. Tiles wholly below the first row's window
    // are never loaded, nor are keys below it (zero-filled: their blocks may be freed).
    const int lo_first = window > 0 && p_first >= window ? p_first - window + 1 : 0;
    const int t_first = lo_first / BN;
    const int64_t row_stride = (int64_t)n_heads * HD;
    const T *q_tile = q + ((int64_t)(q_start[seq] + m0) * n_heads + head) * HD;
    const int32_t *btab = block_tables + (int64_t)seq_slot[seq] * max_blocks;

    // -- Q tile -> shared (rows past q_len zero-filled), one cp.async group -----------------------
    for (int i = tid; i < BM * CH; i += Tr::kThreads) {
        const int r = i / CH, c = i % CH;
        const bool ok = r < rows;
        cp_async_cg16(s_q + swz<HD>(r, c), ok ? (const void *)(q_tile + r * row_stride + c * 8) : q,
                      ok ? 16 : 0);
    }
    cp_async_commit();

    // -- K/V tile loader: thread -> (rows ld_row + i*kLoadRows, chunk ld_chunk) ------------------
    // Block ids for the next tile are fetched one tile ahead (blk[]), so the block-table load
    // latency hides behind the current tile's math instead of stalling the cp.async issue.
    const int ld_row = tid / CH, ld_chunk = tid % CH;
    const kv8::Layout L8 = {block_size, n_kv_heads, HD}; // 8-bit pools only
    int blk[Tr::kLoadPasses];
    auto fetch_blocks = [&](int t) {
        ATTN_UNROLL
        for (int i = 0; i < Tr::kLoadPasses; i++) {
            const int pos = t * BN + ld_row + i * Tr::kLoadRows;
            blk[i] = pos < ctx && pos >= lo_first ? __ldg(btab + pos / block_size) : -1;
        }
    };
    // tile t into stage (t - t_first) % S (the first tiles fill stages 0.., as without a window:
    // stage S-1 holds Q until it is in registers); always commits (uniform counting)
    auto issue_kv = [&](int t) {
        if (t < n_kv_tiles) {
            unsigned char *dk = s_k + ((t - t_first) % S) * Tr::kTileBytes;
            unsigned char *dv = s_v + ((t - t_first) % S) * Tr::kTileBytes;
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
                    } else { // an 8-bit pool: dequantised into the same ring (kv8.cuh)
                        kv8::load_piece<T, KV>(dk + off, k_cache, L8, slot, kvh, ld_chunk);
                        kv8::load_piece<T, KV>(dv + off, v_cache, L8, slot, kvh, ld_chunk);
                    }
                } else if constexpr (KV == LLMRT_CUDA_KV_ACT) { // past the context: zeros,
                    cp_async_cg16(dk + off, k_cache, 0);     // never the slot's (maybe NaN)
                    cp_async_cg16(dv + off, v_cache, 0);     // contents
                } else {
                    kv8::zero_piece(dk + off);
                    kv8::zero_piece(dv + off);
                }
            }
            fetch_blocks(t + 1);
        }
        cp_async_commit();
    };

    fetch_blocks(t_first);
    ATTN_UNROLL
    for (int t = 0; t < S - 1; t++)
        issue_kv(t_first + t);

    // -- Q fragments into registers (A operand, 16 rows of this warp x HD) -----------------------
    cp_async_wait<S - 1>(); // the Q group (oldest) has landed for this thread ...
    __syncthreads();        // ... and for all
    uint32_t qf[HD / 16][4];
    ATTN_UNROLL
    for (int kk = 0; kk < HD / 16; kk++)
        ldmatrix_x4(qf[kk], s_q + swz<HD>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)));

    float o[HD / 8][4]; // O accumulator: 16 rows x HD, C-fragment layout per 8-column block
    ATTN_UNROLL
    for (int d = 0; d < HD / 8; d++)
        o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float row_m[2] = {-INFINITY, -INFINITY};    // running max (raw scores) of rows g, g + 8
    float row_l[2] = {0.f, 0.f};                // running sum of P, this thread's columns only
    const int pos_r0 = p_first + warp * 16 + g; // positions of this thread's two rows

    for (int t = t_first; t < n_kv_tiles; t++) {
        cp_async_wait<S - 2>(); // tile t landed (this thread's copies) ...
        __syncthreads();        // ... everyone's; and everyone is done with tile t - 1's stage
        issue_kv(t + S - 1);    // refill the stage tile t - 1 used
        const unsigned char *ks = s_k + ((t - t_first) % S) * Tr::kTileBytes;
        const unsigned char *vs = s_v + ((t - t_first) % S) * Tr::kTileBytes;

        // S = Q Kᵀ: 16 x BN per warp. ldmatrix.x4 matrices: (n 0-7, k lo), (n 0-7, k hi),
        // (n 8-15, k lo), (n 8-15, k hi) -> B fragments of two 8-column blocks.
        float s[BN / 8][4];
        ATTN_UNROLL
        for (int n = 0; n < BN / 8; n++)
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
        ATTN_UNROLL
        for (int kk = 0; kk < HD / 16; kk++) {
            ATTN_UNROLL
            for (int n2 = 0; n2 < BN / 16; n2++) {
                uint32_t kf[4];
                ldmatrix_x4(kf, ks + swz<HD>(n2 * 16 + (lane & 7) + ((lane >> 4) << 3),
                                             kk * 2 + ((lane >> 3) & 1)));
                const uint32_t b0[2] = {kf[0], kf[1]}, b1[2] = {kf[2], kf[3]};
                E::mma(s[2 * n2], qf[kk], b0);
                E::mma(s[2 * n2 + 1], qf[kk], b1);
            }
        }

        // Causal / end-of-context mask, only where the tile crosses the first row's position;
        // window mask where the tile reaches below the last row's window (key <= p - W).
        if (t * BN + BN - 1 > p_first || (window > 0 && t * BN <= p_last - window)) {
            ATTN_UNROLL
            for (int n = 0; n < BN / 8; n++) {
                ATTN_UNROLL
                for (int i = 0; i < 4; i++) {
                    const int key = t * BN + n * 8 + 2 * tq + (i & 1);
                    const int pr = pos_r0 + 8 * (i >> 1);
                    if (key > pr || (window > 0 && key <= pr - window)) s[n][i] = -INFINITY;
                }
            }
        }

        // Online softmax (row r = g + 8r; its 8 x BN/8 columns live in the 4 lanes of a quad).
        ATTN_UNROLL
        for (int r = 0; r < 2; r++) {
            // max and sum over this thread's 2 * BN/8 columns through 4 independent partials:
            // a sequential chain would serialise 16 dependent float ops per row
            float pm[4] = {row_m[r], -INFINITY, -INFINITY, -INFINITY};
            ATTN_UNROLL
            for (int n = 0; n < BN / 8; n++)
                pm[n & 3] = fmaxf(pm[n & 3], fmaxf(s[n][2 * r], s[n][2 * r + 1]));
            float mx = fmaxf(fmaxf(pm[0], pm[1]), fmaxf(pm[2], pm[3]));
            mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
            // A row that has seen only masked keys keeps m = -inf; use 0 as the base so that
            // exp2(-inf - base) = 0 instead of NaN.
            const float base = mx == -INFINITY ? 0.f : mx * scale_log2;
            const float corr = exp2f(row_m[r] * scale_log2 - base); // 0 on the first tile
            row_m[r] = mx;
            row_l[r] *= corr;
            ATTN_UNROLL
            for (int d = 0; d < HD / 8; d++) {
                o[d][2 * r] *= corr;
                o[d][2 * r + 1] *= corr;
            }
            float ps[4] = {0.f, 0.f, 0.f, 0.f};
            ATTN_UNROLL
            for (int n = 0; n < BN / 8; n++) {
                s[n][2 * r] = exp2f(fmaf(s[n][2 * r], scale_log2, -base));
                s[n][2 * r + 1] = exp2f(fmaf(s[n][2 * r + 1], scale_log2, -base));
                ps[n & 3] += s[n][2 * r] + s[n][2 * r + 1];
            }
            row_l[r] += (ps[0] + ps[1]) + (ps[2] + ps[3]);
        }

        // O += P V. The S accumulators of column blocks 2kk, 2kk+1 are exactly the A fragment of
        // k-step kk. ldmatrix.x4.trans matrices: (tok 0-7, d lo), (tok 8-15, d lo), (tok 0-7,
        // d hi), (tok 8-15, d hi) -> B fragments of two 8-column blocks of O.
        ATTN_UNROLL
        for (int kk = 0; kk < BN / 16; kk++) {
            const uint32_t pa[4] = {E::pack(s[2 * kk][0], s[2 * kk][1]),
                                    E::pack(s[2 * kk][2], s[2 * kk][3]),
                                    E::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    E::pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            ATTN_UNROLL
            for (int d2 = 0; d2 < HD / 16; d2++) {
                uint32_t vf[4];
                ldmatrix_x4_trans(vf, vs + swz<HD>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                                   d2 * 2 + (lane >> 4)));
                const uint32_t b0[2] = {vf[0], vf[1]}, b1[2] = {vf[2], vf[3]};
                E::mma(o[2 * d2], pa, b0);
                E::mma(o[2 * d2 + 1], pa, b1);
            }
        }
    }
    cp_async_wait_all(); // only empty groups can be pending here; none may outlive the thread

    // -- epilogue: O / l -> this warp's 16 rows of s_q -> 16-byte stores -------------------------
    ATTN_UNROLL
    for (int r = 0; r < 2; r++) {
        float l = row_l[r];
        l += __shfl_xor_sync(kFull, l, 1);
        l += __shfl_xor_sync(kFull, l, 2);
        row_l[r] = l > 0.f ? 1.f / l : 0.f;
    }
    __syncthreads(); // s_q is a ring stage: every warp must be done reading the last tile
    ATTN_UNROLL
    for (int d = 0; d < HD / 8; d++) {
        ATTN_UNROLL
        for (int r = 0; r < 2; r++) {
            const int row = warp * 16 + g + 8 * r;
            *reinterpret_cast<uint32_t *>(s_q + swz<HD>(row, d) + tq * 4) =
                E::pack(o[d][2 * r] * row_l[r], o[d][2 * r + 1] * row_l[r]);
        }
    }
    __syncwarp();
    T *out_tile = out + ((int64_t)(q_start[seq] + m0) * n_heads + head) * HD;
    ATTN_UNROLL
    for (int i = lane; i < 16 * CH; i += 32) {
        const int row = warp * 16 + i / CH, c = i % CH;
        if (row < rows)
            *reinterpret_cast<uint4 *>(out_tile + row * row_stride + c * 8) =
                *reinterpret_cast<const uint4 *>(s_q + swz<HD>(row, c));
    }
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

template <class T, int HD, int KV>
int launch_prefill(const llmrt_cuda_attn_args *a, cudaStream_t stream, char *err, size_t err_size) {
    using Tr = PrefillTraits<HD>;
    auto kernel = attn_prefill_kernel<T, HD, KV>;
    // Above 48 KB of dynamic shared memory needs an opt-in per kernel and device; it is a cheap
    // host call (FA2 makes it every launch too), so no per-device caching state is kept.
    if (Tr::kSmemBytes > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             Tr::kSmemBytes);
        if (e != cudaSuccess)
            return fail(err, err_size, LLMRT_CUDA_ATTN_ECUDA,
                        "attention prefill: cannot allow %d bytes of shared memory: %s",
                        Tr::kSmemBytes, cudaGetErrorString(e));
    }
    // sum_i ceil(q_len_i / BM) < T / BM + n_seqs: an upper bound of the tiles without reading
    // q_len on the host.
    const int64_t tiles = ((int64_t)a->n_tokens + Tr::kBlockM - 1) / Tr::kBlockM + a->n_seqs;
    LAUNCH((attn_prefill_kernel<T, HD, KV>), dim3((unsigned)tiles, (unsigned)a->n_heads),
           Tr::kThreads, Tr::kSmemBytes, stream, static_cast<const T *>(a->q),
           static_cast<T *>(a->out), a->k_cache, a->v_cache, a->block_tables,
           a->q_start, a->q_len, a->ctx_len, a->seq_slot, (int)a->n_seqs, (int)a->n_heads,
           (int)a->n_kv_heads, (int)a->block_size, (int)a->max_blocks,
           a->scale * 1.4426950408889634f, (int)a->window);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return fail(err, err_size, LLMRT_CUDA_ATTN_ECUDA, "attention prefill: launch failed: %s",
                    cudaGetErrorString(e));
    return 0;
}

bool aligned16(const void *p) {
    return ((uintptr_t)p & 15) == 0;
}

// Closed dispatch over the cache's storage for one (T, HD) (kv checked by the caller).
template <class T, int HD>
int launch_prefill_kv(const llmrt_cuda_attn_args *a, cudaStream_t s, char *err, size_t err_size) {
    if (a->kv == LLMRT_CUDA_KV_INT8) return launch_prefill<T, HD, LLMRT_CUDA_KV_INT8>(a, s, err, err_size);
    if (a->kv == LLMRT_CUDA_KV_FP8) return launch_prefill<T, HD, LLMRT_CUDA_KV_FP8>(a, s, err, err_size);
    return launch_prefill<T, HD, LLMRT_CUDA_KV_ACT>(a, s, err, err_size);
}

} // namespace pf
} // namespace

// Checks shared by prefill and decode (declared in attention.h).
extern "C" int llmrt_cuda_attention_check(const llmrt_cuda_attn_args *a, const char *who, char *err,
                                          size_t err_size) {
    if (!a) return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG, "%s: args is NULL", who);
    if (a->n_seqs < 0 || a->n_tokens < 0)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG, "%s: n_seqs %d / n_tokens %d negative",
                        who, a->n_seqs, a->n_tokens);
    if (a->head_dim != 64 && a->head_dim != 128)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_ESHAPE,
                        "%s: head_dim %d unsupported (supported: 64, 128)", who, a->head_dim);
    if (a->dtype != LLMRT_CUDA_ATTN_F16 && a->dtype != LLMRT_CUDA_ATTN_BF16)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_ESHAPE,
                        "%s: dtype %d unsupported (supported: 0 = f16, 1 = bf16)", who, a->dtype);
    if (a->n_heads < 1 || a->n_heads > 65535 || a->n_kv_heads < 1 || a->n_heads % a->n_kv_heads)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_ESHAPE,
                        "%s: n_heads %d must be a multiple of n_kv_heads %d (and in 1..65535)", who,
                        a->n_heads, a->n_kv_heads);
    if (a->block_size < 1 || a->max_blocks < 1)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG,
                        "%s: block_size %d / max_blocks %d < 1", who, a->block_size, a->max_blocks);
    if (a->window < 0)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG, "%s: window %d < 0", who,
                        (int)a->window);
    if (a->kv != LLMRT_CUDA_KV_ACT && a->kv != LLMRT_CUDA_KV_INT8 && a->kv != LLMRT_CUDA_KV_FP8)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_ESHAPE,
                        "%s: kv %d unsupported (0 = dtype, 1 = int8, 2 = fp8)", who, (int)a->kv);
    if (!(a->scale > 0.f) || !std::isfinite(a->scale))
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG, "%s: scale %g must be finite and > 0",
                        who, (double)a->scale);
    if (a->n_seqs == 0) return 0;
    if (a->n_tokens < a->n_seqs)
        return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG,
                        "%s: n_tokens %d < n_seqs %d (every sequence has a token)", who,
                        a->n_tokens, a->n_seqs);
    const struct {
        const void *p;
        const char *name;
        bool vec; // read with 16-byte cp.async / written with 16-byte stores
    } ptrs[] = {{a->q, "q", true},
                {a->out, "out", true},
                {a->k_cache, "k_cache", true},
                {a->v_cache, "v_cache", true},
                {a->block_tables, "block_tables", false},
                {a->q_start, "q_start", false},
                {a->q_len, "q_len", false},
                {a->ctx_len, "ctx_len", false},
                {a->seq_slot, "seq_slot", false}};
    for (const auto &p : ptrs) {
        if (!p.p)
            return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG, "%s: %s is NULL", who, p.name);
        if (p.vec && !pf::aligned16(p.p))
            return pf::fail(err, err_size, LLMRT_CUDA_ATTN_EARG,
                            "%s: %s (%p) is not 16-byte aligned", who, p.name, p.p);
    }
    return 0;
}

extern "C" int llmrt_cuda_attention_prefill(const llmrt_cuda_attn_args *a, void *stream, char *err,
                                            size_t err_size) {
    const char *who = "attention prefill";
    if (int rc = llmrt_cuda_attention_check(a, who, err, err_size)) return rc;
    if (a->n_seqs == 0) return 0;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    // Closed dispatch: every (dtype, head_dim) instance is listed here; anything else was
    // rejected above with a message.
    const bool bf16 = a->dtype == LLMRT_CUDA_ATTN_BF16;
    if (a->head_dim == 64)
        return bf16 ? pf::launch_prefill_kv<__nv_bfloat16, 64>(a, s, err, err_size)
                    : pf::launch_prefill_kv<__half, 64>(a, s, err, err_size);
    return bf16 ? pf::launch_prefill_kv<__nv_bfloat16, 128>(a, s, err, err_size)
                : pf::launch_prefill_kv<__half, 128>(a, s, err, err_size);
}
