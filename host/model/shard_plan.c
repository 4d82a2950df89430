/* The tensor-parallel shard plan (shard_plan.h). */
#include "shard_plan.h"

#include <string.h>

/* Part `i` of `n` balanced contiguous parts of `total` items (the first total % n parts get one
 * more): its first item and its count. */
static void balanced_part(int64_t total, int64_t n, int64_t i, int64_t *start, int64_t *count) {
    int64_t base = total / n, extra = total % n;
    *count       = base + (i < extra ? 1 : 0);
    *start       = i * base + (i < extra ? i : extra);
}

static int64_t gcd_i64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a         = b;
        b         = t;
    }
    return a;
}

/* Heads of rank `rank` when tp <= Hkv: a contiguous range of KV heads with all their query
 * heads. */
static void plan_kv_ranges(const llmrt_model_config *cfg, int32_t size, int32_t rank, int32_t grp,
                           llmrt_tp_shard *out) {
    int64_t kv0, n_kv;
    balanced_part(cfg->n_kv_heads, size, rank, &kv0, &n_kv);
    out->kv_head0   = (int32_t)kv0;
    out->n_kv_heads = (int32_t)n_kv;
    out->q_head0    = (int32_t)kv0 * grp;
    out->n_heads    = (int32_t)n_kv * grp;
}

/* Heads of rank `rank` when tp > Hkv: one KV head, replicated over the ranks sharing it (KV
 * head h is held by size / Hkv ranks, one more for the first size % Hkv heads), and a range of
 * that KV head's query heads. */
static llmrt_status plan_kv_replicated(const llmrt_model_config *cfg, int32_t size, int32_t rank,
                                       int32_t grp, llmrt_tp_shard *out, llmrt_error *err) {
    int64_t h = 0, first_rank = 0, n_ranks = 0;
    for (h = 0; h < cfg->n_kv_heads; h++) { /* which KV head this rank serves */
        balanced_part(size, cfg->n_kv_heads, h, &first_rank, &n_ranks);
        if (rank < first_rank + n_ranks) break;
    }
    int64_t q0, n_q;
    balanced_part(grp, n_ranks, rank - first_rank, &q0, &n_q);
    if (n_q < 1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tp %d: KV head %lld of model.layers.*.self_attn.k_proj is shared by %lld "
                         "ranks but has only %d query heads (each rank needs at least one)",
                         size, (long long)h, (long long)n_ranks, grp);
    out->kv_head0   = (int32_t)h;
    out->n_kv_heads = 1;
    out->q_head0    = (int32_t)(h * grp + q0);
    out->n_heads    = (int32_t)n_q;
    return LLMRT_OK;
}

llmrt_status llmrt_shard_plan(const llmrt_model_config *cfg, int32_t size, int32_t rank,
                              llmrt_tp_shard *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    if (size < 1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tp %d is invalid (at least 1)", size);
    if (rank < 0 || rank >= size)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tp %d: rank %d is outside [0, %d)", size,
                         rank, size);
    if (cfg->n_heads < 1 || cfg->n_kv_heads < 1 || cfg->n_heads % cfg->n_kv_heads != 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tp %d: the config's %d attention heads of model.layers.*.self_attn."
                         "q_proj are not a multiple of its %d KV heads",
                         size, cfg->n_heads, cfg->n_kv_heads);
    if (size > cfg->n_heads)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tp %d exceeds the %d attention heads of model.layers.*.self_attn.q_proj",
                         size, cfg->n_heads);
    int64_t F = cfg->intermediate_size;
    if (F < 1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tp %d: intermediate_size %lld of model.layers.*.mlp.gate_proj is invalid",
                         size, (long long)F);
    /* the largest power of two <= 128 dividing F that still gives every rank a unit */
    int64_t unit = gcd_i64(F, LLMRT_TP_FFN_ALIGN);
    while (unit > 1 && F / unit < size) unit /= 2;
    int64_t n_units = F / unit;
    if (n_units < size)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tp %d: intermediate_size %lld of model.layers.*.mlp.gate_proj has fewer "
                         "columns than ranks", size, (long long)F);

    out->size   = size;
    out->rank   = rank;
    int32_t grp = cfg->n_heads / cfg->n_kv_heads;
    if (size <= cfg->n_kv_heads) {
        plan_kv_ranges(cfg, size, rank, grp, out);
    } else {
        llmrt_status s = plan_kv_replicated(cfg, size, rank, grp, out, err);
        if (s != LLMRT_OK) {
            memset(out, 0, sizeof *out);
            return s;
        }
    }
    int64_t u0, n_u;
    balanced_part(n_units, size, rank, &u0, &n_u);
    out->ffn0 = u0 * unit;
    out->ffn  = n_u * unit;
    /* the lm_head by vocabulary rows, in units of gcd(V, 64) like the FFN */
    int64_t V = cfg->vocab_size, vunit = gcd_i64(V, LLMRT_TP_VOCAB_ALIGN);
    while (vunit > 1 && V / vunit < size) vunit /= 2;
    if (V / vunit < size) {
        memset(out, 0, sizeof *out);
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tp %d: vocab_size %lld of lm_head.weight has fewer rows than ranks", size,
                         (long long)V);
    }
    balanced_part(V / vunit, size, rank, &u0, &n_u);
    out->vocab0 = u0 * vunit;
    out->vocab  = n_u * vunit;
    return LLMRT_OK;
}
