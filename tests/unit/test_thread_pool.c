/* The thread pool runs every task exactly once per job, over many consecutive jobs (the workers
 * poll between jobs, then sleep), for pool sizes 1..4 (more threads than this machine's cores
 * included) and task counts around the pool size, with tasks slow enough now and then that the
 * caller parks waiting for them. */
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/thread_pool.h"
#include "test_util.h"

typedef struct {
    atomic_int *hits;
    int         n_threads;
    atomic_int  bad_thread;
    int         slow;
} job;

static void task(void *p, int64_t i, int thread) {
    job *j = p;
    /* now and then a task outlasts the caller's polling, so it parks on the futex and the
     * worker finishing the last task must wake it */
    if (j->slow && i % 7 == 3) usleep(200);
    atomic_fetch_add(&j->hits[i], 1);
    if (thread < 0 || thread >= j->n_threads) atomic_store(&j->bad_thread, 1);
}

int main(void) {
    for (int n_threads = 1; n_threads <= 4; n_threads++) {
        llmrt_thread_pool *pool = llmrt_thread_pool_create(n_threads);
        CHECK(pool && llmrt_thread_pool_size(pool) == n_threads);
        int64_t sizes[] = {0, 1, 2, 3, 5, 64, 1000};
        for (int rep = 0; rep < 200; rep++) {
            int64_t     n    = sizes[rep % 7];
            atomic_int *hits = calloc((size_t)(n ? n : 1), sizeof *hits);
            job         j    = {.hits = hits, .n_threads = n_threads, .slow = rep % 3 == 1};
            atomic_init(&j.bad_thread, 0);
            llmrt_thread_pool_run(pool, n, task, &j);
            int wrong = 0;
            for (int64_t i = 0; i < n; i++) wrong += atomic_load(&hits[i]) != 1;
            CHECK_MSG(wrong == 0, "%d threads, %lld tasks: %d tasks not run exactly once",
                      n_threads, (long long)n, wrong);
            CHECK(atomic_load(&j.bad_thread) == 0);
            free(hits);
            if (rep == 100) usleep(50000); /* let workers fall asleep, then wake them */
        }
        llmrt_thread_pool_destroy(pool);
    }
    /* Back-to-back jobs of alternating sizes, no pause between them: a worker late on an
     * exhausted job must not claim a task of the next one through the old job's claim (it once
     * did when the next job was larger: a task ran twice, `done` overshot and the caller waited
     * forever -- a hang that ctest's timeout turns into a failure). */
    llmrt_thread_pool *pool = llmrt_thread_pool_create(3);
    CHECK(pool != NULL);
    int twice = 0;
    for (int rep = 0; rep < 100000 && pool; rep++) {
        int64_t    n = rep % 2 ? 9 : 2;
        atomic_int hits[9];
        for (int i = 0; i < 9; i++) atomic_init(&hits[i], 0);
        job j = {.hits = hits, .n_threads = 3};
        atomic_init(&j.bad_thread, 0);
        llmrt_thread_pool_run(pool, n, task, &j);
        for (int64_t i = 0; i < n; i++) twice += atomic_load(&hits[i]) != 1;
    }
    CHECK_MSG(twice == 0, "back-to-back jobs: %d tasks not run exactly once", twice);
    llmrt_thread_pool_destroy(pool);
    llmrt_thread_pool_destroy(NULL);
    return test_summary("test_thread_pool");
}
