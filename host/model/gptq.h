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
 * with G = ceil(K / group_size): GPTQModel (7.7, TorchLinear: SUPPORTS_AUTO_PADDING) writes and
 * reads in_features that are not a multiple of the group size, the last group short.
 * Internal format: row n of W = column n of the above; qs[n][j] = q[perm[j]][n] with
 * perm = stable argsort(g_idx) when g_idx is not k / group_size (act-order), so each group's
 * group_size columns are contiguous; zeros are INT (0..15). A short last group is padded to
 * group_size stored columns of perm -1 (input 0, q4.h): cols = G * group_size, x_cols = K. */
#ifndef LLMRT_MODEL_GPTQ_H
#define LLMRT_MODEL_GPTQ_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"
#include "model.h"
#include "../format/safetensors.h"

/* One GPTQModel "dynamic" rule: "[+:|-:]regex" -> overrides for the modules it matches (Python
 * re.match: anchored at the start only; the first matching rule in file order decides). */
#define LLMRT_GPTQ_MAX_DYNAMIC 32
typedef struct llmrt_gptq_override {
    char    regex[384];    /* POSIX extended regex, "^(...)": Python's \d, \w, \s translated */
    char    pattern[160];  /* as written (truncated), for messages */
    bool    negative;      /* "-:": the matched modules are not quantized */
    int32_t bits;          /* 0: the base config's */
    int32_t group_size;    /* 0: the base config's */
    int8_t  sym, desc_act; /* -1: the base config's */
} llmrt_gptq_override;

typedef struct llmrt_gptq_config {
    bool enabled;       /* a GPTQ quantization config was found */
    int32_t bits;       /* 4 (gptq.c: the internal 4-bit format) or 8 (gptq8.h) */
    int32_t group_size; /* -1 (one group over K) or > 0 */
    bool desc_act;      /* informational: g_idx is always honoured */
    bool sym;           /* informational: the zeros are always read */
    bool v2;            /* checkpoint_format "gptq_v2" (zeros stored as is) */
    bool lm_head;       /* lm_head is quantized too */
    bool awq;           /* quant_method "awq" (awq.h): AutoAWQ GEMM packing, not GPTQ's */
    char weights_file[256]; /* quantize_config.json "model_file_base_name" + ".safetensors"
                             * (older AutoGPTQ exports), or "" */
    char what[4200];    /* where the config came from, for messages */
    int32_t             n_dynamic; /* GPTQModel "dynamic" per-module overrides */
    llmrt_gptq_override dynamic[LLMRT_GPTQ_MAX_DYNAMIC];
} llmrt_gptq_config;

/* Parses a quantization config object (config.json "quantization_config" or the whole
 * quantize_config.json). Rejects other quant_methods, bits other than 4 and 8, bad group sizes,
 * unknown checkpoint formats and non-int32 packing; parses GPTQModel "dynamic" overrides
 * (gptq_dynamic.c). */
llmrt_status llmrt_gptq_config_parse(const cJSON *qc, const char *what, llmrt_gptq_config *cfg,
                                     llmrt_error *err);

/* GPTQModel "dynamic" (an object of rules, gptq_dynamic.c): every pattern must compile and
 * every override be a supported bits / group_size / sym / desc_act; keys that only steer the
 * quantiser (damp_percent, ...) are ignored, keys that change the file layout (format,
 * pack_dtype, quant_method) are refused unless equal to the base config's. */
llmrt_status llmrt_gptq_dynamic_parse(const cJSON *dyn, llmrt_gptq_config *cfg, llmrt_error *err);

/* The config that applies to Linear `module` ("model.layers.1.mlp.down_proj", "lm_head"): the
 * base one with the first matching dynamic rule's overrides; *excluded when that rule is
 * negative ("-:": the module is stored unquantized). */
void llmrt_gptq_config_for(const llmrt_gptq_config *cfg, const char *module,
                           llmrt_gptq_config *out, bool *excluded);

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
/* Shared with gptq8.c: in_features a multiple of `pack` (values per int32 word), out_features a
 * multiple of `pack`; *gs = the group size in rows, *G = ceil(in_features / gs) groups: the last
 * one is short when in_features is not a multiple of gs (GPTQModel writes such layers: g_idx =
 * k // gs). */
llmrt_status llmrt_gptq_check_dims(const llmrt_gptq_config *cfg, const char *file,
                                   const char *prefix, int64_t N, int64_t K, int pack, int64_t *gs,
                                   int64_t *G, llmrt_error *err);
/* Rows of group g of K rows in groups of gs: gs, the last group K - (G - 1) * gs. */
int64_t llmrt_gptq_group_rows(int64_t K, int64_t gs, int64_t g);
/* Shared with awq.c: element i = (g, n) of a checked scales tensor as fp16 bits, refused when an
 * fp32/bf16 scale is not exactly an fp16 value (the 4-bit format holds fp16 scales). */
llmrt_status llmrt_gptq_scale_f16(const llmrt_st_tensor *scales, uint64_t i, int64_t g, int64_t n,
                                  const char *file, const char *prefix, uint16_t *out,
                                  llmrt_error *err);
/* Shared with awq.c: a checked [N] bias tensor as a malloc'd fp32 array (*out). */
llmrt_status llmrt_gptq_bias_f32(const llmrt_st_tensor *bias, int64_t N, const char *file,
                                 const char *prefix, float **out, llmrt_error *err);

#endif
