/* The MPI communicator (host/backend/comm/comm_mpi.c), run under mpirun with 2 and 4 processes:
 *  - llmrt_mpi_world gives this process's rank in the job;
 *  - all-reduce of F32/F16/BF16 buffers over the whole job equals the fp64 reference (MPI's
 *    summation order is its own: a tolerance), broadcast_host from the last rank;
 *  - two tensor-parallel groups of 2 inside the job of 4 (groups 0 and 1 sum separately);
 *  - a rank that does not join (sleeps 3 s): its group peer fails after the 2 s timeout with a
 *    message naming the collective, the rank and the timeout, and later calls fail at once; the
 *    late rank then joins, so the abandoned request completes and the job exits cleanly.
 * Each process checks its own results; mpirun's exit status is non-zero if any process fails. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "exec/comm/comm.h"
#include "core/half.h"
#include "test_util.h"

#define N 777

static int32_t g_rank, g_size;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float input(int32_t world_rank, int64_t i) {
    return (float)(((i * 37 + world_rank * 11) % 29) - 14) * 0.375f + 0.001f * (float)world_rank;
}

static float as_dtype(float v, llmrt_dtype t) {
    if (t == LLMRT_DTYPE_F16) return llmrt_f16_to_f32(llmrt_f32_to_f16(v));
    if (t == LLMRT_DTYPE_BF16) return llmrt_bf16_to_f32(llmrt_f32_to_bf16(v));
    return v;
}

/* all_reduce over `c`, whose members are world ranks [first, first + c->size) */
static void check_sum(llmrt_comm *c, int32_t first, llmrt_dtype t) {
    static float    f32[N];
    static uint16_t h16[N];
    llmrt_error     err = {0};
    for (int64_t i = 0; i < N; i++) {
        float v = input(g_rank, i);
        if (t == LLMRT_DTYPE_F32) f32[i] = v;
        else h16[i] = t == LLMRT_DTYPE_F16 ? llmrt_f32_to_f16(v) : llmrt_f32_to_bf16(v);
    }
    void *buf = t == LLMRT_DTYPE_F32 ? (void *)f32 : (void *)h16;
    CHECK_ERROR(c->ops->all_reduce_sum(c, buf, N, t, &err), err, LLMRT_OK, "");
    int bad = 0;
    for (int64_t i = 0; i < N; i++) {
        double ref = 0, mag = 0;
        for (int32_t r = first; r < first + c->size; r++) {
            ref += as_dtype(input(r, i), t);
            mag += fabs(as_dtype(input(r, i), t));
        }
        double got = t == LLMRT_DTYPE_F32  ? f32[i]
                     : t == LLMRT_DTYPE_F16 ? llmrt_f16_to_f32(h16[i])
                                            : llmrt_bf16_to_f32(h16[i]);
        double tol = mag * c->size * 6e-8 +
                     fabs(ref) * (t == LLMRT_DTYPE_F32 ? 0 : t == LLMRT_DTYPE_F16 ? 0x1p-11 : 0x1p-8);
        if (fabs(got - ref) > tol && bad++ < 3)
            fprintf(stderr, "[world %d] %s [%lld]: %.9g vs fp64 %.9g\n", g_rank,
                    llmrt_dtype_name(t), (long long)i, got, ref);
    }
    CHECK_MSG(bad == 0, "[world %d] %s: %d elements off", g_rank, llmrt_dtype_name(t), bad);
}

static void test_world(void) {
    llmrt_comm *c   = NULL;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_comm_mpi_create(0, g_size, 30, &c, &err), err, LLMRT_OK, "");
    if (!c) return;
    CHECK(c->rank == g_rank && c->size == g_size && strcmp(c->kind, "mpi") == 0);
    check_sum(c, 0, LLMRT_DTYPE_F32);
    check_sum(c, 0, LLMRT_DTYPE_F16);
    check_sum(c, 0, LLMRT_DTYPE_BF16);
    CHECK(c->stats.n_all_reduce == 3 && c->stats.bytes_all_reduce == N * (4 + 2 + 2));
    char msg[64] = "";
    if (g_rank == g_size - 1) snprintf(msg, sizeof msg, "plan from world rank %d", g_rank);
    CHECK_ERROR(c->ops->broadcast_host(c, msg, sizeof msg, g_size - 1, &err), err, LLMRT_OK, "");
    char want[64];
    snprintf(want, sizeof want, "plan from world rank %d", g_size - 1);
    CHECK_MSG(strcmp(msg, want) == 0, "[world %d] broadcast: '%s'", g_rank, msg);
    CHECK_ERROR(c->ops->wait(c, &err), err, LLMRT_OK, "");
    c->ops->destroy(c);
}

static void test_groups_of_two(void) {
    llmrt_comm *c   = NULL;
    llmrt_error err = {0};
    int32_t     group = g_rank / 2;
    CHECK_ERROR(llmrt_comm_mpi_create(group, 2, 30, &c, &err), err, LLMRT_OK, "");
    if (!c) return;
    CHECK(c->rank == g_rank % 2 && c->size == 2);
    check_sum(c, group * 2, LLMRT_DTYPE_F32);
    check_sum(c, group * 2, LLMRT_DTYPE_BF16);
    c->ops->destroy(c);
    /* a group that does not contain this process */
    CHECK_ERROR(llmrt_comm_mpi_create(group + 1 < g_size / 2 ? group + 1 : group - 1, 2, 30, &c, &err),
                err, LLMRT_ERR_INVALID_ARG, "is not in group");
}

static void test_timeout(void) {
    llmrt_comm *c   = NULL;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_comm_mpi_create(g_rank / 2, 2, 2.0, &c, &err), err, LLMRT_OK, "");
    if (!c) return;
    float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = (float)i;
    if (c->rank == 1) {
        sleep(3); /* misses its peer's deadline ... */
        /* ... then joins late, which completes the peer's abandoned request */
        CHECK_ERROR(c->ops->all_reduce_sum(c, buf, 64, LLMRT_DTYPE_F32, &err), err, LLMRT_OK, "");
    } else {
        double t0 = now_s();
        CHECK_ERROR(c->ops->all_reduce_sum(c, buf, 64, LLMRT_DTYPE_F32, &err), err,
                    LLMRT_ERR_BACKEND, "all_reduce #1 (rank 0 of 2, mpi): not complete within 2 s");
        double dt = now_s() - t0;
        CHECK_MSG(dt > 1.9 && dt < 2.9, "[world %d] failed after %.2f s", g_rank, dt);
        fprintf(stderr, "[world %d] expected failure: %s\n", g_rank, err.msg);
        t0 = now_s();
        CHECK_ERROR(c->ops->all_reduce_sum(c, buf, 64, LLMRT_DTYPE_F32, &err), err,
                    LLMRT_ERR_BACKEND, "aborted: all_reduce #1");
        CHECK_ERROR(c->ops->broadcast_host(c, buf, 8, 0, &err), err, LLMRT_ERR_BACKEND, "aborted");
        CHECK_ERROR(c->ops->wait(c, &err), err, LLMRT_ERR_BACKEND, "not complete within 2 s");
        CHECK(now_s() - t0 < 0.1);
    }
    CHECK_ERROR(llmrt_mpi_barrier(&err), err, LLMRT_OK, ""); /* progress: the late join lands */
    c->ops->destroy(c);
}

int main(void) {
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_mpi_world(&g_rank, &g_size, &err), err, LLMRT_OK, "");
    if (g_size < 2 || g_size % 2) {
        fprintf(stderr, "test_comm_mpi: run under mpirun with an even number of processes (got %d)\n",
                g_size);
        return 1;
    }
    test_world();
    test_groups_of_two();
    test_timeout();
    CHECK_ERROR(llmrt_mpi_barrier(&err), err, LLMRT_OK, "");
    char name[64];
    snprintf(name, sizeof name, "test_comm_mpi [world rank %d of %d]", g_rank, g_size);
    return test_summary(name);
}
