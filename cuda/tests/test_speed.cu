// Speed (printed, not asserted): the cost of a 256-thread block barrier, a full-warp shuffle, an
// empty 256-thread block and, under cusim, one fiber switch. On a GPU the same kernels report clock64
// cycles per operation.
#include "test_util.cuh"

#include <algorithm>
#include <chrono>

__global__ void k_barriers(int iters, long long *cycles) {
  long long t0 = clock64();
  for (int i = 0; i < iters; i++) __syncthreads();
  if (threadIdx.x == 0) *cycles = clock64() - t0;
}

__global__ void k_shuffles(int iters, float *out, long long *cycles) {
  float v = (float)threadIdx.x;
  long long t0 = clock64();
  for (int i = 0; i < iters; i++) v += __shfl_xor_sync(0xffffffffu, v, i & 31);
  if (threadIdx.x == 0) *cycles = clock64() - t0;
  out[threadIdx.x] = v;
}

__global__ void k_empty(float *out) {
  if (threadIdx.x == 0) out[blockIdx.x] = 1.0f;
}

// Best of 5 runs after a warm-up (stacks, executor thread): CI machines are noisy.
static double time_us(void (*launch)(void *), void *arg) {
  launch(arg);
  CUDA_OK(cudaDeviceSynchronize());
  double best = 1e30;
  for (int rep = 0; rep < 5; rep++) {
    auto t0 = std::chrono::steady_clock::now();
    launch(arg);
    CUDA_OK(cudaDeviceSynchronize());
    best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

struct Args { int iters; float *out; long long *cycles; };

int main() {
  require_device();
  float *out = dev_alloc<float>(4096);
  long long *cycles = dev_alloc<long long>(1);
  Args a{2000, out, cycles};
#ifdef CUSIM
  double sw = 1e30;
  for (int rep = 0; rep < 5; rep++) sw = std::min(sw, cusim_measure_switch_ns(400000));
  printf("fiber switch: %.1f ns\n", sw);
#endif
  double us = time_us([](void *p) { Args *x = (Args *)p; LAUNCH(k_barriers, 1, 256, 0, 0, x->iters, x->cycles); }, &a);
  long long cyc = 0;
  CUDA_OK(cudaMemcpy(&cyc, cycles, sizeof cyc, cudaMemcpyDeviceToHost));
  printf("256-thread __syncthreads: %.2f us each (wall), %.1f clock64 ticks each\n", us / a.iters, (double)cyc / a.iters);
  a.iters = 20000;
  us = time_us([](void *p) { Args *x = (Args *)p; LAUNCH(k_shuffles, 1, 32, 0, 0, x->iters, x->out, x->cycles); }, &a);
  CUDA_OK(cudaMemcpy(&cyc, cycles, sizeof cyc, cudaMemcpyDeviceToHost));
  printf("full-warp __shfl_xor_sync: %.3f us each (wall), %.1f clock64 ticks each\n", us / a.iters, (double)cyc / a.iters);
  us = time_us([](void *p) { Args *x = (Args *)p; LAUNCH(k_empty, 4096, 256, 0, 0, x->out); }, &a);
  printf("empty 256-thread block: %.2f us each (4096 blocks)\n", us / 4096);
  cudaFree(out);
  cudaFree(cycles);
  return test_summary("test_speed");
}
