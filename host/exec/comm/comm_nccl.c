/* The NCCL communicator (CUDA builds): ncclAllReduce on each rank's stream, for a group of
 * ranks in this process (ncclCommInitAll: one host thread per rank) or one rank per process
 * (ncclCommInitRank, the unique id broadcast over MPI). CUDA and NCCL are reached through the
 * plain-C launchers of cuda/llmrt_nccl.h.
 *
 * all_reduce_sum only enqueues (the forward goes on on the same stream); wait() polls the rank's
 * completion event and ncclCommGetAsyncError with short sleeps until the collectives completed,
 * an error, or the timeout. A collective whose peers never come would otherwise hang the GPU
 * stream, and with it any host thread that synchronises on it, forever. So a watchdog thread
 * per group makes the same checks every few tens of ms against the time each rank's oldest
 * unfinished collective was enqueued; whoever sees the failure first aborts the group: every
 * rank's ncclCommAbort (which makes the kernels in flight return and releases threads blocked
 * in cudaStreamSynchronize), the control-plane comm, and the reason that every later call
 * reports.
 *
 * broadcast_host is the control plane: host memory, delegated to an in-process (local) or MPI
 * communicator of the same group. */
#include "comm.h"

#if LLMRT_HAVE_CUDA

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_util.h"
#include "llmrt_nccl.h"

typedef struct nccl_slot {   /* one rank of the group that lives in this process */
    llmrt_nccl_rank *r;
    llmrt_comm      *host;     /* its control-plane communicator */
    int32_t          rank;     /* in the group */
    int64_t          enqueued; /* collectives enqueued */
    int64_t          done;     /* ... of which known complete */
    int64_t          since_ns; /* enqueue time of the oldest not known complete (or of the
                                * last progress seen) */
} nccl_slot;

typedef struct nccl_group {
    pthread_mutex_t mu;       /* everything below; held around every NCCL call on a comm but
                               * never around an event query (under cusim that may wait) */
    pthread_cond_t  cv;       /* wakes the watchdog to stop; CLOCK_MONOTONIC */
    int32_t         size;     /* ranks in the group */
    int32_t         n_slots;  /* ranks in this process: size (create_all) or 1 (mpi) */
    nccl_slot      *slots;    /* [n_slots] */
    int32_t         refs;     /* llmrt_comm handles not destroyed yet */
    double          timeout_s;
    bool            aborted;
    char            reason[LLMRT_ERROR_MSG_MAX - 96];
    bool            stop, have_watchdog;
    pthread_t       watchdog;
} nccl_group;

typedef struct nccl_ctx {
    nccl_group *g;
    int32_t     slot;
} nccl_ctx;

/* g->mu held. First reason wins; every comm of this process's part of the group is aborted. */
static void abort_locked(nccl_group *g, const char *reason) {
    if (g->aborted) return;
    g->aborted = true;
    snprintf(g->reason, sizeof g->reason, "%.*s", (int)sizeof g->reason - 1, reason);
    for (int32_t i = 0; i < g->n_slots; i++) llmrt_nccl_abort(g->slots[i].r);
    for (int32_t i = 0; i < g->n_slots; i++)
        if (g->slots[i].host) g->slots[i].host->ops->abort(g->slots[i].host, reason);
    pthread_cond_broadcast(&g->cv);
}

static llmrt_status fail_aborted(nccl_group *g, const char *what, llmrt_error *err) {
    llmrt_status s = llmrt_err(err, LLMRT_ERR_BACKEND, "%s: the tensor-parallel group was aborted: %s", what,
                     g->reason);
    if (err) err->secondary = true; /* another rank's failure, reported here too */
    return s;
}

static void what_str(char *out, size_t cap, const nccl_group *g, const nccl_slot *s, int64_t seq) {
    snprintf(out, cap, "all_reduce #%lld (rank %d of %d, nccl)", (long long)seq, s->rank, g->size);
}

/* g->mu held. An asynchronous NCCL error of slot s aborts the group; returns true if so. */
static bool check_async_locked(nccl_group *g, nccl_slot *s, const char *who) {
    char msg[LLMRT_ERROR_MSG_MAX - 128];
    if (g->aborted || llmrt_nccl_async_error(s->r, msg, sizeof msg) == 0) return g->aborted;
    char why[LLMRT_ERROR_MSG_MAX];
    snprintf(why, sizeof why, "%s (rank %d of %d, nccl): %s", who, s->rank, g->size, msg);
    abort_locked(g, why);
    return true;
}

/* g->mu held. The oldest unfinished collective of s is older than the timeout. */
static void abort_timeout_locked(nccl_group *g, nccl_slot *s, const char *who) {
    char what[96], why[LLMRT_ERROR_MSG_MAX];
    what_str(what, sizeof what, g, s, s->done + 1);
    snprintf(why, sizeof why,
             "%s: not complete within %g s (%s; a rank of the group did not call it, or it hung); "
             "ncclCommAbort on the group",
             what, g->timeout_s, who);
    abort_locked(g, why);
}

static llmrt_cuda_dtype cuda_dtype(llmrt_dtype t) {
    return t == LLMRT_DTYPE_F32 ? LLMRT_CUDA_F32 : t == LLMRT_DTYPE_F16 ? LLMRT_CUDA_F16
                                                                        : LLMRT_CUDA_BF16;
}

/* ------------------------------------------------------------------------------------------ */
/* the watchdog                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void *watchdog_main(void *arg) {
    nccl_group *g = arg;
    /* a tenth of the timeout, within [10, 200] ms: prompt, yet negligible CPU */
    double period = g->timeout_s / 10;
    period        = period < 0.01 ? 0.01 : period > 0.2 ? 0.2 : period;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (int64_t)(period * 1e9);
        ts.tv_sec  = (time_t)(t / 1000000000);
        ts.tv_nsec = (long)(t % 1000000000);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (g->stop || g->aborted) continue;
        for (int32_t i = 0; i < g->n_slots && !g->aborted; i++) {
            nccl_slot *s = &g->slots[i];
            if (check_async_locked(g, s, "watchdog")) break;
            if (s->enqueued == s->done ||
                llmrt_comm_now_ns() - s->since_ns < (int64_t)(g->timeout_s * 1e9))
                continue;
            /* overdue unless it finished unseen (nobody called wait): ask the event, unlocked */
            int64_t target = s->enqueued;
            char    msg[LLMRT_ERROR_MSG_MAX - 128];
            pthread_mutex_unlock(&g->mu);
            int q = llmrt_nccl_query(s->r, msg, sizeof msg);
            pthread_mutex_lock(&g->mu);
            if (g->aborted || g->stop) break;
            if (q == 1) {
                if (target > s->done) s->done = target;
                s->since_ns = llmrt_comm_now_ns();
            } else if (q == 0) {
                abort_timeout_locked(g, s, "seen by the watchdog");
            } else {
                char why[LLMRT_ERROR_MSG_MAX];
                snprintf(why, sizeof why, "watchdog (rank %d of %d, nccl): %s", s->rank, g->size,
                         msg);
                abort_locked(g, why);
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* the communicator                                                                           */
/* ------------------------------------------------------------------------------------------ */

static llmrt_status nccl_all_reduce_sum(llmrt_comm *c, void *buf, int64_t n, llmrt_dtype dtype,
                                        llmrt_error *err) {
    LLMRT_TRY(llmrt_comm_check_all_reduce(c, buf, n, dtype, err));
    nccl_ctx   *x   = c->ctx;
    nccl_group *g   = x->g;
    nccl_slot  *s   = &g->slots[x->slot];
    int64_t     t0  = llmrt_comm_now_ns();
    int64_t     seq = ++c->stats.n_all_reduce;
    char        what[96];
    what_str(what, sizeof what, g, s, seq);
    llmrt_status st = LLMRT_OK;

    pthread_mutex_lock(&g->mu);
    if (g->aborted) {
        st = fail_aborted(g, what, err);
    } else {
        char msg[LLMRT_ERROR_MSG_MAX - 128];
        if (llmrt_nccl_all_reduce_sum(s->r, buf, n, cuda_dtype(dtype), msg, sizeof msg) != 0) {
            char why[LLMRT_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s: %s", what, msg);
            abort_locked(g, why);
            st = llmrt_err(err, LLMRT_ERR_BACKEND, "%s", why);
        } else {
            if (s->enqueued == s->done) s->since_ns = t0;
            s->enqueued++;
            c->stats.bytes_all_reduce += n * llmrt_dtype_block_bytes(dtype);
        }
    }
    pthread_mutex_unlock(&g->mu);
    c->stats.ns_all_reduce += llmrt_comm_now_ns() - t0;
    return st;
}

static llmrt_status nccl_wait(llmrt_comm *c, llmrt_error *err) {
    nccl_ctx   *x  = c->ctx;
    nccl_group *g  = x->g;
    nccl_slot  *s  = &g->slots[x->slot];
    int64_t     t0 = llmrt_comm_now_ns(), deadline = t0 + (int64_t)(c->timeout_s * 1e9);
    long        nap_ns = 20000;
    char        what[96];
    snprintf(what, sizeof what, "wait (rank %d of %d, nccl)", s->rank, g->size);
    llmrt_status st = LLMRT_OK;

    pthread_mutex_lock(&g->mu);
    int64_t target = s->enqueued;
    for (;;) {
        if (g->aborted || check_async_locked(g, s, "wait")) {
            st = fail_aborted(g, what, err);
            break;
        }
        if (s->done >= target) break;
        char msg[LLMRT_ERROR_MSG_MAX - 128];
        pthread_mutex_unlock(&g->mu);
        int q = llmrt_nccl_query(s->r, msg, sizeof msg); /* cusim: may run the stream here */
        pthread_mutex_lock(&g->mu);
        if (g->aborted) continue; /* reported above, with the reason */
        if (q == 1) {
            if (target > s->done) s->done = target;
            s->since_ns = llmrt_comm_now_ns();
            continue; /* one more look at the async error: an aborted kernel also "completes" */
        }
        if (q < 0) {
            char why[LLMRT_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s: %s", what, msg);
            abort_locked(g, why);
            continue;
        }
        if (llmrt_comm_now_ns() >= deadline) {
            abort_timeout_locked(g, s, "seen by wait");
            continue;
        }
        pthread_mutex_unlock(&g->mu);
        if (llmrt_comm_now_ns() - t0 < 50000) { /* a decode all-reduce takes ~5-50 us */
            sched_yield();
        } else {
            struct timespec ts = {0, nap_ns};
            nanosleep(&ts, NULL);
            if (nap_ns < 1000000) nap_ns *= 2;
        }
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    c->stats.ns_all_reduce += llmrt_comm_now_ns() - t0;
    return st;
}

static llmrt_status nccl_broadcast_host(llmrt_comm *c, void *buf, uint64_t bytes, int32_t root,
                                        llmrt_error *err) {
    nccl_ctx   *x = c->ctx;
    nccl_group *g = x->g;
    pthread_mutex_lock(&g->mu);
    bool aborted = g->aborted;
    pthread_mutex_unlock(&g->mu);
    if (aborted) {
        char what[96];
        snprintf(what, sizeof what, "broadcast_host (rank %d of %d, nccl)", c->rank, c->size);
        return fail_aborted(g, what, err);
    }
    llmrt_comm *h = g->slots[x->slot].host;
    return h->ops->broadcast_host(h, buf, bytes, root, err);
}

static void nccl_abort(llmrt_comm *c, const char *why) {
    nccl_group *g = ((nccl_ctx *)c->ctx)->g;
    char        reason[LLMRT_ERROR_MSG_MAX];
    snprintf(reason, sizeof reason, "rank %d of %d called abort: %s", c->rank, c->size,
             why ? why : "(no reason given)");
    pthread_mutex_lock(&g->mu);
    abort_locked(g, reason);
    pthread_mutex_unlock(&g->mu);
}

/* Stops the watchdog, then frees every rank's NCCL comm, event and control-plane comm. */
static void group_free(nccl_group *g) {
    if (g->have_watchdog) {
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->watchdog, NULL);
    }
    for (int32_t i = 0; g->slots && i < g->n_slots; i++) {
        llmrt_nccl_destroy(g->slots[i].r);
        if (g->slots[i].host) g->slots[i].host->ops->destroy(g->slots[i].host);
    }
    free(g->slots);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static void nccl_destroy(llmrt_comm *c) {
    if (!c) return;
    nccl_group *g = ((nccl_ctx *)c->ctx)->g;
    pthread_mutex_lock(&g->mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) group_free(g);
    free(c->ctx);
    free(c);
}

static const llmrt_comm_ops nccl_ops = {
    .all_reduce_sum = nccl_all_reduce_sum,
    .broadcast_host = nccl_broadcast_host,
    .wait           = nccl_wait,
    .abort          = nccl_abort,
    .destroy        = nccl_destroy,
};

static nccl_group *group_new(int32_t size, int32_t n_slots, double timeout_s) {
    nccl_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->slots = calloc((size_t)n_slots, sizeof *g->slots);
    if (!g->slots) {
        free(g);
        return NULL;
    }
    g->size      = size;
    g->n_slots   = n_slots;
    g->timeout_s = timeout_s > 0 ? timeout_s : llmrt_comm_default_timeout();
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    return g;
}

/* The llmrt_comm handles of the group's slots (out[n_slots]) and the watchdog. On failure the
 * group is freed. */
static llmrt_status group_start(nccl_group *g, llmrt_comm **out, llmrt_error *err) {
    for (int32_t i = 0; i < g->n_slots; i++) out[i] = NULL;
    for (int32_t i = 0; i < g->n_slots; i++) {
        llmrt_comm *c = calloc(1, sizeof *c);
        nccl_ctx   *x = calloc(1, sizeof *x);
        if (!c || !x) {
            free(c);
            free(x);
            goto oom;
        }
        x->g         = g;
        x->slot      = i;
        c->ops       = &nccl_ops;
        c->kind      = "nccl";
        c->rank      = g->slots[i].rank;
        c->size      = g->size;
        c->timeout_s = g->timeout_s;
        c->ctx       = x;
        out[i]       = c;
        g->refs++;
    }
    if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0) goto oom;
    g->have_watchdog = true;
    return LLMRT_OK;
oom:
    for (int32_t i = 0; i < g->n_slots; i++) {
        if (out[i]) {
            free(out[i]->ctx);
            free(out[i]);
            out[i] = NULL;
        }
    }
    group_free(g);
    return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "NCCL communicator: out of memory (or threads)");
}

llmrt_status llmrt_comm_nccl_create_all(int32_t size, const int *devices, void *const *streams,
                                        double timeout_s, llmrt_comm **comms, llmrt_error *err) {
    if (size < 1 || !devices || !streams || !comms)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "NCCL communicator: group size %d%s", size,
                         devices && streams && comms ? "" : ", or a NULL array");
    for (int32_t r = 0; r < size; r++) comms[r] = NULL;
    nccl_group *g = group_new(size, size, timeout_s);
    if (!g) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "NCCL communicator: out of memory");

    llmrt_comm **host = calloc((size_t)size, sizeof *host);
    llmrt_nccl_rank **ranks = calloc((size_t)size, sizeof *ranks);
    llmrt_status st = host && ranks ? LLMRT_OK
                                    : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                                                "NCCL communicator: out of memory");
    if (st == LLMRT_OK) st = llmrt_comm_local_create_all(size, g->timeout_s, host, err);
    char msg[LLMRT_ERROR_MSG_MAX - 64];
    if (st == LLMRT_OK && llmrt_nccl_init_all(size, devices, streams, ranks, msg, sizeof msg) != 0)
        st = llmrt_err(err, LLMRT_ERR_BACKEND, "NCCL communicator of %d ranks: %s", size, msg);
    for (int32_t r = 0; host && ranks && r < size; r++) {
        g->slots[r].r    = ranks[r];
        g->slots[r].host = host[r];
        g->slots[r].rank = r;
    }
    free(host);
    free(ranks);
    if (st != LLMRT_OK) {
        group_free(g);
        return st;
    }
    return group_start(g, comms, err);
}

llmrt_status llmrt_comm_nccl_create_mpi(int32_t group, int32_t size, int device, void *stream,
                                        double timeout_s, llmrt_comm **out, llmrt_error *err) {
    *out = NULL;
    llmrt_comm *host = NULL;
    LLMRT_TRY(llmrt_comm_mpi_create(group, size, timeout_s, &host, err));
    nccl_group *g = group_new(size, 1, timeout_s);
    if (!g) {
        host->ops->destroy(host);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "NCCL communicator: out of memory");
    }
    g->slots[0].host = host;
    g->slots[0].rank = host->rank;

    /* rank 0 makes the id and broadcasts it with a flag, so a failure there fails everyone */
    unsigned char id[LLMRT_NCCL_ID_BYTES + 1] = {0};
    char          msg[LLMRT_ERROR_MSG_MAX - 64] = "";
    if (host->rank == 0) id[LLMRT_NCCL_ID_BYTES] = llmrt_nccl_get_unique_id(id, msg, sizeof msg) == 0;
    llmrt_status st = host->ops->broadcast_host(host, id, sizeof id, 0, err);
    if (st == LLMRT_OK && !id[LLMRT_NCCL_ID_BYTES])
        st = llmrt_err(err, LLMRT_ERR_BACKEND, "NCCL communicator (rank %d of %d): rank 0: %s",
                       host->rank, size, host->rank == 0 ? msg : "ncclGetUniqueId failed");
    if (st == LLMRT_OK &&
        llmrt_nccl_init_rank(id, size, host->rank, device, stream, &g->slots[0].r, msg,
                             sizeof msg) != 0)
        st = llmrt_err(err, LLMRT_ERR_BACKEND, "NCCL communicator (rank %d of %d): %s",
                       host->rank, size, msg);
    if (st != LLMRT_OK) {
        group_free(g);
        return st;
    }
    return group_start(g, out, err);
}

#else /* !LLMRT_HAVE_CUDA */

llmrt_status llmrt_comm_nccl_create_all(int32_t size, const int *devices, void *const *streams,
                                        double timeout_s, llmrt_comm **comms, llmrt_error *err) {
    (void)devices, (void)streams, (void)timeout_s;
    for (int32_t r = 0; comms && r < size; r++) comms[r] = NULL;
    return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                     "NCCL communicator: llmrt was built without CUDA (-DLLMRT_CUDA=nvcc)");
}

llmrt_status llmrt_comm_nccl_create_mpi(int32_t group, int32_t size, int device, void *stream,
                                        double timeout_s, llmrt_comm **out, llmrt_error *err) {
    (void)group, (void)size, (void)device, (void)stream, (void)timeout_s;
    if (out) *out = NULL;
    return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                     "NCCL communicator: llmrt was built without CUDA (-DLLMRT_CUDA=nvcc)");
}

#endif
