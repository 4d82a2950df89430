/* The K and V rows of one chunk of the CPU attention as fp32 rows (attention_cpu.h), shared by
 * the tile kernels: pointers into the cache when it holds fp32, else rows converted (8-bit codes
 * dequantised, bf16 widened exactly) into the scratch's last 2 * CHUNK * hd floats. Each ISA file
 * includes this header and passes its own row converter, so the conversion runs with that file's
 * vector instructions. Converting a whole chunk once per tile (not per query row) shares the work
 * among the tile's rows: G rows of a decode token, up to MAX_ROWS of a prompt tile. */
#ifndef LLMRT_ATTENTION_CPU_KV_H
#define LLMRT_ATTENTION_CPU_KV_H

#include <stdbool.h>
#include <string.h>

#include "attention_cpu.h"

/* dst[n] = scale * value(codes[n]) for kv I8 (int8 codes) or F8_E4M3 (lut[256] values); for
 * BF16, dst[n] = the n bf16 values at codes (2n bytes, any alignment; scale is not used) */
typedef void (*llmrt_cpu_kv_dequant_fn)(float *dst, const uint8_t *codes, float scale, int32_t n,
                                        llmrt_dtype kv, const float *lut);

static inline int64_t llmrt_cpu_attn_slot(const llmrt_cpu_attn_tile *t, int32_t p) {
    return (int64_t)t->table[p / t->block_size] * t->block_size + p % t->block_size;
}

/* The scratch floats after which the dequantised rows start (llmrt_cpu_attn_scratch_floats). */
static inline float *llmrt_cpu_attn_deq(const llmrt_cpu_attn_tile *t, float *scratch) {
    size_t rows = (LLMRT_CPU_ATTN_MAX_ROWS + 15) / 16 * 16;
    return scratch + (size_t)t->head_dim * LLMRT_CPU_ATTN_CHUNK + rows * LLMRT_CPU_ATTN_CHUNK +
           3 * rows;
}

/* Whether K is stored d-major (llmrt_cpu_k_index): the F32 and BF16 pools. */
static inline bool llmrt_cpu_attn_k_dmajor(llmrt_dtype kv) {
    return kv == LLMRT_DTYPE_F32 || kv == LLMRT_DTYPE_BF16;
}

/* Position p's K element 0 in a d-major pool (F32 or BF16): element d is d * block_size
 * elements further (llmrt_cpu_k_index). */
static inline const uint8_t *llmrt_cpu_attn_k_at(const llmrt_cpu_attn_tile *t, int32_t p) {
    const int64_t  es = llmrt_dtype_block_bytes(t->kv_dtype);
    const uint8_t *k  = t->kv_dtype == LLMRT_DTYPE_F32 ? (const uint8_t *)t->k : t->k8;
    return k + ((int64_t)t->table[p / t->block_size] * t->k_block + p % t->block_size) * es;
}

/* The chunk's K transposed for a d-major pool (F32 or BF16 elements of `esize` bytes): kt[d]
 * = the 16 elements of positions c0 .. c0 + 15 for dimension d, `*ld` bytes apart from one d to
 * the next. When the chunk's 16 slots lie in one block (always for block sizes that are
 * multiples of 16) that is a pointer into the cache, ld = block_size * esize: lanes outside
 * [jlo, nv) then hold whatever the block holds there (stale or never written, still inside the
 * block), and the kernels give them p = 0 by mask, never by arithmetic. Otherwise the valid
 * lanes are copied into kt_scratch [hd, 16] (ld = 16 * esize, other lanes 0) one block's run at
 * a time; callers pass llmrt_cpu_attn_deq's K rows, which a d-major K leaves unused. The bytes are
 * copied as stored: a BF16 chunk stays bf16. */
static inline __attribute__((always_inline)) const uint8_t *
llmrt_cpu_attn_chunk_kt(const llmrt_cpu_attn_tile *t, int32_t c0, int32_t jlo, int32_t nv,
                        uint8_t *kt_scratch, int64_t *ld) {
    const int32_t W = LLMRT_CPU_ATTN_CHUNK, bs = t->block_size, hd = t->head_dim;
    const size_t  es = (size_t)llmrt_dtype_block_bytes(t->kv_dtype);
    if (c0 % bs + W <= bs) {
        *ld = (int64_t)bs * (int64_t)es;
        return llmrt_cpu_attn_k_at(t, c0);
    }
    memset(kt_scratch, 0, (size_t)hd * W * es);
    for (int32_t j = jlo; j < nv;) { /* a run of positions in one block */
        int32_t        n   = bs - (c0 + j) % bs < nv - j ? bs - (c0 + j) % bs : nv - j;
        const uint8_t *src = llmrt_cpu_attn_k_at(t, c0 + j);
        for (int32_t d = 0; d < hd; d++)
            memcpy(kt_scratch + ((size_t)d * W + (size_t)j) * es, src + (int64_t)d * bs * (int64_t)es,
                   (size_t)n * es);
        j += n;
    }
    *ld = (int64_t)W * (int64_t)es;
    return kt_scratch;
}

/* The stored rows of the position at offset o of the sequence's block blk (table index): its V
 * row and, for an 8-bit cache, its K row (NULL for the d-major F32 / BF16 K); byte addresses,
 * fp32 rows when the cache is F32. Returns the byte offset of the slot in its 8-bit / BF16 pool
 * (for the 8-bit scales), 0 for F32. */
static inline __attribute__((always_inline)) int64_t
llmrt_cpu_attn_rows_at(const llmrt_cpu_attn_tile *t, int32_t blk, int32_t o, const uint8_t **k,
                       const uint8_t **v) {
    if (t->kv_dtype == LLMRT_DTYPE_F32) {
        *k = NULL; /* d-major: llmrt_cpu_attn_chunk_kt */
        *v = (const uint8_t *)(t->v + ((int64_t)t->table[blk] * t->block_size + o) * t->kv_ld);
        return 0;
    }
    int64_t base = (int64_t)t->table[blk] * t->block_bytes;
    *k = llmrt_cpu_attn_k_dmajor(t->kv_dtype) ? NULL : t->k8 + base + o * t->kv_ld;
    *v = t->v8 + base + o * t->kv_ld;
    return base;
}

/* Bytes between the rows (V; 8-bit K) of consecutive slots of a block. */
static inline int64_t llmrt_cpu_attn_slot_bytes(const llmrt_cpu_attn_tile *t) {
    return t->kv_dtype == LLMRT_DTYPE_F32 ? t->kv_ld * (int64_t)sizeof(float) : t->kv_ld;
}

/* Prefetches into L2 the cache lines a chunk at c0 will read, positions [lo, hi] (hi at most
 * c0 + CHUNK - 1; lo at or above the first position the tile's earliest row still attends to, so
 * no freed block is addressed). Called one chunk ahead: a decode step reads each layer's K/V once,
 * after the layer's weights have pushed it out of cache, and the chunks lie in blocks scattered
 * over the pool, which the hardware prefetcher does not follow (the first loads of K and V took
 * over half of a decode step's attention time on Zen 3). K of a d-major pool: hd pieces of
 * CHUNK elements, ld = block_size elements apart; V and 8-bit K: one row per position. */
static inline __attribute__((always_inline)) void
llmrt_cpu_attn_prefetch_chunk(const llmrt_cpu_attn_tile *tile, int32_t lo, int32_t hi) {
    if (lo > hi) return;
    const llmrt_cpu_attn_tile tl = *tile, *t = &tl; /* see llmrt_cpu_attn_chunk_src */
    const int32_t bs = t->block_size, hd = t->head_dim;
    const int64_t es = llmrt_dtype_block_bytes(t->kv_dtype); /* 1 for the 8-bit caches */
    const int64_t row = hd * es, line = 64;
    if (llmrt_cpu_attn_k_dmajor(t->kv_dtype) && lo / bs == hi / bs) { /* K of one block */
        const int64_t  ld = (int64_t)bs * es, piece = (int64_t)(hi - lo + 1) * es;
        const uint8_t *k  = llmrt_cpu_attn_k_at(t, lo);
        if (piece == ld) /* whole block rows: hd * ld contiguous bytes */
            for (int64_t o = 0; o < hd * ld; o += line) __builtin_prefetch(k + o, 0, 2);
        else
            for (int32_t d = 0; d < hd; d++)
                for (int64_t o = 0; o < piece; o += line) __builtin_prefetch(k + d * ld + o, 0, 2);
    }
    /* a block's run of positions: its rows' address once, then the slot stride (a division or a
     * table read per position cost more than the prefetches) */
    const int64_t step = llmrt_cpu_attn_slot_bytes(t);
    int32_t       blk = lo / bs, o = lo % bs;
    for (int32_t p = lo; p <= hi; blk++, o = 0) {
        const uint8_t *v, *k;
        llmrt_cpu_attn_rows_at(t, blk, o, &k, &v);
        for (; p <= hi && o < bs; p++, o++, v += step, k = k ? k + step : NULL)
            for (int64_t b = 0; b < row; b += line) {
                __builtin_prefetch(v + b, 0, 2);
                if (k) __builtin_prefetch(k + b, 0, 2);
            }
    }
}

/* The cache rows of one chunk as stored, for kernels that read them directly in their inner
 * loops: the V rows and (8-bit caches; NULL for the d-major F32 / BF16 K) the K rows of position
 * c0 + j (byte addresses; fp32 rows when the cache is F32)
 * and, for an 8-bit cache, their scales (1 otherwise); j outside [jlo, nv) repeats row jlo, as
 * in llmrt_cpu_attn_chunk_rows. */
typedef struct llmrt_cpu_attn_src {
    const uint8_t *k[LLMRT_CPU_ATTN_CHUNK], *v[LLMRT_CPU_ATTN_CHUNK];
    float          ks[LLMRT_CPU_ATTN_CHUNK], vs[LLMRT_CPU_ATTN_CHUNK];
} llmrt_cpu_attn_src;

static inline __attribute__((always_inline)) void
llmrt_cpu_attn_chunk_src(const llmrt_cpu_attn_tile *tile, int32_t c0, int32_t jlo, int32_t nv,
                         llmrt_cpu_attn_src *s) {
    /* a local copy of the tile: the stores into s could alias *tile for the compiler, which then
     * loaded the table, pools and strides again for every row */
    const llmrt_cpu_attn_tile tl = *tile, *t = &tl;
    const int32_t             bs = t->block_size;
    const int64_t             step = llmrt_cpu_attn_slot_bytes(t);
    const bool                scaled = !llmrt_cpu_attn_k_dmajor(t->kv_dtype); /* 8-bit */
    /* a block's run of rows: its address once, then the slot stride (a division or a table read
     * per row cost more than the row; ~10 % of a bf16 decode tile on Zen 3) */
    int32_t blk = (c0 + jlo) / bs, o = (c0 + jlo) % bs;
    for (int32_t j = jlo; j < nv; blk++, o = 0) {
        const uint8_t *k, *v;
        int64_t        sc = llmrt_cpu_attn_rows_at(t, blk, o, &k, &v) + t->scale_off;
        for (; j < nv && o < bs; j++, o++, v += step, k = k ? k + step : NULL) {
            s->k[j] = k, s->v[j] = v;
            s->ks[j] = s->vs[j] = 1.0f; /* F32 and BF16 caches have no scales */
            if (scaled) {
                memcpy(&s->ks[j], t->k8 + sc + o * t->scale_ld, sizeof(float));
                memcpy(&s->vs[j], t->v8 + sc + o * t->scale_ld, sizeof(float));
            }
        }
    }
    for (int32_t j = 0; j < LLMRT_CPU_ATTN_CHUNK; j++)
        if (j < jlo || j >= nv) {
            s->k[j] = s->k[jlo], s->v[j] = s->v[jlo];
            s->ks[j] = s->ks[jlo], s->vs[j] = s->vs[jlo];
        }
}

/* kr[j], vr[j] for j < CHUNK: the rows of position c0 + j for j in [jlo, nv), of position
 * c0 + jlo elsewhere (a valid row whose probability the kernels set to 0; positions outside
 * [jlo, nv) may lie in freed blocks and are never read). kr is NULL for the d-major K of an
 * F32 or BF16 cache (llmrt_cpu_attn_chunk_kt gives it). */
static inline __attribute__((always_inline)) void
llmrt_cpu_attn_chunk_rows(const llmrt_cpu_attn_tile *t, int32_t c0, int32_t jlo, int32_t nv,
                          const float **kr, const float **vr, float *scratch,
                          llmrt_cpu_kv_dequant_fn dequant) {
    const int32_t W = LLMRT_CPU_ATTN_CHUNK, hd = t->head_dim;
    if (t->kv_dtype == LLMRT_DTYPE_F32) {
        for (int32_t j = 0; j < W; j++) {
            int64_t slot = llmrt_cpu_attn_slot(t, c0 + (j < jlo || j >= nv ? jlo : j));
            kr[j] = NULL; /* d-major: llmrt_cpu_attn_chunk_kt */
            vr[j] = t->v + slot * t->kv_ld;
        }
        return;
    }
    float *kd = llmrt_cpu_attn_deq(t, scratch), *vd = kd + (size_t)W * hd; /* [W, hd] each */
    for (int32_t j = jlo; j < nv; j++) {
        int32_t p = c0 + j;
        int64_t blk = (int64_t)t->table[p / t->block_size] * t->block_bytes;
        int64_t o = p % t->block_size;
        const uint8_t *kc = t->k8 + blk + o * t->kv_ld, *vc = t->v8 + blk + o * t->kv_ld;
        float ks = 1.0f, vs = 1.0f; /* a bf16 cache has no scales */
        if (t->kv_dtype != LLMRT_DTYPE_BF16) {
            memcpy(&ks, t->k8 + blk + t->scale_off + o * t->scale_ld, sizeof ks);
            memcpy(&vs, t->v8 + blk + t->scale_off + o * t->scale_ld, sizeof vs);
        }
        if (t->kv_dtype != LLMRT_DTYPE_BF16) /* a BF16 K is d-major: llmrt_cpu_attn_chunk_kt */
            dequant(kd + (size_t)j * hd, kc, ks, hd, t->kv_dtype, t->fp8_lut);
        dequant(vd + (size_t)j * hd, vc, vs, hd, t->kv_dtype, t->fp8_lut);
    }
    for (int32_t j = 0; j < W; j++) {
        int32_t jj = j < jlo || j >= nv ? jlo : j;
        kr[j] = t->kv_dtype == LLMRT_DTYPE_BF16 ? NULL : kd + (size_t)jj * hd;
        vr[j] = vd + (size_t)jj * hd;
    }
}

#endif
