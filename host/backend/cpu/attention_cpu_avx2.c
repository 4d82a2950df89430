/* AVX2/FMA tile kernel of the CPU attention (attention_cpu.h), compiled with -mavx2 -mfma. The
 * structure of the AVX-512 kernel with 8-lane vectors: a 16-position chunk is two halves, K is
 * read transposed from an F32 / BF16 cache (d-major) or transposed by 8x8 blocks (8-bit caches),
 * up to 4 rows share each kt load in the scores and each V load in P·V. When few rows read the
 * chunk (decode) a bf16 or 8-bit cache's V is widened / dequantised in registers, and 8-bit K
 * codes on their way into the transpose; else both once into scratch. The next chunk's K/V are
 * prefetched while one computes. The softmax bookkeeping of a row (max, sum over its 16 lanes)
 * is vector, the sum a fixed tree. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "../../core/half.h"
#include "attention_cpu.h"
#include "attention_cpu_kv.h"

#define W      LLMRT_CPU_ATTN_CHUNK /* 16: two ymm of scores */
#define S_ROWS 4
#define V_ROWS 4
/* ymm of output columns per P·V pass (16 floats): 4 rows x 4 ymm needed 21 registers of 16 and
 * spilled; 4 x 2 fit (prefill attention 1.4x faster with the scores and softmax changes) */
#define V_COLS 2

/* dst[n] = scale * value(codes[n]), 8 at a time, scalar tail. int8: sign-extended. fp8 e4m3:
 * its bits moved into an fp16 and converted exactly by vcvtph2ps (see the AVX-512 kernel), then
 * times scale * 2^8 (exact): the same product as scale * value. */
static void dequant_row(float *dst, const uint8_t *codes, float scale, int32_t n, llmrt_dtype kv,
                        const float *lut) {
    const __m256  s   = _mm256_set1_ps(scale), s8 = _mm256_set1_ps(scale * 256.0f);
    const __m128i sgn = _mm_set1_epi16(0x80), mag = _mm_set1_epi16(0x7F);
    int32_t       i   = 0;
    if (kv == LLMRT_DTYPE_BF16) { /* bf16 bits are the top half of the fp32 ones */
        for (; i + 8 <= n; i += 8) {
            __m128i b = _mm_loadu_si128((const __m128i *)(codes + 2 * (size_t)i));
            _mm256_storeu_ps(dst + i,
                             _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16)));
        }
        for (; i < n; i++) {
            uint16_t b;
            memcpy(&b, codes + 2 * (size_t)i, sizeof b);
            dst[i] = llmrt_bf16_to_f32(b);
        }
        return;
    }
    for (; i + 8 <= n; i += 8) {
        __m128i c = _mm_loadl_epi64((const __m128i *)(codes + i));
        __m256  x;
        if (kv == LLMRT_DTYPE_I8) {
            x = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)), s);
        } else {
            __m128i h = _mm_cvtepu8_epi16(c);
            h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(h, sgn), 8),
                             _mm_slli_epi16(_mm_and_si128(h, mag), 7));
            x = _mm256_mul_ps(_mm256_cvtph_ps(h), s8);
        }
        _mm256_storeu_ps(dst + i, x);
    }
    for (; i < n; i++)
        dst[i] = scale * (kv == LLMRT_DTYPE_I8 ? (float)(int8_t)codes[i] : lut[codes[i]]);
}

static inline float *row_ptr(float *base, const llmrt_cpu_attn_tile *t, int32_t r) {
    return base + (r / t->group) * t->q_ld + (r % t->group) * t->head_dim;
}

/* e^x for x <= 0, as the AVX-512 kernel computes it (clamp at -87, degree-6 polynomial), with
 * 2^n built in the exponent field (n >= -126 after the clamp). */
static inline __m256 exp_neg(__m256 x) {
    x        = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r        = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p        = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p        = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p        = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p        = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p        = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p        = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* kt[d * 16 + j] = r[j][d] for d < 8, j < 8 (one 8x8 block of kt, its rows 16 floats apart) */
static inline __attribute__((always_inline)) void transpose8_store(float *kt, __m256 r[8]) {
    __m256 t[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j += 2) {
        t[j]     = _mm256_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j += 4) {
        r[j]     = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
        r[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);
        r[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
        r[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
    }
#pragma GCC unroll 8
    for (int j = 0; j < 4; j++) {
        t[j]     = _mm256_permute2f128_ps(r[j], r[j + 4], 0x20);
        t[j + 4] = _mm256_permute2f128_ps(r[j], r[j + 4], 0x31);
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) _mm256_storeu_ps(kt + (size_t)j * W, t[j]);
}

/* kt[d * 16 + h * 8 + j] = rows[h * 8 + j][d]: 8x8 transposes in registers, scalar tail. */
static void transpose_k(float *kt, const float *const rows[W], int32_t hd) {
    int32_t d0 = 0;
    for (; d0 + 8 <= hd; d0 += 8)
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(rows[8 * h + j] + d0);
            transpose8_store(kt + (size_t)d0 * W + 8 * h, r);
        }
    for (; d0 < hd; d0++)
        for (int j = 0; j < W; j++) kt[(size_t)d0 * W + j] = rows[j][d0];
}

/* 8 values of an 8-bit cache row from its codes at c, times s: int8 sign-extended, or fp8 e4m3
 * moved into an fp16 and widened by vcvtph2ps (s then carries the 2^8: dequant_row's vector
 * path, the same products) */
static inline __attribute__((always_inline)) __m256 codes8(const uint8_t *c, bool fp8, __m256 s) {
    __m128i b = _mm_loadl_epi64((const __m128i *)c);
    if (!fp8) return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s);
    __m128i h = _mm_cvtepu8_epi16(b);
    h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(0x80)), 8),
                     _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7F)), 7));
    return _mm256_mul_ps(_mm256_cvtph_ps(h), s);
}

/* transpose_k from an 8-bit cache's code rows (hd % 8 == 0) with their scales (fp8: times 2^8):
 * each row dequantised in registers on its way into kt, the values dequant_row would give */
static inline __attribute__((always_inline)) void
transpose_k8_as(float *kt, const uint8_t *const rows[W], const float *scale, int32_t hd, bool fp8) {
    for (int32_t d0 = 0; d0 < hd; d0 += 8)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                r[j] = codes8(rows[8 * h + j] + d0, fp8, _mm256_set1_ps(scale[8 * h + j]));
            transpose8_store(kt + (size_t)d0 * W + 8 * h, r);
        }
}

/* transpose_k8_as with fp8 a literal (the arrays stay in registers only when fully unrolled) */
static void transpose_k8(float *kt, const uint8_t *const rows[W], const float *scale, int32_t hd,
                         bool fp8) {
    if (fp8) transpose_k8_as(kt, rows, scale, hd, true);
    else transpose_k8_as(kt, rows, scale, hd, false);
}

/* The max (or the sum) of x's 8 lanes as a fixed tree: halves, then pairs of pairs, then pairs. */
static inline __attribute__((always_inline)) float hreduce8(__m256 x, bool max) {
    __m256 y = _mm256_permute2f128_ps(x, x, 1);
    x        = max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
    y        = _mm256_shuffle_ps(x, x, 0x4e);
    x        = max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
    y        = _mm256_shuffle_ps(x, x, 0xb1);
    x        = max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
    return _mm256_cvtss_f32(x);
}

/* lanes 8h .. 8h + 7 of a kt row: fp32, or bf16 widened exactly */
static inline __m256 kt8(const uint8_t *row, int h, llmrt_dtype kd) {
    if (kd == LLMRT_DTYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 16 * h))), 16));
    return _mm256_loadu_ps((const float *)row + 8 * h);
}

/* s[2i], s[2i+1] = the two halves of row i's scores for i < NR (a literal after inlining: a
 * decode token's GQA group has 1-3 rows, and computing 4 rows for it wasted up to 3/4 of the
 * FMAs), sequential over d; kt row d at kt + d * ld bytes (fp32 or bf16 elements: kd). The sums
 * live in a local array of constant indices that GCC keeps in registers and are stored once at
 * the end: summed into the caller's array, GCC stored all 8 to the stack every d (8 stores per 8
 * FMAs, half the prefill attention's time on Zen 3). */
static inline __attribute__((always_inline)) void scores_n(__m256 *s, const float *const *q,
                                                           const uint8_t *kt, int64_t ld,
                                                           int32_t hd, llmrt_dtype kd, int NR) {
    __m256 acc[S_ROWS][2];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        __m256 k0 = kt8(kt + d * ld, 0, kd), k1 = kt8(kt + d * ld, 1, kd);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            __m256 qb = _mm256_broadcast_ss(q[i] + d);
            acc[i][0] = _mm256_fmadd_ps(qb, k0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(qb, k1, acc[i][1]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) s[2 * i] = acc[i][0], s[2 * i + 1] = acc[i][1];
}

/* scores_n for n rows (1..S_ROWS) of kt elements kd: one literal instance per case. Not inlined:
 * inside the tile function GCC kept the softmax's vector constants live across the d loop and
 * spilled one accumulator of the 4-row instance (a store-forwarded FMA chain; prefill attention
 * 1.3x slower) */
static __attribute__((noinline)) void scores(__m256 *s, const float *const *q, const uint8_t *kt,
                                             int64_t ld, int32_t hd, llmrt_dtype kd, int n) {
#define SCORES_CASES(KD)                                                                           \
    switch (n) {                                                                                   \
    case 1: scores_n(s, q, kt, ld, hd, KD, 1); break;                                              \
    case 2: scores_n(s, q, kt, ld, hd, KD, 2); break;                                              \
    case 3: scores_n(s, q, kt, ld, hd, KD, 3); break;                                              \
    default: scores_n(s, q, kt, ld, hd, KD, S_ROWS); break;                                        \
    }
    if (kd == LLMRT_DTYPE_BF16) SCORES_CASES(LLMRT_DTYPE_BF16)
    else SCORES_CASES(LLMRT_DTYPE_F32)
#undef SCORES_CASES
}

/* 8 floats at p: all of them (whole) or the lanes of m, for a pass that ends past hd. vmaskmovps
 * stores are slow on Zen 3 (5 of the 6 hottest instructions of a 512-token prefill when every
 * vector went through them), so whole vectors take plain loads and stores. */
static inline __attribute__((always_inline)) __m256 load8(const float *p, __m256i m, bool whole) {
    return whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
static inline __attribute__((always_inline)) void store8(float *p, __m256i m, __m256 x,
                                                         bool whole) {
    if (whole) _mm256_storeu_ps(p, x);
    else _mm256_maskstore_ps(p, m, x);
}

/* How P·V reads the V rows: fp32 rows, or a cache's rows as stored (hd % 8 == 0), widened or
 * dequantised in registers */
enum vkind { V_F32, V_BF16, V_I8, V_F8 };

/* o_i = o_i * alpha_i + sum_j p_i[j] * v_j[cols] over NR rows and V_COLS ymm columns from d0
 * (lanes outside cm not touched). v rows as vk says; vs[j]: row j's scale for V_I8 / V_F8 (fp8:
 * times 2^8); a stored row's vectors are whole, those at or past hd are not loaded. NR, vk and
 * whole are literals after inlining. */
static inline __attribute__((always_inline)) void pv(float *const *o, const float *p,
                                                      const float *alpha, const void *const *v,
                                                      const float *vs, int32_t nv, int32_t d0,
                                                      int32_t hd, const __m256i *cm, int NR,
                                                      enum vkind vk, bool whole) {
    __m256 acc[V_ROWS][V_COLS];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        __m256 a = _mm256_set1_ps(alpha[i]);
#pragma GCC unroll 4
        for (int c = 0; c < V_COLS; c++)
            acc[i][c] = _mm256_mul_ps(load8(o[i] + d0 + 8 * c, cm[c], whole), a);
    }
    for (int32_t j = 0; j < nv; j++) {
        __m256 vv[V_COLS];
        __m256 sj = vk == V_I8 || vk == V_F8 ? _mm256_set1_ps(vs[j]) : _mm256_setzero_ps();
#pragma GCC unroll 4
        for (int c = 0; c < V_COLS; c++) {
            if (vk == V_F32)
                vv[c] = load8((const float *)v[j] + d0 + 8 * c, cm[c], whole);
            else if (!whole && d0 + 8 * c >= hd) /* a whole pass lies below hd */
                vv[c] = _mm256_setzero_ps();
            else if (vk == V_BF16)
                vv[c] = kt8((const uint8_t *)v[j] + 2 * (size_t)d0, c, LLMRT_DTYPE_BF16);
            else
                vv[c] = codes8((const uint8_t *)v[j] + d0 + 8 * c, vk == V_F8, sj);
        }
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            __m256 pb = _mm256_broadcast_ss(p + i * W + j);
#pragma GCC unroll 4
            for (int c = 0; c < V_COLS; c++) acc[i][c] = _mm256_fmadd_ps(pb, vv[c], acc[i][c]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int c = 0; c < V_COLS; c++) store8(o[i] + d0 + 8 * c, cm[c], acc[i][c], whole);
}

/* pv for the last n < V_ROWS rows in one pass (a decode token's GQA group of 3 rows: each V
 * vector loaded once for the 3 and 6 independent FMA chains; one row at a time, the 2 chains of
 * a pass left the FMA latency exposed) */
static inline __attribute__((always_inline)) void pv_tail(float *const *o, const float *p,
                                                           const float *alpha,
                                                           const void *const *v, const float *vs,
                                                           int32_t nv, int32_t d0, int32_t hd,
                                                           const __m256i *cm, int32_t n,
                                                           enum vkind vk, bool whole) {
    switch (n) {
    case 3: pv(o, p, alpha, v, vs, nv, d0, hd, cm, 3, vk, whole); break;
    case 2: pv(o, p, alpha, v, vs, nv, d0, hd, cm, 2, vk, whole); break;
    case 1: pv(o, p, alpha, v, vs, nv, d0, hd, cm, 1, vk, whole); break;
    default: break;
    }
}

/* P·V for rows [r0, R1) over output columns [d0, d0 + 8 * V_COLS): 4-row groups, then the rest */
static inline __attribute__((always_inline)) void pv_rows(float *const *orow, const float *p,
                                                           const float *alpha,
                                                           const void *const *v, const float *vs,
                                                           int32_t nv, int32_t d0, int32_t hd,
                                                           const __m256i *cm, int32_t r0,
                                                           int32_t R1, enum vkind vk) {
    int32_t r = r0;
    if (d0 + 8 * V_COLS <= hd) { /* every vector of the pass whole */
        for (; r + V_ROWS <= R1; r += V_ROWS)
            pv(orow + r, p + (size_t)r * W, alpha + r, v, vs, nv, d0, hd, cm, V_ROWS, vk, true);
        pv_tail(orow + r, p + (size_t)r * W, alpha + r, v, vs, nv, d0, hd, cm, R1 - r, vk, true);
        return;
    }
    for (; r + V_ROWS <= R1; r += V_ROWS)
        pv(orow + r, p + (size_t)r * W, alpha + r, v, vs, nv, d0, hd, cm, V_ROWS, vk, false);
    pv_tail(orow + r, p + (size_t)r * W, alpha + r, v, vs, nv, d0, hd, cm, R1 - r, vk, false);
}

void llmrt_cpu_attn_tile_avx2(const llmrt_cpu_attn_tile *t, float *scratch) {
    const int32_t hd = t->head_dim, G = t->group, R = t->n_tok * G;
    const size_t  rows_pad = (LLMRT_CPU_ATTN_MAX_ROWS + 15) / 16 * 16;
    float        *kt = scratch;
    float        *p  = kt + (size_t)hd * W;
    float        *m  = p + rows_pad * W, *l = m + rows_pad, *alpha = l + rows_pad;
    const float  *qr[LLMRT_CPU_ATTN_MAX_ROWS + S_ROWS];
    float        *orow[LLMRT_CPU_ATTN_MAX_ROWS + V_ROWS];
    for (int32_t r = 0; r < R; r++) {
        qr[r]   = row_ptr((float *)t->q, t, r);
        orow[r] = row_ptr(t->out, t, r);
        memset(orow[r], 0, (size_t)hd * sizeof(float));
        m[r] = -INFINITY, l[r] = 0.0f;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int32_t       last = t->pos[t->n_tok - 1], i0 = 0, i1 = 0;
    for (int32_t c0 = llmrt_cpu_attn_lo(t, t->pos[0]) / W * W; c0 <= last; c0 += W) {
        while (t->pos[i0] < c0) i0++;
        while (i1 < t->n_tok && llmrt_cpu_attn_lo(t, t->pos[i1]) < c0 + W) i1++;
        if (i1 <= i0) continue;
        int32_t      R1  = i1 * G; /* rows [i0 * G, R1) need this chunk (attention_cpu.h) */
        int32_t      jlo = llmrt_cpu_attn_lo(t, t->pos[i0]) - c0;
        int32_t      nv  = last - c0 + 1 < W ? last - c0 + 1 : W;
        const float *kr[W], *vr[W];
        if (jlo < 0) jlo = 0;
        int32_t r0 = i0 * G;
        { /* the next chunk's K and V on their way to L2 while this one computes */
            int32_t lo = llmrt_cpu_attn_lo(t, t->pos[i0]);
            llmrt_cpu_attn_prefetch_chunk(t, c0 + W > lo ? c0 + W : lo,
                                          c0 + 2 * W - 1 < last ? c0 + 2 * W - 1 : last);
        }
        /* A bf16 or 8-bit cache's V read as stored and widened (dequantised) in P·V when at most
         * two 4-row groups read the chunk (decode: one token's group), else converted once into
         * scratch with the other rows: each group would convert every V row again. An 8-bit K is
         * then dequantised on its way into kt. The same values either way. */
        const bool kv8 = t->kv_dtype == LLMRT_DTYPE_I8 || t->kv_dtype == LLMRT_DTYPE_F8_E4M3;
        const bool         v_direct = (t->kv_dtype == LLMRT_DTYPE_BF16 || kv8) && hd % 8 == 0 &&
                                      R1 - r0 <= 2 * V_ROWS;
        const enum vkind   vk = !v_direct                          ? V_F32
                                : t->kv_dtype == LLMRT_DTYPE_BF16 ? V_BF16
                                : t->kv_dtype == LLMRT_DTYPE_I8   ? V_I8
                                                                  : V_F8;
        llmrt_cpu_attn_src src;
        float              ks[W], vs[W]; /* 8-bit direct: row scales (fp8: times 2^8) */
        /* outside [jlo, nv): a valid row, p = 0 */
        if (v_direct) {
            llmrt_cpu_attn_chunk_src(t, c0, jlo, nv, &src);
            const float f8 = vk == V_F8 ? 256.0f : 1.0f; /* exact */
            for (int j = 0; kv8 && j < W; j++) ks[j] = src.ks[j] * f8, vs[j] = src.vs[j] * f8;
        } else
            llmrt_cpu_attn_chunk_rows(t, c0, jlo, nv, kr, vr, scratch, dequant_row);
        const uint8_t *ktb = (const uint8_t *)kt; /* kt rows: ld bytes apart, kd elements */
        int64_t        ld  = W * sizeof(float);
        llmrt_dtype    kd  = LLMRT_DTYPE_F32;
        if (llmrt_cpu_attn_k_dmajor(t->kv_dtype)) { /* K stored transposed */
            ktb = llmrt_cpu_attn_chunk_kt(t, c0, jlo, nv, (uint8_t *)llmrt_cpu_attn_deq(t, scratch), &ld);
            kd  = t->kv_dtype;
        } else if (v_direct)
            transpose_k8(kt, (const uint8_t *const *)src.k, ks, hd, vk == V_F8);
        else
            transpose_k(kt, kr, hd);
        /* P·V's rows: as stored (v_direct) or fp32 (in the cache or converted into scratch) */
        const void *const *vrows = v_direct ? (const void *const *)src.v : (const void *const *)vr;
        for (int32_t r = r0; r < R1; r += S_ROWS) {
            int32_t      n = R1 - r < S_ROWS ? R1 - r : S_ROWS;
            const float *qg[S_ROWS];
            for (int i = 0; i < S_ROWS; i++) qg[i] = qr[r + (i < n ? i : 0)];
            __m256 s[2 * S_ROWS];
            scores(s, qg, ktb, ld, hd, kd, n);
            float dm[8] __attribute__((aligned(32))) = {0}, sum[S_ROWS];
            for (int i = 0; i < n; i++) {
                int32_t ri = r + i;
                int32_t nr = t->pos[ri / G] - c0 + 1 < W ? t->pos[ri / G] - c0 + 1 : W;
                int32_t jl = llmrt_cpu_attn_lo(t, t->pos[ri / G]) - c0;
                if (jl < 0) jl = 0;
                __m256  sc = _mm256_set1_ps(t->scale);
                __m256  x0 = _mm256_mul_ps(s[2 * i], sc), x1 = _mm256_mul_ps(s[2 * i + 1], sc);
                __m256i n0 = _mm256_set1_epi32(nr), l0 = _mm256_set1_epi32(jl);
                __m256i hi = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
                /* lanes j in [jl, nr) */
                __m256  k0 = _mm256_castsi256_ps(_mm256_andnot_si256(
                    _mm256_cmpgt_epi32(l0, lane), _mm256_cmpgt_epi32(n0, lane)));
                __m256  k1 = _mm256_castsi256_ps(_mm256_andnot_si256(
                    _mm256_cmpgt_epi32(l0, hi), _mm256_cmpgt_epi32(n0, hi)));
                /* the row's max over its lanes (exact in any order), then with the running one */
                const __m256 ninf = _mm256_set1_ps(-INFINITY);
                __m256 mm = _mm256_max_ps(_mm256_blendv_ps(ninf, x0, k0),
                                          _mm256_blendv_ps(ninf, x1, k1));
                float cmx = hreduce8(mm, true), mx = cmx > m[ri] ? cmx : m[ri];
                __m256 mv = _mm256_set1_ps(mx);
                __m256 e0 = _mm256_and_ps(exp_neg(_mm256_sub_ps(x0, mv)), k0);
                __m256 e1 = _mm256_and_ps(exp_neg(_mm256_sub_ps(x1, mv)), k1);
                float *pr = p + (size_t)ri * W;
                _mm256_storeu_ps(pr, e0);
                _mm256_storeu_ps(pr + 8, e1);
                /* the 16 lanes summed as a fixed tree (the same for every tile shape) */
                sum[i] = hreduce8(_mm256_add_ps(e0, e1), false);
                dm[i]  = m[ri] - mx;
                m[ri]  = mx;
            }
            /* the rows' rescale factors e^(m_old - m_new) in one vector exp, as the AVX-512
             * kernel: exactly 1 when the max stays; ~1e-38 on a row's first chunk (m_old = -inf,
             * clamped), where l and o are 0 */
            float av[8] __attribute__((aligned(32)));
            _mm256_store_ps(av, exp_neg(_mm256_load_ps(dm)));
            for (int i = 0; i < n; i++) {
                l[r + i]     = l[r + i] * av[i] + sum[i];
                alpha[r + i] = av[i];
            }
        }
        for (int32_t d0 = 0; d0 < hd; d0 += 8 * V_COLS) {
            __m256i cm[V_COLS];
            for (int c = 0; c < V_COLS; c++)
                cm[c] = _mm256_cmpgt_epi32(_mm256_set1_epi32(hd - d0 - 8 * c), lane);
            switch (vk) { /* vk a literal in each pv_rows instance */
            case V_BF16: pv_rows(orow, p, alpha, vrows, vs, nv, d0, hd, cm, r0, R1, V_BF16); break;
            case V_I8: pv_rows(orow, p, alpha, vrows, vs, nv, d0, hd, cm, r0, R1, V_I8); break;
            case V_F8: pv_rows(orow, p, alpha, vrows, vs, nv, d0, hd, cm, r0, R1, V_F8); break;
            default: pv_rows(orow, p, alpha, vrows, vs, nv, d0, hd, cm, r0, R1, V_F32);
            }
        }
    }
    for (int32_t r = 0; r < R; r++) {
        float inv = 1.0f / l[r];
        for (int32_t d = 0; d < hd; d++) orow[r][d] *= inv;
    }
}
