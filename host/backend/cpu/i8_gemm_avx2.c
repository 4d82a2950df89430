/* AVX2 int8 matmul (i8_gemm.h; compiled with -mavx2 -mfma -mf16c) for CPUs without AVX512-VNNI,
 * llama.cpp's way: vpmaddubsw multiplies unsigned weight bytes by int8 activations into int16
 * pairs, vpmaddwd sums pairs into int32. A 16-row panel is two ymm of int32 lanes (rows 0-7 in
 * the first 32 bytes of each 64-byte quad, rows 8-15 in the second), so one broadcast of a
 * token's 4 activation bytes meets 8 rows per ymm and no horizontal sums are needed. Per 32-column
 * block the int32 dots are scaled in fp32 by the generic kernel's fmaf sequence (same bits).
 *
 * Exactness (q in -127..127: quantize rounds x * 127 / max|x| of the block):
 *   4-bit: nibbles 0..15 times q: a vpmaddubsw pair is at most 2 * 15 * 127 = 3810 in magnitude,
 *     so the int16 sums of a block's 8 quads stay within 8 * 3810 = 30480 < 32767: one vpmaddwd
 *     per block and ymm instead of one per quad;
 *   bytes (Q8_0 u = q + 128, Q8_Z u = q, both 0..255): u * q pairs reach 2 * 255 * 127 and
 *     vpmaddubsw would saturate. With w = u - 128 (-128..127), |w| * sign(q, w) is w * q and its
 *     pairs stay within 2 * 128 * 127 = 32512; every quad goes to int32 at once (two quads could
 *     overflow int16), and dot_u = dot_w + 128 * sum(q), exact in int32.
 *
 * Tiles: 4 tokens x 1 panel while a batch has 4 tokens left (the panel's nibbles are unpacked
 * once for the 4); the last 1-3 tokens, and decode, take 1 token x 2 panels (4 independent
 * accumulators), the first of them prefetching the next panel pair. A chunk's panels stay in
 * L1 / L2 while every token of the batch passes over them: a decode step streams each panel
 * from memory once. GCC spills 5 of the 4-token tile's 8 int accumulators to L1, yet it beat
 * the spill-free 2- and 3-token tiles and a 4 tokens x 8 rows one (Zen 3, cpu_gemm_bench -M 64
 * -N 1536 -K 576 -t 1 --int8, best of 6 alternating runs: q4 0.65 ms vs 0.70 / 0.67 / 0.74). */
#include <immintrin.h>
#include <string.h>

#include "i8_gemm.h"

#define MR 4 /* tokens per register tile */

static inline __m256i load256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

static void quantize_avx2(llmrt_cpu_xq *xq, const float *x, int64_t ldx, int64_t M) {
    int64_t K = xq->K, nb = K / 32;
    const __m256 nosign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    /* packs interleaves 4-lane groups of the 4 inputs per 128-bit half: this restores order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t t = 0; t < M; t++)
        for (int64_t b = 0; b < nb; b++) {
            const float *v = x + t * ldx + b * 32;
            __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
            __m256 v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
            __m256 m =
                _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, nosign), _mm256_and_ps(v1, nosign)),
                              _mm256_max_ps(_mm256_and_ps(v2, nosign), _mm256_and_ps(v3, nosign)));
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            float d = _mm_cvtss_f32(h) / 127.0f;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            __m256 idv = _mm256_set1_ps(id);
            /* cvtps rounds to nearest even, as nearbyintf in the generic kernel */
            __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, idv));
            __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, idv));
            __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, idv));
            __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, idv));
            __m256i s = _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
            /* |q| <= 127: the saturating packs are exact */
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
            _mm256_storeu_si256((__m256i *)(xq->q + t * K + b * 32),
                                _mm256_permutevar8x32_epi32(p, order));
            xq->d[t * nb + b] = d;
            xq->s[t * nb + b] = d * (float)_mm_cvtsi128_si32(s4);
        }
}

/* panel p's 16 scales and offsets of block b (i8_gemm.h), rows 0-7 and 8-15: fp32 pairs (4-bit,
 * Q8_Z), fp16 pairs (4-bit, f16_pairs) widened, or the fp16 d of Q8_0 widened, off = -128 sc
 * (exact, the values the generic kernel uses) */
static inline void scales(const llmrt_cpu_i8w *w, const uint8_t *p, int64_t b, __m256 *sc0,
                          __m256 *sc1, __m256 *of0, __m256 *of1) {
    const uint8_t *meta = p + w->meta_at + b * w->meta_bytes;
    if (w->f32_meta) {
        *sc0 = _mm256_load_ps((const float *)meta);
        *sc1 = _mm256_load_ps((const float *)meta + 8);
        *of0 = _mm256_load_ps((const float *)meta + 16);
        *of1 = _mm256_load_ps((const float *)meta + 24);
    } else if (w->f16_pairs) { /* widened exactly */
        *sc0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)meta));
        *sc1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)meta + 1));
        *of0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)meta + 2));
        *of1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)meta + 3));
    } else {
        *sc0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)meta));
        *sc1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)meta + 1));
        *of0 = _mm256_mul_ps(*sc0, _mm256_set1_ps(-128.0f));
        *of1 = _mm256_mul_ps(*sc1, _mm256_set1_ps(-128.0f));
    }
}

static inline __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* 128 * (sum of a block's 32 activations) in every lane: dot_u - dot_w of the byte panels */
static inline __m256i sum128(const int8_t *xp) {
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), load256(xp)),
                                  _mm256_set1_epi16(1));
    s = _mm256_add_epi32(s, _mm256_permute2x128_si256(s, s, 1));
    s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4e));
    s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xb1));
    return _mm256_slli_epi32(s, 7);
}

/* w * q per int32 lane (4 columns of a row) for w = u - 128 given as wv (signed) and |wv| */
static inline __m256i dot_w(__m256i absw, __m256i wv, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(absw, _mm256_sign_epi8(x, wv)),
                             _mm256_set1_epi16(1));
}

/* out[0 .. n) = rows 0-7 (f0) and 8-15 (f1) of a panel; n < 16 for the last, partial panel */
static inline void store16(float *out, __m256 f0, __m256 f1, int n) {
    if (n >= LLMRT_CPU_I8_PANEL) {
        _mm256_storeu_ps(out, f0);
        _mm256_storeu_ps(out + 8, f1);
        return;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(out, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), f0);
    _mm256_maskstore_ps(out + 8, _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane), f1);
}

/* The accumulators are named, not arrays (GCC keeps an indexed __m256i array on the stack).
 * a<t><h>: token t's int sums over a block, rows 0-7 (h = 0) or 8-15; f<t><h>: its fp32 result. */
#define DP_NIB(T)                                                                                  \
    do {                                                                                           \
        __m256i xa = bcast4(xp##T + 8 * jj), xb = bcast4(xp##T + 8 * jj + 4);                      \
        a##T##0 = _mm256_add_epi16(a##T##0, _mm256_add_epi16(_mm256_maddubs_epi16(l0, xa),         \
                                                             _mm256_maddubs_epi16(h0, xb)));       \
        a##T##1 = _mm256_add_epi16(a##T##1, _mm256_add_epi16(_mm256_maddubs_epi16(l1, xa),         \
                                                             _mm256_maddubs_epi16(h1, xb)));       \
    } while (0)

#define DP_BYTE(T)                                                                                 \
    do {                                                                                           \
        __m256i xa = bcast4(xp##T + 4 * j);                                                        \
        a##T##0 = _mm256_add_epi32(a##T##0, dot_w(m0, w0, xa));                                    \
        a##T##1 = _mm256_add_epi32(a##T##1, dot_w(m1, w1, xa));                                    \
    } while (0)

/* int16 pair sums to int32 (4-bit) */
#define WIDEN(T)                                                                                   \
    do {                                                                                           \
        a##T##0 = _mm256_madd_epi16(a##T##0, ones);                                                \
        a##T##1 = _mm256_madd_epi16(a##T##1, ones);                                                \
    } while (0)

/* acc = fma((float)dot, sc * d, acc); acc = fma(off, s, acc): the generic kernel's sequence, for
 * rows 0-7 (f0, a0) and 8-15 (f1, a1) of a panel; d, s: the token's block scale and d * sum(q) */
static inline void scale16(__m256 *f0, __m256 *f1, __m256i a0, __m256i a1, __m256 sc0, __m256 sc1,
                           __m256 of0, __m256 of1, float d, float s) {
    __m256 dv = _mm256_set1_ps(d), sv = _mm256_set1_ps(s);
    *f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), _mm256_mul_ps(sc0, dv), *f0);
    *f1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a1), _mm256_mul_ps(sc1, dv), *f1);
    *f0 = _mm256_fmadd_ps(of0, sv, *f0);
    *f1 = _mm256_fmadd_ps(of1, sv, *f1);
}

#define SCALE(T)                                                                                   \
    scale16(&f##T##0, &f##T##1, a##T##0, a##T##1, sc0, sc1, of0, of1, xq->d[(t + T) * nb + b],     \
            xq->s[(t + T) * nb + b])

/* One 4 x 1 tile: tokens t .. t + 3 to out rows 0..3, panel p (its first n rows stored). */
static void tile4(float *out, int64_t ldo, const llmrt_cpu_xq *xq, int64_t t,
                  const llmrt_cpu_i8w *w, const uint8_t *p, int n) {
    int64_t K = w->cols, nb = K / 32;
    const __m256i lo4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 f00 = _mm256_setzero_ps(), f01 = f00, f10 = f00, f11 = f00, f20 = f00, f21 = f00,
           f30 = f00, f31 = f00;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *bp = p + b * w->u_bytes;
        const int8_t *xp0 = xq->q + t * K + b * 32, *xp1 = xp0 + K, *xp2 = xp1 + K, *xp3 = xp2 + K;
        __m256i a00, a01, a10, a11, a20, a21, a30, a31;
        if (w->nibbles) {
            a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = _mm256_setzero_si256();
            for (int jj = 0; jj < 4; jj++) {
                __m256i r0 = _mm256_load_si256((const __m256i *)(bp + 64 * jj));
                __m256i r1 = _mm256_load_si256((const __m256i *)(bp + 64 * jj + 32));
                __m256i l0 = _mm256_and_si256(r0, lo4), l1 = _mm256_and_si256(r1, lo4);
                __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(r0, 4), lo4);
                __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(r1, 4), lo4);
                DP_NIB(0);
                DP_NIB(1);
                DP_NIB(2);
                DP_NIB(3);
            }
            WIDEN(0);
            WIDEN(1);
            WIDEN(2);
            WIDEN(3);
        } else {
            a00 = a01 = sum128(xp0);
            a10 = a11 = sum128(xp1);
            a20 = a21 = sum128(xp2);
            a30 = a31 = sum128(xp3);
            const __m256i bias = _mm256_set1_epi8((char)0x80);
            for (int j = 0; j < 8; j++) {
                __m256i w0 =
                    _mm256_xor_si256(_mm256_load_si256((const __m256i *)(bp + 64 * j)), bias);
                __m256i w1 =
                    _mm256_xor_si256(_mm256_load_si256((const __m256i *)(bp + 64 * j + 32)), bias);
                __m256i m0 = _mm256_abs_epi8(w0), m1 = _mm256_abs_epi8(w1); /* -128 -> 128 */
                DP_BYTE(0);
                DP_BYTE(1);
                DP_BYTE(2);
                DP_BYTE(3);
            }
        }
        __m256 sc0, sc1, of0, of1;
        scales(w, p, b, &sc0, &sc1, &of0, &of1);
        SCALE(0);
        SCALE(1);
        SCALE(2);
        SCALE(3);
    }
    store16(out, f00, f01, n);
    store16(out + ldo, f10, f11, n);
    store16(out + 2 * ldo, f20, f21, n);
    store16(out + 3 * ldo, f30, f31, n);
}

/* One token x 2 panels p0, p1 (their first n0, n1 rows stored; p1 may repeat p0 with n1 = 0):
 * four independent accumulators keep the multiply latency covered.
 * pf: NULL, or the next pair of panels, prefetched in step (pf_step bytes per block) to L2, as the
 * avx512 kernel does: decode streams every panel from memory once, and the hardware prefetcher
 * does not follow the four interleaved streams (two panels' weights and scales) ahead of use
 * (SmolLM2 Q4_1, int8 decode, 1 thread, Zen 3: 71-73 tok/s with it, 56-68 without, alternating
 * runs of llmrt bench latency -p 128 -n 64 -r 3 -t 1). */
static void tile1(float *out, const llmrt_cpu_xq *xq, int64_t t, const llmrt_cpu_i8w *w,
                  const uint8_t *p0, const uint8_t *p1, int n0, int n1, const uint8_t *pf,
                  int64_t pf_step) {
    int64_t K = w->cols, nb = K / 32;
    const __m256i lo4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 f00 = _mm256_setzero_ps(), f01 = f00, f10 = f00, f11 = f00;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *b0 = p0 + b * w->u_bytes, *b1 = p1 + b * w->u_bytes;
        const int8_t *xp = xq->q + t * K + b * 32;
        for (int64_t o = 0; pf && o < pf_step; o += 64)
            _mm_prefetch((const char *)pf + b * pf_step + o, _MM_HINT_T1);
        __m256i a00, a01, a10, a11; /* panel p0 rows 0-7, 8-15; p1 rows 0-7, 8-15 */
        if (w->nibbles) {
            a00 = a01 = a10 = a11 = _mm256_setzero_si256();
            for (int jj = 0; jj < 4; jj++) {
                __m256i xa = bcast4(xp + 8 * jj), xb = bcast4(xp + 8 * jj + 4);
#define NIB(A, P)                                                                                  \
    do {                                                                                           \
        __m256i r = _mm256_load_si256((const __m256i *)(P));                                       \
        A = _mm256_add_epi16(                                                                      \
            A, _mm256_add_epi16(                                                                   \
                   _mm256_maddubs_epi16(_mm256_and_si256(r, lo4), xa),                             \
                   _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(r, 4), lo4), xb)));     \
    } while (0)
                NIB(a00, b0 + 64 * jj);
                NIB(a01, b0 + 64 * jj + 32);
                NIB(a10, b1 + 64 * jj);
                NIB(a11, b1 + 64 * jj + 32);
#undef NIB
            }
            WIDEN(0);
            WIDEN(1);
        } else {
            a00 = a01 = a10 = a11 = sum128(xp);
            const __m256i bias = _mm256_set1_epi8((char)0x80);
            for (int j = 0; j < 8; j++) {
                __m256i xa = bcast4(xp + 4 * j);
#define BYTE(A, P)                                                                                 \
    do {                                                                                           \
        __m256i wv = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(P)), bias);              \
        A = _mm256_add_epi32(A, dot_w(_mm256_abs_epi8(wv), wv, xa));                               \
    } while (0)
                BYTE(a00, b0 + 64 * j);
                BYTE(a01, b0 + 64 * j + 32);
                BYTE(a10, b1 + 64 * j);
                BYTE(a11, b1 + 64 * j + 32);
#undef BYTE
            }
        }
        float d = xq->d[t * nb + b], s = xq->s[t * nb + b];
        __m256 sc0, sc1, of0, of1;
        scales(w, p0, b, &sc0, &sc1, &of0, &of1);
        scale16(&f00, &f01, a00, a01, sc0, sc1, of0, of1, d, s);
        scales(w, p1, b, &sc0, &sc1, &of0, &of1);
        scale16(&f10, &f11, a10, a11, sc0, sc1, of0, of1, d, s);
    }
    store16(out, f00, f01, n0);
    store16(out + LLMRT_CPU_I8_PANEL, f10, f11, n1);
}

static void gemm_avx2(float *out, int64_t ldo, const llmrt_cpu_xq *xq, int64_t M,
                      const llmrt_cpu_i8w *w, int64_t n0, int n_rows) {
    const int P = LLMRT_CPU_I8_PANEL;
    int64_t K = w->cols;
    /* the single-token tile prefetches this many bytes of the next pair per block */
    int64_t pf_step = (2 * w->panel_bytes / (K / 32) + 63) / 64 * 64;
    for (int r = 0; r < n_rows; r += 2 * P) {
        int left = n_rows - r;
        const uint8_t *p0 = w->data + (n0 + r) / P * w->panel_bytes;
        /* a chunk of one panel repeats it as the second, whose results are not stored */
        const uint8_t *p1 = left > P ? p0 + w->panel_bytes : p0;
        int c0 = left < P ? left : P, c1 = left > 2 * P ? P : left > P ? left - P : 0;
        int64_t t4 = M / MR * MR;
        /* each panel once for all 4-token tiles: one panel hot in L1 rather than two */
        for (int64_t t = 0; t < t4; t += MR)
            tile4(out + t * ldo + r, ldo, xq, t, w, p0, c0);
        for (int64_t t = 0; c1 && t < t4; t += MR)
            tile4(out + t * ldo + r + P, ldo, xq, t, w, p1, c1);
        /* the first single token prefetches the next pair (its rows or the next task's) */
        for (int64_t t = t4; t < M; t++)
            tile1(out + t * ldo + r, xq, t, w, p0, p1, c0, c1,
                  t == t4 ? p0 + 2 * w->panel_bytes : NULL, pf_step);
    }
}

llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_avx2(void) {
    return (llmrt_cpu_i8_kernels){
        .isa = "avx2", .f16_pairs = true, .quantize = quantize_avx2, .gemm = gemm_avx2};
}
