// device.cu: the CUDA backend's device layer: device selection, the stream and cuBLAS handle,
// memory (checked against cudaMemGetInfo before allocating), copies, error classification
// (sticky faults vs. recoverable errors) and the GEMM wrapper over cublasGemmEx.
#include <cinttypes>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <cublas_v2.h>

#include "llmrt_dtype.cuh"

struct llmrt_cuda_dev {
  int device;
  cudaStream_t stream;
  cublasHandle_t blas;
  char name[256];
  char msg[512];
};

namespace {

// Errors after which the context is unusable: every later call returns them ("To continue using
// CUDA, the process must be terminated and relaunched", CUDA runtime docs on cudaError).
bool is_sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed:
      return true;
    default:
      return false;
  }
}

void set_msg(llmrt_cuda_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void set_msg(llmrt_cuda_dev *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->msg, sizeof d->msg, fmt, ap);
  va_end(ap);
}

// Classifies a failed runtime call (the error of `what`), clearing a recoverable error.
llmrt_cuda_status fail(llmrt_cuda_dev *d, cudaError_t e, const char *what) {
  if (!is_sticky(e)) {
    (void)cudaGetLastError();  // recoverable: clear it, then look for a sticky one behind it
    cudaError_t behind = cudaPeekAtLastError();
    if (is_sticky(behind)) {
      set_msg(d, "%s: %s (%s), after an earlier fault", what, cudaGetErrorString(behind), cudaGetErrorName(behind));
      return LLMRT_CUDA_ERR_STICKY;
    }
  }
  set_msg(d, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
  if (is_sticky(e)) return LLMRT_CUDA_ERR_STICKY;
  if (e == cudaErrorMemoryAllocation) return LLMRT_CUDA_ERR_OOM;
  if (e == cudaErrorInvalidValue || e == cudaErrorInvalidConfiguration) return LLMRT_CUDA_ERR_INVALID;
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInvalidDevice)
    return LLMRT_CUDA_ERR_NO_DEVICE;
  return LLMRT_CUDA_ERR_FAILED;
}

// "1.50 GiB", "12.00 MiB", "3.25 KiB", "100 B" (buf of >= 32 bytes)
const char *fmt_bytes(char *buf, size_t cap, uint64_t b) {
  if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
  else if (b >= (1ull << 20)) snprintf(buf, cap, "%.2f MiB", (double)b / (1ull << 20));
  else if (b >= 1024) snprintf(buf, cap, "%.2f KiB", (double)b / 1024);
  else snprintf(buf, cap, "%" PRIu64 " B", b);
  return buf;
}

void bind(llmrt_cuda_dev *d) {
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess || cur != d->device) (void)cudaSetDevice(d->device);
}

cudaDataType to_cuda(llmrt_cuda_dtype t) {
  return t == LLMRT_CUDA_F32 ? CUDA_R_32F : t == LLMRT_CUDA_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

__global__ void llmrt_fault_kernel(int *p) { p[threadIdx.x] = 1; }

}  // namespace

extern "C" {

int llmrt_cuda_device_count(void) {
  int n = 0;  // not written when there is no driver
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

llmrt_cuda_status llmrt_cuda_dev_create(int device, llmrt_cuda_dev **out, char *msg, size_t cap) {
  *out = nullptr;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    snprintf(msg, cap, "no CUDA device (cudaGetDeviceCount: %s)", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return LLMRT_CUDA_ERR_NO_DEVICE;
  }
  if (device < 0 || device >= n) {
    snprintf(msg, cap, "CUDA device %d does not exist (%d device%s)", device, n, n == 1 ? "" : "s");
    return LLMRT_CUDA_ERR_NO_DEVICE;
  }
  llmrt_cuda_dev *d = (llmrt_cuda_dev *)calloc(1, sizeof *d);
  if (!d) {
    snprintf(msg, cap, "out of host memory");
    return LLMRT_CUDA_ERR_OOM;
  }
  d->device = device;
  cudaDeviceProp prop;
  llmrt_cuda_status st = LLMRT_CUDA_OK;
  if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
    st = fail(d, e, "cudaSetDevice / cudaGetDeviceProperties");
  } else {
    snprintf(d->name, sizeof d->name, "%s", prop.name);
    if (prop.major < 8) {  // the kernels are built for sm_80 and later (bf16, cp.async, mma.m16n8k16)
      set_msg(d, "CUDA device %d (%s) has compute capability %d.%d; llmrt needs 8.0 or later", device, prop.name,
              prop.major, prop.minor);
      st = LLMRT_CUDA_ERR_NO_DEVICE;
    }
  }
  if (st == LLMRT_CUDA_OK && (e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking)) != cudaSuccess)
    st = fail(d, e, "cudaStreamCreateWithFlags");
  if (st == LLMRT_CUDA_OK) {
    cublasStatus_t bs = cublasCreate(&d->blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(d->blas, d->stream);
    if (bs != CUBLAS_STATUS_SUCCESS) {
      set_msg(d, "cublasCreate: %s", cublasGetStatusString(bs));
      st = LLMRT_CUDA_ERR_FAILED;
    }
  }
  if (st != LLMRT_CUDA_OK) {
    snprintf(msg, cap, "%s", d->msg);
    llmrt_cuda_dev_destroy(d);
    return st;
  }
  *out = d;
  return LLMRT_CUDA_OK;
}

void llmrt_cuda_dev_destroy(llmrt_cuda_dev *d) {
  if (!d) return;
  bind(d);
  if (d->blas) (void)cublasDestroy(d->blas);
  if (d->stream) (void)cudaStreamDestroy(d->stream);
  (void)cudaGetLastError();
  free(d);
}

const char *llmrt_cuda_dev_message(const llmrt_cuda_dev *d) { return d->msg; }
const char *llmrt_cuda_dev_name(const llmrt_cuda_dev *d) { return d->name; }
void *llmrt_cuda_dev_stream(const llmrt_cuda_dev *d) { return (void *)d->stream; }

llmrt_cuda_status llmrt_cuda_check(llmrt_cuda_dev *d, int cuda_error, const char *what) {
  if (cuda_error == 0) return LLMRT_CUDA_OK;
  return fail(d, (cudaError_t)cuda_error, what);
}

llmrt_cuda_status llmrt_cuda_check_last(llmrt_cuda_dev *d, const char *what) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    set_msg(d, "%s", what);
    return LLMRT_CUDA_ERR_FAILED;
  }
  return fail(d, e, what);
}

llmrt_cuda_status llmrt_cuda_mem_info(llmrt_cuda_dev *d, uint64_t *free_bytes, uint64_t *total) {
  bind(d);
  size_t f = 0, t = 0;
  cudaError_t e = cudaMemGetInfo(&f, &t);
  if (e != cudaSuccess) return fail(d, e, "cudaMemGetInfo");
  *free_bytes = f;
  *total = t;
  return LLMRT_CUDA_OK;
}

llmrt_cuda_status llmrt_cuda_malloc(llmrt_cuda_dev *d, void **p, uint64_t bytes) {
  *p = nullptr;
  uint64_t free_b = 0, total = 0;
  llmrt_cuda_status st = llmrt_cuda_mem_info(d, &free_b, &total);
  if (st != LLMRT_CUDA_OK) return st;
  char rb[32], fb[32], tb[32];
  fmt_bytes(rb, sizeof rb, bytes), fmt_bytes(fb, sizeof fb, free_b), fmt_bytes(tb, sizeof tb, total);
  if (bytes > free_b) {
    set_msg(d, "out of device memory: %s requested, %s free of %s on device %d (%s)", rb, fb, tb, d->device,
            d->name);
    return LLMRT_CUDA_ERR_OOM;
  }
  cudaError_t e = cudaMalloc(p, bytes ? (size_t)bytes : 1);
  if (e != cudaSuccess) {
    *p = nullptr;
    st = fail(d, e, "cudaMalloc");
    if (st == LLMRT_CUDA_ERR_OOM)  // fragmentation, or another process took memory meanwhile
      set_msg(d, "out of device memory: cudaMalloc of %s failed with %s reported free of %s on device %d (%s)", rb,
              fb, tb, d->device, d->name);
    return st;
  }
  return LLMRT_CUDA_OK;
}

void llmrt_cuda_free(llmrt_cuda_dev *d, void *p) {
  if (!p) return;
  bind(d);
  if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();  // a dead context: nothing to do
}

llmrt_cuda_status llmrt_cuda_host_alloc(llmrt_cuda_dev *d, void **p, uint64_t bytes) {
  bind(d);
  cudaError_t e = cudaMallocHost(p, bytes ? (size_t)bytes : 1);
  if (e != cudaSuccess) {
    *p = nullptr;
    return fail(d, e, "cudaMallocHost");
  }
  return LLMRT_CUDA_OK;
}

void llmrt_cuda_host_free(llmrt_cuda_dev *d, void *p) {
  if (!p) return;
  bind(d);
  if (cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
}

llmrt_cuda_status llmrt_cuda_upload(llmrt_cuda_dev *d, void *dst, const void *src, uint64_t bytes, int sync) {
  if (!bytes) return LLMRT_CUDA_OK;
  bind(d);
  cudaError_t e = cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyHostToDevice, d->stream);
  if (e == cudaSuccess && sync) e = cudaStreamSynchronize(d->stream);
  return e == cudaSuccess ? LLMRT_CUDA_OK : fail(d, e, "host-to-device copy");
}

llmrt_cuda_status llmrt_cuda_download(llmrt_cuda_dev *d, void *dst, const void *src, uint64_t bytes) {
  bind(d);
  cudaError_t e = bytes ? cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToHost, d->stream) : cudaSuccess;
  if (e == cudaSuccess) e = cudaStreamSynchronize(d->stream);
  return e == cudaSuccess ? LLMRT_CUDA_OK : fail(d, e, "device-to-host copy");
}

llmrt_cuda_status llmrt_cuda_sync(llmrt_cuda_dev *d) {
  bind(d);
  cudaError_t e = cudaStreamSynchronize(d->stream);
  return e == cudaSuccess ? LLMRT_CUDA_OK : fail(d, e, "cudaStreamSynchronize");
}

llmrt_cuda_status llmrt_cuda_gemm(llmrt_cuda_dev *d, void *out, llmrt_cuda_dtype out_t, const void *x, const void *w,
                                  llmrt_cuda_dtype in, int64_t rows, int64_t N, int64_t K) {
  if (rows == 0 || N == 0) return LLMRT_CUDA_OK;
  if (rows < 0 || N < 0 || K <= 0 || rows > INT_MAX || N > INT_MAX || K > INT_MAX ||
      (in != LLMRT_CUDA_F32 && in != LLMRT_CUDA_F16 && in != LLMRT_CUDA_BF16) ||
      (out_t != in && out_t != LLMRT_CUDA_F32)) {
    set_msg(d, "gemm: unsupported shape or dtypes (rows %" PRId64 ", N %" PRId64 ", K %" PRId64 ", in %d, out %d)",
            rows, N, K, (int)in, (int)out_t);
    return LLMRT_CUDA_ERR_INVALID;
  }
  bind(d);
  // Row-major out[rows, N] = x[rows, K] · Wᵀ is, column-major, outᵀ (N x rows, ld N) =
  // W (op T of the K x N column-major view of W[N, K], ld K) · xᵀ (K x rows column-major, ld K).
  const float alpha = 1.0f, beta = 0.0f;
  cublasStatus_t bs = cublasGemmEx(d->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)rows, (int)K, &alpha, w,
                                   to_cuda(in), (int)K, x, to_cuda(in), (int)K, &beta, out, to_cuda(out_t), (int)N,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (bs == CUBLAS_STATUS_SUCCESS) return LLMRT_CUDA_OK;
  cudaError_t behind = cudaPeekAtLastError();
  if (is_sticky(behind)) {
    set_msg(d, "cublasGemmEx: %s, after %s (%s)", cublasGetStatusString(bs), cudaGetErrorString(behind),
            cudaGetErrorName(behind));
    return LLMRT_CUDA_ERR_STICKY;
  }
  set_msg(d, "cublasGemmEx [%" PRId64 " x %" PRId64 "] x [%" PRId64 " x %" PRId64 "]^T: %s", rows, K, N, K,
          cublasGetStatusString(bs));
  return bs == CUBLAS_STATUS_INVALID_VALUE || bs == CUBLAS_STATUS_NOT_SUPPORTED ? LLMRT_CUDA_ERR_INVALID
                                                                                : LLMRT_CUDA_ERR_FAILED;
}

// ---- CUDA graphs of the device's stream ----
// Thread-local mode: a prohibited call of this thread (a synchronisation, an allocation) during
// the capture invalidates it, while other threads (another model's loader) are not affected.
llmrt_cuda_status llmrt_cuda_capture_begin(llmrt_cuda_dev *d) {
  bind(d);
  cudaError_t e = cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal);
  return e == cudaSuccess ? LLMRT_CUDA_OK : fail(d, e, "cudaStreamBeginCapture");
}

llmrt_cuda_status llmrt_cuda_capture_end(llmrt_cuda_dev *d, void **graph, int64_t *n_nodes) {
  *graph = nullptr;
  *n_nodes = 0;
  bind(d);
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(d->stream, &g);
  if (e != cudaSuccess) return fail(d, e, "cudaStreamEndCapture");
  size_t n = 0;
  cudaGraphExec_t x = nullptr;
  e = cudaGraphGetNodes(g, nullptr, &n);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&x, g, 0);
  (void)cudaGraphDestroy(g);  // the executable graph does not need it
  if (e != cudaSuccess) return fail(d, e, "cudaGraphInstantiate");
  *graph = (void *)x;
  *n_nodes = (int64_t)n;
  return LLMRT_CUDA_OK;
}

llmrt_cuda_status llmrt_cuda_graph_launch(llmrt_cuda_dev *d, void *graph) {
  bind(d);
  cudaError_t e = cudaGraphLaunch((cudaGraphExec_t)graph, d->stream);
  return e == cudaSuccess ? LLMRT_CUDA_OK : fail(d, e, "cudaGraphLaunch");
}

void llmrt_cuda_graph_destroy(llmrt_cuda_dev *d, void *graph) {
  if (!graph) return;
  bind(d);
  if (cudaGraphExecDestroy((cudaGraphExec_t)graph) != cudaSuccess) (void)cudaGetLastError();
}

llmrt_cuda_status llmrt_cuda_inject_fault(llmrt_cuda_dev *d) {
  bind(d);
  int *bad = reinterpret_cast<int *>(static_cast<uintptr_t>(0x10));  // no allocation owns it
  LAUNCH(llmrt_fault_kernel, 1, 1, 0, d->stream, bad);
  cudaError_t e = cudaGetLastError();  // cusim: the argument check faults at the launch
  if (e == cudaSuccess) e = cudaStreamSynchronize(d->stream);  // a GPU: at the next sync, now
  if (e == cudaSuccess) {
    set_msg(d, "injected fault (llmrt_cuda_options.inject_fault_at): the out-of-bounds write did not fault");
    return LLMRT_CUDA_ERR_FAILED;
  }
  return fail(d, e, "injected fault (llmrt_cuda_options.inject_fault_at)");
}

}  // extern "C"
