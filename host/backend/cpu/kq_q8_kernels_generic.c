/* Portable K-quant x q8_K kernels (kq_q8_kernels.h): the integer sums of one block in plain C,
 * the block accumulation in fmaf (correctly rounded, so the same bits as the SIMD variants'
 * fused multiply-adds); and the run-time choice of variant. */
#include <math.h>
#include <string.h>

#include "../../core/half.h"
#include "../../format/ggml_quants.h"
#include "i8_gemm.h"
#include "kq_q8_kernels.h"

bool llmrt_cpu_kq8_takes(llmrt_dtype t) {
    return t == LLMRT_DTYPE_Q4_K || t == LLMRT_DTYPE_Q5_K || t == LLMRT_DTYPE_Q6_K;
}

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return llmrt_f16_to_f32(h);
}

static void quantize_generic(llmrt_cpu_xq8k *xq, const float *x, int64_t ldx, int64_t M) {
    int64_t K = xq->K;
    for (int64_t t = 0; t < M; t++)
        llmrt_ggml_quantize_q8_K(x + t * ldx, K, xq->q + t * K, xq->d + t * (K / 256),
                                 xq->bsums + t * (K / 16));
}

/* S_b and M_b (kq_q8_kernels.h) of one Q4_K / Q5_K block against 256 activations */
static void q45k_sums(const uint8_t *b, const int8_t *q, const int16_t *bs, int five, int32_t *S,
                      int32_t *M) {
    const uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    int32_t s_sum = 0, m_sum = 0;
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        llmrt_ggml_k4_scale_min(s, b + 4, &sc, &m);
        int32_t dot = 0;
        for (int l = 0; l < 32; l++) {
            int byte = qs[32 * (s / 2) + l];
            int w = s % 2 ? byte >> 4 : byte & 0x0f;
            if (five) w |= ((qh[l] >> s) & 1) << 4;
            dot += w * q[32 * s + l];
        }
        s_sum += sc * dot;
        m_sum += m * (bs[2 * s] + bs[2 * s + 1]);
    }
    *S = s_sum;
    *M = m_sum;
}

/* S_b of one Q6_K block (element v = 128h + 32c + l, ggml_quants.h) */
static int32_t q6k_sum(const uint8_t *b, const int8_t *q, const int16_t *bs) {
    const int8_t *sc = (const int8_t *)(b + 192);
    int32_t dot[16] = {0};
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 4; c++) {
            const uint8_t *ql = b + 64 * h + 32 * (c & 1), *qh = b + 128 + 32 * h;
            for (int l = 0; l < 32; l++) {
                int lo = c < 2 ? ql[l] & 0x0f : ql[l] >> 4;
                int w = lo | ((qh[l] >> (2 * c)) & 3) << 4; /* unsigned: the -32 via bsums */
                int v = 128 * h + 32 * c + l;
                dot[v / 16] += w * q[v];
            }
        }
    int32_t s_sum = 0;
    for (int j = 0; j < 16; j++)
        s_sum += sc[j] * (dot[j] - 32 * bs[j]);
    return s_sum;
}

static void gemm_generic(llmrt_dtype type, float *out, int64_t ldo, const llmrt_cpu_xq8k *xq,
                         int64_t M, const uint8_t *w, int64_t row_bytes, int n_rows) {
    int64_t nb = xq->K / 256, bb = llmrt_dtype_block_bytes(type);
    for (int64_t t = 0; t < M; t++) {
        const int8_t *q = xq->q + t * xq->K;
        const float *dx = xq->d + t * nb;
        const int16_t *bs = xq->bsums + t * (xq->K / 16);
        for (int r = 0; r < n_rows; r++) {
            const uint8_t *row = w + r * row_bytes;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = row + b * bb;
                int32_t S, Mn = 0;
                float d, dmin = 0.0f;
                if (type == LLMRT_DTYPE_Q6_K) {
                    S = q6k_sum(blk, q + 256 * b, bs + 16 * b);
                    d = f16_at(blk + 208);
                } else {
                    q45k_sums(blk, q + 256 * b, bs + 16 * b, type == LLMRT_DTYPE_Q5_K, &S, &Mn);
                    d = f16_at(blk);
                    dmin = f16_at(blk + 2);
                }
                acc = fmaf((float)S, d * dx[b], acc);
                if (type != LLMRT_DTYPE_Q6_K) acc = fmaf((float)-Mn, dmin * dx[b], acc);
            }
            out[t * ldo + r] = acc;
        }
    }
}

static void q5_gemm_generic(llmrt_dtype type, float *out, int64_t ldo, const llmrt_cpu_xq *xq,
                            int64_t M, const uint8_t *w, int64_t row_bytes, int n_rows) {
    int64_t nb = xq->K / 32;
    int has_min = type == LLMRT_DTYPE_Q5_1, bb = has_min ? 24 : 22;
    for (int64_t t = 0; t < M; t++)
        for (int r = 0; r < n_rows; r++) {
            float L[2][8] = {{0}}, O[2] = {0.0f, 0.0f}; /* [block parity] */
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = w + r * row_bytes + b * bb, *qs = blk + (has_min ? 8 : 6);
                const int8_t *q = xq->q + t * xq->K + 32 * b;
                uint32_t qh;
                memcpy(&qh, blk + (has_min ? 4 : 2), 4);
                float d = f16_at(blk), sd = d * xq->d[t * nb + b];
                float off = has_min ? f16_at(blk + 2) : -16.0f * d;
                for (int l = 0; l < 8; l++) {
                    int32_t dp = 0;
                    for (int i = 0; i < 4; i++) {
                        int j = 4 * l + i;
                        int u = (j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4) | (int)((qh >> j) & 1)
                                                                                << 4;
                        dp += u * q[j];
                    }
                    L[b & 1][l] = fmaf((float)dp, sd, L[b & 1][l]);
                }
                O[b & 1] = fmaf(off, xq->s[t * nb + b], O[b & 1]);
            }
            float m[8];
            for (int l = 0; l < 8; l++)
                m[l] = L[0][l] + L[1][l];
            float lo = (m[0] + m[4]) + (m[2] + m[6]), hi = (m[1] + m[5]) + (m[3] + m[7]);
            out[t * ldo + r] = (lo + hi) + (O[0] + O[1]);
        }
}

llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_generic(void) {
    return (llmrt_cpu_kq8_kernels){.isa = "generic",
                                   .quantize = quantize_generic,
                                   .gemm = gemm_generic,
                                   .q5_gemm = q5_gemm_generic};
}

/* Baseline code: it runs before anything knows what the CPU has. */
llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_for(const char *isa) {
    __builtin_cpu_init();
    int avx512 = isa && strcmp(isa, "avx512") == 0, avx2 = isa && strcmp(isa, "avx2") == 0;
    if (avx512 && __builtin_cpu_supports("avx512vnni")) return llmrt_cpu_kq8_kernels_avx512();
    /* the avx512 / avx2 kernel sets are only chosen on CPUs with AVX2, FMA and F16C */
    if (avx512 || avx2) return llmrt_cpu_kq8_kernels_avx2();
    return llmrt_cpu_kq8_kernels_generic();
}
