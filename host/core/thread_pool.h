/* A fixed pool of worker threads for data-parallel loops. The calling thread works too, so a
 * pool of n threads starts n-1 workers. Results never depend on which thread ran a task: callers
 * split work so that each task writes its own outputs with a fixed reduction order. */
#ifndef LLMRT_CORE_THREAD_POOL_H
#define LLMRT_CORE_THREAD_POOL_H

#include <stdint.h>

typedef struct llmrt_thread_pool llmrt_thread_pool;

/* task(ctx, task_index, thread_index): thread_index in [0, n_threads) for per-thread scratch. */
typedef void (*llmrt_task_fn)(void *ctx, int64_t task_index, int thread_index);

/* n_threads <= 0 means the number of online cores. Returns NULL on allocation failure. */
llmrt_thread_pool *llmrt_thread_pool_create(int n_threads);
void               llmrt_thread_pool_destroy(llmrt_thread_pool *pool);
int                llmrt_thread_pool_size(const llmrt_thread_pool *pool);

/* Runs task(ctx, i, t) for i in [0, n_tasks) and returns when all are done. Not reentrant:
 * one caller at a time (the forward is single-threaded at the top). */
void llmrt_thread_pool_run(llmrt_thread_pool *pool, int64_t n_tasks, llmrt_task_fn task, void *ctx);

#endif
