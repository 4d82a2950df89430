/* GPTQ: quantization config and the conversion of quantized Linears into the internal 4-bit
 * format (gptq.h). Every size is derived with overflow-checked math; every error names the
 * file and the tensor or key. */
#include "gptq.h"

#include "awq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/checked_math.h"
#include "../core/half.h"
#include "../core/json_util.h"
#include "../core/regular_file.h"

#define CONFIG_MAX_BYTES (4u << 20)

/* --------------------------------------------------------------------------------------------- */
/* config                                                                                        */
/* --------------------------------------------------------------------------------------------- */

llmrt_status llmrt_gptq_config_parse(const cJSON *qc, const char *what, llmrt_gptq_config *cfg,
                                     llmrt_error *err) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->what, sizeof cfg->what, "%s", what);
    if (!cJSON_IsObject(qc))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: the quantization config must be an object",
                         what);
    const char *method = NULL;
    LLMRT_TRY(llmrt_json_get_string(qc, "quant_method", false, &method, what, err));
    if (method && strcasecmp(method, "awq") == 0) return llmrt_awq_config_parse(qc, what, cfg, err);
    if (method && strcasecmp(method, "gptq") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: quant_method \"%.64s\" is not supported (supported: gptq, awq)",
                         what, method);
    int32_t bits = 0;
    LLMRT_TRY(llmrt_json_get_i32(qc, "bits", true, INT32_MIN, INT32_MAX, &bits, what, err));
    if (bits == 2 || bits == 3)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: bits = %d is not supported (supported: 4, 8)", what, bits);
    if (bits != 4 && bits != 8)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: bits = %d is invalid (GPTQ uses 2, 3, 4 or 8)",
                         what, bits);
    cfg->bits = bits;
    int32_t gs = 0;
    LLMRT_TRY(llmrt_json_get_i32(qc, "group_size", true, INT32_MIN, INT32_MAX, &gs, what, err));
    if (gs != -1 && (gs <= 0 || gs > (1 << 24)))
        return llmrt_err(err, LLMRT_ERR_FORMAT,
                         "%s: group_size = %d is invalid (-1 or a positive column count)", what,
                         gs);
    cfg->group_size = gs;
    cfg->sym = true;
    LLMRT_TRY(llmrt_json_get_bool(qc, "desc_act", false, &cfg->desc_act, what, err));
    LLMRT_TRY(llmrt_json_get_bool(qc, "sym", false, &cfg->sym, what, err));
    LLMRT_TRY(llmrt_json_get_bool(qc, "lm_head", false, &cfg->lm_head, what, err));
    bool marlin = false;
    LLMRT_TRY(llmrt_json_get_bool(qc, "is_marlin_format", false, &marlin, what, err));
    if (marlin)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: is_marlin_format checkpoints are not supported (re-save as gptq)",
                         what);

    const char *fmt = NULL, *fmt_key = "checkpoint_format";
    LLMRT_TRY(llmrt_json_get_string(qc, "checkpoint_format", false, &fmt, what, err));
    if (!fmt) {
        fmt_key = "format"; /* newer GPTQModel */
        LLMRT_TRY(llmrt_json_get_string(qc, "format", false, &fmt, what, err));
    }
    if (!fmt || strcmp(fmt, "gptq") == 0)
        cfg->v2 = false;
    else if (strcmp(fmt, "gptq_v2") == 0)
        cfg->v2 = true;
    else
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: %s \"%.64s\" is not supported (supported: gptq, gptq_v2)", what,
                         fmt_key, fmt);

    const char *pack = NULL;
    LLMRT_TRY(llmrt_json_get_string(qc, "pack_dtype", false, &pack, what, err));
    if (pack && strcmp(pack, "int32") != 0 && strcmp(pack, "torch.int32") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: pack_dtype \"%.64s\" is not supported (supported: int32)", what,
                         pack);
    const char *base = NULL;
    LLMRT_TRY(llmrt_json_get_string(qc, "model_file_base_name", false, &base, what, err));
    if (base) { /* a file of the checkpoint directory: no path, no hidden or empty name */
        size_t len = strlen(base);
        if (len == 0 || len + sizeof ".safetensors" > sizeof cfg->weights_file ||
            strchr(base, '/') || strchr(base, '\\') || base[0] == '.')
            return llmrt_err(err, LLMRT_ERR_FORMAT,
                             "%s: model_file_base_name \"%.64s\" must name a file in the "
                             "checkpoint directory (no path, at most %zu characters)",
                             what, base, sizeof cfg->weights_file - sizeof ".safetensors");
        snprintf(cfg->weights_file, sizeof cfg->weights_file, "%s.safetensors", base);
    }
    LLMRT_TRY(llmrt_gptq_dynamic_parse(cJSON_GetObjectItemCaseSensitive(qc, "dynamic"), cfg, err));
    cfg->enabled = true;
    return LLMRT_OK;
}

llmrt_status llmrt_gptq_config_load(const char *dir, llmrt_gptq_config *cfg, llmrt_error *err) {
    memset(cfg, 0, sizeof *cfg);
    char path[4096], what[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = NULL;
    LLMRT_TRY(llmrt_json_parse_file(path, CONFIG_MAX_BYTES, &root, err));
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    llmrt_status s = LLMRT_OK;
    if (qc && !cJSON_IsNull(qc)) {
        snprintf(what, sizeof what, "%s: quantization_config", path);
        s = llmrt_gptq_config_parse(qc, what, cfg, err);
        cJSON_Delete(root);
        return s;
    }
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    int present = llmrt_probe_regular_file(path, err);
    if (present < 0) return LLMRT_ERR_IO;
    if (present == 0) return LLMRT_OK; /* not quantized */
    LLMRT_TRY(llmrt_json_parse_file(path, CONFIG_MAX_BYTES, &root, err));
    s = llmrt_gptq_config_parse(root, path, cfg, err);
    cJSON_Delete(root);
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* tensors                                                                                       */
/* --------------------------------------------------------------------------------------------- */

static uint32_t rd_u32(const uint8_t *p, uint64_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

/* Element i of a float tensor (F16, BF16 or F32) as fp32. */
float llmrt_gptq_rd_float(const llmrt_st_tensor *t, uint64_t i) {
    uint16_t h;
    float f;
    switch (t->dtype) {
    case LLMRT_DTYPE_F16:
        memcpy(&h, t->data + 2 * i, 2);
        return llmrt_f16_to_f32(h);
    case LLMRT_DTYPE_BF16:
        memcpy(&h, t->data + 2 * i, 2);
        return llmrt_bf16_to_f32(h);
    default:
        memcpy(&f, t->data + 4 * i, 4);
        return f;
    }
}

llmrt_status llmrt_gptq_check_shape(const char *file, const char *prefix, const char *suffix,
                                const llmrt_st_tensor *t, int n_dims, uint64_t d0, uint64_t d1,
                                llmrt_error *err) {
    if (!t)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s.%s is missing", file, prefix,
                         suffix);
    bool ok = t->n_dims == n_dims && t->shape[0] == d0 && (n_dims < 2 || t->shape[1] == d1);
    if (ok) return LLMRT_OK;
    char got[96] = "[";
    for (int i = 0; i < t->n_dims && i < 4; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? ", " : "",
                 (unsigned long long)t->shape[i]);
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s]", t->n_dims > 4 ? ", ..." : "");
    if (n_dims == 2)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s.%s has shape %s, expected [%llu, %llu]", file, prefix,
                         suffix, got, (unsigned long long)d0, (unsigned long long)d1);
    return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                     "%s: tensor %s.%s has shape %s, expected [%llu]", file, prefix, suffix, got,
                     (unsigned long long)d0);
}

llmrt_status llmrt_gptq_check_dtype(const char *file, const char *prefix, const char *suffix,
                                const llmrt_st_tensor *t, bool want_int, llmrt_error *err) {
    bool ok = want_int ? (t->dtype == LLMRT_DTYPE_I32 || t->dtype == LLMRT_DTYPE_U32)
                       : (t->dtype == LLMRT_DTYPE_F16 || t->dtype == LLMRT_DTYPE_BF16 ||
                          t->dtype == LLMRT_DTYPE_F32);
    if (ok) return LLMRT_OK;
    return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %s.%s has dtype %s (supported: %s)",
                     file, prefix, suffix, llmrt_dtype_name(t->dtype),
                     want_int ? "I32" : "F16, BF16, F32");
}

/* A v1 ("gptq") qzeros word as v2 (the zero points themselves). The writers store v1 as
 * v2 - 0x11111111 on the whole 32-bit word: GPTQModel packs the raw zero points and, for
 * format "gptq", subtracts 0x11111111 from each int32 word (convert_gptq_v2_to_v1_format_module,
 * gptqmodel/utils/model.py; 0x01010101 for 8 bits), so a zero of 0 becomes nibble 0xF and
 * borrows 1 from the next nibble up. Its loader, and transformers/optimum through it, add the
 * constant back to the word (convert_gptq_v1_to_v2_format_module), which undoes every borrow:
 * the word-wise add is the exact inverse and gives every zero in 0..15. Reading each nibble + 1
 * instead (AutoGPTQ's qlinear_cuda torch fallback) gives 16 for a zero of 0 and one too many for
 * the nibble above it. AutoGPTQ 0.7's own pack is lossy there (it ORs (zero - 1) as uint32
 * shifted into the word, so a zero of 0 sets every higher nibble of the word to 0xF): such a
 * word has no exact reading; the word-wise add gives 0 for the zero that was 0 and 1 for the
 * higher columns of the word, as GPTQModel and transformers read it. No borrow happens when no
 * zero is 0 (always true for sym checkpoints, whose zeros are 8), and then both readings agree. */
static uint32_t gptq_v1_to_v2_word(const llmrt_gptq_config *cfg, uint32_t word) {
    return cfg->v2 ? word : word + 0x11111111u; /* modulo 2^32, as on the int32 tensor */
}

void llmrt_q4_tensor_release(llmrt_q4_tensor *t) {
    free(t->mem);
    free(t->bias);
    memset(t, 0, sizeof *t);
}

llmrt_status llmrt_gptq_check_dims(const llmrt_gptq_config *cfg, const char *file,
                                   const char *prefix, int64_t N, int64_t K, int pack,
                                   int64_t *gs_out, int64_t *G_out, llmrt_error *err) {
    if (K % pack != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s.qweight: in_features %lld is not a multiple of %d", file,
                         prefix, (long long)K, pack);
    if (N % pack != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s.qzeros: out_features %lld is not a multiple of %d", file,
                         prefix, (long long)N, pack);
    int64_t gs = cfg->group_size == -1 ? K : cfg->group_size;
    if (gs <= 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: %s: group_size %lld", file, prefix,
                         (long long)gs);
    /* GPTQModel (7.7: TorchLinear, SUPPORTS_AUTO_PADDING) writes and reads in_features that are
     * not a multiple of the group size: ceil(K / gs) groups, g_idx = k // gs, the last group short */
    *gs_out = gs;
    *G_out  = (K + gs - 1) / gs;
    return LLMRT_OK;
}

int64_t llmrt_gptq_group_rows(int64_t K, int64_t gs, int64_t g) {
    int64_t G = (K + gs - 1) / gs;
    return g == G - 1 ? K - (G - 1) * gs : gs;
}

llmrt_status llmrt_gptq_scale_f16(const llmrt_st_tensor *scales, uint64_t i, int64_t g, int64_t n,
                                  const char *file, const char *prefix, uint16_t *out,
                                  llmrt_error *err) {
    if (scales->dtype == LLMRT_DTYPE_F16) {
        memcpy(out, scales->data + 2 * i, 2);
        return LLMRT_OK;
    }
    float    f = llmrt_gptq_rd_float(scales, i);
    uint16_t h = llmrt_f32_to_f16(f);
    if (llmrt_f16_to_f32(h) != f)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: tensor %s.scales[%lld][%lld] = %g is not exactly representable in "
                         "fp16",
                         file, prefix, (long long)g, (long long)n, (double)f);
    *out = h;
    return LLMRT_OK;
}

llmrt_status llmrt_gptq_bias_f32(const llmrt_st_tensor *bias, int64_t N, const char *file,
                                 const char *prefix, float **out, llmrt_error *err) {
    *out = malloc((size_t)N * sizeof(float));
    if (!*out)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                         prefix);
    for (int64_t n = 0; n < N; n++) (*out)[n] = llmrt_gptq_rd_float(bias, (uint64_t)n);
    return LLMRT_OK;
}

llmrt_status llmrt_gptq_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                                const llmrt_gptq_tensors *t, int64_t N, int64_t K,
                                llmrt_q4_tensor *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    if (N <= 0 || K <= 0)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: %s: empty matrix", file, prefix);
    const int pack = 32 / 4; /* 4-bit values per int32 */
    int64_t   gs;
    int64_t   G;
    LLMRT_TRY(llmrt_gptq_check_dims(cfg, file, prefix, N, K, pack, &gs, &G, err));
    /* a short last group (K % gs != 0) is padded to gs stored columns of perm -1 (input 0):
     * the internal format holds whole groups (q4.h) */
    int64_t Kp = G * gs, Kx = K;
    bool    short_last = Kp != K;
    if (short_last && gs % 2 != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: %s: in_features %lld in groups of an odd group_size %lld", file,
                         prefix, (long long)K, (long long)gs);
    K = Kp; /* stored columns from here on; Kx input columns */

    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "qweight", t->qweight, 2, (uint64_t)(Kx / pack), (uint64_t)N,
                          err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "qweight", t->qweight, true, err));
    LLMRT_TRY(
        llmrt_gptq_check_shape(file, prefix, "qzeros", t->qzeros, 2, (uint64_t)G, (uint64_t)(N / pack), err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "qzeros", t->qzeros, true, err));
    LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "scales", t->scales, 2, (uint64_t)G, (uint64_t)N, err));
    LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "scales", t->scales, false, err));
    if (t->g_idx) {
        LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "g_idx", t->g_idx, 1, (uint64_t)Kx, 0, err));
        LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "g_idx", t->g_idx, true, err));
    }
    if (t->bias) {
        LLMRT_TRY(llmrt_gptq_check_shape(file, prefix, "bias", t->bias, 1, (uint64_t)N, 0, err));
        LLMRT_TRY(llmrt_gptq_check_dtype(file, prefix, "bias", t->bias, false, err));
    }

    /* one allocation: qs [N, K/2], scales [N, G] fp16, zeros [N, G] u8, perm [K], counts [G] */
    uint64_t qs_b, sc_b, z_b, total;
    if (!ck_mul_u64((uint64_t)N, (uint64_t)K / 2, &qs_b) ||
        !ck_mul_u64((uint64_t)N, (uint64_t)G, &z_b) || !ck_mul_u64(z_b, 2, &sc_b) ||
        !ck_add_u64(qs_b, sc_b, &total) || !ck_add_u64(total, z_b, &total) ||
        !ck_add_u64(total, (uint64_t)K * 4 + (uint64_t)G * 8 + 16, &total) ||
        total > (uint64_t)SIZE_MAX / 2)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: %s is too large", file, prefix);
    uint8_t *mem = malloc((size_t)total);
    if (!mem)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                         prefix);
    uint8_t *qs = mem;
    uint16_t *scales = (uint16_t *)(mem + ((qs_b + 1) & ~(uint64_t)1));
    uint8_t *zeros = (uint8_t *)(scales + N * G);
    int32_t *perm = (int32_t *)(zeros + ((z_b + 3) & ~(uint64_t)3));
    int64_t *fill = (int64_t *)(((uintptr_t)(perm + K) + 7) & ~(uintptr_t)7);
    bool ok = (uint8_t *)(fill + G) <= mem + total;
    if (!ok) {
        free(mem);
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: %s: layout", file, prefix);
    }

    /* g_idx: every value in [0, G), every group exactly gs rows (the last one K - (G-1) gs);
     * perm = stable argsort, then -1 for a short last group's padding */
    bool natural = true;
    memset(fill, 0, (size_t)G * sizeof *fill);
    if (t->g_idx) {
        for (int64_t k = 0; k < Kx; k++) {
            int32_t g = (int32_t)rd_u32(t->g_idx->data, (uint64_t)k);
            if (g < 0 || g >= G) {
                free(mem);
                return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                                 "%s: tensor %s.g_idx[%lld] = %d is outside [0, %lld)", file,
                                 prefix, (long long)k, g, (long long)G);
            }
            fill[g]++;
            natural = natural && g == k / gs;
        }
        for (int64_t g = 0; g < G; g++)
            if (fill[g] != llmrt_gptq_group_rows(Kx, gs, g)) {
                int64_t n = fill[g];
                free(mem);
                return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                                 "%s: tensor %s.g_idx: group %lld has %lld rows, expected %lld "
                                 "(group_size %lld, in_features %lld)",
                                 file, prefix, (long long)g, (long long)n,
                                 (long long)llmrt_gptq_group_rows(Kx, gs, g), (long long)gs,
                                 (long long)Kx);
            }
        if (!natural) {
            for (int64_t g = 0; g < G; g++)
                fill[g] = g * gs; /* next slot of each group */
            for (int64_t k = 0; k < Kx; k++) {
                int32_t g = (int32_t)rd_u32(t->g_idx->data, (uint64_t)k);
                perm[fill[g]++] = (int32_t)k;
            }
        }
    }
    if (short_last && natural)
        for (int64_t k = 0; k < Kx; k++) perm[k] = (int32_t)k;
    for (int64_t j = Kx; j < K; j++) perm[j] = -1; /* the short group's padding */

    /* qweight [K/8, N] -> rows of W in natural column order: the 8 nibbles of word
     * qweight[r][n] (LSB first) are columns 8r..8r+7, which is exactly bytes 4r..4r+3 of the
     * internal row (column 2c low nibble of byte c) in little-endian order. */
    for (int64_t n = 0; short_last && n < N; n++)
        memset(qs + n * (K / 2) + Kx / 2, 0, (size_t)(K - Kx) / 2);
    for (int64_t r = 0; r < Kx / pack; r++)
        for (int64_t n = 0; n < N; n++) {
            uint32_t w = rd_u32(t->qweight->data, (uint64_t)(r * N + n));
            uint8_t *d = qs + n * (K / 2) + 4 * r;
            d[0] = (uint8_t)w;
            d[1] = (uint8_t)(w >> 8);
            d[2] = (uint8_t)(w >> 16);
            d[3] = (uint8_t)(w >> 24);
        }
    if (!natural) { /* stored column j = input column perm[j] */
        uint8_t *row = malloc((size_t)K / 2);
        if (!row) {
            free(mem);
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", file,
                             prefix);
        }
        for (int64_t n = 0; n < N; n++) {
            uint8_t *d = qs + n * (K / 2);
            memcpy(row, d, (size_t)K / 2);
            memset(d, 0, (size_t)K / 2);
            for (int64_t j = 0; j < K; j++) {
                int64_t k = perm[j];
                if (k < 0) continue; /* padding: nibble 0 */
                int q = (row[k >> 1] >> (4 * (k & 1))) & 0x0f;
                d[j >> 1] |= (uint8_t)(q << (4 * (j & 1)));
            }
        }
        free(row);
    }

    /* scales [G, N] -> [N, G] fp16; zeros [G, N/8] packed along N -> [N, G] */
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            uint64_t i = (uint64_t)(g * N + n);
            llmrt_status ss = llmrt_gptq_scale_f16(t->scales, i, g, n, file, prefix,
                                                   &scales[n * G + g], err);
            if (ss != LLMRT_OK) {
                free(mem);
                return ss;
            }
            uint32_t zw = rd_u32(t->qzeros->data, (uint64_t)(g * (N / pack) + n / pack));
            zeros[n * G + g] = (uint8_t)((gptq_v1_to_v2_word(cfg, zw) >> (4 * (n % pack))) & 0x0f);
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
        .offsets = NULL,
        .perm = natural && !short_last ? NULL : perm,
        .x_cols = short_last ? Kx : 0,
    };
    return LLMRT_OK;
}
