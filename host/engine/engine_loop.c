/* The engine's optional loop thread: steps while there is work, sleeps otherwise, calls back
 * per output. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

static void *loop_main(void *p) {
    llmrt_engine *e = p;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->loop_stop && e->incoming.n == 0 && e->n_aborts == 0 &&
               e->metrics.n_running == 0 && e->metrics.n_waiting == 0)
            pthread_cond_wait(&e->cv, &e->mu);
        bool stop = e->loop_stop;
        pthread_mutex_unlock(&e->mu);
        if (stop) break;
        const llmrt_output *outs;
        int32_t             n = 0;
        llmrt_error         err = {0};
        llmrt_status        s   = engine_step(e, &outs, &n, &err);
        for (int32_t i = 0; i < n; i++) e->loop_callback(&outs[i], e->loop_data);
        if (s == LLMRT_ERR_DEAD) break;
    }
    return NULL;
}

llmrt_status engine_start_loop(llmrt_engine *e, llmrt_output_callback callback,
                               void *callback_data, llmrt_error *err) {
    if (e->loop_running)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_start_loop: the loop is already running");
    e->loop_callback = callback;
    e->loop_data     = callback_data;
    e->loop_stop     = false;
    if (pthread_create(&e->loop_thread, NULL, loop_main, e) != 0)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                         "llmrt_engine_start_loop: cannot start the thread");
    e->loop_running = true;
    return LLMRT_OK;
}

void engine_stop_loop(llmrt_engine *e) {
    if (!e->loop_running) return;
    pthread_mutex_lock(&e->mu);
    e->loop_stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->loop_thread, NULL);
    e->loop_running = false;
}
