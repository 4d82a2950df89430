// swiglu.cu: the fused SwiGLU of the MLP. out = silu(gate) * up = gate / (1 + exp(-gate)) * up,
// element-wise in fp32 (one rounding to the output type).
#include "llmrt_dtype.cuh"

// Grid-stride over the n = T * F elements; out may alias gate or up (each element is read
// before it is written, by the same thread).
template <class T>
__global__ void swiglu_kernel(T *out,         // [n]
                              const T *gate,  // [n]
                              const T *up,    // [n]
                              int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = llmrt_to_f32(gate[i]), u = llmrt_to_f32(up[i]);
    out[i] = llmrt_from_f32<T>(g / (1.0f + expf(-g)) * u);
  }
}

extern "C" int llmrt_cuda_swiglu(void *stream, llmrt_cuda_dtype t, void *out, const void *gate, const void *up,
                                 int64_t n) {
  if (n <= 0) return n == 0 ? 0 : (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  LLMRT_DISPATCH(t, T,
      LAUNCH(swiglu_kernel<T>, llmrt_flat_blocks(n, 256), 256, 0, s, (T *)out, (const T *)gate, (const T *)up, n))
  return (int)cudaGetLastError();
}
