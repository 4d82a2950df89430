// ggml_blocks.cuh: the device dequantisation of GGUF's block types (ggml_matmul.h), one traits
// struct per type: kElems / kBytes of a block and dequant16(blk, e0, w), which writes elements
// e0 .. e0 + 15 of the block (e0 a multiple of 16) as fp32. The arithmetic is llama.cpp's scalar
// dequantize_row_* (host/format/ggml_quants.c is the CPU reference and states each layout):
// per-sub-block products d*sc and dmin*m rounded to fp32 first, then d1*q - m1. Blocks are read
// byte by byte: a GGUF row of 22-, 34-, 110- or 210-byte blocks has no alignment to exploit.
// The internal Q8_Z (36 bytes) is the exception: every block of it starts 4-byte aligned, so it
// is read in 32-bit words.
#ifndef LLMRT_GGML_BLOCKS_CUH
#define LLMRT_GGML_BLOCKS_CUH

#include <cstdint>
#include <cstring>

#include <cuda_fp16.h>

#include "ggml_matmul.h"

// `#pragma unroll` for nvcc; g++ (cusim) does not know it.
#ifdef CUSIM
#define GGML_UNROLL
#else
#define GGML_UNROLL _Pragma("unroll")
#endif

namespace ggml {

__device__ __forceinline__ float f16_at(const uint8_t *p) {
    const uint16_t u = (uint16_t)(p[0] | p[1] << 8);
    __half h;
    memcpy(static_cast<void *>(&h), &u, 2);
    return __half2float(h);
}

__device__ __forceinline__ uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

template <int T> struct Block;

template <> struct Block<LLMRT_CUDA_GGML_Q8_0> { // fp16 d | i8 q[32]
    static constexpr int kElems = 32, kBytes = 34;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        const float d = f16_at(b);
        GGML_UNROLL
        for (int i = 0; i < 16; i++)
            w[i] = d * (float)(int8_t)b[2 + e0 + i];
    }
};

// Q8_Z (the internal 8-bit GPTQ block, llmrt dtype.h): fp16 d | u8 z | u8 0 | u8 q[32], w =
// d * ((float)q - (float)z) in fp32 as GPTQ computes it (q - z is exact, then one rounding: the
// CPU reference's bits, no contraction possible). 36-byte blocks in a row of a 256-byte aligned
// allocation: each block, and q + e0 (offset 4 or 20), is 4-byte aligned: one word for the
// header, four for the 16 codes.
template <> struct Block<LLMRT_CUDA_GGML_Q8_Z> {
    static constexpr int kElems = 32, kBytes = 36;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        const uint32_t head = *reinterpret_cast<const uint32_t *>(b); // d (bits 0-15) | z | 0
        const uint16_t dbits = (uint16_t)(head & 0xffffu);
        __half h;
        memcpy(static_cast<void *>(&h), &dbits, 2);
        const float d = __half2float(h), z = (float)((head >> 16) & 0xffu);
        const uint32_t *q = reinterpret_cast<const uint32_t *>(b + 4 + e0);
        GGML_UNROLL
        for (int i = 0; i < 4; i++) {
            const uint32_t v = q[i];
            GGML_UNROLL
            for (int j = 0; j < 4; j++)
                w[4 * i + j] = d * ((float)((v >> (8 * j)) & 0xffu) - z);
        }
    }
};

// Q5_0 / Q5_1: element j: low nibble of qs[j] (j < 16) or high nibble of qs[j - 16], fifth bit
// bit j of qh.
template <bool kMin>
__device__ __forceinline__ void q5_x(const uint8_t *b, int e0, float (&w)[16]) {
    const float d = f16_at(b), m = kMin ? f16_at(b + 2) : 0.0f;
    const uint32_t qh = u32_at(b + (kMin ? 4 : 2));
    const uint8_t *qs = b + (kMin ? 8 : 6);
    GGML_UNROLL
    for (int i = 0; i < 16; i++) {
        const int j = e0 + i;
        const int q = (e0 == 0 ? qs[i] & 0x0f : qs[i] >> 4) | (int)((qh >> j) & 1) << 4;
        if (kMin) {
            const float dq = d * (float)q;
            w[i] = dq + m;
        } else {
            w[i] = (float)(q - 16) * d;
        }
    }
}
template <> struct Block<LLMRT_CUDA_GGML_Q5_0> {
    static constexpr int kElems = 32, kBytes = 22;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        q5_x<false>(b, e0, w);
    }
};
template <> struct Block<LLMRT_CUDA_GGML_Q5_1> {
    static constexpr int kElems = 32, kBytes = 24;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        q5_x<true>(b, e0, w);
    }
};

// Q2_K: u8 scales[16] | u8 qs[64] | fp16 d | fp16 dmin. Element v = 128n + 32j + 16h + i
// (sub-block s = v / 16) is bits 2j of qs[32n + 16h + i]; w = (d*sc)*q - dmin*m.
template <> struct Block<LLMRT_CUDA_GGML_Q2_K> {
    static constexpr int kElems = 256, kBytes = 84;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        const int s = e0 / 16, n = e0 / 128, j = (e0 % 128) / 32, h = (e0 % 32) / 16;
        const float dl = f16_at(b + 80) * (float)(b[s] & 0x0f);
        const float ml = f16_at(b + 82) * (float)(b[s] >> 4);
        const uint8_t *q = b + 16 + 32 * n + 16 * h;
        GGML_UNROLL
        for (int i = 0; i < 16; i++) {
            const float dq = dl * (float)((q[i] >> (2 * j)) & 3);
            w[i] = dq - ml;
        }
    }
};

// Q3_K: u8 hmask[32] | u8 qs[64] | u8 scales[12] | fp16 d. q as Q2_K minus 4 where bit 4n + j of
// hmask[16h + i] is clear; 6-bit scales (low 4 bits in scales[s % 8] >> 4(s / 8), high 2 in
// scales[8 + s % 4] >> 2(s / 4)) minus 32; w = (d*sc)*q.
template <> struct Block<LLMRT_CUDA_GGML_Q3_K> {
    static constexpr int kElems = 256, kBytes = 110;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        const int s = e0 / 16, n = e0 / 128, j = (e0 % 128) / 32, h = (e0 % 32) / 16;
        const uint8_t *sb = b + 96;
        const int lo = (sb[s % 8] >> (4 * (s / 8))) & 0x0f,
                  hi = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
        const float dl = f16_at(b + 108) * (float)((lo | hi << 4) - 32);
        const uint8_t *q = b + 32 + 32 * n + 16 * h, *hm = b + 16 * h;
        GGML_UNROLL
        for (int i = 0; i < 16; i++) {
            const int v = ((q[i] >> (2 * j)) & 3) - (((hm[i] >> (4 * n + j)) & 1) ? 0 : 4);
            w[i] = dl * (float)v;
        }
    }
};

// Q4_K / Q5_K: fp16 d | fp16 dmin | u8 scales[12] | (Q5_K: u8 qh[32]) | u8 qs[128]. Sub-block
// s = v / 32 has the 6-bit sc, m of llama.cpp's get_scale_min_k4; q = nibble of qs[32(s/2) + l]
// (low for even s), Q5_K plus 16 * bit s of qh[l]; w = (d*sc)*q - dmin*m.
template <bool kFive>
__device__ __forceinline__ void q45_k(const uint8_t *b, int e0, float (&w)[16]) {
    const int s = e0 / 32, l0 = e0 % 32;
    const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + (kFive ? 48 : 16);
    int scale, min;
    if (s < 4) {
        scale = sc[s] & 63;
        min = sc[s + 4] & 63;
    } else {
        scale = (sc[s + 4] & 0x0f) | (sc[s - 4] >> 6) << 4;
        min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
    const float d1 = f16_at(b) * (float)scale, m1 = f16_at(b + 2) * (float)min;
    const uint8_t *q = qs + 32 * (s / 2) + l0;
    GGML_UNROLL
    for (int i = 0; i < 16; i++) {
        int v = s % 2 ? q[i] >> 4 : q[i] & 0x0f;
        if (kFive) v |= ((qh[l0 + i] >> s) & 1) << 4;
        const float dq = d1 * (float)v;
        w[i] = dq - m1;
    }
}
template <> struct Block<LLMRT_CUDA_GGML_Q4_K> {
    static constexpr int kElems = 256, kBytes = 144;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        q45_k<false>(b, e0, w);
    }
};
template <> struct Block<LLMRT_CUDA_GGML_Q5_K> {
    static constexpr int kElems = 256, kBytes = 176;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        q45_k<true>(b, e0, w);
    }
};

// Q6_K: u8 ql[128] | u8 qh[64] | i8 scales[16] | fp16 d. Element v = 128h + 32c + l: low 4 bits
// from ql[64h + 32(c & 1) + l] (low nibble for c < 2), high 2 bits (qh[32h + l] >> 2c) & 3, minus
// 32; w = (d*scales[v / 16])*q.
template <> struct Block<LLMRT_CUDA_GGML_Q6_K> {
    static constexpr int kElems = 256, kBytes = 210;
    __device__ __forceinline__ static void dequant16(const uint8_t *b, int e0, float (&w)[16]) {
        const int h = e0 / 128, c = (e0 % 128) / 32, l0 = e0 % 32;
        const float ds = f16_at(b + 208) * (float)(int8_t)b[192 + e0 / 16];
        const uint8_t *ql = b + 64 * h + 32 * (c & 1) + l0, *qh = b + 128 + 32 * h + l0;
        GGML_UNROLL
        for (int i = 0; i < 16; i++) {
            const int lo = c < 2 ? ql[i] & 0x0f : ql[i] >> 4;
            const int q = (lo | ((qh[i] >> (2 * c)) & 3) << 4) - 32;
            w[i] = ds * (float)q;
        }
    }
};

// Calls F::template run<T>(args...) for the runtime type t; cudaErrorInvalidValue for others.
template <class F, class... A> int dispatch(int t, A... args) {
    switch (t) {
    case LLMRT_CUDA_GGML_Q8_0:
        return F::template run<LLMRT_CUDA_GGML_Q8_0>(args...);
    case LLMRT_CUDA_GGML_Q5_0:
        return F::template run<LLMRT_CUDA_GGML_Q5_0>(args...);
    case LLMRT_CUDA_GGML_Q5_1:
        return F::template run<LLMRT_CUDA_GGML_Q5_1>(args...);
    case LLMRT_CUDA_GGML_Q2_K:
        return F::template run<LLMRT_CUDA_GGML_Q2_K>(args...);
    case LLMRT_CUDA_GGML_Q3_K:
        return F::template run<LLMRT_CUDA_GGML_Q3_K>(args...);
    case LLMRT_CUDA_GGML_Q4_K:
        return F::template run<LLMRT_CUDA_GGML_Q4_K>(args...);
    case LLMRT_CUDA_GGML_Q5_K:
        return F::template run<LLMRT_CUDA_GGML_Q5_K>(args...);
    case LLMRT_CUDA_GGML_Q6_K:
        return F::template run<LLMRT_CUDA_GGML_Q6_K>(args...);
    case LLMRT_CUDA_GGML_Q8_Z:
        return F::template run<LLMRT_CUDA_GGML_Q8_Z>(args...);
    default:
        return (int)cudaErrorInvalidValue;
    }
}

} // namespace ggml

#endif
