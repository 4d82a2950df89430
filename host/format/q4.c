/* The internal 4-bit format (q4.h): reference dequantisation. */
#include "q4.h"

#include "../core/half.h"

void llmrt_q4_dequant_row(const llmrt_q4_host *w, int64_t row, float *out) {
    int64_t K = w->cols;
    int64_t G = K / w->group_size;
    const uint8_t *qs = w->qs + row * (K / 2);
    const uint16_t *sc = w->scales + row * G;
    for (int64_t k = 0; k < K; k++) {
        int64_t g = k / w->group_size;
        float q = (float)((qs[k / 2] >> (4 * (k & 1))) & 0x0f);
        float s = llmrt_f16_to_f32(sc[g]);
        if (w->zero_kind == LLMRT_Q4_ZERO_INT) {
            out[k] = s * (q - (float)w->zeros[row * G + g]);
        } else {
            float sq = s * q; /* two roundings, as GGUF's Q4_1 reference: d*q, then + m */
            out[k] = sq + llmrt_f16_to_f32(w->offsets[row * G + g]);
        }
    }
}
