/* AVX512-VNNI int8 matmul (i8_gemm.h; compiled with -mavx512vnni, chosen only when the CPU has
 * it). Register tile: 4 tokens x 2 panels (32 weight rows): per 4 columns, one broadcast of a
 * token's 4 activation bytes and one vpdpbusd per panel into 8 int32 accumulators; per 32-column
 * block the int32 sums are scaled into 8 fp32 accumulators (the fmaf sequence of the generic
 * kernel, so both give the same bits). The panels of one 32-row chunk stay in L1/L2 while every
 * token of the batch passes over them. */
#include <immintrin.h>
#include <string.h>

#include "i8_gemm.h"

#define MR 4 /* tokens per register tile */
#define NR 2 /* panels per register tile */

static void quantize_avx512(llmrt_cpu_xq *xq, const float *x, int64_t ldx, int64_t M) {
    int64_t K = xq->K, nb = K / 32;
    for (int64_t t = 0; t < M; t++)
        for (int64_t b = 0; b < nb; b++) {
            const float *v  = x + t * ldx + b * 32;
            __m512       v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            float d    = amax / 127.0f;
            float id   = d != 0.0f ? 1.0f / d : 0.0f;
            __m512 idv = _mm512_set1_ps(id);
            /* cvtps rounds to nearest even, as nearbyintf in the generic kernel */
            __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, idv));
            __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, idv));
            int8_t *q  = xq->q + t * K + b * 32;
            _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(q0));
            _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(q1));
            int32_t sum       = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            xq->d[t * nb + b] = d;
            xq->s[t * nb + b] = d * (float)sum;
        }
}

static inline __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* One 4 x 2 tile: tokens xt[0..3] (rows of xq->q; repeated pointers for a partial tile), panels
 * p0, p1; results to out rows of the tokens < n_t, columns under the masks. */
static void tile(float *out, int64_t ldo, const llmrt_cpu_xq *xq, const int64_t tok[MR], int n_t,
                 const llmrt_cpu_i8w *w, const uint8_t *p0, const uint8_t *p1, __mmask16 m0,
                 __mmask16 m1) {
    int64_t       K = w->cols, nb = K / 32;
    int64_t       u_bytes = w->nibbles ? 256 : 512;
    const __m512i lo4     = _mm512_set1_epi8(0x0f);
    __m512        f[MR][NR];
    for (int t = 0; t < MR; t++)
        for (int p = 0; p < NR; p++) f[t][p] = _mm512_setzero_ps();
    const int8_t *xr[MR];
    for (int t = 0; t < MR; t++) xr[t] = xq->q + tok[t] * K;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *b0 = p0 + b * w->block_bytes, *b1 = p1 + b * w->block_bytes;
        __m512i        a[MR][NR];
        for (int t = 0; t < MR; t++)
            for (int p = 0; p < NR; p++) a[t][p] = _mm512_setzero_si512();
        if (w->nibbles) {
            for (int jj = 0; jj < 4; jj++) {
                __m512i r0 = _mm512_load_si512(b0 + 64 * jj), r1 = _mm512_load_si512(b1 + 64 * jj);
                __m512i l0 = _mm512_and_si512(r0, lo4), l1 = _mm512_and_si512(r1, lo4);
                __m512i h0 = _mm512_and_si512(_mm512_srli_epi16(r0, 4), lo4);
                __m512i h1 = _mm512_and_si512(_mm512_srli_epi16(r1, 4), lo4);
#pragma GCC unroll 4
                for (int t = 0; t < MR; t++) {
                    __m512i x0 = bcast4(xr[t] + b * 32 + 8 * jj);
                    __m512i x1 = bcast4(xr[t] + b * 32 + 8 * jj + 4);
                    a[t][0]    = _mm512_dpbusd_epi32(a[t][0], l0, x0);
                    a[t][1]    = _mm512_dpbusd_epi32(a[t][1], l1, x0);
                    a[t][0]    = _mm512_dpbusd_epi32(a[t][0], h0, x1);
                    a[t][1]    = _mm512_dpbusd_epi32(a[t][1], h1, x1);
                }
            }
        } else {
            for (int j = 0; j < 8; j++) {
                __m512i u0 = _mm512_load_si512(b0 + 64 * j), u1 = _mm512_load_si512(b1 + 64 * j);
#pragma GCC unroll 4
                for (int t = 0; t < MR; t++) {
                    __m512i x0 = bcast4(xr[t] + b * 32 + 4 * j);
                    a[t][0]    = _mm512_dpbusd_epi32(a[t][0], u0, x0);
                    a[t][1]    = _mm512_dpbusd_epi32(a[t][1], u1, x0);
                }
            }
        }
        const float *fs0 = (const float *)(b0 + u_bytes), *fs1 = (const float *)(b1 + u_bytes);
        __m512 sc[NR] = {_mm512_load_ps(fs0), _mm512_load_ps(fs1)};
        __m512 of[NR] = {_mm512_load_ps(fs0 + 16), _mm512_load_ps(fs1 + 16)};
#pragma GCC unroll 4
        for (int t = 0; t < MR; t++) {
            __m512 d = _mm512_set1_ps(xq->d[tok[t] * nb + b]);
            __m512 s = _mm512_set1_ps(xq->s[tok[t] * nb + b]);
            for (int p = 0; p < NR; p++) {
                f[t][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[t][p]), _mm512_mul_ps(sc[p], d),
                                          f[t][p]);
                f[t][p] = _mm512_fmadd_ps(of[p], s, f[t][p]);
            }
        }
    }
    for (int t = 0; t < n_t; t++) {
        _mm512_mask_storeu_ps(out + t * ldo, m0, f[t][0]);
        _mm512_mask_storeu_ps(out + t * ldo + LLMRT_CPU_I8_PANEL, m1, f[t][1]);
    }
}

static void gemm_avx512(float *out, int64_t ldo, const llmrt_cpu_xq *xq, int64_t M,
                        const llmrt_cpu_i8w *w, int64_t n0, int n_rows) {
    const int P = LLMRT_CPU_I8_PANEL;
    for (int r = 0; r < n_rows; r += NR * P) {
        int            left = n_rows - r;
        const uint8_t *p0   = w->data + (n0 + r) / P * w->panel_bytes;
        /* a chunk of one panel repeats it as the second, whose results are not stored */
        const uint8_t *p1 = left > P ? p0 + w->panel_bytes : p0;
        __mmask16      m0 = left >= P ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __mmask16      m1 = left >= 2 * P ? (__mmask16)0xffff
                            : left > P    ? (__mmask16)((1u << (left - P)) - 1)
                                          : 0;
        for (int64_t t = 0; t < M; t += MR) {
            int     n_t = M - t < MR ? (int)(M - t) : MR;
            int64_t tok[MR];
            for (int i = 0; i < MR; i++) tok[i] = t + (i < n_t ? i : 0);
            tile(out + t * ldo + r, ldo, xq, tok, n_t, w, p0, p1, m0, m1);
        }
    }
}

llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_avx512(void) {
    return (llmrt_cpu_i8_kernels){.isa = "avx512", .quantize = quantize_avx512,
                                  .gemm = gemm_avx512};
}
