/* 8-bit GPTQ Linears (bits = 8 in the quantization config; the GPTQModel / AutoGPTQ layout):
 *   q[k][n]   = byte k%4 of qweight[k/4][n]                       qweight int32 [K/4, N]
 *   z[g][n]   = byte n%4 of qzeros[g][n/4], a v1 ("gptq") word first plus 0x01010101 (mod 2^32,
 *               GPTQModel's v1 <-> v2 conversion for 8 bits; see gptq.c on the borrow)
 *   w[k][n]   = scales[g_idx[k]][n] * (q[k][n] - z[g_idx[k]][n])  scales fp16/bf16/fp32 [G, N]
 * They are not a fourth internal format: a Linear whose every zero point is 128 (sym), whose
 * g_idx is k / group_size (no act-order), whose group size is a multiple of 32 and whose scales
 * are fp16 values is exactly GGUF Q8_0 (one fp16 d per 32 columns, w = d * int8): d = its group's
 * scale, int8 = q - 128, the same products bit for bit; it then runs on the backend's Q8_0
 * kernels (CPU: AVX-512/VNNI, AVX2, portable; TP slicing as Q8_0). Every other 8-bit Linear
 * (asym, act-order, group 16, bf16/fp32 scales) is dequantised to fp32 at load by the formula
 * above, which the caller allows only under allow_fallback / dequantize_weights. */
#ifndef LLMRT_MODEL_GPTQ8_H
#define LLMRT_MODEL_GPTQ8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"
#include "../format/dtype.h"
#include "gptq.h"

/* Validates the tensors of 8-bit Linear `prefix` (N = out_features, K = in_features) and
 * converts them into a malloc'd *out: Q8_0 rows [N, K/32 * 34 bytes] when `q8_0_ok` (the backend
 * reads Q8_0) and the Linear maps onto it exactly, else fp32 [N, K] when `f32_ok`; *out_dtype
 * says which. When neither is possible: LLMRT_ERR_UNSUPPORTED naming the tensor and the reason.
 * `why` receives the reason a Linear was not kept as Q8_0 (empty when it was). Shape, dtype and
 * range errors as llmrt_gptq_convert's. The bias (P.bias) is not read here. */
llmrt_status llmrt_gptq8_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                                 const llmrt_gptq_tensors *t, int64_t N, int64_t K, bool q8_0_ok,
                                 bool f32_ok, void **out, llmrt_dtype *out_dtype, char *why,
                                 size_t why_cap, llmrt_error *err);

#endif
