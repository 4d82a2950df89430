// The runtime subset: devices and properties (CUSIM_DEVICE, CUSIM_DEVICE_COUNT, CUSIM_MEM_BYTES),
// memory and copies, streams and events (cudaStreamWaitEvent, the legacy default stream), deferred
// execution (a missing synchronisation shows stale data), host functions, function attributes,
// error strings and the last-error rules.
#include "test_util.cuh"

#include <string>

__global__ void k_fill(float *p, float v, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = v + (float)(i % 3);
}

__global__ void k_add(const float *a, float *b, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) b[i] += a[i];
}

static void test_devices() {
  int n = 0;
  CUDA_OK(cudaGetDeviceCount(&n));
  cudaDeviceProp p;
  CUDA_OK(cudaGetDeviceProperties(&p, 0));
  printf("%d device(s); device 0: %s, sm_%d%d, %d SMs, %.1f GiB, %zu bytes smem/block opt-in\n", n, p.name, p.major,
         p.minor, p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, p.sharedMemPerBlockOptin);
  CHECK(p.major >= 8 && p.warpSize == 32 && p.maxThreadsPerBlock == 1024 && p.sharedMemPerBlock == 49152);
#ifdef CUSIM
  const char *dev = getenv("CUSIM_DEVICE"), *cnt = getenv("CUSIM_DEVICE_COUNT"), *mem = getenv("CUSIM_MEM_BYTES");
  bool h100 = dev && std::string(dev) == "h100";
  CHECK(n == (cnt ? atoi(cnt) : 1));
  CHECK(p.major == (h100 ? 9 : 8) && p.minor == 0);
  CHECK(p.multiProcessorCount == (h100 ? 132 : 108));
  CHECK(p.sharedMemPerBlockOptin == (h100 ? 232448u : 166912u));
  CHECK(std::string(p.name).find(h100 ? "H100" : "A100") != std::string::npos);
  size_t want = 80ull << 30;
  if (mem) want = strtoull(mem, nullptr, 0) << (strchr(mem, 'G') ? 30 : strchr(mem, 'M') ? 20 : 0);
  CHECK(p.totalGlobalMem == want);
#endif
  int sms = 0, optin = 0;
  CUDA_OK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CUDA_OK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
  CHECK(sms == p.multiProcessorCount && (size_t)optin == p.sharedMemPerBlockOptin);

  size_t free0, total, free1;
  CUDA_OK(cudaMemGetInfo(&free0, &total));
  CHECK(total == p.totalGlobalMem);
  void *big = nullptr;
  CUDA_OK(cudaMalloc(&big, 64 << 20));
  CUDA_OK(cudaMemGetInfo(&free1, &total));
  CHECK(free1 <= free0 - (64 << 20) + (8 << 20));  // a real GPU's free memory moves under us a little
  CUDA_OK(cudaFree(big));
  CHECK(cudaMalloc(&big, total + 1) == cudaErrorMemoryAllocation);
  CHECK(cudaGetLastError() == cudaErrorMemoryAllocation);
  CUDA_OK(cudaGetLastError());

  CHECK(cudaSetDevice(n) == cudaErrorInvalidDevice);
  CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
  for (int d = 0; d < n; d++) {  // every device works and keeps its own allocations
    int cur = -1;
    CUDA_OK(cudaSetDevice(d));
    CUDA_OK(cudaGetDevice(&cur));
    CHECK(cur == d);
    float *x = dev_alloc<float>(256);
    LAUNCH(k_fill, 1, 256, 0, 0, x, (float)d, 256);
    KERNEL_OK();
    std::vector<float> h = to_host(x, 256);
    CHECK(h[0] == (float)d && h[255] == (float)d);
    CUDA_OK(cudaFree(x));
  }
  CUDA_OK(cudaSetDevice(0));
}

static void test_copies() {
  const int n = 1000;
  std::vector<float> h(n), back(n);
  for (int i = 0; i < n; i++) h[i] = (float)i * 0.5f;
  float *a = dev_alloc<float>(n), *b = dev_alloc<float>(n);
  CUDA_OK(cudaMemcpy(a, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(b, a, n * sizeof(float), cudaMemcpyDeviceToDevice));
  CUDA_OK(cudaMemcpy(back.data(), b, n * sizeof(float), cudaMemcpyDeviceToHost));
  CHECK(back == h);
  CUDA_OK(cudaMemset(b, 0, n * sizeof(float)));
  CUDA_OK(cudaMemcpy(back.data(), b, n * sizeof(float), cudaMemcpyDefault));
  CHECK(back == std::vector<float>(n, 0.0f));
  // a pageable source may be reused as soon as cudaMemcpyAsync returns (CUDA stages it)
  std::vector<float> staged(n, 5.0f);
  CUDA_OK(cudaMemcpyAsync(a, staged.data(), n * sizeof(float), cudaMemcpyHostToDevice, 0));
  for (float &x : staged) x = -1.0f;
  CUDA_OK(cudaMemcpy(back.data(), a, n * sizeof(float), cudaMemcpyDeviceToHost));
  CHECK(back == std::vector<float>(n, 5.0f));
  cudaPointerAttributes pa;
  CUDA_OK(cudaPointerGetAttributes(&pa, a));
  CHECK(pa.type == cudaMemoryTypeDevice && pa.device == 0);
  cudaFree(a);
  cudaFree(b);
}

static void host_callback(void *p) { *static_cast<int *>(p) = 42; }

static void test_streams() {
  const int n = 4096, blocks = n / 256;
  cudaStream_t s1, s2;
  cudaEvent_t produced, t0, t1;
  CUDA_OK(cudaStreamCreate(&s1));
  CUDA_OK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  CUDA_OK(cudaEventCreate(&produced));
  CUDA_OK(cudaEventCreate(&t0));
  CUDA_OK(cudaEventCreate(&t1));
  float *a = dev_alloc<float>(n), *b = dev_alloc<float>(n);
  CUDA_OK(cudaMemset(b, 0, n * sizeof(float)));
  CUDA_OK(cudaDeviceSynchronize());
  // s2 consumes what s1 produces: ordered by the event
  CUDA_OK(cudaEventRecord(t0, s1));
  LAUNCH(k_fill, blocks, 256, 0, s1, a, 10.0f, n);
  CUDA_OK(cudaEventRecord(produced, s1));
  CUDA_OK(cudaStreamWaitEvent(s2, produced, 0));
  LAUNCH(k_add, blocks, 256, 0, s2, a, b, n);
  CUDA_OK(cudaEventRecord(t1, s2));
  CUDA_OK(cudaStreamSynchronize(s2));
  std::vector<float> h = to_host(b, n);
  int bad = 0;
  for (int i = 0; i < n; i++) bad += h[i] != 10.0f + (float)(i % 3);
  CHECKF(bad == 0, "cudaStreamWaitEvent ordering: %d wrong", bad);
  float ms = -1;
  CUDA_OK(cudaEventSynchronize(t1));
  CUDA_OK(cudaEventElapsedTime(&ms, t0, t1));
  CHECK(ms >= 0);

  // the legacy default stream waits for blocking streams: a plain cudaMemcpy sees s1's kernel
  LAUNCH(k_fill, blocks, 256, 0, s1, a, 3.0f, n);
  h = to_host(a, n);
  CHECK(h[0] == 3.0f && h[n - 1] == 3.0f + (float)((n - 1) % 3));

  // a host function runs in stream order
  int flag = 0;
  LAUNCH(k_fill, blocks, 256, 0, s1, a, 1.0f, n);
  CUDA_OK(cudaLaunchHostFunc(s1, host_callback, &flag));
  CUDA_OK(cudaStreamSynchronize(s1));
  CHECK(flag == 42);

  // Deferred execution: without a synchronisation the host sees stale data. On a GPU this is a race
  // (usually also stale); the simulator makes it certain, so that the missing sync fails the test.
  float *pinned = nullptr;
  CUDA_OK(cudaMallocHost((void **)&pinned, n * sizeof(float)));
  for (int i = 0; i < n; i++) pinned[i] = -1.0f;
  LAUNCH(k_fill, blocks, 256, 0, s1, a, 7.0f, n);
  CUDA_OK(cudaMemcpyAsync(pinned, a, n * sizeof(float), cudaMemcpyDeviceToHost, s1));
#ifdef CUSIM
  CHECKF(pinned[0] == -1.0f && pinned[n - 1] == -1.0f, "stale data expected before the synchronisation");
#endif
  CUDA_OK(cudaStreamSynchronize(s1));
  CHECK(pinned[0] == 7.0f && pinned[n - 1] == 7.0f + (float)((n - 1) % 3));
  CUDA_OK(cudaFreeHost(pinned));
  // into pageable memory an async copy completes before returning (CUDA's documented behaviour)
  std::vector<float> pageable(n, -1.0f);
  LAUNCH(k_fill, blocks, 256, 0, s1, a, 9.0f, n);
  CUDA_OK(cudaMemcpyAsync(pageable.data(), a, n * sizeof(float), cudaMemcpyDeviceToHost, s1));
  CHECK(pageable[0] == 9.0f && pageable[n - 1] == 9.0f + (float)((n - 1) % 3));
  // an event recorded on the legacy stream while a blocking stream has work still gets its time
  cudaEvent_t e0;
  CUDA_OK(cudaEventCreate(&e0));
  LAUNCH(k_fill, blocks, 256, 0, s1, a, 1.0f, n);
  CUDA_OK(cudaEventRecord(e0, 0));
  CUDA_OK(cudaEventRecord(t1, 0));
  CUDA_OK(cudaEventSynchronize(t1));
  CUDA_OK(cudaEventElapsedTime(&ms, e0, t1));
  CHECK(ms >= 0);
  CUDA_OK(cudaEventDestroy(e0));

  CUDA_OK(cudaStreamQuery(s1));
  CUDA_OK(cudaEventQuery(produced));
  CUDA_OK(cudaStreamDestroy(s1));
  CUDA_OK(cudaStreamDestroy(s2));
  CUDA_OK(cudaEventDestroy(produced));
  CUDA_OK(cudaEventDestroy(t0));
  CUDA_OK(cudaEventDestroy(t1));
  cudaFree(a);
  cudaFree(b);
}

__global__ void k_dyn(float *p) {
  DYN_SMEM(float, s);
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  p[threadIdx.x] = s[threadIdx.x];
}

static void test_attributes_and_errors() {
  cudaFuncAttributes fa;
  CUDA_OK(cudaFuncGetAttributes(&fa, k_dyn));
  CHECK(fa.maxThreadsPerBlock > 0 && fa.maxDynamicSharedSizeBytes == 48 * 1024);
  CUDA_OK(cudaFuncSetAttribute(k_dyn, cudaFuncAttributeMaxDynamicSharedMemorySize, 100000));
  CUDA_OK(cudaFuncGetAttributes(&fa, k_dyn));
  CHECK(fa.maxDynamicSharedSizeBytes == 100000);
  cudaDeviceProp p;
  CUDA_OK(cudaGetDeviceProperties(&p, 0));
  CHECK(cudaFuncSetAttribute(k_dyn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.sharedMemPerBlockOptin + 1) ==
        cudaErrorInvalidValue);
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);  // peek does not clear
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CUDA_OK(cudaGetLastError());
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidValue)) == "invalid argument");
  CHECK(std::string(cudaGetErrorName(cudaErrorLaunchFailure)) == "cudaErrorLaunchFailure");
  CHECK(std::string(cudaGetErrorString(cudaErrorMemoryAllocation)) == "out of memory");
  int rt = 0;
  CUDA_OK(cudaRuntimeGetVersion(&rt));
  CHECK(rt >= 12000);
}

int main() {
  require_device();
  test_devices();
  test_copies();
  test_streams();
  test_attributes_and_errors();
  return test_summary("test_runtime");
}
