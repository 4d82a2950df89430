/* lora.h: batched multi-LoRA for the CUDA backend (the shape of Punica's SGMV / vLLM's
 * shrink-expand): for every row t of a batch whose slot s = row_slot[t] names a filled slot,
 *
 *     out[t, :] += row_scale[t] * (x[t, :] · A_sᵀ) · B_sᵀ      A_s [r_s, k], B_s [n, r_s]
 *
 * in two kernels (lora.cu):
 *   shrink:  tmp[t, p, 0..r_s) = x[t, K_p] · A_s[:, K_p]ᵀ     (fp32 [n_rows, splits, ld_tmp])
 *            for the fixed splits K_p of k (LLMRT_CUDA_LORA_SPLIT_K columns each)
 *   expand:  out[t, :]     += row_scale[t] * (Σ_p tmp[t, p, 0..r_s)) · B_sᵀ
 * Each row reads its slot's A/B pointers and rank from a device array of descriptors, so rows of
 * different adapters (and rows without one) share one launch.
 *
 * Rows are served per tile (llmrt_cuda_lora_tiles, on the host):
 *   - single rows (decode: rows of different slots, few rows): a gather GEMV, one block per row;
 *   - tiles of up to LLMRT_CUDA_LORA_TILE_ROWS consecutive rows of one slot (prefill: the
 *     runner packs each sequence's tokens contiguously): every A and B element loaded serves all
 *     rows of the tile.
 * A row's result is bit-identical whichever tile or batch it is computed in (batch invariance):
 *   shrink, fp16/bf16: one tensor-core kernel (mma.m16n8k16, fp32 accumulation) for tiles of 1 to
 *     16 rows (a row's products and sums are the same instructions in the same order whatever
 *     the other rows of its tile hold); k is cut into fixed splits, each summed in k16 steps per
 *     warp, the 4 warps in warp order;
 *   shrink, fp32: lane l of a warp sums k ≡ l (mod 32) of each split in increasing k by fmaf, then
 *     an xor butterfly over the 32 lanes, the same code for every tile size;
 *   expand: the split partials summed in split order, then fmaf over j = 0 .. r_s-1 in order,
 *     then out = fmaf(scale, acc, out), the same code for every tile size.
 *
 * x, out, A and B have the activation dtype (F16, BF16, or F32); all arithmetic is fp32.
 * Launchers follow llmrt_cuda.h: asynchronous on `stream`, no allocation, no synchronisation;
 * they return a cudaError_t as int (cudaErrorInvalidValue for an argument or dtype no kernel
 * takes: nothing launched). */
#ifndef LLMRT_CUDA_LORA_H
#define LLMRT_CUDA_LORA_H

#include <stdint.h>

#include "llmrt_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMRT_CUDA_LORA_MAX_RANK  1024 /* largest rank of a slot */
#define LLMRT_CUDA_LORA_TILE_ROWS 16   /* rows of the largest tile */
#define LLMRT_CUDA_LORA_SPLIT_K   512  /* input features per shrink block (k splits) */

/* One slot of a table, as the kernels read it (device memory, an array of n_slots). */
typedef struct llmrt_cuda_lora_slot {
    const void *a;    /* [rank, k] device, activation dtype */
    const void *b;    /* [n, rank] device, activation dtype */
    int32_t     rank; /* 0: empty (a, b unused) */
    int32_t     pad_;
} llmrt_cuda_lora_slot;

/* The k splits of the shrink: ceil(k / LLMRT_CUDA_LORA_SPLIT_K) (1 for k < 1). */
int32_t llmrt_cuda_lora_splits(int64_t k);

/* Row tiles of a batch: classes of tiles by their kernel, each class contiguous in tile_row /
 * tile_len, in this order: up to 16 rows, up to 4 rows, 1 row. */
enum { LLMRT_CUDA_LORA_TILE16 = 0, LLMRT_CUDA_LORA_TILE4 = 1, LLMRT_CUDA_LORA_TILE1 = 2 };

typedef struct llmrt_cuda_lora_args {
    llmrt_cuda_dtype dtype;       /* of x, out, A, B: F16, BF16 or F32 */
    void            *out;         /* [n_rows, n] */
    const void      *x;           /* [n_rows, k] */
    int64_t          n, k;        /* output / input features (>= 1 each) */
    int32_t          n_rows;
    const llmrt_cuda_lora_slot *slots; /* [n_slots] device */
    int32_t          n_slots;
    int32_t          max_rank;    /* >= the rank of every slot a row names (sizes the grid) */
    float           *tmp;         /* [n_rows, llmrt_cuda_lora_splits(k), ld_tmp] device fp32 */
    int32_t          ld_tmp;      /* >= max_rank */
    const int32_t   *row_slot;    /* [n_rows] device: slot of each row, < 0 or >= n_slots: none */
    const float     *row_scale;   /* [n_rows] device */
    /* tiles (llmrt_cuda_lora_tiles), device: NULL = every row on its own (the GEMV path) */
    const int32_t   *tile_row;    /* [n_tiles] first row of each tile */
    const int32_t   *tile_len;    /* [n_tiles] rows of each tile */
    int32_t          n_class[3];  /* tiles of each class (LLMRT_CUDA_LORA_TILE16, ...) */
} llmrt_cuda_lora_args;

/* The two halves (tmp is written by shrink for the rows with a filled slot, read by expand). */
int llmrt_cuda_lora_shrink(void *stream, const llmrt_cuda_lora_args *a);
int llmrt_cuda_lora_expand(void *stream, const llmrt_cuda_lora_args *a);
/* shrink then expand. */
int llmrt_cuda_lora_apply(void *stream, const llmrt_cuda_lora_args *a);

/* Host: splits the rows with an adapter (row_slot[t] >= 0, host array) into tiles: maximal runs
 * of consecutive rows of one slot, cut into tiles of LLMRT_CUDA_LORA_TILE_ROWS rows; the last
 * piece of a run goes to the smallest class that holds it. Writes tile_row / tile_len [<= n_rows]
 * grouped by class (n_class[3]) and returns the number of tiles. */
int32_t llmrt_cuda_lora_tiles(const int32_t *row_slot, int32_t n_rows, int32_t *tile_row,
                              int32_t *tile_len, int32_t n_class[3]);

#ifdef __cplusplus
}
#endif

#endif
