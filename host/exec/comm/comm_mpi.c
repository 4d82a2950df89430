/* MPI: one rank per process under mpirun/srun (CPU backend across processes or nodes), and the
 * job bootstrap (world rank/size, barrier, abort) that the NCCL communicator also uses.
 *
 * This file is the MPI module, libllmrt_mpi.so (see comm_mpi_module.h): the only object linked
 * with libmpi. The core library opens it at run time through comm_mpi_loader.c, which provides
 * the comm.h entry points (llmrt_mpi_world, llmrt_comm_mpi_create, ...) and calls the functions
 * here through the table this module's one exported symbol returns.
 *
 * all_reduce_sum copies the buffer into an fp32 scratch owned by the communicator and runs
 * MPI_Iallreduce (MPI_FLOAT, MPI_SUM) in place there, polled with MPI_Test until done or the
 * deadline. MPI cannot cancel a collective: on timeout the request stays pending on the scratch
 * (never the caller's buffer, which the caller may free), the communicator is marked aborted and
 * the caller is expected to report and exit non-zero, after which the launcher stops the job.
 * MPI errors are returned (MPI_ERRORS_RETURN), never fatal, and turned into messages with
 * MPI_Error_string. Sums need not be bitwise equal to the local communicator's rank order. */
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "comm_mpi_module.h"
#include "comm_util.h"

#define EXPORT __attribute__((visibility("default")))

/* ------------------------------------------------------------------------------------------ */
/* the helpers of the core this file uses: the module links nothing of libllmrt, so they are    */
/* defined here (hidden) or forwarded to the core's table                                     */
/* ------------------------------------------------------------------------------------------ */

static const llmrt_mpi_host *g_host;

llmrt_status llmrt_err(llmrt_error *err, llmrt_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

const char *llmrt_dtype_name(llmrt_dtype t) { return g_host->dtype_name(t); }
double      llmrt_comm_default_timeout(void) { return g_host->comm_default_timeout(); }
int64_t     llmrt_comm_spin_ns(void) { return g_host->comm_spin_ns(); }

/* ------------------------------------------------------------------------------------------ */
/* the job                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static pthread_mutex_t g_world_mu = PTHREAD_MUTEX_INITIALIZER;
static bool            g_world_known, g_we_initialised, g_finalised;
static int32_t         g_world_rank, g_world_size = 1;
static bool            g_local_known;
static int32_t         g_local_rank, g_local_size = 1;
/* collectives left pending by a timeout and not known complete: MPI_Finalize would wait for
 * them (forever, if a rank died), so mpi_finalize skips it while any is left */
static int             g_n_pending;

static llmrt_status mpi_fail(llmrt_error *err, int code, const char *fmt_what, const char *what) {
    char s[MPI_MAX_ERROR_STRING];
    int  len = 0;
    if (MPI_Error_string(code, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", code);
    return llmrt_err(err, LLMRT_ERR_BACKEND, fmt_what, what, s);
}

static void mpi_finalize(void);

/* Called by the loader only in a process started by an MPI launcher: initialises MPI unless the
 * application did. */
static llmrt_status mpi_world(int32_t *rank, int32_t *size, llmrt_error *err) {
    pthread_mutex_lock(&g_world_mu);
    llmrt_status st = LLMRT_OK;
    if (!g_world_known) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited) {
            int provided = 0;
            /* THREAD_MULTIPLE: a watchdog or a second TP group may call MPI beside the forward */
            int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
            if (rc != MPI_SUCCESS) {
                st = mpi_fail(err, rc, "%s: %s", "MPI_Init_thread");
                goto out;
            }
            g_we_initialised = true;
            inited           = 1;
            atexit(mpi_finalize);
            if (provided < MPI_THREAD_MULTIPLE)
                g_host->log(LLMRT_LOG_WARN, "the MPI library provides thread level %d, not "
                                            "MPI_THREAD_MULTIPLE; call the communicators from "
                                            "one thread", provided);
        }
        if (inited) {
            int r = 0, n = 1;
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
            MPI_Comm_rank(MPI_COMM_WORLD, &r);
            MPI_Comm_size(MPI_COMM_WORLD, &n);
            g_world_rank = r;
            g_world_size = n;
        }
        g_world_known = true;
    }
out:
    if (rank) *rank = g_world_rank;
    if (size) *size = g_world_size;
    pthread_mutex_unlock(&g_world_mu);
    return st;
}

static bool mpi_active(void) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    return inited && !finalized;
}

static llmrt_status mpi_barrier(llmrt_error *err) {
    LLMRT_TRY(mpi_world(NULL, NULL, err));
    if (g_world_size <= 1 || !mpi_active()) return LLMRT_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? LLMRT_OK : mpi_fail(err, rc, "%s: %s", "MPI_Barrier");
}

static void mpi_finalize(void) {
    pthread_mutex_lock(&g_world_mu);
    bool run = g_we_initialised && !g_finalised && g_n_pending == 0 && mpi_active();
    g_finalised = g_finalised || run;
    pthread_mutex_unlock(&g_world_mu);
    if (run) MPI_Finalize();
}

static void mpi_abort(int code) {
    if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
}

/* ------------------------------------------------------------------------------------------ */
/* the communicator                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct mpi_rank {
    MPI_Comm    comm;        /* the TP group's sub-communicator of MPI_COMM_WORLD */
    float      *scratch;     /* [cap] fp32 staging of every all-reduce */
    int64_t     cap;
    MPI_Request pending;     /* a request abandoned by a timeout (MPI_REQUEST_NULL if none) */
    float      *pending_buf; /* its buffer */
    int64_t     n_broadcast;
    pthread_mutex_t mu;      /* aborted/reason: abort may come from another thread */
    bool        aborted;
    char        reason[LLMRT_ERROR_MSG_MAX - 96];
} mpi_rank;

static bool rank_aborted(mpi_rank *m, char *reason, size_t cap) {
    pthread_mutex_lock(&m->mu);
    bool a = m->aborted;
    if (a && reason) snprintf(reason, cap, "%s", m->reason);
    pthread_mutex_unlock(&m->mu);
    return a;
}

static void rank_abort(mpi_rank *m, const char *reason) {
    pthread_mutex_lock(&m->mu);
    if (!m->aborted) {
        m->aborted = true;
        snprintf(m->reason, sizeof m->reason, "%.*s", (int)sizeof m->reason - 1, reason);
    }
    pthread_mutex_unlock(&m->mu);
}

static llmrt_status fail_aborted(mpi_rank *m, const char *what, llmrt_error *err) {
    char reason[LLMRT_ERROR_MSG_MAX];
    rank_aborted(m, reason, sizeof reason);
    llmrt_status s = llmrt_err(err, LLMRT_ERR_BACKEND, "%s: the tensor-parallel group was aborted: %s", what,
                     reason);
    if (err) err->secondary = true; /* another rank's failure, reported here too */
    return s;
}

/* Polls `req` until done or `timeout_s` passed: spins with sched_yield for llmrt_comm_spin_ns(),
 * then sleeps 50 µs..1 ms between tests. The spin covers the usual wait: the peers finishing
 * their share of the layer plus a few µs of transfer; sleeping at once would add its wake-up
 * latency to every one of a decode step's 2 * layers collectives. */
static int poll_request(mpi_rank *m, MPI_Request *req, double timeout_s, bool *timed_out) {
    int64_t t0 = llmrt_comm_now_ns(), deadline = t0 + (int64_t)(timeout_s * 1e9);
    long    sleep_ns = 50000;
    int64_t spin_ns  = llmrt_comm_spin_ns();
    *timed_out = false;
    for (int i = 0;; i++) {
        int done = 0;
        int rc   = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done) return rc;
        if (rank_aborted(m, NULL, 0)) return MPI_SUCCESS; /* done stays 0: the caller reports */
        int64_t now = llmrt_comm_now_ns();
        if (now >= deadline) {
            *timed_out = true;
            return MPI_SUCCESS;
        }
        if (now - t0 < spin_ns) {
            sched_yield();
        } else {
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
            if (sleep_ns < 1000000) sleep_ns *= 2;
        }
        (void)i;
    }
}

static llmrt_status mpi_all_reduce_sum(llmrt_comm *c, void *buf, int64_t n, llmrt_dtype dtype,
                                       llmrt_error *err) {
    LLMRT_TRY(llmrt_comm_check_all_reduce(c, buf, n, dtype, err));
    mpi_rank *m   = c->ctx;
    int64_t   t0  = llmrt_comm_now_ns();
    int64_t   seq = ++c->stats.n_all_reduce;
    char      what[96];
    snprintf(what, sizeof what, "all_reduce #%lld (rank %d of %d, mpi)", (long long)seq, c->rank,
             c->size);
    llmrt_status st = LLMRT_OK;
    if (rank_aborted(m, NULL, 0)) {
        st = fail_aborted(m, what, err);
        goto done;
    }
    if (n > INT_MAX) {
        st = llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: %lld elements (MPI counts are int)", what,
                       (long long)n);
        goto done;
    }
    if (n > m->cap) {
        float *p = realloc(m->scratch, (size_t)n * sizeof(float));
        if (!p) {
            st = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: fp32 scratch of %lld elements", what,
                           (long long)n);
            goto done;
        }
        m->scratch = p;
        m->cap     = n;
    }
    if (dtype == LLMRT_DTYPE_F32) {
        memcpy(m->scratch, buf, (size_t)n * sizeof(float));
    } else {
        for (int64_t i = 0; i < n; i++) m->scratch[i] = llmrt_comm_load(buf, dtype, i);
    }
    MPI_Request req = MPI_REQUEST_NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, m->scratch, (int)n, MPI_FLOAT, MPI_SUM, m->comm, &req);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(err, rc, "%s: MPI_Iallreduce: %s", what);
        goto done;
    }
    bool timed_out;
    rc = poll_request(m, &req, c->timeout_s, &timed_out);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(err, rc, "%s: MPI_Test: %s", what);
        rank_abort(m, err ? err->msg : what);
        goto done;
    }
    if (req != MPI_REQUEST_NULL) { /* timed out or aborted meanwhile: the request stays pending */
        m->pending     = req;
        m->pending_buf = m->scratch; /* owned by the pending request now: not reused */
        m->scratch     = NULL;
        m->cap     = 0;
        pthread_mutex_lock(&g_world_mu);
        g_n_pending++;
        pthread_mutex_unlock(&g_world_mu);
        if (timed_out) {
            char why[LLMRT_ERROR_MSG_MAX];
            snprintf(why, sizeof why,
                     "%s: not complete within %g s (another rank of the group did not join it, "
                     "or died); the group is unusable: report and exit, the launcher stops the job",
                     what, c->timeout_s);
            rank_abort(m, why);
            st = llmrt_err(err, LLMRT_ERR_BACKEND, "%s", why);
        } else {
            st = fail_aborted(m, what, err);
        }
        goto done;
    }
    if (dtype == LLMRT_DTYPE_F32) {
        memcpy(buf, m->scratch, (size_t)n * sizeof(float));
    } else {
        for (int64_t i = 0; i < n; i++) llmrt_comm_store(buf, dtype, i, m->scratch[i]);
    }
    c->stats.bytes_all_reduce += n * llmrt_dtype_block_bytes(dtype);
done:
    c->stats.ns_all_reduce += llmrt_comm_now_ns() - t0;
    return st;
}

static llmrt_status mpi_broadcast_host(llmrt_comm *c, void *buf, uint64_t bytes, int32_t root,
                                       llmrt_error *err) {
    mpi_rank *m   = c->ctx;
    int64_t   seq = ++m->n_broadcast;
    char      what[96];
    snprintf(what, sizeof what, "broadcast_host #%lld (rank %d of %d, mpi)", (long long)seq,
             c->rank, c->size);
    if (root < 0 || root >= c->size || (bytes > 0 && !buf))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "%s: root %d, %s buffer of %llu bytes", what,
                         root, buf ? "a" : "NULL", (unsigned long long)bytes);
    if (rank_aborted(m, NULL, 0)) return fail_aborted(m, what, err);
    /* MPI counts are int: large payloads go in chunks (every rank cuts them the same way) */
    for (uint64_t off = 0; off < bytes;) {
        int chunk = bytes - off > (uint64_t)(1 << 30) ? (1 << 30) : (int)(bytes - off);
        int rc    = MPI_Bcast((char *)buf + off, chunk, MPI_BYTE, root, m->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "%s: MPI_Bcast: %s", what);
        off += (uint64_t)chunk;
    }
    return LLMRT_OK;
}

static llmrt_status mpi_wait(llmrt_comm *c, llmrt_error *err) {
    mpi_rank *m = c->ctx;
    if (!rank_aborted(m, NULL, 0)) return LLMRT_OK;
    char what[64];
    snprintf(what, sizeof what, "wait (rank %d of %d, mpi)", c->rank, c->size);
    return fail_aborted(m, what, err);
}

static void mpi_abort_comm(llmrt_comm *c, const char *why) {
    char reason[LLMRT_ERROR_MSG_MAX];
    snprintf(reason, sizeof reason, "rank %d of %d called abort: %s", c->rank, c->size,
             why ? why : "(no reason given)");
    rank_abort(c->ctx, reason);
}

static void mpi_destroy(llmrt_comm *c) {
    if (!c) return;
    mpi_rank *m = c->ctx;
    /* a request abandoned by a timeout may have completed since (the late rank joined) */
    if (m->pending != MPI_REQUEST_NULL && mpi_active()) {
        int done = 0;
        if (MPI_Test(&m->pending, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
            free(m->pending_buf);
            m->pending_buf = NULL;
            pthread_mutex_lock(&g_world_mu);
            g_n_pending--;
            pthread_mutex_unlock(&g_world_mu);
        }
    }
    /* still pending: its buffer stays allocated (MPI would write into it); MPI itself defers
     * freeing the communicator until its operations finish */
    if (mpi_active()) MPI_Comm_free(&m->comm);
    free(m->scratch);
    pthread_mutex_destroy(&m->mu);
    free(m);
    free(c);
}

static const llmrt_comm_ops mpi_ops = {
    .all_reduce_sum = mpi_all_reduce_sum,
    .broadcast_host = mpi_broadcast_host,
    .wait           = mpi_wait,
    .abort          = mpi_abort_comm,
    .destroy        = mpi_destroy,
};

static llmrt_status mpi_comm_create(int32_t group, int32_t size, double timeout_s,
                                    llmrt_comm **out, llmrt_error *err) {
    *out = NULL;
    int32_t wr, ws;
    LLMRT_TRY(mpi_world(&wr, &ws, err));
    if (!mpi_active())
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "MPI communicator: MPI is not initialised (or already finalised) in "
                         "this process");
    if (size < 1 || group < 0 || (int64_t)(group + 1) * size > ws || wr / size != group)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "MPI communicator: world rank %d of %d is not in group %d of size %d "
                         "(world ranks [%lld, %lld))",
                         wr, ws, group, size, (long long)group * size, (long long)(group + 1) * size);
    if (!(timeout_s > 0)) timeout_s = llmrt_comm_default_timeout();

    llmrt_comm *c = calloc(1, sizeof *c);
    mpi_rank   *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c);
        free(m);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "MPI communicator: out of memory");
    }
    /* collective over MPI_COMM_WORLD: every process of the job creates its group's comm here */
    int rc = MPI_Comm_split(MPI_COMM_WORLD, group, wr, &m->comm);
    if (rc != MPI_SUCCESS) {
        free(c);
        free(m);
        return mpi_fail(err, rc, "%s: %s", "MPI communicator: MPI_Comm_split");
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    int gr = 0, gs = 0;
    MPI_Comm_rank(m->comm, &gr);
    MPI_Comm_size(m->comm, &gs);
    pthread_mutex_init(&m->mu, NULL);
    m->pending   = MPI_REQUEST_NULL;
    c->ops       = &mpi_ops;
    c->kind      = "mpi";
    c->rank      = gr;
    c->size      = gs;
    c->timeout_s = timeout_s;
    c->ctx       = m;
    *out         = c;
    return LLMRT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* the node-local rank, and the module's entry point                                          */
/* ------------------------------------------------------------------------------------------ */

/* The rank among the job's processes sharing this node: the standard way, MPI_COMM_TYPE_SHARED
 * (no launcher-specific environment variables). Collective over MPI_COMM_WORLD the first time. */
static llmrt_status mpi_local_rank(int32_t *local_rank, int32_t *local_size, llmrt_error *err) {
    LLMRT_TRY(mpi_world(NULL, NULL, err));
    pthread_mutex_lock(&g_world_mu);
    llmrt_status st = LLMRT_OK;
    if (!g_local_known && mpi_active()) {
        MPI_Comm node = MPI_COMM_NULL;
        int      rc   = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_world_rank,
                                            MPI_INFO_NULL, &node);
        if (rc != MPI_SUCCESS) {
            st = mpi_fail(err, rc, "%s: %s", "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)");
            goto out;
        }
        int r = 0, n = 1;
        MPI_Comm_rank(node, &r);
        MPI_Comm_size(node, &n);
        MPI_Comm_free(&node);
        g_local_rank = r;
        g_local_size = n;
    }
    g_local_known = true;
out:
    if (st == LLMRT_OK) {
        if (local_rank) *local_rank = g_local_rank;
        if (local_size) *local_size = g_local_size;
    }
    pthread_mutex_unlock(&g_world_mu);
    return st;
}

static const llmrt_mpi_module g_module = {
    .struct_size = sizeof(llmrt_mpi_module),
    .abi         = LLMRT_MPI_MODULE_ABI,
    .world       = mpi_world,
    .barrier     = mpi_barrier,
    .finalize    = mpi_finalize,
    .abort       = mpi_abort,
    .comm_create = mpi_comm_create,
    .local_rank  = mpi_local_rank,
};

EXPORT const llmrt_mpi_module *llmrt_mpi_module_v1(const llmrt_mpi_host *host);

EXPORT const llmrt_mpi_module *llmrt_mpi_module_v1(const llmrt_mpi_host *host) {
    if (!host || host->struct_size < sizeof(llmrt_mpi_host) || host->abi != LLMRT_MPI_MODULE_ABI ||
        host->sizeof_comm != sizeof(llmrt_comm) || host->sizeof_comm_ops != sizeof(llmrt_comm_ops) ||
        host->sizeof_error != sizeof(llmrt_error))
        return NULL;
    g_host = host;
    return &g_module;
}
