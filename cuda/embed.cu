// embed.cu: the embedding gather. out[t, :] = table[tokens[t], :], converted from the table's
// dtype to the output's (fp32 for the backend's residual stream; fp16/bf16 also instantiated).
#include "llmrt_dtype.cuh"

// One block per token; threads stride over the D columns.
template <class TW, class TO>
__global__ void embed_kernel(TO *out,              // [T, D]
                             const TW *table,      // [V, D]
                             const int32_t *tokens,  // [T], each in [0, V)
                             int64_t D) {
  const int64_t t = blockIdx.x;
  const TW *row = table + (int64_t)tokens[t] * D;
  TO *dst = out + t * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) dst[i] = llmrt_from_f32<TO>(llmrt_to_f32(row[i]));
}

extern "C" int llmrt_cuda_embed(void *stream, void *out, llmrt_cuda_dtype out_t, const void *table,
                                llmrt_cuda_dtype table_t, const int32_t *tokens, int32_t n_tokens, int64_t D) {
  if (n_tokens <= 0 || D <= 0) return n_tokens == 0 ? 0 : (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  const int threads = llmrt_row_threads(D);
  LLMRT_DISPATCH(table_t, TW, LLMRT_DISPATCH(out_t, TO,
      LAUNCH((embed_kernel<TW, TO>), n_tokens, threads, 0, s, (TO *)out, (const TW *)table, tokens, D)))
  return (int)cudaGetLastError();
}
