// ptx_ops.cuh: every inline-PTX instruction the kernels use, as tiny wrappers. This is the ONLY file
// under cuda/ (besides cuda/sim/) allowed to contain inline asm (cuda/lint.sh). Each wrapper has an
// nvcc body (the real instruction) and a simulator body (cuda/sim, -DCUSIM) with the semantics of the
// PTX ISA; cuda/tests/test_ptx_conformance.cu pins both to hardware through a golden file.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"),
// g = lane >> 2, t = lane % 4:
//   A 16x16 row-major, a[4] = 8 halves a0..a7 (a[r] = a_{2r} | a_{2r+1} << 16):
//       a_i at row g + 8*[i in {2,3,6,7}], col 2t + (i & 1) + 8*[i >= 4]
//   B 16x8 "col" (k-major per column), b[2] = b0..b3: b_i at k = 2t + (i & 1) + 8*[i >= 2], n = g
//   C/D 16x8 f32, c[4]: c_i at row g + 8*[i >= 2], col 2t + (i & 1)
// ldmatrix .m8n8 .b16: lanes 8j..8j+7 give the 16-byte row addresses of matrix j (x1: lanes 0-7,
//   x2: 0-15, x4: all). Lane l receives in r[j] row l/4, cols 2(l%4), 2(l%4)+1 of matrix j
//   (.trans: rows 2(l%4), 2(l%4)+1 of col l/4). Rows must be 16-byte aligned shared memory.
// cp.async: dst shared, src global, both aligned to the copy size; src_bytes < size zero-fills
//   the rest. Copies become visible to the issuing thread at cp_async_wait<N>() (all but the N
//   newest committed groups) / cp_async_wait_all(); other threads need a __syncthreads() after it.
#ifndef LLMRT_PTX_OPS_CUH
#define LLMRT_PTX_OPS_CUH

#include <cstdint>
#include <cuda_runtime.h>

#ifdef CUSIM  // the simulator's wrappers also take the caller's file:line (defaulted)
#define PTX_SITE , CUSIM_SITE_DECL
#define PTX_SITE0 CUSIM_SITE_DECL
#else
#define PTX_SITE
#define PTX_SITE0
#endif

// D = A * B + C, m16n8k16, A row-major f16, B col-major f16, f32 accumulate. d may alias c.
__device__ __forceinline__ void mma_m16n8k16_f16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                    const float (&c)[4] PTX_SITE) {
#ifdef CUSIM
  ::cusim::mma_m16n8k16(0, d, a, b, c, CUSIM_SITE_ARGS);
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%10,%11,%12,%13};\n"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
                 "f"(c[2]), "f"(c[3]));
#endif
}

// The same with bf16 inputs.
__device__ __forceinline__ void mma_m16n8k16_bf16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                     const float (&c)[4] PTX_SITE) {
#ifdef CUSIM
  ::cusim::mma_m16n8k16(1, d, a, b, c, CUSIM_SITE_ARGS);
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%10,%11,%12,%13};\n"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
                 "f"(c[2]), "f"(c[3]));
#endif
}

#ifndef CUSIM
__device__ __forceinline__ unsigned ptx_smem_addr(const void *p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
#endif

// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16; `row` is this lane's row address.
__device__ __forceinline__ void ldmatrix_x1(uint32_t &r, const void *row PTX_SITE) {
#ifdef CUSIM
  ::cusim::ldmatrix(1, 0, &r, row, CUSIM_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r) : "r"(ptx_smem_addr(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void *row PTX_SITE) {
#ifdef CUSIM
  ::cusim::ldmatrix(2, 0, r, row, CUSIM_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(ptx_smem_addr(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *row PTX_SITE) {
#ifdef CUSIM
  ::cusim::ldmatrix(4, 0, r, row, CUSIM_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(ptx_smem_addr(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t &r, const void *row PTX_SITE) {
#ifdef CUSIM
  ::cusim::ldmatrix(1, 1, &r, row, CUSIM_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r) : "r"(ptx_smem_addr(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void *row PTX_SITE) {
#ifdef CUSIM
  ::cusim::ldmatrix(2, 1, r, row, CUSIM_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(ptx_smem_addr(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void *row PTX_SITE) {
#ifdef CUSIM
  ::cusim::ldmatrix(4, 1, r, row, CUSIM_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(ptx_smem_addr(row)));
#endif
}

// cp.async.ca.shared.global [dst], [src], BYTES, src_bytes  (BYTES = 4, 8 or 16)
template <int BYTES>
__device__ __forceinline__ void cp_async_ca(void *smem_dst, const void *gmem_src, int src_bytes = BYTES PTX_SITE) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async.ca copies 4, 8 or 16 bytes");
#ifdef CUSIM
  ::cusim::cp_async(smem_dst, gmem_src, BYTES, src_bytes, 0, CUSIM_SITE_ARGS);
#else
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(ptx_smem_addr(smem_dst)), "l"(gmem_src),
               "n"(BYTES), "r"(src_bytes) : "memory");
#endif
}
// cp.async.cg.shared.global [dst], [src], 16, src_bytes  (bypasses L1)
__device__ __forceinline__ void cp_async_cg16(void *smem_dst, const void *gmem_src, int src_bytes = 16 PTX_SITE) {
#ifdef CUSIM
  ::cusim::cp_async(smem_dst, gmem_src, 16, src_bytes, 1, CUSIM_SITE_ARGS);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(ptx_smem_addr(smem_dst)), "l"(gmem_src),
               "r"(src_bytes) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit(PTX_SITE0) {
#ifdef CUSIM
  ::cusim::cp_async_commit(CUSIM_SITE_ARGS);
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Wait until at most N of this thread's committed groups are pending.
template <int N> __device__ __forceinline__ void cp_async_wait(PTX_SITE0) {
#ifdef CUSIM
  ::cusim::cp_async_wait(N, CUSIM_SITE_ARGS);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
// cp.async.wait_all == commit_group + wait_group 0
__device__ __forceinline__ void cp_async_wait_all(PTX_SITE0) {
#ifdef CUSIM
  ::cusim::cp_async_commit(CUSIM_SITE_ARGS);
  ::cusim::cp_async_wait(0, CUSIM_SITE_ARGS);
#else
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// lop3.b32 d, a, b, c, LUT: bit i of LUT is the result for (a, b, c) = (i>>2 & 1, i>>1 & 1, i & 1),
// i.e. LUT = F(0xF0, 0xCC, 0xAA).
template <int LUT> __device__ __forceinline__ uint32_t lop3(uint32_t a, uint32_t b, uint32_t c) {
  static_assert(LUT >= 0 && LUT <= 255, "lop3 LUT is 8 bits");
#ifdef CUSIM
  uint32_t d = 0;
  for (int i = 0; i < 8; i++)
    if (LUT >> i & 1) d |= ((i & 4) ? a : ~a) & ((i & 2) ? b : ~b) & ((i & 1) ? c : ~c);
  return d;
#else
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, %4;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c), "n"(LUT));
  return d;
#endif
}

// prmt.b32 d, a, b, sel (default mode): bytes {b,a} = b7..b4 b3..b0; result byte i is byte
// sel[4i+2:4i] of them, replicated sign bit if sel[4i+3].
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
#ifdef CUSIM
  uint64_t v = ((uint64_t)b << 32) | a;
  uint32_t d = 0;
  for (int i = 0; i < 4; i++) {
    uint32_t s = sel >> (4 * i) & 0xf, byte = (uint32_t)(v >> (8 * (s & 7))) & 0xff;
    if (s & 8) byte = (byte & 0x80) ? 0xff : 0;
    d |= byte << (8 * i);
  }
  return d;
#else
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
#endif
}

#undef PTX_SITE
#undef PTX_SITE0
#endif  // LLMRT_PTX_OPS_CUH
