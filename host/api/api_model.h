/* The public handles of the C API (include/llmrt.h) as the api/ files see them: a model is the
 * rank this process drives plus the executor that runs it (local or tensor parallel); a KV
 * cache is an executor's cache. */
#ifndef LLMRT_API_MODEL_H
#define LLMRT_API_MODEL_H

#include "../exec/executor.h"
#include "../model/model.h"

struct llmrt_model {
    llmrt_rank_model *rank; /* this process's rank: config, tokenizer, weights (owned) */
    llmrt_executor   *exec; /* runs forwards on every rank (owned; ends before `rank`) */
};

struct llmrt_kv_cache {
    llmrt_model   *model;
    llmrt_exec_kv *kv;
    int32_t        n_blocks, block_size;
};

#endif
