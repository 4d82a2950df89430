/* The tensor-parallel shard plan: which query heads, KV heads and FFN columns each rank of a
 * Megatron split holds (q/k/v, gate, up column-parallel; o, down row-parallel; the forward
 * all-reduces after o and down).
 *
 * Splits are balanced and may be uneven (tp 3 over 32 heads gives 11/11/10): every rank runs
 * the same code on its own head count, and the all-reduce sums partial outputs of any widths.
 * Query heads always map uniformly onto the rank's KV heads, because the attention kernels
 * assume Hq_local % Hkv_local == 0 with query head i reading KV head i / (Hq_local / Hkv_local):
 *   tp <= Hkv: the KV heads are split into tp contiguous ranges, each rank taking its KV heads
 *              with all their Hq/Hkv query heads;
 *   tp >  Hkv: every rank holds exactly one KV head, replicated over the ranks that share it (as
 *              vLLM does), and that KV head's query heads are split over those ranks.
 * The FFN is split in units of gcd(F, 128) columns, so 4-bit groups of up to 128 stay aligned
 * whenever F allows it (row-parallel down_proj slices then need no padding); when that gives
 * fewer units than ranks (tiny models: F = 64 at tp 2) the unit is halved until it does not. */
#ifndef LLMRT_MODEL_SHARD_PLAN_H
#define LLMRT_MODEL_SHARD_PLAN_H

#include <stdint.h>

#include "../core/error.h"
#include "../format/config.h"

/* This rank's part of a tensor-parallel split (size 1, rank 0 without TP). */
typedef struct llmrt_tp_shard {
    int32_t size, rank;
    int32_t n_heads, n_kv_heads;  /* this rank's query heads and KV heads                    */
    int32_t q_head0, kv_head0;    /* first global query head / KV head of this rank          */
    int64_t ffn0, ffn;            /* this rank's FFN slice [ffn0, ffn0 + ffn) of intermediate */
    int64_t vocab0, vocab;        /* this rank's lm_head rows [vocab0, vocab0 + vocab): the
                                   * lm_head is vocab-parallel, its logits gathered by rank 0 */
} llmrt_tp_shard;

/* FFN columns per split unit: gcd(F, 128), halved while there are fewer units than ranks. The
 * vocabulary is split likewise in units of gcd(V, 64). */
#define LLMRT_TP_VOCAB_ALIGN 64
#define LLMRT_TP_FFN_ALIGN 128

/* Fills *out with rank `rank` of a split into `size` ranks. size 1 gives the whole model.
 * LLMRT_ERR_INVALID_ARG, naming the tensor and the tp, when the model cannot be split so. */
llmrt_status llmrt_shard_plan(const llmrt_model_config *cfg, int32_t size, int32_t rank,
                              llmrt_tp_shard *out, llmrt_error *err);

#endif
