// elementwise.cu: small element-wise ops of the CUDA backend: the residual add, the gather of the
// output rows (whose logits are wanted), dtype conversion, and the bias add after a GEMM.
#include "llmrt_dtype.cuh"

// x[i] += delta[i], grid-stride; x is the fp32 residual stream.
template <class TD>
__global__ void add_kernel(float *x,          // [n]
                           const TD *delta,   // [n]
                           int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) x[i] += llmrt_to_f32(delta[i]);
}

// out[r, :] = x[rows[r], :]; one block per output row.
template <class T>
__global__ void gather_rows_kernel(T *out,              // [n_rows, D]
                                   const T *x,          // [T, D]
                                   const int32_t *rows,  // [n_rows], each in [0, T)
                                   int64_t D) {
  const int64_t r = blockIdx.x;
  const T *src = x + (int64_t)rows[r] * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) out[r * D + i] = src[i];
}

// out[i] = (TO) in[i], grid-stride.
template <class TI, class TO>
__global__ void convert_kernel(TO *out,        // [n]
                               const TI *in,   // [n]
                               int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = llmrt_from_f32<TO>(llmrt_to_f32(in[i]));
}

// out[r, c] += bias[c]; one block per row (rounded once to T).
template <class T>
__global__ void add_bias_kernel(T *out,             // [rows, N]
                                const float *bias,  // [N]
                                int64_t N) {
  T *o = out + (int64_t)blockIdx.x * N;
  for (int64_t c = threadIdx.x; c < N; c += blockDim.x) o[c] = llmrt_from_f32<T>(llmrt_to_f32(o[c]) + bias[c]);
}

extern "C" int llmrt_cuda_add(void *stream, float *x, const void *delta, llmrt_cuda_dtype delta_t, int64_t n) {
  if (n <= 0) return n == 0 ? 0 : (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  LLMRT_DISPATCH(delta_t, TD, LAUNCH(add_kernel<TD>, llmrt_flat_blocks(n, 256), 256, 0, s, x, (const TD *)delta, n))
  return (int)cudaGetLastError();
}

extern "C" int llmrt_cuda_gather_rows(void *stream, llmrt_cuda_dtype t, void *out, const void *x, const int32_t *rows,
                                      int32_t n_rows, int64_t D) {
  if (n_rows <= 0 || D <= 0) return n_rows == 0 ? 0 : (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  LLMRT_DISPATCH(t, T,
      LAUNCH(gather_rows_kernel<T>, n_rows, llmrt_row_threads(D), 0, s, (T *)out, (const T *)x, rows, D))
  return (int)cudaGetLastError();
}

extern "C" int llmrt_cuda_convert(void *stream, void *out, llmrt_cuda_dtype out_t, const void *in,
                                  llmrt_cuda_dtype in_t, int64_t n) {
  if (n <= 0) return n == 0 ? 0 : (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  LLMRT_DISPATCH(in_t, TI, LLMRT_DISPATCH(out_t, TO,
      LAUNCH((convert_kernel<TI, TO>), llmrt_flat_blocks(n, 256), 256, 0, s, (TO *)out, (const TI *)in, n)))
  return (int)cudaGetLastError();
}

extern "C" int llmrt_cuda_add_bias(void *stream, void *out, llmrt_cuda_dtype t, const float *bias, int64_t rows,
                                   int64_t N) {
  if (rows <= 0 || N <= 0) return rows == 0 ? 0 : (int)cudaErrorInvalidValue;
  if (rows > 2147483647) return (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  LLMRT_DISPATCH(t, T, LAUNCH(add_bias_kernel<T>, (unsigned)rows, llmrt_row_threads(N), 0, s, (T *)out, bias, N))
  return (int)cudaGetLastError();
}
