/* The KV cache in 8 bits (llmrt_model_params.kv_cache_dtype): int8 or fp8 e4m3 codes with one
 * fp32 scale per (token, KV head), x ≈ scale * decode(code).
 *
 * Why a scale per (token, KV head), set by the absmax of that head's hd values:
 *  - a token's K and V are written once, when the token is computed, and never change: a scale
 *    of their own needs no calibration pass (vLLM's per-tensor k_scale/v_scale needs one, or
 *    defaults to 1.0, which clips large keys or wastes the fp8 range on small ones) and never
 *    requantises earlier tokens (a per-block absmax scale would have to be rewritten whenever a
 *    later token of the block is larger, and prefix-cached blocks are shared);
 *  - outlier channels of K differ between heads, so one scale per head keeps a quiet head's
 *    resolution;
 *  - the absmax maps onto the type's largest finite value (int8 127, e4m3 448), so nothing clips.
 * The price is 4 bytes per hd bytes of codes (6 % at hd = 64, 3 % at hd = 128).
 *
 * Layout of one layer's K (or V) pool, per block of block_size token slots: the codes
 * [block_size, Hkv, hd] (1 byte each), then the scales [block_size, Hkv] (fp32). A block stays
 * one contiguous piece of bs * Hkv * (hd + 4) bytes, so a copy-on-write fork copies it as before;
 * the codes of a (slot, head) are hd consecutive bytes, 4-byte aligned when hd % 4 == 0 (what the
 * GPU kernels ask: cuda/kv8.cuh), and the scales of a block sit together. Scales are
 * read with memcpy on the CPU: they are 4-byte aligned only when bs * Hkv * hd is a multiple of 4
 * (always at hd % 4 == 0). */
#ifndef LLMRT_FORMAT_KV_QUANT_H
#define LLMRT_FORMAT_KV_QUANT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dtype.h"

#define LLMRT_KV_INT8_MAX 127.0f /* largest int8 code used (symmetric: -127..127)            */
#define LLMRT_KV_FP8_MAX  448.0f /* largest finite e4m3 value (0x7E); 0x7F/0xFF are NaN     */

/* Whether a KV dtype is stored as 8-bit codes plus scales (I8, F8_E4M3). */
static inline bool llmrt_kv_dtype_is_8bit(llmrt_dtype kv) {
    return kv == LLMRT_DTYPE_I8 || kv == LLMRT_DTYPE_F8_E4M3;
}

/* Bytes of one token slot of one layer's K (or V) pool: Hkv * hd elements of elem_bytes (a
 * cache in the activation dtype), of 2 bytes for BF16 (also under fp32 activations: the CPU's
 * bf16 cache, [slots, Hkv, hd] as the fp32 one), or Hkv * (hd + 4) for an 8-bit one. */
static inline int64_t llmrt_kv_slot_bytes(llmrt_dtype kv, int32_t n_kv_heads, int32_t head_dim,
                                          int32_t elem_bytes) {
    if (llmrt_kv_dtype_is_8bit(kv)) return (int64_t)n_kv_heads * (head_dim + 4);
    if (kv == LLMRT_DTYPE_BF16) elem_bytes = 2;
    return (int64_t)n_kv_heads * head_dim * elem_bytes;
}

/* Where one layer's 8-bit pool keeps a (slot, head): slot = block * block_size + offset. */
typedef struct llmrt_kv8_layout {
    int32_t block_size, n_kv_heads, head_dim;
} llmrt_kv8_layout;

static inline int64_t llmrt_kv8_block_bytes(const llmrt_kv8_layout *l) {
    return (int64_t)l->block_size * l->n_kv_heads * (l->head_dim + 4);
}
/* byte offset of the hd codes of (slot, h) */
static inline int64_t llmrt_kv8_codes_off(const llmrt_kv8_layout *l, int64_t slot, int32_t h) {
    int64_t b = slot / l->block_size, o = slot % l->block_size;
    return b * llmrt_kv8_block_bytes(l) + (o * l->n_kv_heads + h) * l->head_dim;
}
/* byte offset of the fp32 scale of (slot, h) */
static inline int64_t llmrt_kv8_scale_off(const llmrt_kv8_layout *l, int64_t slot, int32_t h) {
    int64_t b = slot / l->block_size, o = slot % l->block_size;
    return b * llmrt_kv8_block_bytes(l) + (int64_t)l->block_size * l->n_kv_heads * l->head_dim +
           (o * l->n_kv_heads + h) * 4;
}
static inline float llmrt_kv8_scale(const uint8_t *pool, const llmrt_kv8_layout *l, int64_t slot,
                                    int32_t h) {
    float s;
    memcpy(&s, pool + llmrt_kv8_scale_off(l, slot, h), sizeof s);
    return s;
}

/* fp8 e4m3 (OCP "E4M3FN": bias 7, no infinities, 0x7F = NaN): round to nearest even, saturating
 * at ±448; NaN in gives the NaN code. */
uint8_t llmrt_fp8_e4m3_from_float(float x);
float llmrt_fp8_e4m3_to_float(uint8_t code);
/* decode table of all 256 codes (built once, thread-safe) */
const float *llmrt_fp8_e4m3_table(void);

/* Quantises one head's x[n] to codes[n] (kv: I8 or F8_E4M3) and returns its scale:
 * absmax / type max (0 for an all-zero head: every code 0). */
float llmrt_kv_quantise_head(uint8_t *codes, const float *x, int32_t n, llmrt_dtype kv);

/* Writes one token's K (or V) x[Hkv, hd] into `slot` of the 8-bit pool (layout above). */
void llmrt_kv_quantise_token(uint8_t *pool, const llmrt_kv8_layout *l, int64_t slot, const float *x,
                             llmrt_dtype kv);

/* dst[n] = x[n] rounded to bf16 (nearest even; NaN stays NaN): one token of the CPU's bf16 cache.
 * The attention kernels widen a chunk of it back to fp32 exactly. */
void llmrt_kv_store_bf16(uint16_t *dst, const float *x, int64_t n);

/* x[n] = scale * decode(codes[n]): the portable reference of the kernels' dequantisation. */
void llmrt_kv_dequantise_head(float *x, const uint8_t *codes, float scale, int32_t n,
                              llmrt_dtype kv);

#endif
