/* AVX-512 4-bit kernels (compiled with -mavx512f/bw/vl/dq -mfma -mf16c).
 *
 * Dequantisation by table lookup: per (row, group) the 16 possible weights s*(q-z) (or s*q+m)
 * are computed once into one zmm register, and vpermps, which reads only the low 4 bits of each
 * dword index, picks the weights; the table holds exactly the reference values. Per 16 weights
 * and row that is one index op, one vpermps and one fma, the least this scheme needs: an index
 * vector holds 16 nibbles of 4 bits spread over 16 dwords, which takes one data-moving op.
 *
 * Indices, two ways (the layout's byte order, q4_kernels.h):
 * - with AVX512_VBMI (Ice Lake, Zen 4 and later; gemv only): the tile's 64-byte block (4 rows x
 *   16 bytes) is loaded once, and per row one vpermb puts byte 4p + L of the row into every byte
 *   of dword 4L + p (its low nibble: column 4L + p); an immediate shift by 4 gives the high
 *   nibbles (column 16 + 4L + p). Per 32 weights and row: two ops.
 * - otherwise: a row block's 16 bytes are broadcast to the four 128-bit lanes and shifted right
 *   per dword by 8L (+4). Per 32 weights and row: one broadcast load and two shifts.
 * Why the first is faster on Zen 4 (gemv over an L2-resident SmolLM2-shaped Q4_1 matrix, 1
 * thread: 19.7 -> 21.9 G weights/s): Zen 4 runs a zmm op on a pair of its four 256-bit FP pipes,
 * and the kernel is bound by the two that take both the shuffles and shifts and (one of them) the
 * multiplies and fmas; the 128-bit broadcast loads take slots there too, and vpermb replaces a
 * broadcast and a variable shift by one shuffle. Tried and dropped: the magic-number conversion
 * (float(0x4B000000 | q) - 2^23, then the scale) is five ops per 16 weights instead of three and
 * took twice the time in a port micro-benchmark; the FLOAT table as one fma (exact, since s*q is
 * exact in fp32) needs m broadcast into a register, 3% slower than the mul + add with embedded
 * broadcasts; a GFNI affine for the high nibbles was no faster than the shift; straight-line
 * code for group 32 gained under 2%. Group scales are broadcast from memory (embedded
 * broadcasts), not by shuffles.
 *
 * gemv mirrors the fp32 dot_tile of cpu_kernels_avx512.c: one 16-lane accumulator per output,
 * updated with _mm512_fmadd_ps(x, w, acc) for k = 0, 16, 32, ... and reduced with
 * _mm512_reduce_add_ps (+ the empty tail), so it is bit-identical to dequant_rows + dot_tile. */
#include <immintrin.h>

#include "q4_kernels.h"

/* Keeps GCC from contracting s*q + m into one fma: the reference rounds twice. */
static inline __m512 opaque(__m512 v) {
    __asm__("" : "+v"(v));
    return v;
}

static inline __m512 make_table(int zint, float s, float z, __m512 iota) {
    if (zint) return _mm512_mul_ps(_mm512_sub_ps(iota, _mm512_set1_ps(z)), _mm512_set1_ps(s));
    return _mm512_add_ps(opaque(_mm512_mul_ps(iota, _mm512_set1_ps(s))), _mm512_set1_ps(z));
}

static inline __m512 iota16(void) {
    return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/* The 8 fp16 of a group header (scales of rows 0..3, zero terms of rows 0..3) as fp32 in
 * memory: the asm keeps GCC from forwarding the store into register shuffles, so the tables'
 * set1 become broadcasts from memory. */
static inline void group_header(float dst[8], const uint8_t *grp) {
    _mm256_storeu_ps(dst, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)grp)));
    __asm__("" : "+m"(*(float(*)[8])dst));
}

/* The nibbles of a 16-byte row block as two dword index vectors (low 4 bits per lane):
 * columns 0..15 and 16..31. */
static inline void block_indices(__m512i *lo, __m512i *hi, const uint8_t *blk) {
    const __m512i sh_lo = _mm512_setr_epi32(0, 0, 0, 0, 8, 8, 8, 8, 16, 16, 16, 16, 24, 24, 24, 24);
    const __m512i sh_hi =
        _mm512_setr_epi32(4, 4, 4, 4, 12, 12, 12, 12, 20, 20, 20, 20, 28, 28, 28, 28);
    __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)blk));
    *lo = _mm512_srlv_epi32(b, sh_lo);
    *hi = _mm512_srlv_epi32(b, sh_hi);
}

/* The bytes vpermb gathers for row 0 of a tile block: byte 4p + L into every byte of dword
 * 4L + p (row r: + 16r). */
/* clang-format off */
static const uint8_t vbmi_sel0[64] __attribute__((aligned(64))) = {
    0, 0, 0, 0, 4, 4, 4, 4,  8,  8,  8,  8, 12, 12, 12, 12,
    1, 1, 1, 1, 5, 5, 5, 5,  9,  9,  9,  9, 13, 13, 13, 13,
    2, 2, 2, 2, 6, 6, 6, 6, 10, 10, 10, 10, 14, 14, 14, 14,
    3, 3, 3, 3, 7, 7, 7, 7, 11, 11, 11, 11, 15, 15, 15, 15};
/* clang-format on */

/* vpermb (AVX512_VBMI) as inline asm: this file is compiled without -mavx512vbmi, and only the
 * VBMI gemv variants, chosen at run time, reach it. out byte i = all[sel[i] % 64]. */
static inline __m512i vpermb(__m512i sel, __m512i all) {
    __m512i out;
    __asm__("vpermb %2, %1, %0" : "=v"(out) : "v"(sel), "v"(all));
    return out;
}

static void dequant_rows_avx512(float *out, const llmrt_cpu_q4 *w, int64_t n0, int n_rows) {
    int64_t K = w->cols, G = w->n_groups, bpg = w->group_size / LLMRT_CPU_Q4_BLOCK;
    int zint = w->zero_kind == LLMRT_Q4_ZERO_INT;
    const __m512 iota = iota16();
    for (int r = 0; r < n_rows; r++) {
        int64_t n = n0 + r;
        int slot = (int)(n % 4);
        const uint8_t *tile = w->data + (n / 4) * w->tile_bytes;
        float *o = out + (int64_t)r * K;
        for (int64_t g = 0; g < G; g++) {
            const uint8_t *grp = tile + g * w->group_bytes;
            float hdr[8];
            group_header(hdr, grp);
            __m512 tab = make_table(zint, hdr[slot], hdr[4 + slot], iota);
            for (int64_t b = 0; b < bpg; b++, o += 32) {
                __m512i lo, hi;
                block_indices(&lo, &hi, grp + 16 + 64 * b + 16 * slot);
                _mm512_storeu_ps(o, _mm512_permutexvar_ps(lo, tab));
                _mm512_storeu_ps(o + 16, _mm512_permutexvar_ps(hi, tab));
            }
        }
    }
}

/* NT tokens x one tile of 4 rows, accumulators in registers (NT, ZINT and VBMI are constants
 * after inlining). The tile is read front to back. */
static inline __attribute__((always_inline)) void
gemv_tile(float *out, int64_t ldo, const float *x, int64_t ldx, const int NT, const int ZINT,
          const int VBMI, const llmrt_cpu_q4 *w, int64_t n0, int n_n) {
    int64_t G = w->n_groups, bpg = w->group_size / LLMRT_CPU_Q4_BLOCK;
    const uint8_t *grp = w->data + (n0 / 4) * w->tile_bytes;
    const __m512 iota = iota16();
    __m512i sel[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        sel[r] = _mm512_add_epi8(_mm512_load_si512(vbmi_sel0), _mm512_set1_epi8((char)(16 * r)));
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[t][r] = _mm512_setzero_ps();
    const float *xk = x;
    for (int64_t g = 0; g < G; g++, grp += w->group_bytes) {
        /* software prefetch two tiles ahead (the next calls' rows), in step with this tile */
        for (int64_t o = 0; o < w->group_bytes; o += 64)
            _mm_prefetch((const char *)grp + 2 * w->tile_bytes + o, _MM_HINT_T0);
        float hdr[8];
        group_header(hdr, grp);
        __m512 tab[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            tab[r] = make_table(ZINT, hdr[r], hdr[4 + r], iota);
        const uint8_t *blk = grp + 16;
        for (int64_t b = 0; b < bpg; b++, blk += 64, xk += 32) {
            __m512 wl[4], wh[4];
            __m512i all = _mm512_loadu_si512(blk); /* VBMI: the 4 rows' blocks in one load */
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512i lo, hi;
                if (VBMI) {
                    lo = vpermb(sel[r], all);
                    hi = _mm512_srli_epi32(lo, 4);
                } else {
                    block_indices(&lo, &hi, blk + 16 * r);
                }
                wl[r] = _mm512_permutexvar_ps(lo, tab[r]);
                wh[r] = _mm512_permutexvar_ps(hi, tab[r]);
            }
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m512 xv = _mm512_loadu_ps(xk + t * ldx);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++)
                    acc[t][r] = _mm512_fmadd_ps(xv, wl[r], acc[t][r]);
                xv = _mm512_loadu_ps(xk + t * ldx + 16);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++)
                    acc[t][r] = _mm512_fmadd_ps(xv, wh[r], acc[t][r]);
            }
        }
    }
    /* "+ 0.0f" is dot_tile's empty scalar tail (K % 16 == 0): kept for bit-identical -0.0 */
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[t * ldo + r] = _mm512_reduce_add_ps(acc[t][r]) + 0.0f;
}

#define GEMV_VARIANT(NT, ZINT, VBMI)                                                               \
    static void gemv_##NT##_##ZINT##_##VBMI(float *out, int64_t ldo, const float *x, int64_t ldx,  \
                                            const llmrt_cpu_q4 *w, int64_t n0, int n_n) {          \
        gemv_tile(out, ldo, x, ldx, NT, ZINT, VBMI, w, n0, n_n);                                   \
    }
GEMV_VARIANT(1, 0, 0)
GEMV_VARIANT(2, 0, 0)
GEMV_VARIANT(3, 0, 0)
GEMV_VARIANT(4, 0, 0)
GEMV_VARIANT(1, 1, 0)
GEMV_VARIANT(2, 1, 0)
GEMV_VARIANT(3, 1, 0)
GEMV_VARIANT(4, 1, 0)
GEMV_VARIANT(1, 0, 1)
GEMV_VARIANT(2, 0, 1)
GEMV_VARIANT(3, 0, 1)
GEMV_VARIANT(4, 0, 1)
GEMV_VARIANT(1, 1, 1)
GEMV_VARIANT(2, 1, 1)
GEMV_VARIANT(3, 1, 1)
GEMV_VARIANT(4, 1, 1)

typedef void (*gemv_fn)(float *, int64_t, const float *, int64_t, const llmrt_cpu_q4 *, int64_t,
                        int);
/* [vbmi][zint][n_t - 1] */
static const gemv_fn gemv_variants[2][2][4] = {{{gemv_1_0_0, gemv_2_0_0, gemv_3_0_0, gemv_4_0_0},
                                                {gemv_1_1_0, gemv_2_1_0, gemv_3_1_0, gemv_4_1_0}},
                                               {{gemv_1_0_1, gemv_2_0_1, gemv_3_0_1, gemv_4_0_1},
                                                {gemv_1_1_1, gemv_2_1_1, gemv_3_1_1, gemv_4_1_1}}};

static void gemv_avx512(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                        const llmrt_cpu_q4 *w, int64_t n0, int n_n) {
    int zint = w->zero_kind == LLMRT_Q4_ZERO_INT;
    gemv_variants[0][zint][n_t - 1](out, ldo, x, ldx, w, n0, n_n);
}

static void gemv_avx512_vbmi(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                             const llmrt_cpu_q4 *w, int64_t n0, int n_n) {
    int zint = w->zero_kind == LLMRT_Q4_ZERO_INT;
    gemv_variants[1][zint][n_t - 1](out, ldo, x, ldx, w, n0, n_n);
}

/* --------------------------------------------------------------------------------------------- */
/* Q8_0: w = d * (float)q                                                                        */
/* --------------------------------------------------------------------------------------------- */

static inline void q8_block(__m512 *w0, __m512 *w1, const uint8_t *blk) {
    uint16_t d16;
    __builtin_memcpy(&d16, blk, 2);
    __m512 d = _mm512_set1_ps(_cvtsh_ss(d16));
    *w0 = _mm512_mul_ps(
        d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)))));
    *w1 = _mm512_mul_ps(
        d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18)))));
}

static void q8_dequant_row_avx512(float *out, const uint8_t *row, int64_t K) {
    for (int64_t b = 0; b < K / 32; b++, row += 34, out += 32) {
        __m512 w0, w1;
        q8_block(&w0, &w1, row);
        _mm512_storeu_ps(out, w0);
        _mm512_storeu_ps(out + 16, w1);
    }
}

static inline __attribute__((always_inline)) void
q8_gemv_tile(float *out, int64_t ldo, const float *x, int64_t ldx, const int NT, const uint8_t *w,
             int64_t row_bytes, int n_n, int64_t K) {
    const uint8_t *wr[4];
    for (int r = 0; r < 4; r++)
        wr[r] = w + (r < n_n ? r : 0) * row_bytes;
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[t][r] = _mm512_setzero_ps();
    /* the rows are one contiguous region of 4 * row_bytes; the hardware prefetcher does not
     * follow 4 interleaved short streams, so the region two tiles ahead is prefetched in step */
    int64_t nb = K / 32, pf_step = (4 * row_bytes + nb - 1) / nb;
    const uint8_t *pf = w + 8 * row_bytes;
    for (int64_t b = 0; b < nb; b++, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64)
            _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
        __m512 w0[4], w1[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            q8_block(&w0[r], &w1[r], wr[r] + 34 * b);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + 32 * b);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                acc[t][r] = _mm512_fmadd_ps(xv, w0[r], acc[t][r]);
            xv = _mm512_loadu_ps(x + t * ldx + 32 * b + 16);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                acc[t][r] = _mm512_fmadd_ps(xv, w1[r], acc[t][r]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[t * ldo + r] = _mm512_reduce_add_ps(acc[t][r]) + 0.0f;
}

#define Q8_VARIANT(NT)                                                                             \
    static void q8_gemv_##NT(float *out, int64_t ldo, const float *x, int64_t ldx,                 \
                             const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {            \
        q8_gemv_tile(out, ldo, x, ldx, NT, w, row_bytes, n_n, K);                                  \
    }
Q8_VARIANT(1)
Q8_VARIANT(2)
Q8_VARIANT(3)
Q8_VARIANT(4)

static void q8_gemv_avx512(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                           const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    switch (n_t) {
    case 1:
        q8_gemv_1(out, ldo, x, ldx, w, row_bytes, n_n, K);
        break;
    case 2:
        q8_gemv_2(out, ldo, x, ldx, w, row_bytes, n_n, K);
        break;
    case 3:
        q8_gemv_3(out, ldo, x, ldx, w, row_bytes, n_n, K);
        break;
    default:
        q8_gemv_4(out, ldo, x, ldx, w, row_bytes, n_n, K);
        break;
    }
}

llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_avx512(void) {
    return (llmrt_cpu_q4_kernels){
        .isa = "avx512",
        .q8_dequant_row = q8_dequant_row_avx512,
        .gemv_rows = LLMRT_CPU_Q4_GEMV_N,
        .q8_gemv = q8_gemv_avx512,
        .dequant_rows = dequant_rows_avx512,
        .gemv = __builtin_cpu_supports("avx512vbmi") ? gemv_avx512_vbmi : gemv_avx512,
    };
}
