/* Element types of tensors in files and in backends. */
#ifndef LLMRT_MODEL_DTYPE_H
#define LLMRT_MODEL_DTYPE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum llmrt_dtype {
    LLMRT_DTYPE_INVALID = 0,
    LLMRT_DTYPE_F32,
    LLMRT_DTYPE_F16,
    LLMRT_DTYPE_BF16,
    LLMRT_DTYPE_F64,
    LLMRT_DTYPE_I8,
    LLMRT_DTYPE_U8,
    LLMRT_DTYPE_I16,
    LLMRT_DTYPE_U16,
    LLMRT_DTYPE_I32,
    LLMRT_DTYPE_U32,
    LLMRT_DTYPE_I64,
    LLMRT_DTYPE_U64,
    LLMRT_DTYPE_BOOL,
    LLMRT_DTYPE_F8_E4M3,
    LLMRT_DTYPE_F8_E5M2,
    /* block-quantized (GGUF): elements come in blocks of 32 along the innermost dimension */
    LLMRT_DTYPE_Q8_0, /* per block: fp16 d, int8 q[32]            w = d*q            */
    LLMRT_DTYPE_Q4_0, /* per block: fp16 d, 16 bytes of nibbles    w = d*(q-8)        */
    LLMRT_DTYPE_Q4_1, /* per block: fp16 d, fp16 m, 16 bytes       w = d*q + m        */
    /* the internal 4-bit format (model/q4.h) as a backend holds it after repacking */
    LLMRT_DTYPE_Q4,
    LLMRT_DTYPE_COUNT
} llmrt_dtype;

/* Elements per block (1 for plain types) and bytes per block. */
static inline int llmrt_dtype_block_elems(llmrt_dtype t) {
    return (t == LLMRT_DTYPE_Q8_0 || t == LLMRT_DTYPE_Q4_0 || t == LLMRT_DTYPE_Q4_1) ? 32 : 1;
}
static inline int llmrt_dtype_block_bytes(llmrt_dtype t) {
    switch (t) {
    case LLMRT_DTYPE_F64: case LLMRT_DTYPE_I64: case LLMRT_DTYPE_U64: return 8;
    case LLMRT_DTYPE_F32: case LLMRT_DTYPE_I32: case LLMRT_DTYPE_U32: return 4;
    case LLMRT_DTYPE_F16: case LLMRT_DTYPE_BF16: case LLMRT_DTYPE_I16: case LLMRT_DTYPE_U16: return 2;
    case LLMRT_DTYPE_I8: case LLMRT_DTYPE_U8: case LLMRT_DTYPE_BOOL:
    case LLMRT_DTYPE_F8_E4M3: case LLMRT_DTYPE_F8_E5M2: return 1;
    case LLMRT_DTYPE_Q8_0: return 34;
    case LLMRT_DTYPE_Q4_0: return 18;
    case LLMRT_DTYPE_Q4_1: return 20;
    default: return 0;
    }
}
const char *llmrt_dtype_name(llmrt_dtype t);

#endif
