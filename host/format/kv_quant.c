/* KV cache storage other than the activation dtype (kv_quant.h): fp8 e4m3 conversion, per-head
 * absmax quantisation, bf16 rounding. */
#include "kv_quant.h"

#include "../core/half.h"

#include <math.h>
#include <pthread.h>

uint8_t llmrt_fp8_e4m3_from_float(float x) {
    if (x != x) return 0x7F;
    uint8_t sign = signbit(x) ? 0x80 : 0x00;
    float a = fabsf(x);
    if (a >= LLMRT_KV_FP8_MAX) return sign | 0x7E; /* saturate: e4m3fn has no infinity */
    if (a < 0x1p-6f) {
        /* subnormal: units of 2^-9; 8 units (rounded up to 2^-6) is code 0x08, the smallest
         * normal, so the count is the code either way */
        return sign | (uint8_t)nearbyintf(a * 0x1p9f);
    }
    int e;
    float f = frexpf(a, &e);                        /* a = f * 2^e, f in [0.5, 1)  */
    int m = (int)nearbyintf((2.0f * f - 1.0f) * 8); /* mantissa of 1.m, 3 bits    */
    int E = e - 1 + 7;                              /* biased exponent             */
    if (m == 8) m = 0, E++;                         /* rounded up to the next power */
    int code = E << 3 | m;
    if (code > 0x7E) code = 0x7E;
    return sign | (uint8_t)code;
}

float llmrt_fp8_e4m3_to_float(uint8_t code) {
    int e = code >> 3 & 0xF, m = code & 7;
    float a;
    if ((code & 0x7F) == 0x7F)
        a = NAN;
    else if (e == 0)
        a = ldexpf((float)m, -9);
    else
        a = ldexpf((float)(8 + m), e - 10);
    return code & 0x80 ? -a : a;
}

static float fp8_table[256];
static pthread_once_t fp8_once = PTHREAD_ONCE_INIT;

static void fp8_table_init(void) {
    for (int c = 0; c < 256; c++)
        fp8_table[c] = llmrt_fp8_e4m3_to_float((uint8_t)c);
}

const float *llmrt_fp8_e4m3_table(void) {
    pthread_once(&fp8_once, fp8_table_init);
    return fp8_table;
}

float llmrt_kv_quantise_head(uint8_t *codes, const float *x, int32_t n, llmrt_dtype kv) {
    float amax = 0.0f;
    for (int32_t i = 0; i < n && amax == amax; i++) /* a NaN sticks (fmaxf would drop it) */
        if (!(fabsf(x[i]) <= amax)) amax = fabsf(x[i]);
    float tmax = kv == LLMRT_DTYPE_I8 ? LLMRT_KV_INT8_MAX : LLMRT_KV_FP8_MAX;
    float scale = amax / tmax;
    /* all zero: codes 0, scale 0. A NaN or infinity: codes 0 with a NaN / infinite scale, so the
     * values read back are NaN (0 * inf) and the fault shows in the logits instead of vanishing */
    if (!(scale > 0.0f) || !isfinite(scale)) {
        for (int32_t i = 0; i < n; i++)
            codes[i] = 0;
        return amax == 0.0f ? 0.0f : scale;
    }
    float inv = tmax / amax;
    for (int32_t i = 0; i < n; i++) {
        float y = x[i] * inv;
        if (kv == LLMRT_DTYPE_I8) {
            float r = nearbyintf(y);
            r = r > LLMRT_KV_INT8_MAX    ? LLMRT_KV_INT8_MAX
                : r < -LLMRT_KV_INT8_MAX ? -LLMRT_KV_INT8_MAX
                                         : r;
            codes[i] = (uint8_t)(int8_t)r;
        } else {
            codes[i] = llmrt_fp8_e4m3_from_float(y);
        }
    }
    return scale;
}

void llmrt_kv_quantise_token(uint8_t *pool, const llmrt_kv8_layout *l, int64_t slot, const float *x,
                             llmrt_dtype kv) {
    for (int32_t h = 0; h < l->n_kv_heads; h++) {
        float s = llmrt_kv_quantise_head(pool + llmrt_kv8_codes_off(l, slot, h),
                                         x + (int64_t)h * l->head_dim, l->head_dim, kv);
        memcpy(pool + llmrt_kv8_scale_off(l, slot, h), &s, sizeof s);
    }
}

void llmrt_kv_dequantise_head(float *x, const uint8_t *codes, float scale, int32_t n,
                              llmrt_dtype kv) {
    if (kv == LLMRT_DTYPE_I8) {
        for (int32_t i = 0; i < n; i++)
            x[i] = scale * (float)(int8_t)codes[i];
    } else {
        const float *t = llmrt_fp8_e4m3_table();
        for (int32_t i = 0; i < n; i++)
            x[i] = scale * t[codes[i]];
    }
}

void llmrt_kv_store_bf16(uint16_t *dst, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = llmrt_f32_to_bf16(x[i]);
}
