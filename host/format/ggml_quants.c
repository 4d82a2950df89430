/* Reference dequantisation of GGUF block types (ggml_quants.h). Baseline x86-64 code: no fma, so
 * every product and sum is rounded on its own, as in llama.cpp's scalar dequantize_row_*. */
#include "ggml_quants.h"

#include <math.h>
#include <string.h>

#include "../core/half.h"

bool llmrt_ggml_is_packed(llmrt_dtype t) {
    switch (t) {
    case LLMRT_DTYPE_Q5_0: case LLMRT_DTYPE_Q5_1: case LLMRT_DTYPE_Q2_K: case LLMRT_DTYPE_Q3_K:
    case LLMRT_DTYPE_Q4_K: case LLMRT_DTYPE_Q5_K: case LLMRT_DTYPE_Q6_K:
    case LLMRT_DTYPE_Q8_Z: return true;
    default: return false;
    }
}

bool llmrt_ggml_is_block(llmrt_dtype t) {
    return t == LLMRT_DTYPE_Q8_0 || t == LLMRT_DTYPE_Q4_0 || t == LLMRT_DTYPE_Q4_1 ||
           llmrt_ggml_is_packed(t);
}

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return llmrt_f16_to_f32(h);
}

static void q5_x(const uint8_t *b, float *y, bool has_min) {
    float    d = f16_at(b), m = has_min ? f16_at(b + 2) : 0.0f;
    uint32_t qh;
    memcpy(&qh, b + (has_min ? 4 : 2), 4);
    const uint8_t *qs = b + (has_min ? 8 : 6);
    for (int j = 0; j < 32; j++) {
        int q = (j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4) | (int)((qh >> j) & 1) << 4;
        if (has_min) {
            float dq = d * (float)q;
            y[j]     = dq + m;
        } else {
            y[j] = (float)(q - 16) * d;
        }
    }
}

/* Q2_K / Q3_K: element v = 128n + 32j + 16h + i (sub-block s = v/16 = 8n + 2j + h) takes bits 2j
 * of qs[32n + 16h + i]; Q3_K's high bit is bit v/32 = 4n + j of hmask[16h + i]. Loops in that
 * order (no division per element). */
static void q2_k(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *qs = b + 16;
    float          d = f16_at(b + 80), dmin = f16_at(b + 82);
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) {
                int            s  = 8 * n + 2 * j + h;
                float          dl = d * (float)(sc[s] & 0x0f), ml = dmin * (float)(sc[s] >> 4);
                const uint8_t *q  = qs + 32 * n + 16 * h;
                float         *o  = y + 16 * s;
                for (int i = 0; i < 16; i++) {
                    float dq = dl * (float)((q[i] >> (2 * j)) & 3);
                    o[i]     = dq - ml;
                }
            }
}

static void q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *qs = b + 32;
    float          d = f16_at(b + 108);
    int8_t         sc[16];
    llmrt_ggml_q3k_scales(b + 96, sc);
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) {
                int            s  = 8 * n + 2 * j + h;
                float          dl = d * (float)sc[s];
                const uint8_t *q = qs + 32 * n + 16 * h, *m = hm + 16 * h;
                float         *o = y + 16 * s;
                for (int i = 0; i < 16; i++) {
                    int v = ((q[i] >> (2 * j)) & 3) - (((m[i] >> (4 * n + j)) & 1) ? 0 : 4);
                    o[i]  = dl * (float)v;
                }
            }
}

static void q45_k(const uint8_t *b, float *y, bool five) {
    float          d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        llmrt_ggml_k4_scale_min(s, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            int byte = qs[32 * (s / 2) + l];
            int q    = s % 2 ? byte >> 4 : byte & 0x0f;
            if (five) q |= ((qh[l] >> s) & 1) << 4;
            float dq      = d1 * (float)q;
            y[32 * s + l] = dq - m1;
        }
    }
}

/* Q6_K: element v = 128h + 32c + l. */
static void q6_k(const uint8_t *b, float *y) {
    const int8_t *sc = (const int8_t *)(b + 192);
    float         d  = f16_at(b + 208);
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 4; c++) {
            const uint8_t *ql = b + 64 * h + 32 * (c & 1), *qh = b + 128 + 32 * h;
            float          ds[2] = {d * (float)sc[8 * h + 2 * c], d * (float)sc[8 * h + 2 * c + 1]};
            float         *o     = y + 128 * h + 32 * c;
            for (int l = 0; l < 32; l++) {
                int lo = c < 2 ? ql[l] & 0x0f : ql[l] >> 4;
                int q  = (lo | ((qh[l] >> (2 * c)) & 3) << 4) - 32;
                o[l]   = ds[l / 16] * (float)q;
            }
        }
}

void llmrt_ggml_dequant_block(llmrt_dtype t, const uint8_t *b, float *y) {
    switch (t) {
    case LLMRT_DTYPE_Q8_0: {
        float d = f16_at(b);
        for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
        break;
    }
    case LLMRT_DTYPE_Q4_0: {
        float d = f16_at(b);
        for (int j = 0; j < 16; j++) {
            y[j]      = d * (float)((b[2 + j] & 0x0f) - 8);
            y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
        }
        break;
    }
    case LLMRT_DTYPE_Q4_1: {
        float d = f16_at(b), m = f16_at(b + 2);
        for (int j = 0; j < 16; j++) {
            float lo = d * (float)(b[4 + j] & 0x0f), hi = d * (float)(b[4 + j] >> 4);
            y[j]      = lo + m;
            y[j + 16] = hi + m;
        }
        break;
    }
    case LLMRT_DTYPE_Q5_0: q5_x(b, y, false); break;
    case LLMRT_DTYPE_Q5_1: q5_x(b, y, true); break;
    case LLMRT_DTYPE_Q2_K: q2_k(b, y); break;
    case LLMRT_DTYPE_Q3_K: q3_k(b, y); break;
    case LLMRT_DTYPE_Q4_K: q45_k(b, y, false); break;
    case LLMRT_DTYPE_Q5_K: q45_k(b, y, true); break;
    case LLMRT_DTYPE_Q6_K: q6_k(b, y); break;
    case LLMRT_DTYPE_Q8_Z: { /* GPTQ's formula: (float)scale * ((float)q - (float)zero) */
        float d = f16_at(b), z = (float)b[2];
        for (int j = 0; j < 32; j++) y[j] = d * ((float)b[4 + j] - z);
        break;
    }
    default: break;
    }
}

void llmrt_ggml_dequant_row(llmrt_dtype t, const uint8_t *row, float *out, int64_t n) {
    int64_t be = llmrt_dtype_block_elems(t), bb = llmrt_dtype_block_bytes(t);
    for (int64_t i = 0; i + be <= n; i += be, row += bb) llmrt_ggml_dequant_block(t, row, out + i);
}

/* round-to-nearest-even of |v| < 2^22, as llama.cpp's nearest_int (the 1.5 * 2^23 trick) */
static int nearest_int(float v) {
    float   t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

void llmrt_ggml_quantize_q8_K(const float *x, int64_t n, int8_t *q, float *d, int16_t *bsums) {
    for (int64_t b = 0; b < n / 256; b++, x += 256, q += 256, bsums += 16) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) amax = ax, max = x[j];
        }
        if (amax == 0.0f) {
            d[b] = 0.0f;
            memset(q, 0, 256);
            memset(bsums, 0, 16 * sizeof *bsums);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            int v = nearest_int(iscale * x[j]);
            q[j]  = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += q[16 * j + i];
            bsums[j] = (int16_t)sum;
        }
        d[b] = 1.0f / iscale;
    }
}
