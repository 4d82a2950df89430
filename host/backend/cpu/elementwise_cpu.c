/* Element-wise ops of the CPU backend over the thread pool (elementwise_cpu.h). */
#include "elementwise_cpu.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "exp_exact.h"

/* Below this many floats a batch runs on the calling thread: waking the pool costs a few
 * microseconds, more than a decode token's row takes. */
#define EW_MIN_PARALLEL 8192
/* Tasks per thread: a few, so a thread descheduled on a shared machine leaves its rows to the
 * others (the pool hands tasks out dynamically). */
#define EW_TASKS_PER_THREAD 4

void llmrt_cpu_swiglu_exact(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + llmrt_exp_exact(-gate[i])) * up[i];
}

/* the kernel sets whose CPUs run elementwise_avx2.c (every AVX-512 CPU has AVX2 and FMA) */
static bool isa_has_avx2(const char *isa) {
    return isa && (strcmp(isa, "avx512") == 0 || strcmp(isa, "avx2") == 0);
}

llmrt_cpu_swiglu_fn llmrt_cpu_swiglu_exact_for(const char *isa) {
    if (isa && strcmp(isa, "avx512") == 0) return llmrt_cpu_swiglu_exact_avx512;
    return isa_has_avx2(isa) ? llmrt_cpu_swiglu_exact_avx2 : llmrt_cpu_swiglu_exact;
}

llmrt_cpu_swiglu_fn llmrt_cpu_swiglu_fast_for(const char *isa) {
    if (isa && strcmp(isa, "avx512") == 0) return llmrt_cpu_swiglu_avx512;
    return NULL;
}

llmrt_cpu_rmsnorm4_fn llmrt_cpu_rmsnorm4_for(const char *isa) {
    return isa_has_avx2(isa) ? llmrt_cpu_rmsnorm4_avx2 : NULL;
}

static void rmsnorm_row(float *out, const float *x, const float *w, int64_t D, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < D; i++)
        ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
    for (int64_t i = 0; i < D; i++)
        out[i] = w[i] * (x[i] * inv);
}

static void add_row(float *x, const float *delta, int64_t D) {
    for (int64_t i = 0; i < D; i++)
        x[i] += delta[i];
}

typedef enum { EW_RMSNORM, EW_ADD_RMSNORM, EW_ADD, EW_SWIGLU } ew_op;

typedef struct ew_job {
    ew_op op;
    float *out, *x;               /* [T, D] (SwiGLU: out [T, F])         */
    const float *src, *delta, *w; /* src: rmsnorm's input; w [D]         */
    const float *gate, *up;       /* [T, F]                              */
    llmrt_cpu_swiglu_fn fn;
    llmrt_cpu_rmsnorm4_fn rms4;   /* rmsnorm: NULL, or 4 rows at once */
    int64_t T, D, rows_per_task;
    float eps;
} ew_job;

static void ew_task(void *p, int64_t task, int thread) {
    (void)thread;
    const ew_job *j = p;
    int64_t t0 = task * j->rows_per_task;
    int64_t t1 = t0 + j->rows_per_task < j->T ? t0 + j->rows_per_task : j->T;
    const int64_t D = j->D;
    int64_t       t = t0;
    /* rmsnorm 4 rows at a time where a kernel sums their squares side by side: each row's sum
     * keeps its serial order, so the same bits (the row's sum is a chain of dependent double
     * adds: one row at a time left the adder's latency exposed) */
    for (; j->rms4 && (j->op == EW_RMSNORM || j->op == EW_ADD_RMSNORM) && t + 4 <= t1; t += 4) {
        const float *src = j->op == EW_RMSNORM ? j->src : j->x;
        for (int64_t r = t; j->op == EW_ADD_RMSNORM && r < t + 4; r++)
            add_row(j->x + r * D, j->delta + r * D, D);
        j->rms4(j->out + t * D, src + t * D, j->w, D, j->eps);
    }
    for (; t < t1; t++) {
        switch (j->op) {
        case EW_RMSNORM:
            rmsnorm_row(j->out + t * D, j->src + t * D, j->w, D, j->eps);
            break;
        case EW_ADD_RMSNORM:
            add_row(j->x + t * D, j->delta + t * D, D);
            rmsnorm_row(j->out + t * D, j->x + t * D, j->w, D, j->eps);
            break;
        case EW_ADD:
            add_row(j->x + t * D, j->delta + t * D, D);
            break;
        case EW_SWIGLU:
            j->fn(j->out + t * D, j->gate + t * D, j->up + t * D, D);
            break;
        }
    }
}

/* Splits the T rows of D floats into tasks (one task when the batch is small). */
static void ew_run(llmrt_thread_pool *pool, ew_job *j) {
    if (j->T <= 0 || j->D <= 0) return;
    int64_t n_tasks = 1;
    if (j->T > 1 && j->T * j->D >= EW_MIN_PARALLEL) {
        n_tasks = (int64_t)llmrt_thread_pool_size(pool) * EW_TASKS_PER_THREAD;
        if (n_tasks > j->T) n_tasks = j->T;
    }
    j->rows_per_task = (j->T + n_tasks - 1) / n_tasks;
    n_tasks = (j->T + j->rows_per_task - 1) / j->rows_per_task;
    llmrt_thread_pool_run(pool, n_tasks, ew_task, j);
}

void llmrt_cpu_rmsnorm_rows(llmrt_thread_pool *pool, llmrt_cpu_rmsnorm4_fn rms4, float *out,
                            const float *x, const float *w, int64_t T, int64_t D, float eps) {
    ew_job j = {.op = EW_RMSNORM, .rms4 = rms4, .out = out, .src = x, .w = w, .T = T, .D = D,
                .eps = eps};
    ew_run(pool, &j);
}

void llmrt_cpu_add_rmsnorm_rows(llmrt_thread_pool *pool, llmrt_cpu_rmsnorm4_fn rms4, float *x,
                                const float *delta, float *out, const float *w, int64_t T,
                                int64_t D, float eps) {
    ew_job j = {.op = EW_ADD_RMSNORM,
                .rms4 = rms4,
                .out = out,
                .x = x,
                .delta = delta,
                .w = w,
                .T = T,
                .D = D,
                .eps = eps};
    ew_run(pool, &j);
}

void llmrt_cpu_add_rows(llmrt_thread_pool *pool, float *x, const float *delta, int64_t T,
                        int64_t D) {
    ew_job j = {.op = EW_ADD, .x = x, .delta = delta, .T = T, .D = D};
    ew_run(pool, &j);
}

void llmrt_cpu_swiglu_rows(llmrt_thread_pool *pool, llmrt_cpu_swiglu_fn fn, float *out,
                           const float *gate, const float *up, int64_t T, int64_t F) {
    ew_job j = {.op = EW_SWIGLU, .out = out, .gate = gate, .up = up, .fn = fn, .T = T, .D = F};
    ew_run(pool, &j);
}
