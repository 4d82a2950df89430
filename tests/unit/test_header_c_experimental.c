/* Compiled as strict C11 (-pedantic -Werror): the experimental header must not need anything else
 * (it includes llmrt.h itself). */
#include "llmrt_experimental.h"

#if !defined(LLMRT_EXPERIMENTAL_VERSION) || LLMRT_EXPERIMENTAL_VERSION < 1
#error "LLMRT_EXPERIMENTAL_VERSION is missing"
#endif

int llmrt_experimental_header_compiles_as_c(void);
int llmrt_experimental_header_compiles_as_c(void) {
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    llmrt_tp_stats        ts = {sizeof ts, 0, 0, 0.0, 0};
    llmrt_batch           b  = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    llmrt_text_tokenizer   *tok   = 0;
    llmrt_text_detokenizer *detok = 0;
    int32_t rank = 0, size = 1;
    (void)tok, (void)detok, (void)rank, (void)size;
    return (int)kp.struct_size + (int)ts.struct_size + b.n_tokens + (int)LLMRT_OK +
           LLMRT_EXPERIMENTAL_VERSION;
}
