/* The MPI module seen from a program linked with the static library, run under mpirun -np 2 on one
 * node (label mpi): the comm.h entry points reach libllmrt_mpi.so through comm_mpi_loader.c, and
 * the node-local rank comes from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) (no launcher
 * environment variables): on one node it equals the world rank, and the node holds the job. */
#include "exec/comm/comm.h"
#include "exec/comm/comm_mpi_module.h"
#include "test_util.h"

int main(void) {
    llmrt_error err = {0};
    int32_t     rank = -1, size = -1, local = -1, local_size = -1;
    CHECK_ERROR(llmrt_mpi_world(&rank, &size, &err), err, LLMRT_OK, "");
    CHECK_MSG(size == 2, "world size %d, want 2 (run under mpirun -np 2)", size);
    CHECK_ERROR(llmrt_mpi_local_rank(&local, &local_size, &err), err, LLMRT_OK, "");
    CHECK_MSG(local == rank && local_size == size, "local rank %d of %d, world rank %d of %d",
              local, local_size, rank, size);
    llmrt_comm *c = NULL;
    CHECK_ERROR(llmrt_comm_mpi_create(0, 2, 10, &c, &err), err, LLMRT_OK, "");
    if (c) {
        float v[3] = {1.0f + (float)rank, 2.0f, 3.0f * (float)rank};
        CHECK_ERROR(c->ops->all_reduce_sum(c, v, 3, LLMRT_DTYPE_F32, &err), err, LLMRT_OK, "");
        CHECK_MSG(v[0] == 3.0f && v[1] == 4.0f && v[2] == 3.0f, "sum %g %g %g", v[0], v[1], v[2]);
        CHECK(!strcmp(c->kind, "mpi"));
        c->ops->destroy(c);
    }
    CHECK_ERROR(llmrt_mpi_barrier(&err), err, LLMRT_OK, "");
    char name[64];
    snprintf(name, sizeof name, "test_mpi_module [world rank %d of %d]", rank, size);
    return test_summary(name);
}
