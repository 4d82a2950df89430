/* AVX2 + FMA inner loops (compiled with -mavx2 -mfma -mf16c). 8-lane accumulators. Every output
 * is the same 8-lane sum over k (k = l mod 8 in lane l, in k order), reduced by hsum256 (or
 * hsum256_x4, the same adds four at a time) and the scalar tail, whatever tile computes it:
 * outputs are bit-identical alone and in a batch.
 * Tiles: 4 tokens x 3 rows (12 accumulators, 7 loads per 12 FMAs; tile_rows = 3: the backend
 * steps through W by 3 rows) and 4 x 1 for what is left of 4 tokens; 2 tokens x 4 rows for fewer
 * tokens, which also runs over f16 / bf16 rows widened in registers (dot_tile_h). The 2 x 4 tile
 * alone (8 accumulators, 6 loads per 8 FMAs) ran at 41-42 GFLOP/s against 60-64 for 4 x 3 +
 * 4 x 1 per 4 rows (Zen 3, 1 thread, cpu_gemm_bench -M 64 -N 1536 -K 576 --formats f32
 * --isa avx2, best of 20, 3 alternating runs); 4 x 3 alone, 24-row tasks, the tokens outer and
 * hsum256_x4 reach 70-80. The 2 x 4 tiles prefetch the rows PF_TILES tiles ahead: one token's
 * matmul streams W from DRAM, and four interleaved rows of 1-2 KB are too short for the hardware
 * prefetcher (bench/results/cpu_gemm_avx2_4x3.txt has the measurements). */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../core/half.h"
#include "cpu_kernels.h"

#define PF_TILES 2 /* 1, 2, 4 ahead: 11, 12, 12 GFLOP/s, without 7 (bf16, M 1, N 65536, K 576) */

static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo        = _mm_add_ps(lo, hi);
    lo        = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo        = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* hsum256 of four accumulators at once, in one xmm [a, b, c, d]: the same three adds per
 * accumulator in the same order (lo + hi, lanes 0 + 2 and 1 + 3, then the two), so each lane is
 * bit-identical to hsum256 of its accumulator; 9 shuffles and adds instead of 20. */
static inline __m128 hsum256_x4(__m256 a, __m256 b, __m256 c, __m256 d) {
    /* [a lo + a hi | b lo + b hi] and the same for c, d */
    __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20),
                              _mm256_permute2f128_ps(a, b, 0x31));
    __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20),
                              _mm256_permute2f128_ps(c, d, 0x31));
    /* per 128-bit half: [x0 + x2, x1 + x3, y0 + y2, y1 + y3] with x, y = a, c (low) or b, d */
    __m256 t = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 r = _mm256_hadd_ps(t, t); /* low half [a, c, a, c], high half [b, d, b, d] */
    return _mm_unpacklo_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
}

static inline float tail_dot(const float *a, const float *b, int64_t k, int64_t n) {
    float s = 0.0f;
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

/* out[0], out[ldo], out[2 * ldo], out[3 * ldo] = lanes 0..3 of v */
static inline void store_col4(float *out, int64_t ldo, __m128 v) {
    _mm_store_ss(out, v);
    _MM_EXTRACT_FLOAT(out[ldo], v, 1);
    _MM_EXTRACT_FLOAT(out[2 * ldo], v, 2);
    _MM_EXTRACT_FLOAT(out[3 * ldo], v, 3);
}

static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256  acc = _mm256_setzero_ps();
    int64_t k   = 0;
    for (; k + 8 <= n; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    return hsum256(acc) + tail_dot(a, b, k, n);
}

/* Weight rows of the 2 x 4 tiles: fp32, or f16 / bf16 widened in registers. The widening is
 * exact, so every FMA sees the values f16/bf16_to_f32 would have written: the same bits as
 * converting the rows first (decode with half-precision weights then needs no scratch pass). */
enum wkind { W_F32, W_F16, W_BF16 };

static inline __attribute__((always_inline)) __m256 load_w8(const void *w, int64_t k,
                                                            enum wkind kind) {
    if (kind == W_F32) return _mm256_loadu_ps((const float *)w + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    return kind == W_BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                          : _mm256_cvtph_ps(h);
}

static inline int esize_of(enum wkind kind) {
    return kind == W_F32 ? 4 : 2;
}

static inline __attribute__((always_inline)) float w_at(const void *w, int64_t i,
                                                        enum wkind kind) {
    if (kind == W_F32) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    return kind == W_F16 ? _cvtsh_ss(h) : llmrt_bf16_to_f32(h);
}

/* 2 tokens x 4 rows: 8 accumulators, 6 loads per 8 FMAs; prefetches pf (the rows PF_TILES tiles
 * ahead) in step, 4 rows x 8 elements per k step */
static inline __attribute__((always_inline)) void
dot_tile_2x4(float *out, int64_t ldo, const float *const xr[2], int n_t, const void *const wr[4],
             int n_n, int64_t K, enum wkind kind, uintptr_t pf) {
    const int esize = esize_of(kind);
    __m256    acc[2][4];
    for (int t = 0; t < 2; t++)
        for (int n = 0; n < 4; n++) acc[t][n] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        for (int o = 0; o < 32 * esize; o += 64)
            _mm_prefetch((const char *)(pf + 4 * esize * k + o), _MM_HINT_T0);
        __m256 wv0 = load_w8(wr[0], k, kind), wv1 = load_w8(wr[1], k, kind);
        __m256 wv2 = load_w8(wr[2], k, kind), wv3 = load_w8(wr[3], k, kind);
        for (int t = 0; t < 2; t++) {
            __m256 xv = _mm256_loadu_ps(xr[t] + k);
            acc[t][0] = _mm256_fmadd_ps(xv, wv0, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(xv, wv1, acc[t][1]);
            acc[t][2] = _mm256_fmadd_ps(xv, wv2, acc[t][2]);
            acc[t][3] = _mm256_fmadd_ps(xv, wv3, acc[t][3]);
        }
    }
    for (int t = 0; t < n_t; t++)
        for (int n = 0; n < n_n; n++) {
            float tail = 0.0f; /* as tail_dot, over the (widened) weights */
            for (int64_t i = k; i < K; i++) tail += xr[t][i] * w_at(wr[n], i, kind);
            out[t * ldo + n] = hsum256(acc[t][n]) + tail;
        }
}

/* n_t <= 4 tokens x n_n <= 4 rows as 2 x 4 tiles (rows past n_n repeat row 0, not stored) */
static inline __attribute__((always_inline)) void
tiles_2x4(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t, const void *w,
          int64_t ldw, int n_n, int64_t K, enum wkind kind) {
    const int64_t row_bytes = ldw * esize_of(kind);
    const void   *wr[4];
    for (int i = 0; i < 4; i++) wr[i] = (const char *)w + (i < n_n ? i : 0) * row_bytes;
    /* PF_TILES tiles of 4 rows ahead (the rows are contiguous: ldw == K; past the task's end it
     * fetches the next task's rows, and past W's end nothing faults; an integer, as pointer
     * arithmetic past W's end would be undefined) */
    uintptr_t pf = (uintptr_t)w + (uintptr_t)(PF_TILES * 4 * row_bytes);
    for (int t0 = 0; t0 < n_t; t0 += 2) {
        int          nt    = n_t - t0 < 2 ? n_t - t0 : 2;
        const float *xr[2] = {x + t0 * ldx, x + (t0 + (nt > 1 ? 1 : 0)) * ldx};
        dot_tile_2x4(out + t0 * ldo, ldo, xr, nt, wr, n_n, K, kind, pf);
    }
}

/* 4 tokens x 3 rows: 12 accumulators, the 3 rows' weight vectors and one token's x in the 16 ymm
 * registers; 7 loads per 12 FMAs */
static void dot_tile_4x3(float *out, int64_t ldo, const float *const xr[4],
                         const float *const wr[3], int64_t K) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 w0 = _mm256_loadu_ps(wr[0] + k), w1 = _mm256_loadu_ps(wr[1] + k);
        __m256 w2 = _mm256_loadu_ps(wr[2] + k), xv;
#define ROW(T)                                                                                     \
    xv    = _mm256_loadu_ps(xr[T] + k);                                                            \
    a##T##0 = _mm256_fmadd_ps(xv, w0, a##T##0);                                                    \
    a##T##1 = _mm256_fmadd_ps(xv, w1, a##T##1);                                                    \
    a##T##2 = _mm256_fmadd_ps(xv, w2, a##T##2);
        ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
    }
    /* row N of the 4 tokens at once, + the scalar tails (0.0f when K % 8 == 0: hsum + tail) */
#define OUT(N)                                                                                     \
    store_col4(out + N, ldo,                                                                       \
               _mm_add_ps(hsum256_x4(a0##N, a1##N, a2##N, a3##N),                                  \
                          _mm_setr_ps(tail_dot(xr[0], wr[N], k, K), tail_dot(xr[1], wr[N], k, K), \
                                      tail_dot(xr[2], wr[N], k, K), tail_dot(xr[3], wr[N], k, K))));
    OUT(0) OUT(1) OUT(2)
#undef OUT
}

/* 4 tokens x 1 row */
static void dot_tile_4x1(float *out, int64_t ldo, const float *const xr[4], const float *wr,
                         int64_t K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv = _mm256_loadu_ps(wr + k);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[0] + k), wv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[1] + k), wv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[2] + k), wv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[3] + k), wv, a3);
    }
    store_col4(out, ldo,
               _mm_add_ps(hsum256_x4(a0, a1, a2, a3),
                          _mm_setr_ps(tail_dot(xr[0], wr, k, K), tail_dot(xr[1], wr, k, K),
                                      tail_dot(xr[2], wr, k, K), tail_dot(xr[3], wr, k, K))));
}

static void dot_tile_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                          const float *w, int64_t ldw, int n_n, int64_t K) {
    if (n_t == 4) {
        const float *xr[4] = {x, x + ldx, x + 2 * ldx, x + 3 * ldx};
        int          n     = 0;
        if (n_n >= 3) {
            const float *wr[3] = {w, w + ldw, w + 2 * ldw};
            dot_tile_4x3(out, ldo, xr, wr, K);
            n = 3;
        }
        for (; n < n_n; n++) dot_tile_4x1(out + n, ldo, xr, w + n * ldw, K);
        return;
    }
    tiles_2x4(out, ldo, x, ldx, n_t, w, ldw, n_n, K, W_F32);
}

static void dot_tile_h_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                            const uint16_t *w, int64_t ldw, int n_n, int64_t K, bool bf16) {
    if (bf16) tiles_2x4(out, ldo, x, ldx, n_t, w, ldw, n_n, K, W_BF16);
    else      tiles_2x4(out, ldo, x, ldx, n_t, w, ldw, n_n, K, W_F16);
}

static void f16_to_f32_avx2(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

static void bf16_to_f32_avx2(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = llmrt_bf16_to_f32(src[i]);
}

static void axpy_avx2(float *y, float a, const float *x, int64_t n) {
    __m256  av = _mm256_set1_ps(a);
    int64_t i  = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

llmrt_cpu_kernels llmrt_cpu_kernels_avx2(void) {
    return (llmrt_cpu_kernels){
        .isa         = "avx2",
        .dot_tile    = dot_tile_avx2,
        .tile_rows   = 3,
        .dot_tile_h  = dot_tile_h_avx2,
        .f16_to_f32  = f16_to_f32_avx2,
        .bf16_to_f32 = bf16_to_f32_avx2,
        .dot         = dot_avx2,
        .axpy        = axpy_avx2,
    };
}
