/* Internal calls on the KV cache / forward (engine/forward.c) beyond the public API, used by the
 * engine and by the tensor-parallel driver (engine/tp.c). */
#ifndef LLMRT_ENGINE_FORWARD_H
#define LLMRT_ENGINE_FORWARD_H

#include "llmrt.h"

#include "../core/error.h"

struct llmrt_model;

/* One rank's paged KV pool and activation buffers. With tensor parallel, the leader's cache
 * owns twins of the same geometry on the other ranks (tp_twins; engine/tp.c). */
struct llmrt_kv_cache {
    struct llmrt_model *model;
    int32_t             n_blocks;
    int32_t             block_size;
    int64_t             bytes_per_token; /* this rank's K and V bytes per token slot */
    void              **k;      /* [n_layers] backend [n_blocks * block_size, Hkv_rank * hd] */
    void              **v;      /* [n_layers] likewise */

    /* activations, backend memory, sized for `act_tokens` tokens and `act_outputs` outputs */
    int64_t act_tokens, act_outputs;
    void   *x, *h, *q, *kx, *vx, *attn, *o, *gate, *up, *down, *out_rows, *logits;

    /* host-side plan arrays */
    int64_t *slots;
    int32_t *default_outputs;
    int64_t  plan_cap, outputs_cap;

    /* tensor parallel */
    void   *tp_twins;      /* leader: the other ranks' caches (engine/tp.c), NULL without TP */
    float  *tp_logits;     /* host [n_out, V_r]: this rank's logits rows before the gather */
    int64_t tp_logits_cap; /* floats */
};

/* Sizes the activation buffers and the backend's per-batch state for batches of up to
 * max_tokens tokens and max_outputs logits rows, so that no forward within these bounds
 * allocates (device memory on a GPU backend). The engine calls it with its max_batched_tokens
 * and max_seqs; larger batches still work (the buffers grow then). Every TP rank too. */
llmrt_status llmrt_kv_cache_reserve(llmrt_kv_cache *kv, int64_t max_tokens, int64_t max_outputs);

/* -- one rank (engine/tp.c) -- */

/* `logits_capacity` of a forward that computes no logits (a TP rank other than 0; logits NULL):
 * the forward stops after the last layer's all-reduce. */
#define LLMRT_FORWARD_NO_LOGITS (-1)

/* This rank's cache of n_blocks blocks of block_size tokens (no TP twins). */
llmrt_status llmrt_kv_cache_create_local(struct llmrt_model *model, int32_t n_blocks,
                                         int32_t block_size, llmrt_kv_cache **out,
                                         llmrt_error *err);
llmrt_status llmrt_kv_cache_reserve_local(llmrt_kv_cache *kv, int64_t max_tokens,
                                          int64_t max_outputs, llmrt_error *err);
/* Checks a batch as llmrt_forward does, computing nothing. */
llmrt_status llmrt_forward_validate(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                    int64_t logits_capacity, llmrt_error *err);
/* The forward on this rank only (its collectives included). */
llmrt_status llmrt_forward_local(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                 int64_t logits_capacity, llmrt_error *err);

#endif
