/* Minimal test helpers: CHECK records a failure and continues; the main returns test_summary(). */
#ifndef LLMRT_TEST_UTIL_H
#define LLMRT_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "llmrt.h"

static int test_n_passed, test_n_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            test_n_passed++;                                                                       \
        } else {                                                                                   \
            test_n_failed++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) {                                                                                \
            test_n_passed++;                                                                       \
        } else {                                                                                   \
            test_n_failed++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Expects `status` and, when `needle` is non-NULL, that llmrt_last_error() contains it. */
#define CHECK_STATUS(expr, expected, needle)                                                       \
    do {                                                                                           \
        llmrt_status got_    = (expr);                                                             \
        const char  *msg_    = llmrt_last_error();                                                 \
        const char  *needle_ = (needle);                                                           \
        CHECK_MSG(got_ == (expected), "%s returned %s, expected %s (message: %s)", #expr,          \
                  llmrt_status_str(got_), llmrt_status_str(expected), msg_);                       \
        if (needle_ != NULL && got_ != LLMRT_OK)                                                   \
            CHECK_MSG(strstr(msg_, needle_) != NULL, "message \"%s\" lacks \"%s\"", msg_, needle_);  \
    } while (0)

/* For internal functions, which report through an llmrt_error instead of llmrt_last_error():
 * expects `expected` and, on failure, that err.msg contains `needle`. */
#define CHECK_ERROR(status_expr, err, expected, needle)                                              \
    do {                                                                                           \
        llmrt_status got_ = (status_expr);                                                         \
        CHECK_MSG(got_ == (expected), "%s returned %s, expected %s (message: %s)", #status_expr,   \
                  llmrt_status_str(got_), llmrt_status_str(expected), (err).msg);                  \
        if (got_ != LLMRT_OK)                                                                      \
            CHECK_MSG(strstr((err).msg, (needle)) != NULL, "message \"%s\" lacks \"%s\"",          \
                      (err).msg, (needle));                                                        \
    } while (0)

#ifdef LLMRT_TEST_DATA_DIR
/* tests/data/REL as an absolute path; four buffers in turn, so up to four paths can be used in
 * one call */
static inline const char *test_data_path(const char *rel) {
    static char buf[4][2048];
    static int  next;
    char       *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", LLMRT_TEST_DATA_DIR, rel);
    return p;
}
#endif

static inline int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_n_passed, test_n_failed);
    return test_n_failed == 0 ? 0 : 1;
}

#endif
