/* The tensor-parallel executor's operations (tp.h): KV caches on every rank, the group's
 * forward, and turning a failed rank into a dead group instead of a hang. The other parts are
 * listed in tp_internal.h. */
#include "tp_internal.h"

#include "../../model/lora_slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cache's state on the other ranks: the peers' caches (in-process) or the id the followers
 * know it by. */
typedef struct tp_twins {
    int32_t id;
    llmrt_rank_kv **peer_kv; /* [size - 1], in-process */
} tp_twins;

static llmrt_status group_dead(tp_exec *te, llmrt_error *err) {
    return llmrt_err(err, LLMRT_ERR_DEAD, "the tensor-parallel group failed earlier: %s",
                     te->dead_msg);
}

static void mark_dead(tp_exec *te, const llmrt_error *err) {
    if (te->dead) return;
    te->dead = true;
    snprintf(te->dead_msg, sizeof te->dead_msg, "%s", err && err->msg[0] ? err->msg : "unknown");
    te->self->comm->ops->abort(te->self->comm, te->dead_msg);
}

/* --------------------------------------------------------------------------------------------- */
/* KV caches                                                                                     */
/* --------------------------------------------------------------------------------------------- */

static void tp_kv_destroy(llmrt_executor *ex, llmrt_exec_kv *kv) {
    tp_exec *te = ex->impl;
    if (!kv) return;
    tp_twins *tw = kv->ranks;
    if (tw) {
        pthread_mutex_lock(&te->lock);
        if (te->self->multi_process) {
            if (!te->dead) {
                tp_msg msg = {.op = TP_OP_KV_DESTROY, .kv_id = tw->id};
                llmrt_error e2 = {0};
                if (tp_send(te->self, &msg, &e2) != LLMRT_OK) mark_dead(te, &e2);
            }
        } else if (tw->peer_kv) {
            for (int32_t r = 1; r < te->self->size; r++)
                llmrt_rank_kv_destroy(tw->peer_kv[r - 1]);
        }
        pthread_mutex_unlock(&te->lock);
        free(tw->peer_kv);
        free(tw);
    }
    llmrt_rank_kv_destroy(kv->leader);
    free(kv);
}

static llmrt_status tp_kv_create(llmrt_executor *ex, int32_t n_blocks, int32_t block_size,
                                 llmrt_exec_kv **out, llmrt_error *err) {
    tp_exec *te = ex->impl;
    *out = NULL;
    llmrt_exec_kv *kv = calloc(1, sizeof *kv);
    tp_twins *tw = calloc(1, sizeof *tw);
    if (!kv || !tw) {
        free(kv);
        free(tw);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    }
    llmrt_status s = llmrt_rank_kv_create(ex->model, n_blocks, block_size, &kv->leader, err);
    if (s != LLMRT_OK) {
        free(kv);
        free(tw);
        return s;
    }
    kv->ranks = tw;
    int32_t size = te->self->size;
    pthread_mutex_lock(&te->lock);
    s = te->dead ? group_dead(te, err) : LLMRT_OK;
    tw->id = ++te->next_kv_id;
    bool sent = false;
    if (s == LLMRT_OK && te->self->multi_process) {
        tp_msg msg = {.op = TP_OP_KV_CREATE, .kv_id = tw->id, .a = n_blocks, .b = block_size};
        s = tp_send(te->self, &msg, err);
        sent = true;
    } else if (s == LLMRT_OK) {
        tw->peer_kv = calloc((size_t)size - 1, sizeof *tw->peer_kv);
        if (!tw->peer_kv) s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int32_t r = 1; r < size && s == LLMRT_OK; r++) {
            s = llmrt_rank_kv_create(te->ranks[r]->model, n_blocks, block_size,
                                     &tw->peer_kv[r - 1], err);
            if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
        }
    }
    /* the followers' state is unknown after a failed request: the group cannot go on */
    if (s != LLMRT_OK && sent) mark_dead(te, err);
    pthread_mutex_unlock(&te->lock);
    if (s != LLMRT_OK) {
        tp_kv_destroy(ex, kv);
        return s;
    }
    *out = kv;
    return LLMRT_OK;
}

static llmrt_status tp_reserve(llmrt_executor *ex, llmrt_exec_kv *kv, int64_t max_tokens,
                               int64_t max_outputs, llmrt_error *err) {
    tp_exec *te = ex->impl;
    tp_twins *tw = kv->ranks;
    pthread_mutex_lock(&te->lock);
    llmrt_status s = te->dead ? group_dead(te, err) : LLMRT_OK;
    if (s == LLMRT_OK) s = llmrt_rank_kv_reserve(kv->leader, max_tokens, max_outputs, err);
    if (s == LLMRT_OK && te->self->multi_process) {
        tp_msg msg = {.op = TP_OP_KV_RESERVE, .kv_id = tw->id, .a = max_tokens, .b = max_outputs};
        s = tp_send(te->self, &msg, err);
        if (s != LLMRT_OK) mark_dead(te, err);
    } else if (s == LLMRT_OK) {
        for (int32_t r = 1; r < te->self->size && s == LLMRT_OK; r++) {
            s = llmrt_rank_kv_reserve(tw->peer_kv[r - 1], max_tokens, max_outputs, err);
            if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
        }
    }
    pthread_mutex_unlock(&te->lock);
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* the group's forward                                                                           */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status tp_forward(llmrt_executor *ex, llmrt_exec_kv *kv, const llmrt_batch *batch,
                               float *logits, int64_t logits_capacity, llmrt_error *err) {
    tp_exec *te = ex->impl;
    tp_twins *tw = kv->ranks;
    int32_t size = te->self->size;
    pthread_mutex_lock(&te->lock);
    if (te->dead) {
        llmrt_status s = group_dead(te, err);
        pthread_mutex_unlock(&te->lock);
        return s;
    }
    /* a bad batch is the caller's mistake, not the group's: refuse it before any rank starts */
    llmrt_status s = llmrt_rank_forward_check(kv->leader, batch, logits, logits_capacity, err);
    if (s != LLMRT_OK) {
        pthread_mutex_unlock(&te->lock);
        return s;
    }
    if (te->self->multi_process) {
        s = tp_send_forward(te->self, tw->id, batch, err);
    } else {
        for (int32_t r = 1; r < size; r++)
            tp_worker_post(&te->workers[r - 1], tw->peer_kv[r - 1], batch);
    }
    if (s == LLMRT_OK) s = tp_rank_forward(te->self, kv->leader, batch, logits, logits_capacity, err);
    if (!te->self->multi_process) {
        /* report the rank that failed first, not the ones its abort released (their errors
         * say so: secondary) */
        bool first_secondary = s != LLMRT_OK && err && err->secondary;
        for (int32_t r = 1; r < size; r++) {
            llmrt_error e2 = {0};
            llmrt_status s2 = tp_worker_join(&te->workers[r - 1], &e2);
            if (s2 == LLMRT_OK) continue;
            if (s == LLMRT_OK || (first_secondary && !e2.secondary)) {
                s = s2;
                first_secondary = e2.secondary;
                if (err) *err = e2;
            }
        }
    }
    if (s != LLMRT_OK) {
        if (err) err->status = LLMRT_ERR_DEAD;
        s = LLMRT_ERR_DEAD;
        mark_dead(te, err);
    }
    pthread_mutex_unlock(&te->lock);
    return s;
}

/* In-process groups copy on every rank's cache; a multi-process group has no message for it
 * (UNSUPPORTED: the engine recomputes the block). */
static llmrt_status tp_copy_blocks(llmrt_executor *ex, llmrt_exec_kv *kv, const int32_t *src,
                                   const int32_t *dst, int32_t n, llmrt_error *err) {
    tp_exec *te = ex->impl;
    tp_twins *tw = kv->ranks;
    if (te->self->multi_process)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "copy_blocks: not in a multi-process tensor-parallel group");
    pthread_mutex_lock(&te->lock);
    llmrt_status s = te->dead ? group_dead(te, err) : LLMRT_OK;
    /* every rank's backend must copy, or none is asked (a partial copy is harmless: the blocks
     * are unreferenced until the engine's fork succeeds) */
    for (int32_t r = 0; r < te->self->size && s == LLMRT_OK; r++)
        if (!te->ranks[r]->model->be->ops->copy)
            s = llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "copy_blocks: rank %d cannot copy", r);
    if (s == LLMRT_OK) s = llmrt_rank_kv_copy_blocks(kv->leader, src, dst, n, err);
    for (int32_t r = 1; r < te->self->size && s == LLMRT_OK; r++) {
        s = llmrt_rank_kv_copy_blocks(tw->peer_kv[r - 1], src, dst, n, err);
        if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
    }
    pthread_mutex_unlock(&te->lock);
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* LoRA slots on every rank                                                                      */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status tp_lora_init(llmrt_executor *ex, int32_t n_slots, llmrt_error *err) {
    tp_exec *te = ex->impl;
    pthread_mutex_lock(&te->lock);
    llmrt_status s = te->dead ? group_dead(te, err) : LLMRT_OK;
    if (s == LLMRT_OK) s = llmrt_rank_lora_init(ex->model, n_slots, err);
    if (s == LLMRT_OK && te->self->multi_process) {
        tp_msg msg = {.op = TP_OP_LORA_INIT, .a = n_slots};
        s = tp_send(te->self, &msg, err);
        if (s != LLMRT_OK) mark_dead(te, err);
    }
    for (int32_t r = 1; r < te->self->size && s == LLMRT_OK && !te->self->multi_process; r++) {
        s = llmrt_rank_lora_init(te->ranks[r]->model, n_slots, err);
        if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
    }
    pthread_mutex_unlock(&te->lock);
    return s;
}

static llmrt_status tp_lora_set(llmrt_executor *ex, int32_t slot, const char *path,
                                const llmrt_lora_file *f, llmrt_error *err) {
    tp_exec *te = ex->impl;
    size_t path_len = f && path ? strlen(path) : 0;
    if (f && (path_len == 0 || path_len > 4096))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "LoRA adapter path of %zu bytes", path_len);
    pthread_mutex_lock(&te->lock);
    llmrt_status s = te->dead ? group_dead(te, err) : LLMRT_OK;
    if (s == LLMRT_OK) s = llmrt_rank_lora_set(ex->model, slot, f, err);
    if (s == LLMRT_OK && te->self->multi_process) {
        /* the followers read the file themselves; one that cannot leaves the group unusable */
        tp_msg msg = {.op = TP_OP_LORA_SET, .a = slot, .b = (int64_t)path_len};
        s = tp_send(te->self, &msg, err);
        if (s == LLMRT_OK && path_len)
            s = te->self->comm->ops->broadcast_host(te->self->comm, (void *)path, path_len, 0,
                                                    err);
        if (s != LLMRT_OK) mark_dead(te, err);
    }
    for (int32_t r = 1; r < te->self->size && s == LLMRT_OK && !te->self->multi_process; r++) {
        s = llmrt_rank_lora_set(te->ranks[r]->model, slot, f, err);
        if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
    }
    pthread_mutex_unlock(&te->lock);
    return s;
}

static llmrt_status tp_follow_op(llmrt_executor *ex, llmrt_error *err) {
    tp_exec *te = ex->impl;
    if (te->self->rank == 0 || !te->self->multi_process)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_tp_follow: not a follower rank of a multi-process "
                         "tensor-parallel group");
    return tp_follow(te, err);
}

static void tp_stats(const llmrt_executor *ex, llmrt_tp_stats *st) {
    const tp_exec *te = ex->impl;
    const llmrt_comm_stats *c = &te->self->comm->stats;
    st->n_all_reduce = c->n_all_reduce;
    st->bytes = c->bytes_all_reduce;
    st->seconds = (double)c->ns_all_reduce * 1e-9;
    st->n_forwards = te->self->n_forwards;
}

void tp_exec_destroy(llmrt_executor *ex); /* tp_load.c */

const llmrt_executor_ops tp_exec_ops = {
    .kv_create = tp_kv_create,
    .kv_destroy = tp_kv_destroy,
    .reserve = tp_reserve,
    .forward = tp_forward,
    .copy_blocks = tp_copy_blocks,
    .lora_init = tp_lora_init,
    .lora_set = tp_lora_set,
    .follow = tp_follow_op,
    .stats = tp_stats,
    .destroy = tp_exec_destroy,
};
