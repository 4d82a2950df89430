// q4_common.cuh: what the 4-bit kernels (q4_gemv.cu, q4_gemm.cu) and their launcher (q4_matmul.cu)
// share: the register dequantisation of the fragment-order layout (q4_matmul.h) and the internal
// launchers' arguments.
#ifndef LLMRT_Q4_COMMON_CUH
#define LLMRT_Q4_COMMON_CUH

#include <cstdint>
#include <cstring>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "launch.cuh"
#include "ptx_ops.cuh"
#include "fused_gemv.h"
#include "q4_matmul.h"

// `#pragma unroll` for nvcc; g++ (cusim) does not know it.
#ifndef Q4_UNROLL
#ifdef CUSIM
#define Q4_UNROLL
#else
#define Q4_UNROLL _Pragma("unroll")
#endif
#endif

namespace q4 {

constexpr int kTileK = 16;    // k rows of one packed tile (the mma k)
constexpr int kBlockN = 64;   // columns of one packed block (4 x 16: one 16-byte load per lane)

__device__ __forceinline__ uint32_t h2_bits(__half2 h) {
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
}
__device__ __forceinline__ __half2 bits_h2(uint32_t u) {
    __half2 h;
    memcpy(static_cast<void *>(&h), &u, 4);
    return h;
}

// Per-column constants of one group, for the lane's 8 columns (i = 0..7: column g + 8i of the
// 64-column block), each duplicated into both halves of a half2 (the two k rows of a fragment
// register share the column):
//   lo = (1024 + v) - c_lo, hi = (1024 + 16 v) / 16 + c_hi, both exactly v - z (integer zero
//   kind: c_lo = 1024 + z, c_hi = -(64 + z)) or v (float kind: c_lo = 1024, c_hi = -64);
//   then w = d * s (integer kind) or fma(d, s, m) (float kind): one fp16 rounding, as Marlin.
struct GroupConsts {
    __half2 s[8], c_lo[8], c_hi[8], m[8];
};

template <bool ZF>
__device__ __forceinline__ void group_consts(GroupConsts &gc, uint4 sv, uint4 zv) {
    const uint32_t sw[4] = {sv.x, sv.y, sv.z, sv.w}, zw[4] = {zv.x, zv.y, zv.z, zv.w};
    const __half2 k1024 = bits_h2(0x64006400u), k64 = bits_h2(0x54005400u);
    Q4_UNROLL
    for (int i = 0; i < 8; i++) {
        const __half s = __ushort_as_half((unsigned short)(sw[i >> 1] >> (16 * (i & 1))));
        const __half z = __ushort_as_half((unsigned short)(zw[i >> 1] >> (16 * (i & 1))));
        gc.s[i] = __halves2half2(s, s);
        if (ZF) {
            gc.c_lo[i] = k1024;
            gc.c_hi[i] = __hneg2(k64);
            gc.m[i] = __halves2half2(z, z);
        } else {
            const __half2 z2 = __halves2half2(z, z);
            gc.c_lo[i] = __hadd2(k1024, z2);         // 1024 + z: exact (z <= 16)
            gc.c_hi[i] = __hneg2(__hadd2(k64, z2));  // -(64 + z): exact
        }
    }
}

// One packed word -> the B fragments (b[h][0..1], h = 0: column 16j + g, h = 1: 16j + 8 + g) of
// word j, dequantised with the group's constants. 2 lop3 + 1 sub + 1 fma + 1 mul per 4 weights
// (integer kind), as Marlin / FasterTransformer.
template <bool ZF>
__device__ __forceinline__ void dequant_word(uint32_t q, int j, const GroupConsts &gc,
                                             uint32_t (&b)[2][2]) {
    constexpr uint32_t kLut = (0xf0 & 0xcc) | 0xaa; // (a & b) | c
    const __half2 k16th = bits_h2(0x2c002c00u);     // 1/16
    Q4_UNROLL
    for (int h = 0; h < 2; h++) {
        const uint32_t qq = h ? q >> 8 : q;
        const __half2 lo = bits_h2(lop3<kLut>(qq, 0x000f000fu, 0x64006400u));
        const __half2 hi = bits_h2(lop3<kLut>(qq, 0x00f000f0u, 0x64006400u));
        const int i = 2 * j + h;
        const __half2 d0 = __hsub2(lo, gc.c_lo[i]);
        const __half2 d1 = __hfma2(hi, k16th, gc.c_hi[i]);
        if (ZF) {
            b[h][0] = h2_bits(__hfma2(d0, gc.s[i], gc.m[i]));
            b[h][1] = h2_bits(__hfma2(d1, gc.s[i], gc.m[i]));
        } else {
            b[h][0] = h2_bits(__hmul2(d0, gc.s[i]));
            b[h][1] = h2_bits(__hmul2(d1, gc.s[i]));
        }
    }
}

// Split-K of the GEMV without a second kernel (the GEMM: split_wait / split_release below).
// Every split CTA of an output tile writes its fp32 partial,
// then arrives at the tile's counter; the CTA that arrives last sums the partials of all splits in
// split order (the order the former finalize kernel used, so results are bit-identical to it),
// adds the bias and writes the output, and puts the counter back to 0 for the next call. No CTA
// waits for another (a serial, Marlin-style chain would cost one L2 round trip per split, several
// microseconds at decode, where the whole GEMV takes a few): the only cost is the last CTA's
// re-read of the partials, from L2. The counters live at the head of the workspace
// (kMaxSplitTiles ints, zeroed once by the caller: llmrt_cuda_q4_workspace_init) and are only
// ever written by this protocol, so they are zero between calls.
constexpr int kMaxSplitTiles = 4096; // plans with more output tiles than this do not split K

// Called by every thread of the CTA after it wrote its partial: true in the CTA that arrived last.
__device__ __forceinline__ bool arrive_last(int *counter, int splits) {
    __shared__ int last;
    __threadfence(); // this CTA's partial is visible device-wide before the arrival
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(counter, 1) == splits - 1;
        if (last) *counter = 0; // every split has arrived: nobody else touches it in this call
    }
    __syncthreads();
    if (last) __threadfence(); // order the reads of the other CTAs' partials after the arrival
    return last;
}

// Split-K with an in-place serial reduction (the GEMM, q4_gemm.cu; Marlin's barrier_acquire /
// barrier_release): the splits of an output tile take turns on ONE fp32 accumulator tile in split
// order, so the partial traffic is 2·(splits − 1)·M·N·4 bytes (no [splits, M, N] buffer, no
// re-read of every split by the last one). The tile's counter holds the number of splits that
// have added their share; it is 0 between calls (the last split resets it).
//
// Deadlock freedom: split s waits only for splits 0..s-1, i.e. CTAs with a lower blockIdx.z.
// z is the slowest grid dimension and CTAs are dispatched in linear block order, so every CTA a
// waiting CTA depends on has already been scheduled (resident or finished) when it spins: a
// spinning CTA never holds an SM that a CTA it waits for needs. cusim runs blocks in that same
// order, one after another, so a correct chain never spins there; a counter that is not yet at s
// there can never get there, so cusim traps after kSimSpinCap polls instead of hanging (a wrong
// order or a stale counter fails the test, it does not hang it).
constexpr int kSimSpinCap = 1 << 16;

// Called by every thread of the CTA before it touches the tile's accumulator: returns when
// splits 0..split-1 have released the tile (one thread polls, the CTA waits at a barrier).
__device__ __forceinline__ void split_wait(const int *counter, int split) {
    if (threadIdx.x == 0) {
#ifdef CUSIM
        int polls = 0;
#endif
        while (*reinterpret_cast<const volatile int *>(counter) != split) {
#ifdef CUSIM
            if (++polls > kSimSpinCap) __trap();
#endif
            __nanosleep(32);
        }
        __threadfence(); // acquire: the accumulator reads below come after the other CTAs' writes
    }
    __syncthreads();
}

// Called by every thread of the CTA after its accumulator (or output) writes: passes the tile to
// split + 1, or, from the last split, puts the counter back to 0 for the next call.
__device__ __forceinline__ void split_release(int *counter, int split, int splits) {
    __threadfence(); // release: this CTA's accumulator writes are visible device-wide ...
    __syncthreads(); // ... for all its threads before the counter moves
    if (threadIdx.x == 0) {
        if (split == splits - 1) atomicExch(counter, 0);
        else atomicAdd(counter, 1);
    }
}

// Arguments of the internal launchers (q4_matmul.cu fills them).
struct Problem {
    const __half *x;        // [M, ldx] fp16 (stored column order for the GEMM; original for the GEMV)
    const int32_t *perm;    // [K] or NULL (GEMV: gathers x[perm[j]] while staging; -1 reads 0)
    int ldx;                // row stride of x: K, or the input width of a padded TP slice
    const uint4 *qweight;   // [K/16, N/64, 32] (16 bytes per lane)
    const uint4 *scales;    // [G, N/64, 8] (16 bytes = 8 fp16 per (group, block, g))
    const uint4 *zoff;      // [G, N/64, 8]
    const float *bias;      // [N] or NULL
    void *out;              // [M, N] fp16 or fp32 (out_f32)
    float *partial;         // fp32, splits > 1: GEMV [splits, M, N]; GEMM [M, N] (one accumulator)
    int *tile_counters;     // [kMaxSplitTiles] zero on entry and on exit, when splits > 1
    int out_f32;
    int M, N, K, group_size, zero_float;
    int splits;             // K splits (grid z of the GEMM; the GEMV: GemvWeight)
};

// Launch plan of the GEMV: rows per instance (1, 2, 4, 8), K splits, k16 tiles per CTA.
struct GemvPlan {
    int mr, splits, tiles_per_cta;
    size_t smem;
};
GemvPlan gemv_plan(int M, int N, int K, int group_size, int sm_count);

// The GEMV's kernel arguments: up to kMaxGroup weights of one x (q, k, v; gate, up) in one launch.
// Each weight keeps the plan (splits, tiles per CTA) it gets alone and its own CTAs, partials and
// tile counters, so its output has the bits of a launch of its own; the grid is the weights' CTAs
// end to end (cta_begin).
constexpr int kMaxGroup = LLMRT_CUDA_FUSED_MAX_W;
struct GemvWeight {
    const uint4 *qweight;   // [K/16, N/64, 32]
    const uint4 *scales;    // [G, N/64, 8]
    const uint4 *zoff;      // [G, N/64, 8]
    const int32_t *perm;    // [K] or NULL; -1: a padding column (x 0)
    const float *bias;      // [N] or NULL
    void *out;              // [M, N] fp16 or fp32 (unused with a residual)
    float *partial;         // [splits, M, N] fp32 (splits > 1)
    int *tile_counters;     // [N/64] zero on entry and on exit (splits > 1)
    int N, group_size;
    int splits, tiles_per_cta; // gemv_plan of this weight alone
    int cta_begin;          // its first CTA: CTA cta_begin + split * N/64 + nb
};
struct GemvArgs {
    GemvWeight w[kMaxGroup];
    int n_w;                // 1..kMaxGroup
    const __half *x;        // [M, ldx] (ACT: activations; SWIGLU: the gate; RMSNORM: unused)
    int ldx;                // row stride of x: K, or the input width of a padded TP slice
    int M, K, out_f32;
    // the fused decode prologue / epilogue (llmrt_cuda_q4_matmul_fused); ACT / NULL: none
    int input;              // LLMRT_CUDA_FUSED_IN_*: ACT (x), RMSNORM (resid_x), SWIGLU (x gate, up)
    const float *resid_x;   // RMSNORM: fp32 [M, ldx] residual
    const float *norm_w;    // RMSNORM: fp32 [ldx]
    float eps;              // RMSNORM
    const __half *up;       // SWIGLU: [M, ldx]
    float *residual;        // NULL, or fp32 [M, N] += the fp16-rounded result (n_w 1)
};
// One launch of args' weights (all with `zero_float`), mr rows per instance, smem the largest of
// the weights' plans; cudaErrorInvalidValue and nothing launched for a plan it does not take.
int gemv_launch(const GemvArgs &a, int mr, size_t smem, int zero_float, cudaStream_t stream);

// Launch plan of the GEMM: m16 tiles per CTA (1, 2, 4), K splits.
struct GemmPlan {
    int mt, splits;
};
GemmPlan gemm_plan(int M, int N, int K, int sm_count);
int gemm_launch(const Problem &p, const GemmPlan &plan, cudaStream_t stream);

} // namespace q4

#endif // LLMRT_Q4_COMMON_CUH
