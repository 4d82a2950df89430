/* Helpers shared by the backends (backend.h). */
#include <stdarg.h>
#include <stdio.h>

#include "backend.h"

bool llmrt_backend_decline(char *why, size_t cap, const char *fmt, ...) {
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return false;
}
