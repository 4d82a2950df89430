/* Experimental public calls on the MPI job (include/llmrt_experimental.h), for data-parallel
 * tools: thin wrappers over the communicators' job-level functions (host/exec/comm/comm.h), with
 * errors published to llmrt_last_error(). */
#include "../exec/comm/comm.h"

llmrt_status llmrt_mpi_world_info(int32_t *rank, int32_t *size) {
    llmrt_error err = {0};
    int32_t     r = 0, n = 1;
    if (llmrt_mpi_world(&r, &n, &err) != LLMRT_OK) {
        llmrt_err_prefix(&err, "llmrt_mpi_world_info");
        return llmrt_err_publish(&err);
    }
    if (r < 0 || n < 1 || r >= n)
        return llmrt_err_set_last(LLMRT_ERR_INTERNAL, "llmrt_mpi_world_info: rank %d of a job of %d",
                                  r, n);
    if (rank) *rank = r;
    if (size) *size = n;
    return LLMRT_OK;
}

llmrt_status llmrt_mpi_world_barrier(void) {
    llmrt_error err = {0};
    if (llmrt_mpi_barrier(&err) != LLMRT_OK) {
        llmrt_err_prefix(&err, "llmrt_mpi_world_barrier");
        return llmrt_err_publish(&err);
    }
    return LLMRT_OK;
}

void llmrt_mpi_world_abort(int code) { llmrt_mpi_abort(code); }

void llmrt_mpi_world_finalize(void) { llmrt_mpi_finalize(); }
