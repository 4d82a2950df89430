/* The library's diagnostics: llmrt_log() hands a message to the callback the user installed
 * with llmrt_log_set() (include/llmrt.h), or drops it when there is none. The library never
 * writes to stdout/stderr itself. */
#ifndef LLMRT_CORE_LOG_H
#define LLMRT_CORE_LOG_H

#include <stdbool.h>

#include "llmrt.h"

/* Formats and delivers a message of `level` (printf-style; no trailing newline needed). Cheap
 * when nobody listens at that level. Thread-safe. */
void llmrt_log(llmrt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether a message of `level` would be delivered (to skip building costly messages). */
bool llmrt_log_enabled(llmrt_log_level level);

#endif
