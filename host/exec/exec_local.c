/* The local executor (executor.h): one rank in this process, one forward at a time (the
 * backend's per-batch state is shared by every cache of the model). */
#include <stdlib.h>

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

static void local_destroy(llmrt_executor *ex) {
    local_exec *le = (local_exec *)ex;
    pthread_mutex_destroy(&le->lock);
    free(le);
}

static const llmrt_executor_ops local_ops = {
    .kv_create  = local_kv_create,
    .kv_destroy = local_kv_destroy,
    .reserve    = local_reserve,
    .forward    = local_forward,
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
