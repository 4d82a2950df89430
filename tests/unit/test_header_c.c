/* Compiled as strict C11 (-pedantic -Werror): the public header must not need anything else. */
#include "llmrt.h"

int llmrt_header_compiles_as_c(void);
int llmrt_header_compiles_as_c(void) {
    llmrt_model_params p = llmrt_model_default_params();
    return (int)p.struct_size + (int)LLMRT_OK;
}
