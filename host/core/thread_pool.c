#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Workers spin briefly on the job generation before sleeping: a decode step runs a few hundred
 * parallel loops of ~10-100 us each, and a condition-variable wake-up per loop would cost as much
 * as the work. After SPIN_ITERS polls they sleep, so an idle pool uses no CPU. */
#define SPIN_ITERS 20000

struct llmrt_thread_pool {
    int        n_threads;
    pthread_t *workers;

    pthread_mutex_t mutex;
    pthread_cond_t  wake;
    atomic_uint     generation; /* bumped once per job                              */
    atomic_int      stop;

    /* current job */
    llmrt_task_fn task;
    void         *ctx;
    int64_t       n_tasks;
    atomic_llong  next_task;
    atomic_int    active_workers; /* workers still inside the current job           */
};

typedef struct {
    llmrt_thread_pool *pool;
    int                index;
} worker_arg;

static void run_tasks(llmrt_thread_pool *pool, int thread_index) {
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (i >= pool->n_tasks) break;
        pool->task(pool->ctx, i, thread_index);
    }
}

static void *worker_main(void *p) {
    worker_arg        *arg   = p;
    llmrt_thread_pool *pool  = arg->pool;
    int                index = arg->index;
    free(arg);
    /* Jobs are only posted after create() returns, when the generation is still 0; reading it
     * here instead could miss a job posted before this thread got scheduled. */
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int      spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins > SPIN_ITERS) {
                pthread_mutex_lock(&pool->mutex);
                while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                    pthread_cond_wait(&pool->wake, &pool->mutex);
                pthread_mutex_unlock(&pool->mutex);
                spins = 0;
            }
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        run_tasks(pool, index);
        atomic_fetch_sub_explicit(&pool->active_workers, 1, memory_order_acq_rel);
    }
}

llmrt_thread_pool *llmrt_thread_pool_create(int n_threads) {
    if (n_threads <= 0) {
        long n    = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    llmrt_thread_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->active_workers, 0);
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (!arg || (arg->pool = pool, arg->index = i,
                     pthread_create(&pool->workers[i], NULL, worker_main, arg) != 0)) {
            free(arg);
            pool->n_threads = i; /* run with the workers we got */
            break;
        }
    }
    return pool;
}

void llmrt_thread_pool_destroy(llmrt_thread_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->workers[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
}

int llmrt_thread_pool_size(const llmrt_thread_pool *pool) {
    return pool->n_threads;
}

void llmrt_thread_pool_run(llmrt_thread_pool *pool, int64_t n_tasks, llmrt_task_fn task, void *ctx) {
    if (n_tasks <= 0) return;
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t i = 0; i < n_tasks; i++) task(ctx, i, 0);
        return;
    }
    pool->task    = task;
    pool->ctx     = ctx;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->active_workers, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    run_tasks(pool, 0);
    while (atomic_load_explicit(&pool->active_workers, memory_order_acquire) > 0) sched_yield();
}
