/* Prints the engine's Prometheus text (llmrt_engine_metrics_prometheus) after a few greedy
 * requests with token prompts on the model in argv[1] (a tokenizer-less fixture is fine), for
 * tests/cli/test_metrics_promtool.sh. Every histogram and counter then has data. */
#include <stdio.h>
#include <stdlib.h>

#include "llmrt.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 2;
    llmrt_model  *model   = NULL;
    llmrt_engine *engine  = NULL;
    if (llmrt_model_load(argv[1], &mp, &model) != LLMRT_OK ||
        llmrt_engine_create(model, NULL, &engine) != LLMRT_OK) {
        fprintf(stderr, "metrics_dump: %s\n", llmrt_last_error());
        return 1;
    }
    int32_t tokens[24];
    for (int32_t i = 0; i < 24; i++) tokens[i] = 1 + (i * 7) % 60;
    for (int32_t k = 0; k < 4; k++) { /* shared prefix: prefix-cache hits too */
        llmrt_prompt          p  = {.struct_size = sizeof p, .tokens = tokens, .n_tokens = 16 + 2 * k};
        llmrt_sampling_params sp = llmrt_sampling_default_params();
        sp.temperature           = 0.0f;
        sp.max_tokens            = 4 + k;
        sp.ignore_eos            = true;
        uint64_t id              = 0;
        if (llmrt_engine_submit(engine, &p, &sp, &id) != LLMRT_OK) {
            fprintf(stderr, "metrics_dump: submit: %s\n", llmrt_last_error());
            return 1;
        }
    }
    while (llmrt_engine_pending(engine) > 0) {
        const llmrt_output *outs = NULL;
        int32_t             n    = 0;
        if (llmrt_engine_step(engine, &outs, &n) != LLMRT_OK) {
            fprintf(stderr, "metrics_dump: step: %s\n", llmrt_last_error());
            return 1;
        }
    }
    size_t len = 0;
    llmrt_engine_metrics_prometheus(engine, NULL, 0, &len);
    char *text = malloc(len + 1);
    if (!text || llmrt_engine_metrics_prometheus(engine, text, len + 1, &len) != LLMRT_OK) {
        fprintf(stderr, "metrics_dump: prometheus text failed\n");
        return 1;
    }
    fwrite(text, 1, len, stdout);
    free(text);
    llmrt_engine_destroy(engine);
    llmrt_model_destroy(model);
    return 0;
}
