/* Repacking 4-bit, Q8_0 and Q8_Z weights into the int8 panels of i8_gemm.h at load. Baseline x86-64
 * code (runs once per weight). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/half.h"
#include "cpu_memory.h"
#include "i8_gemm.h"

/* meta: 'f' fp32 sc, off; 'h' fp16 sc, off; 'd' Q8_0's fp16 d */
static llmrt_status i8w_alloc(llmrt_cpu_i8w *out, int64_t N, int64_t K, bool nibbles, char meta,
                              llmrt_error *err) {
    memset(out, 0, sizeof *out);
    if (N <= 0 || K <= 0 || K % 32 != 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "cpu backend: int8 panels of [%lld, %lld]",
                         (long long)N, (long long)K);
    out->rows        = N;
    out->cols        = K;
    out->nibbles     = nibbles;
    out->f32_meta    = meta == 'f';
    out->f16_pairs   = meta == 'h';
    out->u_bytes     = nibbles ? 256 : 512;
    out->meta_bytes  = LLMRT_CPU_I8_PANEL * (meta == 'f' ? 2 * (int64_t)sizeof(float)
                                             : meta == 'h' ? 2 * (int64_t)sizeof(uint16_t)
                                                           : (int64_t)sizeof(uint16_t));
    out->meta_at     = K / 32 * out->u_bytes;
    out->panel_bytes = (out->meta_at + K / 32 * out->meta_bytes + 63) / 64 * 64;
    int64_t n_panels = (N + LLMRT_CPU_I8_PANEL - 1) / LLMRT_CPU_I8_PANEL;
    size_t  bytes    = (size_t)(n_panels * out->panel_bytes);
    if (!(out->data = llmrt_cpu_mem_alloc(bytes))) {
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate %zu bytes",
                         bytes);
    }
    memset(out->data, 0, bytes); /* rows past N: zero weights, zero scales and offsets */
    return LLMRT_OK;
}

/* Block b of panel row n: where its unsigned byte for column c (0..31) goes. */
static void put_u(const llmrt_cpu_i8w *w, int64_t n, int64_t b, int c, uint8_t u) {
    uint8_t *blk = w->data + (n / LLMRT_CPU_I8_PANEL) * w->panel_bytes + b * w->u_bytes;
    int      r = (int)(n % LLMRT_CPU_I8_PANEL), j = c / 4, i = c % 4;
    if (w->nibbles)
        blk[(j / 2) * 64 + 4 * r + i] |= (uint8_t)(u << (4 * (j % 2)));
    else
        blk[j * 64 + 4 * r + i] = u;
}

/* 4-bit, Q8_Z: the scale and offset of panel row n in block b, fp32 or (f16_pairs) fp16 */
static void put_scale(const llmrt_cpu_i8w *w, int64_t n, int64_t b, float sc, float off) {
    uint8_t *meta = w->data + (n / LLMRT_CPU_I8_PANEL) * w->panel_bytes + w->meta_at +
                    b * w->meta_bytes;
    int      r    = (int)(n % LLMRT_CPU_I8_PANEL);
    if (w->f16_pairs) {
        uint16_t h[2] = {llmrt_f32_to_f16(sc), llmrt_f32_to_f16(off)};
        memcpy(meta + 2 * r, &h[0], 2);
        memcpy(meta + 2 * (LLMRT_CPU_I8_PANEL + r), &h[1], 2);
        return;
    }
    float *f                  = (float *)meta;
    f[r]                      = sc;
    f[LLMRT_CPU_I8_PANEL + r] = off;
}

/* 4-bit row n's scale and offset in group g (w = sc * q + off) */
static void q4_scale(const llmrt_cpu_q4 *q, int64_t n, int64_t g, float *sc, float *off) {
    const uint8_t *grp  = q->data + (n / 4) * q->tile_bytes + g * q->group_bytes;
    int            slot = (int)(n % 4);
    uint16_t       s16, z16;
    memcpy(&s16, grp + 2 * slot, 2);
    memcpy(&z16, grp + 8 + 2 * slot, 2);
    float s = llmrt_f16_to_f32(s16), z = llmrt_f16_to_f32(z16);
    *sc     = s;
    *off    = q->zero_kind == LLMRT_Q4_ZERO_INT ? -(s * z) : z;
}

static bool is_f16_value(float v) {
    return llmrt_f16_to_f32(llmrt_f32_to_f16(v)) == v;
}

llmrt_status llmrt_cpu_i8w_from_q4(const llmrt_cpu_q4 *q, bool f16_ok, llmrt_cpu_i8w *out,
                                   llmrt_error *err) {
    /* fp16 pairs when every scale is one (the scales are fp16 already; an offset -s*z of a zero
     * point may need more bits): the same values, 64 bytes fewer per block */
    bool f16 = f16_ok;
    for (int64_t n = 0; n < q->rows && f16; n++)
        for (int64_t g = 0; g < q->n_groups && f16; g++) {
            float sc, off;
            q4_scale(q, n, g, &sc, &off);
            f16 = is_f16_value(sc) && is_f16_value(off);
        }
    LLMRT_TRY(i8w_alloc(out, q->rows, q->cols, true, f16 ? 'h' : 'f', err));
    int64_t bpg = q->group_size / LLMRT_CPU_Q4_BLOCK;
    for (int64_t n = 0; n < q->rows; n++) {
        const uint8_t *tile = q->data + (n / 4) * q->tile_bytes;
        int            slot = (int)(n % 4);
        for (int64_t g = 0; g < q->n_groups; g++) {
            const uint8_t *grp = tile + g * q->group_bytes;
            float          s, off;
            q4_scale(q, n, g, &s, &off);
            for (int64_t bb = 0; bb < bpg; bb++) {
                int64_t        b  = g * bpg + bb;
                const uint8_t *qs = grp + 16 + 64 * bb + 16 * slot;
                put_scale(out, n, b, s, off);
                for (int c = 0; c < 16; c++) {
                    uint8_t v = qs[llmrt_cpu_q4_byte_of(c)];
                    put_u(out, n, b, c, v & 0x0f);
                    put_u(out, n, b, c + 16, v >> 4);
                }
            }
        }
    }
    return LLMRT_OK;
}

llmrt_status llmrt_cpu_i8w_from_q8_0(const uint8_t *rows, int64_t N, int64_t K, llmrt_cpu_i8w *out,
                                     llmrt_error *err) {
    LLMRT_TRY(i8w_alloc(out, N, K, false, 'd', err));
    for (int64_t n = 0; n < N; n++) {
        uint8_t *meta = out->data + (n / LLMRT_CPU_I8_PANEL) * out->panel_bytes + out->meta_at;
        for (int64_t b = 0; b < K / 32; b++) {
            const uint8_t *blk = rows + (n * (K / 32) + b) * 34;
            /* the fp16 d as stored; off = -128 d is implied (i8_gemm.h) */
            memcpy(meta + b * out->meta_bytes + 2 * (n % LLMRT_CPU_I8_PANEL), blk, 2);
            for (int c = 0; c < 32; c++) put_u(out, n, b, c, (uint8_t)((int8_t)blk[2 + c] + 128));
        }
    }
    return LLMRT_OK;
}

llmrt_status llmrt_cpu_i8w_from_q8_z(const uint8_t *rows, int64_t N, int64_t K, llmrt_cpu_i8w *out,
                                     llmrt_error *err) {
    LLMRT_TRY(i8w_alloc(out, N, K, false, 'f', err));
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < K / 32; b++) {
            const uint8_t *blk = rows + (n * (K / 32) + b) * 36;
            uint16_t       d16;
            memcpy(&d16, blk, 2);
            float d = llmrt_f16_to_f32(d16);
            put_scale(out, n, b, d, -(d * (float)blk[2])); /* exact: 11 x 8 bits */
            for (int c = 0; c < 32; c++) put_u(out, n, b, c, blk[4 + c]);
        }
    return LLMRT_OK;
}

void llmrt_cpu_i8w_free(llmrt_cpu_i8w *w) {
    llmrt_cpu_mem_free(w->data);
    memset(w, 0, sizeof *w);
}
