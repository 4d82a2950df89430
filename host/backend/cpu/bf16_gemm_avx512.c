/* AVX512-BF16 matmul over 32-row panels (bf16_gemm.h; compiled with -mavx512bf16, chosen only
 * when the CPU has it). Register tile: MR tokens x 32 rows = 2 * MR zmm accumulators (MR <= 14,
 * so 28 accumulators + the 2 weight vectors of a pair fit the 32 registers); per pair of k
 * columns it loads 2 weight vectors and broadcasts each token's pair from memory (an embedded
 * {1to16} broadcast), 2 * MR vdpbf16ps: no horizontal sums, ~0.57 loads per vdpbf16ps. */
#include <immintrin.h>
#include <string.h>

#include "bf16_gemm.h"

#define P LLMRT_CPU_BF16_PANEL

static void to_bf16_avx512(uint16_t *xb, const float *x, int64_t M, int64_t K, int64_t kp) {
    for (int64_t t = 0; t < M; t++) {
        const float *src = x + t * K;
        uint16_t *dst = xb + t * kp;
        int64_t i = 0;
        for (; i + 32 <= K; i += 32) {
            __m512bh v =
                _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
            _mm512_storeu_si512(dst + i, (__m512i)v);
        }
        for (; i < K; i += 16) {
            __mmask16 m = K - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - i)) - 1);
            __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
            _mm256_mask_storeu_epi16(dst + i, m, (__m256i)v);
        }
        if (kp > K) dst[K] = 0; /* meets the zero column of the panels */
    }
}

/* one token's pair q as a broadcast (memcpy: the pair is 4-byte aligned only when kp is) */
static inline __m512bh pair_of(const uint16_t *x) {
    int32_t v;
    memcpy(&v, x, 4);
    return (__m512bh)_mm512_set1_epi32(v);
}

/* out[t * ldo + r] for t < MR, r < n (<= 32) from one panel (npair pairs) and MR token rows */
#define TILE(MR)                                                                                   \
    static void tile_##MR(float *out, int64_t ldo, const uint16_t *x, int64_t kp,                  \
                          const uint16_t *panel, int64_t npair, int n) {                           \
        __m512 acc[MR][2];                                                                         \
        _Pragma("GCC unroll 16") for (int t = 0; t < MR; t++) acc[t][0] = acc[t][1] =              \
            _mm512_setzero_ps();                                                                   \
        for (int64_t q = 0; q < npair; q++) {                                                      \
            __m512bh w0 = (__m512bh)_mm512_load_si512(panel + q * 2 * P);                          \
            __m512bh w1 = (__m512bh)_mm512_load_si512(panel + q * 2 * P + 32);                     \
            _Pragma("GCC unroll 16") for (int t = 0; t < MR; t++) {                                \
                __m512bh xv = pair_of(x + t * kp + 2 * q);                                         \
                acc[t][0] = _mm512_dpbf16_ps(acc[t][0], xv, w0);                                   \
                acc[t][1] = _mm512_dpbf16_ps(acc[t][1], xv, w1);                                   \
            }                                                                                      \
        }                                                                                          \
        if (n == P) {                                                                              \
            _Pragma("GCC unroll 16") for (int t = 0; t < MR; t++) {                                \
                _mm512_storeu_ps(out + t * ldo, acc[t][0]);                                        \
                _mm512_storeu_ps(out + t * ldo + 16, acc[t][1]);                                   \
            }                                                                                      \
        } else {                                                                                   \
            __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);               \
            __mmask16 m1 = n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);                        \
            _Pragma("GCC unroll 16") for (int t = 0; t < MR; t++) {                                \
                _mm512_mask_storeu_ps(out + t * ldo, m0, acc[t][0]);                               \
                _mm512_mask_storeu_ps(out + t * ldo + 16, m1, acc[t][1]);                          \
            }                                                                                      \
        }                                                                                          \
    }

TILE(1)
TILE(2)
TILE(3)
TILE(4)
TILE(5)
TILE(6)
TILE(7)
TILE(8)
TILE(9)
TILE(10)
TILE(11)
TILE(12)
TILE(13)
TILE(14)

typedef void (*tile_fn)(float *, int64_t, const uint16_t *, int64_t, const uint16_t *, int64_t,
                        int);
static const tile_fn tiles[LLMRT_CPU_BF16_MR + 1] = {NULL,    tile_1,  tile_2,  tile_3,  tile_4,
                                                     tile_5,  tile_6,  tile_7,  tile_8,  tile_9,
                                                     tile_10, tile_11, tile_12, tile_13, tile_14};

/* Tokens in blocks that stay in L1/L2 while the task's panels pass over them; within a block,
 * tiles of (nearly) equal height, so a block of 32 runs 3 tiles of 11/11/10 tokens, not 2 x 14 +
 * 4. 32 beat 64 in 18 of 18 paired runs of SmolLM2's shapes (M 64/128/512, 2 threads, Zen 4:
 * +1-4 %, bench/results/cpu_bf16_tokens_block.txt); 256 lost 5-10 % at M = 512. */
#define TOKENS_BLOCK 32

static void gemm_avx512(float *out, int64_t ldo, const uint16_t *xb, int64_t M,
                        const llmrt_cpu_bf16w *w, int64_t n0, int n_rows) {
    int64_t kp = w->kp, npair = kp / 2;
    for (int64_t t0 = 0; t0 < M; t0 += TOKENS_BLOCK) {
        int64_t mb = M - t0 < TOKENS_BLOCK ? M - t0 : TOKENS_BLOCK;
        int64_t n_tiles = (mb + LLMRT_CPU_BF16_MR - 1) / LLMRT_CPU_BF16_MR;
        for (int r = 0; r < n_rows; r += P) {
            const uint16_t *panel = w->data + ((n0 + r) / P) * npair * 2 * P;
            int n = n_rows - r < P ? n_rows - r : P;
            for (int64_t i = 0, t = t0; i < n_tiles; i++) {
                /* tile i gets its share of the tokens left: heights differ by at most 1 */
                int64_t mr = (t0 + mb - t) / (n_tiles - i);
                tiles[mr](out + t * ldo + r, ldo, xb + t * kp, kp, panel, npair, n);
                t += mr;
            }
        }
    }
}

llmrt_cpu_bf16_kernels llmrt_cpu_bf16_kernels_avx512(void) {
    return (llmrt_cpu_bf16_kernels){
        .isa = "avx512", .to_bf16 = to_bf16_avx512, .gemm = gemm_avx512};
}
