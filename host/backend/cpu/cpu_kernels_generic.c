/* Portable C versions of the CPU inner loops. 16 partial sums per output mirror the AVX-512
 * lane structure closely enough for speed; results differ from the SIMD variants only by
 * rounding, and each output is still computed identically whatever the tile shape. */
#include "../../core/half.h"
#include "cpu_kernels.h"

#define LANES 16

static float dot_generic(const float *a, const float *b, int64_t n) {
    float   acc[LANES] = {0};
    int64_t k          = 0;
    for (; k + LANES <= n; k += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[k + l] * b[k + l];
    float tail = 0.0f;
    for (; k < n; k++) tail += a[k] * b[k];
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s + tail;
}

static void dot_tile_generic(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                             const float *w, int64_t ldw, int n_n, int64_t K) {
    for (int t = 0; t < n_t; t++)
        for (int n = 0; n < n_n; n++) out[t * ldo + n] = dot_generic(x + t * ldx, w + n * ldw, K);
}

static void f16_to_f32_generic(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = llmrt_f16_to_f32(src[i]);
}

static void bf16_to_f32_generic(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = llmrt_bf16_to_f32(src[i]);
}

static void axpy_generic(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

llmrt_cpu_kernels llmrt_cpu_kernels_generic(void) {
    return (llmrt_cpu_kernels){
        .isa         = "generic",
        .dot_tile    = dot_tile_generic,
        .tile_rows   = 4,
        .f16_to_f32  = f16_to_f32_generic,
        .bf16_to_f32 = bf16_to_f32_generic,
        .dot         = dot_generic,
        .axpy        = axpy_generic,
    };
}
