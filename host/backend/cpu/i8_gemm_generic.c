/* Portable int8 matmul (i8_gemm.h): the reference for the SIMD variants, which must give the same
 * bits (integer dot products are exact; the fp32 steps are the same fmaf sequence). */
#include <math.h>
#include <string.h>

#include "../../core/half.h"
#include "i8_gemm.h"

/* xq rows 0..M-1 from x [M, ldx]: per 32-block d = max|x| / 127, q = nearest-even(x * (1/d)) */
static void quantize_generic(llmrt_cpu_xq *xq, const float *x, int64_t ldx, int64_t M) {
    int64_t K = xq->K, nb = K / 32;
    for (int64_t t = 0; t < M; t++)
        for (int64_t b = 0; b < nb; b++) {
            const float *v    = x + t * ldx + b * 32;
            float        amax = 0.0f;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
            float  d   = amax / 127.0f;
            float  id  = d != 0.0f ? 1.0f / d : 0.0f;
            int8_t *q  = xq->q + t * K + b * 32;
            int32_t sum = 0;
            for (int i = 0; i < 32; i++) {
                float p = v[i] * id;
                q[i]    = (int8_t)nearbyintf(p);
                sum += q[i];
            }
            xq->d[t * nb + b] = d;
            xq->s[t * nb + b] = d * (float)sum;
        }
}

static int u_of(const llmrt_cpu_i8w *w, const uint8_t *blk, int r, int c) {
    int j = c / 4, i = c % 4;
    if (w->nibbles) return (blk[(j / 2) * 64 + 4 * r + i] >> (4 * (j % 2))) & 0x0f;
    return blk[j * 64 + 4 * r + i];
}

/* panel row r's scale and offset in block b (i8_gemm.h) */
static void scale_of(const llmrt_cpu_i8w *w, const uint8_t *panel, int64_t b, int r, float *sc,
                     float *off) {
    const uint8_t *meta = panel + w->meta_at + b * w->meta_bytes;
    if (w->f32_meta) {
        const float *f = (const float *)meta;
        *sc            = f[r];
        *off           = f[LLMRT_CPU_I8_PANEL + r];
    } else if (w->f16_pairs) {
        uint16_t h[2];
        memcpy(&h[0], meta + 2 * r, 2);
        memcpy(&h[1], meta + 2 * (LLMRT_CPU_I8_PANEL + r), 2);
        *sc  = llmrt_f16_to_f32(h[0]);
        *off = llmrt_f16_to_f32(h[1]);
    } else {
        uint16_t h;
        memcpy(&h, meta + 2 * r, 2);
        *sc  = llmrt_f16_to_f32(h);
        *off = -128.0f * *sc; /* exact */
    }
}

static void gemm_generic(float *out, int64_t ldo, const llmrt_cpu_xq *xq, int64_t M,
                         const llmrt_cpu_i8w *w, int64_t n0, int n_rows) {
    int64_t K = w->cols, nb = K / 32;
    for (int rr = 0; rr < n_rows; rr++) {
        int64_t        n     = n0 + rr;
        const uint8_t *panel = w->data + (n / LLMRT_CPU_I8_PANEL) * w->panel_bytes;
        int            r     = (int)(n % LLMRT_CPU_I8_PANEL);
        for (int64_t t = 0; t < M; t++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = panel + b * w->u_bytes;
                const int8_t  *q   = xq->q + t * K + b * 32;
                int32_t        dot = 0;
                for (int c = 0; c < 32; c++) dot += u_of(w, blk, r, c) * q[c];
                float sc, off;
                scale_of(w, panel, b, r, &sc, &off);
                acc = fmaf((float)dot, sc * xq->d[t * nb + b], acc);
                acc = fmaf(off, xq->s[t * nb + b], acc);
            }
            out[t * ldo + rr] = acc;
        }
    }
}

llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_generic(void) {
    return (llmrt_cpu_i8_kernels){.isa = "generic", .f16_pairs = true, .quantize = quantize_generic,
                                  .gemm = gemm_generic};
}
