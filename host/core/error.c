#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error_msg[LLMRT_ERROR_MSG_MAX];

const char *llmrt_status_str(llmrt_status status) {
    switch (status) {
    case LLMRT_OK: return "LLMRT_OK";
    case LLMRT_ERR_INVALID_ARG: return "LLMRT_ERR_INVALID_ARG";
    case LLMRT_ERR_IO: return "LLMRT_ERR_IO";
    case LLMRT_ERR_FORMAT: return "LLMRT_ERR_FORMAT";
    case LLMRT_ERR_UNSUPPORTED: return "LLMRT_ERR_UNSUPPORTED";
    case LLMRT_ERR_OUT_OF_MEMORY: return "LLMRT_ERR_OUT_OF_MEMORY";
    case LLMRT_ERR_MODEL_MISMATCH: return "LLMRT_ERR_MODEL_MISMATCH";
    case LLMRT_ERR_NO_KV_SPACE: return "LLMRT_ERR_NO_KV_SPACE";
    case LLMRT_ERR_BACKEND: return "LLMRT_ERR_BACKEND";
    case LLMRT_ERR_DEAD: return "LLMRT_ERR_DEAD";
    case LLMRT_ERR_ABORTED: return "LLMRT_ERR_ABORTED";
    case LLMRT_ERR_INTERNAL: return "LLMRT_ERR_INTERNAL";
    case LLMRT_ERR_BUFFER_TOO_SMALL: return "LLMRT_ERR_BUFFER_TOO_SMALL";
    case LLMRT_ERR_NOT_FOUND: return "LLMRT_ERR_NOT_FOUND";
    }
    return "LLMRT_ERR_UNKNOWN";
}

const char *llmrt_last_error(void) {
    return last_error_msg;
}

llmrt_status llmrt_err(llmrt_error *err, llmrt_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status    = status;
        err->secondary = false;
    }
    return status;
}

void llmrt_err_prefix(llmrt_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[LLMRT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* room for both parts: the result is cut to the message size when copied back */
    char joined[2 * LLMRT_ERROR_MSG_MAX + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg);
    snprintf(err->msg, sizeof err->msg, "%.*s", (int)sizeof err->msg - 1, joined);
}

llmrt_status llmrt_err_publish(const llmrt_error *err) {
    snprintf(last_error_msg, sizeof last_error_msg, "%s", err->msg);
    return err->status;
}

llmrt_status llmrt_err_set_last(llmrt_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error_msg, sizeof last_error_msg, fmt, ap);
    va_end(ap);
    return status;
}
