/* The in-process communicator: the ranks of a tensor-parallel group are threads of one process
 * (the CPU backend). A collective is a rendezvous at a generation-counted barrier (mutex +
 * condition variable, because pthread_barrier_wait cannot time out):
 *
 *   all_reduce_sum  barrier 1: every rank has deposited its buffer; rank r then sums its slice
 *                   [n*r/size, n*(r+1)/size) of all ranks' buffers, in rank order 0..size-1 in
 *                   fp32, into the group's shared fp32 result; barrier 2: the result is complete
 *                   and nobody reads the buffers any more; every rank copies (rounds) it into
 *                   its own buffer. Each element is computed once in one fixed order, so every
 *                   rank gets bitwise the same result, whatever the thread timing.
 *   broadcast_host  barrier 1, the others copy from the root's buffer, barrier 2 (the root's
 *                   buffer stays untouched until everyone copied). No timeout: followers idle
 *                   here between the leader's requests.
 *
 * The shared result is only resized by the last arrival at barrier 1 of a later all-reduce, when
 * every rank has finished copying out of it, so one buffer serves all collectives. A rank that
 * waits longer than timeout_s at a barrier aborts the group (naming the ranks that did not
 * arrive); abort wakes every waiter, and every later call fails at once with the reason. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "comm_util.h"

enum { OP_ALL_REDUCE = 1, OP_BROADCAST = 2 };


static const char *op_name(int op) { return op == OP_ALL_REDUCE ? "all_reduce" : "broadcast_host"; }

typedef struct arrival { /* what rank r brought to the current collective */
    int         op;      /* OP_* */
    int64_t     seq;     /* the rank's count of this kind of collective, from 1 */
    void       *buf;     /* the rank's buffer */
    int64_t     n;       /* all_reduce: elements; broadcast: bytes */
    llmrt_dtype dtype;   /* all_reduce */
    int32_t     root;    /* broadcast */
} arrival;

typedef struct local_group {
    pthread_mutex_t mu;
    pthread_cond_t  cv;      /* on CLOCK_MONOTONIC (timed waits) */
    int32_t         size;
    int32_t         refs;    /* comms not destroyed yet; the last destroy frees the group */
    uint64_t        gen;     /* barrier generation: advanced by each barrier's last arrival */
    atomic_ullong   gen_pub; /* gen, readable without the mutex (the spin before sleeping) */
    atomic_bool     aborted_pub; /* aborted, likewise */
    int32_t         arrived; /* ranks at the current barrier */
    bool           *here;    /* [size] rank r is at the current barrier */
    arrival        *arr;     /* [size] the current collective's arguments per rank */
    float          *sum;     /* [sum_cap] the current all-reduce's result, fp32 */
    int64_t         sum_cap;
    bool            aborted;
    char            reason[LLMRT_ERROR_MSG_MAX - 96];
} local_group;

typedef struct local_rank {
    local_group *g;
    int64_t      n_broadcast; /* broadcasts called (numbers them in messages) */
} local_rank;

/* "all_reduce #17 (rank 0 of 2)" */
static void what_str(char *out, size_t cap, const llmrt_comm *c, int op, int64_t seq) {
    snprintf(out, cap, "%s #%lld (rank %d of %d)", op_name(op), (long long)seq, c->rank, c->size);
}

/* g->mu held. Marks the group aborted (first reason wins) and wakes every waiter. */
static void abort_locked(local_group *g, const char *reason) {
    if (!g->aborted) {
        g->aborted = true;
        atomic_store_explicit(&g->aborted_pub, true, memory_order_release);
        snprintf(g->reason, sizeof g->reason, "%.*s", (int)sizeof g->reason - 1, reason);
    }
    pthread_cond_broadcast(&g->cv);
}

static llmrt_status fail_aborted(local_group *g, const char *what, llmrt_error *err) {
    llmrt_status s = llmrt_err(err, LLMRT_ERR_BACKEND, "%s: the tensor-parallel group was aborted: %s", what,
                     g->reason);
    if (err) err->secondary = true; /* another rank's failure, reported here too */
    return s;
}

/* g->mu held; the last arrival at barrier 1. Checks that every rank is in the same collective
 * (a rank that skipped one, or called another, would otherwise pair up with the wrong call) and
 * sizes the shared result. On failure the group is aborted. */
static void on_all_arrived(local_group *g) {
    const arrival *a0 = &g->arr[0];
    for (int32_t r = 1; r < g->size; r++) {
        const arrival *a = &g->arr[r];
        if (a->op != a0->op || a->seq != a0->seq || a->n != a0->n ||
            (a0->op == OP_ALL_REDUCE && a->dtype != a0->dtype) ||
            (a0->op == OP_BROADCAST && a->root != a0->root)) {
            char why[LLMRT_ERROR_MSG_MAX];
            snprintf(why, sizeof why,
                     "ranks called different collectives: rank 0 %s #%lld (n %lld, %s, root %d), "
                     "rank %d %s #%lld (n %lld, %s, root %d)",
                     op_name(a0->op), (long long)a0->seq, (long long)a0->n,
                     llmrt_dtype_name(a0->dtype), a0->root, r, op_name(a->op), (long long)a->seq,
                     (long long)a->n, llmrt_dtype_name(a->dtype), a->root);
            abort_locked(g, why);
            return;
        }
    }
    if (a0->op == OP_ALL_REDUCE && a0->n > g->sum_cap) {
        float *p = realloc(g->sum, (size_t)a0->n * sizeof(float));
        if (!p) {
            abort_locked(g, "out of memory for the all-reduce result");
            return;
        }
        g->sum     = p;
        g->sum_cap = a0->n;
    }
}

/* g->mu held. Waits until every rank reached this barrier (timeout_s <= 0: forever). `first`
 * marks barrier 1 of a collective, whose last arrival runs on_all_arrived. */
static llmrt_status barrier(local_group *g, const llmrt_comm *c, const char *what, bool first,
                            double timeout_s, llmrt_error *err) {
    if (g->aborted) return fail_aborted(g, what, err);
    uint64_t gen = g->gen;
    g->here[c->rank] = true;
    if (++g->arrived == g->size) {
        if (first) on_all_arrived(g);
        g->arrived = 0;
        memset(g->here, 0, (size_t)g->size * sizeof(bool));
        g->gen++;
        atomic_store_explicit(&g->gen_pub, g->gen, memory_order_release);
        pthread_cond_broadcast(&g->cv);
        return g->aborted ? fail_aborted(g, what, err) : LLMRT_OK;
    }
    /* Spin first (llmrt_comm_spin_ns): in a decode step the others arrive within microseconds
     * (2 collectives per layer), and a condition-variable sleep + wake-up per barrier cost ~40%
     * of the step. */
    int64_t spin_ns = llmrt_comm_spin_ns();
    pthread_mutex_unlock(&g->mu);
    for (int64_t t0 = llmrt_comm_now_ns();
         atomic_load_explicit(&g->gen_pub, memory_order_acquire) == gen &&
         !atomic_load_explicit(&g->aborted_pub, memory_order_acquire) &&
         llmrt_comm_now_ns() - t0 < spin_ns;)
        sched_yield();
    pthread_mutex_lock(&g->mu);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    double whole = (double)(int64_t)timeout_s;
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (g->gen == gen && !g->aborted) {
        int rc = timeout_s > 0 ? pthread_cond_timedwait(&g->cv, &g->mu, &deadline)
                               : pthread_cond_wait(&g->cv, &g->mu);
        if (rc == ETIMEDOUT && g->gen == gen && !g->aborted) {
            char missing[256] = "";
            size_t len = 0;
            for (int32_t r = 0; r < g->size && len < sizeof missing - 16; r++)
                if (!g->here[r])
                    len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%d",
                                            len ? "," : "", r);
            char why[LLMRT_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s: ranks %s did not arrive within %g s", what, missing,
                     timeout_s);
            abort_locked(g, why);
            return llmrt_err(err, LLMRT_ERR_BACKEND, "%s", why);
        }
    }
    /* the barrier completed (even if the group was aborted right after: the caller checks) */
    if (g->gen != gen) return g->aborted && first ? fail_aborted(g, what, err) : LLMRT_OK;
    return fail_aborted(g, what, err);
}

static llmrt_status local_all_reduce_sum(llmrt_comm *c, void *buf, int64_t n, llmrt_dtype dtype,
                                         llmrt_error *err) {
    LLMRT_TRY(llmrt_comm_check_all_reduce(c, buf, n, dtype, err));
    local_rank  *lr = c->ctx;
    local_group *g  = lr->g;
    int64_t      t0 = llmrt_comm_now_ns();
    int64_t      seq = ++c->stats.n_all_reduce;
    char         what[96];
    what_str(what, sizeof what, c, OP_ALL_REDUCE, seq);

    pthread_mutex_lock(&g->mu);
    g->arr[c->rank] = (arrival){OP_ALL_REDUCE, seq, buf, n, dtype, 0};
    llmrt_status st = barrier(g, c, what, true, c->timeout_s, err);
    pthread_mutex_unlock(&g->mu);
    if (st != LLMRT_OK) goto done;

    /* this rank's slice of the result; the buffers and g->sum stay put until barrier 2 */
    int64_t lo = n * c->rank / g->size, hi = n * (c->rank + 1) / g->size;
    for (int64_t i = lo; i < hi; i++) {
        float acc = llmrt_comm_load(g->arr[0].buf, dtype, i);
        for (int32_t r = 1; r < g->size; r++) acc += llmrt_comm_load(g->arr[r].buf, dtype, i);
        g->sum[i] = acc;
    }

    pthread_mutex_lock(&g->mu);
    st = barrier(g, c, what, false, c->timeout_s, err);
    pthread_mutex_unlock(&g->mu);
    if (st != LLMRT_OK) goto done;

    if (dtype == LLMRT_DTYPE_F32) {
        memcpy(buf, g->sum, (size_t)n * sizeof(float));
    } else {
        for (int64_t i = 0; i < n; i++) llmrt_comm_store(buf, dtype, i, g->sum[i]);
    }
    c->stats.bytes_all_reduce += n * llmrt_dtype_block_bytes(dtype);
done:
    c->stats.ns_all_reduce += llmrt_comm_now_ns() - t0;
    return st;
}

static llmrt_status local_broadcast_host(llmrt_comm *c, void *buf, uint64_t bytes, int32_t root,
                                         llmrt_error *err) {
    local_rank  *lr  = c->ctx;
    local_group *g   = lr->g;
    int64_t      seq = ++lr->n_broadcast;
    char         what[96];
    what_str(what, sizeof what, c, OP_BROADCAST, seq);
    if (root < 0 || root >= c->size || (bytes > 0 && !buf) || bytes > (uint64_t)INT64_MAX)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "%s: root %d, %s buffer of %llu bytes", what,
                         root, buf ? "a" : "NULL", (unsigned long long)bytes);

    pthread_mutex_lock(&g->mu);
    g->arr[c->rank] = (arrival){OP_BROADCAST, seq, buf, (int64_t)bytes, LLMRT_DTYPE_INVALID, root};
    llmrt_status st = barrier(g, c, what, true, 0, err);
    pthread_mutex_unlock(&g->mu);
    if (st != LLMRT_OK) return st;

    if (c->rank != root && bytes) memcpy(buf, g->arr[root].buf, (size_t)bytes);

    pthread_mutex_lock(&g->mu);
    st = barrier(g, c, what, false, 0, err);
    pthread_mutex_unlock(&g->mu);
    return st;
}

static llmrt_status local_wait(llmrt_comm *c, llmrt_error *err) {
    local_group *g = ((local_rank *)c->ctx)->g;
    pthread_mutex_lock(&g->mu);
    llmrt_status st = LLMRT_OK;
    if (g->aborted) {
        char what[64];
        snprintf(what, sizeof what, "wait (rank %d of %d)", c->rank, c->size);
        st = fail_aborted(g, what, err);
    }
    pthread_mutex_unlock(&g->mu);
    return st;
}

static void local_abort(llmrt_comm *c, const char *why) {
    local_group *g = ((local_rank *)c->ctx)->g;
    char         reason[LLMRT_ERROR_MSG_MAX];
    snprintf(reason, sizeof reason, "rank %d of %d called abort: %s", c->rank, c->size,
             why ? why : "(no reason given)");
    pthread_mutex_lock(&g->mu);
    abort_locked(g, reason);
    pthread_mutex_unlock(&g->mu);
}

static void group_free(local_group *g) {
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->here);
    free(g->arr);
    free(g->sum);
    free(g);
}

static void local_destroy(llmrt_comm *c) {
    if (!c) return;
    local_rank  *lr = c->ctx;
    local_group *g  = lr->g;
    pthread_mutex_lock(&g->mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) group_free(g);
    free(lr);
    free(c);
}

static const llmrt_comm_ops local_ops = {
    .all_reduce_sum = local_all_reduce_sum,
    .broadcast_host = local_broadcast_host,
    .wait           = local_wait,
    .abort          = local_abort,
    .destroy        = local_destroy,
};

llmrt_status llmrt_comm_local_create_all(int32_t size, double timeout_s, llmrt_comm **comms,
                                         llmrt_error *err) {
    if (size < 1 || !comms)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "local communicator: group size %d", size);
    for (int32_t r = 0; r < size; r++) comms[r] = NULL;
    if (!(timeout_s > 0)) timeout_s = llmrt_comm_default_timeout();

    local_group *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->size = size;
    g->here = calloc((size_t)size, sizeof *g->here);
    g->arr  = calloc((size_t)size, sizeof *g->arr);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&g->mu, NULL);
    atomic_init(&g->gen_pub, 0);
    atomic_init(&g->aborted_pub, false);
    if (!g->here || !g->arr) goto oom;

    for (int32_t r = 0; r < size; r++) {
        llmrt_comm *c  = calloc(1, sizeof *c);
        local_rank *lr = calloc(1, sizeof *lr);
        if (!c || !lr) {
            free(c);
            free(lr);
            goto oom;
        }
        lr->g        = g;
        c->ops       = &local_ops;
        c->kind      = "local";
        c->rank      = r;
        c->size      = size;
        c->timeout_s = timeout_s;
        c->ctx       = lr;
        comms[r]     = c;
        g->refs++;
    }
    return LLMRT_OK;

oom:
    if (g && g->refs) {
        for (int32_t r = 0; r < size; r++) local_destroy(comms[r]); /* the last one frees g */
    } else if (g) {
        group_free(g);
    }
    for (int32_t r = 0; r < size; r++) comms[r] = NULL;
    return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "local communicator of %d ranks: out of memory",
                     size);
}
