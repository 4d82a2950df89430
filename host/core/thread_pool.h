/* A fixed pool of worker threads for data-parallel loops. The calling thread works too, so a
 * pool of n threads starts n-1 workers. Results never depend on which thread ran a task: callers
 * split work so that each task writes its own outputs with a fixed reduction order. */
#ifndef LLMRT_CORE_THREAD_POOL_H
#define LLMRT_CORE_THREAD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct llmrt_thread_pool llmrt_thread_pool;

/* task(ctx, task_index, thread_index): thread_index in [0, n_threads) for per-thread scratch. */
typedef void (*llmrt_task_fn)(void *ctx, int64_t task_index, int thread_index);

/* n_threads <= 0 means the number of online cores. Returns NULL on allocation failure. */
llmrt_thread_pool *llmrt_thread_pool_create(int n_threads);

/* As llmrt_thread_pool_create; with pin, thread i is bound to the i-th CPU of the process's
 * affinity mask (sched_getaffinity: narrow it with taskset or numactl): the workers (1..n-1) at
 * creation, the calling thread (0) when it first runs a job, and again whenever another thread
 * becomes the caller. Returns NULL and writes the reason into why[cap] when the mask holds fewer
 * CPUs than threads, a binding fails or memory runs out. */
llmrt_thread_pool *llmrt_thread_pool_create_pinned(int n_threads, bool pin, char *why, size_t cap);
void               llmrt_thread_pool_destroy(llmrt_thread_pool *pool);
int                llmrt_thread_pool_size(const llmrt_thread_pool *pool);

/* Runs task(ctx, i, t) for i in [0, n_tasks) and returns when all are done. Not reentrant:
 * one caller at a time (the forward is single-threaded at the top). */
void llmrt_thread_pool_run(llmrt_thread_pool *pool, int64_t n_tasks, llmrt_task_fn task, void *ctx);

#endif
