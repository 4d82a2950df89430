/* A read-only memory mapping of a whole file. */
#ifndef LLMRT_CORE_MAPPED_FILE_H
#define LLMRT_CORE_MAPPED_FILE_H

#include <stdint.h>

#include "error.h"

typedef struct llmrt_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t       size;
    char          *path; /* owned copy, for error messages */
} llmrt_mapped_file;

llmrt_status llmrt_mapped_file_open(const char *path, llmrt_mapped_file *out, llmrt_error *err);
void         llmrt_mapped_file_close(llmrt_mapped_file *file);

/* Reads a whole (small) text file into a NUL-terminated malloc'd buffer; fails above max_bytes. */
llmrt_status llmrt_read_text_file(const char *path, uint64_t max_bytes, char **out, uint64_t *len,
                                  llmrt_error *err);

#endif
