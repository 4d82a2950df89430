/* One rank of a tensor-parallel group (tp.h): its forward, its collectives and the fault
 * injection of the tests (LLMRT_TP_FAULT). */
#include "tp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------------------------------------------------- */
/* fault injection (tests)                                                                       */
/* --------------------------------------------------------------------------------------------- */

void tp_parse_fault(struct llmrt_tp *tp) {
    const char *v = getenv("LLMRT_TP_FAULT");
    if (!v || !*v) return;
    int rank = -1;
    long long at = 0;
    char kind[16] = "";
    if (sscanf(v, "%d:%lld:%15s", &rank, &at, kind) != 3 || rank != tp->rank || at < 1) return;
    tp->fault_at = at;
    tp->fault = !strcmp(kind, "hang")   ? TP_FAULT_HANG
                : !strcmp(kind, "exit") ? TP_FAULT_EXIT
                                        : TP_FAULT_ERROR;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs the injected fault of this forward, if any: returns LLMRT_OK when there is none. */
static llmrt_status injected_fault(struct llmrt_tp *tp, llmrt_error *err) {
    if (tp->fault == TP_FAULT_NONE || tp->n_forwards != tp->fault_at) return LLMRT_OK;
    if (tp->fault == TP_FAULT_EXIT && tp->multi_process) {
        fprintf(stderr, "llmrt: LLMRT_TP_FAULT: rank %d exits in forward %lld\n", tp->rank,
                (long long)tp->n_forwards);
        _exit(3);
    }
    if (tp->fault != TP_FAULT_ERROR) {
        /* stop taking part until the group gives up on this rank (in-process: the others'
         * timeout aborts the group; multi-process: the launcher kills this process) */
        for (int waited = 0; waited < 600000; waited += 10) {
            llmrt_error e2 = {0};
            if (tp->comm->ops->wait(tp->comm, &e2) != LLMRT_OK) break;
            sleep_ms(10);
        }
    }
    return llmrt_err(err, LLMRT_ERR_DEAD,
                     "injected fault (LLMRT_TP_FAULT) on rank %d in forward %lld", tp->rank,
                     (long long)tp->n_forwards);
}

/* --------------------------------------------------------------------------------------------- */
/* one rank                                                                                      */
/* --------------------------------------------------------------------------------------------- */

llmrt_status llmrt_tp_all_reduce(struct llmrt_model *m, void *buf, int64_t n, llmrt_error *err) {
    llmrt_comm *c = m->tp->comm;
    return c->ops->all_reduce_sum(c, buf, n, m->be->act_dtype, err);
}

llmrt_status llmrt_tp_wait(struct llmrt_model *m, llmrt_error *err) {
    llmrt_comm *c = m->tp->comm;
    return c->ops->wait(c, err);
}

/* This rank's part of a group forward. A failure aborts the group (so the other ranks stop
 * waiting for this one) and is LLMRT_ERR_DEAD: the ranks no longer agree on the KV state. */
llmrt_status llmrt_tp_forward_rank(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                   int64_t capacity, llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp->n_forwards++;
    llmrt_status s = injected_fault(tp, err);
    if (s == LLMRT_OK) s = llmrt_forward_local(kv, batch, logits, capacity, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "tensor parallel rank %d of %d", tp->rank, tp->size);
        tp->comm->ops->abort(tp->comm, err ? err->msg : "a rank failed");
        if (err) err->status = LLMRT_ERR_DEAD;
        s = LLMRT_ERR_DEAD;
    }
    return s;
}

llmrt_status llmrt_tp_gather_logits(struct llmrt_model *m, const float *mine, int64_t n_out,
                                    float *logits, llmrt_error *err) {
    struct llmrt_tp *tp = m->tp;
    int64_t V = m->cfg.vocab_size;
    for (int32_t r = 0; r < tp->size; r++) {
        int64_t v0 = tp->vocab0[r], vr = tp->vocab[r];
        int64_t n = n_out * vr;
        float *buf = (float *)mine; /* the root's buffer is only read */
        if (r != tp->rank) {
            if (n > tp->gather_cap) {
                float *p = realloc(tp->gather_buf, (size_t)n * sizeof *p);
                if (!p)
                    return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "logits gather: out of memory");
                tp->gather_buf = p;
                tp->gather_cap = n;
            }
            buf = tp->gather_buf;
        }
        LLMRT_TRY(tp->comm->ops->broadcast_host(tp->comm, buf, (uint64_t)n * sizeof *buf, r, err));
        if (logits)
            for (int64_t i = 0; i < n_out; i++)
                memcpy(logits + i * V + v0, buf + i * vr, (size_t)vr * sizeof *buf);
    }
    return LLMRT_OK;
}
