/* The public low-level calls: a KV cache of the model's executor and one forward on a packed
 * batch with caller-managed block tables. */
#include <stdlib.h>
#include <string.h>

#include "api_model.h"

llmrt_kv_cache_params llmrt_kv_cache_default_params(void) {
    return (llmrt_kv_cache_params){
        .struct_size = sizeof(llmrt_kv_cache_params),
        .block_size  = 16,
        .n_blocks    = 0,
        .max_tokens  = 4096,
        .max_bytes   = 0,
    };
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
    llmrt_error err = {0};
    int32_t     n_blocks;
    llmrt_status s = llmrt_kv_budget_blocks(p.block_size, p.n_blocks, p.max_tokens, p.max_bytes,
                                            llmrt_rank_kv_bytes_per_token(model->rank),
                                            &n_blocks, &err);
    if (s != LLMRT_OK) llmrt_err_prefix(&err, "llmrt_kv_cache_create");
    llmrt_kv_cache *kv = NULL;
    if (s == LLMRT_OK) {
        kv = calloc(1, sizeof *kv);
        if (!kv) s = llmrt_err(&err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (s == LLMRT_OK) s = model->exec->ops->kv_create(model->exec, n_blocks, p.block_size,
                                                         &kv->kv, &err);
    if (s != LLMRT_OK) {
        free(kv);
        return llmrt_err_publish(&err);
    }
    kv->model      = model;
    kv->n_blocks   = n_blocks;
    kv->block_size = p.block_size;
    *out = kv;
    return LLMRT_OK;
}

void llmrt_kv_cache_destroy(llmrt_kv_cache *kv) {
    if (!kv) return;
    kv->model->exec->ops->kv_destroy(kv->model->exec, kv->kv);
    free(kv);
}

int32_t llmrt_kv_cache_n_blocks(const llmrt_kv_cache *kv) {
    return kv ? kv->n_blocks : 0;
}
int32_t llmrt_kv_cache_block_size(const llmrt_kv_cache *kv) {
    return kv ? kv->block_size : 0;
}
int64_t llmrt_kv_cache_bytes_per_token(const llmrt_kv_cache *kv) {
    return kv ? kv->kv->leader->pool.bytes_per_token : 0;
}

llmrt_status llmrt_forward(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                           int64_t logits_capacity) {
    if (!kv || !batch)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_forward: kv or batch is NULL");
    /* the public batch always asks for logits: an empty output list is the caller's mistake */
    if (batch->output_tokens && batch->n_outputs < 1)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_forward: n_outputs must be >= 1 with output_tokens");
    llmrt_error     err = {0};
    llmrt_executor *ex  = kv->model->exec;
    llmrt_status    s   = ex->ops->forward(ex, kv->kv, batch, logits, logits_capacity, &err);
    return s == LLMRT_OK ? LLMRT_OK : llmrt_err_publish(&err);
}
