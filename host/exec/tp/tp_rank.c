/* One rank of a tensor-parallel group (tp_internal.h): its state, its collectives (what its
 * forward calls), its part of a group forward and the fault injection of test builds. */
#include "tp_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --------------------------------------------------------------------------------------------- */
/* fault injection (test builds)                                                                 */
/* --------------------------------------------------------------------------------------------- */

#ifdef LLMRT_TEST_HOOKS
static llmrt_tp_fault_hook fault_hook;
static void *fault_data;

LLMRT_API void llmrt_test_set_tp_fault_hook(llmrt_tp_fault_hook hook, void *data) {
    fault_data = data;
    fault_hook = hook;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs the injected fault of this forward, if any: returns LLMRT_OK when there is none. */
static llmrt_status injected_fault(tp_rank *r, llmrt_error *err) {
    llmrt_tp_fault f = fault_hook ? fault_hook(r->rank, r->n_forwards, fault_data)
                                  : LLMRT_TP_FAULT_NONE;
    if (f == LLMRT_TP_FAULT_NONE) return LLMRT_OK;
    if (f == LLMRT_TP_FAULT_HANG) {
        /* stop taking part until the group gives up on this rank (in-process: the others'
         * timeout aborts the group; multi-process: the launcher kills this process) */
        for (int waited = 0; waited < 600000; waited += 10) {
            llmrt_error e2 = {0};
            if (r->comm->ops->wait(r->comm, &e2) != LLMRT_OK) break;
            sleep_ms(10);
        }
    }
    return llmrt_err(err, LLMRT_ERR_DEAD, "injected fault (LLMRT_TP_FAULT) on rank %d in forward %lld",
                     r->rank, (long long)r->n_forwards);
}
#else
static llmrt_status injected_fault(tp_rank *r, llmrt_error *err) {
    (void)r;
    (void)err;
    return LLMRT_OK;
}
#endif

/* --------------------------------------------------------------------------------------------- */
/* collectives                                                                                   */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status rank_all_reduce(void *ctx, void *buf, int64_t n, llmrt_error *err) {
    tp_rank *r = ctx;
    return r->comm->ops->all_reduce_sum(r->comm, buf, n, r->model->be->act_dtype, err);
}

/* The vocab-parallel lm_head's logits: one broadcast per rank over the control plane, each
 * rank's rows placed at its vocabulary columns (logits NULL on ranks other than 0). */
static llmrt_status rank_gather_logits(void *ctx, const float *mine, int64_t n_out, float *logits,
                                       llmrt_error *err) {
    tp_rank *tr = ctx;
    int64_t  V  = tr->model->cfg.vocab_size;
    for (int32_t r = 0; r < tr->size; r++) {
        int64_t v0 = tr->vocab0[r], vr = tr->vocab[r];
        int64_t n = n_out * vr;
        float *buf = (float *)mine; /* the root's buffer is only read */
        if (r != tr->rank) {
            if (n > tr->gather_cap) {
                float *p = realloc(tr->gather_buf, (size_t)n * sizeof *p);
                if (!p)
                    return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "logits gather: out of memory");
                tr->gather_buf = p;
                tr->gather_cap = n;
            }
            buf = tr->gather_buf;
        }
        LLMRT_TRY(tr->comm->ops->broadcast_host(tr->comm, buf, (uint64_t)n * sizeof *buf, r, err));
        if (logits)
            for (int64_t i = 0; i < n_out; i++)
                memcpy(logits + i * V + v0, buf + i * vr, (size_t)vr * sizeof *buf);
    }
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* one rank                                                                                      */
/* --------------------------------------------------------------------------------------------- */

llmrt_status tp_rank_init(tp_rank *r, llmrt_rank_model *model, int32_t size, int32_t rank,
                          llmrt_comm *comm, bool multi_process, llmrt_error *err) {
    memset(r, 0, sizeof *r);
    r->model = model;
    r->size = size;
    r->rank = rank;
    r->comm = comm;
    r->multi_process = multi_process;
    r->coll = (llmrt_collectives){
        .ctx = r, .all_reduce = rank_all_reduce, .gather_logits = rank_gather_logits};
    /* every rank's vocabulary rows, once: the logits gather places them */
    r->vocab0 = calloc((size_t)size, sizeof *r->vocab0);
    r->vocab = calloc((size_t)size, sizeof *r->vocab);
    if (!r->vocab0 || !r->vocab) {
        tp_rank_free(r);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    }
    for (int32_t k = 0; k < size; k++) {
        llmrt_tp_shard sh;
        llmrt_status s = llmrt_shard_plan(&model->cfg, size, k, &sh, err);
        if (s != LLMRT_OK) {
            tp_rank_free(r);
            return s;
        }
        r->vocab0[k] = sh.vocab0;
        r->vocab[k] = sh.vocab;
    }
    return LLMRT_OK;
}

void tp_rank_free(tp_rank *r) {
    free(r->gather_buf);
    free(r->vocab0);
    free(r->vocab);
    r->gather_buf = NULL;
    r->vocab0 = r->vocab = NULL;
}

llmrt_status tp_rank_forward(tp_rank *r, llmrt_rank_kv *kv, const llmrt_batch *batch,
                             float *logits, int64_t capacity, llmrt_error *err) {
    r->n_forwards++;
    llmrt_status s = injected_fault(r, err);
    if (s == LLMRT_OK) s = llmrt_rank_forward(kv, batch, &r->coll, logits, capacity, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "tensor parallel rank %d of %d", r->rank, r->size);
        r->comm->ops->abort(r->comm, err ? err->msg : "a rank failed");
        if (err) err->status = LLMRT_ERR_DEAD;
        s = LLMRT_ERR_DEAD;
    }
    return s;
}
