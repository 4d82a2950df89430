// kv8.cuh: the 8-bit KV cache on the device (llmrt_model_params.kv_cache_dtype INT8 / FP8_E4M3):
// the pool layout and the code conversions, the device twins of host/format/kv_quant.h, written
// with the same float operations in the same order so that a device-written code is the code the
// host would write for the same input (tests compare them bit for bit).
//
// Layout of one layer's K (or V) pool, per block of bs token slots: codes [bs, Hkv, hd] (1 byte
// each), then scales [bs, Hkv] (fp32); a block is bs * Hkv * (hd + 4) bytes. value = scale *
// decode(code); the scale of a (token, kv head) is its absmax over hd / the type's largest value
// (int8 127, e4m3 448). Kernels that read a pool need hd % 4 == 0: codes and scales are then
// 4-byte aligned (in a pool from cudaMalloc).
#ifndef LLMRT_KV8_CUH
#define LLMRT_KV8_CUH

#include <cstdint>
#include <cstring>

#include <cuda_runtime.h>

#include "llmrt_cuda.h"
#include "llmrt_dtype.cuh"

namespace kv8 {

constexpr float kInt8Max = 127.0f;
constexpr float kFp8Max = 448.0f;

struct Layout {
    int32_t bs, hkv, hd; // tokens per block, kv heads, head dim
    __host__ __device__ int64_t block_bytes() const {
        return (int64_t)bs * hkv * (hd + 4);
    }
    // byte offset of the hd codes of (slot, h)
    __host__ __device__ int64_t codes(int64_t slot, int h) const {
        const int64_t b = slot / bs, o = slot % bs;
        return b * block_bytes() + (o * hkv + h) * hd;
    }
    // byte offset of the fp32 scale of (slot, h)
    __host__ __device__ int64_t scale(int64_t slot, int h) const {
        const int64_t b = slot / bs, o = slot % bs;
        return b * block_bytes() + (int64_t)bs * hkv * hd + (o * hkv + h) * 4;
    }
};

// e4m3 ("e4m3fn": bias 7, no infinity, 0x7F NaN) -> float, exactly.
__device__ __forceinline__ float fp8_to_f32(uint8_t c) {
    const int e = (c >> 3) & 15, m = c & 7;
    float a;
    if ((c & 0x7F) == 0x7F)
        a = __uint_as_float(0x7fc00000u);
    else if (e == 0)
        a = (float)m * (1.0f / 512.0f); // subnormal: m * 2^-9
    else
        a = (float)(8 + m) * __uint_as_float((uint32_t)(e + 117) << 23); // (8 + m) 2^(e - 10)
    return (c & 0x80) ? -a : a;
}

// float -> e4m3, round to nearest even, saturating at 448 (the host's llmrt_fp8_e4m3_from_float).
__device__ __forceinline__ uint8_t fp8_from_f32(float x) {
    if (x != x) return 0x7F;
    const uint8_t sign = (__float_as_uint(x) >> 31) ? 0x80 : 0x00;
    const float a = fabsf(x);
    if (a >= kFp8Max) return sign | 0x7E;
    if (a < 0.015625f) return sign | (uint8_t)rintf(a * 512.0f); // < 2^-6: units of 2^-9
    const uint32_t bits = __float_as_uint(a);
    int E = (int)(bits >> 23) - 127 + 7;                               // biased e4m3 exponent
    const float f = __uint_as_float((bits & 0x7fffffu) | 0x3f800000u); // mantissa in [1, 2)
    int m = (int)rintf((f - 1.0f) * 8.0f);
    if (m == 8) m = 0, E++;
    int code = E << 3 | m;
    if (code > 0x7E) code = 0x7E;
    return sign | (uint8_t)code;
}

// value of one code (without the scale)
template <int KV> __device__ __forceinline__ float decode(uint8_t c) {
    if (KV == LLMRT_CUDA_KV_INT8) return (float)(int8_t)c;
    return fp8_to_f32(c);
}

// code of y = x * (type max / absmax)
template <int KV> __device__ __forceinline__ uint8_t encode(float y) {
    if (KV == LLMRT_CUDA_KV_INT8) {
        float r = rintf(y);
        r = r > kInt8Max ? kInt8Max : r < -kInt8Max ? -kInt8Max : r;
        return (uint8_t)(int8_t)r;
    }
    return fp8_from_f32(y);
}

// The flash kernels' loader (attention_prefill.cu, attention_decode.cu): elements 8c .. 8c+7 of
// the K or V row of (slot, h) in an 8-bit pool, dequantised (scale * code in fp32, rounded once
// to T) into the 16 bytes at dst in shared memory. Plain loads: the codes are 4-byte aligned
// (not 8: a block is bs * Hkv * (hd + 4) bytes), hence two 32-bit loads; the store is visible
// after the __syncthreads that precedes every use of a stage.
template <class T, int KV>
__device__ __forceinline__ void load_piece(unsigned char *dst, const void *pool, const Layout &L,
                                           int64_t slot, int h, int c) {
    const uint8_t *p = static_cast<const uint8_t *>(pool);
    const uint32_t *cw = reinterpret_cast<const uint32_t *>(p + L.codes(slot, h) + c * 8);
    const uint32_t w[2] = {cw[0], cw[1]};
    const float s = *reinterpret_cast<const float *>(p + L.scale(slot, h));
    T vals[8];
    for (int i = 0; i < 8; i++)
        vals[i] = llmrt_from_f32<T>(s * decode<KV>((uint8_t)(w[i / 4] >> (8 * (i % 4)))));
    uint4 packed; // (memcpy: T[8] and uint4 do not alias)
    memcpy(&packed, vals, sizeof packed);
    *reinterpret_cast<uint4 *>(dst) = packed;
}

__device__ __forceinline__ void zero_piece(unsigned char *dst) {
    *reinterpret_cast<uint4 *>(dst) = make_uint4(0u, 0u, 0u, 0u);
}

} // namespace kv8

#endif // LLMRT_KV8_CUH
