/* Attention over the paged KV cache on the CPU, flash-style: the batch is cut into query tiles
 * (consecutive tokens of one sequence at increasing positions, up to LLMRT_CPU_ATTN_MAX_ROWS
 * (token, head) rows, every query head of one GQA group), and one task runs one (tile, KV head):
 * it streams the sequence's K/V once, LLMRT_CPU_ATTN_CHUNK positions at a time, with an online
 * softmax (running max and sum per row, output rescaled when the max grows). The old kernel read
 * the whole K/V history once per (token, head), so prefill cost grew with the prompt squared in
 * memory traffic too.
 *
 * Batch invariance: a row's arithmetic never depends on the tile it is in. KV chunks start at
 * absolute positions that are multiples of the chunk width, every score is a sequential FMA
 * over d, every output element o = o * alpha, then o = fma(p_j, v_jd, o) for j in order; rows
 * of a tile only share loads. A chunk position beyond a row's own position gets p = 0 exactly,
 * which leaves o, l and m unchanged. So a token gives the same bits alone (decode), in any
 * prefill chunk, or next to other sequences. Under a sliding window the same holds: a row runs
 * exactly the chunks that meet (p - W, p], and positions below p - W + 1 get p = 0 too. Different ISAs round differently (each is tested
 * against an fp64 reference). */
#ifndef LLMRT_BACKEND_CPU_ATTENTION_CPU_H
#define LLMRT_BACKEND_CPU_ATTENTION_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "../../core/error.h"
#include "../../core/thread_pool.h"
#include "../../format/dtype.h"

/* (token, head) rows per tile: 16 tokens of a 3-way GQA group. Enough rows to amortise the K
 * chunk transpose and keep the V rows hot; few enough that q, out and P stay in L1/L2 and that a
 * 128-token prompt still gives each thread several tasks. */
#define LLMRT_CPU_ATTN_MAX_ROWS 48
/* KV positions per online-softmax step (one AVX-512 vector of scores; AVX2 uses two halves) */
#define LLMRT_CPU_ATTN_CHUNK 16

/* Layout of the CPU's F32 and BF16 K pools: d-major within each block and KV head, so that the
 * 16 positions of a chunk are 16 consecutive elements for each d (kt of the kernels, read straight
 * from the cache; transposing K rows per chunk took half the time of a decode step's attention).
 * Element (slot, KV head h, d) is at this index of the layer's K pool; a block is still
 * block_size * Hkv * hd contiguous elements, so block copies (copy-on-write forks) are unchanged.
 * V pools and 8-bit pools (format/kv_quant.h) stay [slot, Hkv, hd]: P·V reads V rows. */
static inline int64_t llmrt_cpu_k_index(int64_t slot, int32_t h, int32_t d, int32_t n_kv_heads,
                                        int32_t head_dim, int32_t block_size) {
    return ((slot / block_size * n_kv_heads + h) * head_dim + d) * block_size + slot % block_size;
}

/* One (query tile, KV head). Rows are (token i, head g) with r = i * group + g. */
typedef struct llmrt_cpu_attn_tile {
    const float   *q;          /* row (i, g) at q + i * q_ld + g * head_dim: [n_tok, group, hd]   */
    float         *out;        /* same layout as q (q_ld apart per token)                         */
    int64_t        q_ld;       /* floats between tokens: Hq * hd                                  */
    const int32_t *pos;        /* [n_tok] strictly increasing positions                           */
    int32_t        n_tok;      /* tokens in the tile (n_tok * group <= MAX_ROWS)                 */
    int32_t        group;      /* query heads per KV head                                         */
    int32_t        head_dim;
    llmrt_dtype    kv_dtype;   /* F32: the cache is k, v; I8 / F8_E4M3 / BF16: k8, v8, widened
                                * to fp32 in registers (AVX-512) or a chunk at a time into
                                * scratch (AVX2, portable; attention_cpu_kv.h)               */
    const float   *k, *v;      /* F32 pools: k = K pool + h * hd * block_size (d-major: position
                                * p's element d at k + table[p / bs] * k_block + d * bs + p % bs);
                                * v = V pool + h * hd (position p at v + slot(p) * kv_ld)      */
    const uint8_t *k8, *v8;    /* BF16: k8 d-major as k (2-byte elements), v8 = V pool + 2 * h * hd;
                                * 8-bit: both pool base + h * hd, the head's codes at offset 0
                                * of block 0                                                   */
    int64_t        k_block;    /* F32 / BF16: elements between blocks of the K pool (bs*Hkv*hd) */
    int64_t        kv_ld;      /* F32: floats between V slots (Hkv * hd); 8-bit / BF16: code
                                * bytes between the (V, 8-bit K) slots of a block             */
    int64_t        block_bytes;/* 8-bit / BF16: bytes of a block (format/kv_quant.h)          */
    int64_t        scale_off;  /* 8-bit: from k8 to the head's scale at (block 0, slot 0)      */
    int64_t        scale_ld;   /* 8-bit: bytes between the scales of a block's slots (4 * Hkv) */
    const float   *fp8_lut;    /* F8_E4M3: the 256 code values (llmrt_fp8_e4m3_table)           */
    const int32_t *table;      /* [>= pos / block_size + 1] block ids of the sequence             */
    int32_t        block_size; /* tokens per KV block                                             */
    float          scale;      /* 1/sqrt(hd)                                                      */
    int32_t        window;     /* W > 0: the row at position p sees positions (p - W, p] only    */
} llmrt_cpu_attn_tile;

/* The first position a row at position p attends to: p - W + 1 under a sliding window W
 * (HF: kv_idx > q_idx - W), else 0. Rows of a tile have increasing positions, so their first
 * positions increase too: the rows that need a chunk [c0, c0 + CHUNK) are a contiguous range
 * (position >= c0 and first position < c0 + CHUNK), and a chunk's positions below the first
 * row's first position are never read (they may be in blocks the engine has freed). */
static inline int32_t llmrt_cpu_attn_lo(const llmrt_cpu_attn_tile *t, int32_t p) {
    return t->window > 0 && p >= t->window ? p - t->window + 1 : 0;
}

/* Runs one tile; scratch holds llmrt_cpu_attn_scratch_floats(head_dim) floats, 64-byte aligned
 * (the last 2 * CHUNK * hd of them hold the K and V rows of a chunk of an 8-bit or bf16 cache
 * converted to fp32: attention_cpu_kv.h). */
typedef void (*llmrt_cpu_attn_tile_fn)(const llmrt_cpu_attn_tile *t, float *scratch);

size_t llmrt_cpu_attn_scratch_floats(int32_t head_dim);

/* per-ISA tile kernels; `for` picks by the name llmrt_cpu_kernels_select chose ("avx512",
 * "avx2", anything else: generic) */
void                   llmrt_cpu_attn_tile_generic(const llmrt_cpu_attn_tile *t, float *scratch);
void                   llmrt_cpu_attn_tile_avx2(const llmrt_cpu_attn_tile *t, float *scratch);
void                   llmrt_cpu_attn_tile_avx512(const llmrt_cpu_attn_tile *t, float *scratch);
llmrt_cpu_attn_tile_fn llmrt_cpu_attn_tile_for(const char *isa);

/* Per-backend state: the kernel, per-thread scratch and the tile list, sized by reserve (called
 * from begin_batch, where a failure can be reported) so the forward allocates nothing. */
typedef struct llmrt_cpu_attn {
    llmrt_cpu_attn_tile_fn tile;
    int                    n_threads;
    float                **scratch;     /* [n_threads][scratch_cap]                           */
    size_t                 scratch_cap; /* floats                                              */
    int32_t               *tiles;       /* [tiles_cap] first token of each tile, then the end */
    int64_t                tiles_cap;
} llmrt_cpu_attn;

llmrt_status llmrt_cpu_attn_init(llmrt_cpu_attn *a, const char *isa, int n_threads,
                                 llmrt_error *err);
void         llmrt_cpu_attn_free(llmrt_cpu_attn *a);
llmrt_status llmrt_cpu_attn_reserve(llmrt_cpu_attn *a, int64_t n_tokens, int32_t head_dim,
                                    llmrt_error *err);

/* out [T, Hq, hd] = softmax(q Kᵀ * scale, causal to each token's position, within the sliding
 * window when window > 0) V over the paged
 * cache of the token's sequence. q [T, Hq, hd]; v_cache [slots, Hkv, hd] and k_cache in the
 * d-major layout of llmrt_cpu_k_index, fp32 when kv_dtype is F32, bf16 (uint16) when BF16, else
 * both 8-bit blocks of codes and scales
 * (format/kv_quant.h); BF16 and 8-bit are widened to fp32 inside the tile kernels;
 * positions, seq_of [T]; block_tables [n_seqs, max_blocks]. Needs a prior reserve for T and hd
 * (returns LLMRT_ERR_OUT_OF_MEMORY, output untouched, otherwise). */
typedef struct llmrt_cpu_attn_batch {
    const int32_t *positions;    /* [T] */
    const int32_t *seq_of;       /* [T] */
    const int32_t *block_tables; /* [n_seqs, max_blocks] */
    int32_t        n_tokens, max_blocks;
} llmrt_cpu_attn_batch;

llmrt_status llmrt_cpu_attention(llmrt_cpu_attn *a, llmrt_thread_pool *pool, float *out,
                                 const float *q, const void *k_cache, const void *v_cache,
                                 llmrt_dtype kv_dtype,
                                 int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                                 int32_t block_size, float scale, int32_t window,
                                 const llmrt_cpu_attn_batch *b);

#endif
