/* llmrt_nccl.h: the plain-C interface over NCCL and the CUDA events that the NCCL communicator
 * (host/backend/comm/comm_nccl.c, which never includes a CUDA header) is built on. Implemented in
 * cuda/nccl_comm.cu; under the simulator NCCL is cusim's (cuda/sim/nccl.cpp).
 *
 * One llmrt_nccl_rank per rank of this process: its ncclComm_t, device, stream (void *, a
 * cudaStream_t) and a completion event recorded after each collective. Functions returning int
 * give 0 on success and non-zero on failure, with the reason in msg (cap bytes). Thread safety:
 * a rank is used by one host thread at a time, except llmrt_nccl_query and
 * llmrt_nccl_async_error, which any thread may call (a watchdog); the caller serialises
 * llmrt_nccl_abort against every other call on the same rank (NCCL frees the communicator). */
#ifndef LLMRT_NCCL_H
#define LLMRT_NCCL_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt_cuda.h" /* llmrt_cuda_dtype */

#ifdef __cplusplus
extern "C" {
#endif

#define LLMRT_NCCL_ID_BYTES 128 /* sizeof(ncclUniqueId) (NCCL_UNIQUE_ID_BYTES) */

typedef struct llmrt_nccl_rank llmrt_nccl_rank;

/* A fresh unique id for a group bootstrapped across processes (rank 0 makes it, the others
 * receive it over MPI). */
int llmrt_nccl_get_unique_id(unsigned char id[LLMRT_NCCL_ID_BYTES], char *msg, size_t cap);

/* In-process group (ncclCommInitAll): rank r on devices[r] enqueuing on streams[r]; ranks[size]
 * out. The calling thread's current device is restored. */
int llmrt_nccl_init_all(int size, const int *devices, void *const *streams,
                        llmrt_nccl_rank **ranks, char *msg, size_t cap);

/* One rank of a group spread over processes (ncclCommInitRank): blocks until all `size` ranks
 * called it with the same id. */
int llmrt_nccl_init_rank(const unsigned char id[LLMRT_NCCL_ID_BYTES], int size, int rank,
                         int device, void *stream, llmrt_nccl_rank **out, char *msg, size_t cap);

/* Enqueues ncclAllReduce(sum) in place on buf[n] (device memory, dtype F32/F16/BF16) on the
 * rank's stream, then records the rank's completion event. Never waits for the collective. */
int llmrt_nccl_all_reduce_sum(llmrt_nccl_rank *r, void *buf, int64_t n, llmrt_cuda_dtype dtype,
                              char *msg, size_t cap);

/* Has everything enqueued by llmrt_nccl_all_reduce_sum so far completed? 1 yes, 0 not yet,
 * -1 a CUDA error (msg). Does not wait on a GPU (under cusim it runs the stream's work, unless
 * another thread is running it). */
int llmrt_nccl_query(llmrt_nccl_rank *r, char *msg, size_t cap);

/* ncclCommGetAsyncError: 0 none, non-zero an asynchronous NCCL error (msg). */
int llmrt_nccl_async_error(llmrt_nccl_rank *r, char *msg, size_t cap);

/* ncclCommAbort: pending and later collectives of the group fail and release their waiters.
 * The rank stays allocated (its event) until llmrt_nccl_destroy; idempotent. */
void llmrt_nccl_abort(llmrt_nccl_rank *r);

/* ncclCommDestroy (unless aborted) and the event. NULL is a no-op. */
void llmrt_nccl_destroy(llmrt_nccl_rank *r);

#ifdef __cplusplus
}
#endif

#endif
