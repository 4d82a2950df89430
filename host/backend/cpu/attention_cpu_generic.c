/* Portable C tile kernel of the CPU attention (attention_cpu.h): the same chunked online softmax
 * as the SIMD variants, written plainly. Each row's arithmetic (scores summed over d in order,
 * o = o * alpha then o += p_j * v_j for j in order) does not depend on the other rows. */
#include <math.h>
#include <string.h>

#include "../../core/half.h"
#include "attention_cpu.h"
#include "attention_cpu_kv.h"

#define W LLMRT_CPU_ATTN_CHUNK

static void dequant_row(float *dst, const uint8_t *codes, float scale, int32_t n, llmrt_dtype kv,
                        const float *lut) {
    if (kv == LLMRT_DTYPE_BF16) {
        for (int32_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, codes + 2 * (size_t)i, sizeof b);
            dst[i] = llmrt_bf16_to_f32(b);
        }
    } else if (kv == LLMRT_DTYPE_I8)
        for (int32_t i = 0; i < n; i++) dst[i] = scale * (float)(int8_t)codes[i];
    else
        for (int32_t i = 0; i < n; i++) dst[i] = scale * lut[codes[i]];
}

/* element j of a kt row (llmrt_cpu_attn_chunk_kt): fp32, or bf16 widened exactly */
static float kt_elem(const uint8_t *row, int32_t j, llmrt_dtype kv) {
    if (kv == LLMRT_DTYPE_BF16) {
        uint16_t b;
        memcpy(&b, row + 2 * (size_t)j, sizeof b);
        return llmrt_bf16_to_f32(b);
    }
    float f;
    memcpy(&f, row + 4 * (size_t)j, sizeof f);
    return f;
}

void llmrt_cpu_attn_tile_generic(const llmrt_cpu_attn_tile *t, float *scratch) {
    const int32_t hd = t->head_dim, G = t->group, R = t->n_tok * G;
    float        *kt = scratch;          /* [hd, W]: K of the chunk, transposed */
    float        *p  = kt + (size_t)hd * W; /* [R, W] probabilities of the chunk */
    for (int32_t r = 0; r < R; r++) memset(t->out + (r / G) * t->q_ld + (r % G) * hd, 0, (size_t)hd * sizeof(float));
    float m[LLMRT_CPU_ATTN_MAX_ROWS], l[LLMRT_CPU_ATTN_MAX_ROWS], alpha[LLMRT_CPU_ATTN_MAX_ROWS];
    for (int32_t r = 0; r < R; r++) m[r] = -INFINITY, l[r] = 0.0f;
    int32_t last = t->pos[t->n_tok - 1], i0 = 0, i1 = 0;
    for (int32_t c0 = llmrt_cpu_attn_lo(t, t->pos[0]) / W * W; c0 <= last; c0 += W) {
        while (t->pos[i0] < c0) i0++; /* tokens before the chunk are done with it */
        while (i1 < t->n_tok && llmrt_cpu_attn_lo(t, t->pos[i1]) < c0 + W) i1++; /* reach it */
        if (i1 <= i0) continue;
        int32_t      R1  = i1 * G;
        int32_t      jlo = llmrt_cpu_attn_lo(t, t->pos[i0]) - c0; /* below: never read */
        int32_t      nv  = last - c0 + 1 < W ? last - c0 + 1 : W;
        const float *kr[W], *vr[W];
        if (jlo < 0) jlo = 0;
        llmrt_cpu_attn_chunk_rows(t, c0, jlo, nv, kr, vr, scratch, dequant_row);
        if (llmrt_cpu_attn_k_dmajor(t->kv_dtype)) { /* K stored transposed: widen to fp32 */
            int64_t        ld;
            const uint8_t *kb = llmrt_cpu_attn_chunk_kt(t, c0, jlo, nv, (uint8_t *)llmrt_cpu_attn_deq(t, scratch), &ld);
            for (int32_t d = 0; d < hd; d++)
                for (int32_t j = jlo; j < nv; j++) kt[d * W + j] = kt_elem(kb + d * ld, j, t->kv_dtype);
        } else
            for (int32_t j = 0; j < nv; j++)
                for (int32_t d = 0; d < hd; d++) kt[d * W + j] = kr[j][d];
        for (int32_t r = i0 * G; r < R1; r++) {
            const float *qr = t->q + (r / G) * t->q_ld + (r % G) * hd;
            int32_t      nr = t->pos[r / G] - c0 + 1 < W ? t->pos[r / G] - c0 + 1 : W;
            int32_t      jl = llmrt_cpu_attn_lo(t, t->pos[r / G]) - c0;
            float        s[W], mx = m[r];
            if (jl < 0) jl = 0;
            for (int32_t j = jl; j < nr; j++) {
                float acc = 0.0f;
                for (int32_t d = 0; d < hd; d++) acc += qr[d] * kt[d * W + j];
                s[j] = acc * t->scale;
                if (s[j] > mx) mx = s[j];
            }
            float a = expf(m[r] - mx), sum = 0.0f;
            for (int32_t j = 0; j < W; j++) {
                p[r * W + j] = j >= jl && j < nr ? expf(s[j] - mx) : 0.0f;
                sum += p[r * W + j];
            }
            l[r]     = l[r] * a + sum;
            m[r]     = mx;
            alpha[r] = a;
        }
        for (int32_t r = i0 * G; r < R1; r++) {
            float *o = t->out + (r / G) * t->q_ld + (r % G) * hd;
            for (int32_t d = 0; d < hd; d++) o[d] *= alpha[r];
            for (int32_t j = 0; j < nv; j++)
                for (int32_t d = 0; d < hd; d++) o[d] += p[r * W + j] * vr[j][d];
        }
    }
    for (int32_t r = 0; r < R; r++) {
        float *o   = t->out + (r / G) * t->q_ld + (r % G) * hd;
        float  inv = 1.0f / l[r];
        for (int32_t d = 0; d < hd; d++) o[d] *= inv;
    }
}
