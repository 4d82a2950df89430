/* The Llama forward on a packed batch, written once as calls into the backend interface, and
 * the public KV-cache object it reads and writes. Shapes: T tokens, D hidden, F ffn,
 * Hq / Hkv heads of hd dims, V vocab. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/checked_math.h"
#include "../model/model.h"
#include "forward.h"
#include "tp/tp.h"


/* --------------------------------------------------------------------------------------------- */
/* KV cache                                                                                      */
/* --------------------------------------------------------------------------------------------- */

/* Batch reserved at KV-cache creation when the backend has per-batch device state: the engine's
 * default max_batched_tokens and max_seqs (llmrt_engine_default_params). */
#define KV_RESERVE_TOKENS  512
#define KV_RESERVE_OUTPUTS 64

static llmrt_status reserve_activations(llmrt_kv_cache *kv, int64_t T, int64_t n_out,
                                        llmrt_error *err);

llmrt_kv_cache_params llmrt_kv_cache_default_params(void) {
    return (llmrt_kv_cache_params){
        .struct_size = sizeof(llmrt_kv_cache_params),
        .block_size  = 16,
        .n_blocks    = 0,
        .max_tokens  = 4096,
        .max_bytes   = 0,
    };
}

static void free_activations(llmrt_kv_cache *kv) {
    llmrt_backend *be = kv->model->be;
    void **bufs[] = {&kv->x, &kv->h, &kv->q, &kv->kx, &kv->vx, &kv->attn, &kv->o, &kv->gate,
                     &kv->up, &kv->down, &kv->out_rows, &kv->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (*bufs[i]) be->ops->free(be, *bufs[i]);
        *bufs[i] = NULL;
    }
    kv->act_tokens = kv->act_outputs = 0;
}

/* K and V bytes per token slot on this rank (its KV heads only). */
static int64_t kv_bytes_per_token(const struct llmrt_model *m) {
    return 2 * (int64_t)m->cfg.n_layers * m->shard.n_kv_heads * m->cfg.head_dim *
           m->be->act_bytes;
}

void llmrt_kv_cache_destroy(llmrt_kv_cache *kv) {
    if (!kv) return;
    if (kv->tp_twins) llmrt_tp_kv_destroy(kv);
    llmrt_backend *be = kv->model->be;
    for (int32_t l = 0; l < kv->model->cfg.n_layers; l++) {
        if (kv->k && kv->k[l]) be->ops->free(be, kv->k[l]);
        if (kv->v && kv->v[l]) be->ops->free(be, kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free_activations(kv);
    free(kv->slots);
    free(kv->default_outputs);
    free(kv->tp_logits);
    free(kv);
}

llmrt_status llmrt_kv_cache_create(llmrt_model *model, const llmrt_kv_cache_params *params,
                                   llmrt_kv_cache **out) {
    if (!out) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_kv_cache_create: out is NULL");
    *out = NULL;
    if (!model)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_kv_cache_create: model is NULL");
    llmrt_kv_cache_params p = llmrt_kv_cache_default_params();
    if (params) {
        if (params->struct_size < sizeof(uint32_t) || params->struct_size > sizeof p)
            return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                      "llmrt_kv_cache_create: params->struct_size %u is invalid",
                                      params->struct_size);
        memcpy(&p, params, params->struct_size);
    }
    if (p.block_size < 1 || p.block_size > 4096)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_kv_cache_create: block_size %d outside [1, 4096]",
                                  p.block_size);
    int64_t per_token = kv_bytes_per_token(model);
    int64_t n_blocks  = p.n_blocks;
    if (n_blocks == 0) {
        if (p.max_tokens > 0) /* rounded up without overflowing near INT64_MAX */
            n_blocks = p.max_tokens / p.block_size + (p.max_tokens % p.block_size != 0);
        else if (p.max_bytes > 0) n_blocks = p.max_bytes / (per_token * p.block_size);
    }
    if (n_blocks < 1 || n_blocks > INT32_MAX / p.block_size || p.n_blocks < 0 ||
        p.max_tokens < 0 || p.max_bytes < 0)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_kv_cache_create: the KV budget gives %lld blocks (need "
                                  ">= 1; set n_blocks, max_tokens or max_bytes)",
                                  (long long)n_blocks);
    llmrt_error     err = {0};
    llmrt_kv_cache *kv  = NULL;
    llmrt_status    s   = llmrt_kv_cache_create_local(model, (int32_t)n_blocks, p.block_size, &kv,
                                                      &err);
    if (s == LLMRT_OK && model->tp) {
        s = llmrt_tp_kv_create(kv, &err); /* the other ranks' caches of the same geometry */
        if (s != LLMRT_OK) {
            llmrt_kv_cache_destroy(kv);
            kv = NULL;
        }
    }
    if (s != LLMRT_OK) return llmrt_err_publish(&err);
    *out = kv;
    return LLMRT_OK;
}

llmrt_status llmrt_kv_cache_create_local(struct llmrt_model *model, int32_t n_blocks,
                                         int32_t block_size, llmrt_kv_cache **out,
                                         llmrt_error *errp) {
    const llmrt_model_config *c  = &model->cfg;
    llmrt_backend            *be = model->be;
    llmrt_kv_cache_params     p  = {.block_size = block_size};
    int64_t kv_w      = (int64_t)model->shard.n_kv_heads * c->head_dim;
    int64_t per_token = kv_bytes_per_token(model);
    *out = NULL;
    llmrt_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return llmrt_err(errp, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_kv_cache_create: out of memory");
    kv->model           = model;
    kv->n_blocks        = (int32_t)n_blocks;
    kv->block_size      = p.block_size;
    kv->bytes_per_token = per_token;
    kv->k               = calloc((size_t)c->n_layers, sizeof *kv->k);
    kv->v               = calloc((size_t)c->n_layers, sizeof *kv->v);
    llmrt_error err = {0};
    llmrt_status s  = (kv->k && kv->v) ? LLMRT_OK
                                       : llmrt_err(&err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    uint64_t layer_bytes = (uint64_t)n_blocks * (uint64_t)p.block_size * (uint64_t)kv_w *
                           (uint64_t)be->act_bytes;
    for (int32_t l = 0; l < c->n_layers && s == LLMRT_OK; l++) {
        s = be->ops->alloc(be, layer_bytes, &kv->k[l], &err);
        if (s == LLMRT_OK) s = be->ops->alloc(be, layer_bytes, &kv->v[l], &err);
    }
    if (s != LLMRT_OK) {
        llmrt_err_prefix(&err, "llmrt_kv_cache_create: %lld blocks of %d tokens (%.2f GiB: K and V "
                         "of %d layers, %.2f GiB each)", (long long)n_blocks, p.block_size,
                         (double)layer_bytes * 2 * c->n_layers / (1 << 30), c->n_layers,
                         (double)layer_bytes / (1 << 30));
        llmrt_kv_cache_destroy(kv);
        if (errp) *errp = err;
        return s;
    }
    /* Backends with per-batch device state size it (and the activations) at start-up, for the
     * engine's default batch; llmrt_kv_cache_reserve sets other bounds. */
    if (be->ops->reserve) {
        s = reserve_activations(kv, KV_RESERVE_TOKENS, KV_RESERVE_OUTPUTS, &err);
        if (s != LLMRT_OK) {
            llmrt_err_prefix(&err, "llmrt_kv_cache_create: activations for %d tokens",
                             KV_RESERVE_TOKENS);
            llmrt_kv_cache_destroy(kv);
            if (errp) *errp = err;
            return s;
        }
    }
    *out = kv;
    return LLMRT_OK;
}

int32_t llmrt_kv_cache_n_blocks(const llmrt_kv_cache *kv) {
    return kv ? kv->n_blocks : 0;
}
int32_t llmrt_kv_cache_block_size(const llmrt_kv_cache *kv) {
    return kv ? kv->block_size : 0;
}
int64_t llmrt_kv_cache_bytes_per_token(const llmrt_kv_cache *kv) {
    return kv ? kv->bytes_per_token : 0;
}

/* Activation buffers (and the backend's per-batch state, be->ops->reserve) grow to the largest
 * batch seen. A decode-only step never grows them: its sequences all ran in the step before it,
 * each with at least one token and its output row. */
static llmrt_status reserve_activations(llmrt_kv_cache *kv, int64_t T, int64_t n_out,
                                        llmrt_error *err) {
    if (T <= kv->act_tokens && n_out <= kv->act_outputs) return LLMRT_OK;
    if (T < kv->act_tokens) T = kv->act_tokens;
    if (n_out < kv->act_outputs) n_out = kv->act_outputs;
    free_activations(kv);
    const llmrt_model_config *c  = &kv->model->cfg;
    llmrt_backend            *be = kv->model->be;
    const llmrt_tp_shard     *sh = &kv->model->shard;
    int64_t D = c->hidden_size, F = sh->ffn, V = c->vocab_size;
    int64_t qw = (int64_t)sh->n_heads * c->head_dim, kw = (int64_t)sh->n_kv_heads * c->head_dim;
    int64_t ab = be->act_bytes, rb = be->resid_bytes ? be->resid_bytes : ab;
    int64_t lb = be->ops->logits ? (int64_t)sizeof(float) : ab; /* logits op: fp32 scratch */
    struct {
        void  **buf;
        int64_t elems, bytes; /* bytes per element */
    } plan[] = {
        {&kv->x, T * D, rb},     {&kv->h, T * D, ab},      {&kv->q, T * qw, ab},
        {&kv->kx, T * kw, ab},   {&kv->vx, T * kw, ab},    {&kv->attn, T * qw, ab},
        {&kv->o, T * D, ab},     {&kv->gate, T * F, ab},   {&kv->up, T * F, ab},
        {&kv->down, T * D, ab},  {&kv->out_rows, n_out * D, ab},
        {&kv->logits, n_out * V, lb},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        llmrt_status s = be->ops->alloc(be, (uint64_t)plan[i].elems * (uint64_t)plan[i].bytes,
                                        plan[i].buf, err);
        if (s != LLMRT_OK) {
            free_activations(kv);
            return s;
        }
    }
    if (be->ops->reserve) {
        /* a sequence holds at most the context or the whole pool; at most one per token */
        int64_t max_blocks = ((int64_t)c->max_context + kv->block_size - 1) / kv->block_size;
        if (max_blocks > kv->n_blocks) max_blocks = kv->n_blocks;
        llmrt_attn_shape shape = {.n_heads = sh->n_heads, .n_kv_heads = sh->n_kv_heads,
                                  .head_dim = c->head_dim, .block_size = kv->block_size,
                                  .scale = 1.0f / sqrtf((float)c->head_dim)};
        llmrt_status s = be->ops->reserve(be, T, n_out, T, max_blocks, &shape, err);
        if (s != LLMRT_OK) {
            free_activations(kv);
            return s;
        }
    }
    kv->act_tokens  = T;
    kv->act_outputs = n_out;
    return LLMRT_OK;
}

llmrt_status llmrt_kv_cache_reserve_local(llmrt_kv_cache *kv, int64_t max_tokens,
                                          int64_t max_outputs, llmrt_error *err) {
    pthread_mutex_lock(&kv->model->forward_lock);
    llmrt_status s = reserve_activations(kv, max_tokens, max_outputs, err);
    pthread_mutex_unlock(&kv->model->forward_lock);
    return s;
}

llmrt_status llmrt_kv_cache_reserve(llmrt_kv_cache *kv, int64_t max_tokens, int64_t max_outputs) {
    llmrt_error  err = {0};
    llmrt_status s   = llmrt_kv_cache_reserve_local(kv, max_tokens, max_outputs, &err);
    if (s == LLMRT_OK && kv->tp_twins) s = llmrt_tp_kv_reserve(kv, max_tokens, max_outputs, &err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(&err, "llmrt_kv_cache_reserve: batches of %lld tokens, %lld outputs",
                         (long long)max_tokens, (long long)max_outputs);
        return llmrt_err_publish(&err);
    }
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* batch validation                                                                              */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status validate_batch(const llmrt_kv_cache *kv, const llmrt_batch *b,
                                   int64_t n_outputs, float *logits, int64_t capacity,
                                   llmrt_error *err) {
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
        if (b->block_tables[i] < -1 || b->block_tables[i] >= kv->n_blocks)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: block_tables[%lld] = %d is not a block id in "
                             "[0, %d) or -1", (long long)i, b->block_tables[i], kv->n_blocks);
    int64_t max_pos = (int64_t)b->max_blocks_per_seq * kv->block_size;
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
        /* every position the token attends to must have a block */
        const int32_t *table = b->block_tables + (int64_t)seq * b->max_blocks_per_seq;
        for (int32_t blk = 0; blk <= pos / kv->block_size; blk++)
            if (table[blk] < 0)
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "llmrt_forward: sequence %d has no block for positions %d..%d "
                                 "(needed by tokens[%d] at position %d)", seq,
                                 blk * kv->block_size, (blk + 1) * kv->block_size - 1, t, pos);
    }
    if (b->output_tokens) {
        if (b->n_outputs < 1)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_forward: n_outputs must be >= 1 with output_tokens");
        for (int32_t i = 0; i < b->n_outputs; i++)
            if (b->output_tokens[i] < 0 || b->output_tokens[i] >= b->n_tokens)
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "llmrt_forward: output_tokens[%d] = %d is outside [0, %d)", i,
                                 b->output_tokens[i], b->n_tokens);
    }
    int64_t need;
    if (logits == NULL && capacity == LLMRT_FORWARD_NO_LOGITS) return LLMRT_OK; /* a TP rank other than 0 */
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

static llmrt_status plan_slots(llmrt_kv_cache *kv, const llmrt_batch *b, llmrt_error *err) {
    int64_t T = b->n_tokens;
    if (T > kv->plan_cap) {
        int64_t *n = realloc(kv->slots, (size_t)T * 2 * sizeof(int64_t));
        if (!n) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_forward: out of memory");
        kv->slots    = n;
        kv->plan_cap = T;
    }
    int64_t *sorted = kv->slots + T;
    for (int64_t t = 0; t < T; t++) {
        int32_t  pos   = b->positions[t];
        int32_t  block = b->block_tables[(int64_t)b->seq_ids[t] * b->max_blocks_per_seq +
                                        pos / kv->block_size];
        kv->slots[t]   = (int64_t)block * kv->block_size + pos % kv->block_size;
        sorted[t]      = kv->slots[t];
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
static llmrt_status plan_outputs(llmrt_kv_cache *kv, const llmrt_batch *b, const int32_t **rows,
                                 int64_t *n_rows, llmrt_error *err) {
    if (b->output_tokens) {
        *rows   = b->output_tokens;
        *n_rows = b->n_outputs;
        return LLMRT_OK;
    }
    if (b->n_seqs > kv->outputs_cap) {
        int32_t *n = realloc(kv->default_outputs, (size_t)b->n_seqs * sizeof(int32_t));
        if (!n) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_forward: out of memory");
        kv->default_outputs = n;
        kv->outputs_cap     = b->n_seqs;
    }
    for (int32_t s = 0; s < b->n_seqs; s++) kv->default_outputs[s] = -1;
    for (int32_t t = 0; t < b->n_tokens; t++) kv->default_outputs[b->seq_ids[t]] = t;
    int64_t n = 0;
    for (int32_t s = 0; s < b->n_seqs; s++)
        if (kv->default_outputs[s] >= 0) kv->default_outputs[n++] = kv->default_outputs[s];
    *rows   = kv->default_outputs;
    *n_rows = n;
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* forward                                                                                       */
/* --------------------------------------------------------------------------------------------- */

/* Tensor parallel: this rank holds its heads and FFN slice (m->shard); the row-parallel o and
 * down projections give partial sums that are all-reduced over the group (the Megatron split:
 * 2 all-reduces of [T, D] per layer). Ranks other than 0 stop after the last layer: only the
 * leader holds the lm_head and samples. */
static llmrt_status run_layers(llmrt_kv_cache *kv, int64_t T, int64_t n_out, float *logits,
                               llmrt_error *err) {
    struct llmrt_model       *m  = kv->model;
    const llmrt_model_config *c  = &m->cfg;
    llmrt_backend            *be = m->be;
    const llmrt_backend_ops  *op = be->ops;
    int64_t                   D  = c->hidden_size, F = m->shard.ffn;
    bool                      tp = m->tp != NULL;
    llmrt_attn_shape          shape = {
        .n_heads    = m->shard.n_heads,
        .n_kv_heads = m->shard.n_kv_heads,
        .head_dim   = c->head_dim,
        .block_size = kv->block_size,
        .scale      = 1.0f / sqrtf((float)c->head_dim),
    };

    op->embed(be, kv->x, &m->tok_embd);                                  /* x [T, D] */
    for (int32_t l = 0; l < c->n_layers; l++) {
        const llmrt_layer_weights *L = &m->layers[l];
        if (l == 0) op->rmsnorm(be, kv->h, kv->x, L->attn_norm, D, c->rms_norm_eps);
        else op->add_rmsnorm(be, kv->x, kv->down, kv->h, L->attn_norm, D, c->rms_norm_eps);
        op->matmul(be, kv->q, kv->h, T, &L->wq);                         /* q [T, Hq*hd]  */
        op->matmul(be, kv->kx, kv->h, T, &L->wk);                        /* k [T, Hkv*hd] */
        op->matmul(be, kv->vx, kv->h, T, &L->wv);                        /* v [T, Hkv*hd] */
        op->rope_kv_write(be, kv->q, kv->kx, kv->vx, kv->k[l], kv->v[l], &shape);
        op->attention(be, kv->attn, kv->q, kv->k[l], kv->v[l], &shape);  /* [T, Hq*hd] */
        op->matmul(be, kv->o, kv->attn, T, &L->wo);                      /* o [T, D] */
        if (tp) LLMRT_TRY(llmrt_tp_all_reduce(m, kv->o, T * D, err));
        op->add_rmsnorm(be, kv->x, kv->o, kv->h, L->ffn_norm, D, c->rms_norm_eps);
        op->matmul(be, kv->gate, kv->h, T, &L->w_gate);                  /* [T, F] */
        op->matmul(be, kv->up, kv->h, T, &L->w_up);                      /* [T, F] */
        op->swiglu(be, kv->gate, kv->gate, kv->up, F);
        op->matmul(be, kv->down, kv->gate, T, &L->w_down);               /* [T, D] */
        if (tp) LLMRT_TRY(llmrt_tp_all_reduce(m, kv->down, T * D, err));
    }
    op->add(be, kv->x, kv->down, D);
    op->rmsnorm(be, kv->h, kv->x, m->output_norm, D, c->rms_norm_eps);
    op->gather_outputs(be, kv->out_rows, kv->h, D);                      /* [n_out, D] */
    /* the lm_head rows of this rank: all V without TP; with TP (vocab-parallel) [n_out, V_r]
     * into a host buffer, gathered into the leader's logits */
    int64_t Vr   = m->lm_head.rows;
    float  *host = logits;
    if (tp) {
        if (n_out * Vr > kv->tp_logits_cap) {
            float *p = realloc(kv->tp_logits, (size_t)(n_out * Vr) * sizeof *p);
            if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_forward: out of memory");
            kv->tp_logits     = p;
            kv->tp_logits_cap = n_out * Vr;
        }
        host = kv->tp_logits;
    }
    llmrt_status s;
    if (op->logits) { /* fp32 lm_head output, downloaded */
        s = op->logits(be, host, kv->logits, kv->out_rows, n_out, &m->lm_head, err);
    } else {
        op->matmul(be, kv->logits, kv->out_rows, n_out, &m->lm_head);    /* [n_out, V_r] */
        s = op->download_f32(be, host, kv->logits, n_out * Vr, err);
    }
    if (s != LLMRT_OK || !tp) return s;
    return llmrt_tp_gather_logits(m, host, n_out, logits, err);
}

/* Plans the batch (output rows, KV slots) and checks it: every value the caller gave. */
static llmrt_status prepare_batch(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                  int64_t logits_capacity, const int32_t **out_rows,
                                  int64_t *n_out, llmrt_error *err) {
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
    if (s == LLMRT_OK) s = validate_batch(kv, batch, *n_out, logits, logits_capacity, err);
    if (s == LLMRT_OK) s = plan_slots(kv, batch, err);
    return s;
}

llmrt_status llmrt_forward_validate(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                    int64_t logits_capacity, llmrt_error *err) {
    pthread_mutex_lock(&kv->model->forward_lock);
    const int32_t *rows;
    int64_t        n_out;
    llmrt_status   s = prepare_batch(kv, batch, logits, logits_capacity, &rows, &n_out, err);
    pthread_mutex_unlock(&kv->model->forward_lock);
    return s;
}

llmrt_status llmrt_forward_local(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                 int64_t logits_capacity, llmrt_error *err) {
    struct llmrt_model *m = kv->model;
    pthread_mutex_lock(&m->forward_lock);
    const int32_t *out_rows = NULL;
    int64_t        n_out    = 0;
    llmrt_status   s = prepare_batch(kv, batch, logits, logits_capacity, &out_rows, &n_out, err);
    if (s == LLMRT_OK) s = reserve_activations(kv, batch->n_tokens, n_out, err);
    if (s == LLMRT_OK) {
        llmrt_batch_plan plan = {
            .n_tokens     = batch->n_tokens,
            .tokens       = batch->tokens,
            .positions    = batch->positions,
            .seq_of       = batch->seq_ids,
            .slots        = kv->slots,
            .n_seqs       = batch->n_seqs,
            .max_blocks   = batch->max_blocks_per_seq,
            .block_tables = batch->block_tables,
            .n_outputs    = (int32_t)n_out,
            .output_rows  = out_rows,
        };
        s = m->be->ops->begin_batch(m->be, &plan, err);
    }
    if (s == LLMRT_OK) s = run_layers(kv, batch->n_tokens, n_out, logits, err);
    pthread_mutex_unlock(&m->forward_lock);
    return s;
}

llmrt_status llmrt_forward(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                           int64_t logits_capacity) {
    if (!kv || !batch)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_forward: kv or batch is NULL");
    llmrt_error  err = {0};
    llmrt_status s   = kv->tp_twins ? llmrt_tp_forward(kv, batch, logits, logits_capacity, &err)
                                    : llmrt_forward_local(kv, batch, logits, logits_capacity, &err);
    return s == LLMRT_OK ? LLMRT_OK : llmrt_err_publish(&err);
}
