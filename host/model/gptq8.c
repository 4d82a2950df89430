/* 8-bit GPTQ Linears into Q8_0 or Q8_Z blocks (exact) or fp32 (dequantised): gptq8.h. Every
 * size is derived with overflow-checked math; every error names the file and the tensor. */
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
#define Q8_Z_BYTES 36 /* fp16 d, u8 z, u8 0, 32 u8 q (format/dtype.h) */

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

/* Every g_idx value in [0, G) and every group holding its rows (gs, the last K - (G-1) gs);
 * gidx[k] = the group of input row k; *natural when g_idx is k / gs. */
static llmrt_status read_groups(const char *file, const char *prefix, const llmrt_st_tensor *g_idx,
                                int64_t K, int64_t gs, int64_t G, int32_t *gidx, bool *natural,
                                llmrt_error *err) {
    int64_t *fill = calloc((size_t)G, sizeof *fill);
    if (!fill)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                         prefix);
    *natural       = true;
    llmrt_status s = LLMRT_OK;
    for (int64_t k = 0; k < K && s == LLMRT_OK; k++) {
        int32_t g = g_idx ? (int32_t)rd_u32(g_idx->data, (uint64_t)k) : (int32_t)(k / gs);
        if (g < 0 || g >= G)
            s = llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                          "%s: tensor %s.g_idx[%lld] = %d is outside [0, %lld)", file, prefix,
                          (long long)k, g, (long long)G);
        else
            fill[g]++;
        gidx[k]  = g;
        *natural = *natural && g == k / gs;
    }
    for (int64_t g = 0; g < G && s == LLMRT_OK; g++)
        if (fill[g] != llmrt_gptq_group_rows(K, gs, g))
            s = llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                          "%s: tensor %s.g_idx: group %lld has %lld rows, expected %lld "
                          "(group_size %lld, in_features %lld)",
                          file, prefix, (long long)g, (long long)fill[g],
                          (long long)llmrt_gptq_group_rows(K, gs, g), (long long)gs, (long long)K);
    free(fill);
    return s;
}

/* Scale (g, n) as fp16 bits; false when an fp32/bf16 scale is not exactly an fp16 value. */
static bool scale_f16(const llmrt_st_tensor *scales, uint64_t i, uint16_t *out) {
    if (scales->dtype == LLMRT_DTYPE_F16) {
        memcpy(out, scales->data + 2 * i, 2);
        return true;
    }
    float f = llmrt_gptq_rd_float(scales, i);
    *out    = llmrt_f32_to_f16(f);
    return llmrt_f16_to_f32(*out) == f;
}

llmrt_status llmrt_gptq8_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                                 const llmrt_gptq_tensors *t, int64_t N, int64_t K,
                                 const llmrt_gptq8_caps *caps, llmrt_gptq8_matrix *out,
                                 char *why, size_t why_cap, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    if (why && why_cap) why[0] = 0;
    if (N <= 0 || K <= 0)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: %s: empty matrix", file, prefix);
    int64_t gs, G;
    LLMRT_TRY(llmrt_gptq_check_dims(cfg, file, prefix, N, K, PACK, &gs, &G, err));
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

    int32_t *gidx = malloc((size_t)K * sizeof *gidx);
    if (!gidx)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                         prefix);
    bool         natural = true;
    llmrt_status s = read_groups(file, prefix, t->g_idx, K, gs, G, gidx, &natural, err);
    if (s != LLMRT_OK) {
        free(gidx);
        return s;
    }

    /* Blocks (Q8_0 or Q8_Z): group size a multiple of 32 (every block in one group: block b in
     * stored order is in group 32 b / gs, a short last group too since K % 32 == 0) and fp16
     * scales; act-order only through weight_upload_permuted. Q8_0 when every zero is 128 in
     * natural order (its kernels are faster), else Q8_Z. */
    bool blocks = caps->q8_0 || caps->q8_z;
    if (!blocks) say(why, why_cap, "the backend has no Q8_0 / Q8_Z kernels");
    if (blocks && (gs % Q8_0_BLOCK != 0 || K % Q8_0_BLOCK != 0))
        blocks = false, say(why, why_cap, "group size %lld / in_features %lld not a multiple of 32",
                            (long long)gs, (long long)K);
    if (blocks && !natural && !caps->q8_z_perm)
        blocks = false, say(why, why_cap, "act-order (the backend takes no permuted Q8_Z)");
    bool sym = natural;
    for (int64_t g = 0; g < G && (blocks || sym); g++)
        for (int64_t n = 0; n < N && (blocks || sym); n++) {
            uint16_t h;
            sym = sym && zero_at(cfg, t->qzeros, N, g, n) == SYM_ZERO;
            if (blocks && !scale_f16(t->scales, (uint64_t)(g * N + n), &h))
                blocks = false, say(why, why_cap, "%s scales[%lld][%lld] not an fp16 value",
                                    llmrt_dtype_name(t->scales->dtype), (long long)g, (long long)n);
        }
    llmrt_dtype bt = sym && caps->q8_0 ? LLMRT_DTYPE_Q8_0 : LLMRT_DTYPE_Q8_Z;
    if (blocks && bt == LLMRT_DTYPE_Q8_Z && !caps->q8_z)
        blocks = false, say(why, why_cap, "%s (the backend has no Q8_Z kernels)",
                            natural ? "asymmetric zero points" : "act-order");
    if (!blocks && !caps->f32) {
        free(gidx);
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: tensor %s: this 8-bit GPTQ matrix [%lld, %lld] (group size %lld) "
                         "does not map onto Q8_0 / Q8_Z blocks the backend runs: %s (set "
                         "allow_fallback or dequantize_weights in llmrt_model_params to "
                         "dequantise it to fp32 at load)",
                         file, prefix, (long long)N, (long long)K, (long long)gs,
                         why && why[0] ? why : "see gptq8.h");
    }
    if (blocks) {
        /* rows of K/32 blocks in stored order (act-order: perm = stable argsort of g_idx, so
         * each group is contiguous), then perm int32 [K] for act-order */
        int64_t  nb = K / Q8_0_BLOCK, bb = bt == LLMRT_DTYPE_Q8_0 ? Q8_0_BYTES : Q8_Z_BYTES;
        uint64_t bytes;
        if (!ck_mul_u64((uint64_t)(N * nb), (uint64_t)bb, &bytes) ||
            bytes > (uint64_t)SIZE_MAX / 2 - (uint64_t)K * 4 - 4) {
            free(gidx);
            return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: %s is too large", file, prefix);
        }
        uint64_t perm_at = (bytes + 3) & ~(uint64_t)3;
        uint8_t *buf     = malloc((size_t)(perm_at + (natural ? 0 : (uint64_t)K * 4)) + 1);
        if (!buf) {
            free(gidx);
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                             prefix);
        }
        int32_t *perm = natural ? NULL : (int32_t *)(buf + perm_at);
        if (perm) { /* counting sort by group: stable, so each group keeps its input order */
            int64_t *next = malloc((size_t)G * sizeof *next);
            if (!next) {
                free(buf);
                free(gidx);
                return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s",
                                 file, prefix);
            }
            for (int64_t g = 0; g < G; g++) next[g] = g * gs;
            for (int64_t k = 0; k < K; k++) perm[next[gidx[k]]++] = (int32_t)k;
            free(next);
        }
        for (int64_t n = 0; n < N; n++)
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *blk = buf + (n * nb + b) * bb;
                int64_t  g   = (b * Q8_0_BLOCK) / gs;
                uint16_t d;
                scale_f16(t->scales, (uint64_t)(g * N + n), &d); /* checked above */
                memcpy(blk, &d, 2);
                int z = zero_at(cfg, t->qzeros, N, g, n);
                if (bt == LLMRT_DTYPE_Q8_Z) blk[2] = (uint8_t)z, blk[3] = 0;
                uint8_t *q = blk + (bt == LLMRT_DTYPE_Q8_Z ? 4 : 2);
                for (int j = 0; j < Q8_0_BLOCK; j++) {
                    int64_t k  = perm ? perm[b * Q8_0_BLOCK + j] : b * Q8_0_BLOCK + j;
                    int     qv = q_at(t->qweight, N, k, n);
                    q[j] = bt == LLMRT_DTYPE_Q8_Z ? (uint8_t)qv : (uint8_t)(int8_t)(qv - SYM_ZERO);
                }
            }
        free(gidx);
        *out = (llmrt_gptq8_matrix){.data = buf, .dtype = bt, .perm = perm};
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
    *out = (llmrt_gptq8_matrix){.data = f, .dtype = LLMRT_DTYPE_F32};
    return LLMRT_OK;
}
