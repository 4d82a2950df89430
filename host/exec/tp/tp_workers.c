/* In-process tensor-parallel groups (tp_internal.h): one host thread per rank other than 0, each running
 * its rank's forward of the leader's batch while the leader runs rank 0's. */
#include "tp_internal.h"

/* --------------------------------------------------------------------------------------------- */
/* in-process peers: one host thread per rank other than 0                                       */
/* --------------------------------------------------------------------------------------------- */

static void *worker_main(void *arg) {
    tp_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != WORKER_JOB && w->state != WORKER_QUIT)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->state == WORKER_QUIT) break;
        pthread_mutex_unlock(&w->mu);
        llmrt_error e = {0};
        llmrt_status s = tp_rank_forward(w->rank, w->kv, w->batch, NULL, 0, &e);
        pthread_mutex_lock(&w->mu);
        w->status = s;
        w->err = e;
        w->state = WORKER_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void tp_worker_post(tp_worker *w, llmrt_rank_kv *kv, const llmrt_batch *batch) {
    pthread_mutex_lock(&w->mu);
    w->kv = kv;
    w->batch = batch;
    w->state = WORKER_JOB;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

llmrt_status tp_worker_join(tp_worker *w, llmrt_error *err) {
    pthread_mutex_lock(&w->mu);
    while (w->state != WORKER_DONE)
        pthread_cond_wait(&w->cv, &w->mu);
    w->state = WORKER_IDLE;
    llmrt_status s = w->status;
    if (s != LLMRT_OK && err) *err = w->err;
    pthread_mutex_unlock(&w->mu);
    return s;
}

void tp_worker_stop(tp_worker *w) {
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->state = WORKER_QUIT;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->started = false;
}

llmrt_status tp_worker_start(tp_worker *w, tp_rank *rank, llmrt_error *err) {
    w->rank = rank;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        return llmrt_err(err, LLMRT_ERR_BACKEND, "tensor parallel: cannot start a thread");
    }
    w->started = true;
    return LLMRT_OK;
}
