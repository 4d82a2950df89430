// nccl_comm.cu: the launchers of llmrt_nccl.h: NCCL communicators, the in-place sum all-reduce on
// a rank's stream, and its completion event. The policy (timeouts, the watchdog, aborting the
// group) lives in host/backend/comm/comm_nccl.c; this file only translates to NCCL and CUDA and back.
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <cuda_runtime.h>
#include <nccl.h>

#include "llmrt_nccl.h"

struct llmrt_nccl_rank {
  ncclComm_t comm;
  int device;
  int rank, size;
  cudaStream_t stream;
  cudaEvent_t done;  // recorded after every collective: all of them finished when it has
  bool aborted;
};

static_assert(sizeof(ncclUniqueId) == LLMRT_NCCL_ID_BYTES, "LLMRT_NCCL_ID_BYTES");

namespace {

int say(char *msg, size_t cap, const char *fmt, ...) {
  if (msg && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return 1;
}

int nccl_fail(char *msg, size_t cap, const char *what, ncclResult_t r) {
  return say(msg, cap, "%s: %s", what, ncclGetErrorString(r));
}

int cuda_fail(char *msg, size_t cap, const char *what, cudaError_t e) {
  return say(msg, cap, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

// Collectives run on the communicator's device; the host thread's current device follows it.
void bind(int device) {
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess || cur != device) (void)cudaSetDevice(device);
}

ncclDataType_t to_nccl(llmrt_cuda_dtype t) {
  return t == LLMRT_CUDA_F32 ? ncclFloat32 : t == LLMRT_CUDA_F16 ? ncclFloat16 : ncclBfloat16;
}

// The event of a rank (on its device); on failure frees nothing of r but the event.
int make_event(llmrt_nccl_rank *r, char *msg, size_t cap) {
  bind(r->device);
  // no timing: a timing event costs a GPU timestamp per collective and nobody reads it
  cudaError_t e = cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    r->done = nullptr;
    return cuda_fail(msg, cap, "cudaEventCreateWithFlags", e);
  }
  return 0;
}

}  // namespace

extern "C" {

int llmrt_nccl_get_unique_id(unsigned char id[LLMRT_NCCL_ID_BYTES], char *msg, size_t cap) {
  ncclUniqueId u;
  ncclResult_t r = ncclGetUniqueId(&u);
  if (r != ncclSuccess) return nccl_fail(msg, cap, "ncclGetUniqueId", r);
  memcpy(id, &u, sizeof u);
  return 0;
}

int llmrt_nccl_init_all(int size, const int *devices, void *const *streams, llmrt_nccl_rank **ranks,
                        char *msg, size_t cap) {
  for (int i = 0; i < size; i++) ranks[i] = nullptr;
  int saved = 0;
  (void)cudaGetDevice(&saved);
  ncclComm_t *comms = new ncclComm_t[(size_t)size]();
  ncclResult_t res = ncclCommInitAll(comms, size, devices);
  int rc = 0;
  if (res != ncclSuccess) {
    rc = say(msg, cap, "ncclCommInitAll(%d devices, first %d): %s", size, devices[0], ncclGetErrorString(res));
  } else {
    for (int i = 0; i < size && rc == 0; i++) {
      llmrt_nccl_rank *r = new llmrt_nccl_rank();
      r->comm = comms[i];
      r->device = devices[i];
      r->rank = i;
      r->size = size;
      r->stream = static_cast<cudaStream_t>(streams[i]);
      ranks[i] = r;
      rc = make_event(r, msg, cap);
    }
    if (rc != 0) {
      for (int i = 0; i < size; i++) {
        if (ranks[i]) llmrt_nccl_destroy(ranks[i]);  // with its comm
        else (void)ncclCommDestroy(comms[i]);
        ranks[i] = nullptr;
      }
    }
  }
  delete[] comms;
  (void)cudaSetDevice(saved);
  return rc;
}

int llmrt_nccl_init_rank(const unsigned char id[LLMRT_NCCL_ID_BYTES], int size, int rank, int device, void *stream,
                         llmrt_nccl_rank **out, char *msg, size_t cap) {
  *out = nullptr;
  ncclUniqueId u;
  memcpy(&u, id, sizeof u);
  bind(device);
  llmrt_nccl_rank *r = new llmrt_nccl_rank();
  r->device = device;
  r->rank = rank;
  r->size = size;
  r->stream = static_cast<cudaStream_t>(stream);
  ncclResult_t res = ncclCommInitRank(&r->comm, size, u, rank);
  if (res != ncclSuccess) {
    delete r;
    return say(msg, cap, "ncclCommInitRank(rank %d of %d, device %d): %s", rank, size, device,
               ncclGetErrorString(res));
  }
  if (make_event(r, msg, cap) != 0) {
    ncclCommDestroy(r->comm);
    delete r;
    return 1;
  }
  *out = r;
  return 0;
}

int llmrt_nccl_all_reduce_sum(llmrt_nccl_rank *r, void *buf, int64_t n, llmrt_cuda_dtype dtype, char *msg,
                              size_t cap) {
  if (r->aborted) return say(msg, cap, "the communicator was aborted");
  bind(r->device);
  ncclResult_t res = ncclAllReduce(buf, buf, (size_t)n, to_nccl(dtype), ncclSum, r->comm, r->stream);
  if (res != ncclSuccess) return nccl_fail(msg, cap, "ncclAllReduce", res);
  cudaError_t e = cudaEventRecord(r->done, r->stream);
  if (e != cudaSuccess) return cuda_fail(msg, cap, "cudaEventRecord after ncclAllReduce", e);
  return 0;
}

int llmrt_nccl_query(llmrt_nccl_rank *r, char *msg, size_t cap) {
  bind(r->device);
  cudaError_t e = cudaEventQuery(r->done);
  if (e == cudaSuccess) return 1;
  if (e == cudaErrorNotReady) return 0;
  cuda_fail(msg, cap, "cudaEventQuery after ncclAllReduce", e);
  return -1;
}

int llmrt_nccl_async_error(llmrt_nccl_rank *r, char *msg, size_t cap) {
  if (r->aborted) return say(msg, cap, "the communicator was aborted");
  ncclResult_t async = ncclSuccess;
  ncclResult_t res = ncclCommGetAsyncError(r->comm, &async);
  if (res != ncclSuccess) return nccl_fail(msg, cap, "ncclCommGetAsyncError", res);
  if (async == ncclSuccess || async == ncclInProgress) return 0;
  const char *last = ncclGetLastError(r->comm);
  return say(msg, cap, "NCCL asynchronous error: %s%s%s", ncclGetErrorString(async), last && *last ? ": " : "",
             last ? last : "");
}

void llmrt_nccl_abort(llmrt_nccl_rank *r) {
  if (!r || r->aborted) return;
  r->aborted = true;
  (void)ncclCommAbort(r->comm);  // frees the communicator; kernels in flight return
}

void llmrt_nccl_destroy(llmrt_nccl_rank *r) {
  if (!r) return;
  if (!r->aborted) (void)ncclCommDestroy(r->comm);
  if (r->done) {
    bind(r->device);
    (void)cudaEventDestroy(r->done);
  }
  delete r;
}

}  // extern "C"
