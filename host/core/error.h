/* Internal error reporting: a status plus a message that names the file, tensor, key or
 * argument at fault. Internal functions take an `llmrt_error *` and return its status. */
#ifndef LLMRT_CORE_ERROR_H
#define LLMRT_CORE_ERROR_H

#include "llmrt.h"
#include "llmrt_experimental.h" /* the library implements the experimental calls too */

#define LLMRT_ERROR_MSG_MAX 512

typedef struct llmrt_error {
    llmrt_status status;
    bool         secondary; /* this failure only reports an earlier one elsewhere (a collective
                             * released by another rank's abort): when several ranks fail,
                             * the first non-secondary error is the one to report */
    char         msg[LLMRT_ERROR_MSG_MAX];
} llmrt_error;

/* Records `status` and a printf-style message in `err` (which may be NULL); returns `status`. */
llmrt_status llmrt_err(llmrt_error *err, llmrt_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in `err` with more context ("loading x.gguf: ..."). */
void llmrt_err_prefix(llmrt_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Publishes `err` as the calling thread's llmrt_last_error() and returns its status. */
llmrt_status llmrt_err_publish(const llmrt_error *err);

/* Sets the thread's last error directly (API-boundary argument checks). */
llmrt_status llmrt_err_set_last(llmrt_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LLMRT_TRY(expr)                                                                            \
    do {                                                                                           \
        llmrt_status try_status_ = (expr);                                                         \
        if (try_status_ != LLMRT_OK) return try_status_;                                           \
    } while (0)

#endif
