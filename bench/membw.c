/* A STREAM-like memory bandwidth probe: the roofline reference for CPU figures. Reads (sum) and
 * copies a buffer much larger than the last-level cache with the given number of threads and
 * reports the best of several repetitions in GB/s (1e9 bytes/s). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

typedef struct membw_part {
    const float *src;
    float       *dst;
    size_t       n;
    int          copy;
    double       sink;
} membw_part;

static void *membw_worker(void *p) {
    membw_part *part = p;
    if (part->copy) {
        memcpy(part->dst, part->src, part->n * sizeof(float));
        return NULL;
    }
    /* 8 independent sums so the loop is bound by loads, not by the add latency */
    float s[8] = {0};
    for (size_t i = 0; i + 8 <= part->n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += part->src[i + k];
    double t = 0;
    for (int k = 0; k < 8; k++) t += s[k];
    part->sink = t;
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Returns GB/s of reads (copy == 0) or of read+write traffic (copy == 1). */
double bench_membw(int n_threads, size_t bytes, int copy, int reps) {
    if (n_threads < 1) n_threads = 1;
    size_t n   = bytes / sizeof(float);
    float *src = malloc(n * sizeof(float)), *dst = copy ? malloc(n * sizeof(float)) : NULL;
    if (!src || (copy && !dst)) {
        free(src);
        free(dst);
        return 0.0;
    }
    for (size_t i = 0; i < n; i++) src[i] = (float)(i & 1023);
    if (dst) memset(dst, 0, n * sizeof(float));
    membw_part *parts = calloc((size_t)n_threads, sizeof *parts);
    pthread_t  *tids  = calloc((size_t)n_threads, sizeof *tids);
    double      best  = 0.0;
    for (int r = 0; r < reps; r++) {
        size_t chunk = n / (size_t)n_threads;
        double t0    = now_s();
        for (int t = 0; t < n_threads; t++) {
            parts[t] = (membw_part){.src = src + t * chunk, .dst = dst ? dst + t * chunk : NULL,
                                    .n = chunk, .copy = copy};
            pthread_create(&tids[t], NULL, membw_worker, &parts[t]);
        }
        for (int t = 0; t < n_threads; t++) pthread_join(tids[t], NULL);
        double dt     = now_s() - t0;
        double traffic = (double)chunk * (double)n_threads * sizeof(float) * (copy ? 2.0 : 1.0);
        if (traffic / dt / 1e9 > best) best = traffic / dt / 1e9;
    }
    free(parts);
    free(tids);
    free(src);
    free(dst);
    return best;
}
