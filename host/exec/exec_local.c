/* The local executor (executor.h): one rank in this process, one forward at a time (the
 * backend's per-batch state is shared by every cache of the model). */
#include <stdlib.h>

#include "../model/lora_slots.h"
#include "../model/model.h"
#include "executor.h"

typedef struct local_exec {
    llmrt_executor  ex;
    pthread_mutex_t lock; /* one forward (or reserve) at a time on the backend */
} local_exec;

static llmrt_status local_kv_create(llmrt_executor *ex, int32_t n_blocks, int32_t block_size,
                                    llmrt_exec_kv **out, llmrt_error *err) {
    *out = NULL;
    llmrt_exec_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_kv_cache_create: out of memory");
    llmrt_status s = llmrt_rank_kv_create(ex->model, n_blocks, block_size, &kv->leader, err);
    if (s != LLMRT_OK) {
        free(kv);
        return s;
    }
    *out = kv;
    return LLMRT_OK;
}

static void local_kv_destroy(llmrt_executor *ex, llmrt_exec_kv *kv) {
    (void)ex;
    if (!kv) return;
    llmrt_rank_kv_destroy(kv->leader);
    free(kv);
}

static llmrt_status local_reserve(llmrt_executor *ex, llmrt_exec_kv *kv, int64_t max_tokens,
                                  int64_t max_outputs, llmrt_error *err) {
    local_exec *le = (local_exec *)ex;
    pthread_mutex_lock(&le->lock);
    llmrt_status s = llmrt_rank_kv_reserve(kv->leader, max_tokens, max_outputs, err);
    pthread_mutex_unlock(&le->lock);
    return s;
}

static llmrt_status local_forward(llmrt_executor *ex, llmrt_exec_kv *kv, const llmrt_batch *batch,
                                  float *logits, int64_t logits_capacity, llmrt_error *err) {
    local_exec *le = (local_exec *)ex;
    pthread_mutex_lock(&le->lock);
    llmrt_status s = llmrt_rank_forward(kv->leader, batch, NULL, logits, logits_capacity, err);
    pthread_mutex_unlock(&le->lock);
    return s;
}

llmrt_status llmrt_rank_kv_copy_blocks(llmrt_rank_kv *kv, const int32_t *src, const int32_t *dst,
                                       int32_t n, llmrt_error *err) {
    llmrt_backend *be = kv->model->be;
    if (!be->ops->copy)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "copy_blocks: the %s backend cannot copy",
                         be->name);
    int32_t  n_layers = kv->model->cfg.n_layers;
    /* one layer's K (or V) of one block: block_size slots of this rank's kv heads */
    uint64_t blk = (uint64_t)(kv->pool.bytes_per_token / (2 * n_layers)) *
                   (uint64_t)kv->pool.block_size;
    for (int32_t i = 0; i < n; i++) {
        if (src[i] < 0 || src[i] >= kv->pool.n_blocks || dst[i] < 0 ||
            dst[i] >= kv->pool.n_blocks || src[i] == dst[i])
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "copy_blocks: block %d -> %d outside [0, %d) or onto itself", src[i],
                             dst[i], kv->pool.n_blocks);
        for (int32_t l = 0; l < n_layers; l++) {
            LLMRT_TRY(be->ops->copy(be, (char *)kv->pool.k[l] + (uint64_t)dst[i] * blk,
                                    (const char *)kv->pool.k[l] + (uint64_t)src[i] * blk, blk,
                                    err));
            LLMRT_TRY(be->ops->copy(be, (char *)kv->pool.v[l] + (uint64_t)dst[i] * blk,
                                    (const char *)kv->pool.v[l] + (uint64_t)src[i] * blk, blk,
                                    err));
        }
    }
    return LLMRT_OK;
}

static llmrt_status local_copy_blocks(llmrt_executor *ex, llmrt_exec_kv *kv, const int32_t *src,
                                      const int32_t *dst, int32_t n, llmrt_error *err) {
    local_exec *le = (local_exec *)ex;
    pthread_mutex_lock(&le->lock);
    llmrt_status s = llmrt_rank_kv_copy_blocks(kv->leader, src, dst, n, err);
    pthread_mutex_unlock(&le->lock);
    return s;
}

static llmrt_status local_lora_init(llmrt_executor *ex, int32_t n_slots, llmrt_error *err) {
    local_exec *le = (local_exec *)ex;
    pthread_mutex_lock(&le->lock);
    llmrt_status s = llmrt_rank_lora_init(ex->model, n_slots, err);
    pthread_mutex_unlock(&le->lock);
    return s;
}

static llmrt_status local_lora_set(llmrt_executor *ex, int32_t slot, const char *path,
                                   const llmrt_lora_file *f, llmrt_error *err) {
    (void)path;
    local_exec *le = (local_exec *)ex;
    pthread_mutex_lock(&le->lock);
    llmrt_status s = llmrt_rank_lora_set(ex->model, slot, f, err);
    pthread_mutex_unlock(&le->lock);
    return s;
}

static void local_destroy(llmrt_executor *ex) {
    local_exec *le = (local_exec *)ex;
    pthread_mutex_destroy(&le->lock);
    free(le);
}

static bool local_host_run(llmrt_executor *ex, int64_t n_tasks, llmrt_task_fn task, void *ctx) {
    local_exec    *le = (local_exec *)ex;
    llmrt_backend *be = ex->model->be;
    if (!be->ops->host_run) return false;
    pthread_mutex_lock(&le->lock); /* the pool is the forward's: not during one */
    be->ops->host_run(be, n_tasks, task, ctx);
    pthread_mutex_unlock(&le->lock);
    return true;
}

static const llmrt_executor_ops local_ops = {
    .kv_create  = local_kv_create,
    .kv_destroy = local_kv_destroy,
    .reserve    = local_reserve,
    .forward    = local_forward,
    .copy_blocks = local_copy_blocks,
    .lora_init  = local_lora_init,
    .lora_set   = local_lora_set,
    .host_run   = local_host_run,
    .destroy    = local_destroy,
};

llmrt_status llmrt_executor_local_create(llmrt_rank_model *model, llmrt_executor **out,
                                         llmrt_error *err) {
    *out = NULL;
    local_exec *le = calloc(1, sizeof *le);
    if (!le) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    pthread_mutex_init(&le->lock, NULL);
    le->ex = (llmrt_executor){.ops = &local_ops, .model = model, .tp_size = 1, .tp_rank = 0,
                              .comm_kind = "", .impl = le};
    *out = &le->ex;
    return LLMRT_OK;
}
