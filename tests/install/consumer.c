/* A program built against an *installed* llmrt (tests/install/test_install.sh): it includes only
 * <llmrt.h>, checks the library's run-time version against the header's, loads a tiny model with
 * the default parameters and generates a few greedy tokens from token ids.
 * usage: consumer MODEL (an HF directory or a .gguf file); exit 0 only on success. */
#include <llmrt.h>

#include <stdio.h>

static int fail(const char *what, llmrt_status s) {
    fprintf(stderr, "consumer: %s: %s: %s\n", what, llmrt_status_str(s), llmrt_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: consumer MODEL\n");
        return 2;
    }
    if (llmrt_version() != LLMRT_VERSION_NUMBER) {
        fprintf(stderr, "consumer: library version %d, header version %d\n", (int)llmrt_version(),
                LLMRT_VERSION_NUMBER);
        return 1;
    }
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 1;
    llmrt_model *model    = NULL;
    llmrt_status s        = llmrt_model_load(argv[1], &mp, &model);
    if (s != LLMRT_OK) return fail("llmrt_model_load", s);

    llmrt_engine_params ep = llmrt_engine_default_params();
    ep.kv_tokens           = 256;
    llmrt_engine *engine   = NULL;
    if ((s = llmrt_engine_create(model, &ep, &engine)) != LLMRT_OK) {
        llmrt_model_destroy(model);
        return fail("llmrt_engine_create", s);
    }
    const int32_t         ids[] = {1, 5, 9, 12};
    llmrt_prompt          p     = {.struct_size = sizeof p, .tokens = ids, .n_tokens = 4};
    llmrt_sampling_params sp    = llmrt_model_sampling_defaults(model);
    sp.temperature              = 0;
    sp.max_tokens               = 4;
    sp.ignore_eos               = true;
    llmrt_generate_result res   = {.struct_size = sizeof res};
    s = llmrt_generate(engine, &p, &sp, NULL, NULL, &res);
    llmrt_engine_destroy(engine);
    llmrt_model_destroy(model);
    if (s != LLMRT_OK) return fail("llmrt_generate", s);
    if (res.n_prompt_tokens != 4 || res.n_generated != 4) {
        fprintf(stderr, "consumer: %d prompt tokens, %d generated (want 4, 4)\n",
                res.n_prompt_tokens, res.n_generated);
        return 1;
    }
    printf("consumer: llmrt %d, %d tokens generated: ok\n", (int)llmrt_version(), res.n_generated);
    return 0;
}
