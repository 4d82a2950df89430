/* AVX-512 tile kernel of the CPU attention (attention_cpu.h), compiled with -mavx512f/bw/vl/dq.
 *
 * Per chunk of 16 KV positions a row's 16 scores are one vector: s = fma(q[d], kt[d], s) for d
 * in order, up to 8 rows at a time (one kt load feeds 8 FMAs with the q element broadcast from
 * memory). kt [hd, 16] is read straight from an F32 or BF16 cache, whose K is stored d-major
 * (llmrt_cpu_k_index); the 16 K rows of an 8-bit cache are transposed into it once per chunk
 * (shared by every row of the tile). Then the online-softmax step per row (vector exp), and P·V with 4 rows x 64 output
 * columns in registers: each V row load feeds 4 rows. A row's arithmetic is the same whatever
 * rows share its groups (attention_cpu.h), so the tile shape never changes a result.
 *
 * A bf16 or 8-bit cache is read as stored: the scores widen bf16 kt rows and the transpose 8-bit
 * K rows to fp32 in registers, and P·V does the same with V when few rows share the chunk
 * (decode: one token's group). With many rows (a prefill tile) each V row would be widened once
 * per 4-row group, so the chunk's V rows are widened once into scratch instead. Widening gives
 * the values the portable kernel computes (bf16 exactly, scale * code rounded once), so the
 * results are those of an fp32 cache holding the dequantised values, bit for bit. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "attention_cpu.h"
#include "attention_cpu_kv.h"

#define W      LLMRT_CPU_ATTN_CHUNK /* 16: one zmm of scores */
#define S_ROWS 8                    /* rows per score group   */
#define V_ROWS 4                    /* rows per P·V group     */
#define V_COLS 4                    /* zmm of output columns per P·V pass (64 floats) */

/* 16 fp32 values of a cache row from element d (lanes outside m are 0): fp32 loaded; bf16
 * widened exactly (its bits are the top half of the fp32 ones); int8 sign-extended, converted
 * and times mul (the row's scale); fp8 e4m3: its bits moved into an fp16 (sign to bit 15,
 * exponent and mantissa shifted left by 7: the same value / 2^8, subnormals included, since
 * fp16's bias is 8 more), converted exactly by vcvtph2ps, times mul = scale * 2^8 (exact), so the
 * product rounds as scale * value does (the portable kernel's table lookup; the NaN code 0x7F,
 * which the quantiser never writes, reads as 480). kv is a constant after inlining. */
static inline __attribute__((always_inline)) __m512 load16(const uint8_t *row, int32_t d,
                                                           __mmask16 m, llmrt_dtype kv,
                                                           float mul) {
    if (kv == LLMRT_DTYPE_F32)
        return m == 0xFFFF ? _mm512_loadu_ps((const float *)row + d)
                           : _mm512_maskz_loadu_ps(m, (const float *)row + d);
    if (kv == LLMRT_DTYPE_BF16) {
        __m256i b = m == 0xFFFF ? _mm256_loadu_si256((const __m256i *)(row + 2 * (size_t)d))
                                : _mm256_maskz_loadu_epi16(m, row + 2 * (size_t)d);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
    }
    __m128i c = _mm_maskz_loadu_epi8(m, row + d);
    if (kv == LLMRT_DTYPE_I8)
        return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)), _mm512_set1_ps(mul));
    __m256i h = _mm256_cvtepu8_epi16(c);
    h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x80)), 8),
                        _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x7F)), 7));
    return _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(mul));
}

/* the multiplier load16 takes for a row of scale s */
static inline float load_mul(llmrt_dtype kv, float s) {
    return kv == LLMRT_DTYPE_F8_E4M3 ? s * 256.0f : s;
}

static inline __mmask16 lanes_below(int32_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1) : (__mmask16)0;
}

static inline float *row_ptr(float *base, const llmrt_cpu_attn_tile *t, int32_t r) {
    return base + (r / t->group) * t->q_ld + (r % t->group) * t->head_dim;
}

/* e^x for x <= 0 (the arguments are s - max): x clamped at -87 (result ~1e-38, and the masked
 * lanes are zeroed by the caller), n = round(x / ln2), r = x - n ln2 in two steps, degree-6
 * Taylor polynomial on |r| <= ln2/2 (relative error < 2e-7), scaled by 2^n. */
static inline __m512 exp_neg(__m512 x) {
    x          = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n   = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r   = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r          = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p   = _mm512_set1_ps(1.0f / 720);
    p          = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p          = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p          = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p          = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p          = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p          = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* kt[d * 16 + j] = row j's element d for d < hd (rows as stored, widened by load16; kmul:
 * their load16 multipliers): 16x16 transposes in registers, a masked tail. */
static inline __attribute__((always_inline)) void
transpose_k(float *kt, const uint8_t *const rows[W], const float *kmul, int32_t hd, llmrt_dtype kv) {
    for (int32_t d0 = 0; d0 < hd; d0 += 16) {
        __mmask16 m = lanes_below(hd - d0);
        __m512    r[16], t[16];
        for (int j = 0; j < 16; j++) r[j] = load16(rows[j], d0, m, kv, kmul[j]);
        for (int j = 0; j < 16; j += 2) {
            t[j]     = _mm512_unpacklo_ps(r[j], r[j + 1]);
            t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
        }
        for (int j = 0; j < 16; j += 4) {
            r[j]     = _mm512_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(1, 0, 1, 0));
            r[j + 1] = _mm512_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(3, 2, 3, 2));
            r[j + 2] = _mm512_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(1, 0, 1, 0));
            r[j + 3] = _mm512_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int j = 0; j < 4; j++) {
            t[j]      = _mm512_shuffle_f32x4(r[j], r[j + 4], 0x88);
            t[j + 4]  = _mm512_shuffle_f32x4(r[j], r[j + 4], 0xdd);
            t[j + 8]  = _mm512_shuffle_f32x4(r[j + 8], r[j + 12], 0x88);
            t[j + 12] = _mm512_shuffle_f32x4(r[j + 8], r[j + 12], 0xdd);
        }
        for (int j = 0; j < 8; j++) {
            r[j]     = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
            r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
        }
        int32_t nd = hd - d0 < 16 ? hd - d0 : 16;
        for (int j = 0; j < nd; j++) _mm512_store_ps(kt + (size_t)(d0 + j) * W, r[j]);
    }
}

/* s[i] = sum_d q_i[d] * kt[d] (sequential over d) for NR rows; kt row d at kt + d * ld bytes,
 * fp32 or bf16 elements (kd); NR and kd are literals after inlining, so the accumulators live in
 * registers. */
static inline __attribute__((always_inline)) void scores(__m512 *s, const float *const *q,
                                                          const uint8_t *kt, int64_t ld,
                                                          int32_t hd, int NR, llmrt_dtype kd) {
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) s[i] = _mm512_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        __m512 k = load16(kt + d * ld, 0, 0xFFFF, kd, 1.0f);
#pragma GCC unroll 8
        for (int i = 0; i < NR; i++) s[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[i][d]), k, s[i]);
    }
}

/* o_i = o_i * alpha_i + sum_j p_i[j] * v_j[cols] over NR rows and NC zmm columns from d0;
 * v rows as stored (vmul: their load16 multipliers). */
static inline __attribute__((always_inline)) void
pv(float *const *o, const float *p, const float *alpha, const uint8_t *const *v,
   const float *vmul, int32_t nv, int32_t d0, const __mmask16 *cm, int NR, llmrt_dtype kv) {
    __m512 acc[V_ROWS][V_COLS];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        __m512 a = _mm512_set1_ps(alpha[i]);
#pragma GCC unroll 4
        for (int c = 0; c < V_COLS; c++)
            acc[i][c] = _mm512_mul_ps(_mm512_maskz_loadu_ps(cm[c], o[i] + d0 + 16 * c), a);
    }
    for (int32_t j = 0; j < nv; j++) {
        __m512 vv[V_COLS];
#pragma GCC unroll 4
        for (int c = 0; c < V_COLS; c++) vv[c] = load16(v[j], d0 + 16 * c, cm[c], kv, vmul[j]);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            __m512 pb = _mm512_set1_ps(p[i * W + j]);
#pragma GCC unroll 4
            for (int c = 0; c < V_COLS; c++) acc[i][c] = _mm512_fmadd_ps(pb, vv[c], acc[i][c]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int c = 0; c < V_COLS; c++)
            _mm512_mask_storeu_ps(o[i] + d0 + 16 * c, cm[c], acc[i][c]);
}

/* P·V for rows [r0, R1) over output columns [d0, d0 + 64): 4-row groups, then the 1-3 left in
 * one group (each V load feeds every row of a group) */
static inline __attribute__((always_inline)) void
pv_rows(float *const *orow, const float *p, const float *alpha, const uint8_t *const *v,
        const float *vmul, int32_t nv, int32_t d0, const __mmask16 *cm, int32_t r0, int32_t R1,
        llmrt_dtype kv) {
    int32_t r = r0;
    for (; r + V_ROWS <= R1; r += V_ROWS)
        pv(orow + r, p + (size_t)r * W, alpha + r, v, vmul, nv, d0, cm, V_ROWS, kv);
    switch (R1 - r) {
    case 3: pv(orow + r, p + (size_t)r * W, alpha + r, v, vmul, nv, d0, cm, 3, kv); break;
    case 2: pv(orow + r, p + (size_t)r * W, alpha + r, v, vmul, nv, d0, cm, 2, kv); break;
    case 1: pv(orow + r, p + (size_t)r * W, alpha + r, v, vmul, nv, d0, cm, 1, kv); break;
    default: break;
    }
}

/* Asks for the K and V rows of the chunk at c0 (positions up to last) while this one is
 * computed: a decode row's chunk is 32 rows scattered over its blocks, too few and too far apart
 * for the hardware prefetchers to run ahead of the loads (the kernel waited on memory at a
 * fraction of the bandwidth). */
static inline __attribute__((always_inline)) void
prefetch_chunk(const llmrt_cpu_attn_tile *t, int32_t c0, int32_t last, llmrt_dtype kv) {
    const int32_t es    = llmrt_dtype_block_bytes(kv);
    const bool    kdm   = llmrt_cpu_attn_k_dmajor(kv);
    int32_t       n     = last - c0 + 1 < W ? last - c0 + 1 : W;
    int32_t       bytes = t->head_dim * es, bs = t->block_size;
    int32_t       blk = c0 / bs, o = c0 % bs;
    if (kdm && o + W <= bs) { /* the d-major K of the chunk: 16 elements per d, bs apart */
        const uint8_t *k    = llmrt_cpu_attn_k_at(t, c0);
        int32_t        step = bs * es >= 64 ? 1 : 64 / (bs * es); /* d rows per cache line */
        for (int32_t d = 0; d < t->head_dim; d += step)
            _mm_prefetch((const char *)k + (int64_t)d * bs * es, _MM_HINT_T0);
    }
    for (int32_t j = 0; j < n; j++) {
        const uint8_t *k = NULL, *v;
        if (kv == LLMRT_DTYPE_F32) {
            v = (const uint8_t *)(t->v + ((int64_t)t->table[blk] * bs + o) * t->kv_ld);
        } else {
            int64_t off = (int64_t)t->table[blk] * t->block_bytes + (int64_t)o * t->kv_ld;
            k           = kdm ? NULL : t->k8 + off;
            v           = t->v8 + off;
        }
        if (++o == bs) o = 0, blk++;
        for (int32_t b = 0; b < bytes; b += 64) {
            if (k) _mm_prefetch((const char *)k + b, _MM_HINT_T0);
            _mm_prefetch((const char *)v + b, _MM_HINT_T0);
        }
    }
}

/* The tile for one cache dtype (a constant after inlining). */
static inline __attribute__((always_inline)) void tile(const llmrt_cpu_attn_tile *t,
                                                       float *scratch, llmrt_dtype kv) {
    const int32_t hd = t->head_dim, G = t->group, R = t->n_tok * G;
    const size_t  rows_pad = (LLMRT_CPU_ATTN_MAX_ROWS + 15) / 16 * 16;
    float        *kt = scratch;                  /* [hd, 16] K of the chunk, transposed */
    float        *p  = kt + (size_t)hd * W;      /* [R, 16] probabilities of the chunk   */
    float        *m  = p + rows_pad * W, *l = m + rows_pad, *alpha = l + rows_pad;
    const float  *qr[LLMRT_CPU_ATTN_MAX_ROWS + S_ROWS];
    float        *orow[LLMRT_CPU_ATTN_MAX_ROWS + V_ROWS];
    for (int32_t r = 0; r < R; r++) {
        qr[r]   = row_ptr((float *)t->q, t, r);
        orow[r] = row_ptr(t->out, t, r);
        memset(orow[r], 0, (size_t)hd * sizeof(float));
        m[r] = -INFINITY, l[r] = 0.0f;
    }
    /* a short last group repeats its first row; the repeats' results are dropped */
    int32_t last = t->pos[t->n_tok - 1], i0 = 0, i1 = 0;
    for (int32_t c0 = llmrt_cpu_attn_lo(t, t->pos[0]) / W * W; c0 <= last; c0 += W) {
        while (t->pos[i0] < c0) i0++; /* tokens before the chunk are done with it */
        while (i1 < t->n_tok && llmrt_cpu_attn_lo(t, t->pos[i1]) < c0 + W) i1++; /* reach it */
        if (i1 <= i0) continue;
        int32_t      R1  = i1 * G; /* rows [i0 * G, R1) need this chunk (attention_cpu.h) */
        int32_t      jlo = llmrt_cpu_attn_lo(t, t->pos[i0]) - c0;
        int32_t      nv  = last - c0 + 1 < W ? last - c0 + 1 : W;
        if (jlo < 0) jlo = 0;
        llmrt_cpu_attn_src src; /* outside [jlo, nv): a valid row, p = 0 */
        float              kmul[W], vmul[W];
        llmrt_cpu_attn_chunk_src(t, c0, jlo, nv, &src);
        for (int j = 0; j < W; j++) kmul[j] = load_mul(kv, src.ks[j]);
        for (int j = 0; j < W; j++) vmul[j] = load_mul(kv, src.vs[j]);
        if (c0 + W <= last) prefetch_chunk(t, c0 + W, last, kv);
        /* kt rows ld bytes apart, of kd elements: read from the cache where K is d-major */
        const llmrt_dtype kd  = kv == LLMRT_DTYPE_BF16 ? LLMRT_DTYPE_BF16 : LLMRT_DTYPE_F32;
        const uint8_t    *ktb = (const uint8_t *)kt;
        int64_t           ld  = W * sizeof(float);
        if (llmrt_cpu_attn_k_dmajor(kv))
            ktb = llmrt_cpu_attn_chunk_kt(t, c0, jlo, nv, (uint8_t *)llmrt_cpu_attn_deq(t, scratch),
                                          &ld);
        else
            transpose_k(kt, src.k, kmul, hd, kv);
        int32_t r0 = i0 * G;
        for (int32_t r = r0; r < R1; r += S_ROWS) {
            int32_t      n = R1 - r < S_ROWS ? R1 - r : S_ROWS;
            const float *qg[S_ROWS];
            for (int i = 0; i < S_ROWS; i++) qg[i] = qr[r + (i < n ? i : 0)];
            __m512 s[S_ROWS];
            if (n > 4) scores(s, qg, ktb, ld, hd, 8, kd); /* no FMAs for absent rows */
            else if (n == 4) scores(s, qg, ktb, ld, hd, 4, kd);
            else if (n == 3) scores(s, qg, ktb, ld, hd, 3, kd);
            else scores(s, qg, ktb, ld, hd, 2, kd);
            float dm[W] __attribute__((aligned(64))) = {0}, sum[S_ROWS];
            for (int i = 0; i < n; i++) {
                int32_t   ri  = r + i;
                int32_t   nr  = t->pos[ri / G] - c0 + 1 < W ? t->pos[ri / G] - c0 + 1 : W;
                int32_t   jl  = llmrt_cpu_attn_lo(t, t->pos[ri / G]) - c0;
                __mmask16 ok  = (__mmask16)(((1u << nr) - 1) & ~((1u << (jl > 0 ? jl : 0)) - 1));
                __m512    sc  = _mm512_mul_ps(s[i], _mm512_set1_ps(t->scale));
                float     cmx = _mm512_mask_reduce_max_ps(ok, sc);
                float     mx  = cmx > m[ri] ? cmx : m[ri];
                __m512    pr  = _mm512_maskz_mov_ps(ok, exp_neg(_mm512_sub_ps(sc, _mm512_set1_ps(mx))));
                sum[i]        = _mm512_reduce_add_ps(pr);
                dm[i]         = m[ri] - mx;
                m[ri]         = mx;
                _mm512_store_ps(p + (size_t)ri * W, pr);
            }
            /* the rows' rescale factors e^(m_old - m_new) in one vector exp (a libm call per row
             * made the compiler spill the score registers around it): exactly 1 when the max
             * stays; ~1e-38 on a row's first chunk (m_old = -inf, clamped), where l and o are 0 */
            float av[W] __attribute__((aligned(64)));
            _mm512_store_ps(av, exp_neg(_mm512_load_ps(dm)));
            for (int i = 0; i < n; i++) {
                l[r + i]     = l[r + i] * av[i] + sum[i];
                alpha[r + i] = av[i];
            }
        }
        /* more than 2 groups of rows: widen the V rows [jlo, nv) once into scratch */
        const uint8_t *const *vsrc    = src.v;
        bool                  widened = kv != LLMRT_DTYPE_F32 && R1 - r0 > 2 * V_ROWS;
        const uint8_t        *vw[W];
        if (widened) {
            float *vd = llmrt_cpu_attn_deq(t, scratch) + (size_t)W * hd; /* [W, hd] */
            for (int32_t j = jlo; j < nv; j++)
                for (int32_t d = 0; d < hd; d += 16)
                    _mm512_mask_storeu_ps(vd + (size_t)j * hd + d, lanes_below(hd - d),
                                          load16(src.v[j], d, lanes_below(hd - d), kv, vmul[j]));
            for (int j = 0; j < W; j++)
                vw[j] = (const uint8_t *)(vd + (size_t)(j < jlo || j >= nv ? jlo : j) * hd);
            vsrc = vw;
        }
        for (int32_t d0 = 0; d0 < hd; d0 += 16 * V_COLS) {
            __mmask16 cm[V_COLS];
            for (int c = 0; c < V_COLS; c++) cm[c] = lanes_below(hd - d0 - 16 * c);
            if (kv == LLMRT_DTYPE_F32 || widened)
                pv_rows(orow, p, alpha, vsrc, vmul, nv, d0, cm, r0, R1, LLMRT_DTYPE_F32);
            else
                pv_rows(orow, p, alpha, vsrc, vmul, nv, d0, cm, r0, R1, kv);
        }
    }
    for (int32_t r = 0; r < R; r++) {
        __m512  inv = _mm512_set1_ps(1.0f / l[r]);
        int32_t d   = 0;
        for (; d + 16 <= hd; d += 16)
            _mm512_storeu_ps(orow[r] + d, _mm512_mul_ps(_mm512_loadu_ps(orow[r] + d), inv));
        for (; d < hd; d++) orow[r][d] *= 1.0f / l[r];
    }
}

void llmrt_cpu_attn_tile_avx512(const llmrt_cpu_attn_tile *t, float *scratch) {
    switch (t->kv_dtype) {
    case LLMRT_DTYPE_BF16: tile(t, scratch, LLMRT_DTYPE_BF16); break;
    case LLMRT_DTYPE_I8: tile(t, scratch, LLMRT_DTYPE_I8); break;
    case LLMRT_DTYPE_F8_E4M3: tile(t, scratch, LLMRT_DTYPE_F8_E4M3); break;
    default: tile(t, scratch, LLMRT_DTYPE_F32); break;
    }
}
