// lora.cu: batched multi-LoRA shrink / expand kernels (see lora.h for the op and the paths).
//
// shrink, fp16 / bf16 (lora_shrink_mma_kernel; grid: tiles x rank groups of 16 x k splits of
// LLMRT_CUDA_LORA_SPLIT_K): tensor cores (mma.m16n8k16, fp32 accumulation), ONE kernel for every
// tile of 1 to 16 rows (the mma's M; a decode row is a tile of one), so the arithmetic of a row
// never depends on its tile. Details at the kernel.
// shrink, fp32 (the reference mode; lora_shrink_kernel<float, MR>, same grid; 4 warps, 4 ranks
//   per warp): the block stages its tile's x rows of its split, kChunkK columns at a time, in
//   shared memory; each warp streams its 4 rows of A_s straight from global memory (lane l reads
//   column k ≡ l mod 32: 32 consecutive elements per warp load) and keeps acc[MR rows][4 ranks]
//   per lane, so an A element serves the MR rows of the tile from a register. The 32 lane
//   partials of every output are summed by the xor butterfly at the end (llmrt_warp_sum).
// The split count depends on k alone (a decode row of a rank-16 adapter still spreads over
// k / 512 blocks), so the order of every sum stays fixed per output; tmp[t, split, j] holds the
// split partials.
// expand, every dtype (lora_expand_kernel<T, MR>; grid: tiles x column blocks of 128; one thread
//   per column, MR rows each): B_s [n, r] is read kChunkR ranks at a time as a [128 cols][kChunkR]
//   tile into shared memory (padded rows: the column-per-thread reads are conflict-free), tmp rows
//   of the tile beside it (the split partials summed in split order as they are staged); each
//   thread chains fmaf over j in order for each of its MR rows. fp32 FMA on purpose: tmp stays
//   fp32 (an mma would round it to 16 bits first).
// The FMA kernels' per-output arithmetic does not depend on MR (see lora.h): MR = 1 is the decode
// GEMV, MR = 4 and 16 the prefill tiles. fmaf is explicit so that nvcc (which contracts a*b+c) and
// g++ under cusim (which does not) compute the same thing.
//
// Not yet: shared-memory staging (cp.async + ldmatrix) of the mma shrink's fragments, which are
// gathered with 16-bit global loads (k and r are not multiples of 8 in general), and vector loads
// in the expand.
#include "llmrt_dtype.cuh"
#include "lora.h"
#include "ptx_ops.cuh"

namespace lora {

constexpr int kThreads = 128;             // both kernels
constexpr int kWarps = kThreads / 32;
constexpr int kRanksPerWarp = 4;
constexpr int kRanksPerBlock = kWarps * kRanksPerWarp;  // shrink: 16 ranks per block
constexpr int kChunkK = 256;              // shrink: x columns staged per step (a multiple of 32)
constexpr int kCols = kThreads;           // expand: output columns per block
constexpr int kChunkR = 32;               // expand: ranks of B staged per step
static_assert(kChunkK % 32 == 0, "a lane keeps its k ≡ lane (mod 32) across chunks");
static_assert(LLMRT_CUDA_LORA_SPLIT_K % kChunkK == 0, "whole chunks per split");

// Dynamic shared memory of each kernel (the simulator keeps static __shared__ arrays in TLS,
// which a dlopen'ed libllmrt could not hold: cusim.md): below 48 KB, no opt-in.
template <int MR> constexpr size_t shrink_smem() { return sizeof(float) * MR * kChunkK; }  // xs
template <int MR> constexpr size_t expand_smem() {  // bs [kCols][kChunkR + 1], ts [kChunkR][MR]
  return sizeof(float) * (kCols * (kChunkR + 1) + MR * kChunkR);
}
static_assert(shrink_smem<LLMRT_CUDA_LORA_TILE_ROWS>() <= 48 * 1024, "no opt-in needed");
static_assert(expand_smem<LLMRT_CUDA_LORA_TILE_ROWS>() <= 48 * 1024, "no opt-in needed");
static_assert(LLMRT_CUDA_LORA_MAX_RANK % kRanksPerBlock == 0, "whole rank groups");

// The tile this block serves: rows [row0, row0 + rows) of one slot, or false (nothing to do).
struct Tile {
  int64_t row0;
  int rows;
  llmrt_cuda_lora_slot d;
};

__device__ __forceinline__ bool load_tile(Tile &t, const llmrt_cuda_lora_slot *slots, int n_slots,
                                          const int32_t *row_slot, const int32_t *tile_row,
                                          const int32_t *tile_len) {
  t.row0 = tile_row ? tile_row[blockIdx.x] : (int64_t)blockIdx.x;
  t.rows = tile_row ? tile_len[blockIdx.x] : 1;
  const int s = row_slot[t.row0];
  if (s < 0 || s >= n_slots) return false;
  t.d = slots[s];
  return t.d.rank > 0;
}

template <class T, int MR>
__global__ void __launch_bounds__(kThreads)
    lora_shrink_kernel(float *__restrict__ tmp,                    // [rows, splits, ld_tmp] fp32
                       int ld_tmp,
                       const T *__restrict__ x,                    // [rows, k]
                       int64_t k,
                       const llmrt_cuda_lora_slot *__restrict__ slots,  // [n_slots]
                       int n_slots,
                       const int32_t *__restrict__ row_slot,       // [rows]
                       const int32_t *__restrict__ tile_row,       // [tiles] or NULL (1 row each)
                       const int32_t *__restrict__ tile_len) {     // [tiles]
  DYN_SMEM(float, smem);
  float(*xs)[kChunkK] = reinterpret_cast<float(*)[kChunkK]>(smem);  // [MR][kChunkK]
  Tile t;
  if (!load_tile(t, slots, n_slots, row_slot, tile_row, tile_len)) return;  // block-uniform
  const int rank = t.d.rank;
  const int j_block = blockIdx.y * kRanksPerBlock;
  if (j_block >= rank) return;  // block-uniform: a rank group past this slot's rank
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int jw = j_block + warp * kRanksPerWarp;  // this warp's ranks jw .. jw+3 (those < rank)
  const T *A = static_cast<const T *>(t.d.a);
  const T *xt = x + t.row0 * k;
  const int split = blockIdx.z, splits = gridDim.z;
  const int64_t k_split_end = (int64_t)(split + 1) * LLMRT_CUDA_LORA_SPLIT_K;
  const int64_t k_end = k < k_split_end ? k : k_split_end;

  float acc[MR][kRanksPerWarp];
  LLMRT_UNROLL
  for (int m = 0; m < MR; m++)
    LLMRT_UNROLL
    for (int r = 0; r < kRanksPerWarp; r++) acc[m][r] = 0.0f;

  for (int64_t kc = (int64_t)split * LLMRT_CUDA_LORA_SPLIT_K; kc < k_end; kc += kChunkK) {
    const int kn = k_end - kc < kChunkK ? (int)(k_end - kc) : kChunkK;
    __syncthreads();  // the previous chunk is consumed
    for (int i = threadIdx.x; i < MR * kChunkK; i += kThreads) {
      const int m = i / kChunkK, kk = i % kChunkK;
      xs[m][kk] = m < t.rows && kk < kn ? llmrt_to_f32(xt[m * k + kc + kk]) : 0.0f;
    }
    __syncthreads();
    if (jw < rank) {  // warp-uniform
      for (int kk = lane; kk < kn; kk += 32) {
        float a[kRanksPerWarp];
        LLMRT_UNROLL
        for (int r = 0; r < kRanksPerWarp; r++)
          a[r] = jw + r < rank ? llmrt_to_f32(A[(int64_t)(jw + r) * k + kc + kk]) : 0.0f;
        LLMRT_UNROLL
        for (int m = 0; m < MR; m++) {
          const float xv = xs[m][kk];
          LLMRT_UNROLL
          for (int r = 0; r < kRanksPerWarp; r++) acc[m][r] = fmaf(xv, a[r], acc[m][r]);
        }
      }
    }
  }
  if (jw >= rank) return;  // warp-uniform, after the last barrier
  LLMRT_UNROLL
  for (int m = 0; m < MR; m++)
    LLMRT_UNROLL
    for (int r = 0; r < kRanksPerWarp; r++) {
      const float v = llmrt_warp_sum(acc[m][r]);
      if (lane == 0 && m < t.rows && jw + r < rank)
        tmp[((t.row0 + m) * splits + split) * ld_tmp + jw + r] = v;
    }
}

// ---- shrink on tensor cores (fp16 / bf16) -----------------------------------------------------
// One kernel for every tile (1 to 16 rows: the mma's M; absent rows are zeros), so a row's bits do
// not depend on its tile. Grid (tiles, rank groups of 16, k splits); warp w takes the k16 steps
// w, w + 4, ... of the split (m16n8k16 x 2 n-tiles = 16 ranks, fp32 accumulation in step order),
// then the 4 warp partials are summed in warp order through shared memory. Fragments are gathered
// from global memory with 16-bit loads (k need not be even: no alignment to rely on).
template <class T> struct MmaElem;
template <> struct MmaElem<__half> {
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    mma_m16n8k16_f16f32(d, a, b, d);
  }
};
template <> struct MmaElem<__nv_bfloat16> {
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    mma_m16n8k16_bf16f32(d, a, b, d);
  }
};

constexpr int kMmaRows = 16;                          // mma M
constexpr size_t kMmaSmem = sizeof(float) * kWarps * kMmaRows * kRanksPerBlock;  // warp partials
static_assert(LLMRT_CUDA_LORA_TILE_ROWS == kMmaRows, "a tile is one mma row block");
static_assert(LLMRT_CUDA_LORA_SPLIT_K % (16 * kWarps) == 0, "whole k16 steps per warp");

// Two 16-bit elements p[0], p[1] (each only when ok0 / ok1, else 0) as one register.
__device__ __forceinline__ uint32_t pair_bits(const uint16_t *p, bool ok0, bool ok1) {
  return (uint32_t)(ok0 ? p[0] : 0) | (uint32_t)(ok1 ? p[1] : 0) << 16;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    lora_shrink_mma_kernel(float *__restrict__ tmp,                    // [rows, splits, ld_tmp] fp32
                           int ld_tmp,
                           const T *__restrict__ x,                    // [rows, k]
                           int64_t k,
                           const llmrt_cuda_lora_slot *__restrict__ slots,  // [n_slots]
                           int n_slots,
                           const int32_t *__restrict__ row_slot,       // [rows]
                           const int32_t *__restrict__ tile_row,       // [tiles] or NULL (1 row each)
                           const int32_t *__restrict__ tile_len) {     // [tiles]
  DYN_SMEM(float, red);  // [kWarps][kMmaRows][kRanksPerBlock]
  Tile t;
  if (!load_tile(t, slots, n_slots, row_slot, tile_row, tile_len)) return;  // block-uniform
  const int rank = t.d.rank;
  const int j_block = blockIdx.y * kRanksPerBlock;
  if (j_block >= rank) return;  // block-uniform
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int split = blockIdx.z, splits = gridDim.z;
  const int64_t k_begin = (int64_t)split * LLMRT_CUDA_LORA_SPLIT_K;
  const int64_t k_end = k < k_begin + LLMRT_CUDA_LORA_SPLIT_K ? k : k_begin + LLMRT_CUDA_LORA_SPLIT_K;
  const uint16_t *xs = reinterpret_cast<const uint16_t *>(x) + t.row0 * k;
  const uint16_t *As = reinterpret_cast<const uint16_t *>(t.d.a);
  // this lane's fragment rows: x rows g, g + 8 of the tile; A rows (ranks) of n-tiles 0 and 1
  const bool r_lo = g < t.rows, r_hi = g + 8 < t.rows;
  const uint16_t *x_lo = xs + (int64_t)g * k, *x_hi = xs + (int64_t)(g + 8) * k;
  const int j0 = j_block + g, j1 = j_block + 8 + g;
  const uint16_t *a0 = As + (int64_t)j0 * k, *a1 = As + (int64_t)j1 * k;

  float c[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  for (int64_t k0 = k_begin + 16 * warp; k0 < k_end; k0 += 16 * kWarps) {  // warp-uniform
    const int64_t ka = k0 + 2 * tq, kb = ka + 8;  // columns of this lane: ka, ka+1, kb, kb+1
    const bool ka0 = ka < k_end, ka1 = ka + 1 < k_end, kb0 = kb < k_end, kb1 = kb + 1 < k_end;
    uint32_t a[4];
    a[0] = pair_bits(x_lo + ka, r_lo && ka0, r_lo && ka1);
    a[1] = pair_bits(x_hi + ka, r_hi && ka0, r_hi && ka1);
    a[2] = pair_bits(x_lo + kb, r_lo && kb0, r_lo && kb1);
    a[3] = pair_bits(x_hi + kb, r_hi && kb0, r_hi && kb1);
    uint32_t b0[2], b1[2];
    b0[0] = pair_bits(a0 + ka, j0 < rank && ka0, j0 < rank && ka1);
    b0[1] = pair_bits(a0 + kb, j0 < rank && kb0, j0 < rank && kb1);
    b1[0] = pair_bits(a1 + ka, j1 < rank && ka0, j1 < rank && ka1);
    b1[1] = pair_bits(a1 + kb, j1 < rank && kb0, j1 < rank && kb1);
    MmaElem<T>::mma(c[0], a, b0);
    MmaElem<T>::mma(c[1], a, b1);
  }
  // c[nt][i]: row g + 8 [i >= 2], rank nt * 8 + 2 tq + (i & 1)
  LLMRT_UNROLL
  for (int nt = 0; nt < 2; nt++)
    LLMRT_UNROLL
    for (int i = 0; i < 4; i++)
      red[(warp * kMmaRows + g + 8 * (i >> 1)) * kRanksPerBlock + nt * 8 + 2 * tq + (i & 1)] = c[nt][i];
  __syncthreads();
  for (int o = threadIdx.x; o < kMmaRows * kRanksPerBlock; o += kThreads) {
    const int m = o / kRanksPerBlock, j = j_block + o % kRanksPerBlock;
    if (m >= t.rows || j >= rank) continue;
    float v = red[o];
    for (int w = 1; w < kWarps; w++) v += red[w * kMmaRows * kRanksPerBlock + o];  // warp order
    tmp[((t.row0 + m) * splits + split) * ld_tmp + j] = v;
  }
}

template <class T, int MR>
__global__ void __launch_bounds__(kThreads)
    lora_expand_kernel(T *__restrict__ out,                        // [rows, n]
                       int64_t n,
                       const float *__restrict__ tmp,              // [rows, splits, ld_tmp] fp32
                       int ld_tmp,
                       int splits,
                       const llmrt_cuda_lora_slot *__restrict__ slots,  // [n_slots]
                       int n_slots,
                       const int32_t *__restrict__ row_slot,       // [rows]
                       const float *__restrict__ row_scale,        // [rows]
                       const int32_t *__restrict__ tile_row,       // [tiles] or NULL (1 row each)
                       const int32_t *__restrict__ tile_len) {     // [tiles]
  DYN_SMEM(float, smem);
  float(*bs)[kChunkR + 1] = reinterpret_cast<float(*)[kChunkR + 1]>(smem);  // [kCols][kChunkR + 1]:
                                                       // +1, thread c reads row c conflict-free
  // ts [kChunkR][MR]: a rank's MR values side by side, read as float4 (the offset is 16-byte aligned)
  float(*ts)[MR] = reinterpret_cast<float(*)[MR]>(smem + kCols * (kChunkR + 1));
  static_assert(kCols * (kChunkR + 1) % 4 == 0, "ts 16-byte aligned");
  Tile t;
  if (!load_tile(t, slots, n_slots, row_slot, tile_row, tile_len)) return;  // block-uniform
  const int rank = t.d.rank;
  const int64_t c0 = (int64_t)blockIdx.y * kCols;
  const int cols = n - c0 < kCols ? (int)(n - c0) : kCols;
  const T *B = static_cast<const T *>(t.d.b) + c0 * rank;  // rows c0 .. c0+cols of B
  const int tid = threadIdx.x;

  float acc[MR];
  LLMRT_UNROLL
  for (int m = 0; m < MR; m++) acc[m] = 0.0f;

  for (int jc = 0; jc < rank; jc += kChunkR) {
    const int jn = rank - jc < kChunkR ? rank - jc : kChunkR;
    __syncthreads();  // the previous chunk is consumed
    // consecutive threads read consecutive ranks of a row (the whole tile is contiguous when
    // jn == rank)
    for (int i = tid; i < cols * jn; i += kThreads) {
      const int c = i / jn, jj = i % jn;
      bs[c][jj] = llmrt_to_f32(B[(int64_t)c * rank + jc + jj]);
    }
    for (int i = tid; i < MR * jn; i += kThreads) {  // consecutive threads: consecutive ranks
      const int m = i / jn, jj = i % jn;
      float v = 0.0f;
      if (m < t.rows) {
        const float *p = tmp + (t.row0 + m) * splits * ld_tmp + jc + jj;
        for (int sp = 0; sp < splits; sp++) v += p[(int64_t)sp * ld_tmp];  // split order: fixed per k
      }
      ts[jj][m] = v;
    }
    __syncthreads();
    if (tid < cols) {
      for (int jj = 0; jj < jn; jj++) {
        const float b = bs[tid][jj];
        LLMRT_UNROLL
        for (int m = 0; m < MR; m++) acc[m] = fmaf(ts[jj][m], b, acc[m]);
      }
    }
  }
  if (tid >= cols) return;
  LLMRT_UNROLL
  for (int m = 0; m < MR; m++) {
    if (m < t.rows) {
      T *o = out + (t.row0 + m) * n + c0 + tid;
      *o = llmrt_from_f32<T>(fmaf(row_scale[t.row0 + m], acc[m], llmrt_to_f32(*o)));
    }
  }
}

// Argument checks shared by the launchers (the kernels trust them).
static bool args_ok(const llmrt_cuda_lora_args *a) {
  return a && a->n >= 1 && a->k >= 1 && a->n_rows >= 0 && a->slots && a->n_slots >= 0 &&
         a->max_rank >= 0 && a->max_rank <= LLMRT_CUDA_LORA_MAX_RANK && a->tmp &&
         a->ld_tmp >= a->max_rank && a->row_slot && a->row_scale && a->out && a->x &&
         (a->n + kCols - 1) / kCols <= 65535 && llmrt_cuda_lora_splits(a->k) <= 65535 &&
         (!a->tile_row || (a->tile_len && a->n_class[0] >= 0 && a->n_class[1] >= 0 &&
                           a->n_class[2] >= 0 &&
                           (int64_t)a->n_class[0] + a->n_class[1] + a->n_class[2] <= a->n_rows));
}

// Launches KERNEL<T, MR> over grid (tiles, gy, gz) for each class of tiles (or MR = 1 over every
// row when there are no tiles).
#define LORA_LAUNCH_CLASSES(KERNEL, SMEM, T, gy, gz, ...)                                          \
  do {                                                                                             \
    if (!a->tile_row) {                                                                            \
      LAUNCH((KERNEL<T, 1>), dim3((unsigned)a->n_rows, gy, gz), kThreads, SMEM<1>(), s, __VA_ARGS__,\
             (const int32_t *)nullptr, (const int32_t *)nullptr);                                  \
      break;                                                                                       \
    }                                                                                              \
    const int32_t *tr = a->tile_row, *tl = a->tile_len;                                            \
    const int32_t *nc = a->n_class;                                                                \
    if (nc[0])                                                                                     \
      LAUNCH((KERNEL<T, LLMRT_CUDA_LORA_TILE_ROWS>), dim3((unsigned)nc[0], gy, gz), kThreads,      \
             SMEM<LLMRT_CUDA_LORA_TILE_ROWS>(), s, __VA_ARGS__, tr, tl);                           \
    if (nc[1])                                                                                     \
      LAUNCH((KERNEL<T, 4>), dim3((unsigned)nc[1], gy, gz), kThreads, SMEM<4>(), s, __VA_ARGS__,   \
             tr + nc[0], tl + nc[0]);                                                              \
    if (nc[2])                                                                                     \
      LAUNCH((KERNEL<T, 1>), dim3((unsigned)nc[2], gy, gz), kThreads, SMEM<1>(), s, __VA_ARGS__,   \
             tr + nc[0] + nc[1], tl + nc[0] + nc[1]);                                              \
  } while (0)

}  // namespace lora

using namespace lora;

extern "C" int llmrt_cuda_lora_shrink(void *stream, const llmrt_cuda_lora_args *a) {
  if (!args_ok(a)) return (int)cudaErrorInvalidValue;
  if (a->n_rows == 0 || a->max_rank == 0) return 0;
  cudaStream_t s = (cudaStream_t)stream;
  const unsigned gy = (unsigned)((a->max_rank + kRanksPerBlock - 1) / kRanksPerBlock);
  const unsigned gz = (unsigned)llmrt_cuda_lora_splits(a->k);
  if (a->dtype == LLMRT_CUDA_F16 || a->dtype == LLMRT_CUDA_BF16) {  // tensor cores, every tile
    const unsigned gx = a->tile_row ? (unsigned)(a->n_class[0] + a->n_class[1] + a->n_class[2])
                                    : (unsigned)a->n_rows;
    if (gx == 0) return 0;
    if (a->dtype == LLMRT_CUDA_F16)
      LAUNCH(lora_shrink_mma_kernel<__half>, dim3(gx, gy, gz), kThreads, kMmaSmem, s, a->tmp, a->ld_tmp,
             (const __half *)a->x, a->k, a->slots, a->n_slots, a->row_slot, a->tile_row, a->tile_len);
    else
      LAUNCH(lora_shrink_mma_kernel<__nv_bfloat16>, dim3(gx, gy, gz), kThreads, kMmaSmem, s, a->tmp,
             a->ld_tmp, (const __nv_bfloat16 *)a->x, a->k, a->slots, a->n_slots, a->row_slot, a->tile_row,
             a->tile_len);
    return (int)cudaGetLastError();
  }
  if (a->dtype != LLMRT_CUDA_F32) return (int)cudaErrorInvalidValue;
  LORA_LAUNCH_CLASSES(lora_shrink_kernel, shrink_smem, float, gy, gz, a->tmp, a->ld_tmp, (const float *)a->x,
                      a->k, a->slots, a->n_slots, a->row_slot);
  return (int)cudaGetLastError();
}

extern "C" int llmrt_cuda_lora_expand(void *stream, const llmrt_cuda_lora_args *a) {
  if (!args_ok(a)) return (int)cudaErrorInvalidValue;
  if (a->n_rows == 0 || a->max_rank == 0) return 0;
  cudaStream_t s = (cudaStream_t)stream;
  const unsigned gy = (unsigned)((a->n + kCols - 1) / kCols);
  LLMRT_DISPATCH(a->dtype, T,
                 LORA_LAUNCH_CLASSES(lora_expand_kernel, expand_smem, T, gy, 1u, (T *)a->out, a->n,
                                     (const float *)a->tmp, a->ld_tmp,
                                     (int)llmrt_cuda_lora_splits(a->k), a->slots, a->n_slots,
                                     a->row_slot, a->row_scale))
  return (int)cudaGetLastError();
}

extern "C" int llmrt_cuda_lora_apply(void *stream, const llmrt_cuda_lora_args *a) {
  int rc = llmrt_cuda_lora_shrink(stream, a);
  return rc ? rc : llmrt_cuda_lora_expand(stream, a);
}

extern "C" int32_t llmrt_cuda_lora_splits(int64_t k) {
  return k < 1 ? 1 : (int32_t)((k + LLMRT_CUDA_LORA_SPLIT_K - 1) / LLMRT_CUDA_LORA_SPLIT_K);
}

extern "C" int32_t llmrt_cuda_lora_tiles(const int32_t *row_slot, int32_t n_rows, int32_t *tile_row,
                                         int32_t *tile_len, int32_t n_class[3]) {
  // two passes over the runs: count the tiles of each class, then place them
  int32_t at[3] = {0, 0, 0};
  for (int pass = 0; pass < 2; pass++) {
    int32_t cnt[3] = {0, 0, 0};
    for (int32_t t = 0; t < n_rows;) {
      const int32_t s = row_slot[t];
      int32_t end = t + 1;
      while (end < n_rows && row_slot[end] == s) end++;
      if (s >= 0) {
        for (int32_t r = t; r < end; r += LLMRT_CUDA_LORA_TILE_ROWS) {
          const int32_t len = end - r < LLMRT_CUDA_LORA_TILE_ROWS ? end - r : LLMRT_CUDA_LORA_TILE_ROWS;
          const int cls = len > 4 ? LLMRT_CUDA_LORA_TILE16 : len > 1 ? LLMRT_CUDA_LORA_TILE4
                                                                    : LLMRT_CUDA_LORA_TILE1;
          if (pass == 1) {
            tile_row[at[cls] + cnt[cls]] = r;
            tile_len[at[cls] + cnt[cls]] = len;
          }
          cnt[cls]++;
        }
      }
      t = end;
    }
    if (pass == 0) {
      n_class[0] = cnt[0], n_class[1] = cnt[1], n_class[2] = cnt[2];
      at[1] = cnt[0];
      at[2] = cnt[0] + cnt[1];
    }
  }
  return n_class[0] + n_class[1] + n_class[2];
}
