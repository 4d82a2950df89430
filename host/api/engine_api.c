/* The public engine calls (include/llmrt.h): arguments checked here, the work done by the
 * engine (engine/), errors published as the calling thread's llmrt_last_error(). The engine runs
 * on the model's executor (local or tensor parallel) and reads the leader rank's config,
 * tokenizer and defaults. */
#include <stddef.h>
#include <string.h>

#include "../engine/engine_internal.h"
#include "../engine/metrics.h"
#include "api_model.h"

static llmrt_status published(llmrt_status s, const llmrt_error *err) {
    return s == LLMRT_OK ? LLMRT_OK : llmrt_err_publish(err);
}

llmrt_engine_params llmrt_engine_default_params(void) {
    return engine_default_params();
}

llmrt_status llmrt_engine_create(llmrt_model *model, const llmrt_engine_params *params,
                                 llmrt_engine **out) {
    if (!out) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_create: out is NULL");
    *out = NULL;
    if (!model)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_create: model is NULL");
    llmrt_error err = {0};
    return published(engine_create(model->rank, model->exec, params, out, &err), &err);
}

void llmrt_engine_destroy(llmrt_engine *engine) {
    engine_destroy(engine);
}

llmrt_status llmrt_engine_submit(llmrt_engine *e, const llmrt_prompt *prompt,
                                 const llmrt_sampling_params *params, uint64_t *request_id) {
    if (!e || !prompt || !request_id)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_submit: engine, prompt and request_id are required");
    llmrt_error err = {0};
    return published(engine_submit(e, prompt, params, request_id, &err), &err);
}

llmrt_status llmrt_engine_abort(llmrt_engine *e, uint64_t id) {
    if (!e) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_abort: engine is NULL");
    llmrt_error err = {0};
    return published(engine_abort(e, id, &err), &err);
}

llmrt_status llmrt_engine_lora_load(llmrt_engine *e, const char *name, const char *path) {
    if (!e || !name || !path)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_lora_load: engine, name and path are required");
    llmrt_error err = {0};
    llmrt_status s  = engine_lora_load(e, name, path, &err);
    if (s != LLMRT_OK) llmrt_err_prefix(&err, "llmrt_engine_lora_load(\"%.64s\")", name);
    return published(s, &err);
}

llmrt_status llmrt_engine_lora_unload(llmrt_engine *e, const char *name) {
    if (!e || !name)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_lora_unload: engine and name are required");
    llmrt_error err = {0};
    return published(engine_lora_unload(e, name, &err), &err);
}

int32_t llmrt_engine_lora_list(llmrt_engine *e, llmrt_lora_info *out, int32_t cap) {
    if (!e || cap < 0 || (cap > 0 && !out)) return -1;
    for (int32_t i = 0; i < cap; i++)
        if (out[i].struct_size < sizeof(uint32_t) + sizeof out[i].name) return -1;
    return engine_lora_list(e, out, cap);
}

int32_t llmrt_engine_pending(llmrt_engine *e) {
    return e ? engine_pending(e) : 0;
}

llmrt_status llmrt_engine_step(llmrt_engine *e, const llmrt_output **outputs, int32_t *n_outputs) {
    if (!e || !outputs || !n_outputs)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_step: NULL argument");
    llmrt_error err = {0};
    return published(engine_step(e, outputs, n_outputs, &err), &err);
}

llmrt_status llmrt_engine_start_loop(llmrt_engine *e, llmrt_output_callback callback,
                                     void *callback_data) {
    if (!e || !callback)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_start_loop: engine and callback are required");
    llmrt_error err = {0};
    return published(engine_start_loop(e, callback, callback_data, &err), &err);
}

llmrt_status llmrt_engine_stop_loop(llmrt_engine *e) {
    if (!e) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_stop_loop: NULL");
    engine_stop_loop(e);
    return LLMRT_OK;
}

llmrt_status llmrt_engine_get_metrics(llmrt_engine *e, llmrt_engine_metrics *m) {
    if (!e || !m) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_get_metrics: NULL");
    uint32_t size = m->struct_size;
    if (size < sizeof(uint32_t) + sizeof(int32_t) || size > sizeof *m)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_get_metrics: struct_size %u is invalid", size);
    llmrt_engine_metrics snap;
    engine_get_metrics(e, &snap);
    snap.struct_size = size;
    memcpy(m, &snap, size);
    return LLMRT_OK;
}

llmrt_status llmrt_engine_metrics_prometheus(llmrt_engine *e, char *text, size_t capacity,
                                             size_t *len) {
    if (!e || !len || (capacity && !text))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_engine_metrics_prometheus: NULL argument");
    llmrt_engine_metrics m;
    engine_get_metrics(e, &m);
    m.struct_size = sizeof m;
    size_t need   = llmrt_metrics_format_prometheus(&m, text, capacity);
    *len          = need;
    if (need >= capacity)
        return llmrt_err_set_last(LLMRT_ERR_BUFFER_TOO_SMALL,
                                  "llmrt_engine_metrics_prometheus: %zu bytes needed", need + 1);
    return LLMRT_OK;
}

/* Blocking convenience over the public submit + step: other requests may share the engine. */
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
    if (params && params->struct_size >= offsetof(llmrt_sampling_params, n) + sizeof params->n &&
        params->struct_size <= sizeof *params && params->n != 1)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_generate: params->n = %d; llmrt_generate makes one "
                                  "sequence (use llmrt_engine_submit for n > 1)", params->n);
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
            if (o->request_id != id) continue;
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
