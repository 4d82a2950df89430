/* Experimental public calls on input files (include/llmrt_experimental.h): the tools (host/cli,
 * bench) may use only the public headers, so they reach host/core/regular_file.c, the one
 * opener of every input file, through these wrappers. */
#include "../core/regular_file.h"

#include <unistd.h>

llmrt_status llmrt_file_open_regular(const char *path, int *fd) {
    if (!path || !fd)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_file_open_regular: NULL argument");
    llmrt_error err = {0};
    *fd             = llmrt_open_regular_file(path, NULL, &err);
    return *fd >= 0 ? LLMRT_OK : llmrt_err_publish(&err);
}

llmrt_status llmrt_file_probe_regular(const char *path, int *present) {
    if (!path || !present)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_file_probe_regular: NULL argument");
    llmrt_error err = {0};
    int         is  = llmrt_probe_regular_file(path, &err);
    *present        = is > 0;
    return is >= 0 ? LLMRT_OK : llmrt_err_publish(&err);
}
