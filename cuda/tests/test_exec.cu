// The execution model: barriers, shuffles (every variant and width), votes, warp reductions,
// __syncwarp in divergent code, atomics, dynamic shared memory (also above 48 KB), 3-D indices,
// fp16/bf16 device intrinsics. Each kernel is checked against a CPU reference written from the CUDA
// Programming Guide's definitions.
#include "test_util.cuh"

#define FULL 0xffffffffu

// ---- barriers ----
__global__ void k_barrier(int *out, int rounds) {
  __shared__ int s[256];
  int t = threadIdx.x, acc = 0;
  for (int r = 0; r < rounds; r++) {
    s[t] = t * 3 + r + (int)blockIdx.x;
    __syncthreads();
    acc += s[255 - t] + s[(t + 1) % 256];
    __syncthreads();
  }
  out[blockIdx.x * 256 + t] = acc;
}

__global__ void k_bar_vote(int *out) {
  int t = threadIdx.x;
  out[t * 3 + 0] = __syncthreads_count(t % 3 == 0);
  out[t * 3 + 1] = __syncthreads_and(t < 1000);
  out[t * 3 + 2] = __syncthreads_or(t == 77);
}

static void test_barriers() {
  int rounds = 5, blocks = 3;
  int *d = dev_alloc<int>(256 * blocks);
  LAUNCH(k_barrier, blocks, 256, 0, 0, d, rounds);
  KERNEL_OK();
  std::vector<int> h = to_host(d, 256 * blocks);
  int bad = 0;
  for (int b = 0; b < blocks; b++)
    for (int t = 0; t < 256; t++) {
      int ref = 0;
      for (int r = 0; r < rounds; r++) ref += (255 - t) * 3 + r + b + ((t + 1) % 256) * 3 + r + b;
      bad += h[b * 256 + t] != ref;
    }
  CHECKF(bad == 0, "%d wrong values", bad);
  cudaFree(d);

  int *v = dev_alloc<int>(200 * 3);
  LAUNCH(k_bar_vote, 1, 200, 0, 0, v);
  KERNEL_OK();
  std::vector<int> hv = to_host(v, 600);
  bad = 0;
  for (int t = 0; t < 200; t++) bad += hv[t * 3] != 67 || hv[t * 3 + 1] == 0 || hv[t * 3 + 2] == 0;
  CHECKF(bad == 0, "__syncthreads_count/and/or: %d threads wrong (count %d)", bad, hv[0]);
  cudaFree(v);
}

// ---- shuffles ----
// mode 0 idx (per-lane source), 1 up, 2 down, 3 xor; two warps
__global__ void k_shfl(const float *in, const int *src, float *out, int mode, int width, int arg) {
  int t = threadIdx.x;
  float v = in[t], r;
  if (mode == 0) r = __shfl_sync(FULL, v, src[t], width);
  else if (mode == 1) r = __shfl_up_sync(FULL, v, arg, width);
  else if (mode == 2) r = __shfl_down_sync(FULL, v, arg, width);
  else r = __shfl_xor_sync(FULL, v, arg, width);
  out[t] = r;
}

__global__ void k_shfl_types(const double *d, const int *src, double *od, __half *oh, long long *ol, int width) {
  int t = threadIdx.x;
  od[t] = __shfl_sync(FULL, d[t], src[t], width);
  oh[t] = __shfl_sync(FULL, __float2half((float)t), src[t], width);
  ol[t] = __shfl_xor_sync(FULL, (long long)t << 40 | t, 3, width);
}

// The Programming Guide's definitions, per lane of one warp.
static float shfl_ref(const float *v, int lane, int mode, int width, int arg, int src) {
  int seg = lane / width * width;
  switch (mode) {
    case 0: return v[seg + ((src % width) + width) % width];
    case 1: return lane % width >= arg ? v[lane - arg] : v[lane];
    case 2: return lane % width + arg < width ? v[lane + arg] : v[lane];
    default: {
      int j = lane ^ arg;  // later groups of `width` lanes are not accessible: own value
      return j / width <= lane / width ? v[j] : v[lane];
    }
  }
}

static void test_shuffles() {
  Rng rng(1);
  std::vector<float> in(64);
  std::vector<int> src(64);
  for (int i = 0; i < 64; i++) { in[i] = (float)(i * 10 + 1); src[i] = rng.range(-40, 70); }
  float *din = to_dev(in), *dout = dev_alloc<float>(64);
  int *dsrc = to_dev(src);
  const char *names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};
  for (int width = 32; width >= 1; width /= 2)
    for (int mode = 0; mode < 4; mode++) {
      std::vector<int> args = {1, 2, 3, 5, 7, 8, 13, 16, 31};
      if (mode == 0) args = {0};
      for (int arg : args) {
        if (mode != 0 && arg >= 32) continue;
        LAUNCH(k_shfl, 1, 64, 0, 0, din, dsrc, dout, mode, width, arg);
        KERNEL_OK();
        std::vector<float> h = to_host(dout, 64);
        int bad = 0;
        for (int t = 0; t < 64; t++) bad += h[t] != shfl_ref(&in[t / 32 * 32], t % 32, mode, width, arg, src[t]);
        CHECKF(bad == 0, "%s width %d arg %d: %d lanes wrong", names[mode], width, arg, bad);
      }
    }
  std::vector<double> d(64);
  for (int i = 0; i < 64; i++) d[i] = i * 1.5 + 1e-9 * i;
  double *dd = to_dev(d), *od = dev_alloc<double>(64);
  __half *oh = dev_alloc<__half>(64);
  long long *ol = dev_alloc<long long>(64);
  for (int width : {32, 8}) {
    LAUNCH(k_shfl_types, 1, 64, 0, 0, dd, dsrc, od, oh, ol, width);
    KERNEL_OK();
    std::vector<double> hd = to_host(od, 64);
    std::vector<__half> hh = to_host(oh, 64);
    std::vector<long long> hl = to_host(ol, 64);
    int bad = 0;
    std::vector<float> lanes(64);
    for (int i = 0; i < 64; i++) lanes[i] = (float)i;
    for (int t = 0; t < 64; t++) {
      int j = (int)shfl_ref(&lanes[t / 32 * 32], t % 32, 0, width, 0, src[t]);
      bad += hd[t] != d[j] || __half2float(hh[t]) != (float)j;
      int x = (int)shfl_ref(&lanes[t / 32 * 32], t % 32, 3, width, 3, 0);
      bad += hl[t] != ((long long)x << 40 | x);
    }
    CHECKF(bad == 0, "64-bit/half shuffles width %d: %d wrong", width, bad);
  }
  cudaFree(din); cudaFree(dout); cudaFree(dsrc); cudaFree(dd); cudaFree(od); cudaFree(oh); cudaFree(ol);
}

// ---- votes, reductions, __syncwarp ----
__global__ void k_vote(const int *pred, unsigned *out) {
  int t = threadIdx.x, l = t % 32, p = pred[t];
  out[t * 4 + 0] = __ballot_sync(FULL, p);
  out[t * 4 + 1] = __any_sync(FULL, p);
  out[t * 4 + 2] = __all_sync(FULL, p);
  out[t * 4 + 3] = l < 16 ? __ballot_sync(0x0000ffffu, p) : __ballot_sync(0xffff0000u, p);
}

__global__ void k_warp_reduce(const int *in, int *out) {
  int t = threadIdx.x, v = in[t];
  out[t * 6 + 0] = __reduce_add_sync(FULL, v);
  out[t * 6 + 1] = __reduce_min_sync(FULL, v);
  out[t * 6 + 2] = __reduce_max_sync(FULL, v);
  out[t * 6 + 3] = (int)__reduce_xor_sync(FULL, (unsigned)v);
  out[t * 6 + 4] = (int)__match_any_sync(FULL, v & 3);
  float f = (float)v;  // the classic butterfly sum
  for (int o = 16; o; o >>= 1) f += __shfl_xor_sync(FULL, f, o);
  out[t * 6 + 5] = (int)f;
}

__global__ void k_syncwarp(int *out) {
  __shared__ int s[64];
  int t = threadIdx.x, l = t % 32, hw = l / 16, base = t / 32 * 32 + hw * 16;
  s[t] = t * 7;
  if (hw == 0) __syncwarp(0x0000ffffu);  // the two halves synchronise separately
  else __syncwarp(0xffff0000u);
  out[t] = s[base + 15 - l % 16];
  __syncwarp();
}

static void test_votes() {
  Rng rng(2);
  std::vector<int> pred(64);
  for (int i = 0; i < 64; i++) pred[i] = i < 32 ? (int)(rng.next() & 1) : 1;
  int *dp = to_dev(pred);
  unsigned *dout = dev_alloc<unsigned>(256);
  LAUNCH(k_vote, 1, 64, 0, 0, dp, dout);
  KERNEL_OK();
  std::vector<unsigned> h = to_host(dout, 256);
  int bad = 0;
  for (int w = 0; w < 2; w++) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++) ballot |= (unsigned)(pred[w * 32 + l] != 0) << l;
    for (int l = 0; l < 32; l++) {
      const unsigned *o = &h[(w * 32 + l) * 4];
      unsigned halfmask = l < 16 ? 0x0000ffffu : 0xffff0000u;
      bad += o[0] != ballot || o[1] != (ballot != 0) || o[2] != (ballot == FULL) || o[3] != (ballot & halfmask);
    }
  }
  CHECKF(bad == 0, "ballot/any/all: %d lanes wrong", bad);

  std::vector<int> in(32);
  for (int i = 0; i < 32; i++) in[i] = rng.range(-1000, 1000);
  int *din = to_dev(in), *dr = dev_alloc<int>(32 * 6);
  LAUNCH(k_warp_reduce, 1, 32, 0, 0, din, dr);
  KERNEL_OK();
  std::vector<int> r = to_host(dr, 32 * 6);
  int sum = 0, mn = in[0], mx = in[0];
  unsigned x = 0;
  for (int v : in) { sum += v; mn = v < mn ? v : mn; mx = v > mx ? v : mx; x ^= (unsigned)v; }
  bad = 0;
  for (int l = 0; l < 32; l++) {
    unsigned match = 0;
    for (int j = 0; j < 32; j++) match |= (unsigned)((in[j] & 3) == (in[l] & 3)) << j;
    bad += r[l * 6] != sum || r[l * 6 + 1] != mn || r[l * 6 + 2] != mx || (unsigned)r[l * 6 + 3] != x ||
           (unsigned)r[l * 6 + 4] != match || r[l * 6 + 5] != sum;
  }
  CHECKF(bad == 0, "__reduce_*_sync / __match_any_sync / butterfly: %d lanes wrong", bad);

  int *ds = dev_alloc<int>(64);
  LAUNCH(k_syncwarp, 1, 64, 0, 0, ds);
  KERNEL_OK();
  std::vector<int> hs = to_host(ds, 64);
  bad = 0;
  for (int t = 0; t < 64; t++) bad += hs[t] != (t / 16 * 16 + 15 - t % 16) * 7;
  CHECKF(bad == 0, "__syncwarp in divergent halves: %d wrong", bad);
  cudaFree(dp); cudaFree(dout); cudaFree(din); cudaFree(dr); cudaFree(ds);
}

// ---- atomics ----
struct AtomicOut {
  int add_i, max_i, cas, exch, min_i;
  unsigned add_u, min_u, inc, dec, or_u, and_u, xor_u;
  float add_f, exch_f;
  unsigned long long add_ull;
};

__global__ void k_atomics(AtomicOut *o) {
  int g = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&o->add_i, g % 7 - 3);
  atomicAdd(&o->add_u, 2u);
  atomicAdd(&o->add_f, (float)(g % 5));
  atomicMax(&o->max_i, (g * 37) % 1001);
  atomicMin(&o->min_i, 3000 - g);
  atomicMin(&o->min_u, 5000u - (unsigned)g);
  int old = atomicAdd(&o->cas, 0), assumed;  // increment through a CAS loop
  do { assumed = old; old = atomicCAS(&o->cas, assumed, assumed + 1); } while (old != assumed);
  atomicExch(&o->exch, g);
  atomicExch(&o->exch_f, (float)g);
  atomicInc(&o->inc, 99u);
  atomicDec(&o->dec, 1000u);
  atomicOr(&o->or_u, 1u << (g % 32));
  atomicAnd(&o->and_u, ~(1u << (g % 16)));
  atomicXor(&o->xor_u, (unsigned)g);
  atomicAdd(&o->add_ull, (unsigned long long)g << 20);
}

static void test_atomics() {
  AtomicOut init{};
  init.min_i = 1 << 30; init.min_u = 0xffffffffu; init.max_i = -1; init.and_u = 0xffffffffu; init.exch_f = -1;
  AtomicOut *d = dev_alloc<AtomicOut>(1);
  CUDA_OK(cudaMemcpy(d, &init, sizeof init, cudaMemcpyHostToDevice));
  int blocks = 8, threads = 128, n = blocks * threads;
  LAUNCH(k_atomics, blocks, threads, 0, 0, d);
  KERNEL_OK();
  AtomicOut h;
  CUDA_OK(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost));
  long long add_i = 0, add_f = 0, mx = -1;
  unsigned xr = 0;
  unsigned long long ull = 0;
  for (int g = 0; g < n; g++) {
    add_i += g % 7 - 3; add_f += g % 5; mx = (g * 37) % 1001 > mx ? (g * 37) % 1001 : mx; xr ^= (unsigned)g;
    ull += (unsigned long long)g << 20;
  }
  unsigned dec = 0;  // atomicDec: ((old == 0) | (old > 1000)) ? 1000 : old - 1, n times from 0
  for (int g = 0; g < n; g++) dec = (dec == 0 || dec > 1000) ? 1000 : dec - 1;
  CHECK(h.add_i == add_i);
  CHECK(h.add_u == 2u * n);
  CHECK(h.add_f == (float)add_f);
  CHECK(h.max_i == mx);
  CHECK(h.min_i == 3000 - (n - 1));
  CHECK(h.min_u == 5000u - (unsigned)(n - 1));
  CHECK(h.cas == n);
  CHECK(h.exch >= 0 && h.exch < n);
  CHECK(h.exch_f >= 0 && h.exch_f < n && h.exch_f == (float)(int)h.exch_f);
  CHECK(h.inc == (unsigned)(n % 100));
  CHECK(h.dec == dec);
  CHECK(h.or_u == 0xffffffffu);
  CHECK(h.and_u == 0xffff0000u);
  CHECK(h.xor_u == xr);
  CHECK(h.add_ull == ull);
  cudaFree(d);
}

// ---- dynamic shared memory ----
__global__ void k_dyn(const float *in, float *out, int n) {
  DYN_SMEM(float, buf);
  int *tag = reinterpret_cast<int *>(buf + n);  // a second array after the first
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = in[blockIdx.x * n + i];
  if (threadIdx.x == 0) *tag = (int)blockIdx.x;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = buf[n - 1 - i] + (float)*tag;
}

static void test_dynamic_smem() {
  for (int n : {1000, 16384}) {  // 4 KB and 64 KB (+4 bytes)
    size_t bytes = n * sizeof(float) + sizeof(int);
    if (bytes > 48 * 1024) CUDA_OK(cudaFuncSetAttribute(k_dyn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    std::vector<float> in(2 * n);
    for (int i = 0; i < 2 * n; i++) in[i] = (float)(i % 977);
    float *din = to_dev(in), *dout = dev_alloc<float>(2 * n);
    LAUNCH(k_dyn, 2, 128, bytes, 0, din, dout, n);
    KERNEL_OK();
    std::vector<float> h = to_host(dout, 2 * n);
    int bad = 0;
    for (int b = 0; b < 2; b++)
      for (int i = 0; i < n; i++) bad += h[b * n + i] != in[b * n + n - 1 - i] + b;
    CHECKF(bad == 0, "dynamic shared memory, %zu bytes: %d wrong", bytes, bad);
    cudaFree(din); cudaFree(dout);
  }
}

// ---- indices ----
__global__ void k_index(int *out) {
  int bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  int nt = blockDim.x * blockDim.y * blockDim.z;
  out[(bid * nt + tid) * 2] = threadIdx.x * 100 + threadIdx.y * 10 + threadIdx.z;
  out[(bid * nt + tid) * 2 + 1] = blockIdx.x * 100 + blockIdx.y * 10 + blockIdx.z;
}

__global__ void k_uninit(int *out) {
  __shared__ int s[32];
  if (blockIdx.x == 0) s[threadIdx.x] = 1234;  // block 1 never writes s
  __syncthreads();
  out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
}

static void test_indices() {
  dim3 grid(2, 3, 2), block(4, 2, 3);
  int nb = 12, nt = 24;
  int *d = dev_alloc<int>(nb * nt * 2);
  LAUNCH(k_index, grid, block, 0, 0, d);
  KERNEL_OK();
  std::vector<int> h = to_host(d, nb * nt * 2);
  int bad = 0;
  for (int bz = 0; bz < 2; bz++)
    for (int by = 0; by < 3; by++)
      for (int bx = 0; bx < 2; bx++)
        for (int tz = 0; tz < 3; tz++)
          for (int ty = 0; ty < 2; ty++)
            for (int tx = 0; tx < 4; tx++) {
              int bid = bx + 2 * (by + 3 * bz), tid = tx + 4 * (ty + 2 * tz);
              bad += h[(bid * nt + tid) * 2] != tx * 100 + ty * 10 + tz || h[(bid * nt + tid) * 2 + 1] != bx * 100 + by * 10 + bz;
            }
  CHECKF(bad == 0, "threadIdx/blockIdx/blockDim/gridDim: %d wrong", bad);
  cudaFree(d);

  int *u = dev_alloc<int>(64);
  LAUNCH(k_uninit, 2, 32, 0, 0, u);
  KERNEL_OK();
  std::vector<int> hu = to_host(u, 64);
  bad = 0;
  for (int i = 0; i < 32; i++) bad += hu[i] != 1234;
#ifdef CUSIM  // on a GPU block 1 reads garbage; cusim poisons static shared memory at every block start
  for (int i = 32; i < 64; i++) bad += hu[i] != -1;
#endif
  CHECKF(bad == 0, "static __shared__ poisoning: %d wrong", bad);
  cudaFree(u);
}

// ---- fp16 / bf16 / float intrinsics ----
__global__ void k_math(const __half2 *a, const __half2 *b, const __half2 *c, __half2 *fma2, __half2 *ex2,
                       const __nv_bfloat162 *ba, __nv_bfloat162 *bfma, const float *x, float *fx, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  fma2[i] = __hfma2(a[i], b[i], c[i]);
  ex2[i] = h2exp(a[i]);
  bfma[i] = __hfma2(ba[i], ba[i], ba[i]);
  fx[4 * i + 0] = __expf(x[i]);
  fx[4 * i + 1] = rsqrtf(fabsf(x[i]) + 1.0f);
  fx[4 * i + 2] = __frcp_rn(x[i] + 10.0f);
  fx[4 * i + 3] = __half2float(__float2half_rn(x[i]));
}

static bool close(double got, double ref, double rel, double abs_tol) {
  return std::fabs(got - ref) <= abs_tol + rel * std::fabs(ref);
}

static void test_math() {
  int n = 300;
  Rng rng(3);
  std::vector<__half2> a(n), b(n), c(n);
  std::vector<__nv_bfloat162> ba(n);
  std::vector<float> x(n);
  for (int i = 0; i < n; i++) {
    a[i] = __floats2half2_rn(rng.uniform(-3, 3), rng.uniform(-3, 3));
    b[i] = __floats2half2_rn(rng.uniform(-3, 3), rng.uniform(-3, 3));
    c[i] = __floats2half2_rn(rng.uniform(-3, 3), rng.uniform(-3, 3));
    ba[i] = __floats2bfloat162_rn(rng.uniform(-3, 3), rng.uniform(-3, 3));
    x[i] = rng.uniform(-5, 5);
  }
  __half2 *da = to_dev(a), *db = to_dev(b), *dc = to_dev(c), *dfma = dev_alloc<__half2>(n), *dex = dev_alloc<__half2>(n);
  __nv_bfloat162 *dba = to_dev(ba), *dbf = dev_alloc<__nv_bfloat162>(n);
  float *dx = to_dev(x), *dfx = dev_alloc<float>(4 * n);
  LAUNCH(k_math, (n + 127) / 128, 128, 0, 0, da, db, dc, dfma, dex, dba, dbf, dx, dfx, n);
  KERNEL_OK();
  std::vector<__half2> hf = to_host(dfma, n), he = to_host(dex, n);
  std::vector<__nv_bfloat162> hb = to_host(dbf, n);
  std::vector<float> hx = to_host(dfx, 4 * n);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    float2 fa = __half22float2(a[i]), fb = __half22float2(b[i]), fc = __half22float2(c[i]);
    float2 got = __half22float2(hf[i]), e = __half22float2(he[i]);
    bad += !close(got.x, (double)fa.x * fb.x + fc.x, 1e-3, 1e-3) + !close(got.y, (double)fa.y * fb.y + fc.y, 1e-3, 1e-3);
    bad += !close(e.x, std::exp((double)fa.x), 2e-3, 1e-4) + !close(e.y, std::exp((double)fa.y), 2e-3, 1e-4);
    float2 bv = __bfloat1622float2(ba[i]), bg = __bfloat1622float2(hb[i]);
    bad += !close(bg.x, (double)bv.x * bv.x + bv.x, 8e-3, 1e-2) + !close(bg.y, (double)bv.y * bv.y + bv.y, 8e-3, 1e-2);
    bad += !close(hx[4 * i], std::exp((double)x[i]), 1e-5, 0);
    bad += !close(hx[4 * i + 1], 1.0 / std::sqrt(std::fabs((double)x[i]) + 1.0), 1e-6, 0);
    bad += !close(hx[4 * i + 2], 1.0 / ((double)x[i] + 10.0), 1e-6, 0);
    bad += !close(hx[4 * i + 3], x[i], 1e-3, 1e-7);
  }
  CHECKF(bad == 0, "fp16/bf16/float intrinsics: %d wrong", bad);
  cudaFree(da); cudaFree(db); cudaFree(dc); cudaFree(dfma); cudaFree(dex); cudaFree(dba); cudaFree(dbf); cudaFree(dx); cudaFree(dfx);
}

int main() {
  require_device();
  test_barriers();
  test_shuffles();
  test_votes();
  test_atomics();
  test_dynamic_smem();
  test_indices();
  test_math();
  return test_summary("test_exec");
}
