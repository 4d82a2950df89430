/* The NCCL communicator (host/backend/comm/comm_nccl.c over cuda/nccl_comm.cu), in-process groups of 2
 * and 4 devices, one host thread and stream per rank; under cusim (CUSIM_DEVICE_COUNT=4) or on a
 * machine with enough GPUs (otherwise skipped, exit 77):
 *  - all_reduce_sum of F32 and F16 device buffers (back to back, then one wait) equals the fp64
 *    reference, twice over; broadcast_host; stats;
 *  - a rank that never calls the collective: wait() on the others fails within the timeout
 *    (1 s), a rank blocked in cudaStreamSynchronize behind the collective is released by the
 *    watchdog's abort, and the missing rank's own later call fails at once;
 *  - abort() from one rank releases a peer waiting in wait() promptly. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "exec/comm/comm.h"
#include "core/half.h"
#include "llmrt_cuda.h"
#include "test_util.h"

#define MAX_RANKS 4
#define N         1031

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float input(int rank, int round, int64_t i) {
    return (float)(((i * 13 + rank * 7 + round * 3) % 23) - 11) * 0.25f + 0.0078125f * (float)rank;
}

enum { MODE_SUM, MODE_SKIP, MODE_WAIT, MODE_SYNC, MODE_ABORT };

typedef struct job {
    llmrt_comm     *c;
    llmrt_cuda_dev *dev;
    int             mode;
    llmrt_status    st;
    char            msg[LLMRT_ERROR_MSG_MAX];
    double          elapsed, sync_elapsed;
    float           out32[2][N], out16[2][N]; /* results per round, as fp32 */
    char            bcast[48];
    int             late_ok;                  /* MODE_SKIP: the late call failed at once */
} job;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  g_cv = PTHREAD_COND_INITIALIZER;
static int             g_done;

static void note_done(void) {
    pthread_mutex_lock(&g_mu);
    g_done++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void wait_done(int n) {
    pthread_mutex_lock(&g_mu);
    while (g_done < n) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static void *rank_main(void *arg) {
    job        *j = arg;
    llmrt_error err = {0};
    int         r = j->c->rank;
    void       *d32 = NULL, *d16 = NULL;
    static _Thread_local float    h32[N];
    static _Thread_local uint16_t h16[N];
    if (llmrt_cuda_malloc(j->dev, &d32, N * 4) || llmrt_cuda_malloc(j->dev, &d16, N * 2)) {
        j->st = LLMRT_ERR_OUT_OF_MEMORY;
        snprintf(j->msg, sizeof j->msg, "%s", llmrt_cuda_dev_message(j->dev));
        return NULL;
    }
    double t0 = now_s();
    if (j->mode == MODE_SUM) {
        for (int round = 0; round < 2 && j->st == LLMRT_OK; round++) {
            for (int64_t i = 0; i < N; i++) {
                h32[i] = input(r, round, i);
                h16[i] = llmrt_f32_to_f16(input(r, round, i));
            }
            llmrt_cuda_upload(j->dev, d32, h32, N * 4, 1);
            llmrt_cuda_upload(j->dev, d16, h16, N * 2, 1);
            j->st = j->c->ops->all_reduce_sum(j->c, d32, N, LLMRT_DTYPE_F32, &err);
            if (j->st == LLMRT_OK)
                j->st = j->c->ops->all_reduce_sum(j->c, d16, N, LLMRT_DTYPE_F16, &err);
            if (j->st == LLMRT_OK) j->st = j->c->ops->wait(j->c, &err);
            llmrt_cuda_download(j->dev, h32, d32, N * 4);
            llmrt_cuda_download(j->dev, h16, d16, N * 2);
            for (int64_t i = 0; i < N; i++) {
                j->out32[round][i] = h32[i];
                j->out16[round][i] = llmrt_f16_to_f32(h16[i]);
            }
        }
        if (r == j->c->size - 1) snprintf(j->bcast, sizeof j->bcast, "from rank %d", r);
        if (j->st == LLMRT_OK)
            j->st = j->c->ops->broadcast_host(j->c, j->bcast, sizeof j->bcast, j->c->size - 1, &err);
    } else if (j->mode == MODE_SKIP) {
        wait_done(j->c->size - 1); /* never joins: the others fail without it */
        double t1  = now_s();
        llmrt_status a = j->c->ops->all_reduce_sum(j->c, d32, N, LLMRT_DTYPE_F32, &err);
        llmrt_status w = j->c->ops->wait(j->c, &err);
        j->late_ok = a == LLMRT_ERR_BACKEND && w == LLMRT_ERR_BACKEND && now_s() - t1 < 0.5 &&
                     strstr(err.msg, "aborted") != NULL;
        j->st      = w;
    } else if (j->mode == MODE_ABORT) {
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
        j->c->ops->abort(j->c, "test abort");
        j->st = j->c->ops->wait(j->c, &err);
    } else { /* MODE_WAIT, MODE_SYNC: join a collective some rank never joins */
        j->st = j->c->ops->all_reduce_sum(j->c, d32, N, LLMRT_DTYPE_F32, &err);
        if (j->mode == MODE_SYNC) { /* blocked behind the collective until the watchdog aborts */
            double t1 = now_s();
            llmrt_cuda_sync(j->dev);
            j->sync_elapsed = now_s() - t1;
        }
        if (j->st == LLMRT_OK) j->st = j->c->ops->wait(j->c, &err);
        j->elapsed = now_s() - t0;
        note_done();
    }
    if (j->st != LLMRT_OK) snprintf(j->msg, sizeof j->msg, "%s", err.msg);
    llmrt_cuda_free(j->dev, d32);
    llmrt_cuda_free(j->dev, d16);
    return NULL;
}

static job g_jobs[MAX_RANKS];

/* Runs `size` ranks with the given modes; false if the group could not be made. */
static bool run_group(int size, double timeout_s, const int *modes) {
    llmrt_cuda_dev *devs[MAX_RANKS] = {0};
    void           *streams[MAX_RANKS];
    int             devices[MAX_RANKS];
    llmrt_comm     *comms[MAX_RANKS];
    llmrt_error     err = {0};
    char            msg[256];
    memset(g_jobs, 0, sizeof g_jobs);
    g_done = 0;
    for (int r = 0; r < size; r++) {
        if (llmrt_cuda_dev_create(r, &devs[r], msg, sizeof msg) != LLMRT_CUDA_OK) {
            CHECK_MSG(0, "device %d: %s", r, msg);
            return false;
        }
        streams[r] = llmrt_cuda_dev_stream(devs[r]);
        devices[r] = r;
    }
    llmrt_status st = llmrt_comm_nccl_create_all(size, devices, streams, timeout_s, comms, &err);
    CHECK_MSG(st == LLMRT_OK, "create_all(%d): %s", size, err.msg);
    if (st == LLMRT_OK) {
        CHECK(strcmp(comms[0]->kind, "nccl") == 0 && comms[size - 1]->rank == size - 1 &&
              comms[0]->size == size && comms[0]->timeout_s == timeout_s);
        pthread_t th[MAX_RANKS];
        for (int r = 0; r < size; r++) {
            g_jobs[r].c    = comms[r];
            g_jobs[r].dev  = devs[r];
            g_jobs[r].mode = modes[r];
            pthread_create(&th[r], NULL, rank_main, &g_jobs[r]);
        }
        for (int r = 0; r < size; r++) pthread_join(th[r], NULL);
        if (modes[0] == MODE_SUM)
            for (int r = 0; r < size; r++) {
                CHECK(comms[r]->stats.n_all_reduce == 4);
                CHECK(comms[r]->stats.bytes_all_reduce == 2 * N * (4 + 2));
            }
        for (int r = 0; r < size; r++) comms[r]->ops->destroy(comms[r]);
    }
    for (int r = 0; r < size; r++) llmrt_cuda_dev_destroy(devs[r]);
    return st == LLMRT_OK;
}

static void test_sums(int size) {
    int modes[MAX_RANKS] = {MODE_SUM, MODE_SUM, MODE_SUM, MODE_SUM};
    if (!run_group(size, 30, modes)) return;
    for (int r = 0; r < size; r++) CHECK_MSG(g_jobs[r].st == LLMRT_OK, "rank %d: %s", r, g_jobs[r].msg);
    int bad = 0;
    for (int round = 0; round < 2; round++)
        for (int64_t i = 0; i < N; i++) {
            double ref32 = 0, ref16 = 0;
            for (int q = 0; q < size; q++) {
                ref32 += input(q, round, i);
                ref16 += llmrt_f16_to_f32(llmrt_f32_to_f16(input(q, round, i)));
            }
            for (int r = 0; r < size; r++) {
                /* NCCL sums in the data type in ring order: each step may round (fp16: 2^-11) */
                double e32 = fabs(g_jobs[r].out32[round][i] - ref32);
                double e16 = fabs(g_jobs[r].out16[round][i] - ref16);
                if ((e32 > 1e-6 * (1 + fabs(ref32)) || e16 > size * 0x1p-11 * (1 + fabs(ref16))) &&
                    bad++ < 3)
                    fprintf(stderr, "size %d rank %d round %d [%lld]: f32 %.7g f16 %.5g, ref %.7g\n",
                            size, r, round, (long long)i, g_jobs[r].out32[round][i],
                            g_jobs[r].out16[round][i], ref32);
            }
        }
    CHECK_MSG(bad == 0, "size %d: %d values off the reference", size, bad);
    char want[48];
    snprintf(want, sizeof want, "from rank %d", size - 1);
    for (int r = 0; r < size; r++) CHECK_MSG(strcmp(g_jobs[r].bcast, want) == 0, "rank %d: '%s'", r, g_jobs[r].bcast);
}

static void test_missing_rank(int size) {
    /* rank 1 never joins; with 4 ranks, rank 2 blocks in cudaStreamSynchronize first */
    int modes[MAX_RANKS] = {MODE_WAIT, MODE_SKIP, size > 2 ? MODE_SYNC : MODE_WAIT, MODE_WAIT};
    if (!run_group(size, 1.0, modes)) return;
    for (int r = 0; r < size; r++) {
        if (r == 1) {
            CHECK_MSG(g_jobs[1].late_ok, "size %d: the missing rank's own call: %s", size, g_jobs[1].msg);
            continue;
        }
        CHECK_MSG(g_jobs[r].st == LLMRT_ERR_BACKEND, "size %d rank %d: %s", size, r,
                  llmrt_status_str(g_jobs[r].st));
        CHECK_MSG(strstr(g_jobs[r].msg, "not complete within 1 s") != NULL &&
                      strstr(g_jobs[r].msg, "all_reduce #1 (rank ") != NULL,
                  "size %d rank %d: %s", size, r, g_jobs[r].msg);
        CHECK_MSG(g_jobs[r].elapsed > 0.9 && g_jobs[r].elapsed < 3.0, "size %d rank %d: failed after %.2f s",
                  size, r, g_jobs[r].elapsed);
    }
    if (size > 2)
        CHECK_MSG(g_jobs[2].sync_elapsed > 0.9 && g_jobs[2].sync_elapsed < 3.0,
                  "cudaStreamSynchronize released after %.2f s", g_jobs[2].sync_elapsed);
    fprintf(stderr, "size %d, expected failure: %s\n", size, g_jobs[0].msg);
}

static void test_abort(void) {
    int modes[MAX_RANKS] = {MODE_ABORT, MODE_WAIT};
    if (!run_group(2, 30, modes)) return;
    CHECK(g_jobs[1].st == LLMRT_ERR_BACKEND);
    CHECK_MSG(strstr(g_jobs[1].msg, "rank 0 of 2 called abort: test abort") != NULL, "%s", g_jobs[1].msg);
    CHECK_MSG(g_jobs[1].elapsed < 2.0, "released after %.2f s", g_jobs[1].elapsed);
    CHECK(g_jobs[0].st == LLMRT_ERR_BACKEND && strstr(g_jobs[0].msg, "test abort"));
}

int main(void) {
    int n = llmrt_cuda_device_count();
    if (n < 2) {
        printf("test_comm_nccl: %d device(s); needs 2 or more: skipped\n", n);
        return 77;
    }
    test_sums(2);
    if (n >= 4) test_sums(4);
    test_abort();
    test_missing_rank(2);
    if (n >= 4) test_missing_rank(4);
    return test_summary("test_comm_nccl");
}
