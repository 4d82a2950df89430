/* The tensor-parallel leader (tp.h): the other ranks' twins of its KV caches, the group's
 * forward, and turning a failed rank into a dead group instead of a hang. The driver's other
 * parts are listed in tp_internal.h. */
#include "tp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------------------------------------- */
/* the leader's KV caches                                                                        */
/* --------------------------------------------------------------------------------------------- */

/* The leader's twin list of a cache: peers' caches (in-process) or the followers' id. */
typedef struct tp_twins {
    int32_t id;
    llmrt_kv_cache **peer_kv; /* [size - 1], in-process */
} tp_twins;

static llmrt_status group_dead(struct llmrt_tp *tp, llmrt_error *err) {
    return llmrt_err(err, LLMRT_ERR_DEAD, "the tensor-parallel group failed earlier: %s",
                     tp->dead_msg);
}

static void mark_dead(struct llmrt_tp *tp, const llmrt_error *err) {
    if (tp->dead) return;
    tp->dead = true;
    snprintf(tp->dead_msg, sizeof tp->dead_msg, "%s", err && err->msg[0] ? err->msg : "unknown");
    tp->comm->ops->abort(tp->comm, tp->dead_msg);
}

llmrt_status llmrt_tp_kv_create(llmrt_kv_cache *kv, llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins *tw = calloc(1, sizeof *tw);
    if (!tw) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    pthread_mutex_lock(&tp->lock);
    llmrt_status s = tp->dead ? group_dead(tp, err) : LLMRT_OK;
    tw->id = ++tp->next_kv_id;
    if (s == LLMRT_OK && tp->multi_process) {
        tp_msg msg = {
            .op = TP_OP_KV_CREATE, .kv_id = tw->id, .a = kv->n_blocks, .b = kv->block_size};
        s = tp_send(tp, &msg, err);
    } else if (s == LLMRT_OK) {
        tw->peer_kv = calloc((size_t)tp->size - 1, sizeof *tw->peer_kv);
        if (!tw->peer_kv) s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int32_t r = 1; r < tp->size && s == LLMRT_OK; r++) {
            s = llmrt_kv_cache_create_local(tp->peers[r - 1], kv->n_blocks, kv->block_size,
                                            &tw->peer_kv[r - 1], err);
            if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
        }
    }
    kv->tp_twins = tw;
    pthread_mutex_unlock(&tp->lock);
    if (s != LLMRT_OK) { /* the caller destroys kv, and its twins with it */
        if (tp->multi_process) mark_dead(tp, err);
    }
    return s;
}

llmrt_status llmrt_tp_kv_reserve(llmrt_kv_cache *kv, int64_t max_tokens, int64_t max_outputs,
                                 llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins *tw = kv->tp_twins;
    pthread_mutex_lock(&tp->lock);
    llmrt_status s = tp->dead ? group_dead(tp, err) : LLMRT_OK;
    if (s == LLMRT_OK && tp->multi_process) {
        tp_msg msg = {.op = TP_OP_KV_RESERVE, .kv_id = tw->id, .a = max_tokens, .b = max_outputs};
        s = tp_send(tp, &msg, err);
        if (s != LLMRT_OK) mark_dead(tp, err);
    } else if (s == LLMRT_OK) {
        for (int32_t r = 1; r < tp->size && s == LLMRT_OK; r++) {
            s = llmrt_kv_cache_reserve_local(tw->peer_kv[r - 1], max_tokens, max_outputs, err);
            if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
        }
    }
    pthread_mutex_unlock(&tp->lock);
    return s;
}

void llmrt_tp_kv_destroy(llmrt_kv_cache *kv) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins *tw = kv->tp_twins;
    kv->tp_twins = NULL;
    if (!tw) return;
    pthread_mutex_lock(&tp->lock);
    if (tp->multi_process) {
        if (!tp->dead) {
            tp_msg msg = {.op = TP_OP_KV_DESTROY, .kv_id = tw->id};
            llmrt_error e2 = {0};
            if (tp_send(tp, &msg, &e2) != LLMRT_OK) mark_dead(tp, &e2);
        }
    } else if (tw->peer_kv) {
        for (int32_t r = 1; r < tp->size; r++)
            llmrt_kv_cache_destroy(tw->peer_kv[r - 1]);
    }
    pthread_mutex_unlock(&tp->lock);
    free(tw->peer_kv);
    free(tw);
}

/* --------------------------------------------------------------------------------------------- */
/* the group's forward                                                                           */
/* --------------------------------------------------------------------------------------------- */

llmrt_status llmrt_tp_forward(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                              int64_t logits_capacity, llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins *tw = kv->tp_twins;
    pthread_mutex_lock(&tp->lock);
    if (tp->dead) {
        llmrt_status s = group_dead(tp, err);
        pthread_mutex_unlock(&tp->lock);
        return s;
    }
    /* a bad batch is the caller's mistake, not the group's: refuse it before any rank starts */
    llmrt_status s = llmrt_forward_validate(kv, batch, logits, logits_capacity, err);
    if (s != LLMRT_OK) {
        pthread_mutex_unlock(&tp->lock);
        return s;
    }
    if (tp->multi_process) {
        s = tp_send_forward(tp, tw->id, batch, err);
    } else {
        for (int32_t r = 1; r < tp->size; r++)
            tp_worker_post(&tp->workers[r - 1], tw->peer_kv[r - 1], batch);
    }
    if (s == LLMRT_OK) s = llmrt_tp_forward_rank(kv, batch, logits, logits_capacity, err);
    if (!tp->multi_process) {
        /* report the rank that failed first, not the ones its abort released */
        bool first_is_abort = s != LLMRT_OK && err && strstr(err->msg, "abort") != NULL;
        for (int32_t r = 1; r < tp->size; r++) {
            llmrt_error e2 = {0};
            llmrt_status s2 = tp_worker_join(&tp->workers[r - 1], &e2);
            if (s2 == LLMRT_OK) continue;
            bool e2_is_abort = strstr(e2.msg, "abort") != NULL;
            if (s == LLMRT_OK || (first_is_abort && !e2_is_abort)) {
                s = s2;
                first_is_abort = e2_is_abort;
                if (err) *err = e2;
            }
        }
    }
    if (s != LLMRT_OK) {
        if (err) err->status = LLMRT_ERR_DEAD;
        s = LLMRT_ERR_DEAD;
        mark_dead(tp, err);
    }
    pthread_mutex_unlock(&tp->lock);
    return s;
}

llmrt_status llmrt_model_get_tp_stats(const llmrt_model *m, llmrt_tp_stats *out) {
    if (!m || !out || out->struct_size < sizeof(uint32_t) || out->struct_size > sizeof *out)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_model_get_tp_stats: bad argument");
    llmrt_tp_stats st = {.struct_size = out->struct_size};
    if (m->tp) {
        const llmrt_comm_stats *c = &m->tp->comm->stats;
        st.n_all_reduce = c->n_all_reduce;
        st.bytes = c->bytes_all_reduce;
        st.seconds = (double)c->ns_all_reduce * 1e-9;
        st.n_forwards = m->tp->n_forwards;
    }
    memcpy(out, &st, out->struct_size);
    return LLMRT_OK;
}
