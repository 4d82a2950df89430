// The PTX wrappers of cuda/ptx_ops.cuh against independent references: mma.m16n8k16 (f16, bf16)
// tiles vs an fp64 matmul, fed both by the documented fragment layout and by ldmatrix; ldmatrix
// x1/x2/x4 (.trans) vs the PTX ISA's lane mapping computed here; cp.async 4/8/16 (.ca/.cg) with
// src-size zero-fill and wait_group semantics; lop3 and prmt vs their definitions.
#include "test_util.cuh"
#include "ptx_ops.cuh"

#include <cstdint>

// ---- mma ----
static __device__ __forceinline__ uint32_t pack2(uint16_t lo, uint16_t hi) { return (uint32_t)lo | (uint32_t)hi << 16; }

template <bool BF16>
__global__ void k_mma(const uint16_t *A, const uint16_t *B, const float *C, float *d_direct, float *d_ldm) {
  __shared__ __align__(16) uint16_t sA[16 * 16];
  __shared__ __align__(16) uint16_t sB[16 * 8];
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  for (int i = lane; i < 256; i += 32) sA[i] = A[i];
  for (int i = lane; i < 128; i += 32) sB[i] = B[i];
  __syncthreads();
  // fragments straight from the layout of the PTX ISA
  uint16_t ah[8], bh[4];
  for (int i = 0; i < 8; i++) {
    int row = g + 8 * (i == 2 || i == 3 || i == 6 || i == 7), col = 2 * t + (i & 1) + 8 * (i >= 4);
    ah[i] = A[row * 16 + col];
  }
  for (int i = 0; i < 4; i++) bh[i] = B[(2 * t + (i & 1) + 8 * (i >= 2)) * 8 + g];
  uint32_t a[4] = {pack2(ah[0], ah[1]), pack2(ah[2], ah[3]), pack2(ah[4], ah[5]), pack2(ah[6], ah[7])};
  uint32_t b[2] = {pack2(bh[0], bh[1]), pack2(bh[2], bh[3])};
  float c[4], d[4];
  for (int i = 0; i < 4; i++) c[i] = C[(g + 8 * (i >= 2)) * 8 + 2 * t + (i & 1)];
  if (BF16) mma_m16n8k16_bf16f32(d, a, b, c);
  else mma_m16n8k16_f16f32(d, a, b, c);
  for (int i = 0; i < 4; i++) d_direct[(g + 8 * (i >= 2)) * 8 + 2 * t + (i & 1)] = d[i];
  // the usual way: A with ldmatrix.x4, B (stored k-major) with ldmatrix.x2.trans; d accumulates in place
  int j = lane / 8, r = lane % 8;
  uint32_t la[4], lb[2];
  ldmatrix_x4(la, &sA[(r + 8 * (j & 1)) * 16 + 8 * (j >> 1)]);
  ldmatrix_x2_trans(lb, &sB[(r + 8 * (j & 1)) * 8]);
  for (int i = 0; i < 4; i++) d[i] = c[i];
  if (BF16) mma_m16n8k16_bf16f32(d, la, lb, d);
  else mma_m16n8k16_f16f32(d, la, lb, d);
  for (int i = 0; i < 4; i++) d_ldm[(g + 8 * (i >= 2)) * 8 + 2 * t + (i & 1)] = d[i];
}

static uint16_t half_bits(float f, bool bf16) {
  if (bf16) { __nv_bfloat16 h = __float2bfloat16(f); uint16_t u; memcpy(&u, &h, 2); return u; }
  __half h = __float2half(f);
  uint16_t u;
  memcpy(&u, &h, 2);
  return u;
}
static double bits_value(uint16_t u, bool bf16) {
  if (bf16) { __nv_bfloat16 h; memcpy((void *)&h, &u, 2); return __bfloat162float(h); }
  __half h;
  memcpy((void *)&h, &u, 2);
  return __half2float(h);
}

template <bool BF16> static void test_mma() {
  Rng rng(BF16 ? 11 : 10);
  std::vector<uint16_t> A(256), B(128);
  std::vector<float> C(128);
  for (auto &x : A) x = half_bits(rng.uniform(-2, 2), BF16);
  for (auto &x : B) x = half_bits(rng.uniform(-2, 2), BF16);
  for (auto &x : C) x = rng.uniform(-4, 4);
  uint16_t *dA = to_dev(A), *dB = to_dev(B);
  float *dC = to_dev(C), *d1 = dev_alloc<float>(128), *d2 = dev_alloc<float>(128);
  LAUNCH(k_mma<BF16>, 1, 32, 0, 0, dA, dB, dC, d1, d2);
  KERNEL_OK();
  std::vector<float> h1 = to_host(d1, 128), h2 = to_host(d2, 128);
  int bad = 0;
  double maxerr = 0;
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 8; n++) {
      double ref = C[m * 8 + n], mag = std::fabs(ref);
      for (int k = 0; k < 16; k++) {
        double p = bits_value(A[m * 16 + k], BF16) * bits_value(B[k * 8 + n], BF16);
        ref += p;
        mag += std::fabs(p);
      }
      double tol = 1e-5 * mag + 1e-6;
      for (double got : {(double)h1[m * 8 + n], (double)h2[m * 8 + n]}) {
        maxerr = std::max(maxerr, std::fabs(got - ref));
        bad += !(std::fabs(got - ref) <= tol);
      }
    }
  CHECKF(bad == 0, "mma.m16n8k16 %s vs fp64: %d of 256 outside tolerance (max error %g)", BF16 ? "bf16" : "f16", bad, maxerr);
  cudaFree(dA); cudaFree(dB); cudaFree(dC); cudaFree(d1); cudaFree(d2);
}

// ---- ldmatrix ----
// Matrix j's row r is stored at smem row (8j + 3r % 8), 24 halves per row, starting at half 8 (16 bytes).
__device__ __host__ inline int ld_row_offset(int j, int r) { return (j * 8 + (r * 3) % 8) * 24 + 8; }
__device__ __host__ inline uint16_t ld_value(int j, int r, int c) { return (uint16_t)(j * 64 + r * 8 + c + 1); }

__global__ void k_ldmatrix(uint32_t *out) {
  __shared__ __align__(16) uint16_t s[32 * 24];
  int lane = threadIdx.x;
  for (int i = lane; i < 32 * 24; i += 32) s[i] = 0xdead;
  __syncwarp();
  for (int e = lane; e < 4 * 64; e += 32) {
    int j = e / 64, r = e / 8 % 8, c = e % 8;
    s[ld_row_offset(j, r) + c] = ld_value(j, r, c);
  }
  __syncwarp();
  const uint16_t *row = &s[ld_row_offset(lane / 8, lane % 8)];
  uint32_t r1, r2[2], r4[4];
  uint32_t *o = out + lane * 4;
  for (int i = 0; i < 6 * 32 * 4; i += 32 * 4) for (int k = 0; k < 4; k++) o[i + k] = 0;
  ldmatrix_x1(r1, row);        o[0 * 128] = r1;
  ldmatrix_x2(r2, row);        o[1 * 128] = r2[0]; o[1 * 128 + 1] = r2[1];
  ldmatrix_x4(r4, row);        for (int k = 0; k < 4; k++) o[2 * 128 + k] = r4[k];
  ldmatrix_x1_trans(r1, row);  o[3 * 128] = r1;
  ldmatrix_x2_trans(r2, row);  o[4 * 128] = r2[0]; o[4 * 128 + 1] = r2[1];
  ldmatrix_x4_trans(r4, row);  for (int k = 0; k < 4; k++) o[5 * 128 + k] = r4[k];
}

static void test_ldmatrix() {
  uint32_t *d = dev_alloc<uint32_t>(6 * 128);
  LAUNCH(k_ldmatrix, 1, 32, 0, 0, d);
  KERNEL_OK();
  std::vector<uint32_t> h = to_host(d, 6 * 128);
  const char *names[] = {"x1", "x2", "x4", "x1.trans", "x2.trans", "x4.trans"};
  for (int v = 0; v < 6; v++) {
    int nmat = 1 << (v % 3), bad = 0;
    bool trans = v >= 3;
    for (int l = 0; l < 32; l++)
      for (int j = 0; j < nmat; j++) {
        // PTX ISA: lane l holds (row l/4, cols 2(l%4), 2(l%4)+1); .trans: (rows 2(l%4), 2(l%4)+1; col l/4)
        uint32_t lo = trans ? ld_value(j, 2 * (l % 4), l / 4) : ld_value(j, l / 4, 2 * (l % 4));
        uint32_t hi = trans ? ld_value(j, 2 * (l % 4) + 1, l / 4) : ld_value(j, l / 4, 2 * (l % 4) + 1);
        bad += h[v * 128 + l * 4 + j] != (lo | hi << 16);
      }
    CHECKF(bad == 0, "ldmatrix %s: %d registers wrong", names[v], bad);
  }
  cudaFree(d);
}

// ---- cp.async ----
__global__ void k_cp_async(const unsigned char *src, unsigned char *own, unsigned char *out) {
  __shared__ __align__(16) unsigned char s[1024 + 256 + 256];
  int t = threadIdx.x;
  cp_async_ca<16>(&s[t * 16], src + t * 16);                    // group 0
  cp_async_commit();
  cp_async_cg16(&s[512 + t * 16], src + 512 + t * 16, t % 17);  // group 1: src-size 0..16, zero-filled
  cp_async_commit();
  cp_async_wait<1>();  // group 0 has landed (this thread's own copies)
  for (int i = 0; i < 16; i++) own[t * 16 + i] = s[t * 16 + i];
  cp_async_ca<4>(&s[1024 + t * 4], src + 1024 + t * 4, t % 5);  // ungrouped until wait_all commits them
  cp_async_ca<8>(&s[1280 + t * 8], src + 1280 + t * 8, t % 9);
  cp_async_wait_all();
  __syncthreads();  // now every thread's copies are visible to all
  for (int i = t; i < 1024 + 256 + 256; i += blockDim.x) out[i] = s[i];
}

static void test_cp_async() {
  std::vector<unsigned char> src(1536);
  for (int i = 0; i < 1536; i++) src[i] = (unsigned char)(i * 7 + 3);
  unsigned char *dsrc = to_dev(src), *down = dev_alloc<unsigned char>(512), *dout = dev_alloc<unsigned char>(1536);
  LAUNCH(k_cp_async, 1, 32, 0, 0, dsrc, down, dout);
  KERNEL_OK();
  std::vector<unsigned char> own = to_host(down, 512), out = to_host(dout, 1536);
  int bad = 0;
  for (int i = 0; i < 512; i++) bad += own[i] != src[i] || out[i] != src[i];
  CHECKF(bad == 0, "cp.async.ca 16 + wait_group 1: %d bytes wrong", bad);
  bad = 0;
  for (int t = 0; t < 32; t++)
    for (int i = 0; i < 16; i++) bad += out[512 + t * 16 + i] != (i < t % 17 ? src[512 + t * 16 + i] : 0);
  CHECKF(bad == 0, "cp.async.cg 16 with src-size zero-fill: %d bytes wrong", bad);
  bad = 0;
  for (int t = 0; t < 32; t++) {
    for (int i = 0; i < 4; i++) bad += out[1024 + t * 4 + i] != (i < t % 5 ? src[1024 + t * 4 + i] : 0);
    for (int i = 0; i < 8; i++) bad += out[1280 + t * 8 + i] != (i < t % 9 ? src[1280 + t * 8 + i] : 0);
  }
  CHECKF(bad == 0, "cp.async.ca 4/8 with zero-fill + wait_all: %d bytes wrong", bad);
  cudaFree(dsrc); cudaFree(down); cudaFree(dout);
}

// ---- lop3, prmt ----
__global__ void k_bits(const uint32_t *a, const uint32_t *b, const uint32_t *c, uint32_t *out) {
  int i = threadIdx.x;
  uint32_t x = a[i], y = b[i], z = c[i];
  out[i * 8 + 0] = lop3<0x96>(x, y, z);
  out[i * 8 + 1] = lop3<0xE8>(x, y, z);
  out[i * 8 + 2] = lop3<0xF8>(x, y, z);
  out[i * 8 + 3] = lop3<0x80>(x, y, z);
  out[i * 8 + 4] = lop3<0x1E>(x, y, z);
  out[i * 8 + 5] = prmt(x, y, 0x5410);
  out[i * 8 + 6] = prmt(x, y, z & 0xffff);
  out[i * 8 + 7] = prmt(x, y, 0x8888 | (z & 0x7777));
}

static uint32_t prmt_ref(uint32_t a, uint32_t b, uint32_t sel) {
  unsigned char bytes[8];
  for (int k = 0; k < 4; k++) { bytes[k] = (unsigned char)(a >> (8 * k)); bytes[4 + k] = (unsigned char)(b >> (8 * k)); }
  uint32_t r = 0;
  for (int k = 0; k < 4; k++) {
    unsigned s = sel >> (4 * k) & 15, v = bytes[s & 7];
    if (s & 8) v = (v & 0x80) ? 0xff : 0x00;  // replicate the sign bit
    r |= v << (8 * k);
  }
  return r;
}

static void test_bits() {
  Rng rng(5);
  std::vector<uint32_t> a(64), b(64), c(64);
  for (int i = 0; i < 64; i++) { a[i] = rng.next() * 2654435761u; b[i] = rng.next() * 40503u; c[i] = rng.next() ^ 0x80808080u; }
  uint32_t *da = to_dev(a), *db = to_dev(b), *dc = to_dev(c), *dout = dev_alloc<uint32_t>(64 * 8);
  LAUNCH(k_bits, 1, 64, 0, 0, da, db, dc, dout);
  KERNEL_OK();
  std::vector<uint32_t> h = to_host(dout, 64 * 8);
  int bad = 0;
  for (int i = 0; i < 64; i++) {
    uint32_t x = a[i], y = b[i], z = c[i];
    const uint32_t *o = &h[i * 8];
    bad += o[0] != (x ^ y ^ z);
    bad += o[1] != ((x & y) | (x & z) | (y & z));
    bad += o[2] != (x | (y & z));
    bad += o[3] != (x & y & z);
    bad += o[4] != (x ^ (y | z));
    bad += o[5] != prmt_ref(x, y, 0x5410) || o[5] != ((x & 0xffff) | (y << 16));
    bad += o[6] != prmt_ref(x, y, z & 0xffff);
    bad += o[7] != prmt_ref(x, y, 0x8888 | (z & 0x7777));
  }
  CHECKF(bad == 0, "lop3/prmt: %d wrong", bad);
  cudaFree(da); cudaFree(db); cudaFree(dc); cudaFree(dout);
}

int main() {
  require_device();
  test_mma<false>();
  test_mma<true>();
  test_ldmatrix();
  test_cp_async();
  test_bits();
  return test_summary("test_ptx");
}
