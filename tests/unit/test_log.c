/* llmrt_log_set: the library prints nothing by itself, and a callback receives the messages of
 * real library paths at the levels asked for.
 *   - no callback: loading (and failing to load) a model writes nothing to stdout or stderr;
 *   - a callback at INFO receives the load's backend message; at WARN it does not;
 *   - llmrt_log_set(.., NULL, ..) silences again;
 *   - loads on two threads while a callback is installed deliver every message (thread-safe). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#define TINY LLMRT_TEST_DATA_DIR "/tiny/llama_f32"

typedef struct capture {
    pthread_mutex_t mu;
    int             n[4];
    char            last[4][512];
} capture;

static void on_log(llmrt_log_level level, const char *msg, void *data) {
    capture *c = data;
    pthread_mutex_lock(&c->mu);
    if ((int)level >= 0 && level <= LLMRT_LOG_DEBUG) {
        c->n[level]++;
        snprintf(c->last[level], sizeof c->last[level], "%s", msg);
    }
    pthread_mutex_unlock(&c->mu);
}

static llmrt_model *load(const char *path) {
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = 1;
    llmrt_model *m       = NULL;
    (void)llmrt_model_load(path, &p, &m);
    return m;
}

/* Runs the loads with stdout and stderr sent to a file; returns the bytes written there. */
static long silent_run(void) {
    char tmpl[] = "/tmp/llmrt_test_log_XXXXXX";
    int  fd     = mkstemp(tmpl);
    if (fd < 0) return -1;
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), err = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    llmrt_model *m = load(TINY);
    llmrt_model_destroy(m);
    m = load(LLMRT_TEST_DATA_DIR "/tiny/does_not_exist");
    llmrt_model_destroy(m);
    m = load(LLMRT_TEST_DATA_DIR "/tiny/llama_q4_0.gguf");
    llmrt_model_destroy(m);
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    struct stat st;
    long        size = fstat(fd, &st) == 0 ? (long)st.st_size : -1;
    close(fd);
    unlink(tmpl);
    return size;
}

static void *load_thread(void *arg) {
    (void)arg;
    llmrt_model_destroy(load(TINY));
    return NULL;
}

int main(void) {
    /* 1. silent by default */
    long written = silent_run();
    CHECK_MSG(written == 0, "the library wrote %ld bytes to stdout/stderr without a callback",
              written);

    /* 2. a callback at INFO gets the backend message of a load */
    capture c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    llmrt_log_set(LLMRT_LOG_INFO, on_log, &c);
    llmrt_model *m = load(TINY);
    CHECK(m != NULL);
    llmrt_model_destroy(m);
    CHECK_MSG(c.n[LLMRT_LOG_INFO] >= 1 && strstr(c.last[LLMRT_LOG_INFO], "cpu backend"),
              "%d info messages, last \"%s\"", c.n[LLMRT_LOG_INFO], c.last[LLMRT_LOG_INFO]);
    CHECK(c.n[LLMRT_LOG_DEBUG] == 0); /* above the level asked for */

    /* 3. at WARN the same load delivers nothing (it has no warning) */
    memset(c.n, 0, sizeof c.n);
    llmrt_log_set(LLMRT_LOG_WARN, on_log, &c);
    llmrt_model_destroy(load(TINY));
    CHECK_MSG(c.n[LLMRT_LOG_INFO] == 0 && c.n[LLMRT_LOG_WARN] == 0, "info %d warn %d",
              c.n[LLMRT_LOG_INFO], c.n[LLMRT_LOG_WARN]);

    /* 4. loads on several threads: one message each */
    memset(c.n, 0, sizeof c.n);
    llmrt_log_set(LLMRT_LOG_INFO, on_log, &c);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, load_thread, NULL);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CHECK_MSG(c.n[LLMRT_LOG_INFO] >= 3, "%d info messages from 3 loads", c.n[LLMRT_LOG_INFO]);

    /* 5. NULL silences again */
    memset(c.n, 0, sizeof c.n);
    llmrt_log_set(LLMRT_LOG_DEBUG, NULL, &c);
    llmrt_model_destroy(load(TINY));
    CHECK(c.n[LLMRT_LOG_INFO] == 0 && c.n[LLMRT_LOG_DEBUG] == 0);
    written = silent_run();
    CHECK_MSG(written == 0, "%ld bytes written after llmrt_log_set(NULL)", written);
    return test_summary("test_log");
}
