/* The public engine constructor: the engine runs on the model's executor (local or tensor
 * parallel) and reads the leader rank's config, tokenizer and defaults. The engine's other
 * public calls operate on its own handle (engine/engine.c, engine_loop.c). */
#include "../engine/engine_internal.h"
#include "api_model.h"

llmrt_status llmrt_engine_create(llmrt_model *model, const llmrt_engine_params *params,
                                 llmrt_engine **out) {
    if (!out) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_create: out is NULL");
    *out = NULL;
    if (!model)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_engine_create: model is NULL");
    llmrt_error  err = {0};
    llmrt_status s   = engine_create(model->rank, model->exec, params, out, &err);
    return s == LLMRT_OK ? LLMRT_OK : llmrt_err_publish(&err);
}
