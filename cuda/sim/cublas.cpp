// cublas.cpp: cublasGemmEx / cublasGemmStridedBatchedEx (and Sgemm) with cuBLAS's column-major
// semantics: op N/T, lda/ldb/ldc, alpha/beta (beta == 0: C is not read), CUDA_R_16F/16BF/32F.
// Products are accumulated in double and rounded once, whatever the compute type; the work runs on
// the handle's stream, deferred like every other stream operation.
#include "internal.h"

#include <cublas_v2.h>

#include <cstring>
#include <vector>

struct cublasContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasPointerMode_t pmode = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

using cusim::fmt;

size_t type_size(cudaDataType t) {
  switch (t) {
    case CUDA_R_16F: case CUDA_R_16BF: return 2;
    case CUDA_R_32F: return 4;
    case CUDA_R_64F: return 8;
    default: return 0;
  }
}

double load(const void *p, cudaDataType t, size_t i) {
  switch (t) {
    case CUDA_R_16F: return (double)__half2float(static_cast<const __half *>(p)[i]);
    case CUDA_R_16BF: return (double)__bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    case CUDA_R_32F: return (double)static_cast<const float *>(p)[i];
    default: return static_cast<const double *>(p)[i];
  }
}

void store(void *p, cudaDataType t, size_t i, double v) {
  switch (t) {
    // double -> float -> half would round twice; __double2half rounds once
    case CUDA_R_16F: static_cast<__half *>(p)[i] = __double2half(v); break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16 *>(p)[i] = __double2bfloat16(v); break;
    case CUDA_R_32F: static_cast<float *>(p)[i] = (float)v; break;
    default: static_cast<double *>(p)[i] = v; break;
  }
}

cublasStatus_t bad(const char *api, const std::string &m, cublasStatus_t st = CUBLAS_STATUS_INVALID_VALUE) {
  cusim::report(fmt("%s: %s", api, m.c_str()));
  return st;
}

struct Gemm {
  cublasOperation_t ta, tb;
  int m, n, k, lda, ldb, ldc, batch;
  long long sa, sb, sc;
  const void *A, *B, *alpha_p, *beta_p;
  void *C;
  cudaDataType at, bt, ct;
  cublasComputeType_t ctype;
  bool device_scalars;
};

double scalar(const void *p, cublasComputeType_t ct) {
  if (ct == CUBLAS_COMPUTE_16F || ct == CUBLAS_COMPUTE_16F_PEDANTIC) return (double)__half2float(*static_cast<const __half *>(p));
  if (ct == CUBLAS_COMPUTE_64F || ct == CUBLAS_COMPUTE_64F_PEDANTIC) return *static_cast<const double *>(p);
  return (double)*static_cast<const float *>(p);
}

// Convert n elements p[off + i * stride] to double.
void load_vec(double *dst, const void *p, cudaDataType t, size_t off, size_t stride, int n) {
  switch (t) {
    case CUDA_R_16F: {  // exact half -> float: re-bias the exponent by a multiplication (subnormals too)
      const uint16_t *x = static_cast<const uint16_t *>(p) + off;
      for (int i = 0; i < n; i++) {
        uint32_t h = x[i * stride], em = h & 0x7fff, u = em << 13;
        float f;
        memcpy(&f, &u, 4);
        f *= 0x1p112f;
        memcpy(&u, &f, 4);
        if (em >= 0x7c00) u = (em << 13) | 0x7f800000u;  // inf, nan
        u |= (h & 0x8000u) << 16;
        memcpy(&f, &u, 4);
        dst[i] = (double)f;
      }
      break;
    }
    case CUDA_R_16BF: {
      const uint16_t *x = static_cast<const uint16_t *>(p) + off;
      for (int i = 0; i < n; i++) {
        uint32_t u = (uint32_t)x[i * stride] << 16;
        float f;
        memcpy(&f, &u, 4);
        dst[i] = (double)f;
      }
      break;
    }
    case CUDA_R_32F: {
      const float *x = static_cast<const float *>(p) + off;
      for (int i = 0; i < n; i++) dst[i] = (double)x[i * stride];
      break;
    }
    default: {
      const double *x = static_cast<const double *>(p) + off;
      for (int i = 0; i < n; i++) dst[i] = x[i * stride];
    }
  }
}

double dot(const double *x, const double *y, int k) {  // fp64, four independent partial sums
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int l = 0;
  for (; l + 4 <= k; l += 4) {
    s0 += x[l] * y[l];
    s1 += x[l + 1] * y[l + 1];
    s2 += x[l + 2] * y[l + 2];
    s3 += x[l + 3] * y[l + 3];
  }
  for (; l < k; l++) s0 += x[l] * y[l];
  return (s0 + s1) + (s2 + s3);
}

void run(const Gemm &g, double alpha, double beta) {
  std::vector<double> a((size_t)g.m * g.k), b((size_t)g.k * g.n);  // op(A) row-major m x k, op(B)^T n x k
  for (int t = 0; t < g.batch; t++) {
    const size_t oa = (size_t)(t * g.sa), ob = (size_t)(t * g.sb), oc = (size_t)(t * g.sc);
    // row i of op(A): A[i + l*lda] (N) or A[l + i*lda] (T); row j of op(B)^T: B[l + j*ldb] (N) or B[j + l*ldb] (T)
    for (int i = 0; i < g.m; i++)
      load_vec(&a[(size_t)i * g.k], g.A, g.at, oa + (g.ta == CUBLAS_OP_N ? (size_t)i : (size_t)i * g.lda),
               g.ta == CUBLAS_OP_N ? (size_t)g.lda : 1, g.k);
    for (int j = 0; j < g.n; j++)
      load_vec(&b[(size_t)j * g.k], g.B, g.bt, ob + (g.tb == CUBLAS_OP_N ? (size_t)j * g.ldb : (size_t)j),
               g.tb == CUBLAS_OP_N ? 1 : (size_t)g.ldb, g.k);
    for (int j = 0; j < g.n; j++)
      for (int i = 0; i < g.m; i++) {
        double acc = dot(&a[(size_t)i * g.k], &b[(size_t)j * g.k], g.k);
        size_t ci = oc + i + (size_t)j * g.ldc;
        double v = alpha * acc + (beta != 0 ? beta * load(g.C, g.ct, ci) : 0.0);
        store(g.C, g.ct, ci, v);
      }
  }
}

bool in_device(const void *p, size_t elems, size_t esz) { return elems == 0 || cusim::mem_kind(p, elems * esz) == cusim::MEM_DEVICE; }

cublasStatus_t gemm(const char *api, cublasHandle_t h, Gemm g) {
  if (!h) return bad(api, "handle is NULL (cublasCreate not called?)", CUBLAS_STATUS_NOT_INITIALIZED);
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return bad(api, fmt("negative size m=%d n=%d k=%d batch=%d", g.m, g.n, g.k, g.batch));
  for (cublasOperation_t o : {g.ta, g.tb})
    if (o != CUBLAS_OP_N && o != CUBLAS_OP_T && o != CUBLAS_OP_C) return bad(api, fmt("operation %d", (int)o));
  if (g.ta == CUBLAS_OP_C) g.ta = CUBLAS_OP_T;  // real types: conjugate transpose == transpose
  if (g.tb == CUBLAS_OP_C) g.tb = CUBLAS_OP_T;
  int arows = g.ta == CUBLAS_OP_N ? g.m : g.k, acols = g.ta == CUBLAS_OP_N ? g.k : g.m;
  int brows = g.tb == CUBLAS_OP_N ? g.k : g.n, bcols = g.tb == CUBLAS_OP_N ? g.n : g.k;
  if (g.lda < std::max(1, arows)) return bad(api, fmt("lda=%d < max(1, %d) (A is %dx%d column-major, op %s)", g.lda, arows, arows, acols, g.ta == CUBLAS_OP_N ? "N" : "T"));
  if (g.ldb < std::max(1, brows)) return bad(api, fmt("ldb=%d < max(1, %d) (B is %dx%d column-major, op %s)", g.ldb, brows, brows, bcols, g.tb == CUBLAS_OP_N ? "N" : "T"));
  if (g.ldc < std::max(1, g.m)) return bad(api, fmt("ldc=%d < max(1, m=%d)", g.ldc, g.m));
  size_t as = type_size(g.at), bs = type_size(g.bt), cs = type_size(g.ct);
  bool f32c = g.ctype == CUBLAS_COMPUTE_32F || g.ctype == CUBLAS_COMPUTE_32F_PEDANTIC || g.ctype == CUBLAS_COMPUTE_32F_FAST_16F ||
              g.ctype == CUBLAS_COMPUTE_32F_FAST_16BF || g.ctype == CUBLAS_COMPUTE_32F_FAST_TF32;
  bool f16c = g.ctype == CUBLAS_COMPUTE_16F || g.ctype == CUBLAS_COMPUTE_16F_PEDANTIC;
  bool ok = g.at == g.bt && ((f32c && (g.at == CUDA_R_16F || g.at == CUDA_R_16BF) && (g.ct == g.at || g.ct == CUDA_R_32F)) ||
                             (f32c && g.at == CUDA_R_32F && g.ct == CUDA_R_32F) ||
                             (f16c && g.at == CUDA_R_16F && g.ct == CUDA_R_16F));
  if (!ok) return bad(api, fmt("unsupported types A=%d B=%d C=%d compute=%d", (int)g.at, (int)g.bt, (int)g.ct, (int)g.ctype), CUBLAS_STATUS_NOT_SUPPORTED);
  cusim::Lock lk = cusim::lock();
  if (cusim::sticky_error(h->device)) return CUBLAS_STATUS_EXECUTION_FAILED;
  for (int t = 0; t < std::max(1, g.batch) && g.m && g.n; t++) {
    size_t ea = g.k ? (size_t)g.lda * (acols - 1) + arows : 0, eb = g.k ? (size_t)g.ldb * (bcols - 1) + brows : 0;
    size_t ec = (size_t)g.ldc * (g.n - 1) + g.m;
    const char *why = !in_device((const char *)g.A + t * g.sa * (long long)as, ea, as) ? "A"
                      : !in_device((const char *)g.B + t * g.sb * (long long)bs, eb, bs) ? "B"
                      : !in_device((char *)g.C + t * g.sc * (long long)cs, ec, cs) ? "C" : nullptr;
    if (why) {
      const void *p = *why == 'A' ? g.A : *why == 'B' ? g.B : g.C;
      return bad(api, fmt("matrix %s of batch %d is not (entirely) device memory: %s", why, t, cusim::mem_describe(p, 1).c_str()));
    }
  }
  cudaError_t e;
  cusim::Stream *s = cusim::get_stream(h->stream, &e);
  if (!s) return bad(api, "the handle's stream is not live", CUBLAS_STATUS_INVALID_VALUE);
  double alpha = 0, beta = 0;
  g.device_scalars = h->pmode == CUBLAS_POINTER_MODE_DEVICE;
  if (!g.device_scalars) { alpha = scalar(g.alpha_p, g.ctype); beta = scalar(g.beta_p, g.ctype); }
  int dev = h->device;
  cusim::enqueue(lk, s, [g, alpha, beta, dev](cusim::Lock &) {
    if (cusim::sticky_error(dev)) return;
    if (g.device_scalars) run(g, scalar(g.alpha_p, g.ctype), scalar(g.beta_p, g.ctype));
    else run(g, alpha, beta);
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
  *h = new cublasContext();
  (*h)->device = cusim::current_device();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetVersion_v2(cublasHandle_t, int *v) { *v = CUBLAS_VERSION; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) { if (!h) return CUBLAS_STATUS_NOT_INITIALIZED; h->stream = s; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *s) { if (!h) return CUBLAS_STATUS_NOT_INITIALIZED; *s = h->stream; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t h, cublasPointerMode_t m) { if (!h) return CUBLAS_STATUS_NOT_INITIALIZED; h->pmode = m; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t h, cublasPointerMode_t *m) { if (!h) return CUBLAS_STATUS_NOT_INITIALIZED; *m = h->pmode; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) { if (!h) return CUBLAS_STATUS_NOT_INITIALIZED; h->math = m; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m) { if (!h) return CUBLAS_STATUS_NOT_INITIALIZED; *m = h->math; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void *, size_t) { return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED; }

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t ctype,
                            cublasGemmAlgo_t) {
  return gemm("cublasGemmEx", h, Gemm{ta, tb, m, n, k, lda, ldb, ldc, 1, 0, 0, 0, A, B, alpha, beta, C, at, bt, ct, ctype, false});
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType at, int lda,
                                          long long sa, const void *B, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t ctype, cublasGemmAlgo_t) {
  return gemm("cublasGemmStridedBatchedEx", h,
              Gemm{ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, A, B, alpha, beta, C, at, bt, ct, ctype, false});
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                              float *C, int ldc) {
  return gemm("cublasSgemm", h, Gemm{ta, tb, m, n, k, lda, ldb, ldc, 1, 0, 0, 0, A, B, alpha, beta, C, CUDA_R_32F,
                                     CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, false});
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, long long sa,
                                         const float *B, int ldb, long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int batch) {
  return gemm("cublasSgemmStridedBatched", h, Gemm{ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, A, B, alpha,
                                                   beta, C, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, false});
}

const char *cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}
