/* Cutting one rank's slice out of a full weight matrix W [N, K] (out = x · Wᵀ) as a source
 * returns it (shard_plan.h says which slice):
 *   column-parallel layers (q/k/v, gate, up) keep output rows [r0, r0 + n): contiguous in every
 *     layout (GGUF blocks run along K), so dense slices point into the source's memory;
 *   row-parallel layers (o, down) keep input columns [c0, c0 + n): copied.
 * Every slice holds exactly the values of the full matrix, so a rank's matmul is bit-for-bit
 * the corresponding part of the unsplit one (row-parallel: a partial sum over its columns). */
#ifndef LLMRT_MODEL_SHARD_SLICE_H
#define LLMRT_MODEL_SHARD_SLICE_H

#include "model.h"

/* Rows [r0, r0 + n) of a dense matrix: a view into t's memory. */
llmrt_status llmrt_slice_host_rows(const llmrt_host_tensor *t, int64_t r0, int64_t n,
                                   llmrt_host_tensor *out, llmrt_error *err);

/* Columns [c0, c0 + n) of a dense matrix, copied into a host buffer the model keeps. A Q8_0
 * slice stays Q8_0 when it is block-aligned (c0, n multiples of 32); otherwise it is
 * dequantised to F32 (the same values the Q8_0 kernels compute with); so does Q8_Z (GPTQ 8-bit,
 * natural order: an act-order one is never split by columns, model_load.c). Q5_0/Q5_1 (32) and
 * K-quant (256) slices must be block-aligned: otherwise LLMRT_ERR_UNSUPPORTED naming the type. */
llmrt_status llmrt_slice_host_cols(struct llmrt_rank_model *m, const llmrt_host_tensor *t, int64_t c0,
                                   int64_t n, llmrt_host_tensor *out, llmrt_error *err);

/* Rows [r0, r0 + n) of a 4-bit matrix, in place: q's arrays point at the rows (t->mem still
 * owns them), the bias is moved down. */
void llmrt_q4_slice_rows(llmrt_q4_tensor *t, int64_t r0, int64_t n);

/* Columns [c0, c0 + n) of a 4-bit matrix, kept 4-bit: the stored columns (stored column j is
 * input column perm ? perm[j] : j) whose input column lies in the slice, bucketed by their group
 * j / group_size; empty groups are dropped, each remaining group keeps its scales and zero
 * terms. When the buckets are equal and a multiple of 32 (group-aligned slices without
 * act-order) they are the local groups as they are; otherwise (act-order, or a slice cutting
 * groups) every bucket is padded to L = the largest rounded up to 32 with columns of perm -1,
 * which read input 0 (q4.h), so the slice has K = groups * L, x_cols = n. Cost: an act-order
 * o_proj at tp 2, g128, holds ~1.5x its share of columns, still 4-bit. perm[j'] = input column
 * - c0 (NULL when that is the identity). The bias is copied. */
llmrt_status llmrt_q4_slice_cols(const llmrt_q4_tensor *in, int64_t c0, int64_t n,
                                 llmrt_q4_tensor *out, llmrt_error *err);

#endif
