// attention_naive.cu: the reference attention over the paged KV cache. One warp per (token,
// query head); lane l owns the head dimensions l, l + 32, ...; positions 0..pos of the token's
// sequence (the last `window` of them under a sliding window) are visited in order with an online softmax (running max, rescaled sum and output),
// each score a warp-wide dot product. fp32 math. Slow (one shuffle reduction per position) but
// simple, any head dim up to 256 and any block size: it runs the head dims the flash kernels
// (attention.h) do not instantiate, and serves as their end-to-end cross-check.
#include "kv8.cuh"
#include "llmrt_dtype.cuh"

#define ATTN_NAIVE_WARPS 4   // warps (items) per block
#define ATTN_NAIVE_MAX_DPL 8 // head dims per lane: hd <= 256

// How the kernel reads the cache: the activation dtype, or an 8-bit pool (kv8.cuh), each value
// scale * code in fp32 (the scale of a (position, kv head) read once per position).
template <class T, int KV> struct KvRead {
  const void *base;
  int64_t kv_w; // Hkv * hd
  int hd;
  __device__ __forceinline__ const T *row(int64_t slot, int kvh) const {
    return static_cast<const T *>(base) + slot * kv_w + (int64_t)kvh * hd;
  }
  __device__ __forceinline__ float scale(int64_t, int) const { return 1.0f; }
  __device__ __forceinline__ float at(const T *r, int d, float) const { return llmrt_to_f32(r[d]); }
};
template <class T> struct KvRead8 {
  const void *base;
  kv8::Layout L;
  __device__ __forceinline__ const uint8_t *row(int64_t slot, int kvh) const {
    return static_cast<const uint8_t *>(base) + L.codes(slot, kvh);
  }
  __device__ __forceinline__ float scale(int64_t slot, int kvh) const {
    return *reinterpret_cast<const float *>(static_cast<const uint8_t *>(base) + L.scale(slot, kvh));
  }
};
template <class T> struct KvRead<T, LLMRT_CUDA_KV_INT8> : KvRead8<T> {
  __device__ __forceinline__ float at(const uint8_t *r, int d, float s) const {
    return s * kv8::decode<LLMRT_CUDA_KV_INT8>(r[d]);
  }
};
template <class T> struct KvRead<T, LLMRT_CUDA_KV_FP8> : KvRead8<T> {
  __device__ __forceinline__ float at(const uint8_t *r, int d, float s) const {
    return s * kv8::decode<LLMRT_CUDA_KV_FP8>(r[d]);
  }
};

template <class T, int KV>
__global__ void attention_naive_kernel(T *out,                      // [T, Hq*hd]
                                       const T *q,                  // [T, Hq*hd]
                                       KvRead<T, KV> kc,            // K: [n_slots, Hkv*hd] or a pool
                                       KvRead<T, KV> vc,            // V: the same
                                       const int32_t *positions,    // [T]
                                       const int32_t *seq_of,       // [T] block-table row
                                       const int32_t *block_tables,  // [n_seqs, max_blocks]
                                       int32_t max_blocks, int32_t n_tokens, int32_t Hq, int32_t Hkv, int32_t hd,
                                       int32_t block_size, float scale,
                                       int32_t window) { // sliding window W > 0: keys (pos - W, pos]
  const int64_t item = (int64_t)blockIdx.x * ATTN_NAIVE_WARPS + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (item >= (int64_t)n_tokens * Hq) return;  // the whole warp leaves together
  const int32_t t = (int32_t)(item / Hq), h = (int32_t)(item % Hq), kvh = h / (Hq / Hkv);
  const T *qr = q + ((int64_t)t * Hq + h) * hd;
  float qv[ATTN_NAIVE_MAX_DPL], acc[ATTN_NAIVE_MAX_DPL];
LLMRT_UNROLL
  for (int j = 0; j < ATTN_NAIVE_MAX_DPL; j++) {
    const int d = lane + 32 * j;
    qv[j] = d < hd ? llmrt_to_f32(qr[d]) : 0.0f;
    acc[j] = 0.0f;
  }
  const int32_t pos = positions[t];
  const int32_t *table = block_tables + (int64_t)seq_of[t] * max_blocks;
  float m = -INFINITY, l = 0.0f;
  for (int32_t p = window > 0 && pos >= window ? pos - window + 1 : 0; p <= pos; p++) {
    const int64_t slot = (int64_t)table[p / block_size] * block_size + p % block_size;
    const auto *kr = kc.row(slot, kvh);
    const auto *vr = vc.row(slot, kvh);
    const float ks = kc.scale(slot, kvh), vs = vc.scale(slot, kvh);
    float s = 0.0f;
LLMRT_UNROLL
    for (int j = 0; j < ATTN_NAIVE_MAX_DPL; j++) {
      const int d = lane + 32 * j;
      if (d < hd) s += qv[j] * kc.at(kr, d, ks);
    }
    s = llmrt_warp_sum(s) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 at the first position (m = -inf)
    const float e = expf(s - m_new);
    l = l * corr + e;
LLMRT_UNROLL
    for (int j = 0; j < ATTN_NAIVE_MAX_DPL; j++) {
      const int d = lane + 32 * j;
      if (d < hd) acc[j] = acc[j] * corr + e * vc.at(vr, d, vs);
    }
    m = m_new;
  }
  T *o = out + ((int64_t)t * Hq + h) * hd;
  const float inv = 1.0f / l;
LLMRT_UNROLL
  for (int j = 0; j < ATTN_NAIVE_MAX_DPL; j++) {
    const int d = lane + 32 * j;
    if (d < hd) o[d] = llmrt_from_f32<T>(acc[j] * inv);
  }
}

extern "C" int llmrt_cuda_attention_naive(void *stream, llmrt_cuda_dtype t, void *out, const void *q,
                                          const void *k_cache, const void *v_cache, const int32_t *positions,
                                          const int32_t *seq_of, const int32_t *block_tables, int32_t max_blocks,
                                          int32_t n_tokens, int32_t Hq, int32_t Hkv, int32_t hd, int32_t block_size,
                                          float scale, int32_t window) {
  if (n_tokens <= 0) return n_tokens == 0 ? 0 : (int)cudaErrorInvalidValue;
  if (Hq <= 0 || Hkv <= 0 || Hq % Hkv || hd <= 0 || hd > 32 * ATTN_NAIVE_MAX_DPL || block_size <= 0 ||
      max_blocks <= 0 || window < 0)
    return (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  const int64_t items = (int64_t)n_tokens * Hq;
  const int64_t blocks = (items + ATTN_NAIVE_WARPS - 1) / ATTN_NAIVE_WARPS;
  if (blocks > 2147483647) return (int)cudaErrorInvalidValue;
  const int64_t kv_w = (int64_t)Hkv * hd;
  LLMRT_DISPATCH(t, T,
      LAUNCH((attention_naive_kernel<T, LLMRT_CUDA_KV_ACT>), (unsigned)blocks, 32 * ATTN_NAIVE_WARPS, 0, s,
             (T *)out, (const T *)q, (KvRead<T, LLMRT_CUDA_KV_ACT>{k_cache, kv_w, hd}),
             (KvRead<T, LLMRT_CUDA_KV_ACT>{v_cache, kv_w, hd}), positions, seq_of, block_tables, max_blocks,
             n_tokens, Hq, Hkv, hd, block_size, scale, window))
  return (int)cudaGetLastError();
}

template <class T, int KV>
static void launch_naive_kv8(cudaStream_t s, unsigned blocks, void *out, const void *q, const void *k_pool,
                             const void *v_pool, const int32_t *positions, const int32_t *seq_of,
                             const int32_t *block_tables, int32_t max_blocks, int32_t n_tokens, int32_t Hq,
                             int32_t Hkv, int32_t hd, int32_t block_size, float scale, int32_t window) {
  const kv8::Layout L = {block_size, Hkv, hd};
  KvRead<T, KV> kc, vc;
  kc.base = k_pool, kc.L = L, vc.base = v_pool, vc.L = L;
  LAUNCH((attention_naive_kernel<T, KV>), blocks, 32 * ATTN_NAIVE_WARPS, 0, s, (T *)out, (const T *)q, kc, vc,
         positions, seq_of, block_tables, max_blocks, n_tokens, Hq, Hkv, hd, block_size, scale, window);
}

extern "C" int llmrt_cuda_attention_naive_kv8(void *stream, llmrt_cuda_dtype t, llmrt_cuda_kv kv, void *out,
                                              const void *q, const void *k_pool, const void *v_pool,
                                              const int32_t *positions, const int32_t *seq_of,
                                              const int32_t *block_tables, int32_t max_blocks, int32_t n_tokens,
                                              int32_t Hq, int32_t Hkv, int32_t hd, int32_t block_size, float scale,
                                              int32_t window) {
  if (n_tokens <= 0) return n_tokens == 0 ? 0 : (int)cudaErrorInvalidValue;
  if (Hq <= 0 || Hkv <= 0 || Hq % Hkv || hd <= 0 || hd % 4 || hd > 32 * ATTN_NAIVE_MAX_DPL ||
      block_size <= 0 || max_blocks <= 0 || window < 0 ||
      (kv != LLMRT_CUDA_KV_INT8 && kv != LLMRT_CUDA_KV_FP8))
    return (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  const int64_t items = (int64_t)n_tokens * Hq;
  const int64_t blocks = (items + ATTN_NAIVE_WARPS - 1) / ATTN_NAIVE_WARPS;
  if (blocks > 2147483647) return (int)cudaErrorInvalidValue;
  if (kv == LLMRT_CUDA_KV_INT8) {
    LLMRT_DISPATCH(t, T,
        launch_naive_kv8<T, LLMRT_CUDA_KV_INT8>(s, (unsigned)blocks, out, q, k_pool, v_pool, positions, seq_of,
                                                block_tables, max_blocks, n_tokens, Hq, Hkv, hd, block_size,
                                                scale, window))
  } else {
    LLMRT_DISPATCH(t, T,
        launch_naive_kv8<T, LLMRT_CUDA_KV_FP8>(s, (unsigned)blocks, out, q, k_pool, v_pool, positions, seq_of,
                                               block_tables, max_blocks, n_tokens, Hq, Hkv, hd, block_size,
                                               scale, window))
  }
  return (int)cudaGetLastError();
}
