// test_util.cuh: tiny helpers shared by the cuda/ tests. Every test builds twice: under cusim
// (-DCUSIM, g++) and with nvcc as a real CUDA program. Checks compare against CPU references
// computed here, never against the simulator's own output.
#ifndef LLMRT_TEST_UTIL_CUH
#define LLMRT_TEST_UTIL_CUH

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include "launch.cuh"

static std::atomic<int> g_checks{0}, g_failed{0};  // tests may check from several host threads

#define CHECK(cond)                                                                  \
  do {                                                                               \
    g_checks++;                                                                      \
    if (!(cond)) {                                                                   \
      g_failed++;                                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
    }                                                                                \
  } while (0)

#define CHECKF(cond, ...)                                                            \
  do {                                                                               \
    g_checks++;                                                                      \
    if (!(cond)) {                                                                   \
      g_failed++;                                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);       \
      fprintf(stderr, __VA_ARGS__);                                                  \
      fputc('\n', stderr);                                                           \
    }                                                                                \
  } while (0)

#define CUDA_OK(expr)                                                                              \
  do {                                                                                             \
    cudaError_t e_ = (expr);                                                                       \
    g_checks++;                                                                                    \
    if (e_ != cudaSuccess) {                                                                       \
      g_failed++;                                                                                  \
      fprintf(stderr, "%s:%d: %s failed: %s (%d)\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_), (int)e_); \
    }                                                                                              \
  } while (0)

// Launch-and-check: the launch itself and the kernel's execution.
#define KERNEL_OK() CUDA_OK(cudaGetLastError()); CUDA_OK(cudaDeviceSynchronize())

static inline int test_summary(const char *name) {
  printf("%s: %d checks, %d failed\n", name, g_checks.load(), g_failed.load());
  return g_failed ? 1 : 0;
}

// Skip (ctest SKIP_RETURN_CODE 77) when there is no device, e.g. the nvcc build on a machine without GPU.
static inline void require_device(int n = 1) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count < n) {
    printf("SKIP: needs %d CUDA device(s), found %d\n", n, count);
    exit(77);
  }
}

template <class T> T *dev_alloc(size_t n) {
  T *p = nullptr;
  CUDA_OK(cudaMalloc((void **)&p, n * sizeof(T) + (n == 0)));
  return p;
}
template <class T> T *to_dev(const std::vector<T> &h) {
  T *p = dev_alloc<T>(h.size());
  CUDA_OK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}
template <class T> std::vector<T> to_host(const T *d, size_t n) {
  std::vector<T> h(n);
  CUDA_OK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

// Deterministic pseudo-random numbers (xorshift).
struct Rng {
  unsigned long long s;
  explicit Rng(unsigned long long seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  unsigned next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (unsigned)(s >> 11); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next() & 0xffffff) / 16777216.0f; }
  int range(int lo, int hi) { return lo + (int)(next() % (unsigned)(hi - lo + 1)); }
};

#ifdef CUSIM
// Negative tests: capture what the simulator reports.
static std::string g_reported;
static inline void capture_hook(const char *msg, void *) { g_reported += msg; g_reported += '\n'; }
static inline void capture_start() { g_reported.clear(); cusim_set_error_hook(capture_hook, nullptr); }
static inline bool reported(const char *needle) { return g_reported.find(needle) != std::string::npos; }
#endif

#endif  // LLMRT_TEST_UTIL_CUH
