/* AWQ checkpoints (AutoAWQ "GEMM" packing; transformers' AwqConfig): the quantization config and
 * the conversion of one quantized Linear into the internal 4-bit format (q4.h), losslessly.
 *
 * Stored (K = in_features, N = out_features, G = K / group_size), AutoAWQ WQLinear_GEMM:
 *   qweight int32 [K, N/8]   nibble i (LSB first) of qweight[k][c] = q[k][8c + ORDER[i]]
 *   qzeros  int32 [G, N/8]   nibble i of qzeros[g][c]  = z[g][8c + ORDER[i]]
 *   scales  fp16  [G, N]     ORDER = {0, 2, 4, 6, 1, 3, 5, 7} (AutoAWQ's order_map)
 *   w[k][n] = (q[k][n] - z[k/gs][n]) * scales[k/gs][n]   (awq/utils/packing_utils.py,
 *             dequantize_gemm: zeros used as stored, 0..15, no GPTQ-style offset)
 * which is exactly the INT-zero case of q4.h: row n of W, its fp16 scale and u8 zero per group,
 * no permutation (AWQ has no act-order). The product of an fp16 scale and an integer in -15..15
 * is exact in fp32, so the conversion changes no weight (tests/model/test_gptq.c compares with
 * AutoAWQ's dequantize_gemm on checkpoints its from_linear packed). */
#ifndef LLMRT_MODEL_AWQ_H
#define LLMRT_MODEL_AWQ_H

#include <cjson/cJSON.h>

#include "gptq.h"

/* An AWQ quantization config object ("quant_method": "awq"): bits / w_bit 4, group_size /
 * q_group_size, zero_point (must be true), version (must be "gemm", any case). Fills cfg with
 * cfg->awq set; other versions (gemv, gemv_fast, exllama, marlin, ipex) and zero_point false are
 * LLMRT_ERR_UNSUPPORTED naming the key. */
llmrt_status llmrt_awq_config_parse(const cJSON *qc, const char *what, llmrt_gptq_config *cfg,
                                    llmrt_error *err);

/* Validates the tensors of Linear `prefix` (qweight, qzeros, scales, optional bias; no g_idx)
 * and converts them. Errors as llmrt_gptq_convert's. */
llmrt_status llmrt_awq_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                               const llmrt_gptq_tensors *t, int64_t N, int64_t K,
                               llmrt_q4_tensor *out, llmrt_error *err);

#endif
