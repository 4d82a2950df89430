/* AWQ (AutoAWQ GEMM packing) into the internal 4-bit format: awq.h. */
#include "awq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/checked_math.h"
#include "../core/half.h"
#include "../core/json_util.h"

#define PACK 8 /* 4-bit values per int32 */

/* nibble i of a word holds column ORDER[i] of its 8 (AutoAWQ's order_map) */
static const int ORDER[PACK] = {0, 2, 4, 6, 1, 3, 5, 7};

static uint32_t rd_u32(const uint8_t *p, uint64_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

/* The i32 value of the first of `a`, `b` present in qc (AutoAWQ's and transformers' names). */
static llmrt_status get_i32_either(const cJSON *qc, const char *a, const char *b, int32_t *out,
                                   const char *what, llmrt_error *err) {
    const char *key = cJSON_GetObjectItemCaseSensitive(qc, a) ? a : b;
    if (!cJSON_GetObjectItemCaseSensitive(qc, key))
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: \"%s\" (or \"%s\") is missing", what,
                         a, b);
    return llmrt_json_get_i32(qc, key, true, INT32_MIN, INT32_MAX, out, what, err);
}

llmrt_status llmrt_awq_config_parse(const cJSON *qc, const char *what, llmrt_gptq_config *cfg,
                                    llmrt_error *err) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->what, sizeof cfg->what, "%s", what);
    int32_t bits = 0, gs = 0;
    LLMRT_TRY(get_i32_either(qc, "bits", "w_bit", &bits, what, err));
    if (bits != 4)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: AWQ bits = %d is not supported (supported: 4)", what, bits);
    LLMRT_TRY(get_i32_either(qc, "group_size", "q_group_size", &gs, what, err));
    if (gs != -1 && (gs <= 0 || gs > (1 << 24)))
        return llmrt_err(err, LLMRT_ERR_FORMAT,
                         "%s: group_size = %d is invalid (-1 or a positive column count)", what,
                         gs);
    bool zero_point = true;
    LLMRT_TRY(llmrt_json_get_bool(qc, "zero_point", false, &zero_point, what, err));
    if (!zero_point)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: AWQ zero_point = false is not supported (supported: true)", what);
    const char *version = NULL;
    LLMRT_TRY(llmrt_json_get_string(qc, "version", false, &version, what, err));
    if (version && strcasecmp(version, "gemm") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: AWQ version \"%.64s\" is not supported (supported: gemm)", what,
                         version);
    cfg->bits = bits;
    cfg->group_size = gs;
    cfg->sym = false;
    cfg->awq = true;
    cfg->enabled = true;
    return LLMRT_OK;
}

llmrt_status llmrt_awq_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                               const llmrt_gptq_tensors *t, int64_t N, int64_t K,
                               llmrt_q4_tensor *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    if (N <= 0 || K <= 0)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: %s: empty matrix", file, prefix);
    if (N % PACK != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s.qweight: out_features %lld is not a multiple of %d", file,
                         prefix, (long long)N, PACK);
    if (K % 2 != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: %s: in_features %lld is odd (two 4-bit columns per byte)", file,
                         prefix, (long long)K);
    int64_t gs = cfg->group_size == -1 ? K : cfg->group_size;
    if (K % gs != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: %s: in_features %lld is not a multiple of group_size %lld", file,
                         prefix, (long long)K, (long long)gs);
    int64_t G = K / gs;
    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "qweight", t->qweight, 2, (uint64_t)K,
                                     (uint64_t)(N / PACK), err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "qweight", t->qweight, true, err));
    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "qzeros", t->qzeros, 2, (uint64_t)G,
                                     (uint64_t)(N / PACK), err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "qzeros", t->qzeros, true, err));
    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "scales", t->scales, 2, (uint64_t)G, (uint64_t)N,
                                     err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "scales", t->scales, false, err));
    if (t->g_idx)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s.g_idx: AWQ checkpoints have no g_idx", file, prefix);
    if (t->bias) {
        LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "bias", t->bias, 1, (uint64_t)N, 0, err));
        LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "bias", t->bias, false, err));
    }

    /* one allocation: qs [N, K/2], scales [N, G] fp16, zeros [N, G] u8 */
    uint64_t qs_b, z_b, total;
    if (!ck_mul_u64((uint64_t)N, (uint64_t)K / 2, &qs_b) ||
        !ck_mul_u64((uint64_t)N, (uint64_t)G, &z_b) || !ck_mul_u64(z_b, 3, &total) ||
        !ck_add_u64(total, qs_b + 2, &total) || total > (uint64_t)SIZE_MAX / 2)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: %s is too large", file, prefix);
    uint8_t *mem = calloc(1, (size_t)total);
    if (!mem)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                         prefix);
    uint8_t *qs = mem;
    uint16_t *scales = (uint16_t *)(mem + ((qs_b + 1) & ~(uint64_t)1));
    uint8_t *zeros = (uint8_t *)(scales + z_b);

    /* qweight [K, N/8] -> qs [N, K/2]: column k of row n in nibble k%2 of byte k/2 */
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < N / PACK; c++) {
            uint32_t w = rd_u32(t->qweight->data, (uint64_t)(k * (N / PACK) + c));
            for (int i = 0; i < PACK; i++) {
                int64_t n = PACK * c + ORDER[i];
                qs[n * (K / 2) + k / 2] |= (uint8_t)(((w >> (4 * i)) & 0x0f) << (4 * (k & 1)));
            }
        }
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            uint64_t i = (uint64_t)(g * N + n);
            llmrt_status ss = llmrt_gptq_scale_f16(t->scales, i, g, n, file, prefix,
                                                   &scales[n * G + g], err);
            if (ss != LLMRT_OK) {
                free(mem);
                return ss;
            }
        }
    for (int64_t g = 0; g < G; g++)
        for (int64_t c = 0; c < N / PACK; c++) {
            uint32_t w = rd_u32(t->qzeros->data, (uint64_t)(g * (N / PACK) + c));
            for (int i = 0; i < PACK; i++)
                zeros[(PACK * c + ORDER[i]) * G + g] = (uint8_t)((w >> (4 * i)) & 0x0f);
        }
    if (t->bias) {
        llmrt_status bs = llmrt_gptq_bias_f32(t->bias, N, file, prefix, &out->bias, err);
        if (bs != LLMRT_OK) {
            free(mem);
            return bs;
        }
    }
    out->mem = mem;
    out->q = (llmrt_q4_host){
        .rows = N,
        .cols = K,
        .group_size = (int32_t)gs,
        .zero_kind = LLMRT_Q4_ZERO_INT,
        .qs = qs,
        .scales = scales,
        .zeros = zeros,
    };
    return LLMRT_OK;
}
