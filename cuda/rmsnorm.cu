// rmsnorm.cu: RMSNorm fused with the residual add. Per row: x += delta (optional); then
// out = w * (x / sqrt(mean(x^2) + eps)). The residual stream x is fp32 (the backend keeps it
// there: no rounding of the running sum across layers); all math in fp32 with a fixed
// reduction order, so a row's result never depends on the other rows of the batch.
#include "llmrt_dtype.cuh"

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the same
// value, reduced in the same order whatever the row.
__device__ __forceinline__ float rmsnorm_block_sum(float v) {
  __shared__ float rmsnorm_partial[32];
  v = llmrt_warp_sum(v);
  const int warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) rmsnorm_partial[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < n_warps; w++) total += rmsnorm_partial[w];
  return total;
}

// One block per row.
template <class TD, class TO>
__global__ void add_rmsnorm_kernel(TO *out,          // [T, D]
                                   float *x,         // [T, D] residual, updated in place
                                   const TD *delta,  // [T, D] or NULL
                                   const float *w,   // [D]
                                   int64_t D, float eps) {
  const int64_t t = blockIdx.x;
  float *xr = x + t * D;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    float v = xr[i];
    if (delta) {
      v += llmrt_to_f32(delta[t * D + i]);
      xr[i] = v;
    }
    ss += v * v;
  }
  ss = rmsnorm_block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / (float)D + eps);
  TO *o = out + t * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) o[i] = llmrt_from_f32<TO>(w[i] * (xr[i] * inv));
}

extern "C" int llmrt_cuda_add_rmsnorm(void *stream, void *out, llmrt_cuda_dtype out_t, float *x, const void *delta,
                                      llmrt_cuda_dtype delta_t, const float *w, int32_t n_tokens, int64_t D,
                                      float eps) {
  if (n_tokens <= 0 || D <= 0) return n_tokens == 0 ? 0 : (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  const int threads = llmrt_row_threads(D);
  LLMRT_DISPATCH(delta_t, TD, LLMRT_DISPATCH(out_t, TO,
      LAUNCH((add_rmsnorm_kernel<TD, TO>), n_tokens, threads, 0, s, (TO *)out, x, (const TD *)delta, w, D, eps)))
  return (int)cudaGetLastError();
}
