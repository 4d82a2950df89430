/* GGUF (v2/v3) reader: validates the header, metadata and tensor table against the file size
 * with overflow-checked 64-bit math, and exposes metadata and tensor data in place. */
#ifndef LLMRT_MODEL_GGUF_H
#define LLMRT_MODEL_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"
#include "../core/mapped_file.h"
#include "dtype.h"

typedef enum llmrt_gguf_type {
    LLMRT_GGUF_UINT8 = 0, LLMRT_GGUF_INT8 = 1, LLMRT_GGUF_UINT16 = 2, LLMRT_GGUF_INT16 = 3,
    LLMRT_GGUF_UINT32 = 4, LLMRT_GGUF_INT32 = 5, LLMRT_GGUF_FLOAT32 = 6, LLMRT_GGUF_BOOL = 7,
    LLMRT_GGUF_STRING = 8, LLMRT_GGUF_ARRAY = 9, LLMRT_GGUF_UINT64 = 10, LLMRT_GGUF_INT64 = 11,
    LLMRT_GGUF_FLOAT64 = 12,
} llmrt_gguf_type;

typedef struct llmrt_gguf_str {
    const char *ptr; /* into the file, NOT NUL-terminated */
    uint64_t    len;
} llmrt_gguf_str;

typedef struct llmrt_gguf_kv {
    char           *key;  /* owned, NUL-terminated */
    llmrt_gguf_type type;
    union {
        uint64_t       u64; /* any unsigned integer type, widened */
        int64_t        i64; /* any signed integer type, widened   */
        double         f64; /* FLOAT32 / FLOAT64, widened         */
        bool           b;
        llmrt_gguf_str str;
    } v;
    /* arrays (type == ARRAY) */
    llmrt_gguf_type arr_type; /* element type; nested arrays are rejected */
    uint64_t        arr_n;
    const uint8_t  *arr_data; /* numeric arrays: elements in place, little-endian */
    llmrt_gguf_str *arr_strs; /* string arrays: owned table of arr_n entries into the file */
} llmrt_gguf_kv;

typedef struct llmrt_gguf_tensor {
    char          *name;  /* owned */
    int            n_dims;
    uint64_t       ne[4]; /* ggml order: ne[0] is the innermost (contiguous) dimension */
    llmrt_dtype    dtype; /* LLMRT_DTYPE_INVALID if the ggml type is known but unsupported */
    uint32_t       ggml_type;
    uint64_t       offset; /* relative to the data section */
    const uint8_t *data;
    uint64_t       nbytes;
} llmrt_gguf_tensor;

typedef struct llmrt_gguf_file {
    llmrt_mapped_file  file;
    const char        *path;    /* the mapping's copy, or the caller's string for _parse */
    uint32_t           version;
    llmrt_gguf_kv     *kvs;     /* in file order; keys are unique */
    int64_t            n_kv;
    llmrt_gguf_tensor *tensors; /* in file order; names unique, byte ranges disjoint */
    int64_t            n_tensors;
    uint64_t           alignment;   /* general.alignment, default 32 */
    uint64_t           data_offset; /* start of the tensor data section */
} llmrt_gguf_file;

llmrt_status llmrt_gguf_open(const char *path, llmrt_gguf_file *out, llmrt_error *err);
/* Validates an in-memory image (used by open and by the fuzzer). `data` and `path` must outlive
 * `out`. On failure *out is zeroed and nothing needs closing; close is safe on a zeroed struct. */
llmrt_status llmrt_gguf_parse(const uint8_t *data, uint64_t size, const char *path,
                              llmrt_gguf_file *out, llmrt_error *err);
void         llmrt_gguf_close(llmrt_gguf_file *f);

/* Linear scans; NULL when absent. */
const llmrt_gguf_kv     *llmrt_gguf_find_kv(const llmrt_gguf_file *f, const char *key);
const llmrt_gguf_tensor *llmrt_gguf_find_tensor(const llmrt_gguf_file *f, const char *name);

/* Typed getters. A missing key returns LLMRT_ERR_MODEL_MISMATCH when `required`, else LLMRT_OK
 * leaving *out untouched; a key of an incompatible type is LLMRT_ERR_FORMAT naming the key.
 * Integer getters accept any integer type whose value fits; float accepts FLOAT32/FLOAT64. */
llmrt_status llmrt_gguf_get_u64(const llmrt_gguf_file *f, const char *key, bool required,
                                uint64_t *out, llmrt_error *err);
llmrt_status llmrt_gguf_get_i64(const llmrt_gguf_file *f, const char *key, bool required,
                                int64_t *out, llmrt_error *err);
llmrt_status llmrt_gguf_get_f64(const llmrt_gguf_file *f, const char *key, bool required,
                                double *out, llmrt_error *err);
llmrt_status llmrt_gguf_get_bool(const llmrt_gguf_file *f, const char *key, bool required,
                                 bool *out, llmrt_error *err);
llmrt_status llmrt_gguf_get_str(const llmrt_gguf_file *f, const char *key, bool required,
                                llmrt_gguf_str *out, llmrt_error *err);
/* Array of the given element type (LLMRT_GGUF_STRING for string arrays). */
llmrt_status llmrt_gguf_get_arr(const llmrt_gguf_file *f, const char *key, llmrt_gguf_type elem,
                                bool required, const llmrt_gguf_kv **out, llmrt_error *err);

/* "Q4_0", "BF16", ... for a ggml tensor type (llmrt_gguf_tensor.ggml_type); "unknown" otherwise. */
const char *llmrt_gguf_ggml_type_name(uint32_t ggml_type);

/* llama.cpp's converter permutes the rows of the Q and K projections (and of a LoRA adapter's
 * q/k lora_b) so that RoPE rotates interleaved pairs: the GGUF row holding HF row `hf_row` of a
 * matrix whose heads are `head_dim` (even) rows each. */
int64_t llmrt_gguf_qk_row(int64_t hf_row, int64_t head_dim);

#endif
