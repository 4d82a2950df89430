// The cuBLAS subset against a CPU fp64 GEMM written here: cublasGemmEx and
// cublasGemmStridedBatchedEx, column-major, every op N/T combination, odd shapes, padded leading
// dimensions, alpha/beta (beta == 0 must not read C), f32/f16/bf16 inputs and outputs.
#include "test_util.cuh"

#include <cublas_v2.h>

#define CUBLAS_OK(expr)                                                                     \
  do {                                                                                      \
    cublasStatus_t s_ = (expr);                                                             \
    g_checks++;                                                                             \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                      \
      g_failed++;                                                                           \
      fprintf(stderr, "%s:%d: %s failed: status %d\n", __FILE__, __LINE__, #expr, (int)s_); \
    }                                                                                       \
  } while (0)

enum DT { F32, F16, BF16 };
static const char *dt_name(DT t) { return t == F32 ? "f32" : t == F16 ? "f16" : "bf16"; }
static cudaDataType cuda_type(DT t) { return t == F32 ? CUDA_R_32F : t == F16 ? CUDA_R_16F : CUDA_R_16BF; }
static size_t dt_size(DT t) { return t == F32 ? 4 : 2; }

// Host buffers hold the device representation; values are rounded to the type once, here.
static void put(std::vector<unsigned char> &buf, DT t, size_t i, float v) {
  if (t == F32) memcpy(&buf[i * 4], &v, 4);
  else if (t == F16) { __half h = __float2half(v); memcpy(&buf[i * 2], (const void *)&h, 2); }
  else { __nv_bfloat16 h = __float2bfloat16(v); memcpy(&buf[i * 2], (const void *)&h, 2); }
}
static double get(const std::vector<unsigned char> &buf, DT t, size_t i) {
  if (t == F32) { float v; memcpy(&v, &buf[i * 4], 4); return v; }
  if (t == F16) { __half h; memcpy((void *)&h, &buf[i * 2], 2); return __half2float(h); }
  __nv_bfloat16 h;
  memcpy((void *)&h, &buf[i * 2], 2);
  return __bfloat162float(h);
}

struct Case {
  DT in, out;
  cublasOperation_t ta, tb;
  int m, n, k, pad, batch;
  float alpha, beta;
};

static int g_cases = 0;

static void run_case(cublasHandle_t h, const Case &c, Rng &rng) {
  g_cases++;
  bool tA = c.ta == CUBLAS_OP_T, tB = c.tb == CUBLAS_OP_T;
  int ra = tA ? c.k : c.m, ca = tA ? c.m : c.k, rb = tB ? c.n : c.k, cb = tB ? c.k : c.n;
  int lda = ra + c.pad, ldb = rb + c.pad, ldc = c.m + c.pad;
  long long sa = (long long)lda * ca, sb = (long long)ldb * cb, sc = (long long)ldc * c.n;
  std::vector<unsigned char> A(sa * c.batch * dt_size(c.in)), B(sb * c.batch * dt_size(c.in)),
      C(sc * c.batch * dt_size(c.out));
  for (size_t i = 0; i < (size_t)sa * c.batch; i++) put(A, c.in, i, rng.uniform(-1, 1));
  for (size_t i = 0; i < (size_t)sb * c.batch; i++) put(B, c.in, i, rng.uniform(-1, 1));
  for (size_t i = 0; i < (size_t)sc * c.batch; i++) put(C, c.out, i, c.beta == 0 ? NAN : rng.uniform(-1, 1));
  void *dA, *dB, *dC;
  CUDA_OK(cudaMalloc(&dA, A.size()));
  CUDA_OK(cudaMalloc(&dB, B.size()));
  CUDA_OK(cudaMalloc(&dC, C.size()));
  CUDA_OK(cudaMemcpy(dA, A.data(), A.size(), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dB, B.data(), B.size(), cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dC, C.data(), C.size(), cudaMemcpyHostToDevice));
  if (c.batch == 1)
    CUBLAS_OK(cublasGemmEx(h, c.ta, c.tb, c.m, c.n, c.k, &c.alpha, dA, cuda_type(c.in), lda, dB, cuda_type(c.in), ldb,
                           &c.beta, dC, cuda_type(c.out), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  else
    CUBLAS_OK(cublasGemmStridedBatchedEx(h, c.ta, c.tb, c.m, c.n, c.k, &c.alpha, dA, cuda_type(c.in), lda, sa, dB,
                                         cuda_type(c.in), ldb, sb, &c.beta, dC, cuda_type(c.out), ldc, sc, c.batch,
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  std::vector<unsigned char> got(C.size());
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaMemcpy(got.data(), dC, C.size(), cudaMemcpyDeviceToHost));
  double rel = c.out == F32 ? 1e-6 : c.out == F16 ? 1e-3 : 8e-3;  // rounding of the result
  int bad = 0;
  double worst = 0;
  for (int t = 0; t < c.batch; t++)
    for (int j = 0; j < c.n; j++)
      for (int i = 0; i < c.m; i++) {
        double acc = 0, mag = 0;
        for (int l = 0; l < c.k; l++) {
          // column-major: X(r, col) = X[r + col * ld]; op(A)(i, l), op(B)(l, j)
          double a = get(A, c.in, t * sa + (tA ? l + (size_t)i * lda : i + (size_t)l * lda));
          double b = get(B, c.in, t * sb + (tB ? j + (size_t)l * ldb : l + (size_t)j * ldb));
          acc += a * b;
          mag += std::fabs(a * b);
        }
        size_t ci = t * sc + i + (size_t)j * ldc;
        double ref = c.alpha * acc + (c.beta != 0 ? c.beta * get(C, c.out, ci) : 0.0);
        double tol = rel * std::fabs(ref) + 2e-5 * (std::fabs(c.alpha) * mag + std::fabs(c.beta)) + 1e-6;
        double err = std::fabs(get(got, c.out, ci) - ref);
        worst = std::max(worst, err / tol);
        bad += !(err <= tol);
      }
  CHECKF(bad == 0, "%s->%s op%c%c m=%d n=%d k=%d pad=%d batch=%d alpha=%g beta=%g: %d of %d wrong (worst error %.2f x tol)",
         dt_name(c.in), dt_name(c.out), tA ? 'T' : 'N', tB ? 'T' : 'N', c.m, c.n, c.k, c.pad, c.batch, c.alpha, c.beta,
         bad, c.m * c.n * c.batch, worst);
  // rows of C past m (the padding) are untouched
  int pad_bad = 0;
  for (int j = 0; j < c.n && c.pad; j++)
    for (int i = c.m; i < ldc; i++) {
      size_t ci = i + (size_t)j * ldc;
      double a = get(got, c.out, ci), b = get(C, c.out, ci);
      pad_bad += !(a == b || (std::isnan(a) && std::isnan(b)));
    }
  CHECKF(pad_bad == 0, "GEMM wrote %d elements of C's padding", pad_bad);
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
}

int main() {
  require_device();
  cublasHandle_t h;
  CUBLAS_OK(cublasCreate(&h));
  cudaStream_t s;
  CUDA_OK(cudaStreamCreate(&s));
  CUBLAS_OK(cublasSetStream(h, s));
  Rng rng(7);
  const DT types[][2] = {{F32, F32}, {F16, F16}, {F16, F32}, {BF16, BF16}, {BF16, F32}};
  const int shapes[][3] = {{17, 33, 65}, {1, 1, 1}, {64, 8, 128}, {5, 7, 3}};
  const float scalars[][2] = {{1.0f, 0.0f}, {0.5f, -2.0f}};
  for (auto &ty : types)
    for (int op = 0; op < 4; op++)
      for (auto &sh : shapes)
        for (auto &sc : scalars)
          for (int pad : {0, 3}) {
            Case c{ty[0], ty[1], op & 1 ? CUBLAS_OP_T : CUBLAS_OP_N, op & 2 ? CUBLAS_OP_T : CUBLAS_OP_N,
                   sh[0], sh[1], sh[2], pad, 1, sc[0], sc[1]};
            run_case(h, c, rng);
          }
  for (auto &ty : types)  // strided batched
    for (int op = 0; op < 4; op++)
      run_case(h, Case{ty[0], ty[1], op & 1 ? CUBLAS_OP_T : CUBLAS_OP_N, op & 2 ? CUBLAS_OP_T : CUBLAS_OP_N, 9, 13, 21,
                       2, 3, 1.5f, 0.25f},
               rng);

  // an invalid leading dimension is refused
  void *d;
  CUDA_OK(cudaMalloc(&d, 1 << 16));
  float one = 1, zero = 0;
  cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 16, 16, 16, &one, d, CUDA_R_32F, 8, d, CUDA_R_32F, 16,
                                   &zero, d, CUDA_R_32F, 16, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  CHECK(st == CUBLAS_STATUS_INVALID_VALUE);
  cudaFree(d);
  CUBLAS_OK(cublasDestroy(h));
  CUDA_OK(cudaStreamDestroy(s));
  printf("%d GEMM cases\n", g_cases);
  return test_summary("test_cublas");
}
