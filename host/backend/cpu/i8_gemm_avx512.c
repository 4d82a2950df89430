/* AVX512-VNNI int8 matmul (i8_gemm.h; compiled with -mavx512vnni, chosen only when the CPU has
 * it). Register tile: 4 tokens x 2 panels (32 weight rows): per 4 columns, one broadcast of a
 * token's 4 activation bytes and one vpdpbusd per panel into 8 int32 accumulators; per 32-column
 * block the int32 sums are scaled into 8 fp32 accumulators (the fmaf sequence of the generic
 * kernel, so both give the same bits). The panels of one 32-row chunk stay in L1/L2 while every
 * token of the batch passes over them.
 * Bound: per block and tile, 64 vpdpbusd share Zen 4's two multiply pipes with the 32 ops of
 * the rescaling (cvt, mul, 2 fma per accumulator), so ~2/3 of the vpdpbusd rate is the ceiling
 * of this format (one scale per 32 columns on both sides); measured ~65-70%. */
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

/* panel p's 16 scales and offsets of block b (i8_gemm.h): fp32 pairs (4-bit, Q8_Z), or the fp16 d
 * of Q8_0 widened, off = -128 sc (exact, the values the generic kernel uses) */
static inline void scales(const llmrt_cpu_i8w *w, const uint8_t *p, int64_t b, __m512 *sc,
                          __m512 *off) {
    const uint8_t *meta = p + w->meta_at + b * w->meta_bytes;
    if (w->f32_meta) {
        *sc  = _mm512_load_ps(meta);
        *off = _mm512_load_ps(meta + 64);
    } else {
        *sc  = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)meta));
        *off = _mm512_mul_ps(*sc, _mm512_set1_ps(-128.0f));
    }
}

static inline __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* The accumulators are named, not arrays: GCC keeps a 2-D __m512 array indexed in loops on the
 * stack. a<t><p>: int32 sums of token t, panel p over one block; f<t><p>: the fp32 result. */
#define DP_NIB(T)                                                                                  \
    do {                                                                                           \
        __m512i xa = bcast4(xp##T + 8 * jj), xb = bcast4(xp##T + 8 * jj + 4);                      \
        a##T##0    = _mm512_dpbusd_epi32(a##T##0, l0, xa);                                         \
        a##T##1    = _mm512_dpbusd_epi32(a##T##1, l1, xa);                                         \
        a##T##0    = _mm512_dpbusd_epi32(a##T##0, h0, xb);                                         \
        a##T##1    = _mm512_dpbusd_epi32(a##T##1, h1, xb);                                         \
    } while (0)

#define DP_BYTE(T)                                                                                 \
    do {                                                                                           \
        __m512i xa = bcast4(xp##T + 4 * j);                                                        \
        a##T##0    = _mm512_dpbusd_epi32(a##T##0, u0, xa);                                         \
        a##T##1    = _mm512_dpbusd_epi32(a##T##1, u1, xa);                                         \
    } while (0)

/* acc = fma((float)dot, sc * d, acc); acc = fma(off, s, acc): the generic kernel's sequence */
#define SCALE(T)                                                                                   \
    do {                                                                                           \
        __m512 d = _mm512_set1_ps(dq[T]), s = _mm512_set1_ps(sq[T]);                               \
        f##T##0  = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a##T##0), _mm512_mul_ps(sc0, d), f##T##0);   \
        f##T##1  = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a##T##1), _mm512_mul_ps(sc1, d), f##T##1);   \
        f##T##0  = _mm512_fmadd_ps(of0, s, f##T##0);                                               \
        f##T##1  = _mm512_fmadd_ps(of1, s, f##T##1);                                               \
    } while (0)

#define STORE(T)                                                                                   \
    do {                                                                                           \
        if ((T) < n_t) {                                                                           \
            _mm512_mask_storeu_ps(out + (T)*ldo, m0, f##T##0);                                     \
            _mm512_mask_storeu_ps(out + (T)*ldo + LLMRT_CPU_I8_PANEL, m1, f##T##1);                \
        }                                                                                          \
    } while (0)

/* One 4 x 2 tile: tokens tok[0..3] (repeated for a partial tile), panels p0, p1; results to the
 * out rows of the tokens < n_t, columns under the masks. */
static void tile(float *out, int64_t ldo, const llmrt_cpu_xq *xq, const int64_t tok[MR], int n_t,
                 const llmrt_cpu_i8w *w, const uint8_t *p0, const uint8_t *p1, __mmask16 m0,
                 __mmask16 m1) {
    int64_t       K = w->cols, nb = K / 32;
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    __m512        f00 = _mm512_setzero_ps(), f01 = f00, f10 = f00, f11 = f00, f20 = f00, f21 = f00,
           f30 = f00, f31 = f00;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *b0 = p0 + b * w->u_bytes, *b1 = p1 + b * w->u_bytes;
        const int8_t  *xp0 = xq->q + tok[0] * K + b * 32, *xp1 = xq->q + tok[1] * K + b * 32;
        const int8_t  *xp2 = xq->q + tok[2] * K + b * 32, *xp3 = xq->q + tok[3] * K + b * 32;
        __m512i        a00 = _mm512_setzero_si512(), a01 = a00, a10 = a00, a11 = a00, a20 = a00,
                a21 = a00, a30 = a00, a31 = a00;
        if (w->nibbles) {
            for (int jj = 0; jj < 4; jj++) {
                __m512i r0 = _mm512_load_si512(b0 + 64 * jj), r1 = _mm512_load_si512(b1 + 64 * jj);
                __m512i l0 = _mm512_and_si512(r0, lo4), l1 = _mm512_and_si512(r1, lo4);
                __m512i h0 = _mm512_and_si512(_mm512_srli_epi16(r0, 4), lo4);
                __m512i h1 = _mm512_and_si512(_mm512_srli_epi16(r1, 4), lo4);
                DP_NIB(0);
                DP_NIB(1);
                DP_NIB(2);
                DP_NIB(3);
            }
        } else {
            for (int j = 0; j < 8; j++) {
                __m512i u0 = _mm512_load_si512(b0 + 64 * j), u1 = _mm512_load_si512(b1 + 64 * j);
                DP_BYTE(0);
                DP_BYTE(1);
                DP_BYTE(2);
                DP_BYTE(3);
            }
        }
        __m512 sc0, of0, sc1, of1;
        scales(w, p0, b, &sc0, &of0);
        scales(w, p1, b, &sc1, &of1);
        float dq[MR], sq[MR];
        for (int t = 0; t < MR; t++) dq[t] = xq->d[tok[t] * nb + b], sq[t] = xq->s[tok[t] * nb + b];
        SCALE(0);
        SCALE(1);
        SCALE(2);
        SCALE(3);
    }
    STORE(0);
    STORE(1);
    STORE(2);
    STORE(3);
}

/* One token x 2 panels (a batch's last 1-3 tokens, and decode of one sequence): the 4-token tile
 * would compute 3 copies for nothing. Two int32 chains per panel (even and odd quads) keep the
 * vpdpbusd latency covered; integer sums are exact, so the bits equal the 4-token tile's. */
/* pf: NULL, or the next pair of panels, prefetched in step (pf_step bytes per block): decode
 * streams every panel from memory once, and the hardware prefetcher does not follow four
 * interleaved short streams (two panels' weights and scales) ahead of use. Prefetched to L2
 * (T1), not L1: a T0 prefetch holds one of L1's few miss buffers until its line arrives, so
 * the 17 lines per block stalled the loop at the prefetch (half of this kernel's samples);
 * into L2 the misses overlap and the loads a pair later hit L2 (SmolLM2 Q6_K file, int8 decode
 * 1 thread: ~90 -> ~100+ tok/s in alternating runs, bench/results/kquant_int8_vs_llamacpp_*). */
static void tile1(float *out, const llmrt_cpu_xq *xq, int64_t t, const llmrt_cpu_i8w *w,
                  const uint8_t *p0, const uint8_t *p1, __mmask16 m0, __mmask16 m1,
                  const uint8_t *pf, int64_t pf_step) {
    int64_t       K = w->cols, nb = K / 32;
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    __m512        f0 = _mm512_setzero_ps(), f1 = f0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *b0 = p0 + b * w->u_bytes, *b1 = p1 + b * w->u_bytes;
        const int8_t  *xp = xq->q + t * K + b * 32;
        for (int64_t o = 0; pf && o < pf_step; o += 64)
            _mm_prefetch((const char *)pf + b * pf_step + o, _MM_HINT_T1);
        __m512i        e0 = _mm512_setzero_si512(), e1 = e0, o0 = e0, o1 = e0;
        if (w->nibbles) {
            for (int jj = 0; jj < 4; jj++) {
                __m512i r0 = _mm512_load_si512(b0 + 64 * jj), r1 = _mm512_load_si512(b1 + 64 * jj);
                __m512i xa = bcast4(xp + 8 * jj), xb = bcast4(xp + 8 * jj + 4);
                e0 = _mm512_dpbusd_epi32(e0, _mm512_and_si512(r0, lo4), xa);
                e1 = _mm512_dpbusd_epi32(e1, _mm512_and_si512(r1, lo4), xa);
                o0 = _mm512_dpbusd_epi32(o0, _mm512_and_si512(_mm512_srli_epi16(r0, 4), lo4), xb);
                o1 = _mm512_dpbusd_epi32(o1, _mm512_and_si512(_mm512_srli_epi16(r1, 4), lo4), xb);
            }
        } else {
            for (int j = 0; j < 8; j += 2) {
                __m512i xa = bcast4(xp + 4 * j), xb = bcast4(xp + 4 * j + 4);
                e0 = _mm512_dpbusd_epi32(e0, _mm512_load_si512(b0 + 64 * j), xa);
                e1 = _mm512_dpbusd_epi32(e1, _mm512_load_si512(b1 + 64 * j), xa);
                o0 = _mm512_dpbusd_epi32(o0, _mm512_load_si512(b0 + 64 * j + 64), xb);
                o1 = _mm512_dpbusd_epi32(o1, _mm512_load_si512(b1 + 64 * j + 64), xb);
            }
        }
        __m512 sc0, of0, sc1, of1;
        scales(w, p0, b, &sc0, &of0);
        scales(w, p1, b, &sc1, &of1);
        __m512 d = _mm512_set1_ps(xq->d[t * nb + b]), s = _mm512_set1_ps(xq->s[t * nb + b]);
        f0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(e0, o0)), _mm512_mul_ps(sc0, d),
                             f0);
        f1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(e1, o1)), _mm512_mul_ps(sc1, d),
                             f1);
        f0 = _mm512_fmadd_ps(of0, s, f0);
        f1 = _mm512_fmadd_ps(of1, s, f1);
    }
    _mm512_mask_storeu_ps(out, m0, f0);
    _mm512_mask_storeu_ps(out + LLMRT_CPU_I8_PANEL, m1, f1);
}

static void gemm_avx512(float *out, int64_t ldo, const llmrt_cpu_xq *xq, int64_t M,
                        const llmrt_cpu_i8w *w, int64_t n0, int n_rows) {
    const int P = LLMRT_CPU_I8_PANEL;
    int64_t   K = w->cols;
    for (int r = 0; r < n_rows; r += NR * P) {
        int            left = n_rows - r;
        const uint8_t *p0   = w->data + (n0 + r) / P * w->panel_bytes;
        /* a chunk of one panel repeats it as the second, whose results are not stored */
        const uint8_t *p1 = left > P ? p0 + w->panel_bytes : p0;
        __mmask16      m0 = left >= P ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __mmask16      m1 = left >= 2 * P ? (__mmask16)0xffff
                            : left > P    ? (__mmask16)((1u << (left - P)) - 1)
                                          : 0;
        int64_t t = 0;
        for (; t + MR <= M; t += MR) {
            int64_t tok[MR] = {t, t + 1, t + 2, t + 3};
            tile(out + t * ldo + r, ldo, xq, tok, MR, w, p0, p1, m0, m1);
        }
        /* the first single token prefetches the next pair (its rows or the next task's) */
        int64_t pf_step = (2 * w->panel_bytes / (K / 32) + 63) / 64 * 64;
        for (int64_t t1 = t; t < M; t++)
            tile1(out + t * ldo + r, xq, t, w, p0, p1, m0, m1,
                  t == t1 ? p0 + 2 * w->panel_bytes : NULL, pf_step);
    }
}

llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_avx512(void) {
    return (llmrt_cpu_i8_kernels){.isa = "avx512", .quantize = quantize_avx512,
                                  .gemm = gemm_avx512};
}
