// q4_gemm.cu: the tensor-core 4-bit matmul for M > 8, out[M, N] = x[M, K] · Wᵀ with fp16 x and the
// fragment-order weights of q4_matmul.h, mma.m16n8k16 with fp32 accumulators.
//
// CTA = 4 warps, tile BM = 16·MT rows x BN = 256 columns (4 packed 64-column blocks, one per warp)
// x BK = 64 k per pipeline stage. A kStages-deep cp.async ring holds per stage:
//   A   [BM][64] fp16, rows XOR-swizzled by 16-byte chunk (chunk ^ row % 8) so the cp.async writes
//       and the ldmatrix.x4 reads of 8 rows hit 8 different bank groups;
//   B   [4 k16][4 blocks][32 lanes] x 16 bytes: the packed words straight from global memory; the
//       lane's 16 bytes are its B fragments of 4 (16 x 16) tiles, read with one 16-byte lds;
//   S/Z [2 groups][scales, zoff][4 blocks][8] x 16 bytes: the groups the stage covers (2 with
//       group size 32, else 1: group sizes are multiples of 64).
// Each warp dequantises its block's words once per k16 (q4_common.cuh: lop3 + hsub2/hfma2 + hmul2,
// directly into B-fragment registers) and runs MT x 8 mma per k16 against the A fragments of all
// MT m16 tiles (ldmatrix.x4), so a dequantised weight serves BM rows.
// Grid (M tiles, N tiles, splits): the M tiles of one N tile are adjacent in launch order so its
// weights come from DRAM once and from L2 after. With few tiles (small M or N) K is split so all
// SMs get work; the splits of an output tile add their fp32 partials into one fp32 accumulator
// tile in split order, each waiting for the one before (an in-place serial reduction as in Marlin:
// q4_common.cuh split_wait / split_release; no second kernel, no [splits, M, N] buffer).
// Rows past M are zero-filled by cp.async (src-size 0) and never written; column blocks past N
// (N % 256 != 0) are zero-filled and skipped by their warp (warp-uniform).
#include "q4_common.cuh"

namespace q4 {
namespace gm { // (named: the tests compile all q4 .cu files into one unit)

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBK = 64;      // k per stage (4 mma k16 steps)
constexpr int kBN = kWarps * kBlockN;
constexpr int kStages = 4;   // Marlin's depth: 3 stages of loads in flight while one computes
constexpr int kBBytes = (kBK / kTileK) * kWarps * 32 * 16; // 8 KB
constexpr int kSZBytes = 2 * 2 * kWarps * 8 * 16;          // 2 KB

template <int MT> struct GemmTraits {
    static constexpr int kBM = 16 * MT;
    static constexpr int kABytes = kBM * kBK * 2;
    static constexpr int kStageBytes = kABytes + kBBytes + kSZBytes;
    static constexpr int kSmemBytes = kStages * kStageBytes;
    static_assert(kBM * (kBK / 8) % kThreads == 0, "A tile: whole cp.async passes");
};

// Byte offset of 16-byte chunk c (0..7) of row r in a [rows][64] fp16 tile.
__device__ __forceinline__ int swz(int r, int c) {
    return r * (kBK * 2) + ((c ^ (r & 7)) << 4);
}

// out[at], out[at + 1] = v0, v1 (+ bias[n], bias[n + 1]) as fp32 or fp16.
__device__ __forceinline__ void write_out2(void *out, int out_f32, const float *bias, size_t at, int n,
                                           float v0, float v1) {
    if (bias) v0 += bias[n], v1 += bias[n + 1];
    if (out_f32) *reinterpret_cast<float2 *>(static_cast<float *>(out) + at) = make_float2(v0, v1);
    else *reinterpret_cast<__half2 *>(static_cast<__half *>(out) + at) = __floats2half2_rn(v0, v1);
}

template <int MT, bool ZF>
__global__ void __launch_bounds__(kThreads)
    q4_gemm_kernel(const __half *__restrict__ x,      // [M, K] (stored column order)
                   const uint4 *__restrict__ qweight, // [K/16, N/64, 32]
                   const uint4 *__restrict__ scales,  // [G, N/64, 8]
                   const uint4 *__restrict__ zoff,    // [G, N/64, 8]
                   const float *__restrict__ bias,    // [N] or NULL
                   void *__restrict__ out,            // [M, N] fp16 or fp32
                   float *__restrict__ partial,       // [M, N] fp32 accumulator (splits > 1)
                   int *__restrict__ tile_counters,   // [M tiles x N tiles] zero on entry (splits > 1)
                   int out_f32, int M, int N, int K, int gs) {
    using Tr = GemmTraits<MT>;
    constexpr int BM = Tr::kBM;
    DYN_SMEM(unsigned char, smem);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int NB = N / kBlockN;
    const int m0 = blockIdx.x * BM, nb0 = blockIdx.y * kWarps;
    const int KT = K / kBK, split = blockIdx.z, splits = gridDim.z;
    const int kt_begin = (int)((int64_t)split * KT / splits);
    const int kt_end = (int)((int64_t)(split + 1) * KT / splits);
    const int n_kt = kt_end - kt_begin;
    const bool two_groups = gs < kBK; // gs == 32
    const bool warp_active = nb0 + warp < NB;

    // ---- one stage of loads: A rows, B words, the groups' scales / zeros -----------------------
    auto load_stage = [&](int stage, int kt) {
        unsigned char *sa = smem + stage * Tr::kStageBytes;
        unsigned char *sb = sa + Tr::kABytes;
        unsigned char *ss = sb + kBBytes;
        Q4_UNROLL
        for (int i = 0; i < BM * 8 / kThreads; i++) {
            const int id = tid + i * kThreads, r = id >> 3, c = id & 7;
            const int row = m0 + r < M ? m0 + r : M - 1; // a valid address; 0 bytes read past M
            cp_async_cg16(sa + swz(r, c), x + (size_t)row * K + kt * kBK + c * 8, m0 + r < M ? 16 : 0);
        }
        Q4_UNROLL
        for (int i = 0; i < (kBK / kTileK) * kWarps * 32 / kThreads; i++) {
            const int id = tid + i * kThreads; // [kk][block][lane]
            const int kk = id / (kWarps * 32), blk = (id / 32) % kWarps, l = id % 32;
            const bool ok = nb0 + blk < NB;
            const size_t at = ((size_t)(kt * (kBK / kTileK) + kk) * NB + (ok ? nb0 + blk : 0)) * 32 + l;
            cp_async_cg16(sb + id * 16, qweight + at, ok ? 16 : 0);
        }
        // [gi][array][block][8]: 64 chunks per group
        const int n_sz = (two_groups ? 2 : 1) * 2 * kWarps * 8;
        if (tid < n_sz) {
            const int gi = tid >> 6, a = (tid >> 5) & 1, blk = (tid >> 3) & 3, r = tid & 7;
            const int grp = two_groups ? kt * 2 + gi : kt * kBK / gs;
            const bool ok = nb0 + blk < NB;
            const size_t at = ((size_t)grp * NB + (ok ? nb0 + blk : 0)) * 8 + r;
            cp_async_cg16(ss + tid * 16, (a ? zoff : scales) + at, ok ? 16 : 0);
        }
    };

    float acc[MT][8][4];
    Q4_UNROLL
    for (int mt = 0; mt < MT; mt++)
        Q4_UNROLL
        for (int c = 0; c < 8; c++)
            Q4_UNROLL
            for (int i = 0; i < 4; i++) acc[mt][c][i] = 0.0f;

    Q4_UNROLL
    for (int s = 0; s < kStages - 1; s++) {
        if (s < n_kt) load_stage(s, kt_begin + s);
        cp_async_commit();
    }
    // ldmatrix.x4 row of this lane: matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15) = a[0..3]
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_chunk = lane >> 4;
    GroupConsts gc;
    for (int i = 0; i < n_kt; i++) {
        cp_async_wait<kStages - 2>(); // stage i has landed (for this thread) ...
        __syncthreads();              // ... for all threads, and stage i-1 is free to refill
        if (i + kStages - 1 < n_kt) load_stage((i + kStages - 1) % kStages, kt_begin + i + kStages - 1);
        cp_async_commit();

        const unsigned char *sa = smem + (i % kStages) * Tr::kStageBytes;
        const uint4 *sb = reinterpret_cast<const uint4 *>(sa + Tr::kABytes);
        const uint4 *ss = reinterpret_cast<const uint4 *>(sa + Tr::kABytes + kBBytes);
        Q4_UNROLL
        for (int kk = 0; kk < kBK / kTileK; kk++) {
            uint32_t a[MT][4];
            Q4_UNROLL
            for (int mt = 0; mt < MT; mt++)
                ldmatrix_x4(a[mt], sa + swz(mt * 16 + a_row, kk * 2 + a_chunk));
            if (!warp_active) continue; // warp-uniform: its column block is past N
            if (kk == 0 || (two_groups && kk == 2)) {
                const uint4 *row = ss + (kk >> 1) * (two_groups ? 64 : 0) + warp * 8;
                group_consts<ZF>(gc, row[g], row[32 + g]);
            }
            const uint4 qv = sb[(kk * kWarps + warp) * 32 + lane];
            const uint32_t words[4] = {qv.x, qv.y, qv.z, qv.w};
            Q4_UNROLL
            for (int j = 0; j < 4; j++) {
                uint32_t b[2][2];
                dequant_word<ZF>(words[j], j, gc, b);
                Q4_UNROLL
                for (int mt = 0; mt < MT; mt++) {
                    mma_m16n8k16_f16f32(acc[mt][2 * j], a[mt], b[0], acc[mt][2 * j]);
                    mma_m16n8k16_f16f32(acc[mt][2 * j + 1], a[mt], b[1], acc[mt][2 * j + 1]);
                }
            }
        }
    }
    cp_async_wait<0>(); // only empty groups remain; leave nothing pending

    // ---- epilogue: c_i at row g + 8·(i >= 2), column 2t + (i & 1) of each n8 tile -------------
    // Split K: the splits of this tile add into the fp32 accumulator `partial` one after another
    // in split order (q4_common.cuh: split_wait / split_release): split 0 writes it, the middle
    // ones read-add-write it, the last one adds and writes the output. Per element that is
    // ((p0 + p1) + p2) + ... in fp32, then + bias and the output rounding: the order and
    // roundings of the former two-phase reduction, so the bits are unchanged.
    // (every warp reaches the barriers of split_wait / split_release, also one whose column block
    // is past N)
    int *const counter = splits > 1 ? tile_counters + blockIdx.y * gridDim.x + blockIdx.x : nullptr;
    if (splits > 1) split_wait(counter, split);
    if (warp_active) {
        Q4_UNROLL
        for (int mt = 0; mt < MT; mt++)
            Q4_UNROLL
            for (int c = 0; c < 8; c++) {
                const int n = (nb0 + warp) * kBlockN + 8 * c + 2 * t; // n8 tile c = 2j + h: cols 16j + 8h
                Q4_UNROLL
                for (int half = 0; half < 2; half++) {
                    const int m = m0 + mt * 16 + g + 8 * half;
                    if (m >= M) continue;
                    float v0 = acc[mt][c][2 * half], v1 = acc[mt][c][2 * half + 1];
                    float2 *const at = reinterpret_cast<float2 *>(partial + (size_t)m * N + n);
                    if (split > 0) { // L2, not L1: the earlier splits wrote it from other SMs
                        const float2 sum = __ldcg(at);
                        v0 = sum.x + v0, v1 = sum.y + v1;
                    }
                    if (split == splits - 1) write_out2(out, out_f32, bias, (size_t)m * N + n, n, v0, v1);
                    else __stcg(at, make_float2(v0, v1));
                }
            }
    }
    if (splits > 1) split_release(counter, split, splits);
}

template <int MT, bool ZF> int launch_mt(const Problem &p, const GemmPlan &plan, cudaStream_t stream) {
    constexpr int smem = GemmTraits<MT>::kSmemBytes;
    if (smem > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(q4_gemm_kernel<MT, ZF>,
                                                   cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess) return (int)e;
    }
    const int BM = GemmTraits<MT>::kBM;
    const dim3 grid((unsigned)((p.M + BM - 1) / BM), (unsigned)((p.N + kBN - 1) / kBN), (unsigned)plan.splits);
    LAUNCH((q4_gemm_kernel<MT, ZF>), grid, kThreads, smem, stream, p.x, p.qweight, p.scales, p.zoff,
           p.bias, p.out, p.partial, p.tile_counters, p.out_f32, p.M, p.N, p.K, p.group_size);
    return (int)cudaGetLastError();
}

template <bool ZF> int launch_zf(const Problem &p, const GemmPlan &plan, cudaStream_t stream) {
    switch (plan.mt) {
    case 1: return launch_mt<1, ZF>(p, plan, stream);
    case 2: return launch_mt<2, ZF>(p, plan, stream);
    case 4: return launch_mt<4, ZF>(p, plan, stream);
    default: return (int)cudaErrorInvalidValue;
    }
}

} // namespace gm

// MT: the smallest of 1, 2, 4 m16 tiles that covers M (M > 64: 64-row tiles). Splits:
//   - floor(SMs / tiles): about one CTA per SM in all (a 4-warp CTA with 48-72 KB of shared
//     memory; 2-3 fit per SM), none once the tiles alone fill most SMs;
//   - at most 1 + K / (16·Mt) (Mt: M rounded up to whole M tiles): the serial in-place reduction
//     moves 2·(splits − 1)·M·N·4 bytes of fp32 partials through L2 (each split but the first
//     reads the accumulator, each but the last writes it), and this keeps them within the weight
//     bytes N·K/2 ...
//   - ... unless that leaves fewer than half the SMs busy: then ceil(SMs / 2 / tiles) (a
//     starved GPU costs more than the extra partial bytes, which are L2 traffic, not DRAM);
//   - at least 4 k tiles (256 k) per split so the pipeline fills; at most 16.
// Llama-2-7B on an H100 (132 SMs; bench/results/q4_splitk_traffic.md has every projection):
// q_proj (N = K = 4096) at M = 64 has 16 tiles: 8 splits before (16.8 MB of partials with the
// two-phase reduction, 14.7 MB serial), 5 now (8.4 MB = the weight bytes) on 80 CTAs; at M = 16
// the cap (257) does not bind: 8 splits, 3.7 MB (4.2 MB before).
GemmPlan gemm_plan(int M, int N, int K, int sm_count) {
    using namespace gm;
    GemmPlan plan;
    plan.mt = M <= 16 ? 1 : M <= 32 ? 2 : 4;
    const int m_tiles = (M + 16 * plan.mt - 1) / (16 * plan.mt);
    const int tiles = m_tiles * ((N + kBN - 1) / kBN);
    const int KT = K / kBK;
    int splits = sm_count / tiles;
    // 2·(s − 1)·M·N·4 <= N·K/2, with M rounded up to the M tiles: the split count then stays
    // constant between multiples of 64 rows (as tiles do), which the CUDA backend's workspace
    // sizing (q4_ws_need) relies on
    const int traffic_cap = 1 + K / (16 * m_tiles * 16 * plan.mt);
    const int half_sms = (sm_count / 2 + tiles - 1) / tiles;
    if (splits > traffic_cap) splits = traffic_cap > half_sms ? traffic_cap : half_sms;
    const int max_splits = KT / 4 < 16 ? KT / 4 : 16;
    if (splits > max_splits) splits = max_splits;
    if (tiles > kMaxSplitTiles) splits = 1; // one counter per output tile
    plan.splits = splits < 1 ? 1 : splits;
    return plan;
}

int gemm_launch(const Problem &p, const GemmPlan &plan, cudaStream_t stream) {
    using namespace gm;
    if (plan.splits > 1 && (!p.partial || !p.tile_counters)) return (int)cudaErrorInvalidValue;
    return p.zero_float ? launch_zf<true>(p, plan, stream) : launch_zf<false>(p, plan, stream);
}

} // namespace q4
