/* The CPU backend's int8 matmul (LLMRT_CPU_MATMUL_INT8, backend.h): 4-bit, Q8_0 and Q8_Z weights
 * times activations quantised to int8, integer dot products on AVX512-VNNI (vpdpbusd) or AVX2
 * (vpmaddubsw + vpmaddwd).
 *
 * Weights are repacked at load into 16-row panels (one zmm lane, or one lane of a pair of ymm,
 * per weight row, so a broadcast 4-byte group of a token's activations meets 16 rows at once and
 * no horizontal sums are needed). A panel holds its K / 32 blocks' weight bytes, then their
 * scales (two sequential streams, each 64-byte aligned):
 *   u        per block b, the weights as unsigned bytes, in 8 quads of 4 columns: byte 4r + i of
 *            quad j is column 32b + 4j + i of panel row r (the vpdpbusd operand order). 4-bit
 *            weights keep two quads per byte (quad 2jj in the low nibbles, 2jj + 1 in the
 *            high): 256 bytes; Q8_0 weights are stored as q + 128, Q8_Z (GPTQ 8-bit) weights
 *            as their q: 512 bytes;
 *   scales   per block b: 4-bit: sc[16], off[16] fp32 (128 bytes), or (f16_pairs, for kernels
 *            that read them: the AVX2 and portable ones) sc[16], off[16] as fp16 (64 bytes) when
 *            every sc and off of the weight is an fp16 value (GGUF Q4_1's d and m, Q4_0's d and
 *            -8d), so a decode step reads the file's 0.625 bytes per weight, not 0.75; Q8_0: sc[16] as the file's
 *            fp16 d (32 bytes), off = -128 * sc implied (exact in fp32: a power-of-two multiple),
 *            so a Q8_0 panel is 544 bytes per 512 weights, the file's 34 per 32: a decode step
 *            reads no more bytes than the file holds (the panels replace nothing: embed() still
 *            reads the file's rows, a few per step); Q8_Z: sc[16], off[16] fp32 as 4-bit;
 * so that w[r][k] = sc[r] * u[r][k] + off[r] for every source: GGUF Q4_1 (w = d*q + m: off = m),
 * zero-point 4-bit (GPTQ, Q4_0: w = s*(q - z): off = -s*z), Q8_0 (w = d*q: off = -128*d), Q8_Z
 * (w = d*(q - z): off = -d*z, exact in fp32: 11 x 8 significant bits).
 *
 * Activations of a token are quantised per 32-column block like llama.cpp's q8_0 activations:
 * d = max|x| / 127, q = round-to-nearest-even(x / d) (x * (1/d) in fp32), and s = d * sum(q).
 * Then sum_k w_k x_k ~= sum_b [ (sc * d_b) * dot_b(u, q) + off * s_b ], evaluated per block as
 *   acc = fma((float)dot_b, sc * d_b, acc); acc = fma(off, s_b, acc)
 * in block order. Integer dot products are exact, so every ISA variant gives the same bits, and
 * a token's result depends on no other token of the batch (it differs from the fp32 path: the
 * error is that of int8-rounding the activations, ~2^-8 relative per element). */
#ifndef LLMRT_BACKEND_CPU_I8_GEMM_H
#define LLMRT_BACKEND_CPU_I8_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "../../core/error.h"
#include "q4_kernels.h"

#define LLMRT_CPU_I8_PANEL 16 /* weight rows per panel: the fp32 lanes of a zmm */

typedef struct llmrt_cpu_i8w {
    int64_t  rows;        /* N */
    int64_t  cols;        /* K, a multiple of 32 */
    bool     nibbles;     /* 4-bit source: two quads per byte; else bytes (Q8_0, Q8_Z) */
    bool     f32_meta;    /* fp32 sc, off per block (4-bit, Q8_Z) */
    bool     f16_pairs;   /* fp16 sc, off per block (4-bit); neither: Q8_0's fp16 d */
    int64_t  u_bytes;     /* bytes of one 32-column block's u: 256 (4-bit) or 512 (Q8_0) */
    int64_t  meta_bytes;  /* bytes of one block's scales: 128 (f32_meta) or 32 (Q8_0) */
    int64_t  meta_at;     /* offset of the scales in a panel: K / 32 * u_bytes */
    int64_t  panel_bytes; /* u and scales of the K / 32 blocks, rounded up to 64 */
    uint8_t *data;        /* [ceil(N / 16)] panels; rows past N are zero */
} llmrt_cpu_i8w;

/* Activations of M tokens quantised per 32-column block. */
typedef struct llmrt_cpu_xq {
    int8_t *q;  /* [M, K] */
    float  *d;  /* [M, K / 32] block scales */
    float  *s;  /* [M, K / 32] d * sum of the block's q */
    int64_t K;
} llmrt_cpu_xq;

/* Repacks at load (the returned weight owns its memory; free with llmrt_cpu_i8w_free). */
/* f16_ok: the kernels that will read the panels take f16_pairs (llmrt_cpu_i8_kernels) */
llmrt_status llmrt_cpu_i8w_from_q4(const llmrt_cpu_q4 *w, bool f16_ok, llmrt_cpu_i8w *out,
                                   llmrt_error *err);
/* rows [N, K / 32 * 34 bytes] of GGUF Q8_0 blocks (fp16 d, 32 int8) */
llmrt_status llmrt_cpu_i8w_from_q8_0(const uint8_t *rows, int64_t N, int64_t K, llmrt_cpu_i8w *out,
                                     llmrt_error *err);
/* rows [N, K / 32 * 36 bytes] of Q8_Z blocks (fp16 d, u8 z, u8 0, 32 u8 q; format/dtype.h) */
llmrt_status llmrt_cpu_i8w_from_q8_z(const uint8_t *rows, int64_t N, int64_t K, llmrt_cpu_i8w *out,
                                     llmrt_error *err);
void llmrt_cpu_i8w_free(llmrt_cpu_i8w *w);

typedef struct llmrt_cpu_i8_kernels {
    const char *isa;       /* NULL: none on this CPU */
    bool        f16_pairs; /* reads 4-bit panels with fp16 scales and offsets (the AVX-512
                            * kernel does not: its panels keep fp32 ones) */
    /* x [M, ldx] (its first xq->K columns) -> xq rows 0..M-1 */
    void (*quantize)(llmrt_cpu_xq *xq, const float *x, int64_t ldx, int64_t M);
    /* out [M, ldo] (columns 0 .. n_rows - 1) = xq [M, K] · W[n0 .. n0 + n_rows)ᵀ: out[t * ldo + r]
     * is panel row n0 + r of W times token t, n0 a multiple of 16, rows within W's panels. */
    void (*gemm)(float *out, int64_t ldo, const llmrt_cpu_xq *xq, int64_t M,
                 const llmrt_cpu_i8w *w, int64_t n0, int n_rows);
} llmrt_cpu_i8_kernels;

/* The kernels for a kernel set's isa, all giving the same bits: "avx512" on a CPU with
 * AVX512-VNNI; "avx2", and "avx512" without VNNI, the AVX2 ones (on a CPU with AVX2 and FMA);
 * "generic" the portable C. Anything else gets isa == NULL (the backend then keeps the fp32
 * path). */
llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_for(const char *isa);
llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_generic(void);
llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_avx2(void);
llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_avx512(void);

#endif
