/* One rank's forward on a packed batch (forward.h): its KV pool and workspace, the batch plan,
 * and the Llama forward written once as calls into the backend interface. Shapes: T tokens,
 * D hidden, F ffn, Hq / Hkv heads of hd dims, V vocab (a rank's part under tensor parallel:
 * _r). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/checked_math.h"
#include "../format/kv_quant.h"
#include "../model/lora_slots.h"
#include "forward.h"

/* --------------------------------------------------------------------------------------------- */
/* KV pool and workspace                                                                         */
/* --------------------------------------------------------------------------------------------- */

/* Batch reserved at creation when the backend has per-batch device state: the engine's
 * default max_batched_tokens and max_seqs (llmrt_engine_default_params). */
#define KV_RESERVE_TOKENS  512
#define KV_RESERVE_OUTPUTS 64

static void free_workspace(llmrt_rank_kv *kv) {
    llmrt_backend   *be = kv->model->be;
    llmrt_workspace *w  = &kv->ws;
    void **bufs[] = {&w->x, &w->h, &w->q, &w->kx, &w->vx, &w->attn, &w->o, &w->gate,
                     &w->up, &w->down, &w->out_rows, &w->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (*bufs[i]) be->ops->free(be, *bufs[i]);
        *bufs[i] = NULL;
    }
    w->tokens = w->outputs = 0;
}

int64_t llmrt_rank_kv_bytes_per_token(const llmrt_rank_model *m) {
    return 2 * (int64_t)m->cfg.n_layers *
           llmrt_kv_slot_bytes(m->kv_dtype, m->shard.n_kv_heads, m->cfg.head_dim,
                               m->be->act_bytes);
}

llmrt_status llmrt_kv_budget_blocks(int32_t block_size, int64_t n_blocks, int64_t max_tokens,
                                    int64_t max_bytes, int64_t bytes_per_token, int32_t *out,
                                    llmrt_error *err) {
    *out = 0;
    if (block_size < 1 || block_size > 4096)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "block_size %d outside [1, 4096]",
                         block_size);
    int64_t n = n_blocks;
    if (n == 0) {
        if (max_tokens > 0) /* rounded up without overflowing near INT64_MAX */
            n = max_tokens / block_size + (max_tokens % block_size != 0);
        else if (max_bytes > 0) n = max_bytes / (bytes_per_token * block_size);
    }
    if (n < 1 || n > INT32_MAX / block_size || n_blocks < 0 || max_tokens < 0 || max_bytes < 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "the KV budget gives %lld blocks (need >= 1; set n_blocks, max_tokens "
                         "or max_bytes)", (long long)n);
    *out = (int32_t)n;
    return LLMRT_OK;
}

void llmrt_rank_kv_destroy(llmrt_rank_kv *kv) {
    if (!kv) return;
    llmrt_backend *be = kv->model->be;
    for (int32_t l = 0; l < kv->model->cfg.n_layers; l++) {
        if (kv->pool.k && kv->pool.k[l]) be->ops->free(be, kv->pool.k[l]);
        if (kv->pool.v && kv->pool.v[l]) be->ops->free(be, kv->pool.v[l]);
    }
    free(kv->pool.k);
    free(kv->pool.v);
    free_workspace(kv);
    free(kv->ws.host_rows);
    free(kv->plan.slots);
    free(kv->plan.default_outputs);
    free(kv);
}

static llmrt_status reserve_workspace(llmrt_rank_kv *kv, int64_t T, int64_t n_out,
                                      llmrt_error *err);

/* The attention shape of this rank's layers over this pool: what the backend's reserve chooses
 * its kernels for and what every forward passes, so the two never disagree. */
static llmrt_attn_shape attn_shape_of(const llmrt_rank_kv *kv) {
    const llmrt_rank_model *m = kv->model;
    return (llmrt_attn_shape){
        .n_heads    = m->shard.n_heads,
        .n_kv_heads = m->shard.n_kv_heads,
        .head_dim   = m->cfg.head_dim,
        .block_size = kv->pool.block_size,
        .scale      = 1.0f / sqrtf((float)m->cfg.head_dim),
        .window     = m->cfg.sliding_window,
        .kv_dtype   = m->kv_dtype != m->be->act_dtype ? m->kv_dtype : LLMRT_DTYPE_INVALID,
    };
}

llmrt_status llmrt_rank_kv_create(llmrt_rank_model *model, int32_t n_blocks, int32_t block_size,
                                  llmrt_rank_kv **out, llmrt_error *errp) {
    const llmrt_model_config *c  = &model->cfg;
    llmrt_backend            *be = model->be;
    /* one slot of one layer's K (or V): Hkv * hd activations, or an 8-bit slot row */
    int64_t slot_bytes = llmrt_kv_slot_bytes(model->kv_dtype, model->shard.n_kv_heads,
                                             c->head_dim, be->act_bytes);
    *out = NULL;
    llmrt_rank_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return llmrt_err(errp, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_kv_cache_create: out of memory");
    kv->model                = model;
    kv->pool.n_blocks        = n_blocks;
    kv->pool.block_size      = block_size;
    kv->pool.bytes_per_token = llmrt_rank_kv_bytes_per_token(model);
    kv->pool.k               = calloc((size_t)c->n_layers, sizeof *kv->pool.k);
    kv->pool.v               = calloc((size_t)c->n_layers, sizeof *kv->pool.v);
    llmrt_error err = {0};
    llmrt_status s  = (kv->pool.k && kv->pool.v)
                          ? LLMRT_OK
                          : llmrt_err(&err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    uint64_t layer_bytes = (uint64_t)n_blocks * (uint64_t)block_size * (uint64_t)slot_bytes;
    for (int32_t l = 0; l < c->n_layers && s == LLMRT_OK; l++) {
        s = be->ops->alloc(be, layer_bytes, &kv->pool.k[l], &err);
        if (s == LLMRT_OK) s = be->ops->alloc(be, layer_bytes, &kv->pool.v[l], &err);
    }
    if (s != LLMRT_OK) {
        llmrt_err_prefix(&err, "llmrt_kv_cache_create: %lld blocks of %d tokens (%.2f GiB: K and V "
                         "of %d layers, %.2f GiB each)", (long long)n_blocks, block_size,
                         (double)layer_bytes * 2 * c->n_layers / (1 << 30), c->n_layers,
                         (double)layer_bytes / (1 << 30));
        llmrt_rank_kv_destroy(kv);
        if (errp) *errp = err;
        return s;
    }
    /* Backends with per-batch device state size it (and the activations) at start-up, for the
     * engine's default batch; llmrt_rank_kv_reserve sets other bounds. */
    if (be->ops->reserve) {
        s = reserve_workspace(kv, KV_RESERVE_TOKENS, KV_RESERVE_OUTPUTS, &err);
        if (s != LLMRT_OK) {
            llmrt_err_prefix(&err, "llmrt_kv_cache_create: activations for %d tokens",
                             KV_RESERVE_TOKENS);
            llmrt_rank_kv_destroy(kv);
            if (errp) *errp = err;
            return s;
        }
    }
    *out = kv;
    return LLMRT_OK;
}

/* Activation buffers (and the backend's per-batch state, be->ops->reserve) grow to the largest
 * batch seen. A decode-only step never grows them: its sequences all ran in the step before it,
 * each with at least one token and its output row. */
static llmrt_status reserve_workspace(llmrt_rank_kv *kv, int64_t T, int64_t n_out,
                                      llmrt_error *err) {
    llmrt_workspace *w = &kv->ws;
    if (T <= w->tokens && n_out <= w->outputs) return LLMRT_OK;
    if (T < w->tokens) T = w->tokens;
    if (n_out < w->outputs) n_out = w->outputs;
    free_workspace(kv);
    const llmrt_model_config *c  = &kv->model->cfg;
    llmrt_backend            *be = kv->model->be;
    const llmrt_tp_shard     *sh = &kv->model->shard;
    int64_t D = c->hidden_size, F = sh->ffn, V = kv->model->lm_head.rows;
    int64_t qw = (int64_t)sh->n_heads * c->head_dim, kw = (int64_t)sh->n_kv_heads * c->head_dim;
    int64_t ab = be->act_bytes, rb = be->resid_bytes ? be->resid_bytes : ab;
    int64_t lb = be->ops->logits ? (int64_t)sizeof(float) : ab; /* logits op: fp32 scratch */
    struct {
        void  **buf;
        int64_t elems, bytes; /* bytes per element */
    } plan[] = {
        {&w->x, T * D, rb},     {&w->h, T * D, ab},      {&w->q, T * qw, ab},
        {&w->kx, T * kw, ab},   {&w->vx, T * kw, ab},    {&w->attn, T * qw, ab},
        {&w->o, T * D, ab},     {&w->gate, T * F, ab},   {&w->up, T * F, ab},
        {&w->down, T * D, ab},  {&w->out_rows, n_out * D, ab},
        {&w->logits, n_out * V, lb},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        llmrt_status s = be->ops->alloc(be, (uint64_t)plan[i].elems * (uint64_t)plan[i].bytes,
                                        plan[i].buf, err);
        if (s != LLMRT_OK) {
            free_workspace(kv);
            return s;
        }
    }
    if (be->ops->reserve) {
        /* a sequence holds at most the context or the whole pool; at most one per token */
        int64_t bs = kv->pool.block_size;
        int64_t max_blocks = ((int64_t)c->max_context + bs - 1) / bs;
        if (max_blocks > kv->pool.n_blocks) max_blocks = kv->pool.n_blocks;
        llmrt_attn_shape shape = attn_shape_of(kv);
        llmrt_status     s     = be->ops->reserve(be, T, n_out, T, max_blocks, &shape, err);
        if (s != LLMRT_OK) {
            free_workspace(kv);
            return s;
        }
    }
    w->tokens  = T;
    w->outputs = n_out;
    return LLMRT_OK;
}

llmrt_status llmrt_rank_kv_reserve(llmrt_rank_kv *kv, int64_t max_tokens, int64_t max_outputs,
                                   llmrt_error *err) {
    return reserve_workspace(kv, max_tokens, max_outputs, err);
}

/* --------------------------------------------------------------------------------------------- */
/* batch validation                                                                              */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status validate_batch(const llmrt_rank_kv *kv, const llmrt_batch *b,
                                   int64_t n_outputs, const float *logits, int64_t capacity,
                                   bool check_capacity, llmrt_error *err) {
    const llmrt_model_config *c = &kv->model->cfg;
    if (b->n_tokens < 1 || !b->tokens || !b->positions || !b->seq_ids)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_forward: batch needs n_tokens >= 1 and tokens, positions, seq_ids");
    if (b->n_seqs < 1 || b->max_blocks_per_seq < 1 || !b->block_tables)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_forward: batch needs n_seqs >= 1, max_blocks_per_seq >= 1 and "
                         "block_tables");
    int64_t n_table;
    if (!ck_mul_i64(b->n_seqs, b->max_blocks_per_seq, &n_table))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_forward: block table too large");
    for (int64_t i = 0; i < n_table; i++)
        if (b->block_tables[i] < -1 || b->block_tables[i] >= kv->pool.n_blocks)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: block_tables[%lld] = %d is not a block id in "
                             "[0, %d) or -1", (long long)i, b->block_tables[i], kv->pool.n_blocks);
    int64_t max_pos = (int64_t)b->max_blocks_per_seq * kv->pool.block_size;
    for (int32_t t = 0; t < b->n_tokens; t++) {
        int32_t tok = b->tokens[t], pos = b->positions[t], seq = b->seq_ids[t];
        if (tok < 0 || tok >= c->vocab_size)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: tokens[%d] = %d is outside the vocabulary [0, %d)", t,
                             tok, c->vocab_size);
        if (seq < 0 || seq >= b->n_seqs)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: seq_ids[%d] = %d is outside [0, %d)", t, seq, b->n_seqs);
        if (pos < 0 || pos >= c->max_context || pos >= max_pos)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: positions[%d] = %d is outside [0, %lld) (context %d, "
                             "block table holds %lld tokens)", t, pos,
                             (long long)(max_pos < c->max_context ? max_pos : c->max_context),
                             c->max_context, (long long)max_pos);
        /* every position the token attends to must have a block (under a sliding window W:
         * positions (pos - W, pos] only; the engine frees the blocks below) */
        const int32_t *table = b->block_tables + (int64_t)seq * b->max_blocks_per_seq;
        int32_t        lo    = c->sliding_window > 0 && pos >= c->sliding_window
                                   ? pos - c->sliding_window + 1 : 0;
        for (int32_t blk = lo / kv->pool.block_size; blk <= pos / kv->pool.block_size; blk++)
            if (table[blk] < 0)
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "llmrt_forward: sequence %d has no block for positions %d..%d "
                                 "(needed by tokens[%d] at position %d)", seq,
                                 blk * kv->pool.block_size, (blk + 1) * kv->pool.block_size - 1, t, pos);
    }
    if (b->output_tokens) { /* n_outputs 0: no logits (checked >= 1 at the public API) */
        if (b->n_outputs < 0)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: n_outputs %d < 0", b->n_outputs);
        for (int32_t i = 0; i < b->n_outputs; i++)
            if (b->output_tokens[i] < 0 || b->output_tokens[i] >= b->n_tokens)
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "llmrt_forward: output_tokens[%d] = %d is outside [0, %d)", i,
                                 b->output_tokens[i], b->n_tokens);
    }
    if (b->lora_slots) {
        int32_t n_slots = kv->model->lora ? kv->model->lora->n_slots : 0;
        for (int32_t t = 0; t < b->n_tokens; t++) {
            if (b->lora_slots[t] < -1 || b->lora_slots[t] >= n_slots)
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "llmrt_forward: lora_slots[%d] = %d is outside [-1, %d)", t,
                                 b->lora_slots[t], n_slots);
            if (!b->lora_scales || !isfinite(b->lora_scales[t]))
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "llmrt_forward: lora_scales[%d] must be a finite number", t);
        }
    }
    int64_t need;
    if (!check_capacity || n_outputs == 0) return LLMRT_OK;
    if (!ck_mul_i64(n_outputs, c->vocab_size, &need) || !logits || capacity < need)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_forward: logits buffer holds %lld floats, %lld needed "
                         "(n_outputs %lld x vocab %d)", (long long)capacity,
                         (long long)n_outputs * c->vocab_size, (long long)n_outputs, c->vocab_size);
    return LLMRT_OK;
}

/* Slots of this batch; two tokens may not write the same slot (the result would depend on
 * their order). O(T log T) via sorting a copy. */
static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static llmrt_status plan_slots(llmrt_rank_kv *kv, const llmrt_batch *b, llmrt_error *err) {
    int64_t T = b->n_tokens;
    if (T > kv->plan.slots_cap) {
        int64_t *n = realloc(kv->plan.slots, (size_t)T * 2 * sizeof(int64_t));
        if (!n) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_forward: out of memory");
        kv->plan.slots    = n;
        kv->plan.slots_cap = T;
    }
    int64_t *sorted = kv->plan.slots + T;
    for (int64_t t = 0; t < T; t++) {
        int32_t  pos   = b->positions[t];
        int32_t  block = b->block_tables[(int64_t)b->seq_ids[t] * b->max_blocks_per_seq +
                                        pos / kv->pool.block_size];
        kv->plan.slots[t]   = (int64_t)block * kv->pool.block_size + pos % kv->pool.block_size;
        sorted[t]      = kv->plan.slots[t];
    }
    qsort(sorted, (size_t)T, sizeof *sorted, compare_i64);
    for (int64_t t = 1; t < T; t++)
        if (sorted[t] == sorted[t - 1])
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: two tokens write KV slot %lld (same sequence and "
                             "position, or shared blocks)", (long long)sorted[t]);
    return LLMRT_OK;
}

/* NULL output_tokens: the last token (in batch order) of each sequence, in sequence order. */
static llmrt_status plan_outputs(llmrt_rank_kv *kv, const llmrt_batch *b, const int32_t **rows,
                                 int64_t *n_rows, llmrt_error *err) {
    if (b->output_tokens) {
        *rows   = b->output_tokens;
        *n_rows = b->n_outputs;
        return LLMRT_OK;
    }
    if (b->n_seqs > kv->plan.outputs_cap) {
        int32_t *n = realloc(kv->plan.default_outputs, (size_t)b->n_seqs * sizeof(int32_t));
        if (!n) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_forward: out of memory");
        kv->plan.default_outputs = n;
        kv->plan.outputs_cap     = b->n_seqs;
    }
    for (int32_t s = 0; s < b->n_seqs; s++) kv->plan.default_outputs[s] = -1;
    for (int32_t t = 0; t < b->n_tokens; t++) kv->plan.default_outputs[b->seq_ids[t]] = t;
    int64_t n = 0;
    for (int32_t s = 0; s < b->n_seqs; s++)
        if (kv->plan.default_outputs[s] >= 0) kv->plan.default_outputs[n++] = kv->plan.default_outputs[s];
    *rows   = kv->plan.default_outputs;
    *n_rows = n;
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* forward                                                                                       */
/* --------------------------------------------------------------------------------------------- */

/* The fused decode ops (backend.h matmul_fused): tried first when the step runs no LoRA adapter
 * and no collectives (both need the unfused tensors: an adapter's input h and delta, the
 * all-reduce between a projection and its residual add); a backend that does not fuse a case
 * declines it and the unfused ops run instead, so the CPU backend (no matmul_fused) runs exactly
 * the sequence below. */
static bool try_fused(llmrt_backend *be, bool on, const llmrt_fused_matmul *f, int64_t T) {
    return on && be->ops->matmul_fused && be->ops->matmul_fused(be, f, T);
}

/* What one layer's ops read besides their tensors (run_layers fills it). */
typedef struct layer_ctx {
    llmrt_rank_model *m;
    llmrt_workspace  *w;
    int32_t           l;    /* the layer */
    int64_t           T, D; /* tokens, hidden */
    bool              lora; /* lora_apply after each projection (out += its slot's delta) */
    bool              fuse; /* try matmul_fused first */
} layer_ctx;

/* h = rmsnorm(x) * norm_w (add_rmsnorm when *pending holds a projection output not yet added
 * to x: x += *pending first; *pending is then NULL), then out[i] [T, W_i rows] = h · W_iᵀ plus
 * the LoRA delta of targets[i], for i < n_w; as one fused op (norm, projections) when the
 * backend takes it. The attention's q, k, v and the FFN's gate, up. */
static void norm_projections(const layer_ctx *lc, const void **pending, const void *norm_w,
                             int32_t n_w, const llmrt_bweight *const *wts, void *const *out,
                             const llmrt_lora_target *targets) {
    llmrt_rank_model  *m  = lc->m;
    llmrt_backend     *be = m->be;
    llmrt_workspace   *w  = lc->w;
    float              eps = m->cfg.rms_norm_eps;
    llmrt_fused_matmul f  = {.input = LLMRT_FUSED_IN_RMSNORM, .x = w->x, .norm_w = norm_w,
                             .eps = eps, .n_w = n_w};
    for (int32_t i = 0; i < n_w; i++) {
        f.w[i]   = wts[i];
        f.out[i] = out[i];
    }
    if (!*pending && try_fused(be, lc->fuse, &f, lc->T)) return;
    if (*pending) be->ops->add_rmsnorm(be, w->x, *pending, w->h, norm_w, lc->D, eps);
    else be->ops->rmsnorm(be, w->h, w->x, norm_w, lc->D, eps);
    *pending = NULL;
    f.input  = LLMRT_FUSED_IN_ACT;
    f.x      = w->h;
    if (try_fused(be, lc->fuse, &f, lc->T)) return;
    for (int32_t i = 0; i < n_w; i++) {
        be->ops->matmul(be, out[i], w->h, lc->T, wts[i]);
        if (lc->lora)
            be->ops->lora_apply(be, out[i], w->h, lc->T,
                                llmrt_rank_lora_table(m, lc->l, targets[i]));
    }
}

/* Tensor parallel: this rank holds its heads and FFN slice (m->shard); the row-parallel o and
 * down projections give partial sums that `coll` all-reduces over the group (the Megatron
 * split: 2 all-reduces of [T, D] per layer), and the vocab-parallel lm_head's rows are gathered
 * into the leader's logits. n_out == 0: the layers only (KV written, no logits).
 *
 * Per layer, unfused: (add_)rmsnorm, q, k, v, rope_kv_write, attention, o, add_rmsnorm, gate,
 * up, swiglu, down (the residual add of down is the next layer's add_rmsnorm). Fused (decode on
 * a backend with matmul_fused): rmsnorm+q+k+v, rope_kv_write, attention, o+residual add,
 * rmsnorm+gate+up, swiglu+down+residual add. `pending` is a projection output not yet added to
 * the residual x (an unfused o or down). */
static llmrt_status run_layers(llmrt_rank_kv *kv, int64_t T, int64_t n_out, bool with_lora,
                               const llmrt_collectives *coll, float *logits, llmrt_error *err) {
    llmrt_rank_model         *m  = kv->model;
    const llmrt_model_config *c  = &m->cfg;
    llmrt_backend            *be = m->be;
    const llmrt_backend_ops  *op = be->ops;
    llmrt_workspace          *w  = &kv->ws;
    int64_t                   D  = c->hidden_size, F = m->shard.ffn;
    llmrt_attn_shape          shape = attn_shape_of(kv);

    bool lora = with_lora && m->lora; /* lora_apply per projection: out += delta of its slot */
    bool fuse = !lora && !coll;
#define LORA(out, in, target)                                                                      \
    do {                                                                                           \
        if (lora) op->lora_apply(be, out, in, T, llmrt_rank_lora_table(m, l, target));             \
    } while (0)

    op->embed(be, w->x, &m->tok_embd);                                   /* x [T, D] */
    const void *pending = NULL;
    for (int32_t l = 0; l < c->n_layers; l++) {
        const llmrt_layer_weights *L = &m->layers[l];
        void *k_cache = kv->pool.k[l], *v_cache = kv->pool.v[l];
        layer_ctx lc = {.m = m, .w = w, .l = l, .T = T, .D = D, .lora = lora, .fuse = fuse};
        /* h = rmsnorm(x); q [T, Hq*hd], k, v [T, Hkv*hd] = h · W */
        const llmrt_bweight    *qkv[]      = {&L->wq, &L->wk, &L->wv};
        void *const             qkv_out[]  = {w->q, w->kx, w->vx};
        const llmrt_lora_target qkv_lora[] = {LLMRT_LORA_Q, LLMRT_LORA_K, LLMRT_LORA_V};
        norm_projections(&lc, &pending, L->attn_norm, 3, qkv, qkv_out, qkv_lora);
        op->rope_kv_write(be, w->q, w->kx, w->vx, k_cache, v_cache, &shape);
        op->attention(be, w->attn, w->q, k_cache, v_cache, &shape);      /* [T, Hq*hd] */
        /* x += attn · Woᵀ */
        llmrt_fused_matmul f = {.input = LLMRT_FUSED_IN_ACT, .x = w->attn, .n_w = 1,
                                .w = {&L->wo}, .residual = w->x};
        if (!try_fused(be, fuse, &f, T)) {
            op->matmul(be, w->o, w->attn, T, &L->wo);                    /* o [T, D] */
            LORA(w->o, w->attn, LLMRT_LORA_O); /* row-parallel: a partial sum, like o */
            if (coll) LLMRT_TRY(coll->all_reduce(coll->ctx, w->o, T * D, err));
            pending = w->o;
        }
        /* h = rmsnorm(x); gate, up [T, F] = h · W */
        const llmrt_bweight    *gu[]      = {&L->w_gate, &L->w_up};
        void *const             gu_out[]  = {w->gate, w->up};
        const llmrt_lora_target gu_lora[] = {LLMRT_LORA_GATE, LLMRT_LORA_UP};
        norm_projections(&lc, &pending, L->ffn_norm, 2, gu, gu_out, gu_lora);
        /* x += (silu(gate) * up) · Wdownᵀ */
        f = (llmrt_fused_matmul){.input = LLMRT_FUSED_IN_SWIGLU, .x = w->gate, .up = w->up,
                                 .n_w = 1, .w = {&L->w_down}, .residual = w->x};
        if (!try_fused(be, fuse, &f, T)) {
            op->swiglu(be, w->gate, w->gate, w->up, F);
            op->matmul(be, w->down, w->gate, T, &L->w_down);             /* [T, D] */
            LORA(w->down, w->gate, LLMRT_LORA_DOWN);
            if (coll) LLMRT_TRY(coll->all_reduce(coll->ctx, w->down, T * D, err));
            pending = w->down;
        }
    }
#undef LORA
    if (pending) op->add(be, w->x, pending, D);
    if (n_out == 0) return LLMRT_OK; /* prompt chunks only: no logits row is computed */
    op->rmsnorm(be, w->h, w->x, m->output_norm, D, c->rms_norm_eps);
    op->gather_outputs(be, w->out_rows, w->h, D);                        /* [n_out, D] */
    /* the lm_head rows of this rank: all V alone; with a group (vocab-parallel) [n_out, V_r]
     * into a host buffer, gathered into the leader's logits */
    int64_t Vr   = m->lm_head.rows;
    float  *host = logits;
    if (coll) {
        if (n_out * Vr > w->host_rows_cap) {
            float *p = realloc(w->host_rows, (size_t)(n_out * Vr) * sizeof *p);
            if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_forward: out of memory");
            w->host_rows     = p;
            w->host_rows_cap = n_out * Vr;
        }
        host = w->host_rows;
    }
    llmrt_status s;
    if (op->logits) { /* fp32 lm_head output, downloaded */
        s = op->logits(be, host, w->logits, w->out_rows, n_out, &m->lm_head, err);
    } else {
        op->matmul(be, w->logits, w->out_rows, n_out, &m->lm_head);      /* [n_out, V_r] */
        s = op->download_f32(be, host, w->logits, n_out * Vr, err);
    }
    if (s != LLMRT_OK || !coll) return s;
    return coll->gather_logits(coll->ctx, host, n_out, logits, err);
}

/* Plans the batch (output rows, KV slots) and checks it: every value the caller gave. */
static llmrt_status prepare_batch(llmrt_rank_kv *kv, const llmrt_batch *batch,
                                  const float *logits, int64_t logits_capacity,
                                  bool check_capacity, const int32_t **out_rows, int64_t *n_out,
                                  llmrt_error *err) {
    llmrt_status s = LLMRT_OK;
    *out_rows = NULL;
    *n_out    = 0;
    /* outputs first: validate_batch checks the logits capacity against their count */
    if (batch->n_tokens >= 1 && batch->seq_ids && batch->n_seqs >= 1) {
        bool seq_ok = true;
        for (int32_t t = 0; t < batch->n_tokens && seq_ok; t++)
            seq_ok = batch->seq_ids[t] >= 0 && batch->seq_ids[t] < batch->n_seqs;
        if (seq_ok) s = plan_outputs(kv, batch, out_rows, n_out, err);
    }
    if (s == LLMRT_OK)
        s = validate_batch(kv, batch, *n_out, logits, logits_capacity, check_capacity, err);
    if (s == LLMRT_OK) s = plan_slots(kv, batch, err);
    return s;
}

llmrt_status llmrt_rank_forward_check(llmrt_rank_kv *kv, const llmrt_batch *batch,
                                      const float *logits, int64_t logits_capacity,
                                      llmrt_error *err) {
    const int32_t *rows;
    int64_t        n_out;
    return prepare_batch(kv, batch, logits, logits_capacity, true, &rows, &n_out, err);
}

llmrt_status llmrt_rank_forward(llmrt_rank_kv *kv, const llmrt_batch *batch,
                                const llmrt_collectives *coll, float *logits,
                                int64_t logits_capacity, llmrt_error *err) {
    llmrt_rank_model *m        = kv->model;
    const int32_t    *out_rows = NULL;
    int64_t           n_out    = 0;
    /* a rank of a group other than the leader has no logits buffer: it only sends its rows */
    bool              check_capacity = logits != NULL || coll == NULL;
    llmrt_status      s = prepare_batch(kv, batch, logits, logits_capacity, check_capacity,
                                        &out_rows, &n_out, err);
    if (s == LLMRT_OK) s = reserve_workspace(kv, batch->n_tokens, n_out, err);
    if (s == LLMRT_OK) {
        llmrt_batch_plan plan = {
            .n_tokens     = batch->n_tokens,
            .tokens       = batch->tokens,
            .positions    = batch->positions,
            .seq_of       = batch->seq_ids,
            .slots        = kv->plan.slots,
            .n_seqs       = batch->n_seqs,
            .max_blocks   = batch->max_blocks_per_seq,
            .block_tables = batch->block_tables,
            .n_outputs    = (int32_t)n_out,
            .output_rows  = out_rows,
            .lora_slot    = batch->lora_slots,
            .lora_scale   = batch->lora_slots ? batch->lora_scales : NULL,
            .may_capture  = coll == NULL, /* collectives are host work between the ops */
            .capture_key  = kv,
            .block_size   = kv->pool.block_size,
        };
        s = m->be->ops->begin_batch(m->be, &plan, err);
    }
    if (s == LLMRT_OK)
        s = run_layers(kv, batch->n_tokens, n_out, batch->lora_slots != NULL, coll, logits, err);
    return s;
}
