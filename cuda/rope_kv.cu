// rope_kv.cu: RoPE (HF rotate-half) on q and k fused with writing k and v into the paged KV cache.
// The angle of pair i at position p is (float)p * inv_freq[i] in fp32 (inv_freq from the model's
// rope config: default, linear and llama3 scaling are folded into it on the host), and its
// cos/sin come from sincosf (the accurate one, never __sincosf: angles reach thousands of
// radians at long contexts).
#include "kv8.cuh"
#include "llmrt_dtype.cuh"

// One block per token; threads stride over the (Hq + Hkv) * hd/2 rotation pairs, then over the
// Hkv * hd values of v. Each thread writes the pair it rotated (to k and to the cache; k_cache
// NULL: to k only, for the 8-bit path below).
template <class T>
__global__ void rope_kv_kernel(T *q,                     // [T, Hq*hd]   rotated in place
                               T *k,                     // [T, Hkv*hd]  rotated in place
                               const T *v,               // [T, Hkv*hd]
                               T *k_cache,               // [n_slots, Hkv*hd]
                               T *v_cache,               // [n_slots, Hkv*hd]
                               const int32_t *positions,  // [T]
                               const int64_t *slots,      // [T] cache row of each token; < 0: no
                                                          // cache write (a decode graph's padding row)
                               const float *inv_freq,     // [hd/2]
                               int32_t Hq, int32_t Hkv, int32_t hd) {
  const int64_t t = blockIdx.x;
  const int32_t hh = hd / 2;
  const float pos = (float)positions[t];
  const int64_t slot = slots[t];
  const int64_t qw = (int64_t)Hq * hd, kw = (int64_t)Hkv * hd;
  const int32_t n_pairs = (Hq + Hkv) * hh;
  for (int32_t i = threadIdx.x; i < n_pairs; i += blockDim.x) {
    const int32_t head = i / hh, j = i % hh;
    float sn, cs;
    sincosf(pos * inv_freq[j], &sn, &cs);
    const bool is_q = head < Hq;
    T *base = is_q ? q + t * qw + (int64_t)head * hd : k + t * kw + (int64_t)(head - Hq) * hd;
    const float x1 = llmrt_to_f32(base[j]), x2 = llmrt_to_f32(base[j + hh]);
    const T y1 = llmrt_from_f32<T>(x1 * cs - x2 * sn), y2 = llmrt_from_f32<T>(x2 * cs + x1 * sn);
    base[j] = y1;
    base[j + hh] = y2;
    if (!is_q && k_cache && slot >= 0) { // slot -1: a padding row of a decode graph
      T *kc = k_cache + slot * kw + (int64_t)(head - Hq) * hd;
      kc[j] = y1;
      kc[j + hh] = y2;
    }
  }
  if (slot < 0) return;
  if (v_cache)
    for (int64_t i = threadIdx.x; i < kw; i += blockDim.x) v_cache[slot * kw + i] = v[t * kw + i];
}

#define KV8_WARPS 4   // warps (items) per block
#define KV8_MAX_DPL 8 // values per lane: hd <= 256

// Quantises rows of k and v into 8-bit pools: one warp per (token, kv head, K or V) item; lane l
// holds dims l, l + 32, ...; the absmax is a warp max (a NaN anywhere makes it NaN, so that the
// fault reads back as NaN instead of vanishing, as on the host), then every lane writes its
// codes and lane 0 the scale. Same float operations as llmrt_kv_quantise_head (kv_quant.c).
template <class T, int KV>
__global__ void kv8_write_kernel(const T *k,               // [T, Hkv*hd] rotated
                                 const T *v,               // [T, Hkv*hd]
                                 uint8_t *k_pool,          // 8-bit pool (kv8.cuh)
                                 uint8_t *v_pool,          // 8-bit pool
                                 const int64_t *slots,     // [T] cache slot of each token
                                 int32_t n_tokens, int32_t Hkv, int32_t hd, int32_t bs) {
  const int64_t item = (int64_t)blockIdx.x * KV8_WARPS + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (item >= (int64_t)n_tokens * Hkv * 2) return; // the whole warp leaves together
  const int is_v = (int)(item % 2), h = (int)(item / 2 % Hkv);
  const int64_t t = item / 2 / Hkv;
  const T *x = (is_v ? v : k) + (t * Hkv + h) * hd;
  uint8_t *pool = is_v ? v_pool : k_pool;
  const kv8::Layout L = {bs, Hkv, hd};
  const int64_t slot = slots[t];
  if (slot < 0) return; // a padding row of a decode graph: nothing to write (warp-uniform)
  float xs[KV8_MAX_DPL], amax = 0.0f;
LLMRT_UNROLL
  for (int j = 0; j < KV8_MAX_DPL; j++) {
    const int d = lane + 32 * j;
    xs[j] = d < hd ? llmrt_to_f32(x[d]) : 0.0f;
    const float a = fabsf(xs[j]);
    amax = amax != amax ? amax : !(a <= amax) ? a : amax;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float b = __shfl_xor_sync(0xffffffffu, amax, o);
    amax = amax != amax ? amax : !(b <= amax) ? b : amax;
  }
  const float tmax = KV == LLMRT_CUDA_KV_INT8 ? kv8::kInt8Max : kv8::kFp8Max;
  float scale = amax / tmax;
  const bool ok = scale > 0.0f && scale <= 3.402823466e38f; // finite and > 0
  if (!ok && amax == 0.0f) scale = 0.0f;
  const float inv = tmax / amax;
  uint8_t *codes = pool + L.codes(slot, h);
LLMRT_UNROLL
  for (int j = 0; j < KV8_MAX_DPL; j++) {
    const int d = lane + 32 * j;
    if (d < hd) codes[d] = ok ? kv8::encode<KV>(xs[j] * inv) : (uint8_t)0;
  }
  if (lane == 0) *reinterpret_cast<float *>(pool + L.scale(slot, h)) = scale;
}

extern "C" int llmrt_cuda_rope_kv(void *stream, llmrt_cuda_dtype t, void *q, void *k, const void *v, void *k_cache,
                                  void *v_cache, const int32_t *positions, const int64_t *slots,
                                  const float *inv_freq, int32_t n_tokens, int32_t Hq, int32_t Hkv, int32_t hd) {
  if (n_tokens <= 0) return n_tokens == 0 ? 0 : (int)cudaErrorInvalidValue;
  if (Hq <= 0 || Hkv <= 0 || hd <= 0 || hd % 2) return (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  const int threads = llmrt_row_threads((int64_t)(Hq + Hkv) * (hd / 2));
  LLMRT_DISPATCH(t, T,
      LAUNCH(rope_kv_kernel<T>, n_tokens, threads, 0, s, (T *)q, (T *)k, (const T *)v, (T *)k_cache, (T *)v_cache,
             positions, slots, inv_freq, Hq, Hkv, hd))
  return (int)cudaGetLastError();
}

extern "C" int llmrt_cuda_rope_kv8(void *stream, llmrt_cuda_dtype t, llmrt_cuda_kv kv, void *q, void *k,
                                   const void *v, void *k_pool, void *v_pool, const int32_t *positions,
                                   const int64_t *slots, const float *inv_freq, int32_t n_tokens, int32_t Hq,
                                   int32_t Hkv, int32_t hd, int32_t block_size) {
  if (n_tokens <= 0) return n_tokens == 0 ? 0 : (int)cudaErrorInvalidValue;
  if (Hq <= 0 || Hkv <= 0 || hd <= 0 || hd % 4 || hd > 32 * KV8_MAX_DPL || block_size <= 0 ||
      (kv != LLMRT_CUDA_KV_INT8 && kv != LLMRT_CUDA_KV_FP8))
    return (int)cudaErrorInvalidValue;
  cudaStream_t s = (cudaStream_t)stream;
  const int threads = llmrt_row_threads((int64_t)(Hq + Hkv) * (hd / 2));
  LLMRT_DISPATCH(t, T,
      LAUNCH(rope_kv_kernel<T>, n_tokens, threads, 0, s, (T *)q, (T *)k, (const T *)v, (T *)nullptr,
             (T *)nullptr, positions, slots, inv_freq, Hq, Hkv, hd))
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return (int)e;
  const int64_t items = (int64_t)n_tokens * Hkv * 2, blocks = (items + KV8_WARPS - 1) / KV8_WARPS;
  if (blocks > 2147483647) return (int)cudaErrorInvalidValue;
  if (kv == LLMRT_CUDA_KV_INT8) {
    LLMRT_DISPATCH(t, T,
        LAUNCH((kv8_write_kernel<T, LLMRT_CUDA_KV_INT8>), (unsigned)blocks, 32 * KV8_WARPS, 0, s, (const T *)k,
               (const T *)v, (uint8_t *)k_pool, (uint8_t *)v_pool, slots, n_tokens, Hkv, hd, block_size))
  } else {
    LLMRT_DISPATCH(t, T,
        LAUNCH((kv8_write_kernel<T, LLMRT_CUDA_KV_FP8>), (unsigned)blocks, 32 * KV8_WARPS, 0, s, (const T *)k,
               (const T *)v, (uint8_t *)k_pool, (uint8_t *)v_pool, slots, n_tokens, Hkv, hd, block_size))
  }
  return (int)cudaGetLastError();
}
