/* GPTQ checkpoints (AutoGPTQ / GPTQModel / optimum layout, reference/kernels.md §3): the
 * quantization config, and the conversion of one quantized Linear (qweight, qzeros, scales,
 * g_idx, bias) into the internal 4-bit format (q4.h), with every shape and value checked.
 *
 * Dequantisation (AutoGPTQ's torch fallback), K = in_features, N = out_features:
 *   q[k][n]   = (qweight[k/8][n] >> 4*(k%8)) & 15          qweight int32 [K/8, N]
 *   zst[g][n] = (qzeros[g][n/8]  >> 4*(n%8)) & 15          qzeros  int32 [G, N/8]
 *   z         = zst (gptq_v2) | for checkpoint_format "gptq" (v1), the nibble of the whole word
 *               qzeros[g][n/8] + 0x11111111 (mod 2^32): v1 is v2 - 0x11111111 word-wise, a zero
 *               of 0 borrowing from the next nibble (GPTQModel, transformers; gptq.c says why)
 *   w[k][n]   = scales[g_idx[k]][n] * (q[k][n] - z[g_idx[k]][n])    scales fp16 [G, N]
 * Internal format: row n of W = column n of the above; qs[n][j] = q[perm[j]][n] with
 * perm = stable argsort(g_idx) when g_idx is not k / group_size (act-order), so each group's
 * group_size columns are contiguous; zeros are INT (0..15). */
#ifndef LLMRT_MODEL_GPTQ_H
#define LLMRT_MODEL_GPTQ_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"
#include "model.h"
#include "../format/safetensors.h"

typedef struct llmrt_gptq_config {
    bool enabled;       /* a GPTQ quantization config was found */
    int32_t bits;       /* 4 (gptq.c: the internal 4-bit format) or 8 (gptq8.h) */
    int32_t group_size; /* -1 (one group over K) or > 0 */
    bool desc_act;      /* informational: g_idx is always honoured */
    bool sym;           /* informational: the zeros are always read */
    bool v2;            /* checkpoint_format "gptq_v2" (zeros stored as is) */
    bool lm_head;       /* lm_head is quantized too */
    char weights_file[256]; /* quantize_config.json "model_file_base_name" + ".safetensors"
                             * (older AutoGPTQ exports), or "" */
    char what[4200];    /* where the config came from, for messages */
} llmrt_gptq_config;

/* Parses a quantization config object (config.json "quantization_config" or the whole
 * quantize_config.json). Rejects other quant_methods, bits other than 4 and 8, bad group sizes,
 * unknown checkpoint formats, non-int32 packing and GPTQModel "dynamic" overrides. */
llmrt_status llmrt_gptq_config_parse(const cJSON *qc, const char *what, llmrt_gptq_config *cfg,
                                     llmrt_error *err);

/* Reads config.json's "quantization_config", else quantize_config.json, in `dir`.
 * cfg->enabled is false when there is neither. */
llmrt_status llmrt_gptq_config_load(const char *dir, llmrt_gptq_config *cfg, llmrt_error *err);

/* The stored tensors of one quantized Linear. g_idx and bias may be NULL (g_idx then defaults
 * to k / group_size); qzeros and scales may be NULL only to be reported as missing. */
typedef struct llmrt_gptq_tensors {
    const llmrt_st_tensor *qweight, *qzeros, *scales, *g_idx, *bias;
} llmrt_gptq_tensors;

/* Validates the tensors of 4-bit Linear `prefix` (e.g. "model.layers.0.mlp.up_proj") against
 * N = out_features, K = in_features and converts them. Errors name `file` and the tensor:
 * LLMRT_ERR_MODEL_MISMATCH for shapes, counts and ranges, LLMRT_ERR_UNSUPPORTED for dtypes. */
llmrt_status llmrt_gptq_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                                const llmrt_gptq_tensors *t, int64_t N, int64_t K,
                                llmrt_q4_tensor *out, llmrt_error *err);

/* Shared with gptq8.c: tensor `prefix.suffix` must exist with n_dims dims [d0(, d1)]; must be
 * an integer (I32/U32) or a float (F16/BF16/F32) tensor; element i of a float tensor as fp32. */
llmrt_status llmrt_gptq_check_shape(const char *file, const char *prefix, const char *suffix,
                                    const llmrt_st_tensor *t, int n_dims, uint64_t d0, uint64_t d1,
                                    llmrt_error *err);
llmrt_status llmrt_gptq_check_dtype(const char *file, const char *prefix, const char *suffix,
                                    const llmrt_st_tensor *t, bool want_int, llmrt_error *err);
float        llmrt_gptq_rd_float(const llmrt_st_tensor *t, uint64_t i);

#endif
