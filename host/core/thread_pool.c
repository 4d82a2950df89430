#include "thread_pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Waiting, on a machine that may be shared (2 cores with other processes loading them):
 *
 * - Workers poll a bounded time (SPIN_NS) for the next job, then sleep on a futex: a decode
 *   step runs a few hundred parallel loops of ~10-100 us with a few us of serial work between
 *   them, so a futex wake-up per loop would cost as much as the work. A poller pauses while the
 *   thread it waits for runs on another core and parks at once when that thread last ran on
 *   the poller's own core (spin_while): on 2 shared cores, a pure spin took the core from the
 *   very thread it waited for (the caller's serial work, a worker's last task), and a
 *   sched_yield() loop handed whole time slices to a CPU hog sharing the core.
 * - Tasks are claimed one at a time from a counter tagged with the job's generation, and the
 *   caller waits for the job's tasks to be *done*, not for every worker to check in. The old
 *   pool waited until each worker had seen the job; a worker descheduled by another process
 *   then cost the caller a whole time slice per loop (a worker that wakes late now finds the
 *   job finished and goes back to waiting).
 * - The caller polls the same way for the last tasks, then sleeps on a futex that the worker
 *   finishing the last task wakes (a worker preempted for a whole time slice costs no CPU). */
#define SPIN_NS 50000
/* tasks of one job (the claim counter has 32 bits); larger runs are cut into several jobs */
#define JOB_MAX_TASKS (1u << 30)

struct llmrt_thread_pool {
    int        n_threads;
    pthread_t *workers;

    _Atomic uint32_t generation; /* bumped once per job; futex word of the sleeping workers   */
    atomic_int       sleepers;   /* workers asleep (or about to sleep) on `generation`        */
    atomic_int       stop;

    /* current job; written by the caller only while no task of the previous job is pending.
     * Atomic because a worker that is late by a whole job may read them while they change (it
     * then fails the claim and drops what it read). */
    _Atomic(llmrt_task_fn) task;
    _Atomic(void *)        ctx;
    _Atomic int64_t        base;    /* index of the job's first task                       */
    _Atomic uint32_t       n_tasks;
    _Atomic uint64_t       claim;   /* generation << 32 | next task index                   */
    _Atomic uint32_t       done;    /* tasks finished; futex word of the waiting caller     */
    atomic_int             caller_asleep;
    /* pinning (llmrt_thread_pool_create_pinned): cpus[i] is thread i's CPU; the caller is bound
     * on its first job, and again when another thread calls */
    bool                   pin;
    int                   *cpus;
    pthread_t              pinned_caller;
    bool                   caller_pinned;
    atomic_int             caller_cpu;  /* cpu the caller last posted a job from             */
    atomic_int            *worker_cpu;  /* [n_threads] cpu each worker last claimed a task on */
};

typedef struct {
    llmrt_thread_pool *pool;
    int                index;
} worker_arg;

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Polls while (*word == value) == equal, at most about SPIN_NS (or until *stop), and returns
 * the last value read; the caller then parks on the futex. Polls are a pause apart while the
 * thread we wait for last ran on another core (its core is its own: keep ours); when it last
 * ran on ours (the machine is loaded and the scheduler put us together), we stop at once:
 * spinning would keep it off the core, and sched_yield() may hand the core to a CPU hog for a
 * whole time slice, whereas a thread woken from a futex preempts a hog at once. */
static uint32_t spin_while(_Atomic uint32_t *word, uint32_t value, int equal,
                           const atomic_int *stop, const atomic_int *other_cpu, int n_other) {
    int64_t  deadline = 0;
    uint32_t v;
    for (int i = 0; ((v = atomic_load_explicit(word, memory_order_acquire)) == value) == equal;
         i++) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed)) break;
        if ((i & 15) == 15) { /* ~0.5-1 us of pauses between checks of the clock and the cpus */
            int64_t t = now_ns();
            if (!deadline) deadline = t + SPIN_NS;
            else if (t > deadline) break;
            int me = sched_getcpu(), shared = 0;
            for (int k = 0; k < n_other; k++)
                shared |= atomic_load_explicit(&other_cpu[k], memory_order_relaxed) == me;
            if (shared) break; /* park now: it needs our core, and its futex wake brings us back */
        }
        cpu_relax();
    }
    return v;
}

/* Claims and runs tasks of job `gen` until none is left or the job is over. */
static void run_tasks(llmrt_thread_pool *pool, uint32_t gen, int thread_index) {
    for (;;) {
        uint64_t c = atomic_load_explicit(&pool->claim, memory_order_acquire);
        if ((uint32_t)(c >> 32) != gen) return; /* a later job: this one is finished */
        uint32_t      i  = (uint32_t)c;
        uint32_t      n  = atomic_load_explicit(&pool->n_tasks, memory_order_relaxed);
        llmrt_task_fn fn = atomic_load_explicit(&pool->task, memory_order_relaxed);
        void         *cx = atomic_load_explicit(&pool->ctx, memory_order_relaxed);
        int64_t       b  = atomic_load_explicit(&pool->base, memory_order_relaxed);
        if (i >= n) return;
        /* success means the claim did not move since the load, so the job (and what was read
         * of it) is still current */
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        if (thread_index > 0)
            atomic_store_explicit(&pool->worker_cpu[thread_index], sched_getcpu(),
                                  memory_order_relaxed);
        fn(cx, b + i, thread_index);
        /* seq_cst: Dekker with the caller's caller_asleep store and re-read of done */
        if (atomic_fetch_add(&pool->done, 1) + 1 == n && atomic_load(&pool->caller_asleep))
            futex_wake(&pool->done);
    }
}

static void *worker_main(void *p) {
    worker_arg        *arg   = p;
    llmrt_thread_pool *pool  = arg->pool;
    int                index = arg->index;
    free(arg);
    /* Jobs are only posted after create() returns, when the generation is still 0; reading it
     * here instead could miss a job posted before this thread got scheduled. */
    uint32_t seen = 0;
    for (;;) {
        uint32_t gen = spin_while(&pool->generation, seen, 1, &pool->stop, &pool->caller_cpu, 1);
        while (gen == seen && !atomic_load(&pool->stop)) {
            /* Dekker with the caller: it bumps the generation, then reads `sleepers`; we count
             * ourselves in, then the kernel re-reads the generation under the futex lock */
            atomic_fetch_add(&pool->sleepers, 1);
            futex_wait(&pool->generation, seen);
            atomic_fetch_sub(&pool->sleepers, 1);
            gen = atomic_load(&pool->generation);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        run_tasks(pool, gen, index);
    }
}

static bool bind_to(pthread_t th, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(th, sizeof set, &set) == 0;
}

llmrt_thread_pool *llmrt_thread_pool_create(int n_threads) {
    return llmrt_thread_pool_create_pinned(n_threads, false, NULL, 0);
}

llmrt_thread_pool *llmrt_thread_pool_create_pinned(int n_threads, bool pin, char *why, size_t cap) {
    if (n_threads <= 0) {
        long n    = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (why && cap) why[0] = 0;
    llmrt_thread_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pool->pin       = pin;
    if (pin) { /* thread i -> the i-th CPU the process may run on */
        cpu_set_t allowed;
        int       n_allowed = 0;
        pool->cpus          = calloc((size_t)n_threads, sizeof *pool->cpus);
        if (!pool->cpus || sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
            if (why && cap) snprintf(why, cap, "cannot read the process's CPU affinity");
            free(pool->cpus);
            free(pool);
            return NULL;
        }
        for (int c = 0; c < CPU_SETSIZE && n_allowed < n_threads; c++)
            if (CPU_ISSET(c, &allowed)) pool->cpus[n_allowed++] = c;
        if (n_allowed < n_threads) {
            if (why && cap)
                snprintf(why, cap, "%d threads to pin but the process may run on %d CPUs only",
                         n_threads, CPU_COUNT(&allowed));
            free(pool->cpus);
            free(pool);
            return NULL;
        }
    }
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->task, NULL);
    atomic_init(&pool->ctx, NULL);
    atomic_init(&pool->base, 0);
    atomic_init(&pool->n_tasks, 0);
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->caller_asleep, 0);
    atomic_init(&pool->caller_cpu, -1);
    pool->workers    = calloc((size_t)n_threads, sizeof *pool->workers);
    pool->worker_cpu = calloc((size_t)n_threads, sizeof *pool->worker_cpu);
    if (!pool->workers || !pool->worker_cpu) {
        free(pool->workers);
        free(pool->worker_cpu);
        free(pool->cpus);
        free(pool);
        return NULL;
    }
    for (int i = 0; i < n_threads; i++) atomic_init(&pool->worker_cpu[i], -1);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (!arg || (arg->pool = pool, arg->index = i,
                     pthread_create(&pool->workers[i], NULL, worker_main, arg) != 0)) {
            free(arg);
            pool->n_threads = i; /* run with the workers we got */
            break;
        }
        if (pin && !bind_to(pool->workers[i], pool->cpus[i])) {
            if (why && cap) snprintf(why, cap, "cannot bind thread %d to CPU %d", i, pool->cpus[i]);
            pool->n_threads = i + 1;
            llmrt_thread_pool_destroy(pool);
            return NULL;
        }
    }
    return pool;
}

void llmrt_thread_pool_destroy(llmrt_thread_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->generation, 1);
    futex_wake(&pool->generation);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    free(pool->worker_cpu);
    free(pool->cpus);
    free(pool);
}

int llmrt_thread_pool_size(const llmrt_thread_pool *pool) {
    return pool->n_threads;
}

static void run_job(llmrt_thread_pool *pool, int64_t base, uint32_t n, llmrt_task_fn task,
                    void *ctx) {
    uint32_t gen = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    /* Close the previous job's claims before its fields change: a worker late on that job may
     * have read its exhausted claim (i == old n) and be about to read n_tasks; were the new n
     * visible with the old claim still in place, its claim of task i would succeed, run a task
     * that is not one and count it in `done` (which then overshoots n: the caller waited
     * forever). With the claim moved to the new generation first, that CAS fails. Index
     * UINT32_MAX: nothing to claim until the job is published below. */
    atomic_store(&pool->claim, ((uint64_t)gen << 32) | UINT32_MAX);
    atomic_store_explicit(&pool->task, task, memory_order_relaxed);
    atomic_store_explicit(&pool->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool->base, base, memory_order_relaxed);
    atomic_store_explicit(&pool->n_tasks, n, memory_order_relaxed);
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->claim, (uint64_t)gen << 32, memory_order_release);
    atomic_store_explicit(&pool->caller_cpu, sched_getcpu(), memory_order_relaxed);
    atomic_store(&pool->generation, gen); /* seq_cst: ordered before the read of sleepers */
    if (atomic_load(&pool->sleepers) > 0) futex_wake(&pool->generation);
    run_tasks(pool, gen, 0);
    /* the tasks other threads still run (worker_cpu[0], the caller's slot, stays -1) */
    uint32_t d = spin_while(&pool->done, n, 0, NULL, pool->worker_cpu, pool->n_threads);
    if (d != n) {
        atomic_store(&pool->caller_asleep, 1); /* seq_cst: before the re-read of done */
        while ((d = atomic_load(&pool->done)) != n) futex_wait(&pool->done, d);
        atomic_store(&pool->caller_asleep, 0);
    }
}

void llmrt_thread_pool_run(llmrt_thread_pool *pool, int64_t n_tasks, llmrt_task_fn task, void *ctx) {
    if (n_tasks <= 0) return;
    if (pool->pin && !(pool->caller_pinned && pthread_equal(pool->pinned_caller, pthread_self()))) {
        /* the caller is thread 0: bound once per calling thread (a failure leaves it free) */
        pool->pinned_caller = pthread_self();
        pool->caller_pinned = true;
        (void)bind_to(pool->pinned_caller, pool->cpus[0]);
    }
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t i = 0; i < n_tasks; i++) task(ctx, i, 0);
        return;
    }
    for (int64_t base = 0; base < n_tasks; base += JOB_MAX_TASKS) {
        int64_t n = n_tasks - base < JOB_MAX_TASKS ? n_tasks - base : JOB_MAX_TASKS;
        run_job(pool, base, (uint32_t)n, task, ctx);
    }
}
