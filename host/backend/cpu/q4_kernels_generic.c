/* Portable 4-bit kernels: dequantisation of whole rows by the reference formulas; the matmul
 * then runs the generic fp32 dot_tile over them (no fused gemv). */
#include <string.h>

#include "../../core/half.h"
#include "q4_kernels.h"

static void dequant_rows_generic(float *out, const llmrt_cpu_q4 *w, int64_t n0, int n_rows) {
    int64_t K = w->cols, G = w->n_groups, bpg = w->group_size / LLMRT_CPU_Q4_BLOCK;
    for (int r = 0; r < n_rows; r++) {
        int64_t n = n0 + r;
        int slot = (int)(n % 4);
        const uint8_t *tile = w->data + (n / 4) * w->tile_bytes;
        float *o = out + (int64_t)r * K;
        for (int64_t g = 0; g < G; g++) {
            const uint8_t *grp = tile + g * w->group_bytes;
            uint16_t s16, z16;
            memcpy(&s16, grp + 2 * slot, 2);
            memcpy(&z16, grp + 8 + 2 * slot, 2);
            float s = llmrt_f16_to_f32(s16), z = llmrt_f16_to_f32(z16);
            float table[16];
            for (int q = 0; q < 16; q++) {
                if (w->zero_kind == LLMRT_Q4_ZERO_INT) {
                    table[q] = s * ((float)q - z);
                } else {
                    float sq = s * (float)q;
                    table[q] = sq + z;
                }
            }
            for (int64_t b = 0; b < bpg; b++, o += 32) {
                const uint8_t *qs = grp + 16 + 64 * b + 16 * slot;
                for (int c = 0; c < 16; c++) {
                    uint8_t v = qs[llmrt_cpu_q4_byte_of(c)];
                    o[c] = table[v & 0x0f];
                    o[c + 16] = table[v >> 4];
                }
            }
        }
    }
}

static void q8_dequant_row_generic(float *out, const uint8_t *row, int64_t K) {
    for (int64_t b = 0; b < K / 32; b++, row += 34, out += 32) {
        uint16_t d16;
        memcpy(&d16, row, 2);
        float d = llmrt_f16_to_f32(d16);
        const int8_t *q = (const int8_t *)(row + 2);
        for (int j = 0; j < 32; j++)
            out[j] = d * (float)q[j];
    }
}

llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_generic(void) {
    return (llmrt_cpu_q4_kernels){
        .isa = "generic",
        .q8_dequant_row = q8_dequant_row_generic,
        .gemv_rows = LLMRT_CPU_Q4_GEMV_N,
        .q8_gemv = 0,
        .dequant_rows = dequant_rows_generic,
        .gemv = 0,
    };
}
