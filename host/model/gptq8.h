/* 8-bit GPTQ Linears (bits = 8 in the quantization config; the GPTQModel / AutoGPTQ layout):
 *   q[k][n]   = byte k%4 of qweight[k/4][n]                       qweight int32 [K/4, N]
 *   z[g][n]   = byte n%4 of qzeros[g][n/4], a v1 ("gptq") word first plus 0x01010101 (mod 2^32,
 *               GPTQModel's v1 <-> v2 conversion for 8 bits; see gptq.c on the borrow)
 *   w[k][n]   = scales[g_idx[k]][n] * (q[k][n] - z[g_idx[k]][n])  scales fp16/bf16/fp32 [G, N]
 * with G = ceil(K / group_size) (GPTQModel writes a short last group when K is not a multiple of
 * the group size; g_idx = k // group_size).
 * Kept packed, exactly, in one of two block types of 32 columns (format/dtype.h), when the group
 * size and K are multiples of 32 and every scale is an fp16 value (bf16 / fp32 scales too when
 * each is exactly one):
 * - Q8_0 (GGUF's: fp16 d, int8 q) when every zero point is 128 (sym) in natural order: d = the
 *   group's scale, int8 = q - 128, the same products bit for bit; it runs on the backend's Q8_0
 *   kernels (the fastest; TP slicing as Q8_0);
 * - Q8_Z (fp16 d, u8 z, u8 q: w = d * (q - z)) for every other such Linear: asym, act-order (the
 *   columns stored permuted so each group is contiguous, perm = stable argsort of g_idx, uploaded
 *   with weight_upload_permuted), short last groups. Block b in stored order is in group
 *   32 b / group_size. TP: slices as Q8_0's (model/shard_slice.h: rows are views, column slices
 *   of whole blocks stay Q8_Z, ones cutting blocks are dequantised to fp32); an act-order Q8_Z is
 *   not split packed by input columns: dequantised to fp32 in input order under allow_fallback
 *   (model_load.c), else a load-time error naming the tensor, the type and tp.
 * Every other 8-bit Linear (group 16 or any size not a multiple of 32, scales that are not fp16
 * values, a backend without these kernels) is dequantised to fp32 at load by the formula above,
 * which the caller allows only under allow_fallback / dequantize_weights. */
#ifndef LLMRT_MODEL_GPTQ8_H
#define LLMRT_MODEL_GPTQ8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"
#include "../format/dtype.h"
#include "gptq.h"

/* What the backend takes (the loader asks it): Q8_0, Q8_Z, Q8_Z with an act-order permutation
 * (weight_upload_permuted), and whether fp32 is allowed (allow_fallback / dequantize_weights). */
typedef struct llmrt_gptq8_caps {
    bool q8_0, q8_z, q8_z_perm, f32;
} llmrt_gptq8_caps;

/* A converted 8-bit Linear: one malloc'd buffer (`data`, freed by the caller) holding rows
 * [N, K/32 blocks] of `dtype` Q8_0 / Q8_Z, or fp32 [N, K]; for an act-order Q8_Z, perm int32 [K]
 * in the same buffer (stored column j holds input column perm[j]), else NULL. */
typedef struct llmrt_gptq8_matrix {
    void          *data;
    llmrt_dtype    dtype;
    const int32_t *perm;
} llmrt_gptq8_matrix;

/* Validates the tensors of 8-bit Linear `prefix` (N = out_features, K = in_features) and
 * converts them (see above) into *out. When the Linear cannot be kept packed and caps->f32 is
 * false: LLMRT_ERR_UNSUPPORTED naming the tensor and the reason. `why` receives the reason a
 * Linear was dequantised to fp32 (empty when it was kept packed). Shape, dtype and range errors
 * as llmrt_gptq_convert's. The bias (P.bias) is not read here. */
llmrt_status llmrt_gptq8_convert(const llmrt_gptq_config *cfg, const char *file, const char *prefix,
                                 const llmrt_gptq_tensors *t, int64_t N, int64_t K,
                                 const llmrt_gptq8_caps *caps, llmrt_gptq8_matrix *out,
                                 char *why, size_t why_cap, llmrt_error *err);

#endif
