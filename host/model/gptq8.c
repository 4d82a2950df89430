/* 8-bit GPTQ Linears into Q8_0 blocks (exact) or fp32 (dequantised): gptq8.h. Every size is
 * derived with overflow-checked math; every error names the file and the tensor. */
#include "gptq8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/checked_math.h"
#include "../core/half.h"

#define PACK       4  /* 8-bit values per int32 word */
#define Q8_0_BLOCK 32 /* columns per Q8_0 block */
#define Q8_0_BYTES 34 /* fp16 d + 32 int8 */
#define SYM_ZERO   128

static uint32_t rd_u32(const uint8_t *p, uint64_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

/* Zero point of (g, n): byte n % 4 of the qzeros word, v1 words read back as v2 (+0x01010101). */
static int zero_at(const llmrt_gptq_config *cfg, const llmrt_st_tensor *qz, int64_t N, int64_t g,
                   int64_t n) {
    uint32_t w = rd_u32(qz->data, (uint64_t)(g * (N / PACK) + n / PACK));
    if (!cfg->v2) w += 0x01010101u; /* modulo 2^32, as GPTQModel on the int32 tensor */
    return (int)((w >> (8 * (n % PACK))) & 0xff);
}

static int q_at(const llmrt_st_tensor *qw, int64_t N, int64_t k, int64_t n) {
    return (int)((rd_u32(qw->data, (uint64_t)((k / PACK) * N + n)) >> (8 * (k % PACK))) & 0xff);
}

static void say(char *why, size_t cap, const char *fmt, ...) {
    if (!why || !cap || why[0]) return; /* the first reason */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

llmrt_status llmrt_gptq8_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                                 const llmrt_gptq_tensors *t, int64_t N, int64_t K, bool q8_0_ok,
                                 bool f32_ok, void **out, llmrt_dtype *out_dtype, char *why,
                                 size_t why_cap, llmrt_error *err) {
    *out = NULL;
    if (why && why_cap) why[0] = 0;
    if (N <= 0 || K <= 0)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: %s: empty matrix", file, prefix);
    int64_t gs;
    LLMRT_TRY(llmrt_gptq_check_dims(cfg, file, prefix, N, K, PACK, &gs, err));
    int64_t G = K / gs;
    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "qweight", t->qweight, 2, (uint64_t)(K / PACK),
                                     (uint64_t)N, err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "qweight", t->qweight, true, err));
    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "qzeros", t->qzeros, 2, (uint64_t)G,
                                     (uint64_t)(N / PACK), err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "qzeros", t->qzeros, true, err));
    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "scales", t->scales, 2, (uint64_t)G, (uint64_t)N,
                                     err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "scales", t->scales, false, err));
    if (t->g_idx) {
        LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "g_idx", t->g_idx, 1, (uint64_t)K, 0, err));
        LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "g_idx", t->g_idx, true, err));
    }
    uint64_t n_el;
    if (!ck_mul_u64((uint64_t)N, (uint64_t)K, &n_el) || n_el > (uint64_t)SIZE_MAX / 8)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: %s is too large", file, prefix);

    /* g_idx: every value in [0, G), every group exactly gs rows; natural = k / gs */
    int32_t *gidx = malloc((size_t)K * sizeof *gidx);
    int64_t *fill = calloc((size_t)G, sizeof *fill);
    if (!gidx || !fill) {
        free(gidx);
        free(fill);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                         prefix);
    }
    bool natural = true;
    llmrt_status s = LLMRT_OK;
    for (int64_t k = 0; k < K && s == LLMRT_OK; k++) {
        int32_t g = t->g_idx ? (int32_t)rd_u32(t->g_idx->data, (uint64_t)k) : (int32_t)(k / gs);
        if (g < 0 || g >= G)
            s = llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                          "%s: tensor %s.g_idx[%lld] = %d is outside [0, %lld)", file, prefix,
                          (long long)k, g, (long long)G);
        else
            fill[g]++;
        gidx[k] = g;
        natural = natural && g == k / gs;
    }
    for (int64_t g = 0; g < G && s == LLMRT_OK; g++)
        if (fill[g] != gs)
            s = llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                          "%s: tensor %s.g_idx: group %lld has %lld rows, expected group_size "
                          "%lld",
                          file, prefix, (long long)g, (long long)fill[g], (long long)gs);
    free(fill);
    if (s != LLMRT_OK) {
        free(gidx);
        return s;
    }

    /* Q8_0 exactly: natural order, group size a multiple of 32, fp16 scales, every zero 128 */
    bool q8 = q8_0_ok;
    if (!q8_0_ok) say(why, why_cap, "the backend has no Q8_0 kernels");
    if (q8 && !natural) q8 = false, say(why, why_cap, "act-order (g_idx is not k / group_size)");
    if (q8 && gs % Q8_0_BLOCK != 0)
        q8 = false, say(why, why_cap, "group size %lld is not a multiple of 32", (long long)gs);
    if (q8 && t->scales->dtype != LLMRT_DTYPE_F16)
        q8 = false, say(why, why_cap, "%s scales", llmrt_dtype_name(t->scales->dtype));
    for (int64_t g = 0; g < G && q8; g++)
        for (int64_t n = 0; n < N && q8; n++)
            if (zero_at(cfg, t->qzeros, N, g, n) != SYM_ZERO)
                q8 = false, say(why, why_cap, "asymmetric zero points");
    if (!q8 && !f32_ok) {
        free(gidx);
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: tensor %s: this 8-bit GPTQ matrix [%lld, %lld] (group size %lld) "
                         "does not map onto Q8_0: %s (set allow_fallback or dequantize_weights in "
                         "llmrt_model_params to dequantise it to fp32 at load)",
                         file, prefix, (long long)N, (long long)K, (long long)gs,
                         why && why[0] ? why : "see gptq8.h");
    }
    if (q8) {
        int64_t nb = K / Q8_0_BLOCK;
        uint8_t *buf = malloc((size_t)(N * nb * Q8_0_BYTES));
        if (!buf) {
            free(gidx);
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                             prefix);
        }
        for (int64_t n = 0; n < N; n++)
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *blk = buf + (n * nb + b) * Q8_0_BYTES;
                int64_t g = (b * Q8_0_BLOCK) / gs;
                memcpy(blk, t->scales->data + 2 * (uint64_t)(g * N + n), 2); /* fp16 d */
                for (int j = 0; j < Q8_0_BLOCK; j++)
                    blk[2 + j] =
                        (uint8_t)(int8_t)(q_at(t->qweight, N, b * Q8_0_BLOCK + j, n) - SYM_ZERO);
            }
        free(gidx);
        *out = buf;
        *out_dtype = LLMRT_DTYPE_Q8_0;
        return LLMRT_OK;
    }
    /* fp32 [N, K] in input order: (float)s * (float)(q - z), exact (11 x 9 significant bits) */
    float *f = malloc((size_t)n_el * sizeof *f);
    if (!f) {
        free(gidx);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory dequantising %s", file,
                         prefix);
    }
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) {
            int64_t g = gidx[k];
            float sc = llmrt_gptq_rd_float(t->scales, (uint64_t)(g * N + n));
            f[n * K + k] =
                sc * (float)(q_at(t->qweight, N, k, n) - zero_at(cfg, t->qzeros, N, g, n));
        }
    free(gidx);
    *out = f;
    *out_dtype = LLMRT_DTYPE_F32;
    return LLMRT_OK;
}
