/* The in-process communicator (host/backend/comm/comm_local.c): ranks as threads.
 *  - sums of F32/F16/BF16 buffers of 2, 3 and 4 ranks equal an fp64 reference, bitwise the same
 *    on every rank, over many back-to-back collectives of varying sizes (0, 1, odd); stats;
 *  - broadcast_host from every root;
 *  - a rank that skips a collective: the others fail within the timeout, naming it; its own
 *    next call fails at once;
 *  - abort from one rank releases the others (in all_reduce and in broadcast_host) promptly and
 *    every later call fails at once with the reason;
 *  - ranks in different collectives (different sizes) fail instead of pairing up;
 *  - llmrt_comm_default_timeout / llmrt_comm_timeout and the spin setting (params, never the
 *    environment), and the MPI entry points outside mpirun.
 * Checks run on the main thread (CHECK is not thread-safe): the rank threads record results. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "exec/comm/comm.h"
#include "core/half.h"
#include "test_util.h"

#define MAX_RANKS 4
#define MAX_N     1500
#define N_ROUNDS  24

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Inputs with mixed signs and magnitudes, so the summation order matters in fp32. */
static float input(int rank, int round, int64_t i) {
    uint32_t h = (uint32_t)(rank * 7919 + round * 104729) ^ (uint32_t)(i * 2654435761u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    float mag = (float)(1u << (h % 9)) * 0.125f; /* 0.125 .. 32 */
    return ((h >> 9) & 1 ? -1.0f : 1.0f) * mag * (1.0f + (float)((h >> 10) & 1023) / 1024.0f);
}

static float as_dtype(float v, llmrt_dtype t) { /* the value the rank actually holds */
    if (t == LLMRT_DTYPE_F16) return llmrt_f16_to_f32(llmrt_f32_to_f16(v));
    if (t == LLMRT_DTYPE_BF16) return llmrt_bf16_to_f32(llmrt_f32_to_bf16(v));
    return v;
}

static llmrt_dtype round_dtype(int round) {
    static const llmrt_dtype t[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    return t[round % 3];
}

static int64_t round_n(int round) {
    static const int64_t n[] = {1000, 1, 0, 7, MAX_N, 333, 64, 999};
    return n[round % 8];
}

/* ------------------------------------------------------------------------------------------ */
/* correctness                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct rank_job {
    llmrt_comm  *comm;
    int          size;
    llmrt_status st;
    char         msg[LLMRT_ERROR_MSG_MAX];
    float        out[N_ROUNDS][MAX_N]; /* results as fp32 */
    uint16_t     raw16[N_ROUNDS][MAX_N];
    unsigned char bcast[MAX_RANKS][40];
    double       elapsed;
    int          mode; /* scenario-specific */
} rank_job;

static void *sum_rank(void *arg) {
    rank_job   *j = arg;
    llmrt_error err = {0};
    static _Thread_local float    f32[MAX_N];
    static _Thread_local uint16_t h16[MAX_N];
    for (int round = 0; round < N_ROUNDS && j->st == LLMRT_OK; round++) {
        llmrt_dtype t = round_dtype(round);
        int64_t     n = round_n(round);
        for (int64_t i = 0; i < n; i++) {
            float v = input(j->comm->rank, round, i);
            if (t == LLMRT_DTYPE_F32) f32[i] = v;
            else h16[i] = t == LLMRT_DTYPE_F16 ? llmrt_f32_to_f16(v) : llmrt_f32_to_bf16(v);
        }
        void *buf = t == LLMRT_DTYPE_F32 ? (void *)f32 : (void *)h16;
        j->st     = j->comm->ops->all_reduce_sum(j->comm, buf, n, t, &err);
        for (int64_t i = 0; i < n; i++) {
            j->out[round][i]   = t == LLMRT_DTYPE_F32 ? f32[i]
                                 : t == LLMRT_DTYPE_F16 ? llmrt_f16_to_f32(h16[i])
                                                        : llmrt_bf16_to_f32(h16[i]);
            j->raw16[round][i] = t == LLMRT_DTYPE_F32 ? 0 : h16[i];
        }
    }
    /* every root in turn broadcasts 40 bytes that name it */
    for (int root = 0; root < j->size && j->st == LLMRT_OK; root++) {
        unsigned char *b = j->bcast[root];
        if (j->comm->rank == root) snprintf((char *)b, 40, "broadcast from root %d", root);
        else memset(b, 0xAB, 40);
        j->st = j->comm->ops->broadcast_host(j->comm, b, 40, root, &err);
    }
    if (j->st == LLMRT_OK) j->st = j->comm->ops->wait(j->comm, &err);
    if (j->st != LLMRT_OK) snprintf(j->msg, sizeof j->msg, "%s", err.msg);
    return NULL;
}

static rank_job *run_ranks(llmrt_comm **comms, int size, void *(*fn)(void *), int *modes) {
    static rank_job jobs[MAX_RANKS];
    pthread_t       th[MAX_RANKS];
    memset(jobs, 0, sizeof jobs);
    for (int r = 0; r < size; r++) {
        jobs[r].comm = comms[r];
        jobs[r].size = size;
        jobs[r].mode = modes ? modes[r] : 0;
        pthread_create(&th[r], NULL, fn, &jobs[r]);
    }
    for (int r = 0; r < size; r++) pthread_join(th[r], NULL);
    return jobs;
}

static void test_sums(int size) {
    llmrt_comm *comms[MAX_RANKS];
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_comm_local_create_all(size, 30, comms, &err), err, LLMRT_OK, "");
    CHECK(comms[size - 1]->rank == size - 1 && comms[0]->size == size);
    CHECK(strcmp(comms[0]->kind, "local") == 0 && comms[0]->timeout_s == 30);
    rank_job *jobs = run_ranks(comms, size, sum_rank, NULL);
    for (int r = 0; r < size; r++) CHECK_MSG(jobs[r].st == LLMRT_OK, "rank %d: %s", r, jobs[r].msg);

    int64_t bytes = 0;
    for (int round = 0; round < N_ROUNDS; round++) {
        llmrt_dtype t = round_dtype(round);
        int64_t     n = round_n(round);
        bytes += n * (t == LLMRT_DTYPE_F32 ? 4 : 2);
        int bad = 0, differ = 0;
        for (int64_t i = 0; i < n; i++) {
            double ref = 0, mag = 0;
            for (int r = 0; r < size; r++) {
                double v = as_dtype(input(r, round, i), t);
                ref += v;
                mag += fabs(v);
            }
            /* fp32 accumulation (size-1 roundings of <= 2^-24 relative to the running sum),
             * then the rounding to the buffer's dtype of the result */
            double tol = mag * size * 6e-8 + fabs(ref) * (t == LLMRT_DTYPE_F32  ? 0
                                                          : t == LLMRT_DTYPE_F16 ? 0x1p-11
                                                                                 : 0x1p-8);
            if (fabs(jobs[0].out[round][i] - ref) > tol + 1e-30) {
                if (bad++ < 3)
                    fprintf(stderr, "size %d round %d (%s) [%lld]: %.9g vs fp64 %.9g (tol %g)\n",
                            size, round, llmrt_dtype_name(t), (long long)i,
                            jobs[0].out[round][i], ref, tol);
            }
            for (int r = 1; r < size; r++)
                if (memcmp(&jobs[r].out[round][i], &jobs[0].out[round][i], 4) != 0 ||
                    jobs[r].raw16[round][i] != jobs[0].raw16[round][i])
                    differ++;
        }
        CHECK_MSG(bad == 0, "size %d round %d: %d elements off the fp64 reference", size, round, bad);
        CHECK_MSG(differ == 0, "size %d round %d: %d elements differ between ranks", size, round,
                  differ);
    }
    for (int r = 0; r < size; r++) {
        for (int root = 0; root < size; root++) {
            char want[40];
            snprintf(want, sizeof want, "broadcast from root %d", root);
            CHECK_MSG(strcmp((char *)jobs[r].bcast[root], want) == 0, "rank %d root %d: '%.40s'",
                      r, root, (char *)jobs[r].bcast[root]);
        }
        CHECK(comms[r]->stats.n_all_reduce == N_ROUNDS);
        CHECK_MSG(comms[r]->stats.bytes_all_reduce == bytes, "rank %d: %lld bytes, want %lld", r,
                  (long long)comms[r]->stats.bytes_all_reduce, (long long)bytes);
        CHECK(comms[r]->stats.ns_all_reduce > 0);
    }
    for (int r = 0; r < size; r++) comms[r]->ops->destroy(comms[r]);
}

/* ------------------------------------------------------------------------------------------ */
/* failures                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  g_cv = PTHREAD_COND_INITIALIZER;
static int             g_failed; /* ranks that saw their collective fail */

static void note_failed(void) {
    pthread_mutex_lock(&g_mu);
    g_failed++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void wait_failed(int n) {
    pthread_mutex_lock(&g_mu);
    while (g_failed < n) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

/* mode 0: all_reduce #1, #2; mode 1: all_reduce #1, skips #2, then (after the others failed)
 * calls all_reduce again, which must fail at once. */
static void *skip_rank(void *arg) {
    rank_job   *j = arg;
    llmrt_error err = {0};
    float       buf[16] = {1};
    j->st = j->comm->ops->all_reduce_sum(j->comm, buf, 16, LLMRT_DTYPE_F32, &err);
    if (j->st != LLMRT_OK) goto out;
    if (j->mode == 1) {
        wait_failed(j->size - 1);
        double t0 = now_s();
        j->st      = j->comm->ops->all_reduce_sum(j->comm, buf, 16, LLMRT_DTYPE_F32, &err);
        j->elapsed = now_s() - t0;
        goto out;
    }
    double t0  = now_s();
    j->st      = j->comm->ops->all_reduce_sum(j->comm, buf, 16, LLMRT_DTYPE_F32, &err);
    j->elapsed = now_s() - t0;
    note_failed();
out:
    if (j->st != LLMRT_OK) snprintf(j->msg, sizeof j->msg, "%s", err.msg);
    return NULL;
}

static void test_skipped_collective(void) {
    llmrt_comm *comms[3];
    llmrt_error err = {0};
    g_failed        = 0;
    CHECK_ERROR(llmrt_comm_local_create_all(3, 1.0, comms, &err), err, LLMRT_OK, "");
    int       modes[3] = {0, 1, 0};
    rank_job *jobs     = run_ranks(comms, 3, skip_rank, modes);
    for (int r = 0; r < 3; r += 2) {
        CHECK_MSG(jobs[r].st == LLMRT_ERR_BACKEND, "rank %d: %s", r, llmrt_status_str(jobs[r].st));
        CHECK_MSG(strstr(jobs[r].msg, "all_reduce #2") &&
                      strstr(jobs[r].msg, "ranks 1 did not arrive within 1 s"),
                  "rank %d: %s", r, jobs[r].msg);
        CHECK_MSG(jobs[r].elapsed > 0.9 && jobs[r].elapsed < 1.6, "rank %d failed after %.2f s", r,
                  jobs[r].elapsed);
    }
    /* the skipping rank's next collective fails at once, with the reason */
    CHECK(jobs[1].st == LLMRT_ERR_BACKEND);
    CHECK_MSG(strstr(jobs[1].msg, "aborted") && strstr(jobs[1].msg, "ranks 1 did not arrive"),
              "%s", jobs[1].msg);
    CHECK_MSG(jobs[1].elapsed < 0.1, "%.3f s", jobs[1].elapsed);
    CHECK_ERROR(comms[1]->ops->wait(comms[1], &err), err, LLMRT_ERR_BACKEND, "did not arrive");
    for (int r = 0; r < 3; r++) comms[r]->ops->destroy(comms[r]);
}

/* mode 0: waits in all_reduce; mode 1: waits in broadcast_host (no timeout); mode 2: aborts
 * after 0.2 s. Then each calls both collectives again: they must fail at once. */
static void *abort_rank(void *arg) {
    rank_job   *j = arg;
    llmrt_error err = {0};
    float       buf[8] = {0};
    double      t0 = now_s();
    if (j->mode == 2) {
        sleep_s(0.2);
        j->comm->ops->abort(j->comm, "test abort");
        j->comm->ops->abort(j->comm, "a second abort is a no-op");
        j->st = LLMRT_ERR_BACKEND;
    } else if (j->mode == 0) {
        j->st = j->comm->ops->all_reduce_sum(j->comm, buf, 8, LLMRT_DTYPE_F32, &err);
    } else {
        j->st = j->comm->ops->broadcast_host(j->comm, buf, sizeof buf, 0, &err);
    }
    j->elapsed = now_s() - t0;
    if (j->st != LLMRT_OK) snprintf(j->msg, sizeof j->msg, "%s", err.msg);
    /* later calls fail at once */
    t0 = now_s();
    llmrt_status a = j->comm->ops->all_reduce_sum(j->comm, buf, 8, LLMRT_DTYPE_F32, &err);
    llmrt_status b = j->comm->ops->broadcast_host(j->comm, buf, sizeof buf, 0, &err);
    llmrt_status w = j->comm->ops->wait(j->comm, &err);
    if (a != LLMRT_ERR_BACKEND || b != LLMRT_ERR_BACKEND || w != LLMRT_ERR_BACKEND ||
        now_s() - t0 > 0.1 || !strstr(err.msg, "test abort"))
        j->mode = -1; /* reported by the main thread */
    return NULL;
}

static void test_abort(void) {
    llmrt_comm *comms[3];
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_comm_local_create_all(3, 30, comms, &err), err, LLMRT_OK, "");
    int       modes[3] = {0, 1, 2};
    rank_job *jobs     = run_ranks(comms, 3, abort_rank, modes);
    for (int r = 0; r < 2; r++) {
        CHECK_MSG(jobs[r].st == LLMRT_ERR_BACKEND, "rank %d: %s", r, llmrt_status_str(jobs[r].st));
        CHECK_MSG(strstr(jobs[r].msg, "rank 2 of 3 called abort: test abort") != NULL,
                  "rank %d: %s", r, jobs[r].msg);
        CHECK_MSG(jobs[r].elapsed < 1.0, "rank %d released after %.2f s", r, jobs[r].elapsed);
    }
    CHECK(strstr(jobs[0].msg, "all_reduce #1 (rank 0 of 3)") != NULL);
    CHECK(strstr(jobs[1].msg, "broadcast_host #1 (rank 1 of 3)") != NULL);
    for (int r = 0; r < 3; r++) CHECK_MSG(jobs[r].mode != -1, "rank %d: later calls", r);
    for (int r = 0; r < 3; r++) comms[r]->ops->destroy(comms[r]);
}

/* ranks disagree on the element count: both fail, the message names both calls */
static void *mismatch_rank(void *arg) {
    rank_job   *j = arg;
    llmrt_error err = {0};
    float       buf[16] = {0};
    j->st = j->comm->ops->all_reduce_sum(j->comm, buf, 10 + j->comm->rank, LLMRT_DTYPE_F32, &err);
    if (j->st != LLMRT_OK) snprintf(j->msg, sizeof j->msg, "%s", err.msg);
    return NULL;
}

static void test_mismatch(void) {
    llmrt_comm *comms[2];
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_comm_local_create_all(2, 5, comms, &err), err, LLMRT_OK, "");
    rank_job *jobs = run_ranks(comms, 2, mismatch_rank, NULL);
    for (int r = 0; r < 2; r++) {
        CHECK(jobs[r].st == LLMRT_ERR_BACKEND);
        CHECK_MSG(strstr(jobs[r].msg, "ranks called different collectives: rank 0 all_reduce #1 "
                                      "(n 10") != NULL,
                  "%s", jobs[r].msg);
    }
    for (int r = 0; r < 2; r++) comms[r]->ops->destroy(comms[r]);
}

static void test_args_and_entry_points(void) {
    llmrt_comm *comms[1];
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_comm_local_create_all(0, 1, comms, &err), err, LLMRT_ERR_INVALID_ARG,
                "group size 0");
    CHECK_ERROR(llmrt_comm_local_create_all(1, 1, comms, &err), err, LLMRT_OK, "");
    int32_t x = 5;
    CHECK_ERROR(comms[0]->ops->all_reduce_sum(comms[0], &x, 1, LLMRT_DTYPE_I32, &err), err,
                LLMRT_ERR_UNSUPPORTED, "dtype I32");
    float f = 2.5f; /* a group of one: the sum is the input */
    CHECK_ERROR(comms[0]->ops->all_reduce_sum(comms[0], &f, 1, LLMRT_DTYPE_F32, &err), err,
                LLMRT_OK, "");
    CHECK(f == 2.5f);
    CHECK_ERROR(comms[0]->ops->broadcast_host(comms[0], &f, 4, 1, &err), err,
                LLMRT_ERR_INVALID_ARG, "root 1");
    comms[0]->ops->destroy(comms[0]);

    /* the timeout and spin come from params (llmrt_model_params.tp_timeout_s / tp_spin_us),
     * never from the environment */
    unsetenv("LLMRT_TP_TIMEOUT_S");
    CHECK(llmrt_comm_default_timeout() == 120);
    CHECK(llmrt_comm_timeout(0) == 120 && llmrt_comm_timeout(-1) == 120);
    CHECK(llmrt_comm_timeout(7.5) == 7.5);
    setenv("LLMRT_TP_TIMEOUT_S", "7.5", 1);
    CHECK(llmrt_comm_default_timeout() == 120);
    CHECK(llmrt_comm_timeout(0) == 120);
    unsetenv("LLMRT_TP_TIMEOUT_S");
    CHECK(llmrt_comm_spin_ns() == 1000 * 1000);
    llmrt_comm_set_spin_us(0);
    CHECK(llmrt_comm_spin_ns() == 0);
    llmrt_comm_set_spin_us(250);
    CHECK(llmrt_comm_spin_ns() == 250 * 1000);
    llmrt_comm_set_spin_us(-1);
    CHECK(llmrt_comm_spin_ns() == 1000 * 1000);

    /* outside mpirun: a job of one process, no MPI communicator */
    int32_t wr = -1, ws = -1;
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) {
        CHECK_ERROR(llmrt_mpi_world(&wr, &ws, &err), err, LLMRT_OK, "");
        CHECK(wr == 0 && ws == 1);
        CHECK_ERROR(llmrt_mpi_barrier(&err), err, LLMRT_OK, "");
        llmrt_comm *m = NULL;
        CHECK_ERROR(llmrt_comm_mpi_create(0, 1, 1, &m, &err), err, LLMRT_ERR_UNSUPPORTED, "MPI");
        CHECK(m == NULL);
    }
#if !LLMRT_HAVE_CUDA
    llmrt_comm *n[2] = {0};
    int         devs[2] = {0, 1};
    void       *streams[2] = {0};
    CHECK_ERROR(llmrt_comm_nccl_create_all(2, devs, streams, 1, n, &err), err,
                LLMRT_ERR_UNSUPPORTED, "without CUDA");
#endif
}

int main(void) {
    for (int size = 2; size <= MAX_RANKS; size++) test_sums(size);
    test_args_and_entry_points();
    test_mismatch();
    test_abort();
    test_skipped_collective();
    return test_summary("test_comm_local");
}
