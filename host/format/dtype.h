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
    /* more GGUF block types, kept in GGUF's packed layout (format/ggml_quants.h has the layouts
     * and the reference dequantisation): blocks of 32 ... */
    LLMRT_DTYPE_Q5_0, /* fp16 d, 4 bytes of high bits, 16 bytes of nibbles    w = d*(q-16)   */
    LLMRT_DTYPE_Q5_1, /* fp16 d, fp16 m, 4 + 16 bytes                         w = d*q + m    */
    /* ... and the K-quants: super-blocks of 256 */
    LLMRT_DTYPE_Q2_K, /* 84 bytes: 16 x (4-bit scale, 4-bit min), 2-bit q, fp16 d, dmin       */
    LLMRT_DTYPE_Q3_K, /* 110 bytes: high-bit mask, 2-bit q, 16 6-bit scales, fp16 d           */
    LLMRT_DTYPE_Q4_K, /* 144 bytes: fp16 d, dmin, 8 x (6-bit scale, 6-bit min), 4-bit q       */
    LLMRT_DTYPE_Q5_K, /* 176 bytes: as Q4_K + 32 bytes of fifth bits                          */
    LLMRT_DTYPE_Q6_K, /* 210 bytes: 4-bit low, 2-bit high, 16 int8 scales, fp16 d             */
    /* an internal block type (no GGUF number): 8-bit GPTQ with integer zero points (asym,
     * act-order, short last groups; model/gptq8.h), blocks of 32 along K, 36 bytes:
     * fp16 d | u8 z | u8 0 | u8 q[32]                             w = d*((float)q - (float)z) */
    LLMRT_DTYPE_Q8_Z,
    LLMRT_DTYPE_COUNT
} llmrt_dtype;

/* Elements per block (1 for plain types) and bytes per block. */
static inline int llmrt_dtype_block_elems(llmrt_dtype t) {
    switch (t) {
    case LLMRT_DTYPE_Q8_0: case LLMRT_DTYPE_Q4_0: case LLMRT_DTYPE_Q4_1:
    case LLMRT_DTYPE_Q5_0: case LLMRT_DTYPE_Q5_1: case LLMRT_DTYPE_Q8_Z: return 32;
    case LLMRT_DTYPE_Q2_K: case LLMRT_DTYPE_Q3_K: case LLMRT_DTYPE_Q4_K:
    case LLMRT_DTYPE_Q5_K: case LLMRT_DTYPE_Q6_K: return 256;
    default: return 1;
    }
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
    case LLMRT_DTYPE_Q5_0: return 22;
    case LLMRT_DTYPE_Q5_1: return 24;
    case LLMRT_DTYPE_Q2_K: return 84;
    case LLMRT_DTYPE_Q3_K: return 110;
    case LLMRT_DTYPE_Q4_K: return 144;
    case LLMRT_DTYPE_Q5_K: return 176;
    case LLMRT_DTYPE_Q6_K: return 210;
    case LLMRT_DTYPE_Q8_Z: return 36;
    default: return 0;
    }
}
const char *llmrt_dtype_name(llmrt_dtype t);

#endif
