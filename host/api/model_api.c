/* The public model calls: load (one rank, or a tensor-parallel group through its executor),
 * destroy, info, the follower loop of a multi-process group and its collective statistics. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../exec/tp/tp.h"
#include "../model/lora_merge.h"
#include "../format/kv_quant.h"
#include "api_model.h"
#ifdef LLMRT_HAVE_CUDA
#include "../backend/cuda/cuda_backend.h"
#endif

llmrt_status llmrt_model_load(const char *path, const llmrt_model_params *params,
                              llmrt_model **out) {
    llmrt_error        err = {0};
    llmrt_model_params p;
    if (!out) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_model_load: out is NULL");
    *out = NULL;
    llmrt_status s = llmrt_model_read_params(params, &p, &err);
    llmrt_model *model = NULL;
    if (s == LLMRT_OK) {
        model = calloc(1, sizeof *model);
        if (!model) s = llmrt_err(&err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_model_load: out of memory");
    }
    if (s == LLMRT_OK && (p.tensor_parallel == 0 || p.tensor_parallel == 1)) {
        s = llmrt_model_load_rank(path, &p, 1, 0, 0, &model->rank, &err);
        if (s == LLMRT_OK) s = llmrt_executor_local_create(model->rank, &model->exec, &err);
    } else if (s == LLMRT_OK) {
        s = llmrt_tp_executor_load(path, &p, &model->rank, &model->exec, &err);
    }
    if (s != LLMRT_OK) {
        llmrt_model_destroy(model);
        return llmrt_err_publish(&err);
    }
    *out = model;
    return LLMRT_OK;
}

void llmrt_model_destroy(llmrt_model *model) {
    if (!model) return;
    /* the executor first: peers and followers stop before the leader's rank goes */
    if (model->exec) model->exec->ops->destroy(model->exec);
    llmrt_rank_model_destroy(model->rank);
    free(model);
}

llmrt_status llmrt_model_tp_follow(llmrt_model *model) {
    llmrt_error err = {0};
    if (!model || !model->exec->ops->follow)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_model_tp_follow: not a follower rank of a multi-process "
                                  "tensor-parallel group");
    llmrt_status s = model->exec->ops->follow(model->exec, &err);
    return s == LLMRT_OK ? LLMRT_OK : llmrt_err_publish(&err);
}

llmrt_status llmrt_model_get_tp_stats(const llmrt_model *model, llmrt_tp_stats *out) {
    if (!model || !out || out->struct_size < sizeof(uint32_t) || out->struct_size > sizeof *out)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_model_get_tp_stats: bad argument");
    llmrt_tp_stats st = {.struct_size = out->struct_size};
    if (model->exec->ops->stats) model->exec->ops->stats(model->exec, &st);
    memcpy(out, &st, out->struct_size);
    return LLMRT_OK;
}

llmrt_status llmrt_model_get_info(const llmrt_model *model, llmrt_model_info *info) {
    if (!model || !info)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_model_get_info: NULL argument");
    uint32_t size = info->struct_size;
    if (size < offsetof(llmrt_model_info, vocab_size) || size > sizeof(llmrt_model_info))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_model_get_info: info->struct_size %u is invalid", size);
    const llmrt_rank_model *m  = model->rank;
    const llmrt_executor   *ex = model->exec;
    llmrt_model_info full;
    memset(&full, 0, sizeof full);
    full.struct_size = size;
    snprintf(full.architecture, sizeof full.architecture, "llama");
    snprintf(full.weight_format, sizeof full.weight_format, "%s", m->weight_format);
    const llmrt_model_config *c = &m->cfg;
    full.vocab_size          = c->vocab_size;
    full.hidden_size         = c->hidden_size;
    full.intermediate_size   = c->intermediate_size;
    full.n_layers            = c->n_layers;
    full.n_heads             = c->n_heads;
    full.n_kv_heads          = c->n_kv_heads;
    full.head_dim            = c->head_dim;
    full.max_context         = c->max_context;
    full.rope_theta          = (float)c->rope_theta;
    full.rms_norm_eps        = c->rms_norm_eps;
    full.bos_token_id        = c->bos_token_id;
    full.n_eos_token_ids     = c->n_eos;
    memcpy(full.eos_token_ids, c->eos_token_ids, sizeof full.eos_token_ids);
    full.n_params            = m->n_params;
    full.weight_bytes        = m->weight_bytes;
    full.tie_word_embeddings = c->tie_word_embeddings;
    snprintf(full.backend, sizeof full.backend, "%s", m->be->name);
    snprintf(full.device_name, sizeof full.device_name, "cpu");
#ifdef LLMRT_HAVE_CUDA
    llmrt_cuda_backend_stats cuda_stats;
    if (llmrt_backend_cuda_stats(m->be, &cuda_stats)) {
        snprintf(full.device_name, sizeof full.device_name, "%.63s", cuda_stats.device_name);
        full.cuda_graphs        = cuda_stats.graphs_on && ex->tp_size <= 1;
        full.cuda_graph_replays = cuda_stats.graph_replays + cuda_stats.graph_captures;
    }
#endif
    full.kv_elem_bytes = llmrt_kv_dtype_is_8bit(m->kv_dtype) ? 1
                         : m->kv_dtype == LLMRT_DTYPE_BF16 ? 2 : m->be->act_bytes;
    full.tp_size       = ex->tp_size;
    full.tp_rank       = ex->tp_rank;
    snprintf(full.tp_comm, sizeof full.tp_comm, "%s", ex->comm_kind);
    full.n_fallbacks = m->n_fallbacks;
    if (m->merge) {
        full.n_lora_merged   = m->merge->mode == 1 ? m->merge->n : 0;
        full.n_lora_unmerged = m->merge->mode == 2 ? m->merge->n : 0;
    }
    llmrt_rank_model_fallback_summary(m, full.fallback, sizeof full.fallback);
    memcpy(info, &full, size);
    return LLMRT_OK;
}
