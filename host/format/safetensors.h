/* safetensors reader: validates the whole file (reference/reliability.md B2) and exposes each
 * tensor as a pointer into the mapping. */
#ifndef LLMRT_MODEL_SAFETENSORS_H
#define LLMRT_MODEL_SAFETENSORS_H

#include <stdint.h>

#include "../core/error.h"
#include "../core/mapped_file.h"
#include "dtype.h"

#define LLMRT_SAFETENSORS_MAX_HEADER 100000000ull /* as the reference implementation */
#define LLMRT_MAX_DIMS               8

typedef struct llmrt_st_tensor {
    char          *name;                  /* owned */
    llmrt_dtype    dtype;
    int            n_dims;                /* 0 = scalar */
    uint64_t       shape[LLMRT_MAX_DIMS]; /* row-major (C order), outermost first */
    uint64_t       n_elems;
    const uint8_t *data;                  /* into the mapping (or the parsed buffer) */
    uint64_t       nbytes;
} llmrt_st_tensor;

typedef struct llmrt_st_file {
    llmrt_mapped_file file;      /* empty when parsed from a caller's buffer */
    const char       *path;      /* for messages */
    llmrt_st_tensor  *tensors;   /* sorted by name */
    int64_t           n_tensors;
} llmrt_st_file;

/* Maps and validates `path`. On failure *out is zeroed and nothing needs closing. */
llmrt_status llmrt_safetensors_open(const char *path, llmrt_st_file *out, llmrt_error *err);
/* Validates an in-memory image (used by open and by the fuzzer). `data` and `path` must outlive
 * `out`. JSON integers above 2^53 (not exactly representable by cJSON) are rejected. */
llmrt_status llmrt_safetensors_parse(const uint8_t *data, uint64_t size, const char *path,
                                     llmrt_st_file *out, llmrt_error *err);
void llmrt_safetensors_close(llmrt_st_file *f);
/* Binary search by name; NULL when absent. */
const llmrt_st_tensor *llmrt_safetensors_find(const llmrt_st_file *f, const char *name);

#endif
