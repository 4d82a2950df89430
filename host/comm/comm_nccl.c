/* NCCL communicator (CUDA builds): see below. */
#include "comm.h"

#if !LLMRT_HAVE_CUDA

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
