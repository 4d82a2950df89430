#include "dtype.h"

const char *llmrt_dtype_name(llmrt_dtype t) {
    static const char *const names[LLMRT_DTYPE_COUNT] = {
        [LLMRT_DTYPE_INVALID] = "invalid", [LLMRT_DTYPE_F32] = "F32",   [LLMRT_DTYPE_F16] = "F16",
        [LLMRT_DTYPE_BF16] = "BF16",       [LLMRT_DTYPE_F64] = "F64",   [LLMRT_DTYPE_I8] = "I8",
        [LLMRT_DTYPE_U8] = "U8",           [LLMRT_DTYPE_I16] = "I16",   [LLMRT_DTYPE_U16] = "U16",
        [LLMRT_DTYPE_I32] = "I32",         [LLMRT_DTYPE_U32] = "U32",   [LLMRT_DTYPE_I64] = "I64",
        [LLMRT_DTYPE_U64] = "U64",         [LLMRT_DTYPE_BOOL] = "BOOL", [LLMRT_DTYPE_F8_E4M3] = "F8_E4M3",
        [LLMRT_DTYPE_F8_E5M2] = "F8_E5M2", [LLMRT_DTYPE_Q8_0] = "Q8_0", [LLMRT_DTYPE_Q4_0] = "Q4_0",
        [LLMRT_DTYPE_Q4_1] = "Q4_1",       [LLMRT_DTYPE_Q4] = "Q4",
        [LLMRT_DTYPE_Q5_0] = "Q5_0", [LLMRT_DTYPE_Q5_1] = "Q5_1", [LLMRT_DTYPE_Q2_K] = "Q2_K",
        [LLMRT_DTYPE_Q3_K] = "Q3_K", [LLMRT_DTYPE_Q4_K] = "Q4_K", [LLMRT_DTYPE_Q5_K] = "Q5_K",
        [LLMRT_DTYPE_Q6_K] = "Q6_K", [LLMRT_DTYPE_Q8_Z] = "Q8_Z",
    };
    return (t > 0 && t < LLMRT_DTYPE_COUNT && names[t]) ? names[t] : "invalid";
}
