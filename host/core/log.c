/* llmrt_log_set / llmrt_log: one process-wide sink. The level is read without the lock (an
 * atomic) so that a disabled level costs one load; the callback and its data are read together
 * under the mutex and called outside it, so a callback may log or block without holding up
 * other threads' messages. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static pthread_mutex_t    g_mu = PTHREAD_MUTEX_INITIALIZER;
static llmrt_log_callback g_cb;
static void              *g_data;
static atomic_int         g_min = -1; /* -1: no callback (everything dropped) */

void llmrt_log_set(llmrt_log_level min_level, llmrt_log_callback callback, void *user_data) {
    pthread_mutex_lock(&g_mu);
    g_cb   = callback;
    g_data = user_data;
    atomic_store(&g_min, callback ? (int)min_level : -1);
    pthread_mutex_unlock(&g_mu);
}

bool llmrt_log_enabled(llmrt_log_level level) {
    return (int)level <= atomic_load_explicit(&g_min, memory_order_relaxed);
}

void llmrt_log(llmrt_log_level level, const char *fmt, ...) {
    if (!llmrt_log_enabled(level)) return;
    pthread_mutex_lock(&g_mu);
    llmrt_log_callback cb   = g_cb;
    void              *data = g_data;
    bool               on   = cb && (int)level <= atomic_load(&g_min);
    pthread_mutex_unlock(&g_mu);
    if (!on) return;
    char    msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cb(level, msg, data);
}
