/* The thread pool runs every task exactly once per job, over many consecutive jobs (the workers
 * poll between jobs, then sleep), for pool sizes 1..4 (more threads than this machine's cores
 * included) and task counts around the pool size, with tasks slow enough now and then that the
 * caller parks waiting for them. */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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

/* pinned pools: task i records the CPU that thread ran it on */
typedef struct {
    atomic_int cpu_of[8]; /* [thread]: the CPU seen, -1 none, -2 two different ones */
} seen_cpus;

static void where(void *p, int64_t i, int thread) {
    seen_cpus *s = p;
    (void)i;
    usleep(100); /* long enough that every thread takes some tasks */
    int c = sched_getcpu(), old = -1;
    if (!atomic_compare_exchange_strong(&s->cpu_of[thread], &old, c) && old != c)
        atomic_store(&s->cpu_of[thread], -2);
}

static void test_pinned(void) {
    cpu_set_t allowed;
    CHECK(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    int cpus[8], n_allowed = 0;
    for (int c = 0; c < CPU_SETSIZE && n_allowed < 8; c++)
        if (CPU_ISSET(c, &allowed)) cpus[n_allowed++] = c;
    int n = n_allowed < 4 ? n_allowed : 4;
    /* thread i runs on the i-th allowed CPU, and only there, over many jobs */
    char               why[128];
    llmrt_thread_pool *pool = llmrt_thread_pool_create_pinned(n, true, why, sizeof why);
    CHECK_MSG(pool != NULL, "pinned pool of %d threads: %s", n, why);
    /* the caller moves to the last allowed CPU before its first job: without the binding at
     * that job, thread 0 would run there and not on the first */
    cpu_set_t last;
    CPU_ZERO(&last);
    CPU_SET(cpus[n_allowed - 1], &last);
    CHECK(sched_setaffinity(0, sizeof last, &last) == 0);
    seen_cpus s;
    for (int t = 0; t < 8; t++) atomic_init(&s.cpu_of[t], -1);
    for (int rep = 0; rep < 50 && pool; rep++) llmrt_thread_pool_run(pool, 4 * n, where, &s);
    for (int t = 0; t < n; t++) {
        int c = atomic_load(&s.cpu_of[t]);
        CHECK_MSG(c == -1 || c == cpus[t], "pinned thread %d ran on CPU %d, bound to %d", t, c,
                  cpus[t]);
    }
    CHECK_MSG(atomic_load(&s.cpu_of[0]) == cpus[0], "the caller (thread 0) ran on CPU %d, not %d",
              atomic_load(&s.cpu_of[0]), cpus[0]);
    llmrt_thread_pool_destroy(pool);
    /* more threads than the mask's CPUs: refused with the counts */
    CHECK(sched_setaffinity(0, sizeof allowed, &allowed) == 0);
    why[0] = 0;
    pool   = llmrt_thread_pool_create_pinned(n_allowed + 1, true, why, sizeof why);
    CHECK(pool == NULL);
    CHECK_MSG(strstr(why, "may run on") != NULL, "why: \"%s\"", why);
    /* unpinned: any number of threads */
    pool = llmrt_thread_pool_create_pinned(n_allowed + 1, false, why, sizeof why);
    CHECK(pool != NULL && llmrt_thread_pool_size(pool) == n_allowed + 1);
    llmrt_thread_pool_destroy(pool);
    /* the caller's own affinity was narrowed to cpus[0]: restore it for what follows */
    CHECK(sched_setaffinity(0, sizeof allowed, &allowed) == 0);
}

int main(void) {
    test_pinned();
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
