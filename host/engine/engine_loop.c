/* The engine's optional loop thread (steps while there is work, sleeps otherwise, calls back per
 * output) and the blocking llmrt_generate convenience built on submit + step. */
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
        llmrt_status        s = llmrt_engine_step(e, &outs, &n);
        for (int32_t i = 0; i < n; i++) e->loop_callback(&outs[i], e->loop_data);
        if (s == LLMRT_ERR_DEAD) break;
    }
    return NULL;
}

llmrt_status llmrt_engine_start_loop(llmrt_engine *e, llmrt_output_callback callback,
                                     void *callback_data) {
    if (!e || !callback)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_start_loop: engine and callback are required");
    if (e->loop_running)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_start_loop: the loop is already running");
    e->loop_callback = callback;
    e->loop_data     = callback_data;
    e->loop_stop     = false;
    if (pthread_create(&e->loop_thread, NULL, loop_main, e) != 0)
        return llmrt_err_set_last(LLMRT_ERR_OUT_OF_MEMORY,
                                  "llmrt_engine_start_loop: cannot start the thread");
    e->loop_running = true;
    return LLMRT_OK;
}

llmrt_status llmrt_engine_stop_loop(llmrt_engine *e) {
    if (!e) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_stop_loop: NULL");
    if (!e->loop_running) return LLMRT_OK;
    pthread_mutex_lock(&e->mu);
    e->loop_stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->loop_thread, NULL);
    e->loop_running = false;
    return LLMRT_OK;
}

llmrt_status llmrt_generate(llmrt_engine *e, const llmrt_prompt *prompt,
                            const llmrt_sampling_params *params, llmrt_text_callback on_text,
                            void *callback_data, llmrt_generate_result *result) {
    if (!e) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_generate: engine is NULL");
    if (e->loop_running)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_generate: cannot step while the engine's loop runs");
    if (result && (result->struct_size < sizeof(uint32_t) ||
                   result->struct_size > sizeof(llmrt_generate_result)))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_generate: result->struct_size %u is invalid",
                                  result->struct_size);
    uint64_t id;
    LLMRT_TRY(llmrt_engine_submit(e, prompt, params, &id));
    llmrt_generate_result res = {.struct_size = sizeof res};
    llmrt_status          s   = LLMRT_OK;
    for (bool done = false; !done;) {
        const llmrt_output *outs;
        int32_t             n = 0;
        s                     = llmrt_engine_step(e, &outs, &n);
        for (int32_t i = 0; i < n; i++) {
            const llmrt_output *o = &outs[i];
            if (o->request_id != id) continue; /* other requests may share the engine */
            if (on_text && o->text_len) on_text(o->text, o->text_len, callback_data);
            res.n_prompt_tokens = o->n_prompt_tokens;
            res.n_generated     = o->n_generated;
            res.ttft_s          = o->t_first_token > 0 ? o->t_first_token - o->t_submit : 0.0;
            res.total_s         = o->t_now - o->t_submit;
            if (o->finish != LLMRT_FINISH_NONE) {
                res.finish = o->finish;
                done       = true;
                if (o->finish == LLMRT_FINISH_ERROR && s == LLMRT_OK)
                    s = llmrt_err_set_last(o->status ? o->status : LLMRT_ERR_INTERNAL, "%s",
                                           o->error_message);
            }
        }
        if (s != LLMRT_OK) break;
    }
    if (result) memcpy(result, &res, result->struct_size);
    return s;
}
