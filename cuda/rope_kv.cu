// rope_kv.cu: RoPE (HF rotate-half) on q and k fused with writing k and v into the paged KV cache.
// The angle of pair i at position p is (float)p * inv_freq[i] in fp32 (inv_freq from the model's
// rope config: default, linear and llama3 scaling are folded into it on the host), and its
// cos/sin come from sincosf (the accurate one, never __sincosf: angles reach thousands of
// radians at long contexts).
#include "llmrt_dtype.cuh"

// One block per token; threads stride over the (Hq + Hkv) * hd/2 rotation pairs, then over the
// Hkv * hd values of v. Each thread writes the pair it rotated (to k and to the cache).
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
    if (!is_q && slot >= 0) {
      T *kc = k_cache + slot * kw + (int64_t)(head - Hq) * hd;
      kc[j] = y1;
      kc[j + hh] = y2;
    }
  }
  if (slot < 0) return;
  for (int64_t i = threadIdx.x; i < kw; i += blockDim.x) v_cache[slot * kw + i] = v[t * kw + i];
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
