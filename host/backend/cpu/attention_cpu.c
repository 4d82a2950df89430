/* Tiling and threading of the CPU attention (attention_cpu.h); the per-ISA tile kernels are in
 * attention_cpu_{generic,avx2,avx512}.c. */
#include "attention_cpu.h"

#include "../../format/kv_quant.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

size_t llmrt_cpu_attn_scratch_floats(int32_t head_dim) {
    /* kt [hd, CHUNK] | p [MAX_ROWS, CHUNK] | m, l, alpha [MAX_ROWS] each, 16-float aligned |
     * converted K, V rows [2, CHUNK, hd] (8-bit and bf16 caches) */
    size_t rows = (LLMRT_CPU_ATTN_MAX_ROWS + 15) / 16 * 16;
    return (size_t)head_dim * LLMRT_CPU_ATTN_CHUNK + rows * LLMRT_CPU_ATTN_CHUNK + 3 * rows +
           2 * (size_t)head_dim * LLMRT_CPU_ATTN_CHUNK;
}

llmrt_cpu_attn_tile_fn llmrt_cpu_attn_tile_for(const char *isa) {
    if (isa && strcmp(isa, "avx512") == 0) return llmrt_cpu_attn_tile_avx512;
    if (isa && strcmp(isa, "avx2") == 0) return llmrt_cpu_attn_tile_avx2;
    return llmrt_cpu_attn_tile_generic;
}

llmrt_status llmrt_cpu_attn_init(llmrt_cpu_attn *a, const char *isa, int n_threads,
                                 llmrt_error *err) {
    memset(a, 0, sizeof *a);
    a->tile      = llmrt_cpu_attn_tile_for(isa);
    a->n_threads = n_threads;
    a->scratch   = calloc((size_t)n_threads, sizeof *a->scratch);
    if (!a->scratch) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu attention: out of memory");
    return LLMRT_OK;
}

void llmrt_cpu_attn_free(llmrt_cpu_attn *a) {
    if (a->scratch)
        for (int t = 0; t < a->n_threads; t++) free(a->scratch[t]);
    free(a->scratch);
    free(a->tiles);
    memset(a, 0, sizeof *a);
}

llmrt_status llmrt_cpu_attn_reserve(llmrt_cpu_attn *a, int64_t n_tokens, int32_t head_dim,
                                    llmrt_error *err) {
    size_t need = llmrt_cpu_attn_scratch_floats(head_dim);
    if (need > a->scratch_cap) {
        for (int t = 0; t < a->n_threads; t++) {
            free(a->scratch[t]);
            a->scratch[t] = NULL;
            if (posix_memalign((void **)&a->scratch[t], 64, need * sizeof(float)) != 0) {
                a->scratch[t]  = NULL;
                a->scratch_cap = 0;
                return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu attention: out of memory");
            }
        }
        a->scratch_cap = need;
    }
    if (n_tokens + 1 > a->tiles_cap) {
        int32_t *n = realloc(a->tiles, (size_t)(n_tokens + 1) * sizeof *n);
        if (!n) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu attention: out of memory");
        a->tiles     = n;
        a->tiles_cap = n_tokens + 1;
    }
    return LLMRT_OK;
}

typedef struct attn_job {
    llmrt_cpu_attn             *a;
    float                      *out;
    const float                *q;
    const void                 *k_cache, *v_cache;
    llmrt_dtype                 kv_dtype;
    const float                *fp8_lut;
    int32_t                     n_heads, n_kv_heads, head_dim, block_size, n_tiles, window;
    int32_t                     n_parts, part_heads; /* a GQA group wider than a tile is split */
    float                       scale;
    const llmrt_cpu_attn_batch *b;
} attn_job;

static void attn_task(void *p, int64_t task, int thread) {
    const attn_job *j = p;
    /* tiles late in the batch see the longest history: run them first so the last tasks to be
     * claimed are the short ones (a prefill's work grows with the tile index) */
    int64_t  per_tile = (int64_t)j->n_kv_heads * j->n_parts;
    int32_t  tile = j->n_tiles - 1 - (int32_t)(task / per_tile);
    int32_t  kvh  = (int32_t)(task % per_tile / j->n_parts), part = (int32_t)(task % j->n_parts);
    int32_t  t0 = j->a->tiles[tile], t1 = j->a->tiles[tile + 1];
    int32_t  G = j->n_heads / j->n_kv_heads, hd = j->head_dim;
    int32_t  h0 = part * j->part_heads;
    int32_t  nh = G - h0 < j->part_heads ? G - h0 : j->part_heads;
    int64_t  q_ld = (int64_t)j->n_heads * hd, kv_ld = (int64_t)j->n_kv_heads * hd;
    int64_t  row0 = (int64_t)t0 * q_ld + ((int64_t)kvh * G + h0) * hd;
    llmrt_cpu_attn_tile t = {
        .q          = j->q + row0,
        .out        = j->out + row0,
        .q_ld       = q_ld,
        .pos        = j->b->positions + t0,
        .n_tok      = t1 - t0,
        .group      = nh,
        .head_dim   = hd,
        .kv_dtype   = j->kv_dtype,
        .kv_ld      = kv_ld,
        .table      = j->b->block_tables + (int64_t)j->b->seq_of[t0] * j->b->max_blocks,
        .block_size = j->block_size,
        .scale      = j->scale,
        .window     = j->window,
    };
    if (llmrt_kv_dtype_is_8bit(j->kv_dtype)) {
        llmrt_kv8_layout l = {j->block_size, j->n_kv_heads, hd};
        t.kv_ld            = kv_ld;
        t.block_bytes      = llmrt_kv8_block_bytes(&l);
        t.k8               = (const uint8_t *)j->k_cache + (int64_t)kvh * hd;
        t.v8               = (const uint8_t *)j->v_cache + (int64_t)kvh * hd;
        t.scale_off        = llmrt_kv8_scale_off(&l, 0, kvh) - (int64_t)kvh * hd;
        t.scale_ld         = 4 * (int64_t)j->n_kv_heads;
        t.fp8_lut   = j->fp8_lut;
    } else if (j->kv_dtype == LLMRT_DTYPE_BF16) { /* V [slots, Hkv, hd] of 2 bytes, K d-major */
        t.kv_ld       = 2 * kv_ld;
        t.block_bytes = (int64_t)j->block_size * t.kv_ld;
        t.k_block     = (int64_t)j->block_size * kv_ld;
        t.k8 = (const uint8_t *)j->k_cache + 2 * llmrt_cpu_k_index(0, kvh, 0, j->n_kv_heads, hd,
                                                                    j->block_size);
        t.v8 = (const uint8_t *)j->v_cache + 2 * (int64_t)kvh * hd;
    } else {
        t.k_block = (int64_t)j->block_size * kv_ld;
        t.k = (const float *)j->k_cache + llmrt_cpu_k_index(0, kvh, 0, j->n_kv_heads, hd,
                                                            j->block_size);
        t.v = (const float *)j->v_cache + (int64_t)kvh * hd;
    }
    j->a->tile(&t, j->a->scratch[thread]);
}

llmrt_status llmrt_cpu_attention(llmrt_cpu_attn *a, llmrt_thread_pool *pool, float *out,
                                 const float *q, const void *k_cache, const void *v_cache,
                                 llmrt_dtype kv_dtype,
                                 int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                                 int32_t block_size, float scale, int32_t window,
                                 const llmrt_cpu_attn_batch *b) {
    int32_t T = b->n_tokens;
    if (T <= 0) return LLMRT_OK;
    if (kv_dtype != LLMRT_DTYPE_F32 && kv_dtype != LLMRT_DTYPE_BF16 &&
        !llmrt_kv_dtype_is_8bit(kv_dtype))
        return LLMRT_ERR_INVALID_ARG;
    if (a->scratch_cap < llmrt_cpu_attn_scratch_floats(head_dim) || a->tiles_cap < T + 1)
        return LLMRT_ERR_OUT_OF_MEMORY;
    int32_t G       = n_heads / n_kv_heads;
    int32_t n_parts = (G + LLMRT_CPU_ATTN_MAX_ROWS - 1) / LLMRT_CPU_ATTN_MAX_ROWS;
    int32_t part_h  = (G + n_parts - 1) / n_parts;
    int32_t max_tok = LLMRT_CPU_ATTN_MAX_ROWS / part_h;
    /* a tile: consecutive tokens of one sequence at increasing positions (prefill chunks are
     * packed that way; anything else just makes shorter tiles) */
    int32_t n_tiles = 0;
    for (int32_t t = 0; t < T; t++) {
        bool extend = t > 0 && t - a->tiles[n_tiles - 1] < max_tok &&
                      b->seq_of[t] == b->seq_of[t - 1] && b->positions[t] > b->positions[t - 1];
        if (!extend) a->tiles[n_tiles++] = t;
    }
    a->tiles[n_tiles] = T;
    attn_job job = {.a = a, .out = out, .q = q, .k_cache = k_cache, .v_cache = v_cache,
                    .kv_dtype = kv_dtype,
                    .fp8_lut  = kv_dtype == LLMRT_DTYPE_F8_E4M3 ? llmrt_fp8_e4m3_table() : NULL,
                    .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim,
                    .block_size = block_size, .n_tiles = n_tiles, .n_parts = n_parts,
                    .part_heads = part_h, .scale = scale, .window = window, .b = b};
    llmrt_thread_pool_run(pool, (int64_t)n_tiles * n_kv_heads * n_parts, attn_task, &job);
    return LLMRT_OK;
}
