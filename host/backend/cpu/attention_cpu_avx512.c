/* AVX-512 tile kernel of the CPU attention (attention_cpu.h), compiled with -mavx512f/bw/vl/dq.
 *
 * Per chunk of 16 KV positions: the 16 K rows are transposed once into kt [hd, 16] (shared by
 * every row of the tile), so a row's 16 scores are one vector: s = fma(q[d], kt[d], s) for d in
 * order, up to 8 rows at a time (one kt load feeds 8 FMAs with the q element broadcast from
 * memory). Then the online-softmax step per row (vector exp), and P·V with 4 rows x 64 output
 * columns in registers: each V row load feeds 4 rows. A row's arithmetic is the same whatever
 * rows share its groups (attention_cpu.h), so the tile shape never changes a result. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "attention_cpu.h"
#include "attention_cpu_kv.h"

#define W      LLMRT_CPU_ATTN_CHUNK /* 16: one zmm of scores */
#define S_ROWS 8                    /* rows per score group   */
#define V_ROWS 4                    /* rows per P·V group     */
#define V_COLS 4                    /* zmm of output columns per P·V pass (64 floats) */

/* dst[n] = scale * value(codes[n]), 16 at a time (masked tail); bf16: widened exactly, no scale.
 * int8: sign-extended. fp8 e4m3:
 * its bits moved into an fp16 (sign to bit 15, exponent and mantissa shifted left by 7: the
 * same value / 2^8, subnormals included, since fp16's bias is 8 more) and converted exactly by
 * vcvtph2ps; scale * 2^8 is exact, so the product rounds as scale * value does (the portable
 * kernel's table lookup; the NaN code 0x7F, which the quantiser never writes, reads as 480). */
static void dequant_row(float *dst, const uint8_t *codes, float scale, int32_t n, llmrt_dtype kv,
                        const float *lut) {
    (void)lut;
    const __m512  s   = _mm512_set1_ps(scale), s8 = _mm512_set1_ps(scale * 256.0f);
    const __m256i sgn = _mm256_set1_epi16(0x80), mag = _mm256_set1_epi16(0x7F);
    for (int32_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512    x;
        if (kv == LLMRT_DTYPE_BF16) { /* bf16 bits are the top half of the fp32 ones */
            __m256i b = _mm256_maskz_loadu_epi16(k, codes + 2 * (size_t)i);
            __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16);
            _mm512_mask_storeu_ps(dst + i, k, _mm512_castsi512_ps(w));
            continue;
        }
        __m128i c = _mm_maskz_loadu_epi8(k, codes + i);
        if (kv == LLMRT_DTYPE_I8) {
            x = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)), s);
        } else {
            __m256i h = _mm256_cvtepu8_epi16(c);
            h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(h, sgn), 8),
                                _mm256_slli_epi16(_mm256_and_si256(h, mag), 7));
            x = _mm512_mul_ps(_mm512_cvtph_ps(h), s8);
        }
        _mm512_mask_storeu_ps(dst + i, k, x);
    }
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

/* kt[d * 16 + j] = rows[j][d] for d < hd: 16x16 transposes in registers, scalar tail. */
static void transpose_k(float *kt, const float *const rows[W], int32_t hd) {
    int32_t d0 = 0;
    for (; d0 + 16 <= hd; d0 += 16) {
        __m512 r[16], t[16];
        for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(rows[j] + d0);
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
        for (int j = 0; j < 16; j++) _mm512_store_ps(kt + (size_t)(d0 + j) * W, r[j]);
    }
    for (; d0 < hd; d0++)
        for (int j = 0; j < W; j++) kt[(size_t)d0 * W + j] = rows[j][d0];
}

/* s[i] = sum_d q_i[d] * kt[d] (sequential over d) for NR rows; NR is a literal after inlining,
 * so the accumulators live in registers. */
static inline __attribute__((always_inline)) void scores(__m512 *s, const float *const *q,
                                                          const float *kt, int32_t hd, int NR) {
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) s[i] = _mm512_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        __m512 k = _mm512_load_ps(kt + (size_t)d * W);
#pragma GCC unroll 8
        for (int i = 0; i < NR; i++) s[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[i][d]), k, s[i]);
    }
}

/* o_i = o_i * alpha_i + sum_j p_i[j] * v_j[cols] over NR rows and NC zmm columns from d0. */
static inline __attribute__((always_inline)) void pv(float *const *o, const float *p,
                                                      const float *alpha, const float *const *v,
                                                      int32_t nv, int32_t d0, const __mmask16 *cm,
                                                      int NR) {
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
        for (int c = 0; c < V_COLS; c++) vv[c] = _mm512_maskz_loadu_ps(cm[c], v[j] + d0 + 16 * c);
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
        for (int c = 0; c < V_COLS; c++) _mm512_mask_storeu_ps(o[i] + d0 + 16 * c, cm[c], acc[i][c]);
}

void llmrt_cpu_attn_tile_avx512(const llmrt_cpu_attn_tile *t, float *scratch) {
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
        const float *kr[W], *vr[W];
        if (jlo < 0) jlo = 0;
        /* outside [jlo, nv): a valid row, p = 0 */
        llmrt_cpu_attn_chunk_rows(t, c0, jlo, nv, kr, vr, scratch, dequant_row);
        transpose_k(kt, kr, hd);
        int32_t r0 = i0 * G;
        for (int32_t r = r0; r < R1; r += S_ROWS) {
            int32_t      n = R1 - r < S_ROWS ? R1 - r : S_ROWS;
            const float *qg[S_ROWS];
            for (int i = 0; i < S_ROWS; i++) qg[i] = qr[r + (i < n ? i : 0)];
            __m512 s[S_ROWS];
            if (n > 4) scores(s, qg, kt, hd, 8);
            else scores(s, qg, kt, hd, 4);
            for (int i = 0; i < n; i++) {
                int32_t   ri  = r + i;
                int32_t   nr  = t->pos[ri / G] - c0 + 1 < W ? t->pos[ri / G] - c0 + 1 : W;
                int32_t   jl  = llmrt_cpu_attn_lo(t, t->pos[ri / G]) - c0;
                __mmask16 ok  = (__mmask16)(((1u << nr) - 1) & ~((1u << (jl > 0 ? jl : 0)) - 1));
                __m512    sc  = _mm512_mul_ps(s[i], _mm512_set1_ps(t->scale));
                float     cmx = _mm512_mask_reduce_max_ps(ok, sc);
                float     mx  = cmx > m[ri] ? cmx : m[ri];
                __m512    pr  = _mm512_maskz_mov_ps(ok, exp_neg(_mm512_sub_ps(sc, _mm512_set1_ps(mx))));
                float     a   = expf(m[ri] - mx); /* 0 on the first chunk (m = -inf) */
                l[ri]         = l[ri] * a + _mm512_reduce_add_ps(pr);
                m[ri]         = mx;
                alpha[ri]     = a;
                _mm512_store_ps(p + (size_t)ri * W, pr);
            }
        }
        for (int32_t d0 = 0; d0 < hd; d0 += 16 * V_COLS) {
            __mmask16 cm[V_COLS];
            for (int c = 0; c < V_COLS; c++) {
                int32_t left = hd - d0 - 16 * c;
                cm[c] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
            }
            int32_t r = r0;
            for (; r + V_ROWS <= R1; r += V_ROWS)
                pv(orow + r, p + (size_t)r * W, alpha + r, vr, nv, d0, cm, V_ROWS);
            for (; r < R1; r++) pv(orow + r, p + (size_t)r * W, alpha + r, vr, nv, d0, cm, 1);
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
