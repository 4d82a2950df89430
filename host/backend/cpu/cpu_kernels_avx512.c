/* AVX-512 inner loops (compiled with -mavx512f/bw/vl/dq -mfma -mf16c; used only when the CPU
 * reports AVX-512F/BW/VL/DQ). One 16-lane accumulator per output, k in steps of 16, then a
 * fixed-order horizontal sum and a scalar tail. */
#include <immintrin.h>

#include "cpu_kernels.h"

static inline float tail_dot(const float *a, const float *b, int64_t k, int64_t n) {
    float s = 0.0f;
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

static float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512  acc = _mm512_setzero_ps();
    int64_t k   = 0;
    for (; k + 16 <= n; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
    return _mm512_reduce_add_ps(acc) + tail_dot(a, b, k, n);
}

/* An NT x 4 tile (NT tokens, 4 weight rows) with its 4*NT accumulators in registers. Every
 * variant updates each output's accumulator with the same FMA sequence and reduces it the same
 * way, so an output's bits do not depend on the tile it was computed in. The macro spells the
 * accumulators out because GCC spills a 2-D accumulator array indexed in loops. */
#define TILE_FMA(T)                                                                                \
    do {                                                                                           \
        __m512 xv = _mm512_loadu_ps(x + (T)*ldx + k);                                             \
        a##T##0   = _mm512_fmadd_ps(xv, w0, a##T##0);                                             \
        a##T##1   = _mm512_fmadd_ps(xv, w1, a##T##1);                                             \
        a##T##2   = _mm512_fmadd_ps(xv, w2, a##T##2);                                             \
        a##T##3   = _mm512_fmadd_ps(xv, w3, a##T##3);                                             \
    } while (0)

#define TILE_STORE(T)                                                                              \
    do {                                                                                           \
        __m512 acc_[4] = {a##T##0, a##T##1, a##T##2, a##T##3};                                    \
        for (int n = 0; n < n_n; n++)                                                             \
            out[(T)*ldo + n] = _mm512_reduce_add_ps(acc_[n]) + tail_dot(x + (T)*ldx, wr[n], k, K); \
    } while (0)

#define TILE_KERNEL(NT, BODY_FMA, BODY_STORE)                                                      \
    static void tile_##NT##x4(float *out, int64_t ldo, const float *x, int64_t ldx,              \
                              const float *const wr[4], int n_n, int64_t K) {                     \
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;                        \
        __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;                                        \
        __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;                                        \
        __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;                                        \
        int64_t k  = 0;                                                                            \
        for (; k + 16 <= K; k += 16) {                                                             \
            __m512 w0 = _mm512_loadu_ps(wr[0] + k), w1 = _mm512_loadu_ps(wr[1] + k);              \
            __m512 w2 = _mm512_loadu_ps(wr[2] + k), w3 = _mm512_loadu_ps(wr[3] + k);              \
            BODY_FMA                                                                               \
        }                                                                                          \
        BODY_STORE(void) a10; (void)a11; (void)a12; (void)a13; (void)a20; (void)a21; (void)a22;    \
        (void)a23; (void)a30; (void)a31; (void)a32; (void)a33;                                     \
    }

TILE_KERNEL(1, TILE_FMA(0);, TILE_STORE(0);)
TILE_KERNEL(2, TILE_FMA(0); TILE_FMA(1);, TILE_STORE(0); TILE_STORE(1);)
TILE_KERNEL(3, TILE_FMA(0); TILE_FMA(1); TILE_FMA(2);, TILE_STORE(0); TILE_STORE(1); TILE_STORE(2);)
TILE_KERNEL(4, TILE_FMA(0); TILE_FMA(1); TILE_FMA(2); TILE_FMA(3);,
            TILE_STORE(0); TILE_STORE(1); TILE_STORE(2); TILE_STORE(3);)

static void dot_tile_avx512(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                            const float *w, int64_t ldw, int n_n, int64_t K) {
    /* missing weight rows repeat row 0; their results are not stored */
    const float *wr[4];
    for (int i = 0; i < 4; i++) wr[i] = w + (i < n_n ? i : 0) * ldw;
    switch (n_t) {
    case 1: tile_1x4(out, ldo, x, ldx, wr, n_n, K); break;
    case 2: tile_2x4(out, ldo, x, ldx, wr, n_n, K); break;
    case 3: tile_3x4(out, ldo, x, ldx, wr, n_n, K); break;
    default: tile_4x4(out, ldo, x, ldx, wr, n_n, K); break;
    }
}

/* ---- blocks of any size (gemm): bigger tiles, reductions 16 outputs at a time ----------------
 * On a core with two 512-bit FMA pipes (Intel Xeon: Ice Lake, Sapphire Rapids) the 4x4 tile above
 * reached 60-70 % of the FMA peak at M = 64 (Ice Lake, aligned rows): each output's horizontal
 * sum costs ~8 shuffle-port instructions against its K/16 FMAs, and its 4 weight loads per 16
 * FMAs stream from L2. Here a GEMM_T x GEMM_N tile shares each weight load among GEMM_T tokens,
 * and the horizontal sums run 16 outputs at a time through the same tree as
 * _mm512_reduce_add_ps (lane i + lane i+8, then i + i+4, i + i+2, i + i+1; addition commutes),
 * so every output keeps dot_tile's bits: 75-80 % of the peak
 * (bench/results/cpu_f32_align_icelake.txt). */
#define GEMM_T 6 /* tokens per tile: their x rows stay in L1 while the weights stream */
#define GEMM_N 4 /* weight rows per tile (GEMM_T * GEMM_N accumulators + GEMM_N + 1 of 32 zmm) */

/* r[4j + m] = _mm512_reduce_add_ps(a[4m + j]) for the 16 vectors a[0..15] */
static inline __attribute__((always_inline)) __m512 reduce16(const __m512 *a) {
    __m512 s[8], t[4], u[2];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) /* s[p]: a[2p]'s 8 half sums in lanes 0-7, a[2p+1]'s in 8-15 */
        s[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xEE));
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) /* t[q]: 128-bit lane j holds a[4q + j]'s 4 quarter sums */
        t[q] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], 0x88),
                             _mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], 0xDD));
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++) /* u[r]: lane j holds a[8r + j]'s 2 sums, then a[8r + 4 + j]'s */
        u[r] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * r], t[2 * r + 1], 0x44),
                             _mm512_shuffle_ps(t[2 * r], t[2 * r + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x88), _mm512_shuffle_ps(u[0], u[1], 0xDD));
}

/* out[t * ldo + n] = (sum of acc[t * GEMM_N + n]) + (the tail: dot of x[t * ldx .. + tail]
 * with wt[n][0 .. tail), as tail_dot adds it) for t < NT, n < n_n. The sums run 4 tokens at a
 * time: in the group's order 4n + t, reduce16 leaves token t's 4 outputs in 128-bit lane t,
 * which is stored whole (the tails are +0.0f when tail is 0, as dot_tile adds them). */
static inline __attribute__((always_inline)) void store_sums(float *out, int64_t ldo,
                                                             const __m512 *acc, const int NT,
                                                             int n_n, const float *x, int64_t ldx,
                                                             const float *const *wt, int64_t tail) {
    _Static_assert(GEMM_N == 4, "a token's 4 outputs are one 128-bit lane");
    const __mmask8 keep = (__mmask8)((1u << n_n) - 1);
#pragma GCC unroll 2
    for (int t0 = 0; t0 < NT; t0 += 4) {
        __m512 grp[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            grp[i] = t0 + i % 4 < NT ? acc[(t0 + i % 4) * GEMM_N + i / 4] : _mm512_setzero_ps();
        float r[16];
        _mm512_storeu_ps(r, reduce16(grp));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            int t = t0 + j;
            if (t >= NT) break;
            /* the tails in registers (4 scalar stores read back as one vector stall the load) */
            const float *xt = x + t * ldx;
            __m128 tails = tail == 0 ? _mm_setzero_ps()
                                     : _mm_setr_ps(tail_dot(xt, wt[0], 0, tail),
                                                   tail_dot(xt, wt[1], 0, tail),
                                                   tail_dot(xt, wt[2], 0, tail),
                                                   tail_dot(xt, wt[3], 0, tail));
            _mm_mask_storeu_ps(out + t * ldo, keep, _mm_add_ps(_mm_loadu_ps(r + 4 * j), tails));
        }
    }
}

/* the weight rows' element types that tiles read (widened to fp32 in registers; as the AVX2
 * file's 2 x 4 tiles) */
enum wkind { W_F32, W_F16, W_BF16 };

static void f16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n);
static void bf16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n);

/* 16 weights of row p from column k, as fp32 */
static inline __attribute__((always_inline)) __m512 load_w16(const void *p, int64_t k,
                                                             enum wkind kind) {
    if (kind == W_F32) return _mm512_loadu_ps((const float *)p + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k));
    return kind == W_BF16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                          : _mm512_cvtph_ps(h);
}

/* out[t * ldo + n] for t < NT, n < n_n (<= GEMM_N) from the rows wr[0..GEMM_N-1] of element type
 * `kind` (missing rows repeat row 0; their results are not stored). NT and kind are constants
 * where it is inlined. pf (or NULL): GEMM_N fp32 rows pf_ld apart to prefetch into L1 in step
 * with the loads (gemm_avx512: the next tile's rows). */
static inline __attribute__((always_inline)) void tile(float *out, int64_t ldo, const float *x,
                                                       int64_t ldx, const void *const *wr,
                                                       int n_n, int64_t K, const int NT,
                                                       enum wkind kind, const float *pf,
                                                       int64_t pf_ld) {
    __m512  acc[GEMM_T * GEMM_N]; /* [t * GEMM_N + n] */
    int64_t k = 0;
#pragma GCC unroll 32
    for (int i = 0; i < NT * GEMM_N; i++) acc[i] = _mm512_setzero_ps();
    for (; k + 16 <= K; k += 16) {
        __m512 w[GEMM_N];
#pragma GCC unroll 8
        for (int n = 0; n < GEMM_N; n++) w[n] = load_w16(wr[n], k, kind);
        if (pf)
#pragma GCC unroll 8
            for (int n = 0; n < GEMM_N; n++)
                _mm_prefetch((const char *)(pf + n * pf_ld + k), _MM_HINT_T0);
#pragma GCC unroll 16
        for (int t = 0; t < NT; t++) {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + k);
            __asm__("" : "+v"(xv)); /* one load per x vector, not one per FMA (GCC folds them) */
#pragma GCC unroll 8
            for (int n = 0; n < GEMM_N; n++)
                acc[t * GEMM_N + n] = _mm512_fmadd_ps(xv, w[n], acc[t * GEMM_N + n]);
        }
    }
    float        wtail[GEMM_N][16]; /* f16 / bf16 rows: their last K % 16 weights, widened */
    const float *wt[GEMM_N];        /* the rows' tails (k..K) */
    for (int n = 0; n < GEMM_N; n++) {
        if (kind == W_F32) {
            wt[n] = (const float *)wr[n] + k;
            continue;
        }
        if (kind == W_BF16) bf16_to_f32_avx512(wtail[n], (const uint16_t *)wr[n] + k, K - k);
        else                f16_to_f32_avx512(wtail[n], (const uint16_t *)wr[n] + k, K - k);
        wt[n] = wtail[n];
    }
    store_sums(out, ldo, acc, NT, n_n, x + k, ldx, wt, K - k);
}

#define GEMM_TILE_FN(NT)                                                                           \
    static void gemm_tile_##NT(float *out, int64_t ldo, const float *x, int64_t ldx,              \
                               const void *const *wr, int n_n, int64_t K, const float *pf,        \
                               int64_t pf_ld) {                                                   \
        tile(out, ldo, x, ldx, wr, n_n, K, NT, W_F32, pf, pf_ld);                                  \
    }
GEMM_TILE_FN(1)
GEMM_TILE_FN(2)
GEMM_TILE_FN(3)
GEMM_TILE_FN(4)
GEMM_TILE_FN(5)
GEMM_TILE_FN(6)

typedef void (*gemm_tile_fn)(float *, int64_t, const float *, int64_t, const void *const *, int,
                             int64_t, const float *, int64_t);

static void gemm_avx512(float *out, int64_t ldo, const float *x, int64_t ldx, int64_t n_t,
                        const float *w, int64_t ldw, int64_t n_n, int64_t K) {
    static const gemm_tile_fn tiles[GEMM_T] = {gemm_tile_1, gemm_tile_2, gemm_tile_3,
                                               gemm_tile_4, gemm_tile_5, gemm_tile_6};
    /* The first token tile reads each weight row from DRAM (a model's weights are read once per
     * step; the later tiles find them in L2), and the hardware prefetchers did not run ahead of
     * 4 short row streams: it prefetches the next tile's rows while it computes this one.
     * Ice Lake, M = 64, weights from DRAM, 1 thread: 3072 x 576 100 -> 113 GFLOP/s, 49152 x 576
     * (an lm_head) 95 -> 101; no change where they came from L3. Only while the x tile and two
     * tiles of rows fit L1 (not K = 1536: 4 % slower there, with either hint). */
    const bool pf_fits = (GEMM_T + 2 * GEMM_N) * K * (int64_t)sizeof(float) <= 40 * 1024;
    for (int64_t t = 0; t < n_t; t += GEMM_T) {
        int nt = n_t - t < GEMM_T ? (int)(n_t - t) : GEMM_T;
        for (int64_t r = 0; r < n_n; r += GEMM_N) {
            int         nn = n_n - r < GEMM_N ? (int)(n_n - r) : GEMM_N;
            const void *wr[GEMM_N];
            for (int i = 0; i < GEMM_N; i++) wr[i] = w + (r + (i < nn ? i : 0)) * ldw;
            const float *pf =
                t == 0 && pf_fits && r + 2 * GEMM_N <= n_n ? w + (r + GEMM_N) * ldw : NULL;
            tiles[nt - 1](out + t * ldo + r, ldo, x + t * ldx, ldx, wr, nn, K, pf, ldw);
        }
    }
}

/* ---- f16 / bf16 weights widened in registers (dot_tile_h) ----------------------------------
 * Up to 4 tokens x 4 rows, as dot_tile: each output one 16-lane accumulator in k order, the sums
 * through reduce16, the tail over the widened values, so the bits are those of widening the
 * rows first (f16_to_f32 / bf16_to_f32) and running dot_tile. A decode step then reads the
 * file's 2 bytes per weight once instead of writing and re-reading 4-byte scratch rows. */
#define TILE_H_FN(NT)                                                                              \
    static void tile_h_##NT(float *out, int64_t ldo, const float *x, int64_t ldx,                 \
                            const void *const *wr, int n_n, int64_t K, bool bf16) {                \
        if (bf16) tile(out, ldo, x, ldx, wr, n_n, K, NT, W_BF16, NULL, 0);                         \
        else      tile(out, ldo, x, ldx, wr, n_n, K, NT, W_F16, NULL, 0);                          \
    }
TILE_H_FN(1)
TILE_H_FN(2)
TILE_H_FN(3)
TILE_H_FN(4)

static void dot_tile_h_avx512(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                              const uint16_t *w, int64_t ldw, int n_n, int64_t K, bool bf16) {
    /* missing weight rows repeat row 0; their results are not stored */
    const void *wr[GEMM_N];
    for (int i = 0; i < GEMM_N; i++) wr[i] = w + (i < n_n ? i : 0) * ldw;
    switch (n_t) {
    case 1: tile_h_1(out, ldo, x, ldx, wr, n_n, K, bf16); break;
    case 2: tile_h_2(out, ldo, x, ldx, wr, n_n, K, bf16); break;
    case 3: tile_h_3(out, ldo, x, ldx, wr, n_n, K, bf16); break;
    default: tile_h_4(out, ldo, x, ldx, wr, n_n, K, bf16); break;
    }
}

static void f16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

static void bf16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        __builtin_memcpy(dst + i, &u, 4);
    }
}

static void axpy_avx512(float *y, float a, const float *x, int64_t n) {
    __m512  av = _mm512_set1_ps(a);
    int64_t i  = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

llmrt_cpu_kernels llmrt_cpu_kernels_avx512(void) {
    return (llmrt_cpu_kernels){
        .isa         = "avx512",
        .dot_tile    = dot_tile_avx512,
        .tile_rows   = 4,
        .gemm        = gemm_avx512,
        .dot_tile_h  = dot_tile_h_avx512,
        .f16_to_f32  = f16_to_f32_avx512,
        .bf16_to_f32 = bf16_to_f32_avx512,
        .dot         = dot_avx512,
        .axpy        = axpy_avx512,
    };
}
