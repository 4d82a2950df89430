// GPU bugs that the simulator must catch with a clear message and a failed launch: deadlock (with
// every thread's wait site), a barrier after an early exit, barriers in divergent code, a shuffle
// reading outside its mask, a cp.async destination read before the wait (poison -> NaN), a
// misaligned or non-shared ldmatrix, mma with exited lanes, __trap, a host pointer as kernel
// argument. Launch-limit errors (dynamic shared memory over 48 KB without the attribute, too many
// threads, grid too large) are checked in both builds: the GPU must agree with the simulator.
#include "test_util.cuh"
#include "ptx_ops.cuh"

#include <initializer_list>

// (the line numbers the reports must name)
enum { kLineSyncwarp = __LINE__ + 2, kLineBarrier = __LINE__ + 3 };
__global__ void k_deadlock(int *out) {
  if (threadIdx.x == 0) __syncwarp(0x3u);  // lane 1 never joins: it waits at the barrier below
  __syncthreads();
  out[threadIdx.x] = 1;
}

enum { kLineEarly = __LINE__ + 3 };
__global__ void k_early_exit(int *out, int n) {
  if ((int)threadIdx.x >= n) return;  // the classic bug: a return before a barrier
  __syncthreads();
  out[threadIdx.x] = 1;
}

enum { kLineDiv1 = __LINE__ + 2, kLineDiv2 = __LINE__ + 3 };
__global__ void k_divergent_barrier(int *out) {
  if (threadIdx.x < 32) __syncthreads();
  else __syncthreads();
  out[threadIdx.x] = 1;
}

enum { kLineShfl = __LINE__ + 3 };
__global__ void k_shfl_out_of_mask(int *out) {
  int v = (int)threadIdx.x;
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, v, 20);  // lane 20 is not in the mask
}

__global__ void k_cp_async_early_read(const float *src, float *out) {
  __shared__ __align__(16) float s[4 * 32];
  cp_async_cg16(&s[threadIdx.x * 4], src + threadIdx.x * 4);
  cp_async_commit();
  out[threadIdx.x] = s[threadIdx.x * 4];  // BUG: read before cp_async_wait
  cp_async_wait_all();
  __syncthreads();
  out[32 + threadIdx.x] = s[threadIdx.x * 4];
}

__global__ void k_cp_async_no_barrier(const float *src, float *out) {
  __shared__ __align__(16) float s[4 * 32];
  cp_async_cg16(&s[threadIdx.x * 4], src + threadIdx.x * 4);
  cp_async_wait_all();
  out[threadIdx.x] = s[((threadIdx.x + 1) % 32) * 4];  // BUG: another thread's copy, no __syncthreads
}

enum { kLineLdm = __LINE__ + 6 };
__global__ void k_ldmatrix_misaligned(uint32_t *out) {
  __shared__ __align__(16) uint16_t s[8 * 16 + 16];
  for (int i = threadIdx.x; i < 8 * 16 + 16; i += 32) s[i] = (uint16_t)i;
  __syncwarp();
  uint32_t r;
  ldmatrix_x1(r, &s[(threadIdx.x % 8) * 16 + 4]);  // 8 bytes off a 16-byte boundary
  out[threadIdx.x] = r;
}

__global__ void k_ldmatrix_global(const uint16_t *g, uint32_t *out) {
  uint32_t r;
  ldmatrix_x1(r, g + (threadIdx.x % 8) * 8);  // global memory, not shared
  out[threadIdx.x] = r;
}

__global__ void k_mma_partial(float *out) {
  if (threadIdx.x >= 16) return;  // half the warp has exited
  uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  float c[4] = {0, 0, 0, 0}, d[4];
  mma_m16n8k16_f16f32(d, a, b, c);
  out[threadIdx.x] = d[0];
}

__global__ void k_trap(int *out) {
  if (threadIdx.x == 5) __trap();
  out[threadIdx.x] = 1;
}

__global__ void k_dyn(float *out) {
  DYN_SMEM(float, s);
  s[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// Crash modes (`test_negative stack` / `test_negative smem`): the process dies with SIGSEGV; the
// simulator must say why first. (ctest checks the output.)
__global__ void k_stack_hog(int *out, int n) {
  volatile char big[512 * 1024];  // twice the default fiber stack (CUSIM_STACK_KB=256)
  for (int i = 0; i < n; i++) big[i * 4096] = (char)i;
  out[threadIdx.x] = big[threadIdx.x];
}

__global__ void k_smem_overrun(float *out, int n) {
  DYN_SMEM(float, s);
  s[n + 512] = 1.0f;  // 2 KB past the end of the block's dynamic shared memory
  out[threadIdx.x] = s[0];
}

#ifdef CUSIM
// The launch must fail with `want` at the next synchronisation, the report must contain every
// needle, and the error must be sticky until cudaDeviceReset.
static std::string at(int line) { return "test_negative.cu:" + std::to_string(line); }

static void expect_failure(const char *what, cudaError_t want, std::initializer_list<std::string> needles) {
  cudaError_t e = cudaDeviceSynchronize();
  CHECKF(e == want, "%s: cudaDeviceSynchronize returned %s, expected %s", what, cudaGetErrorName(e), cudaGetErrorName(want));
  for (const std::string &n : needles)
    CHECKF(reported(n.c_str()), "%s: the report lacks \"%s\". It was:\n%s", what, n.c_str(), g_reported.c_str());
  void *p = nullptr;
  CHECKF(cudaMalloc(&p, 16) == want, "%s: the error is not sticky", what);
  CHECK(cudaGetLastError() == want);
  CUDA_OK(cudaDeviceReset());
  CUDA_OK(cudaGetLastError());
  printf("ok: %s\n", what);
}

static void test_execution_errors() {
  int *d = nullptr;
  capture_start();
  d = dev_alloc<int>(64);
  LAUNCH(k_deadlock, 1, 64, 0, 0, d);
  CUDA_OK(cudaGetLastError());  // the launch itself is fine; the failure shows at the synchronisation
  expect_failure("deadlock", cudaErrorLaunchFailure,
                 {"deadlock in kernel 'k_deadlock'", "thread 0: waiting at __syncwarp(mask 0x00000003) ",
                  at(kLineSyncwarp), "threads 1-63: waiting at __syncthreads() ", at(kLineBarrier)});

  capture_start();
  d = dev_alloc<int>(64);
  LAUNCH(k_early_exit, 1, 64, 0, 0, d, 40);
  expect_failure("barrier after an early return", cudaErrorLaunchFailure,
                 {"__syncthreads() at ", at(kLineEarly), "every thread of the block must reach every barrier"});

  capture_start();
  d = dev_alloc<int>(64);
  LAUNCH(k_divergent_barrier, 1, 64, 0, 0, d);
  expect_failure("barriers in divergent code", cudaErrorLaunchFailure, {"wait at different barriers", at(kLineDiv1), at(kLineDiv2)});

  capture_start();
  d = dev_alloc<int>(32);
  LAUNCH(k_shfl_out_of_mask, 1, 32, 0, 0, d);
  expect_failure("shuffle outside its mask", cudaErrorLaunchFailure,
                 {"__shfl_sync(mask 0x0000ffff) at ", at(kLineShfl), "reads lane 20, which is not in the mask"});

  capture_start();
  uint32_t *u = dev_alloc<uint32_t>(32);
  LAUNCH(k_ldmatrix_misaligned, 1, 32, 0, 0, u);
  expect_failure("misaligned ldmatrix", cudaErrorMisalignedAddress, {"ldmatrix at ", at(kLineLdm), "not 16-byte aligned"});

  capture_start();
  uint16_t *g = dev_alloc<uint16_t>(64);
  u = dev_alloc<uint32_t>(32);
  LAUNCH(k_ldmatrix_global, 1, 32, 0, 0, g, u);
  expect_failure("ldmatrix from global memory", cudaErrorIllegalAddress, {"is not shared memory", "device block"});

  capture_start();
  float *f = dev_alloc<float>(32);
  LAUNCH(k_mma_partial, 1, 32, 0, 0, f);
  expect_failure("mma with exited lanes", cudaErrorLaunchFailure, {"needs all 32 lanes", "0xffff0000"});

  capture_start();
  d = dev_alloc<int>(32);
  LAUNCH(k_trap, 1, 32, 0, 0, d);
  expect_failure("__trap", cudaErrorLaunchFailure, {"__trap() at ", "thread (5,0,0)"});

  capture_start();
  std::vector<int> host(32);
  LAUNCH(k_trap, 1, 32, 0, 0, host.data());  // a host pointer as kernel argument
  expect_failure("host pointer argument", cudaErrorIllegalAddress, {"pointer argument 0", "is not device memory"});
}

// Reading a cp.async destination too early yields the poison pattern: NaN as float.
static void test_cp_async_poison() {
  std::vector<float> src(128);
  for (int i = 0; i < 128; i++) src[i] = (float)i;
  float *dsrc = to_dev(src), *dout = dev_alloc<float>(64);
  LAUNCH(k_cp_async_early_read, 1, 32, 0, 0, dsrc, dout);
  KERNEL_OK();
  std::vector<float> h = to_host(dout, 64);
  int nan_early = 0, right_late = 0;
  for (int t = 0; t < 32; t++) { nan_early += std::isnan(h[t]); right_late += h[32 + t] == src[t * 4]; }
  CHECKF(nan_early == 32, "read before cp_async_wait: %d of 32 reads are NaN", nan_early);
  CHECKF(right_late == 32, "read after wait + __syncthreads: %d of 32 right", right_late);
  LAUNCH(k_cp_async_no_barrier, 1, 32, 0, 0, dsrc, dout);
  KERNEL_OK();
  h = to_host(dout, 32);
  nan_early = 0;
  for (int t = 0; t < 32; t++) nan_early += std::isnan(h[t]);
  // lanes run one after another: every read of a later lane's (not yet waited) copy is NaN
  CHECKF(nan_early >= 1, "another thread's cp.async data without __syncthreads: %d of 32 reads are NaN", nan_early);
  printf("ok: cp.async poison\n");
  cudaFree(dsrc); cudaFree(dout);
}

static void test_api_misuse() {
  capture_start();
  std::vector<float> host(16);
  float *d = dev_alloc<float>(16);
  CHECK(cudaMemcpy(host.data(), d, 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // kind reversed
  CHECK(reported("cudaMemcpyHostToDevice, but the destination"));
  CHECK(cudaMemcpy(d, host.data(), 128, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // overrun
  CHECK(reported("overruns its allocation"));
  CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);
  CHECK(cudaFree(d + 1) == cudaErrorInvalidValue);
  CHECK(reported("is not the start of a live cudaMalloc allocation"));
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);  // not sticky: cleared by the read
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaFree(d));
  CHECK(cudaFree(d) == cudaErrorInvalidValue);  // double free
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CUDA_OK(cudaGetLastError());
  printf("ok: runtime API misuse\n");
}
#endif

// Launch limits: checked in both builds (a GPU must give the same errors).
static void test_launch_limits() {
#ifdef CUSIM
  capture_start();
#endif
  float *d = dev_alloc<float>(1024);
  LAUNCH(k_dyn, 1, 128, 64 * 1024, 0, d);  // 64 KB without cudaFuncSetAttribute
  cudaError_t e = cudaGetLastError();
  CHECKF(e == cudaErrorInvalidValue, "64 KB dynamic shared memory without the attribute: %s", cudaGetErrorName(e));
#ifdef CUSIM
  CHECK(reported("cudaFuncAttributeMaxDynamicSharedMemorySize"));
#endif
  CUDA_OK(cudaDeviceSynchronize());  // not sticky
  CUDA_OK(cudaFuncSetAttribute(k_dyn, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
  LAUNCH(k_dyn, 1, 128, 64 * 1024, 0, d);
  KERNEL_OK();
  std::vector<float> h = to_host(d, 128);
  CHECK(h[0] == 1.0f && h[127] == 0.0f);

  // (the error codes are those an H100 with CUDA 13 returns)
  LAUNCH(k_dyn, 1, 1025, 0, 0, d);
  e = cudaGetLastError();
  CHECKF(e == cudaErrorInvalidValue, "1025 threads: %s", cudaGetErrorName(e));
  LAUNCH(k_dyn, 1, dim3(1, 1, 65), 0, 0, d);
  e = cudaGetLastError();
  CHECKF(e == cudaErrorInvalidValue, "block z = 65: %s", cudaGetErrorName(e));
  LAUNCH(k_dyn, dim3(1, 65536), 32, 0, 0, d);
  e = cudaGetLastError();
  CHECKF(e == cudaErrorInvalidValue, "grid y = 65536: %s", cudaGetErrorName(e));
  LAUNCH(k_dyn, 0, 32, 0, 0, d);
  e = cudaGetLastError();
  CHECKF(e == cudaErrorInvalidValue, "empty grid: %s", cudaGetErrorName(e));
  CUDA_OK(cudaDeviceSynchronize());
  cudaFree(d);
  printf("ok: launch limits\n");
}

int main(int argc, char **argv) {
  require_device();
#ifdef CUSIM
  if (argc > 1) {  // crash modes
    int *d = dev_alloc<int>(1024);
    if (std::string(argv[1]) == "stack") LAUNCH(k_stack_hog, 1, 32, 0, 0, d, 128);
    else LAUNCH(k_smem_overrun, 1, 32, 1024, 0, (float *)d, 256);
    cudaDeviceSynchronize();
    printf("no crash\n");
    return 1;
  }
#else
  (void)argc; (void)argv;
#endif
  test_launch_limits();
#ifdef CUSIM
  test_execution_errors();
  test_cp_async_poison();
  test_api_misuse();
#else
  printf("the execution-error cases need the simulator (on a GPU they hang or corrupt the context)\n");
#endif
  return test_summary("test_negative");
}
