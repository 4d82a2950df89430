// Race detection (the ThreadSanitizer build, CUSIM_TSAN): `test_race smem` runs a kernel that lacks
// the __syncthreads between writing and reading shared memory, `test_race global` one whose threads
// exchange global memory without a barrier; TSan must report both ("data race ... test_race.cu").
// Without an argument it runs correct kernels (barriers, __syncwarp, shuffles, atomics, cp.async),
// which must produce no report. The plain builds (cusim, nvcc) run the correct kernels.
#include "test_util.cuh"
#include "ptx_ops.cuh"

__global__ void k_smem_racy(const float *in, float *out) {
  __shared__ float s[128];
  s[threadIdx.x] = in[threadIdx.x];
  // BUG: a __syncthreads() is missing here
  out[threadIdx.x] = s[127 - threadIdx.x];
}

__global__ void k_global_racy(float *buf) {
  buf[threadIdx.x] = (float)threadIdx.x;
  // BUG: another thread's value is read without a barrier
  buf[128 + threadIdx.x] = buf[(threadIdx.x + 1) % 128];
}

__global__ void k_clean(const float *in, float *out, float *buf, int *counter) {
  __shared__ float s[128];
  __shared__ __align__(16) float staged[128];
  int t = threadIdx.x, lane = t % 32;
  s[t] = in[t];
  __syncthreads();
  float v = s[127 - t];
  buf[t] = v;  // global memory, ordered by the barrier below
  __syncthreads();
  v += buf[(t + 1) % 128];
  if (lane < 31) s[t] = v;  // warp-level exchange through shared memory, ordered by __syncwarp
  __syncwarp();
  if (lane == 31) s[t] = s[t - 1];
  __syncwarp();
  v += __shfl_xor_sync(0xffffffffu, s[t], 1);
  atomicAdd(counter, 1);
  if (t % 4 == 0) cp_async_ca<16>(&staged[t], &in[t]);
  cp_async_wait_all();
  __syncthreads();
  out[t] = v + staged[t / 4 * 4];
}

int main(int argc, char **argv) {
  require_device();
  std::string mode = argc > 1 ? argv[1] : "clean";
  std::vector<float> in(128);
  for (int i = 0; i < 128; i++) in[i] = (float)i;
  float *din = to_dev(in), *dout = dev_alloc<float>(128), *buf = dev_alloc<float>(256);
  int *counter = dev_alloc<int>(1);
  CUDA_OK(cudaMemset(counter, 0, sizeof(int)));
  if (mode == "smem") LAUNCH(k_smem_racy, 1, 128, 0, 0, din, dout);
  else if (mode == "global") LAUNCH(k_global_racy, 1, 128, 0, 0, buf);
  else LAUNCH(k_clean, 2, 128, 0, 0, din, dout, buf, counter);
  KERNEL_OK();
  if (mode == "clean") {
    std::vector<float> h = to_host(dout, 128);
    int c = 0;
    CUDA_OK(cudaMemcpy(&c, counter, sizeof c, cudaMemcpyDeviceToHost));
    CHECK(c == 256);
    int bad = 0;
    for (int t = 0; t < 128; t++) {
      auto val = [&](int u) {  // v after the first two steps, for thread u
        return (float)(127 - u) + (float)(127 - (u + 1) % 128);
      };
      int lane = t % 32;
      auto s_after = [&](int u) { return u % 32 < 31 ? val(u) : val(u - 1); };
      float ref = val(t) + s_after(lane % 2 ? t - 1 : t + 1) + (float)(t / 4 * 4);
      bad += h[t] != ref;
    }
    CHECKF(bad == 0, "the correct kernel computed %d wrong values", bad);
  }
  cudaFree(din); cudaFree(dout); cudaFree(buf); cudaFree(counter);
  return test_summary("test_race");
}
